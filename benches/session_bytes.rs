//! Heap bytes wsdrain adds per session, counted exactly by a counting global
//! allocator.
//!
//! Run with `cargo bench --bench session_bytes` (`-- --quick` for fewer sessions).
//!
//! 1. Registration alone: live heap after `drain.register_session().expect("registered")` for N
//!    sessions, per session (the registry slot, amortised over the slot
//!    vector's growth, and the session's close signal).
//! 2. Everything wsdrain adds to a live WebSocket session: N idle echo
//!    sessions on raw axum, then N on `GracefulUpgrade`/`GracefulSocket`, both
//!    servers and the tokio-tungstenite clients in this process, the same
//!    `read_buffer_size` (4096) on every side. The clients and axum's own
//!    session cost are the same in both runs, so the difference of live heap,
//!    divided by N, is what wsdrain costs (registration + signal +
//!    `GracefulSocket` + the session task's additions). Target: ≤ 256 bytes.
//! 3. What a resumable session adds to that: N idle echo sessions on
//!    `ResumableUpgrade`/`ResumableSocket` following one stream (nothing is
//!    published), against the `GracefulSocket` run. Target: ≤ 512 bytes.

use std::{alloc::System, net::SocketAddr, time::Duration};

use cap::Cap;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use wsdrain::{
    DrainController, DrainPolicy,
    resume::{Feed, MemoryLog},
};

mod support;

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

fn live_heap() -> i64 {
    ALLOC.allocated() as i64
}

fn registration(n: usize) -> f64 {
    let controller = DrainController::new(DrainPolicy::default());
    let drain = controller.drain();
    let mut guards = Vec::with_capacity(n);
    let before = live_heap();
    for _ in 0..n {
        guards.push(drain.register_session().expect("registered"));
    }
    let after = live_heap();
    drop(guards);
    (after - before) as f64 / n as f64
}

async fn settle() {
    // Let the server tasks finish their work and free what they freed.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Live heap added by `n` idle sessions on the server at `addr` (and their clients).
async fn sessions_heap(addr: SocketAddr, n: usize) -> i64 {
    settle().await;
    let before = live_heap();
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let ws = support::connect_from(
            support::source_address(i, 10_000),
            addr,
            Some(support::client_config()),
        )
        .await
        .expect("connect");
        conns.push(ws);
    }
    // One round trip each: every session task is running and has read once.
    for ws in &mut conns {
        ws.send(Message::text("x")).await.expect("send");
        let echo = ws.next().await;
        assert!(matches!(echo, Some(Ok(Message::Text(_)))), "{echo:?}");
    }
    settle().await;
    let after = live_heap();
    for ws in &mut conns {
        let _ = ws.close(None).await;
    }
    for ws in &mut conns {
        while let Some(Ok(_)) = ws.next().await {}
    }
    drop(conns);
    settle().await;
    after - before
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`: nothing to list for criterion's tooling.
    }
    let n = if quick { 200 } else { 2_000 };
    support::raise_nofile_limit();
    println!("session_bytes: {}", support::machine());

    println!("\n1. registration (register_session, guard kept), live heap per session:");
    for count in [1_000, 10_000, 100_000] {
        println!("   {count:>7} sessions: {:.1} B", registration(count));
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rows = rt.block_on(async {
        let raw_listener = support::listener("127.0.0.1:0".parse().expect("addr")).expect("listen");
        let raw = raw_listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let router = support::raw_router(Some(support::READ_BUFFER));
            let _ = axum::serve(raw_listener, router).await;
        });
        let controller = DrainController::new(DrainPolicy::default());
        let graceful_listener =
            support::listener("127.0.0.1:0".parse().expect("addr")).expect("listen");
        let graceful = graceful_listener.local_addr().expect("addr");
        let router = support::graceful_router(controller.drain(), Some(support::READ_BUFFER));
        tokio::spawn(async move {
            let _ = axum::serve(graceful_listener, router).await;
        });
        let resumable_listener =
            support::listener("127.0.0.1:0".parse().expect("addr")).expect("listen");
        let resumable = resumable_listener.local_addr().expect("addr");
        let feed = Feed::new(MemoryLog::new());
        let router =
            support::resumable_router(controller.drain(), feed, Some(support::READ_BUFFER));
        tokio::spawn(async move {
            let _ = axum::serve(resumable_listener, router).await;
        });
        // Warm up every path once (lazily allocated runtime and hyper state).
        sessions_heap(raw, 50).await;
        sessions_heap(graceful, 50).await;
        sessions_heap(resumable, 50).await;
        let mut rows = Vec::new();
        for round in 1..=2 {
            let r = sessions_heap(raw, n).await;
            let g = sessions_heap(graceful, n).await;
            let m = sessions_heap(resumable, n).await;
            rows.push((round, r, g, m));
        }
        drop(controller);
        rows
    });
    println!(
        "\n2. {n} idle echo sessions, read_buffer_size {} on both sides; live heap (server + client, this process):",
        support::READ_BUFFER
    );
    println!(
        "| round | raw axum B/session | wsdrain B/session | wsdrain adds (target <= 256) | resumable B/session | resume adds (target <= 512) |"
    );
    println!("|---|---|---|---|---|---|");
    for (round, r, g, m) in rows {
        let nf = n as f64;
        println!(
            "| {round} | {:.0} | {:.0} | {:.1} | {:.0} | {:.1} |",
            r as f64 / nf,
            g as f64 / nf,
            (g - r) as f64 / nf,
            m as f64 / nf,
            (m - g) as f64 / nf
        );
    }
}
