//! The [`Log`] trait: where a stream's messages are kept so that a client
//! that reconnects can be replayed what it missed.

use std::{error::Error as StdError, fmt, future::Future, sync::Weak};

use wsdrain_protocol::resume::ResyncReason;

use super::{
    entry::{Entry, Epoch, Payload},
    hub::Hub,
};

/// Where a stream's log stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The stream's current epoch.
    pub epoch: Epoch,
    /// The oldest seq the log still has; `last + 1` when it has none.
    pub first: u64,
    /// The seq of the last message appended in this epoch; 0 if none.
    pub last: u64,
}

impl Head {
    /// Whether a client at `after` in `epoch` can be replayed from this log,
    /// or why not. The one rule every log applies:
    ///
    /// * another epoch: [`ResyncReason::Epoch`], or [`ResyncReason::Unknown`]
    ///   when the stream has no history in its epoch (`last == 0`);
    /// * `after > last`: [`ResyncReason::Unknown`] (ahead of the log);
    /// * `after + 1 < first`: [`ResyncReason::Expired`] (trimmed);
    /// * else `Ok`: entries `after + 1 ..= last` can be read.
    ///
    /// # Errors
    ///
    /// The [`ResyncReason`] when the client cannot be replayed.
    pub fn check(&self, epoch: &Epoch, after: u64) -> Result<(), ResyncReason> {
        if *epoch != self.epoch {
            return Err(if self.last == 0 {
                ResyncReason::Unknown
            } else {
                ResyncReason::Epoch
            });
        }
        if after > self.last {
            return Err(ResyncReason::Unknown);
        }
        if after.saturating_add(1) < self.first {
            return Err(ResyncReason::Expired);
        }
        Ok(())
    }
}

/// What [`Log::read`] found.
#[derive(Debug, Clone)]
pub enum Read {
    /// The entries after the position, in order and contiguous from its
    /// `after + 1`, at most `max` (fewer, or none, at the log's end).
    Entries(Vec<Entry>),
    /// The position cannot be continued ([`Head::check`]); the stream's
    /// head, for the resync.
    Resync {
        /// Why.
        reason: ResyncReason,
        /// Where the log stands.
        head: Head,
    },
}

/// A log's failure.
#[derive(Debug)]
#[non_exhaustive]
pub enum LogError {
    /// The message is larger than the log can hold: not appended, and not
    /// delivered either (an application error, like an oversized frame).
    TooLarge {
        /// Its size in bytes (frame and overhead).
        size: usize,
        /// The most the log holds.
        max: usize,
    },
    /// The store failed or did not answer in time. On append, the message
    /// is still delivered live (outside the log); on read, the clients whose
    /// gap cannot be filled get `resync` with `unavailable`.
    Store(Box<dyn StdError + Send + Sync>),
}

impl LogError {
    /// A store failure.
    pub fn store(error: impl Into<Box<dyn StdError + Send + Sync>>) -> LogError {
        LogError::Store(error.into())
    }
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::TooLarge { size, max } => {
                write!(
                    f,
                    "message of {size} bytes is larger than the log ({max} bytes)"
                )
            }
            LogError::Store(e) => write!(f, "log store failed: {e}"),
        }
    }
}

impl StdError for LogError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            LogError::Store(e) => Some(&**e),
            LogError::TooLarge { .. } => None,
        }
    }
}

/// Where a stream's messages are kept: per stream an epoch and a contiguous
/// seq, bounded history, and (for logs that other processes append to) a
/// tail of live entries.
///
/// [`Feed`](super::Feed) is its only caller: it checks stream names before
/// calling, fans appended entries out to this process's sessions, and turns
/// errors into log lines, metrics and `resync`s.
///
/// # Contract
///
/// 1. **Epochs and seqs.** A stream's history begins at its first `append`,
///    `head` or `read`, with a new [`Epoch::random`] and seq 0; each append
///    takes the next seq (1, 2, 3, …), with no gap and no reuse within an
///    epoch, under any concurrency.
/// 2. **No silent hole.** A log that may have lost entries it acknowledged
///    (a store that restarted empty, a failover), or that failed an append
///    which may or may not have been stored, must change the stream's epoch
///    before it appends or reads again, so that readers learn it (`epoch`).
/// 3. **Bounds.** A log trims old entries to stay within its bounds; a read
///    from before the start is [`ResyncReason::Expired`], never a partial
///    answer that skips entries.
/// 4. **Live entries.** After [`watch`](Log::watch), every entry appended to
///    the stream from then on **by another process** reaches the [`Tap`], in
///    seq order; entries appended through this process's feed need not (the
///    feed delivers them itself; the hub drops what it has seen), unless
///    [`tails_appends`](Log::tails_appends) says they do. Logs that only
///    this process appends to (the in-memory one) keep the default no-op.
///
/// Futures must be `Send`; they are polled by the session that needs them.
pub trait Log: Send + Sync + 'static {
    /// Appends `payload` to `stream` at its next seq; the entry, with its
    /// frame built ([`Entry::new`]).
    fn append(
        &self,
        stream: &str,
        payload: &Payload,
    ) -> impl Future<Output = Result<Entry, LogError>> + Send;

    /// The entries of `stream` after `after` in `epoch`, at most `max`, or
    /// why the client cannot be replayed ([`Head::check`]).
    fn read(
        &self,
        stream: &str,
        epoch: &Epoch,
        after: u64,
        max: usize,
    ) -> impl Future<Output = Result<Read, LogError>> + Send;

    /// Where `stream` stands (its history begins here if it had none).
    fn head(&self, stream: &str) -> impl Future<Output = Result<Head, LogError>> + Send;

    /// This process now has sessions following `stream`: deliver entries
    /// other processes append to it to `tap` (point 4 of the contract).
    /// Called under the feed's lock: hand the work to a task, do not block.
    fn watch(&self, stream: &str, tap: &Tap) {
        let _ = (stream, tap);
    }

    /// No session of this process follows `stream` any more.
    fn unwatch(&self, stream: &str) {
        let _ = stream;
    }

    /// True when the [`Tap`] also carries the entries this process appends,
    /// in the log's one order: the feed then leaves their delivery to it.
    /// A log shared by several writers says so, because an entry the feed
    /// delivered at once could overtake another writer's earlier one on its
    /// way through the tail, and every session here would then fill that
    /// gap from the log. Default `false`.
    fn tails_appends(&self) -> bool {
        false
    }
}

/// Where a log delivers the live entries of the streams it watches: this
/// process's fan-out hub. Cheap to clone; once the feed is gone, delivering
/// does nothing.
#[derive(Clone)]
pub struct Tap {
    pub(crate) hub: Weak<Hub>,
}

impl Tap {
    /// Delivers `entry` of `stream` to the sessions of this process that
    /// follow it. Entries it has already seen (an older or equal seq of the
    /// same epoch) are dropped, so a log may deliver an entry twice.
    pub fn deliver(&self, stream: &str, entry: Entry) {
        if let Some(hub) = self.hub.upgrade() {
            hub.deliver(stream, entry);
        }
    }
}

impl fmt::Debug for Tap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tap")
            .field("live", &(self.hub.strong_count() > 0))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_one_rule() {
        let e = Epoch::new("E").unwrap();
        let other = Epoch::new("F").unwrap();
        let head = Head {
            epoch: e.clone(),
            first: 5,
            last: 9,
        };
        assert_eq!(head.check(&e, 4), Ok(()));
        assert_eq!(head.check(&e, 9), Ok(()));
        assert_eq!(head.check(&e, 3), Err(ResyncReason::Expired));
        assert_eq!(head.check(&e, 10), Err(ResyncReason::Unknown));
        assert_eq!(head.check(&other, 4), Err(ResyncReason::Epoch));
        let fresh = Head {
            epoch: e.clone(),
            first: 1,
            last: 0,
        };
        assert_eq!(fresh.check(&e, 0), Ok(()));
        assert_eq!(fresh.check(&other, 0), Err(ResyncReason::Unknown));
        let trimmed_empty = Head {
            epoch: e.clone(),
            first: 10,
            last: 9,
        };
        assert_eq!(trimmed_empty.check(&e, 9), Ok(()));
        assert_eq!(trimmed_empty.check(&e, 8), Err(ResyncReason::Expired));
    }
}
