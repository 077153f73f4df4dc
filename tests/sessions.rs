//! WebSocket sessions through GracefulSocket, with real clients on loopback:
//! 1001 with a hint, spread over the window, late sessions, silent peers,
//! handlers that ignore the socket or panic, split sockets, goodbyes.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Router, extract::ws::Message, routing::get};
use common::{
    Ending, InProc, RawWs, close_payload, echo_router, hint_ms, quick_policy, read_to_end,
    ws_connect,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Notify;
use wsdrain::{GracefulSocket, GracefulUpgrade, Phase, protocol::CloseHint};

fn assert_hinted_1001(ending: &Ending, range: std::ops::RangeInclusive<u64>) -> u64 {
    match ending {
        Ending::Closed { code, reason, .. } => {
            assert_eq!(*code, 1001, "{reason}");
            assert!(reason.len() <= 123);
            let hint = CloseHint::parse(reason).unwrap_or_else(|| panic!("no hint in {reason:?}"));
            assert_eq!(Some(hint.retry_after_ms()), hint_ms(reason), "regex agrees");
            assert!(range.contains(&hint.retry_after_ms()), "{hint:?}");
            hint.retry_after_ms()
        }
        other => panic!("abnormal end: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_gets_1001_with_a_hint_and_a_clean_handshake() {
    let s = InProc::start(quick_policy().build().unwrap(), echo_router()).await;
    let mut clients = Vec::new();
    for _ in 0..100 {
        let mut ws = ws_connect(s.addr).await;
        ws.send(tokio_tungstenite::tungstenite::Message::text("ping"))
            .await
            .unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap().into_text().unwrap(),
            "ping"
        );
        clients.push(tokio::spawn(read_to_end(ws)));
    }
    assert_eq!(s.drain.sessions(), 100);
    s.controller.begin();
    for c in clients {
        // `read_to_end` only returns `Closed` if the Close came and then the
        // stream ended without error: the handshake completed.
        assert_hinted_1001(&c.await.unwrap(), 200..=800);
    }
    let report = s.report().await;
    assert_eq!(report.sessions_at_closing, 100);
    assert_eq!(report.closed_clean, 100, "{report}");
    assert!(report.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closes_spread_across_the_window() {
    let n = 300;
    let window = Duration::from_secs(3);
    let policy = quick_policy()
        .close_window(window)
        .min_close_rate(1)
        .retry_after(Duration::from_millis(100), Duration::from_secs(5))
        .build()
        .unwrap();
    let s = InProc::start(policy, echo_router()).await;
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(tokio::spawn(read_to_end(ws_connect(s.addr).await)));
    }
    let t0 = Instant::now();
    s.controller.begin();
    let mut times = Vec::new();
    let mut hints = HashSet::new();
    for c in clients {
        let ending = c.await.unwrap();
        hints.insert(assert_hinted_1001(&ending, 100..=5000));
        let Ending::Closed { at, .. } = ending else {
            unreachable!()
        };
        times.push(at);
    }
    // Counted against the schedule (drain delay 0): never ahead of it, and
    // never more than a loaded machine's slack behind.
    let span = s.controller.policy().close_span(n);
    assert_eq!(span, window);
    common::assert_paced(&times, t0, span, Duration::from_millis(1500));
    assert!(hints.len() > n / 4, "hints vary: {} distinct", hints.len());
    s.report().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_upgraded_during_closing_is_closed_at_once() {
    let arrived = Arc::new(Notify::new());
    // The phase the extractor saw, reported here (an assertion in the
    // handler would only end its connection).
    let (phase_tx, mut phase_at_extraction) = tokio::sync::mpsc::unbounded_channel();
    let router = echo_router().route(
        "/late",
        get({
            let arrived = arrived.clone();
            move |req: axum::extract::Request| {
                let (arrived, phase_tx) = (arrived.clone(), phase_tx.clone());
                async move {
                    arrived.notify_one();
                    let drain = req.extensions().get::<wsdrain::Drain>().unwrap().clone();
                    // The request passed the layer before Closing; the extractor
                    // (which registers the session) runs only once Closing began.
                    drain.closing().await;
                    let (mut parts, _) = req.into_parts();
                    let u =
                    <GracefulUpgrade as axum::extract::FromRequestParts<()>>::from_request_parts(
                        &mut parts,
                        &(),
                    )
                    .await
                    .unwrap();
                    let _ = phase_tx.send(u.drain().phase());
                    u.on_upgrade(common::echo)
                }
            }
        }),
    );
    let s = InProc::start(quick_policy().build().unwrap(), router).await;
    let held = s.drain.register_session().expect("registered"); // keeps the drain in Closing
    let addr = s.addr;
    let client = tokio::spawn(async move {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/late"))
            .await
            .unwrap();
        read_to_end(ws).await
    });
    arrived.notified().await;
    s.controller.begin();
    let ending = tokio::time::timeout(Duration::from_secs(5), client)
        .await
        .unwrap()
        .unwrap();
    assert_hinted_1001(&ending, 200..=800);
    let phase = phase_at_extraction.try_recv().expect("the extractor ran");
    assert!(phase >= Phase::Closing, "registered in {phase:?}");
    assert_eq!(
        s.drain.phase(),
        Phase::Closing,
        "closed without waiting for anything else"
    );
    drop(held);
    s.report().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_cut_at_close_timeout() {
    let close_timeout = Duration::from_secs(1);
    let s = InProc::start(
        quick_policy().close_timeout(close_timeout).build().unwrap(),
        echo_router(),
    )
    .await;
    let mut silent = RawWs::connect(s.addr, "/ws").await;
    let polite = tokio::spawn(read_to_end(ws_connect(s.addr).await));
    let t0 = Instant::now();
    s.controller.begin();
    assert_hinted_1001(&polite.await.unwrap(), 200..=800);
    // The silent peer never answers; the server ends the TCP connection itself.
    let (op, payload) = silent.read_frame().await.unwrap();
    assert_eq!((op, close_payload(&payload).0), (8, 1001));
    assert!(silent.read_frame().await.is_none(), "server closes TCP");
    let cut = t0.elapsed();
    assert!(cut >= close_timeout, "waited for the peer: {cut:?}");
    let report = s.report().await;
    assert!(
        t0.elapsed() < Duration::from_secs(18),
        "well before the deadline"
    );
    assert_eq!(report.timed_out, 1, "{report}");
    assert_eq!(report.closed_clean, 1, "{report}");
    assert!(report.is_clean(), "no forced end needed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_never_reads_is_still_closed() {
    let router = Router::new().route(
        "/ws",
        get(|u: GracefulUpgrade| async move {
            u.on_upgrade(|socket: GracefulSocket| async move {
                let _kept = socket;
                std::future::pending::<()>().await;
            })
        }),
    );
    let close_timeout = Duration::from_secs(1);
    let s = InProc::start(
        quick_policy().close_timeout(close_timeout).build().unwrap(),
        router,
    )
    .await;
    let client = tokio::spawn(read_to_end(ws_connect(s.addr).await));
    let t0 = Instant::now();
    s.controller.begin();
    assert_hinted_1001(&client.await.unwrap(), 200..=800);
    let report = s.report().await;
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(report.closed_clean, 1, "{report}");
    assert!(report.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_only_handler_is_closed_by_send() {
    // What the handler's failed send said, observed here rather than in the
    // handler's task, which nobody awaits.
    let (failed_tx, mut failed) = tokio::sync::mpsc::unbounded_channel();
    let router = Router::new().route(
        "/ws",
        get(move |u: GracefulUpgrade| {
            let failed_tx = failed_tx.clone();
            async move {
                u.on_upgrade(move |mut socket: GracefulSocket| async move {
                    let mut tick = tokio::time::interval(Duration::from_millis(10));
                    let mut sent = 0u32;
                    loop {
                        tick.tick().await;
                        if let Err(e) = socket.send(Message::text("tick")).await {
                            let _ = failed_tx.send((e.is_closing(), e.to_string(), sent));
                            return;
                        }
                        sent += 1;
                    }
                })
            }
        }),
    );
    let s = InProc::start(quick_policy().build().unwrap(), router).await;
    let mut ws = ws_connect(s.addr).await;
    // A tick arrived: the handler is pushing before the drain begins.
    let first = ws.next().await.unwrap().unwrap();
    assert_eq!(first.into_text().unwrap(), "tick");
    let client = tokio::spawn(read_to_end(ws));
    s.controller.begin();
    assert_hinted_1001(&client.await.unwrap(), 200..=800);
    let (closing, error, sent) = tokio::time::timeout(Duration::from_secs(5), failed.recv())
        .await
        .expect("the handler's send failed within 5 s of the close")
        .expect("the handler reported its failed send");
    assert!(
        closing,
        "the send failed with {error:?}, not Error::Closing"
    );
    assert!(sent >= 1, "the handler pushed before its close");
    let report = s.report().await;
    assert_eq!(report.closed_clean, 1, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_releases_its_entry() {
    let router = Router::new().route(
        "/ws",
        get(|u: GracefulUpgrade| async move {
            u.on_upgrade(|mut socket: GracefulSocket| async move {
                let _ = socket.recv().await;
                panic!("handler bug");
            })
        }),
    );
    let s = InProc::start(quick_policy().build().unwrap(), router).await;
    let mut ws = ws_connect(s.addr).await;
    assert_eq!(s.drain.sessions(), 1);
    ws.send(tokio_tungstenite::tungstenite::Message::text("boom"))
        .await
        .unwrap();
    assert!(matches!(read_to_end(ws).await, Ending::Abnormal(_)));
    common::eventually("registry entry released", Duration::from_secs(5), || {
        s.drain.sessions() == 0
    })
    .await;
    s.controller.begin();
    assert!(s.report().await.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_socket_sends_its_close_once() {
    let router = Router::new().route(
        "/ws",
        get(|u: GracefulUpgrade| async move {
            u.on_upgrade(|socket: GracefulSocket| async move {
                let (mut sink, mut stream) = socket.split();
                let writer = async move {
                    let mut tick = tokio::time::interval(Duration::from_millis(5));
                    loop {
                        tick.tick().await;
                        if sink.send(Message::text("tick")).await.is_err() {
                            break;
                        }
                    }
                };
                let reader = async move { while let Some(Ok(_)) = stream.next().await {} };
                tokio::join!(writer, reader);
            })
        }),
    );
    let s = InProc::start(quick_policy().build().unwrap(), router).await;
    let mut raw = RawWs::connect(s.addr, "/ws").await;
    let (op, _) = raw.read_frame().await.unwrap();
    assert_eq!(op, 1, "ticks flow");
    s.controller.begin();
    let mut closes = Vec::new();
    let mut after_close = 0;
    while let Some((op, payload)) = raw.read_frame().await {
        if op == 8 {
            if closes.is_empty() {
                raw.send_frame(8, &payload[..2]).await;
            }
            closes.push(close_payload(&payload));
        } else if !closes.is_empty() {
            after_close += 1;
        }
    }
    assert_eq!(closes.len(), 1, "exactly one Close: {closes:?}");
    assert_eq!(closes[0].0, 1001);
    assert!(hint_ms(&closes[0].1).is_some());
    assert_eq!(after_close, 0, "no data frame after the Close");
    let report = s.report().await;
    assert_eq!(report.closed_clean, 1, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goodbye_goes_out_right_before_the_close() {
    let router = Router::new().route(
        "/ws",
        get(|u: GracefulUpgrade| async move {
            u.on_upgrade(|mut socket: GracefulSocket| async move {
                socket.set_goodbye(Message::text("server restarting"));
                while let Some(Ok(_)) = socket.recv().await {}
            })
        }),
    );
    let s = InProc::start(quick_policy().build().unwrap(), router).await;
    let mut raw = RawWs::connect(s.addr, "/ws").await;
    s.controller.begin();
    let (op, payload) = raw.read_frame().await.unwrap();
    assert_eq!(
        (op, payload.as_slice()),
        (1, b"server restarting".as_slice())
    );
    let (op, payload) = raw.read_frame().await.unwrap();
    assert_eq!((op, close_payload(&payload).0), (8, 1001));
    raw.send_frame(8, &payload[..2]).await;
    assert!(raw.read_frame().await.is_none());
    assert_eq!(s.report().await.closed_clean, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reason_never_exceeds_123_bytes() {
    let policy = quick_policy()
        .close_text("a very long explanation of why this server is going away ".repeat(10))
        .retry_after(Duration::from_secs(3600), Duration::from_secs(3600))
        .close_code(1012)
        .build()
        .unwrap();
    let s = InProc::start(policy, echo_router()).await;
    let client = tokio::spawn(read_to_end(ws_connect(s.addr).await));
    s.controller.begin();
    match client.await.unwrap() {
        Ending::Closed { code, reason, .. } => {
            assert_eq!(code, 1012);
            assert!(reason.len() <= 123, "{}", reason.len());
            assert_eq!(hint_ms(&reason), Some(3_600_000), "{reason}");
            assert!(reason.starts_with("a very long explanation"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    s.report().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_past_max_sessions_get_503_with_retry_after() {
    let policy = quick_policy().max_sessions(3).build().unwrap();
    let s = InProc::start(policy, echo_router()).await;
    let mut kept = Vec::new();
    for _ in 0..3 {
        kept.push(ws_connect(s.addr).await);
    }
    let refused = common::http(s.addr, "/ws", common::UPGRADE).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.header("connection"), Some("close"));
    assert_eq!(s.drain.sessions(), 3);
    drop(kept.pop());
    common::eventually("a slot frees", Duration::from_secs(5), || {
        s.drain.sessions() == 2
    })
    .await;
    kept.push(ws_connect(s.addr).await);
    s.controller.begin();
    let report = s.report().await;
    assert_eq!(report.refused_upgrades, 1, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_closing_first_is_counted_as_such() {
    let s = InProc::start(
        quick_policy()
            .drain_delay(Duration::from_secs(1))
            .build()
            .unwrap(),
        echo_router(),
    )
    .await;
    let mut ws = ws_connect(s.addr).await;
    s.controller.begin();
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    let report = s.report().await;
    assert_eq!(report.closed_by_peer, 1, "{report}");
    assert_eq!(report.sessions_at_closing, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_close_1013_an_upgrade_during_closing_is_accepted_and_told_to_try_again() {
    let policy = quick_policy()
        .closing_upgrades(wsdrain::ClosingUpgrades::TryAgainLater)
        .build()
        .unwrap();
    let s = InProc::start(policy, echo_router()).await;
    let held = s.drain.register_session().expect("registered"); // keeps the drain in Closing
    s.controller.begin();
    s.drain.closing().await;
    // A browser can read this, where it would see only 1006 for a 503.
    match read_to_end(ws_connect(s.addr).await).await {
        Ending::Closed { code, reason, .. } => {
            assert_eq!(code, 1013, "{reason}");
            assert!(hint_ms(&reason).is_some(), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    drop(held);
    let report = s.report().await;
    assert_eq!(report.refused_upgrades, 0, "{report}");
    assert_eq!(report.closed_clean, 1, "{report}");
}
