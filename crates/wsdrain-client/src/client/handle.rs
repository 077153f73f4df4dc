//! [`Client`]: the handle that sends on the current connection, and stops it.

use std::fmt;
use std::io;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::{self, Message};

use super::ConnectionId;

/// What the handles share with the task: where sends go, and the stop.
pub(super) struct Shared {
    pub(super) route: watch::Sender<Route>,
}

/// The connection sends go to (none while connecting or waiting), and
/// whether the client was told to stop. One value, so that a stop and a
/// switch of connections never interleave.
#[derive(Clone, Default)]
pub(super) struct Route {
    pub(super) open: Option<Lane>,
    pub(super) stopped: bool,
}

/// One open connection's outgoing queue.
#[derive(Clone)]
pub(super) struct Lane {
    pub(super) id: ConnectionId,
    pub(super) queue: mpsc::Sender<Outgoing>,
}

impl Lane {
    /// Queues `message` on this connection and waits for its answer.
    pub(super) async fn send(&self, message: Message) -> Answer {
        let id = self.id;
        let (reply, answer) = oneshot::channel();
        let out = Outgoing {
            connection: id,
            message: Some(message),
            reply: Some(reply),
        };
        // A closed queue gives the message back; dropping it answers `Unsent`.
        if let Err(mpsc::error::SendError(out)) = self.queue.send(out).await {
            drop(out);
        }
        // Every Outgoing answers, if only when dropped.
        answer.await.unwrap_or_else(|_| {
            Err(SendError::Failed {
                connection: id,
                error: ended_mid_write(),
            })
        })
    }
}

impl Route {
    /// Points sends at `lane` unless the client was told to stop; whether it did.
    pub(super) fn open(&mut self, lane: Lane) -> bool {
        if self.stopped {
            return false;
        }
        self.open = Some(lane);
        true
    }

    /// Stops sends going to `id`, if they do; whether they did.
    pub(super) fn close(&mut self, id: ConnectionId) -> bool {
        let current = self.open.as_ref().is_some_and(|lane| lane.id == id);
        if current {
            self.open = None;
        }
        current
    }
}

/// The answer to one [`Client::send`].
pub(super) type Answer = Result<ConnectionId, SendError>;

/// A message on its way to connection `connection`, with the sender waiting
/// for its answer. Dropped unanswered it answers for itself, so no send is
/// ever left without one: [`SendError::Unsent`] with the message while it
/// still holds it, [`SendError::Failed`] once the message went to the socket.
pub(super) struct Outgoing {
    connection: ConnectionId,
    message: Option<Message>,
    reply: Option<oneshot::Sender<Answer>>,
}

impl Outgoing {
    /// Takes the message to write it; from here on a drop answers `Failed`.
    pub(super) fn take(&mut self) -> Option<Message> {
        self.message.take()
    }

    /// The message is on the socket: the send returns `Ok`.
    pub(super) fn written(mut self) {
        let id = self.connection;
        self.answer(Ok(id));
    }

    /// The write failed after it began.
    pub(super) fn failed(mut self, error: tungstenite::Error) {
        let connection = self.connection;
        self.answer(Err(SendError::Failed { connection, error }));
    }

    fn answer(&mut self, answer: Answer) {
        if let Some(reply) = self.reply.take() {
            // The sender may have given up waiting (a cancelled send).
            let _ = reply.send(answer);
        }
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        let connection = self.connection;
        let answer = match self.message.take() {
            Some(message) => SendError::Unsent {
                connection,
                message,
            },
            None => SendError::Failed {
                connection,
                error: ended_mid_write(),
            },
        };
        self.answer(Err(answer));
    }
}

/// The error of a write the connection's end cut short.
pub(super) fn ended_mid_write() -> tungstenite::Error {
    tungstenite::Error::Io(io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the connection ended before the write completed",
    ))
}

/// The handle that sends on the current connection. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(super) shared: Arc<Shared>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

/// Why [`Client::send`] did not put a message on a connection. Every case
/// but [`Failed`](Self::Failed) hands the message back, untouched: nothing of
/// it was written.
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError {
    /// No connection is open (connecting, waiting to reconnect, the server's
    /// Close received, stopped, or closing after [`Client::close`]).
    NotConnected(Message),
    /// The message waited in the queue of connection `connection`, which
    /// ended before its turn came (the server closed it, it broke, or it was
    /// ended for not taking writes: see
    /// [`Reconnect::write_timeout`](crate::Reconnect::write_timeout)).
    Unsent {
        /// The connection it was queued for.
        connection: ConnectionId,
        /// The message.
        message: Message,
    },
    /// The write began on connection `connection` and did not complete:
    /// the connection broke, or ended, while the message was on its way. The
    /// server may or may not have it. An [`Event::Closed`](crate::Event::Closed)
    /// for the connection follows.
    Failed {
        /// The connection the write was attempted on.
        connection: ConnectionId,
        /// What went wrong.
        error: tungstenite::Error,
    },
}

impl SendError {
    /// The message, when it was not written (all but [`Failed`](Self::Failed)).
    #[must_use]
    pub fn into_message(self) -> Option<Message> {
        match self {
            SendError::NotConnected(message) | SendError::Unsent { message, .. } => Some(message),
            SendError::Failed { .. } => None,
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotConnected(_) => f.write_str("not connected"),
            SendError::Unsent { connection, .. } => {
                write!(
                    f,
                    "connection {connection} ended before the message was sent"
                )
            }
            SendError::Failed { connection, error } => {
                write!(f, "send on connection {connection} failed: {error}")
            }
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::NotConnected(_) | SendError::Unsent { .. } => None,
            SendError::Failed { error, .. } => Some(error),
        }
    }
}

impl Client {
    /// Sends `message` on the open connection and waits until it is written
    /// and flushed to the socket.
    ///
    /// The write happens in the client's task, in the order of the calls,
    /// and never holds anything else up: the client goes on reading,
    /// reporting events, closing and reconnecting while a server is slow to
    /// take what it is sent. Each connection has its own queue of
    /// [`send_queue`](crate::Reconnect::send_queue) messages; while it is
    /// full, `send` waits for room.
    ///
    /// `Ok(id)` means the message went out on connection `id`: it was
    /// written to the socket before that connection's
    /// [`Event::Closed`](crate::Event::Closed) was emitted. Whether the server
    /// got it is for the application to learn (an echo, an acknowledgement).
    ///
    /// No message is lost without a word, and none is written twice: the
    /// client never resends one by itself.
    ///
    /// * No connection open: [`SendError::NotConnected`], at once.
    /// * The connection ended (a Close from the server, a broken or stalled
    ///   connection, [`Client::close`]) while the message waited in its
    ///   queue: [`SendError::Unsent`]. Either way the message is handed back,
    ///   and a reconnect does not carry it over: the application decides.
    /// * The connection ended while the message was being written:
    ///   [`SendError::Failed`] (it may or may not have arrived).
    /// * A server that takes no byte for
    ///   [`write_timeout`](crate::Reconnect::write_timeout) (10 s) while a
    ///   write waits has its connection ended that way, so no send waits
    ///   much longer than that.
    ///
    /// During a handover (see [`Reconnect::handover`](crate::Reconnect::handover))
    /// new sends go to the new connection from the moment it is open; what
    /// was already queued on the noticed one is still written there, and
    /// answered with its id. Every message is written whole on exactly one
    /// connection, the one returned; answers to those on the old one still
    /// arrive as [`Event::Message`](crate::Event::Message) with the old id.
    /// Two connections (maybe two servers) may process messages in another
    /// order than they were sent.
    ///
    /// # Errors
    ///
    /// As above: [`SendError::NotConnected`], [`SendError::Unsent`] (the
    /// message returned), [`SendError::Failed`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a message dropped with its `send` may still be
    /// written, if it was queued.
    pub async fn send(&self, message: impl Into<Message>) -> Result<ConnectionId, SendError> {
        let message = message.into();
        let lane = self.shared.route.borrow().open.clone();
        match lane {
            Some(lane) => lane.send(message).await,
            None => Err(SendError::NotConnected(message)),
        }
    }

    /// The open connection, if any: the one the next [`send`](Self::send)
    /// would write on.
    #[must_use]
    pub fn connection(&self) -> Option<ConnectionId> {
        self.shared.route.borrow().open.as_ref().map(|lane| lane.id)
    }

    /// Stops the client: new sends fail at once, what is already queued is
    /// written, then `Close(1000)`, and the client never reconnects. The
    /// events end with [`Event::Closed`](crate::Event::Closed) (when a
    /// connection was open) and [`Event::GaveUp`](crate::Event::GaveUp) with
    /// [`GiveUp::ClientClosed`](crate::GiveUp::ClientClosed). A server that
    /// does not answer the Close (or does not read) is dropped
    /// [`close_timeout`](crate::Reconnect::close_timeout) later. During a
    /// handover the old connection is closed with 1000 as well.
    pub fn close(&self) {
        self.shared.route.send_modify(|route| {
            route.stopped = true;
            route.open = None;
        });
    }
}
