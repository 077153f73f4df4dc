//! The session task: runs the handler beside the session's close.

use std::{
    any::Any,
    fmt,
    future::Future,
    panic::{self, AssertUnwindSafe},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker},
};

use pin_project_lite::pin_project;
use tokio::time::{Sleep, sleep};

use super::{
    Stack,
    core::{Core, Timers},
    socket::Socket,
};
use crate::SessionGuard;

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
pub fn run<K, H, Fut>(io: K::Socket, session: SessionGuard, handler: H) -> Session<K, Fut>
where
    K: Stack,
    H: FnOnce(Socket<K>) -> Fut,
    Fut: Future<Output = ()>,
{
    let core = Arc::new(Core::<K>::new(
        io,
        session.signal.clone(),
        session.drain().clone(),
    ));
    let handler = handler(Socket::new(core.clone()));
    Session {
        handler: Handler {
            running: Some(handler),
        },
        core,
        session: Some(session),
        timers: Timers::default(),
        cut: None,
        waker: None,
        over: false,
        panicked: None,
    }
}

pin_project! {
    /// The handler's future, dropped in place as soon as it returns, so the
    /// socket it held is released at once.
    struct Handler<Fut> {
        #[pin]
        running: Option<Fut>,
    }
}

impl<Fut: Future<Output = ()>> Handler<Fut> {
    /// Polls the handler if it still runs; true once it returned (or panicked,
    /// with the payload kept in `panicked`).
    fn poll_done(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        panicked: &mut Option<Box<dyn Any + Send>>,
    ) -> bool {
        let Some(running) = self.as_mut().project().running.as_pin_mut() else {
            return true;
        };
        match panic::catch_unwind(AssertUnwindSafe(|| running.poll(cx))) {
            Ok(Poll::Pending) => return false,
            Ok(Poll::Ready(())) => {}
            Err(payload) => *panicked = Some(payload),
        }
        self.project().running.set(None);
        true
    }

    fn stop(self: Pin<&mut Self>) {
        self.project().running.set(None);
    }
}

pin_project! {
    /// The session task's future; see [`run`].
    #[must_use = "a session does nothing unless polled"]
    pub struct Session<K: Stack, Fut> {
        #[pin]
        handler: Handler<Fut>,
        core: Arc<Core<K>>,
        session: Option<SessionGuard>,
        timers: Timers,
        // Started when the close is over and the handler still runs.
        cut: Option<Pin<Box<Sleep>>>,
        // The waker registered with the signal and the core.
        waker: Option<Waker>,
        over: bool,
        panicked: Option<Box<dyn Any + Send>>,
    }
}

impl<K: Stack, Fut> fmt::Debug for Session<K, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("session", &self.session)
            .field("over", &self.over)
            .finish_non_exhaustive()
    }
}

impl<K: Stack, Fut: Future<Output = ()>> Future for Session<K, Fut> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let Some(session) = this.session.as_ref() else {
            return Poll::Ready(()); // polled after it ended
        };
        let close_timeout = session.drain().policy().close_timeout();
        // Registered first: a turn, a forced end or a change in the core
        // after this point wakes this task. The core wakes by reference, so
        // its waker stays; the signal's is taken by the turn (or the forced
        // end, which ends the session), so from the turn on it is registered
        // on every poll.
        let signal = &this.core.signal;
        if this.waker.as_ref().is_none_or(|w| !w.will_wake(cx.waker())) {
            *this.waker = Some(cx.waker().clone());
            this.core.set_driver(cx.waker());
            signal.register_task(cx);
        } else if signal.turn().is_some() {
            signal.register_task(cx);
        }
        let forced = signal.is_forced();
        if !forced {
            let mut returned;
            loop {
                returned = this.handler.as_mut().poll_done(cx, this.panicked);
                if *this.over {
                    break;
                }
                *this.over = this
                    .core
                    .poll_drive(cx, this.timers, close_timeout)
                    .is_ready();
                if !*this.over {
                    return Poll::Pending;
                }
                if returned {
                    break;
                }
                // The close just ended: the handler may end with it (its
                // reader saw the end); poll it once more before the cut.
            }
            if !returned {
                let cut = this
                    .cut
                    .get_or_insert_with(|| Box::pin(sleep(close_timeout)));
                if cut.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                tracing::debug!(target: "wsdrain", "handler still running after its close: cut");
            }
        }
        // A handler still running is dropped here, with what it held.
        this.handler.stop();
        if forced {
            this.core.force();
        }
        let (outcome, close_sent) = this.core.outcome();
        if let Some(mut session) = this.session.take() {
            session.finish(outcome, close_sent);
        }
        if let Some(payload) = this.panicked.take() {
            panic::resume_unwind(payload);
        }
        Poll::Ready(())
    }
}
