//! The local fan-out: per followed stream one bounded broadcast channel that
//! every session of this process following it reads.

use std::{collections::HashMap, sync::Arc};

use parking_lot::Mutex;
use tokio::sync::broadcast;

use super::entry::{Entry, Epoch, Payload};

/// The last entry a stream's channel carried: to drop what it has seen, and
/// to number messages delivered outside the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) epoch: Epoch,
    pub(crate) seq: u64,
    /// False for an epoch outside the log (its store was failing).
    pub(crate) logged: bool,
}

struct Slot {
    tx: broadcast::Sender<Entry>,
    last: Option<Mark>,
}

/// Streams that sessions of this process follow. A slot exists while at
/// least one session follows its stream, so a stream nobody follows here
/// costs nothing.
pub(crate) struct Hub {
    streams: Mutex<HashMap<Arc<str>, Slot>>,
    capacity: usize,
}

impl Hub {
    pub(crate) fn new(capacity: usize) -> Hub {
        Hub {
            streams: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// A receiver of `stream`'s live entries, and the stream's name (one
    /// allocation for all its followers here); `first` runs (under the
    /// lock) when this makes the stream followed here.
    pub(crate) fn subscribe(
        &self,
        stream: &str,
        first: impl FnOnce(),
    ) -> (Arc<str>, broadcast::Receiver<Entry>) {
        let mut streams = self.streams.lock();
        if let Some((name, slot)) = streams.get_key_value(stream) {
            return (name.clone(), slot.tx.subscribe());
        }
        let name: Arc<str> = stream.into();
        let (tx, rx) = broadcast::channel(self.capacity);
        streams.insert(name.clone(), Slot { tx, last: None });
        first();
        (name, rx)
    }

    /// A receiver of `stream` was dropped; `last` runs (under the lock) when
    /// no session follows the stream here any more.
    pub(crate) fn unsubscribed(&self, stream: &str, last: impl FnOnce()) {
        let mut streams = self.streams.lock();
        if streams
            .get(stream)
            .is_some_and(|slot| slot.tx.receiver_count() == 0)
        {
            streams.remove(stream);
            last();
        }
    }

    /// Hands `entry` to `stream`'s followers here, unless the channel carried
    /// it (or a later one of its epoch) already.
    pub(crate) fn deliver(&self, stream: &str, entry: Entry) {
        let mut streams = self.streams.lock();
        let Some(slot) = streams.get_mut(stream) else {
            return;
        };
        if slot
            .last
            .as_ref()
            .is_some_and(|m| m.epoch == *entry.epoch() && entry.seq() <= m.seq)
        {
            return;
        }
        slot.last = Some(Mark {
            epoch: entry.epoch().clone(),
            seq: entry.seq(),
            logged: entry.is_logged(),
        });
        // An error only means no receiver is left; `unsubscribed` cleans up.
        let _ = slot.tx.send(entry);
    }

    /// The log could not take `payload`: delivers it here, numbered in an
    /// epoch of this process outside the log (a new one when the channel's
    /// last entry was logged). `None` when nobody follows the stream here.
    pub(crate) fn deliver_unlogged(&self, stream: &str, payload: &Payload) -> Option<Mark> {
        let mut streams = self.streams.lock();
        let slot = streams.get_mut(stream)?;
        let mark = match &slot.last {
            Some(m) if !m.logged => Mark {
                seq: m.seq + 1,
                ..m.clone()
            },
            _ => Mark {
                epoch: Epoch::random(),
                seq: 1,
                logged: false,
            },
        };
        let entry = Entry::unlogged(stream, mark.epoch.clone(), mark.seq, payload);
        slot.last = Some(mark.clone());
        let _ = slot.tx.send(entry);
        Some(mark)
    }

    /// Where `stream` stands as far as this process has seen, for a session
    /// that cannot ask the log: the channel's last entry, or else the start
    /// of an epoch outside the log.
    pub(crate) fn mark(&self, stream: &str) -> Mark {
        let fresh = || Mark {
            epoch: Epoch::random(),
            seq: 0,
            logged: false,
        };
        let mut streams = self.streams.lock();
        match streams.get_mut(stream) {
            Some(slot) => slot.last.get_or_insert_with(fresh).clone(),
            None => fresh(),
        }
    }

    /// Streams followed here (for tests and debugging).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.streams.lock().len()
    }
}
