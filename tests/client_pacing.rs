//! The Rust client against servers that end every attempt at once (centrifuge-js
//! once made 189 attempts in 500 ms when a close came while it was still
//! connecting): it stays within the pacing the hint, `Retry-After` or its
//! backoff allow. Real TCP on loopback; each peer records when every
//! connection came, and the attempts in a fixed window are counted.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::client::EVENT_LIMIT;
use common::peers::{Behaviour, Peer, longest_burst};
use wsdrain::client::{Event, Events, Reconnect, RetryPolicy};

/// How long each client runs against its peer.
const WINDOW: Duration = Duration::from_secs(2);

/// Runs a client against `peer` for [`WINDOW`]; the delays it announced.
async fn run(peer: &Peer, reconnect: Reconnect) -> Vec<Duration> {
    let (client, mut events) = reconnect.spawn();
    let delays = collect_delays(&mut events, WINDOW).await;
    client.close();
    while tokio::time::timeout(EVENT_LIMIT, events.next())
        .await
        .expect("the client stops")
        .is_some()
    {}
    assert!(!peer.attempts().is_empty(), "the client never connected");
    delays
}

/// The delays of the `Reconnecting` events seen within `window`.
async fn collect_delays(events: &mut Events, window: Duration) -> Vec<Duration> {
    let end = tokio::time::Instant::now() + window;
    let mut delays = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout_at(end, events.next()).await {
        if let Event::Reconnecting { delay, .. } = event {
            delays.push(delay);
        }
    }
    delays
}

fn url(peer: &Peer) -> String {
    format!("ws://{}/ws", peer.addr)
}

#[tokio::test]
async fn a_close_at_once_with_a_hint_is_paced_by_the_hint() {
    let peer = Peer::start(Behaviour::CloseAtOnce {
        code: 1001,
        reason: "going away; retry-after-ms=300".into(),
    })
    .await;
    run(&peer, Reconnect::new(url(&peer))).await;
    let (within, gaps) = peer.pacing(WINDOW);
    eprintln!("close at once, hint 300 ms: {within} attempts in {WINDOW:?}, gaps {gaps:?}");
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(300)),
        "{gaps:?}"
    );
    assert!((2..=7).contains(&within), "{within} attempts: {gaps:?}");
}

#[tokio::test]
async fn a_connection_dropped_in_the_handshake_is_paced_by_the_backoff() {
    let peer = Peer::start(Behaviour::DropInHandshake).await;
    let policy = RetryPolicy::builder()
        .base(Duration::from_millis(100))
        .build()
        .unwrap();
    let delays = run(&peer, Reconnect::new(url(&peer)).policy(policy)).await;
    let (within, gaps) = peer.pacing(WINDOW);
    eprintln!("dropped in the handshake: {within} attempts in {WINDOW:?}, gaps {gaps:?}");
    // Each attempt came no sooner than the backoff the client announced.
    for (gap, delay) in gaps.iter().zip(&delays) {
        assert!(
            gap >= delay,
            "gap {gap:?} < delay {delay:?}: {gaps:?} {delays:?}"
        );
    }
    // Full jitter from 100 ms doubling: twelve attempts within 2 s need the
    // 6th to 12th draws (ceilings 3.2 s and up) all small, odds below 1e-6.
    assert!(within <= 12, "{within} attempts: {gaps:?}");
}

#[tokio::test]
async fn a_refused_upgrade_is_paced_by_retry_after() {
    let peer = Peer::start(Behaviour::Refuse { retry_after: 1 }).await;
    run(&peer, Reconnect::new(url(&peer))).await;
    let (within, gaps) = peer.pacing(WINDOW);
    eprintln!("503 + Retry-After: 1: {within} attempts in {WINDOW:?}, gaps {gaps:?}");
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_secs(1)),
        "{gaps:?}"
    );
    assert!(within <= 2, "{within} attempts: {gaps:?}");
}

#[tokio::test]
async fn a_notice_and_a_close_at_once_do_not_chain_handovers() {
    // Every connection gets the notice and, at once, the Close: a client
    // that hands over on each notice and adopts the new connection without
    // waiting would connect as fast as the loopback allows.
    let peer = Peer::start(Behaviour::NoticeThenClose {
        close_in_ms: 0,
        code: 1001,
        reason: "going away; retry-after-ms=300".into(),
    })
    .await;
    let started = Instant::now();
    run(&peer, Reconnect::new(url(&peer))).await;
    let (within, gaps) = peer.pacing(WINDOW);
    eprintln!(
        "notice and close at once, hint 300 ms: {within} attempts in {WINDOW:?} ({:?} run), gaps {gaps:?}",
        started.elapsed()
    );
    // The hint paces the reconnects; each may hand over once at once, and
    // a notice on that new connection waits the backoff (which the Close
    // that follows it at once then overrules with its hint).
    let burst = longest_burst(&gaps);
    assert!(burst <= 3, "{burst} attempts in a row: {gaps:?}");
    assert!(within <= 16, "{within} attempts: {gaps:?}");
}
