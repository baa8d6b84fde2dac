//! An agent's `modelConfig`: which provider and model to ask first, the
//! sampling settings its requests are built with, and the ordered fallbacks
//! ([`ProviderSet::generate`](super::set::ProviderSet::generate) walks them).
//!
//! It is the one model config of the crate: the config file's
//! `[agents.modelConfig]` deserializes into it (re-exported as
//! [`crate::config::ModelConfig`]), and the agent's requests and the
//! provider set's failover read the same value by reference, so nothing is
//! copied or defaulted again per call.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::model::{GenerateRequest, Message, ToolChoice, ToolDefinition};

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

/// `[agents.modelConfig]`: the first choice, the sampling settings every
/// request of the agent is built with ([`request`](Self::request)), and the
/// fallbacks tried in order when a provider fails in a way that another
/// may not (auth, quota, overload, open circuit, expired key…).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelConfig {
    /// Provider asked first: a `[[providers]]` name, or
    /// [`OFFLINE_PROVIDER`](crate::names::OFFLINE_PROVIDER).
    pub provider: String,
    /// Model asked first.
    pub model: String,
    /// Sampling temperature, 0–2. Left out, requests carry none and the
    /// provider's own default applies (as with its SDKs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Most output tokens per call. Left out, requests carry none (the
    /// model's own limit), except to Anthropic, which requires one (4096).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Tried in order after the first choice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<ModelRef>,
    /// Stream replies (OpenAI-compatible and Anthropic providers): their
    /// text reaches the task's live events as it arrives; the answer is the
    /// same. Off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

impl ModelConfig {
    /// A first choice with no fallbacks and the defaults of a config that
    /// names only the provider and model.
    pub fn new(provider: impl Into<String>, model: impl Into<String>) -> Self {
        ModelConfig {
            provider: provider.into(),
            model: model.into(),
            temperature: None,
            max_tokens: None,
            fallbacks: Vec::new(),
            stream: false,
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

    /// A request to this model with this config's sampling settings: the
    /// request then carries everything a provider needs, and the provider
    /// set only changes its `model` per failover candidate. `tools` are
    /// offered with [`ToolChoice::Auto`] (none: [`ToolChoice::None`]).
    pub fn request(
        &self,
        system: String,
        messages: Vec<Message>,
        tools: Arc<[ToolDefinition]>,
    ) -> GenerateRequest {
        GenerateRequest {
            model: self.model.clone(),
            system: Some(system),
            messages,
            tool_choice: if tools.is_empty() {
                ToolChoice::None
            } else {
                ToolChoice::Auto
            },
            tools,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            output_schema: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_carries_the_configs_settings() {
        let config = ModelConfig {
            temperature: Some(0.2),
            max_tokens: Some(300),
            ..ModelConfig::new("openai", "gpt-4o-mini")
        };
        let request = config.request("be brief".into(), vec![Message::user("hi")], Arc::new([]));
        assert_eq!(request.model, "gpt-4o-mini");
        assert_eq!(request.system.as_deref(), Some("be brief"));
        assert_eq!(request.temperature, Some(0.2));
        assert_eq!(request.max_tokens, Some(300));
        assert_eq!(request.tool_choice, ToolChoice::None);
    }

    #[test]
    fn left_out_settings_are_left_to_the_provider_in_toml_and_in_code() {
        let parsed: ModelConfig = toml::from_str("provider = \"offline\"\nmodel = \"m\"").unwrap();
        assert_eq!(parsed, ModelConfig::new("offline", "m"));
        assert_eq!(parsed.temperature, None);
        assert_eq!(parsed.max_tokens, None);
        let typo = toml::from_str::<ModelConfig>("provider = \"o\"\nmodel = \"m\"\ntemprature = 1");
        assert!(typo.is_err());
    }
}
