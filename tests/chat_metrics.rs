//! The chat example exports the drain's metrics in Prometheus text; a scrape
//! during a real SIGTERM drain shows the phase, live sessions and closes.
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Ending, RawWs, Server, http, read_to_end, ws_connect};
use nix::sys::signal::Signal;

fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_the_drain() {
    let env = &[
        ("WSDRAIN_DRAIN_DELAY", "0"),
        ("WSDRAIN_CLOSE_WINDOW", "100ms"),
        ("WSDRAIN_CLOSE_TIMEOUT", "3s"),
        ("WSDRAIN_GRACE_PERIOD", "10s"),
    ];
    let mut server = Server::start("chat", env, &[]);
    let addr = server.addr;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(tokio::spawn(read_to_end(ws_connect(addr).await)));
    }
    // A peer that never answers keeps the drain in Closing while we scrape.
    let _silent = RawWs::connect(addr, "/ws").await;
    let scrape = http(addr, "/metrics", &[]).await;
    assert_eq!(scrape.status, 200);
    assert_eq!(
        value(&scrape.body, "wsdrain_sessions"),
        Some(4.0),
        "{}",
        scrape.body
    );

    server.signal(Signal::SIGTERM);
    for c in clients {
        assert!(matches!(
            c.await.unwrap(),
            Ending::Closed { code: 1001, .. }
        ));
    }
    let body = loop {
        let b = http(addr, "/metrics", &[]).await.body;
        if value(&b, r#"wsdrain_session_closes_total{outcome="clean"}"#) == Some(3.0) {
            break b;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(value(&body, "wsdrain_phase"), Some(2.0), "closing: {body}");
    assert_eq!(value(&body, "wsdrain_sessions"), Some(1.0), "{body}");
    assert_eq!(
        value(&body, "wsdrain_close_handshake_seconds_count"),
        Some(3.0),
        "{body}"
    );
    let (code, _) = server.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    let report = server.rest().join("\n");
    assert!(
        report.contains("3 clean") && report.contains("1 timed out"),
        "{report}"
    );
}
