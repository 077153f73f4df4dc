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

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::watch;
use wsdrain::client::{Event, Message, Reconnect, SendError};

/// How the clients behave.
#[derive(Debug, Clone)]
pub(crate) struct ClientSpec {
    /// `ws://<load balancer>/ws`.
    pub(crate) url: String,
    /// Pause between an echo and the next message.
    pub(crate) interval: Duration,
    /// An echo that takes longer counts the message as lost.
    pub(crate) echo_timeout: Duration,
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
    /// `(seconds when the previous connection closed, seconds when the next
    /// one opened)` for every reconnect; seconds since the run's `t0`.
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

/// Runs one client until `stop` turns true, then lets its last message
/// finish, closes with 1000 and returns what it saw.
pub(crate) async fn run_client(
    id: usize,
    spec: ClientSpec,
    t0: Instant,
    connected: Arc<Connected>,
    mut stop: watch::Receiver<bool>,
) -> ClientLog {
    let (client, mut events) = Reconnect::new(spec.url.clone())
        .cap(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(5))
        .spawn();
    let secs = || t0.elapsed().as_secs_f64();
    let mut log = ClientLog::default();
    let mut next_seq: u64 = 0;
    // The message waiting for its echo: (text, connection, sent at).
    let mut outstanding: Option<(String, u64, Instant)> = None;
    // A message to send again (unanswered at a clean close, or refused by send).
    let mut again: Option<u64> = None;
    let mut open = false;
    let mut last_close: Option<f64> = None;
    let mut stopping = false;
    let mut closing = false;
    let next_send = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(next_send);
    loop {
        let echo_deadline = outstanding
            .as_ref()
            .map(|(_, _, at)| *at + spec.echo_timeout);
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { break };
                match event {
                    Event::Connected { .. } => {
                        open = true;
                        connected.0.fetch_add(1, Ordering::Relaxed);
                        if let Some(closed_at) = last_close.take() {
                            log.reconnects.push((closed_at, secs()));
                        }
                        next_send.as_mut().reset(tokio::time::Instant::now());
                    }
                    Event::Message { connection, message } => {
                        let text = message.to_text().unwrap_or_default();
                        match outstanding.take() {
                            Some((want, conn, _)) if conn == connection.get() && want == text => {
                                log.echoed += 1;
                                next_send.as_mut().reset(tokio::time::Instant::now() + spec.interval);
                            }
                            Some(_) | None => log.lost += 1,
                        }
                    }
                    Event::Closed(closed) => {
                        if open {
                            open = false;
                            connected.0.fetch_sub(1, Ordering::Relaxed);
                        }
                        if let Some((text, conn, _)) = outstanding.take() {
                            if conn == closed.connection.get() && closed.clean {
                                log.resent += 1;
                                again = seq_of(&text);
                            } else {
                                log.lost += 1;
                            }
                        }
                        if closing {
                            continue; // our own Close at the end of the run
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
                    Event::ConnectFailed(_) => log.failed_connects += 1,
                    Event::Reconnecting { .. } => {}
                    Event::GaveUp(_) => break,
                }
            }
            () = &mut next_send, if open && outstanding.is_none() && !stopping => {
                let seq = again.take().unwrap_or_else(|| { next_seq += 1; next_seq });
                let text = format!("{id}:{seq}");
                match client.send(Message::text(text.clone())).await {
                    Ok(connection) => {
                        log.sent += 1;
                        outstanding = Some((text, connection.get(), Instant::now()));
                    }
                    Err(SendError::NotConnected(_) | SendError::Failed { .. }) => {
                        again = Some(seq);
                        next_send.as_mut().reset(tokio::time::Instant::now() + spec.interval);
                    }
                }
            }
            () = sleep_until_opt(echo_deadline) => {
                // No echo while the connection stays open.
                outstanding = None;
                log.lost += 1;
                next_send.as_mut().reset(tokio::time::Instant::now());
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
            }
        }
        if stopping && outstanding.is_none() && !closing {
            closing = true;
            client.close().await;
        }
    }
    if open {
        connected.0.fetch_sub(1, Ordering::Relaxed);
    }
    log
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
