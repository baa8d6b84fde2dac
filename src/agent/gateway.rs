//! How an agent reaches its model: a seam between the task loop and the
//! provider actors, so the loop does not care whether the answer comes from
//! an HTTP provider (with failover) or the offline model.

use async_trait::async_trait;

use crate::config::ModelConfig;
use crate::engine::WorkerError;
use crate::job::JobId;
use crate::provider::{GenerateRequest, GenerateResponse, JobRetry, ProviderError, TextSink};

use super::offline::{OfflineModel, OFFLINE_PROVIDER};

/// Who a model call is for: usage and budgets are counted per agent and job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallMeta {
    /// The agent making the call.
    pub agent_id: String,
    /// The task (job) it serves.
    pub job_id: Option<JobId>,
}

/// A failed model call as the job engine takes it: retried or failed as
/// [`ProviderError::job_retry`] decides (its table is the one place that
/// says which), no earlier than the error's `retry_after`, with the provider
/// error as the [`source`](std::error::Error::source). The message is
/// `who` (`agent `sarah``) and the provider error's own, which names the
/// provider and model.
pub(crate) fn job_error(who: &str, e: ProviderError) -> WorkerError {
    let message = format!("{who}: {e}");
    let error = match e.job_retry() {
        JobRetry::Retry { after: None } => WorkerError::retryable(message),
        JobRetry::Retry { after: Some(wait) } => WorkerError::retryable(message).retry_after(wait),
        JobRetry::Wait { after: None } => WorkerError::outage(message),
        JobRetry::Wait { after: Some(wait) } => WorkerError::outage(message).retry_after(wait),
        JobRetry::Fail => WorkerError::permanent(message),
    };
    error.with_source(e)
}

/// Answers model requests for agents.
#[async_trait]
pub trait ModelGateway: Send + Sync + 'static {
    /// Calls the model of `model` (its provider, then its fallbacks in order)
    /// with `request`, built from the same config
    /// ([`ModelConfig::request`]): it carries the sampling settings, and the
    /// gateway sets only its `model` field per candidate.
    async fn generate(
        &self,
        meta: &CallMeta,
        model: &ModelConfig,
        request: GenerateRequest,
    ) -> Result<GenerateResponse, ProviderError>;

    /// [`generate`](Self::generate), streaming the reply (`stream = true`
    /// in the agent's `modelConfig`): its text goes to `text` as it
    /// arrives; the answer is the same. By default the call is not
    /// streamed and `text` hears nothing (a gateway of one's own, the
    /// offline model).
    async fn generate_streaming(
        &self,
        meta: &CallMeta,
        model: &ModelConfig,
        request: GenerateRequest,
        text: TextSink,
    ) -> Result<GenerateResponse, ProviderError> {
        let _ = text;
        self.generate(meta, model, request).await
    }
}

/// A gateway with only the offline model: for tests, the demo without a key,
/// and agents configured with `provider = "offline"`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct OfflineGateway;

#[async_trait]
impl ModelGateway for OfflineGateway {
    async fn generate(
        &self,
        _meta: &CallMeta,
        model: &ModelConfig,
        mut request: GenerateRequest,
    ) -> Result<GenerateResponse, ProviderError> {
        if model.provider != OFFLINE_PROVIDER {
            return Err(ProviderError::new(
                crate::provider::ErrorKind::InvalidConfig,
                &model.provider,
                &model.model,
                "only the offline model is available in this runtime".to_string(),
            ));
        }
        if request.model != model.model {
            request.model.clone_from(&model.model);
        }
        Ok(OfflineModel.generate(&request))
    }
}

/// The gateway of a runtime with configured providers: each model call goes
/// to the provider actors through the [`ProviderSet`](crate::provider::set::ProviderSet),
/// which fails over along `modelConfig.fallbacks`; `provider = "offline"`
/// still reaches the offline model.
#[derive(Clone)]
pub(crate) struct ProviderGateway {
    set: crate::provider::set::ProviderSet,
}

impl ProviderGateway {
    /// A gateway over an attached provider set.
    pub(crate) fn new(set: crate::provider::set::ProviderSet) -> Self {
        Self { set }
    }
}

#[async_trait]
impl ModelGateway for ProviderGateway {
    async fn generate(
        &self,
        meta: &CallMeta,
        model: &ModelConfig,
        request: GenerateRequest,
    ) -> Result<GenerateResponse, ProviderError> {
        if model.provider == OFFLINE_PROVIDER {
            return OfflineGateway.generate(meta, model, request).await;
        }
        self.set.generate(model, generate(meta, request)).await
    }

    async fn generate_streaming(
        &self,
        meta: &CallMeta,
        model: &ModelConfig,
        request: GenerateRequest,
        text: TextSink,
    ) -> Result<GenerateResponse, ProviderError> {
        if model.provider == OFFLINE_PROVIDER {
            return OfflineGateway.generate(meta, model, request).await;
        }
        let msg = generate(meta, request).text(text);
        self.set.generate(model, msg).await
    }
}

/// The provider message of a call for `meta`.
fn generate(meta: &CallMeta, request: GenerateRequest) -> crate::provider::actor::Generate {
    let mut msg = crate::provider::actor::Generate::new(request).agent(meta.agent_id.clone());
    if let Some(job) = meta.job_id {
        msg = msg.job(job);
    }
    msg
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::time::Duration;

    use super::*;
    use crate::provider::ErrorKind;

    #[test]
    fn a_provider_error_becomes_a_job_error_by_its_meaning() {
        let mut e = ProviderError::new(ErrorKind::RateLimited, "openai", "gpt", "slow down".into());
        e.retry_after = Some(Duration::from_secs(120));
        let job = job_error("agent `sarah`", e.clone());
        assert!(job.is_outage(), "a rate limit is waited out: {job:?}");
        assert!(job.is_retryable());
        assert_eq!(job.earliest_retry(), Some(Duration::from_secs(120)));
        assert_eq!(job.to_string(), format!("agent `sarah`: {e}"));
        let source = job.source().and_then(|s| s.downcast_ref::<ProviderError>());
        assert_eq!(source, Some(&e));

        let e = ProviderError::new(ErrorKind::ServerError, "openai", "gpt", "500".into());
        let job = job_error("agent `sarah`", e);
        assert!(
            job.is_retryable() && !job.is_outage(),
            "a 5xx spends an attempt"
        );

        let e = ProviderError::new(ErrorKind::Authentication, "openai", "gpt", "bad key".into());
        let job = job_error("agent `sarah`", e);
        assert!(!job.is_retryable());
        assert!(job.to_string().contains("openai"), "{job}");
    }
}
