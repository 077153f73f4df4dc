//! How evenly a drain spreads closes and reconnects: N sessions in one
//! process (default 1,000), window 5 s, hints 1–5 s. Prints peak and mean per
//! 100 ms of the closes the clients saw, and of the moments they would come
//! back (close + hint, with and without the client jitter of
//! docs/PROTOCOL.md), next to what independent random hints would give.
//!
//! Run with `cargo bench -p wsdrain-benches --bench close_spread [-- SESSIONS]`.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use wsdrain::{DrainController, DrainPolicy, protocol::CloseHint};

mod support;

const BIN: f64 = 0.1;

/// (peak, mean) per 100 ms bin over the span from the first to the last moment.
fn smoothness(moments: &[f64]) -> (usize, f64) {
    let first = moments.iter().copied().fold(f64::INFINITY, f64::min);
    let last = moments.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let bins = (((last - first) / BIN).floor() as usize) + 1;
    let mut counts = vec![0usize; bins];
    for m in moments {
        counts[(((m - first) / BIN).floor() as usize).min(bins - 1)] += 1;
    }
    let peak = counts.iter().copied().max().unwrap_or(0);
    (peak, moments.len() as f64 / bins as f64)
}

fn row(name: &str, moments: &[f64]) {
    let (peak, mean) = smoothness(moments);
    println!(
        "{name:<44} {peak:>6} {mean:>8.2} {:>8.2}",
        peak as f64 / mean
    );
}

#[tokio::main]
async fn main() {
    support::raise_nofile_limit();
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let policy = DrainPolicy::builder()
        .kubernetes(false)
        .close_window(Duration::from_secs(5))
        .min_close_rate(1)
        .close_timeout(Duration::from_secs(2))
        .grace_period(Duration::from_secs(20))
        .build()
        .expect("policy");
    let (min, max) = (policy.retry_after_min(), policy.retry_after_max());
    let controller = std::sync::Arc::new(DrainController::new(policy));
    let app = support::graceful_router(controller.drain(), Some(support::READ_BUFFER));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let c = controller.clone();
    let server = tokio::spawn(async move { wsdrain::serve(listener, app, &c).await });

    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("connect");
        clients.push(tokio::spawn(async move {
            let mut ws = ws;
            let mut seen = None;
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Close(Some(frame)) = msg {
                    seen = Some((Instant::now(), CloseHint::parse(&frame.reason)));
                }
            }
            seen
        }));
    }
    let t0 = Instant::now();
    controller.begin();
    let mut closes = Vec::new();
    let mut back = Vec::new();
    let mut back_jittered = Vec::new();
    let mut back_old_jitter = Vec::new();
    let mut back_random = Vec::new();
    for c in clients {
        let Some((at, Some(hint))) = c.await.expect("client") else {
            panic!("a session ended without a hinted Close");
        };
        let t = at.duration_since(t0).as_secs_f64();
        let h = hint.retry_after().as_secs_f64();
        closes.push(t);
        back.push(t + h);
        back_jittered.push(t + h + fastrand::f64() * (h / 50.0).max(0.05));
        back_old_jitter.push(t + h + fastrand::f64() * (h / 10.0).max(0.25));
        back_random.push(t + min.as_secs_f64() + fastrand::f64() * (max - min).as_secs_f64());
    }
    let report = server.await.expect("server").expect("serve");
    println!("{n} sessions, window 5 s, hints {min:?}-{max:?}; {report}");
    println!(
        "{:<44} {:>6} {:>8} {:>8}",
        "per 100 ms", "peak", "mean", "ratio"
    );
    row("closes seen by clients", &closes);
    row("reconnect moments: close + hint", &back);
    row("  ... + client jitter max(50 ms, h/50)", &back_jittered);
    row("  ... + client jitter max(250 ms, h/10)", &back_old_jitter);
    row("  (independent random hints, for comparison)", &back_random);
}
