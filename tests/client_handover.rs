//! The Rust client through a drain with the notice (make-before-break) behind
//! a real HAProxy, and the opt-in health probe across a server restart: real
//! processes, real SIGTERM, loopback only.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use common::Server;
use common::client::next;
use common::haproxy::Haproxy;
use nix::sys::signal::Signal;
use wsdrain::client::{Event, FailedAt, Message, Reconnect, RetryPolicy, SendError};

/// Slack for scheduling and connecting on a busy machine: proves a bound
/// exists, not a speed.
const SLACK: Duration = Duration::from_secs(1);

const NOTICE_ENV: &[(&str, &str)] = &[
    // HAProxy marks a draining replica DOWN within 2 checks (200 ms), well
    // before its sessions' turns: new connections go to the other one.
    ("WSDRAIN_DRAIN_DELAY", "600ms"),
    ("WSDRAIN_CLOSE_WINDOW", "0s"),
    ("WSDRAIN_NOTICE_LEAD", "1s"),
    ("WSDRAIN_CLOSE_TIMEOUT", "2s"),
    ("WSDRAIN_GRACE_PERIOD", "10s"),
    ("WSDRAIN_RETRY_AFTER_MIN", "700ms"),
    ("WSDRAIN_RETRY_AFTER_MAX", "1s"),
];

/// Time without an open connection, from the client's own events: the sum
/// of the spans during which no connection was open, after the first opened.
fn disconnected(timeline: &[(Instant, Event)]) -> Duration {
    let mut open = 0i64;
    let mut since: Option<Instant> = None;
    let mut total = Duration::ZERO;
    let mut started = false;
    for (at, event) in timeline {
        match event {
            Event::Connected { .. } => {
                if let Some(s) = since.take() {
                    total += *at - s;
                }
                open += 1;
                started = true;
            }
            Event::Closed(_) => {
                open -= 1;
                if open == 0 && started {
                    since = Some(*at);
                }
            }
            _ => {}
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handover_behind_haproxy_leaves_no_gap_and_loses_nothing() {
    let mut a = Server::start("echo", NOTICE_ENV, &[]);
    let mut b = Server::start("echo", NOTICE_ENV, &[]);
    let lb = Haproxy::start(&[("a", a.addr), ("b", b.addr)]).await;

    let (client, mut events) = Reconnect::new(format!("ws://{}/ws", lb.addr)).spawn();
    let mut timeline: Vec<(Instant, Event)> = Vec::new();
    let first = match next(&mut events).await {
        e @ Event::Connected { connection } => {
            timeline.push((Instant::now(), e));
            connection
        }
        other => panic!("expected Connected, got {other:?}"),
    };
    lb.wait_for("one session", |s| {
        s.values().map(|s| s.sessions).sum::<u64>() == 1
    })
    .await;
    let stat = lb.stat().await.unwrap();
    let (drained, other) = if stat["a"].sessions == 1 {
        (&mut a, "b")
    } else {
        (&mut b, "a")
    };

    // Messages every 20 ms through the drain: each sent one must come back
    // exactly once; one that found no connection is sent again.
    let mut sent: BTreeMap<u64, u64> = BTreeMap::new(); // seq → connection
    let mut echoed: BTreeMap<u64, u32> = BTreeMap::new();
    let mut not_sent = 0u32;
    let mut seq = 0u64;
    let mut retry: Option<u64> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let signalled = Instant::now();
    drained.signal(Signal::SIGTERM);
    let mut handover = None;
    let mut stop_sending: Option<Instant> = None;
    let limit = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < limit,
            "no handover within 20 s: {timeline:?}"
        );
        if let Some(at) = stop_sending {
            if Instant::now() >= at && sent.keys().all(|s| echoed.contains_key(s)) {
                break;
            }
        }
        tokio::select! {
            event = next(&mut events) => {
                match &event {
                    Event::Message { message, .. } => {
                        let n: u64 = message.to_text().unwrap().parse().unwrap();
                        *echoed.entry(n).or_default() += 1;
                        continue;
                    }
                    Event::Handover(h) => {
                        handover = Some(h.clone());
                        // Keep sending a little on the new connection.
                        stop_sending = Some(Instant::now() + Duration::from_millis(300));
                    }
                    Event::ConnectFailed(_) | Event::HandoverFailed { .. } | Event::Reconnecting { .. }
                    | Event::GaveUp(_) => panic!("unexpected {event:?} in {timeline:?}"),
                    _ => {}
                }
                timeline.push((Instant::now(), event));
            }
            _ = tick.tick(), if stop_sending.is_none_or(|at| Instant::now() < at) => {
                let n = retry.take().unwrap_or_else(|| { seq += 1; seq });
                match client.send(Message::text(n.to_string())).await {
                    Ok(id) => { sent.insert(n, id.get()); }
                    Err(SendError::NotConnected(_)) => { not_sent += 1; retry = Some(n); }
                    Err(e) => panic!("send {n}: {e}"),
                }
            }
        }
    }
    let handover = handover.unwrap();
    let gap = disconnected(&timeline);
    let order: Vec<String> = timeline
        .iter()
        .map(|(at, e)| format!("{:>5} ms {e:?}", (*at - signalled).as_millis()))
        .collect();
    let second = handover.to;

    // The notice came on the first connection, the second opened before the
    // first closed, and the first closed cleanly with the server's hint.
    assert!(
        matches!(timeline[1].1, Event::DrainNotice { connection, close_in } if connection == first && close_in == Duration::from_secs(1)),
        "{order:#?}"
    );
    assert!(
        matches!(timeline[2].1, Event::Connected { connection } if connection == second),
        "{order:#?}"
    );
    assert!(
        matches!(&timeline[3].1, Event::Closed(c) if c.connection == first && c.code == 1001 && c.clean),
        "{order:#?}"
    );
    assert_eq!((handover.from, handover.to.get()), (first, 2), "{order:#?}");
    assert_eq!(gap, Duration::ZERO, "{order:#?}");
    assert!(
        handover.overlap > Duration::from_millis(500),
        "{handover:?}"
    );
    // The new connection went to the other replica.
    lb.wait_for("the session on the other replica", |s| {
        s.get(other).is_some_and(|s| s.sessions == 1)
    })
    .await;

    // Nothing lost, nothing twice; both connections carried messages.
    let twice: Vec<_> = echoed.iter().filter(|(_, c)| **c != 1).collect();
    assert!(twice.is_empty(), "echoed more than once: {twice:?}");
    let lost: Vec<_> = sent.keys().filter(|s| !echoed.contains_key(s)).collect();
    assert!(lost.is_empty(), "never echoed: {lost:?}");
    let on_first = sent.values().filter(|c| **c == first.get()).count();
    let on_second = sent.values().filter(|c| **c == second.get()).count();
    assert!(on_first > 0 && on_second > 0, "{on_first} {on_second}");
    assert_eq!(not_sent, 0, "sends that found no connection");
    eprintln!(
        "handover: disconnected {gap:?}, overlap {:?}, new connection open {:?} after the notice; \
         {} messages ({on_first} on #{}, {on_second} on #{}), {not_sent} resent",
        handover.overlap,
        handover.connect_time,
        sent.len(),
        first.get(),
        second.get()
    );

    let (code, _) = tokio::task::block_in_place(|| drained.wait_exit(Duration::from_secs(10)));
    assert_eq!(code, Some(0));
    client.close();
}

const RESTART_ENV: &[(&str, &str)] = &[
    ("WSDRAIN_DRAIN_DELAY", "0s"),
    ("WSDRAIN_CLOSE_WINDOW", "0s"),
    ("WSDRAIN_CLOSE_TIMEOUT", "2s"),
    ("WSDRAIN_GRACE_PERIOD", "10s"),
    ("WSDRAIN_RETRY_AFTER_MIN", "300ms"),
    ("WSDRAIN_RETRY_AFTER_MAX", "400ms"),
];

/// What a client saw while its only server was stopped and started again
/// 2 s later on the same port.
struct Restart {
    failed: Vec<FailedAt>,
    not_ready: u32,
    /// The last wait before the successful attempt (probe or connect).
    last_wait: Duration,
    /// From the new server's readiness to the client's reconnect.
    back_after: Duration,
}

async fn restart(health: bool) -> Restart {
    let mut old = Server::start("echo", RESTART_ENV, &[]);
    let addr = old.addr;
    let (client, mut events) = Reconnect::new(format!("ws://{addr}/ws"))
        .health_check(health)
        .policy(
            RetryPolicy::builder()
                .base(Duration::from_millis(100))
                .cap(Duration::from_millis(800))
                .build()
                .unwrap(),
        )
        .spawn();
    assert!(matches!(next(&mut events).await, Event::Connected { .. }));
    let stopped = Instant::now();
    old.signal(Signal::SIGTERM);
    let (code, _) = tokio::task::block_in_place(|| old.wait_exit(Duration::from_secs(10)));
    assert_eq!(code, Some(0));
    // The scenario: the port stays closed 2 s.
    let restart = tokio::spawn(async move {
        tokio::time::sleep_until((stopped + Duration::from_secs(2)).into()).await;
        let port = addr.to_string();
        tokio::task::spawn_blocking(move || {
            let server = Server::start("echo", RESTART_ENV, &["--listen", &port]);
            (server, Instant::now())
        })
        .await
        .unwrap()
    });
    let mut failed = Vec::new();
    let mut not_ready = 0;
    let mut last_wait = Duration::ZERO;
    loop {
        match next(&mut events).await {
            Event::Connected { .. } => break,
            Event::ConnectFailed(f) => failed.push(f.stage),
            Event::NotReady(n) => {
                not_ready += 1;
                last_wait = n.delay;
            }
            Event::Reconnecting { delay, .. } => last_wait = delay,
            Event::Closed(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let connected = Instant::now();
    let (_server, ready) = restart.await.unwrap();
    assert!(ready <= connected, "connected before the new server was up");
    client.close();
    Restart {
        failed,
        not_ready,
        last_wait,
        back_after: connected - ready,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_probe_spares_failed_handshakes_across_a_restart() {
    let with = restart(true).await;
    eprintln!(
        "health on: {} failed attempts, {} not-ready probes, back {:?} after readiness (last wait {:?})",
        with.failed.len(),
        with.not_ready,
        with.back_after,
        with.last_wait
    );
    assert!(with.failed.is_empty(), "{:?}", with.failed);
    assert!(with.not_ready > 0);
    // Within one backoff step of the server's readiness.
    assert!(
        with.back_after <= with.last_wait + SLACK,
        "back {:?} after readiness, last wait {:?}",
        with.back_after,
        with.last_wait
    );

    let without = restart(false).await;
    eprintln!(
        "health off: {} failed attempts ({:?}), back {:?} after readiness",
        without.failed.len(),
        without.failed,
        without.back_after
    );
    assert_eq!(without.not_ready, 0);
    assert!(!without.failed.is_empty());
    assert!(
        without.failed.iter().all(|s| *s == FailedAt::Tcp),
        "{:?}",
        without.failed
    );
}

#[tokio::test]
async fn a_failed_handover_stays_on_the_old_connection_then_follows_the_hint() {
    // One server: during its own drain it refuses the new connection (503),
    // so the client keeps the old one until its hinted Close.
    let policy = common::quick_policy()
        .close_window(Duration::ZERO)
        .notice_lead(Duration::from_millis(600))
        .retry_after(Duration::from_millis(300), Duration::from_millis(400))
        .build()
        .unwrap();
    let server = common::InProc::start(policy, common::echo_router()).await;
    let (client, mut events) = Reconnect::new(format!("ws://{}/ws", server.addr)).spawn();
    let first = match next(&mut events).await {
        Event::Connected { connection } => connection,
        other => panic!("expected Connected, got {other:?}"),
    };
    server.controller.begin();
    assert!(
        matches!(next(&mut events).await, Event::DrainNotice { connection, .. } if connection == first)
    );
    match next(&mut events).await {
        Event::HandoverFailed { connection, failed } => {
            assert_eq!(connection, first);
            assert_eq!(
                (failed.stage, failed.status),
                (FailedAt::Upgrade, Some(503))
            );
        }
        other => panic!("expected HandoverFailed, got {other:?}"),
    }
    // Still on the old connection: sends go there and come back.
    assert_eq!(
        client.send(Message::text("still here")).await.unwrap(),
        first
    );
    match next(&mut events).await {
        Event::Message {
            connection,
            message,
        } => assert_eq!((connection, message), (first, Message::text("still here"))),
        other => panic!("expected the echo, got {other:?}"),
    }
    let closed = match next(&mut events).await {
        Event::Closed(closed) => closed,
        other => panic!("expected Closed, got {other:?}"),
    };
    assert_eq!((closed.connection, closed.code), (first, 1001));
    let hint = closed.hint.expect("a hint");
    match next(&mut events).await {
        Event::Reconnecting { wait, .. } => assert_eq!(wait, wsdrain::client::Wait::Hint(hint)),
        other => panic!("expected Reconnecting, got {other:?}"),
    }
    client.close();
    server.report().await;
}

/// A server on one port whose first two sessions get the notice (leads of
/// 800 ms, then 1500 ms) and then a hinted Close; later sessions just echo.
fn noticing_router() -> axum::Router {
    use axum::extract::ws::{CloseFrame, Message as M, WebSocket, WebSocketUpgrade};
    use std::sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    };
    async fn echo_until(socket: &mut WebSocket, until: Option<tokio::time::Instant>) -> bool {
        loop {
            let deadline = async {
                match until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = deadline => return true,
                m = socket.recv() => match m {
                    Some(Ok(m @ M::Text(_))) => {
                        if socket.send(m).await.is_err() {
                            return false;
                        }
                    }
                    Some(Ok(M::Close(_))) | None | Some(Err(_)) => return false,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
    let sessions = Arc::new(AtomicU32::new(0));
    axum::Router::new().route(
        "/ws",
        axum::routing::get(move |upgrade: WebSocketUpgrade| {
            let n = sessions.fetch_add(1, Ordering::SeqCst);
            async move {
                upgrade.on_upgrade(move |mut socket| async move {
                    let lead = match n {
                        0 => Duration::from_millis(800),
                        1 => Duration::from_millis(1500),
                        _ => {
                            echo_until(&mut socket, None).await;
                            return;
                        }
                    };
                    let notice = wsdrain::protocol::encode_notice(lead.as_millis() as u64);
                    if socket.send(M::Text(notice.into())).await.is_err() {
                        return;
                    }
                    let until = tokio::time::Instant::now() + lead;
                    if echo_until(&mut socket, Some(until)).await {
                        let close = CloseFrame {
                            code: 1001,
                            reason: "going away; retry-after-ms=5000".into(),
                        };
                        let _ = socket.send(M::Close(Some(close))).await;
                        while let Some(Ok(m)) = socket.recv().await {
                            if matches!(m, M::Close(_)) {
                                break;
                            }
                        }
                    }
                })
            }
        }),
    )
}

#[tokio::test]
async fn a_notice_during_a_handover_hands_over_again_once_the_old_one_closed() {
    let policy = common::quick_policy().build().unwrap();
    let server = common::InProc::start(policy, noticing_router()).await;
    let (client, mut events) = Reconnect::new(format!("ws://{}/ws", server.addr)).spawn();
    let mut timeline = Vec::new();
    let mut handovers = Vec::new();
    while handovers.len() < 2 {
        let event = next(&mut events).await;
        match &event {
            Event::Handover(h) => handovers.push(h.clone()),
            Event::Reconnecting { .. }
            | Event::ConnectFailed(_)
            | Event::HandoverFailed { .. }
            | Event::GaveUp(_) => panic!("unexpected {event:?} after {timeline:#?}"),
            _ => {}
        }
        timeline.push((Instant::now(), event));
    }
    let ids: Vec<(u64, u64)> = handovers
        .iter()
        .map(|h| (h.from.get(), h.to.get()))
        .collect();
    assert_eq!(ids, [(1, 2), (2, 3)], "{timeline:#?}");
    assert_eq!(disconnected(&timeline), Duration::ZERO, "{timeline:#?}");
    // Sends are on the third connection, and it answers.
    let third = client.send(Message::text("7")).await.unwrap();
    assert_eq!(third.get(), 3);
    match next(&mut events).await {
        Event::Message { connection, .. } => assert_eq!(connection, third),
        other => panic!("expected the echo, got {other:?}"),
    }
    client.close();
}
