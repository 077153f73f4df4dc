//! [`DrainPolicy`]: every timing of the shutdown timeline, validated when built.
//!
//! ```text
//! SIGTERM ─ drain_delay ─▶ Closing ─ close_window ─▶ last turn ─ close_timeout ─▶ … ─▶ forced end
//! └──────────────────────────── grace_period − deadline_margin ─────────────────────────┘
//! ```

use std::{error::Error, fmt, time::Duration};

use wsdrain_protocol::{CloseHint, check_close_code};

/// Environment variable for [`DrainPolicyBuilder::drain_delay`].
pub const ENV_DRAIN_DELAY: &str = "WSDRAIN_DRAIN_DELAY";
/// Environment variable for [`DrainPolicyBuilder::close_window`].
pub const ENV_CLOSE_WINDOW: &str = "WSDRAIN_CLOSE_WINDOW";
/// Environment variable for [`DrainPolicyBuilder::close_timeout`].
pub const ENV_CLOSE_TIMEOUT: &str = "WSDRAIN_CLOSE_TIMEOUT";
/// Environment variable for [`DrainPolicyBuilder::grace_period`].
pub const ENV_GRACE_PERIOD: &str = "WSDRAIN_GRACE_PERIOD";
/// Environment variable for the low end of [`DrainPolicyBuilder::retry_after`].
pub const ENV_RETRY_AFTER_MIN: &str = "WSDRAIN_RETRY_AFTER_MIN";
/// Environment variable for the high end of [`DrainPolicyBuilder::retry_after`].
pub const ENV_RETRY_AFTER_MAX: &str = "WSDRAIN_RETRY_AFTER_MAX";
/// Environment variable for [`DrainPolicyBuilder::close_code`] (a number, e.g. `1012`).
pub const ENV_CLOSE_CODE: &str = "WSDRAIN_CLOSE_CODE";
/// Environment variable for [`DrainPolicyBuilder::max_sessions`] (a number).
pub const ENV_MAX_SESSIONS: &str = "WSDRAIN_MAX_SESSIONS";

/// The duration settings [`DrainPolicyBuilder::env`] reads.
pub const ENV_DURATIONS: [&str; 6] = [
    ENV_DRAIN_DELAY,
    ENV_CLOSE_WINDOW,
    ENV_CLOSE_TIMEOUT,
    ENV_GRACE_PERIOD,
    ENV_RETRY_AFTER_MIN,
    ENV_RETRY_AFTER_MAX,
];

/// Every setting [`DrainPolicyBuilder::env`] reads.
pub const ENV_SETTINGS: [&str; 8] = [
    ENV_DRAIN_DELAY,
    ENV_CLOSE_WINDOW,
    ENV_CLOSE_TIMEOUT,
    ENV_GRACE_PERIOD,
    ENV_RETRY_AFTER_MIN,
    ENV_RETRY_AFTER_MAX,
    ENV_CLOSE_CODE,
    ENV_MAX_SESSIONS,
];

/// Set by Kubernetes in every pod; its absence means "a developer's machine".
const KUBERNETES_SERVICE_HOST: &str = "KUBERNETES_SERVICE_HOST";

/// Defaults, each with the reason it has that value.
pub mod defaults {
    use std::time::Duration;

    /// Time between the first SIGTERM and the first close, while load balancers
    /// notice the readiness 503 (HAProxy `inter 2s fall 2` takes ~3 s; the
    /// ingress-nginx maintainers recommend 5 s). Zero outside Kubernetes.
    pub const DRAIN_DELAY: Duration = Duration::from_secs(5);
    /// Span over which sessions are closed, so their reconnects arrive smoothly
    /// at the pods that remain instead of in one burst.
    pub const CLOSE_WINDOW: Duration = Duration::from_secs(15);
    /// How long one session waits for the peer's Close after sending its own
    /// (Node `ws` waits 30 s, Python `websockets` 10 s; healthy peers answer in ms).
    pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
    /// Kubernetes' default `terminationGracePeriodSeconds`.
    pub const GRACE_PERIOD: Duration = Duration::from_secs(30);
    /// The forced end comes this long before the grace period ends, so the
    /// process exits on its own before the kubelet's SIGKILL.
    pub const DEADLINE_MARGIN: Duration = Duration::from_secs(2);
    /// Low end of the retry hint: gives the load balancer a moment to settle.
    pub const RETRY_AFTER_MIN: Duration = Duration::from_secs(1);
    /// High end of the retry hint: RFC 6455 §7.2.3 calls 0–5 s a reasonable
    /// first reconnect delay.
    pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(5);
    /// Sessions closed per second at least: a small fleet finishes early
    /// instead of spreading a handful of closes over the whole window.
    pub const MIN_CLOSE_RATE: u32 = 100;
    /// RFC 6455 "Going Away": a server going down.
    pub const CLOSE_CODE: u16 = wsdrain_protocol::code::GOING_AWAY;
}

/// Every timing of the shutdown timeline, validated.
///
/// Build one with [`DrainPolicy::builder`] or [`DrainPolicy::from_env`]; a
/// policy that cannot fit inside the grace period is refused with a
/// [`PolicyError`] that names the settings, at start-up rather than during a
/// deployment.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use wsdrain_core::DrainPolicy;
///
/// let policy = DrainPolicy::builder()
///     .drain_delay(Duration::from_secs(1))
///     .close_window(Duration::from_secs(3))
///     .close_timeout(Duration::from_secs(2))
///     .grace_period(Duration::from_secs(10))
///     .build()?;
/// assert_eq!(policy.deadline(), Duration::from_secs(8));
/// # Ok::<(), wsdrain_core::PolicyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainPolicy {
    drain_delay: Duration,
    close_window: Duration,
    close_timeout: Duration,
    grace_period: Duration,
    deadline_margin: Duration,
    retry_after_min: Duration,
    retry_after_max: Duration,
    min_close_rate: u32,
    close_code: u16,
    close_text: String,
    max_sessions: Option<usize>,
}

impl Default for DrainPolicy {
    /// The defaults for a 30 s grace period, with the drain delay of a pod
    /// (5 s). Use [`DrainPolicy::builder`] to get the environment-aware delay.
    fn default() -> Self {
        DrainPolicy {
            drain_delay: defaults::DRAIN_DELAY,
            close_window: defaults::CLOSE_WINDOW,
            close_timeout: defaults::CLOSE_TIMEOUT,
            grace_period: defaults::GRACE_PERIOD,
            deadline_margin: defaults::DEADLINE_MARGIN,
            retry_after_min: defaults::RETRY_AFTER_MIN,
            retry_after_max: defaults::RETRY_AFTER_MAX,
            min_close_rate: defaults::MIN_CLOSE_RATE,
            close_code: defaults::CLOSE_CODE,
            close_text: wsdrain_protocol::DEFAULT_TEXT.to_owned(),
            max_sessions: None,
        }
    }
}

impl DrainPolicy {
    /// A builder starting from the defaults.
    pub fn builder() -> DrainPolicyBuilder {
        DrainPolicyBuilder::default()
    }

    /// Reads `WSDRAIN_*` variables from the process environment on top of the
    /// defaults (12-factor configuration).
    ///
    /// Durations are written `5s`, `1500ms`, `2m`, `0.5s` or `0`.
    ///
    /// # Errors
    ///
    /// A value that does not parse, or a policy that does not validate (see
    /// [`DrainPolicyBuilder::build`]); the error names the variable and value.
    pub fn from_env() -> Result<Self, PolicyError> {
        Self::builder()
            .env(|name| std::env::var(name).ok())?
            .build()
    }

    /// Time from the first signal to the first close.
    pub fn drain_delay(&self) -> Duration {
        self.drain_delay
    }
    /// Span over which session closes are spread.
    pub fn close_window(&self) -> Duration {
        self.close_window
    }
    /// Wait for one peer's Close after ours, before the TCP connection is dropped.
    pub fn close_timeout(&self) -> Duration {
        self.close_timeout
    }
    /// The grace period the platform gives the process after SIGTERM.
    pub fn grace_period(&self) -> Duration {
        self.grace_period
    }
    /// How long before the grace period the forced end comes.
    pub fn deadline_margin(&self) -> Duration {
        self.deadline_margin
    }
    /// Time from the first signal to the forced end: `grace_period − deadline_margin`.
    pub fn deadline(&self) -> Duration {
        self.grace_period.saturating_sub(self.deadline_margin)
    }
    /// Lower bound of the retry hint.
    pub fn retry_after_min(&self) -> Duration {
        self.retry_after_min
    }
    /// Upper bound of the retry hint.
    pub fn retry_after_max(&self) -> Duration {
        self.retry_after_max
    }
    /// Sessions closed per second at least (see [`DrainPolicyBuilder::min_close_rate`]).
    pub fn min_close_rate(&self) -> u32 {
        self.min_close_rate
    }
    /// Close code sent to every session.
    pub fn close_code(&self) -> u16 {
        self.close_code
    }
    /// Human text at the start of the close reason.
    pub fn close_text(&self) -> &str {
        &self.close_text
    }
    /// Live sessions above which new upgrades are refused (none by default).
    pub fn max_sessions(&self) -> Option<usize> {
        self.max_sessions
    }

    /// Time over which `sessions` closes are spread: the window, unless the
    /// minimum rate gets through them sooner.
    pub fn close_span(&self, sessions: usize) -> Duration {
        if sessions <= 1 {
            return Duration::ZERO;
        }
        let at_min_rate =
            Duration::from_secs_f64(sessions as f64 / f64::from(self.min_close_rate.max(1)));
        at_min_rate.min(self.close_window)
    }

    /// Draws one retry hint, uniformly from the configured range.
    pub fn draw_hint(&self) -> CloseHint {
        let min = duration_ms(self.retry_after_min);
        let max = duration_ms(self.retry_after_max).max(min);
        CloseHint::from_millis(fastrand::u64(min..=max))
    }

    /// The hint of turn `i` of `n` in the close schedule: drawn from the
    /// `i`-th of `n` equal slices of the range, so that hints rise with the
    /// close order. Close moment + hint, when the client comes back, is then
    /// evenly spaced too, instead of piling up in the middle as the sum of two
    /// independent spreads would.
    pub fn hint_for_turn(&self, i: usize, n: usize) -> CloseHint {
        let min = duration_ms(self.retry_after_min);
        let max = duration_ms(self.retry_after_max).max(min);
        if n <= 1 || max == min {
            return self.draw_hint();
        }
        let slice = (max - min) as f64 / n as f64;
        let ms = min as f64 + slice * (i.min(n - 1) as f64 + fastrand::f64());
        CloseHint::from_millis((ms as u64).clamp(min, max))
    }

    /// The close reason for `hint`: `<close_text>; retry-after-ms=<n>`, at most 123 bytes.
    pub fn close_reason(&self, hint: CloseHint) -> String {
        hint.encode(&self.close_text)
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Builds a [`DrainPolicy`]; every setting starts at its [default](defaults).
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct DrainPolicyBuilder {
    drain_delay: Option<Duration>,
    close_window: Option<Duration>,
    close_timeout: Option<Duration>,
    grace_period: Option<Duration>,
    deadline_margin: Option<Duration>,
    retry_after_min: Option<Duration>,
    retry_after_max: Option<Duration>,
    min_close_rate: Option<u32>,
    close_code: Option<u16>,
    close_text: Option<String>,
    max_sessions: Option<usize>,
    kubernetes: Option<bool>,
}

impl DrainPolicyBuilder {
    /// Time between the first signal and the first close (default 5 s in
    /// Kubernetes, 0 elsewhere, so a developer's Ctrl-C does not wait).
    pub fn drain_delay(mut self, d: Duration) -> Self {
        self.drain_delay = Some(d);
        self
    }
    /// Span over which session closes are spread (default 15 s).
    pub fn close_window(mut self, d: Duration) -> Self {
        self.close_window = Some(d);
        self
    }
    /// Wait for the peer's Close after ours (default 5 s). Must be above zero.
    pub fn close_timeout(mut self, d: Duration) -> Self {
        self.close_timeout = Some(d);
        self
    }
    /// The platform's grace period after SIGTERM (default 30 s, Kubernetes'
    /// `terminationGracePeriodSeconds`). Set it to what your pod spec says.
    pub fn grace_period(mut self, d: Duration) -> Self {
        self.grace_period = Some(d);
        self
    }
    /// How long before the grace period the forced end comes (default 2 s).
    pub fn deadline_margin(mut self, d: Duration) -> Self {
        self.deadline_margin = Some(d);
        self
    }
    /// Range from which each session's retry hint is drawn (default 1–5 s).
    pub fn retry_after(mut self, min: Duration, max: Duration) -> Self {
        self.retry_after_min = Some(min);
        self.retry_after_max = Some(max);
        self
    }
    /// Sessions closed per second at least (default 100): with few sessions
    /// the closes are spaced `1/rate` apart instead of across the whole window.
    pub fn min_close_rate(mut self, per_second: u32) -> Self {
        self.min_close_rate = Some(per_second);
        self
    }
    /// Close code (default 1001 Going Away; 1012 Service Restart is the usual
    /// alternative). 1005, 1006, 1015 and codes below 1000 are refused.
    pub fn close_code(mut self, code: u16) -> Self {
        self.close_code = Some(code);
        self
    }
    /// Human text at the start of the close reason (default `going away`).
    /// Sanitised to ASCII and shortened so the reason fits in 123 bytes.
    pub fn close_text(mut self, text: impl Into<String>) -> Self {
        self.close_text = Some(text.into());
        self
    }
    /// Refuse new upgrades (503 + `Retry-After`) while this many sessions are
    /// live, so a pod is never pushed into file-descriptor exhaustion, for
    /// example while it absorbs another pod's drain. Unlimited by default;
    /// `0` is refused when building.
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = Some(max);
        self
    }
    /// Whether the process runs in Kubernetes, which picks the default drain
    /// delay. Without this call it is read from `KUBERNETES_SERVICE_HOST`.
    pub fn kubernetes(mut self, yes: bool) -> Self {
        self.kubernetes = Some(yes);
        self
    }

    /// Applies `WSDRAIN_*` settings read through `lookup` (for example
    /// `|name| std::env::var(name).ok()`); unset or empty variables keep the
    /// builder's value. `KUBERNETES_SERVICE_HOST` is read the same way.
    ///
    /// # Errors
    ///
    /// A value that does not parse, naming the variable and the value.
    pub fn env<F>(mut self, lookup: F) -> Result<Self, PolicyError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let duration = |name: &'static str| -> Result<Option<Duration>, PolicyError> {
            get(name)
                .map(|v| {
                    parse_duration(&v).ok_or(PolicyError::InvalidDuration {
                        setting: name,
                        value: v,
                    })
                })
                .transpose()
        };
        if let Some(d) = duration(ENV_DRAIN_DELAY)? {
            self.drain_delay = Some(d);
        }
        if let Some(d) = duration(ENV_CLOSE_WINDOW)? {
            self.close_window = Some(d);
        }
        if let Some(d) = duration(ENV_CLOSE_TIMEOUT)? {
            self.close_timeout = Some(d);
        }
        if let Some(d) = duration(ENV_GRACE_PERIOD)? {
            self.grace_period = Some(d);
        }
        if let Some(d) = duration(ENV_RETRY_AFTER_MIN)? {
            self.retry_after_min = Some(d);
        }
        if let Some(d) = duration(ENV_RETRY_AFTER_MAX)? {
            self.retry_after_max = Some(d);
        }
        if let Some(v) = get(ENV_CLOSE_CODE) {
            let code = v
                .trim()
                .parse::<u16>()
                .map_err(|_| PolicyError::InvalidNumber {
                    setting: ENV_CLOSE_CODE,
                    value: v.clone(),
                })?;
            self.close_code = Some(code);
        }
        if let Some(v) = get(ENV_MAX_SESSIONS) {
            let max = v
                .trim()
                .parse::<usize>()
                .map_err(|_| PolicyError::InvalidNumber {
                    setting: ENV_MAX_SESSIONS,
                    value: v.clone(),
                })?;
            self.max_sessions = Some(max);
        }
        if self.kubernetes.is_none() {
            self.kubernetes = Some(lookup(KUBERNETES_SERVICE_HOST).is_some());
        }
        Ok(self)
    }

    /// Validates and builds the policy.
    ///
    /// # Errors
    ///
    /// * [`PolicyError::ForbiddenCloseCode`]: a code a server may not send;
    /// * [`PolicyError::RetryRange`]: the retry minimum above the maximum;
    /// * [`PolicyError::ZeroCloseTimeout`], [`PolicyError::ZeroCloseRate`],
    ///   [`PolicyError::ZeroMaxSessions`];
    /// * [`PolicyError::Budget`]: `drain_delay + close_window + close_timeout`
    ///   does not fit before the forced end (`grace_period − deadline_margin`).
    pub fn build(self) -> Result<DrainPolicy, PolicyError> {
        let base = DrainPolicy::default();
        let kubernetes = self
            .kubernetes
            .unwrap_or_else(|| std::env::var_os(KUBERNETES_SERVICE_HOST).is_some());
        let default_delay = if kubernetes {
            defaults::DRAIN_DELAY
        } else {
            Duration::ZERO
        };
        let policy = DrainPolicy {
            drain_delay: self.drain_delay.unwrap_or(default_delay),
            close_window: self.close_window.unwrap_or(base.close_window),
            close_timeout: self.close_timeout.unwrap_or(base.close_timeout),
            grace_period: self.grace_period.unwrap_or(base.grace_period),
            deadline_margin: self.deadline_margin.unwrap_or(base.deadline_margin),
            retry_after_min: self.retry_after_min.unwrap_or(base.retry_after_min),
            retry_after_max: self.retry_after_max.unwrap_or(base.retry_after_max),
            min_close_rate: self.min_close_rate.unwrap_or(base.min_close_rate),
            close_code: self.close_code.unwrap_or(base.close_code),
            close_text: self.close_text.unwrap_or(base.close_text),
            max_sessions: self.max_sessions,
        };
        policy.validate()?;
        Ok(policy)
    }
}

impl DrainPolicy {
    fn validate(&self) -> Result<(), PolicyError> {
        if let Err(e) = check_close_code(self.close_code) {
            return Err(PolicyError::ForbiddenCloseCode {
                code: self.close_code,
                why: e.to_string(),
            });
        }
        if self.retry_after_min > self.retry_after_max {
            return Err(PolicyError::RetryRange {
                min: self.retry_after_min,
                max: self.retry_after_max,
            });
        }
        if self.close_timeout.is_zero() {
            return Err(PolicyError::ZeroCloseTimeout);
        }
        if self.min_close_rate == 0 {
            return Err(PolicyError::ZeroCloseRate);
        }
        if self.max_sessions == Some(0) {
            return Err(PolicyError::ZeroMaxSessions);
        }
        let needed = self.drain_delay + self.close_window + self.close_timeout;
        if self.deadline_margin >= self.grace_period || needed > self.deadline() {
            return Err(PolicyError::Budget {
                drain_delay: self.drain_delay,
                close_window: self.close_window,
                close_timeout: self.close_timeout,
                grace_period: self.grace_period,
                deadline_margin: self.deadline_margin,
            });
        }
        Ok(())
    }
}

/// Parses a human duration: `1500ms`, `5s`, `0.5s`, `2m`, `1h`, or `0`.
///
/// Returns `None` for anything else (no unit, negative, unknown unit, overflow).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    if t == "0" {
        return Some(Duration::ZERO);
    }
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = t.split_at(split);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return None;
    }
    let scale = match unit.trim() {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    Duration::try_from_secs_f64(value * scale).ok()
}

/// Why a policy was refused. Each message names the setting and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// A duration setting did not parse.
    InvalidDuration {
        /// The variable, e.g. `WSDRAIN_CLOSE_WINDOW`.
        setting: &'static str,
        /// The text found.
        value: String,
    },
    /// A numeric setting did not parse.
    InvalidNumber {
        /// The variable, e.g. `WSDRAIN_CLOSE_CODE`.
        setting: &'static str,
        /// The text found.
        value: String,
    },
    /// A close code a server may not send.
    ForbiddenCloseCode {
        /// The code.
        code: u16,
        /// Why it is refused.
        why: String,
    },
    /// The retry-after minimum is above its maximum.
    RetryRange {
        /// `WSDRAIN_RETRY_AFTER_MIN`.
        min: Duration,
        /// `WSDRAIN_RETRY_AFTER_MAX`.
        max: Duration,
    },
    /// `close_timeout` is zero: the close handshake must be awaited.
    ZeroCloseTimeout,
    /// `min_close_rate` is zero.
    ZeroCloseRate,
    /// `max_sessions` is zero: no session could ever be accepted.
    ZeroMaxSessions,
    /// The timings do not fit before the forced end.
    Budget {
        /// `WSDRAIN_DRAIN_DELAY`.
        drain_delay: Duration,
        /// `WSDRAIN_CLOSE_WINDOW`.
        close_window: Duration,
        /// `WSDRAIN_CLOSE_TIMEOUT`.
        close_timeout: Duration,
        /// `WSDRAIN_GRACE_PERIOD`.
        grace_period: Duration,
        /// The margin before the grace period ends.
        deadline_margin: Duration,
    },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::InvalidDuration { setting, value } => write!(
                f,
                "{setting}: invalid duration {value:?} (write e.g. 5s, 1500ms, 2m)"
            ),
            PolicyError::InvalidNumber { setting, value } => {
                write!(f, "{setting}: invalid number {value:?}")
            }
            PolicyError::ForbiddenCloseCode { code, why } => {
                write!(f, "{ENV_CLOSE_CODE} (close_code) = {code}: {why}")
            }
            PolicyError::RetryRange { min, max } => write!(
                f,
                "{ENV_RETRY_AFTER_MIN} ({min:?}) is above {ENV_RETRY_AFTER_MAX} ({max:?})"
            ),
            PolicyError::ZeroCloseTimeout => write!(
                f,
                "{ENV_CLOSE_TIMEOUT} (close_timeout) = 0s: the close handshake needs time to be awaited"
            ),
            PolicyError::ZeroCloseRate => write!(f, "min_close_rate = 0: it must be at least 1"),
            PolicyError::ZeroMaxSessions => write!(
                f,
                "{ENV_MAX_SESSIONS} (max_sessions) = 0: no session could be accepted; leave it unset for no limit"
            ),
            PolicyError::Budget {
                drain_delay,
                close_window,
                close_timeout,
                grace_period,
                deadline_margin,
            } => write!(
                f,
                "timings do not fit the grace period: {ENV_DRAIN_DELAY} ({drain_delay:?}) + \
                 {ENV_CLOSE_WINDOW} ({close_window:?}) + {ENV_CLOSE_TIMEOUT} ({close_timeout:?}) = {:?}, \
                 but the forced end comes at {ENV_GRACE_PERIOD} ({grace_period:?}) minus a \
                 {deadline_margin:?} margin = {:?}",
                *drain_delay + *close_window + *close_timeout,
                grace_period.saturating_sub(*deadline_margin),
            ),
        }
    }
}

impl Error for PolicyError {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashMap;

    fn from_vars(vars: &[(&str, &str)]) -> Result<DrainPolicy, PolicyError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DrainPolicy::builder().env(|k| map.get(k).cloned())?.build()
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.5s"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration(" 1h "), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in [
            "",
            "5",
            "abc",
            "-1s",
            "5 parsecs",
            "1e3s",
            ".5s",
            "5.s",
            "s",
            "1.2.3s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(parse_duration("99999999999999999999999h"), None);
    }

    #[test]
    fn defaults_in_kubernetes_and_outside() {
        let k8s = from_vars(&[("KUBERNETES_SERVICE_HOST", "10.0.0.1")]).unwrap();
        assert_eq!(k8s.drain_delay(), Duration::from_secs(5));
        assert_eq!(k8s.close_window(), Duration::from_secs(15));
        assert_eq!(k8s.close_timeout(), Duration::from_secs(5));
        assert_eq!(k8s.grace_period(), Duration::from_secs(30));
        assert_eq!(k8s.deadline(), Duration::from_secs(28));
        assert_eq!(k8s.close_code(), 1001);
        assert_eq!(k8s, DrainPolicy::default());
        let laptop = from_vars(&[]).unwrap();
        assert_eq!(laptop.drain_delay(), Duration::ZERO);
        let explicit = from_vars(&[("WSDRAIN_DRAIN_DELAY", "3s")]).unwrap();
        assert_eq!(explicit.drain_delay(), Duration::from_secs(3));
    }

    #[test]
    fn every_env_setting_is_read() {
        let p = from_vars(&[
            ("WSDRAIN_DRAIN_DELAY", "1s"),
            ("WSDRAIN_CLOSE_WINDOW", "3s"),
            ("WSDRAIN_CLOSE_TIMEOUT", "1500ms"),
            ("WSDRAIN_GRACE_PERIOD", "10s"),
            ("WSDRAIN_RETRY_AFTER_MIN", "200ms"),
            ("WSDRAIN_RETRY_AFTER_MAX", "2s"),
            ("WSDRAIN_CLOSE_CODE", "1012"),
            ("WSDRAIN_MAX_SESSIONS", "5000"),
        ])
        .unwrap();
        assert_eq!(p.max_sessions(), Some(5000));
        assert_eq!(p.drain_delay(), Duration::from_secs(1));
        assert_eq!(p.close_window(), Duration::from_secs(3));
        assert_eq!(p.close_timeout(), Duration::from_millis(1500));
        assert_eq!(p.grace_period(), Duration::from_secs(10));
        assert_eq!(p.retry_after_min(), Duration::from_millis(200));
        assert_eq!(p.retry_after_max(), Duration::from_secs(2));
        assert_eq!(p.close_code(), 1012);
    }

    #[test]
    fn each_bad_env_value_names_its_setting() {
        for name in ENV_DURATIONS {
            let err = from_vars(&[(name, "soon")]).unwrap_err();
            assert_eq!(
                err,
                PolicyError::InvalidDuration {
                    setting: name,
                    value: "soon".into()
                }
            );
            let msg = err.to_string();
            assert!(msg.contains(name) && msg.contains("soon"), "{msg}");
        }
        for name in [ENV_CLOSE_CODE, ENV_MAX_SESSIONS] {
            let err = from_vars(&[(name, "going")]).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
        let err = from_vars(&[(ENV_MAX_SESSIONS, "0")]).unwrap_err();
        assert!(err.to_string().contains(ENV_MAX_SESSIONS), "{err}");
    }

    #[test]
    fn forbidden_codes_are_refused() {
        for code in [0, 999, 1004, 1005, 1006, 1015, 2000, 5000] {
            let err = from_vars(&[(ENV_CLOSE_CODE, &code.to_string())]).unwrap_err();
            assert!(matches!(err, PolicyError::ForbiddenCloseCode { code: c, .. } if c == code));
            let msg = err.to_string();
            assert!(
                msg.contains(ENV_CLOSE_CODE) && msg.contains(&code.to_string()),
                "{msg}"
            );
        }
        for code in [1000, 1001, 1012, 1013, 4000] {
            assert!(from_vars(&[(ENV_CLOSE_CODE, &code.to_string())]).is_ok());
        }
    }

    #[test]
    fn retry_range_and_zeroes() {
        let err =
            from_vars(&[(ENV_RETRY_AFTER_MIN, "6s"), (ENV_RETRY_AFTER_MAX, "5s")]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(ENV_RETRY_AFTER_MIN) && msg.contains("6s"),
            "{msg}"
        );
        let err = from_vars(&[(ENV_CLOSE_TIMEOUT, "0")]).unwrap_err();
        assert_eq!(err, PolicyError::ZeroCloseTimeout);
        assert!(err.to_string().contains(ENV_CLOSE_TIMEOUT));
        let err = DrainPolicy::builder()
            .min_close_rate(0)
            .build()
            .unwrap_err();
        assert_eq!(err, PolicyError::ZeroCloseRate);
    }

    #[test]
    fn budget_must_fit_before_the_forced_end() {
        // 5 + 15 + 5 = 25 fits 28; 5 + 19 + 5 = 29 does not.
        assert!(from_vars(&[("KUBERNETES_SERVICE_HOST", "x"), (ENV_CLOSE_WINDOW, "18s")]).is_ok());
        let err =
            from_vars(&[("KUBERNETES_SERVICE_HOST", "x"), (ENV_CLOSE_WINDOW, "19s")]).unwrap_err();
        assert!(matches!(err, PolicyError::Budget { .. }));
        let msg = err.to_string();
        for needle in [ENV_CLOSE_WINDOW, "19s", ENV_GRACE_PERIOD, "30s", "28s"] {
            assert!(msg.contains(needle), "{needle} missing from {msg}");
        }
        let err = from_vars(&[(ENV_GRACE_PERIOD, "1s")]).unwrap_err();
        assert!(matches!(err, PolicyError::Budget { .. }), "{err}");
    }

    #[test]
    fn hints_stay_in_range_and_vary() {
        let p = DrainPolicy::builder()
            .retry_after(Duration::from_millis(100), Duration::from_millis(900))
            .build()
            .unwrap();
        let hints: Vec<u64> = (0..500).map(|_| p.draw_hint().retry_after_ms()).collect();
        assert!(hints.iter().all(|h| (100..=900).contains(h)));
        let distinct: std::collections::HashSet<_> = hints.iter().collect();
        assert!(
            distinct.len() > 100,
            "hints barely vary: {}",
            distinct.len()
        );
    }

    #[test]
    fn turn_hints_rise_with_the_order_and_stay_in_range() {
        let p = DrainPolicy::builder()
            .retry_after(Duration::from_millis(1000), Duration::from_millis(5000))
            .build()
            .unwrap();
        let n = 400;
        let hints: Vec<u64> = (0..n)
            .map(|i| p.hint_for_turn(i, n).retry_after_ms())
            .collect();
        assert!(hints.iter().all(|h| (1000..=5000).contains(h)));
        for (i, h) in hints.iter().enumerate() {
            let slice_start = 1000 + 4000 * i as u64 / n as u64;
            assert!(*h >= slice_start && *h <= slice_start + 11, "turn {i}: {h}");
        }
        assert!(hints.windows(2).all(|w| w[0] <= w[1] + 10));
    }

    #[test]
    fn reason_fits_for_any_text() {
        let p = DrainPolicy::builder()
            .close_text("x".repeat(500))
            .retry_after(Duration::from_secs(3600), Duration::from_secs(3600))
            .build()
            .unwrap();
        let reason = p.close_reason(p.draw_hint());
        assert!(reason.len() <= 123, "{}", reason.len());
        assert!(reason.ends_with("retry-after-ms=3600000"), "{reason}");
    }

    #[test]
    fn span_is_window_or_min_rate() {
        let p = DrainPolicy::default();
        assert_eq!(p.close_span(0), Duration::ZERO);
        assert_eq!(p.close_span(1), Duration::ZERO);
        assert_eq!(p.close_span(300), Duration::from_secs(3));
        assert_eq!(p.close_span(10_000), Duration::from_secs(15));
    }
}
