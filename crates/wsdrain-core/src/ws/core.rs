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
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Waker, ready},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use parking_lot::{Mutex, MutexGuard};
use tokio::{
    sync::Notify,
    time::{Instant, Sleep, sleep},
};
use wsdrain_protocol::{CloseHint, code, encode_notice};

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
    /// The turn came with a notice lead: the session task writes the notice
    /// (the application still reads; its writes wait).
    SendNotice,
    /// The notice went out; traffic goes on until the lead is over.
    Noticed,
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
    /// Before the Close: the application reads (and, but in `SendNotice`,
    /// writes) as usual.
    fn open(self) -> bool {
        matches!(self, State::Open | State::SendNotice | State::Noticed)
    }

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
    /// Allocated on first use: an open session that configured nothing
    /// carries a pointer, not the fields.
    extra: Option<Box<Extra<K>>>,
    /// Wakes [`Socket::closing`](super::Socket::closing) when `Open` ends;
    /// made by the first `closing()`.
    left_open: Option<Arc<Notify>>,
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// The session task, woken by reference on alerts.
    driver: Option<Waker>,
    /// The application has read at least once: data the peer sends during
    /// our close is kept for it (otherwise dropped, RFC 6455 §1.4).
    reader_seen: bool,
    handle_alive: bool,
    /// The notice was started; `SendNotice` flushes it.
    notice_queued: bool,
    outcome: SessionOutcome,
}

/// What only a closing session, or one the application configured, needs.
struct Extra<K: Stack> {
    goodbye: Option<K::Message>,
    /// The drain notice: the default one, a replacement, or none.
    notice: Notice<K::Message>,
    /// What the peer sent during our close, for the application's reader.
    buffered: VecDeque<K::Message>,
    close_sent: Option<Instant>,
}

fn extra<K: Stack>(slot: &mut Option<Box<Extra<K>>>) -> &mut Extra<K> {
    slot.get_or_insert_with(|| {
        Box::new(Extra {
            goodbye: None,
            notice: Notice::Default,
            buffered: VecDeque::new(),
            close_sent: None,
        })
    })
}

impl<K: Stack> Inner<K> {
    fn extra(&mut self) -> &mut Extra<K> {
        extra(&mut self.extra)
    }

    fn buffered_len(&self) -> usize {
        self.extra.as_ref().map_or(0, |e| e.buffered.len())
    }

    fn pop_buffered(&mut self) -> Option<K::Message> {
        self.extra.as_mut()?.buffered.pop_front()
    }

    fn notify_left_open(&self) {
        if let Some(n) = &self.left_open {
            n.notify_waiters();
        }
    }

    fn wake_app(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }
}

/// What the session sends as its drain notice.
pub(crate) enum Notice<M> {
    /// `{"type":"wsdrain.reconnect","close_in_ms":N}`.
    Default,
    /// The application's message instead.
    Custom(M),
    /// None: the Close comes at the turn (the route's protocol cannot carry
    /// the notice).
    Off,
}

#[inline]
fn store(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

/// The session task's timers; each starts when its phase does, so an idle
/// session carries none.
#[derive(Default)]
pub(crate) struct Timers {
    /// Bounds the close: `close_timeout` from the moment the session task
    /// takes over.
    close: Option<Pin<Box<Sleep>>>,
    /// The notice lead: the Close goes out when it is over.
    lead: Option<Pin<Box<Sleep>>>,
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
}

impl<K: Stack> Core<K> {
    pub(crate) fn new(io: K::Socket, signal: Arc<SessionSignal>, drain: Drain) -> Self {
        Core {
            inner: Mutex::new(Inner {
                io: Some(io),
                state: State::Open,
                extra: None,
                left_open: None,
                reader: None,
                writer: None,
                driver: None,
                reader_seen: false,
                handle_alive: true,
                notice_queued: false,
                outcome: SessionOutcome::Ended,
            }),
            signal,
            drain,
            attention: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K>> {
        // No poisoning: every mutation under this lock leaves the state
        // consistent, and a panicking stack must not take the drain down.
        self.inner.lock()
    }

    /// Tells the session task to look.
    fn alert(&self, inner: &Inner<K>) {
        self.attention.store(true, Ordering::Release);
        // By reference: the waker stays for the next alert, so the session
        // task need not register again on every poll.
        if let Some(w) = &inner.driver {
            w.wake_by_ref();
        }
    }

    /// The session task's waker, for alerts; called when it changes.
    pub(crate) fn set_driver(&self, waker: &Waker) {
        self.lock().driver = Some(waker.clone());
    }

    fn leave_open(&self, inner: &mut Inner<K>, to: State) {
        inner.state = to;
        inner.wake_app();
        inner.notify_left_open();
        self.alert(inner);
    }

    /// The turn came while `Open`: the notice first if there is one, else
    /// the Close; the session task takes the socket.
    fn on_turn(&self, inner: &mut Inner<K>) {
        if self.drain.policy().notice_lead().is_zero()
            || inner
                .extra
                .as_ref()
                .is_some_and(|e| matches!(e.notice, Notice::Off))
            || self.signal.is_try_again()
        {
            self.begin_close(inner);
        } else {
            tracing::debug!(target: "wsdrain", "session noticed");
            inner.state = State::SendNotice;
            self.alert(inner);
        }
    }

    /// The Close goes out now: hand the socket to the session task.
    fn begin_close(&self, inner: &mut Inner<K>) {
        tracing::debug!(target: "wsdrain", "session closing");
        self.leave_open(inner, State::SendClose);
    }

    /// Over: drops the connection and wakes everyone.
    fn finish(&self, inner: &mut Inner<K>) {
        let was_open = inner.state.open();
        inner.state = State::Done;
        inner.io = None;
        inner.wake_app();
        if was_open {
            inner.notify_left_open();
        }
        self.alert(inner);
    }

    #[inline]
    fn turn(&self) -> Option<CloseHint> {
        self.signal.turn()
    }

    pub(crate) fn state(&self) -> State {
        self.lock().state
    }

    pub(crate) fn set_goodbye(&self, msg: K::Message) {
        self.lock().extra().goodbye = Some(msg);
    }

    pub(crate) fn set_notice(&self, notice: Option<K::Message>) {
        self.lock().extra().notice = match notice {
            Some(msg) => Notice::Custom(msg),
            None => Notice::Off,
        };
    }

    pub(crate) fn is_terminated(&self) -> bool {
        let inner = self.lock();
        inner.state == State::Done && inner.buffered_len() == 0
    }

    /// The outcome and the moment our Close went out, for the registry.
    pub(crate) fn outcome(&self) -> (SessionOutcome, Option<Instant>) {
        let inner = self.lock();
        (
            inner.outcome,
            inner.extra.as_ref().and_then(|e| e.close_sent),
        )
    }

    /// Resolves once the session leaves `Open` (its turn, the peer's Close,
    /// the application's Close, or the end of the connection).
    pub(crate) async fn left_open(&self) {
        loop {
            let notify = {
                let mut inner = self.lock();
                if !inner.state.open() {
                    return;
                }
                inner.left_open.get_or_insert_with(Default::default).clone()
            };
            let notified = notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if !self.state().open() {
                return;
            }
            notified.await;
        }
    }

    // ---- the application's side -------------------------------------------

    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Received<K>>> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if !inner.reader_seen {
            inner.reader_seen = true;
        }
        loop {
            match inner.state {
                State::Open
                | State::SendNotice
                | State::Noticed
                | State::PeerClosed
                | State::AppClosed => {
                    // Checked before every read, so a flooding peer cannot
                    // starve the close.
                    if inner.state == State::Open && self.turn().is_some() {
                        self.on_turn(inner);
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
                            if inner.state.open() && K::is_close(&msg) {
                                // After our notice, the peer closing first is
                                // the handover it announced: a clean close.
                                inner.outcome = if inner.state == State::Open {
                                    SessionOutcome::PeerClosed
                                } else {
                                    SessionOutcome::Clean
                                };
                                self.leave_open(inner, State::PeerClosed);
                            }
                            Poll::Ready(Some(Ok(msg)))
                        }
                        Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::Transport(e)))),
                        Poll::Ready(None) => {
                            if inner.state.open() {
                                inner.outcome = SessionOutcome::PeerClosed;
                            }
                            self.finish(inner);
                            Poll::Ready(None)
                        }
                    };
                }
                State::Done => return Poll::Ready(inner.pop_buffered().map(Ok)),
                _ => {
                    if let Some(msg) = inner.pop_buffered() {
                        if inner.buffered_len() + 1 == BUFFERED_MAX {
                            self.alert(inner); // the session task may wait for room
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
        self.ready(&mut self.lock(), cx)
    }

    pub(crate) fn start_send(&self, msg: K::Message) -> Result<(), Error<K::Error>> {
        self.start(&mut self.lock(), msg)
    }

    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error<K::Error>>> {
        self.flush(&mut self.lock(), cx)
    }

    /// `ready`, `start_send` and `flush` of one message under one lock: the
    /// path of `Socket::send`. `msg` is taken once it is queued.
    pub(crate) fn poll_send(
        &self,
        cx: &mut Context<'_>,
        msg: &mut Option<K::Message>,
    ) -> Poll<Result<(), Error<K::Error>>> {
        let mut guard = self.lock();
        if msg.is_some() {
            ready!(self.ready(&mut guard, cx))?;
            if let Some(msg) = msg.take() {
                self.start(&mut guard, msg)?;
            }
        }
        self.flush(&mut guard, cx)
    }

    fn ready(
        &self,
        inner: &mut Inner<K>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error<K::Error>>> {
        match inner.state {
            State::Open | State::Noticed | State::PeerClosed | State::AppClosed => {
                if inner.state == State::Open && self.turn().is_some() {
                    self.on_turn(inner);
                    return self.poll_ready_again(inner, cx);
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
            // The session task is writing the notice: this write waits.
            State::SendNotice => {
                store(&mut inner.writer, cx);
                Poll::Pending
            }
            _ => Poll::Ready(Err(Error::Closing)),
        }
    }

    /// After the turn was seen from a write: the Close is going out, or the
    /// notice is and this write waits for it.
    fn poll_ready_again(
        &self,
        inner: &mut Inner<K>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error<K::Error>>> {
        if inner.state == State::SendNotice {
            store(&mut inner.writer, cx);
            return Poll::Pending;
        }
        Poll::Ready(Err(Error::Closing))
    }

    fn start(&self, inner: &mut Inner<K>, msg: K::Message) -> Result<(), Error<K::Error>> {
        match inner.state {
            State::Open | State::Noticed | State::PeerClosed | State::AppClosed => {
                let close = inner.state.open() && K::is_close(&msg);
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

    fn flush(
        &self,
        inner: &mut Inner<K>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error<K::Error>>> {
        match inner.state {
            State::Open | State::Noticed | State::PeerClosed | State::AppClosed => {
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
            State::Open | State::Noticed | State::PeerClosed | State::AppClosed => {
                if inner.state.open() {
                    if inner.state == State::Open && self.turn().is_some() {
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
        if let Some(e) = inner.extra.as_mut() {
            e.buffered.clear();
        }
        self.alert(&inner);
    }

    // ---- the session task's side ------------------------------------------

    /// Drives the notice and the close; ready once the session is over
    /// (`Done`). The timers bound them and start when the session task
    /// takes over.
    pub(crate) fn poll_drive(
        &self,
        cx: &mut Context<'_>,
        timers: &mut Timers,
        close_timeout: Duration,
    ) -> Poll<()> {
        // Idle sessions stay off the lock: nothing to do while open, before
        // the turn and with nothing changed.
        if timers.close.is_none()
            && timers.lead.is_none()
            && self.turn().is_none()
            && !self.attention.load(Ordering::Acquire)
        {
            return Poll::Pending;
        }
        self.attention.store(false, Ordering::Release);
        let mut guard = self.lock();
        let inner = &mut *guard;
        loop {
            let state = inner.state;
            if state.driven() {
                if timers.close.is_none() {
                    timers.close = Some(Box::pin(sleep(close_timeout)));
                }
                if fired(&mut timers.close, cx) {
                    if matches!(state, State::SendClose | State::Flush | State::AwaitPeer) {
                        inner.outcome = SessionOutcome::TimedOut;
                        tracing::debug!(target: "wsdrain", "peer did not answer Close in time");
                    }
                    self.finish(inner);
                    continue;
                }
            }
            if matches!(state, State::SendNotice | State::Noticed) {
                if timers.lead.is_none() {
                    let lead = self.drain.policy().notice_lead();
                    timers.lead = Some(Box::pin(sleep(lead)));
                }
                // The lead is over (even if the notice could not be written):
                // the Close goes out.
                if fired(&mut timers.lead, cx) || !inner.handle_alive {
                    self.begin_close(inner);
                    continue;
                }
            }
            match state {
                State::Open => {
                    if self.turn().is_some() {
                        self.on_turn(inner);
                    } else if !inner.handle_alive {
                        // Dropped without a close, like the raw socket.
                        self.finish(inner);
                    } else {
                        return Poll::Pending;
                    }
                }
                State::SendNotice => {
                    let Some(io) = inner.io.as_mut() else {
                        self.finish(inner);
                        continue;
                    };
                    if !inner.notice_queued {
                        match io.poll_ready_unpin(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Err(_)) => {
                                inner.outcome = SessionOutcome::PeerClosed;
                                self.finish(inner);
                                continue;
                            }
                            Poll::Ready(Ok(())) => {}
                        }
                        let lead = self.drain.policy().notice_lead();
                        let custom = inner
                            .extra
                            .as_mut()
                            .map(|e| std::mem::replace(&mut e.notice, Notice::Off));
                        let notice = match custom {
                            Some(Notice::Custom(msg)) => msg,
                            _ => K::text_frame(encode_notice(
                                u64::try_from(lead.as_millis()).unwrap_or(u64::MAX),
                            )),
                        };
                        if io.start_send_unpin(notice).is_err() {
                            inner.outcome = SessionOutcome::PeerClosed;
                            self.finish(inner);
                            continue;
                        }
                        inner.notice_queued = true;
                    }
                    match io.poll_flush_unpin(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(())) => {
                            // The application writes again until the lead is over.
                            inner.state = State::Noticed;
                            inner.wake_app();
                        }
                        Poll::Ready(Err(_)) => {
                            inner.outcome = SessionOutcome::PeerClosed;
                            self.finish(inner);
                        }
                    }
                }
                State::Noticed => return Poll::Pending,
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
                    let msg = match inner.extra.as_mut().and_then(|e| e.goodbye.take()) {
                        Some(goodbye) => goodbye,
                        None => {
                            let policy = self.drain.policy();
                            let hint = self.turn().unwrap_or(CloseHint::from_millis(0));
                            let code = if self.signal.is_try_again() {
                                code::TRY_AGAIN_LATER
                            } else {
                                policy.close_code()
                            };
                            inner.state = State::Flush;
                            extra(&mut inner.extra).close_sent = Some(Instant::now());
                            K::close_frame(code, policy.close_reason(hint))
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
                    if inner.buffered_len() >= BUFFERED_MAX {
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
                                inner.extra().buffered.push_back(msg);
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
