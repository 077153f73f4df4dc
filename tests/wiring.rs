//! Mistakes in wiring the drain are reported, as warnings: `serve` on a
//! router without `DrainLayer` says so at start; a route behind the layer
//! that still uses axum's plain `WebSocketUpgrade` escapes the drain, and the
//! layer says so once.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    extract::ws::WebSocketUpgrade,
    routing::{any, get},
};
use common::{InProc, echo_router, quick_policy, ws_connect};
use wsdrain::{DrainController, GracefulUpgrade};

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Collects the warnings logged while it is alive, on this thread.
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer({
                let logs = logs.clone();
                move || logs.clone()
            })
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn count(&self, text: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(text)
            .count()
    }

    fn warnings(&self) -> usize {
        self.count("escapes the drain")
    }
}

const NO_LAYER: &str = "serve: no DrainLayer made from this controller wraps the service: \
     /readyz and /livez are not answered and GracefulUpgrade fails with 500; add \
     .layer(DrainLayer::new(controller.drain())) to the router";

// One thread: the subscriber set here sees the server's tasks too.
#[tokio::test(flavor = "current_thread")]
async fn serve_warns_at_start_about_a_router_without_the_layer() {
    let (logs, _guard) = Logs::capture();
    let controller = DrainController::new(quick_policy().build().unwrap());
    let router: Router = Router::new().route(
        "/ws",
        any(|u: GracefulUpgrade| async move { u.on_upgrade(common::echo) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served = wsdrain::serve(listener, router, &controller);
    tokio::pin!(served);
    // One poll: serve has started and waits for connections; none came.
    tokio::select! {
        biased;
        _ = &mut served => panic!("serve ended at start"),
        () = std::future::ready(()) => {}
    }
    assert_eq!(logs.count(NO_LAYER), 1, "at start, before any request");
    assert!(!controller.has_layer());

    // The same router with the layer: no warning.
    let (logs, _guard) = Logs::capture();
    let s = InProc::start(quick_policy().build().unwrap(), echo_router()).await;
    assert!(s.controller.has_layer());
    let _client = ws_connect(s.addr).await;
    assert_eq!(logs.count("DrainLayer"), 0);
}

// One thread: the subscriber set here sees the server's tasks too.
#[tokio::test(flavor = "current_thread")]
async fn an_upgrade_without_a_session_is_reported_once() {
    let (logs, _guard) = Logs::capture();

    let router = echo_router().route(
        "/plain",
        get(|u: WebSocketUpgrade| async move { u.on_upgrade(|_socket| async {}) }),
    );
    let s = InProc::start(quick_policy().build().unwrap(), router).await;

    let _graceful = ws_connect(s.addr).await;
    assert_eq!(logs.warnings(), 0, "GracefulUpgrade claims its upgrade");
    for _ in 0..3 {
        let (_plain, _) = tokio_tungstenite::connect_async(format!("ws://{}/plain", s.addr))
            .await
            .unwrap();
    }
    assert_eq!(logs.warnings(), 1, "warned once, not per upgrade");
}
