//! Misbehaving peers and handlers: every drain still ends by its deadline, and
//! every other session still closes cleanly with 1001 and a hint.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    os::unix::process::ExitStatusExt,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    extract::ws::{Message, Utf8Bytes},
    routing::get,
};
use common::{
    Ending, InProc, RawWs, Refused, Server, UPGRADE, close_payload, echo_router, eventually,
    hint_ms, http, quick_policy, read_to_end, ws_connect,
};
use nix::{sys::signal::Signal, unistd::Pid};
use tokio::{io::AsyncWriteExt, net::TcpStream, task::JoinHandle, time::timeout};
use wsdrain::{GracefulSocket, GracefulUpgrade};

const GRACE: Duration = Duration::from_secs(6);
/// The forced end: `GRACE` less the policy's default 2 s margin.
const DEADLINE: Duration = Duration::from_secs(4);
/// What `serve` gives open HTTP connections after Closed: half the margin.
const LINGER: Duration = Duration::from_secs(1);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Short timings for the process tests: the forced end comes 4 s after SIGTERM.
const FAULTS: &[(&str, &str)] = &[
    ("WSDRAIN_DRAIN_DELAY", "0"),
    ("WSDRAIN_CLOSE_WINDOW", "500ms"),
    ("WSDRAIN_CLOSE_TIMEOUT", "1s"),
    ("WSDRAIN_GRACE_PERIOD", "6s"),
    ("WSDRAIN_RETRY_AFTER_MIN", "300ms"),
    ("WSDRAIN_RETRY_AFTER_MAX", "900ms"),
];

/// `n` well-behaved tokio-tungstenite sessions, each read to its end.
async fn well_behaved(addr: std::net::SocketAddr, n: usize) -> Vec<JoinHandle<Ending>> {
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(tokio::spawn(read_to_end(ws_connect(addr).await)));
    }
    clients
}

/// Each session ended with a Close 1001 carrying a hint in the configured range.
async fn assert_closed_1001(
    clients: Vec<JoinHandle<Ending>>,
    hints: std::ops::RangeInclusive<u64>,
) {
    for c in clients {
        let ending = timeout(Duration::from_secs(30), c).await.unwrap().unwrap();
        match ending {
            Ending::Closed { code, reason, .. } => {
                assert_eq!(code, 1001, "{reason}");
                let hint = hint_ms(&reason).unwrap_or_else(|| panic!("no hint in {reason:?}"));
                assert!(hints.contains(&hint), "{hint}");
            }
            other => panic!("a well-behaved session ended abnormally: {other:?}"),
        }
    }
}

/// SIGTERM already sent at `t0`: the drain ends before its deadline (no
/// forced end) and the process exits 0 at most `serve`'s linger after it;
/// returns its drain report line.
async fn exits_by_deadline(server: Server, t0: Instant) -> String {
    let (code, server) = tokio::task::spawn_blocking(move || {
        let mut server = server;
        // Past the grace period the kubelet would kill it: a failure, not a hang.
        let limit = GRACE.saturating_sub(t0.elapsed());
        let (code, _) = server.wait_exit(limit);
        (code, server)
    })
    .await
    .unwrap();
    let took = t0.elapsed();
    assert_eq!(code, Some(0), "exit status");
    let report = server
        .rest()
        .into_iter()
        .find_map(|l| l.strip_prefix("drained: ").map(str::to_owned))
        .expect("a drain report");
    assert!(
        !report.contains("(forced end"),
        "the drain ran to its deadline: {report}"
    );
    assert!(
        took < DEADLINE + LINGER,
        "exited {took:?} after SIGTERM, past the deadline ({DEADLINE:?}) and the linger: {report}"
    );
    eprintln!("exit 0 after {took:?}: {report}");
    report
}

/// Reads frames to the end of the stream; returns the Close payloads seen.
async fn closes_until_eof(ws: &mut RawWs, limit: Duration) -> Vec<Vec<u8>> {
    let mut closes = Vec::new();
    let end = timeout(limit, async {
        while let Some((opcode, payload)) = ws.read_frame().await {
            if opcode == 8 {
                closes.push(payload);
            }
        }
    })
    .await;
    assert!(
        end.is_ok(),
        "the server kept the connection open past {limit:?}"
    );
    closes
}

fn assert_hinted_1001(payload: &[u8]) {
    let (code, reason) = close_payload(payload);
    assert_eq!(code, 1001, "{reason}");
    assert!(hint_ms(&reason).is_some(), "no hint in {reason:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_cannot_hold_the_process() {
    let server = Server::start("echo", FAULTS, &[]);
    let addr = server.addr;
    let clients = well_behaved(addr, 10).await;

    // Large messages to be echoed, never read: the server's echo writes fill
    // the socket buffers and block, so it stops reading, and so do our writes.
    let mut stuck = RawWs::connect(addr, "/ws").await;
    let payload = vec![0x55u8; 1 << 20];
    let mut sent = 0;
    while timeout(Duration::from_secs(1), stuck.send_frame(2, &payload))
        .await
        .is_ok()
    {
        sent += 1;
        assert!(sent < 1024, "the server never stopped reading");
    }
    assert!(sent >= 2, "blocked after {sent} MiB");
    eprintln!("the server stopped reading after {sent} MiB");

    let t0 = Instant::now();
    server.signal(Signal::SIGTERM);
    assert_closed_1001(clients, 300..=900).await;
    let report = exits_by_deadline(server, t0).await;
    assert!(report.contains("10 clean"), "{report}");
    assert!(report.contains(" 0 forced"), "{report}");
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_answers_close_with_garbage_is_dropped() {
    let server = Server::start("echo", FAULTS, &[]);
    let addr = server.addr;
    let clients = well_behaved(addr, 10).await;
    let mut rude = RawWs::connect(addr, "/ws").await;
    let rude = tokio::spawn(async move {
        let close = loop {
            match rude.read_frame().await {
                Some((8, payload)) => break payload,
                Some(_) => {}
                None => panic!("no Close before the end of the stream"),
            }
        };
        // Not a frame: every RSV bit and a reserved opcode.
        let _ = rude.stream.write_all(&[0xff; 64]).await;
        let more = closes_until_eof(&mut rude, CLOSE_TIMEOUT * 3).await;
        (close, more)
    });

    let t0 = Instant::now();
    server.signal(Signal::SIGTERM);
    let (close, more) = rude.await.unwrap();
    assert_hinted_1001(&close);
    assert!(
        more.len() <= 1,
        "{} more Close frames after the garbage",
        more.len()
    );
    assert_closed_1001(clients, 300..=900).await;
    let report = exits_by_deadline(server, t0).await;
    assert!(report.contains("10 clean"), "{report}");
    assert!(report.contains(" 0 forced"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_keeps_sending_after_close_is_cut_at_close_timeout() {
    let server = Server::start("echo", FAULTS, &[]);
    let addr = server.addr;
    let clients = well_behaved(addr, 10).await;
    let mut chatty = RawWs::connect(addr, "/ws").await;
    let chatty = tokio::spawn(async move {
        let close = loop {
            match chatty.read_frame().await {
                Some((8, payload)) => break payload,
                Some(_) => {}
                None => panic!("no Close before the end of the stream"),
            }
        };
        let got_close = Instant::now();
        // Data frames instead of the Close the server waits for, until it hangs up.
        let (mut reader, mut writer) = chatty.stream.into_split();
        let writer = tokio::spawn(async move {
            let frame = [
                0x81u8,
                0x85,
                1,
                2,
                3,
                4,
                b'h' ^ 1,
                b'e' ^ 2,
                b'l' ^ 3,
                b'l' ^ 4,
                b'o' ^ 1,
            ];
            while writer.write_all(&frame).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let mut sink = Vec::new();
        let read = timeout(
            CLOSE_TIMEOUT * 3,
            tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut sink),
        )
        .await;
        writer.abort();
        assert!(
            read.is_ok(),
            "the server kept reading data frames past its close timeout"
        );
        // Whatever came after the Close must not be another Close.
        let mut rest = sink.as_slice();
        while rest.len() >= 2 {
            assert_ne!(rest[0] & 0x0f, 8, "a second Close frame");
            let len = (rest[1] & 0x7f) as usize;
            assert!(len < 126, "unexpected large frame after Close");
            rest = &rest[(2 + len).min(rest.len())..];
        }
        (close, got_close.elapsed())
    });

    let t0 = Instant::now();
    server.signal(Signal::SIGTERM);
    let (close, hung_up_after) = chatty.await.unwrap();
    assert_hinted_1001(&close);
    // The server waited for our Close about `close_timeout`, not less.
    assert!(
        hung_up_after >= CLOSE_TIMEOUT / 2,
        "hung up after {hung_up_after:?}"
    );
    assert_closed_1001(clients, 300..=900).await;
    let report = exits_by_deadline(server, t0).await;
    assert!(report.contains("10 clean"), "{report}");
    assert!(report.contains(" 0 forced"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_hangs_up_instead_of_answering_is_not_counted_clean() {
    let server = InProc::start(quick_policy().build().unwrap(), echo_router()).await;
    let clients = well_behaved(server.addr, 5).await;
    let mut rude = RawWs::connect(server.addr, "/ws").await;
    let drain = server.drain.clone();
    eventually("6 sessions", Duration::from_secs(5), || {
        drain.sessions() == 6
    })
    .await;
    server.controller.begin();
    let close = loop {
        match timeout(Duration::from_secs(5), rude.read_frame())
            .await
            .unwrap()
        {
            Some((8, payload)) => break payload,
            Some(_) => {}
            None => panic!("no Close"),
        }
    };
    assert_hinted_1001(&close);
    drop(rude);
    assert_closed_1001(clients, 200..=800).await;
    let report = server.report().await;
    assert_eq!(report.closed_clean, 5, "{report}");
    assert_eq!(report.closed_by_peer + report.timed_out, 1, "{report}");
    assert!(report.is_clean(), "{report}");
}

/// Dribbles `head` one byte at a time, `gap` apart, then (if it got through)
/// reads the response status; ends when the server hangs up.
async fn dribble(addr: std::net::SocketAddr, head: Vec<u8>, gap: Duration) -> Option<u16> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    for b in head {
        s.write_all(&[b]).await.ok()?;
        tokio::time::sleep(gap).await;
    }
    let mut buf = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf).await;
    String::from_utf8_lossy(&buf)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
}

fn upgrade_head(addr: std::net::SocketAddr) -> Vec<u8> {
    let mut req = format!("GET /ws HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in UPGRADE {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// A request head that never ends (one header, dribbled forever).
fn endless_head(addr: std::net::SocketAddr) -> Vec<u8> {
    let mut head = format!("GET /ws HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ").into_bytes();
    head.extend(std::iter::repeat_n(b'a', 10_000));
    head
}

async fn wait_phase(addr: std::net::SocketAddr, phase: &str) {
    let needle = format!(r#""phase":"{phase}""#);
    let start = Instant::now();
    while !http(addr, "/readyz", &[]).await.body.contains(&needle) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "never reached {phase}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upgrade_requests_during_draining_and_closing() {
    let env = [
        ("WSDRAIN_DRAIN_DELAY", "1s"),
        ("WSDRAIN_CLOSE_WINDOW", "500ms"),
        ("WSDRAIN_CLOSE_TIMEOUT", "1s"),
        ("WSDRAIN_GRACE_PERIOD", "6s"),
        ("WSDRAIN_RETRY_AFTER_MIN", "300ms"),
        ("WSDRAIN_RETRY_AFTER_MAX", "900ms"),
    ];
    let server = Server::start("echo", &env, &[]);
    let addr = server.addr;
    let clients = well_behaved(addr, 5).await;
    // A session that never answers Close keeps Closing open for `close_timeout`.
    let mut silent = RawWs::connect(addr, "/ws").await;
    let gap = Duration::from_millis(50);
    let mut endless = vec![tokio::spawn(dribble(addr, endless_head(addr), gap))];

    let t0 = Instant::now();
    server.signal(Signal::SIGTERM);
    wait_phase(addr, "draining").await;
    endless.push(tokio::spawn(dribble(addr, endless_head(addr), gap)));
    wait_phase(addr, "closing").await;
    endless.push(tokio::spawn(dribble(addr, endless_head(addr), gap)));
    // A complete upgrade, dribbled over ~150 ms, within Closing: refused with advice.
    let late = dribble(addr, upgrade_head(addr), Duration::from_millis(1)).await;
    assert_eq!(late, Some(503), "a slow upgrade completed during Closing");

    let close = timeout(Duration::from_secs(5), silent.read_frame())
        .await
        .unwrap()
        .expect("a Close for the silent session");
    assert_eq!(close.0, 8);
    assert_hinted_1001(&close.1);
    assert_closed_1001(clients, 300..=900).await;
    let report = exits_by_deadline(server, t0).await;
    assert!(report.contains("5 clean"), "{report}");
    assert!(report.contains(" 0 forced"), "{report}");
    // The process is gone, and the slow requests with it.
    for e in endless {
        let status = timeout(Duration::from_secs(2), e).await.unwrap().unwrap();
        assert_eq!(status, None, "an endless head got a response");
    }
}

/// What one connection of the race saw.
#[derive(Debug, Default)]
struct Tally {
    disconnected: usize,
    closed_once: usize,
    /// Of `closed_once`: upgraded after the drain had begun.
    late: usize,
    refused: usize,
    unreachable: usize,
}

const CYCLES: usize = 5_000;
const BEGIN_AT: usize = 2_500;

async fn cycle(
    addr: std::net::SocketAddr,
    count: Arc<AtomicUsize>,
    begun: Arc<AtomicBool>,
    controller: Arc<wsdrain::DrainController>,
) -> Tally {
    let mut t = Tally::default();
    loop {
        let n = count.fetch_add(1, Ordering::SeqCst);
        if n >= CYCLES {
            return t;
        }
        if n == BEGIN_AT {
            controller.begin();
            begun.store(true, Ordering::SeqCst);
        }
        let late = begun.load(Ordering::SeqCst);
        let mut ws = match RawWs::try_connect(addr, "/ws").await {
            Ok(ws) => ws,
            Err(Refused::Status(503)) => {
                t.refused += 1;
                continue;
            }
            // The listener closes once the drain is over.
            Err(Refused::Io(_)) if late => {
                t.unreachable += 1;
                continue;
            }
            Err(e) => panic!("cycle {n}: upgrade failed: {e:?}"),
        };
        ws.send_frame(1, b"hi").await;
        let first = timeout(Duration::from_secs(10), ws.read_frame())
            .await
            .unwrap_or_else(|_| panic!("cycle {n}: neither echo nor Close"));
        let close = match first {
            // Not closing yet and the drain not begun: hang up ourselves.
            Some((1, _)) if !late && !begun.load(Ordering::SeqCst) => {
                t.disconnected += 1;
                continue;
            }
            // This session exists while the drain closes: it must get its Close.
            Some((1, _)) => loop {
                match timeout(Duration::from_secs(10), ws.read_frame()).await {
                    Ok(Some((8, payload))) => break payload,
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("cycle {n}: a session escaped the close"),
                    Err(_) => panic!("cycle {n}: no Close within 10 s"),
                }
            },
            Some((8, payload)) => payload,
            other => panic!("cycle {n}: unexpected {other:?}"),
        };
        assert_hinted_1001(&close);
        ws.send_frame(8, &close[..2]).await;
        let more = closes_until_eof(&mut ws, Duration::from_secs(10)).await;
        assert!(
            more.is_empty(),
            "cycle {n}: closed {} times",
            1 + more.len()
        );
        t.closed_once += 1;
        t.late += usize::from(late);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_disconnect_cycles_racing_the_start_of_closing() {
    let policy = quick_policy()
        .close_window(Duration::from_millis(200))
        .build()
        .unwrap();
    let server = InProc::start(policy, echo_router()).await;
    let count = Arc::new(AtomicUsize::new(0));
    let begun = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..32)
        .map(|_| {
            tokio::spawn(cycle(
                server.addr,
                count.clone(),
                begun.clone(),
                server.controller.clone(),
            ))
        })
        .collect();
    let mut total = Tally::default();
    for w in workers {
        let t = timeout(Duration::from_secs(60), w).await.unwrap().unwrap();
        total.disconnected += t.disconnected;
        total.closed_once += t.closed_once;
        total.late += t.late;
        total.refused += t.refused;
        total.unreachable += t.unreachable;
    }
    let report = server.report().await;
    eprintln!("{total:?}; {report}");
    assert_eq!(
        total.disconnected + total.closed_once + total.refused + total.unreachable,
        CYCLES,
        "{total:?}"
    );
    assert!(
        total.closed_once > 0,
        "no session raced the drain: {total:?}"
    );
    assert!(
        total.refused > 0,
        "no upgrade came after Closing: {total:?}"
    );
    assert!(report.is_clean(), "{report}");
    // A session counts clean only if its peer answered the Close (ours did).
    assert_eq!(
        report.closed_clean as usize, total.closed_once,
        "{report} / {total:?}"
    );
}

async fn bad_connect(addr: std::net::SocketAddr, path: &str) -> common::Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}"))
        .await
        .unwrap();
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_releases_its_session() {
    let router = echo_router()
        .route(
            "/panic-now",
            get(|u: GracefulUpgrade| async move {
                u.on_upgrade(|_socket| async move { panic!("handler panics at once") })
            }),
        )
        .route(
            "/panic-when-closing",
            get(|u: GracefulUpgrade| async move {
                // Push-only: panics at the `Closing` error, after its Close went out.
                u.on_upgrade(|mut socket| async move {
                    loop {
                        let tick = Message::Text(Utf8Bytes::from_static("tick"));
                        if socket.send(tick).await.is_err() {
                            panic!("handler panics at its close");
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            }),
        )
        .route(
            "/panic-at-close",
            get(|u: GracefulUpgrade| async move {
                u.on_upgrade(|mut socket| async move {
                    while let Some(Ok(_)) = socket.recv().await {}
                    panic!("handler panics after its close");
                })
            }),
        );
    let server = InProc::start(quick_policy().build().unwrap(), router).await;
    let addr = server.addr;
    let clients = well_behaved(addr, 5).await;
    let at_once = tokio::spawn(read_to_end(bad_connect(addr, "/panic-now").await));
    let at_close = tokio::spawn(read_to_end(bad_connect(addr, "/panic-at-close").await));
    let when_closing = tokio::spawn(read_to_end(bad_connect(addr, "/panic-when-closing").await));
    let ended = timeout(Duration::from_secs(5), at_once)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(ended, Ending::Abnormal(_)), "{ended:?}");
    let drain = server.drain.clone();
    eventually(
        "the panicked session is released",
        Duration::from_secs(5),
        || drain.sessions() == 7,
    )
    .await;

    server.controller.begin();
    assert_closed_1001(clients, 200..=800).await;
    assert_closed_1001(vec![at_close], 200..=800).await;
    assert_closed_1001(vec![when_closing], 200..=800).await;
    let report = server.report().await;
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.closed_clean, 7, "{report}");
    assert_eq!(drain.sessions(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_ignores_every_signal_is_cut_and_closed_for_it() {
    let router = echo_router()
        .route(
            "/bad",
            get(|u: GracefulUpgrade| async move {
                u.on_upgrade(|socket: GracefulSocket| async move {
                    // Holds the socket and never polls it.
                    let _socket = socket;
                    std::future::pending::<()>().await;
                })
            }),
        )
        .route(
            "/stubborn",
            get(|u: GracefulUpgrade| async move {
                // Pushes forever, ignoring every error (including Closing).
                u.on_upgrade(|mut socket| async move {
                    loop {
                        let _ = socket
                            .send(Message::Text(Utf8Bytes::from_static("tick")))
                            .await;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            }),
        );
    let server = InProc::start(quick_policy().build().unwrap(), router).await;
    let addr = server.addr;
    let close_timeout = server.controller.policy().close_timeout();
    let deadline = server.controller.policy().deadline();
    let clients = well_behaved(addr, 5).await;
    let ignoring = tokio::spawn(read_to_end(bad_connect(addr, "/bad").await));
    let stubborn = tokio::spawn(read_to_end(bad_connect(addr, "/stubborn").await));

    let t0 = Instant::now();
    server.controller.begin();
    assert_closed_1001(clients, 200..=800).await;
    match timeout(Duration::from_secs(30), ignoring)
        .await
        .unwrap()
        .unwrap()
    {
        Ending::Closed { code, reason, at } => {
            assert_eq!(code, 1001, "{reason}");
            assert!(hint_ms(&reason).is_some(), "{reason}");
            // The session task sends the Close at its turn, though the
            // handler never polls the socket.
            assert!(at - t0 < close_timeout, "closed after {:?}", at - t0);
        }
        other => panic!("the ignoring handler's session: {other:?}"),
    }
    assert_closed_1001(vec![stubborn], 200..=800).await;
    let report = server.report().await;
    assert!(report.is_clean(), "{report}");
    assert!(report.total < deadline, "{report}");
    // The handlers that cannot learn of their close are cut `close_timeout`
    // after it, and waited for until then.
    assert!(report.total >= close_timeout, "{report}");
    assert_eq!(report.closed_clean, 7, "{report}");
}

/// Kills the process if the test fails before it exits.
struct Reaper(std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `signals start-up`; with `hold`, its start-up waits after
/// `listen_for_signals` until a line arrives on stdin.
fn start_up(hold: bool) -> Reaper {
    let mut cmd = Command::new(common::example("signals"));
    cmd.arg("start-up");
    if hold {
        cmd.arg("--hold").stdin(Stdio::piped());
    } else {
        cmd.stdin(Stdio::null());
    }
    let child = cmd
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Reaper(child)
}

/// Waits for the exit (at most 15 s) and returns it with the rest of stdout.
fn exit_and_output(child: &mut Reaper, what: &str) -> (std::process::ExitStatus, String) {
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{what}: still running 15 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.0.stdout.take().unwrap(), &mut out).unwrap();
    (status, out)
}

/// A SIGTERM that arrives after `listen_for_signals` returned, while the
/// start-up is held before the runtime and the listener exist, is kept: the
/// process drains and exits 0.
#[test]
fn sigterm_during_start_up_exits_zero() {
    for round in 0..3 {
        let mut child = start_up(true);
        let mut stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert_eq!(line.trim(), "listening for signals", "round {round}");
        let pid = Pid::from_raw(child.0.id() as i32);
        nix::sys::signal::kill(pid, Signal::SIGTERM).unwrap();
        // Only now does the start-up go on: runtime, listener, serve.
        std::io::Write::write_all(&mut child.0.stdin.take().unwrap(), b"go\n").unwrap();
        child.0.stdout = Some(stdout.into_inner());
        let (status, out) = exit_and_output(&mut child, &format!("round {round}"));
        assert_eq!(status.code(), Some(0), "round {round}: {status:?} {out}");
        assert!(
            out.contains("drained: drain by SIGTERM"),
            "round {round}: {out}"
        );
    }
}

/// A SIGTERM at any moment of a start-up that listens first thing in `main`
/// (before any other thread exists) either comes before the handlers and
/// ends the process by the signal, or drains it: it is never lost (a lost
/// one leaves the process running, then exit code 3). The moments sweep
/// from the spawn to past the point where the handlers are in place, to
/// cross the registration itself.
#[test]
fn sigterm_at_any_moment_of_start_up_kills_or_drains_never_is_lost() {
    // How long a start-up takes to get its handlers in place, here and now.
    let mut ready = Duration::ZERO;
    for _ in 0..3 {
        let mut child = start_up(true);
        let t0 = Instant::now();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.0.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        ready = ready.max(t0.elapsed());
    }
    let rounds = 60u32;
    let (mut killed, mut drained) = (0, 0);
    for round in 0..rounds {
        let delay = ready * 3 / 2 * round / rounds;
        let mut child = start_up(false);
        std::thread::sleep(delay);
        nix::sys::signal::kill(Pid::from_raw(child.0.id() as i32), Signal::SIGTERM).unwrap();
        let what = format!("round {round} (SIGTERM {delay:?} after spawn)");
        let (status, out) = exit_and_output(&mut child, &what);
        if status.signal() == Some(Signal::SIGTERM as i32) {
            killed += 1;
        } else {
            assert_eq!(status.code(), Some(0), "{what}: {status:?} {out}");
            assert!(out.contains("drained: drain by SIGTERM"), "{what}: {out}");
            drained += 1;
        }
    }
    eprintln!("{killed} ended by the signal before the handlers, {drained} drained");
    assert!(drained > 0, "no SIGTERM came after the handlers: {ready:?}");
}
