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
//!
//! Two of the agent's limits are kept here, at no cost beyond a comparison
//! per tool call: `maxToolCallsPerReply` (the calls of a reply beyond it get
//! a tool error each and do not run) and `maxTasksPerTask` (the jobs the
//! task's `create_task` and `scheduler` calls created, counted from its tool
//! results, so a resumed or retried task counts what its checkpoints hold;
//! calls beyond get a tool error). Every tool call carries the task's depth
//! (`ctx.depth` of its job), for `create_task`'s `maxTaskDepth`.
//!
//! **Approval.** When a reply calls a tool that needs a person's approval
//! (named in the agent's `approval`, or [`crate::tools::Tool::requires_approval`]),
//! the whole round waits: before any call of the reply runs, the task
//! returns [`WorkerError::Parked`] with one request per such call, and the
//! engine parks the job (`waiting`, no worker slot). The reply is already
//! checkpointed, so when every approval is decided the job is queued again,
//! the task resumes from that checkpoint and finds the decisions in
//! [`JobContext::approvals`] (matched by step and position in the reply):
//! approved calls run (once: the same idempotency keys), the others get a
//! [`ToolError::NotApproved`] with the reason, and the round is
//! checkpointed as any other.

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
use crate::events::{Emitter, EventHub, TaskEventKind};
use crate::job::{ApprovalRequest, ApprovalState};
use crate::memory::actor::{MemoryActor, Recall, Remember};
use crate::memory::{MemoryScope, NewMemory};
use crate::names::{
    CTX_DEPTH, JOB_CREATING_TOOLS, MAX_OUTPUT_CORRECTIONS, MAX_TASKS_PER_TASK,
    MAX_TOOL_CALLS_PER_REPLY,
};
use crate::provider::{
    GenerateResponse, Message, ProviderError, TextSink, ToolCall, ToolDefinition, ToolResult, Usage,
};
use crate::store::{MemoryStore, StepStore};
use crate::tools::{tool_result, Policies, ToolContext, ToolError, ToolRequest, Tools};

use super::context::{self, ContextInput, ContextMemory, ContextMessage};
use super::gateway::{job_error, CallMeta, ModelGateway};
use super::output::{self, OutputSchema};
use super::processing::{ProcessingResult, ToolCallRecord};
use super::step::{Step, StepContext, ToolOutcome};

/// What every agent of a runtime shares.
pub(crate) struct AgentRuntime {
    /// Reaches the models.
    pub models: Arc<dyn ModelGateway>,
    /// Runs tool calls.
    pub tools: Tools,
    /// The Memory actor.
    pub memory: ActorRef<MemoryActor>,
    /// The memories themselves, asked directly whether a scope holds any
    /// (no recall, and no trip through the actor, for one that holds none).
    pub memories: Arc<dyn MemoryStore>,
    /// Conversations (history in, answers out).
    pub conversations: Arc<dyn ConversationStore>,
    /// Durable steps.
    pub checkpoints: Arc<dyn StepStore>,
    /// Context sizes.
    pub settings: MemorySection,
    /// The agents' tool policies; the loop counts its own refusals there.
    pub policies: Arc<Policies>,
    /// Where each task's live events go (the engine's hub).
    pub events: Arc<EventHub>,
}

/// The args of an agent task job.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TaskArgs {
    prompt: String,
    #[serde(default)]
    conversation_id: Option<String>,
    /// The JSON Schema the final answer must validate against.
    #[serde(default)]
    output_schema: Option<Value>,
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
    /// Whether the tool calls of `last` have not been run yet.
    tools_pending: bool,
    /// The last model reply.
    last: Option<GenerateResponse>,
    /// Whether the context in `system` and `messages` is not checkpointed
    /// yet (it goes with the first model reply).
    context_unsaved: bool,
    /// Jobs the task's tool calls created (or found created by an earlier
    /// run of the same call): what `maxTasksPerTask` counts.
    created: u32,
    /// Answers sent back for not matching the output schema.
    corrections: u32,
    /// Whether the last reply was sent back (a correction follows it), so
    /// the model must be asked again.
    correcting: bool,
    /// The final answer as JSON, once it validated against the schema.
    output: Option<Value>,
}

impl TaskState {
    /// Takes in one model reply (a step).
    fn push_reply(&mut self, response: GenerateResponse) {
        self.steps += 1;
        self.usage.input_tokens += response.usage.input_tokens;
        self.usage.output_tokens += response.usage.output_tokens;
        self.usage.cached_input_tokens += response.usage.cached_input_tokens;
        self.messages.push(response.to_message());
        self.tools_pending = !response.tool_calls.is_empty();
        self.correcting = false;
        self.last = Some(response);
    }

    /// Takes in the message that sends the last answer back.
    fn push_correction(&mut self, message: String) {
        self.messages.push(Message::user(message));
        self.corrections += 1;
        self.correcting = true;
    }

    /// The last reply when it is a final answer the loop has not sent back.
    fn final_reply(&self) -> Option<&GenerateResponse> {
        self.last
            .as_ref()
            .filter(|l| l.tool_calls.is_empty() && !self.correcting)
    }

    /// Takes in one round of tool results, as just run or read back.
    fn push_tool_results(&mut self, results: Vec<ToolOutcome>) {
        for r in results {
            if !r.is_error && JOB_CREATING_TOOLS.contains(&r.tool.as_str()) {
                self.created = self.created.saturating_add(1);
            }
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
        self.tools_pending = false;
    }

    /// The last reply, while its tool calls have not been run.
    fn pending_reply(&self) -> Option<&GenerateResponse> {
        self.last.as_ref().filter(|_| self.tools_pending)
    }

    /// The index the next checkpoint record is stored under.
    fn next_record(&mut self) -> u32 {
        let index = self.records;
        self.records += 1;
        index
    }

    /// Takes in one checkpoint record, read back.
    fn apply(&mut self, step: Step<'_>) {
        self.records += 1;
        match step {
            Step::Context(context) => self.set_context(context),
            Step::Model { response, context } => {
                if let Some(context) = context {
                    self.set_context(context);
                }
                self.push_reply(response.into_owned());
            }
            Step::Tools { results } => self.push_tool_results(results.into_owned()),
            Step::Correction { message } => self.push_correction(message.into_owned()),
        }
    }

    fn set_context(&mut self, context: StepContext<'_>) {
        self.system = context.system.into_owned();
        self.messages = context.messages.into_owned();
    }
}

/// What the check of a final answer found.
enum Checked {
    /// It validates (its JSON; none when the task has no schema).
    Valid(Option<Value>),
    /// It does not: this message sends it back.
    SendBack(String),
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

/// What an agent's tasks offer the model and what of it needs approval:
/// made once per agent worker, on its first task.
#[derive(Clone)]
pub(crate) struct AgentTools {
    /// The allowed tools' definitions as every model call offers them.
    pub definitions: Arc<[ToolDefinition]>,
    /// The tools whose calls wait for a person's approval: the agent's
    /// `approval` list and the allowed tools that always require it.
    pub approval: Arc<[String]>,
}

/// Runs (or resumes) one task of `agent`.
pub(crate) async fn run(
    agent: &AgentConfig,
    allowed: &Arc<[String]>,
    tools: AgentTools,
    rt: &AgentRuntime,
    args: Value,
    job: JobContext,
) -> Result<Value, WorkerError> {
    let task = Task::new(agent, allowed, tools, rt, args, job)?;
    let mut state = task.start_or_resume().await?;
    task.run_steps(&mut state).await?;
    task.finish(state).await
}

/// One task of one agent, with what stays fixed while it runs: who runs it
/// and with which tools, for whom, in which conversation.
struct Task<'a> {
    agent: &'a AgentConfig,
    allowed: &'a Arc<[String]>,
    rt: &'a AgentRuntime,
    job: JobContext,
    prompt: String,
    conversation: Option<String>,
    user: Option<String>,
    /// How deep the task is in a chain of tasks creating tasks.
    depth: u32,
    /// Who each model call is for.
    meta: CallMeta,
    /// The agent's tools as every model call offers them.
    definitions: Arc<[ToolDefinition]>,
    /// The schema the final answer must validate against, when the task
    /// has one.
    output: Option<OutputSchema>,
    /// The task's live events.
    events: Emitter,
    /// The tools whose calls need approval.
    approval: Arc<[String]>,
}

impl<'a> Task<'a> {
    /// The task of job `job`, from its args.
    fn new(
        agent: &'a AgentConfig,
        allowed: &'a Arc<[String]>,
        tools: AgentTools,
        rt: &'a AgentRuntime,
        args: Value,
        job: JobContext,
    ) -> Result<Self, WorkerError> {
        let id = agent.id.as_str();
        let args: TaskArgs = serde_json::from_value(args).map_err(|e| {
            WorkerError::permanent(format!(
                "agent `{id}`: task args must be {{\"prompt\": \"…\", \"conversationId\"?: \"…\", \"outputSchema\"?: {{…}}}}: {e}"
            ))
        })?;
        let output = args
            .output_schema
            .map(OutputSchema::compile)
            .transpose()
            .map_err(|e| {
                WorkerError::permanent(format!("agent `{id}`: the task's `outputSchema` {e}"))
            })?;
        if args.prompt.trim().is_empty() {
            return Err(WorkerError::permanent(format!(
                "agent `{id}`: the task's `prompt` is empty"
            )));
        }
        let conversation = args
            .conversation_id
            .or_else(|| job.ctx.conversation_id.clone());
        Ok(Task {
            agent,
            allowed,
            rt,
            prompt: args.prompt,
            conversation,
            user: job.ctx.user_id.clone(),
            depth: job
                .ctx
                .extra
                .get(CTX_DEPTH)
                .and_then(Value::as_u64)
                .map_or(0, |d| u32::try_from(d).unwrap_or(u32::MAX)),
            meta: CallMeta {
                agent_id: id.to_string(),
                job_id: Some(job.job_id),
            },
            definitions: tools.definitions,
            approval: tools.approval,
            output,
            events: rt.events.emitter(job.job_id),
            job,
        })
    }

    fn id(&self) -> &str {
        &self.agent.id
    }

    /// The state to go on from: the checkpoints of an earlier attempt, or a
    /// fresh context.
    async fn start_or_resume(&self) -> Result<TaskState, WorkerError> {
        let (id, job_id) = (self.id(), self.job.job_id);
        let saved = unaccounted(self.rt.checkpoints.load_steps(job_id))
            .await
            .map_err(|e| store_error(id, "loading checkpoints", e))?;
        let mut state = TaskState::default();
        for record in &saved {
            let step = Step::from_record(record).map_err(|e| {
                WorkerError::permanent(format!(
                    "agent `{id}`: corrupt checkpoint of job {job_id}: {e}"
                ))
            })?;
            state.apply(step);
        }
        if saved.is_empty() {
            // The context is checkpointed with the first model reply: until
            // that reply exists, building it again (recall, history) is as good.
            (state.system, state.messages) = self.build_context().await?;
            state.context_unsaved = true;
        } else {
            tracing::info!(agent = id, job = %job_id, steps = state.steps, "resuming task from its checkpoint");
        }
        Ok(state)
    }

    /// Model calls and tool rounds until a final answer or `maxSteps`.
    async fn run_steps(&self, state: &mut TaskState) -> Result<(), WorkerError> {
        loop {
            if let Some(reply) = state.pending_reply() {
                let step = state.steps.saturating_sub(1);
                let verdicts = self.approvals(reply, step)?;
                let results = self.run_tools(reply, step, state.created, &verdicts).await;
                self.save_tool_results(state, results).await?;
                continue;
            }
            if let Some(answer) = state.final_reply() {
                match self.check_answer(answer, state.corrections)? {
                    Checked::Valid(output) => {
                        state.output = output;
                        return Ok(());
                    }
                    Checked::SendBack(message) => {
                        self.save_correction(state, message).await?;
                        continue;
                    }
                }
            }
            if state.steps >= self.agent.max_steps {
                return Err(WorkerError::permanent(format!(
                    "agent `{}` reached maxSteps ({}) without a final answer",
                    self.id(),
                    self.agent.max_steps
                )));
            }
            let response = self.call_model(state).await?;
            if response.tool_calls.is_empty() && !self.answer_needs_checkpoint() {
                // The final answer, with nothing after it but completing the
                // job: the job's completion (durable, with the result) is its
                // checkpoint. A crash before it repeats this call, as a crash
                // before a checkpoint's flush would. An answer that is sent
                // back is checkpointed like any reply (below), and the top of
                // the loop sends it back.
                let valid = match &self.output {
                    None => Some(None),
                    Some(schema) => schema.check(&response.text).ok().map(Some),
                };
                if let Some(output) = valid {
                    state.push_reply(response);
                    state.output = output;
                    return Ok(());
                }
            }
            self.save_reply(state, response).await?;
        }
    }

    /// Checks a final answer against the task's output schema: its JSON
    /// when it validates (none without a schema), the message that sends it
    /// back when it does not, or the task's failure when `corrections`
    /// have been spent.
    fn check_answer(
        &self,
        answer: &GenerateResponse,
        corrections: u32,
    ) -> Result<Checked, WorkerError> {
        let Some(schema) = &self.output else {
            return Ok(Checked::Valid(None));
        };
        let errors = match schema.check(&answer.text) {
            Ok(value) => return Ok(Checked::Valid(Some(value))),
            Err(errors) => errors,
        };
        let limit = self.agent.limits.max_output_corrections;
        if corrections >= limit {
            return Err(WorkerError::permanent(format!(
                "agent `{}`: the answer does not match the task's outputSchema after {corrections} \
                 correction(s) ({MAX_OUTPUT_CORRECTIONS} = {limit}): {}",
                self.id(),
                errors.join("; ")
            )));
        }
        Ok(Checked::SendBack(output::correction(&errors)))
    }

    /// Checkpoints the message that sends the last answer back, then takes
    /// it into the state.
    async fn save_correction(
        &self,
        state: &mut TaskState,
        message: String,
    ) -> Result<(), WorkerError> {
        let record = Step::correction(&message)
            .to_json()
            .map_err(|e| self.unwritable(e))?;
        let index = state.next_record();
        state.push_correction(message);
        self.save_step(index, record).await
    }

    /// Whether the final answer is checkpointed like any reply: when it also
    /// goes into a conversation (a retry must not store a different answer
    /// than the one already appended) or a reflection follows.
    fn answer_needs_checkpoint(&self) -> bool {
        self.agent.reflect || self.conversation.is_some()
    }

    /// One model call with the state's context and messages.
    async fn call_model(&self, state: &TaskState) -> Result<GenerateResponse, WorkerError> {
        let model = &self.agent.model_config;
        let mut request = model.request(
            state.system.clone(),
            state.messages.clone(),
            self.definitions.clone(),
        );
        request.output_schema = self.output.as_ref().map(|o| o.schema().clone());
        // `otel.*` and `gen_ai.*` are OpenTelemetry's names (GenAI
        // semantic conventions) for what the exported span is; the usage
        // and the model that answered are recorded when it has.
        let span = tracing::info_span!(
            "model_call",
            agent = self.id(),
            job = %self.job.job_id,
            step = state.steps,
            provider = %model.provider,
            model = %model.model,
            "otel.name" = %format_args!("chat {}", model.model),
            "otel.kind" = "client",
            "gen_ai.operation.name" = "chat",
            "gen_ai.system" = %model.provider,
            "gen_ai.request.model" = %model.model,
            "gen_ai.response.model" = tracing::field::Empty,
            "gen_ai.usage.input_tokens" = tracing::field::Empty,
            "gen_ai.usage.output_tokens" = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
        );
        let models = &self.rt.models;
        let call = if model.stream {
            let (events, step) = (self.events.clone(), state.steps);
            let text = TextSink::new(move |delta| {
                let delta = delta.to_string();
                events.emit(TaskEventKind::TextDelta { step, delta });
            });
            models.generate_streaming(&self.meta, model, request, text)
        } else {
            models.generate(&self.meta, model, request)
        };
        let outcome = call.instrument(span.clone()).await;
        match &outcome {
            Ok(r) => {
                span.record("gen_ai.system", r.provider.as_str());
                span.record("gen_ai.response.model", r.model.as_str());
                span.record("gen_ai.usage.input_tokens", r.usage.input_tokens);
                span.record("gen_ai.usage.output_tokens", r.usage.output_tokens);
            }
            Err(e) => {
                span.record("error.type", tracing::field::debug(&e.kind));
            }
        }
        let response = outcome.map_err(|e| provider_error(self.id(), e))?;
        tracing::debug!(agent = self.id(), job = %self.job.job_id, provider = %response.provider, tool_calls = response.tool_calls.len(), "model replied");
        self.emit_reply(state.steps, &response);
        Ok(response)
    }

    /// The events of model call `step`'s reply: the call, and its text.
    fn emit_reply(&self, step: u32, response: &GenerateResponse) {
        self.events.emit(super::history::model_call(step, response));
        if !response.text.is_empty() {
            self.events.emit(TaskEventKind::Text {
                step,
                text: response.text.clone(),
            });
        }
    }

    /// Checkpoints a model reply, then takes it into the state.
    async fn save_reply(
        &self,
        state: &mut TaskState,
        response: GenerateResponse,
    ) -> Result<(), WorkerError> {
        // Before the reply joins them, the state's messages are still the
        // context's.
        let context = std::mem::take(&mut state.context_unsaved)
            .then(|| StepContext::borrowed(&state.system, &state.messages));
        let record = Step::model(&response, context)
            .to_json()
            .map_err(|e| self.unwritable(e))?;
        // The state takes the reply as it is (its context is in already):
        // what `apply` would read back from the record, without the round
        // trip through JSON.
        let index = state.next_record();
        state.push_reply(response);
        self.save_step(index, record).await
    }

    /// Checkpoints a round of tool results, then takes them into the state.
    async fn save_tool_results(
        &self,
        state: &mut TaskState,
        results: Vec<ToolOutcome>,
    ) -> Result<(), WorkerError> {
        let record = Step::tools(&results)
            .to_json()
            .map_err(|e| self.unwritable(e))?;
        let index = state.next_record();
        state.push_tool_results(results);
        self.save_step(index, record).await
    }

    fn unwritable(&self, e: serde_json::Error) -> WorkerError {
        WorkerError::permanent(format!("agent `{}`: {e}", self.id()))
    }

    /// Stores checkpoint record `index`, already written as JSON, durably.
    async fn save_step(&self, index: u32, record: Vec<u8>) -> Result<(), WorkerError> {
        unaccounted(
            self.rt
                .checkpoints
                .save_step_json(self.job.job_id, index, record),
        )
        .await
        .map_err(|e| store_error(self.id(), "saving a checkpoint", e))
    }

    /// Stores the answer in the conversation, reflects if asked to, and
    /// makes the job's result.
    async fn finish(&self, mut state: TaskState) -> Result<Value, WorkerError> {
        let id = self.id();
        let last = state.last.take().unwrap_or_else(|| GenerateResponse {
            text: String::new(),
            tool_calls: Vec::new(),
            finish_reason: crate::provider::FinishReason::Stop,
            usage: Usage::default(),
            provider: String::new(),
            model: String::new(),
            latency: std::time::Duration::ZERO,
        });
        if let Some(conv) = &self.conversation {
            let msg = NewMessage::new(conv.clone(), Role::Assistant, id, last.text.clone());
            let key = format!("task:{}:answer", self.job.job_id);
            unaccounted(self.rt.conversations.append(msg, Some(key)))
                .await
                .map_err(|e| store_error(id, "storing the answer", e))?;
        }
        if self.agent.reflect {
            self.reflect(&state).await;
        }
        let result = ProcessingResult {
            success: true,
            response: Some(last.text),
            tool_calls: state.tool_calls,
            error: None,
            usage: state.usage,
            steps: state.steps,
            provider: Some(last.provider),
            model: Some(last.model),
            output: state.output,
        };
        serde_json::to_value(result)
            .map_err(|e| WorkerError::permanent(format!("agent `{id}`: {e}")))
    }

    /// The system prompt and first messages: the agent's prompt, recalled
    /// memories, the recent conversation and project context, within the
    /// token budget. Appends the task to its conversation.
    async fn build_context(&self) -> Result<(String, Vec<Message>), WorkerError> {
        let history = match &self.conversation {
            Some(conv) => self.history_and_append_prompt(conv).await?,
            None => Vec::new(),
        };
        let memories = self.recall().await?;
        let project = self.job.ctx.extra.get("project").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let system_prompt = match &self.output {
            Some(schema) => format!("{}\n\n{}", self.agent.system_prompt, schema.instructions()),
            None => self.agent.system_prompt.clone(),
        };
        let built = context::build(&ContextInput {
            system_prompt,
            task: self.prompt.clone(),
            memories,
            history,
            project,
            budget: self.rt.settings.context_tokens,
        });
        Ok((built.system, built.messages))
    }

    /// The recent messages of `conv` (before this task), then the task
    /// appended to it.
    async fn history_and_append_prompt(
        &self,
        conv: &str,
    ) -> Result<Vec<ContextMessage>, WorkerError> {
        let (id, rt) = (self.id(), self.rt);
        let recent = unaccounted(rt.conversations.recent(conv, rt.settings.history_limit))
            .await
            .map_err(|e| store_error(id, "reading the conversation", e))?;
        let history = recent
            .into_iter()
            .map(|m| ContextMessage {
                role: m.role.to_string(),
                author: m.author,
                content: m.content,
            })
            .collect();
        let author = self.user.as_deref().unwrap_or("user");
        let msg = NewMessage::new(conv, Role::User, author, self.prompt.as_str());
        let key = format!("task:{}:prompt", self.job.job_id);
        unaccounted(rt.conversations.append(msg, Some(key)))
            .await
            .map_err(|e| store_error(id, "storing the task in the conversation", e))?;
        Ok(history)
    }

    /// The memories most useful for the task, through the Memory actor;
    /// none without asking it when context building takes no memories or
    /// the scope holds none.
    async fn recall(&self) -> Result<Vec<ContextMemory>, WorkerError> {
        let id = self.id();
        if self.rt.settings.recall_limit == 0 {
            return Ok(Vec::new());
        }
        let scope = self.scope();
        let any = unaccounted(self.rt.memories.may_hold_memories(&scope))
            .await
            .map_err(|e| store_error(id, "recalling memories", e))?;
        if !any {
            return Ok(Vec::new());
        }
        let recalled = self
            .rt
            .memory
            .send(Recall {
                scope,
                query: self.prompt.clone(),
                limit: self.rt.settings.recall_limit,
            })
            .await
            .map_err(|e| store_error(id, "recalling memories", e))?
            .map_err(|e| store_error(id, "recalling memories", e))?;
        Ok(recalled
            .into_iter()
            .map(|s| ContextMemory {
                kind: s.memory.kind.as_str().to_string(),
                content: s.memory.content,
                importance: s.memory.importance,
            })
            .collect())
    }

    /// The agent's memories of the task's user (or its own, without one).
    fn scope(&self) -> MemoryScope {
        MemoryScope {
            agent_id: self.agent.id.clone(),
            user_id: self.user.clone(),
        }
    }

    /// Whether call `call` of a reply needs a person's approval: its tool
    /// is in the agent's approval set and the call would reach it (the
    /// agent may use it, its arguments are JSON, it is within
    /// `maxToolCallsPerReply`).
    fn needs_approval(&self, index: usize, call: &ToolCall) -> bool {
        let per_reply =
            usize::try_from(self.agent.limits.max_tool_calls_per_reply).unwrap_or(usize::MAX);
        index < per_reply
            && call.arguments_error.is_none()
            && self.approval.contains(&call.name)
            && self.allowed.contains(&call.name)
    }

    /// The decisions on the calls of `reply` (model step `step`) that need
    /// approval, one entry per call: `None` to run it (approved, or no
    /// approval needed), or the error it gets instead. Parks the task
    /// ([`WorkerError::Parked`]) while any such call has no decision yet.
    fn approvals(
        &self,
        reply: &GenerateResponse,
        step: u32,
    ) -> Result<Vec<Option<ToolError>>, WorkerError> {
        let mut verdicts = Vec::with_capacity(reply.tool_calls.len());
        let mut asks = Vec::new();
        let mut pending = false;
        for (i, call) in reply.tool_calls.iter().enumerate() {
            let position = u32::try_from(i).unwrap_or(u32::MAX);
            if !self.needs_approval(i, call) {
                verdicts.push(None);
                continue;
            }
            let found = self
                .job
                .approvals
                .iter()
                .find(|a| a.step == step && a.call == position);
            verdicts.push(match found.map(|a| (a.state, a)) {
                None => {
                    asks.push(ApprovalRequest {
                        tool: call.name.clone(),
                        arguments: call.arguments.clone(),
                        step,
                        call: position,
                        call_id: call.id.clone(),
                        deadline: self.agent.approvals.timeout.and_then(|t| {
                            chrono::Duration::from_std(t)
                                .ok()
                                .and_then(|t| chrono::Utc::now().checked_add_signed(t))
                        }),
                    });
                    None
                }
                Some((ApprovalState::Pending, _)) => {
                    pending = true;
                    None
                }
                Some((ApprovalState::Approved, _)) => None,
                Some((_, a)) => Some(ToolError::NotApproved {
                    tool: call.name.clone(),
                    reason: a
                        .note
                        .clone()
                        .unwrap_or_else(|| format!("the approval was {}", a.state)),
                }),
            });
        }
        if asks.is_empty() && !pending {
            return Ok(verdicts);
        }
        let names: Vec<&str> = asks.iter().map(|a| a.tool.as_str()).collect();
        Err(WorkerError::parked(
            format!(
                "agent `{}`: waiting for approval of {} tool call(s) ({})",
                self.id(),
                asks.len(),
                names.join(", ")
            ),
            asks,
        ))
    }

    /// Runs the tool calls of `reply` (model step `step`) at once, within
    /// the agent's limits: the calls beyond `maxToolCallsPerReply`, and the
    /// job-creating calls beyond what is left of `maxTasksPerTask` after the
    /// `created` jobs, get a tool error each and do not run; so does a call
    /// whose approval `verdicts` refuse.
    async fn run_tools(
        &self,
        reply: &GenerateResponse,
        step: u32,
        created: u32,
        verdicts: &[Option<ToolError>],
    ) -> Vec<ToolOutcome> {
        let limits = &self.agent.limits;
        let per_reply = usize::try_from(limits.max_tool_calls_per_reply).unwrap_or(usize::MAX);
        let asked = reply.tool_calls.len();
        let mut room = limits.max_tasks_per_task.saturating_sub(created);
        let calls = reply.tool_calls.iter().enumerate().map(|(i, call)| {
            let refusal = if i >= per_reply {
                // Short: a reply may ask for thousands of calls, and each
                // refusal goes into the checkpoint and the next request.
                Some(self.refuse(
                    MAX_TOOL_CALLS_PER_REPLY,
                    format!(
                        "this reply asked for {asked} tool calls; only the first {per_reply} \
                         run ({MAX_TOOL_CALLS_PER_REPLY} = {per_reply})."
                    ),
                ))
            } else if self.creates_jobs(&call.name) {
                match room.checked_sub(1) {
                    Some(left) => {
                        room = left;
                        None
                    }
                    None => Some(self.refuse(
                        MAX_TASKS_PER_TASK,
                        format!(
                            "this task has created (or is creating in this reply) the {max} \
                             tasks and jobs its agent may create per task \
                             ({MAX_TASKS_PER_TASK} = {max}); this call did not run. Do the \
                             rest of the work in this task.",
                            max = limits.max_tasks_per_task
                        ),
                    )),
                }
            } else {
                None
            };
            let refusal = refusal.or_else(|| verdicts.get(i).cloned().flatten());
            self.run_tool(call, step, refusal)
        });
        join_all(calls).await
    }

    /// Whether a call of tool `name` would create a job (a tool this agent
    /// may use that `maxTasksPerTask` counts).
    fn creates_jobs(&self, name: &str) -> bool {
        JOB_CREATING_TOOLS.contains(&name) && self.allowed.iter().any(|t| t == name)
    }

    /// A refusal by the agent's limit `limit`, counted.
    fn refuse(&self, limit: &str, message: String) -> ToolError {
        self.rt
            .policies
            .refuse(self.id(), ToolError::limit_reached(limit, message))
    }

    /// Runs one tool call through the router, unless it is refused; its
    /// failure is an outcome too.
    async fn run_tool(
        &self,
        call: &ToolCall,
        step: u32,
        refusal: Option<ToolError>,
    ) -> ToolOutcome {
        self.events.emit(TaskEventKind::ToolCall {
            step,
            id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
        });
        let result = match (refusal, &call.arguments_error) {
            (Some(refused), _) => Err(refused),
            (None, Some(bad)) => Err(ToolError::invalid_argument(
                "",
                format!(
                    "the arguments are not valid JSON ({}): {}",
                    bad.message, bad.raw
                ),
            )),
            (None, None) => {
                let mut ctx = ToolContext::new(self.id(), self.job.job_id, step, call.id.clone());
                ctx.user_id = self.user.clone();
                ctx.conversation_id = self.conversation.clone();
                ctx.depth = self.depth;
                let request = ToolRequest::new(
                    call.name.clone(),
                    call.arguments.clone(),
                    ctx,
                    self.allowed.clone(),
                );
                self.rt.tools.call(request).await
            }
        };
        let message = tool_result(&call.id, &result);
        let outcome = ToolOutcome {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            parameters: call.arguments.clone(),
            result: result.unwrap_or_else(|e| e.to_result_value()),
            content: message.content,
            is_error: message.is_error,
        };
        self.events.emit(TaskEventKind::ToolResult {
            step,
            id: outcome.call_id.clone(),
            name: outcome.tool.clone(),
            is_error: outcome.is_error,
            result: outcome.result.clone(),
        });
        outcome
    }

    /// Asks the model what the task taught it and keeps the answer as a
    /// memory. Best effort: a failure here does not fail a task that has its
    /// answer.
    async fn reflect(&self, state: &TaskState) {
        let (agent, job) = (self.agent, self.job.job_id);
        let mut messages = state.messages.clone();
        messages.push(Message::user(
            "In one sentence, what did you learn from this task that is worth remembering?",
        ));
        let mut request =
            agent
                .model_config
                .request(state.system.clone(), messages, Default::default());
        request.max_tokens = Some(200);
        let learned = match self
            .rt
            .models
            .generate(&self.meta, &agent.model_config, request)
            .await
        {
            Ok(r) if !r.text.trim().is_empty() => r.text,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(agent = %agent.id, job = %job, error = %crate::escape::Escaped(&e.to_string()), "reflection failed");
                return;
            }
        };
        let memory = NewMemory::new(&self.scope(), "learning", learned, 5).with_source(job);
        let remember = Remember {
            memory,
            idempotency_key: Some(format!("task:{job}:reflect")),
        };
        match self.rt.memory.send(remember).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(agent = %agent.id, error = %e, "storing a reflection failed")
            }
            Err(e) => tracing::warn!(agent = %agent.id, error = %e, "storing a reflection failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::FinishReason;

    fn answer(text: &str) -> GenerateResponse {
        GenerateResponse {
            text: text.into(),
            tool_calls: Vec::new(),
            finish_reason: FinishReason::Stop,
            usage: Usage::default(),
            provider: "p".into(),
            model: "m".into(),
            latency: std::time::Duration::ZERO,
        }
    }

    /// A task resumed after an answer was sent back asks the model again,
    /// with the correction last; one resumed after the next answer has
    /// that answer to check.
    #[test]
    fn a_resumed_correction_asks_again_and_counts() {
        let first = answer("not json");
        let records = [
            Step::model(&first, None).to_json().unwrap(),
            Step::correction("fix it").to_json().unwrap(),
        ];
        let mut state = TaskState::default();
        for r in &records {
            state.apply(Step::from_record(&serde_json::from_slice(r).unwrap()).unwrap());
        }
        assert!(state.final_reply().is_none());
        assert!(state.pending_reply().is_none());
        assert_eq!(state.corrections, 1);
        assert!(
            matches!(state.messages.last(), Some(Message::User { content }) if content == "fix it")
        );
        assert_eq!(state.records, 2);
        state.push_reply(answer("{}"));
        assert_eq!(state.final_reply().map(|r| r.text.as_str()), Some("{}"));
    }
}
