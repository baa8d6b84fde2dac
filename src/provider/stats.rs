//! Calls to one provider and their errors by class, counted where the
//! [`crate::provider::set::ProviderSet`] sends each call to a provider actor.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::ErrorKind;

/// Answered and failed calls of one provider since the process started.
#[derive(Debug, Default)]
pub(crate) struct CallStats {
    ok: AtomicU64,
    /// Wall time of the answered calls, in microseconds, summed.
    ok_micros: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl CallStats {
    /// Counts an answered call that took `latency`.
    pub(crate) fn record_ok(&self, latency: std::time::Duration) {
        self.ok.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.ok_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The mean wall time of the answered calls, in milliseconds (`None`
    /// before the first).
    pub(crate) fn mean_latency_ms(&self) -> Option<f64> {
        let n = self.ok.load(Ordering::Relaxed);
        let micros = self.ok_micros.load(Ordering::Relaxed);
        (n > 0).then(|| micros as f64 / n as f64 / 1000.0)
    }

    /// Counts a failed call of class `kind`.
    pub(crate) fn record_error(&self, kind: ErrorKind) {
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        *errors.entry(kind_label(kind)).or_insert(0) += 1;
    }

    /// Answered calls.
    pub(crate) fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Failed calls by class (the camelCase name of the [`ErrorKind`]).
    pub(crate) fn errors(&self) -> BTreeMap<&'static str, u64> {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The label of an error class: the kind's camelCase JSON name.
pub(crate) fn kind_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::RateLimited => "rateLimited",
        ErrorKind::QuotaExhausted => "quotaExhausted",
        ErrorKind::Authentication => "authentication",
        ErrorKind::Permission => "permission",
        ErrorKind::ModelNotFound => "modelNotFound",
        ErrorKind::ContextTooLong => "contextTooLong",
        ErrorKind::BadRequest => "badRequest",
        ErrorKind::Overloaded => "overloaded",
        ErrorKind::ServerError => "serverError",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Connection => "connection",
        ErrorKind::MalformedResponse => "malformedResponse",
        ErrorKind::CircuitOpen => "circuitOpen",
        ErrorKind::InvalidConfig => "invalidConfig",
        ErrorKind::NoCandidates => "noCandidates",
        ErrorKind::BudgetExceeded => "budgetExceeded",
        ErrorKind::KeyExpired => "keyExpired",
        ErrorKind::Unavailable => "unavailable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_the_serde_names() {
        for kind in [
            ErrorKind::RateLimited,
            ErrorKind::MalformedResponse,
            ErrorKind::KeyExpired,
            ErrorKind::Unavailable,
        ] {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json.as_str(), Some(kind_label(kind)));
        }
    }
}
