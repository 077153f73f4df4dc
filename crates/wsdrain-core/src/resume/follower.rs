//! One stream followed on one connection: replay from the log, then live
//! from the hub, in seq order, without a hole.
//!
//! The receiver of the hub is taken **before** the log is read, so every
//! entry appended after the read is in the channel; entries the client has
//! (`seq <= last`) are dropped, the next one (`last + 1`) goes out, and a
//! gap (a channel that lagged, two publishers racing) is filled from the
//! log. What the log cannot fill becomes a `resync`, never a silent hole.

use std::{
    collections::VecDeque,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::ReusableBoxFuture;
use wsdrain_protocol::resume::{Control, Position, ResyncReason};

use super::{
    entry::{Entry, Epoch},
    feed::{Feed, ReadFuture},
    log::{Head, Log, LogError, Read},
};
use crate::metrics;

type Received = (Result<Entry, RecvError>, broadcast::Receiver<Entry>);

async fn next(mut rx: broadcast::Receiver<Entry>) -> Received {
    (rx.recv().await, rx)
}

/// What a follower has to write next.
pub(crate) enum Out {
    Entry(Entry),
    Control(Control),
}

enum State {
    /// Taking entries from the hub.
    Live,
    /// Reading the log after `last`.
    Reading(ReadFuture),
    /// The last read filled a whole batch: read on once it is written.
    ReadOn,
    /// The log failed to fill a gap: the next entry that does not follow
    /// `last` starts a resync (`unavailable`).
    Blind,
}

pub(crate) struct Follower {
    pub(crate) stream: Arc<str>,
    epoch: Epoch,
    /// The last seq written (or the `after` of the last control).
    last: u64,
    /// The current epoch is one outside the log.
    unlogged: bool,
    live: ReusableBoxFuture<'static, Received>,
    state: State,
    /// Read from the log, to write.
    batch: VecDeque<Entry>,
    /// A live entry that showed a gap, kept until the log filled it.
    held: Option<Entry>,
    /// A resync to announce (from `epoch` and `last`) before anything else.
    resync: Option<ResyncReason>,
}

/// How a stream starts on a connection.
pub(crate) struct Start {
    pub(crate) epoch: Epoch,
    pub(crate) after: u64,
    pub(crate) unlogged: bool,
    /// Replay from the log, to write first.
    pub(crate) batch: Vec<Entry>,
}

impl Follower {
    pub(crate) fn new(
        stream: Arc<str>,
        rx: broadcast::Receiver<Entry>,
        start: Start,
        max: usize,
    ) -> Follower {
        let full = start.batch.len() >= max;
        Follower {
            stream,
            epoch: start.epoch,
            last: start.after,
            unlogged: start.unlogged,
            live: ReusableBoxFuture::new(next(rx)),
            state: if full { State::ReadOn } else { State::Live },
            batch: start.batch.into(),
            held: None,
            resync: None,
        }
    }

    fn position(&self) -> Position {
        Position::new(&*self.stream, self.epoch.as_str(), self.last)
            .expect("stream and epoch were checked")
    }

    /// A resync control, from here: `after` in `epoch`.
    fn resync(&mut self, reason: ResyncReason, epoch: Epoch, after: u64, unlogged: bool) {
        tracing::debug!(target: "wsdrain", stream = &*self.stream, %reason, "resync");
        metrics::resume_resync(reason);
        self.epoch = epoch;
        self.last = after;
        self.unlogged = unlogged;
        self.batch.clear();
        self.held = None;
        self.state = State::Live;
        self.resync = Some(reason);
    }

    /// A resync right before `entry`, which then goes out.
    fn resync_at(&mut self, reason: ResyncReason, entry: Entry) {
        self.resync(
            reason,
            entry.epoch().clone(),
            entry.seq().saturating_sub(1),
            !entry.is_logged(),
        );
        self.batch.push_back(entry);
    }

    fn resync_to(&mut self, reason: ResyncReason, head: Head) {
        self.resync(reason, head.epoch, head.last, false);
    }

    fn read<L: Log>(&mut self, feed: &Feed<L>) {
        self.state = State::Reading(feed.read(self.stream.clone(), self.epoch.clone(), self.last));
    }

    /// The next thing to write, in order; `Ready(None)` once the feed is
    /// gone.
    pub(crate) fn poll_next<L: Log>(
        &mut self,
        cx: &mut Context<'_>,
        feed: &Feed<L>,
    ) -> Poll<Option<Out>> {
        loop {
            if let Some(reason) = self.resync.take() {
                return Poll::Ready(Some(Out::Control(Control::Resync(self.position(), reason))));
            }
            if let Some(entry) = self.batch.pop_front() {
                if entry.seq() <= self.last && *entry.epoch() == self.epoch {
                    continue; // the overlap of replay and live
                }
                if entry.seq() == self.last + 1 && *entry.epoch() == self.epoch {
                    self.last = entry.seq();
                    return Poll::Ready(Some(Out::Entry(entry)));
                }
                // The log skipped an entry the hub carried: it broke its
                // contract, so the gap cannot be filled.
                self.resync_at(ResyncReason::Unavailable, entry);
                continue;
            }
            match &mut self.state {
                State::Reading(read) => {
                    let result = std::task::ready!(read.as_mut().poll(cx));
                    self.on_read(result, feed);
                }
                State::ReadOn => self.read(feed),
                State::Live | State::Blind => {
                    let (received, rx) = std::task::ready!(self.live.poll(cx));
                    self.live.set(next(rx));
                    match received {
                        Ok(entry) => self.on_live(entry, feed),
                        // Entries were dropped for this slow session: the
                        // log has them.
                        Err(RecvError::Lagged(_)) => self.read(feed),
                        Err(RecvError::Closed) => return Poll::Ready(None),
                    }
                }
            }
        }
    }

    fn on_read<L: Log>(&mut self, result: Result<Read, LogError>, feed: &Feed<L>) {
        match result {
            Ok(Read::Entries(entries)) => {
                metrics::resume_replayed(entries.len() as u64);
                let full = entries.len() >= feed.replay_batch();
                self.batch.extend(entries);
                if full {
                    self.state = State::ReadOn;
                } else {
                    self.state = State::Live;
                    self.batch.extend(self.held.take());
                }
            }
            Ok(Read::Resync { reason, head }) => self.resync_to(reason, head),
            Err(e) => {
                feed.failed("read", &self.stream, &e);
                match self.held.take() {
                    Some(entry) => self.resync_at(ResyncReason::Unavailable, entry),
                    None => self.state = State::Blind,
                }
            }
        }
    }

    fn on_live<L: Log>(&mut self, entry: Entry, feed: &Feed<L>) {
        let blind = matches!(self.state, State::Blind);
        if *entry.epoch() != self.epoch {
            // The stream moved to another epoch: its log lost the history,
            // or the store failed (or came back) and live went on outside it.
            let reason = if blind || self.unlogged || !entry.is_logged() {
                ResyncReason::Unavailable
            } else {
                ResyncReason::Epoch
            };
            self.resync_at(reason, entry);
        } else if entry.seq() <= self.last {
            // Written already (replayed, or before a lag).
        } else if entry.seq() == self.last + 1 {
            self.state = State::Live;
            self.batch.push_back(entry);
        } else if blind || !entry.is_logged() {
            self.resync_at(ResyncReason::Unavailable, entry);
        } else {
            self.held = Some(entry);
            self.read(feed);
        }
    }
}
