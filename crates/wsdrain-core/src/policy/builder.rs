//! [`DrainPolicyBuilder`], and the validation every policy passes.

use std::time::Duration;

use wsdrain_protocol::check_close_code;

use super::env::KUBERNETES_SERVICE_HOST;
use super::{ClosingUpgrades, DrainPolicy, PolicyError, defaults, slowest_close};

/// Builds a [`DrainPolicy`]; every setting starts at its [default](defaults).
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct DrainPolicyBuilder {
    pub(super) drain_delay: Option<Duration>,
    pub(super) close_window: Option<Duration>,
    pub(super) close_timeout: Option<Duration>,
    pub(super) notice_lead: Option<Duration>,
    pub(super) grace_period: Option<Duration>,
    pub(super) deadline_margin: Option<Duration>,
    pub(super) retry_after_min: Option<Duration>,
    pub(super) retry_after_max: Option<Duration>,
    pub(super) min_close_rate: Option<u32>,
    pub(super) close_code: Option<u16>,
    pub(super) close_text: Option<String>,
    pub(super) max_sessions: Option<usize>,
    pub(super) closing_upgrades: Option<ClosingUpgrades>,
    pub(super) kubernetes: Option<bool>,
}

impl DrainPolicyBuilder {
    /// Time between the first signal and the first close (default 5 s in
    /// Kubernetes, 0 elsewhere, so a developer's Ctrl-C does not wait).
    pub fn drain_delay(mut self, d: Duration) -> Self {
        self.drain_delay = Some(d);
        self
    }
    /// Span over which session closes are spread (default 12 s).
    pub fn close_window(mut self, d: Duration) -> Self {
        self.close_window = Some(d);
        self
    }
    /// Wait for the peer's Close after ours (default 5 s). Must be above zero.
    pub fn close_timeout(mut self, d: Duration) -> Self {
        self.close_timeout = Some(d);
        self
    }
    /// Lead of the drain notice (default 0: off). When above zero, at each
    /// session's turn a text message `{"type":"wsdrain.reconnect",
    /// "close_in_ms":N}` goes out first and the Close follows this much
    /// later, so aware clients open their next connection before the old one
    /// closes (docs/PROTOCOL.md). Counted in the budget.
    pub fn notice_lead(mut self, d: Duration) -> Self {
        self.notice_lead = Some(d);
        self
    }
    /// What an upgrade that arrives during Closing gets (default
    /// [`ClosingUpgrades::Refuse`]: 503 + `Retry-After`).
    pub fn closing_upgrades(mut self, choice: ClosingUpgrades) -> Self {
        self.closing_upgrades = Some(choice);
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

    /// Validates and builds the policy.
    ///
    /// # Errors
    ///
    /// * [`PolicyError::ForbiddenCloseCode`]: a code a server may not send;
    /// * [`PolicyError::RetryRange`]: the retry minimum above the maximum;
    /// * [`PolicyError::ZeroCloseTimeout`], [`PolicyError::ZeroCloseRate`],
    ///   [`PolicyError::ZeroMaxSessions`];
    /// * [`PolicyError::Budget`]: the slowest session's path,
    ///   `drain_delay + close_window + 2 × close_timeout`, does not fit before
    ///   the forced end (`grace_period − deadline_margin`). The last turn comes
    ///   at `drain_delay + close_window`; its close handshake may take
    ///   `close_timeout`, and its handler then has `close_timeout` more to
    ///   return before it is cut;
    /// * [`PolicyError::Several`] when more than one of these applies.
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
            notice_lead: self.notice_lead.unwrap_or(base.notice_lead),
            grace_period: self.grace_period.unwrap_or(base.grace_period),
            deadline_margin: self.deadline_margin.unwrap_or(base.deadline_margin),
            retry_after_min: self.retry_after_min.unwrap_or(base.retry_after_min),
            retry_after_max: self.retry_after_max.unwrap_or(base.retry_after_max),
            min_close_rate: self.min_close_rate.unwrap_or(base.min_close_rate),
            close_code: self.close_code.unwrap_or(base.close_code),
            reason_prefix: match &self.close_text {
                Some(text) => super::reason_prefix(text),
                None => base.reason_prefix,
            },
            close_text: self.close_text.unwrap_or(base.close_text),
            max_sessions: self.max_sessions,
            closing_upgrades: self.closing_upgrades.unwrap_or_default(),
        };
        policy.validate()?;
        Ok(policy)
    }
}

impl DrainPolicy {
    /// Every check, each refusal kept, so that all are reported at once.
    fn validate(&self) -> Result<(), PolicyError> {
        let mut refused = Vec::new();
        if let Err(e) = check_close_code(self.close_code) {
            refused.push(PolicyError::ForbiddenCloseCode {
                code: self.close_code,
                why: e.to_string(),
            });
        }
        if self.retry_after_min > self.retry_after_max {
            refused.push(PolicyError::RetryRange {
                min: self.retry_after_min,
                max: self.retry_after_max,
            });
        }
        if self.close_timeout.is_zero() {
            refused.push(PolicyError::ZeroCloseTimeout);
        }
        if self.min_close_rate == 0 {
            refused.push(PolicyError::ZeroCloseRate);
        }
        if self.max_sessions == Some(0) {
            refused.push(PolicyError::ZeroMaxSessions);
        }
        let needed = slowest_close(
            self.drain_delay,
            self.close_window,
            self.notice_lead,
            self.close_timeout,
        );
        if self.deadline_margin >= self.grace_period || needed.is_none_or(|n| n > self.deadline()) {
            refused.push(PolicyError::Budget {
                drain_delay: self.drain_delay,
                close_window: self.close_window,
                close_timeout: self.close_timeout,
                notice_lead: self.notice_lead,
                grace_period: self.grace_period,
                deadline_margin: self.deadline_margin,
            });
        }
        PolicyError::check(refused)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::{
        ENV_CLOSE_CODE, ENV_CLOSE_TIMEOUT, ENV_CLOSE_WINDOW, ENV_DRAIN_DELAY, ENV_GRACE_PERIOD,
        ENV_RETRY_AFTER_MAX, ENV_RETRY_AFTER_MIN, from_vars,
    };
    use super::*;

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
        // The defaults: 5 + 12 + 2 × 5 = 27 fits 28; so does 5 + 13 + 2 × 5 = 28;
        // 5 + 14 + 2 × 5 = 29 does not.
        let k8s = ("KUBERNETES_SERVICE_HOST", "x");
        assert!(from_vars(&[k8s]).is_ok());
        assert!(from_vars(&[k8s, (ENV_CLOSE_WINDOW, "13s")]).is_ok());
        let err = from_vars(&[k8s, (ENV_CLOSE_WINDOW, "14s")]).unwrap_err();
        assert!(matches!(err, PolicyError::Budget { .. }));
        let msg = err.to_string();
        for needle in [
            ENV_DRAIN_DELAY,
            ENV_CLOSE_WINDOW,
            "14s",
            "2 × WSDRAIN_CLOSE_TIMEOUT (5s)",
            "= 29s",
            ENV_GRACE_PERIOD,
            "30s",
            "28s",
        ] {
            assert!(msg.contains(needle), "{needle} missing from {msg}");
        }
        // The close timeout counts twice: 5 + 12 + 2 × 5.5 = 28 fits, 2 × 5.6 does not.
        assert!(from_vars(&[k8s, (ENV_CLOSE_TIMEOUT, "5.5s")]).is_ok());
        let err = from_vars(&[k8s, (ENV_CLOSE_TIMEOUT, "5.6s")]).unwrap_err();
        assert!(matches!(err, PolicyError::Budget { .. }), "{err}");
        // Sums beyond `Duration::MAX` are refused, not a panic.
        let huge = format!("{}s", u64::MAX);
        let err = from_vars(&[(ENV_CLOSE_WINDOW, &huge), (ENV_CLOSE_TIMEOUT, &huge)]).unwrap_err();
        assert!(matches!(err, PolicyError::Budget { .. }), "{err}");
        assert!(err.to_string().contains(ENV_CLOSE_WINDOW), "{err}");
        let err = from_vars(&[(ENV_GRACE_PERIOD, "1s")]).unwrap_err();
        assert!(matches!(err, PolicyError::Budget { .. }), "{err}");
    }
}
