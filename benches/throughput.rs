//! Message round trips through `GracefulSocket` against raw axum `WebSocket`,
//! both servers in this process on loopback, measured in alternating rounds so
//! that the machine's run-to-run drift hits both alike.
//!
//! Run with `cargo bench --bench throughput`. Each round trip is one text
//! message sent by one of 64 tokio-tungstenite connections and its echo
//! awaited; the connections run concurrently, as in the baseline's echo mode.
//! Both servers and the clients use `read_buffer_size(4096)` and
//! `TCP_NODELAY`: with tungstenite's 128 KiB default, half of all CPU time
//! goes to zero-filling the read buffer before every read, which would
//! measure `memset` rather than the socket wrapper.
//! At the end it prints messages per second per server and the ratio
//! graceful / raw over the criterion rounds, then a paired measurement: 12
//! adjacent raw/graceful pairs of 0.5 s each per message size, and the median
//! of the pairs' ratios (target ≥ 0.98), which drift on a shared machine
//! cannot bias.
//!
//! On a busy machine the criterion rounds say little; `cargo bench --bench
//! throughput -- --paired-only [--pairs N] [--pair-ms MS]` skips them and
//! runs only the paired spans (default 12 pairs of 500 ms): more, shorter
//! pairs narrow the median when the machine's load changes quickly.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::serve::ListenerExt;
use criterion::{Criterion, Throughput};
use futures_util::{SinkExt, StreamExt};
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;
use wsdrain::{DrainController, DrainPolicy};

mod support;

use support::arg;

/// Concurrent connections per server (the baseline's echo mode used 64).
const CONNS: usize = 64;
/// Rounds of (raw, graceful) pairs; the order flips every round.
const ROUNDS: usize = 3;
const SIZES: [(usize, &str); 2] = [(32, "32B"), (16 * 1024, "16KiB")];
/// Pairs of the paired measurement, and the span of each half (defaults;
/// `--pairs N`, `--pair-ms MS` with `--paired-only`).
const PAIRS: usize = 12;
const PAIR_SPAN: Duration = Duration::from_millis(500);

/// Round trips done and seconds taken, by (size, server, round).
type Tally = BTreeMap<(usize, &'static str, usize), (u64, f64)>;
static TALLY: Mutex<Tally> = Mutex::new(BTreeMap::new());

struct Servers {
    raw: SocketAddr,
    graceful: SocketAddr,
    _controller: DrainController,
}

async fn start_servers() -> Servers {
    let raw_listener = support::listener("127.0.0.1:0".parse().expect("addr")).expect("listen");
    let raw = raw_listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let router = support::raw_router(Some(support::READ_BUFFER));
        let _ = axum::serve(raw_listener.tap_io(nodelay), router).await;
    });
    let controller = DrainController::new(DrainPolicy::default());
    let graceful_listener =
        support::listener("127.0.0.1:0".parse().expect("addr")).expect("listen");
    let graceful = graceful_listener.local_addr().expect("addr");
    let router = support::graceful_router(controller.drain(), Some(support::READ_BUFFER));
    let drain = controller.drain();
    tokio::spawn(async move {
        // Never drained: the controller is only the sessions' registry here.
        let _ = axum::serve(graceful_listener.tap_io(nodelay), router)
            .with_graceful_shutdown(drain.closed())
            .await;
    });
    Servers {
        raw,
        graceful,
        _controller: controller,
    }
}

fn nodelay(tcp: &mut tokio::net::TcpStream) {
    let _ = tcp.set_nodelay(true);
}

async fn connect(addr: SocketAddr) -> Vec<support::ClientWs> {
    let mut conns = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        let ws = support::connect_from(Ipv4Addr::LOCALHOST, addr, Some(support::client_config()))
            .await
            .expect("connect");
        conns.push(ws);
    }
    conns
}

/// `total` round trips spread over the connections; returns the time taken.
async fn round_trips(
    conns: &mut Vec<support::ClientWs>,
    msg: &Message,
    total: u64,
) -> (Duration, u64) {
    let per_conn = total.div_ceil(CONNS as u64).max(1);
    let start = Instant::now();
    let tasks: Vec<_> = conns
        .drain(..)
        .map(|mut ws| {
            let msg = msg.clone();
            tokio::spawn(async move {
                for _ in 0..per_conn {
                    ws.send(msg.clone()).await.expect("send");
                    match ws.next().await {
                        Some(Ok(Message::Text(_))) => {}
                        other => panic!("unexpected echo {other:?}"),
                    }
                }
                ws
            })
        })
        .collect();
    for task in tasks {
        conns.push(task.await.expect("client task"));
    }
    (start.elapsed(), per_conn * CONNS as u64)
}

/// Round trips per second over `span`, every connection looping until the end.
async fn echo_for(conns: &mut Vec<support::ClientWs>, msg: &Message, span: Duration) -> f64 {
    let start = Instant::now();
    let deadline = start + span;
    let tasks: Vec<_> = conns
        .drain(..)
        .map(|mut ws| {
            let msg = msg.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    ws.send(msg.clone()).await.expect("send");
                    match ws.next().await {
                        Some(Ok(Message::Text(_))) => done += 1,
                        other => panic!("unexpected echo {other:?}"),
                    }
                }
                (ws, done)
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        let (ws, done) = task.await.expect("client task");
        conns.push(ws);
        total += done;
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// Adjacent raw/graceful pairs of short spans (the order flips every pair):
/// the ratio of each pair sees the same machine state, whatever the drift.
fn paired(
    rt: &Runtime,
    raw: &mut Vec<support::ClientWs>,
    graceful: &mut Vec<support::ClientWs>,
    pairs: usize,
    span: Duration,
) {
    println!(
        "\npaired spans: {pairs} pairs of {} ms per server and message size, {CONNS} connections ({})",
        span.as_millis(),
        support::load()
    );
    println!(
        "| message | raw axum msg/s (median) | GracefulSocket msg/s (median) | ratio: median of pairs | min..max of pairs | target |"
    );
    println!("|---|---|---|---|---|---|");
    for (size, label) in SIZES {
        let msg = Message::text("x".repeat(size));
        let (mut r, mut g, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for pair in 0..pairs {
            let (a, b) = if pair % 2 == 0 {
                let a = rt.block_on(echo_for(raw, &msg, span));
                (a, rt.block_on(echo_for(graceful, &msg, span)))
            } else {
                let b = rt.block_on(echo_for(graceful, &msg, span));
                (rt.block_on(echo_for(raw, &msg, span)), b)
            };
            r.push(a);
            g.push(b);
            ratios.push(b / a);
        }
        let (lo, hi) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        println!(
            "| {label} | {:.0} | {:.0} | {:.3} | {lo:.3}..{hi:.3} | >= 0.98 |",
            median(&mut r),
            median(&mut g),
            median(&mut ratios)
        );
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn record(size: usize, server: &'static str, round: usize, done: u64, took: Duration) {
    let mut tally = TALLY.lock().unwrap_or_else(PoisonError::into_inner);
    let t = tally.entry((size, server, round)).or_default();
    t.0 += done;
    t.1 += took.as_secs_f64();
}

fn bench(c: &mut Criterion, rt: &Runtime) {
    let servers = rt.block_on(start_servers());
    let mut raw = rt.block_on(connect(servers.raw));
    let mut graceful = rt.block_on(connect(servers.graceful));
    for (size, label) in SIZES {
        let msg = Message::text("x".repeat(size));
        let mut group = c.benchmark_group(format!("echo_{label}"));
        group.throughput(Throughput::Elements(1));
        for round in 1..=ROUNDS {
            let order: [&'static str; 2] = if round % 2 == 1 {
                ["raw", "graceful"]
            } else {
                ["graceful", "raw"]
            };
            for server in order {
                let conns = if server == "raw" {
                    &mut raw
                } else {
                    &mut graceful
                };
                group.bench_function(format!("{server}/round{round}"), |b| {
                    b.iter_custom(|iters| {
                        let (took, done) = rt.block_on(round_trips(conns, &msg, iters));
                        record(size, server, round, done, took);
                        // Criterion wants the time of `iters` round trips.
                        took.mul_f64(iters as f64 / done as f64)
                    });
                });
            }
        }
        group.finish();
    }
    if !std::env::args().any(|a| a == "--list") {
        paired(rt, &mut raw, &mut graceful, PAIRS, PAIR_SPAN);
    }
    drop(servers);
}

fn rate(tally: &Tally, size: usize, server: &str, round: Option<usize>) -> f64 {
    let (done, secs) = tally
        .iter()
        .filter(|((s, srv, r), _)| *s == size && *srv == server && round.is_none_or(|x| x == *r))
        .fold((0u64, 0f64), |acc, (_, (d, t))| (acc.0 + d, acc.1 + t));
    done as f64 / secs
}

fn summary() {
    let tally = TALLY.lock().unwrap_or_else(PoisonError::into_inner);
    if tally.is_empty() {
        return;
    }
    println!(
        "\nthroughput summary ({CONNS} connections; {})",
        support::load()
    );
    println!(
        "| message | round | raw axum msg/s | GracefulSocket msg/s | ratio (target >= 0.98) |"
    );
    println!("|---|---|---|---|---|");
    for (size, label) in SIZES {
        let rounds = (1..=ROUNDS).map(Some).chain([None]);
        for round in rounds {
            let raw = rate(&tally, size, "raw", round);
            let graceful = rate(&tally, size, "graceful", round);
            let name = round.map_or("all".to_owned(), |r| r.to_string());
            println!(
                "| {label} | {name} | {raw:.0} | {graceful:.0} | {:.3} |",
                graceful / raw
            );
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if std::env::args().any(|a| a == "--paired-only") {
        let pairs = arg("--pairs").map_or(PAIRS, |n| n.max(1) as usize);
        let span = arg("--pair-ms").map_or(PAIR_SPAN, Duration::from_millis);
        let servers = rt.block_on(start_servers());
        let mut raw = rt.block_on(connect(servers.raw));
        let mut graceful = rt.block_on(connect(servers.graceful));
        paired(&rt, &mut raw, &mut graceful, pairs, span);
        return;
    }
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench(&mut c, &rt);
    c.final_summary();
    summary();
}
