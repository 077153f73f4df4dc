//! The task that runs one session's handler, bounded by the drain.

use std::{future::Future, sync::Arc};

use axum::extract::ws::WebSocket;
use tokio::time::sleep;
use wsdrain_core::SessionGuard;

use crate::socket::{GracefulSocket, Linger};

/// Runs `handler` on the socket until it returns, with two bounds:
///
/// * if the handler is still running `close_timeout` after this session's
///   turn came (it ignores the socket), it is dropped and the close is
///   finished here, within half a `close_timeout` more;
/// * at the forced end the handler is dropped at once, which drops the
///   socket: the session counts as forced.
pub(crate) async fn run<C, Fut>(ws: WebSocket, session: SessionGuard, handler: C)
where
    C: FnOnce(GracefulSocket) -> Fut,
    Fut: Future<Output = ()>,
{
    let drain = session.drain().clone();
    let close_timeout = drain.policy().close_timeout();
    let turn = session.turn_watch();
    let linger = Arc::new(Linger::default());
    let socket = GracefulSocket::new(ws, session, linger.clone());
    let forced = drain.forced();
    tokio::pin!(forced);

    tokio::select! {
        biased;
        _ = &mut forced => return,
        _ = handler(socket) => {}
        _ = async { turn.turned().await; sleep(close_timeout).await } => {
            tracing::debug!(target: "wsdrain", "handler ignored its close; finishing it");
        }
    }
    // The handler is gone; finish a close it left half done.
    if let Some(mut core) = linger.take() {
        tokio::select! {
            biased;
            _ = &mut forced => {}
            _ = core.finish(close_timeout / 2) => {}
        }
    }
}
