//! The clients: `wsdrain-client` reconnecting clients, each sending
//! sequence-numbered messages one at a time and checking every echo.
//!
//! A message is *sent* when [`Client::send`] returned `Ok(connection)`. Then:
//!
//! * its echo arrives: *echoed*;
//! * the connection ends first with a Close frame (`clean`): the server said
//!   it is going away and sends nothing after its Close, so the application
//!   knows the message was not answered and sends it again, with the same
//!   number, on the next connection: *resent*;
//! * the connection ends first without a Close frame (1006), or the echo does
//!   not come within the echo timeout while the connection stays open, or a
//!   wrong echo comes: *lost*. The application was not told what became of it.
//!
//! A send that returns an error is reported to the application at once and
//! retried later; it is not counted as sent.
//!
//! With `--notice` the clients hand over as the drain notice asks
//! (docs/PROTOCOL.md): on `{"type":"wsdrain.reconnect",...}` a client starts
//! a second reconnecting client (a *lane*) to the same URL, moves its sends
//! to it once it is connected, and closes the old lane with 1000 when its
//! message in flight is answered (at once when none is). If the new lane
//! fails to connect, the client stays on the old one and reconnects by the
//! hint of the Close that follows. A client is *disconnected* while none of
//! its lanes has an open connection.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::watch;
use wsdrain::{
    client::{Client, Event, Events, Message, Reconnect, RetryPolicy},
    protocol::parse_notice,
};

/// How the clients behave.
#[derive(Debug, Clone)]
pub(crate) struct ClientSpec {
    /// `ws://<load balancer>/ws`.
    pub(crate) url: String,
    /// Pause between an echo and the next message.
    pub(crate) interval: Duration,
    /// An echo that takes longer counts the message as lost.
    pub(crate) echo_timeout: Duration,
    /// Hand over on the drain notice: open a new connection at once, move
    /// the sends to it when it is open, close the old one with 1000 (once
    /// its message in flight, if any, is answered).
    pub(crate) handover: bool,
}

/// What one client saw.
#[derive(Debug, Default, Clone)]
pub(crate) struct ClientLog {
    /// Closes with 1001 (or 1012) and a retry hint.
    pub(crate) clean_closes: u64,
    /// Closes with a Close frame but no hint, or another code.
    pub(crate) other_closes: u64,
    /// Ends without a Close frame (1006).
    pub(crate) abnormal_closes: u64,
    /// Attempts that failed before the upgrade (refused, 503, timeout).
    pub(crate) failed_connects: u64,
    /// Messages written on an open connection.
    pub(crate) sent: u64,
    /// Messages whose echo came back.
    pub(crate) echoed: u64,
    /// Messages unanswered at a clean close, sent again.
    pub(crate) resent: u64,
    /// Messages lost (see the module docs).
    pub(crate) lost: u64,
    /// Drain notices received.
    pub(crate) notices: u64,
    /// Handovers: a new connection opened on a notice and took the sends.
    pub(crate) handovers: u64,
    /// Handovers whose new connection failed (the client stayed on the old one).
    pub(crate) failed_handovers: u64,
    /// Seconds without an open connection, from the first open to the stop.
    pub(crate) disconnected: f64,
    /// `(seconds when the previous connection closed, seconds when the next
    /// one opened)` for every reconnect; for a handover, `(notice, the new
    /// connection open)`; seconds since the run's `t0`.
    pub(crate) reconnects: Vec<(f64, f64)>,
    /// Seconds (since `t0`) of every close by the server, clean or not.
    pub(crate) closes: Vec<f64>,
    /// SSE: events received.
    pub(crate) events: u64,
    /// SSE: events received twice.
    pub(crate) duplicates: u64,
    /// SSE: the client gave up for good (a non-200 answer, as `EventSource`).
    pub(crate) gave_up: bool,
}

/// Counts clients with an open connection.
#[derive(Debug, Default)]
pub(crate) struct Connected(AtomicUsize);

impl Connected {
    /// Clients connected now.
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// One more (`1`) or one fewer (`-1`) open connection.
    pub(crate) fn add(&self, n: isize) {
        if n >= 0 {
            self.0.fetch_add(n.unsigned_abs(), Ordering::Relaxed);
        } else {
            self.0.fetch_sub(n.unsigned_abs(), Ordering::Relaxed);
        }
    }
}

/// One reconnecting client: the connection in use, or the one a handover
/// opened. Its [`ConnectionId`]s are its own, so a message is known by lane
/// and connection.
struct Lane {
    id: u64,
    client: Client,
    events: Events,
    /// Its connection is open.
    open: bool,
}

impl Lane {
    fn spawn(id: u64, url: &str) -> Lane {
        // The simulator runs its own handover over two lanes, so that every
        // mode measures the same way; the client's built-in one stays off.
        let policy = RetryPolicy::builder()
            .cap(Duration::from_secs(5))
            .build()
            .expect("a 5 s cap is a valid policy");
        let (client, events) = Reconnect::new(url.to_string())
            .handover(false)
            .policy(policy)
            .connect_timeout(Duration::from_secs(5))
            .spawn();
        Lane {
            id,
            client,
            events,
            open: false,
        }
    }
}

/// The next event of a lane that may not exist; pending without one.
async fn next_of(lane: &mut Option<Lane>) -> Option<Event> {
    match lane {
        Some(l) => l.events.next().await,
        None => std::future::pending().await,
    }
}

/// Which lane an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Current,
    Next,
    Retiring,
}

/// Runs one client until `stop` turns true, then lets its last message
/// finish, closes with 1000 and returns what it saw.
pub(crate) async fn run_client(
    id: usize,
    spec: ClientSpec,
    t0: Instant,
    connected: Arc<Connected>,
    mut stop: watch::Receiver<bool>,
) -> ClientLog {
    let mut lanes = 0;
    let mut lane = |url: &str| {
        lanes += 1;
        Lane::spawn(lanes, url)
    };
    let mut current = lane(&spec.url);
    // Opened on a notice, until its connection is open.
    let mut next: Option<Lane> = None;
    // The old lane after a handover, until its events end.
    let mut retiring: Option<Lane> = None;
    // Close the retiring lane once the message in flight on it is answered.
    let mut retire_when_answered = false;
    let secs = || t0.elapsed().as_secs_f64();
    let mut log = ClientLog::default();
    let mut next_seq: u64 = 0;
    // The message waiting for its echo: (text, lane, connection, sent at).
    let mut outstanding: Option<(String, u64, u64, Instant)> = None;
    // A message to send again (unanswered at a clean close, or refused by send).
    let mut again: Option<u64> = None;
    // Open connections over all lanes, and since when none is (after the first).
    let mut open_count = 0usize;
    let mut down_since: Option<f64> = None;
    let mut last_close: Option<f64> = None;
    let mut notice_at: Option<f64> = None;
    let mut stopping = false;
    let mut closing = false;
    let next_send = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(next_send);
    loop {
        let echo_deadline = outstanding
            .as_ref()
            .map(|(_, _, _, at)| *at + spec.echo_timeout);
        let sending = current.open && outstanding.is_none() && !stopping;
        let (from, event) = tokio::select! {
            event = current.events.next() => match event {
                Some(e) => (Source::Current, e),
                None => break,
            },
            event = next_of(&mut next) => match event {
                Some(e) => (Source::Next, e),
                None => { next = None; continue; }
            },
            event = next_of(&mut retiring) => match event {
                Some(e) => (Source::Retiring, e),
                None => { retiring = None; continue; }
            },
            () = &mut next_send, if sending => {
                let seq = again.take().unwrap_or_else(|| { next_seq += 1; next_seq });
                let text = format!("{id}:{seq}");
                match current.client.send(Message::text(text.clone())).await {
                    Ok(connection) => {
                        log.sent += 1;
                        outstanding = Some((text, current.id, connection.get(), Instant::now()));
                    }
                    Err(_) => {
                        again = Some(seq);
                        next_send.as_mut().reset(tokio::time::Instant::now() + spec.interval);
                    }
                }
                continue;
            }
            () = sleep_until_opt(echo_deadline) => {
                // No echo while the connection stays open.
                outstanding = None;
                log.lost += 1;
                next_send.as_mut().reset(tokio::time::Instant::now());
                continue;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                if let Some(since) = down_since.take() {
                    log.disconnected += secs() - since;
                }
                if outstanding.is_none() && !closing {
                    closing = true;
                    close_all(&current, &next, &retiring).await;
                }
                continue;
            }
        };
        let Some(this) = (match from {
            Source::Current => Some(&mut current),
            Source::Next => next.as_mut(),
            Source::Retiring => retiring.as_mut(),
        }) else {
            continue;
        };
        let lane_id = this.id;
        let was_open = this.open;
        match &event {
            Event::Connected { .. } => this.open = true,
            Event::Closed(_) => this.open = false,
            _ => {}
        }
        match event {
            Event::Connected { .. } => {
                if was_open {
                    continue;
                }
                if open_count == 0 {
                    if let Some(since) = down_since.take() {
                        log.disconnected += secs() - since;
                    }
                    connected.0.fetch_add(1, Ordering::Relaxed);
                }
                open_count += 1;
                match from {
                    Source::Next => {
                        // The switch: sends go to the new connection.
                        let Some(new) = next.take() else { continue };
                        log.handovers += 1;
                        if let Some(at) = notice_at.take() {
                            log.reconnects.push((at, secs()));
                        }
                        last_close = None;
                        let old = std::mem::replace(&mut current, new);
                        let busy = outstanding.as_ref().is_some_and(|o| o.1 == old.id);
                        if !busy {
                            old.client.close();
                        }
                        retire_when_answered = busy;
                        retiring = Some(old);
                        next_send.as_mut().reset(tokio::time::Instant::now());
                    }
                    Source::Current => {
                        if let Some(closed_at) = last_close.take() {
                            log.reconnects.push((closed_at, secs()));
                        }
                        next_send.as_mut().reset(tokio::time::Instant::now());
                    }
                    Source::Retiring => {}
                }
            }
            Event::Message {
                connection,
                message,
            } => {
                let text = message.to_text().unwrap_or_default();
                if parse_notice(text).is_some() {
                    log.notices += 1;
                    if spec.handover
                        && from == Source::Current
                        && next.is_none()
                        && retiring.is_none()
                        && !stopping
                    {
                        notice_at = Some(secs());
                        next = Some(lane(&spec.url));
                    }
                    continue;
                }
                match outstanding.take() {
                    Some((want, l, conn, _))
                        if l == lane_id && conn == connection.get() && want == text =>
                    {
                        log.echoed += 1;
                        next_send
                            .as_mut()
                            .reset(tokio::time::Instant::now() + spec.interval);
                        if from == Source::Retiring && retire_when_answered {
                            retire_when_answered = false;
                            if let Some(old) = &retiring {
                                old.client.close();
                            }
                        }
                    }
                    Some(_) | None => log.lost += 1,
                }
            }
            Event::Closed(closed) => {
                if was_open {
                    open_count = open_count.saturating_sub(1);
                    if open_count == 0 {
                        connected.0.fetch_sub(1, Ordering::Relaxed);
                        if !stopping {
                            down_since = Some(secs());
                        }
                    }
                }
                if let Some((text, l, conn, at)) = outstanding.take() {
                    if l == lane_id && conn == closed.connection.get() {
                        if closed.clean {
                            log.resent += 1;
                            again = seq_of(&text);
                        } else {
                            log.lost += 1;
                        }
                        next_send.as_mut().reset(tokio::time::Instant::now());
                    } else {
                        outstanding = Some((text, l, conn, at));
                    }
                }
                if closing || from != Source::Current {
                    // Our own Close (end of run, or the old lane of a handover).
                    continue;
                }
                let now = secs();
                log.closes.push(now);
                last_close = Some(now);
                if !closed.clean {
                    log.abnormal_closes += 1;
                } else if closed.hint.is_some() && matches!(closed.code, 1001 | 1012) {
                    log.clean_closes += 1;
                } else {
                    log.other_closes += 1;
                }
            }
            Event::ConnectFailed(_) => {
                if from == Source::Next {
                    // The handover failed: stay on the old connection; its
                    // hinted Close comes a lead later.
                    log.failed_handovers += 1;
                    next = None;
                    notice_at = None;
                } else {
                    log.failed_connects += 1;
                }
            }
            Event::Reconnecting { .. } => {}
            Event::GaveUp(_) => match from {
                Source::Current => break,
                Source::Next => next = None,
                Source::Retiring => retiring = None,
            },
            _ => {}
        }
        if stopping && outstanding.is_none() && !closing {
            closing = true;
            close_all(&current, &next, &retiring).await;
        }
    }
    if open_count > 0 {
        connected.0.fetch_sub(1, Ordering::Relaxed);
    }
    log
}

/// Stops every lane with a Close(1000).
async fn close_all(current: &Lane, next: &Option<Lane>, retiring: &Option<Lane>) {
    current.client.close();
    for l in [next, retiring].into_iter().flatten() {
        l.client.close();
    }
}

fn seq_of(text: &str) -> Option<u64> {
    text.rsplit(':').next()?.parse().ok()
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
