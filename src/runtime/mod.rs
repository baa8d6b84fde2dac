//! The whole runtime, for embedding in a Rust service and for the daemon.
//!
//! ```text
//! troupe (one_for_one)            engine (rest_for_one)          tools (one_for_one)
//! └── memory   MemoryActor        ├── workers                    ├── router   ToolRouter
//!                                 │   ├── worker:echo, sleep     └── tool:<name> per tool
//!                                 │   ├── worker:memory_compaction_worker
//!                                 │   └── worker:<agent id>  one per agent (the task loop)
//!                                 └── scheduler
//! ```
//! The three trees start in that order: the tools need the Memory actor and
//! the engine (to enqueue jobs), and the agents need the tools; agents reach
//! their shared runtime through a slot filled before any job is claimed.

mod metrics;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::json;
use troupe_actors::{ActorRef, ChildSpec, SupervisorSpec, Tree};

use crate::agent::{
    AgentRuntime, AgentWorker, CompactionWorker, ModelGateway, OfflineGateway, ProcessingResult,
    ProviderGateway, RuntimeSlot,
};
use crate::config::TroupeConfig;
use crate::engine::{EngineConfig, EngineError, Registration, WorkerEngine};
use crate::job::schedule::{Schedule, ScheduleSpec};
use crate::job::{EnqueueOptions, Job, JobCtx, JobId, JobStatus};
use crate::memory::actor::MemoryActor;
use crate::memory::RecallWeights;
use crate::provider::set::ProviderSet;
use crate::provider::Credentials;
use crate::provider::{PriceTable, UsageMeter};
use crate::sled::{SledConfig, SledStore};
use crate::store::UsageStore;
use crate::store::{ConversationStore, StepStore, Store, StoreError};
use crate::tools::builtin::Builtins;
use crate::tools::{Tool, ToolSetupError, Tools, ToolsBuilder};

/// Why the runtime could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine refused.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The tools could not be set up.
    #[error(transparent)]
    Tools(#[from] ToolSetupError),
    /// An actor tree could not be built.
    #[error("could not start the runtime: {0}")]
    Start(String),
    /// No agent with this id.
    #[error("unknown agent `{id}` (configured: {known})")]
    UnknownAgent {
        /// The id asked for.
        id: String,
        /// The configured ids.
        known: String,
    },
    /// An agent sets `restartAboveMemoryMib`, but the program's global
    /// allocator is not [`crate::alloc::AccountingAllocator`], so its memory
    /// cannot be measured.
    #[error(
        "agent `{agent}` sets `restartAboveMemoryMib`, but the accounting allocator is not installed, so its memory cannot be measured: {hint}",
        hint = crate::alloc::INSTALL_HINT
    )]
    AllocatorNotInstalled {
        /// The first agent that sets it.
        agent: String,
    },
    /// A schedule in the config cannot be created.
    #[error("schedule `{id}`: {reason}")]
    Schedule {
        /// The schedule id.
        id: String,
        /// Why.
        reason: String,
    },
}

/// Collects what the runtime runs; see [`Troupe::builder`].
pub struct TroupeBuilder {
    config: TroupeConfig,
    store: Option<Arc<dyn Store>>,
    gateway: Option<Arc<dyn ModelGateway>>,
    tools: Vec<Arc<dyn Tool>>,
    workers: Vec<Registration>,
    engine: Option<EngineConfig>,
}

impl TroupeBuilder {
    /// Uses this store (any adapter of the storage ports) instead of
    /// opening the sled store in `config.store.dataDir`.
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Where the runtime keeps its local files (`secrets.json`, the
    /// daemon's address file). Default: `config.store.dataDir`.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.store.data_dir = dir.into();
        self
    }

    /// Uses a store already shared behind an `Arc`.
    pub fn store_arc(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// How agents reach their models (providers with failover, or the
    /// offline model). Default: the offline model only.
    pub fn gateway(mut self, gateway: Arc<dyn ModelGateway>) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// Adds a tool beside the built-in ones.
    pub fn tool(mut self, tool: impl Tool) -> Self {
        self.tools.push(Arc::new(tool));
        self
    }

    /// Adds a background worker beside the built-in ones.
    pub fn worker(mut self, registration: Registration) -> Self {
        self.workers.push(registration);
        self
    }

    /// Replaces the engine settings derived from the config.
    pub fn engine_config(mut self, config: EngineConfig) -> Self {
        self.engine = Some(config);
        self
    }

    /// Starts everything on the current actix system.
    pub async fn start(self) -> Result<Troupe, RuntimeError> {
        // Before anything is opened or started: a setting that cannot work.
        let measured = self
            .config
            .agents
            .iter()
            .find(|a| a.restart_above_memory_mib.is_some());
        if let Some(agent) = measured {
            if !crate::alloc::installed() {
                return Err(RuntimeError::AllocatorNotInstalled {
                    agent: agent.id.clone(),
                });
            }
        }
        let store = match self.store {
            Some(s) => s,
            None => Arc::new(SledStore::open(SledConfig::new(
                &self.config.store.data_dir,
            ))?),
        };
        let slot: RuntimeSlot = Arc::new(OnceLock::new());

        // 1. The Memory actor and the provider actors.
        let providers = if self.config.providers.is_empty() {
            None
        } else {
            let credentials = Credentials::from_env(&self.config.store.data_dir)
                .map_err(|e| RuntimeError::Start(e.to_string()))?;
            let usage: Arc<dyn UsageStore> = store.clone();
            let mut meter =
                UsageMeter::new(usage).with_prices(PriceTable::from_config(&self.config.pricing));
            for agent in &self.config.agents {
                if let Some(budget) = agent.budget {
                    meter = meter.with_budget(agent.id.clone(), budget);
                }
            }
            let set = ProviderSet::build(&self.config.providers, &credentials, Some(meter))
                .map_err(|e| RuntimeError::Start(e.to_string()))?;
            Some(set)
        };
        let memory_store: Arc<dyn crate::memory::MemoryStore> = store.clone();
        let weights = RecallWeights::default();
        weights.validate()?;
        let mut troupe_spec = SupervisorSpec::new("troupe")
            .child(ChildSpec::try_new("memory", move || {
                MemoryActor::new(memory_store.clone(), weights)
            }));
        // The provider actors get a thread of their own (see
        // `ProviderSet::supervisor_spec_on`); it is stopped with the runtime.
        let provider_thread = match &providers {
            None => None,
            Some(_) => Some(OwnThread(troupe_actors::Arbiter::try_new().map_err(
                |e| RuntimeError::Start(format!("the provider actors' thread: {e}")),
            )?)),
        };
        if let (Some(set), Some(thread)) = (&providers, &provider_thread) {
            troupe_spec = troupe_spec.supervisor(set.supervisor_spec_on("providers", &thread.0));
        }
        let troupe_tree = troupe_spec
            .start()
            .map_err(|e| RuntimeError::Start(e.to_string()))?;
        let memory: ActorRef<MemoryActor> = troupe_tree
            .actor("memory")
            .map_err(|e| RuntimeError::Start(e.to_string()))?;
        if let Some(set) = &providers {
            set.attach(&troupe_tree, "providers")
                .map_err(|e| RuntimeError::Start(e.to_string()))?;
        }
        let gateway: Arc<dyn ModelGateway> = match (self.gateway, &providers) {
            (Some(g), _) => g,
            (None, Some(set)) => Arc::new(ProviderGateway::new(set.clone())),
            (None, None) => Arc::new(OfflineGateway),
        };

        // 2. The engine, with the agents as workers.
        let engine_config = self.engine.unwrap_or_else(|| EngineConfig {
            default_concurrency: self.config.engine.concurrency,
            drain_timeout: crate::config::parse_duration(&self.config.engine.drain_timeout)
                .unwrap_or(Duration::from_secs(30)),
            ..EngineConfig::default()
        });
        let job_store: Arc<dyn Store> = store.clone();
        let mut builder = WorkerEngine::builder(job_store)
            .config(engine_config)
            .diagnostics()
            .worker(CompactionWorker::new(&self.config.agents, slot.clone()));
        for agent in &self.config.agents {
            builder =
                builder.register(AgentWorker::new(agent.clone(), slot.clone()).registration());
        }
        for registration in self.workers {
            builder = builder.register(registration);
        }
        let engine = builder.start()?;

        // 3. The tools.
        let checkpoints: Arc<dyn StepStore> = store.clone();
        let conversations: Arc<dyn ConversationStore> = store.clone();
        let builtins = Builtins {
            engine: engine.clone(),
            idempotency: Some(store.clone()),
            conversations: conversations.clone(),
            memory: memory.clone(),
            project_root: self
                .config
                .tools
                .project_root
                .clone()
                .unwrap_or_else(|| PathBuf::from(".")),
        };
        let mut tools = ToolsBuilder::new();
        for tool in builtins.tools().into_iter().chain(self.tools) {
            tools = tools.tool_arc(tool);
        }
        let (tools_tree, tools) = tools.build()?.start()?;
        for agent in &self.config.agents {
            let unknown = tools.registry().unknown(&agent.tools);
            if !unknown.is_empty() {
                return Err(RuntimeError::Start(format!(
                    "agent `{}` names tools that are not registered: {}",
                    agent.id,
                    unknown.join(", ")
                )));
            }
        }

        // 4. Hand the agents their runtime, before the first claim.
        let runtime = AgentRuntime {
            models: gateway,
            tools: tools.clone(),
            memory: memory.clone(),
            conversations: conversations.clone(),
            checkpoints,
            settings: self.config.memory.clone(),
        };
        if slot.set(runtime).is_err() {
            return Err(RuntimeError::Start(
                "the agent runtime was set twice".into(),
            ));
        }

        // 5. Schedules from the config (idempotent: replaced by id).
        for s in &self.config.schedules {
            let spec = match (&s.cron, &s.every) {
                (Some(cron), _) => ScheduleSpec::cron(cron.clone()),
                (None, Some(every)) => {
                    let period = crate::config::parse_duration(every).map_err(|reason| {
                        RuntimeError::Schedule {
                            id: s.id.clone(),
                            reason,
                        }
                    })?;
                    ScheduleSpec::every(period)
                }
                (None, None) => {
                    return Err(RuntimeError::Schedule {
                        id: s.id.clone(),
                        reason: "give `cron` or `every`".into(),
                    })
                }
            }
            .map_err(|e| RuntimeError::Schedule {
                id: s.id.clone(),
                reason: e.to_string(),
            })?;
            let now = chrono::Utc::now();
            let mut schedule = Schedule::new(
                &s.id,
                &s.worker,
                s.args.clone().unwrap_or(json!({})),
                spec,
                now,
            )
            .map_err(|e| RuntimeError::Schedule {
                id: s.id.clone(),
                reason: e.to_string(),
            })?;
            schedule.catch_up = s.catch_up;
            if let Some(existing) = store.get_schedule(&s.id).await? {
                if existing.spec == schedule.spec {
                    schedule.next_fire_at = existing.next_fire_at;
                    schedule.last_fired_at = existing.last_fired_at;
                }
            }
            engine.put_schedule(schedule).await?;
        }

        Ok(Troupe {
            providers,
            provider_thread,
            config: self.config,
            store,
            engine,
            tools,
            memory,
            conversations,
            trees: vec![troupe_tree, tools_tree],
        })
    }
}

/// A running Troupe: agents, tools, memory and the job engine.
pub struct Troupe {
    providers: Option<ProviderSet>,
    /// The provider actors' thread.
    provider_thread: Option<OwnThread>,
    config: TroupeConfig,
    store: Arc<dyn Store>,
    engine: WorkerEngine,
    tools: Tools,
    memory: ActorRef<MemoryActor>,
    conversations: Arc<dyn crate::conversation::ConversationStore>,
    trees: Vec<Tree>,
}

/// Where a task belongs.
#[derive(Debug, Clone, Default)]
pub struct TaskOptions {
    /// The conversation: its recent messages are context, the answer is added.
    pub conversation_id: Option<String>,
    /// The user the task is for (memories are kept per user).
    pub user_id: Option<String>,
    /// Where it came from (`cli`, `api`, …).
    pub source: Option<String>,
}

impl Troupe {
    /// A builder for `config`.
    pub fn builder(config: TroupeConfig) -> TroupeBuilder {
        TroupeBuilder {
            config,
            store: None,
            gateway: None,
            tools: Vec::new(),
            workers: Vec::new(),
            engine: None,
        }
    }

    /// The job engine (enqueue, list, cancel, pause…).
    pub fn engine(&self) -> &WorkerEngine {
        &self.engine
    }

    /// The tools (registry and router).
    pub fn tools(&self) -> &Tools {
        &self.tools
    }

    /// The provider actors, when providers are configured (status, breakers).
    pub fn providers(&self) -> Option<&ProviderSet> {
        self.providers.as_ref()
    }

    /// The Memory actor.
    pub fn memory(&self) -> &ActorRef<MemoryActor> {
        &self.memory
    }

    /// Every supervision tree of the runtime (`troupe`, `engine`, `tools`),
    /// for health checks and per-actor restart and mailbox metrics.
    pub fn trees(&self) -> Vec<&Tree> {
        let mut trees: Vec<&Tree> = self.trees.iter().collect();
        trees.insert(1.min(trees.len()), self.engine.tree());
        trees
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Every `troupe_*` metric of this runtime now, in the Prometheus text
    /// format. A part whose source fails is left out and counted in
    /// `troupe_scrape_errors`.
    pub async fn metrics(&self) -> String {
        metrics::render(self).await
    }

    /// The configuration it runs.
    pub fn config(&self) -> &TroupeConfig {
        &self.config
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.config.store.data_dir.clone()
    }

    /// Queues a task for `agent`; returns the job (durable).
    pub async fn task(
        &self,
        agent: &str,
        prompt: &str,
        options: TaskOptions,
    ) -> Result<Job, RuntimeError> {
        if !self.config.agents.iter().any(|a| a.id == agent) {
            return Err(RuntimeError::UnknownAgent {
                id: agent.to_string(),
                known: self
                    .config
                    .agents
                    .iter()
                    .map(|a| a.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let mut args = json!({ "prompt": prompt });
        if let Some(conv) = &options.conversation_id {
            args["conversationId"] = json!(conv);
        }
        let ctx = JobCtx {
            user_id: options.user_id,
            conversation_id: options.conversation_id,
            source: options.source,
            ..JobCtx::default()
        };
        let outcome = self
            .engine
            .enqueue(agent, args, ctx, EnqueueOptions::default())
            .await?;
        Ok(outcome.into_job())
    }

    /// Waits for a task to end and returns its ProcessingResult (a failed
    /// job gives `success: false` with the job's error).
    pub async fn wait(&self, job: JobId) -> Result<ProcessingResult, RuntimeError> {
        let job = self.engine.wait_for(job).await?;
        Ok(processing_result(&job))
    }

    /// A conversation's messages, oldest first.
    pub async fn conversation(
        &self,
        id: &str,
    ) -> Result<Vec<crate::conversation::ChatMessage>, RuntimeError> {
        Ok(self.conversations.list_messages(id).await?)
    }

    /// Drains the engine, then stops every actor tree.
    pub async fn shutdown(&self) -> Result<crate::engine::DrainReport, RuntimeError> {
        let report = self.engine.shutdown().await?;
        for tree in self.trees.iter().rev() {
            tree.shutdown().await;
        }
        if let Some(thread) = &self.provider_thread {
            thread.0.stop();
        }
        Ok(report)
    }
}

/// A thread for some of the runtime's actors, stopped when the runtime is
/// dropped (also when its start fails half way), so none is left behind.
struct OwnThread(troupe_actors::Arbiter);

impl Drop for OwnThread {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// The ProcessingResult of an ended agent job.
pub fn processing_result(job: &Job) -> ProcessingResult {
    match (&job.status, &job.result) {
        (JobStatus::Completed, Some(result)) => serde_json::from_value(result.clone())
            .unwrap_or_else(|e| {
                ProcessingResult::failed(format!("job {} has an unreadable result: {e}", job.id))
            }),
        _ => ProcessingResult::failed(
            job.error
                .clone()
                .unwrap_or_else(|| format!("job {} ended {}", job.id, job.status)),
        ),
    }
}
