//! The reconnecting connection: the builder ([`Reconnect`]), the handle that
//! sends ([`Client`]), the events it reports ([`Events`]), and the task that
//! connects and reconnects behind them.

mod builder;
mod conn;
mod connect;
mod events;
mod handle;
mod resume;
mod runner;

use std::fmt;

use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use builder::Reconnect;
pub use events::{
    Closed, ConnectFailed, Event, Events, FailedAt, GiveUp, Handover, NotReady, Resumed, Resync,
    StreamMessage,
};
pub use handle::{Client, SendError};

type Ws = WebSocketStream<conn::Progress<MaybeTlsStream<TcpStream>>>;

/// The number of a connection: 1 for the first one a client opened, 2 for the
/// next, and so on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// The number.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}
