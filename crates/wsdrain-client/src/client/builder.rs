//! [`Reconnect`]: the builder of a client.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, watch};

use super::events::Events;
use super::handle::{Client, Shared};
use super::runner::Runner;
use crate::retry::RetryPolicy;

/// Builds a reconnecting client.
///
/// ```no_run
/// # async fn f() {
/// use std::time::Duration;
/// use wsdrain_client::Reconnect;
///
/// let (client, mut events) = Reconnect::new("ws://127.0.0.1:3000/ws")
///     .base(Duration::from_millis(250))
///     .cap(Duration::from_secs(30))
///     .terminal_codes(|code| matches!(code, 1008 | 4000..=4999)) // 1000 reconnects too
///     .spawn();
/// # drop((client, events)); }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a Reconnect does nothing until `spawn` is called"]
pub struct Reconnect {
    pub(super) url: String,
    pub(super) policy: RetryPolicy,
    pub(super) connect_timeout: Duration,
    pub(super) close_timeout: Duration,
    event_capacity: usize,
}

impl Reconnect {
    /// A client for `url` (`ws://host:port/path`), with the default policy
    /// ([`RetryPolicy::default`]).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            policy: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(2),
            event_capacity: 1024,
        }
    }

    /// First backoff ceiling (default 250 ms); see [`RetryPolicy::base`].
    pub fn base(mut self, base: Duration) -> Self {
        self.policy.base = base;
        self
    }

    /// Longest wait of any kind (default 30 s); see [`RetryPolicy::cap`].
    pub fn cap(mut self, cap: Duration) -> Self {
        self.policy.cap = cap;
        self
    }

    /// Backoff base after a 1001/1012 close without a hint (default 5 s); see
    /// [`RetryPolicy::going_away_base`].
    pub fn going_away_base(mut self, base: Duration) -> Self {
        self.policy.going_away_base = base;
        self
    }

    /// How long a connection must stay up to reset the failure count (default
    /// 30 s); see [`RetryPolicy::stable_after`].
    pub fn stable_after(mut self, after: Duration) -> Self {
        self.policy.stable_after = after;
        self
    }

    /// Least jitter added to a hint or `Retry-After` (default 50 ms); see
    /// [`RetryPolicy::hint_jitter`].
    pub fn hint_jitter(mut self, jitter: Duration) -> Self {
        self.policy.hint_jitter = jitter;
        self
    }

    /// Close codes after which the client stops (default: 1000, 1008,
    /// 4000–4999, [`default_terminal_code`](crate::retry::default_terminal_code)).
    /// 1001 and 1012 always reconnect.
    pub fn terminal_codes(mut self, is_terminal: fn(u16) -> bool) -> Self {
        self.policy.terminal_code = is_terminal;
        self
    }

    /// Replaces the whole retry policy.
    pub fn policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Bound on one connection attempt, TCP connect and upgrade together
    /// (default 10 s). A timed-out attempt counts as unreachable.
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

    /// How many events may wait unread (default 1024); when full, the client
    /// stops reading from the socket until the application catches up.
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
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            open: Mutex::new(None),
            stop: stop_tx,
        });
        let (tx, rx) = mpsc::channel(self.event_capacity);
        let runner = Runner {
            config: self,
            shared: shared.clone(),
            events: tx,
            stop: stop_rx,
            connections: 0,
            failures: 0,
        };
        // Ends by itself: after GaveUp, or when the events are dropped.
        tokio::spawn(runner.run());
        (Client { shared }, Events { rx })
    }
}
