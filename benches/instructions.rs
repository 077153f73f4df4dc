//! Instructions per echo round trip, server side, counted by callgrind:
//! `GracefulSocket` against raw axum `WebSocket`. Instruction counts do not
//! depend on what else runs on the machine, so this ratio is the
//! deterministic companion of the `throughput` bench's paired ratio.
//!
//! Run with `cargo bench -p wsdrain-benches --bench instructions` (needs `valgrind` on `PATH`,
//! about a minute). `-- --round-trips N` sets the measured round trips per
//! run (25,600 by default), `-- --repeat N` the runs per server (2), and
//! `-- --keep DIR` keeps the callgrind files for `callgrind_annotate`.
//! `cargo bench --no-run` only builds it, and run without `--bench` (as
//! `cargo test --benches` does) it does nothing.
//!
//! How it isolates the server: the bench binary starts itself as the echo
//! server (`__server raw|graceful`) under `valgrind --tool=callgrind`, and
//! is the load itself, natively, in this process. So only the server's
//! instructions are counted, and the clients' tungstenite work, the same in
//! both runs, does not dilute the ratio. The server runs tokio's
//! current-thread runtime (one thread, no work stealing or parking between
//! workers, which would make the count depend on timing). Connection setup
//! and warm-up are left out: the load opens its connections and warms them
//! up, then tells the server (a line on its stdin) to zero callgrind's
//! counters, runs exactly `round-trips` round trips (spread evenly over the
//! connections, each "send one 32 B text message, await its echo"), and
//! tells it to dump them. The server's stdin thread calls `mark_zero` and
//! `mark_dump`; callgrind dumps its counts when either is entered
//! (`--dump-before`, which also zeroes them), so dump part 2 is exactly the
//! measured window. (`--zero-before` is not used: with valgrind 3.19 it left
//! the runtime thread's counts in place, so the window would have held the
//! start-up too.) The count is user-space instructions of the whole server process
//! in that window (tokio's driver, hyper, tungstenite, axum, wsdrain); the
//! kernel's work in the system calls is not counted by callgrind.
//!
//! Both servers use `read_buffer_size(4096)` and `TCP_NODELAY`, as in the
//! `throughput` bench. The table gives the median instructions per round trip
//! over the runs, their spread, and the ratio wsdrain / raw (target ≤ 1.02).
//!
//! A second table counts a drain the same way, the deterministic companion
//! of `drain_scale`'s server CPU: `-- --drain-sessions N` (2,000 by default,
//! 0 to skip) idle sessions on the wsdrain server (drain delay 0, close
//! window 0) and on the hand-rolled close-all server of `drain_scale`; the
//! count runs from just before the drain begins (a `drain` line on the
//! server's stdin: `DrainController::begin`, or the close-all broadcast)
//! until every client has seen its connection end, plus 1 s for the
//! server's last work. It gives instructions per closed session and the
//! ratio wsdrain / close-all (target ≤ 1.1), and checks that every client
//! got `Close(1001, "…retry-after-ms=…")`.
//!
//! `-- --gate` (scripts/perf-gate) holds the ratios to ceilings and exits 1
//! past one (or without valgrind): round trip ≤ [`ROUND_TRIP_CEILING`] at
//! each connection count, drain ≤ [`DRAIN_CEILING`] with every session
//! closed clean. It runs 6,400 round trips once per server unless told
//! otherwise; the counts agree with longer runs within a few instructions.

use std::{
    io::{BufRead, BufReader, Write},
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use axum::serve::ListenerExt;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use wsdrain::{DrainController, DrainPolicy};

mod support;

/// Connection counts measured.
const CONNS: [usize; 2] = [1, 64];
/// Round trips per connection before the counters are zeroed.
const WARM_UP: usize = 20;
/// Bytes of each text message.
const MESSAGE: usize = 32;
/// `--gate`: instructions per round trip, wsdrain / raw axum (1.037 at 1
/// connection, 1.044 at 64 today; the goal is 1.02).
const ROUND_TRIP_CEILING: f64 = 1.05;
/// `--gate`: instructions per drained session, wsdrain / close-all (DESIGN's
/// target; 1.00 today).
const DRAIN_CEILING: f64 = 1.1;

// ---- the server (runs under callgrind) -------------------------------------

/// Callgrind dumps (and so zeroes) its counters when this is entered
/// (`--dump-before`).
#[inline(never)]
fn mark_zero() {
    std::hint::black_box(0x5a5a_u32);
}

/// Callgrind dumps its counters when this is entered (`--dump-before`).
#[inline(never)]
fn mark_dump() {
    std::hint::black_box(0xd0d0_u64);
}

fn nodelay(tcp: &mut tokio::net::TcpStream) {
    let _ = tcp.set_nodelay(true);
}

/// `__server raw|graceful|closeall`: prints `ADDR <addr>`, then serves `/ws`
/// echo. Lines on stdin: `zero`, `dump`, `drain` (each answered `ok`); EOF
/// ends the process. `drain` begins the drain (`graceful`: drain delay 0,
/// close window 0) or tells every close-all handler to close (`closeall`).
fn server(kind: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _enter = rt.enter();
    let listener = support::listener("127.0.0.1:0".parse().expect("addr")).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let policy = DrainPolicy::builder()
        .drain_delay(Duration::ZERO)
        .close_window(Duration::ZERO)
        .close_timeout(Duration::from_secs(30))
        .grace_period(Duration::from_secs(120))
        .build()
        .expect("policy");
    let controller: &'static DrainController = Box::leak(Box::new(DrainController::new(policy)));
    let closeall = support::CloseAll::default();
    let router = match kind {
        "raw" => support::raw_router(Some(support::READ_BUFFER)),
        "graceful" => support::graceful_router(controller.drain(), Some(support::READ_BUFFER)),
        "closeall" => closeall.router(Some(support::READ_BUFFER)),
        other => panic!("unknown server {other}"),
    };
    if kind == "graceful" {
        rt.spawn(async move {
            let _report = controller.run().await;
        });
    }
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut stdout = std::io::stdout();
        for line in stdin.lock().lines() {
            match line.as_deref() {
                Ok("zero") => mark_zero(),
                Ok("dump") => mark_dump(),
                Ok("drain") => {
                    controller.begin();
                    closeall.shutdown();
                }
                _ => break,
            }
            let _ = writeln!(stdout, "ok");
            let _ = stdout.flush();
        }
        std::process::exit(0);
    });
    println!("ADDR {addr}");
    let _ = std::io::stdout().flush();
    rt.block_on(async move {
        // Serves on through the drain: the count covers the sessions' closes.
        let _ = axum::serve(listener.tap_io(nodelay), router).await;
    });
}

// ---- the load and the report (native) --------------------------------------

struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    out_file: PathBuf,
}

impl Server {
    fn start(kind: &str, out_file: &Path) -> Server {
        let exe = std::env::current_exe().expect("current_exe");
        let mut child = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out_file.display()))
            .arg("--dump-before=*mark_zero*")
            .arg("--dump-before=*mark_dump*")
            .arg("--quiet")
            .arg(exe)
            .args(["__server", kind])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("valgrind (is it installed?)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Server {
            child,
            stdin,
            stdout,
            out_file: out_file.to_owned(),
        }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("server stdout");
        line.trim().to_owned()
    }

    fn addr(&mut self) -> SocketAddr {
        loop {
            let line = self.line();
            if let Some(addr) = line.strip_prefix("ADDR ") {
                return addr.parse().expect("server address");
            }
            assert!(!line.is_empty(), "server ended before listening");
        }
    }

    fn command(&mut self, what: &str) {
        writeln!(self.stdin, "{what}").expect("server stdin");
        self.stdin.flush().expect("server stdin");
        assert_eq!(self.line(), "ok", "server did not answer {what}");
    }

    /// Ends the server; returns the instructions counted between zero and dump.
    fn finish(mut self) -> u64 {
        drop(self.stdin);
        let _ = self.child.wait();
        // Part 1 is everything up to `mark_zero`, part 2 the measured
        // window up to `mark_dump`, the file without suffix the rest.
        let part = PathBuf::from(format!("{}.2", self.out_file.display()));
        let text = std::fs::read_to_string(&part).expect("callgrind dump");
        text.lines()
            .find_map(|l| {
                l.strip_prefix("totals:")
                    .or_else(|| l.strip_prefix("summary:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            })
            .expect("callgrind totals")
    }
}

async fn connect(addr: SocketAddr, n: usize) -> Vec<support::ClientWs> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(
            support::connect_from(Ipv4Addr::LOCALHOST, addr, Some(support::client_config()))
                .await
                .expect("connect"),
        );
    }
    conns
}

/// `per_conn` round trips on every connection at once.
async fn round_trips(conns: &mut Vec<support::ClientWs>, per_conn: usize) {
    let msg = Message::text("x".repeat(MESSAGE));
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
}

/// One run: instructions per round trip of server `kind` with `conns` connections.
fn run(
    rt: &tokio::runtime::Runtime,
    kind: &str,
    conns: usize,
    per_conn: usize,
    dir: &Path,
    id: usize,
) -> f64 {
    let out_file = dir.join(format!("callgrind.{kind}.c{conns}.{id}.out"));
    let mut server = Server::start(kind, &out_file);
    let addr = server.addr();
    let mut clients = rt.block_on(connect(addr, conns));
    rt.block_on(round_trips(&mut clients, WARM_UP));
    server.command("zero");
    rt.block_on(round_trips(&mut clients, per_conn));
    server.command("dump");
    drop(clients);
    let total = server.finish();
    total as f64 / (conns * per_conn) as f64
}

/// Reads until the server's Close, lets tungstenite answer it, then reads to
/// the end; true for `Close(1001, "…retry-after-ms=…")`.
async fn await_close(mut ws: support::ClientWs) -> bool {
    let mut clean = false;
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Close(frame)) => {
                clean = frame.as_ref().is_some_and(|f| {
                    u16::from(f.code) == 1001 && f.reason.contains("retry-after-ms=")
                });
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    clean
}

/// One drain: instructions per session of server `kind` (`graceful` or
/// `closeall`) closing `sessions` idle sessions at once; the count runs from
/// just before the drain begins until every client saw its connection end
/// (and 1 s more, for the server's last work).
fn drain_run(
    rt: &tokio::runtime::Runtime,
    kind: &str,
    sessions: usize,
    dir: &Path,
    id: usize,
) -> (f64, usize) {
    let out_file = dir.join(format!("callgrind.drain-{kind}.n{sessions}.{id}.out"));
    let mut server = Server::start(kind, &out_file);
    let addr = server.addr();
    let mut clients = rt.block_on(connect(addr, sessions));
    rt.block_on(round_trips(&mut clients, 1));
    server.command("zero");
    let ends: Vec<_> = clients
        .into_iter()
        .map(|ws| rt.spawn(await_close(ws)))
        .collect();
    server.command("drain");
    let clean = rt.block_on(async {
        let mut clean = 0;
        for end in ends {
            clean += usize::from(end.await.unwrap_or(false));
        }
        clean
    });
    std::thread::sleep(Duration::from_secs(1));
    server.command("dump");
    let total = server.finish();
    (total as f64 / sessions as f64, clean)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__server") {
        server(args.get(2).map_or("raw", String::as_str));
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --benches`: nothing to check without valgrind's count.
        return;
    }
    let gate = support::gate_mode();
    if Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map_or(true, |s| !s.success())
    {
        eprintln!("instructions: valgrind not found on PATH; skipped");
        // The gate cannot pass on a count it did not take.
        support::gate_exit(&[!gate]);
    }
    let (round_trips, repeat) = if gate { (6_400, 1) } else { (25_600, 2) };
    let round_trips: usize = arg(&args, "--round-trips").unwrap_or(round_trips);
    let repeat: usize = arg(&args, "--repeat").unwrap_or(repeat).max(1);
    let mut passed = Vec::new();
    let keep: Option<PathBuf> = arg(&args, "--keep");
    let drain_sessions: usize = arg(&args, "--drain-sessions").unwrap_or(2000);
    let dir = match &keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).expect("--keep directory");
            dir.clone()
        }
        None => {
            let dir =
                std::env::temp_dir().join(format!("wsdrain-instructions-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp directory");
            dir
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let start = Instant::now();
    println!(
        "instructions per echo round trip, server process only (callgrind), {MESSAGE} B text, \
         {round_trips} measured round trips per run, {repeat} runs per server, \
         current-thread server runtime ({})",
        support::machine()
    );
    println!(
        "| connections | raw axum instr/round trip (median; runs) | wsdrain instr/round trip (median; runs) | wsdrain adds | ratio wsdrain/raw | target |"
    );
    println!("|---|---|---|---|---|---|");
    for conns in CONNS {
        let per_conn = (round_trips / conns).max(1);
        let (mut raw, mut graceful) = (Vec::new(), Vec::new());
        for i in 0..repeat {
            // Alternating order, though the count does not depend on it.
            let order = if i % 2 == 0 {
                ["raw", "graceful"]
            } else {
                ["graceful", "raw"]
            };
            for kind in order {
                let v = run(&rt, kind, conns, per_conn, &dir, i);
                if kind == "raw" {
                    raw.push(v)
                } else {
                    graceful.push(v)
                }
            }
        }
        let runs = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (r, g) = (runs(&raw), runs(&graceful));
        let (mr, mg) = (median(&mut raw), median(&mut graceful));
        println!(
            "| {conns} | {mr:.0} ({r}) | {mg:.0} ({g}) | {:+.0} | {:.4} | <= 1.02 |",
            mg - mr,
            mg / mr
        );
        if gate {
            let name = format!("instructions_per_round_trip_ratio_{conns}_connections");
            passed.push(support::gate(&name, mg / mr, ROUND_TRIP_CEILING));
        }
    }
    if drain_sessions > 0 {
        println!(
            "\ninstructions per drained session, server process only (callgrind): {drain_sessions} idle sessions, \
             window 0, from the drain's start to every client's end, {repeat} runs per server"
        );
        println!(
            "| sessions | close-all instr/session (median; runs) | wsdrain instr/session (median; runs) | ratio wsdrain/close-all | clean 1001 | target |"
        );
        println!("|---|---|---|---|---|---|");
        let (mut closeall, mut graceful, mut clean) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..repeat {
            let order = if i % 2 == 0 {
                ["closeall", "graceful"]
            } else {
                ["graceful", "closeall"]
            };
            for kind in order {
                let (v, c) = drain_run(&rt, kind, drain_sessions, &dir, i);
                clean.push(c);
                if kind == "closeall" {
                    closeall.push(v)
                } else {
                    graceful.push(v)
                }
            }
        }
        let runs = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (c, g) = (runs(&closeall), runs(&graceful));
        let (mc, mg) = (median(&mut closeall), median(&mut graceful));
        let all_clean = clean.iter().all(|c| *c == drain_sessions);
        println!(
            "| {drain_sessions} | {mc:.0} ({c}) | {mg:.0} ({g}) | {:.4} | {} | <= 1.1 |",
            mg / mc,
            if all_clean { "all" } else { "NOT all" }
        );
        if gate {
            let not_clean = clean.iter().map(|c| drain_sessions - c).sum::<usize>();
            passed.push(support::gate(
                "instructions_per_drained_session_ratio",
                mg / mc,
                DRAIN_CEILING,
            ));
            passed.push(support::gate(
                "drained_sessions_not_clean",
                not_clean as f64,
                0.0,
            ));
        }
    }
    match keep {
        Some(dir) => println!("callgrind files kept in {}", dir.display()),
        None => {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    println!("took {:.0} s", start.elapsed().as_secs_f64());
    if gate {
        support::gate_exit(&passed);
    }
}
