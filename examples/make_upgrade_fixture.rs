//! Writes the upgrade fixture: a data directory written by this version of
//! Troupe, with something of every kind the store holds, for
//! `tests/upgrade.rs` to prove that later versions open it, read it back
//! exactly and finish its queued jobs.
//!
//! ```sh
//! cargo run --example make_upgrade_fixture -- /tmp/upgrade-fixture
//! ```
//!
//! Writes into the (new) directory:
//! - `data/`: the sled store, plus `secrets.json` (one provider key);
//! - `troupe.toml`: the daemon config the fixture is meant to run with;
//! - `master.key`: the fixed test master key (mode 600) `secrets.json` is
//!   sealed with;
//! - `expected.json`: the dump of a copy of `data/` (see
//!   `tests/upgrade/dump.rs`).
//!
//! It writes through the public store APIs only, playing the parts the
//! runtime plays (the scheduler claiming and completing, an agent's task
//! loop checkpointing, its tools remembering and posting, the compaction
//! worker compacting), and stops in the middle of things the way a killed
//! daemon does: jobs left `running` (one with a cancel request), an agent
//! task with a checkpoint whose tool round had done only part of its effects.
//! Then it checks that the dump accounts for every record of every sled tree
//! (counting them with sled directly, on another copy), so nothing in the
//! store escapes the comparison.

#[path = "../tests/upgrade/dump.rs"]
mod dump;

use std::collections::BTreeMap;
use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use troupe::agent::checkpoint::{job_of_key, CheckpointStore, Claim};
use troupe::agent::context::{self, ContextInput, ContextMemory, ContextMessage};
use troupe::agent::{OfflineModel, ProcessingResult, ToolCallRecord};
use troupe::conversation::{ConversationStore, NewMessage, Role};
use troupe::job::schedule::{Schedule, ScheduleSpec};
use troupe::job::{EnqueueOptions, Job, JobCtx, JobStatus};
use troupe::memory::{rank, MemoryScope, MemoryStore, NewMemory, RecallWeights};
use troupe::provider::{
    ApiKey, GenerateRequest, GenerateResponse, Message, ToolChoice, ToolDefinition, Usage,
};
use troupe::secrets::{MasterKey, SecretStore};
use troupe::store::{
    CancelOutcome, ClaimRequest, FailAction, InsertOutcome, Outcome, PauseTarget, SledConfig,
    SledStore, Store,
};
use troupe::usage::{PriceTable, UsageRecord, UsageStore};

type Res<T> = Result<T, Box<dyn Error>>;

/// The fixture's master key: a fixed, made-up TEST key (never use it for
/// anything else). `secrets.json` is sealed with it.
const MASTER_KEY_HEX: &str = "5e1f0c2a9b7d4e8f6a3c1b0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f";

const SARAH_SYSTEM_PROMPT: &str = "You are Sarah, a helpful frontend developer. You review code, keep the team informed through messages, and remember what you learn about the team's preferences.";
const SARAH_TOOLS: [&str; 4] = ["remember", "recall", "send_message", "scheduler"];
/// What the real compaction worker asks the model (src/agent/compaction.rs).
const SUMMARY_PROMPT: &str =
    "Summarize these memories into one short paragraph that keeps every fact, preference and lesson.";
const PROJECT: &str = "storefront: React 18 + TypeScript, deployed from main";

/// The daemon config the fixture runs with (`tests/upgrade.rs`).
const TROUPE_TOML: &str = r#"# The daemon config of the upgrade fixture (tests/fixtures/upgrade-0.1),
# written by examples/make_upgrade_fixture.rs. Run it on a COPY of data/:
#   troupe run --config troupe.toml --data-dir <copy>/data
# with TROUPE_MASTER_KEY_FILE naming a copy of master.key (mode 600).

[engine]
concurrency = 4
drainTimeout = "5s"

# Never called (no agent uses it; the address is a closed local port); it is
# here so that the daemon decrypts its key from data/secrets.json at start.
[[providers]]
name = "openai"
type = "openai"
baseUrl = "http://127.0.0.1:9/v1"
timeoutSecs = 5

[[agents]]
id = "sarah"
name = "Sarah the Frontend Developer"
systemPrompt = "You are Sarah, a helpful frontend developer. You review code, keep the team informed through messages, and remember what you learn about the team's preferences."
tools = ["remember", "recall", "send_message", "scheduler"]
concurrency = 2
maxSteps = 8

[agents.modelConfig]
provider = "offline"
model = "offline"

# Paused in the fixture: its queued task must stay queued.
[[agents]]
id = "tom"
name = "Tom the Release Manager"
systemPrompt = "You are Tom, the release manager. You write release notes."
tools = []

[agents.modelConfig]
provider = "offline"
model = "offline"

[memory]
recallLimit = 8
historyLimit = 20
contextTokens = 6000
"#;

fn main() -> Res<()> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or("usage: cargo run --example make_upgrade_fixture -- <out-dir>")?;
    let data = out.join("data");
    if data.exists() {
        return Err(format!("{} exists already; give a new directory", data.display()).into());
    }
    std::fs::create_dir_all(&out)?;
    let master = write_master_key(&out.join("master.key"))?;
    std::fs::write(out.join("troupe.toml"), TROUPE_TOML)?;
    check_config(&out.join("troupe.toml"))?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Writes and closes the store (the drop flushes, writes buffered usage
    // and waits until sled has let go of the directory).
    let (manifest, labels) = rt.block_on(write_store(&data, &master))?;

    // The dump, from a copy: opening a store writes to its directory, and
    // the fixture must stay as the writing run left it.
    let scratch = tempfile::tempdir()?;
    let copy = scratch.path().join("dump");
    dump::copy_dir(&data, &copy)?;
    let expected = rt.block_on(async {
        let store = SledStore::open(SledConfig::new(&copy))?;
        dump::dump(&store, &master, &manifest).await
    })?;
    let mut text = serde_json::to_string_pretty(&expected)?;
    text.push('\n');
    std::fs::write(out.join("expected.json"), text)?;
    if dump::Manifest::from_dump(&expected)? != manifest {
        return Err("the manifest does not survive expected.json".into());
    }

    // Nothing in any tree that the dump does not show.
    let raw = scratch.path().join("raw");
    dump::copy_dir(&data, &raw)?;
    let inventory = check_inventory(&raw, &expected, &manifest)?;

    println!("wrote {}", out.display());
    println!("jobs:");
    for (label, id) in &labels {
        println!("  {label:<26} {id}");
    }
    println!("sled trees (records):");
    for (tree, n) in &inventory {
        println!("  {tree:<18} {n}");
    }
    Ok(())
}

/// The config parses, and Sarah's prompt and tools are those the fixture's
/// task records were made with.
fn check_config(path: &Path) -> Res<()> {
    let config = troupe::config::TroupeConfig::load(path)?;
    let sarah = config
        .agents
        .iter()
        .find(|a| a.id == "sarah")
        .ok_or("no agent sarah in troupe.toml")?;
    if sarah.system_prompt != SARAH_SYSTEM_PROMPT || sarah.tools != SARAH_TOOLS {
        return Err("troupe.toml and the generator disagree about sarah".into());
    }
    Ok(())
}

/// Writes the fixed test master key, readable by its owner only.
fn write_master_key(path: &Path) -> Res<MasterKey> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(MASTER_KEY_HEX.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(MasterKey::from_file(path)?)
}

/// A ctx with a source.
fn ctx(source: &str) -> JobCtx {
    JobCtx {
        source: Some(source.into()),
        ..JobCtx::default()
    }
}

/// A task ctx: user, conversation, source.
fn task_ctx(user: &str, conversation: Option<&str>, source: &str) -> JobCtx {
    JobCtx {
        user_id: Some(user.into()),
        conversation_id: conversation.map(str::to_string),
        source: Some(source.into()),
        extra: Map::new(),
    }
}

async fn insert(store: &SledStore, job: Job) -> Res<Job> {
    match store.insert(job).await? {
        InsertOutcome::Inserted(job) => Ok(job),
        InsertOutcome::Existing(job) => Err(format!("unique key held by {}", job.id).into()),
    }
}

/// Claims `job` as the scheduler would (it must be its worker's only ready job).
async fn claim(store: &SledStore, job: &Job) -> Res<Job> {
    let mut per_worker = BTreeMap::new();
    per_worker.insert(job.worker_name.clone(), 1);
    let request = ClaimRequest {
        now: Utc::now(),
        limit: 1,
        per_worker: Some(per_worker),
    };
    match store.claim(&request).await?.into_iter().next() {
        Some(claimed) if claimed.id == job.id => Ok(claimed),
        other => Err(format!(
            "expected to claim {}, got {:?}",
            job.id,
            other.map(|j| j.id)
        )
        .into()),
    }
}

fn applied(outcome: Outcome, what: &str) -> Res<Job> {
    match outcome {
        Outcome::Applied(job) => Ok(job),
        Outcome::Stale { status, attempt } => {
            Err(format!("{what}: stale ({status}, attempt {attempt})").into())
        }
    }
}

/// Tool definitions as the offline model sees them (it goes by the names).
fn definitions(names: &[&str]) -> Arc<[ToolDefinition]> {
    names
        .iter()
        .map(|name| ToolDefinition {
            name: (*name).to_string(),
            description: format!("the {name} tool"),
            parameters: json!({ "type": "object" }),
        })
        .collect()
}

/// A model request as the task loop makes it for an agent of this config.
fn task_request(
    system: &str,
    messages: Vec<Message>,
    tools: Arc<[ToolDefinition]>,
) -> GenerateRequest {
    GenerateRequest {
        model: "offline".into(),
        system: Some(system.into()),
        messages,
        tool_choice: if tools.is_empty() {
            ToolChoice::None
        } else {
            ToolChoice::Auto
        },
        tools,
        temperature: Some(0.7),
        max_tokens: Some(2000),
    }
}

/// What the task loop does on a task's first run (src/agent/task.rs,
/// `build_context`): read the conversation, append the task to it, recall
/// (and touch) the scope's memories, build the context.
async fn task_context(
    store: &SledStore,
    job: &Job,
    prompt: &str,
    scope: &MemoryScope,
) -> Res<(String, Vec<Message>)> {
    let mut history = Vec::new();
    if let Some(conversation) = &job.ctx.conversation_id {
        for m in store.recent(conversation, 20).await? {
            history.push(ContextMessage {
                role: m.role.to_string(),
                author: m.author,
                content: m.content,
            });
        }
        let user = job.ctx.user_id.as_deref().unwrap_or("user");
        let message = NewMessage::new(conversation.clone(), Role::User, user, prompt);
        store
            .append(message, Some(format!("task:{}:prompt", job.id)))
            .await?;
    }
    // The Memory actor's `Recall`: rank the live memories, touch those used.
    let live = MemoryStore::list(store, scope, false).await?;
    let now = Utc::now();
    let ranked = rank(live, prompt, now, &RecallWeights::default(), 8);
    let ids: Vec<_> = ranked.iter().map(|s| s.memory.id).collect();
    if !ids.is_empty() {
        store.touch(&ids, now).await?;
    }
    let memories = ranked
        .into_iter()
        .map(|s| ContextMemory {
            kind: s.memory.kind.as_str().to_string(),
            content: s.memory.content,
            importance: s.memory.importance,
        })
        .collect();
    let project = job
        .ctx
        .extra
        .get("project")
        .and_then(Value::as_str)
        .map(str::to_string);
    let built = context::build(&ContextInput {
        system_prompt: SARAH_SYSTEM_PROMPT.into(),
        task: prompt.into(),
        memories,
        history,
        project,
        budget: 6000,
    });
    Ok((built.system, built.messages))
}

/// The record of a model step, as the task loop writes it.
fn model_step(response: &GenerateResponse, context: Option<(&str, &[Message])>) -> Res<Value> {
    let mut record = Map::new();
    record.insert("kind".into(), json!("model"));
    record.insert("response".into(), serde_json::to_value(response)?);
    if let Some((system, messages)) = context {
        let context = json!({ "system": system, "messages": serde_json::to_value(messages)? });
        record.insert("context".into(), context);
    }
    Ok(Value::Object(record))
}

fn arg<'a>(call_args: &'a Value, name: &str) -> Res<&'a str> {
    call_args[name]
        .as_str()
        .ok_or_else(|| format!("tool call without `{name}`: {call_args}").into())
}

/// The `remember` tool's effect for call `call` of step 0 of `job`.
async fn remember_tool(
    store: &SledStore,
    job: &Job,
    scope: &MemoryScope,
    call: &troupe::provider::ToolCall,
) -> Res<Value> {
    let args = &call.arguments;
    let importance = args["importance"].as_u64().unwrap_or(5);
    let memory = NewMemory::new(
        scope,
        arg(args, "type")?,
        arg(args, "content")?,
        u8::try_from(importance)?,
    )
    .with_source(job.id);
    let key = format!("remember:tool:{}:0:{}", job.id, call.id);
    let remembered = store.remember(memory, Some(key)).await?;
    Ok(json!({
        "ok": true,
        "data": { "memoryId": remembered.memory.id, "created": remembered.created }
    }))
}

/// Writes the fixture's store through the public APIs, keeping the
/// manifest of what the dump must look up and a label for each job.
struct Writer {
    store: SledStore,
    started: DateTime<Utc>,
    manifest: dump::Manifest,
    labels: Vec<(String, Uuid)>,
}

impl Writer {
    /// Enqueues a job now, as `troupe enqueue` (or a task, a tool) would.
    async fn enqueue(
        &self,
        worker: &str,
        args: Value,
        ctx: JobCtx,
        options: EnqueueOptions,
    ) -> Res<Job> {
        insert(
            &self.store,
            Job::new(worker, args, ctx, &options, Utc::now())?,
        )
        .await
    }

    fn label(&mut self, label: &str, job: &Job) {
        self.labels.push((label.into(), job.id));
    }

    /// Memories, messages and a registry key from before any task.
    async fn onboarding(&mut self) -> Res<()> {
        let (sarah, ana) = (
            MemoryScope::agent("sarah"),
            MemoryScope::user("sarah", "ana"),
        );
        #[rustfmt::skip]
        let memories = [
            (&sarah, "fact", "The storefront is a React 18 app written in TypeScript.", 7, Some("import:onboarding:stack")),
            (&sarah, "learning", "Run `npm run build` before approving a pull request.", 5, None),
            (&sarah, "learning", "CI runs the end-to-end tests on every pull request.", 4, None),
            (&ana, "preference", "Ana reviews pull requests on Monday mornings.", 6, Some("import:onboarding:ana-mondays")),
        ];
        for (scope, kind, content, importance, key) in memories {
            let memory = NewMemory::new(scope, kind, content, importance);
            self.store.remember(memory, key.map(str::to_string)).await?;
            self.manifest.memory_keys.extend(key.map(str::to_string));
        }
        // The import ran once: a plain key of the idempotency registry.
        let key = "migration:import-onboarding-memories";
        let value = json!({ "importedAt": self.started, "memories": memories.len() });
        if self.store.claim_key(key, value).await? != Claim::Claimed {
            return Err(format!("{key} was claimed before").into());
        }
        self.manifest.idempotency_keys.push(key.into());

        #[rustfmt::skip]
        let messages = [
            ("frontend", Role::User, "ana", "Welcome to the storefront team, Sarah!", None),
            ("frontend", Role::Assistant, "sarah", "Thanks Ana! Send me anything you want reviewed.", None),
            ("ops", Role::System, "ops-bot", "Deploy freeze from Friday 18:00 UTC until Monday.", Some("ops:announcement:freeze")),
            ("ops", Role::User, "ben", "Noted: Tom holds the release notes until the freeze ends.", None),
            ("ops", Role::Tool, "deploy_status", r#"{"status":"green","lastDeploy":"web-2025.06.02"}"#, None),
        ];
        for (conversation, role, author, content, key) in messages {
            let message = NewMessage::new(conversation, role, author, content);
            self.store.append(message, key.map(str::to_string)).await?;
            self.manifest.message_keys.extend(key.map(str::to_string));
        }
        Ok(())
    }

    /// An echo job, claimed and completed as the scheduler does.
    async fn completed_echo(&mut self) -> Res<()> {
        let args = json!({ "greeting": "hello from troupe 0.1", "n": 1 });
        let job = self
            .enqueue("echo", args, ctx("cli"), EnqueueOptions::default())
            .await?;
        let job = claim(&self.store, &job).await?;
        let outcome = self.store.complete(job.id, 1, job.args.clone()).await?;
        let job = applied(outcome, "complete echo")?;
        self.label("completed echo", &job);
        Ok(())
    }

    /// An agent task run to its end, as the task loop runs it: one tool
    /// round (remember, send_message, scheduler), then the answer, which
    /// goes into the conversation (so the final reply is checkpointed too).
    /// Returns the compaction job its `scheduler` call queued.
    async fn completed_task(&mut self) -> Res<Job> {
        let ana = MemoryScope::user("sarah", "ana");
        let prompt = "Remember that Ana prefers short review comments, tell the team, and tidy up your memories";
        let mut task = task_ctx("ana", Some("frontend"), "cli");
        task.extra.insert("project".into(), json!(PROJECT));
        let args = json!({ "prompt": prompt, "conversationId": "frontend" });
        let job = self
            .enqueue("sarah", args, task, EnqueueOptions::default())
            .await?;
        let job = claim(&self.store, &job).await?;
        self.manifest
            .message_keys
            .push(format!("task:{}:prompt", job.id));
        let (system, messages) = task_context(&self.store, &job, prompt, &ana).await?;
        let tools = definitions(&SARAH_TOOLS);
        let first = OfflineModel.generate(&task_request(&system, messages.clone(), tools.clone()));
        planned(&first, &["remember", "send_message", "scheduler"])?;
        let step = model_step(&first, Some((&system, &messages)))?;
        self.store.save_step(job.id, 0, step).await?;

        let mut outcomes = Vec::new();
        let mut records = Vec::new();
        let mut compaction = None;
        for call in &first.tool_calls {
            let key = format!("tool:{}:0:{}", job.id, call.id);
            let result = match call.name.as_str() {
                "remember" => {
                    self.manifest.memory_keys.push(format!("remember:{key}"));
                    remember_tool(&self.store, &job, &ana, call).await?
                }
                "send_message" => {
                    let content = arg(&call.arguments, "content")?;
                    let message = NewMessage::new("frontend", Role::Assistant, "sarah", content);
                    let key = format!("send_message:{key}");
                    let appended = self.store.append(message, Some(key.clone())).await?;
                    self.manifest.message_keys.push(key);
                    json!({ "ok": true, "data": {
                        "messageId": appended.message.id,
                        "conversationId": "frontend",
                        "created": appended.created,
                    } })
                }
                _ => {
                    let scheduled = self
                        .scheduler_tool(&job, &format!("scheduler:{key}"), &call.arguments)
                        .await?;
                    let result = json!({ "ok": true, "data": {
                        "scheduled": true,
                        "jobId": scheduled.id,
                        "workerName": "memory_compaction_worker",
                    } });
                    compaction = Some(scheduled);
                    result
                }
            };
            outcomes.push(json!({
                "callId": call.id,
                "tool": call.name,
                "parameters": call.arguments,
                "result": result,
                "content": result.to_string(),
                "isError": false,
            }));
            records.push(ToolCallRecord {
                tool: call.name.clone(),
                parameters: call.arguments.clone(),
                result,
            });
        }
        let step = json!({ "kind": "tools", "results": outcomes });
        self.store.save_step(job.id, 1, step).await?;

        let mut after = messages;
        after.push(first.to_message());
        for outcome in &outcomes {
            let (id, content) = (arg(outcome, "callId")?, arg(outcome, "content")?);
            after.push(Message::tool_result(id, content, false));
        }
        let answer = OfflineModel.generate(&task_request(&system, after, tools));
        planned(&answer, &[])?;
        self.store
            .save_step(job.id, 2, model_step(&answer, None)?)
            .await?;
        let key = format!("task:{}:answer", job.id);
        let message = NewMessage::new("frontend", Role::Assistant, "sarah", answer.text.clone());
        self.store.append(message, Some(key.clone())).await?;
        self.manifest.message_keys.push(key);
        let result = ProcessingResult {
            success: true,
            response: Some(answer.text.clone()),
            tool_calls: records,
            error: None,
            usage: Usage {
                input_tokens: first.usage.input_tokens + answer.usage.input_tokens,
                output_tokens: first.usage.output_tokens + answer.usage.output_tokens,
                cached_input_tokens: 0,
            },
            steps: 2,
            provider: Some(answer.provider.clone()),
            model: Some(answer.model.clone()),
        };
        let outcome = self
            .store
            .complete(job.id, 1, serde_json::to_value(result)?)
            .await?;
        applied(outcome, "complete task")?;
        self.label("completed sarah task", &job);
        compaction.ok_or_else(|| "no compaction job was scheduled".into())
    }

    /// The `scheduler` tool's effect (src/tools/builtin/jobs.rs): claim the
    /// key with a fresh job id, insert the job under it (the key also its
    /// unique key), record `<key>#done`.
    async fn scheduler_tool(&mut self, parent: &Job, key: &str, call_args: &Value) -> Res<Job> {
        let mut args = Map::new();
        args.insert("kind".into(), json!("memory_compaction"));
        args.insert("agentId".into(), json!("sarah"));
        args.insert("userId".into(), json!("ana"));
        args.insert("conversationId".into(), json!("frontend"));
        for field in ["title", "content"] {
            if let Some(v) = call_args.get(field) {
                args.insert(field.into(), v.clone());
            }
        }
        let mut job_ctx = task_ctx("ana", Some("frontend"), "tool:scheduler");
        job_ctx.extra.insert("agentId".into(), json!("sarah"));
        job_ctx.extra.insert("parentJobId".into(), json!(parent.id));
        let options = EnqueueOptions::default().unique_key(key);
        let job = Job::new(
            "memory_compaction_worker",
            Value::Object(args),
            job_ctx,
            &options,
            Utc::now(),
        )?;
        let value = json!({ "jobId": job.id });
        if self.store.claim_key(key, value.clone()).await? != Claim::Claimed {
            return Err(format!("{key} was claimed before").into());
        }
        let job = insert(&self.store, job).await?;
        let done = format!("{key}#done");
        self.store.claim_key(&done, value).await?;
        self.manifest.idempotency_keys.push(key.into());
        self.manifest.idempotency_keys.push(done);
        Ok(job)
    }

    /// The compaction job, run as `memory_compaction_worker` runs it: the
    /// scope's live memories summarised by the model, archived into the
    /// summary in one step.
    async fn compaction(&mut self, job: Job) -> Res<()> {
        let ana = MemoryScope::user("sarah", "ana");
        let job = claim(&self.store, &job).await?;
        let live = MemoryStore::list(&self.store, &ana, false).await?;
        let listing: String = live.iter().map(|m| format!("- {}\n", m.content)).collect();
        let summary = OfflineModel.generate(&GenerateRequest {
            model: "offline".into(),
            system: Some(SUMMARY_PROMPT.into()),
            messages: vec![Message::user(listing)],
            tools: Default::default(),
            tool_choice: ToolChoice::None,
            temperature: Some(0.0),
            max_tokens: Some(1000),
        });
        let importance = live.iter().map(|m| m.importance).max().unwrap_or(5);
        let summary = NewMemory::new(&ana, "summary", summary.text, importance).with_source(job.id);
        let originals = live.iter().map(|m| m.id).collect();
        let compacted = self.store.compact(&ana, originals, vec![summary]).await?;
        let summary_ids: Vec<_> = compacted.summaries.iter().map(|m| m.id).collect();
        let result = json!({ "archived": compacted.archived.len(), "summaryIds": summary_ids });
        applied(
            self.store.complete(job.id, 1, result).await?,
            "complete compaction",
        )?;
        self.label("completed compaction", &job);
        Ok(())
    }

    /// A job failed after three attempts (the second timed out), and one
    /// cancelled while it waited.
    async fn failed_and_cancelled(&mut self) -> Res<()> {
        let options = EnqueueOptions::default()
            .max_attempts(3)
            .timeout(Duration::from_secs(5));
        let args = json!({ "ms": 10, "fail": true });
        let job = self.enqueue("sleep", args, ctx("cli"), options).await?;
        for attempt in 1..=3u32 {
            claim(&self.store, &job).await?;
            let error = if attempt == 2 {
                "attempt 2 timed out after 5000 ms".to_string()
            } else {
                format!("sleep: asked to fail (attempt {attempt})")
            };
            let retry = FailAction::RetryAt(Utc::now());
            self.store.fail(job.id, attempt, error, retry).await?;
        }
        let failed = Store::get(&self.store, job.id).await?.ok_or("job lost")?;
        if failed.status != JobStatus::Failed || failed.errors.len() != 3 {
            return Err(format!("expected a failed job with 3 errors: {failed:?}").into());
        }
        self.label("failed sleep", &job);

        let options = EnqueueOptions::default().delay(Duration::from_secs(3600));
        let args = json!({ "note": "cancelled before it ran" });
        let job = self.enqueue("echo", args, ctx("cli"), options).await?;
        match self.store.cancel(job.id).await? {
            CancelOutcome::Cancelled(_) => {}
            other => return Err(format!("cancel: {other:?}").into()),
        }
        self.label("cancelled echo", &job);
        Ok(())
    }

    /// What a killed daemon leaves running: an echo job; an agent task with
    /// its first step checkpointed, whose tool round had stored the memory
    /// (call1) but not posted the message (call2); a job whose cancel was
    /// requested while it ran.
    async fn crash(&mut self) -> Res<()> {
        let args = json!({ "n": 7, "text": "interrupted by a crash" });
        let job = self
            .enqueue("echo", args, ctx("cli"), EnqueueOptions::default())
            .await?;
        claim(&self.store, &job).await?;
        self.label("running echo", &job);

        let ana = MemoryScope::user("sarah", "ana");
        let prompt = "Remember that the release moves to Thursday and tell the team";
        let mut task = task_ctx("ana", Some("frontend"), "api");
        task.extra.insert("requestId".into(), json!("req-7f3a"));
        task.extra.insert("project".into(), json!(PROJECT));
        let options = EnqueueOptions::default()
            .priority(5)
            .timeout(Duration::from_secs(120));
        let args = json!({ "prompt": prompt, "conversationId": "frontend" });
        let job = self.enqueue("sarah", args, task, options).await?;
        let job = claim(&self.store, &job).await?;
        self.manifest
            .message_keys
            .push(format!("task:{}:prompt", job.id));
        let (system, messages) = task_context(&self.store, &job, prompt, &ana).await?;
        let request = task_request(&system, messages.clone(), definitions(&SARAH_TOOLS));
        let first = OfflineModel.generate(&request);
        planned(&first, &["remember", "send_message"])?;
        let step = model_step(&first, Some((&system, &messages)))?;
        self.store.save_step(job.id, 0, step).await?;
        let call = &first.tool_calls[0];
        remember_tool(&self.store, &job, &ana, call).await?;
        self.manifest
            .memory_keys
            .push(format!("remember:tool:{}:0:{}", job.id, call.id));
        self.label("running sarah task", &job);

        let options = EnqueueOptions::default().timeout(Duration::from_secs(900));
        let args = json!({ "ms": 600_000 });
        let job = self.enqueue("sleep", args, ctx("cli"), options).await?;
        claim(&self.store, &job).await?;
        match self.store.cancel(job.id).await? {
            CancelOutcome::Requested(_) => {}
            other => return Err(format!("cancel: {other:?}").into()),
        }
        self.label("running, cancel requested", &job);
        Ok(())
    }

    /// Queued jobs: due ones of every kind, one of a paused worker, one not
    /// due before 2100.
    async fn queued(&mut self) -> Res<()> {
        // Enqueued ten minutes ago with a five-minute delay: due now. Its
        // id is from then, as it would be.
        let enqueued_at = self.started - chrono::Duration::minutes(10);
        let options = EnqueueOptions::default().delay(Duration::from_secs(300));
        let args = json!({ "reminder": "stand-up notes are due" });
        let mut job = Job::new("echo", args, ctx("cli"), &options, enqueued_at)?;
        job.id = v7_at(enqueued_at, *b"delayed-01")?;
        let job = insert(&self.store, job).await?;
        self.label("queued echo, delayed", &job);

        let options = EnqueueOptions::default()
            .priority(10)
            .unique_key("report:weekly");
        let args = json!({ "report": "weekly", "week": 23 });
        let job = self
            .enqueue("echo", args, task_ctx("ben", None, "api"), options)
            .await?;
        self.label("queued echo, unique key", &job);

        let options = EnqueueOptions::default()
            .priority(-5)
            .max_attempts(5)
            .timeout(Duration::from_secs(30));
        let job = self
            .enqueue("sleep", json!({ "ms": 20 }), ctx("cli"), options)
            .await?;
        self.label("queued sleep", &job);

        let args = json!({ "prompt": "Recall what Ana prefers in review comments" });
        let task = task_ctx("ana", Some("frontend"), "http");
        let job = self
            .enqueue("sarah", args, task, EnqueueOptions::default())
            .await?;
        self.label("queued sarah task", &job);

        let args = json!({ "prompt": "Draft the release notes for version 0.2" });
        let task = task_ctx("ben", None, "cli");
        let job = self
            .enqueue("tom", args, task, EnqueueOptions::default())
            .await?;
        self.label("queued tom task (paused)", &job);

        let far = Utc
            .with_ymd_and_hms(2100, 1, 1, 0, 0, 0)
            .single()
            .ok_or("2100-01-01")?;
        let args = json!({ "note": "not before 2100" });
        let options = EnqueueOptions::default().run_at(far);
        let job = self.enqueue("echo", args, ctx("cli"), options).await?;
        self.label("queued echo, year 2100", &job);
        Ok(())
    }

    /// Tom paused (his task stays queued); two schedules, both due (the
    /// daemon was down when they came due), so each fires once when a
    /// daemon starts.
    async fn pause_and_schedules(&mut self) -> Res<()> {
        self.store
            .set_paused(PauseTarget::Worker("tom".into()), true)
            .await?;
        let mut nightly = Schedule::new(
            "nightly-report",
            "echo",
            json!({ "report": "nightly" }),
            ScheduleSpec::cron("0 3 * * *")?,
            self.started - chrono::Duration::days(1),
        )?;
        nightly.priority = 1;
        nightly.ctx.user_id = Some("ben".into());
        self.store.put_schedule(nightly).await?;
        let mut heartbeat = Schedule::new(
            "heartbeat",
            "sleep",
            json!({ "ms": 5 }),
            ScheduleSpec::every(Duration::from_secs(15 * 60))?,
            self.started - chrono::Duration::minutes(16),
        )?;
        heartbeat.unique_key = Some("heartbeat".into());
        heartbeat.timeout_ms = Some(10_000);
        heartbeat.max_attempts = 1;
        self.store.put_schedule(heartbeat).await?;
        Ok(())
    }

    /// Usage of model calls on two past days, two agents, two providers
    /// (and one call without an agent, one of an unpriced model), recorded
    /// in three batches; the last is still buffered when the store closes.
    async fn usage(&mut self) -> Res<()> {
        let day1 = (self.started - chrono::Duration::days(2)).date_naive();
        let day2 = (self.started - chrono::Duration::days(1)).date_naive();
        self.manifest.usage_days = vec![day1, day2];
        let call = |day, time, provider, model, agent, tokens, latency_ms| Call {
            day,
            time,
            provider,
            model,
            agent,
            tokens,
            latency_ms,
        };
        let (sarah, tom) = (Some("sarah"), Some("tom"));
        // When, provider, model, agent, (input, output, cached input) tokens, latency ms.
        #[rustfmt::skip]
        let calls = [
            call(day1, (9, 15, 0), "openai", "gpt-4o-mini", sarah, (1200, 300, 0), 850),
            call(day1, (9, 15, 3), "anthropic", "claude-haiku-4-5", sarah, (900, 250, 0), 1_240),
            call(day1, (14, 2, 10), "openai", "gpt-4o-mini", tom, (400, 120, 0), 610),
            call(day1, (14, 5, 0), "openai", "gpt-4o-mini", None, (2500, 180, 1024), 1_900),
            call(day2, (8, 30, 0), "anthropic", "claude-haiku-4-5", tom, (2000, 500, 1024), 2_100),
            call(day2, (8, 31, 0), "openai", "gpt-4o-mini", sarah, (700, 90, 0), 540),
            call(day2, (8, 31, 5), "openai", "gpt-experimental", sarah, (300, 40, 0), 400),
        ];
        let prices = PriceTable::defaults();
        for (n, call) in calls.iter().enumerate() {
            let record = call.record(u8::try_from(n)?, &prices)?;
            self.store.record(&record).await?;
            if n == 1 || n == 4 {
                // A read writes what is buffered: the end of a batch.
                self.store.day_usage(call.day).await?;
            }
        }
        Ok(())
    }
}

/// Checks the calls the offline model planned.
fn planned(response: &GenerateResponse, tools: &[&str]) -> Res<()> {
    let names: Vec<&str> = response
        .tool_calls
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    if names != tools {
        return Err(format!("the offline model planned {names:?}, not {tools:?}").into());
    }
    Ok(())
}

/// Everything the fixture's store holds, written as the runtime would, then
/// the store closed. Returns the manifest of the dump and the jobs by label.
async fn write_store(
    data: &Path,
    master: &MasterKey,
) -> Res<(dump::Manifest, Vec<(String, Uuid)>)> {
    let mut writer = Writer {
        store: SledStore::open(SledConfig::new(data))?,
        started: Utc::now(),
        manifest: dump::Manifest {
            memory_scopes: vec![
                MemoryScope::agent("sarah"),
                MemoryScope::user("sarah", "ana"),
            ],
            conversations: vec!["frontend".into(), "ops".into()],
            secret_providers: vec!["openai".into()],
            ..dump::Manifest::default()
        },
        labels: Vec::new(),
    };
    writer.onboarding().await?;
    writer.completed_echo().await?;
    let compaction = writer.completed_task().await?;
    writer.compaction(compaction).await?;
    writer.failed_and_cancelled().await?;
    writer.crash().await?;
    writer.queued().await?;
    writer.pause_and_schedules().await?;
    writer.usage().await?;

    // `troupe secrets set openai --expires 2099-12-31`.
    let expires = NaiveDate::from_ymd_opt(2099, 12, 31).ok_or("2099-12-31")?;
    let key = ApiKey::new(dump::FIXTURE_API_KEY);
    SecretStore::new(data).set(master, "openai", &key, Some(expires))?;

    // Closing writes the buffered usage and waits for sled to let go.
    let Writer {
        store,
        manifest,
        labels,
        ..
    } = writer;
    drop(store);
    Ok((manifest, labels))
}

/// One model call of the fixture's usage.
struct Call {
    day: NaiveDate,
    /// Hour, minute, second (UTC).
    time: (u32, u32, u32),
    provider: &'static str,
    model: &'static str,
    agent: Option<&'static str>,
    /// Input, output, cached input tokens.
    tokens: (u64, u64, u64),
    latency_ms: u64,
}

impl Call {
    /// The usage record the provider actor would write for it: the `n`th
    /// call, priced by the default price table (the job it served, an
    /// earlier task, has been pruned since).
    fn record(&self, n: u8, prices: &PriceTable) -> Res<UsageRecord> {
        let (h, m, s) = self.time;
        let at = self
            .day
            .and_hms_opt(h, m, s)
            .ok_or("time of a usage record")?
            .and_utc();
        let (input, output, cached) = self.tokens;
        let usage = Usage {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
        };
        let price = prices.lookup(self.model);
        let job = match self.agent {
            Some(_) => Some(v7_at(
                at - chrono::Duration::seconds(2),
                [b'j', b'o', b'b', 0, 0, 0, 0, 0, 0, n],
            )?),
            None => None,
        };
        Ok(UsageRecord {
            id: v7_at(at, [b'u', b's', b'a', b'g', b'e', 0, 0, 0, 0, n])?,
            at,
            provider: self.provider.into(),
            model: self.model.into(),
            agent: self.agent.map(str::to_string),
            job,
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            latency_ms: self.latency_ms,
            cost_nanos: price.map(|p| p.cost_nanos(&usage)).unwrap_or(0),
            priced: price.is_some(),
        })
    }
}

/// A UUID v7 of the millisecond of `at`, with fixed "random" bits.
fn v7_at(at: DateTime<Utc>, bits: [u8; 10]) -> Res<Uuid> {
    let ms = u64::try_from(at.timestamp_millis())?;
    Ok(uuid::Builder::from_unix_timestamp_millis(ms, &bits).into_uuid())
}

/// Counts the records of every sled tree (with sled itself, on a copy) and
/// checks that the dump shows each one. Returns the counts.
fn check_inventory(
    dir: &Path,
    dump: &Value,
    manifest: &dump::Manifest,
) -> Res<BTreeMap<String, usize>> {
    let len = |v: &Value| v.as_array().map_or(0, Vec::len);
    let sum = |v: &Value| {
        v.as_object()
            .map_or(0, |m| m.values().map(len).sum::<usize>())
    };
    let mut expected: BTreeMap<&str, usize> = BTreeMap::new();
    expected.insert("__sled__default", 0);
    expected.insert("jobs", len(&dump["jobs"]));
    expected.insert("schedules", len(&dump["schedules"]));
    expected.insert(
        "pause",
        len(&dump["pause"]["workers"]) + usize::from(dump["pause"]["all"] == json!(true)),
    );
    expected.insert("memories", sum(&dump["memories"]));
    expected.insert("memory_scopes", sum(&dump["memories"]));
    expected.insert("memory_keys", manifest.memory_keys.len());
    expected.insert("messages", sum(&dump["conversations"]));
    expected.insert("message_keys", manifest.message_keys.len());
    expected.insert("checkpoints", sum(&dump["checkpoints"]));
    expected.insert("idempotency", manifest.idempotency_keys.len());
    expected.insert(
        "idempotency_jobs",
        manifest
            .idempotency_keys
            .iter()
            .filter(|k| job_of_key(k).is_some())
            .count(),
    );

    let db = sled::open(dir)?;
    let mut inventory = BTreeMap::new();
    for name in db.tree_names() {
        let name = String::from_utf8(name.to_vec())?;
        let tree = db.open_tree(&name)?;
        inventory.insert(name.clone(), tree.len());
        if name == "usage" {
            check_usage(&tree, dump, manifest)?;
            continue;
        }
        let Some(want) = expected.get(name.as_str()) else {
            return Err(
                format!("tree {name:?} ({} records) is not in the dump", tree.len()).into(),
            );
        };
        if tree.len() != *want {
            return Err(format!(
                "tree {name:?} has {} records, the dump shows {want}",
                tree.len()
            )
            .into());
        }
    }
    for name in expected.keys() {
        if *name != "__sled__default" && !inventory.contains_key(*name) {
            return Err(format!("tree {name:?} is missing").into());
        }
    }
    Ok(inventory)
}

/// The `usage` tree: every call record and every day total is in the dump.
fn check_usage(tree: &sled::Tree, dump: &Value, manifest: &dump::Manifest) -> Res<()> {
    let days: Vec<String> = manifest.usage_days.iter().map(|d| d.to_string()).collect();
    let (mut calls, mut agents, mut providers) = (0usize, 0usize, 0usize);
    for entry in tree.iter() {
        let (key, value) = entry?;
        let text = String::from_utf8_lossy(&key);
        let day = text.get(2..12).unwrap_or_default().to_string();
        if !days.contains(&day) {
            return Err(format!("usage key {text:?} is of a day not in the manifest").into());
        }
        match key.first() {
            Some(b'c') => {
                let batch: Value = serde_json::from_slice(&value)?;
                calls += batch.as_array().map_or(1, Vec::len);
            }
            Some(b'a') => agents += 1,
            Some(b'p') => providers += 1,
            _ => return Err(format!("unknown usage key {text:?}").into()),
        }
    }
    let (mut want_calls, mut want_agents, mut want_providers) = (0usize, 0usize, 0usize);
    for day in &days {
        let usage = &dump["usage"][day];
        want_calls += usage["calls"].as_array().map_or(0, Vec::len);
        want_agents += usage["totals"]["byAgent"].as_object().map_or(0, Map::len);
        want_providers += usage["totals"]["byProvider"]
            .as_object()
            .map_or(0, Map::len);
    }
    if (calls, agents, providers) != (want_calls, want_agents, want_providers) {
        return Err(format!(
            "usage tree holds {calls} calls, {agents} agent and {providers} provider totals; the dump shows {want_calls}, {want_agents}, {want_providers}"
        )
        .into());
    }
    Ok(())
}
