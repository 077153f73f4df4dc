//! The shape matrix: every session shape applications write, on both stacks
//! (axum, tokio-tungstenite), in a real process drained by a real SIGTERM,
//! with well-behaved peers (tokio-tungstenite clients) and silent peers
//! (raw sockets that never answer the Close).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Ending, RawWs, Server, close_payload, hint_ms, read_to_end, ws_connect};
use nix::sys::signal::Signal;

const SHAPES: [&str; 7] = [
    "owned-reader",
    "owned-push",
    "split-chat",
    "push-spawned",
    "push-sleepy",
    "hub",
    "early-return",
];
const CLIENTS: usize = 8;
const SILENT: usize = 2;
const CLOSE_WINDOW: Duration = Duration::from_secs(1);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// What a loaded 2-core machine may add to any moment; the deadline (18 s)
/// stays far beyond every bound.
const SLACK: Duration = Duration::from_millis(1500);
const ENV: [(&str, &str); 4] = [
    ("WSDRAIN_DRAIN_DELAY", "0s"),
    ("WSDRAIN_CLOSE_WINDOW", "1s"),
    ("WSDRAIN_CLOSE_TIMEOUT", "1s"),
    ("WSDRAIN_GRACE_PERIOD", "20s"),
];

/// One shape on one stack; returns what went wrong, if anything.
async fn drain_shape(stack: &str, shape: &str) -> Result<(), String> {
    let mut server = Server::start("shapes", &ENV, &["--stack", stack, "--shape", shape]);
    let addr = server.addr;
    let mut good = Vec::new();
    for _ in 0..CLIENTS {
        good.push(tokio::spawn(read_to_end(ws_connect(addr).await)));
    }
    let mut silent = Vec::new();
    for _ in 0..SILENT {
        let mut raw = RawWs::connect(addr, "/ws").await;
        silent.push(tokio::spawn(async move {
            // Reads (so the server can write) but never answers the Close.
            let mut close = None;
            while let Some((op, payload)) = raw.read_frame().await {
                if op == 8 && close.is_none() {
                    close = Some((close_payload(&payload), Instant::now()));
                }
            }
            (close, Instant::now())
        }));
    }
    let started = std::iter::from_fn(|| server.lines.recv_timeout(Duration::from_secs(10)).ok())
        .filter(|l| l == "session")
        .take(CLIENTS + SILENT)
        .count();
    if started != CLIENTS + SILENT {
        return Err(format!("only {started} sessions started"));
    }

    let t0 = Instant::now();
    server.signal(Signal::SIGTERM);
    for client in good {
        match tokio::time::timeout(Duration::from_secs(10), client).await {
            Ok(Ok(Ending::Closed { code, reason, at })) => {
                if code != 1001 || hint_ms(&reason).is_none() {
                    return Err(format!("client closed with {code} {reason:?}"));
                }
                if at - t0 > CLOSE_WINDOW + SLACK {
                    return Err(format!("client closed {:?} after SIGTERM", at - t0));
                }
            }
            other => return Err(format!("client ended {other:?}")),
        }
    }
    for peer in silent {
        let (close, eof) = tokio::time::timeout(Duration::from_secs(10), peer)
            .await
            .map_err(|_| "a silent peer was never dropped".to_string())?
            .unwrap();
        let Some(((code, reason), at)) = close else {
            return Err("a silent peer got no Close".into());
        };
        if code != 1001 || hint_ms(&reason).is_none() {
            return Err(format!("silent peer closed with {code} {reason:?}"));
        }
        let held = eof - at;
        if held < CLOSE_TIMEOUT - Duration::from_millis(100) || held > CLOSE_TIMEOUT + SLACK {
            return Err(format!("silent peer dropped {held:?} after its Close"));
        }
    }
    let (code, took) = server.wait_exit(Duration::from_secs(15));
    if code != Some(0) {
        return Err(format!("exit code {code:?}"));
    }
    // The turns (≤ window), the silent peers' handshakes (close_timeout), and
    // for handlers that cannot learn of their close, one more close_timeout.
    let bound = CLOSE_WINDOW + 2 * CLOSE_TIMEOUT + 2 * SLACK;
    if took > bound {
        return Err(format!("exit {took:?} after SIGTERM (bound {bound:?})"));
    }
    let rest = server.rest();
    let report = rest
        .iter()
        .find(|l| l.starts_with("drained: "))
        .ok_or("no drain report")?;
    let want = [
        format!(" {} sessions at closing,", CLIENTS + SILENT),
        format!(" {CLIENTS} clean,"),
        format!(" {SILENT} timed out,"),
        " 0 forced".to_string(),
    ];
    if let Some(missing) = want.iter().find(|w| !report.contains(w.as_str())) {
        return Err(format!("report lacks {missing:?}: {report}"));
    }
    // Every handler that learns of its close within close_timeout runs the
    // code after its socket loop; the sleepy pusher cannot, and is cut.
    let cleanups = if shape == "push-sleepy" {
        0
    } else {
        CLIENTS + SILENT
    };
    let line = format!("cleanups: {cleanups}");
    if !rest.contains(&line) {
        return Err(format!("wanted {line:?}, got {rest:?}"));
    }
    Ok(())
}

/// Runs every shape of `stack` at once, each on its own thread and runtime.
fn matrix(stack: &str) {
    let failures: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = SHAPES
            .iter()
            .map(|&shape| {
                scope.spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(drain_shape(stack, shape))
                        .map_err(|e| format!("{stack}/{shape}: {e}"))
                })
            })
            .collect();
        runs.into_iter()
            .filter_map(|r| r.join().unwrap().err())
            .collect()
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_shape_drains_on_axum() {
    matrix("axum");
}

#[test]
fn every_shape_drains_on_tungstenite() {
    matrix("tungstenite");
}
