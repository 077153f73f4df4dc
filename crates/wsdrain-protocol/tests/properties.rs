//! Property tests of the close-hint wire format.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use wsdrain_protocol::{CloseHint, MAX_REASON_LEN, RETRY_AFTER_MS, parse_retry_after_header};

/// What `/retry-after-ms=(\d+)/` (ASCII digits) reads: the first match, as a
/// `u64`. `None` when there is no match or the digits overflow.
fn regex_rule(reason: &str) -> Option<u64> {
    let needle = format!("{RETRY_AFTER_MS}=");
    let bytes = reason.as_bytes();
    let mut from = 0;
    while let Some(pos) = reason.get(from..)?.find(&needle) {
        let start = from + pos + needle.len();
        let digits: String = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .map(|&b| char::from(b))
            .collect();
        if !digits.is_empty() {
            return digits.parse().ok();
        }
        from = start;
    }
    None
}

/// Text that is likely to contain the format's own syntax.
fn tricky_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("retry-after-ms".to_owned()),
            Just("=".to_owned()),
            Just(";".to_owned()),
            Just(" ".to_owned()),
            Just("\t".to_owned()),
            Just("é".to_owned()),
            Just("🚀".to_owned()),
            "[0-9]{1,3}",
            "[a-z]{1,8}",
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), tricky_text(), "[ -~]{0,300}"]
}

fn any_ms() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..10_000,
        Just(0),
        Just(u64::MAX),
        (u64::MAX - 1000)..=u64::MAX,
    ]
}

proptest! {
    #[test]
    fn parse_never_panics_on_strings(s in any::<String>()) {
        let _ = CloseHint::parse(&s);
        let _ = parse_retry_after_header(&s);
    }

    #[test]
    fn parse_never_panics_on_bytes(b in prop::collection::vec(any::<u8>(), 0..300)) {
        let parsed = CloseHint::parse_bytes(&b);
        if let Ok(s) = std::str::from_utf8(&b) {
            prop_assert_eq!(parsed, CloseHint::parse(s));
        }
        if let Some(h) = parsed {
            prop_assert_eq!(CloseHint::parse(&h.to_reason()), Some(h));
        }
    }

    #[test]
    fn parse_never_panics_on_reason_like_strings(s in "[ -~]{0,40}(retry-after-ms *= *[0-9]{0,25})?[ -~;=]{0,40}") {
        let _ = CloseHint::parse(&s);
    }

    #[test]
    fn encode_is_ascii_bounded_and_round_trips(text in any_text(), ms in any_ms()) {
        let hint = CloseHint::from_millis(ms);
        let reason = hint.encode(&text);
        prop_assert!(reason.is_ascii(), "{:?}", reason);
        prop_assert!(!reason.bytes().any(|b| b.is_ascii_control()), "{:?}", reason);
        prop_assert!(reason.len() <= MAX_REASON_LEN, "{} bytes: {:?}", reason.len(), reason);
        prop_assert_eq!(reason.trim(), reason.as_str());
        let param = format!("{RETRY_AFTER_MS}={ms}");
        prop_assert!(reason.ends_with(&param), "{:?}", reason);
        prop_assert_eq!(CloseHint::parse(&reason), Some(hint));
        prop_assert_eq!(CloseHint::parse_bytes(reason.as_bytes()), Some(hint));
    }

    #[test]
    fn regex_rule_agrees_with_parse_on_encoded_output(text in any_text(), ms in any_ms()) {
        let reason = CloseHint::from_millis(ms).encode(&text);
        prop_assert_eq!(regex_rule(&reason), Some(ms), "{:?}", reason);
        prop_assert_eq!(
            regex_rule(&reason),
            CloseHint::parse(&reason).map(|h| h.retry_after_ms())
        );
    }

    #[test]
    fn encoded_text_keeps_sanitised_prefix(text in "[a-z ]{0,200}", ms in any_ms()) {
        let reason = CloseHint::from_millis(ms).encode(&text);
        let trimmed = text.trim();
        match reason.split_once("; ") {
            Some((kept, _)) => prop_assert!(trimmed.starts_with(kept), "{:?} / {:?}", kept, trimmed),
            None => prop_assert!(!reason.contains(' ')),
        }
    }

    #[test]
    fn header_secs_round_up(ms in any_ms()) {
        let secs = CloseHint::from_millis(ms).retry_after_header_secs();
        prop_assert!(secs >= 1);
        prop_assert!(u128::from(secs) * 1000 >= u128::from(ms));
        prop_assert!(secs == 1 || u128::from(secs - 1) * 1000 < u128::from(ms));
        let header = secs.to_string();
        prop_assert_eq!(
            parse_retry_after_header(&header),
            Some(std::time::Duration::from_secs(secs))
        );
    }

    #[test]
    fn from_duration_round_trips(ms in any_ms()) {
        let hint = CloseHint::from_millis(ms);
        prop_assert_eq!(CloseHint::from_duration(hint.retry_after()), hint);
    }
}
