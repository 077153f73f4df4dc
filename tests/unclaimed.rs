//! A route behind `DrainLayer` that still uses axum's plain `WebSocketUpgrade`
//! escapes the drain: the layer says so, once, as a warning.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use axum::{extract::ws::WebSocketUpgrade, routing::get};
use common::{InProc, echo_router, quick_policy, ws_connect};

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
    fn warnings(&self) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches("escapes the drain")
            .count()
    }
}

// One thread: the subscriber set here sees the server's tasks too.
#[tokio::test(flavor = "current_thread")]
async fn an_upgrade_without_a_session_is_reported_once() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

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
