//! [`TroupeBuilder`]: what the runtime runs, and how it starts: the three
//! trees in order, the agents' shared runtime handed over before the first
//! claim, the config's schedules put.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use troupe_actors::{ActorRef, ChildSpec, SupervisorSpec, SystemThread, Tree};

use crate::agent::{
    AgentRuntime, AgentWorker, CompactionWorker, ModelGateway, OfflineGateway, ProviderGateway,
    RuntimeSlot,
};
use crate::config::{ScheduleConfig, TroupeConfig};
use crate::engine::{EngineConfig, Registration, WorkerEngine};
use crate::job::schedule::{Schedule, ScheduleSpec};
use crate::mcp::McpServers;
use crate::memory::actor::MemoryActor;
use crate::memory::RecallWeights;
use crate::names::BUILTIN_TOOLS;
use crate::provider::set::ProviderSet;
use crate::provider::{Credentials, PriceTable, UsageMeter};
use crate::store::{ConversationStore, MemoryStore, StepStore, Store, UsageStore};
use crate::tools::builtin::Builtins;
use crate::tools::{LiveTools, Tool, Tools, ToolsBuilder};

use super::handle::{OwnThread, Parts};
use super::{RuntimeError, Troupe};

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
    pub(crate) fn new(config: TroupeConfig) -> Self {
        TroupeBuilder {
            config,
            store: None,
            gateway: None,
            tools: Vec::new(),
            workers: Vec::new(),
            engine: None,
        }
    }

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

    /// Agents reach their models through `model` instead of the configured
    /// providers: a model of your own (local inference), or
    /// [`ScriptedModel`](crate::testing::ScriptedModel) in tests.
    pub fn model(mut self, model: impl ModelGateway) -> Self {
        self.gateway = Some(Arc::new(model));
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

    /// Starts everything. Inside an actix system (the daemon, a program
    /// run with `troupe_actors::run_system`) the actors start on it; from
    /// anywhere else — a plain `#[tokio::main]` service — on an actix
    /// system of their own, on a thread the runtime owns and stops when the
    /// last handle is dropped.
    pub async fn start(self) -> Result<Troupe, RuntimeError> {
        if troupe_actors::in_system() {
            return self.start_here().await;
        }
        let system = SystemThread::spawn("troupe").map_err(|source| RuntimeError::Start {
            what: "the runtime's actor system thread",
            source,
        })?;
        let troupe = system.run(move || self.start_here()).await??;
        troupe.own_system(system);
        Ok(troupe)
    }

    /// Starts everything on the current actix system.
    async fn start_here(self) -> Result<Troupe, RuntimeError> {
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
        // The MCP servers first: one that cannot be reached, or whose tool
        // names cannot work, stops the start before anything else runs.
        let (mcp, mcp_tools) = start_mcp(&config, &extra_tools).await?;
        let store = match store {
            Some(s) => s,
            None => super::store::connect_store(&config.store, true).await?,
        };
        let slot = RuntimeSlot::default();

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
        let memories: Arc<dyn MemoryStore> = store.clone();
        let policies = crate::agent::tool_policies(&config.agents);
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
            policies: policies.clone(),
        };
        let mut tools: Vec<Arc<dyn Tool>> = builtins.tools();
        tools.extend(extra_tools);
        let (tools_tree, tools) = match start_tools(&config, tools, mcp_tools) {
            Ok(started) => started,
            Err(e) => {
                // Stop the servers' processes and sessions.
                mcp.shutdown().await;
                return Err(e);
            }
        };
        let mut trees = vec![base.tree];
        trees.extend(mcp.into_tree());
        trees.push(tools_tree);

        // 4. Hand the agents their runtime, before the first claim.
        slot.set(AgentRuntime {
            models: gateway,
            tools: tools.clone(),
            memory: base.memory.clone(),
            memories,
            conversations: conversations.clone(),
            checkpoints,
            settings: config.memory.clone(),
            policies,
            events: engine.event_hub().clone(),
        });

        // 5. Schedules from the config (idempotent: replaced by id).
        put_schedules(&config, &store, &engine).await?;

        Ok(Troupe::from_parts(Parts {
            providers,
            provider_thread: base.provider_thread,
            config,
            store,
            engine,
            memory: base.memory,
            conversations,
            slot,
            trees,
        }))
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
    let memory_store: Arc<dyn MemoryStore> = store.clone();
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
        let thread = provider_thread.insert(OwnThread::new(thread));
        if let Some(providers) = thread.with(|arbiter| set.supervisor_spec_on("providers", arbiter))
        {
            spec = spec.supervisor(providers);
        }
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
        drain_timeout: crate::config::parse_duration(&config.engine.drain_timeout)
            .unwrap_or(Duration::from_secs(30)),
        outage_allowance: config.engine.outage_allowance,
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

/// The MCP servers, connected, and their tools (none without servers),
/// named so that none clashes with a built-in tool or one of `extra`.
async fn start_mcp(
    config: &TroupeConfig,
    extra: &[Arc<dyn Tool>],
) -> Result<(McpServers, Option<Arc<LiveTools>>), RuntimeError> {
    let mcp = McpServers::start(&config.mcp_servers).await?;
    if config.mcp_servers.is_empty() {
        return Ok((mcp, None));
    }
    let taken = BUILTIN_TOOLS
        .iter()
        .map(|n| n.to_string())
        .chain(extra.iter().map(|t| t.name().to_string()))
        .collect();
    match mcp.live(taken) {
        Ok(tools) => Ok((mcp, Some(tools))),
        Err(e) => {
            mcp.shutdown().await;
            Err(e.into())
        }
    }
}

/// The tools tree: the built-in tools, the embedder's and the MCP
/// servers', checked against the tools each agent names.
fn start_tools(
    config: &TroupeConfig,
    all: Vec<Arc<dyn Tool>>,
    mcp: Option<Arc<LiveTools>>,
) -> Result<(Tree, Tools), RuntimeError> {
    let mut tools = ToolsBuilder::new();
    for tool in all {
        tools = tools.tool_arc(tool);
    }
    if let Some(mcp) = mcp {
        tools = tools.live(mcp);
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
        let later = agent
            .tools
            .iter()
            .filter(|n| !n.ends_with("_*") && !tools.registry().contains(n));
        for name in later {
            tracing::warn!(agent = %agent.id, tool = %name,
                "the agent names an MCP tool its server does not offer now; it is offered once the server lists it");
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
            let period = crate::config::parse_duration(every).map_err(|reason| {
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
