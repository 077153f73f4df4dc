//! The retry-after hint carried in a Close reason.

use std::fmt;
use std::time::Duration;

use crate::{DEFAULT_TEXT, MAX_REASON_LEN, RETRY_AFTER_MS};

/// The separator encoders put between segments. Parsers accept any ASCII
/// whitespace around `;`.
const SEP: &str = "; ";

/// A retry-after hint: how long a client should wait before it reconnects.
///
/// It travels in the reason of a Close frame as `retry-after-ms=<n>`, after a
/// short human text: `going away; retry-after-ms=1000`. Build one with
/// [`from_millis`](Self::from_millis) or [`from_duration`](Self::from_duration),
/// turn it into a reason with [`to_reason`](Self::to_reason) or
/// [`encode`](Self::encode), and read it back with [`parse`](Self::parse).
///
/// ```
/// use wsdrain_protocol::CloseHint;
///
/// let hint = CloseHint::from_millis(1000);
/// assert_eq!(hint.to_string(), "going away; retry-after-ms=1000");
/// assert_eq!(CloseHint::parse(&hint.to_reason()), Some(hint));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseHint {
    retry_after_ms: u64,
}

impl CloseHint {
    /// A hint of `ms` milliseconds.
    #[must_use]
    pub const fn from_millis(ms: u64) -> Self {
        Self { retry_after_ms: ms }
    }

    /// A hint of `d`, in whole milliseconds (sub-millisecond parts are dropped),
    /// saturating at `u64::MAX` milliseconds.
    #[must_use]
    pub fn from_duration(d: Duration) -> Self {
        Self::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// The hint in milliseconds.
    #[must_use]
    pub const fn retry_after_ms(&self) -> u64 {
        self.retry_after_ms
    }

    /// The hint as a [`Duration`].
    #[must_use]
    pub fn retry_after(&self) -> Duration {
        Duration::from_millis(self.retry_after_ms)
    }

    /// Encodes `<text>; retry-after-ms=<n>`, at most [`MAX_REASON_LEN`] bytes of
    /// printable ASCII.
    ///
    /// The text is sanitised first: non-ASCII bytes, control characters, `;` and
    /// `=` are dropped (so the text can never be read as a parameter), and
    /// leading and trailing whitespace is trimmed. It is then truncated so that
    /// the whole reason fits in [`MAX_REASON_LEN`] bytes; the parameter itself
    /// is never truncated (it is at most 35 bytes, so it always fits). An empty
    /// text gives `retry-after-ms=<n>` with no leading `"; "`. Never panics, for
    /// any text.
    ///
    /// ```
    /// use wsdrain_protocol::CloseHint;
    ///
    /// let hint = CloseHint::from_millis(250);
    /// assert_eq!(hint.encode("  deploy ünd; restart\n"), "deploy nd restart; retry-after-ms=250");
    /// assert_eq!(hint.encode(""), "retry-after-ms=250");
    /// ```
    #[must_use]
    pub fn encode(&self, text: &str) -> String {
        let param = format!("{RETRY_AFTER_MS}={}", self.retry_after_ms);
        let budget = MAX_REASON_LEN.saturating_sub(param.len() + SEP.len());

        let mut out = String::with_capacity(MAX_REASON_LEN);
        for b in text.bytes().filter(|&b| is_text_byte(b)) {
            if out.len() >= budget {
                break;
            }
            if out.is_empty() && b == b' ' {
                continue;
            }
            out.push(char::from(b));
        }
        out.truncate(out.trim_end_matches(' ').len());

        if !out.is_empty() {
            out.push_str(SEP);
        }
        out.push_str(&param);
        out
    }

    /// Encodes the hint with the [`DEFAULT_TEXT`]: `going away; retry-after-ms=<n>`.
    #[must_use]
    pub fn to_reason(&self) -> String {
        self.encode(DEFAULT_TEXT)
    }

    /// Parses the hint out of a received Close reason.
    ///
    /// The reason is split on `;` and ASCII whitespace around each segment, key
    /// and value is ignored. The first segment that is `retry-after-ms=<digits>`
    /// with a value that fits in a `u64` wins. Other parameters, the human text
    /// and malformed `retry-after-ms` values are ignored. Returns `None` when
    /// there is no valid `retry-after-ms` parameter. Never panics, on any input.
    ///
    /// ```
    /// use wsdrain_protocol::CloseHint;
    ///
    /// let hint = CloseHint::parse("going away;retry-after-ms=5 ; v=2");
    /// assert_eq!(hint, Some(CloseHint::from_millis(5)));
    /// assert_eq!(CloseHint::parse("going away; retry-after-ms="), None);
    /// assert_eq!(CloseHint::parse("going away; retry-after-msx=5"), None);
    /// ```
    #[must_use]
    pub fn parse(reason: &str) -> Option<Self> {
        Self::parse_bytes(reason.as_bytes())
    }

    /// Like [`parse`](Self::parse), over raw bytes.
    ///
    /// The reason need not be valid UTF-8: bytes outside ASCII never belong to
    /// a valid key or value, so a segment containing them is ignored, and the
    /// rest is parsed. Never panics, on any input.
    #[must_use]
    pub fn parse_bytes(reason: &[u8]) -> Option<Self> {
        reason
            .split(|&b| b == b';')
            .find_map(|segment| {
                let (key, value) = split_param(segment)?;
                if key == RETRY_AFTER_MS.as_bytes() {
                    parse_digits(value)
                } else {
                    None
                }
            })
            .map(Self::from_millis)
    }

    /// The `Retry-After` header value for a rejected upgrade: whole seconds,
    /// rounded up, at least 1.
    ///
    /// ```
    /// use wsdrain_protocol::CloseHint;
    ///
    /// assert_eq!(CloseHint::from_millis(0).retry_after_header_secs(), 1);
    /// assert_eq!(CloseHint::from_millis(1000).retry_after_header_secs(), 1);
    /// assert_eq!(CloseHint::from_millis(1001).retry_after_header_secs(), 2);
    /// ```
    #[must_use]
    pub fn retry_after_header_secs(&self) -> u64 {
        self.retry_after_ms.div_ceil(1000).max(1)
    }
}

impl fmt::Display for CloseHint {
    /// Writes the same as [`CloseHint::to_reason`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_reason())
    }
}

/// Bytes kept from an encoder's human text: printable ASCII except `;` and `=`.
fn is_text_byte(b: u8) -> bool {
    matches!(b, b' '..=b'~') && b != b';' && b != b'='
}

/// Splits a segment into its trimmed key and value at the first `=`.
fn split_param(segment: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = segment.iter().position(|&b| b == b'=')?;
    let (key, rest) = segment.split_at(eq);
    let value = rest.get(1..).unwrap_or_default();
    Some((key.trim_ascii(), value.trim_ascii()))
}

/// Parses a non-empty run of ASCII digits into a `u64`; `None` on anything
/// else (empty, signs, other bytes) or on overflow.
pub(crate) fn parse_digits(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        let digit = if b.is_ascii_digit() {
            u64::from(b - b'0')
        } else {
            return None;
        };
        acc.checked_mul(10)?.checked_add(digit)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn h(ms: u64) -> CloseHint {
        CloseHint::from_millis(ms)
    }

    #[test]
    fn default_reason() {
        assert_eq!(h(1000).to_reason(), "going away; retry-after-ms=1000");
        assert_eq!(h(1000).to_string(), "going away; retry-after-ms=1000");
        assert_eq!(h(0).to_reason(), "going away; retry-after-ms=0");
    }

    #[test]
    fn constructors_and_accessors() {
        assert_eq!(h(1500).retry_after_ms(), 1500);
        assert_eq!(h(1500).retry_after(), Duration::from_millis(1500));
        assert_eq!(CloseHint::from_duration(Duration::from_secs(2)), h(2000));
        assert_eq!(CloseHint::from_duration(Duration::from_micros(1999)), h(1));
        assert_eq!(CloseHint::from_duration(Duration::MAX), h(u64::MAX));
        const C: CloseHint = CloseHint::from_millis(7);
        assert_eq!(C.retry_after_ms(), 7);
        assert!(h(1) < h(2));
    }

    #[test]
    fn max_hint_fits() {
        let reason = h(u64::MAX).to_reason();
        assert_eq!(reason, "going away; retry-after-ms=18446744073709551615");
        assert!(reason.len() <= MAX_REASON_LEN);
        assert_eq!(CloseHint::parse(&reason), Some(h(u64::MAX)));

        let long = h(u64::MAX).encode(&"x".repeat(500));
        assert_eq!(long.len(), MAX_REASON_LEN);
        assert!(long.ends_with("; retry-after-ms=18446744073709551615"));
        assert_eq!(CloseHint::parse(&long), Some(h(u64::MAX)));
    }

    #[test]
    fn long_text_is_truncated() {
        let text = "a".repeat(200);
        let reason = h(1000).encode(&text);
        assert_eq!(reason.len(), MAX_REASON_LEN);
        assert!(reason.starts_with("aaaa"));
        assert!(reason.ends_with("; retry-after-ms=1000"));
        assert_eq!(CloseHint::parse(&reason), Some(h(1000)));
    }

    #[test]
    fn truncation_does_not_leave_trailing_space() {
        let budget = MAX_REASON_LEN - "; retry-after-ms=1".len();
        let text = format!("{} tail", "a".repeat(budget - 1));
        let reason = h(1).encode(&text);
        assert_eq!(
            reason,
            format!("{}; retry-after-ms=1", "a".repeat(budget - 1))
        );
    }

    #[test]
    fn unicode_and_controls_are_sanitised() {
        let reason = h(5).encode("déploiement — en cours\t\u{7f}\0🚀 ok");
        assert_eq!(reason, "dploiement  en cours ok; retry-after-ms=5");
        assert!(reason.is_ascii());

        let reason = h(5).encode(&"🚀".repeat(100));
        assert_eq!(reason, "retry-after-ms=5");
    }

    #[test]
    fn separators_in_text_are_dropped() {
        assert_eq!(
            h(9).encode("a;b=c; retry-after-ms=1"),
            "abc retry-after-ms1; retry-after-ms=9"
        );
        assert_eq!(
            CloseHint::parse(&h(9).encode("retry-after-ms=1")),
            Some(h(9))
        );
    }

    #[test]
    fn empty_text() {
        assert_eq!(h(42).encode(""), "retry-after-ms=42");
        assert_eq!(h(42).encode("  \t\n ;= "), "retry-after-ms=42");
        assert_eq!(CloseHint::parse("retry-after-ms=42"), Some(h(42)));
    }

    #[test]
    fn parse_spec_examples() {
        assert_eq!(
            CloseHint::parse("going away;retry-after-ms=5 ; v=2"),
            Some(h(5))
        );
        assert_eq!(
            CloseHint::parse("going away; retry-after-ms=1000"),
            Some(h(1000))
        );
        assert_eq!(CloseHint::parse("; retry-after-ms=3"), Some(h(3)));
        assert_eq!(CloseHint::parse("x;v=1;retry-after-ms=3"), Some(h(3)));
        assert_eq!(CloseHint::parse("x ;\tretry-after-ms = 3 \r\n"), Some(h(3)));
        assert_eq!(CloseHint::parse("x; retry-after-ms=007"), Some(h(7)));
    }

    #[test]
    fn parse_duplicates_first_wins() {
        assert_eq!(
            CloseHint::parse("x; retry-after-ms=1; retry-after-ms=2"),
            Some(h(1))
        );
        // A malformed occurrence is skipped, like an unknown parameter.
        assert_eq!(
            CloseHint::parse("x; retry-after-ms=abc; retry-after-ms=2"),
            Some(h(2))
        );
    }

    #[test]
    fn parse_rejects() {
        for reason in [
            "",
            "going away",
            ";;;;",
            "=",
            "going away; retry-after-ms=",
            "going away; retry-after-ms",
            "going away; retry-after-ms=-5",
            "going away; retry-after-ms=+5",
            "going away; retry-after-ms=5.0",
            "going away; retry-after-ms=5ms",
            "going away; retry-after-ms=5 6",
            "going away; retry-after-ms=18446744073709551616",
            "going away; retry-after-ms=99999999999999999999999999999",
            "going away; retry-after-msx=5",
            "going away; xretry-after-ms=5",
            "going away; Retry-After-Ms=5",
            "going away; retry after ms=5",
            "going away; retry-after-ms=٥",
            "going away; v=1",
            "\u{0}\u{1}garbage=;=;==;",
        ] {
            assert_eq!(CloseHint::parse(reason), None, "{reason:?}");
        }
    }

    #[test]
    fn parse_bytes_non_utf8() {
        assert_eq!(
            CloseHint::parse_bytes(b"\xff\xfe going; retry-after-ms=12; \xc3"),
            Some(h(12))
        );
        assert_eq!(CloseHint::parse_bytes(b"x; retry-after-ms=1\xff"), None);
        assert_eq!(CloseHint::parse_bytes(b"\xff; retry-\xffafter-ms=1"), None);
        assert_eq!(CloseHint::parse_bytes(b""), None);
        assert_eq!(
            CloseHint::parse_bytes(b"retry-after-ms=18446744073709551615"),
            Some(h(u64::MAX))
        );
    }

    #[test]
    fn header_secs() {
        assert_eq!(h(0).retry_after_header_secs(), 1);
        assert_eq!(h(1).retry_after_header_secs(), 1);
        assert_eq!(h(999).retry_after_header_secs(), 1);
        assert_eq!(h(1000).retry_after_header_secs(), 1);
        assert_eq!(h(1001).retry_after_header_secs(), 2);
        assert_eq!(h(30_000).retry_after_header_secs(), 30);
        assert_eq!(h(u64::MAX).retry_after_header_secs(), u64::MAX / 1000 + 1);
    }

    #[test]
    fn parse_digits_edges() {
        assert_eq!(parse_digits(b"0"), Some(0));
        assert_eq!(parse_digits(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_digits(b"18446744073709551616"), None);
        assert_eq!(parse_digits(b""), None);
        assert_eq!(parse_digits(b" 1"), None);
    }
}
