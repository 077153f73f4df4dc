//! Settings errors of the resume module's builders.

use std::fmt;

/// A setting of [`FeedBuilder`](super::FeedBuilder) or
/// [`MemoryLogBuilder`](super::MemoryLogBuilder) that cannot work, named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    setting: &'static str,
    problem: String,
}

impl ConfigError {
    pub(crate) fn new(setting: &'static str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            setting,
            problem: problem.into(),
        }
    }

    /// The setting's name, e.g. `max_bytes`.
    pub fn setting(&self) -> &'static str {
        self.setting
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// `value` within `min..=max`, or the error naming `setting`.
pub(crate) fn within(
    setting: &'static str,
    value: usize,
    min: usize,
    max: usize,
) -> Result<usize, ConfigError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::new(
            setting,
            format!("{value} is outside {min}..={max}"),
        ))
    }
}
