//! Fuzzes the drain notice parser against serde_json: it must never panic,
//! and wherever serde_json reads the text as JSON, both must find the same
//! notice. Where serde_json refuses a text, the parser may still read it only
//! for what `JSON.parse` accepts and serde_json does not: lone surrogates,
//! numbers beyond the `f64` range, nesting past 128 levels.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsdrain_protocol::{MAX_NOTICE_LEAD_MS, NOTICE_TYPE, encode_notice, parse_notice};

fn oracle(v: &serde_json::Value) -> Option<u64> {
    let obj = v.as_object()?;
    if obj.get("type")?.as_str()? != NOTICE_TYPE {
        return None;
    }
    let n = obj.get("close_in_ms")?.as_f64()?;
    (n.fract() == 0.0 && (0.0..=MAX_NOTICE_LEAD_MS as f64).contains(&n)).then_some(n as u64)
}

fn serde_json_is_stricter(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let surrogate = (0x8..=0xf).any(|d| lower.contains(&format!("\\ud{d:x}")));
    let infinite = text
        .split(|c: char| !matches!(c, '0'..='9' | 'e' | 'E' | '+' | '-' | '.'))
        .any(|n| n.parse::<f64>().is_ok_and(f64::is_infinite));
    let deep = text.bytes().filter(|&b| b == b'[' || b == b'{').count() >= 128;
    surrogate || infinite || deep
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let got = parse_notice(text);
    if let Some(ms) = got {
        assert!(ms <= MAX_NOTICE_LEAD_MS && text.contains(NOTICE_TYPE), "{text:?}");
        assert_eq!(parse_notice(&encode_notice(ms)), Some(ms));
    }
    if !text.contains(NOTICE_TYPE) {
        return;
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => assert_eq!(got, oracle(&v), "{text:?}"),
        Err(_) => assert!(got.is_none() || serde_json_is_stricter(text), "{text:?}: {got:?}"),
    }
});
