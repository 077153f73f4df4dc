//! [`Feed`]: a log and this process's fan-out, behind one `publish`.

use std::{fmt, future::Future, pin::Pin, sync::Arc};

use tokio::sync::broadcast;
use wsdrain_protocol::resume::{NameError, check_stream};

use super::{
    config::{ConfigError, within},
    entry::{Entry, Epoch, Payload},
    hub::{Hub, Mark},
    log::{Head, Log, LogError, Read, Tap},
};
use crate::metrics;

/// The default [`FeedBuilder::hub_capacity`]: a session that falls further
/// behind than this recovers from the log, so the channel only absorbs
/// scheduling jitter; each slot costs about 40 B per followed stream.
pub const DEFAULT_HUB_CAPACITY: usize = 64;
/// The default [`FeedBuilder::replay_batch`]: entries read from the log at
/// once, the most a replaying session holds.
pub const DEFAULT_REPLAY_BATCH: usize = 256;

/// A log plus the fan-out to this process's sessions: the application's one
/// call to append a message to a stream and send it to every live session
/// that follows the stream ([`publish`](Feed::publish)), and what resumable
/// sockets read from ([`ResumableSocket`](super::ResumableSocket)).
///
/// Cheap to clone; put it in the router's state.
///
/// ```
/// use wsdrain_core::resume::{Feed, MemoryLog, Published};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let feed = Feed::new(MemoryLog::new());
/// let published = feed.publish("prices", r#"{"px":101.5}"#).await?;
/// assert!(matches!(published, Published::Logged { seq: 1, .. }));
/// # Ok(()) }
/// ```
pub struct Feed<L> {
    shared: Arc<Shared<L>>,
}

struct Shared<L> {
    log: L,
    hub: Arc<Hub>,
    replay_batch: usize,
}

impl<L> Clone for Feed<L> {
    fn clone(&self) -> Self {
        Feed {
            shared: self.shared.clone(),
        }
    }
}

impl<L> fmt::Debug for Feed<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feed")
            .field("replay_batch", &self.shared.replay_batch)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Feed`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct FeedBuilder<L> {
    log: L,
    hub_capacity: usize,
    replay_batch: usize,
}

impl<L> fmt::Debug for FeedBuilder<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeedBuilder")
            .field("hub_capacity", &self.hub_capacity)
            .field("replay_batch", &self.replay_batch)
            .finish_non_exhaustive()
    }
}

impl<L: Log> FeedBuilder<L> {
    /// Live entries buffered per followed stream for the sessions of this
    /// process (default [`DEFAULT_HUB_CAPACITY`], at most 65,536). A session
    /// that falls further behind reads what it missed from the log.
    pub fn hub_capacity(mut self, n: usize) -> Self {
        self.hub_capacity = n;
        self
    }

    /// Entries read from the log at once (default [`DEFAULT_REPLAY_BATCH`]).
    pub fn replay_batch(mut self, n: usize) -> Self {
        self.replay_batch = n;
        self
    }

    /// The feed.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming a setting of 0 or beyond its maximum.
    pub fn build(self) -> Result<Feed<L>, ConfigError> {
        let capacity = within("hub_capacity", self.hub_capacity, 1, 1 << 16)?;
        let replay_batch = within("replay_batch", self.replay_batch, 1, 1 << 20)?;
        Ok(Feed::with(self.log, capacity, replay_batch))
    }
}

/// Where a published message went.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Published {
    /// In the log at `seq` of `epoch`, and out to this process's followers.
    Logged {
        /// The stream's epoch.
        epoch: Epoch,
        /// The message's seq.
        seq: u64,
    },
    /// The log's store failed (logged at `warn` and counted): the message
    /// went out live to this process's followers only, in an epoch outside
    /// the log, so they are told to resync and nothing is silently missing.
    Unlogged,
}

/// Why a message was not published (and not delivered).
#[derive(Debug)]
#[non_exhaustive]
pub enum PublishError {
    /// Not a valid stream name.
    Stream(NameError),
    /// Larger than the log can hold.
    TooLarge(LogError),
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::Stream(e) => write!(f, "cannot publish: {e}"),
            PublishError::TooLarge(e) => write!(f, "cannot publish: {e}"),
        }
    }
}

impl std::error::Error for PublishError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PublishError::Stream(e) => Some(e),
            PublishError::TooLarge(e) => Some(e),
        }
    }
}

/// A log read in flight, owned by the session that waits for it.
pub(crate) type ReadFuture = Pin<Box<dyn Future<Output = Result<Read, LogError>> + Send>>;

impl<L: Log> Feed<L> {
    /// A feed over `log` with the default settings.
    pub fn new(log: L) -> Feed<L> {
        Feed::with(log, DEFAULT_HUB_CAPACITY, DEFAULT_REPLAY_BATCH)
    }

    /// A builder, for the settings.
    pub fn builder(log: L) -> FeedBuilder<L> {
        FeedBuilder {
            log,
            hub_capacity: DEFAULT_HUB_CAPACITY,
            replay_batch: DEFAULT_REPLAY_BATCH,
        }
    }

    fn with(log: L, hub_capacity: usize, replay_batch: usize) -> Feed<L> {
        Feed {
            shared: Arc::new(Shared {
                log,
                hub: Arc::new(Hub::new(hub_capacity)),
                replay_batch,
            }),
        }
    }

    /// The log.
    pub fn log(&self) -> &L {
        &self.shared.log
    }

    /// Appends `payload` to `stream`'s log and sends it to every session of
    /// this process that follows the stream. (On a log shared by several
    /// processes, such as Redis, every process's sessions, this one's
    /// included, get it from their tail of the log: [`Log::tails_appends`].)
    ///
    /// When the log's store fails, the message still goes out live here
    /// ([`Published::Unlogged`]): live delivery never waits for the store.
    ///
    /// # Errors
    ///
    /// [`PublishError`]: an invalid stream name, or a message larger than
    /// the log. Nothing was delivered.
    ///
    /// # Cancel safety
    ///
    /// If cancelled, the message may or may not have been appended; if it
    /// was, readers of the log see it (a session that follows the stream
    /// here finds it at the next gap).
    pub async fn publish(
        &self,
        stream: &str,
        payload: impl Into<Payload>,
    ) -> Result<Published, PublishError> {
        check_stream(stream).map_err(PublishError::Stream)?;
        let payload = payload.into();
        match self.shared.log.append(stream, &payload).await {
            Ok(entry) => {
                let published = Published::Logged {
                    epoch: entry.epoch().clone(),
                    seq: entry.seq(),
                };
                if !self.shared.log.tails_appends() {
                    self.shared.hub.deliver(stream, entry);
                }
                Ok(published)
            }
            Err(e @ LogError::TooLarge { .. }) => Err(PublishError::TooLarge(e)),
            Err(e) => {
                self.failed("append", stream, &e);
                self.shared.hub.deliver_unlogged(stream, &payload);
                Ok(Published::Unlogged)
            }
        }
    }

    /// Logs and counts a failure of the log.
    pub(crate) fn failed(&self, op: &'static str, stream: &str, e: &LogError) {
        tracing::warn!(target: "wsdrain", op, stream, error = %e, "resume log failed");
        metrics::resume_error(op);
    }

    pub(crate) fn replay_batch(&self) -> usize {
        self.shared.replay_batch
    }

    /// A receiver of `stream`'s live entries here, and its name shared by
    /// every follower of it here; the log watches the stream from its first
    /// follower here on.
    pub(crate) fn subscribe(&self, stream: &str) -> (Arc<str>, broadcast::Receiver<Entry>) {
        let shared = &self.shared;
        shared.hub.subscribe(stream, || {
            let tap = Tap {
                hub: Arc::downgrade(&shared.hub),
            };
            shared.log.watch(stream, &tap);
        })
    }

    /// A receiver of `stream` was dropped.
    pub(crate) fn unsubscribed(&self, stream: &str) {
        let shared = &self.shared;
        shared
            .hub
            .unsubscribed(stream, || shared.log.unwatch(stream));
    }

    /// Where `stream` stands as far as this process has seen (when the log
    /// cannot be asked).
    pub(crate) fn mark(&self, stream: &str) -> Mark {
        self.shared.hub.mark(stream)
    }

    /// A read of the log that the session owns (and may keep across polls).
    pub(crate) fn read(&self, stream: Arc<str>, epoch: Epoch, after: u64) -> ReadFuture {
        let feed = self.clone();
        Box::pin(async move {
            let max = feed.shared.replay_batch;
            feed.shared.log.read(&stream, &epoch, after, max).await
        })
    }

    /// The head of `stream`.
    pub(crate) async fn head(&self, stream: &str) -> Result<Head, LogError> {
        self.shared.log.head(stream).await
    }

    #[cfg(test)]
    pub(crate) fn followed_here(&self) -> usize {
        self.shared.hub.len()
    }
}
