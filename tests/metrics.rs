//! The `metrics` feature: what a Prometheus scrape shows through a drain, in
//! process and from the `metrics` example under a real SIGTERM.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{
    Ending, InProc, RawWs, Server, echo_router, http, quick_policy, read_to_end, ws_connect,
};
use metrics_exporter_prometheus::PrometheusBuilder;
use nix::sys::signal::Signal;

fn series(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn value(scrape: &str, name: &str) -> f64 {
    series(scrape, name).unwrap_or_else(|| panic!("{name} missing from:\n{scrape}"))
}

/// An SSE stream that is read until the server ends it; returns what came.
async fn sse_stream(addr: std::net::SocketAddr) -> tokio::task::JoinHandle<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(tcp.read(&mut b).await.unwrap(), 1, "response head");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"));
    tokio::spawn(async move {
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest).await;
        String::from_utf8_lossy(&rest).into_owned()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_phase_and_closes_are_exported() {
    use axum::response::sse::{Event, Sse};
    use futures_util::stream;

    let handle = PrometheusBuilder::new().install_recorder().unwrap();
    let policy = quick_policy().max_sessions(4).build().unwrap();
    let router = echo_router().route(
        "/events",
        axum::routing::get(|| async {
            let first = stream::once(async {
                Ok::<_, std::convert::Infallible>(Event::default().data("x"))
            });
            Sse::new(futures_util::StreamExt::chain(first, stream::pending()))
        }),
    );
    let s = InProc::start(policy, router).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(ws_connect(s.addr).await);
    }
    let sse = sse_stream(s.addr).await;
    let refused = common::http(s.addr, "/ws", common::UPGRADE).await;
    assert_eq!(refused.status, 503);
    let scrape = handle.render();
    assert_eq!(value(&scrape, "wsdrain_sessions"), 4.0);
    let by = |t: &str| format!(r#"wsdrain_sessions_by_transport{{transport="{t}"}}"#);
    assert_eq!(value(&scrape, &by("websocket")), 3.0);
    assert_eq!(value(&scrape, &by("sse")), 1.0);
    assert_eq!(
        value(
            &scrape,
            r#"wsdrain_upgrades_refused_total{reason="max_sessions"}"#
        ),
        1.0
    );

    let ends: Vec<_> = clients
        .into_iter()
        .map(|c| tokio::spawn(read_to_end(c)))
        .collect();
    s.controller.begin();
    for e in ends {
        e.await.unwrap();
    }
    let rest = sse.await.unwrap();
    assert!(rest.contains("retry: "), "{rest:?}");
    let report = s.report().await;
    assert_eq!(report.closed_clean, 4, "{report}");
    let scrape = handle.render();
    assert_eq!(value(&scrape, "wsdrain_sessions"), 0.0);
    assert_eq!(value(&scrape, &by("sse")), 0.0);
    assert_eq!(value(&scrape, "wsdrain_phase"), 3.0);
    assert_eq!(
        value(&scrape, r#"wsdrain_session_closes_total{outcome="clean"}"#),
        4.0
    );
    let closes = |t: &str| {
        format!(r#"wsdrain_session_closes_by_transport_total{{transport="{t}",outcome="clean"}}"#)
    };
    assert_eq!(value(&scrape, &closes("websocket")), 3.0);
    assert_eq!(value(&scrape, &closes("sse")), 1.0);
    assert_eq!(value(&scrape, "wsdrain_close_handshake_seconds_count"), 3.0);

    // Sessions still live at the forced end are counted as forced: two
    // silent peers, a second trigger while their handshakes are awaited.
    let policy = quick_policy()
        .close_timeout(Duration::from_secs(8))
        .build()
        .unwrap();
    let s = InProc::start(policy, echo_router()).await;
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(RawWs::connect(s.addr, "/ws").await);
    }
    s.controller.begin();
    for peer in &mut silent {
        let (op, _) = peer.read_frame().await.unwrap();
        assert_eq!(op, 8, "the drain's Close");
    }
    s.controller.force();
    for peer in &mut silent {
        assert!(
            peer.read_frame().await.is_none(),
            "dropped at the forced end"
        );
    }
    let report = s.report().await;
    assert_eq!(report.forced, 2, "{report}");
    let scrape = handle.render();
    assert_eq!(
        value(&scrape, r#"wsdrain_session_closes_total{outcome="forced"}"#),
        2.0
    );
    assert_eq!(value(&scrape, "wsdrain_sessions"), 0.0);
}

/// A scrape of the example during a real drain shows the phase, live
/// sessions and closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_example_shows_the_drain() {
    let env = &[
        ("WSDRAIN_DRAIN_DELAY", "0"),
        ("WSDRAIN_CLOSE_WINDOW", "100ms"),
        ("WSDRAIN_CLOSE_TIMEOUT", "3s"),
        ("WSDRAIN_GRACE_PERIOD", "10s"),
    ];
    let mut server = Server::start("metrics", env, &[]);
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
        series(&scrape.body, "wsdrain_sessions"),
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
        if series(&b, r#"wsdrain_session_closes_total{outcome="clean"}"#) == Some(3.0) {
            break b;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(series(&body, "wsdrain_phase"), Some(2.0), "closing: {body}");
    assert_eq!(series(&body, "wsdrain_sessions"), Some(1.0), "{body}");
    assert_eq!(
        series(&body, "wsdrain_close_handshake_seconds_count"),
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
