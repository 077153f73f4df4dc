//! The shared core of one session: the stack's socket and the close state,
//! under one short lock that is never held across an `await`.
//!
//! Two parties poll it. The application, through its [`Socket`](super::Socket)
//! (or the halves of a `split()`), drives the socket while the session is
//! open. The session task ([`run`](super::run)) drives it from the session's
//! turn on: it writes the goodbye and the Close, reads until the peer's Close,
//! and drops the connection. Exactly one of them does I/O in each state, so
//! neither steals the other's wake-ups; at every hand-over the other side's
//! wakers are woken here.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use tokio::{
    sync::Notify,
    time::{Instant, Sleep, sleep},
};
use wsdrain_protocol::CloseHint;

use super::{Error, Stack};
use crate::{Drain, outcome::SessionOutcome, registry::SessionSignal};

/// One item of a session's stream.
pub(crate) type Received<K> = Result<<K as Stack>::Message, Error<<K as Stack>::Error>>;

/// Messages the peer sends during our close that wait for a reader. Past
/// this the session task stops reading until the reader takes some; the
/// close timeout bounds the wait.
pub(crate) const BUFFERED_MAX: usize = 64;

/// Where a session stands. The application does the I/O in `Open`,
/// `PeerClosed` and `AppClosed`; the session task in the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Normal traffic.
    Open,
    /// The peer's Close was read; the stack answers it, the application
    /// reads to the end.
    PeerClosed,
    /// The application sent its own Close and reads to the end.
    AppClosed,
    /// Our turn came: the goodbye (if any) and the Close are being written.
    SendClose,
    /// Our Close is written and being flushed.
    Flush,
    /// Our Close went out; reading until the peer's Close.
    AwaitPeer,
    /// A close the application began (or the peer's) is finished by the
    /// session task: flush, then read to the end.
    Finish,
    /// Over: the connection is dropped.
    Done,
}

impl State {
    fn driven(self) -> bool {
        matches!(
            self,
            State::SendClose | State::Flush | State::AwaitPeer | State::Finish
        )
    }
}

pub(crate) struct Inner<K: Stack> {
    io: Option<K::Socket>,
    state: State,
    goodbye: Option<K::Message>,
    buffered: VecDeque<K::Message>,
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// The application has read at least once: data the peer sends during
    /// our close is kept for it (otherwise dropped, RFC 6455 §1.4).
    reader_seen: bool,
    handle_alive: bool,
    outcome: SessionOutcome,
    close_sent: Option<Instant>,
}

impl<K: Stack> Inner<K> {
    fn wake_app(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }
}

fn store(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

/// True (every time after) once `timer` fired.
fn fired(timer: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>) -> bool {
    timer
        .as_mut()
        .is_some_and(|t| t.as_mut().poll(cx).is_ready())
}

pub(crate) struct Core<K: Stack> {
    inner: Mutex<Inner<K>>,
    pub(crate) signal: Arc<SessionSignal>,
    pub(crate) drain: Drain,
    /// Something the session task must look at changed (the handle was
    /// dropped, the state left `Open`, the reader made room).
    attention: AtomicBool,
    /// Wakes [`Socket::closing`](super::Socket::closing) when `Open` ends.
    left_open: Notify,
}

impl<K: Stack> Core<K> {
    pub(crate) fn new(io: K::Socket, signal: Arc<SessionSignal>, drain: Drain) -> Self {
        Core {
            inner: Mutex::new(Inner {
                io: Some(io),
                state: State::Open,
                goodbye: None,
                buffered: VecDeque::new(),
                reader: None,
                writer: None,
                reader_seen: false,
                handle_alive: true,
                outcome: SessionOutcome::Ended,
                close_sent: None,
            }),
            signal,
            drain,
            attention: AtomicBool::new(false),
            left_open: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K>> {
        // Every mutation under this lock leaves the state consistent, and a
        // panicking stack must not take the drain down with it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the session task to look.
    fn alert(&self) {
        self.attention.store(true, Ordering::Release);
        self.signal.wake_task();
    }

    fn leave_open(&self, inner: &mut Inner<K>, to: State) {
        inner.state = to;
        inner.wake_app();
        self.left_open.notify_waiters();
        self.alert();
    }

    /// The turn came while `Open`: hand the socket to the session task.
    fn begin_close(&self, inner: &mut Inner<K>) {
        tracing::debug!(target: "wsdrain", "session closing");
        self.leave_open(inner, State::SendClose);
    }

    /// Over: drops the connection and wakes everyone.
    fn finish(&self, inner: &mut Inner<K>) {
        let was_open = inner.state == State::Open;
        inner.state = State::Done;
        inner.io = None;
        inner.wake_app();
        if was_open {
            self.left_open.notify_waiters();
        }
        self.alert();
    }

    fn turn(&self) -> Option<CloseHint> {
        self.signal.turn()
    }

    pub(crate) fn state(&self) -> State {
        self.lock().state
    }

    pub(crate) fn set_goodbye(&self, msg: K::Message) {
        self.lock().goodbye = Some(msg);
    }

    pub(crate) fn is_terminated(&self) -> bool {
        let inner = self.lock();
        inner.state == State::Done && inner.buffered.is_empty()
    }

    /// The outcome and the moment our Close went out, for the registry.
    pub(crate) fn outcome(&self) -> (SessionOutcome, Option<Instant>) {
        let inner = self.lock();
        (inner.outcome, inner.close_sent)
    }

    /// Resolves once the session leaves `Open` (its turn, the peer's Close,
    /// the application's Close, or the end of the connection).
    pub(crate) async fn left_open(&self) {
        loop {
            let notified = self.left_open.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.state() != State::Open {
                return;
            }
            notified.await;
        }
    }

    // ---- the application's side -------------------------------------------

    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Received<K>>> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.reader_seen = true;
        loop {
            match inner.state {
                State::Open | State::PeerClosed | State::AppClosed => {
                    // Checked before every read, so a flooding peer cannot
                    // starve the close.
                    if inner.state == State::Open && self.turn().is_some() {
                        self.begin_close(inner);
                        continue;
                    }
                    let Some(io) = inner.io.as_mut() else {
                        return Poll::Ready(None);
                    };
                    return match io.poll_next_unpin(cx) {
                        Poll::Pending => {
                            store(&mut inner.reader, cx);
                            Poll::Pending
                        }
                        Poll::Ready(Some(Ok(msg))) => {
                            if inner.state == State::Open && K::is_close(&msg) {
                                inner.outcome = SessionOutcome::PeerClosed;
                                self.leave_open(inner, State::PeerClosed);
                            }
                            Poll::Ready(Some(Ok(msg)))
                        }
                        Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::Transport(e)))),
                        Poll::Ready(None) => {
                            if inner.state == State::Open {
                                inner.outcome = SessionOutcome::PeerClosed;
                            }
                            self.finish(inner);
                            Poll::Ready(None)
                        }
                    };
                }
                State::Done => return Poll::Ready(inner.buffered.pop_front().map(Ok)),
                _ => {
                    if let Some(msg) = inner.buffered.pop_front() {
                        if inner.buffered.len() + 1 == BUFFERED_MAX {
                            self.alert(); // the session task may wait for room
                        }
                        return Poll::Ready(Some(Ok(msg)));
                    }
                    store(&mut inner.reader, cx);
                    return Poll::Pending;
                }
            }
        }
    }

    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error<K::Error>>> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        match inner.state {
            State::Open | State::PeerClosed | State::AppClosed => {
                if inner.state == State::Open && self.turn().is_some() {
                    self.begin_close(inner);
                    return Poll::Ready(Err(Error::Closing));
                }
                let Some(io) = inner.io.as_mut() else {
                    return Poll::Ready(Err(Error::Closing));
                };
                match io.poll_ready_unpin(cx) {
                    Poll::Pending => {
                        store(&mut inner.writer, cx);
                        Poll::Pending
                    }
                    Poll::Ready(r) => Poll::Ready(r.map_err(Error::Transport)),
                }
            }
            _ => Poll::Ready(Err(Error::Closing)),
        }
    }

    pub(crate) fn start_send(&self, msg: K::Message) -> Result<(), Error<K::Error>> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        match inner.state {
            State::Open | State::PeerClosed | State::AppClosed => {
                let close = inner.state == State::Open && K::is_close(&msg);
                let Some(io) = inner.io.as_mut() else {
                    return Err(Error::Closing);
                };
                io.start_send_unpin(msg).map_err(Error::Transport)?;
                if close {
                    self.leave_open(inner, State::AppClosed);
                }
                Ok(())
            }
            _ => Err(Error::Closing),
        }
    }

    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error<K::Error>>> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        match inner.state {
            State::Open | State::PeerClosed | State::AppClosed => {
                let Some(io) = inner.io.as_mut() else {
                    return Poll::Ready(Ok(()));
                };
                match io.poll_flush_unpin(cx) {
                    Poll::Pending => {
                        store(&mut inner.writer, cx);
                        Poll::Pending
                    }
                    Poll::Ready(r) => Poll::Ready(r.map_err(Error::Transport)),
                }
            }
            // The session task flushes what was queued before its Close.
            _ => Poll::Ready(Ok(())),
        }
    }

    pub(crate) fn poll_close(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error<K::Error>>> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        match inner.state {
            State::Open | State::PeerClosed | State::AppClosed => {
                if inner.state == State::Open {
                    if self.turn().is_some() {
                        self.begin_close(inner);
                        store(&mut inner.writer, cx);
                        return Poll::Pending;
                    }
                    self.leave_open(inner, State::AppClosed);
                }
                let Some(io) = inner.io.as_mut() else {
                    return Poll::Ready(Ok(()));
                };
                match io.poll_close_unpin(cx) {
                    Poll::Pending => {
                        store(&mut inner.writer, cx);
                        Poll::Pending
                    }
                    Poll::Ready(r) => Poll::Ready(r.map_err(Error::Transport)),
                }
            }
            State::Done => Poll::Ready(Ok(())),
            // Closing already: resolves when the close is over.
            _ => {
                store(&mut inner.writer, cx);
                Poll::Pending
            }
        }
    }

    /// The application dropped its socket (both halves, after a split).
    pub(crate) fn drop_handle(&self) {
        let mut inner = self.lock();
        inner.handle_alive = false;
        inner.buffered.clear();
        drop(inner);
        self.alert();
    }

    // ---- the session task's side ------------------------------------------

    /// Drives the close; ready once the session is over (`Done`). `timer`
    /// bounds the close and is started when the session task takes over.
    pub(crate) fn poll_drive(
        &self,
        cx: &mut Context<'_>,
        timer: &mut Option<Pin<Box<Sleep>>>,
        close_timeout: Duration,
    ) -> Poll<()> {
        // Idle sessions stay off the lock: nothing to do while open, before
        // the turn and with nothing changed.
        if timer.is_none() && self.turn().is_none() && !self.attention.swap(false, Ordering::AcqRel)
        {
            return Poll::Pending;
        }
        self.attention.store(false, Ordering::Release);
        let mut guard = self.lock();
        let inner = &mut *guard;
        loop {
            let state = inner.state;
            if state.driven() {
                if timer.is_none() {
                    *timer = Some(Box::pin(sleep(close_timeout)));
                }
                if fired(timer, cx) {
                    if matches!(state, State::SendClose | State::Flush | State::AwaitPeer) {
                        inner.outcome = SessionOutcome::TimedOut;
                        tracing::debug!(target: "wsdrain", "peer did not answer Close in time");
                    }
                    self.finish(inner);
                    continue;
                }
            }
            match state {
                State::Open => {
                    if self.turn().is_some() {
                        self.begin_close(inner);
                    } else if !inner.handle_alive {
                        // Dropped without a close, like the raw socket.
                        self.finish(inner);
                    } else {
                        return Poll::Pending;
                    }
                }
                State::PeerClosed | State::AppClosed => {
                    if self.turn().is_some() || !inner.handle_alive {
                        // From here the session task reads; a waiting reader
                        // moves over to what it buffers.
                        inner.state = State::Finish;
                        inner.wake_app();
                    } else {
                        return Poll::Pending;
                    }
                }
                State::SendClose => {
                    let Some(io) = inner.io.as_mut() else {
                        self.finish(inner);
                        continue;
                    };
                    match io.poll_ready_unpin(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(_)) => {
                            inner.outcome = SessionOutcome::PeerClosed;
                            self.finish(inner);
                            continue;
                        }
                        Poll::Ready(Ok(())) => {}
                    }
                    let msg = match inner.goodbye.take() {
                        Some(goodbye) => goodbye,
                        None => {
                            let policy = self.drain.policy();
                            let hint = self.turn().unwrap_or(CloseHint::from_millis(0));
                            inner.state = State::Flush;
                            inner.close_sent = Some(Instant::now());
                            K::close_frame(policy.close_code(), policy.close_reason(hint))
                        }
                    };
                    if io.start_send_unpin(msg).is_err() {
                        inner.outcome = SessionOutcome::PeerClosed;
                        self.finish(inner);
                    }
                }
                State::Flush => {
                    let Some(io) = inner.io.as_mut() else {
                        self.finish(inner);
                        continue;
                    };
                    match io.poll_flush_unpin(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(())) => inner.state = State::AwaitPeer,
                        Poll::Ready(Err(_)) => {
                            inner.outcome = SessionOutcome::PeerClosed;
                            self.finish(inner);
                        }
                    }
                }
                State::AwaitPeer | State::Finish => {
                    if inner.buffered.len() >= BUFFERED_MAX {
                        return Poll::Pending; // the reader makes room, then alerts
                    }
                    let Some(io) = inner.io.as_mut() else {
                        self.finish(inner);
                        continue;
                    };
                    if state == State::Finish {
                        // Sends the stack's answer to the peer's Close, if any.
                        let _ = io.poll_flush_unpin(cx);
                    }
                    match io.poll_next_unpin(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Some(Ok(msg))) => {
                            if state == State::AwaitPeer && K::is_close(&msg) {
                                inner.outcome = SessionOutcome::Clean;
                                self.finish(inner);
                            } else if inner.reader_seen && inner.handle_alive {
                                // Sent before the peer saw our Close (RFC 6455 §5.5.1).
                                inner.buffered.push_back(msg);
                                if let Some(w) = inner.reader.take() {
                                    w.wake();
                                }
                            }
                        }
                        Poll::Ready(None) => {
                            if state == State::AwaitPeer {
                                inner.outcome = SessionOutcome::Clean;
                            }
                            self.finish(inner);
                        }
                        Poll::Ready(Some(Err(_))) => {
                            if state == State::AwaitPeer {
                                inner.outcome = SessionOutcome::PeerClosed;
                            }
                            self.finish(inner);
                        }
                    }
                }
                State::Done => {
                    inner.io = None;
                    return Poll::Ready(());
                }
            }
        }
    }

    /// The forced end: drops the connection wherever the socket lives.
    pub(crate) fn force(&self) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.outcome = SessionOutcome::Forced;
        if inner.state != State::Done {
            self.finish(inner);
        }
    }
}
