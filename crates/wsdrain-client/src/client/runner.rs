//! The task behind a client: connect, read, report, decide, wait, again.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message, http::header::RETRY_AFTER};
use wsdrain_protocol::{CloseHint, parse_retry_after_header};

use super::builder::Reconnect;
use super::events::{Closed, ConnectFailed, Event, GiveUp};
use super::handle::{Open, Shared, close_open};
use super::{ConnectionId, Ws};
use crate::retry::{Decision, Outcome, RetryPolicy};

/// The task behind a client.
pub(super) struct Runner {
    pub(super) config: Reconnect,
    pub(super) shared: Arc<Shared>,
    pub(super) events: mpsc::Sender<Event>,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) connections: u64,
    /// Consecutive failures: the backoff attempt number.
    pub(super) failures: u32,
}

/// What the task does after a connection or an attempt ended.
enum Next {
    Decide(Outcome),
    Stop(GiveUp),
}

impl Runner {
    pub(super) async fn run(mut self) {
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
