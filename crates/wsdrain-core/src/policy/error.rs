//! [`PolicyError`]: why a policy was refused, naming the settings.

use std::{error::Error, fmt, time::Duration};

use super::env::{
    ENV_CLOSE_CODE, ENV_CLOSE_TIMEOUT, ENV_CLOSE_WINDOW, ENV_DRAIN_DELAY, ENV_GRACE_PERIOD,
    ENV_MAX_SESSIONS, ENV_NOTICE_LEAD, ENV_RETRY_AFTER_MAX, ENV_RETRY_AFTER_MIN,
};
use super::{duration::Readable, slowest_close};

/// Why a policy was refused. Each message names the setting and its value;
/// when several settings are refused at once, [`PolicyError::Several`] lists
/// them all ([`errors`](PolicyError::errors) gives each).
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
    /// A setting that takes one of a few words got another.
    InvalidChoice {
        /// The variable, e.g. `WSDRAIN_CLOSING_UPGRADES`.
        setting: &'static str,
        /// The text found.
        value: String,
        /// The words it takes.
        allowed: &'static str,
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
    /// The slowest session's path, `drain_delay + close_window + 2 ×
    /// close_timeout`, does not fit before the forced end.
    Budget {
        /// `WSDRAIN_DRAIN_DELAY`.
        drain_delay: Duration,
        /// `WSDRAIN_CLOSE_WINDOW`.
        close_window: Duration,
        /// `WSDRAIN_CLOSE_TIMEOUT`.
        close_timeout: Duration,
        /// `WSDRAIN_NOTICE_LEAD`.
        notice_lead: Duration,
        /// `WSDRAIN_GRACE_PERIOD`.
        grace_period: Duration,
        /// The margin before the grace period ends.
        deadline_margin: Duration,
    },
    /// More than one setting was refused: each of them, in the order read
    /// (values first; the checks between them only once every value reads).
    Several(Vec<PolicyError>),
}

impl PolicyError {
    /// Each refusal: the one this is, or those [`Several`](Self::Several) holds.
    pub fn errors(&self) -> &[PolicyError] {
        match self {
            PolicyError::Several(all) => all,
            one => std::slice::from_ref(one),
        }
    }

    /// `Ok` for none, the error itself for one, [`Several`](Self::Several) for more.
    pub(crate) fn check(mut refused: Vec<PolicyError>) -> Result<(), PolicyError> {
        match refused.len() {
            0 => Ok(()),
            1 => Err(refused.remove(0)),
            _ => Err(PolicyError::Several(refused)),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::InvalidDuration { setting, value } => write!(
                f,
                "{setting}: invalid duration {value:?} (write e.g. 5s, 1500ms, 1m30s)"
            ),
            PolicyError::InvalidNumber { setting, value } => {
                write!(f, "{setting}: invalid number {value:?}")
            }
            PolicyError::InvalidChoice {
                setting,
                value,
                allowed,
            } => write!(f, "{setting}: {value:?} is not one of: {allowed}"),
            PolicyError::ForbiddenCloseCode { code, why } => {
                write!(f, "{ENV_CLOSE_CODE} (close_code) = {code}: {why}")
            }
            PolicyError::RetryRange { min, max } => write!(
                f,
                "{ENV_RETRY_AFTER_MIN} ({}) is above {ENV_RETRY_AFTER_MAX} ({})",
                Readable(*min),
                Readable(*max)
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
                notice_lead,
                grace_period,
                deadline_margin,
            } => {
                let needed =
                    slowest_close(*drain_delay, *close_window, *notice_lead, *close_timeout)
                        .map_or_else(
                            || "more than can be counted".to_owned(),
                            |d| Readable(d).to_string(),
                        );
                write!(
                    f,
                    "timings do not fit the grace period: the slowest session needs \
                     {ENV_DRAIN_DELAY} ({}) + {ENV_CLOSE_WINDOW} ({}) + \
                     {ENV_NOTICE_LEAD} ({}) + 2 × {ENV_CLOSE_TIMEOUT} ({}) \
                     = {needed} (its turn, its notice, its close handshake, then its handler's \
                     grace), but the forced end comes at \
                     {ENV_GRACE_PERIOD} ({}) minus a {} margin = {}",
                    Readable(*drain_delay),
                    Readable(*close_window),
                    Readable(*notice_lead),
                    Readable(*close_timeout),
                    Readable(*grace_period),
                    Readable(*deadline_margin),
                    Readable(grace_period.saturating_sub(*deadline_margin)),
                )
            }
            PolicyError::Several(all) => {
                write!(f, "{} settings refused:", all.len())?;
                for e in all {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl Error for PolicyError {}
