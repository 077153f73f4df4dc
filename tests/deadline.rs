//! The forced end at the deadline, end to end: a real process on
//! `wsdrain::serve`, a real SIGTERM, real sockets on loopback. Everything
//! that can misbehave at once: a silent peer (never answers the Close), a
//! stuck stream (an SSE body that never reaches an event boundary), a
//! WebSocket handler that never returns, a custom session whose handler
//! ignores its turn and never returns, a plain HTTP request still in flight,
//! and an idle keep-alive connection. The process must end after the
//! deadline (the in-flight request and the custom session hold the drain
//! until then) plus `serve`'s bound for open HTTP connections, and before
//! the grace period, with every socket closed. Every wait is bounded: a
//! missing forced end fails the test instead of hanging it.
//!
//! The binary is its own server: run with `__server`, it serves the routes
//! below (that is what the test starts). `harness = false`, so it has its
//! own `main`.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    net::SocketAddr,
    process::{Command, ExitCode},
    time::{Duration, Instant},
};

use axum::{
    Extension, Router,
    body::Body,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use common::{Ending, RawWs, Server, close_payload, hint_ms, read_to_end};
use futures_util::{StreamExt, stream};
use nix::sys::signal::Signal;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};
use wsdrain::{Drain, DrainController, DrainLayer, DrainPolicy, GracefulUpgrade};

const GRACE: Duration = Duration::from_secs(5);
/// The policy's default margin: the forced end comes 3 s after SIGTERM.
const DEADLINE: Duration = Duration::from_secs(3);
/// What `serve` gives plain HTTP connections after Closed: half the margin.
const LINGER: Duration = Duration::from_secs(1);
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);
/// Every wait of the test ends by then, whatever the server does.
const GIVE_UP: Duration = Duration::from_secs(12);

// ---- the server --------------------------------------------------------

/// An SSE response that sends one event, then half of one, then nothing.
async fn stuck_stream() -> Response {
    let frames = stream::iter([
        Ok::<_, std::io::Error>("data: 1\n\n"),
        Ok("data: partial\n"),
    ])
    .chain(stream::pending());
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(frames),
    )
        .into_response()
}

/// A plain request whose handler never returns.
async fn slow() -> &'static str {
    println!("slow: in flight");
    std::future::pending().await
}

/// A custom session (a long poll) whose handler ignores its turn and never
/// returns: only the forced end releases it.
async fn long_poll(Extension(drain): Extension<Drain>) -> Response {
    let Ok(_session) = drain.register_session() else {
        return "refused".into_response();
    };
    println!("long-poll: in flight");
    std::future::pending().await
}

fn server() -> ExitCode {
    let policy = DrainPolicy::builder()
        .kubernetes(false)
        .drain_delay(Duration::ZERO)
        .close_window(Duration::from_millis(200))
        .close_timeout(CLOSE_TIMEOUT)
        .grace_period(GRACE)
        .retry_after(Duration::from_millis(300), Duration::from_millis(900))
        .build()
        .unwrap();
    assert_eq!(policy.deadline(), DEADLINE);
    assert_eq!(policy.deadline_margin() / 2, LINGER);
    let controller = DrainController::new(policy);
    let _signals = controller.listen_for_signals().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let app = Router::new()
            .route(
                "/ws",
                get(|u: GracefulUpgrade| async move { u.on_upgrade(common::echo) }),
            )
            .route(
                "/never",
                get(|u: GracefulUpgrade| async move {
                    u.on_upgrade(|socket| async move {
                        let _kept = socket;
                        std::future::pending::<()>().await;
                    })
                }),
            )
            .route("/stuck", get(stuck_stream))
            .route("/slow", get(slow))
            .route("/long-poll", get(long_poll))
            .route("/", get(|| async { "ok" }))
            .layer(DrainLayer::new(controller.drain()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening on {}", listener.local_addr().unwrap());
        let report = wsdrain::serve(listener, app, &controller).await.unwrap();
        println!("drained: {report}");
    });
    ExitCode::SUCCESS
}

// ---- the test ----------------------------------------------------------

/// Reads to the end of the connection (bounded); returns the bytes and when
/// the end came.
async fn to_eof(mut tcp: TcpStream, mut got: Vec<u8>) -> (Vec<u8>, Instant) {
    let read = timeout(GIVE_UP, tcp.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "a connection still open {GIVE_UP:?} later");
    (got, Instant::now())
}

/// Sends a GET for `path` and returns the connection.
async fn get_request(addr: SocketAddr, path: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    tcp
}

/// Reads until `needle` arrived (bounded); returns what was read.
async fn read_until(tcp: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    while !got.windows(needle.len()).any(|w| w == needle) {
        let n = timeout(GIVE_UP, tcp.read(&mut chunk))
            .await
            .expect("the response came")
            .unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..n]);
    }
    got
}

/// Waits (bounded) for the server's stdout line `want`.
fn wait_line(server: &Server, want: &str) {
    let end = Instant::now() + GIVE_UP;
    loop {
        let line = server
            .lines
            .recv_timeout(end.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no {want:?} from the server"));
        if line == want {
            return;
        }
    }
}

/// The silent peer: reads (so the server can write) and never answers the
/// Close; returns the Close, when it came, and when the server hung up.
async fn silent_peer(mut ws: RawWs) -> (Vec<u8>, Instant, Instant) {
    let mut close = None;
    let end = timeout(GIVE_UP, async {
        while let Some((op, payload)) = ws.read_frame().await {
            if op == 8 && close.is_none() {
                close = Some((payload, Instant::now()));
            }
        }
    })
    .await;
    assert!(
        end.is_ok(),
        "the silent peer still connected {GIVE_UP:?} later"
    );
    let (payload, at) = close.expect("the silent peer got a Close");
    (payload, at, Instant::now())
}

fn assert_hinted_1001(ending: Ending, what: &str, before: Instant) {
    match ending {
        Ending::Closed { code, reason, at } => {
            assert_eq!(code, 1001, "{what}: {reason}");
            assert!(hint_ms(&reason).is_some(), "{what}: no hint in {reason:?}");
            assert!(at < before, "{what}: closed only at the forced end");
        }
        other => panic!("{what}: {other:?}"),
    }
}

fn the_process_ends_at_the_deadline_with_every_socket_closed() {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.arg("__server");
    let mut server = Server::spawn(cmd);
    let addr = server.addr;
    let rt = tokio::runtime::Runtime::new().unwrap();

    let (polite, never, silent, stuck, idle) = rt.block_on(async {
        let polite = tokio::spawn(read_to_end(common::ws_connect(addr).await));
        let (never, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/never"))
            .await
            .unwrap();
        let never = tokio::spawn(read_to_end(never));
        let silent = tokio::spawn(silent_peer(RawWs::connect(addr, "/ws").await));
        let mut stuck = get_request(addr, "/stuck").await;
        let head = read_until(&mut stuck, b"data: partial\n").await;
        let stuck = tokio::spawn(to_eof(stuck, head));
        let mut idle = get_request(addr, "/").await;
        read_until(&mut idle, b"\r\n\r\nok").await;
        let idle = tokio::spawn(to_eof(idle, Vec::new()));
        (polite, never, silent, stuck, idle)
    });
    let slow = rt.block_on(get_request(addr, "/slow"));
    wait_line(&server, "slow: in flight");
    let slow = rt.spawn(to_eof(slow, Vec::new()));
    let long_poll = rt.block_on(get_request(addr, "/long-poll"));
    wait_line(&server, "long-poll: in flight");
    let long_poll = rt.spawn(to_eof(long_poll, Vec::new()));

    let t0 = Instant::now();
    server.signal(Signal::SIGTERM);
    // Bounded: without a forced end the process would run on; it is killed
    // and the test fails here.
    let (code, _) = server.wait_exit(GIVE_UP);
    let exited = Instant::now();
    let took = exited - t0;
    eprintln!("exit {code:?} {took:?} after SIGTERM");
    assert_eq!(code, Some(0), "exit status");
    assert!(
        took >= DEADLINE + LINGER,
        "exited {took:?} after SIGTERM: before the deadline ({DEADLINE:?}) and the linger ({LINGER:?})"
    );
    assert!(
        took < GRACE,
        "exited {took:?} after SIGTERM: past the grace period ({GRACE:?})"
    );
    let rest = server.rest();
    let report = rest
        .iter()
        .find_map(|l| l.strip_prefix("drained: "))
        .unwrap_or_else(|| panic!("no drain report in {rest:?}"));
    eprintln!("{report}");
    for want in [
        "drain by SIGTERM",
        " 5 sessions at closing,",
        " 2 clean,",
        " 2 timed out,",
        " 1 forced,",
        "forced end at the deadline",
    ] {
        assert!(report.contains(want), "{want:?} in {report}");
    }

    let deadline = t0 + DEADLINE;
    rt.block_on(async {
        let ending = |task: tokio::task::JoinHandle<Ending>| async {
            timeout(GIVE_UP, task).await.unwrap().unwrap()
        };
        assert_hinted_1001(ending(polite).await, "the echo session", deadline);
        assert_hinted_1001(ending(never).await, "the never-returning handler", deadline);

        let (close, at, eof) = timeout(GIVE_UP, silent).await.unwrap().unwrap();
        let (code, reason) = close_payload(&close);
        assert_eq!(code, 1001, "{reason}");
        assert!(hint_ms(&reason).is_some(), "{reason}");
        assert!(eof < deadline, "the silent peer was held to the forced end");
        assert!(
            eof - at >= CLOSE_TIMEOUT - Duration::from_millis(100),
            "the silent peer was dropped {:?} after its Close",
            eof - at
        );

        let (body, eof) = timeout(GIVE_UP, stuck).await.unwrap().unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(
            !body.contains("retry:") && !body.ends_with("0\r\n\r\n"),
            "the stuck stream got a clean end: {body:?}"
        );
        // A cut stays a cut: the connection ends with the process.
        assert!(eof >= deadline, "the stuck stream's connection ended early");

        for (what, task) in [("slow", slow), ("long-poll", long_poll), ("idle", idle)] {
            let (got, eof) = timeout(GIVE_UP, task).await.unwrap().unwrap();
            assert!(
                got.is_empty(),
                "{what}: {:?} after SIGTERM",
                String::from_utf8_lossy(&got)
            );
            assert!(eof >= deadline, "{what}: closed before the forced end");
            assert!(
                eof <= exited + Duration::from_secs(1),
                "{what}: open after the exit"
            );
        }
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "the listener outlived the process"
        );
    });
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("__server") {
        return server();
    }
    if args.iter().any(|a| a == "--list") {
        return ExitCode::SUCCESS;
    }
    let name = "the_process_ends_at_the_deadline_with_every_socket_closed";
    if !common::selected(name) {
        println!("\nrunning 0 tests");
        return ExitCode::SUCCESS;
    }
    println!("\nrunning 1 test");
    let start = Instant::now();
    the_process_ends_at_the_deadline_with_every_socket_closed();
    println!(
        "test {name} ... ok ({:.1} s)",
        start.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
