//! The `WSDRAIN_*` settings and how they are read (12-factor configuration).

use std::time::Duration;

use super::{ClosingUpgrades, DrainPolicy, DrainPolicyBuilder, PolicyError, parse_duration};

/// Environment variable for [`DrainPolicyBuilder::drain_delay`].
pub const ENV_DRAIN_DELAY: &str = "WSDRAIN_DRAIN_DELAY";
/// Environment variable for [`DrainPolicyBuilder::close_window`].
pub const ENV_CLOSE_WINDOW: &str = "WSDRAIN_CLOSE_WINDOW";
/// Environment variable for [`DrainPolicyBuilder::close_timeout`].
pub const ENV_CLOSE_TIMEOUT: &str = "WSDRAIN_CLOSE_TIMEOUT";
/// Environment variable for [`DrainPolicyBuilder::closing_upgrades`]:
/// `refuse` or `close-1013`.
pub const ENV_CLOSING_UPGRADES: &str = "WSDRAIN_CLOSING_UPGRADES";
/// Environment variable for [`DrainPolicyBuilder::notice_lead`].
pub const ENV_NOTICE_LEAD: &str = "WSDRAIN_NOTICE_LEAD";
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
pub const ENV_DURATIONS: [&str; 7] = [
    ENV_DRAIN_DELAY,
    ENV_CLOSE_WINDOW,
    ENV_CLOSE_TIMEOUT,
    ENV_NOTICE_LEAD,
    ENV_GRACE_PERIOD,
    ENV_RETRY_AFTER_MIN,
    ENV_RETRY_AFTER_MAX,
];

/// Every setting [`DrainPolicyBuilder::env`] reads.
pub const ENV_SETTINGS: [&str; 10] = [
    ENV_DRAIN_DELAY,
    ENV_CLOSE_WINDOW,
    ENV_CLOSE_TIMEOUT,
    ENV_NOTICE_LEAD,
    ENV_GRACE_PERIOD,
    ENV_RETRY_AFTER_MIN,
    ENV_RETRY_AFTER_MAX,
    ENV_CLOSE_CODE,
    ENV_MAX_SESSIONS,
    ENV_CLOSING_UPGRADES,
];

/// Set by Kubernetes in every pod; its absence means "a developer's machine".
pub(super) const KUBERNETES_SERVICE_HOST: &str = "KUBERNETES_SERVICE_HOST";

impl DrainPolicy {
    /// Reads `WSDRAIN_*` variables from the process environment on top of the
    /// defaults (12-factor configuration).
    ///
    /// Durations are written as in Kubernetes and Go: `5s`, `1500ms`, `0.5s`,
    /// `1m30s`, `0` (see [`parse_duration`] for every form).
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
}

impl DrainPolicyBuilder {
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
        fn parsed<T: std::str::FromStr>(
            name: &'static str,
            value: Option<String>,
        ) -> Result<Option<T>, PolicyError> {
            value
                .map(|v| {
                    v.trim().parse().map_err(|_| PolicyError::InvalidNumber {
                        setting: name,
                        value: v.clone(),
                    })
                })
                .transpose()
        }
        self.drain_delay = duration(ENV_DRAIN_DELAY)?.or(self.drain_delay);
        self.close_window = duration(ENV_CLOSE_WINDOW)?.or(self.close_window);
        self.close_timeout = duration(ENV_CLOSE_TIMEOUT)?.or(self.close_timeout);
        self.notice_lead = duration(ENV_NOTICE_LEAD)?.or(self.notice_lead);
        self.grace_period = duration(ENV_GRACE_PERIOD)?.or(self.grace_period);
        self.retry_after_min = duration(ENV_RETRY_AFTER_MIN)?.or(self.retry_after_min);
        self.retry_after_max = duration(ENV_RETRY_AFTER_MAX)?.or(self.retry_after_max);
        self.close_code = parsed(ENV_CLOSE_CODE, get(ENV_CLOSE_CODE))?.or(self.close_code);
        self.max_sessions = parsed(ENV_MAX_SESSIONS, get(ENV_MAX_SESSIONS))?.or(self.max_sessions);
        if let Some(v) = get(ENV_CLOSING_UPGRADES) {
            let choice = match v.trim().to_ascii_lowercase().as_str() {
                "refuse" => ClosingUpgrades::Refuse,
                "close-1013" => ClosingUpgrades::TryAgainLater,
                _ => {
                    return Err(PolicyError::InvalidChoice {
                        setting: ENV_CLOSING_UPGRADES,
                        value: v,
                        allowed: "refuse, close-1013",
                    });
                }
            };
            self.closing_upgrades = Some(choice);
        }
        if self.kubernetes.is_none() {
            self.kubernetes = Some(lookup(KUBERNETES_SERVICE_HOST).is_some());
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::from_vars;
    use super::*;

    #[test]
    fn defaults_in_kubernetes_and_outside() {
        let k8s = from_vars(&[("KUBERNETES_SERVICE_HOST", "10.0.0.1")]).unwrap();
        assert_eq!(k8s.drain_delay(), Duration::from_secs(5));
        assert_eq!(k8s.close_window(), Duration::from_secs(12));
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
        for name in [ENV_CLOSE_CODE, ENV_MAX_SESSIONS, ENV_CLOSING_UPGRADES] {
            let err = from_vars(&[(name, "going")]).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
        let msg = from_vars(&[(ENV_CLOSING_UPGRADES, "503")])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("refuse, close-1013"),
            "names the choices: {msg}"
        );
        let err = from_vars(&[(ENV_MAX_SESSIONS, "0")]).unwrap_err();
        assert!(err.to_string().contains(ENV_MAX_SESSIONS), "{err}");
    }

    #[test]
    fn closing_upgrades_reads_its_two_words() {
        assert_eq!(
            from_vars(&[]).unwrap().closing_upgrades(),
            ClosingUpgrades::Refuse
        );
        for (text, want) in [
            ("refuse", ClosingUpgrades::Refuse),
            (" Close-1013 ", ClosingUpgrades::TryAgainLater),
        ] {
            let p = from_vars(&[(ENV_CLOSING_UPGRADES, text)]).unwrap();
            assert_eq!(p.closing_upgrades(), want, "{text}");
            assert_eq!(want.as_str(), text.trim().to_ascii_lowercase());
        }
    }
}
