//! Rates such as `new_sessions_per_client = "20/s"`: a whole number of events per second or per
//! minute, stored as events per second (a per-minute rate rounds up, so `"1/m"` still limits).

/// Parses `N/s` or `N/m` into events per second; `0/s` (or `0/m`) means no limit.
pub(crate) fn parse_rate(raw: &str) -> Result<u32, String> {
    let bad = || {
        format!("invalid rate \"{raw}\", expected a whole number per second or minute such as \"20/s\" or \"600/m\" (\"0/s\" = no limit)")
    };
    let (count, unit) = raw.trim().split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    match unit.trim() {
        "s" => Ok(count),
        "m" => Ok(count.div_ceil(60)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("0/s"), Ok(0));
        assert_eq!(parse_rate("20/s"), Ok(20));
        assert_eq!(parse_rate(" 600 / m "), Ok(10));
        assert_eq!(parse_rate("1/m"), Ok(1));
        for bad in ["", "20", "20/h", "-1/s", "x/s", "1.5/s", "/s"] {
            assert!(
                parse_rate(bad).unwrap_err().contains("invalid rate"),
                "{bad}"
            );
        }
    }
}
