//! [`ProviderSet`]: every configured provider as a supervised actor, and
//! failover across those actors by an agent's [`ModelConfig`].
//!
//! Life cycle: [`ProviderSet::build`] resolves keys and builds one client per
//! provider; [`ProviderSet::supervisor_spec`] (or [`child_specs`]) puts one
//! [`ProviderActor`] per provider under a `providers` supervisor; after the
//! tree starts, [`ProviderSet::attach`] looks up their addresses (stable
//! across restarts). The set is cheap to clone: agents each hold one.
//!
//! [`child_specs`]: ProviderSet::child_specs

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::NaiveDate;
use serde::Serialize;
use troupe_actors::{
    ActorRef, Arbiter, ChildSpec, ChildState, Intensity, LookupError, Strategy, SupervisorSpec,
    Tree,
};

use super::actor::{Generate, ProviderActor};
use super::breaker::BreakerState;
use super::client::Provider;
use super::config::{ProviderConfig, ProviderKind};
use super::error::{ErrorKind, ProviderError};
use super::failover::TotalFailure;
use super::model::GenerateResponse;
use super::route::ModelConfig;
use super::UsageMeter;
use super::{Credentials, KeySource};
use crate::secrets::SecretError;

/// The set could not be built; names the provider concerned.
#[derive(Debug, thiserror::Error)]
pub enum ProviderSetError {
    /// A key could not be found or decrypted.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A provider's config is unusable (base URL, headers…).
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Two providers share a name; agents refer to providers by name.
    #[error("two providers are named `{name}`; provider names must be unique")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// A model config names a provider that is not configured.
    #[error("model config refers to unknown provider `{provider}` (configured: {known})")]
    UnknownProvider {
        /// The name used.
        provider: String,
        /// The configured names, comma-separated.
        known: String,
    },
}

/// One provider's state, for status output and the control API.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProviderStatus {
    /// Configured name.
    pub name: String,
    /// Protocol family.
    pub kind: ProviderKind,
    /// Circuit breaker state.
    pub breaker: BreakerState,
    /// Actor state: `running`, `restarting`, `stopped`, or `not started`.
    pub actor: &'static str,
    /// Times the actor was restarted.
    pub restarts: u64,
    /// Messages waiting in its mailbox.
    pub queued: usize,
    /// Where its key came from: `code`, `env:VAR`, `stored`, `none`.
    pub key_source: String,
    /// First UTC day its key is refused on, if it expires.
    pub key_expires: Option<NaiveDate>,
}

struct Entry {
    actor: ProviderActor,
    key_source: KeySource,
    addr: OnceLock<ActorRef<ProviderActor>>,
    /// Calls sent through [`ProviderSet::generate`] and their errors.
    calls: crate::provider::CallStats,
}

struct Inner {
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
}

/// The configured providers, their actors, and failover across them.
#[derive(Clone)]
pub struct ProviderSet {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProviderSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.inner.entries.iter().map(|e| e.actor.provider().name()))
            .finish()
    }
}

impl ProviderSet {
    /// Resolves each provider's key from `credentials` and builds its client.
    /// `meter` (shared by all) enforces budgets and records usage.
    pub(crate) fn build(
        configs: &[ProviderConfig],
        credentials: &Credentials,
        meter: Option<UsageMeter>,
    ) -> Result<Self, ProviderSetError> {
        let mut actors = Vec::with_capacity(configs.len());
        for config in configs {
            let resolved = credentials.resolve(config)?;
            let mut config = config.clone();
            config.api_key = resolved.key;
            let provider = Provider::new(config)?;
            actors.push((
                ProviderActor::new(provider, resolved.expires, meter.clone()),
                resolved.source,
            ));
        }
        Self::from_actors(actors)
    }

    /// A set of ready-made actors (e.g. providers on a manual clock in
    /// tests), each with where its key came from.
    pub fn from_actors(actors: Vec<(ProviderActor, KeySource)>) -> Result<Self, ProviderSetError> {
        let mut by_name = HashMap::new();
        let mut entries = Vec::with_capacity(actors.len());
        for (i, (actor, key_source)) in actors.into_iter().enumerate() {
            let name = actor.provider().name().to_string();
            if by_name.insert(name.clone(), i).is_some() {
                return Err(ProviderSetError::Duplicate { name });
            }
            entries.push(Entry {
                actor,
                key_source,
                addr: OnceLock::new(),
                calls: Default::default(),
            });
        }
        Ok(ProviderSet {
            inner: Arc::new(Inner { entries, by_name }),
        })
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.inner
            .by_name
            .get(name)
            .map(|&i| &self.inner.entries[i])
    }

    /// A provider's client (shared with its actor), e.g. to read its limiter.
    #[cfg(test)]
    pub(crate) fn provider(&self, name: &str) -> Option<&Provider> {
        self.entry(name).map(|e| e.actor.provider())
    }

    /// One child spec per provider, named after it, in config order.
    pub(crate) fn child_specs(&self) -> Vec<ChildSpec<ProviderActor>> {
        self.inner
            .entries
            .iter()
            .map(|e| e.actor.child_spec())
            .collect()
    }

    /// A one_for_one supervisor `id` over all provider actors. A provider
    /// crash restarts that provider only; more than 10 restarts in a minute
    /// escalates to the parent.
    pub fn supervisor_spec(&self, id: &str) -> SupervisorSpec {
        SupervisorSpec::new(id)
            .strategy(Strategy::OneForOne)
            .intensity(Intensity::new(10, Duration::from_secs(60)))
            .children(self.child_specs())
    }

    /// [`supervisor_spec`](Self::supervisor_spec) with the provider actors
    /// on `arbiter`'s thread: the runtime gives them one of their own, so
    /// encoding requests and decoding replies (and the HTTP work the
    /// client's connections do there) leave the thread of the scheduler.
    pub(crate) fn supervisor_spec_on(&self, id: &str, arbiter: &Arbiter) -> SupervisorSpec {
        SupervisorSpec::new(id)
            .strategy(Strategy::OneForOne)
            .intensity(Intensity::new(10, Duration::from_secs(60)))
            .children(
                self.child_specs()
                    .into_iter()
                    .map(|spec| spec.on_arbiter(arbiter)),
            )
    }

    /// Looks up each provider's actor in a started `tree`, under the
    /// supervisor at `supervisor_path` (`"providers"`; `""` when the provider
    /// actors are the root's children). Calling it again is a no-op.
    pub fn attach(&self, tree: &Tree, supervisor_path: &str) -> Result<(), LookupError> {
        for e in &self.inner.entries {
            let name = e.actor.provider().name();
            let path = if supervisor_path.is_empty() {
                name.to_string()
            } else {
                format!("{supervisor_path}/{name}")
            };
            let addr = tree.actor::<ProviderActor>(&path)?;
            let _ = e.addr.set(addr);
        }
        Ok(())
    }

    /// The actor of provider `name`, once attached.
    pub fn actor(&self, name: &str) -> Option<ActorRef<ProviderActor>> {
        self.entry(name).and_then(|e| e.addr.get().cloned())
    }

    /// Provider names, in config order.
    #[cfg(test)]
    fn names(&self) -> impl Iterator<Item = &str> {
        self.inner.entries.iter().map(|e| e.actor.provider().name())
    }

    /// Checks that every provider `route` names is configured.
    #[cfg(test)]
    pub(crate) fn validate(&self, route: &ModelConfig) -> Result<(), ProviderSetError> {
        for (provider, _) in route.candidates() {
            if self.entry(provider).is_none() {
                return Err(ProviderSetError::UnknownProvider {
                    provider: provider.to_string(),
                    known: self.names().collect::<Vec<_>>().join(", "),
                });
            }
        }
        Ok(())
    }

    /// Calls sent to provider `name` through the set and their errors by
    /// class, since the process started (for `/metrics`).
    pub(crate) fn call_stats(&self, name: &str) -> Option<&crate::provider::CallStats> {
        self.entry(name).map(|e| &e.calls)
    }

    /// A circuit breaker's state, read without messaging the actor.
    #[cfg(test)]
    pub(crate) fn breaker_state(&self, name: &str) -> Option<BreakerState> {
        self.provider(name).map(Provider::breaker_state)
    }

    /// Every provider's state, in config order.
    pub(crate) fn status(&self) -> Vec<ProviderStatus> {
        self.inner
            .entries
            .iter()
            .map(|e| {
                let addr = e.addr.get();
                ProviderStatus {
                    name: e.actor.provider().name().to_string(),
                    kind: e.actor.provider().kind(),
                    breaker: e.actor.provider().breaker_state(),
                    actor: match addr.map(ActorRef::state) {
                        None => "not started",
                        Some(ChildState::Running) => "running",
                        Some(ChildState::Restarting) => "restarting",
                        Some(ChildState::Stopped) => "stopped",
                    },
                    restarts: addr.map_or(0, ActorRef::restarts),
                    queued: addr.map_or(0, |a| a.mailbox().queued),
                    key_source: match &e.key_source {
                        KeySource::Code => "code".into(),
                        KeySource::Env(var) => format!("env:{var}"),
                        KeySource::Stored => "stored".into(),
                        KeySource::None => "none".into(),
                    },
                    key_expires: e.actor.key_expires(),
                }
            })
            .collect()
    }

    /// Sends `msg` to the actor of each candidate of `route` in order (the
    /// first choice, then the fallbacks) until one answers; the response's
    /// `provider` and `model` name the one that did. The request's model is
    /// replaced by each candidate's; everything else is sent as the request
    /// has it (built by [`ModelConfig::request`], it carries the route's
    /// temperature and max tokens).
    ///
    /// An error that [`fails_over`](ProviderError::fails_over) moves to the
    /// next candidate; a bad request, an over-long context or a spent budget
    /// stops. On total failure the error that clears soonest among those a
    /// later attempt can get past is returned (when every circuit is open,
    /// the one that closes first), else the last one (see
    /// [`failover`](super::failover)).
    pub async fn generate(
        &self,
        route: &ModelConfig,
        msg: Generate,
    ) -> Result<GenerateResponse, ProviderError> {
        let Generate {
            request,
            agent,
            job,
            text,
        } = msg;
        let mut failed = TotalFailure::default();
        let candidates: Vec<(&str, &str)> = route.candidates().collect();
        let count = candidates.len();
        // The last candidate takes the request itself: with no fallbacks,
        // nothing is copied.
        let mut pending = Some(request);
        for (i, (provider, model)) in candidates.into_iter().enumerate() {
            let next = if i + 1 == count {
                pending.take()
            } else {
                pending.clone()
            };
            let Some(mut r) = next else { break };
            if r.model != model {
                r.model = model.to_string();
            }
            let call = Generate {
                request: r,
                agent: agent.clone(),
                job,
                text: text.clone(),
            };
            let err = match self.send(provider, model, call).await {
                Ok(resp) => return Ok(resp),
                Err(e) if !e.fails_over() => return Err(e),
                Err(e) => e,
            };
            tracing::warn!(provider = %err.provider, model = %err.model, kind = %err.kind,
                agent = agent.as_deref().unwrap_or("-"), "provider failed; trying next candidate");
            failed.push(err);
        }
        Err(failed.into_error().unwrap_or_else(|| {
            ProviderError::new(
                ErrorKind::NoCandidates,
                &route.provider,
                &route.model,
                "no provider candidates configured".into(),
            )
        }))
    }

    async fn send(
        &self,
        provider: &str,
        model: &str,
        call: Generate,
    ) -> Result<GenerateResponse, ProviderError> {
        let Some(entry) = self.entry(provider) else {
            return Err(ProviderError::new(
                ErrorKind::InvalidConfig,
                provider,
                model,
                format!("no provider named `{provider}` is configured"),
            ));
        };
        let Some(addr) = entry.addr.get() else {
            return Err(ProviderError::new(
                ErrorKind::Unavailable,
                provider,
                model,
                "provider actor not started (ProviderSet::attach was not called)".into(),
            ));
        };
        let result = addr.send(call).await.unwrap_or_else(|e| {
            Err(ProviderError::new(
                ErrorKind::Unavailable,
                provider,
                model,
                e.to_string(),
            ))
        });
        match &result {
            Ok(response) => entry.calls.record_ok(response.latency),
            Err(e) => entry.calls.record_error(e.kind),
        }
        result
    }
}
