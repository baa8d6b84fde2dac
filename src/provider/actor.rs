//! The provider actor: one per configured provider, supervised under the
//! daemon's `providers` supervisor (see [`super::set::ProviderSet`]).
//!
//! Owns: the provider's client ([`Provider`]: HTTP, rate limiter, circuit
//! breaker, retries — shared with the set, so breaker and limiter state
//! survive a restart and are readable without a message), its key's expiry
//! date, and the [`UsageMeter`] it accounts calls to.
//!
//! Takes:
//! - [`Generate`] → `Result<GenerateResponse, ProviderError>`: refuse an
//!   expired key, check the agent's budget, call the model, record usage.
//!   Runs as a reply future, so the mailbox never waits on the network.
//! - [`Probe`] → `Result<Duration, ProviderError>`: the health probe (lists
//!   models; spends no tokens).

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use troupe_actors::{Actor, ChildSpec, Context, Handler, Message, Reply};

use super::client::Provider;
use super::error::{ErrorKind, ProviderError};
use super::model::{GenerateRequest, GenerateResponse};
use super::stream::TextSink;
use crate::job::JobId;
use crate::provider::{CallRecord, UsageMeter};
use crate::secrets::check_expiry;

/// Mailbox bound of a provider actor: callers wait beyond it. Calls are
/// short-lived messages (each becomes a future at once), so this only
/// bounds bursts.
pub(crate) const PROVIDER_MAILBOX: usize = 256;

/// Ask a provider for the next turn. The one message agents send providers.
#[derive(Debug, Clone)]
pub struct Generate {
    /// The conversation and settings; `model` is the model to ask.
    pub request: GenerateRequest,
    /// The agent the call serves: its budget is checked and its usage
    /// recorded.
    pub agent: Option<String>,
    /// The job the call serves, recorded with the usage.
    pub job: Option<JobId>,
    /// Where the reply's text goes as it arrives: set, the call streams.
    pub text: Option<TextSink>,
}

impl Generate {
    /// A call on behalf of nobody in particular (no budget applies).
    pub fn new(request: GenerateRequest) -> Self {
        Generate {
            request,
            agent: None,
            job: None,
            text: None,
        }
    }

    /// Names the agent served (builder style).
    pub fn agent(mut self, agent: impl Into<String>) -> Self {
        self.agent = Some(agent.into());
        self
    }

    /// Names the job served (builder style).
    pub(crate) fn job(mut self, job: JobId) -> Self {
        self.job = Some(job);
        self
    }

    /// Streams the reply, its text to `sink` as it arrives (builder style).
    pub(crate) fn text(mut self, sink: TextSink) -> Self {
        self.text = Some(sink);
        self
    }
}

impl Message for Generate {
    type Result = Result<GenerateResponse, ProviderError>;
}

/// Health probe: the round trip of listing the provider's models.
#[derive(Debug, Clone, Copy)]
pub struct Probe;

impl Message for Probe {
    type Result = Result<Duration, ProviderError>;
}

/// One provider as a supervised actor. Cloning shares the same client,
/// which is what the child factory does at every (re)start.
#[derive(Clone)]
pub struct ProviderActor {
    shared: Arc<Shared>,
}

struct Shared {
    provider: Provider,
    key_expires: Option<NaiveDate>,
    meter: Option<UsageMeter>,
}

impl std::fmt::Debug for ProviderActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderActor")
            .field("provider", &self.shared.provider.name())
            .field("key_expires", &self.shared.key_expires)
            .field("metered", &self.shared.meter.is_some())
            .finish()
    }
}

impl ProviderActor {
    /// An actor for `provider`. `key_expires` is the first UTC day its key is
    /// refused on; `meter` (if any) enforces budgets and records usage.
    pub fn new(
        provider: Provider,
        key_expires: Option<NaiveDate>,
        meter: Option<UsageMeter>,
    ) -> Self {
        ProviderActor {
            shared: Arc::new(Shared {
                provider,
                key_expires,
                meter,
            }),
        }
    }

    /// The client this actor forwards to.
    pub(crate) fn provider(&self) -> &Provider {
        &self.shared.provider
    }

    /// The key's expiry date, if it has one.
    pub(crate) fn key_expires(&self) -> Option<NaiveDate> {
        self.shared.key_expires
    }

    /// A permanent child named after the provider, rebuilt from this value
    /// at every restart.
    pub(crate) fn child_spec(&self) -> ChildSpec<ProviderActor> {
        let proto = self.clone();
        ChildSpec::new(self.shared.provider.name().to_string(), move || {
            proto.clone()
        })
        .mailbox(PROVIDER_MAILBOX)
    }
}

impl Actor for ProviderActor {}

impl Handler<Generate> for ProviderActor {
    fn handle(
        &mut self,
        msg: Generate,
        _: &mut Context<'_, Self>,
    ) -> Reply<<Generate as Message>::Result> {
        let shared = self.shared.clone();
        Reply::future(async move { shared.generate(msg).await })
    }
}

impl Handler<Probe> for ProviderActor {
    fn handle(&mut self, _: Probe, _: &mut Context<'_, Self>) -> Reply<<Probe as Message>::Result> {
        let provider = self.shared.provider.clone();
        Reply::future(async move { provider.probe().await })
    }
}

impl Shared {
    fn today(&self) -> NaiveDate {
        match &self.meter {
            Some(m) => m.today(),
            None => chrono::Utc::now().date_naive(),
        }
    }

    async fn generate(&self, msg: Generate) -> Result<GenerateResponse, ProviderError> {
        let Generate {
            request,
            agent,
            job,
            text,
        } = msg;
        let name = self.provider.name();
        if self.key_expires.is_some() {
            check_expiry(name, self.key_expires, self.today()).map_err(|e| {
                ProviderError::new(ErrorKind::KeyExpired, name, &request.model, e.to_string())
            })?;
        }
        let call = |request| async {
            match &text {
                Some(sink) => {
                    let sink = sink.clone();
                    self.provider.generate_streaming(request, sink).await
                }
                None => self.provider.generate(request).await,
            }
        };
        let Some(meter) = &self.meter else {
            return call(request).await;
        };
        meter
            .check_budget(agent.as_deref(), name, &request.model)
            .await?;
        let asked = request.model.clone();
        let response = call(request).await?;
        let model = if response.model.is_empty() {
            asked.as_str()
        } else {
            response.model.as_str()
        };
        let call = CallRecord {
            provider: name,
            model,
            agent: agent.as_deref(),
            job,
            usage: response.usage,
            latency: response.latency,
        };
        if let Err(e) = meter.record(call).await {
            // The model answered and the tokens are spent: failing the call
            // now would only make the caller pay for it twice.
            tracing::error!(provider = name, model, error = %e, "could not record usage");
        }
        Ok(response)
    }
}
