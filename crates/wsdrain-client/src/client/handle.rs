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

    /// The open connection, if any.
    pub async fn connection(&self) -> Option<ConnectionId> {
        self.shared.open.lock().await.as_ref().map(|o| o.id)
    }

    /// Stops the client: sends `Close(1000)` on the open connection (if any),
    /// and never reconnects. The events end with [`Event::Closed`](crate::Event::Closed) (when a
    /// connection was open) and [`Event::GaveUp`](crate::Event::GaveUp) with [`GiveUp::ClientClosed`](crate::GiveUp::ClientClosed).
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
