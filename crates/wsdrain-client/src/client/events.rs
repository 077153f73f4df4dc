//! [`Event`]s: what a client observed, in order, as a [`Stream`].

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use wsdrain_protocol::CloseHint;

use super::ConnectionId;
use crate::retry::Wait;

/// What a client observed, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A connection is open; [`Client::send`](crate::Client::send) writes on it from now on.
    Connected {
        /// The new connection.
        connection: ConnectionId,
    },
    /// A text or binary message from the server.
    Message {
        /// The connection it came on.
        connection: ConnectionId,
        /// The message ([`Message::Text`] or [`Message::Binary`]).
        message: Message,
    },
    /// A connection ended. Sends that returned `Ok(connection)` were all
    /// written before this event.
    Closed(Closed),
    /// A connection attempt failed before the upgrade completed.
    ConnectFailed(ConnectFailed),
    /// The client will try again in `delay`.
    Reconnecting {
        /// The wait before the next attempt.
        delay: Duration,
        /// Where it comes from: the hint, `Retry-After`, or backoff.
        wait: Wait,
    },
    /// The client stopped for good; no event follows.
    GaveUp(GiveUp),
}

/// How a connection ended: [`Event::Closed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The connection that ended.
    pub connection: ConnectionId,
    /// The server's close code; 1005 for a Close frame without a code, 1006
    /// when no Close frame came (as browsers report it).
    pub code: u16,
    /// The Close frame's reason (empty without one).
    pub reason: String,
    /// The retry hint parsed from the reason.
    pub hint: Option<CloseHint>,
    /// A Close frame was received and the server then ended the TCP
    /// connection (a browser's `wasClean`).
    pub clean: bool,
    /// How long the connection was open.
    pub up_for: Duration,
    /// The read error, when the connection broke.
    pub error: Option<String>,
}

/// A failed connection attempt: [`Event::ConnectFailed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectFailed {
    /// The HTTP status of a refused upgrade (e.g. 503); `None` when there was
    /// no HTTP answer (connection refused, timeout).
    pub status: Option<u16>,
    /// The refused upgrade's `Retry-After`.
    pub retry_after: Option<Duration>,
    /// What went wrong, for logs.
    pub error: String,
}

/// Why the client stopped: [`Event::GaveUp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiveUp {
    /// The server closed with a terminal code (1000, 1008, 4000–4999 by default).
    TerminalClose {
        /// The close code.
        code: u16,
    },
    /// The upgrade was refused with a terminal status (401, 403, other 4xx).
    Refused {
        /// The HTTP status.
        status: u16,
    },
    /// The request can never succeed (bad URL, unsupported scheme).
    Unusable(String),
    /// [`Client::close`](crate::Client::close) was called or the [`Events`] were dropped.
    ClientClosed,
}

/// The events of a client, a [`Stream`] of [`Event`]. It ends after
/// [`Event::GaveUp`]. Dropping it stops the client.
#[derive(Debug)]
pub struct Events {
    pub(super) rx: mpsc::Receiver<Event>,
}

impl Events {
    /// The next event; `None` once the client has stopped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: no event is lost when the future is dropped.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}
