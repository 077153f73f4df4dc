//! The Redis Streams log of wsdrain's resumable sessions, for fleets: every
//! replica and every publisher process append to one history per stream,
//! and every replica tails the streams its sessions follow, so a client
//! that reconnects to any replica resumes without loss or duplicate, and a
//! message published anywhere reaches the live sessions everywhere, in one
//! order.
//!
//! ```no_run
//! use wsdrain_core::resume::Feed;
//! use wsdrain_redis::RedisLog;
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let log = RedisLog::builder("redis://127.0.0.1:6390").max_len(1_000).build()?;
//! let feed = Feed::new(log);
//! feed.publish("prices", r#"{"px":101.5}"#).await?;
//! # Ok(()) }
//! ```
//!
//! # What it keeps in Redis
//!
//! Per stream a hash `<prefix>{<stream>}:meta` (its epoch, the epoch's start,
//! the last seq, the server's `run_id`) and a stream `<prefix>{<stream>}:log`
//! of at most `max_len` entries with ids `<epoch start ms>-<seq>`; both
//! expire after `idle_expiry` without an append. Appends, reads and heads are
//! one Lua script each (`EVALSHA`), pipelined on one connection, so a
//! published message costs at most one round trip. Redis 6 or newer (RESP3).
//!
//! # When Redis fails
//!
//! Loudly, never silently, and never stopping live delivery: a call that
//! fails or takes longer than `command_timeout` returns
//! [`LogError::Store`] (the feed then
//! delivers live outside the log, and clients resync with `unavailable`);
//! the connection is made anew in the background with backoff, and calls
//! fail at once meanwhile; each loss is logged (`warn`, target
//! `wsdrain::redis`) and counted (feature `metrics`, [`metrics::names`]).
//! A Redis that comes back empty, or restarted from an older snapshot, or
//! failed over, gives every stream a new epoch at its next use, so no seq
//! is ever reused for another message.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod link;
pub mod metrics;
mod script;
mod tail;

use std::{fmt, sync::Arc, time::Duration};

use wsdrain_core::resume::{Entry, Epoch, Head, Log, LogError, Payload, Read, Tap};

pub use config::{
    ConfigError, DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_EXPIRY,
    DEFAULT_MAX_LEN, DEFAULT_MAX_PAYLOAD, DEFAULT_PREFIX, DEFAULT_RECONNECT_MAX,
    DEFAULT_RECONNECT_MIN, DEFAULT_TAIL_BLOCK, DEFAULT_TAIL_COUNT, RedisLogBuilder,
};

use crate::{config::Config, link::Link, script::Id, tail::Tail};

/// A [`Log`] on Redis Streams, shared by every process that uses the same
/// Redis and prefix. Cheap to clone (the clones share the connections).
///
/// Build it inside a Tokio runtime: it runs two connections there, one for
/// appends and reads (multiplexed, pipelined) and one for the tail's
/// blocking `XREAD`, each reconnecting by itself.
#[derive(Clone)]
pub struct RedisLog {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    link: Arc<Link>,
    tail: Tail,
}

impl fmt::Debug for RedisLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLog")
            .field("prefix", &self.inner.config.prefix)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl RedisLog {
    /// A builder for the Redis at `url` (`redis://[user:password@]host:port[/db]`,
    /// `rediss://` is not supported).
    pub fn builder(url: impl Into<String>) -> RedisLogBuilder {
        RedisLogBuilder::new(url.into())
    }

    fn start(client: redis::Client, config: Config) -> RedisLog {
        let config = Arc::new(config);
        let link = Arc::new(Link::start(client.clone(), config.clone()));
        let tail = Tail::start(client, config.clone(), link.clone());
        RedisLog {
            inner: Arc::new(Inner { config, link, tail }),
        }
    }

    /// True while the command connection is up.
    pub fn is_connected(&self) -> bool {
        self.inner.link.is_up()
    }

    /// Waits until the command connection is up, at most `limit`; true if
    /// it is. For a start-up that should not begin without Redis.
    pub async fn wait_connected(&self, limit: Duration) -> bool {
        self.inner.link.wait_up(limit).await
    }

    async fn append_now(&self, stream: &str, payload: &Payload) -> Result<Entry, LogError> {
        let config = &self.inner.config;
        if payload.len() > config.max_payload {
            return Err(LogError::TooLarge {
                size: payload.len(),
                max: config.max_payload,
            });
        }
        let [meta, log] = config.keys(stream);
        let fresh = Epoch::random();
        let text: &[u8] = if payload.is_text() { b"1" } else { b"0" };
        let args: [&[u8]; 6] = [
            b"a",
            fresh.as_str().as_bytes(),
            config.expiry_ms.as_bytes(),
            config.max_len.as_bytes(),
            text,
            payload.as_bytes(),
        ];
        let reply = self
            .inner
            .link
            .script([&meta, &log], &args)
            .await
            .map_err(LogError::store)?;
        let (epoch, id) = script::appended(&reply).map_err(LogError::store)?;
        Ok(Entry::new(stream, epoch, id.seq, payload))
    }

    async fn read_now(
        &self,
        stream: &str,
        epoch: &Epoch,
        after: u64,
        max: usize,
    ) -> Result<Read, LogError> {
        let config = &self.inner.config;
        let [meta, log] = config.keys(stream);
        let fresh = Epoch::random();
        let (after_text, max_text) = (after.to_string(), max.max(1).to_string());
        let args: [&[u8]; 6] = [
            b"r",
            fresh.as_str().as_bytes(),
            config.expiry_ms.as_bytes(),
            epoch.as_str().as_bytes(),
            after_text.as_bytes(),
            max_text.as_bytes(),
        ];
        let reply = self
            .inner
            .link
            .script([&meta, &log], &args)
            .await
            .map_err(LogError::store)?;
        let (head, ms, range) = script::headed(reply).map_err(LogError::store)?;
        let end = Id { ms, seq: head.last };
        if let Err(reason) = head.check(epoch, after) {
            self.inner.tail.report(stream, end);
            return Ok(Read::Resync { reason, head });
        }
        let entries = script::range(stream, epoch, after, range.unwrap_or_default())
            .map_err(LogError::store)?;
        if entries.len() < max {
            // Everything up to the end was read: a short range would be a
            // hole (entries deleted behind the log's back).
            if after + entries.len() as u64 != head.last {
                return Err(LogError::store(script::BadReply("a hole in the stream")));
            }
            self.inner.tail.report(stream, end);
        }
        Ok(Read::Entries(entries))
    }

    async fn head_now(&self, stream: &str) -> Result<Head, LogError> {
        let config = &self.inner.config;
        let [meta, log] = config.keys(stream);
        let fresh = Epoch::random();
        let args: [&[u8]; 3] = [b"h", fresh.as_str().as_bytes(), config.expiry_ms.as_bytes()];
        let reply = self
            .inner
            .link
            .script([&meta, &log], &args)
            .await
            .map_err(LogError::store)?;
        let (head, ms, _) = script::headed(reply).map_err(LogError::store)?;
        self.inner.tail.report(stream, Id { ms, seq: head.last });
        Ok(head)
    }
}

impl Log for RedisLog {
    fn append(
        &self,
        stream: &str,
        payload: &Payload,
    ) -> impl Future<Output = Result<Entry, LogError>> + Send {
        self.append_now(stream, payload)
    }

    fn read(
        &self,
        stream: &str,
        epoch: &Epoch,
        after: u64,
        max: usize,
    ) -> impl Future<Output = Result<Read, LogError>> + Send {
        self.read_now(stream, epoch, after, max)
    }

    fn head(&self, stream: &str) -> impl Future<Output = Result<Head, LogError>> + Send {
        self.head_now(stream)
    }

    fn watch(&self, stream: &str, tap: &Tap) {
        self.inner.tail.watch(stream, tap);
    }

    fn unwatch(&self, stream: &str) {
        self.inner.tail.unwatch(stream);
    }

    /// Every replica, this one included, gets every entry through its tail,
    /// in the stream's one order.
    fn tails_appends(&self) -> bool {
        true
    }
}

/// Why a call to Redis failed (the source of a `LogError::Store`).
#[derive(Debug)]
pub(crate) enum Failure {
    /// Not connected: Redis is away, reconnecting.
    Down,
    /// No answer within `command_timeout`.
    Timeout,
    Redis(redis::RedisError),
    Reply(script::BadReply),
}

impl Failure {
    /// The connection is no use any more: make a new one.
    fn breaks_connection(&self) -> bool {
        match self {
            Failure::Timeout => true,
            Failure::Redis(e) => {
                e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error()
            }
            Failure::Down | Failure::Reply(_) => false,
        }
    }
}

impl From<redis::RedisError> for Failure {
    fn from(e: redis::RedisError) -> Failure {
        Failure::Redis(e)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Down => f.write_str("redis is not connected (reconnecting)"),
            Failure::Timeout => f.write_str("redis did not answer in time"),
            Failure::Redis(e) => write!(f, "redis: {e}"),
            Failure::Reply(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Redis(e) => Some(e),
            Failure::Reply(e) => Some(e),
            Failure::Down | Failure::Timeout => None,
        }
    }
}
