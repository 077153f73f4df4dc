//! Fuzzes the drain notice parser against serde_json: it must never panic,
//! and wherever serde_json reads the text as JSON, both must find the same
//! notice. Where serde_json refuses a text, the parser may still read it only
//! for what `JSON.parse` accepts and serde_json does not (lone surrogates,
//! numbers beyond the `f64` range, nesting past 128 levels).

#![no_main]

#[path = "../../crates/wsdrain-protocol/tests/support/notice_oracle.rs"]
mod notice_oracle;

use libfuzzer_sys::fuzz_target;
use notice_oracle::{json_answer, serde_json_is_stricter};
use wsdrain_protocol::{MAX_NOTICE_LEAD_MS, NOTICE_TYPE, encode_notice, parse_notice};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let got = parse_notice(text);
    if let Some(ms) = got {
        assert!(ms <= MAX_NOTICE_LEAD_MS && text.contains(NOTICE_TYPE), "{text:?}");
        assert_eq!(parse_notice(&encode_notice(ms)), Some(ms));
    }
    match json_answer(text) {
        Ok(want) => assert_eq!(got, want, "{text:?}"),
        Err(()) => assert!(got.is_none() || serde_json_is_stricter(text), "{text:?}: {got:?}"),
    }
});
