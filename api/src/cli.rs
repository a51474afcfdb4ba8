//! Parsers for command-line values that several binaries share.

use std::time::Duration;

/// Seconds, fractions allowed: `10`, `0.5`.
pub fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(format!("{text:?} must be between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Whole milliseconds, at least 1: `250`.
pub fn millis(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<u64>() {
        Ok(ms) if (1..=86_400_000).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err(format!(
            "{text:?} is not a number of milliseconds between 1 and 86400000"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        assert!(seconds("0").is_err());
        assert!(seconds("-1").is_err());
        assert!(seconds("ten").is_err());
        assert!(seconds("NaN").is_err());
        assert_eq!(millis("250"), Ok(Duration::from_millis(250)));
        assert!(millis("0").is_err());
        assert!(millis("1.5").is_err());
    }
}
