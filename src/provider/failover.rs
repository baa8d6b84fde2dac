//! Failover across an ordered list of (provider, model) candidates.
//!
//! The first candidate is the agent's configured model, the rest its
//! `fallbacks`. A candidate whose error [`fails_over`] (auth, open circuit,
//! overload, quota, exhausted retries…) passes the call to the next; a bad
//! request stops the list, since every provider would reject it. Because the
//! request is provider-neutral, this works in the middle of a multi-step
//! task: each provider's encoder rewrites the conversation so far.
//!
//! [`fails_over`]: super::error::ProviderError::fails_over

use std::time::Duration;

use super::client::Provider;
use super::error::{ErrorKind, ProviderError};
use super::model::{GenerateRequest, GenerateResponse};

/// One place a request may be sent.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The provider client.
    pub provider: Provider,
    /// The model to ask there.
    pub model: String,
}

impl Candidate {
    /// A (provider, model) pair.
    pub fn new(provider: Provider, model: impl Into<String>) -> Self {
        Candidate {
            provider,
            model: model.into(),
        }
    }
}

/// An ordered candidate list; the response names the one that answered.
#[derive(Debug, Clone, Default)]
pub struct Failover {
    candidates: Vec<Candidate>,
}

impl Failover {
    /// A list tried in the given order.
    pub fn new(candidates: Vec<Candidate>) -> Self {
        Failover { candidates }
    }

    /// The candidates, in order.
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// Sends `req` to the first candidate that answers. The request's
    /// `model` is replaced by each candidate's.
    ///
    /// On total failure the error returned is the one that clears soonest —
    /// the smallest `retry_after` among the candidates' errors (a rate limit
    /// or open circuit), so the scheduler can run the job again then — and
    /// otherwise the last candidate's error.
    pub async fn generate(&self, req: GenerateRequest) -> Result<GenerateResponse, ProviderError> {
        let mut soonest: Option<ProviderError> = None;
        let mut last = None;
        for c in &self.candidates {
            let mut r = req.clone();
            r.model.clone_from(&c.model);
            match c.provider.generate(r).await {
                Ok(resp) => return Ok(resp),
                Err(e) if e.fails_over() => {
                    tracing::warn!(provider = %e.provider, model = %e.model, kind = %e.kind,
                        "provider failed; trying next candidate");
                    if let Some(wait) = e.retry_after {
                        let best = soonest.as_ref().and_then(|s| s.retry_after);
                        if best.unwrap_or(Duration::MAX) > wait {
                            soonest = Some(e.clone());
                        }
                    }
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(soonest.or(last).unwrap_or_else(|| {
            ProviderError::new(
                ErrorKind::NoCandidates,
                "-",
                &req.model,
                "no provider candidates configured".into(),
            )
        }))
    }
}
