//! The task behind a client: connect, read, report, decide, wait, probe,
//! again; and the handover from a noticed connection to the next one.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use wsdrain_protocol::{CloseHint, parse_notice};

use super::ConnectionId;
use super::builder::{Health, Reconnect};
use super::conn::{Conn, ConnEvent, Limits};
use super::connect::{self, Opened, Target};
use super::events::{Closed, ConnectFailed, Event, FailedAt, GiveUp, Handover, NotReady};
use super::handle::{Route, Shared};
use super::resume::{Seen, Streams};
use crate::retry::{Decision, Outcome, RetryPolicy, Wait, advised_delay, full_jitter};

/// The task behind a client.
pub(super) struct Runner {
    pub(super) config: Reconnect,
    pub(super) shared: Arc<Shared>,
    pub(super) events: mpsc::Sender<Event>,
    pub(super) stop: watch::Receiver<Route>,
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

/// The noticed connection after sends moved to the next one: read until its
/// Close, or closed by the client with 1000 if the server overstays.
struct Old {
    conn: Conn,
    /// When the next connection took over.
    switched: Instant,
    connect_time: Duration,
    to: ConnectionId,
    /// The notice's lead plus a close timeout: then the client closes it.
    close_by: Instant,
    close_sent: bool,
}

enum OldEvent {
    Conn(ConnEvent),
    Overdue,
}

impl Old {
    async fn next(&mut self, reading: bool) -> OldEvent {
        let close_by = (!self.close_sent).then_some(self.close_by);
        tokio::select! {
            event = self.conn.next(reading) => OldEvent::Conn(event),
            () = sleep_until(close_by) => OldEvent::Overdue,
        }
    }

    fn send_close(&mut self) {
        self.send_close_frame(normal_close());
    }

    fn send_close_frame(&mut self, frame: CloseFrame) {
        if !self.close_sent {
            self.close_sent = true;
            tracing::debug!(connection = %self.conn.id, code = u16::from(frame.code), "client closes the old connection");
            self.conn.close(frame);
        }
    }
}

type Attempt = Pin<Box<dyn Future<Output = Result<Opened, ConnectFailed>> + Send>>;

/// The next connection, being opened after a notice.
struct Pending {
    from: ConnectionId,
    noticed: Instant,
    close_in: Duration,
    /// When the attempt begins: at once, or after the backoff when the
    /// noticed connection was itself a young handover's.
    starts: Instant,
    attempt: Attempt,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn next_old(old: &mut Option<Old>, reading: bool) -> OldEvent {
    match old {
        Some(old) => old.next(reading).await,
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
        tracing::info!(%url, %cause, "client gave up");
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
        if self.config.write_timeout.is_zero() {
            return Err(unusable("write_timeout must be above zero".into()));
        }
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
        self.stop.borrow().stopped
    }

    fn limits(&self) -> Limits {
        Limits {
            close_timeout: self.config.close_timeout,
            write_timeout: self.config.write_timeout,
            send_queue: self.config.send_queue,
        }
    }

    /// Stops sends going to `id`.
    fn unroute(&self, id: ConnectionId) {
        self.shared.route.send_if_modified(|route| route.close(id));
    }

    /// Stops sends going to `conn` and closes it with `frame`.
    fn close_conn(&self, conn: &mut Conn, frame: CloseFrame) {
        self.unroute(conn.id);
        conn.close(frame);
    }

    /// Sends an event; false when the application dropped the events.
    async fn emit(&self, event: Event) -> bool {
        self.events.send(event).await.is_ok()
    }

    /// Sleeps `delay`; false when told to stop meanwhile.
    async fn pause(&mut self, delay: Duration) -> bool {
        let stop = self.stop.wait_for(|r| r.stopped);
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            _ = stop => false,
            () = self.events.closed() => false,
        }
    }

    /// Probes `health` until it answers 200; false when told to stop meanwhile.
    async fn await_healthy(&mut self, target: &Arc<Target>, health: Uri) -> bool {
        let policy = &self.config.policy;
        let (base, cap, jitter) = (policy.base(), policy.cap(), policy.hint_jitter());
        let mut attempt = 0u32;
        loop {
            let probe = connect::probe(target.clone(), health.clone());
            let answer = {
                let stop = self.stop.wait_for(|r| r.stopped);
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
            let stop = self.stop.wait_for(|r| r.stopped);
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
        let conn = self.install(opened);
        tracing::info!(url = %target.uri(), connection = %conn.id, "connected");
        let mut outbox = VecDeque::new();
        self.connected(&conn, &mut outbox);
        let next = self.live(target, conn, &mut outbox).await;
        // Nothing is open any more: what is left is handed over, waiting as long
        // as the application takes.
        for event in outbox.drain(..) {
            if !self.emit(event).await {
                return Next::Stop(GiveUp::ClientClosed);
            }
        }
        next
    }

    /// Makes `opened` the connection sends go to (unless the client was
    /// told to stop meanwhile: its task then closes it).
    fn install(&mut self, opened: Opened) -> Conn {
        self.connections += 1;
        let (mut conn, lane) = Conn::open(ConnectionId(self.connections), opened.ws, self.limits());
        conn.framed = opened.framed;
        self.shared.route.send_if_modified(|route| route.open(lane));
        conn
    }

    /// The resume point to offer on the next attempt; `None` without resume.
    fn offer(&self) -> Option<String> {
        self.config.resume.then(|| self.streams.point())
    }

    /// Reports `conn` as connected, and whether resume was declined on it.
    fn connected(&self, conn: &Conn, outbox: &mut VecDeque<Event>) {
        let connection = conn.id;
        outbox.push_back(Event::Connected { connection });
        if self.config.resume && !conn.framed {
            tracing::warn!(%connection, "the server did not select wsdrain.resume.v1: not resumable");
            outbox.push_back(Event::ResumeDeclined { connection });
        }
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
    ///
    /// Events go out through `outbox`, one step of the loop at a time: while
    /// the application has not taken the last one, the loop reads nothing
    /// more (the events' backpressure) but goes on writing, closing and
    /// timing every connection, so a `send` the application awaits from its
    /// event loop is never stuck behind the event it has yet to read.
    async fn live(
        &mut self,
        target: &Arc<Target>,
        first: Conn,
        outbox: &mut VecDeque<Event>,
    ) -> Next {
        let mut cur = first;
        let mut old: Option<Old> = None;
        let mut pending: Option<Pending> = None;
        let mut client_closing = false;
        // A notice on the new connection while the old one still drains:
        // its handover starts when the old one has closed.
        let mut deferred: Option<(ConnectionId, Instant, Duration)> = None;
        loop {
            enum Step {
                Emitted(bool),
                Cur(ConnEvent),
                Old(OldEvent),
                Opened(Result<Box<Opened>, ConnectFailed>),
                Stop,
            }
            let reading = outbox.is_empty();
            let step = {
                let stop = self.stop.wait_for(|r| r.stopped);
                let events_gone = self.events.closed();
                tokio::select! {
                    permit = self.events.reserve(), if !reading => Step::Emitted(match permit {
                        Ok(permit) => {
                            if let Some(event) = outbox.pop_front() {
                                permit.send(event);
                            }
                            true
                        }
                        Err(_) => false,
                    }),
                    event = cur.next(reading) => Step::Cur(event),
                    event = next_old(&mut old, reading) => Step::Old(event),
                    opened = poll_pending(&mut pending) => Step::Opened(opened),
                    _ = stop, if !client_closing => Step::Stop,
                    () = events_gone, if !client_closing => Step::Stop,
                }
            };
            // The application dropped the events: close everything, go away.
            let mut gone = false;
            match step {
                Step::Emitted(delivered) => gone = !delivered,
                Step::Cur(ConnEvent::Message(_)) if cur.broken => {}
                Step::Cur(ConnEvent::Message(message)) => match self.classify(&cur, message) {
                    Seen::Notice(ms) => {
                        let close_in = Duration::from_millis(ms);
                        tracing::info!(connection = %cur.id, close_in_ms = ms, "drain notice");
                        if self.config.handover
                            && pending.is_none()
                            && !client_closing
                            && cur.frame.is_none()
                        {
                            if old.is_none() {
                                pending =
                                    Some(self.hand_over(target, &cur, Instant::now(), close_in));
                            } else {
                                deferred = Some((cur.id, Instant::now(), close_in));
                            }
                        }
                        outbox.push_back(Event::DrainNotice {
                            connection: cur.id,
                            close_in,
                        });
                    }
                    Seen::Event(event) => outbox.push_back(event),
                    Seen::Nothing => {}
                    Seen::ProtocolError(why) => {
                        tracing::warn!(connection = %cur.id, %why, "resume protocol error: closing with 1002");
                        cur.broken = true;
                        self.close_conn(&mut cur, protocol_error());
                    }
                },
                // Sends stop at once; the end follows.
                Step::Cur(ConnEvent::PeerClosing) => self.unroute(cur.id),
                Step::Cur(ConnEvent::Ended) => {
                    let outcome = self.closed(&mut cur, outbox);
                    // Closed for a protocol error: back off as after a
                    // broken connection, whatever code the server echoed.
                    let outcome = if cur.broken {
                        Outcome::Abnormal
                    } else {
                        outcome
                    };
                    if let Some(mut old) = old.take() {
                        // The new connection died during the overlap: end the old one too.
                        old.send_close();
                        while !matches!(old.conn.next(true).await, ConnEvent::Ended) {}
                        self.closed(&mut old.conn, outbox);
                    }
                    if client_closing {
                        return Next::Stop(GiveUp::ClientClosed);
                    }
                    // A handover still waiting out its backoff gives way to
                    // the Close's advice.
                    let Some(p) = pending.take().filter(|p| p.starts <= Instant::now()) else {
                        return Next::Decide(outcome);
                    };
                    // The Close came before the next connection was open:
                    // no overlap, but no wait either if it opens. Nothing is
                    // open meanwhile, so the events go out first.
                    if !self.flush(outbox).await {
                        return Next::Stop(GiveUp::ClientClosed);
                    }
                    let opened = {
                        let stop = self.stop.wait_for(|r| r.stopped);
                        tokio::select! {
                            opened = p.attempt => opened,
                            _ = stop => return Next::Stop(GiveUp::ClientClosed),
                            () = self.events.closed() => return Next::Stop(GiveUp::ClientClosed),
                        }
                    };
                    match opened {
                        Ok(opened) => {
                            cur = self.install(opened);
                            cur.by_handover = true;
                            tracing::info!(connection = %cur.id, "connected after the notice");
                            self.connected(&cur, outbox);
                        }
                        Err(failed) => {
                            outbox.push_back(self.handover_failed(p.from, failed));
                            return Next::Decide(outcome);
                        }
                    }
                }
                Step::Old(OldEvent::Overdue) => {
                    if let Some(old) = old.as_mut() {
                        old.send_close();
                    }
                }
                Step::Old(OldEvent::Conn(ConnEvent::Message(message))) => {
                    // Late answers to what was sent before the switch, and
                    // the streams the next connection has not taken yet.
                    if let Some(o) = old.as_mut().filter(|o| !o.conn.broken) {
                        match self.classify(&o.conn, message) {
                            Seen::Event(event) => outbox.push_back(event),
                            Seen::Notice(_) | Seen::Nothing => {}
                            Seen::ProtocolError(why) => {
                                tracing::warn!(connection = %o.conn.id, %why, "resume protocol error: closing with 1002");
                                o.conn.broken = true;
                                o.send_close_frame(protocol_error());
                            }
                        }
                    }
                }
                Step::Old(OldEvent::Conn(ConnEvent::PeerClosing)) => {}
                Step::Old(OldEvent::Conn(ConnEvent::Ended)) => {
                    if let Some(mut o) = old.take() {
                        let overlap = o.switched.elapsed();
                        let handover = Handover {
                            from: o.conn.id,
                            to: o.to,
                            overlap,
                            connect_time: o.connect_time,
                        };
                        self.closed(&mut o.conn, outbox);
                        if let Some((from, noticed, close_in)) = deferred.take() {
                            if from == cur.id && cur.frame.is_none() && !client_closing {
                                pending = Some(self.hand_over(target, &cur, noticed, close_in));
                            }
                        }
                        tracing::info!(from = %handover.from, to = %handover.to, overlap_ms = overlap.as_millis() as u64, "handover");
                        outbox.push_back(Event::Handover(handover));
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
                                self.connected(&cur, outbox);
                            }
                        }
                        Err(failed) => outbox.push_back(self.handover_failed(p.from, failed)),
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
                    self.close_conn(&mut cur, frame);
                    if let Some(o) = old.as_mut() {
                        o.send_close();
                    }
                }
            }
            if gone {
                // Nobody will read them.
                outbox.clear();
                if !client_closing {
                    client_closing = true;
                    pending = None;
                    self.close_conn(&mut cur, going_away());
                    if let Some(o) = old.as_mut() {
                        o.send_close();
                    }
                }
            }
        }
    }

    /// Hands `outbox` over, waiting as long as the application takes; false
    /// when the events are gone.
    async fn flush(&self, outbox: &mut VecDeque<Event>) -> bool {
        while let Some(event) = outbox.pop_front() {
            if !self.emit(event).await {
                outbox.clear();
                return false;
            }
        }
        true
    }

    /// The attempt that replaces `cur` after its notice. At once, unless
    /// `cur` was itself opened by a handover and is younger than
    /// `stable_after`: servers that notice every new connection would
    /// otherwise chain handovers as fast as they accept (the way
    /// centrifuge-js once made 189 attempts in 500 ms). Such a notice counts
    /// as a failure and waits the backoff first.
    fn hand_over(
        &mut self,
        target: &Arc<Target>,
        cur: &Conn,
        noticed: Instant,
        close_in: Duration,
    ) -> Pending {
        let policy = &self.config.policy;
        let wait = if cur.by_handover && cur.opened.elapsed() < policy.stable_after() {
            let wait = full_jitter(policy.base(), policy.cap(), self.failures, fastrand::f64());
            self.failures = self.failures.saturating_add(1);
            tracing::info!(connection = %cur.id, wait_ms = wait.as_millis() as u64, "drain notice on a new handover: backing off first");
            wait
        } else {
            Duration::ZERO
        };
        let starts = Instant::now() + wait;
        let target = target.clone();
        // The point as it is now: the new connection replays from it, the
        // overlap with what the old one still delivers is dropped.
        let point = self.offer();
        Pending {
            from: cur.id,
            noticed,
            close_in,
            starts,
            attempt: Box::pin(async move {
                tokio::time::sleep_until(starts).await;
                connect::connect(target, point).await
            }),
        }
    }

    /// Moves sends from `cur` to the new connection `ws`, which becomes
    /// `cur`; returns the old one. `None` (and `ws` closed) when the client
    /// is stopping.
    async fn switch(
        &mut self,
        cur: &mut Conn,
        opened: Opened,
        noticed: Instant,
        close_in: Duration,
    ) -> Option<Old> {
        let id = ConnectionId(self.connections + 1);
        let (mut conn, lane) = Conn::open(id, opened.ws, self.limits());
        conn.by_handover = true;
        conn.framed = opened.framed;
        // One step: a send goes wholly to the old connection or wholly to the
        // new one, and a stop cannot slip in between.
        let cur_id = cur.id;
        let moved = self.shared.route.send_if_modified(|route| {
            let from_cur = route.open.as_ref().is_none_or(|lane| lane.id == cur_id);
            from_cur && route.open(lane)
        });
        if !moved {
            conn.close(normal_close());
            self.finish_unused(conn).await;
            return None;
        }
        self.connections += 1;
        let switched = Instant::now();
        let old_conn = std::mem::replace(cur, conn);
        let connect_time = switched - noticed;
        tracing::info!(from = %old_conn.id, to = %id, connect_ms = connect_time.as_millis() as u64, "sends moved to the new connection");
        Some(Old {
            conn: old_conn,
            switched,
            connect_time,
            to: id,
            close_by: noticed + close_in + self.config.close_timeout,
            close_sent: false,
        })
    }

    /// Reads a connection the client does not use to its end (its Close
    /// asked for, so bounded by the close timeout), unreported.
    async fn finish_unused(&mut self, mut conn: Conn) {
        while !matches!(conn.next(true).await, ConnEvent::Ended) {}
    }

    /// The event of a failed handover attempt.
    fn handover_failed(&self, connection: ConnectionId, failed: ConnectFailed) -> Event {
        tracing::warn!(%connection, stage = %failed.stage, error = %failed.error, "handover failed: staying on the old connection");
        Event::HandoverFailed { connection, failed }
    }

    /// [`Event::Closed`] for `conn`, into `outbox`; the outcome for the
    /// retry policy. Every send to `conn` has its answer first.
    fn closed(&mut self, conn: &mut Conn, outbox: &mut VecDeque<Event>) -> Outcome {
        // From here on sends fail with NotConnected.
        self.unroute(conn.id);
        conn.abandon();
        let up_for = conn.opened.elapsed();
        if up_for >= self.config.policy.stable_after() {
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
        outbox.push_back(Event::Closed(closed));
        match conn.frame {
            Some(_) => Outcome::Closed { code, hint },
            None => Outcome::Abnormal,
        }
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
