//! The README's quickstart as a real process, written both ways the README
//! allows: as written (`listen_for_signals` in a plain `main`, then the
//! runtime) and inside `#[tokio::main]` (the runtime's threads exist before
//! the handlers). Each is drained by a real SIGINT and by a real SIGTERM:
//! `/readyz` turns 503 while `/livez` stays 200, the session gets its
//! `Close(1001, hint)`, the process exits 0 with the report naming the
//! signal. A second SIGINT forces the end at once.
//!
//! The binary is its own server (`__server plain|tokio-main`), so it has its
//! own `main` (`harness = false`).
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    process::{Command, ExitCode},
    time::{Duration, Instant},
};

use axum::{Router, extract::ws::Message, response::Response, routing::get};
use common::{RawWs, Server, close_payload, hint_ms, http};
use nix::sys::signal::Signal;
use tokio::time::timeout;
use wsdrain::{DrainController, DrainLayer, DrainPolicy, GracefulSocket, GracefulUpgrade};

// ---- the server: the README's quickstart -------------------------------

async fn ws(upgrade: GracefulUpgrade) -> Response {
    upgrade.on_upgrade(|mut socket: GracefulSocket| async move {
        // `recv` returns None after this session's drain close completed.
        while let Some(Ok(msg)) = socket.recv().await {
            if let Message::Text(_) | Message::Binary(_) = msg {
                if socket.send(msg).await.is_err() {
                    break; // closing: the Close already went out
                }
            }
        }
    })
}

/// What runs inside the runtime, the same both ways; it binds
/// 127.0.0.1:0 rather than :3000 and says where.
async fn serve(controller: &DrainController) -> Result<(), Box<dyn std::error::Error>> {
    let app = Router::new()
        .route("/ws", get(ws))
        .layer(DrainLayer::new(controller.drain())); // /readyz, /livez, gate
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on {}", listener.local_addr()?);
    let report = wsdrain::serve(listener, app, controller).await?;
    println!("drained: {report}");
    Ok(())
}

/// The quickstart as written: signals before the runtime's threads exist.
fn plain_main() -> Result<(), Box<dyn std::error::Error>> {
    let controller = DrainController::new(DrainPolicy::from_env()?);
    let _signals = controller.listen_for_signals()?;
    tokio::runtime::Runtime::new()?.block_on(serve(&controller))
}

/// The quickstart inside `#[tokio::main]`: signals after the runtime started.
#[tokio::main]
async fn tokio_main() -> Result<(), Box<dyn std::error::Error>> {
    let controller = DrainController::new(DrainPolicy::from_env()?);
    let _signals = controller.listen_for_signals()?;
    serve(&controller).await
}

// ---- the test ----------------------------------------------------------

const ENV: &[(&str, &str)] = &[
    ("WSDRAIN_DRAIN_DELAY", "200ms"),
    ("WSDRAIN_CLOSE_WINDOW", "100ms"),
    // Long enough that only our answer, or the second signal, ends the
    // session we hold open.
    ("WSDRAIN_CLOSE_TIMEOUT", "5s"),
    ("WSDRAIN_GRACE_PERIOD", "20s"),
    ("WSDRAIN_RETRY_AFTER_MIN", "300ms"),
    ("WSDRAIN_RETRY_AFTER_MAX", "900ms"),
];
/// Every wait ends by then, whatever the server does.
const GIVE_UP: Duration = Duration::from_secs(15);

fn start(flavor: &str) -> Server {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["__server", flavor]);
    for (k, v) in ENV {
        cmd.env(k, v);
    }
    Server::spawn(cmd)
}

/// The session is served (an echo comes back), then held open: returns the
/// raw client, which will not answer the Close unless told to.
async fn serving_session(addr: std::net::SocketAddr) -> RawWs {
    let mut ws = RawWs::connect(addr, "/ws").await;
    ws.send_frame(1, b"hello").await;
    let echo = timeout(GIVE_UP, ws.read_frame()).await.unwrap();
    assert_eq!(echo, Some((1, b"hello".to_vec())), "the echo");
    ws
}

/// The drain's Close for `ws` (bounded).
async fn the_close(ws: &mut RawWs) -> Vec<u8> {
    loop {
        match timeout(GIVE_UP, ws.read_frame()).await.expect("a Close") {
            Some((8, payload)) => return payload,
            Some(_) => {}
            None => panic!("the connection ended without a Close"),
        }
    }
}

/// Waits (bounded) for the exit; returns the drain report line.
fn exit_report(mut server: Server, what: &str) -> String {
    let (code, _) = server.wait_exit(GIVE_UP);
    assert_eq!(code, Some(0), "{what}: exit status");
    let rest = server.rest();
    rest.iter()
        .find_map(|l| l.strip_prefix("drained: ").map(str::to_owned))
        .unwrap_or_else(|| panic!("{what}: no drain report in {rest:?}"))
}

/// One signal drains the process: readiness, the session's close, the exit.
fn one_signal_drains(flavor: &str, signal: Signal) {
    let what = format!("{flavor}, {signal}");
    let server = start(flavor);
    let addr = server.addr;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut ws = serving_session(addr).await;
        assert_eq!(http(addr, "/readyz", &[]).await.status, 200, "{what}");
        server.signal(signal);
        let start = Instant::now();
        while http(addr, "/readyz", &[]).await.status != 503 {
            assert!(start.elapsed() < GIVE_UP, "{what}: /readyz never 503");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Our session is not over until we answer its Close: the drain is
        // still Closing, the process still alive.
        let close = the_close(&mut ws).await;
        let (code, reason) = close_payload(&close);
        assert_eq!(code, 1001, "{what}: {reason}");
        assert!(hint_ms(&reason).is_some(), "{what}: no hint in {reason:?}");
        let readyz = http(addr, "/readyz", &[]).await;
        assert_eq!(readyz.status, 503, "{what}");
        assert!(
            readyz.body.contains(r#""phase":"closing""#),
            "{what}: {readyz:?}"
        );
        assert_eq!(http(addr, "/livez", &[]).await.status, 200, "{what}");
        ws.send_frame(8, &close[..2]).await;
        assert_eq!(
            timeout(GIVE_UP, ws.read_frame()).await.unwrap(),
            None,
            "{what}: the server ends the connection after the handshake"
        );
    });
    let report = exit_report(server, &what);
    for want in [
        format!("drain by {signal}"),
        " 1 clean,".to_owned(),
        " 0 forced,".to_owned(),
    ] {
        assert!(report.contains(&want), "{what}: {want:?} in {report}");
    }
    assert!(!report.contains("forced end"), "{what}: {report}");
}

/// A second SIGINT, while a session holds the drain, forces the end at once.
fn a_second_sigint_forces_the_end(flavor: &str) {
    let what = format!("{flavor}, SIGINT twice");
    let server = start(flavor);
    let addr = server.addr;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _held = rt.block_on(async {
        let mut ws = serving_session(addr).await;
        server.signal(Signal::SIGINT);
        // Never answered: the session holds the drain for close_timeout (5 s).
        let close = the_close(&mut ws).await;
        assert_eq!(close_payload(&close).0, 1001, "{what}");
        ws
    });
    server.signal(Signal::SIGINT);
    let report = exit_report(server, &what);
    for want in [
        "drain by SIGINT",
        " 0 timed out,",
        " 1 forced,",
        "forced end by a second trigger",
    ] {
        assert!(report.contains(want), "{what}: {want:?} in {report}");
    }
}

/// A test of this binary: its name and what it runs.
type Case = (&'static str, Box<dyn FnOnce() + Send>);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let served = match args.as_slice() {
        ["__server", "plain"] => Some(plain_main()),
        ["__server", "tokio-main"] => Some(tokio_main()),
        _ => None,
    };
    if let Some(served) = served {
        return match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("quickstart: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.contains(&"--list") {
        return ExitCode::SUCCESS;
    }
    let cases: Vec<Case> = vec![
        (
            "plain_main_drains_on_sigint",
            Box::new(|| one_signal_drains("plain", Signal::SIGINT)),
        ),
        (
            "plain_main_drains_on_sigterm",
            Box::new(|| one_signal_drains("plain", Signal::SIGTERM)),
        ),
        (
            "tokio_main_drains_on_sigint",
            Box::new(|| one_signal_drains("tokio-main", Signal::SIGINT)),
        ),
        (
            "tokio_main_drains_on_sigterm",
            Box::new(|| one_signal_drains("tokio-main", Signal::SIGTERM)),
        ),
        (
            "tokio_main_second_sigint_forces_the_end",
            Box::new(|| a_second_sigint_forces_the_end("tokio-main")),
        ),
    ];
    let cases: Vec<_> = cases
        .into_iter()
        .filter(|(name, _)| common::selected(name))
        .collect();
    println!("\nrunning {} tests", cases.len());
    let start = Instant::now();
    // Each case is its own process; they run side by side.
    let results: Vec<(&str, bool)> = std::thread::scope(|scope| {
        let runs: Vec<_> = cases
            .into_iter()
            .map(|(name, case)| (name, scope.spawn(case)))
            .collect();
        runs.into_iter()
            .map(|(name, run)| (name, run.join().is_ok()))
            .collect()
    });
    for (name, ok) in &results {
        println!("test {name} ... {}", if *ok { "ok" } else { "FAILED" });
    }
    println!("took {:.1} s", start.elapsed().as_secs_f64());
    if results.iter().all(|(_, ok)| *ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
