//! [`Event`]s: what a client observed, in order, as a [`Stream`].

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use wsdrain_protocol::CloseHint;
use wsdrain_protocol::resume::ResyncReason;

use super::ConnectionId;
use crate::retry::Wait;

/// What a client observed, in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A connection is open; [`Client::send`](crate::Client::send) writes on it from now on.
    Connected {
        /// The new connection.
        connection: ConnectionId,
    },
    /// A text or binary message from the server. On a resumable connection
    /// ([`Reconnect::resume`](crate::Reconnect::resume)), a message outside
    /// any stream (`p`), its header removed.
    Message {
        /// The connection it came on.
        connection: ConnectionId,
        /// The message ([`Message::Text`] or [`Message::Binary`]).
        message: Message,
    },
    /// A message of a resumable stream
    /// ([`Reconnect::resume`](crate::Reconnect::resume)): each seq of a
    /// stream's epoch once, in order, whichever connection carried it.
    StreamMessage(StreamMessage),
    /// A stream continues on a new connection where the client stopped:
    /// nothing was missed (after a reconnect or a handover).
    Resumed(Resumed),
    /// A stream could not continue where the client stopped: messages were
    /// lost (history expired, the stream's epoch changed, the log is down).
    /// Reload the state the stream feeds (an HTTP fetch, a snapshot), then
    /// apply the messages that follow: their seqs start after
    /// [`Resync::after`].
    Resync(Resync),
    /// The server did not select `wsdrain.resume.v1` on `connection` (a
    /// route that is not resumable, or a server without resume): its
    /// messages are [`Event::Message`]s, and nothing on it is resumed.
    ResumeDeclined {
        /// The connection.
        connection: ConnectionId,
    },
    /// A connection ended. Sends that returned `Ok(connection)` were all
    /// written before this event.
    Closed(Closed),
    /// A connection attempt failed before the upgrade completed.
    ConnectFailed(ConnectFailed),
    /// The server sent the drain notice on `connection`: its Close follows
    /// `close_in` later. With handover on (the default) the client opens its
    /// next connection at once; the notice is not delivered as a
    /// [`Event::Message`].
    DrainNotice {
        /// The connection the notice came on.
        connection: ConnectionId,
        /// The lead the server announced (`close_in_ms`).
        close_in: Duration,
    },
    /// The next connection, opened after a [`Event::DrainNotice`], failed: the
    /// client stays on the old one and reconnects as its Close advises.
    HandoverFailed {
        /// The connection that got the notice.
        connection: ConnectionId,
        /// Why the new connection failed.
        failed: ConnectFailed,
    },
    /// A handover completed: sends moved from `from` to `to` (announced by
    /// [`Event::Connected`] for `to`), and `from` has closed (its
    /// [`Event::Closed`] came just before).
    Handover(Handover),
    /// The health probe before a reconnect did not answer 200: the client
    /// probes again after `delay`.
    NotReady(NotReady),
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

/// A message of a stream: [`Event::StreamMessage`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StreamMessage {
    /// The connection it came on.
    pub connection: ConnectionId,
    /// The stream.
    pub stream: Arc<str>,
    /// Its seq in the stream's current epoch: the previous one plus 1.
    pub seq: u64,
    /// The application's payload, its header removed, as a text or binary
    /// message as it was sent.
    pub message: Message,
}

/// A stream that went on without a loss: [`Event::Resumed`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resumed {
    /// The connection that carries the stream from now on.
    pub connection: ConnectionId,
    /// The stream.
    pub stream: Arc<str>,
    /// The stream's epoch.
    pub epoch: String,
    /// The last seq delivered: the next message is `after + 1`.
    pub after: u64,
}

/// A stream whose gap cannot be filled: [`Event::Resync`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resync {
    /// The connection that carries the stream from now on.
    pub connection: ConnectionId,
    /// The stream.
    pub stream: Arc<str>,
    /// Why: the server's reason, or [`ResyncReason::Epoch`] /
    /// [`ResyncReason::Unknown`] when a control without one skipped ahead.
    pub reason: ResyncReason,
    /// The stream's epoch from here on.
    pub epoch: String,
    /// The messages that follow have seqs after this one.
    pub after: u64,
}

/// A completed handover: [`Event::Handover`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Handover {
    /// The connection that got the drain notice.
    pub from: ConnectionId,
    /// The connection sends moved to.
    pub to: ConnectionId,
    /// How long both were open: from `to`'s upgrade to `from`'s end.
    pub overlap: Duration,
    /// From the notice to `to`'s upgrade.
    pub connect_time: Duration,
}

/// A health probe that did not answer 200: [`Event::NotReady`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotReady {
    /// The probe's HTTP status; `None` without an HTTP answer.
    pub status: Option<u16>,
    /// The `Retry-After` of the answer.
    pub retry_after: Option<Duration>,
    /// What the probe saw, for logs.
    pub error: String,
    /// The wait before the next probe.
    pub delay: Duration,
    /// Where the wait comes from: `Retry-After` or backoff.
    pub wait: Wait,
}

/// How a connection ended: [`Event::Closed`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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

/// The stage at which a connection attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailedAt {
    /// The request is unusable (bad URL, unsupported scheme, `wss://`
    /// without a TLS feature): no retry can fix it.
    Request,
    /// Resolving the host name.
    Dns,
    /// The TCP connection (refused, unreachable, reset).
    Tcp,
    /// The TLS handshake (certificate not trusted, name mismatch, ...).
    Tls,
    /// The server answered the upgrade with an HTTP status other than 101.
    Upgrade,
    /// The WebSocket handshake broke (I/O error, invalid answer).
    Handshake,
    /// The attempt did not complete within the connect timeout.
    Timeout,
}

impl fmt::Display for FailedAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailedAt::Request => "request",
            FailedAt::Dns => "dns",
            FailedAt::Tcp => "tcp",
            FailedAt::Tls => "tls",
            FailedAt::Upgrade => "upgrade",
            FailedAt::Handshake => "handshake",
            FailedAt::Timeout => "timeout",
        })
    }
}

/// A failed connection attempt: [`Event::ConnectFailed`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectFailed {
    /// Where it failed.
    pub stage: FailedAt,
    /// The HTTP status of a refused upgrade (e.g. 503); `None` when there was
    /// no HTTP answer (connection refused, timeout).
    pub status: Option<u16>,
    /// The refused upgrade's `Retry-After`.
    pub retry_after: Option<Duration>,
    /// What went wrong, for logs.
    pub error: String,
}

impl fmt::Display for ConnectFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.stage, self.error)?;
        if let Some(after) = self.retry_after {
            write!(f, " (Retry-After {} s)", after.as_secs())?;
        }
        Ok(())
    }
}

impl std::error::Error for ConnectFailed {}

/// Why the client stopped: [`Event::GaveUp`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// The request can never succeed (bad URL, unsupported scheme, `wss://`
    /// without TLS): what is wrong with it.
    Unusable(String),
    /// [`Client::close`](crate::Client::close) was called or the [`Events`] were dropped.
    ClientClosed,
}

/// In words, as in the `client gave up` log line: `terminal close 1008`,
/// `upgrade refused with 403`, `unusable request: <why>`, `closed by the
/// application`.
impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GiveUp::TerminalClose { code } => write!(f, "terminal close {code}"),
            GiveUp::Refused { status } => write!(f, "upgrade refused with {status}"),
            GiveUp::Unusable(why) => write!(f, "unusable request: {why}"),
            GiveUp::ClientClosed => f.write_str("closed by the application"),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn give_up_reads_as_words() {
        let said = [
            GiveUp::TerminalClose { code: 1008 },
            GiveUp::Refused { status: 403 },
            GiveUp::Unusable("unsupported scheme \"http\"".into()),
            GiveUp::ClientClosed,
        ]
        .map(|g| g.to_string());
        assert_eq!(
            said,
            [
                "terminal close 1008",
                "upgrade refused with 403",
                "unusable request: unsupported scheme \"http\"",
                "closed by the application",
            ]
        );
    }
}
