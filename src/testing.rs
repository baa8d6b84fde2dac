//! What a service needs to test its own agents, tools and workers against
//! Troupe without a network or a disk: a [`ScriptedModel`] that answers
//! from a script (and records what it was asked), and the in-memory store.
//!
//! ```
//! use troupe::testing::{InMemoryStore, ScriptedModel};
//! use troupe::{AgentConfig, ModelConfig, TaskOptions, Troupe, TroupeConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let model = ScriptedModel::new()
//!     .tool_call("remember", serde_json::json!({"content": "likes tea", "type": "preference", "importance": 7}))
//!     .reply("Noted.");
//! let mut config = TroupeConfig::default();
//! config.agents.push(AgentConfig::new("ed", "Ed", "You edit.", ModelConfig::new("scripted", "any")).tools(["remember"]));
//! let troupe = Troupe::builder(config)
//!     .store(InMemoryStore::new())
//!     .model(model.clone())
//!     .start()
//!     .await?;
//! let answer = troupe.ask("ed", "I like tea", TaskOptions::default()).await?;
//! assert_eq!(answer.text, "Noted.");
//! assert_eq!(answer.tool_calls[0].tool, "remember");
//! assert_eq!(model.requests().len(), 2);
//! troupe.shutdown().await?;
//! # Ok(())
//! # }
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::agent::{CallMeta, ModelGateway};
use crate::config::ModelConfig;
use crate::provider::{
    ErrorKind, FinishReason, GenerateRequest, GenerateResponse, ProviderError, ToolCall, Usage,
};

pub use crate::in_memory::InMemoryStore;

/// The provider name a scripted model answers as.
pub const SCRIPTED_PROVIDER: &str = "scripted";

/// One scripted turn of the model.
#[derive(Debug, Clone)]
enum Turn {
    /// A final answer.
    Text(String),
    /// Tool calls, with their arguments.
    Tools(Vec<(String, Value)>),
    /// A failed call.
    Fail(ErrorKind, String),
}

/// A model that answers from a script, in order, whatever it is asked, and
/// records every request: for tests of agents, tools and the task loop. When
/// the script runs out it answers `"(script ended)"`. Clones share the
/// script and the record. Use it as the runtime's model with
/// `TroupeBuilder::model`.
#[derive(Clone, Default)]
pub struct ScriptedModel {
    inner: Arc<Mutex<Script>>,
}

#[derive(Default)]
struct Script {
    turns: VecDeque<Turn>,
    requests: Vec<GenerateRequest>,
    calls: u64,
}

impl ScriptedModel {
    /// An empty script.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(self, turn: Turn) -> Self {
        self.lock().turns.push_back(turn);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Script> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Next, answer `text` (a final answer: the task ends).
    pub fn reply(self, text: impl Into<String>) -> Self {
        self.push(Turn::Text(text.into()))
    }

    /// Next, call one tool with these arguments.
    pub fn tool_call(self, tool: impl Into<String>, args: Value) -> Self {
        self.push(Turn::Tools(vec![(tool.into(), args)]))
    }

    /// Next, call several tools at once.
    pub fn tool_calls<I, S>(self, calls: I) -> Self
    where
        I: IntoIterator<Item = (S, Value)>,
        S: Into<String>,
    {
        let calls = calls.into_iter().map(|(t, a)| (t.into(), a)).collect();
        self.push(Turn::Tools(calls))
    }

    /// Next, fail the call the way a provider would (`kind`: rate limited,
    /// authentication…); the engine retries or fails the task by it.
    pub fn fail(self, kind: ErrorKind, message: impl Into<String>) -> Self {
        self.push(Turn::Fail(kind, message.into()))
    }

    /// Every request made so far, in order.
    pub fn requests(&self) -> Vec<GenerateRequest> {
        self.lock().requests.clone()
    }

    /// Turns of the script not used yet.
    pub fn remaining(&self) -> usize {
        self.lock().turns.len()
    }
}

#[async_trait]
impl ModelGateway for ScriptedModel {
    async fn generate(
        &self,
        _meta: &CallMeta,
        model: &ModelConfig,
        request: GenerateRequest,
    ) -> Result<GenerateResponse, ProviderError> {
        let (turn, call) = {
            let mut script = self.lock();
            script.requests.push(request);
            script.calls += 1;
            (script.turns.pop_front(), script.calls)
        };
        let (text, tool_calls) = match turn {
            None => ("(script ended)".to_string(), Vec::new()),
            Some(Turn::Text(text)) => (text, Vec::new()),
            Some(Turn::Fail(kind, message)) => {
                return Err(ProviderError::new(
                    kind,
                    SCRIPTED_PROVIDER,
                    &model.model,
                    message,
                ))
            }
            Some(Turn::Tools(calls)) => {
                let calls = calls
                    .into_iter()
                    .enumerate()
                    .map(|(i, (name, arguments))| ToolCall {
                        id: format!("call_{call}_{i}"),
                        name,
                        arguments,
                        arguments_error: None,
                    })
                    .collect();
                (String::new(), calls)
            }
        };
        Ok(GenerateResponse {
            finish_reason: if tool_calls.is_empty() {
                FinishReason::Stop
            } else {
                FinishReason::ToolCalls
            },
            text,
            tool_calls,
            usage: Usage::default(),
            provider: SCRIPTED_PROVIDER.to_string(),
            model: model.model.clone(),
            latency: Duration::ZERO,
        })
    }
}
