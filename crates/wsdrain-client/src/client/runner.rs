//! The task behind a client: connect, read, report, decide, wait, probe,
//! again; and the handover from a noticed connection to the next one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use wsdrain_protocol::{CloseHint, parse_notice};

use super::builder::{Health, Reconnect};
use super::connect::{self, Opened, Target};
use super::events::{Closed, ConnectFailed, Event, FailedAt, GiveUp, Handover, NotReady};
use super::handle::{Open, Shared, close_open};
use super::resume::{Seen, Streams};
use super::{ConnectionId, Ws};
use crate::retry::{Decision, Outcome, RetryPolicy, Wait, advised_delay, full_jitter};

/// The task behind a client.
pub(super) struct Runner {
    pub(super) config: Reconnect,
    pub(super) shared: Arc<Shared>,
    pub(super) events: mpsc::Sender<Event>,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) connections: u64,
    /// Consecutive failures: the backoff attempt number.
    pub(super) failures: u32,
    /// Where the client is in each resumable stream.
    pub(super) streams: Streams,
}

/// What the task does after a connection or an attempt ended.
enum Next {
    Decide(Outcome),
    Stop(GiveUp),
}

/// The read side of one open connection and what it has seen.
struct Conn {
    id: ConnectionId,
    stream: SplitStream<Ws>,
    opened: Instant,
    /// The Close frame received (code, reason).
    frame: Option<(u16, String)>,
    error: Option<String>,
    ended_cleanly: bool,
    /// Set once a Close went either way: the server must end TCP by then.
    deadline: Option<Instant>,
    /// The server selected `wsdrain.resume.v1`: data frames have headers.
    framed: bool,
    /// The server broke the resume protocol: closed with 1002, nothing
    /// more is read from it.
    broken: bool,
}

enum Read {
    Next(Option<Result<Message, tungstenite::Error>>),
    TimedOut,
}

impl Conn {
    fn new(id: ConnectionId, stream: SplitStream<Ws>, framed: bool) -> Conn {
        Conn {
            id,
            stream,
            opened: Instant::now(),
            frame: None,
            error: None,
            ended_cleanly: false,
            deadline: None,
            framed,
            broken: false,
        }
    }

    async fn read(&mut self) -> Read {
        let deadline = self.deadline;
        tokio::select! {
            next = self.stream.next() => Read::Next(next),
            () = sleep_until(deadline) => Read::TimedOut,
        }
    }

    /// Applies one read; true when the connection has ended.
    fn ended(&mut self, read: &Read, close_timeout: Duration) -> bool {
        match read {
            Read::Next(Some(Ok(Message::Close(close)))) => {
                let (code, reason) = close.as_ref().map_or((1005, String::new()), |f| {
                    (u16::from(f.code), f.reason.to_string())
                });
                tracing::debug!(connection = %self.id, code, reason, "close frame received");
                self.frame = Some((code, reason));
                self.deadline.get_or_insert(Instant::now() + close_timeout);
                false
            }
            Read::Next(Some(Ok(_))) => false,
            Read::Next(Some(Err(e))) => {
                self.error = Some(e.to_string());
                true
            }
            Read::Next(None) => {
                self.ended_cleanly = true;
                true
            }
            Read::TimedOut => {
                self.error = Some(format!(
                    "no TCP close within {close_timeout:?} of the Close"
                ));
                true
            }
        }
    }
}

/// The noticed connection after sends moved to the next one: read until its
/// Close, or closed by the client with 1000 if the server overstays.
struct Old {
    conn: Conn,
    sink: SplitSink<Ws, Message>,
    /// When the next connection took over.
    switched: Instant,
    connect_time: Duration,
    to: ConnectionId,
    /// The notice's lead plus a close timeout: then the client closes it.
    close_by: Instant,
    close_sent: bool,
}

enum OldRead {
    Read(Read),
    Overdue,
}

impl Old {
    async fn read(&mut self) -> OldRead {
        let close_by = (!self.close_sent).then_some(self.close_by);
        tokio::select! {
            read = self.conn.read() => OldRead::Read(read),
            () = sleep_until(close_by) => OldRead::Overdue,
        }
    }

    async fn send_close(&mut self, close_timeout: Duration) {
        self.send_close_frame(normal_close(), close_timeout).await;
    }

    async fn send_close_frame(&mut self, frame: CloseFrame, close_timeout: Duration) {
        if !self.close_sent {
            self.close_sent = true;
            tracing::debug!(connection = %self.conn.id, code = u16::from(frame.code), "client closes the old connection");
            let _ = self.sink.send(Message::Close(Some(frame))).await;
            self.conn
                .deadline
                .get_or_insert(Instant::now() + close_timeout);
        }
    }
}

type Attempt = Pin<Box<dyn Future<Output = Result<Opened, ConnectFailed>> + Send>>;

/// The next connection, being opened after a notice.
struct Pending {
    from: ConnectionId,
    noticed: Instant,
    close_in: Duration,
    attempt: Attempt,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn read_old(old: &mut Option<Old>) -> OldRead {
    match old {
        Some(old) => old.read().await,
        None => std::future::pending().await,
    }
}

async fn poll_pending(pending: &mut Option<Pending>) -> Result<Box<Opened>, ConnectFailed> {
    match pending {
        Some(p) => (&mut p.attempt).await.map(Box::new),
        None => std::future::pending().await,
    }
}

impl Runner {
    pub(super) async fn run(mut self) {
        let target = match self.target() {
            Ok(target) => Arc::new(target),
            Err(failed) => {
                tracing::warn!(error = %failed.error, "unusable request");
                let cause = GiveUp::Unusable(failed.error.clone());
                if self.emit(Event::ConnectFailed(failed)).await {
                    let _ = self.events.send(Event::GaveUp(cause)).await;
                }
                return;
            }
        };
        let url = target.uri().clone();
        tracing::debug!(%url, "client starts");
        let mut probe_first = false;
        let cause = loop {
            if probe_first {
                if let Some(health) = target.health.clone() {
                    if !self.await_healthy(&target, health).await {
                        break GiveUp::ClientClosed;
                    }
                }
            }
            let outcome = match self.attempt(&target).await {
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
                Decision::Retry { delay, wait } => {
                    tracing::info!(%url, delay_ms = delay.as_millis() as u64, %wait, "reconnecting");
                    if !self.emit(Event::Reconnecting { delay, wait }).await {
                        break GiveUp::ClientClosed;
                    }
                    if !self.pause(delay).await {
                        break GiveUp::ClientClosed;
                    }
                    probe_first = true;
                }
                _ => break give_up_cause(&outcome),
            }
        };
        tracing::info!(%url, ?cause, "client gave up");
        let _ = self.events.send(Event::GaveUp(cause)).await;
    }

    /// The request, health URL and TLS settings of every attempt.
    fn target(&self) -> Result<Target, ConnectFailed> {
        let unusable = |error: String| ConnectFailed {
            stage: FailedAt::Request,
            status: None,
            retry_after: None,
            error,
        };
        let request = self.config.request.clone().map_err(unusable)?;
        let health = match &self.config.health {
            Health::Off => None,
            Health::SameOrigin => Some(
                connect::default_health(request.uri())
                    .ok_or_else(|| unusable(format!("no health URL for {}", request.uri())))?,
            ),
            Health::Url(url) => Some(
                url.parse::<Uri>()
                    .map_err(|e| unusable(format!("health URL {url:?}: {e}")))?,
            ),
        };
        #[cfg(feature = "rustls")]
        let tls = {
            let tls = std::sync::OnceLock::new();
            if let Some(config) = &self.config.tls {
                let _ = tls.set(config.clone());
            }
            tls
        };
        Ok(Target {
            request,
            ws_config: self.config.ws_config,
            connect_timeout: self.config.connect_timeout,
            health,
            #[cfg(feature = "rustls")]
            tls,
        })
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

    /// Probes `health` until it answers 200; false when told to stop meanwhile.
    async fn await_healthy(&mut self, target: &Arc<Target>, health: Uri) -> bool {
        let policy = &self.config.policy;
        let (base, cap, jitter) = (policy.base, policy.cap, policy.hint_jitter);
        let mut attempt = 0u32;
        loop {
            let probe = connect::probe(target.clone(), health.clone());
            let answer = {
                let stop = self.stop.wait_for(|&s| s);
                tokio::select! {
                    answer = probe => answer,
                    _ = stop => return false,
                    () = self.events.closed() => return false,
                }
            };
            let (status, retry_after, error) = match answer {
                Ok(answer) if answer.status == 200 => {
                    tracing::debug!(%health, "ready");
                    return true;
                }
                Ok(answer) => (
                    Some(answer.status),
                    answer.retry_after,
                    format!("{health} answered {}", answer.status),
                ),
                Err(failed) => (None, None, failed.error),
            };
            let unit = fastrand::f64();
            let (delay, wait) = match retry_after {
                Some(after) => (
                    advised_delay(after, cap, jitter, unit),
                    Wait::RetryAfter(after),
                ),
                None => (
                    full_jitter(base, cap, attempt, unit),
                    Wait::Backoff { attempt },
                ),
            };
            attempt = attempt.saturating_add(1);
            tracing::info!(%health, status, error, delay_ms = delay.as_millis() as u64, "not ready");
            let event = Event::NotReady(NotReady {
                status,
                retry_after,
                error,
                delay,
                wait,
            });
            if !self.emit(event).await || !self.pause(delay).await {
                return false;
            }
        }
    }

    /// One connection attempt and, when it succeeds, the connection's life.
    async fn attempt(&mut self, target: &Arc<Target>) -> Next {
        tracing::debug!(url = %target.uri(), failures = self.failures, "connecting");
        let point = self.offer();
        let result = {
            let stop = self.stop.wait_for(|&s| s);
            tokio::select! {
                r = connect::connect(target.clone(), point) => r,
                _ = stop => return Next::Stop(GiveUp::ClientClosed),
                () = self.events.closed() => return Next::Stop(GiveUp::ClientClosed),
            }
        };
        let opened = match result {
            Ok(opened) => opened,
            Err(failed) => {
                tracing::warn!(url = %target.uri(), stage = %failed.stage, status = failed.status, error = %failed.error, "connect failed");
                let outcome = connect::outcome(&failed);
                let error = failed.error.clone();
                if !self.emit(Event::ConnectFailed(failed)).await {
                    return Next::Stop(GiveUp::ClientClosed);
                }
                if let Outcome::Unusable = outcome {
                    return Next::Stop(GiveUp::Unusable(error));
                }
                return Next::Decide(outcome);
            }
        };
        let conn = self.install(opened).await;
        tracing::info!(url = %target.uri(), connection = %conn.id, "connected");
        if !self.connected(&conn).await {
            close_open(&self.shared, going_away()).await;
        }
        self.live(target, conn).await
    }

    /// Makes `opened` the connection sends go to.
    async fn install(&mut self, opened: Opened) -> Conn {
        self.connections += 1;
        let id = ConnectionId(self.connections);
        let (sink, stream) = opened.ws.split();
        *self.shared.open.lock().await = Some(Open { id, sink });
        Conn::new(id, stream, opened.framed)
    }

    /// The resume point to offer on the next attempt; `None` without resume.
    fn offer(&self) -> Option<String> {
        self.config.resume.then(|| self.streams.point())
    }

    /// Reports `conn` as connected (and whether resume was declined); false
    /// when the events are gone.
    async fn connected(&self, conn: &Conn) -> bool {
        let connection = conn.id;
        if !self.emit(Event::Connected { connection }).await {
            return false;
        }
        if self.config.resume && !conn.framed {
            tracing::warn!(%connection, "the server did not select wsdrain.resume.v1: not resumable");
            return self.emit(Event::ResumeDeclined { connection }).await;
        }
        true
    }

    /// What a text or binary message read on `conn` means.
    fn classify(&mut self, conn: &Conn, message: Message) -> Seen {
        if conn.framed {
            return self.streams.on_frame(conn.id, message);
        }
        if let Message::Text(text) = &message {
            if let Some(ms) = parse_notice(text).filter(|_| self.config.handover) {
                return Seen::Notice(ms);
            }
        }
        Seen::Event(Event::Message {
            connection: conn.id,
            message,
        })
    }

    /// Reads the open connection until it ends, handing over to a new one on
    /// a drain notice.
    async fn live(&mut self, target: &Arc<Target>, first: Conn) -> Next {
        let close_timeout = self.config.close_timeout;
        let mut cur = first;
        let mut old: Option<Old> = None;
        let mut pending: Option<Pending> = None;
        let mut client_closing = false;
        // A notice on the new connection while the old one still drains:
        // its handover starts when the old one has closed.
        let mut deferred: Option<(ConnectionId, Instant, Duration)> = None;
        loop {
            enum Step {
                Cur(Read),
                Old(OldRead),
                Opened(Result<Box<Opened>, ConnectFailed>),
                Stop,
            }
            let step = {
                let stop = self.stop.wait_for(|&s| s);
                let events_gone = self.events.closed();
                tokio::select! {
                    read = cur.read() => Step::Cur(read),
                    read = read_old(&mut old) => Step::Old(read),
                    opened = poll_pending(&mut pending) => Step::Opened(opened),
                    _ = stop, if !client_closing => Step::Stop,
                    () = events_gone, if !client_closing => Step::Stop,
                }
            };
            match step {
                Step::Cur(read) => {
                    if let Read::Next(Some(Ok(message @ (Message::Text(_) | Message::Binary(_))))) =
                        read
                    {
                        if cur.broken {
                            continue;
                        }
                        let event = match self.classify(&cur, message) {
                            Seen::Notice(ms) => {
                                let close_in = Duration::from_millis(ms);
                                tracing::info!(connection = %cur.id, close_in_ms = ms, "drain notice");
                                if self.config.handover
                                    && pending.is_none()
                                    && !client_closing
                                    && cur.frame.is_none()
                                {
                                    if old.is_none() {
                                        pending = Some(Pending {
                                            from: cur.id,
                                            noticed: Instant::now(),
                                            close_in,
                                            attempt: Box::pin(connect::connect(
                                                target.clone(),
                                                self.offer(),
                                            )),
                                        });
                                    } else {
                                        deferred = Some((cur.id, Instant::now(), close_in));
                                    }
                                }
                                Event::DrainNotice {
                                    connection: cur.id,
                                    close_in,
                                }
                            }
                            Seen::Event(event) => event,
                            Seen::Nothing => continue,
                            Seen::ProtocolError(why) => {
                                tracing::warn!(connection = %cur.id, %why, "resume protocol error: closing with 1002");
                                cur.broken = true;
                                close_open(&self.shared, protocol_error()).await;
                                cur.deadline.get_or_insert(Instant::now() + close_timeout);
                                continue;
                            }
                        };
                        if !self.emit(event).await && !client_closing {
                            client_closing = true;
                            pending = None;
                            close_open(&self.shared, going_away()).await;
                            cur.deadline.get_or_insert(Instant::now() + close_timeout);
                        }
                        continue;
                    }
                    if !cur.ended(&read, close_timeout) {
                        continue;
                    }
                    // A connection closed for a protocol error backs off like
                    // one that broke, whatever code the server echoed.
                    let outcome = self
                        .report_closed(&cur)
                        .await
                        .map(|o| if cur.broken { Outcome::Abnormal } else { o });
                    if let Some(mut old) = old.take() {
                        // The new connection died during the overlap: end the old one too.
                        old.send_close(close_timeout).await;
                        self.finish_old(old).await;
                    }
                    let Some(outcome) = outcome.filter(|_| !client_closing) else {
                        return Next::Stop(GiveUp::ClientClosed);
                    };
                    let Some(p) = pending.take() else {
                        return Next::Decide(outcome);
                    };
                    // The Close came before the next connection was open:
                    // no overlap, but no wait either if it opens.
                    let opened = {
                        let stop = self.stop.wait_for(|&s| s);
                        tokio::select! {
                            opened = p.attempt => opened,
                            _ = stop => return Next::Stop(GiveUp::ClientClosed),
                            () = self.events.closed() => return Next::Stop(GiveUp::ClientClosed),
                        }
                    };
                    match opened {
                        Ok(opened) => {
                            cur = self.install(opened).await;
                            tracing::info!(connection = %cur.id, "connected after the notice");
                            if !self.connected(&cur).await {
                                client_closing = true;
                                close_open(&self.shared, going_away()).await;
                                cur.deadline.get_or_insert(Instant::now() + close_timeout);
                            }
                        }
                        Err(failed) => {
                            if !self.handover_failed(p.from, failed).await {
                                return Next::Stop(GiveUp::ClientClosed);
                            }
                            return Next::Decide(outcome);
                        }
                    }
                }
                Step::Old(OldRead::Overdue) => {
                    if let Some(old) = old.as_mut() {
                        old.send_close(close_timeout).await;
                    }
                }
                Step::Old(OldRead::Read(read)) => {
                    let Some(o) = old.as_mut() else { continue };
                    if let Read::Next(Some(Ok(message @ (Message::Text(_) | Message::Binary(_))))) =
                        read
                    {
                        if o.conn.broken {
                            continue;
                        }
                        // Late answers to what was sent before the switch, and
                        // the streams the next connection has not taken yet.
                        let event = match self.classify(&o.conn, message) {
                            Seen::Event(event) => event,
                            Seen::Notice(_) | Seen::Nothing => continue,
                            Seen::ProtocolError(why) => {
                                tracing::warn!(connection = %o.conn.id, %why, "resume protocol error: closing with 1002");
                                o.conn.broken = true;
                                o.send_close_frame(protocol_error(), close_timeout).await;
                                continue;
                            }
                        };
                        if !self.emit(event).await && !client_closing {
                            client_closing = true;
                            close_open(&self.shared, going_away()).await;
                            cur.deadline.get_or_insert(Instant::now() + close_timeout);
                        }
                        continue;
                    }
                    if !o.conn.ended(&read, close_timeout) {
                        continue;
                    }
                    if let Some(o) = old.take() {
                        let overlap = o.switched.elapsed();
                        let handover = Handover {
                            from: o.conn.id,
                            to: o.to,
                            overlap,
                            connect_time: o.connect_time,
                        };
                        let delivered = self.report_closed(&o.conn).await.is_some();
                        if let Some((from, noticed, close_in)) = deferred.take() {
                            if from == cur.id && cur.frame.is_none() && !client_closing {
                                pending = Some(Pending {
                                    from,
                                    noticed,
                                    close_in,
                                    attempt: Box::pin(connect::connect(
                                        target.clone(),
                                        self.offer(),
                                    )),
                                });
                            }
                        }
                        tracing::info!(from = %handover.from, to = %handover.to, overlap_ms = overlap.as_millis() as u64, "handover");
                        if (!delivered || !self.emit(Event::Handover(handover)).await)
                            && !client_closing
                        {
                            {
                                client_closing = true;
                                close_open(&self.shared, going_away()).await;
                                cur.deadline.get_or_insert(Instant::now() + close_timeout);
                            }
                        }
                    }
                }
                Step::Opened(opened) => {
                    let Some(p) = pending.take() else { continue };
                    match opened {
                        Ok(opened) => {
                            if let Some(o) =
                                self.switch(&mut cur, *opened, p.noticed, p.close_in).await
                            {
                                old = Some(o);
                                if !self.connected(&cur).await {
                                    client_closing = true;
                                    close_open(&self.shared, going_away()).await;
                                    cur.deadline.get_or_insert(Instant::now() + close_timeout);
                                    if let Some(o) = old.as_mut() {
                                        o.send_close(close_timeout).await;
                                    }
                                }
                            }
                        }
                        Err(failed) => {
                            if !self.handover_failed(p.from, failed).await && !client_closing {
                                client_closing = true;
                                close_open(&self.shared, going_away()).await;
                                cur.deadline.get_or_insert(Instant::now() + close_timeout);
                            }
                        }
                    }
                }
                Step::Stop => {
                    client_closing = true;
                    pending = None;
                    let frame = if self.stopping() {
                        normal_close()
                    } else {
                        going_away()
                    };
                    close_open(&self.shared, frame).await;
                    cur.deadline.get_or_insert(Instant::now() + close_timeout);
                    if let Some(o) = old.as_mut() {
                        o.send_close(close_timeout).await;
                    }
                }
            }
        }
    }

    /// Moves sends from `cur` to the new connection `ws`, which becomes
    /// `cur`; returns the old one. `None` (and `ws` closed) when sends are no
    /// longer on `cur` (the client is closing).
    async fn switch(
        &mut self,
        cur: &mut Conn,
        opened: Opened,
        noticed: Instant,
        close_in: Duration,
    ) -> Option<Old> {
        let (sink, stream) = opened.ws.split();
        let mut open = self.shared.open.lock().await;
        let Some(current) = open.as_mut().filter(|o| o.id == cur.id) else {
            drop(open);
            let mut sink = sink;
            let _ = sink.send(Message::Close(Some(normal_close()))).await;
            return None;
        };
        self.connections += 1;
        let id = ConnectionId(self.connections);
        // Under the lock: a send is written wholly on the old connection or
        // wholly on the new one, never on both, never on neither.
        let old_sink = std::mem::replace(&mut current.sink, sink);
        current.id = id;
        drop(open);
        let switched = Instant::now();
        let old_conn = std::mem::replace(cur, Conn::new(id, stream, opened.framed));
        let connect_time = switched - noticed;
        tracing::info!(from = %old_conn.id, to = %id, connect_ms = connect_time.as_millis() as u64, "sends moved to the new connection");
        Some(Old {
            conn: old_conn,
            sink: old_sink,
            switched,
            connect_time,
            to: id,
            close_by: noticed + close_in + self.config.close_timeout,
            close_sent: false,
        })
    }

    /// Reports a failed handover attempt; false when the events are gone.
    async fn handover_failed(&self, connection: ConnectionId, failed: ConnectFailed) -> bool {
        tracing::warn!(%connection, stage = %failed.stage, error = %failed.error, "handover failed: staying on the old connection");
        self.emit(Event::HandoverFailed { connection, failed })
            .await
    }

    /// Reads `old` to its end (bounded by its deadline) and reports it.
    async fn finish_old(&mut self, mut old: Old) {
        let close_timeout = self.config.close_timeout;
        loop {
            let read = match old.read().await {
                OldRead::Read(read) => read,
                OldRead::Overdue => {
                    old.send_close(close_timeout).await;
                    continue;
                }
            };
            if old.conn.ended(&read, close_timeout) {
                break;
            }
        }
        let _ = self.report_closed(&old.conn).await;
    }

    /// Emits [`Event::Closed`] for `conn`; the outcome for the retry policy,
    /// `None` when the events are gone.
    async fn report_closed(&mut self, conn: &Conn) -> Option<Outcome> {
        {
            // From here on sends fail with NotConnected; sends that returned
            // Ok completed before this lock was taken.
            let mut open = self.shared.open.lock().await;
            if open.as_ref().is_some_and(|o| o.id == conn.id) {
                drop(open.take());
            }
        }
        let up_for = conn.opened.elapsed();
        if up_for >= self.config.policy.stable_after {
            self.failures = 0;
        }
        let clean = conn.frame.is_some() && conn.ended_cleanly;
        let (code, reason) = conn.frame.clone().unwrap_or((1006, String::new()));
        let hint = CloseHint::parse(&reason);
        let closed = Closed {
            connection: conn.id,
            code,
            reason,
            hint,
            clean,
            up_for,
            error: conn.error.clone(),
        };
        tracing::info!(
            connection = %conn.id,
            code,
            reason = %closed.reason,
            hint_ms = hint.map(|h| h.retry_after_ms()),
            clean,
            up_for_ms = up_for.as_millis() as u64,
            error = closed.error.as_deref(),
            "closed"
        );
        if !self.emit(Event::Closed(closed)).await {
            return None;
        }
        Some(match conn.frame {
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

/// The Close a client sends when the server broke the resume protocol.
fn protocol_error() -> CloseFrame {
    CloseFrame {
        code: 1002.into(),
        reason: "wsdrain.resume.v1 protocol error".into(),
    }
}

/// The Close a client sends when it is done with a connection.
fn normal_close() -> CloseFrame {
    CloseFrame {
        code: 1000.into(),
        reason: "".into(),
    }
}

fn give_up_cause(outcome: &Outcome) -> GiveUp {
    match outcome {
        Outcome::Closed { code, .. } => GiveUp::TerminalClose { code: *code },
        Outcome::Refused { status, .. } => GiveUp::Refused { status: *status },
        Outcome::Unusable => GiveUp::Unusable("unusable request".into()),
        // The policy never stops on these; report them as terminal closes.
        _ => GiveUp::TerminalClose { code: 1006 },
    }
}
