//! The task that runs one session's handler, bounded by the drain.

use std::{
    future::{Future, poll_fn},
    panic::{self, AssertUnwindSafe},
    pin::pin,
    sync::Arc,
    task::Poll,
};

use axum::extract::ws::WebSocket;
use tokio::time::sleep;
use wsdrain_core::SessionGuard;

use crate::socket::{GracefulSocket, Linger};

/// Runs `handler` on the socket until it returns, with two bounds:
///
/// * if the handler is still running `close_timeout` after this session's
///   turn came (it ignores the socket), it is dropped and the close is
///   finished here, within half a `close_timeout` more;
/// * if the handler panics, the close it left half done is finished the
///   same way before the panic carries on;
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

    let mut panicked = None;
    {
        let mut handler = pin!(handler(socket));
        // A panic ends the handler like a return: its close is finished
        // below, then the panic goes on.
        let guarded = poll_fn(|cx| {
            match panic::catch_unwind(AssertUnwindSafe(|| handler.as_mut().poll(cx))) {
                Ok(Poll::Ready(())) => Poll::Ready(None),
                Ok(Poll::Pending) => Poll::Pending,
                Err(payload) => Poll::Ready(Some(payload)),
            }
        });
        tokio::select! {
            biased;
            _ = &mut forced => return,
            payload = guarded => panicked = payload,
            _ = async { turn.turned().await; sleep(close_timeout).await } => {
                tracing::debug!(target: "wsdrain", "handler ignored its close; finishing it");
            }
        }
    } // The handler, and the socket it held, are dropped here.
    // Finish a close the handler left half done.
    if let Some(mut core) = linger.take() {
        tokio::select! {
            biased;
            _ = &mut forced => {}
            _ = core.finish(close_timeout / 2) => {}
        }
    }
    if let Some(payload) = panicked {
        panic::resume_unwind(payload);
    }
}
