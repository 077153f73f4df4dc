//! A hand-wired server: `DrainController` and `DrainLayer` on a hyper-util
//! accept loop of your own instead of `wsdrain::serve`, for servers that
//! configure hyper themselves. The WebSocket echo runs on `GracefulSocket`
//! and is drained as in the `echo` example.
//!
//! Run with
//!
//! ```sh
//! cargo run --example hyper -- --listen 127.0.0.1:3000
//! ```
//!
//! The policy comes from `WSDRAIN_*` variables. It prints `listening on
//! <addr>`, and the drain report on exit (code 0).
//!
//! The loop keeps what `wsdrain::serve` guarantees: the listener stays open
//! until the drain reaches Closed (probes get a 503, not a refused
//! connection), then plain HTTP connections are asked to finish and get at
//! most half the deadline margin to do it.

#[path = "support/mod.rs"]
mod support;

use std::{net::SocketAddr, pin::pin, process::ExitCode, time::Duration};

use axum::{Router, response::Response, routing::get};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use wsdrain::{DrainController, DrainLayer, GracefulUpgrade};

/// Accepts connections until the drain is Closed, then gives plain HTTP
/// connections a bounded time to finish. Upgraded connections are not
/// watched here: their sessions are the controller's.
async fn accept_loop(listener: TcpListener, app: Router, controller: &DrainController) {
    let drain = controller.drain();
    let linger = controller.policy().deadline_margin() / 2;
    let graceful = GracefulShutdown::new();
    let mut closed = pin!(drain.closed());
    loop {
        let stream = tokio::select! {
            _ = &mut closed => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let builder = Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!("connection: {e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(linger, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open after the drain; no longer waiting for them");
    }
}

fn main() -> ExitCode {
    support::init_logs();
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 3000));
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next().map(|v| v.parse())) {
            ("--listen", Some(Ok(addr))) => listen = addr,
            _ => {
                eprintln!("usage: hyper [--listen ADDR]   (policy from WSDRAIN_*)");
                return ExitCode::from(2);
            }
        }
    }
    // Policy, signals (while this is the only thread), then the runtime.
    let support::Started {
        controller,
        signals: _signals,
        runtime,
    } = match support::start("hyper") {
        Ok(s) => s,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let app = Router::new()
            .route(
                "/ws",
                get(|upgrade: GracefulUpgrade| async move {
                    let response: Response = upgrade.on_upgrade(support::echo);
                    response
                }),
            )
            .layer(DrainLayer::new(controller.drain()));
        let listener = match support::bind("hyper", listen).await {
            Ok(l) => l,
            Err(code) => return code,
        };
        support::announce(listener.local_addr().unwrap_or(listen), &controller);
        let (report, ()) = tokio::join!(controller.run(), accept_loop(listener, app, &controller));
        println!("drained: {report}");
        ExitCode::SUCCESS
    })
}
