//! An agent's `modelConfig`: which provider and model to ask first, and the
//! ordered fallbacks ([`ProviderSet::generate`](super::set::ProviderSet::generate)
//! walks them).

use serde::{Deserialize, Serialize};

/// One place a request may go: a configured provider name and a model id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelRef {
    /// Name of a `[[providers]]` entry.
    pub provider: String,
    /// Model id at that provider.
    pub model: String,
}

impl ModelRef {
    /// A (provider, model) pair.
    pub fn new(provider: impl Into<String>, model: impl Into<String>) -> Self {
        ModelRef {
            provider: provider.into(),
            model: model.into(),
        }
    }
}

/// `[agents.modelConfig]`: the first choice, its sampling settings, and the
/// fallbacks tried in order when a provider fails in a way that another
/// may not (auth, quota, overload, open circuit, expired key…).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelConfig {
    /// Provider asked first.
    pub provider: String,
    /// Model asked first.
    pub model: String,
    /// Sampling temperature, applied when the request sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Output token cap, applied when the request sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Tried in order after the first choice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<ModelRef>,
}

impl ModelConfig {
    /// A first choice with no fallbacks and provider-default settings.
    pub fn new(provider: impl Into<String>, model: impl Into<String>) -> Self {
        ModelConfig {
            provider: provider.into(),
            model: model.into(),
            temperature: None,
            max_tokens: None,
            fallbacks: Vec::new(),
        }
    }

    /// Adds a fallback (builder style).
    pub fn fallback(mut self, provider: impl Into<String>, model: impl Into<String>) -> Self {
        self.fallbacks.push(ModelRef::new(provider, model));
        self
    }

    /// The first choice followed by the fallbacks.
    pub fn candidates(&self) -> impl Iterator<Item = (&str, &str)> {
        std::iter::once((self.provider.as_str(), self.model.as_str())).chain(
            self.fallbacks
                .iter()
                .map(|f| (f.provider.as_str(), f.model.as_str())),
        )
    }
}
