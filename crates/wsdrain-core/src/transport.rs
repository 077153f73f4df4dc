//! [`Transport`]: what kind of long-lived response a session is.

/// What kind of session this is, for metrics and logs. The drain treats
/// them all alike: a session gets a turn with a hint, and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// A WebSocket (HTTP/1.1 upgrade or RFC 8441 over HTTP/2).
    WebSocket,
    /// A Server-Sent Events stream (`text/event-stream`).
    Sse,
    /// Another streaming body the application opted in (NDJSON, long-poll,
    /// chunked download).
    Stream,
}

impl Transport {
    /// Lowercase name for logs and the metrics label: `websocket`, `sse`, `stream`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Sse => "sse",
            Transport::Stream => "stream",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}
