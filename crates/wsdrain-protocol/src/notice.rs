//! The drain notice: a text message that warns a client of its Close a lead
//! before it, so it can open its next connection first (make-before-break).
//!
//! ```text
//! {"type":"wsdrain.reconnect","close_in_ms":3000}
//! ```
//!
//! A client that knows it opens a new connection at once, moves its sends
//! there, and keeps reading the old one until its Close. A client that does
//! not know it gets the usual hinted Close `close_in_ms` later.

use crate::json::{Scanner, Value};

/// The notice's `type` field.
pub const NOTICE_TYPE: &str = "wsdrain.reconnect";

/// The largest lead a notice carries, 2^53 − 1 ms: the largest integer that
/// every JSON parser reads exactly (RFC 8259 §6), JavaScript's
/// `Number.MAX_SAFE_INTEGER`.
pub const MAX_NOTICE_LEAD_MS: u64 = (1 << 53) - 1;

/// The notice for a Close `close_in_ms` from now, exactly
/// `{"type":"wsdrain.reconnect","close_in_ms":N}`, with `N` at most
/// [`MAX_NOTICE_LEAD_MS`] (a longer lead is written as that).
///
/// ```
/// assert_eq!(
///     wsdrain_protocol::encode_notice(3000),
///     r#"{"type":"wsdrain.reconnect","close_in_ms":3000}"#
/// );
/// ```
#[must_use]
pub fn encode_notice(close_in_ms: u64) -> String {
    let lead = close_in_ms.min(MAX_NOTICE_LEAD_MS);
    format!("{{\"type\":\"{NOTICE_TYPE}\",\"close_in_ms\":{lead}}}")
}

/// Reads a notice: `Some(close_in_ms)` when `text` is one JSON object whose
/// `type` is the string `wsdrain.reconnect` and whose `close_in_ms` is a
/// number with an integer value from 0 to [`MAX_NOTICE_LEAD_MS`]; `None` for
/// any other message. Never fails or panics, on any text.
///
/// It reads the text as JSON (RFC 8259) and accepts exactly what JavaScript's
/// `JSON.parse` accepts, so the Rust and the browser client agree:
///
/// * any key order, JSON whitespace, and escapes in keys and strings;
/// * other keys, with any JSON value (strings with commas or braces, nested
///   objects, arrays, numbers, `true`, `false`, `null`), are ignored;
/// * a key given twice counts by its last value, as in `JSON.parse`;
/// * `close_in_ms` is read as a number: `3000`, `3000.0` and `3e3` are the
///   same lead; a string, a fraction, a negative number or a value above
///   [`MAX_NOTICE_LEAD_MS`] is not a notice;
/// * text that is not valid JSON, or not one object, is not a notice.
///
/// Messages that do not contain the literal text `wsdrain.reconnect` are
/// passed over without parsing (encoders write the type without escapes), so
/// application messages cost one substring search.
///
/// ```
/// use wsdrain_protocol::parse_notice;
/// assert_eq!(parse_notice(r#"{"type":"wsdrain.reconnect","close_in_ms":3000}"#), Some(3000));
/// assert_eq!(
///     parse_notice(r#"{ "close_in_ms": 5, "type": "wsdrain.reconnect", "why": "a, b", "v": [2] }"#),
///     Some(5)
/// );
/// assert_eq!(parse_notice(r#"{"type":"wsdrain.reconnect","close_in_ms":"3000"}"#), None);
/// assert_eq!(parse_notice(r#"{"type":"chat","close_in_ms":3000}"#), None);
/// assert_eq!(parse_notice("hello"), None);
/// ```
#[must_use]
pub fn parse_notice(text: &str) -> Option<u64> {
    if !text.contains(NOTICE_TYPE) {
        return None; // the cheap check first: most messages are not notices
    }
    let mut scan = Scanner::new(text);
    let (mut key, mut string) = (String::new(), String::new());
    let mut is_notice = false;
    let mut lead = None;
    let mut more = scan.open_object()?;
    while more {
        let (value, next) = scan.member(&mut key, &mut string)?;
        more = next;
        match key.as_str() {
            "type" => is_notice = matches!(value, Value::String) && string == NOTICE_TYPE,
            "close_in_ms" => lead = lead_ms(&value),
            _ => {}
        }
    }
    scan.end()?;
    lead.filter(|_| is_notice)
}

/// A number with an integer value in `0..=MAX_NOTICE_LEAD_MS`, read as
/// JavaScript reads it: the literal rounded to the nearest `f64` first.
fn lead_ms(value: &Value<'_>) -> Option<u64> {
    let Value::Number(text) = value else {
        return None;
    };
    let n: f64 = text.parse().ok()?;
    // Exact: every integer up to 2^53 is an f64, and so is the bound.
    let in_range = n.fract() == 0.0 && (0.0..=MAX_NOTICE_LEAD_MS as f64).contains(&n);
    in_range.then_some(n as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for ms in [0, 1, 2500, MAX_NOTICE_LEAD_MS] {
            assert_eq!(parse_notice(&encode_notice(ms)), Some(ms));
        }
        // Longer leads are written as the largest one every parser reads.
        assert_eq!(
            parse_notice(&encode_notice(u64::MAX)),
            Some(MAX_NOTICE_LEAD_MS)
        );
    }

    /// Messages and the lead a JSON parser finds in each (`null`: not a
    /// notice). The browser test runs `wsdrain.js`'s `parseNotice` over the
    /// same file, so both clients are held to one table.
    const CASES: &str = include_str!("../tests/notice_cases.json");

    #[test]
    fn messages_are_read_as_json_reads_them() {
        let cases: Vec<(String, Option<u64>)> = serde_json::from_str(CASES).unwrap();
        assert!(cases.iter().filter(|c| c.1.is_some()).count() >= 8);
        let misread: Vec<_> = cases
            .iter()
            .filter(|(text, want)| parse_notice(text) != *want)
            .map(|(text, want)| format!("{text:?} -> {:?}, want {want:?}", parse_notice(text)))
            .collect();
        assert!(
            misread.is_empty(),
            "{} misread:\n{}",
            misread.len(),
            misread.join("\n")
        );
    }

    #[test]
    fn deep_nesting_costs_no_stack() {
        let deep = format!(
            r#"{{"type":"wsdrain.reconnect","x":{}{},"close_in_ms":2}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(parse_notice(&deep), Some(2));
        let unclosed = format!(
            r#"{{"type":"wsdrain.reconnect","x":{}"#,
            "[{\"a\":".repeat(50_000)
        );
        assert_eq!(parse_notice(&unclosed), None);
    }
}
