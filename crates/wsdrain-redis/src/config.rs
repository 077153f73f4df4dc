//! [`RedisLogBuilder`]: the settings, their defaults with their reasons, and
//! their validation.

use std::{fmt, time::Duration};

use redis::{IntoConnectionInfo, ProtocolVersion};

use crate::RedisLog;

/// The default [`RedisLogBuilder::prefix`] of every key the log writes.
pub const DEFAULT_PREFIX: &str = "wsdrain:";
/// The default [`RedisLogBuilder::max_len`]: as the in-memory log, 1,000
/// messages per stream are 50 s of a 20 messages/s feed, longer than any
/// reconnect after a drain's hint.
pub const DEFAULT_MAX_LEN: u64 = 1_000;
/// The default [`RedisLogBuilder::idle_expiry`]: a stream nobody appended to
/// for a day is dropped whole (its next reader gets a new epoch), so streams
/// that end do not stay in Redis for ever.
pub const DEFAULT_IDLE_EXPIRY: Duration = Duration::from_secs(24 * 3600);
/// The default [`RedisLogBuilder::max_payload`]: 1 MiB; a feed's message
/// larger than that is a mistake rather than a message.
pub const DEFAULT_MAX_PAYLOAD: usize = 1 << 20;
/// The default [`RedisLogBuilder::command_timeout`]: a healthy Redis answers
/// in well under a millisecond; one that takes half a second is failing, and
/// live delivery does not wait longer for it.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// The default [`RedisLogBuilder::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The default [`RedisLogBuilder::reconnect`] backoff's first step.
pub const DEFAULT_RECONNECT_MIN: Duration = Duration::from_millis(100);
/// The default [`RedisLogBuilder::reconnect`] backoff's ceiling: a Redis that
/// comes back is in use again within 5 s.
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(5);
/// The default [`RedisLogBuilder::tail_block`]: the tail's `XREAD BLOCK`. It
/// is interrupted (`CLIENT UNBLOCK`) whenever the followed streams change, so
/// this only bounds how soon a lost interruption is made up for.
pub const DEFAULT_TAIL_BLOCK: Duration = Duration::from_secs(2);
/// The default [`RedisLogBuilder::tail_count`]: entries read per stream at
/// once by the tail.
pub const DEFAULT_TAIL_COUNT: usize = 256;

/// How often an idle command connection is checked with `PING`, so that a
/// Redis that went away is noticed before the next append needs it.
const PING_INTERVAL: Duration = Duration::from_secs(5);

/// A setting [`RedisLogBuilder::build`] refused, named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    setting: &'static str,
    problem: String,
}

impl ConfigError {
    fn new(setting: &'static str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            setting,
            problem: problem.into(),
        }
    }

    /// The setting's name (the builder's method).
    pub fn setting(&self) -> &'static str {
        self.setting
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redis log setting `{}`: {}", self.setting, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// Settings after validation.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) prefix: String,
    /// `MAXLEN`, as the script takes it.
    pub(crate) max_len: String,
    /// Milliseconds, `0` for none, as the script takes it.
    pub(crate) expiry_ms: String,
    pub(crate) max_payload: usize,
    pub(crate) command_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
    pub(crate) ping_interval: Duration,
    pub(crate) tail_block: Duration,
    pub(crate) tail_count: usize,
}

impl Config {
    /// The keys of `stream`: its meta hash and its stream, in one hash slot.
    pub(crate) fn keys(&self, stream: &str) -> [String; 2] {
        [
            format!("{}{{{stream}}}:meta", self.prefix),
            format!("{}{{{stream}}}:log", self.prefix),
        ]
    }

    /// The stream a log key names.
    pub(crate) fn stream_of<'k>(&self, key: &'k [u8]) -> Option<&'k str> {
        let key = std::str::from_utf8(key).ok()?;
        key.strip_prefix(&*self.prefix)?
            .strip_prefix('{')?
            .strip_suffix("}:log")
    }
}

/// Builds a [`RedisLog`]; every setting has a default.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct RedisLogBuilder {
    url: String,
    prefix: String,
    max_len: u64,
    idle_expiry: Option<Duration>,
    max_payload: usize,
    command_timeout: Duration,
    connect_timeout: Duration,
    reconnect: (Duration, Duration),
    tail_block: Duration,
    tail_count: usize,
}

impl RedisLogBuilder {
    pub(crate) fn new(url: String) -> RedisLogBuilder {
        RedisLogBuilder {
            url,
            prefix: DEFAULT_PREFIX.to_owned(),
            max_len: DEFAULT_MAX_LEN,
            idle_expiry: Some(DEFAULT_IDLE_EXPIRY),
            max_payload: DEFAULT_MAX_PAYLOAD,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            reconnect: (DEFAULT_RECONNECT_MIN, DEFAULT_RECONNECT_MAX),
            tail_block: DEFAULT_TAIL_BLOCK,
            tail_count: DEFAULT_TAIL_COUNT,
        }
    }

    /// The prefix of every key (default [`DEFAULT_PREFIX`]); applications
    /// that share a Redis give each log its own. No `{` or `}` (they make the
    /// hash tag that keeps a stream's two keys in one cluster slot).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Messages kept per stream (`XADD … MAXLEN`, exact; default
    /// [`DEFAULT_MAX_LEN`]). Memory as a whole is bounded by Redis's own
    /// `maxmemory`.
    pub fn max_len(mut self, n: u64) -> Self {
        self.max_len = n;
        self
    }

    /// A stream not appended to for this long is dropped, history and epoch
    /// (default [`DEFAULT_IDLE_EXPIRY`]; `None` keeps streams for ever).
    pub fn idle_expiry(mut self, expiry: Option<Duration>) -> Self {
        self.idle_expiry = expiry;
        self
    }

    /// The largest payload appended, in bytes (default
    /// [`DEFAULT_MAX_PAYLOAD`]); a larger one is refused
    /// (`LogError::TooLarge`).
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// How long an append, read or head waits for Redis (default
    /// [`DEFAULT_COMMAND_TIMEOUT`]). Past it the call fails (a publish then
    /// goes out live only, a resume gets `resync` with `unavailable`) and
    /// the connection is made anew.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// How long a connection attempt may take (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The reconnect backoff: first and largest delay between attempts
    /// (defaults [`DEFAULT_RECONNECT_MIN`], [`DEFAULT_RECONNECT_MAX`]),
    /// doubling, ±25 % jitter. Calls fail at once between attempts.
    pub fn reconnect(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect = (min, max);
        self
    }

    /// The tail's `XREAD BLOCK` time (default [`DEFAULT_TAIL_BLOCK`]).
    pub fn tail_block(mut self, block: Duration) -> Self {
        self.tail_block = block;
        self
    }

    /// Entries the tail reads per stream at once (default
    /// [`DEFAULT_TAIL_COUNT`]).
    pub fn tail_count(mut self, n: usize) -> Self {
        self.tail_count = n;
        self
    }

    /// The log. It connects in the background (and reconnects by itself);
    /// calls made while it first connects wait for it, within
    /// `command_timeout`. [`RedisLog::wait_connected`] waits longer.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the setting: a URL redis-rs cannot read, a
    /// bound of 0, a timeout of 0, a prefix with a brace, or no Tokio
    /// runtime to run the connection in (setting `runtime`).
    pub fn build(self) -> Result<RedisLog, ConfigError> {
        let info = self
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| ConfigError::new("url", format!("not a Redis URL ({e})")))?;
        // RESP3, for the push that tells of a lost connection while idle.
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(resp3))
            .map_err(|e| ConfigError::new("url", format!("not a Redis URL ({e})")))?;
        if self.prefix.contains(['{', '}']) {
            return Err(ConfigError::new("prefix", "must not contain `{` or `}`"));
        }
        if self.max_len == 0 {
            return Err(ConfigError::new("max_len", "must be at least 1"));
        }
        let expiry_ms = match self.idle_expiry {
            None => 0,
            Some(d) if d >= Duration::from_secs(1) => d.as_millis(),
            Some(_) => return Err(ConfigError::new("idle_expiry", "must be at least 1s")),
        };
        if self.max_payload == 0 {
            return Err(ConfigError::new("max_payload", "must be at least 1"));
        }
        for (name, d) in [
            ("command_timeout", self.command_timeout),
            ("connect_timeout", self.connect_timeout),
            ("tail_block", self.tail_block),
        ] {
            if d < Duration::from_millis(1) {
                return Err(ConfigError::new(name, "must be at least 1ms"));
            }
        }
        let (min, max) = self.reconnect;
        if min.is_zero() || max < min {
            return Err(ConfigError::new("reconnect", "needs 0 < min <= max"));
        }
        if self.tail_count == 0 {
            return Err(ConfigError::new("tail_count", "must be at least 1"));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConfigError::new(
                "runtime",
                "build the log inside a Tokio runtime (it runs its connections there)",
            ));
        }
        let config = Config {
            prefix: self.prefix,
            max_len: self.max_len.to_string(),
            expiry_ms: expiry_ms.to_string(),
            max_payload: self.max_payload,
            command_timeout: self.command_timeout,
            connect_timeout: self.connect_timeout,
            reconnect_min: min,
            reconnect_max: max,
            ping_interval: PING_INTERVAL,
            tail_block: self.tail_block,
            tail_count: self.tail_count,
        };
        Ok(RedisLog::start(client, config))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bad_settings_are_named() {
        let b = || RedisLogBuilder::new("redis://127.0.0.1:1".into());
        let setting = |b: RedisLogBuilder| b.build().err().map(|e| e.setting());
        assert_eq!(
            setting(RedisLogBuilder::new("http://x".into())),
            Some("url")
        );
        assert_eq!(setting(b().prefix("a{b")), Some("prefix"));
        assert_eq!(setting(b().max_len(0)), Some("max_len"));
        assert_eq!(
            setting(b().idle_expiry(Some(Duration::from_millis(10)))),
            Some("idle_expiry")
        );
        assert_eq!(setting(b().max_payload(0)), Some("max_payload"));
        assert_eq!(
            setting(b().command_timeout(Duration::ZERO)),
            Some("command_timeout")
        );
        assert_eq!(
            setting(b().reconnect(Duration::from_secs(2), Duration::from_secs(1))),
            Some("reconnect")
        );
        assert_eq!(setting(b().tail_count(0)), Some("tail_count"));
        // Everything valid, but no runtime here.
        assert_eq!(setting(b()), Some("runtime"));
        let e = b().max_len(0).build().unwrap_err();
        assert_eq!(
            e.to_string(),
            "redis log setting `max_len`: must be at least 1"
        );
    }

    #[test]
    fn keys_share_a_slot_and_name_their_stream() {
        let config = Config {
            prefix: "app:".into(),
            max_len: "1".into(),
            expiry_ms: "0".into(),
            max_payload: 1,
            command_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(1),
            ping_interval: Duration::from_secs(1),
            tail_block: Duration::from_secs(1),
            tail_count: 1,
        };
        let [meta, log] = config.keys("user/alice");
        assert_eq!(meta, "app:{user/alice}:meta");
        assert_eq!(log, "app:{user/alice}:log");
        assert_eq!(config.stream_of(log.as_bytes()), Some("user/alice"));
        assert_eq!(config.stream_of(meta.as_bytes()), None);
        assert_eq!(config.stream_of(b"other:{x}:log"), None);
    }
}
