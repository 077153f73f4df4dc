//! serde_json as the oracle of `parse_notice`, shared by the property tests
//! and the `parse_notice` fuzz target.

use wsdrain_protocol::{MAX_NOTICE_LEAD_MS, NOTICE_TYPE};

/// What a JSON parser makes of a parsed message: the notice's lead, by the
/// rules `parse_notice` documents.
pub(crate) fn oracle(v: &serde_json::Value) -> Option<u64> {
    let obj = v.as_object()?;
    if obj.get("type")?.as_str()? != NOTICE_TYPE {
        return None;
    }
    let n = obj.get("close_in_ms")?.as_f64()?;
    (n.fract() == 0.0 && (0.0..=MAX_NOTICE_LEAD_MS as f64).contains(&n)).then_some(n as u64)
}

/// serde_json's answer for `text`, or `Err` when it refuses the text.
pub(crate) fn json_answer(text: &str) -> Result<Option<u64>, ()> {
    if !text.contains(NOTICE_TYPE) {
        return Ok(None); // the documented literal pre-check
    }
    serde_json::from_str::<serde_json::Value>(text)
        .map(|v| oracle(&v))
        .map_err(|_| ())
}

/// Where `parse_notice` may read a text serde_json refuses, as `JSON.parse`
/// does: lone surrogates in `\u` escapes, numbers beyond the `f64` range
/// (`Infinity` to JavaScript), nesting past serde_json's 128 levels.
pub(crate) fn serde_json_is_stricter(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let surrogate = (0x8..=0xf).any(|d| lower.contains(&format!("\\ud{d:x}")));
    let infinite = text
        .split(|c: char| !matches!(c, '0'..='9' | 'e' | 'E' | '+' | '-' | '.'))
        .any(|n| n.parse::<f64>().is_ok_and(f64::is_infinite));
    let deep = text.bytes().filter(|&b| b == b'[' || b == b'{').count() >= 128;
    surrogate || infinite || deep
}
