//! [`DrainPolicy`]: every timing of the shutdown timeline, validated when built.
//!
//! ```text
//! SIGTERM ─ drain_delay ─▶ Closing ─ close_window ─▶ last turn ─ notice_lead ─▶ last Close
//!         ─ close_timeout ─▶ close over ─ close_timeout ─▶ handler cut ─▶ … ─▶ forced end
//! └───────────────────────── grace_period − deadline_margin ──────────────────────────────┘
//! ```
//!
//! The parts: [`DrainPolicy`] and its [`defaults`]; [`DrainPolicyBuilder`];
//! the `WSDRAIN_*` settings ([`ENV_SETTINGS`], [`DrainPolicy::from_env`]);
//! [`parse_duration`], [`parse_bool`]; [`PolicyError`].

use std::{fmt, time::Duration};

use wsdrain_protocol::CloseHint;

pub(crate) use duration::Readable;

mod builder;
pub mod defaults;
mod duration;
mod env;
mod error;

pub use builder::DrainPolicyBuilder;
pub use duration::parse_duration;
pub use env::{
    BOOL_SPELLINGS, ENV_ADMIN_LISTEN, ENV_ADMIN_PUBLIC, ENV_ADMIN_SETTINGS, ENV_ADMIN_TOKEN,
    ENV_CLOSE_CODE, ENV_CLOSE_TIMEOUT, ENV_CLOSE_WINDOW, ENV_CLOSING_UPGRADES, ENV_DRAIN_DELAY,
    ENV_DURATIONS, ENV_GRACE_PERIOD, ENV_MAX_SESSIONS, ENV_NOTICE_LEAD, ENV_RETRY_AFTER_MAX,
    ENV_RETRY_AFTER_MIN, ENV_SETTINGS, parse_bool,
};
pub use error::PolicyError;

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
    notice_lead: Duration,
    grace_period: Duration,
    deadline_margin: Duration,
    retry_after_min: Duration,
    retry_after_max: Duration,
    min_close_rate: u32,
    close_code: u16,
    close_text: String,
    /// `<close_text>; retry-after-ms=`, when that prefix is the same for
    /// every hint (the text is not shortened for a long number): the close
    /// reason is then this plus the number, not encoded anew per session.
    reason_prefix: Option<String>,
    max_sessions: Option<usize>,
    closing_upgrades: ClosingUpgrades,
}

/// What an upgrade that arrives during Closing gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClosingUpgrades {
    /// `503` + `Retry-After` + `Connection: close` (the default): the HTTP
    /// answer, which load balancers and native clients read. A browser sees
    /// only close code 1006, without the advice.
    #[default]
    Refuse,
    /// Accept it, then close it at once with `Close(1013 Try Again Later,
    /// hint)`: a browser can read that code and hint. Costs one short session
    /// on the draining server per such upgrade.
    TryAgainLater,
}

impl ClosingUpgrades {
    /// The value of `WSDRAIN_CLOSING_UPGRADES`: `refuse` or `close-1013`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ClosingUpgrades::Refuse => "refuse",
            ClosingUpgrades::TryAgainLater => "close-1013",
        }
    }
}

impl Default for DrainPolicy {
    /// The defaults for a 30 s grace period, with the drain delay of a pod
    /// (5 s). Use [`DrainPolicy::builder`] to get the environment-aware delay.
    fn default() -> Self {
        DrainPolicy {
            drain_delay: defaults::DRAIN_DELAY,
            close_window: defaults::CLOSE_WINDOW,
            close_timeout: defaults::CLOSE_TIMEOUT,
            notice_lead: Duration::ZERO,
            grace_period: defaults::GRACE_PERIOD,
            deadline_margin: defaults::DEADLINE_MARGIN,
            retry_after_min: defaults::RETRY_AFTER_MIN,
            retry_after_max: defaults::RETRY_AFTER_MAX,
            min_close_rate: defaults::MIN_CLOSE_RATE,
            close_code: defaults::CLOSE_CODE,
            close_text: wsdrain_protocol::DEFAULT_TEXT.to_owned(),
            reason_prefix: reason_prefix(wsdrain_protocol::DEFAULT_TEXT),
            max_sessions: None,
            closing_upgrades: ClosingUpgrades::Refuse,
        }
    }
}

impl DrainPolicy {
    /// A builder starting from the defaults.
    pub fn builder() -> DrainPolicyBuilder {
        DrainPolicyBuilder::default()
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
    /// What an upgrade that arrives during Closing gets.
    pub fn closing_upgrades(&self) -> ClosingUpgrades {
        self.closing_upgrades
    }
    /// Lead of the drain notice before each session's Close; zero when off.
    pub fn notice_lead(&self) -> Duration {
        self.notice_lead
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
        match &self.reason_prefix {
            Some(prefix) => {
                let mut reason = String::with_capacity(prefix.len() + 20);
                reason.push_str(prefix);
                push_decimal(&mut reason, hint.retry_after_ms());
                reason
            }
            None => hint.encode(&self.close_text),
        }
    }
}

/// One line of the settings, in the `WSDRAIN_*` forms:
/// `drain delay 0s, close window 12s, close timeout 5s, grace period 30s,
/// retry hints 1s to 5s, close code 1001` (and the notice lead, the session
/// limit and the answer to upgrades during Closing when they are set).
///
/// With `{:#}`, a second line says what the first SIGTERM or SIGINT will do
/// (once [`listen_for_signals`](crate::DrainController::listen_for_signals)
/// runs): `on SIGTERM or SIGINT: /readyz answers 503 at once; then sessions
/// get Close(1001, retry hint), at least 100 a second, all within 12s; the
/// forced end 28s after the signal, or at a second one`.
impl fmt::Display for DrainPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "drain delay {}, close window {}, close timeout {}, grace period {}, \
             retry hints {} to {}, close code {}",
            Readable(self.drain_delay),
            Readable(self.close_window),
            Readable(self.close_timeout),
            Readable(self.grace_period),
            Readable(self.retry_after_min),
            Readable(self.retry_after_max),
            self.close_code,
        )?;
        if !self.notice_lead.is_zero() {
            write!(f, ", notice lead {}", Readable(self.notice_lead))?;
        }
        if let Some(max) = self.max_sessions {
            write!(f, ", max sessions {max}")?;
        }
        if self.closing_upgrades != ClosingUpgrades::Refuse {
            write!(
                f,
                ", upgrades while closing: {}",
                self.closing_upgrades.as_str()
            )?;
        }
        if !f.alternate() {
            return Ok(());
        }
        f.write_str("\non SIGTERM or SIGINT: /readyz answers 503 at once; ")?;
        if self.drain_delay.is_zero() {
            f.write_str("then ")?;
        } else {
            write!(f, "{} later ", Readable(self.drain_delay))?;
        }
        write!(f, "sessions get Close({}, retry hint)", self.close_code)?;
        if !self.notice_lead.is_zero() {
            write!(
                f,
                ", the drain notice {} before",
                Readable(self.notice_lead)
            )?;
        }
        write!(
            f,
            ", at least {} a second, all within {}; the forced end {} after the signal, \
             or at a second one",
            self.min_close_rate,
            Readable(self.close_window),
            Readable(self.deadline()),
        )
    }
}

/// The slowest session's path from the first signal: its turn comes at
/// `drain_delay + close_window`, its Close `notice_lead` later, its close
/// handshake takes up to `close_timeout`, and its handler has `close_timeout`
/// more to return before it is cut. `None` beyond `Duration::MAX`.
pub(crate) fn slowest_close(
    drain_delay: Duration,
    close_window: Duration,
    notice_lead: Duration,
    close_timeout: Duration,
) -> Option<Duration> {
    drain_delay
        .checked_add(close_window)?
        .checked_add(notice_lead)?
        .checked_add(close_timeout)?
        .checked_add(close_timeout)
}

/// The part of every close reason before the number, if it is the same for
/// the shortest and the longest number (see `CloseHint::encode`).
pub(crate) fn reason_prefix(text: &str) -> Option<String> {
    let longest = CloseHint::from_millis(u64::MAX).encode(text);
    let shortest = CloseHint::from_millis(0).encode(text);
    let prefix = longest.strip_suffix(u64::MAX.to_string().as_str())?;
    (shortest.strip_suffix('0') == Some(prefix)).then(|| prefix.to_owned())
}

fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A policy from `vars` (name, value), as [`DrainPolicyBuilder::env`] reads them.
#[cfg(test)]
fn from_vars(vars: &[(&str, &str)]) -> Result<DrainPolicy, PolicyError> {
    let map: std::collections::HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    DrainPolicy::builder().env(|k| map.get(k).cloned())?.build()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
    fn the_reason_prefix_gives_what_encode_gives() {
        for text in [
            "going away",
            "",
            "  deploy ünd; restart\n",
            &"x".repeat(500),
            &"y".repeat(86),
        ] {
            let p = DrainPolicy::builder().close_text(text).build().unwrap();
            for ms in [0, 1, 9, 10, 999, 12_345, 1 << 40, u64::MAX] {
                let hint = CloseHint::from_millis(ms);
                assert_eq!(p.close_reason(hint), hint.encode(text), "{text:?} {ms}");
            }
        }
        assert!(
            reason_prefix("going away").is_some(),
            "the fast path for the default"
        );
        assert!(
            reason_prefix(&"x".repeat(500)).is_none(),
            "a long text is shortened per number"
        );
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
        assert_eq!(p.close_span(10_000), Duration::from_secs(12));
    }

    #[test]
    fn display_says_the_settings_and_with_alternate_what_a_signal_does() {
        let laptop = DrainPolicy::builder().kubernetes(false).build().unwrap();
        assert_eq!(
            laptop.to_string(),
            "drain delay 0s, close window 12s, close timeout 5s, grace period 30s, \
             retry hints 1s to 5s, close code 1001"
        );
        assert_eq!(
            format!("{laptop:#}"),
            "drain delay 0s, close window 12s, close timeout 5s, grace period 30s, \
             retry hints 1s to 5s, close code 1001\n\
             on SIGTERM or SIGINT: /readyz answers 503 at once; then sessions get \
             Close(1001, retry hint), at least 100 a second, all within 12s; the forced \
             end 28s after the signal, or at a second one"
        );
        let tuned = DrainPolicy::builder()
            .drain_delay(Duration::from_millis(2500))
            .close_window(Duration::from_secs(90))
            .notice_lead(Duration::from_secs(1))
            .grace_period(Duration::from_secs(120))
            .retry_after(Duration::from_millis(500), Duration::from_secs(3))
            .close_code(1012)
            .max_sessions(5000)
            .closing_upgrades(ClosingUpgrades::TryAgainLater)
            .build()
            .unwrap();
        assert_eq!(
            format!("{tuned:#}"),
            "drain delay 2.5s, close window 1m30s, close timeout 5s, grace period 2m, \
             retry hints 500ms to 3s, close code 1012, notice lead 1s, max sessions 5000, \
             upgrades while closing: close-1013\n\
             on SIGTERM or SIGINT: /readyz answers 503 at once; 2.5s later sessions get \
             Close(1012, retry hint), the drain notice 1s before, at least 100 a second, \
             all within 1m30s; the forced end 1m58s after the signal, or at a second one"
        );
    }
}
