//! The reconnecting client against real servers: the echo example in-process
//! and as a process stopped with a real SIGTERM, a draining server refusing
//! upgrades, a dead port, and servers closing with terminal codes.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{
        Path,
        ws::{CloseFrame, Message as AxumMessage, WebSocketUpgrade},
    },
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use common::client::{HINT_JITTER, connected, next, next_closed, reconnecting, round_trip};
use common::{InProc, Server, echo_router, quick_policy};
use nix::sys::signal::Signal;
use wsdrain::client::{
    Event, FailedAt, GiveUp, Message, Reconnect, RetryPolicy, RetryPolicyBuilder, SendError, Wait,
};

fn url(addr: SocketAddr, path: &str) -> String {
    format!("ws://{addr}{path}")
}

/// The default retry policy with some settings changed.
fn retry(change: impl FnOnce(RetryPolicyBuilder) -> RetryPolicyBuilder) -> RetryPolicy {
    change(RetryPolicy::builder()).build().unwrap()
}

fn hinted_policy() -> wsdrain::DrainPolicy {
    quick_policy()
        .close_window(Duration::ZERO)
        .retry_after(Duration::from_millis(600), Duration::from_millis(900))
        .build()
        .unwrap()
}

/// Slack for scheduling and connecting on a busy machine: proves a bound
/// exists, not a speed.
const SLACK: Duration = Duration::from_secs(1);

#[tokio::test]
async fn reconnects_after_the_hint_in_process() {
    let server = InProc::start(hinted_policy(), echo_router()).await;
    let addr = server.addr;
    let (client, mut events) = Reconnect::new(url(addr, "/ws")).spawn();
    // The task has not run yet: nothing is open, the message comes back.
    match client.send(Message::text("early")).await {
        Err(SendError::NotConnected(m)) => assert_eq!(m, Message::text("early")),
        other => panic!("expected NotConnected, got {other:?}"),
    }
    let first = connected(&mut events).await;
    assert_eq!(first.get(), 1);
    assert_eq!(client.connection(), Some(first));
    round_trip(&client, &mut events, "1").await;

    let before_close = Instant::now();
    server.controller.begin();
    let closed = next_closed(&mut events).await;
    let closed_seen = Instant::now();
    assert_eq!(closed.connection, first);
    assert_eq!(closed.code, 1001);
    assert!(closed.clean, "{closed:?}");
    let hint = closed.hint.expect("a hint").retry_after();
    assert!((600..=900).contains(&hint.as_millis()), "{hint:?}");
    assert_eq!(
        common::hint_ms(&closed.reason),
        Some(hint.as_millis() as u64)
    );
    // The connection that carried earlier sends is gone: sends now fail.
    assert!(matches!(
        client.send(Message::text("late")).await,
        Err(SendError::NotConnected(_))
    ));

    let (delay, wait) = reconnecting(&mut events).await;
    assert_eq!(wait, Wait::Hint(closed.hint.unwrap()));
    assert!(
        delay >= hint && delay < hint + HINT_JITTER,
        "{delay:?} for {hint:?}"
    );

    // The old server is done; a new one takes the port well within the hint.
    let report = server.report().await;
    assert_eq!(report.sessions_at_closing, 1, "{report}");
    let next_server = InProc::start_at(addr, hinted_policy(), echo_router()).await;

    let second = connected(&mut events).await;
    let back = Instant::now();
    assert_eq!(second.get(), 2);
    assert!(
        back - before_close >= hint,
        "reconnected {:?} after the Close, hint {hint:?}",
        back - before_close
    );
    assert!(
        back - closed_seen < hint + HINT_JITTER + SLACK,
        "reconnected {:?} after the Close, hint {hint:?}",
        back - closed_seen
    );
    round_trip(&client, &mut events, "2").await;

    client.close();
    let last = next_closed(&mut events).await;
    assert_eq!((last.connection, last.code), (second, 1000));
    assert_eq!(next(&mut events).await, Event::GaveUp(GiveUp::ClientClosed));
    assert!(events.next().await.is_none());
    next_server.controller.begin();
    next_server.report().await;
}

const PROCESS_ENV: &[(&str, &str)] = &[
    ("WSDRAIN_DRAIN_DELAY", "0s"),
    ("WSDRAIN_CLOSE_WINDOW", "0s"),
    ("WSDRAIN_CLOSE_TIMEOUT", "2s"),
    ("WSDRAIN_GRACE_PERIOD", "10s"),
    ("WSDRAIN_RETRY_AFTER_MIN", "700ms"),
    ("WSDRAIN_RETRY_AFTER_MAX", "1s"),
];

#[tokio::test]
async fn reconnects_after_sigterm_to_a_new_process() {
    let mut old = Server::start("echo", PROCESS_ENV, &[]);
    let addr = old.addr;
    let (client, mut events) = Reconnect::new(url(addr, "/ws")).spawn();
    let first = connected(&mut events).await;
    round_trip(&client, &mut events, "before").await;

    let before_signal = Instant::now();
    old.signal(Signal::SIGTERM);
    let closed = next_closed(&mut events).await;
    let closed_seen = Instant::now();
    assert_eq!((closed.connection, closed.code), (first, 1001));
    assert!(closed.clean, "{closed:?}");
    let hint = closed.hint.expect("a hint").retry_after();
    assert!((700..=1000).contains(&hint.as_millis()), "{hint:?}");
    let (delay, wait) = reconnecting(&mut events).await;
    assert!(
        matches!(wait, Wait::Hint(_)) && delay >= hint,
        "{delay:?} {wait:?}"
    );

    let (code, _) = old.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    let port = addr.to_string();
    let _new = Server::start("echo", PROCESS_ENV, &["--listen", &port]);

    let second = connected(&mut events).await;
    let back = Instant::now();
    assert!(
        back - before_signal >= hint,
        "{:?} < {hint:?}",
        back - before_signal
    );
    assert!(
        back - closed_seen < hint + HINT_JITTER + SLACK,
        "{:?} for {hint:?}",
        back - closed_seen
    );
    round_trip(&client, &mut events, "after").await;
    assert_eq!(second.get(), 2);
    client.close();
}

#[tokio::test]
async fn abnormal_end_backs_off() {
    // The baseline server exits under its sockets on SIGTERM: no Close frame.
    let mut plain = Server::start("echo", &[], &["--plain"]);
    let (client, mut events) = Reconnect::new(url(plain.addr, "/ws"))
        .policy(retry(|p| p.base(Duration::from_millis(50))))
        .spawn();
    connected(&mut events).await;
    round_trip(&client, &mut events, "x").await;
    plain.signal(Signal::SIGTERM);
    let closed = next_closed(&mut events).await;
    assert_eq!(closed.code, 1006, "{closed:?}");
    assert!(!closed.clean);
    assert_eq!(closed.hint, None);
    let (delay, wait) = reconnecting(&mut events).await;
    assert_eq!(wait, Wait::Backoff { attempt: 0 });
    assert!(delay < Duration::from_millis(50), "{delay:?}");
    plain.wait_exit(Duration::from_secs(10));
    client.close();
}

/// An echo server drained into Closing, held there (for `close_timeout`) by
/// the returned raw session, which got its Close and never answers it.
async fn in_closing(policy: wsdrain::DrainPolicy) -> (InProc, common::RawWs) {
    let server = InProc::start(policy, echo_router()).await;
    let mut mute = common::RawWs::connect(server.addr, "/ws").await;
    server.controller.begin();
    let (opcode, _) = mute.read_frame().await.unwrap();
    assert_eq!(opcode, 0x8, "the mute session's Close");
    (server, mute)
}

#[tokio::test]
async fn refused_upgrade_retry_after_is_honoured() {
    let policy = quick_policy()
        .close_window(Duration::ZERO)
        .close_timeout(Duration::from_secs(3))
        .retry_after(Duration::from_millis(200), Duration::from_millis(800))
        .build()
        .unwrap();
    let (server, mute) = in_closing(policy).await;
    let addr = server.addr;

    let spawned = Instant::now();
    let (client, mut events) = Reconnect::new(url(addr, "/ws")).spawn();
    let failed = match next(&mut events).await {
        Event::ConnectFailed(failed) => failed,
        other => panic!("expected ConnectFailed, got {other:?}"),
    };
    let failed_seen = Instant::now();
    assert_eq!(
        (failed.stage, failed.status, failed.retry_after),
        (FailedAt::Upgrade, Some(503), Some(Duration::from_secs(1))),
        "{failed:?}"
    );
    let (delay, wait) = reconnecting(&mut events).await;
    assert_eq!(wait, Wait::RetryAfter(Duration::from_secs(1)));
    assert!(
        delay >= Duration::from_secs(1) && delay < Duration::from_secs(1) + HINT_JITTER,
        "{delay:?}"
    );
    // The next event is the next attempt's: it came no earlier than
    // Retry-After (a client ignoring it would be back within 250 ms).
    let again = next(&mut events).await;
    let again_seen = Instant::now();
    assert!(
        matches!(again, Event::ConnectFailed(_) | Event::Connected { .. }),
        "{again:?}"
    );
    assert!(
        again_seen - spawned >= Duration::from_secs(1),
        "{:?}",
        again_seen - spawned
    );
    assert!(
        again_seen - failed_seen < Duration::from_secs(1) + HINT_JITTER + SLACK,
        "{:?}",
        again_seen - failed_seen
    );
    drop(mute);
    client.close();
    server.report().await;
}

/// Under `close-1013` a server in Closing accepts an upgrade and closes it at
/// once with `Close(1013, hint)`: the client waits the hint, as after 1001,
/// instead of backing off from 250 ms.
#[tokio::test]
async fn try_again_later_with_a_hint_is_honoured_like_going_away() {
    let policy = quick_policy()
        .close_window(Duration::ZERO)
        .close_timeout(Duration::from_secs(4))
        .retry_after(Duration::from_millis(600), Duration::from_millis(900))
        .closing_upgrades(wsdrain::ClosingUpgrades::TryAgainLater)
        .build()
        .unwrap();
    let (server, mute) = in_closing(policy).await;
    let addr = server.addr;

    let (client, mut events) = Reconnect::new(url(addr, "/ws")).spawn();
    let mut closes = Vec::new();
    for attempt in 1..=2 {
        let id = connected(&mut events).await;
        assert_eq!(id.get(), attempt);
        let closed = next_closed(&mut events).await;
        let seen = Instant::now();
        assert_eq!(closed.code, 1013, "{closed:?}");
        let hint = closed.hint.expect("a hint").retry_after();
        assert!((600..=900).contains(&hint.as_millis()), "{closed:?}");
        let (delay, wait) = reconnecting(&mut events).await;
        assert_eq!(wait, Wait::Hint(closed.hint.unwrap()), "{closed:?}");
        assert!(
            delay >= hint && delay < hint + HINT_JITTER,
            "{delay:?} for {hint:?}"
        );
        closes.push((seen, hint));
    }
    // The second attempt came no earlier than the first hint.
    let (first_seen, first_hint) = closes[0];
    assert!(closes[1].0 - first_seen >= first_hint, "{closes:?}");
    client.close();
    drop(mute);
    server.report().await;
}

#[tokio::test]
async fn backoff_stays_within_cap_and_grows() {
    // A port nobody listens on: every attempt is refused at once.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (base, cap) = (Duration::from_millis(10), Duration::from_millis(200));
    let started = Instant::now();
    let (client, mut events) = Reconnect::new(url(addr, "/ws"))
        .policy(retry(|p| p.base(base).cap(cap)))
        .spawn();
    let mut delays = Vec::new();
    while delays.len() < 12 {
        match next(&mut events).await {
            Event::ConnectFailed(f) => assert_eq!(f.status, None, "{f:?}"),
            Event::Reconnecting { delay, wait } => {
                let attempt = delays.len() as u32;
                assert_eq!(wait, Wait::Backoff { attempt });
                let ceiling = cap.min(base * 2u32.pow(attempt));
                assert!(
                    delay < ceiling,
                    "attempt {attempt}: {delay:?} >= {ceiling:?}"
                );
                delays.push(delay);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Never a busy loop: the client slept at least what it announced.
    let slept: Duration = delays[..11].iter().sum();
    assert!(
        started.elapsed() >= slept,
        "{:?} < {slept:?}",
        started.elapsed()
    );
    // Grows: the first three ceilings add up to 70 ms; six capped draws
    // summing below that has odds of about 1 in 400,000.
    let early: Duration = delays[..3].iter().sum();
    let late: Duration = delays[6..].iter().sum();
    assert!(late > early, "early {early:?}, late {late:?}: {delays:?}");
    client.close();
    assert_eq!(next(&mut events).await, Event::GaveUp(GiveUp::ClientClosed));
}

/// Closes every session at once with the code in the path.
fn closing_router() -> Router {
    async fn close_with(Path(code): Path<u16>, upgrade: WebSocketUpgrade) -> Response {
        upgrade.on_upgrade(move |mut socket| async move {
            let frame = CloseFrame {
                code,
                reason: "bye".into(),
            };
            if socket.send(AxumMessage::Close(Some(frame))).await.is_ok() {
                while let Some(Ok(_)) = socket.recv().await {}
            }
        })
    }
    Router::new()
        .route("/close/{code}", get(close_with))
        .route("/status/{code}", get(|Path(code): Path<u16>| async move {
            StatusCode::from_u16(code).unwrap().into_response()
        }))
}

#[tokio::test]
async fn terminal_codes_stop() {
    let server = InProc::start(quick_policy().build().unwrap(), closing_router()).await;
    for code in [1000, 1008, 4000, 4999] {
        let (client, mut events) =
            Reconnect::new(url(server.addr, &format!("/close/{code}"))).spawn();
        connected(&mut events).await;
        let closed = next_closed(&mut events).await;
        assert_eq!((closed.code, closed.reason.as_str()), (code, "bye"));
        assert_eq!(
            next(&mut events).await,
            Event::GaveUp(GiveUp::TerminalClose { code })
        );
        assert!(events.next().await.is_none(), "{code}: events end");
        assert!(matches!(
            client.send(Message::text("x")).await,
            Err(SendError::NotConnected(_))
        ));
    }
    for status in [401, 403] {
        let (_client, mut events) =
            Reconnect::new(url(server.addr, &format!("/status/{status}"))).spawn();
        match next(&mut events).await {
            Event::ConnectFailed(f) => assert_eq!(f.status, Some(status)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            next(&mut events).await,
            Event::GaveUp(GiveUp::Refused { status })
        );
        assert!(events.next().await.is_none());
    }
    server.controller.begin();
    server.report().await;
}

#[tokio::test]
async fn terminal_codes_are_configurable_and_others_retry() {
    let server = InProc::start(quick_policy().build().unwrap(), closing_router()).await;
    // 1000 made retryable; 1011 and 1013 retry by default.
    for code in [1000, 1011, 1013] {
        let (client, mut events) = Reconnect::new(url(server.addr, &format!("/close/{code}")))
            .policy(retry(|p| {
                p.base(Duration::from_millis(20))
                    .terminal_codes(|code| code == 4001)
            }))
            .spawn();
        let first = connected(&mut events).await;
        assert_eq!(next_closed(&mut events).await.code, code);
        let (_, wait) = reconnecting(&mut events).await;
        assert_eq!(wait, Wait::Backoff { attempt: 0 }, "{code}");
        let second = connected(&mut events).await;
        assert!(second > first);
        client.close();
    }
    let (_client, mut events) = Reconnect::new(url(server.addr, "/close/4001"))
        .policy(retry(|p| p.terminal_codes(|code| code == 4001)))
        .spawn();
    connected(&mut events).await;
    next_closed(&mut events).await;
    assert_eq!(
        next(&mut events).await,
        Event::GaveUp(GiveUp::TerminalClose { code: 4001 })
    );
    server.controller.begin();
    server.report().await;
}

#[tokio::test]
async fn a_bad_url_gives_up() {
    let (_client, mut events) = Reconnect::new("not a url").spawn();
    let e = next(&mut events).await;
    assert!(matches!(e, Event::ConnectFailed(_)), "{e:?}");
    let e = next(&mut events).await;
    assert!(matches!(e, Event::GaveUp(GiveUp::Unusable(_))), "{e:?}");
    assert!(events.next().await.is_none());
}

#[tokio::test]
async fn only_a_stable_connection_resets_the_backoff() {
    let server = InProc::start(quick_policy().build().unwrap(), closing_router()).await;
    for (stable_after, want) in [
        (Duration::from_secs(30), [0, 1, 2]), // closed at once: failures add up
        (Duration::ZERO, [0, 0, 0]),          // every connection counts as stable
    ] {
        let (client, mut events) = Reconnect::new(url(server.addr, "/close/1011"))
            .policy(retry(|p| {
                p.base(Duration::from_millis(5)).stable_after(stable_after)
            }))
            .spawn();
        for attempt in want {
            connected(&mut events).await;
            assert_eq!(next_closed(&mut events).await.code, 1011);
            let (_, wait) = reconnecting(&mut events).await;
            assert_eq!(
                wait,
                Wait::Backoff { attempt },
                "stable after {stable_after:?}"
            );
        }
        client.close();
    }
    server.controller.begin();
    server.report().await;
}
