//! The `WSDRAIN_*` settings and how they are read (12-factor configuration).

use std::{fmt, time::Duration};

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

/// Enables the admin endpoint of `wsdrain-axum` (`WSDRAIN_ADMIN_TOKEN`).
pub const ENV_ADMIN_TOKEN: &str = "WSDRAIN_ADMIN_TOKEN";
/// Where the admin endpoint listens (`WSDRAIN_ADMIN_LISTEN`, default `127.0.0.1:9901`).
pub const ENV_ADMIN_LISTEN: &str = "WSDRAIN_ADMIN_LISTEN";
/// Allows a non-loopback admin address (`WSDRAIN_ADMIN_PUBLIC=1`, a boolean).
pub const ENV_ADMIN_PUBLIC: &str = "WSDRAIN_ADMIN_PUBLIC";

/// The admin endpoint's settings, read by `wsdrain-axum`'s `AdminConfig`.
pub const ENV_ADMIN_SETTINGS: [&str; 3] = [ENV_ADMIN_TOKEN, ENV_ADMIN_LISTEN, ENV_ADMIN_PUBLIC];

/// How a boolean setting may be written (any letter case): [`parse_bool`].
pub const BOOL_SPELLINGS: &str = "1, true, yes, on or 0, false, no, off";

/// Reads a boolean setting: `1`, `true`, `yes`, `on` or `0`, `false`, `no`,
/// `off`, in any letter case, with spaces around allowed; `None` for
/// anything else (an empty value included).
///
/// # Example
///
/// ```
/// use wsdrain_core::policy::parse_bool;
///
/// assert_eq!(parse_bool("Yes"), Some(true));
/// assert_eq!(parse_bool(" off "), Some(false));
/// assert_eq!(parse_bool("maybe"), None);
/// ```
pub fn parse_bool(text: &str) -> Option<bool> {
    const SPELLINGS: [(&str, bool); 8] = [
        ("1", true),
        ("true", true),
        ("yes", true),
        ("on", true),
        ("0", false),
        ("false", false),
        ("no", false),
        ("off", false),
    ];
    let text = text.trim();
    SPELLINGS
        .iter()
        .find(|(word, _)| word.eq_ignore_ascii_case(text))
        .map(|(_, value)| *value)
}

/// Set by Kubernetes in every pod; its absence means "a developer's machine".
pub(super) const KUBERNETES_SERVICE_HOST: &str = "KUBERNETES_SERVICE_HOST";

impl DrainPolicy {
    /// Reads `WSDRAIN_*` variables from the process environment on top of the
    /// defaults (12-factor configuration).
    ///
    /// Durations are written as in Kubernetes and Go: `5s`, `1500ms`, `0.5s`,
    /// `1m30s`, `0` (see [`parse_duration`] for every form). A variable that
    /// starts with `WSDRAIN_` but is no setting (`WSDRAIN_DRIAN_DELAY`) is
    /// logged as a warning naming the nearest setting, and otherwise ignored.
    ///
    /// # Errors
    ///
    /// A value that does not parse (an empty one included), or a policy that
    /// does not validate (see [`DrainPolicyBuilder::build`]); the error names
    /// the variable and value, and lists every refused setting at once.
    pub fn from_env() -> Result<Self, PolicyError> {
        let names = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
        for unknown in unknown_settings(names) {
            tracing::warn!(target: "wsdrain", "{unknown}");
        }
        Self::builder()
            .env(|name| std::env::var(name).ok())?
            .build()
    }
}

impl DrainPolicyBuilder {
    /// Applies `WSDRAIN_*` settings read through `lookup` (for example
    /// `|name| std::env::var(name).ok()`); unset variables keep the builder's
    /// value. `KUBERNETES_SERVICE_HOST` is read the same way.
    ///
    /// # Errors
    ///
    /// A value that does not parse (an empty one included), naming the
    /// variable and the value; [`PolicyError::Several`] when more than one
    /// does not.
    pub fn env<F>(mut self, lookup: F) -> Result<Self, PolicyError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let mut read = Reader {
            lookup: &lookup,
            refused: Vec::new(),
        };
        self.drain_delay = read.duration(ENV_DRAIN_DELAY).or(self.drain_delay);
        self.close_window = read.duration(ENV_CLOSE_WINDOW).or(self.close_window);
        self.close_timeout = read.duration(ENV_CLOSE_TIMEOUT).or(self.close_timeout);
        self.notice_lead = read.duration(ENV_NOTICE_LEAD).or(self.notice_lead);
        self.grace_period = read.duration(ENV_GRACE_PERIOD).or(self.grace_period);
        self.retry_after_min = read.duration(ENV_RETRY_AFTER_MIN).or(self.retry_after_min);
        self.retry_after_max = read.duration(ENV_RETRY_AFTER_MAX).or(self.retry_after_max);
        self.close_code = read.number(ENV_CLOSE_CODE).or(self.close_code);
        self.max_sessions = read.number(ENV_MAX_SESSIONS).or(self.max_sessions);
        self.closing_upgrades = read
            .choice(ENV_CLOSING_UPGRADES, "refuse, close-1013", |v| match v {
                "refuse" => Some(ClosingUpgrades::Refuse),
                "close-1013" => Some(ClosingUpgrades::TryAgainLater),
                _ => None,
            })
            .or(self.closing_upgrades);
        if self.kubernetes.is_none() {
            self.kubernetes = Some(lookup(KUBERNETES_SERVICE_HOST).is_some());
        }
        PolicyError::check(read.refused)?;
        Ok(self)
    }
}

/// Reads settings, keeping every refusal so that all are reported at once.
struct Reader<'a, F> {
    lookup: &'a F,
    refused: Vec<PolicyError>,
}

impl<F: Fn(&str) -> Option<String>> Reader<'_, F> {
    /// `name`'s value through `parse`; `None` when unset, or when refused
    /// (kept as `refusal(value)`).
    fn read<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
        refusal: impl FnOnce(String) -> PolicyError,
    ) -> Option<T> {
        let value = (self.lookup)(name)?;
        let parsed = parse(value.trim());
        if parsed.is_none() {
            self.refused.push(refusal(value));
        }
        parsed
    }

    fn duration(&mut self, setting: &'static str) -> Option<Duration> {
        self.read(setting, parse_duration, |value| {
            PolicyError::InvalidDuration { setting, value }
        })
    }

    fn number<T: std::str::FromStr>(&mut self, setting: &'static str) -> Option<T> {
        self.read(
            setting,
            |v| v.parse().ok(),
            |value| PolicyError::InvalidNumber { setting, value },
        )
    }

    /// One of a few words, in any letter case; `allowed` lists them.
    fn choice<T>(
        &mut self,
        setting: &'static str,
        allowed: &'static str,
        pick: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        self.read(
            setting,
            |v| pick(&v.to_ascii_lowercase()),
            |value| PolicyError::InvalidChoice {
                setting,
                value,
                allowed,
            },
        )
    }
}

/// A `WSDRAIN_*` variable that is no setting, and the nearest setting when
/// one is close enough to be a misspelling; its `Display` is the warning.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct UnknownSetting {
    name: String,
    nearest: Option<&'static str>,
}

impl fmt::Display for UnknownSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.nearest {
            Some(nearest) => write!(
                f,
                "{} is not a wsdrain setting (did you mean {nearest}?); ignored",
                self.name
            ),
            None => write!(f, "{} is not a wsdrain setting; ignored", self.name),
        }
    }
}

/// The `WSDRAIN_*` names among `names` (in any letter case) that are no
/// setting, sorted.
pub(crate) fn unknown_settings(names: impl IntoIterator<Item = String>) -> Vec<UnknownSetting> {
    const PREFIX: &str = "WSDRAIN_";
    let known = || ENV_SETTINGS.iter().chain(&ENV_ADMIN_SETTINGS).copied();
    let mut unknown: Vec<_> = names
        .into_iter()
        // In any letter case: `wsdrain_drain_delay` is not read either.
        .filter(|name| {
            name.get(..PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
                && !known().any(|k| k == name)
        })
        .map(|name| {
            let tail = &name[PREFIX.len()..];
            let nearest = known()
                .map(|k| (edit_distance(tail, &k[PREFIX.len()..]), k))
                .min()
                // A third of the name may differ: `DRIAN_DELAY`, not `FOO`.
                .filter(|(distance, _)| *distance <= tail.len().max(3) / 3)
                .map(|(_, k)| k);
            UnknownSetting { name, nearest }
        })
        .collect();
    unknown.sort();
    unknown
}

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`,
/// case-insensitive (optimal string alignment distance).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_uppercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_uppercase()).collect();
    // Rows i-2, i-1 and i of the distance table.
    let mut before: Vec<usize> = Vec::new();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (previous[j] + 1)
                .min(row[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut previous, row);
    }
    previous[b.len()]
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

    #[test]
    fn an_empty_value_is_refused_like_any_bad_one() {
        let err = from_vars(&[(ENV_CLOSE_WINDOW, "")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"WSDRAIN_CLOSE_WINDOW: invalid duration "" (write e.g. 5s, 1500ms, 1m30s)"#
        );
        let err = from_vars(&[(ENV_MAX_SESSIONS, " ")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"WSDRAIN_MAX_SESSIONS: invalid number " ""#
        );
        let err = from_vars(&[(ENV_CLOSING_UPGRADES, "")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"WSDRAIN_CLOSING_UPGRADES: "" is not one of: refuse, close-1013"#
        );
    }

    #[test]
    fn every_bad_setting_is_reported_at_once() {
        let err = from_vars(&[
            (ENV_DRAIN_DELAY, "soon"),
            (ENV_CLOSE_WINDOW, ""),
            (ENV_CLOSE_CODE, "1001x"),
            (ENV_GRACE_PERIOD, "30s"),
        ])
        .unwrap_err();
        assert_eq!(err.errors().len(), 3, "{err:?}");
        assert_eq!(
            err.to_string(),
            "3 settings refused:\n  \
             WSDRAIN_DRAIN_DELAY: invalid duration \"soon\" (write e.g. 5s, 1500ms, 1m30s)\n  \
             WSDRAIN_CLOSE_WINDOW: invalid duration \"\" (write e.g. 5s, 1500ms, 1m30s)\n  \
             WSDRAIN_CLOSE_CODE: invalid number \"1001x\""
        );
        // Values that read but do not fit together: every check at once too.
        let err = from_vars(&[
            (ENV_CLOSE_CODE, "1006"),
            (ENV_RETRY_AFTER_MIN, "6s"),
            (ENV_GRACE_PERIOD, "10s"),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "3 settings refused:\n  \
             WSDRAIN_CLOSE_CODE (close_code) = 1006: close code 1006 may not be sent: reserved for local use (RFC 6455 §7.4.1)\n  \
             WSDRAIN_RETRY_AFTER_MIN (6s) is above WSDRAIN_RETRY_AFTER_MAX (5s)\n  \
             timings do not fit the grace period: the slowest session needs \
             WSDRAIN_DRAIN_DELAY (0s) + WSDRAIN_CLOSE_WINDOW (12s) + WSDRAIN_NOTICE_LEAD (0s) + \
             2 × WSDRAIN_CLOSE_TIMEOUT (5s) = 22s (its turn, its notice, its close handshake, \
             then its handler's grace), but the forced end comes at WSDRAIN_GRACE_PERIOD (10s) \
             minus a 2s margin = 8s"
        );
        let one = from_vars(&[(ENV_DRAIN_DELAY, "soon")]).unwrap_err();
        assert_eq!(
            one.errors(),
            std::slice::from_ref(&one),
            "one is not Several"
        );
    }

    #[test]
    fn booleans_take_the_usual_spellings_in_any_case() {
        for yes in ["1", "true", "yes", "on", "TRUE", "Yes", " On "] {
            assert_eq!(parse_bool(yes), Some(true), "{yes:?}");
        }
        for no in ["0", "false", "no", "off", "FALSE", "No", "oFF "] {
            assert_eq!(parse_bool(no), Some(false), "{no:?}");
        }
        for neither in ["", " ", "2", "y", "n", "enable", "truee", "01", "-1"] {
            assert_eq!(parse_bool(neither), None, "{neither:?}");
        }
    }

    #[test]
    fn unknown_settings_are_named_with_the_nearest_one() {
        let found = unknown_settings(
            [
                "WSDRAIN_DRIAN_DELAY",
                "WSDRAIN_CLOSE_WINDOWS",
                "wsdrain_close_timeout",
                "WSDRAIN_ADMIN_PUBLIK",
                "WSDRAIN_FOO",
                "WSDRAIN_DRAIN_DELAY",
                "WSDRAIN_ADMIN_TOKEN",
                "PATH",
                "WSDRAIN",
            ]
            .map(String::from),
        );
        let messages: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "WSDRAIN_ADMIN_PUBLIK is not a wsdrain setting (did you mean WSDRAIN_ADMIN_PUBLIC?); ignored",
                "WSDRAIN_CLOSE_WINDOWS is not a wsdrain setting (did you mean WSDRAIN_CLOSE_WINDOW?); ignored",
                "WSDRAIN_DRIAN_DELAY is not a wsdrain setting (did you mean WSDRAIN_DRAIN_DELAY?); ignored",
                "WSDRAIN_FOO is not a wsdrain setting; ignored",
                "wsdrain_close_timeout is not a wsdrain setting (did you mean WSDRAIN_CLOSE_TIMEOUT?); ignored",
            ]
        );
    }

    #[test]
    fn edit_distance_counts_a_swap_as_one() {
        assert_eq!(edit_distance("DRAIN_DELAY", "DRAIN_DELAY"), 0);
        assert_eq!(edit_distance("DRIAN_DELAY", "DRAIN_DELAY"), 1);
        assert_eq!(edit_distance("DRAN_DELAY", "DRAIN_DELAY"), 1);
        assert_eq!(edit_distance("close_code", "CLOSE_CODE"), 0);
        assert_eq!(edit_distance("", "ABC"), 3);
        assert_eq!(edit_distance("KITTEN", "SITTING"), 3);
    }
}
