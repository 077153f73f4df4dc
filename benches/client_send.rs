//! What `wsdrain_client::Client::send` costs against tokio-tungstenite used
//! directly, both on one loopback connection to an in-process
//! tokio-tungstenite server, in adjacent pairs of spans so that the
//! machine's drift hits both alike.
//!
//! Run with `cargo bench --features client --bench client_send`
//! (`-- --pairs N --pair-ms MS`; default 12 pairs of 500 ms). Two loads,
//! 32 B text messages:
//!
//! * **round trip**: send, then await the echo (the client's `Event::Message`
//!   against the raw stream's next message);
//! * **send**: awaited sends to a server that reads and drops them (the
//!   client's queue, its task's write and the answer, against
//!   `SinkExt::send`).
//!
//! It prints operations per second of each and the median of the pairs'
//! ratios, wsdrain / raw.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use wsdrain::client::{Client, Event, Events, Reconnect};

mod support;

use support::arg;

const PAIRS: usize = 12;
const PAIR_SPAN: Duration = Duration::from_millis(500);

/// A server on 127.0.0.1 that echoes (`echo`) or reads and drops.
async fn server(echo: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if echo && msg.is_text() && ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

type Raw = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn raw(addr: SocketAddr) -> Raw {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .expect("connect");
    ws
}

async fn wsdrain(addr: SocketAddr) -> (Client, Events) {
    let (client, mut events) = Reconnect::new(format!("ws://{addr}/")).spawn();
    match events.next().await {
        Some(Event::Connected { .. }) => (client, events),
        other => panic!("expected Connected, got {other:?}"),
    }
}

/// Operations per second of `op` over `span`.
async fn rate<F: AsyncFnMut()>(span: Duration, mut op: F) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < span {
        for _ in 0..64 {
            op().await;
        }
        n += 64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Pairs of (raw, wsdrain) rates, the order flipping every pair.
async fn pairs<R: AsyncFnMut() -> f64, W: AsyncFnMut() -> f64>(
    n: usize,
    mut raw: R,
    mut wsdrain: W,
) -> (f64, f64, f64, f64, f64) {
    let (mut raws, mut ours, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let (r, w) = if i % 2 == 0 {
            let r = raw().await;
            (r, wsdrain().await)
        } else {
            let w = wsdrain().await;
            (raw().await, w)
        };
        raws.push(r);
        ours.push(w);
        ratios.push(w / r);
    }
    let (lo, hi) = ratios
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    (median(raws), median(ours), median(ratios), lo, hi)
}

fn main() {
    let n = arg("--pairs").map_or(PAIRS, |n| n as usize);
    let span = arg("--pair-ms").map_or(PAIR_SPAN, Duration::from_millis);
    let msg = Message::text("x".repeat(32));
    println!("{n} pairs of {span:?}, 32 B, one connection");
    println!(
        "| runtime | what | raw tokio-tungstenite /s | wsdrain Client /s | median ratio | ratios |"
    );
    println!("|---|---|---|---|---|---|");
    for (flavour, rt) in [
        (
            "multi-thread",
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build(),
        ),
        (
            "current-thread",
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
        ),
    ] {
        let rt = rt.expect("runtime");
        rt.block_on(measure(flavour, n, span, &msg));
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average: {}", load.split(' ').next().unwrap_or("?"));
}

/// Both loads on the current runtime, one table row each.
async fn measure(flavour: &str, n: usize, span: Duration, msg: &Message) {
    let echo = server(true).await;
    let mut r = raw(echo).await;
    let (client, mut events) = wsdrain(echo).await;
    let (raw_rate, ours, ratio, lo, hi) = pairs(
        n,
        async || {
            rate(span, async || {
                r.send(msg.clone()).await.expect("send");
                r.next().await.expect("echo").expect("echo");
            })
            .await
        },
        async || {
            rate(span, async || {
                client.send(msg.clone()).await.expect("send");
                match events.next().await {
                    Some(Event::Message { .. }) => {}
                    other => panic!("expected the echo, got {other:?}"),
                }
            })
            .await
        },
    )
    .await;
    println!(
        "| {flavour} | round trip | {raw_rate:.0} | {ours:.0} | **{ratio:.3}** | {lo:.2}..{hi:.2} |"
    );
    client.close();

    let sink = server(false).await;
    let mut r = raw(sink).await;
    let (client, _events) = wsdrain(sink).await;
    let (raw_rate, ours, ratio, lo, hi) = pairs(
        n,
        async || rate(span, async || r.send(msg.clone()).await.expect("send")).await,
        async || {
            rate(span, async || {
                client.send(msg.clone()).await.expect("send");
            })
            .await
        },
    )
    .await;
    println!(
        "| {flavour} | send | {raw_rate:.0} | {ours:.0} | **{ratio:.3}** | {lo:.2}..{hi:.2} |"
    );
    client.close();
}
