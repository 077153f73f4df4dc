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

    /// Well-formed notices a JSON parser reads, each with its lead.
    const WELL_FORMED: &[(&str, u64)] = &[
        (r#"{"type":"wsdrain.reconnect","close_in_ms":3000}"#, 3000),
        (
            r#" { "close_in_ms" : 5 , "type" : "wsdrain.reconnect" } "#,
            5,
        ),
        (
            r#"{"type":"wsdrain.reconnect","close_in_ms":3000,"why":"deploy, then restart"}"#,
            3000,
        ),
        (
            r#"{"type":"wsdrain.reconnect","meta":{"pod":"a-1","zone":"b"},"close_in_ms":3000}"#,
            3000,
        ),
        (
            r#"{"type":"wsdrain.reconnect","close_in_ms":3000,"tags":["x","y"]}"#,
            3000,
        ),
        (
            r#"{"note":"at 10:30, \"quoted\" {braces}","type":"wsdrain.reconnect","close_in_ms":7}"#,
            7,
        ),
        (
            "{\n\t\"type\": \"wsdrain.reconnect\",\r\n\t\"close_in_ms\": 250\n}",
            250,
        ),
        (
            r#"{"type":"wsdrain.reconnect","close_in_ms":1500,"v":2,"ok":true,"n":null,"f":-1.5e-3}"#,
            1500,
        ),
        (r#"{"close_in_ms":3e3,"type":"wsdrain.reconnect"}"#, 3000),
        (r#"{"close_in_ms":3000.0,"type":"wsdrain.reconnect"}"#, 3000),
        (r#"{"type":"wsdrain.reconnect","close_in_ms":-0}"#, 0),
        (r#"{"t\u0079pe":"wsdrain.reconnect","close_in_ms":9}"#, 9),
        (
            r#"{"type":"wsdrain.reconnect","close_in_ms":9007199254740991}"#,
            9_007_199_254_740_991,
        ),
        (
            r#"{"type":"chat","close_in_ms":1,"type":"wsdrain.reconnect"}"#,
            1,
        ),
        (
            r#"{"type":"wsdrain.reconnect","close_in_ms":"x","close_in_ms":4}"#,
            4,
        ),
        (
            r#"{"type":"wsdrain.reconnect","deep":[[[{"a":[1,{"b":"}"}]}]]],"close_in_ms":8}"#,
            8,
        ),
        (
            r#"{"type":"wsdrain.reconnect","lone":"\ud800","close_in_ms":6}"#,
            6,
        ),
    ];

    #[test]
    fn well_formed_notices_are_read() {
        let misread: Vec<_> = WELL_FORMED
            .iter()
            .filter(|(text, ms)| parse_notice(text) != Some(*ms))
            .map(|(text, ms)| format!("{text} -> {:?}, want {ms}", parse_notice(text)))
            .collect();
        assert!(
            misread.is_empty(),
            "{} misread:\n{}",
            misread.len(),
            misread.join("\n")
        );
    }

    #[test]
    fn other_messages_are_not_notices() {
        for text in [
            "",
            "{}",
            r#"{"type":"wsdrain.reconnect"}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":-1}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":"3000"}"#,
            r#"{"type":"wsdrain.reconnectx","close_in_ms":3000}"#,
            r#"["wsdrain.reconnect"]"#,
            // Wrong types.
            r#"{"type":["wsdrain.reconnect"],"close_in_ms":3000}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":3000.5}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":9007199254740992}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":1e400}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":true}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":null}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":[3000]}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":3000,"close_in_ms":"3000"}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":1,"type":"chat"}"#,
            // Not JSON, or not one object.
            r#"{"type":"wsdrain.reconnect","close_in_ms":3000} x"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":3000}{}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":3000"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":3000,}"#,
            r#"{"type":"wsdrain.reconnect",,"close_in_ms":3000}"#,
            r#"{'type':'wsdrain.reconnect','close_in_ms':3000}"#,
            r#"{type:"wsdrain.reconnect",close_in_ms:3000}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":03000}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":+3000}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":3000.}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":.5}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":NaN}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":Infinity}"#,
            r#"{"type":"wsdrain.reconnect","x":"\q","close_in_ms":1}"#,
            r#"{"type":"wsdrain.reconnect","x":"\u12","close_in_ms":1}"#,
            r#"{"type":"wsdrain.reconnect","x":[1,],"close_in_ms":1}"#,
            r#"{"type":"wsdrain.reconnect","x":{"a"},"close_in_ms":1}"#,
            r#"{"type":"wsdrain.reconnect","x":tru,"close_in_ms":1}"#,
            r#"{"type":"wsdrain.reconnect","close_in_ms":1 /* lead */}"#,
            "{\"type\":\"wsdrain.reconnect\",\"x\":\"a\tb\",\"close_in_ms\":1}",
            "\u{feff}{\"type\":\"wsdrain.reconnect\",\"close_in_ms\":1}",
            "\u{a0}{\"type\":\"wsdrain.reconnect\",\"close_in_ms\":1}",
        ] {
            assert_eq!(parse_notice(text), None, "{text}");
        }
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
