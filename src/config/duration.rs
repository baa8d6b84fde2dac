//! Durations as the config file and the command line write them.

use std::time::Duration;

/// Parses `250ms`, `5s`, `2m`, `1h`, `1d` (one number and one unit).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit; use e.g. 500ms, 5s, 2m, 1h or 1d"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    let millis = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`; use ms, s, m, h or d"
            ))
        }
    }
    .ok_or_else(|| format!("`{text}` is too long a duration"))?;
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(parse_duration("5y")
            .unwrap_err()
            .contains("unknown unit `y`"));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
