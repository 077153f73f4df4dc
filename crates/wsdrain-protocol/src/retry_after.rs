//! The HTTP `Retry-After` header, for rejected upgrades.

use std::time::Duration;

/// Parses an HTTP `Retry-After` header value given as delta-seconds
/// (RFC 9110 §10.2.3).
///
/// Surrounding spaces and tabs are ignored. Returns `None` for an HTTP-date, an
/// empty value, anything that is not only ASCII digits (signs, fractions) and a
/// number of seconds that does not fit in a `u64`. Never panics.
///
/// ```
/// use std::time::Duration;
/// use wsdrain_protocol::parse_retry_after_header;
///
/// assert_eq!(parse_retry_after_header("120"), Some(Duration::from_secs(120)));
/// assert_eq!(parse_retry_after_header("Fri, 31 Dec 1999 23:59:59 GMT"), None);
/// ```
#[must_use]
pub fn parse_retry_after_header(value: &str) -> Option<Duration> {
    let value = value.trim_matches([' ', '\t']);
    crate::hint::parse_digits(value.as_bytes()).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_seconds() {
        assert_eq!(parse_retry_after_header("0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after_header("1"), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after_header(" \t30 "),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after_header("007"),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after_header("18446744073709551615"),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn rejects_everything_else() {
        for v in [
            "",
            "   ",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "-1",
            "+1",
            "1.5",
            "1s",
            "1 2",
            "18446744073709551616",
            "99999999999999999999999999",
            "١٢",
            "\u{0}",
        ] {
            assert_eq!(parse_retry_after_header(v), None, "{v:?}");
        }
    }
}
