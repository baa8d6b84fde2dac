//! Embedding Troupe in a Rust service: a custom tool, an agent, a task.
//!
//! Run: `cargo run --example embedded`
//!
//! The agent uses the deterministic offline model, so this runs without a
//! key; put a provider in `config.providers` and name it in the agent's
//! `modelConfig` to use a real model.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use troupe::names::{OFFLINE_PROVIDER, REMEMBER_TOOL};
use troupe::{AgentConfig, ModelConfig, TroupeConfig};
use troupe::{TaskOptions, Troupe};
use troupe::{ToolContext, ToolError, TypedTool};

/// A tool of our own: one trait, with the argument schema generated from
/// the Rust type.
struct WordCount;

/// Arguments of `word_count`.
#[derive(Deserialize, JsonSchema)]
struct WordCountArgs {
    /// The text to count words in.
    text: String,
}

/// What `word_count` answers; the model sees `{"ok":true,"data":{"words":…}}`.
#[derive(Serialize)]
struct WordCountOutput {
    words: usize,
}

#[async_trait]
impl TypedTool for WordCount {
    type Args = WordCountArgs;
    type Output = WordCountOutput;
    type Error = ToolError;

    fn name(&self) -> &str {
        "word_count"
    }

    fn description(&self) -> &str {
        "Counts the words in a text."
    }

    async fn run(
        &self,
        args: WordCountArgs,
        _ctx: ToolContext,
    ) -> Result<WordCountOutput, ToolError> {
        Ok(WordCountOutput {
            words: args.text.split_whitespace().count(),
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("troupe-embedded-{}", std::process::id()));
    let mut config = TroupeConfig::default();
    config.store.data_dir = dir.clone();
    config.agents.push(AgentConfig {
        id: "editor".into(),
        name: "Eddie the Editor".into(),
        system_prompt: "You are an editor. Use your tools.".into(),
        tools: vec!["word_count".into(), REMEMBER_TOOL.into()],
        model_config: ModelConfig {
            provider: OFFLINE_PROVIDER.into(),
            model: "offline".into(),
            temperature: 0.2,
            max_tokens: 500,
            fallbacks: Vec::new(),
        },
        concurrency: 2,
        max_steps: 4,
        reflect: false,
        budget: None,
        restart_after_tasks: None,
        restart_above_memory_mib: None,
    });
    // A plain tokio program: the runtime hosts its actors on a thread of
    // its own. `tools` names in the config are checked against the
    // built-ins; a custom tool is registered on the builder.
    let troupe = Troupe::builder(config).tool(WordCount).start().await?;
    let prompt = "Use word_count on this sentence and remember the result";
    let answer = troupe.ask("editor", prompt, TaskOptions::default()).await?;
    for call in &answer.tool_calls {
        println!("  {} {} -> {}", call.tool, call.parameters, call.result);
    }
    println!("answer: {}", answer.text);
    troupe.shutdown().await?;
    println!("data in {}", dir.display());
    Ok(())
}
