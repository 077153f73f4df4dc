//! [`Reconnect`]: the builder of a client.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::events::Events;
use super::handle::{Client, Route, Shared};
use super::resume::Streams;
use super::runner::Runner;
use crate::retry::RetryPolicy;

/// Builds a reconnecting client.
///
/// ```no_run
/// # async fn f() -> Result<(), wsdrain_client::RetryPolicyError> {
/// use std::time::Duration;
/// use wsdrain_client::{Reconnect, RetryPolicy};
///
/// let policy = RetryPolicy::builder()
///     .base(Duration::from_millis(250))
///     .cap(Duration::from_secs(30))
///     .terminal_codes(|code| matches!(code, 1008 | 4000..=4999)) // 1000 reconnects too
///     .build()?;
/// let (client, mut events) = Reconnect::new("ws://127.0.0.1:3000/ws")
///     .policy(policy)
///     .spawn();
/// # drop((client, events)); Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a Reconnect does nothing until `spawn` is called"]
pub struct Reconnect {
    /// The request of every attempt, or why it cannot be made.
    pub(super) request: Result<Request, String>,
    pub(super) policy: RetryPolicy,
    pub(super) connect_timeout: Duration,
    pub(super) close_timeout: Duration,
    pub(super) write_timeout: Duration,
    pub(super) send_queue: usize,
    pub(super) ws_config: WebSocketConfig,
    pub(super) handover: bool,
    pub(super) resume: bool,
    pub(super) health: Health,
    #[cfg(feature = "rustls")]
    pub(super) tls: Option<Arc<rustls::ClientConfig>>,
    event_capacity: usize,
}

/// Whether and where the client probes health before reconnecting.
#[derive(Debug, Clone)]
pub(super) enum Health {
    Off,
    SameOrigin,
    Url(String),
}

impl Reconnect {
    /// A client for `request`: a URL (`ws://host:port/path`, `wss://...`) or
    /// anything tungstenite's [`IntoClientRequest`] takes, e.g. an
    /// [`http::Request`](tokio_tungstenite::tungstenite::http::Request) with
    /// an `Authorization` header or a `Sec-WebSocket-Protocol`. Every attempt,
    /// handovers included, sends the same request. The default policy is
    /// [`RetryPolicy::default`].
    ///
    /// A request that cannot be built (or a zero
    /// [`write_timeout`](Self::write_timeout)) is reported when the client
    /// starts:
    /// [`Event::ConnectFailed`](crate::Event::ConnectFailed) at stage
    /// [`FailedAt::Request`](crate::FailedAt::Request), then
    /// [`GiveUp::Unusable`](crate::GiveUp::Unusable).
    pub fn new(request: impl IntoClientRequest) -> Self {
        Self {
            request: request.into_client_request().map_err(|e| e.to_string()),
            policy: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(10),
            send_queue: 64,
            ws_config: WebSocketConfig::default(),
            handover: true,
            resume: false,
            health: Health::Off,
            #[cfg(feature = "rustls")]
            tls: None,
            event_capacity: 1024,
        }
    }

    /// Adds a header to the upgrade request (e.g. `Authorization`); an
    /// invalid name or value makes the request unusable (see [`new`](Self::new)).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Ok(request) = &mut self.request {
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                (Ok(name), Ok(value)) => {
                    request.headers_mut().append(name, value);
                }
                (Err(e), _) => self.request = Err(format!("header name {name:?}: {e}")),
                (_, Err(e)) => self.request = Err(format!("header {name} value: {e}")),
            }
        }
        self
    }

    /// tungstenite's settings for every connection (message and frame size
    /// limits, buffers); default [`WebSocketConfig::default`].
    pub fn websocket_config(mut self, config: WebSocketConfig) -> Self {
        self.ws_config = config;
        self
    }

    /// The rustls configuration for `wss://` and `https` health probes,
    /// e.g. [`tls::config_with_roots`](crate::tls::config_with_roots) for a
    /// private CA. Without it the roots of the enabled features are trusted
    /// ([`tls::default_config`](crate::tls::default_config)).
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Make-before-break on a drain notice (default on): on
    /// `{"type":"wsdrain.reconnect",...}` the client opens its next connection
    /// at once, moves sends to it when it is open, and reads the old one until
    /// its Close. Off, the notice is delivered as an ordinary message.
    pub fn handover(mut self, on: bool) -> Self {
        self.handover = on;
        self
    }

    /// Resumable streams (default off): every attempt offers the subprotocol
    /// `wsdrain.resume.v1` and carries, in its query
    /// (`wsdrain-resume=stream@epoch.seq,...`), where the client stopped in
    /// each stream, so the server replays what it missed. Messages of a
    /// stream arrive as [`Event::StreamMessage`](crate::Event::StreamMessage),
    /// each once and in order across reconnects and handovers; a stream
    /// that continues reports [`Event::Resumed`](crate::Event::Resumed), one
    /// whose gap cannot be filled [`Event::Resync`](crate::Event::Resync).
    /// A server that does not select the subprotocol is served as without
    /// resume ([`Event::ResumeDeclined`](crate::Event::ResumeDeclined)).
    /// `docs/PROTOCOL.md` has the protocol, `docs/CLIENTS.md` what the
    /// application does on a resync.
    pub fn resume(mut self, on: bool) -> Self {
        self.resume = on;
        self
    }

    /// Probes the same origin's `/readyz` (`http`/`https`) before each
    /// reconnect (default off): after a close or a failed attempt, once the
    /// hint or backoff has passed, the client GETs it until it answers 200,
    /// then opens the WebSocket. Probes are paced by the same jittered backoff;
    /// a `Retry-After` on a 503 is honoured.
    pub fn health_check(mut self, on: bool) -> Self {
        self.health = if on { Health::SameOrigin } else { Health::Off };
        self
    }

    /// As [`health_check`](Self::health_check), with another URL
    /// (`http://` or `https://`).
    pub fn health_url(mut self, url: impl Into<String>) -> Self {
        self.health = Health::Url(url.into());
        self
    }

    /// The reconnect rules (default [`RetryPolicy::default`]): backoff,
    /// cap, jitter on hints, terminal codes. Build one with
    /// [`RetryPolicy::builder`].
    pub fn policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Bound on one connection attempt, DNS, TCP, TLS and upgrade together
    /// (default 10 s), and on one health probe. A timed-out attempt counts as
    /// unreachable.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long to wait for the server to end the TCP connection after a Close
    /// frame was received or sent (default 2 s); then the client drops it.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// How long a write may wait without the server taking a single byte
    /// (default 10 s); then the connection is ended as broken (reported as
    /// `Closed` with code 1006, or the code of a Close that came before,
    /// and an error saying so) and the client reconnects as after any
    /// failure. Its sends are answered ([`Client::send`]). A server that
    /// takes data slowly is never cut: any byte written restarts the wait.
    /// 10 s: a server that takes nothing for that long while the client has
    /// data for it does not read, or is gone without a word (a dead path is
    /// otherwise noticed only after TCP's retransmissions, some 15 minutes).
    /// Zero makes the client unusable (reported when it starts).
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// How many messages [`Client::send`] may queue per connection (default
    /// 64, at least 1); while the queue is full, `send` waits for room.
    /// Every `send` waits for its own write, so the queue only fills with
    /// sends from several tasks at once, or behind a slow server.
    pub fn send_queue(mut self, messages: usize) -> Self {
        self.send_queue = messages.max(1);
        self
    }

    /// How many events may wait unread (default 1024); when full, the client
    /// stops reading from the socket until the application catches up. It
    /// goes on writing meanwhile, so a [`Client::send`] awaited from the
    /// event loop still completes.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// The retry policy as configured.
    #[must_use]
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Starts the client on the current tokio runtime: it connects at once and
    /// keeps reconnecting until a terminal outcome, [`Client::close`], or the
    /// [`Events`] being dropped.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn(self) -> (Client, Events) {
        let (route, stop) = watch::channel(Route::default());
        let shared = Arc::new(Shared { route });
        let (tx, rx) = mpsc::channel(self.event_capacity);
        let runner = Runner {
            config: self,
            shared: shared.clone(),
            events: tx,
            stop,
            connections: 0,
            failures: 0,
            streams: Streams::default(),
        };
        // Ends by itself: after GaveUp, or when the events are dropped.
        tokio::spawn(runner.run());
        (Client { shared }, Events { rx })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Event, FailedAt, GiveUp};

    #[tokio::test]
    async fn an_unusable_request_says_why_and_gives_up() {
        for (reconnect, says) in [
            (
                Reconnect::new("ws://127.0.0.1:9/ws").header("bad name", "x"),
                "header name",
            ),
            (Reconnect::new("ftp://127.0.0.1:9/"), "scheme"),
            (
                Reconnect::new("ws://127.0.0.1:9/ws").health_url("not a url"),
                "health URL",
            ),
            (
                Reconnect::new("ws://127.0.0.1:9/ws").write_timeout(Duration::ZERO),
                "write_timeout",
            ),
        ] {
            let (_client, mut events) = reconnect.spawn();
            match events.next().await.unwrap() {
                Event::ConnectFailed(f) => {
                    assert_eq!(f.stage, FailedAt::Request, "{f:?}");
                    assert!(f.error.contains(says), "{f:?}");
                }
                other => panic!("expected ConnectFailed, got {other:?}"),
            }
            match events.next().await.unwrap() {
                Event::GaveUp(GiveUp::Unusable(why)) => assert!(why.contains(says), "{why}"),
                other => panic!("expected GaveUp, got {other:?}"),
            }
        }
    }
}
