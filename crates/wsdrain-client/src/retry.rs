//! The retry decision and the backoff, as pure functions.
//!
//! Nothing here touches the network or a clock: [`RetryPolicy::decide`] maps
//! what ended a connection (an [`Outcome`]), the count of consecutive failures
//! and one uniform random number to a [`Decision`]. The client feeds it
//! `fastrand::f64()`; tests feed it fixed numbers.

use std::fmt;
use std::time::Duration;

use wsdrain_protocol::{CloseHint, code};

/// What ended a connection, or a connection attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The server sent a Close frame with this code (1005 when it had none) and,
    /// maybe, a retry hint in its reason.
    Closed {
        /// The close code.
        code: u16,
        /// The hint parsed from the reason ([`CloseHint::parse`]).
        hint: Option<CloseHint>,
    },
    /// The connection ended without a Close frame (what browsers call 1006):
    /// reset, end of stream, protocol error.
    Abnormal,
    /// The upgrade was answered with an HTTP status other than 101.
    Refused {
        /// The status code, e.g. 503.
        status: u16,
        /// The parsed `Retry-After` header, if any.
        retry_after: Option<Duration>,
    },
    /// No HTTP answer at all: connection refused or reset, timeout, DNS.
    Unreachable,
    /// The request can never succeed (bad URL, unsupported scheme).
    Unusable,
}

/// What to do after an [`Outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Connect again after `delay`.
    Retry {
        /// How long to wait before the next attempt.
        delay: Duration,
        /// Where the delay comes from.
        wait: Wait,
    },
    /// Do not reconnect.
    Stop,
}

/// Where a reconnect delay comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Wait {
    /// The server's close hint (1001, 1012 or 1013 with `retry-after-ms`), plus jitter.
    Hint(CloseHint),
    /// The `Retry-After` header of a refused upgrade, plus jitter.
    RetryAfter(Duration),
    /// Exponential backoff with full jitter; `attempt` counts consecutive
    /// failures from 0.
    Backoff {
        /// The attempt number the delay was drawn for.
        attempt: u32,
    },
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wait::Hint(h) => write!(f, "hint {} ms", h.retry_after_ms()),
            Wait::RetryAfter(d) => write!(f, "Retry-After {} s", d.as_secs()),
            Wait::Backoff { attempt } => write!(f, "backoff attempt {attempt}"),
        }
    }
}

/// The reconnect rules: backoff parameters and which endings are terminal.
///
/// Build one with [`RetryPolicy::builder`] (or take [`RetryPolicy::default`])
/// and give it to [`Reconnect::policy`](crate::Reconnect::policy). The
/// defaults follow `docs/PROTOCOL.md`, "Client guidance"; each is explained
/// at its method of [`RetryPolicyBuilder`].
///
/// ```
/// use std::time::Duration;
/// use wsdrain_client::RetryPolicy;
///
/// let policy = RetryPolicy::builder()
///     .base(Duration::from_millis(100))
///     .cap(Duration::from_secs(10))
///     .build()
///     .unwrap();
/// assert_eq!(policy.cap(), Duration::from_secs(10));
/// assert_eq!(policy.hint_jitter(), Duration::from_millis(50)); // the default
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RetryPolicy {
    base: Duration,
    cap: Duration,
    going_away_base: Duration,
    stable_after: Duration,
    hint_jitter: Duration,
    terminal_code: fn(u16) -> bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
            going_away_base: Duration::from_secs(5),
            stable_after: Duration::from_secs(30),
            hint_jitter: Duration::from_millis(50),
            terminal_code: default_terminal_code,
        }
    }
}

/// Builds a [`RetryPolicy`]; every setting starts at its default.
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct RetryPolicyBuilder {
    policy: RetryPolicy,
}

impl RetryPolicyBuilder {
    /// First backoff ceiling: attempt `n` sleeps `random(0, min(cap, base·2ⁿ))`.
    /// Default 250 ms: a lost connection on a healthy network comes back
    /// fast. Must be above zero: a zero base retries at once, forever.
    pub fn base(mut self, base: Duration) -> Self {
        self.policy.base = base;
        self
    }

    /// The longest any wait may be, hints and `Retry-After` included. Default
    /// 30 s: a buggy or hostile server must not park clients for long. Must be
    /// above zero.
    pub fn cap(mut self, cap: Duration) -> Self {
        self.policy.cap = cap;
        self
    }

    /// Backoff base after a 1001/1012 close without a hint. Default 5 s, as
    /// RFC 6455 §7.2.3 suggests: the server is going away and gave no advice.
    /// Must be above zero.
    pub fn going_away_base(mut self, base: Duration) -> Self {
        self.policy.going_away_base = base;
        self
    }

    /// A connection that stayed up this long resets the failure count. Default
    /// 30 s: a server that accepts and then crashes must not reset the backoff.
    /// Zero counts every connection as stable.
    pub fn stable_after(mut self, after: Duration) -> Self {
        self.policy.stable_after = after;
        self
    }

    /// Least jitter added to a hint or `Retry-After`: the client waits
    /// `h + random(0, max(hint_jitter, h/50))`. Default 50 ms: a wsdrain
    /// server already spreads its closes and hints evenly, so the client's
    /// own jitter only has to keep clients that got the same hint from a
    /// server that does not spread from coming back in the same millisecond;
    /// more would blur the even spacing (see docs/PERFORMANCE.md).
    pub fn hint_jitter(mut self, jitter: Duration) -> Self {
        self.policy.hint_jitter = jitter;
        self
    }

    /// Close codes after which the client stops. Default: 1000, 1008 and
    /// 4000–4999 ([`default_terminal_code`]). The codes whose hint is
    /// honoured ([`honours_hint`]: 1001, 1012, 1013) always reconnect.
    pub fn terminal_codes(mut self, is_terminal: fn(u16) -> bool) -> Self {
        self.policy.terminal_code = is_terminal;
        self
    }

    /// The policy.
    ///
    /// # Errors
    ///
    /// [`RetryPolicyError`] naming the setting when `base`, `cap` or
    /// `going_away_base` is zero.
    pub fn build(self) -> Result<RetryPolicy, RetryPolicyError> {
        let p = &self.policy;
        for (setting, value) in [
            ("base", p.base),
            ("cap", p.cap),
            ("going_away_base", p.going_away_base),
        ] {
            if value.is_zero() {
                return Err(RetryPolicyError { setting });
            }
        }
        Ok(self.policy)
    }
}

/// A [`RetryPolicy`] setting that cannot work; its message names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicyError {
    setting: &'static str,
}

impl RetryPolicyError {
    /// The setting, as its builder method is named (e.g. `base`).
    #[must_use]
    pub fn setting(&self) -> &'static str {
        self.setting
    }
}

impl fmt::Display for RetryPolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "retry policy: `{}` must be above zero (zero would reconnect at once, without end)",
            self.setting
        )
    }
}

impl std::error::Error for RetryPolicyError {}

impl RetryPolicy {
    /// A builder with every setting at its default.
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder::default()
    }

    /// This policy as a builder, to change some of its settings.
    pub fn to_builder(&self) -> RetryPolicyBuilder {
        RetryPolicyBuilder {
            policy: self.clone(),
        }
    }

    /// First backoff ceiling ([`RetryPolicyBuilder::base`]).
    #[must_use]
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The longest wait of any kind ([`RetryPolicyBuilder::cap`]).
    #[must_use]
    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// Backoff base after 1001/1012 without a hint
    /// ([`RetryPolicyBuilder::going_away_base`]).
    #[must_use]
    pub fn going_away_base(&self) -> Duration {
        self.going_away_base
    }

    /// Uptime that resets the failure count ([`RetryPolicyBuilder::stable_after`]).
    #[must_use]
    pub fn stable_after(&self) -> Duration {
        self.stable_after
    }

    /// Least jitter on a hint or `Retry-After` ([`RetryPolicyBuilder::hint_jitter`]).
    #[must_use]
    pub fn hint_jitter(&self) -> Duration {
        self.hint_jitter
    }

    /// Whether the client stops after a Close with `code`
    /// ([`RetryPolicyBuilder::terminal_codes`]).
    #[must_use]
    pub fn is_terminal(&self, code: u16) -> bool {
        (self.terminal_code)(code)
    }
}

/// The default terminal close codes: 1000 (the conversation is over), 1008
/// (policy violation) and 4000–4999 (application codes).
#[must_use]
pub fn default_terminal_code(code: u16) -> bool {
    matches!(code, code::NORMAL | 1008 | 4000..=4999)
}

/// Upgrade statuses after which the client stops: client errors, which a
/// retry cannot fix, except 408 (timeout), 425 (too early) and 429 (too many
/// requests).
#[must_use]
pub fn terminal_status(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 408 | 425 | 429)
}

/// The full-jitter backoff of AWS "Exponential Backoff And Jitter":
/// `unit · min(cap, base · 2^attempt)`, with `unit` uniform in `[0, 1)`.
///
/// Never panics and never overflows: the ceiling saturates at `cap`. A `unit`
/// outside `[0, 1)` is clamped into it.
///
/// ```
/// use std::time::Duration;
/// use wsdrain_client::retry::{backoff_ceiling, full_jitter};
///
/// let (base, cap) = (Duration::from_millis(250), Duration::from_secs(30));
/// assert_eq!(backoff_ceiling(base, cap, 3), Duration::from_secs(2));
/// assert_eq!(full_jitter(base, cap, 3, 0.5), Duration::from_secs(1));
/// assert_eq!(backoff_ceiling(base, cap, 1000), cap);
/// ```
#[must_use]
pub fn full_jitter(base: Duration, cap: Duration, attempt: u32, unit: f64) -> Duration {
    scale(backoff_ceiling(base, cap, attempt), unit)
}

/// The backoff ceiling `min(cap, base · 2^attempt)`, saturating.
#[must_use]
pub fn backoff_ceiling(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(Duration::MAX).min(cap)
}

/// The wait for a hint or `Retry-After` of `advised`:
/// `min(advised, cap) + unit · max(least_jitter, advised / 50)`.
#[must_use]
pub fn advised_delay(
    advised: Duration,
    cap: Duration,
    least_jitter: Duration,
    unit: f64,
) -> Duration {
    let advised = advised.min(cap);
    advised.saturating_add(scale(least_jitter.max(advised / 50), unit))
}

/// `unit · d`, `unit` clamped into `[0, 1)`.
fn scale(d: Duration, unit: f64) -> Duration {
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    // Strictly below d: full jitter draws from [0, d).
    let nanos = (d.as_nanos() as f64 * unit) as u128;
    let nanos = nanos.min(d.as_nanos().saturating_sub(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

impl RetryPolicy {
    /// What to do after `outcome`, with `attempt` consecutive failures so far
    /// and `unit` a uniform random number in `[0, 1)`.
    ///
    /// * Close 1001, 1012 or 1013 with a hint ([`honours_hint`]): [`Wait::Hint`],
    ///   `advised_delay(hint)`.
    /// * Refused upgrade with `Retry-After` (503, 429, ...): [`Wait::RetryAfter`].
    /// * Terminal close codes (see [`is_terminal`](Self::is_terminal)),
    ///   terminal statuses ([`terminal_status`]) and unusable requests: [`Decision::Stop`].
    /// * 1001/1012 without a hint: full-jitter backoff from `going_away_base`.
    /// * Everything else (1006, refused or reset connections, 1011, 1013
    ///   without a hint, 5xx without `Retry-After`): full-jitter backoff.
    #[must_use]
    pub fn decide(&self, outcome: &Outcome, attempt: u32, unit: f64) -> Decision {
        let backoff = |base| Decision::Retry {
            delay: full_jitter(base, self.cap, attempt, unit),
            wait: Wait::Backoff { attempt },
        };
        match *outcome {
            Outcome::Closed {
                code,
                hint: Some(hint),
            } if honours_hint(code) => Decision::Retry {
                delay: advised_delay(hint.retry_after(), self.cap, self.hint_jitter, unit),
                wait: Wait::Hint(hint),
            },
            Outcome::Closed { code, .. } if is_going_away(code) => {
                backoff(self.going_away_base.max(self.base))
            }
            Outcome::Closed { code, .. } if self.is_terminal(code) => Decision::Stop,
            Outcome::Closed { .. } | Outcome::Abnormal | Outcome::Unreachable => backoff(self.base),
            Outcome::Refused { status, .. } if terminal_status(status) => Decision::Stop,
            Outcome::Refused {
                retry_after: Some(after),
                ..
            } => Decision::Retry {
                delay: advised_delay(after, self.cap, self.hint_jitter, unit),
                wait: Wait::RetryAfter(after),
            },
            Outcome::Refused { .. } => backoff(self.base),
            Outcome::Unusable => Decision::Stop,
        }
    }

    /// Whether `decision` counts as a failed attempt: backoff and `Retry-After`
    /// waits do, a hinted close does not (the server asked for it).
    #[must_use]
    pub fn counts_as_failure(decision: &Decision) -> bool {
        matches!(
            decision,
            Decision::Retry {
                wait: Wait::Backoff { .. } | Wait::RetryAfter(_),
                ..
            }
        )
    }
}

/// 1001 Going Away or 1012 Service Restart: the codes a draining server
/// closes its sessions with. Without a hint they back off from
/// [`RetryPolicy::going_away_base`].
#[must_use]
pub fn is_going_away(code: u16) -> bool {
    code == code::GOING_AWAY || code == code::SERVICE_RESTART
}

/// The codes whose retry hint the client waits for: 1001, 1012, and 1013 Try
/// Again Later, which a draining server sends to an upgrade it accepted
/// during Closing (`WSDRAIN_CLOSING_UPGRADES=close-1013`). A hint on any
/// other code is ignored.
#[must_use]
pub fn honours_hint(code: u16) -> bool {
    is_going_away(code) || code == code::TRY_AGAIN_LATER
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    fn closed(code: u16, hint: Option<u64>) -> Outcome {
        Outcome::Closed {
            code,
            hint: hint.map(CloseHint::from_millis),
        }
    }

    #[test]
    fn ceiling_grows_then_caps() {
        let (base, cap) = (MS(250), Duration::from_secs(30));
        let ceilings: Vec<_> = (0..10).map(|n| backoff_ceiling(base, cap, n)).collect();
        assert_eq!(&ceilings[..4], &[MS(250), MS(500), MS(1000), MS(2000)]);
        assert!(ceilings.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(ceilings[7], cap); // 250 · 128 = 32 s > 30 s
        for n in [31, 32, 63, 64, u32::MAX] {
            assert_eq!(backoff_ceiling(base, cap, n), cap, "{n}");
        }
        assert_eq!(
            backoff_ceiling(Duration::MAX, Duration::MAX, 5),
            Duration::MAX
        );
        assert_eq!(backoff_ceiling(Duration::ZERO, cap, 5), Duration::ZERO);
    }

    #[test]
    fn full_jitter_stays_in_zero_to_ceiling() {
        let (base, cap) = (MS(250), Duration::from_secs(30));
        for attempt in 0..40 {
            let ceiling = backoff_ceiling(base, cap, attempt);
            for i in 0..=100 {
                let unit = f64::from(i) / 100.0;
                let d = full_jitter(base, cap, attempt, unit);
                assert!(d < ceiling || ceiling.is_zero(), "{attempt} {unit}: {d:?}");
                assert!(d <= cap);
            }
            assert_eq!(full_jitter(base, cap, attempt, 0.0), Duration::ZERO);
        }
        assert_eq!(full_jitter(base, cap, 2, 0.5), MS(500));
        // Out-of-range randomness is clamped, never panics.
        for unit in [-1.0, 2.0, f64::NAN, f64::INFINITY] {
            assert!(full_jitter(base, cap, 3, unit) < MS(2000));
        }
    }

    #[test]
    fn full_jitter_with_real_randomness_grows() {
        let (base, cap) = (MS(250), Duration::from_secs(30));
        let mean = |attempt| {
            let sum: Duration = (0..2000)
                .map(|_| full_jitter(base, cap, attempt, fastrand::f64()))
                .sum();
            sum / 2000
        };
        let (m0, m3, m10) = (mean(0), mean(3), mean(10));
        assert!(m0 < m3 && m3 < m10, "{m0:?} {m3:?} {m10:?}");
        assert!(m10 <= cap);
    }

    #[test]
    fn hint_is_honoured_with_jitter() {
        let p = policy();
        for (unit, want) in [(0.0, MS(1500)), (0.5, MS(1525))] {
            assert_eq!(
                p.decide(&closed(1001, Some(1500)), 0, unit),
                Decision::Retry {
                    delay: want,
                    wait: Wait::Hint(CloseHint::from_millis(1500)),
                }
            );
        }
        // h/50 beats the least jitter for long hints.
        let Decision::Retry { delay, .. } = p.decide(&closed(1012, Some(10_000)), 7, 0.5) else {
            panic!()
        };
        assert_eq!(delay, MS(10_100));
        // A hint is clamped to the cap.
        let Decision::Retry { delay, .. } = p.decide(&closed(1001, Some(u64::MAX)), 0, 0.999)
        else {
            panic!()
        };
        assert!(
            delay >= p.cap() && delay < p.cap() + p.cap() / 50,
            "{delay:?}"
        );
        // A hint of 0 still gets jitter below hint_jitter.
        let Decision::Retry { delay, .. } = p.decide(&closed(1001, Some(0)), 0, 0.999) else {
            panic!()
        };
        assert!(delay < p.hint_jitter());
    }

    #[test]
    fn going_away_without_hint_backs_off_from_five_seconds() {
        let p = policy();
        assert_eq!(
            p.decide(&closed(1001, None), 0, 0.5),
            Decision::Retry {
                delay: MS(2500),
                wait: Wait::Backoff { attempt: 0 }
            }
        );
        assert_eq!(
            p.decide(&closed(1012, None), 1, 0.5),
            Decision::Retry {
                delay: MS(5000),
                wait: Wait::Backoff { attempt: 1 }
            }
        );
    }

    #[test]
    fn try_again_later_with_a_hint_is_honoured_like_going_away() {
        let p = policy();
        for attempt in [0, 5] {
            assert_eq!(
                p.decide(&closed(1013, Some(3000)), attempt, 0.5),
                Decision::Retry {
                    delay: MS(3030),
                    wait: Wait::Hint(CloseHint::from_millis(3000)),
                }
            );
        }
        assert!(!RetryPolicy::counts_as_failure(&p.decide(
            &closed(1013, Some(3000)),
            0,
            0.5
        )));
        // Without a hint: the ordinary backoff, not the going-away one.
        assert_eq!(
            p.decide(&closed(1013, None), 0, 0.5),
            Decision::Retry {
                delay: MS(125),
                wait: Wait::Backoff { attempt: 0 }
            }
        );
    }

    #[test]
    fn hint_on_other_codes_is_ignored() {
        let p = policy();
        for code in [1011, 1014, 3000] {
            assert_eq!(
                p.decide(&closed(code, Some(5000)), 0, 0.5),
                Decision::Retry {
                    delay: MS(125),
                    wait: Wait::Backoff { attempt: 0 }
                },
                "{code}"
            );
        }
        assert_eq!(p.decide(&closed(4000, Some(5000)), 0, 0.5), Decision::Stop);
    }

    #[test]
    fn the_builder_keeps_the_defaults_and_refuses_zero_waits() {
        let d = RetryPolicy::default();
        let built = RetryPolicy::builder().build().unwrap();
        assert_eq!(
            (built.base(), built.cap(), built.going_away_base()),
            (d.base(), d.cap(), d.going_away_base())
        );
        assert_eq!(
            (built.stable_after(), built.hint_jitter()),
            (MS(30_000), MS(50))
        );
        assert!(built.is_terminal(1000) && !built.is_terminal(1001));
        let changed = d.to_builder().cap(MS(900)).build().unwrap();
        assert_eq!((changed.base(), changed.cap()), (MS(250), MS(900)));
        for (builder, setting) in [
            (RetryPolicy::builder().base(Duration::ZERO), "base"),
            (RetryPolicy::builder().cap(Duration::ZERO), "cap"),
            (
                RetryPolicy::builder().going_away_base(Duration::ZERO),
                "going_away_base",
            ),
        ] {
            let err = builder.build().unwrap_err();
            assert_eq!(err.setting(), setting);
            assert!(err.to_string().contains(&format!("`{setting}`")), "{err}");
        }
        // Zero is fine where it means something.
        RetryPolicy::builder()
            .stable_after(Duration::ZERO)
            .hint_jitter(Duration::ZERO)
            .build()
            .unwrap();
    }

    #[test]
    fn retryable_endings_back_off() {
        let p = policy();
        for outcome in [
            Outcome::Abnormal,
            Outcome::Unreachable,
            closed(1006, None),
            closed(1011, None),
            closed(1013, None),
            closed(1005, None),
            closed(3000, None),
            Outcome::Refused {
                status: 503,
                retry_after: None,
            },
            Outcome::Refused {
                status: 502,
                retry_after: None,
            },
            Outcome::Refused {
                status: 429,
                retry_after: None,
            },
        ] {
            assert_eq!(
                p.decide(&outcome, 2, 0.5),
                Decision::Retry {
                    delay: MS(500),
                    wait: Wait::Backoff { attempt: 2 }
                },
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured() {
        let p = policy();
        for status in [503, 429, 500] {
            assert_eq!(
                p.decide(
                    &Outcome::Refused {
                        status,
                        retry_after: Some(Duration::from_secs(2))
                    },
                    4,
                    0.0
                ),
                Decision::Retry {
                    delay: Duration::from_secs(2),
                    wait: Wait::RetryAfter(Duration::from_secs(2))
                },
                "{status}"
            );
        }
        let Decision::Retry { delay, .. } = p.decide(
            &Outcome::Refused {
                status: 503,
                retry_after: Some(Duration::from_secs(3600)),
            },
            0,
            0.0,
        ) else {
            panic!()
        };
        assert_eq!(delay, p.cap());
    }

    #[test]
    fn terminal_endings_stop() {
        let p = policy();
        for outcome in [
            closed(1000, None),
            closed(1008, None),
            closed(4000, None),
            closed(4999, Some(100)),
            Outcome::Refused {
                status: 401,
                retry_after: None,
            },
            Outcome::Refused {
                status: 403,
                retry_after: Some(MS(1000)),
            },
            Outcome::Refused {
                status: 404,
                retry_after: None,
            },
            Outcome::Unusable,
        ] {
            assert_eq!(p.decide(&outcome, 0, 0.5), Decision::Stop, "{outcome:?}");
        }
    }

    #[test]
    fn terminal_codes_are_configurable() {
        let p = RetryPolicy::builder()
            .terminal_codes(|code| code == 4001)
            .build()
            .unwrap();
        assert_eq!(p.decide(&closed(4001, None), 0, 0.5), Decision::Stop);
        for code in [1000, 1008, 4000] {
            assert!(matches!(
                p.decide(&closed(code, None), 0, 0.5),
                Decision::Retry { .. }
            ));
        }
    }

    #[test]
    fn failures_are_counted_but_hints_are_not() {
        let p = policy();
        assert!(!RetryPolicy::counts_as_failure(&p.decide(
            &closed(1001, Some(5)),
            0,
            0.5
        )));
        assert!(RetryPolicy::counts_as_failure(&p.decide(
            &closed(1001, None),
            0,
            0.5
        )));
        assert!(RetryPolicy::counts_as_failure(&p.decide(
            &Outcome::Abnormal,
            0,
            0.5
        )));
        assert!(RetryPolicy::counts_as_failure(&p.decide(
            &Outcome::Refused {
                status: 503,
                retry_after: Some(MS(1000))
            },
            0,
            0.5
        )));
        assert!(!RetryPolicy::counts_as_failure(&Decision::Stop));
    }

    #[test]
    fn statuses() {
        for s in [400, 401, 403, 404, 410] {
            assert!(terminal_status(s), "{s}");
        }
        for s in [408, 425, 429, 500, 502, 503, 504, 200, 301] {
            assert!(!terminal_status(s), "{s}");
        }
    }
}
