//! The drain notice through a real SIGTERM: the `echo` example with
//! `WSDRAIN_NOTICE_LEAD`, clients that ignore the notice and clients that
//! hand over (close the old connection themselves after it).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Server, hint_ms, ws_connect};
use futures_util::{SinkExt, StreamExt};
use nix::sys::signal::Signal;
use tokio_tungstenite::tungstenite::{Message, protocol::CloseFrame};
use wsdrain::protocol::parse_notice;

const LEAD: Duration = Duration::from_secs(1);
const ENV: &[(&str, &str)] = &[
    ("WSDRAIN_DRAIN_DELAY", "0s"),
    ("WSDRAIN_CLOSE_WINDOW", "500ms"),
    ("WSDRAIN_NOTICE_LEAD", "1s"),
    ("WSDRAIN_CLOSE_TIMEOUT", "2s"),
    ("WSDRAIN_GRACE_PERIOD", "10s"),
];

/// What one client saw: when the notice came, its lead, and the Close.
struct Seen {
    notice_at: Instant,
    lead_ms: u64,
    close: Option<(u16, String, Instant)>,
}

async fn client(addr: std::net::SocketAddr, hand_over: bool) -> Seen {
    let mut ws = ws_connect(addr).await;
    let mut notice = None;
    let mut close = None;
    while let Some(msg) = ws.next().await {
        match msg.unwrap() {
            Message::Text(t) => {
                if let Some(lead) = parse_notice(&t) {
                    notice = Some((Instant::now(), lead));
                    if hand_over {
                        // A new connection would open here; the old one is
                        // closed by the client.
                        ws.send(Message::Close(Some(CloseFrame {
                            code: 1000.into(),
                            reason: "handover".into(),
                        })))
                        .await
                        .unwrap();
                    }
                }
            }
            Message::Close(Some(f)) => {
                close = Some((f.code.into(), f.reason.to_string(), Instant::now()));
            }
            _ => {}
        }
    }
    let (notice_at, lead_ms) = notice.expect("a notice before the end");
    Seen {
        notice_at,
        lead_ms,
        close,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notice_comes_a_lead_before_the_close_and_a_handover_is_clean() {
    let mut server = Server::start("echo", ENV, &[]);
    let addr = server.addr;
    let mut unaware = Vec::new();
    let mut aware = Vec::new();
    for _ in 0..10 {
        unaware.push(tokio::spawn(client(addr, false)));
        aware.push(tokio::spawn(client(addr, true)));
    }
    let start = Instant::now();
    while !common::http(addr, "/readyz", &[])
        .await
        .body
        .contains("\"sessions\":20")
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "sessions never up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t0 = Instant::now();
    server.signal(Signal::SIGTERM);
    for c in unaware {
        let seen = c.await.unwrap();
        assert_eq!(seen.lead_ms, LEAD.as_millis() as u64);
        let (code, reason, at) = seen.close.expect("the Close after the notice");
        assert_eq!(code, 1001);
        assert!(hint_ms(&reason).is_some(), "{reason}");
        let gap = at - seen.notice_at;
        assert!(
            gap >= LEAD - Duration::from_millis(50) && gap < LEAD + Duration::from_millis(500),
            "Close {gap:?} after the notice"
        );
        assert!(
            seen.notice_at - t0 < Duration::from_secs(1),
            "notice at the turn"
        );
    }
    for c in aware {
        let seen = c.await.unwrap();
        // The server answers the client's Close: no drain Close of its own.
        let (code, _, at) = seen.close.expect("the answer to our Close");
        assert_eq!(code, 1000);
        assert!(at - seen.notice_at < LEAD, "no wait for the lead");
    }
    let (code, took) = server.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(4), "{took:?}");
    let report = server
        .rest()
        .into_iter()
        .find(|l| l.starts_with("drained: "))
        .unwrap();
    assert!(
        report.contains(" 20 sessions at closing, 20 clean,"),
        "{report}"
    );
}
