//! Property tests of the policy parser: any text in any `WSDRAIN_*` variable
//! gives a policy or an error that names the variable, never a panic.

#![allow(clippy::unwrap_used)]

use std::{collections::HashMap, time::Duration};

use proptest::prelude::*;
use wsdrain_core::{
    DrainPolicy, PolicyError,
    policy::{
        ENV_CLOSE_CODE, ENV_CLOSE_TIMEOUT, ENV_CLOSE_WINDOW, ENV_DRAIN_DELAY, ENV_DURATIONS,
        ENV_GRACE_PERIOD, ENV_MAX_SESSIONS, ENV_RETRY_AFTER_MAX, ENV_RETRY_AFTER_MIN, ENV_SETTINGS,
        parse_duration,
    },
};

const DURATIONS: [&str; 6] = ENV_DURATIONS;
const ALL: [&str; 8] = ENV_SETTINGS;

/// Text near the duration syntax, plus anything at all.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \t]{0,2}[0-9.]{0,25}[ \t]{0,2}(ms|s|m|min|h|us|S|Ms|)[ \t]{0,2}",
        "-?[0-9]{1,6}(\\.[0-9]{0,4})?(e[0-9]{1,3})?(ms|s|m|h)",
        "[0-9]{15,400}(ms|s|m|h)",
        "[0-9]{1,6}",
        "[\\PC]{0,12}",
    ]
}

fn lookup<'a>(vars: &'a HashMap<&'static str, String>) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| vars.get(name).cloned()
}

/// The variable a parse error names, if it is one.
fn named_setting(err: &PolicyError) -> Option<&'static str> {
    match err {
        PolicyError::InvalidDuration { setting, .. }
        | PolicyError::InvalidNumber { setting, .. } => Some(*setting),
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

    /// Every variable set at once: the first bad one (in reading order) is named.
    #[test]
    fn many_values_never_panic(texts in prop::collection::vec(value(), ALL.len())) {
        let vars: HashMap<&'static str, String> =
            ALL.iter().copied().zip(texts.iter().cloned()).collect();
        match DrainPolicy::builder().kubernetes(false).env(lookup(&vars)) {
            Ok(builder) => {
                let _ = builder.build();
            }
            Err(e) => {
                let name = named_setting(&e).expect("a parse error names its setting");
                let first_bad = ALL.iter().copied().find(|n| {
                    let v = &vars[n];
                    if v.trim().is_empty() {
                        return false;
                    }
                    if *n == ENV_CLOSE_CODE {
                        v.trim().parse::<u16>().is_err()
                    } else if *n == ENV_MAX_SESSIONS {
                        v.trim().parse::<usize>().is_err()
                    } else {
                        parse_duration(v).is_none()
                    }
                });
                prop_assert_eq!(Some(name), first_bad);
            }
        }
    }

    /// Valid settings written as text are read back exactly.
    #[test]
    fn written_settings_round_trip(
        delay in 0u64..3_000,
        window in 0u64..10_000,
        timeout in 1u64..5_000,
        extra in 0u64..10_000,
        lo in 0u64..5_000,
        spread in 0u64..5_000,
    ) {
        let grace = 2_000 + delay + window + timeout + extra;
        let vars = HashMap::from([
            (ENV_DRAIN_DELAY, format!("{delay}ms")),
            (ENV_CLOSE_WINDOW, format!("{window}ms")),
            (ENV_CLOSE_TIMEOUT, format!(" {timeout}ms ")),
            (ENV_GRACE_PERIOD, format!("{grace}ms")),
            (ENV_RETRY_AFTER_MIN, format!("{lo}ms")),
            (ENV_RETRY_AFTER_MAX, format!("{}ms", lo + spread)),
        ]);
        let p = DrainPolicy::builder().kubernetes(false).env(lookup(&vars)).unwrap().build().unwrap();
        prop_assert_eq!(p.drain_delay(), Duration::from_millis(delay));
        prop_assert_eq!(p.close_window(), Duration::from_millis(window));
        prop_assert_eq!(p.close_timeout(), Duration::from_millis(timeout));
        prop_assert_eq!(p.grace_period(), Duration::from_millis(grace));
        prop_assert_eq!(p.retry_after_min(), Duration::from_millis(lo));
        prop_assert_eq!(p.retry_after_max(), Duration::from_millis(lo + spread));
    }
}
