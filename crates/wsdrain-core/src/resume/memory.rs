//! [`MemoryLog`]: the embedded log, bounded by count and bytes.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    future::{Future, ready},
    sync::Arc,
};

use parking_lot::Mutex;

use super::{
    config::{ConfigError, within},
    entry::{ENTRY_OVERHEAD, Entry, Epoch, Payload},
    log::{Head, Log, LogError, Read},
};

/// The default [`MemoryLogBuilder::max_entries`]: 1,000 messages per stream
/// are 50 s of a 20 messages/s feed, longer than any reconnect after a
/// drain's hint.
pub const DEFAULT_MAX_ENTRIES: usize = 1_000;
/// The default [`MemoryLogBuilder::max_bytes`]: 64 MiB for all streams.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;
/// The default [`MemoryLogBuilder::max_streams`]: 100,000 streams (about
/// 200 B each beyond their entries).
pub const DEFAULT_MAX_STREAMS: usize = 100_000;

/// The smallest `max_bytes`: room for one message of any stream name.
const MIN_BYTES: usize = 4096;

/// An in-memory [`Log`] for one process: history for reconnects to the same
/// process (a proxy that dropped the connection, a client that lost its
/// network). A restart loses it: clients then get `resync` (`epoch` or
/// `unknown`). For fleets, where the replica that takes the reconnect is
/// never the one that sent the message, use a shared log (Redis Streams).
///
/// Bounded three ways, oldest first: entries per stream
/// ([`max_entries`](MemoryLogBuilder::max_entries)), bytes of all entries
/// ([`max_bytes`](MemoryLogBuilder::max_bytes), each entry counting its
/// frame plus 96 B), and streams ([`max_streams`](MemoryLogBuilder::max_streams),
/// the least recently used goes, with its history: its next reader gets a
/// new epoch).
///
/// ```
/// use wsdrain_core::resume::MemoryLog;
/// let log = MemoryLog::builder().max_entries(500).max_bytes(8 << 20).build()?;
/// # let _ = log;
/// # Ok::<(), wsdrain_core::resume::ConfigError>(())
/// ```
pub struct MemoryLog {
    state: Mutex<State>,
    max_entries: usize,
    max_bytes: usize,
    max_streams: usize,
}

impl std::fmt::Debug for MemoryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock();
        f.debug_struct("MemoryLog")
            .field("streams", &state.streams.len())
            .field("entries", &state.entries)
            .field("bytes", &state.bytes)
            .finish_non_exhaustive()
    }
}

/// Builds a [`MemoryLog`]; see its bounds.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct MemoryLogBuilder {
    max_entries: usize,
    max_bytes: usize,
    max_streams: usize,
}

impl MemoryLogBuilder {
    /// Messages kept per stream (default [`DEFAULT_MAX_ENTRIES`]).
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = n;
        self
    }

    /// Bytes of all entries together (default [`DEFAULT_MAX_BYTES`]); a
    /// message larger than this is refused.
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    /// Streams with a history (default [`DEFAULT_MAX_STREAMS`]).
    pub fn max_streams(mut self, n: usize) -> Self {
        self.max_streams = n;
        self
    }

    /// The log.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming a bound of 0 (or `max_bytes` below 4 KiB).
    pub fn build(self) -> Result<MemoryLog, ConfigError> {
        Ok(MemoryLog {
            state: Mutex::new(State::default()),
            max_entries: within("max_entries", self.max_entries, 1, usize::MAX)?,
            max_bytes: within("max_bytes", self.max_bytes, MIN_BYTES, usize::MAX)?,
            max_streams: within("max_streams", self.max_streams, 1, usize::MAX)?,
        })
    }
}

#[derive(Default)]
struct State {
    streams: HashMap<Arc<str>, StreamLog>,
    /// Every entry in append order, across streams: the byte bound evicts
    /// from its front. Items whose entry is gone already (trimmed by the
    /// count bound, or its stream evicted) are skipped, and compacted away
    /// when they outnumber the live ones.
    order: VecDeque<(Arc<str>, u64, u64)>,
    /// Streams by last use, oldest first, for the stream bound.
    lru: BTreeMap<u64, Arc<str>>,
    clock: u64,
    entries: usize,
    bytes: usize,
}

struct StreamLog {
    name: Arc<str>,
    epoch: Epoch,
    /// Tells this stream's `order` items from those of an evicted stream of
    /// the same name.
    generation: u64,
    last: u64,
    entries: VecDeque<Entry>,
    used: u64,
}

impl StreamLog {
    fn head(&self) -> Head {
        Head {
            epoch: self.epoch.clone(),
            first: self.entries.front().map_or(self.last + 1, Entry::seq),
            last: self.last,
        }
    }
}

impl State {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The stream's log, made (with a new epoch) if it has none, and marked
    /// as just used; the least recently used stream goes if there are too
    /// many.
    fn touch(&mut self, name: &str, max_streams: usize) -> &mut StreamLog {
        let now = self.tick();
        if let Some(s) = self.streams.get_mut(name) {
            self.lru.remove(&s.used);
            self.lru.insert(now, s.name.clone());
            s.used = now;
        } else {
            while self.streams.len() >= max_streams {
                let Some((_, oldest)) = self.lru.pop_first() else {
                    break;
                };
                self.remove(&oldest);
            }
            let name: Arc<str> = name.into();
            self.lru.insert(now, name.clone());
            self.streams.insert(
                name.clone(),
                StreamLog {
                    name,
                    epoch: Epoch::random(),
                    generation: now,
                    last: 0,
                    entries: VecDeque::new(),
                    used: now,
                },
            );
        }
        self.streams.get_mut(name).expect("found or inserted above")
    }

    fn remove(&mut self, name: &str) {
        if let Some(s) = self.streams.remove(name) {
            self.entries -= s.entries.len();
            self.bytes -= s.entries.iter().map(Entry::cost).sum::<usize>();
        }
    }

    /// Evicts the oldest entry of all streams; false when there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some((name, generation, seq)) = self.order.pop_front() {
            let Some(s) = self.streams.get_mut(&name) else {
                continue;
            };
            if s.generation != generation || s.entries.front().map(Entry::seq) != Some(seq) {
                continue;
            }
            if let Some(e) = s.entries.pop_front() {
                self.entries -= 1;
                self.bytes -= e.cost();
            }
            return true;
        }
        false
    }

    fn compact(&mut self) {
        if self.order.len() <= 2 * self.entries + 64 {
            return;
        }
        let streams = &self.streams;
        self.order.retain(|(name, generation, seq)| {
            streams.get(name).is_some_and(|s| {
                s.generation == *generation && s.entries.front().is_some_and(|f| f.seq() <= *seq)
            })
        });
    }
}

impl Default for MemoryLog {
    fn default() -> MemoryLog {
        MemoryLog::new()
    }
}

impl MemoryLog {
    /// A log with the default bounds.
    pub fn new() -> MemoryLog {
        MemoryLog {
            state: Mutex::new(State::default()),
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
            max_streams: DEFAULT_MAX_STREAMS,
        }
    }

    /// A builder, to set the bounds.
    pub fn builder() -> MemoryLogBuilder {
        MemoryLogBuilder {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
            max_streams: DEFAULT_MAX_STREAMS,
        }
    }

    /// Entries kept, over all streams.
    pub fn len(&self) -> usize {
        self.state.lock().entries
    }

    /// True when it keeps no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes its entries count against `max_bytes`.
    pub fn bytes(&self) -> usize {
        self.state.lock().bytes
    }

    /// Streams it keeps a history of.
    pub fn streams(&self) -> usize {
        self.state.lock().streams.len()
    }

    /// Items of the byte bound's queue (live and skipped ones), for tests.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.state.lock().order.len()
    }

    fn append_now(&self, stream: &str, payload: &Payload) -> Result<Entry, LogError> {
        let size = wsdrain_protocol::resume::message_header_len(stream, u64::MAX)
            + payload.len()
            + ENTRY_OVERHEAD;
        if size > self.max_bytes {
            return Err(LogError::TooLarge {
                size,
                max: self.max_bytes,
            });
        }
        let mut state = self.state.lock();
        let state = &mut *state;
        let s = state.touch(stream, self.max_streams);
        s.last += 1;
        let entry = Entry::new(stream, s.epoch.clone(), s.last, payload);
        s.entries.push_back(entry.clone());
        let (name, generation, seq) = (s.name.clone(), s.generation, s.last);
        let trimmed = if s.entries.len() > self.max_entries {
            s.entries.pop_front()
        } else {
            None
        };
        state.entries += 1;
        state.bytes += entry.cost();
        if let Some(old) = trimmed {
            state.entries -= 1;
            state.bytes -= old.cost();
        }
        state.order.push_back((name, generation, seq));
        while state.bytes > self.max_bytes && state.evict_oldest() {}
        state.compact();
        Ok(entry)
    }

    fn read_now(&self, stream: &str, epoch: &Epoch, after: u64, max: usize) -> Read {
        let mut state = self.state.lock();
        let s = state.touch(stream, self.max_streams);
        let head = s.head();
        if let Err(reason) = head.check(epoch, after) {
            return Read::Resync { reason, head };
        }
        let skip = usize::try_from(after.saturating_add(1) - head.first).unwrap_or(usize::MAX);
        Read::Entries(s.entries.iter().skip(skip).take(max).cloned().collect())
    }
}

impl Log for MemoryLog {
    fn append(
        &self,
        stream: &str,
        payload: &Payload,
    ) -> impl Future<Output = Result<Entry, LogError>> + Send {
        ready(self.append_now(stream, payload))
    }

    fn read(
        &self,
        stream: &str,
        epoch: &Epoch,
        after: u64,
        max: usize,
    ) -> impl Future<Output = Result<Read, LogError>> + Send {
        ready(Ok(self.read_now(stream, epoch, after, max)))
    }

    fn head(&self, stream: &str) -> impl Future<Output = Result<Head, LogError>> + Send {
        let mut state = self.state.lock();
        ready(Ok(state.touch(stream, self.max_streams).head()))
    }
}
