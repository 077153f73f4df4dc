//! Validation of the close codes a server may put in a Close frame.

use std::error::Error;
use std::fmt;

/// Why a close code may not be sent by a server draining sessions.
///
/// Returned by [`check_close_code`]; its [`Display`](fmt::Display) names the
/// code and the reason, e.g.
/// `close code 1006 may not be sent: reserved for local use (RFC 6455 §7.4.1)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseCodeError {
    code: u16,
}

impl CloseCodeError {
    /// The refused close code.
    #[must_use]
    pub fn code(&self) -> u16 {
        self.code
    }

    fn reason(&self) -> &'static str {
        match self.code {
            0..=999 => "codes below 1000 are not used (RFC 6455 §7.4.2)",
            1004 => "reserved, its meaning is not defined (RFC 6455 §7.4.1)",
            1005 | 1006 | 1015 => "reserved for local use (RFC 6455 §7.4.1)",
            1016..=2999 => {
                "reserved for the WebSocket protocol and its extensions (RFC 6455 §7.4.2)"
            }
            5000.. => "not a close code: the range ends at 4999 (RFC 6455 §7.4.2)",
            // check_close_code never builds an error for the other codes.
            _ => "not allowed",
        }
    }
}

impl fmt::Display for CloseCodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "close code {} may not be sent: {}",
            self.code,
            self.reason()
        )
    }
}

impl Error for CloseCodeError {}

/// Checks that a server may send `code` in a Close frame.
///
/// Ok for 1000–1003, 1007–1014 and 3000–4999 (registered and application
/// codes). Refuses codes below 1000, 1004, 1005, 1006, 1015, 1016–2999 and
/// 5000 and above, with the reason in the error's message.
///
/// ```
/// use wsdrain_protocol::{check_close_code, code};
///
/// assert!(check_close_code(code::GOING_AWAY).is_ok());
/// assert!(check_close_code(code::SERVICE_RESTART).is_ok());
/// let err = check_close_code(1006).unwrap_err();
/// assert_eq!(err.code(), 1006);
/// assert_eq!(
///     err.to_string(),
///     "close code 1006 may not be sent: reserved for local use (RFC 6455 §7.4.1)"
/// );
/// ```
pub fn check_close_code(code: u16) -> Result<(), CloseCodeError> {
    match code {
        1000..=1003 | 1007..=1014 | 3000..=4999 => Ok(()),
        _ => Err(CloseCodeError { code }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::code;

    #[test]
    fn drain_codes_are_allowed() {
        for c in [code::NORMAL, code::GOING_AWAY, code::SERVICE_RESTART] {
            assert_eq!(check_close_code(c), Ok(()), "{c}");
        }
    }

    #[test]
    fn every_code_is_classified() {
        for c in 0..=u16::MAX {
            let allowed = matches!(c, 1000..=1003 | 1007..=1014 | 3000..=4999);
            match check_close_code(c) {
                Ok(()) => assert!(allowed, "{c} should be refused"),
                Err(e) => {
                    assert!(!allowed, "{c} should be allowed");
                    assert_eq!(e.code(), c);
                    let msg = e.to_string();
                    assert!(msg.starts_with(&format!("close code {c} may not be sent: ")));
                    assert!(msg.contains("RFC 6455"), "{msg}");
                }
            }
        }
    }

    #[test]
    fn never_sent_codes_are_refused() {
        for c in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
            assert!(check_close_code(c).is_err(), "{c}");
        }
        for c in [3000, 4000, 4999] {
            assert!(check_close_code(c).is_ok(), "{c}");
        }
    }

    #[test]
    fn messages() {
        let msg = |c| check_close_code(c).unwrap_err().to_string();
        assert_eq!(
            msg(1006),
            "close code 1006 may not be sent: reserved for local use (RFC 6455 §7.4.1)"
        );
        assert!(msg(1005).contains("reserved for local use"));
        assert!(msg(1015).contains("reserved for local use"));
        assert!(msg(999).contains("below 1000"));
        assert!(msg(1004).contains("reserved"));
        assert!(msg(2000).contains("extensions"));
        assert!(msg(5000).contains("4999"));
    }

    #[test]
    fn is_an_error() {
        let e: Box<dyn Error> = Box::new(check_close_code(1005).unwrap_err());
        assert!(e.to_string().contains("1005"));
    }
}
