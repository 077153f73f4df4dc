//! Property tests of the close-hint wire format.

#![allow(clippy::unwrap_used)]

#[path = "support/notice_oracle.rs"]
mod notice_oracle;

use notice_oracle::{json_answer, serde_json_is_stricter};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use wsdrain_protocol::{
    CloseHint, MAX_NOTICE_LEAD_MS, MAX_REASON_LEN, NOTICE_TYPE, RETRY_AFTER_MS, encode_notice,
    parse_notice, parse_retry_after_header,
};

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

fn agrees_with_serde_json(text: &str) -> Result<(), TestCaseError> {
    let got = parse_notice(text);
    match json_answer(text) {
        Ok(want) => prop_assert_eq!(got, want, "{:?}", text),
        Err(()) => prop_assert!(
            got.is_none() || serde_json_is_stricter(text),
            "serde_json refuses {:?}, parse_notice read {:?}",
            text,
            got
        ),
    }
    Ok(())
}

/// JSON whitespace, often none.
fn ws() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        1 => "[ \t\r\n]{1,3}",
    ]
}

/// A JSON string literal holding `s`, with some characters escaped at random.
fn quoted(s: String, escapes: Vec<bool>) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        let escape = escapes
            .get(i % escapes.len().max(1))
            .copied()
            .unwrap_or(false);
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || escape => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn any_quoted() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            any::<String>(),
            "[a-z ,:{}\\[\\]\"\\\\]{0,12}",
            Just(NOTICE_TYPE.to_owned())
        ],
        prop::collection::vec(any::<bool>(), 0..4),
    )
        .prop_map(|(s, e)| quoted(s, e))
}

/// Number literals, as written: integers, fractions, exponents, edges.
fn any_number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (0u64..100_000).prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        (0u64..100_000, 0u32..4).prop_map(|(n, z)| format!("{n}.{}", "0".repeat(z as usize + 1))),
        (0u64..100_000, 1u32..999).prop_map(|(n, f)| format!("{n}.{f}")),
        (1u64..1000, -3i32..20).prop_map(|(n, e)| format!("{n}e{e}")),
        (1u64..1000, 0i32..5).prop_map(|(n, e)| format!("{n}.5E+{e}")),
        Just(MAX_NOTICE_LEAD_MS.to_string()),
        Just((MAX_NOTICE_LEAD_MS + 1).to_string()),
        Just("-0".to_owned()),
        Just("1e400".to_owned()),
        Just("9007199254740991.4".to_owned()),
    ]
}

/// Any JSON value, nested a few levels, in random spacing.
fn any_json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        any_number(),
        any_quoted(),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            (prop::collection::vec((ws(), inner.clone(), ws()), 0..5)).prop_map(|items| {
                let items: Vec<String> = items
                    .into_iter()
                    .map(|(a, v, b)| format!("{a}{v}{b}"))
                    .collect();
                format!("[{}]", items.join(","))
            }),
            (prop::collection::vec((any_quoted(), ws(), inner), 0..5)).prop_map(|members| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(k, w, v)| format!("{k}{w}:{w}{v}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// Almost JSON: number literals JSON forbids, strings with raw control
/// characters or bad escapes, truncated literals.
fn not_quite_json() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "3.",
            ".5",
            "03",
            "+1",
            "1e",
            "1e+",
            "-",
            "1.e5",
            "0x10",
            "1_000",
            "--1",
            "NaN",
            "Infinity",
            "tru",
            "nul",
            "falsey",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\u12g4\"",
            "\"open",
            "[1,]",
            "{\"a\"}",
            "{\"a\":1,}",
            "[,1]",
            "'a'",
        ])
        .prop_map(str::to_owned),
        ("[\u{0}-\u{1f}]", "[a-z]{0,3}").prop_map(|(c, s)| format!("\"{s}{c}{s}\"")),
    ]
}

/// A notice-like object: `type` and `close_in_ms` (maybe twice, maybe of
/// the wrong type, maybe missing) among unknown keys with any value, in any
/// order and spacing; now and then a value that is not quite JSON, or text
/// after the object.
fn notice_like() -> impl Strategy<Value = String> {
    let type_value = prop_oneof![
        4 => Just(format!("\"{NOTICE_TYPE}\"")),
        1 => any_json(),
    ];
    let lead_value = prop_oneof![
        4 => (0u64..10_000_000).prop_map(|n| n.to_string()),
        2 => any_number(),
        1 => any_json(),
        2 => not_quite_json(),
    ];
    let member = prop_oneof![
        2 => type_value.prop_map(|v| format!("\"type\":{v}")),
        2 => lead_value.prop_map(|v| format!("\"close_in_ms\":{v}")),
        3 => (any_quoted(), any_json()).prop_map(|(k, v)| format!("{k}:{v}")),
        2 => (any_quoted(), not_quite_json()).prop_map(|(k, v)| format!("{k}:{v}")),
    ];
    let after = prop_oneof![
        6 => Just(String::new()),
        1 => prop::sample::select(vec![" x", "{}", ",", "]", "}", "\u{0}", "\u{a0}", "0"])
            .prop_map(str::to_owned),
    ];
    (
        prop::collection::vec((ws(), member, ws()), 0..7),
        ws(),
        ws(),
        after,
    )
        .prop_map(|(members, a, b, after)| {
            let members: Vec<String> = members
                .into_iter()
                .map(|(x, m, y)| format!("{x}{m}{y}"))
                .collect();
            format!("{a}{{{}}}{b}{after}", members.join(","))
        })
}

/// A notice-like text with a few random edits: a character dropped, doubled
/// or replaced by a piece of JSON syntax.
fn edited() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just(","),
        Just(":"),
        Just("\""),
        Just("\\"),
        Just("{"),
        Just("}"),
        Just("["),
        Just("]"),
        Just("-"),
        Just("."),
        Just("e"),
        Just("0"),
        Just(" "),
        Just("\u{0}"),
        Just("u"),
        Just("\\u"),
        Just("\\ud83d"),
    ];
    let edit = (any::<prop::sample::Index>(), 0u8..3, piece);
    (notice_like(), prop::collection::vec(edit, 1..4)).prop_map(|(text, edits)| {
        let mut chars: Vec<char> = text.chars().collect();
        for (at, how, piece) in edits {
            if chars.is_empty() {
                break;
            }
            let i = at.index(chars.len());
            match how {
                0 => {
                    chars.remove(i);
                }
                1 => chars.insert(i, chars[i]),
                _ => {
                    chars.splice(i..=i, piece.chars());
                }
            }
        }
        chars.into_iter().collect()
    })
}

proptest! {
    #[test]
    fn notices_with_any_unknown_keys_are_read(
        before in prop::collection::vec((any_quoted(), any_json()), 0..4),
        after in prop::collection::vec((any_quoted(), any_json()), 0..4),
        lead in prop_oneof![0u64..100_000, 0..=MAX_NOTICE_LEAD_MS],
        lead_first in any::<bool>(),
        (a, b) in (ws(), ws()),
    ) {
        // Unknown keys never named like the notice's own.
        let known = |k: &str| {
            serde_json::from_str::<String>(k).is_ok_and(|k| k == "type" || k == "close_in_ms")
        };
        let member = |(k, v): &(String, String)| (!known(k)).then(|| format!("{k}{a}:{b}{v}"));
        let mut members: Vec<String> = before.iter().filter_map(member).collect();
        let (t, l) = (
            format!("\"type\"{a}:{b}\"{NOTICE_TYPE}\""),
            format!("\"close_in_ms\"{a}:{b}{lead}"),
        );
        if lead_first { members.extend([l, t]) } else { members.extend([t, l]) }
        members.extend(after.iter().filter_map(member));
        let text = format!("{a}{{{b}{}{a}}}{b}", members.join(&format!("{a},{b}")));
        prop_assert_eq!(parse_notice(&text), Some(lead), "{:?}", text);
        agrees_with_serde_json(&text)?;
    }

    #[test]
    fn notice_parser_never_panics(s in any::<String>(), t in "[ -~]{0,80}") {
        for text in [s.clone(), format!("{s}{NOTICE_TYPE}"), format!("{{\"type\":\"{NOTICE_TYPE}\",{t}")] {
            agrees_with_serde_json(&text)?;
        }
    }

    #[test]
    fn encoded_notices_round_trip(ms in any::<u64>()) {
        let text = encode_notice(ms);
        prop_assert_eq!(parse_notice(&text), Some(ms.min(MAX_NOTICE_LEAD_MS)));
        agrees_with_serde_json(&text)?;
    }
}

proptest! {
    // Broken JSON is where a scanner goes wrong: more cases.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn notice_parser_agrees_with_serde_json(text in notice_like()) {
        agrees_with_serde_json(&text)?;
    }

    #[test]
    fn notice_parser_agrees_with_serde_json_on_broken_json(text in edited()) {
        agrees_with_serde_json(&text)?;
    }
}
