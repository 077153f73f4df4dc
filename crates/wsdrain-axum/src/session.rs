//! The task that runs one session's handler, bounded by the drain.

use std::{
    any::Any,
    future::{Future, poll_fn},
    panic::{self, AssertUnwindSafe},
    pin::{Pin, pin},
    sync::Arc,
    task::Poll,
};

use axum::extract::ws::WebSocket;
use tokio::time::{Sleep, sleep};
use wsdrain_core::SessionGuard;

use crate::socket::{GracefulSocket, Linger};

/// How the handler's part ended.
enum End {
    Returned,
    Panicked(Box<dyn Any + Send>),
    /// Still running `close_timeout` after its turn: it ignores the socket.
    Cut,
    Forced,
}

/// Runs `handler` on the socket until it returns, with three bounds:
///
/// * if the handler is still running `close_timeout` after this session's
///   turn came (it ignores the socket), it is dropped and the close is
///   finished here, within half a `close_timeout` more;
/// * if the handler panics, the close it left half done is finished the
///   same way before the panic carries on;
/// * at the forced end the handler is dropped at once, which drops the
///   socket: the session counts as forced.
///
/// A plain function returning the future, so the future holds only the
/// (boxed) socket, not a second copy of the `WebSocket` argument; the
/// handler-grace timer is boxed when the turn comes, so an idle session
/// carries no timer.
pub(crate) fn run<C, Fut>(
    ws: WebSocket,
    session: SessionGuard,
    handler: C,
) -> impl Future<Output = ()>
where
    C: FnOnce(GracefulSocket) -> Fut,
    Fut: Future<Output = ()>,
{
    let close_timeout = session.drain().policy().close_timeout();
    let watch = session.turn_watch();
    let linger = Arc::new(Linger::default());
    let socket = GracefulSocket::new(ws, session, linger.clone());
    async move {
        let end = {
            // Called inside the future, so its state is held once, not also
            // as a captured value.
            let mut handler = pin!(handler(socket));
            let mut grace: Option<Pin<Box<Sleep>>> = None;
            poll_fn(|cx| {
                loop {
                    if watch.is_forced() {
                        return Poll::Ready(End::Forced);
                    }
                    if grace.is_none() && watch.turn().is_some() {
                        grace = Some(Box::pin(sleep(close_timeout)));
                    }
                    // A panic ends the handler like a return: its close is
                    // finished below, then the panic goes on.
                    match panic::catch_unwind(AssertUnwindSafe(|| handler.as_mut().poll(cx))) {
                        Ok(Poll::Ready(())) => return Poll::Ready(End::Returned),
                        Err(payload) => return Poll::Ready(End::Panicked(payload)),
                        Ok(Poll::Pending) => {}
                    }
                    if let Some(g) = grace.as_mut() {
                        if g.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(End::Cut);
                        }
                    }
                    watch.register(cx);
                    // Re-check: a turn or forced end in between is not missed.
                    if !(watch.is_forced() || (grace.is_none() && watch.turn().is_some())) {
                        return Poll::Pending;
                    }
                }
            })
            .await
        }; // The handler, and the socket it held, are dropped here.
        let panicked = match end {
            End::Forced => return,
            End::Cut => {
                tracing::debug!(target: "wsdrain", "handler ignored its close; finishing it");
                None
            }
            End::Returned => None,
            End::Panicked(payload) => Some(payload),
        };
        // Finish a close the handler left half done.
        if let Some(mut core) = linger.take() {
            let mut finish = pin!(core.finish(close_timeout / 2));
            poll_fn(|cx| {
                if watch.is_forced() {
                    return Poll::Ready(());
                }
                if finish.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
                watch.register(cx);
                if watch.is_forced() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
        }
        if let Some(payload) = panicked {
            panic::resume_unwind(payload);
        }
    }
}
