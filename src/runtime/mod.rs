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
use troupe_actors::{ActorRef, BuildError, ChildSpec, LookupError, SupervisorSpec, Tree};

use crate::agent::{
    AgentRuntime, AgentWorker, CompactionWorker, ModelGateway, OfflineGateway, ProcessingResult,
    ProviderGateway, RuntimeSlot,
};
use crate::config::{ScheduleConfig, TroupeConfig};
use crate::engine::{EngineConfig, EngineError, Registration, WorkerEngine};
use crate::job::schedule::{Schedule, ScheduleError, ScheduleSpec};
use crate::job::{EnqueueOptions, Job, JobCtx, JobId, JobStatus};
use crate::memory::actor::MemoryActor;
use crate::memory::RecallWeights;
use crate::provider::set::{ProviderSet, ProviderSetError};
use crate::provider::Credentials;
use crate::provider::{PriceTable, UsageMeter};
use crate::secrets::SecretError;
use crate::sled::{SledConfig, SledStore};
use crate::store::UsageStore;
use crate::store::{ConversationStore, StepStore, Store, StoreError};
use crate::tools::builtin::Builtins;
use crate::tools::{Tool, ToolSetupError, Tools, ToolsBuilder};

/// Why the runtime could not start or answer. Each variant keeps the error
/// it comes from as its [`source`](std::error::Error::source), so a caller
/// can tell a bad key from a bad base URL without reading the message.
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
    /// The stored keys cannot be opened (the master key is missing,
    /// unreadable or readable by others).
    #[error("could not open the stored keys: {0}")]
    Credentials(#[source] SecretError),
    /// The configured providers cannot be set up: a key, a base URL, a
    /// header, two providers of one name.
    #[error("could not set up the providers: {0}")]
    Providers(#[source] ProviderSetError),
    /// An actor tree, or a thread for its actors, could not be started.
    #[error("could not start {what}: {source}")]
    Start {
        /// What was being started.
        what: &'static str,
        /// Why the supervision crate refused.
        #[source]
        source: BuildError,
    },
    /// An actor the runtime had just started is not where it looked.
    #[error("could not find {what} in its tree: {source}")]
    Lookup {
        /// What was looked for.
        what: &'static str,
        /// What the lookup said.
        #[source]
        source: LookupError,
    },
    /// An agent names tools that are not registered.
    #[error("agent `{agent}` names tools that are not registered: {}", tools.join(", "))]
    UnknownTools {
        /// The agent.
        agent: String,
        /// The names no tool has.
        tools: Vec<String>,
    },
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
    #[error("schedule `{id}`: {source}")]
    Schedule {
        /// The schedule id.
        id: String,
        /// Why the schedule was refused.
        #[source]
        source: ScheduleError,
    },
    /// A schedule in the config has no usable period: neither `cron` nor
    /// `every`, or an `every` that is not a duration. (A config file is
    /// refused for this when it is loaded; a config built in code gets here.)
    #[error("schedule `{id}`: {reason}")]
    SchedulePeriod {
        /// The schedule id.
        id: String,
        /// What is wrong with its period.
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
        let TroupeBuilder {
            config,
            store,
            gateway,
            tools: extra_tools,
            workers,
            engine: engine_config,
        } = self;
        // Before anything is opened or started: a setting that cannot work.
        check_allocator(&config)?;
        let store = match store {
            Some(s) => s,
            None => Arc::new(SledStore::open(SledConfig::new(&config.store.data_dir))?),
        };
        let slot: RuntimeSlot = Arc::new(OnceLock::new());

        // 1. The Memory actor and the provider actors.
        let providers = build_providers(&config, &store)?;
        let base = start_base_tree(&store, providers.as_ref())?;
        let gateway: Arc<dyn ModelGateway> = match (gateway, &providers) {
            (Some(g), _) => g,
            (None, Some(set)) => Arc::new(ProviderGateway::new(set.clone())),
            (None, None) => Arc::new(OfflineGateway),
        };

        // 2. The engine, with the agents as workers.
        let engine = start_engine(&config, engine_config, &store, &slot, workers)?;

        // 3. The tools.
        let checkpoints: Arc<dyn StepStore> = store.clone();
        let conversations: Arc<dyn ConversationStore> = store.clone();
        let builtins = Builtins {
            engine: engine.clone(),
            idempotency: Some(store.clone()),
            conversations: conversations.clone(),
            memory: base.memory.clone(),
            project_root: config
                .tools
                .project_root
                .clone()
                .unwrap_or_else(|| PathBuf::from(".")),
        };
        let (tools_tree, tools) = start_tools(&config, &builtins, extra_tools)?;

        // 4. Hand the agents their runtime, before the first claim. The
        // slot was made above and is filled only here, so it is empty.
        let _ = slot.set(AgentRuntime {
            models: gateway,
            tools: tools.clone(),
            memory: base.memory.clone(),
            conversations: conversations.clone(),
            checkpoints,
            settings: config.memory.clone(),
        });

        // 5. Schedules from the config (idempotent: replaced by id).
        put_schedules(&config, &store, &engine).await?;

        Ok(Troupe {
            providers,
            provider_thread: base.provider_thread,
            config,
            store,
            engine,
            tools,
            memory: base.memory,
            conversations,
            trees: vec![base.tree, tools_tree],
        })
    }
}

/// Refuses `restartAboveMemoryMib` when the accounting allocator, which
/// measures it, is not the global allocator.
fn check_allocator(config: &TroupeConfig) -> Result<(), RuntimeError> {
    let measured = config
        .agents
        .iter()
        .find(|a| a.restart_above_memory_mib.is_some());
    match measured {
        Some(agent) if !crate::alloc::installed() => Err(RuntimeError::AllocatorNotInstalled {
            agent: agent.id.clone(),
        }),
        _ => Ok(()),
    }
}

/// The configured providers with their keys resolved, metered against the
/// agents' budgets; `None` when there are none.
fn build_providers(
    config: &TroupeConfig,
    store: &Arc<dyn Store>,
) -> Result<Option<ProviderSet>, RuntimeError> {
    if config.providers.is_empty() {
        return Ok(None);
    }
    let credentials =
        Credentials::from_env(&config.store.data_dir).map_err(RuntimeError::Credentials)?;
    let usage: Arc<dyn UsageStore> = store.clone();
    let mut meter = UsageMeter::new(usage).with_prices(PriceTable::from_config(&config.pricing));
    for agent in &config.agents {
        if let Some(budget) = agent.budget {
            meter = meter.with_budget(agent.id.clone(), budget);
        }
    }
    ProviderSet::build(&config.providers, &credentials, Some(meter))
        .map(Some)
        .map_err(RuntimeError::Providers)
}

/// The `troupe` tree as started: the Memory actor, and the provider actors
/// (on a thread of their own, stopped with the runtime).
struct BaseTree {
    tree: Tree,
    memory: ActorRef<MemoryActor>,
    provider_thread: Option<OwnThread>,
}

fn start_base_tree(
    store: &Arc<dyn Store>,
    providers: Option<&ProviderSet>,
) -> Result<BaseTree, RuntimeError> {
    let memory_store: Arc<dyn crate::memory::MemoryStore> = store.clone();
    let weights = RecallWeights::default();
    weights.validate()?;
    let mut spec = SupervisorSpec::new("troupe").child(ChildSpec::try_new("memory", move || {
        MemoryActor::new(memory_store.clone(), weights)
    }));
    // The provider actors get a thread of their own (see
    // `ProviderSet::supervisor_spec_on`).
    let mut provider_thread = None;
    if let Some(set) = providers {
        let thread = troupe_actors::Arbiter::try_new().map_err(|source| RuntimeError::Start {
            what: "the provider actors' thread",
            source,
        })?;
        let thread = provider_thread.insert(OwnThread(thread));
        spec = spec.supervisor(set.supervisor_spec_on("providers", &thread.0));
    }
    let tree = spec.start().map_err(|source| RuntimeError::Start {
        what: "the `troupe` tree",
        source,
    })?;
    let memory = tree
        .actor("memory")
        .map_err(|source| RuntimeError::Lookup {
            what: "the Memory actor",
            source,
        })?;
    if let Some(set) = providers {
        set.attach(&tree, "providers")
            .map_err(|source| RuntimeError::Lookup {
                what: "the provider actors",
                source,
            })?;
    }
    Ok(BaseTree {
        tree,
        memory,
        provider_thread,
    })
}

/// The engine with the built-in workers, one worker per agent (whose
/// runtime comes through `slot`) and the embedder's `workers`.
fn start_engine(
    config: &TroupeConfig,
    engine_config: Option<EngineConfig>,
    store: &Arc<dyn Store>,
    slot: &RuntimeSlot,
    workers: Vec<Registration>,
) -> Result<WorkerEngine, RuntimeError> {
    let engine_config = engine_config.unwrap_or_else(|| EngineConfig {
        default_concurrency: config.engine.concurrency,
        drain_timeout: crate::cli::parse_duration(&config.engine.drain_timeout)
            .unwrap_or(Duration::from_secs(30)),
        ..EngineConfig::default()
    });
    let job_store: Arc<dyn Store> = store.clone();
    let mut builder = WorkerEngine::builder(job_store)
        .config(engine_config)
        .diagnostics()
        .worker(CompactionWorker::new(&config.agents, slot.clone()));
    for agent in &config.agents {
        builder = builder.register(AgentWorker::new(agent.clone(), slot.clone()).registration());
    }
    for registration in workers {
        builder = builder.register(registration);
    }
    Ok(builder.start()?)
}

/// The tools tree: the built-in tools and the embedder's, checked against
/// the tools each agent names.
fn start_tools(
    config: &TroupeConfig,
    builtins: &Builtins,
    extra: Vec<Arc<dyn Tool>>,
) -> Result<(Tree, Tools), RuntimeError> {
    let mut tools = ToolsBuilder::new();
    for tool in builtins.tools().into_iter().chain(extra) {
        tools = tools.tool_arc(tool);
    }
    let (tree, tools) = tools.build()?.start()?;
    for agent in &config.agents {
        let unknown = tools.registry().unknown(&agent.tools);
        if !unknown.is_empty() {
            return Err(RuntimeError::UnknownTools {
                agent: agent.id.clone(),
                tools: unknown,
            });
        }
    }
    Ok((tree, tools))
}

/// Puts the config's schedules (replaced by id; one whose spec did not
/// change keeps its next and last fire times).
async fn put_schedules(
    config: &TroupeConfig,
    store: &Arc<dyn Store>,
    engine: &WorkerEngine,
) -> Result<(), RuntimeError> {
    for s in &config.schedules {
        let mut schedule = schedule_of(s)?;
        if let Some(existing) = store.get_schedule(&s.id).await? {
            if existing.spec == schedule.spec {
                schedule.next_fire_at = existing.next_fire_at;
                schedule.last_fired_at = existing.last_fired_at;
            }
        }
        engine.put_schedule(schedule).await?;
    }
    Ok(())
}

fn schedule_of(s: &ScheduleConfig) -> Result<Schedule, RuntimeError> {
    let refused = |source| RuntimeError::Schedule {
        id: s.id.clone(),
        source,
    };
    let spec = match (&s.cron, &s.every) {
        (Some(cron), _) => ScheduleSpec::cron(cron.clone()),
        (None, Some(every)) => {
            let period = crate::cli::parse_duration(every).map_err(|reason| {
                RuntimeError::SchedulePeriod {
                    id: s.id.clone(),
                    reason: format!("`every`: {reason}"),
                }
            })?;
            ScheduleSpec::every(period)
        }
        (None, None) => {
            return Err(RuntimeError::SchedulePeriod {
                id: s.id.clone(),
                reason: "give `cron` or `every`".into(),
            })
        }
    }
    .map_err(refused)?;
    let args = s.args.clone().unwrap_or(json!({}));
    let mut schedule =
        Schedule::new(&s.id, &s.worker, args, spec, chrono::Utc::now()).map_err(refused)?;
    schedule.catch_up = s.catch_up;
    Ok(schedule)
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
