//! DrainLayer over real loopback HTTP: health per phase, `Connection: close`,
//! upgrades refused with 503 + `Retry-After` from Closing on.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::{Router, routing::get};
use common::{InProc, UPGRADE, http, quick_policy};
use wsdrain::Phase;

fn app() -> Router {
    common::echo_router().route("/hello", get(|| async { "hello" }))
}

#[tokio::test]
async fn serving_then_draining() {
    let s = InProc::start(
        quick_policy()
            .drain_delay(Duration::from_secs(60))
            .grace_period(Duration::from_secs(90))
            .build()
            .unwrap(),
        app(),
    )
    .await;

    let ready = http(s.addr, "/readyz", &[]).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body, r#"{"phase":"serving","sessions":0}"#);
    assert_eq!(ready.header("content-type"), Some("application/json"));
    let hello = http(s.addr, "/hello", &[]).await;
    assert_eq!((hello.status, hello.body.as_str()), (200, "hello"));
    assert_eq!(hello.header("connection"), None, "keep-alive while serving");

    s.controller.begin();
    assert_eq!(s.drain.phase(), Phase::Draining);
    let ready = http(s.addr, "/readyz", &[]).await;
    assert_eq!(ready.status, 503, "503 from the first instant of Draining");
    assert_eq!(ready.body, r#"{"phase":"draining","sessions":0}"#);
    let live = http(s.addr, "/livez", &[]).await;
    assert_eq!(live.status, 200);
    let hello = http(s.addr, "/hello", &[]).await;
    assert_eq!(hello.status, 200, "plain HTTP still served");
    assert_eq!(hello.header("connection"), Some("close"));
    let upgrade = http(s.addr, "/ws", UPGRADE).await;
    assert_eq!(
        upgrade.status, 101,
        "upgrades still accepted while draining"
    );
    assert_ne!(upgrade.header("connection"), Some("close"));
    s.controller.force();
    s.report().await;
}

#[tokio::test]
async fn closing_refuses_upgrades_only() {
    let s = InProc::start(quick_policy().build().unwrap(), app()).await;
    let upgrade = http(s.addr, "/ws", UPGRADE).await;
    assert_eq!(upgrade.status, 101, "served before closing");

    // A session we hold keeps the drain in Closing while we look.
    let held = s.drain.register_session().expect("registered");
    s.controller.begin();
    s.drain.closing().await;

    let refused = http(s.addr, "/ws", UPGRADE).await;
    assert_eq!(refused.status, 503);
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=1).contains(&retry),
        "hint range 200-800 ms rounds up to 1 s, got {retry}"
    );
    assert_eq!(refused.header("connection"), Some("close"));
    assert!(refused.body.contains("shutting down"), "{}", refused.body);

    let hello = http(s.addr, "/hello", &[]).await;
    assert_eq!(hello.status, 200, "plain requests still served");
    assert_eq!(hello.header("connection"), Some("close"));
    let ready = http(s.addr, "/readyz", &[]).await;
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.starts_with(r#"{"phase":"closing","sessions":"#),
        "{}",
        ready.body
    );
    assert_eq!(http(s.addr, "/livez", &[]).await.status, 200);

    drop(held);
    let report = s.report().await;
    assert_eq!(report.refused_upgrades, 1);
    assert!(report.is_clean(), "{report}");
}

#[tokio::test]
async fn refusing_all_requests_when_closing_is_opt_in() {
    let controller = std::sync::Arc::new(wsdrain::DrainController::new(
        quick_policy().build().unwrap(),
    ));
    let drain = controller.drain();
    let sse = axum::routing::get(|| async {
        axum::response::sse::Sse::new(futures_util::stream::pending::<
            Result<axum::response::sse::Event, std::convert::Infallible>,
        >())
    });
    let app = app().route("/events", sse).layer(
        wsdrain::DrainLayer::new(drain.clone())
            .refuse_requests_when_closing(true)
            .readiness_path("/ready")
            .liveness_path("/live"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let c = controller.clone();
    let task = tokio::spawn(async move { wsdrain::serve(listener, app, &c).await });
    assert_eq!(http(addr, "/ready", &[]).await.status, 200);
    assert_eq!(
        http(addr, "/readyz", &[]).await.status,
        404,
        "paths are configurable"
    );
    let held = drain.register_session().expect("registered");
    controller.begin();
    drain.closing().await;
    let hello = http(addr, "/hello", &[]).await;
    assert_eq!(hello.status, 503);
    assert!(hello.header("retry-after").is_some());
    assert_eq!(http(addr, "/live", &[]).await.status, 200);
    // Never a 503 to an EventSource (it would give up for good): 200, the
    // hint, and a clean end.
    let sse = raw_to_end(
        addr,
        "GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n",
    )
    .await;
    assert!(sse.starts_with("HTTP/1.1 200 OK\r\n"), "{sse}");
    assert!(sse.contains("\r\nretry: "), "{sse}");
    assert!(sse.ends_with("\r\n0\r\n\r\n"), "terminating chunk: {sse}");
    drop(held);
    task.await.unwrap().unwrap();
}

/// Writes `request`, reads until the server closes the connection.
async fn raw_to_end(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out))
        .await
        .expect("the response ends")
        .unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn graceful_upgrade_without_the_layer_is_a_clear_500() {
    let app = common::echo_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let resp = http(addr, "/ws", UPGRADE).await;
    assert_eq!(resp.status, 500);
    assert!(resp.body.contains("DrainLayer"), "{}", resp.body);
    server.abort();
}
