//! Human durations, as operators write them in Kubernetes manifests and Go
//! flags: `1m30s`, `500ms`, `0.5s`, `0`; read, and written back the same way.

use std::{fmt, time::Duration};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Parses a human duration, the way Go's `time.ParseDuration` and Kubernetes
/// write them, plus a few long unit names.
///
/// * One or more `<number><unit>` parts, largest unit first, each unit at
///   most once: `5s`, `1500ms`, `2m`, `1h`, `1m30s`, `1h2m3s`, `2m500ms`.
/// * A number is digits with an optional fraction: `0.5s`, `1.5h`
///   (not `.5s`, `5.s`, signs or exponents). Precision is the nanosecond;
///   further digits are dropped.
/// * Units, in any letter case (`5S`, `2MIN`): `ms` (`msec`, `msecs`,
///   `millisecond(s)`), `s` (`sec`, `secs`, `second(s)`), `m` (`min`, `mins`,
///   `minute(s)`), `h` (`hr`, `hrs`, `hour(s)`). Go's `us` and `ns` are
///   refused: no setting here means anything below a millisecond.
/// * Spaces around the text, and between parts or before a unit, are
///   allowed (`1m 30s`, `5 s`).
/// * `0` alone needs no unit. Any other number without one is refused
///   (`5` could mean seconds or milliseconds).
///
/// Returns `None` for anything else, and for a total beyond `Duration::MAX`.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use wsdrain_core::policy::parse_duration;
///
/// assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
/// assert_eq!(parse_duration("0.5s"), Some(Duration::from_millis(500)));
/// assert_eq!(parse_duration("2mins"), Some(Duration::from_secs(120)));
/// assert_eq!(parse_duration("5"), None);
/// ```
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    // Nanoseconds per unit of the previous part: the next must be smaller.
    let mut previous_unit = u128::MAX;
    while !rest.is_empty() {
        let (nanos, unit, after) = part(rest)?;
        if unit >= previous_unit {
            return None;
        }
        previous_unit = unit;
        total = total.checked_add(nanos)?;
        rest = after.trim_start();
    }
    let secs = u64::try_from(total / NANOS_PER_SEC).ok()?;
    let sub = u32::try_from(total % NANOS_PER_SEC).ok()?;
    Some(Duration::new(secs, sub))
}

/// One `<number><unit>` part at the start of `text`: its nanoseconds, the
/// unit's nanoseconds, and what follows.
fn part(text: &str) -> Option<(u128, u128, &str)> {
    let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let whole_len = digits(text);
    if whole_len == 0 {
        return None;
    }
    let (whole, mut rest) = text.split_at(whole_len);
    let mut fraction = "";
    if let Some(after_dot) = rest.strip_prefix('.') {
        let len = digits(after_dot);
        if len == 0 {
            return None;
        }
        (fraction, rest) = after_dot.split_at(len);
    }
    let rest = rest.trim_start();
    let unit_len = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    let (unit, after) = rest.split_at(unit_len);
    let unit = unit_nanos(unit)?;
    let whole: u128 = whole.parse().ok()?;
    let mut nanos = whole.checked_mul(unit)?;
    // Digits past the 18th are below a nanosecond for every unit (an hour is
    // 3.6e12 ns): dropped, which also keeps the arithmetic in range.
    let fraction = &fraction[..fraction.len().min(18)];
    if !fraction.is_empty() {
        let numerator: u128 = fraction.parse().ok()?;
        let len = u32::try_from(fraction.len()).ok()?;
        nanos = nanos.checked_add(numerator * unit / 10u128.pow(len))?;
    }
    Some((nanos, unit, after))
}

/// Nanoseconds in one `unit`, written in any letter case.
fn unit_nanos(unit: &str) -> Option<u128> {
    const UNITS: [(&[&str], u128); 4] = [
        (
            &["ms", "msec", "msecs", "millisecond", "milliseconds"],
            1_000_000,
        ),
        (&["s", "sec", "secs", "second", "seconds"], NANOS_PER_SEC),
        (
            &["m", "min", "mins", "minute", "minutes"],
            60 * NANOS_PER_SEC,
        ),
        (&["h", "hr", "hrs", "hour", "hours"], 3_600 * NANOS_PER_SEC),
    ];
    UNITS
        .iter()
        .find(|(names, _)| names.iter().any(|n| n.eq_ignore_ascii_case(unit)))
        .map(|(_, nanos)| *nanos)
}

/// A duration written for people, in the forms [`parse_duration`] reads:
/// `0s`, `250ms`, `1.5s`, `12s`, `2m`, `1m30s`, `1h5m`; below a second to the
/// microsecond (`3.217ms`), from a second on to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Readable(pub(crate) Duration);

impl fmt::Display for Readable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        if d < Duration::from_micros(1) {
            return write!(f, "{}ns", d.subsec_nanos());
        }
        // Below what rounds to a second: microseconds, rounded, shown as
        // milliseconds with up to 3 decimals.
        if d < Duration::from_nanos(999_999_500) {
            let micros = (d.as_nanos() + 500) / 1_000;
            return write_decimal(f, micros, 1_000, "ms");
        }
        // Milliseconds, rounded; hours and minutes apart, then seconds.
        let millis = (d.as_nanos() + 500_000) / 1_000_000;
        let (hours, rest) = (millis / 3_600_000, millis % 3_600_000);
        let (minutes, millis) = (rest / 60_000, rest % 60_000);
        if hours > 0 {
            write!(f, "{hours}h")?;
        }
        if minutes > 0 {
            write!(f, "{minutes}m")?;
        }
        if millis > 0 || (hours == 0 && minutes == 0) {
            write_decimal(f, millis, 1_000, "s")?;
        }
        Ok(())
    }
}

/// `value / per` with the fraction's trailing zeros dropped, then `unit`.
fn write_decimal(f: &mut fmt::Formatter<'_>, value: u128, per: u128, unit: &str) -> fmt::Result {
    let (whole, mut fraction) = (value / per, value % per);
    if fraction == 0 {
        return write!(f, "{whole}{unit}");
    }
    let mut digits = 3;
    while fraction % 10 == 0 {
        fraction /= 10;
        digits -= 1;
    }
    write!(f, "{whole}.{fraction:0digits$}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn go_and_kubernetes_forms() {
        assert_eq!(parse_duration("5s"), ms(5_000));
        assert_eq!(parse_duration("1500ms"), ms(1_500));
        assert_eq!(parse_duration("500ms"), ms(500));
        assert_eq!(parse_duration("0.5s"), ms(500));
        assert_eq!(parse_duration("2m"), ms(120_000));
        assert_eq!(parse_duration(" 1h "), ms(3_600_000));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_duration("1m30s"), ms(90_000));
        assert_eq!(parse_duration("1h2m3s"), ms(3_723_000));
        assert_eq!(parse_duration("1h2m3.5s"), ms(3_723_500));
        assert_eq!(parse_duration("2m500ms"), ms(120_500));
        assert_eq!(parse_duration("1.5h"), ms(5_400_000));
        assert_eq!(
            parse_duration("1.0000000015s"),
            Some(Duration::new(1, 1)),
            "nanosecond precision, further digits dropped"
        );
    }

    #[test]
    fn any_case_and_long_units() {
        assert_eq!(parse_duration("5S"), ms(5_000));
        assert_eq!(parse_duration("5MS"), ms(5));
        assert_eq!(parse_duration("2M"), ms(120_000));
        assert_eq!(parse_duration("1H30M"), ms(5_400_000));
        for text in ["30sec", "30secs", "30second", "30seconds", "30 Sec"] {
            assert_eq!(parse_duration(text), ms(30_000), "{text:?}");
        }
        for text in ["2min", "2mins", "2minute", "2minutes", "2MIN"] {
            assert_eq!(parse_duration(text), ms(120_000), "{text:?}");
        }
        for text in ["1hr", "1hrs", "1hour", "1hours"] {
            assert_eq!(parse_duration(text), ms(3_600_000), "{text:?}");
        }
        for text in ["250msec", "250msecs", "250milliseconds"] {
            assert_eq!(parse_duration(text), ms(250), "{text:?}");
        }
        assert_eq!(parse_duration("1m 30s"), ms(90_000));
        assert_eq!(parse_duration("5 s"), ms(5_000));
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            " ",
            "5",
            "00",
            "abc",
            "-1s",
            "+1s",
            "5 parsecs",
            "1e3s",
            ".5s",
            "5.s",
            "s",
            "1.2.3s",
            "5us",
            "5ns",
            "5µs",
            "30s1m",
            "1m1m",
            "1m30",
            "1s 5",
            "1 h 2",
            "5s,",
            "5ſ",
            "1d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(parse_duration("99999999999999999999999h"), None);
        assert_eq!(
            parse_duration(&format!("{}s", u64::MAX)),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse_duration(&format!("{}s1s", u64::MAX)), None);
    }

    #[test]
    fn written_for_people_and_read_back() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(400), "400ns"),
            (Duration::from_micros(250), "0.25ms"),
            (Duration::from_nanos(3_217_384), "3.217ms"),
            (Duration::from_millis(30), "30ms"),
            (Duration::from_millis(999), "999ms"),
            (Duration::from_millis(1_000), "1s"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_millis(12_000), "12s"),
            (Duration::from_millis(2_345), "2.345s"),
            (Duration::from_secs(60), "1m"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(120_500), "2m0.5s"),
            (Duration::from_secs(3_600), "1h"),
            (Duration::from_secs(3_723), "1h2m3s"),
            (Duration::from_secs(3_900), "1h5m"),
        ];
        for (d, text) in cases {
            assert_eq!(Readable(d).to_string(), text, "{d:?}");
            // What is shown to the microsecond (to the millisecond from 1s on) reads back.
            if d.as_nanos() % 1_000 == 0 && d.as_nanos() >= 1_000 {
                assert_eq!(parse_duration(text), Some(d), "{text} reads back");
            }
        }
        assert_eq!(
            Readable(Duration::from_nanos(999_999_999)).to_string(),
            "1s"
        );
        assert_eq!(
            Readable(Duration::from_nanos(1_999_999_999)).to_string(),
            "2s"
        );
    }
}
