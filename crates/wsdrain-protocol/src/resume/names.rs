//! Stream names and epochs: what characters they may hold.

use std::fmt;

use super::{MAX_EPOCH_LEN, MAX_STREAM_LEN};

/// Why a stream name or an epoch is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// Empty.
    Empty {
        /// `"stream name"` or `"epoch"`.
        what: &'static str,
    },
    /// Longer than the limit.
    TooLong {
        /// `"stream name"` or `"epoch"`.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character outside the allowed set.
    BadChar {
        /// `"stream name"` or `"epoch"`.
        what: &'static str,
        /// The first such character.
        ch: char,
        /// The allowed set, as a regex class.
        allowed: &'static str,
    },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty { what } => write!(f, "empty {what}"),
            NameError::TooLong { what, len, max } => {
                write!(f, "{what} of {len} bytes (at most {max})")
            }
            NameError::BadChar { what, ch, allowed } => {
                write!(f, "{what} with the character {ch:?} (allowed: {allowed})")
            }
        }
    }
}

impl std::error::Error for NameError {}

const STREAM_CHARS: &str = "[A-Za-z0-9_.:/-]";
const EPOCH_CHARS: &str = "[A-Za-z0-9]";

fn is_stream_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'/' | b'-')
}

fn check(
    s: &str,
    what: &'static str,
    max: usize,
    allowed: &'static str,
    ok: fn(u8) -> bool,
) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty { what });
    }
    if let Some(ch) = s.chars().find(|c| !c.is_ascii() || !ok(*c as u8)) {
        return Err(NameError::BadChar { what, ch, allowed });
    }
    if s.len() > max {
        return Err(NameError::TooLong {
            what,
            len: s.len(),
            max,
        });
    }
    Ok(())
}

/// Checks a stream name: 1 to 128 bytes of `[A-Za-z0-9_.:/-]` (no `@`, no
/// `,`, nothing a URL query must escape).
///
/// ```
/// use wsdrain_protocol::resume::check_stream;
/// assert!(check_stream("user/alice").is_ok());
/// assert!(check_stream("prices:EUR-USD").is_ok());
/// assert!(check_stream("a b").is_err());
/// assert!(check_stream("").is_err());
/// ```
///
/// # Errors
///
/// [`NameError`] naming the first problem.
pub fn check_stream(name: &str) -> Result<(), NameError> {
    check(
        name,
        "stream name",
        MAX_STREAM_LEN,
        STREAM_CHARS,
        is_stream_char,
    )
}

/// Checks an epoch: 1 to 32 bytes of `[A-Za-z0-9]`.
///
/// # Errors
///
/// [`NameError`] naming the first problem.
pub fn check_epoch(epoch: &str) -> Result<(), NameError> {
    check(epoch, "epoch", MAX_EPOCH_LEN, EPOCH_CHARS, |b: u8| {
        b.is_ascii_alphanumeric()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stream_names() {
        for ok in ["a", "user/alice", "a.b:c_d-e/f", &"x".repeat(128)] {
            assert_eq!(check_stream(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            check_stream(""),
            Err(NameError::Empty {
                what: "stream name"
            })
        );
        assert!(matches!(
            check_stream(&"x".repeat(129)),
            Err(NameError::TooLong { len: 129, .. })
        ));
        for bad in ["a@b", "a,b", "a b", "é", "a%2F", "a?b", "a&b", "a+b"] {
            assert!(
                matches!(check_stream(bad), Err(NameError::BadChar { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn epochs() {
        assert_eq!(check_epoch("3fKq9Zt2"), Ok(()));
        assert!(check_epoch(&"a".repeat(32)).is_ok());
        assert!(check_epoch(&"a".repeat(33)).is_err());
        for bad in ["", "a.b", "a-b", "a/b", "é"] {
            assert!(check_epoch(bad).is_err(), "{bad}");
        }
        let msg = check_epoch("a.b").unwrap_err().to_string();
        assert_eq!(msg, "epoch with the character '.' (allowed: [A-Za-z0-9])");
    }
}
