//! [`GracefulSocket`]: axum's `WebSocket`, closed with a hint when its turn comes.

use std::{
    fmt,
    future::{Future, poll_fn},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, ready},
    time::Duration,
};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{Sink, SinkExt, Stream, StreamExt, stream::FusedStream};
use tokio::time::{Sleep, sleep};
use wsdrain_core::{Drain, SessionGuard, SessionOutcome, protocol::CloseHint};

/// Error of [`GracefulSocket::send`] and its `Sink`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The session is being closed by the drain (its Close was sent first);
    /// stop sending and return from the handler.
    Closing,
    /// An error of the underlying socket.
    Axum(axum::Error),
}

impl Error {
    /// True when the drain is closing this session.
    pub fn is_closing(&self) -> bool {
        matches!(self, Error::Closing)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closing => f.write_str("the session is closing: the server is draining"),
            Error::Axum(e) => write!(f, "websocket error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Closing => None,
            Error::Axum(e) => Some(e),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Normal traffic.
    Open,
    /// Our turn came: the goodbye (if any) and the Close are being written.
    SendClose(CloseHint),
    /// Close written, being flushed.
    Flush,
    /// Close sent; reading until the peer's Close or the timeout.
    AwaitPeer,
    /// The peer sent Close first; axum answers it, we read to the end.
    PeerClosing,
    /// The application sent its own Close; we read to the end.
    AppClosed,
    /// Nothing more to do.
    Done,
}

/// The socket and its session, moved to the heap so the session task can
/// take it back when a handler ends (or is cut) in the middle of a close.
pub(crate) struct Core {
    ws: WebSocket,
    session: SessionGuard,
    state: State,
    timer: Option<Pin<Box<Sleep>>>,
    goodbye: Option<Message>,
}

/// Where a dropped socket leaves an unfinished close for its session task.
#[derive(Default)]
pub(crate) struct Linger(Mutex<Option<Box<Core>>>);

impl Linger {
    pub(crate) fn take(&self) -> Option<Box<Core>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn put(&self, core: Box<Core>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(core);
    }
}

impl Core {
    fn begin_close(&mut self, hint: CloseHint, timeout: Duration) {
        self.state = State::SendClose(hint);
        self.timer = Some(Box::pin(sleep(timeout)));
        self.session.mark_close_sent();
        tracing::debug!(target: "wsdrain", hint_ms = hint.retry_after_ms(), "session closing");
    }

    fn close_timeout(&self) -> Duration {
        self.session.drain().policy().close_timeout()
    }

    /// Starts the close if the turn came while Open; registers for the wake-up otherwise.
    fn poll_turn(&mut self, cx: &mut Context<'_>) {
        if self.state == State::Open {
            if let Poll::Ready(hint) = self.session.poll_turn(cx) {
                self.begin_close(hint, self.close_timeout());
            }
        }
    }

    fn check_turn(&mut self) {
        if self.state == State::Open {
            if let Some(hint) = self.session.turn() {
                self.begin_close(hint, self.close_timeout());
            }
        }
    }

    /// True (and Done) once the close timer fired.
    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let fired = self
            .timer
            .as_mut()
            .is_some_and(|t| t.as_mut().poll(cx).is_ready());
        if fired {
            if matches!(
                self.state,
                State::SendClose(_) | State::Flush | State::AwaitPeer
            ) {
                self.session.set_outcome(SessionOutcome::TimedOut);
                tracing::debug!(target: "wsdrain", "peer did not answer Close in time");
            }
            self.state = State::Done;
        }
        fired
    }

    /// Writes the goodbye and the Close; ready once they are flushed (or failed).
    fn poll_send_close(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.timed_out(cx) {
                return Poll::Ready(());
            }
            match self.state {
                State::SendClose(hint) => {
                    if ready!(self.ws.poll_ready_unpin(cx)).is_err() {
                        self.finish_with(SessionOutcome::PeerClosed);
                        return Poll::Ready(());
                    }
                    let msg = match self.goodbye.take() {
                        Some(goodbye) => goodbye,
                        None => {
                            let policy = self.session.drain().policy();
                            self.state = State::Flush;
                            Message::Close(Some(CloseFrame {
                                code: policy.close_code(),
                                reason: policy.close_reason(hint).into(),
                            }))
                        }
                    };
                    if self.ws.start_send_unpin(msg).is_err() {
                        self.finish_with(SessionOutcome::PeerClosed);
                        return Poll::Ready(());
                    }
                }
                State::Flush => {
                    if ready!(self.ws.poll_flush_unpin(cx)).is_err() {
                        self.finish_with(SessionOutcome::PeerClosed);
                        return Poll::Ready(());
                    }
                    self.state = State::AwaitPeer;
                }
                _ => return Poll::Ready(()),
            }
        }
    }

    fn finish_with(&mut self, outcome: SessionOutcome) {
        self.session.set_outcome(outcome);
        self.state = State::Done;
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, axum::Error>>> {
        loop {
            // Checked before every read, so a flooding peer cannot starve the close.
            self.check_turn();
            match self.state {
                State::Open => match self.ws.poll_next_unpin(cx) {
                    Poll::Pending => {
                        // Register for the turn only when about to sleep.
                        self.poll_turn(cx);
                        if self.state == State::Open {
                            return Poll::Pending;
                        }
                    }
                    Poll::Ready(Some(Ok(Message::Close(frame)))) => {
                        self.session.set_outcome(SessionOutcome::PeerClosed);
                        self.state = State::PeerClosing;
                        return Poll::Ready(Some(Ok(Message::Close(frame))));
                    }
                    Poll::Ready(Some(item)) => return Poll::Ready(Some(item)),
                    Poll::Ready(None) => {
                        self.finish_with(SessionOutcome::PeerClosed);
                        return Poll::Ready(None);
                    }
                },
                State::SendClose(_) | State::Flush => ready!(self.poll_send_close(cx)),
                State::AwaitPeer => {
                    if self.timed_out(cx) {
                        return Poll::Ready(None);
                    }
                    match ready!(self.ws.poll_next_unpin(cx)) {
                        Some(Ok(Message::Close(_))) | None => {
                            self.finish_with(SessionOutcome::Clean);
                            return Poll::Ready(None);
                        }
                        // Sent by the peer before it saw our Close (RFC 6455 §5.5.1): delivered.
                        Some(Ok(msg)) => return Poll::Ready(Some(Ok(msg))),
                        Some(Err(_)) => {
                            self.finish_with(SessionOutcome::PeerClosed);
                            return Poll::Ready(None);
                        }
                    }
                }
                State::PeerClosing | State::AppClosed => {
                    if self.timed_out(cx) {
                        return Poll::Ready(None);
                    }
                    match ready!(self.ws.poll_next_unpin(cx)) {
                        None => {
                            self.state = State::Done;
                            return Poll::Ready(None);
                        }
                        Some(item) => return Poll::Ready(Some(item)),
                    }
                }
                State::Done => return Poll::Ready(None),
            }
        }
    }

    fn needs_finishing(&self) -> bool {
        match self.state {
            State::Open => self.session.turn().is_some(),
            State::Done => false,
            _ => true,
        }
    }

    /// Completes whatever close is under way, within its bounds.
    pub(crate) async fn finish(&mut self, takeover_timeout: Duration) {
        if self.state == State::Open {
            match self.session.turn() {
                Some(hint) => self.begin_close(hint, takeover_timeout),
                None => return,
            }
        }
        if self.timer.is_none() {
            self.timer = Some(Box::pin(sleep(takeover_timeout)));
        }
        while poll_fn(|cx| self.poll_next(cx)).await.is_some() {}
    }
}

/// A WebSocket that closes itself, with `Close(1001, "going away;
/// retry-after-ms=N")`, when the drain gives this session its turn.
///
/// It wraps axum's [`WebSocket`] and behaves like it until then:
///
/// * [`recv`](Self::recv) yields messages until the turn comes; then it sends
///   the Close itself, keeps reading until the peer's Close or
///   `close_timeout`, and returns `None`.
/// * [`send`](Self::send) on a closing session sends the Close first and
///   returns [`Error::Closing`], so push-only handlers are covered too.
/// * It implements [`Stream`] and [`Sink`], so `split()` works; the Close is
///   still sent exactly once.
/// * [`set_goodbye`](Self::set_goodbye) queues an application message that
///   goes out right before the Close.
///
/// Dropping it in the middle of a close hands the close to the session task,
/// which finishes it within the same bounds.
pub struct GracefulSocket {
    core: Option<Box<Core>>,
    linger: Arc<Linger>,
    drain: Drain,
}

impl fmt::Debug for GracefulSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GracefulSocket")
            .field("state", &self.core.as_ref().map(|c| c.state))
            .finish()
    }
}

impl GracefulSocket {
    pub(crate) fn new(ws: WebSocket, session: SessionGuard, linger: Arc<Linger>) -> Self {
        GracefulSocket {
            drain: session.drain().clone(),
            core: Some(Box::new(Core {
                ws,
                session,
                state: State::Open,
                timer: None,
                goodbye: None,
            })),
            linger,
        }
    }

    /// Receives the next message; `None` once the session is closed
    /// (by the peer, or by the drain after the closing handshake).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: all progress of a close lives in the socket, so a
    /// `select!` that drops this future loses nothing.
    pub async fn recv(&mut self) -> Option<Result<Message, axum::Error>> {
        self.next().await
    }

    /// Sends a message.
    ///
    /// # Errors
    ///
    /// [`Error::Closing`] once this session's turn came (its Close is sent
    /// first); [`Error::Axum`] for socket errors.
    ///
    /// # Cancel safety
    ///
    /// Like axum's `WebSocket::send`: if cancelled, the message may or may not
    /// have been queued.
    pub async fn send(&mut self, msg: Message) -> Result<(), Error> {
        SinkExt::send(self, msg).await
    }

    /// A message to send right before the drain's Close (e.g. an application
    /// "server restarting" notice). Replaces an earlier one.
    pub fn set_goodbye(&mut self, msg: Message) {
        if let Some(core) = self.core.as_mut() {
            core.goodbye = Some(msg);
        }
    }

    /// The hint this session is being closed with, once its turn came.
    pub fn close_hint(&self) -> Option<CloseHint> {
        self.core.as_ref().and_then(|c| c.session.turn())
    }

    /// The drain this session belongs to: its phase, and the
    /// [`draining`](Drain::draining) and [`closing`](Drain::closing) futures
    /// that let a handler say goodbye before its turn.
    pub fn drain(&self) -> &Drain {
        &self.drain
    }

    /// Resolves when the drain begins (this session's turn comes later).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub fn draining(&self) -> impl Future<Output = ()> + Send + 'static {
        self.drain.draining()
    }

    /// Resolves when the drain starts closing sessions.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub fn closing(&self) -> impl Future<Output = ()> + Send + 'static {
        self.drain.closing()
    }

    /// The selected subprotocol, if any.
    pub fn protocol(&self) -> Option<&axum::http::HeaderValue> {
        self.core.as_ref().and_then(|c| c.ws.protocol())
    }

    fn core(&mut self) -> Option<&mut Core> {
        self.core.as_deref_mut()
    }
}

impl Drop for GracefulSocket {
    fn drop(&mut self) {
        if let Some(core) = self.core.take() {
            if core.needs_finishing() {
                self.linger.put(core);
            }
        }
    }
}

impl Stream for GracefulSocket {
    type Item = Result<Message, axum::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut().core() {
            Some(core) => core.poll_next(cx),
            None => Poll::Ready(None),
        }
    }
}

impl FusedStream for GracefulSocket {
    fn is_terminated(&self) -> bool {
        self.core.as_ref().is_none_or(|c| c.state == State::Done)
    }
}

impl Sink<Message> for GracefulSocket {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let Some(core) = self.get_mut().core() else {
            return Poll::Ready(Err(Error::Closing));
        };
        core.check_turn();
        match core.state {
            State::Open | State::PeerClosing | State::AppClosed => {
                core.ws.poll_ready_unpin(cx).map_err(Error::Axum)
            }
            State::SendClose(_) | State::Flush => {
                ready!(core.poll_send_close(cx));
                Poll::Ready(Err(Error::Closing))
            }
            State::AwaitPeer | State::Done => Poll::Ready(Err(Error::Closing)),
        }
    }

    fn start_send(self: Pin<&mut Self>, msg: Message) -> Result<(), Error> {
        let Some(core) = self.get_mut().core() else {
            return Err(Error::Closing);
        };
        match core.state {
            State::Open => {
                if matches!(msg, Message::Close(_)) {
                    core.state = State::AppClosed;
                }
                core.ws.start_send_unpin(msg).map_err(Error::Axum)
            }
            State::PeerClosing | State::AppClosed => {
                core.ws.start_send_unpin(msg).map_err(Error::Axum)
            }
            _ => Err(Error::Closing),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let Some(core) = self.get_mut().core() else {
            return Poll::Ready(Ok(()));
        };
        match core.state {
            State::Open | State::PeerClosing | State::AppClosed => {
                core.ws.poll_flush_unpin(cx).map_err(Error::Axum)
            }
            State::SendClose(_) | State::Flush => {
                ready!(core.poll_send_close(cx));
                Poll::Ready(Ok(()))
            }
            State::AwaitPeer | State::Done => Poll::Ready(Ok(())),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let Some(core) = self.get_mut().core() else {
            return Poll::Ready(Ok(()));
        };
        match core.state {
            State::Open | State::PeerClosing | State::AppClosed => {
                if core.state == State::Open {
                    core.state = State::AppClosed;
                }
                core.ws.poll_close_unpin(cx).map_err(Error::Axum)
            }
            State::SendClose(_) | State::Flush => {
                ready!(core.poll_send_close(cx));
                Poll::Ready(Ok(()))
            }
            State::AwaitPeer | State::Done => Poll::Ready(Ok(())),
        }
    }
}
