//! Parsing the wait and rate-limit headers providers send.
//!
//! Kept apart from classification so the rate limiter can read the same
//! headers from successful responses.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The wait the provider asks for before the next attempt.
///
/// Order: `retry-after-ms`, `retry-after` (seconds or HTTP date), then the
/// reset headers of an exhausted limit (OpenAI `x-ratelimit-reset-*`,
/// Anthropic `anthropic-ratelimit-*-reset`). `now` is a parameter so tests
/// can fix it.
pub(crate) fn retry_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    asked_wait(headers, now).map(|wait| wait.min(MAX_PROVIDER_WAIT))
}

/// The longest wait a provider's headers can impose: a `Retry-After` date
/// years ahead (a clock off at the provider, a proxy's mistake) must not
/// block the provider, and the jobs waiting on it, until a restart. After
/// an hour one call goes out and a provider still limited says so again.
pub(crate) const MAX_PROVIDER_WAIT: Duration = Duration::from_secs(3600);

fn asked_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = header_str(headers, "retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if (0.0..1e12).contains(&ms) {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    if let Some(v) = header_str(headers, "retry-after") {
        if let Ok(secs) = v.parse::<f64>() {
            if (0.0..1e9).contains(&secs) {
                return Some(Duration::from_secs_f64(secs));
            }
        } else if let Ok(at) = httpdate::parse_http_date(v) {
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    let limits = rate_limits(headers, now);
    let exhausted = limits
        .iter()
        .filter(|l| l.remaining == Some(0))
        .filter_map(|l| l.reset)
        .max();
    exhausted.or_else(|| limits.iter().filter_map(|l| l.reset).min())
}

/// Anthropic's explicit retry hint, `x-should-retry: true|false`.
pub(crate) fn should_retry(headers: &HeaderMap) -> Option<bool> {
    match header_str(headers, "x-should-retry")? {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// What a provider reported about one of its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LimitReport {
    /// Whether this is the requests or the tokens limit.
    pub dimension: Dimension,
    /// The limit per minute, if reported.
    pub limit: Option<u64>,
    /// What is left in the current window, if reported.
    pub remaining: Option<u64>,
    /// Time until the window refills, if reported.
    pub reset: Option<Duration>,
}

/// The two quantities providers limit per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Dimension {
    /// Requests per minute.
    Requests,
    /// Tokens per minute.
    Tokens,
}

/// Header names of one limit: (dimension, limit, remaining, reset, reset is RFC 3339).
const LIMIT_HEADERS: [(Dimension, &str, &str, &str, bool); 4] = [
    // OpenAI (and proxies copying it): resets are durations like `6s`, `1m30s`.
    (
        Dimension::Requests,
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        false,
    ),
    (
        Dimension::Tokens,
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
        false,
    ),
    // Anthropic: resets are RFC 3339 instants.
    (
        Dimension::Requests,
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
        true,
    ),
    (
        Dimension::Tokens,
        "anthropic-ratelimit-tokens-limit",
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
        true,
    ),
];

/// All limit reports found in `headers`, OpenAI and Anthropic styles.
pub(crate) fn rate_limits(headers: &HeaderMap, now: SystemTime) -> Vec<LimitReport> {
    let any = headers.keys().any(|k| {
        let k = k.as_str();
        k.starts_with("x-ratelimit-") || k.starts_with("anthropic-ratelimit-")
    });
    if !any {
        return Vec::new();
    }
    let num = |n: &str| header_str(headers, n).and_then(|v| v.parse::<u64>().ok());
    let mut out = Vec::new();
    for (dimension, limit, remaining, reset, rfc3339) in LIMIT_HEADERS {
        let reset = header_str(headers, reset)
            .and_then(|v| {
                if rfc3339 {
                    until_rfc3339(v, now)
                } else {
                    parse_duration(v)
                }
            })
            .map(|reset| reset.min(MAX_PROVIDER_WAIT));
        let limit = num(limit);
        let remaining = num(remaining);
        if reset.is_some() || limit.is_some() || remaining.is_some() {
            out.push(LimitReport {
                dimension,
                limit,
                remaining,
                reset,
            });
        }
    }
    out
}

fn until_rfc3339(v: &str, now: SystemTime) -> Option<Duration> {
    let at = chrono::DateTime::parse_from_rfc3339(v).ok()?;
    let at: SystemTime = at.with_timezone(&chrono::Utc).into();
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses OpenAI's reset durations: `6s`, `12ms`, `1m30s`, `0.5s`, `2h3m4.5s`.
pub(crate) fn parse_duration(v: &str) -> Option<Duration> {
    let bytes = v.as_bytes();
    let mut i = 0;
    let mut total = 0.0f64;
    let mut any = false;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let n: f64 = v.get(start..i)?.parse().ok()?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let factor = match v.get(unit_start..i)? {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        total += n * factor;
        any = true;
    }
    if any && total.is_finite() && total < 1e9 {
        Some(Duration::from_secs_f64(total))
    } else {
        None
    }
}
