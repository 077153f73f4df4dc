//! [`GracefulSocket`]: axum's `WebSocket` as a drained session.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{
    body::Bytes,
    extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket},
    http::HeaderValue,
};
use futures_util::{Sink, Stream, stream::FusedStream};
use wsdrain_core::{Drain, protocol::CloseHint, resume::ResumeStack, ws};

/// axum's WebSocket, as the session core sees it (the [`ws::Stack`] of
/// [`GracefulSocket`] and [`ResumableSocket`](crate::ResumableSocket)).
#[derive(Debug)]
pub struct Axum;

impl ws::Stack for Axum {
    type Socket = WebSocket;
    type Message = Message;
    type Error = axum::Error;

    fn close_frame(code: u16, reason: String) -> Message {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    }

    fn text_frame(text: String) -> Message {
        Message::Text(text.into())
    }

    fn is_close(message: &Message) -> bool {
        matches!(message, Message::Close(_))
    }
}

impl ResumeStack for Axum {
    fn data_frame(data: Bytes, text: bool) -> Message {
        if text {
            // Text entries are UTF-8 by construction; the check is the
            // constructor's, without a copy.
            if let Ok(text) = Utf8Bytes::try_from(data.clone()) {
                return Message::Text(text);
            }
        }
        Message::Binary(data)
    }
}

/// The error of [`GracefulSocket`]'s `recv` and `send` alike:
/// [`Closing`](ws::Error::Closing) once the session is closing, or axum's
/// own error.
pub type Error = ws::Error<axum::Error>;

/// A WebSocket that closes itself, with `Close(1001, "going away;
/// retry-after-ms=N")`, when the drain gives this session its turn.
///
/// It wraps axum's [`WebSocket`] and behaves like it until then. At the turn
/// the session task (not the handler) sends the Close and awaits the
/// peer's, whoever holds the socket and whether or not anyone polls it:
///
/// * [`recv`](Self::recv) yields what the peer still sends, then `None` once
///   the close is over (handshake done, or `close_timeout`);
/// * [`send`](Self::send) returns [`Error::Closing`](ws::Error::Closing);
/// * [`closing`](Self::closing) resolves, for tasks that only push.
///
/// It implements [`Stream`] and [`Sink`], so `split()` works and the halves
/// may live in spawned tasks or a hub; the Close is still sent exactly once.
///
/// The handler's task is waited for: the session ends when the handler has
/// returned and the close is over, so cleanup after the socket runs before
/// the drain reports Closed. A handler still running `close_timeout` after
/// its close was over (it cannot learn of it, e.g. a push task asleep between
/// ticks) is dropped; put [`closing`](Self::closing) in its `select!` to end
/// it at its turn instead.
pub struct GracefulSocket {
    inner: ws::Socket<Axum>,
    protocol: Option<HeaderValue>,
}

impl fmt::Debug for GracefulSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GracefulSocket")
            .field("inner", &self.inner)
            .field("protocol", &self.protocol)
            .finish()
    }
}

impl GracefulSocket {
    pub(crate) fn new(inner: ws::Socket<Axum>, protocol: Option<HeaderValue>) -> Self {
        GracefulSocket { inner, protocol }
    }

    pub(crate) fn into_inner(self) -> ws::Socket<Axum> {
        self.inner
    }

    /// Receives the next message; `None` once the session is over (closed by
    /// the peer, or by the drain after the closing handshake).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the close lives in the session task, so a `select!` that
    /// drops this future loses nothing.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.inner.recv().await
    }

    /// Sends a message (and flushes it).
    ///
    /// # Errors
    ///
    /// [`Closing`](ws::Error::Closing) once this session is closing (its
    /// Close goes out from the session task);
    /// [`Transport`](ws::Error::Transport) for socket errors.
    ///
    /// # Cancel safety
    ///
    /// Like axum's `WebSocket::send`: if cancelled, the message may or may
    /// not have been queued.
    pub async fn send(&mut self, msg: Message) -> Result<(), Error> {
        self.inner.send(msg).await
    }

    /// Resolves when this session starts closing: its turn came, or the peer
    /// or the handler closed it, or the connection ended. Take it before a
    /// `split()` and put it in the `select!` of a task that only pushes.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub fn closing(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.closing()
    }

    /// Resolves when the drain begins (readiness turns 503); this session's
    /// turn comes later.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub fn draining(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.draining()
    }

    /// The drain this session belongs to.
    pub fn drain(&self) -> &Drain {
        self.inner.drain()
    }

    /// The hint this session is closed with, once its turn came.
    pub fn close_hint(&self) -> Option<CloseHint> {
        self.inner.close_hint()
    }

    /// Replaces this session's drain notice (sent `notice_lead` before the
    /// Close when the policy has a lead), or with `None` turns it off for
    /// this session, e.g. on a route whose protocol cannot carry it: the
    /// Close then comes at the turn.
    pub fn set_notice(&mut self, notice: Option<Message>) {
        self.inner.set_notice(notice);
    }

    /// A message to send right before the drain's Close (e.g. an application
    /// "server restarting" notice). Replaces an earlier one.
    pub fn set_goodbye(&mut self, msg: Message) {
        self.inner.set_goodbye(msg);
    }

    /// The selected subprotocol, if any.
    pub fn protocol(&self) -> Option<&HeaderValue> {
        self.protocol.as_ref()
    }
}

impl Stream for GracefulSocket {
    type Item = Result<Message, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

impl FusedStream for GracefulSocket {
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}

impl Sink<Message> for GracefulSocket {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, msg: Message) -> Result<(), Error> {
        Pin::new(&mut self.inner).start_send(msg)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
