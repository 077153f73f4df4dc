//! The session task: runs the handler beside the session's close.

use std::{
    any::Any,
    future::{Future, poll_fn},
    panic::{self, AssertUnwindSafe},
    pin::{Pin, pin},
    sync::Arc,
    task::Poll,
};

use tokio::time::{Sleep, sleep};

use super::{
    Stack,
    core::{Core, Timers},
    socket::Socket,
};
use crate::SessionGuard;

/// How the session task's wait ended.
enum End {
    /// The handler returned and the close is over.
    Over,
    /// The close is over and the handler still ran `close_timeout` later.
    Cut,
    /// The forced end came.
    Forced,
}

/// Runs one session: `handler` on its [`Socket`], and beside it the session's
/// close. Adapters call it inside the task that serves the upgraded
/// connection (axum's `on_upgrade`, a spawned `accept_async`).
///
/// The returned future ends when the handler has returned **and** the close
/// is over, so cleanup code after the socket runs before the drain reports
/// Closed. It is bounded three ways:
///
/// * at the session's turn the Close goes out from here, whoever holds the
///   socket (after the drain notice and its lead, if the policy has one), and
///   the handshake is bounded by `close_timeout`;
/// * a handler still running `close_timeout` after its close is over (one
///   that cannot learn of it, such as a task asleep between two pushes) is
///   dropped; its client already got the clean close;
/// * at the forced end the connection and the handler are dropped at once.
///
/// A handler that panics ends like one that returns (its close is finished
/// first), then the panic carries on. The session's registry entry is
/// released when the future ends.
///
/// # Cancel safety
///
/// Dropping the future drops the connection (without a Close) and the
/// handler, and releases the session: do not, but at the process's end.
pub fn run<K, H, Fut>(
    io: K::Socket,
    session: SessionGuard,
    handler: H,
) -> impl Future<Output = ()> + Send
where
    K: Stack,
    H: FnOnce(Socket<K>) -> Fut + Send,
    Fut: Future<Output = ()> + Send,
{
    let core = Arc::new(Core::<K>::new(
        io,
        session.signal.clone(),
        session.drain().clone(),
    ));
    let socket = Socket::new(core.clone());
    async move {
        let mut session = session;
        let close_timeout = session.drain().policy().close_timeout();
        let mut panicked: Option<Box<dyn Any + Send>> = None;
        let end = {
            // Called inside the future, so its state is held once, not also
            // as a captured value. `None` once it returned (or panicked), so
            // the socket it held is dropped at once.
            let mut handler = pin!(Some(handler(socket)));
            let mut timers = Timers::default();
            let mut cut: Option<Pin<Box<Sleep>>> = None;
            let mut over = false;
            poll_fn(|cx| {
                // Registered first: a turn, a forced end or a change in the
                // core after this point wakes this task.
                core.signal.register_task(cx);
                if core.signal.is_forced() {
                    return Poll::Ready(End::Forced);
                }
                if let Some(running) = handler.as_mut().as_pin_mut() {
                    match panic::catch_unwind(AssertUnwindSafe(|| running.poll(cx))) {
                        Ok(Poll::Pending) => {}
                        Ok(Poll::Ready(())) => handler.set(None),
                        Err(payload) => {
                            panicked = Some(payload);
                            handler.set(None);
                        }
                    }
                }
                if !over {
                    over = core.poll_drive(cx, &mut timers, close_timeout).is_ready();
                }
                if !over {
                    return Poll::Pending;
                }
                if handler.is_none() {
                    return Poll::Ready(End::Over);
                }
                let cut = cut.get_or_insert_with(|| Box::pin(sleep(close_timeout)));
                match cut.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(End::Cut),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await
        }; // A handler still running is dropped here, with what it held.
        match end {
            End::Over => {}
            End::Cut => {
                tracing::debug!(target: "wsdrain", "handler still running after its close: cut");
            }
            End::Forced => core.force(),
        }
        let (outcome, close_sent) = core.outcome();
        session.finish(outcome, close_sent);
        drop(session);
        if let Some(payload) = panicked {
            panic::resume_unwind(payload);
        }
    }
}
