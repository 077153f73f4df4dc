//! [`Client`]: the handle that sends on the current connection, and stops it.

use std::fmt;
use std::sync::Arc;

use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::sync::{Mutex, watch};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use super::{ConnectionId, Ws};

pub(super) struct Shared {
    pub(super) open: Mutex<Option<Open>>,
    pub(super) stop: watch::Sender<bool>,
}

pub(super) struct Open {
    pub(super) id: ConnectionId,
    pub(super) sink: SplitSink<Ws, Message>,
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

/// Why [`Client::send`] did not put a message on an open connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError {
    /// No connection is open (connecting, waiting to reconnect, stopped, or
    /// closing after [`Client::close`]). The message is handed back; nothing
    /// was written.
    NotConnected(Message),
    /// The write on the open connection `connection` failed: it is closing or
    /// broken, and a [`Event::Closed`](crate::Event::Closed) for it follows.
    Failed {
        /// The connection the write was attempted on.
        connection: ConnectionId,
        /// What tungstenite reported.
        error: tungstenite::Error,
    },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotConnected(_) => f.write_str("not connected"),
            SendError::Failed { connection, error } => {
                write!(f, "send on connection {connection} failed: {error}")
            }
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::NotConnected(_) => None,
            SendError::Failed { error, .. } => Some(error),
        }
    }
}

impl Client {
    /// Writes `message` on the open connection and flushes it.
    ///
    /// `Ok(id)` means the message went out on connection `id`: it was written
    /// to the socket before that connection's [`Event::Closed`](crate::Event::Closed) was emitted.
    /// Whether the server got it is for the application to learn (an echo, an
    /// acknowledgement); a `Closed` for `id` means no more can arrive on it.
    ///
    /// The client never writes a message twice and never resends one by
    /// itself. During a handover (see [`Reconnect::handover`](crate::Reconnect::handover))
    /// sends move from the noticed connection to the new one at one instant,
    /// under the same lock `send` holds while it writes: every message is
    /// written whole on exactly one connection, the one returned. Sends that
    /// returned the old id were written before the switch; the old
    /// connection is still read until its Close, so answers to them still
    /// arrive, as [`Event::Message`](crate::Event::Message) with the old id.
    /// Order across the switch is the order of the writes, but two
    /// connections (maybe two servers) can process them in another order.
    ///
    /// # Errors
    ///
    /// [`SendError::NotConnected`] when no connection is open (the message is
    /// returned), [`SendError::Failed`] when the write failed.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled send may or may not have been written.
    pub async fn send(&self, message: impl Into<Message>) -> Result<ConnectionId, SendError> {
        let message = message.into();
        let mut open = self.shared.open.lock().await;
        let Some(conn) = open.as_mut() else {
            return Err(SendError::NotConnected(message));
        };
        match conn.sink.send(message).await {
            Ok(()) => Ok(conn.id),
            Err(error) => Err(SendError::Failed {
                connection: conn.id,
                error,
            }),
        }
    }

    /// The open connection, if any: the one the next [`send`](Self::send)
    /// would write on.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn connection(&self) -> Option<ConnectionId> {
        self.shared.open.lock().await.as_ref().map(|o| o.id)
    }

    /// Stops the client: sends `Close(1000)` on the open connection (if any),
    /// and never reconnects. The events end with [`Event::Closed`](crate::Event::Closed) (when a
    /// connection was open) and [`Event::GaveUp`](crate::Event::GaveUp) with [`GiveUp::ClientClosed`](crate::GiveUp::ClientClosed).
    /// During a handover the old connection is closed with 1000 as well.
    ///
    /// # Cancel safety
    ///
    /// The stop is recorded before the first await, so a cancelled `close`
    /// still stops the client; the `Close(1000)` frame may then be left
    /// unsent, and the client closes with 1000 on its own.
    pub async fn close(&self) {
        self.shared.stop.send_replace(true);
        close_open(
            &self.shared,
            CloseFrame {
                code: 1000.into(),
                reason: "".into(),
            },
        )
        .await;
    }
}

/// Takes the open connection out (so sends fail) and sends a Close on it.
pub(super) async fn close_open(shared: &Shared, frame: CloseFrame) {
    let open = shared.open.lock().await.take();
    if let Some(mut open) = open {
        tracing::debug!(connection = %open.id, code = u16::from(frame.code), "client closes");
        // The read side waits for the server's answer; an error here means the
        // connection is already going.
        let _ = open.sink.send(Message::Close(Some(frame))).await;
    }
}
