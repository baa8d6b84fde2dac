//! The task loop of an agent, with durable steps.
//!
//! One task = one job whose worker is the agent. The loop: build the context
//! (system prompt, recalled memories, recent conversation, project context,
//! within a token budget), call the model with the agent's tools, run the
//! tool calls it returns (all at once when it returns several) through the
//! ToolRouter, send the results back, and repeat until a final answer or
//! `maxSteps`.
//!
//! Every step is checkpointed under the job before the loop moves on: each
//! model reply that asks for tools (the first together with the context it
//! was asked with) and each round of tool results. The final answer needs no
//! checkpoint of its own when only the job's completion follows: that
//! completion, written durably with the result, is the step's checkpoint
//! (when the answer also goes into a conversation, or a reflection step
//! follows, it is checkpointed like any reply).
//!
//! Store calls run [`unaccounted`]: what they allocate lands in the store's
//! page cache, shared and long-lived, and must not count as the agent's own
//! heap (which `restartAboveMemoryMib` watches). Checkpoints stay with the job and are removed
//! when retention prunes it. After a
//! crash or a retry the task resumes from its last checkpoint, so a model
//! call already answered is not paid for again and a tool round already run
//! is not run again. A crash between a tool's effect and its checkpoint
//! repeats the round with the same idempotency keys (`tool:<job>:<step>:<call>`),
//! which side-effecting tools use to do nothing twice.

use std::sync::Arc;

use futures::future::join_all;
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;
use troupe_actors::ActorRef;

use crate::alloc::unaccounted;
use crate::config::{AgentConfig, MemorySection};
use crate::conversation::{ConversationStore, NewMessage, Role};
use crate::engine::{JobContext, WorkerError};
use crate::job::JobId;
use crate::memory::actor::{MemoryActor, Recall, Remember};
use crate::memory::{MemoryScope, NewMemory};
use crate::provider::{
    GenerateRequest, GenerateResponse, Message, ProviderError, ToolChoice, ToolResult, Usage,
};
use crate::store::StepStore;
use crate::tools::{tool_result, ToolContext, ToolError, ToolRequest, Tools};

use super::context::{self, ContextInput, ContextMemory, ContextMessage};
use super::gateway::{job_error, CallMeta, ModelGateway};
use super::processing::{ProcessingResult, ToolCallRecord};

/// What every agent of a runtime shares.
pub struct AgentRuntime {
    /// Reaches the models.
    pub models: Arc<dyn ModelGateway>,
    /// Runs tool calls.
    pub tools: Tools,
    /// The Memory actor.
    pub memory: ActorRef<MemoryActor>,
    /// Conversations (history in, answers out).
    pub conversations: Arc<dyn ConversationStore>,
    /// Durable steps.
    pub checkpoints: Arc<dyn StepStore>,
    /// Context sizes.
    pub settings: MemorySection,
}

/// The args of an agent task job.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TaskArgs {
    prompt: String,
    #[serde(default)]
    conversation_id: Option<String>,
}

/// The loop's state, rebuilt from checkpoints on resume.
#[derive(Default)]
struct TaskState {
    system: String,
    messages: Vec<Message>,
    usage: Usage,
    steps: u32,
    records: u32,
    tool_calls: Vec<ToolCallRecord>,
    /// The last model reply, while its tool calls have not been run.
    pending: Option<GenerateResponse>,
    last: Option<GenerateResponse>,
}

impl TaskState {
    fn apply_context(&mut self, context: &Value) -> Result<(), String> {
        self.system = context["system"].as_str().unwrap_or_default().to_string();
        self.messages =
            serde_json::from_value(context["messages"].clone()).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Takes in one model reply (a step).
    fn push_reply(&mut self, response: GenerateResponse) {
        self.steps += 1;
        self.usage.input_tokens += response.usage.input_tokens;
        self.usage.output_tokens += response.usage.output_tokens;
        self.usage.cached_input_tokens += response.usage.cached_input_tokens;
        self.messages.push(response.to_message());
        self.pending = (!response.tool_calls.is_empty()).then(|| response.clone());
        self.last = Some(response);
    }

    /// Takes in a tools step as it was just run: what `apply` would read
    /// back from its record, without the round trip through JSON.
    fn push_tool_results(&mut self, results: Vec<ToolOutcome>) {
        for r in results {
            self.messages.push(Message::Tool(ToolResult {
                call_id: r.call_id,
                content: r.content,
                is_error: r.is_error,
            }));
            self.tool_calls.push(ToolCallRecord {
                tool: r.tool,
                parameters: r.parameters,
                result: r.result,
            });
        }
        self.pending = None;
    }

    fn apply(&mut self, record: &Value) -> Result<(), String> {
        self.records += 1;
        match record["kind"].as_str() {
            Some("context") => {
                self.system = record["system"].as_str().unwrap_or_default().to_string();
                self.messages = serde_json::from_value(record["messages"].clone())
                    .map_err(|e| e.to_string())?;
            }
            Some("model") => {
                if let Some(context) = record.get("context") {
                    self.apply_context(context)?;
                }
                let response = GenerateResponse::deserialize(&record["response"])
                    .map_err(|e| e.to_string())?;
                self.push_reply(response);
            }
            Some("tools") => {
                let results = record["results"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                for r in results {
                    self.messages.push(Message::Tool(ToolResult {
                        call_id: r["callId"].as_str().unwrap_or_default().to_string(),
                        content: r["content"].as_str().unwrap_or_default().to_string(),
                        is_error: r["isError"].as_bool().unwrap_or(false),
                    }));
                    self.tool_calls.push(ToolCallRecord {
                        tool: r["tool"].as_str().unwrap_or_default().to_string(),
                        parameters: r["parameters"].clone(),
                        result: r["result"].clone(),
                    });
                }
                self.pending = None;
            }
            other => return Err(format!("unknown checkpoint kind {other:?}")),
        }
        Ok(())
    }
}

fn provider_error(agent: &str, e: ProviderError) -> WorkerError {
    job_error(&format!("agent `{agent}`"), e)
}

/// A store (or Memory actor) call that failed: retryable, as the store may
/// be back by the next attempt, which resumes from the last checkpoint.
fn store_error<E>(agent: &str, what: &str, e: E) -> WorkerError
where
    E: std::error::Error + Send + Sync + 'static,
{
    WorkerError::retryable(format!("agent `{agent}`: {what}: {e}")).with_source(e)
}

/// Runs (or resumes) one task of `agent`.
pub(crate) async fn run(
    agent: &AgentConfig,
    allowed: &Arc<[String]>,
    rt: &AgentRuntime,
    args: Value,
    job: JobContext,
) -> Result<Value, WorkerError> {
    let id = agent.id.as_str();
    let task: TaskArgs = serde_json::from_value(args).map_err(|e| {
        WorkerError::permanent(format!(
            "agent `{id}`: task args must be {{\"prompt\": \"…\", \"conversationId\"?: \"…\"}}: {e}"
        ))
    })?;
    if task.prompt.trim().is_empty() {
        return Err(WorkerError::permanent(format!(
            "agent `{id}`: the task's `prompt` is empty"
        )));
    }
    let conversation = task
        .conversation_id
        .clone()
        .or_else(|| job.ctx.conversation_id.clone());
    let user = job.ctx.user_id.clone();
    let job_id = job.job_id;

    let mut state = TaskState::default();
    // Whether the context in `state` is not checkpointed yet.
    let mut context_pending = false;
    let saved = unaccounted(rt.checkpoints.load_steps(job_id))
        .await
        .map_err(|e| store_error(id, "loading checkpoints", e))?;
    for record in &saved {
        state.apply(record).map_err(|e| {
            WorkerError::permanent(format!(
                "agent `{id}`: corrupt checkpoint of job {job_id}: {e}"
            ))
        })?;
    }
    if saved.is_empty() {
        let built = build_context(
            agent,
            rt,
            &task.prompt,
            conversation.as_deref(),
            user.as_deref(),
            &job,
        )
        .await?;
        // The context is checkpointed with the first model reply: until that
        // reply exists, building it again (recall, history) is as good.
        (state.system, state.messages) = built;
        context_pending = true;
    } else {
        tracing::info!(agent = id, job = %job_id, steps = state.steps, "resuming task from its checkpoint");
    }

    let definitions = rt.tools.registry().definitions_for(allowed);
    let meta = CallMeta {
        agent_id: id.to_string(),
        job_id: Some(job_id),
    };
    loop {
        if let Some(reply) = state.pending.take() {
            let step = state.steps.saturating_sub(1);
            let results =
                run_tools(rt, allowed, &reply, step, id, job_id, &user, &conversation).await;
            // Written straight from the results' type, as `apply` reads it.
            let record = serde_json::to_vec(&ToolsStep {
                kind: "tools",
                results: &results,
            })
            .map_err(|e| WorkerError::permanent(format!("agent `{id}`: {e}")))?;
            let index = state.records;
            state.records += 1;
            state.push_tool_results(results);
            store_step_json(rt, job_id, index, record, id).await?;
            continue;
        }
        if let Some(last) = &state.last {
            if last.tool_calls.is_empty() {
                break;
            }
        }
        if state.steps >= agent.max_steps {
            return Err(WorkerError::permanent(format!(
                "agent `{id}` reached maxSteps ({}) without a final answer",
                agent.max_steps
            )));
        }
        let request = GenerateRequest {
            model: agent.model_config.model.clone(),
            system: Some(state.system.clone()),
            messages: state.messages.clone(),
            tools: definitions.clone(),
            tool_choice: if definitions.is_empty() {
                ToolChoice::None
            } else {
                ToolChoice::Auto
            },
            temperature: Some(agent.model_config.temperature),
            max_tokens: Some(agent.model_config.max_tokens),
        };
        let span = tracing::info_span!(
            "model_call",
            agent = id,
            job = %job_id,
            step = state.steps,
            provider = %agent.model_config.provider,
            model = %agent.model_config.model,
        );
        let response = rt
            .models
            .generate(&meta, &agent.model_config, request)
            .instrument(span)
            .await
            .map_err(|e| provider_error(id, e))?;
        tracing::debug!(agent = id, job = %job_id, provider = %response.provider, tool_calls = response.tool_calls.len(), "model replied");
        if response.tool_calls.is_empty() && !agent.reflect && conversation.is_none() {
            // The final answer, with nothing after it but completing the
            // job: the job's completion (durable, with the result) is its
            // checkpoint. A crash before it repeats this call, as a crash
            // before a checkpoint's flush would. Not so when the answer also
            // goes into a conversation (a retry must not store a different
            // answer than the one already appended) or a reflection follows.
            state.push_reply(response);
            break;
        }
        // Written straight from the reply's type, with no `Value` tree in
        // between; `apply` reads it back after a restart.
        let record = serde_json::to_vec(&ModelStep {
            kind: "model",
            response: &response,
            // Before the reply joins them, the state's messages are still
            // the context's.
            context: std::mem::take(&mut context_pending).then_some(ContextRecord {
                system: &state.system,
                messages: &state.messages,
            }),
        })
        .map_err(|e| WorkerError::permanent(format!("agent `{id}`: {e}")))?;
        // The state takes the reply as it is (its context is in already):
        // what `apply` would read back from the record, without the round
        // trip through JSON.
        let index = state.records;
        state.records += 1;
        state.push_reply(response);
        store_step_json(rt, job_id, index, record, id).await?;
    }

    let last = state.last.clone().unwrap_or_else(|| GenerateResponse {
        text: String::new(),
        tool_calls: Vec::new(),
        finish_reason: crate::provider::FinishReason::Stop,
        usage: Usage::default(),
        provider: String::new(),
        model: String::new(),
        latency: std::time::Duration::ZERO,
    });
    if let Some(conv) = &conversation {
        let msg = NewMessage::new(conv.clone(), Role::Assistant, id, last.text.clone());
        unaccounted(
            rt.conversations
                .append(msg, Some(format!("task:{job_id}:answer"))),
        )
        .await
        .map_err(|e| store_error(id, "storing the answer", e))?;
    }
    if agent.reflect {
        reflect(agent, rt, &meta, &state, job_id, user.as_deref()).await;
    }
    let result = ProcessingResult {
        success: true,
        response: Some(last.text.clone()),
        tool_calls: state.tool_calls,
        error: None,
        usage: state.usage,
        steps: state.steps,
        provider: Some(last.provider.clone()),
        model: Some(last.model.clone()),
    };
    serde_json::to_value(result).map_err(|e| WorkerError::permanent(format!("agent `{id}`: {e}")))
}

/// One tool call's outcome, as a tools step's checkpoint holds it (and
/// [`TaskState::apply`] reads it back).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolOutcome {
    call_id: String,
    tool: String,
    parameters: Value,
    result: Value,
    content: String,
    is_error: bool,
}

/// A tools step's checkpoint record.
#[derive(serde::Serialize)]
struct ToolsStep<'a> {
    kind: &'static str,
    results: &'a [ToolOutcome],
}

/// A model step's checkpoint record, as [`TaskState::apply`] reads it.
#[derive(serde::Serialize)]
struct ModelStep<'a> {
    kind: &'static str,
    response: &'a GenerateResponse,
    /// The context the first call was built from (first step only).
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<ContextRecord<'a>>,
}

/// The context part of the first model step's record.
#[derive(serde::Serialize)]
struct ContextRecord<'a> {
    system: &'a str,
    messages: &'a [Message],
}

/// Stores step `index` of `job`, already written as JSON, durably.
async fn store_step_json(
    rt: &AgentRuntime,
    job: JobId,
    index: u32,
    record: Vec<u8>,
    agent: &str,
) -> Result<(), WorkerError> {
    unaccounted(rt.checkpoints.save_step_json(job, index, record))
        .await
        .map_err(|e| store_error(agent, "saving a checkpoint", e))
}

async fn build_context(
    agent: &AgentConfig,
    rt: &AgentRuntime,
    prompt: &str,
    conversation: Option<&str>,
    user: Option<&str>,
    job: &JobContext,
) -> Result<(String, Vec<Message>), WorkerError> {
    let id = agent.id.as_str();
    let mut history = Vec::new();
    if let Some(conv) = conversation {
        let recent = unaccounted(rt.conversations.recent(conv, rt.settings.history_limit))
            .await
            .map_err(|e| store_error(id, "reading the conversation", e))?;
        history = recent
            .into_iter()
            .map(|m| ContextMessage {
                role: m.role.to_string(),
                author: m.author,
                content: m.content,
            })
            .collect();
        let msg = NewMessage::new(conv, Role::User, user.unwrap_or("user"), prompt);
        unaccounted(
            rt.conversations
                .append(msg, Some(format!("task:{}:prompt", job.job_id))),
        )
        .await
        .map_err(|e| store_error(id, "storing the task in the conversation", e))?;
    }
    let scope = MemoryScope {
        agent_id: id.to_string(),
        user_id: user.map(str::to_string),
    };
    let recalled = rt
        .memory
        .send(Recall {
            scope,
            query: prompt.to_string(),
            limit: rt.settings.recall_limit,
        })
        .await
        .map_err(|e| store_error(id, "recalling memories", e))?
        .map_err(|e| store_error(id, "recalling memories", e))?;
    let memories = recalled
        .into_iter()
        .map(|s| ContextMemory {
            kind: s.memory.kind.as_str().to_string(),
            content: s.memory.content,
            importance: s.memory.importance,
        })
        .collect();
    let project = job.ctx.extra.get("project").map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let built = context::build(&ContextInput {
        system_prompt: agent.system_prompt.clone(),
        task: prompt.to_string(),
        memories,
        history,
        project,
        budget: rt.settings.context_tokens,
    });
    Ok((built.system, built.messages))
}

#[allow(clippy::too_many_arguments)]
async fn run_tools(
    rt: &AgentRuntime,
    allowed: &Arc<[String]>,
    reply: &GenerateResponse,
    step: u32,
    agent: &str,
    job: JobId,
    user: &Option<String>,
    conversation: &Option<String>,
) -> Vec<ToolOutcome> {
    let calls = reply.tool_calls.iter().map(|call| {
        let mut ctx = ToolContext::new(agent, job, step, call.id.clone());
        ctx.user_id = user.clone();
        ctx.conversation_id = conversation.clone();
        let allowed = allowed.clone();
        async move {
            let result = match &call.arguments_error {
                Some(bad) => Err(ToolError::invalid_argument(
                    "",
                    format!(
                        "the arguments are not valid JSON ({}): {}",
                        bad.message, bad.raw
                    ),
                )),
                None => {
                    rt.tools
                        .call(ToolRequest::new(
                            call.name.clone(),
                            call.arguments.clone(),
                            ctx,
                            allowed,
                        ))
                        .await
                }
            };
            let message = tool_result(&call.id, &result);
            let value = match result {
                Ok(v) => v,
                Err(e) => e.to_result_value(),
            };
            ToolOutcome {
                call_id: call.id.clone(),
                tool: call.name.clone(),
                parameters: call.arguments.clone(),
                result: value,
                content: message.content,
                is_error: message.is_error,
            }
        }
    });
    join_all(calls).await
}

/// Asks the model what the task taught it and keeps the answer as a memory.
/// Best effort: a failure here does not fail a task that has its answer.
async fn reflect(
    agent: &AgentConfig,
    rt: &AgentRuntime,
    meta: &CallMeta,
    state: &TaskState,
    job: JobId,
    user: Option<&str>,
) {
    let mut messages = state.messages.clone();
    messages.push(Message::user(
        "In one sentence, what did you learn from this task that is worth remembering?",
    ));
    let request = GenerateRequest {
        model: agent.model_config.model.clone(),
        system: Some(state.system.clone()),
        messages,
        tools: Default::default(),
        tool_choice: ToolChoice::None,
        temperature: Some(agent.model_config.temperature),
        max_tokens: Some(200),
    };
    let learned = match rt.models.generate(meta, &agent.model_config, request).await {
        Ok(r) if !r.text.trim().is_empty() => r.text,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(agent = %agent.id, job = %job, error = %e, "reflection failed");
            return;
        }
    };
    let scope = MemoryScope {
        agent_id: agent.id.clone(),
        user_id: user.map(str::to_string),
    };
    let memory = NewMemory::new(&scope, "learning", learned, 5).with_source(job);
    let remember = Remember {
        memory,
        idempotency_key: Some(format!("task:{job}:reflect")),
    };
    match rt.memory.send(remember).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(agent = %agent.id, error = %e, "storing a reflection failed"),
        Err(e) => tracing::warn!(agent = %agent.id, error = %e, "storing a reflection failed"),
    }
}
