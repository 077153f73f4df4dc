//! Fuzzes the close-reason parser: it must never panic, and any hint it finds
//! must survive a round trip through the encoder.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsdrain_protocol::{CloseHint, MAX_REASON_LEN};

fuzz_target!(|data: &[u8]| {
    if let Some(hint) = CloseHint::parse_bytes(data) {
        let reason = hint.to_reason();
        assert!(
            reason.is_ascii() && reason.len() <= MAX_REASON_LEN,
            "{reason:?}"
        );
        assert_eq!(CloseHint::parse(&reason), Some(hint));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(CloseHint::parse(text), CloseHint::parse_bytes(data));
    }
});
