//! Draining N live sessions with window 0: wsdrain against the hand-rolled
//! close-all baseline, in one invocation, server and load in separate
//! processes.
//!
//! Run with
//!
//! ```sh
//! cargo bench -p wsdrain-benches --bench drain_scale                       # N = 10000 and 19000, 2 rounds
//! cargo bench -p wsdrain-benches --bench drain_scale -- --quick            # N = 1000, 1 round (smoke run)
//! cargo bench -p wsdrain-benches --bench drain_scale -- --sessions 5000 --rounds 3
//! WSDRAIN_BENCH_SESSIONS=10000 cargo bench -p wsdrain-benches --bench drain_scale
//! ```
//!
//! This binary starts itself again as the server (`__server graceful|closeall`)
//! and as the load (`__load ADDR N`). Per run: start the server, read its RSS,
//! open N idle sessions from 127.0.0.2, .3, … (10,000 per address,
//! `IP_BIND_ADDRESS_NO_PORT`), read RSS and CPU again, send SIGTERM, and
//! collect: time from Closing to the last Close seen by a client, SIGTERM to
//! that Close, server CPU seconds from SIGTERM to the last session's end,
//! closes per server CPU-second, peak RSS (VmHWM), RSS per session, and how
//! every client's session ended. Both servers use `read_buffer_size(4096)`, and
//! so do the clients. Modes alternate (ABBA) so that drift hits both alike.
//!
//! * `graceful`: the echo on `GracefulUpgrade`/`GracefulSocket`, `wsdrain::serve`,
//!   SIGTERM through `listen_for_signals`, drain delay 0, close window 0.
//! * `closeall`: the baseline: a broadcast channel and a `select!` in every
//!   handler sending `Close(1001, "going away; retry-after-ms=1000")`, then
//!   reading until the end (bounded 5 s); main waits on a live-handler counter.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, ExitCode, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tokio_tungstenite::tungstenite::Message;
use wsdrain::{DrainController, DrainPolicy};

mod support;

const PER_ADDRESS: usize = 10_000;
const HANDSHAKES_IN_FLIGHT: usize = 256;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("__server") => server(args.get(1).map_or("", String::as_str)),
        Some("__load") => load(&args[1..]),
        _ => orchestrate(&args),
    }
}

// ---------------------------------------------------------------- server

fn server(mode: &str) -> ExitCode {
    support::raise_nofile_limit();
    let graceful = match mode {
        "graceful" => true,
        "closeall" => false,
        other => {
            eprintln!("drain_scale: unknown server mode {other:?}");
            return ExitCode::from(2);
        }
    };
    let controller = graceful.then(|| {
        let policy = DrainPolicy::builder()
            .drain_delay(Duration::ZERO)
            .close_window(Duration::ZERO)
            .close_timeout(Duration::from_secs(5))
            .grace_period(Duration::from_secs(30))
            .build()
            .expect("policy");
        DrainController::new(policy)
    });
    let _signals = controller
        .as_ref()
        .map(|c| c.listen_for_signals().expect("signals"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let listener = support::listener("127.0.0.1:0".parse().expect("addr")).expect("listen");
        println!("LISTENING {}", listener.local_addr().expect("addr"));
        let (closing_at, clean) = match &controller {
            Some(controller) => {
                let drain = controller.drain();
                let closing = tokio::spawn(async move {
                    drain.closing().await;
                    support::realtime_ns()
                });
                let router =
                    support::graceful_router(controller.drain(), Some(support::READ_BUFFER));
                let report = wsdrain::serve(listener, router, controller)
                    .await
                    .expect("serve");
                eprintln!("drain_scale server: {report}");
                (closing.await.unwrap_or(0), report.closed_clean.to_string())
            }
            None => {
                let closeall = support::CloseAll::default();
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("SIGTERM handler");
                let (tx, rx) = tokio::sync::oneshot::channel();
                let signalled = {
                    let closeall = closeall.clone();
                    async move {
                        term.recv().await;
                        let _ = tx.send(support::realtime_ns());
                        closeall.shutdown();
                    }
                };
                let router = closeall.router(Some(support::READ_BUFFER));
                axum::serve(listener, router)
                    .with_graceful_shutdown(signalled)
                    .await
                    .expect("serve");
                closeall.wait_idle(Duration::from_secs(20)).await;
                (rx.await.unwrap_or(0), "-".to_owned())
            }
        };
        let pid = std::process::id();
        println!("CLOSING_AT {closing_at}");
        println!("DONE {}", support::realtime_ns());
        println!("CPU {}", support::cpu_seconds(pid).unwrap_or(f64::NAN));
        println!("HWM {}", support::status_bytes(pid, "VmHWM").unwrap_or(0));
        println!("CLEAN {clean}");
    });
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------- load

/// How one client session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Close(1001) with a `retry-after-ms` reason, then a clean end of stream.
    Clean1001,
    /// Close(1001) with a hint, but the stream then ended in an error.
    Close1001ThenError,
    /// A Close with another code or without a hint.
    OtherClose,
    /// End of stream without a Close frame (a browser's 1006).
    NoClose,
    /// A read error before any Close.
    Error,
}

async fn session(ws: support::ClientWs) -> (End, u128) {
    let mut ws = ws;
    let (got, at) = loop {
        match ws.next().await {
            Some(Ok(Message::Close(frame))) => {
                let at = support::realtime_ns();
                let hinted = frame.as_ref().is_some_and(|f| {
                    u16::from(f.code) == 1001 && f.reason.contains("retry-after-ms=")
                });
                break (
                    if hinted {
                        End::Clean1001
                    } else {
                        End::OtherClose
                    },
                    at,
                );
            }
            Some(Ok(_)) => {}
            None => return (End::NoClose, support::realtime_ns()),
            Some(Err(_)) => return (End::Error, support::realtime_ns()),
        }
    };
    // Keep reading: tungstenite answers the Close, then the server ends TCP.
    loop {
        match ws.next().await {
            Some(Ok(_)) => {}
            None => return (got, at),
            Some(Err(_)) => {
                let end = if got == End::Clean1001 {
                    End::Close1001ThenError
                } else {
                    got
                };
                return (end, at);
            }
        }
    }
}

fn load(args: &[String]) -> ExitCode {
    support::raise_nofile_limit();
    let (Some(addr), Some(n)) = (
        args.first().and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(1).and_then(|a| a.parse::<usize>().ok()),
    ) else {
        eprintln!("drain_scale: usage __load ADDR N");
        return ExitCode::from(2);
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let opened = stream::iter(0..n)
            .map(|i| async move {
                support::connect_from(
                    support::source_address(i, PER_ADDRESS),
                    addr,
                    Some(support::client_config()),
                )
                .await
                .map(|ws| tokio::spawn(session(ws)))
            })
            .buffer_unordered(HANDSHAKES_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
        let mut tasks = Vec::with_capacity(n);
        let mut failed = 0;
        for o in opened {
            match o {
                Ok(t) => tasks.push(t),
                Err(e) => {
                    if failed == 0 {
                        eprintln!("drain_scale load: {e}");
                    }
                    failed += 1;
                }
            }
        }
        println!("READY {} {failed}", tasks.len());
        let all = futures_util::future::join_all(tasks);
        let Ok(ends) = tokio::time::timeout(Duration::from_secs(90), all).await else {
            println!("RESULT timeout");
            return;
        };
        let ends: Vec<(End, u128)> = ends.into_iter().filter_map(Result::ok).collect();
        let count = |e: End| ends.iter().filter(|(x, _)| *x == e).count();
        let mut times: Vec<u128> = ends.iter().map(|(_, t)| *t).collect();
        times.sort_unstable();
        let first = times.first().copied().unwrap_or(0);
        let p50 = times.get(times.len() / 2).copied().unwrap_or(0);
        let p90 = times.get(times.len() * 9 / 10).copied().unwrap_or(0);
        let p99 = times.get(times.len() * 99 / 100).copied().unwrap_or(0);
        let last = times.last().copied().unwrap_or(0);
        let cpu = support::cpu_seconds(std::process::id()).unwrap_or(f64::NAN);
        println!(
            "RESULT clean={} close_then_error={} other_close={} no_close={} error={} first={first} p50={p50} p90={p90} p99={p99} last={last} cpu={cpu}",
            count(End::Clean1001),
            count(End::Close1001ThenError),
            count(End::OtherClose),
            count(End::NoClose),
            count(End::Error),
        );
    });
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------- orchestration

struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn start(args: &[&str]) -> Proc {
        let exe = std::env::current_exe().expect("current_exe");
        let mut child = Command::new(exe)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    /// The rest of the first line starting with `key `.
    fn expect(&self, key: &str, limit: Duration) -> String {
        let until = Instant::now() + limit;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(key).and_then(|r| r.strip_prefix(' ')) {
                        return rest.to_owned();
                    }
                }
                Err(_) => panic!("no {key:?} line within {limit:?}"),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait(&mut self, limit: Duration) {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("process {} did not exit within {limit:?}", self.child.id());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One measured drain.
#[derive(Debug, Clone)]
struct Run {
    mode: &'static str,
    n: usize,
    opened: usize,
    clean: usize,
    not_clean: String,
    /// Closing → last Close seen by a client.
    drain_ms: f64,
    /// SIGTERM sent → last Close seen by a client.
    sigterm_ms: f64,
    /// SIGTERM sent → first, median, 90th and 99th percentile client Close.
    first_ms: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    /// SIGTERM sent → server process exit.
    exit_ms: f64,
    cpu_s: f64,
    /// Load process CPU seconds over the same span (SIGTERM to its last session's end).
    client_cpu_s: f64,
    /// CPU seconds of everything else on the machine from SIGTERM to the server's last session.
    other_cpu_s: f64,
    hwm: u64,
    rss_per_session: f64,
    server_clean: String,
    load: String,
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or("0")
}

fn ms_between(from: u128, to: u128) -> f64 {
    (to as f64 - from as f64) / 1e6
}

fn run_once(mode: &'static str, n: usize) -> Run {
    let mut server = Proc::start(&["__server", mode]);
    let addr = server.expect("LISTENING", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    let rss0 = support::status_bytes(server.pid(), "VmRSS").unwrap_or(0);
    let mut load = Proc::start(&["__load", &addr, &n.to_string()]);
    let ready = load.expect("READY", Duration::from_secs(180));
    let opened: usize = ready
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Let the server finish its side of the last handshakes.
    std::thread::sleep(Duration::from_secs(2));
    let rss_n = support::status_bytes(server.pid(), "VmRSS").unwrap_or(0);
    let cpu0 = support::cpu_seconds(server.pid()).unwrap_or(f64::NAN);
    let load_before = support::load();
    let pid = Pid::from_raw(i32::try_from(server.pid()).expect("pid"));
    let client_cpu0 = support::cpu_seconds(load.pid()).unwrap_or(f64::NAN);
    let busy0 = support::machine_busy_seconds();
    let t_kill = support::realtime_ns();
    kill(pid, Signal::SIGTERM).expect("SIGTERM");
    let closing_at: u128 = server
        .expect("CLOSING_AT", Duration::from_secs(60))
        .parse()
        .unwrap_or(0);
    let _done = server.expect("DONE", Duration::from_secs(60));
    let busy = support::machine_busy_seconds() - busy0;
    let cpu1: f64 = server
        .expect("CPU", Duration::from_secs(5))
        .parse()
        .unwrap_or(f64::NAN);
    let hwm: u64 = server
        .expect("HWM", Duration::from_secs(5))
        .parse()
        .unwrap_or(0);
    let server_clean = server.expect("CLEAN", Duration::from_secs(5));
    server.wait(Duration::from_secs(60));
    let t_exit = support::realtime_ns();
    let result = load.expect("RESULT", Duration::from_secs(120));
    load.wait(Duration::from_secs(30));
    let last: u128 = field(&result, "last").parse().unwrap_or(0);
    let first: u128 = field(&result, "first").parse().unwrap_or(0);
    let p50: u128 = field(&result, "p50").parse().unwrap_or(0);
    let p90: u128 = field(&result, "p90").parse().unwrap_or(0);
    let p99: u128 = field(&result, "p99").parse().unwrap_or(0);
    let clean: usize = field(&result, "clean").parse().unwrap_or(0);
    let client_cpu_s = field(&result, "cpu").parse::<f64>().unwrap_or(f64::NAN) - client_cpu0;
    let cpu_s = cpu1 - cpu0;
    let not_clean = ["close_then_error", "other_close", "no_close", "error"]
        .iter()
        .filter(|k| field(&result, k) != "0")
        .map(|k| format!("{k}={}", field(&result, k)))
        .collect::<Vec<_>>()
        .join(" ");
    Run {
        mode,
        n,
        opened,
        clean,
        not_clean,
        drain_ms: ms_between(closing_at, last),
        sigterm_ms: ms_between(t_kill, last),
        first_ms: ms_between(t_kill, first),
        p50_ms: ms_between(t_kill, p50),
        p90_ms: ms_between(t_kill, p90),
        p99_ms: ms_between(t_kill, p99),
        exit_ms: ms_between(t_kill, t_exit),
        cpu_s,
        client_cpu_s,
        other_cpu_s: (busy - cpu_s - client_cpu_s).max(0.0),
        hwm,
        rss_per_session: (rss_n as f64 - rss0 as f64) / n as f64,
        server_clean,
        load: load_before,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        len if len % 2 == 1 => v[len / 2],
        len => (v[len / 2 - 1] + v[len / 2]) / 2.0,
    }
}

fn orchestrate(args: &[String]) -> ExitCode {
    let mut sessions: Vec<usize> = std::env::var("WSDRAIN_BENCH_SESSIONS")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 19_000]);
    let mut rounds = 2;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => {
                sessions = vec![1_000];
                rounds = 1;
            }
            "--sessions" => {
                sessions = it
                    .next()
                    .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
                    .unwrap_or_default();
            }
            "--rounds" => rounds = it.next().and_then(|v| v.parse().ok()).unwrap_or(rounds),
            "--list" => return ExitCode::SUCCESS,
            _ => {} // `--bench` from cargo, criterion-style filters: ignored.
        }
    }
    println!("drain_scale: {}", support::machine());
    println!(
        "sessions {sessions:?}, {rounds} round(s) of closeall/graceful (ABBA order), read_buffer_size {} on both sides",
        support::READ_BUFFER
    );
    let mut runs = Vec::new();
    for &n in &sessions {
        for round in 0..rounds {
            let order: [&'static str; 2] = if round % 2 == 0 {
                ["closeall", "graceful"]
            } else {
                ["graceful", "closeall"]
            };
            for mode in order {
                let run = run_once(mode, n);
                println!(
                    "  {mode:8} N={n:5}: closing→last close {:7.1} ms, SIGTERM→last {:7.1} ms, CPU server {:.2} s client {:.2} s others {:.2} s, clean {}/{} {} ({})",
                    run.drain_ms,
                    run.sigterm_ms,
                    run.cpu_s,
                    run.client_cpu_s,
                    run.other_cpu_s,
                    run.clean,
                    run.opened,
                    run.not_clean,
                    run.load
                );
                runs.push(run);
            }
        }
    }
    println!(
        "\n| mode | N | clean 1001 handshakes (client) | server clean | Closing→last close ms | SIGTERM→last close ms | SIGTERM→client Close first / p50 / p90 / p99 ms | SIGTERM→exit ms | server CPU s | closes per CPU-s | client CPU s | others' CPU s | peak RSS MiB | RSS B/session | load before |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &runs {
        println!(
            "| {} | {} | {}/{} {} | {} | {:.0} | {:.0} | {:.0} / {:.0} / {:.0} / {:.0} | {:.0} | {:.2} | {:.0} | {:.2} | {:.2} | {:.1} | {:.0} | {} |",
            r.mode,
            r.n,
            r.clean,
            r.n,
            r.not_clean,
            r.server_clean,
            r.drain_ms,
            r.sigterm_ms,
            r.first_ms,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.exit_ms,
            r.cpu_s,
            r.clean as f64 / r.cpu_s,
            r.client_cpu_s,
            r.other_cpu_s,
            r.hwm as f64 / 1048576.0,
            r.rss_per_session,
            r.load
        );
    }
    println!(
        "\nmedians and ratios graceful / closeall (targets: time and CPU <= 1.1, every session clean):"
    );
    println!(
        "| N | Closing→last close ms (closeall / graceful / ratio) | SIGTERM→last close ms | server CPU s | closes per CPU-s | RSS B/session (graceful − closeall) |"
    );
    println!("|---|---|---|---|---|---|");
    for &n in &sessions {
        let m = |mode: &str, f: fn(&Run) -> f64| {
            median(
                runs.iter()
                    .filter(|r| r.n == n && r.mode == mode)
                    .map(f)
                    .collect(),
            )
        };
        let row = |f: fn(&Run) -> f64| {
            let (b, g) = (m("closeall", f), m("graceful", f));
            format!("{b:.0} / {g:.0} / {:.3}", g / b)
        };
        let per_cpu = |r: &Run| r.clean as f64 / r.cpu_s;
        let cpu = m("closeall", |r| r.cpu_s);
        let gcpu = m("graceful", |r| r.cpu_s);
        println!(
            "| {n} | {} | {} | {cpu:.2} / {gcpu:.2} / {:.3} | {:.0} / {:.0} | {:+.0} |",
            row(|r| r.drain_ms),
            row(|r| r.sigterm_ms),
            gcpu / cpu,
            m("closeall", per_cpu),
            m("graceful", per_cpu),
            m("graceful", |r| r.rss_per_session) - m("closeall", |r| r.rss_per_session),
        );
    }
    let all_clean = runs.iter().all(|r| r.clean == r.n);
    println!(
        "\nevery session a clean 1001 handshake: {}",
        if all_clean { "yes" } else { "NO" }
    );
    ExitCode::SUCCESS
}
