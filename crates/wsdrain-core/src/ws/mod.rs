//! WebSocket sessions that own their close, for any WebSocket stack.
//!
//! A session is one upgraded connection: the application's handler gets a
//! [`Socket`], a `Stream` + `Sink` over the stack's own socket, and wsdrain
//! keeps a **session task** beside it ([`run`]) that owns the close:
//!
//! * at the session's turn the task itself writes `Close(code, hint)` (after an
//!   optional goodbye), whoever holds the socket: the handler, split halves in
//!   spawned tasks, a sink kept in a hub, or nobody; with a `notice_lead` in
//!   the policy it first writes the drain notice
//!   (`{"type":"wsdrain.reconnect","close_in_ms":N}`) and the Close follows
//!   the lead later, unless the peer closes first;
//! * it then reads until the peer's Close, bounded by `close_timeout`, handing
//!   data the peer still sends to a reader that is polling;
//! * it drops the connection when the close is over, and at the forced end;
//! * it waits for the handler to return, and cuts a handler that is still
//!   running `close_timeout` after its close was over.
//!
//! The application's side and the session task meet in one small shared core,
//! polled under a short lock that is never held across an `await`. Until the
//! turn the application drives the socket alone, exactly as it would the raw
//! one; from the turn on the session task does all the I/O and the
//! application sees [`Error::Closing`] on `send` and the end of the stream on
//! `recv`.
//!
//! A stack plugs in by implementing [`Stack`] on a marker type: it names the
//! socket, message and error types and spells a Close frame. `wsdrain-axum`
//! and `wsdrain-tungstenite` are such adapters; this crate imports neither.

mod core;
mod session;
mod socket;
#[cfg(test)]
mod tests;

use std::fmt;

use futures_util::{Sink, Stream};

pub use session::run;
pub use socket::Socket;

/// How a WebSocket stack spells what the drain needs, implemented on a marker
/// type by each adapter (`wsdrain-axum`, `wsdrain-tungstenite`).
pub trait Stack: Send + Sync + 'static {
    /// The stack's socket: a stream of received messages and a sink for them.
    type Socket: Stream<Item = Result<Self::Message, Self::Error>>
        + Sink<Self::Message, Error = Self::Error>
        + Unpin
        + Send
        + 'static;
    /// One WebSocket message.
    type Message: Send + 'static;
    /// The socket's error.
    type Error: Send + 'static;

    /// A Close frame with this code and reason (at most 123 bytes).
    fn close_frame(code: u16, reason: String) -> Self::Message;

    /// A text message (the drain notice).
    fn text_frame(text: String) -> Self::Message;

    /// True for a Close frame.
    fn is_close(message: &Self::Message) -> bool;
}

/// The error of a [`Socket`], for `recv` and `send` alike, so `?` works on
/// both.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error<E> {
    /// The session is closing or closed: its Close went out (or the
    /// connection ended). Stop sending and return from the handler.
    Closing,
    /// An error of the underlying socket.
    Transport(E),
}

impl<E> Error<E> {
    /// True when the session is closing (not a transport failure).
    pub fn is_closing(&self) -> bool {
        matches!(self, Error::Closing)
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closing => f.write_str("the session is closing"),
            Error::Transport(e) => write!(f, "websocket error: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Closing => None,
            Error::Transport(e) => Some(e),
        }
    }
}
