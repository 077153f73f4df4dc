//! The drain's metrics in Prometheus text on `/metrics`, next to a WebSocket
//! echo on `/ws`: what an application adds to export them.
//!
//! Run with
//!
//! ```sh
//! cargo run -p wsdrain-examples --example metrics -- --listen 127.0.0.1:3000
//! curl -s http://127.0.0.1:3000/metrics
//! ```
//!
//! With wsdrain's `metrics` feature the drain records sessions, the phase,
//! closes by outcome, handshake times and refused upgrades through the
//! `metrics` facade; any exporter works, this one is
//! `metrics-exporter-prometheus`, installed before the first record.
//! docs/OPERATIONS.md lists the series.
//!
//! Same conventions as the `echo` example: the policy comes from `WSDRAIN_*`
//! variables, the first stdout line is `listening on <addr>`, the drain
//! report is printed on exit (code 0), and a bad setting prints one line
//! naming it and exits with code 2. Flags: `--listen ADDR` (default
//! `127.0.0.1:3000`).

#[path = "../support/mod.rs"]
mod support;

use std::process::ExitCode;

use axum::{
    Router,
    routing::{any, get},
};
use metrics_exporter_prometheus::PrometheusBuilder;
use wsdrain::{DrainLayer, GracefulUpgrade};

fn main() -> ExitCode {
    support::init_logs();
    let listen =
        match support::listen_arg("usage: metrics [--listen ADDR]   (policy from WSDRAIN_*)") {
            Ok(a) => a,
            Err(e) => {
                eprintln!("metrics: {e}");
                return ExitCode::from(2);
            }
        };
    // Before the controller exists, so nothing the drain records is lost.
    let scrape = match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("metrics: cannot install the metrics recorder: {e}");
            return ExitCode::FAILURE;
        }
    };
    let support::Started {
        controller,
        signals: _signals,
        runtime,
    } = match support::start("metrics") {
        Ok(s) => s,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let app = Router::new()
            .route(
                "/ws",
                any(|upgrade: GracefulUpgrade| async move { upgrade.on_upgrade(support::echo) }),
            )
            .route("/metrics", get(move || std::future::ready(scrape.render())))
            .layer(DrainLayer::new(controller.drain()));
        let listener = match support::bind("metrics", listen).await {
            Ok(l) => l,
            Err(code) => return code,
        };
        support::announce(listener.local_addr().unwrap_or(listen), &controller);
        support::finish("metrics", wsdrain::serve(listener, app, &controller).await)
    })
}
