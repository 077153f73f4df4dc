//! [`serve`]: `axum::serve` with the listener kept open until the drain ends.

use std::{future::IntoFuture, io, pin::pin};

use axum::Router;
use tokio::net::TcpListener;
use wsdrain_core::{DrainController, DrainReport};

/// Serves `router` on `listener` and drives `controller`'s drain; returns its
/// report once every session is gone or the forced end came.
///
/// The router should carry [`DrainLayer`](wsdrain_core::DrainLayer). The
/// listener stays open through Draining and Closing, so load balancers probing
/// `/readyz` get a 503 rather than a refused connection; it closes at Closed.
/// Plain HTTP connections still open then get half the deadline margin to
/// finish.
///
/// This is the wiring you would write by hand with
/// `axum::serve(..).with_graceful_shutdown(drain.closed())` joined with
/// [`DrainController::run`].
///
/// # Errors
///
/// If the server stops before the drain ends (an I/O error on the listener).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    controller: &DrainController,
) -> io::Result<DrainReport> {
    let drain = controller.drain();
    let linger = controller.policy().deadline_margin() / 2;
    let mut server = pin!(
        axum::serve(listener, router)
            .with_graceful_shutdown(drain.closed())
            .into_future()
    );
    let report = tokio::select! {
        report = controller.run() => report,
        served = &mut server => {
            served?;
            return Err(io::Error::other("the server stopped before the drain ended"));
        }
    };
    if tokio::time::timeout(linger, server).await.is_err() {
        tracing::warn!(target: "wsdrain", "HTTP connections still open after the drain; closing them");
    }
    Ok(report)
}
