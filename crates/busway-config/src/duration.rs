//! Durations as the configuration spells them: a decimal number and a unit (`"250ms"`, `"1.5s"`).
//!
//! Parsing is exact (integer arithmetic on nanoseconds, no floats), so `"0.1s"` is exactly 100 ms
//! and `render` can print any parsed value back in a form that parses to the same `Duration`.

use std::time::Duration;

/// Units accepted after the number, with their length in nanoseconds. Longest spelling first is
/// not needed: the unit is the whole alphabetic tail, compared exactly.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// More fractional digits than this cannot change a nanosecond count of any unit above.
const MAX_FRACTION_DIGITS: usize = 18;
/// 100 years. Every duration is added to a clock reading somewhere (a deadline); larger values
/// would overflow that addition, and none of them means anything different from "never".
const MAX_SECS: u64 = 876_000 * 3600;

/// Parses `"250ms"`, `"3s"`, `"1m"`, `"1h"`, `"0s"`, `"1.5s"` (also `ns` and `us`).
///
/// The unit is required even for zero, so a bare `"3"` (seconds? milliseconds?) is never guessed.
/// Fractions finer than a nanosecond are truncated.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err("empty duration, expected e.g. \"3s\"".to_string());
    }
    if s.starts_with('-') {
        return Err("negative durations are not allowed".to_string());
    }
    let unit_at = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(unit_at);
    if unit.is_empty() {
        return Err("missing unit, expected one of ns, us, ms, s, m, h (e.g. \"3s\")".to_string());
    }
    let Some(&(_, unit_ns)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(format!(
            "unknown unit \"{unit}\", expected one of ns, us, ms, s, m, h"
        ));
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() || (number.contains('.') && fraction.is_empty()) || fraction.contains('.') {
        return Err("expected a number before the unit, e.g. \"3s\" or \"1.5s\"".to_string());
    }
    let too_large = || "duration is too large (at most 876000h, 100 years)".to_string();
    let mut nanos: u128 = 0;
    for d in whole.bytes() {
        nanos = nanos
            .checked_mul(10)
            .and_then(|n| n.checked_add(u128::from(d - b'0')))
            .ok_or_else(too_large)?;
    }
    nanos = nanos.checked_mul(unit_ns).ok_or_else(too_large)?;
    let fraction = &fraction[..fraction.len().min(MAX_FRACTION_DIGITS)];
    if !fraction.is_empty() {
        let mut frac: u128 = 0;
        for d in fraction.bytes() {
            frac = frac * 10 + u128::from(d - b'0');
        }
        let scale = 10u128.pow(fraction.len() as u32);
        nanos = nanos
            .checked_add(frac * unit_ns / scale)
            .ok_or_else(too_large)?;
    }
    let secs = u64::try_from(nanos / 1_000_000_000)
        .ok()
        .filter(|s| *s < MAX_SECS || (*s == MAX_SECS && nanos.is_multiple_of(1_000_000_000)))
        .ok_or_else(too_large)?;
    let sub = (nanos % 1_000_000_000) as u32;
    Ok(Duration::new(secs, sub))
}

/// Prints a duration with the largest unit that represents it exactly (`"10s"`, `"250ms"`,
/// `"1m"`), so the output is short and parses back to the same value.
pub(crate) fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    for &(name, unit_ns) in UNITS.iter().rev() {
        if name == "µs" {
            continue;
        }
        let (count, rest) = (nanos / unit_ns, nanos % unit_ns);
        if rest == 0 {
            return format!("{count}{name}");
        }
    }
    format!("{nanos}ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.1s"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("20us"), Ok(Duration::from_micros(20)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
    }

    #[test]
    fn rejects_bad_forms_with_a_reason() {
        assert!(parse_duration("").unwrap_err().contains("empty"));
        assert!(parse_duration("-1s").unwrap_err().contains("negative"));
        assert_eq!(
            parse_duration("3x").unwrap_err(),
            "unknown unit \"x\", expected one of ns, us, ms, s, m, h"
        );
        assert!(parse_duration("3").unwrap_err().contains("missing unit"));
        assert!(parse_duration("s").unwrap_err().contains("number"));
        assert!(parse_duration("1.s").unwrap_err().contains("number"));
        assert!(parse_duration(".5s").unwrap_err().contains("number"));
        assert!(parse_duration("1.2.3s").is_err());
        assert!(parse_duration(" 3s").is_err());
        assert!(parse_duration("3 s").is_err());
    }

    #[test]
    fn rejects_overflow() {
        assert!(parse_duration("99999999999999999999999999999999999999999h")
            .unwrap_err()
            .contains("too large"));
        // 100 years fits; a second more, or u64::MAX seconds, does not.
        assert_eq!(
            parse_duration("876000h").unwrap(),
            Duration::from_secs(876_000 * 3600)
        );
        assert!(parse_duration("3153600001s")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_duration("18446744073709551615s")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn format_picks_the_largest_exact_unit_and_round_trips() {
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        for s in ["1.5s", "3s", "250ms", "90s", "1.0000001s", "17ns", "4h"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{s}");
        }
    }
}
