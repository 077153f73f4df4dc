//! [`Socket`]: what the application's handler holds.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::{Sink, Stream, StreamExt, stream::FusedStream};
use wsdrain_protocol::CloseHint;

use super::{Error, Stack, core::Core};
use crate::Drain;

/// A WebSocket whose session closes itself, with `Close(1001, "going away;
/// retry-after-ms=N")`, when the drain gives it its turn.
///
/// It behaves like the stack's own socket until then. From the turn on the
/// session task writes the Close and awaits the peer's, whoever holds this
/// socket and whether or not anyone polls it:
///
/// * [`recv`](Self::recv) yields what the peer still sends, then `None` once
///   the close is over (handshake done, or `close_timeout`);
/// * [`send`](Self::send) returns [`Error::Closing`];
/// * [`closing`](Self::closing) resolves, for tasks that only push.
///
/// It implements [`Stream`] and [`Sink`], so `split()` works and the halves
/// may live in any tasks; the Close is still sent exactly once. Dropping it
/// in the middle of a close leaves the close to the session task.
pub struct Socket<K: Stack> {
    core: Arc<Core<K>>,
}

impl<K: Stack> fmt::Debug for Socket<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("state", &self.core.state())
            .field("hint", &self.close_hint())
            .finish()
    }
}

impl<K: Stack> Socket<K> {
    pub(crate) fn new(core: Arc<Core<K>>) -> Self {
        Socket { core }
    }

    /// Receives the next message; `None` once the session is over (closed by
    /// the peer, or by the drain after the closing handshake).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the close lives in the session task, so a `select!` that
    /// drops this future loses nothing.
    pub async fn recv(&mut self) -> Option<Result<K::Message, Error<K::Error>>> {
        self.next().await
    }

    /// Sends a message (and flushes it).
    ///
    /// # Errors
    ///
    /// [`Error::Closing`] once this session is closing (its Close goes out
    /// from the session task); [`Error::Transport`] for socket errors.
    ///
    /// # Cancel safety
    ///
    /// Like the stack's own `send`: if cancelled, the message may or may not
    /// have been queued.
    pub async fn send(&mut self, msg: K::Message) -> Result<(), Error<K::Error>> {
        // One lock for ready, start and flush, where `SinkExt::send` takes three.
        let mut msg = Some(msg);
        std::future::poll_fn(|cx| self.core.poll_send(cx, &mut msg)).await
    }

    /// Resolves when this session starts closing: its turn came (its Close
    /// is going out), or the peer or the application closed it, or the
    /// connection ended. Take it before a `split()` and put it in the
    /// `select!` of a task that only pushes, so the task ends at once
    /// instead of at its next send.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it holds no state but the session.
    pub fn closing(&self) -> impl Future<Output = ()> + Send + 'static {
        let core = self.core.clone();
        async move { core.left_open().await }
    }

    /// Resolves when the drain begins (readiness turns 503); this session's
    /// turn comes later.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub fn draining(&self) -> impl Future<Output = ()> + Send + 'static {
        self.core.drain.draining()
    }

    /// The drain this session belongs to.
    pub fn drain(&self) -> &Drain {
        &self.core.drain
    }

    /// The hint this session is closed with, once its turn came.
    pub fn close_hint(&self) -> Option<CloseHint> {
        self.core.signal.turn()
    }

    /// Replaces this session's drain notice (sent `notice_lead` before the
    /// Close when the policy has a lead), or with `None` turns it off for
    /// this session, e.g. on a route whose protocol cannot carry it: the
    /// Close then comes at the turn.
    pub fn set_notice(&self, notice: Option<K::Message>) {
        self.core.set_notice(notice);
    }

    /// A message to send right before the drain's Close (e.g. an application
    /// "server restarting" notice). Replaces an earlier one.
    pub fn set_goodbye(&self, msg: K::Message) {
        self.core.set_goodbye(msg);
    }
}

impl<K: Stack> Drop for Socket<K> {
    fn drop(&mut self) {
        self.core.drop_handle();
    }
}

impl<K: Stack> Stream for Socket<K> {
    type Item = Result<K::Message, Error<K::Error>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.core.poll_recv(cx)
    }
}

impl<K: Stack> FusedStream for Socket<K> {
    fn is_terminated(&self) -> bool {
        self.core.is_terminated()
    }
}

impl<K: Stack> Sink<K::Message> for Socket<K> {
    type Error = Error<K::Error>;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.core.poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: K::Message) -> Result<(), Self::Error> {
        self.core.start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.core.poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.core.poll_close(cx)
    }
}
