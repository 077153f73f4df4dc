//! The reconnecting connection: builder, handle, events.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, Stream, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message, http::header::RETRY_AFTER};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wsdrain_protocol::{CloseHint, parse_retry_after_header};

use crate::retry::{Decision, Outcome, RetryPolicy, Wait};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

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
    url: String,
    policy: RetryPolicy,
    connect_timeout: Duration,
    close_timeout: Duration,
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

struct Shared {
    open: Mutex<Option<Open>>,
    stop: watch::Sender<bool>,
}

struct Open {
    id: ConnectionId,
    sink: SplitSink<Ws, Message>,
}

/// The handle that sends on the current connection. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

/// Why [`Client::send`] did not put a message on an open connection.
#[derive(Debug)]
pub enum SendError {
    /// No connection is open (connecting, waiting to reconnect, stopped, or
    /// closing after [`Client::close`]). The message is handed back; nothing
    /// was written.
    NotConnected(Message),
    /// The write on the open connection `connection` failed: it is closing or
    /// broken, and a [`Event::Closed`] for it follows.
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
    /// to the socket before that connection's [`Event::Closed`] was emitted.
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
    /// and never reconnects. The events end with [`Event::Closed`] (when a
    /// connection was open) and [`Event::GaveUp`] with [`GiveUp::ClientClosed`].
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
async fn close_open(shared: &Shared, frame: CloseFrame) {
    let open = shared.open.lock().await.take();
    if let Some(mut open) = open {
        tracing::debug!(connection = %open.id, code = u16::from(frame.code), "client closes");
        // The read side waits for the server's answer; an error here means the
        // connection is already going.
        let _ = open.sink.send(Message::Close(Some(frame))).await;
    }
}

/// What a client observed, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A connection is open; [`Client::send`] writes on it from now on.
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
    /// [`Client::close`] was called or the [`Events`] were dropped.
    ClientClosed,
}

/// The events of a client, a [`Stream`] of [`Event`]. It ends after
/// [`Event::GaveUp`]. Dropping it stops the client.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
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

/// The task behind a client.
struct Runner {
    config: Reconnect,
    shared: Arc<Shared>,
    events: mpsc::Sender<Event>,
    stop: watch::Receiver<bool>,
    connections: u64,
    /// Consecutive failures: the backoff attempt number.
    failures: u32,
}

/// What the task does after a connection or an attempt ended.
enum Next {
    Decide(Outcome),
    Stop(GiveUp),
}

impl Runner {
    async fn run(mut self) {
        let url = self.config.url.clone();
        tracing::debug!(%url, "client starts");
        let cause = loop {
            let next = self.attempt().await;
            let outcome = match next {
                Next::Decide(outcome) => outcome,
                Next::Stop(cause) => break cause,
            };
            if self.stopping() {
                break GiveUp::ClientClosed;
            }
            let decision = self
                .config
                .policy
                .decide(&outcome, self.failures, fastrand::f64());
            if RetryPolicy::counts_as_failure(&decision) {
                self.failures = self.failures.saturating_add(1);
            }
            match decision {
                Decision::Stop => break give_up_cause(&outcome),
                Decision::Retry { delay, wait } => {
                    tracing::info!(%url, delay_ms = delay.as_millis() as u64, %wait, "reconnecting");
                    if !self.emit(Event::Reconnecting { delay, wait }).await {
                        break GiveUp::ClientClosed;
                    }
                    if !self.pause(delay).await {
                        break GiveUp::ClientClosed;
                    }
                }
            }
        };
        tracing::info!(%url, ?cause, "client gave up");
        let _ = self.events.send(Event::GaveUp(cause)).await;
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sends an event; false when the application dropped the events.
    async fn emit(&self, event: Event) -> bool {
        self.events.send(event).await.is_ok()
    }

    /// Sleeps `delay`; false when told to stop meanwhile.
    async fn pause(&mut self, delay: Duration) -> bool {
        let stop = self.stop.wait_for(|&s| s);
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            _ = stop => false,
            () = self.events.closed() => false,
        }
    }

    /// One connection attempt and, when it succeeds, the connection's life.
    async fn attempt(&mut self) -> Next {
        let url = self.config.url.as_str();
        tracing::debug!(url, failures = self.failures, "connecting");
        let connect = tokio::time::timeout(
            self.config.connect_timeout,
            tokio_tungstenite::connect_async(url),
        );
        let stop = self.stop.wait_for(|&s| s);
        let result = tokio::select! {
            r = connect => r,
            _ = stop => return Next::Stop(GiveUp::ClientClosed),
            () = self.events.closed() => return Next::Stop(GiveUp::ClientClosed),
        };
        let ws = match result {
            Ok(Ok((ws, _response))) => ws,
            Ok(Err(e)) => return self.connect_failed(&e).await,
            Err(_elapsed) => {
                let failed = ConnectFailed {
                    status: None,
                    retry_after: None,
                    error: format!("timed out after {:?}", self.config.connect_timeout),
                };
                tracing::warn!(url, error = %failed.error, "connect failed");
                if !self.emit(Event::ConnectFailed(failed)).await {
                    return Next::Stop(GiveUp::ClientClosed);
                }
                return Next::Decide(Outcome::Unreachable);
            }
        };
        self.connections += 1;
        let id = ConnectionId(self.connections);
        let (sink, stream) = ws.split();
        *self.shared.open.lock().await = Some(Open { id, sink });
        tracing::info!(url, connection = %id, "connected");
        if !self.emit(Event::Connected { connection: id }).await {
            close_open(&self.shared, going_away()).await;
        }
        self.live(id, stream).await
    }

    async fn connect_failed(&self, e: &tungstenite::Error) -> Next {
        let (outcome, failed) = classify(e);
        tracing::warn!(url = %self.config.url, status = failed.status, error = %failed.error, "connect failed");
        if !self.emit(Event::ConnectFailed(failed)).await {
            return Next::Stop(GiveUp::ClientClosed);
        }
        if let Outcome::Unusable = outcome {
            return Next::Stop(GiveUp::Unusable(e.to_string()));
        }
        Next::Decide(outcome)
    }

    /// Reads the open connection `id` until it ends.
    async fn live(&mut self, id: ConnectionId, mut stream: SplitStream<Ws>) -> Next {
        let opened = Instant::now();
        let close_timeout = self.config.close_timeout;
        let mut frame: Option<(u16, String)> = None;
        let mut error = None;
        let mut ended_cleanly = false;
        // Set once a Close went either way: the server must end TCP by then.
        let mut deadline: Option<Instant> = None;
        let mut client_closing = false;
        loop {
            enum Step {
                Read(Option<Result<Message, tungstenite::Error>>),
                Stop,
                TimedOut,
            }
            let step = {
                let stop = self.stop.wait_for(|&s| s);
                let events_gone = self.events.closed();
                let timer = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    read = stream.next() => Step::Read(read),
                    _ = stop, if !client_closing => Step::Stop,
                    () = events_gone, if !client_closing => Step::Stop,
                    () = timer => Step::TimedOut,
                }
            };
            match step {
                Step::Read(Some(Ok(Message::Close(close)))) => {
                    let (code, reason) = close.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.to_string())
                    });
                    tracing::debug!(connection = %id, code, reason, "close frame received");
                    frame = Some((code, reason));
                    deadline.get_or_insert(Instant::now() + close_timeout);
                }
                Step::Read(Some(Ok(message @ (Message::Text(_) | Message::Binary(_))))) => {
                    if !self
                        .emit(Event::Message {
                            connection: id,
                            message,
                        })
                        .await
                    {
                        client_closing = true;
                        close_open(&self.shared, going_away()).await;
                        deadline.get_or_insert(Instant::now() + close_timeout);
                    }
                }
                Step::Read(Some(Ok(_))) => {}
                Step::Read(Some(Err(e))) => {
                    error = Some(e.to_string());
                    break;
                }
                Step::Read(None) => {
                    ended_cleanly = true;
                    break;
                }
                Step::Stop => {
                    client_closing = true;
                    let frame = if self.stopping() {
                        CloseFrame {
                            code: 1000.into(),
                            reason: "".into(),
                        }
                    } else {
                        going_away()
                    };
                    close_open(&self.shared, frame).await;
                    deadline.get_or_insert(Instant::now() + close_timeout);
                }
                Step::TimedOut => {
                    error = Some(format!(
                        "no TCP close within {close_timeout:?} of the Close"
                    ));
                    break;
                }
            }
        }
        // From here on sends fail with NotConnected; sends that returned Ok
        // completed before this lock was taken.
        drop(self.shared.open.lock().await.take());
        drop(stream);
        let up_for = opened.elapsed();
        if up_for >= self.config.policy.stable_after {
            self.failures = 0;
        }
        let clean = frame.is_some() && ended_cleanly;
        let (code, reason) = frame.clone().unwrap_or((1006, String::new()));
        let hint = CloseHint::parse(&reason);
        let closed = Closed {
            connection: id,
            code,
            reason,
            hint,
            clean,
            up_for,
            error,
        };
        tracing::info!(
            connection = %id,
            code,
            reason = %closed.reason,
            hint_ms = hint.map(|h| h.retry_after_ms()),
            clean,
            up_for_ms = up_for.as_millis() as u64,
            error = closed.error.as_deref(),
            "closed"
        );
        let delivered = self.emit(Event::Closed(closed)).await;
        if client_closing || !delivered {
            return Next::Stop(GiveUp::ClientClosed);
        }
        Next::Decide(match frame {
            Some(_) => Outcome::Closed { code, hint },
            None => Outcome::Abnormal,
        })
    }
}

/// The Close a client sends when it goes away on its own (events dropped).
fn going_away() -> CloseFrame {
    CloseFrame {
        code: 1001.into(),
        reason: "".into(),
    }
}

/// The outcome and the event of a failed connection attempt.
fn classify(e: &tungstenite::Error) -> (Outcome, ConnectFailed) {
    match e {
        tungstenite::Error::Http(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after_header);
            (
                Outcome::Refused {
                    status,
                    retry_after,
                },
                ConnectFailed {
                    status: Some(status),
                    retry_after,
                    error: e.to_string(),
                },
            )
        }
        // The request itself is wrong: no retry can fix it.
        tungstenite::Error::Url(_) | tungstenite::Error::HttpFormat(_) => (
            Outcome::Unusable,
            ConnectFailed {
                status: None,
                retry_after: None,
                error: e.to_string(),
            },
        ),
        _ => (
            Outcome::Unreachable,
            ConnectFailed {
                status: None,
                retry_after: None,
                error: e.to_string(),
            },
        ),
    }
}

fn give_up_cause(outcome: &Outcome) -> GiveUp {
    match outcome {
        Outcome::Closed { code, .. } => GiveUp::TerminalClose { code: *code },
        Outcome::Refused { status, .. } => GiveUp::Refused { status: *status },
        Outcome::Unusable => GiveUp::Unusable("unusable request".into()),
        // The policy never stops on these; report them as terminal closes.
        Outcome::Abnormal | Outcome::Unreachable => GiveUp::TerminalClose { code: 1006 },
    }
}
