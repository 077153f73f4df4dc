//! Property tests of the policy parser: any text in any `WSDRAIN_*` variable
//! gives a policy or an error that names the variable, never a panic.

#![allow(clippy::unwrap_used)]

use std::{collections::HashMap, time::Duration};

use proptest::prelude::*;
use wsdrain_core::{
    DrainPolicy, PolicyError,
    policy::{
        ENV_CLOSE_CODE, ENV_CLOSE_TIMEOUT, ENV_CLOSE_WINDOW, ENV_CLOSING_UPGRADES, ENV_DRAIN_DELAY,
        ENV_DURATIONS, ENV_GRACE_PERIOD, ENV_MAX_SESSIONS, ENV_NOTICE_LEAD, ENV_RETRY_AFTER_MAX,
        ENV_RETRY_AFTER_MIN, ENV_SETTINGS, parse_duration,
    },
};

const DURATIONS: [&str; 7] = ENV_DURATIONS;
const ALL: [&str; 10] = ENV_SETTINGS;

/// Text near the duration syntax, plus anything at all.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \t]{0,2}[0-9.]{0,25}[ \t]{0,2}(ms|s|m|min|h|us|S|Ms|)[ \t]{0,2}",
        "([0-9]{1,4}(\\.[0-9]{1,3})?[ ]?(h|m|s|ms|Min|SECS|hour|us|d)[ ]?){1,4}",
        "-?[0-9]{1,6}(\\.[0-9]{0,4})?(e[0-9]{1,3})?(ms|s|m|h)",
        "[0-9]{15,400}(ms|s|m|h)",
        "[0-9]{1,6}",
        "[\\PC]{0,12}",
    ]
}

/// Go's `time.Duration.String()` for a whole number of milliseconds.
fn go_string(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let (h, m, s, frac) = (
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1_000 % 60,
        ms % 1_000,
    );
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&s.to_string());
    if frac > 0 {
        out.push_str(format!(".{frac:03}").trim_end_matches('0'));
    }
    out.push('s');
    out
}

fn lookup<'a>(vars: &'a HashMap<&'static str, String>) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| vars.get(name).cloned()
}

/// The variable a parse error names, if it is one.
fn named_setting(err: &PolicyError) -> Option<&'static str> {
    match err {
        PolicyError::InvalidDuration { setting, .. }
        | PolicyError::InvalidNumber { setting, .. }
        | PolicyError::InvalidChoice { setting, .. } => Some(*setting),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    /// `parse_duration` never panics; what it accepts is finite and agrees
    /// with a trimmed copy of the input.
    #[test]
    fn parse_duration_never_panics(text in value()) {
        let parsed = parse_duration(&text);
        prop_assert_eq!(parsed, parse_duration(text.trim()));
        if parsed.is_some() {
            let t = text.trim();
            prop_assert!(t.is_ascii(), "accepted non-ASCII {:?}", text);
            prop_assert!(t.starts_with(|c: char| c.is_ascii_digit()), "{:?}", text);
        }
    }

    /// Whole numbers with a unit parse to exactly that many units.
    #[test]
    fn whole_units_parse_exactly(n in 0u64..1_000_000, unit in prop::sample::select(vec!["ms", "s", "m", "h"])) {
        let expected = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            _ => Duration::from_secs(n * 3600),
        };
        prop_assert_eq!(parse_duration(&format!("{n}{unit}")), Some(expected));
    }

    /// Compound durations, Go's way (`1h2m3s`, `2m500ms`), any subset of
    /// parts in order, units in any case and long or short, parse exactly.
    #[test]
    fn compound_durations_parse_exactly(
        parts in prop::collection::vec((0u64..100_000, any::<bool>(), 0usize..4, 0u8..3), 4),
        spaced in any::<bool>(),
    ) {
        // (name forms, ms per unit), largest first, as the parser requires.
        let units: [(&[&str], u64); 4] = [
            (&["h", "hr", "hrs", "hour", "hours"], 3_600_000),
            (&["m", "min", "mins", "minute"], 60_000),
            (&["s", "sec", "secs", "seconds"], 1_000),
            (&["ms", "msec", "msecs", "milliseconds"], 1),
        ];
        let mut text = String::new();
        let mut expected = Duration::ZERO;
        for ((n, present, form, case), (names, unit_ms)) in parts.iter().zip(units) {
            if !present {
                continue;
            }
            let name = names[*form % names.len()];
            let name = match case {
                0 => name.to_owned(),
                1 => name.to_ascii_uppercase(),
                _ => name[..1].to_ascii_uppercase() + &name[1..],
            };
            if spaced && !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&format!("{n}{name}"));
            expected += Duration::from_millis(n * unit_ms);
        }
        if text.is_empty() {
            text.push('0');
        }
        prop_assert_eq!(parse_duration(&text), Some(expected), "{:?}", text);
    }

    /// What Go's `time.Duration.String()` prints (here for whole
    /// milliseconds: `1h2m3.5s`, `500ms`, `0s`) parses back to the same value.
    #[test]
    fn go_duration_strings_round_trip(ms in prop_oneof![0u64..2_000, 0u64..400_000_000]) {
        let text = go_string(ms);
        prop_assert_eq!(parse_duration(&text), Some(Duration::from_millis(ms)), "{}", text);
    }

    /// Units are case-insensitive: upper-casing the ASCII of any text changes
    /// nothing about what it parses to.
    #[test]
    fn units_ignore_ascii_case(text in value()) {
        prop_assert_eq!(parse_duration(&text.to_ascii_uppercase()), parse_duration(&text));
        prop_assert_eq!(parse_duration(&text.to_ascii_lowercase()), parse_duration(&text));
    }

    /// A number followed by an unknown unit, or by none (except a bare `0`),
    /// is refused.
    #[test]
    fn unknown_or_missing_units_are_refused(n in 0u64..1_000_000, unit in "[a-zA-Z]{0,8}") {
        let known = [
            "ms", "msec", "msecs", "millisecond", "milliseconds", "s", "sec", "secs", "second",
            "seconds", "m", "min", "mins", "minute", "minutes", "h", "hr", "hrs", "hour", "hours",
        ];
        let text = format!("{n}{unit}");
        let accepted = parse_duration(&text).is_some();
        let expected = known.iter().any(|k| k.eq_ignore_ascii_case(&unit)) || (unit.is_empty() && n == 0);
        prop_assert_eq!(accepted, expected, "{:?}", text);
    }

    /// One variable set to anything: a policy, or an error naming that
    /// variable (parse errors) or a validation error; never a panic.
    #[test]
    fn any_single_value_is_parsed_or_named(index in 0..ALL.len(), text in value()) {
        let name = ALL[index];
        let vars = HashMap::from([(name, text.clone())]);
        match DrainPolicy::builder().kubernetes(false).env(lookup(&vars)) {
            Ok(builder) => {
                // It parsed; building either validates or says why, naming settings.
                if let Err(e) = builder.build() {
                    prop_assert!(named_setting(&e).is_none(), "parse error at build: {e}");
                    let msg = e.to_string();
                    prop_assert!(msg.contains("WSDRAIN_") || msg.contains("min_close_rate"), "{msg}");
                }
            }
            Err(e) => {
                prop_assert_eq!(named_setting(&e), Some(name), "{}", e);
                let msg = e.to_string();
                prop_assert!(msg.contains(name), "{msg}");
                // The value is quoted in the message (Debug-escaped).
                prop_assert!(msg.contains(&format!("{:?}", text)), "{msg}");
                if DURATIONS.contains(&name) {
                    prop_assert!(parse_duration(&text).is_none());
                }
            }
        }
    }

    /// Every variable set at once: every bad one (an empty one too) is
    /// named, in reading order, in one error.
    #[test]
    fn many_values_are_all_named_at_once(texts in prop::collection::vec(value(), ALL.len())) {
        let vars: HashMap<&'static str, String> =
            ALL.iter().copied().zip(texts.iter().cloned()).collect();
        let bad: Vec<&'static str> = ALL
            .iter()
            .copied()
            .filter(|n| {
                let v = vars[n].trim();
                let reads = if *n == ENV_CLOSE_CODE {
                    v.parse::<u16>().is_ok()
                } else if *n == ENV_MAX_SESSIONS {
                    v.parse::<usize>().is_ok()
                } else if *n == ENV_CLOSING_UPGRADES {
                    ["refuse", "close-1013"].contains(&v.to_ascii_lowercase().as_str())
                } else {
                    parse_duration(v).is_some()
                };
                !reads
            })
            .collect();
        match DrainPolicy::builder().kubernetes(false).env(lookup(&vars)) {
            Ok(builder) => {
                prop_assert!(bad.is_empty(), "{:?} read", bad);
                let _ = builder.build();
            }
            Err(e) => {
                let named: Vec<&'static str> = e
                    .errors()
                    .iter()
                    .map(|e| named_setting(e).expect("a parse error names its setting"))
                    .collect();
                prop_assert_eq!(named, bad);
            }
        }
    }

    /// Valid settings written as text are read back exactly.
    #[test]
    fn written_settings_round_trip(
        delay in 0u64..3_000,
        window in 0u64..10_000,
        timeout in 1u64..5_000,
        lead in 0u64..5_000,
        extra in 0u64..10_000,
        lo in 0u64..5_000,
        spread in 0u64..5_000,
    ) {
        // The slowest session: delay + window + lead + 2 × timeout, before grace − 2 s.
        let grace = 2_000 + delay + window + lead + 2 * timeout + extra;
        let vars = HashMap::from([
            (ENV_DRAIN_DELAY, format!("{delay}ms")),
            (ENV_CLOSE_WINDOW, format!("{window}ms")),
            (ENV_CLOSE_TIMEOUT, format!(" {timeout}ms ")),
            (ENV_NOTICE_LEAD, format!("{lead}ms")),
            (ENV_GRACE_PERIOD, format!("{grace}ms")),
            (ENV_RETRY_AFTER_MIN, format!("{lo}ms")),
            (ENV_RETRY_AFTER_MAX, format!("{}ms", lo + spread)),
        ]);
        let p = DrainPolicy::builder().kubernetes(false).env(lookup(&vars)).unwrap().build().unwrap();
        prop_assert_eq!(p.drain_delay(), Duration::from_millis(delay));
        prop_assert_eq!(p.close_window(), Duration::from_millis(window));
        prop_assert_eq!(p.close_timeout(), Duration::from_millis(timeout));
        prop_assert_eq!(p.notice_lead(), Duration::from_millis(lead));
        prop_assert_eq!(p.grace_period(), Duration::from_millis(grace));
        prop_assert_eq!(p.retry_after_min(), Duration::from_millis(lo));
        prop_assert_eq!(p.retry_after_max(), Duration::from_millis(lo + spread));
    }
}
