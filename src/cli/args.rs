//! Parsing of CLI values that clap does not know: durations and JSON.

use serde_json::Value;

pub(crate) use crate::config::parse_duration;

/// Parses a JSON argument, naming the flag in the error.
pub(crate) fn parse_json(flag: &str, text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("invalid JSON in {flag}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_name_the_flag() {
        assert!(parse_json("--args", "{")
            .unwrap_err()
            .starts_with("invalid JSON in --args"));
        assert_eq!(parse_json("--args", "{\"a\":1}").unwrap()["a"], 1);
    }
}
