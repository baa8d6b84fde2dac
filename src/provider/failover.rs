//! Failover across an ordered list of (provider, model) candidates.
//!
//! The first candidate is the agent's configured model, the rest its
//! `fallbacks`. A candidate whose error [`fails_over`] (auth, open circuit,
//! overload, quota, exhausted retries…) passes the call to the next; a bad
//! request stops the list, since every provider would reject it. When all
//! fail, the error returned is the one that clears soonest among those a
//! later attempt can get past, else the last. Because the
//! request is provider-neutral, this works in the middle of a multi-step
//! task: each provider's encoder rewrites the conversation so far.
//!
//! [`fails_over`]: super::error::ProviderError::fails_over

use std::time::Duration;

use super::error::{JobRetry, ProviderError};

#[cfg(test)]
pub(crate) use list::{Candidate, Failover};

/// The same walk over bare provider clients instead of the provider actors
/// ([`ProviderSet::generate`](super::set::ProviderSet::generate) is the one
/// agents use): the tests drive failover with it, without actors.
#[cfg(test)]
mod list {
    use super::TotalFailure;
    use crate::provider::client::Provider;
    use crate::provider::error::{ErrorKind, ProviderError};
    use crate::provider::model::{GenerateRequest, GenerateResponse};

    /// One place a request may be sent.
    #[derive(Debug, Clone)]
    pub(crate) struct Candidate {
        /// The provider client.
        pub provider: Provider,
        /// The model to ask there.
        pub model: String,
    }

    impl Candidate {
        /// A (provider, model) pair.
        pub(crate) fn new(provider: Provider, model: impl Into<String>) -> Self {
            Candidate {
                provider,
                model: model.into(),
            }
        }
    }

    /// An ordered candidate list; the response names the one that answered.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Failover {
        candidates: Vec<Candidate>,
    }

    impl Failover {
        /// A list tried in the given order.
        pub(crate) fn new(candidates: Vec<Candidate>) -> Self {
            Failover { candidates }
        }

        /// Sends `req` to the first candidate that answers. The request's
        /// `model` is replaced by each candidate's.
        ///
        /// On total failure the error returned is, of the errors a later attempt
        /// can get past ([`ProviderError::job_retry`]), the one that clears
        /// soonest (a rate limit's or an open circuit's `retry_after`), so the
        /// scheduler runs the job again then; when none can, the last error.
        pub(crate) async fn generate(
            &self,
            req: GenerateRequest,
        ) -> Result<GenerateResponse, ProviderError> {
            let mut failed = TotalFailure::default();
            for c in &self.candidates {
                let mut r = req.clone();
                r.model.clone_from(&c.model);
                match c.provider.generate(r).await {
                    Ok(resp) => return Ok(resp),
                    Err(e) if e.fails_over() => {
                        tracing::warn!(provider = %e.provider, model = %e.model, kind = %e.kind,
                            "provider failed; trying next candidate");
                        failed.push(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(failed.into_error().unwrap_or_else(|| {
                ProviderError::new(
                    ErrorKind::NoCandidates,
                    "-",
                    &req.model,
                    "no provider candidates configured".into(),
                )
            }))
        }
    }
}

/// Which error a failover list returns when every candidate failed: of the
/// errors a later attempt can get past ([`ProviderError::job_retry`] says
/// retry: a rate limit, an open circuit, an overload…), the one that clears
/// soonest (no known wait counts as soonest); when there is none, the last
/// error. So a job fails only when every candidate's error says waiting
/// cannot help, and when every circuit is open it waits for the first to
/// close.
#[derive(Debug, Default)]
pub(crate) struct TotalFailure {
    soonest: Option<(Duration, ProviderError)>,
    last: Option<ProviderError>,
}

impl TotalFailure {
    /// Takes in one candidate's error, in candidate order.
    pub(crate) fn push(&mut self, e: ProviderError) {
        match e.job_retry() {
            JobRetry::Retry { after } | JobRetry::Wait { after } => {
                let after = after.unwrap_or(Duration::ZERO);
                if self.soonest.as_ref().is_none_or(|(best, _)| after < *best) {
                    self.soonest = Some((after, e));
                }
            }
            JobRetry::Fail => self.last = Some(e),
        }
    }

    /// The error to return; `None` when no candidate was tried.
    pub(crate) fn into_error(self) -> Option<ProviderError> {
        self.soonest.map(|(_, e)| e).or(self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::error::ErrorKind;

    fn error(provider: &str, kind: ErrorKind, retry_after: Option<u64>) -> ProviderError {
        let mut e = ProviderError::new(kind, provider, "m", "x".into());
        e.retry_after = retry_after.map(Duration::from_secs);
        e
    }

    fn pick(errors: Vec<ProviderError>) -> Option<(String, ErrorKind)> {
        let mut failed = TotalFailure::default();
        for e in errors {
            failed.push(e);
        }
        failed.into_error().map(|e| (e.provider, e.kind))
    }

    #[test]
    fn every_circuit_open_returns_the_one_that_closes_first() {
        let picked = pick(vec![
            error("a", ErrorKind::CircuitOpen, Some(25)),
            error("b", ErrorKind::CircuitOpen, Some(10)),
            error("c", ErrorKind::CircuitOpen, Some(40)),
        ]);
        assert_eq!(picked, Some(("b".into(), ErrorKind::CircuitOpen)));
    }

    #[test]
    fn a_retryable_error_wins_over_later_permanent_ones() {
        // A timeout (no known wait) clears soonest of all.
        let picked = pick(vec![
            error("a", ErrorKind::RateLimited, Some(90)),
            error("b", ErrorKind::Timeout, None),
            error("c", ErrorKind::Authentication, None),
        ]);
        assert_eq!(picked, Some(("b".into(), ErrorKind::Timeout)));
        // Quota exhausted everywhere: nothing to wait for, the last error.
        let picked = pick(vec![
            error("a", ErrorKind::QuotaExhausted, Some(60)),
            error("b", ErrorKind::QuotaExhausted, None),
        ]);
        assert_eq!(picked, Some(("b".into(), ErrorKind::QuotaExhausted)));
        assert_eq!(pick(Vec::new()), None);
    }
}
