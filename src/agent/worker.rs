//! An agent as a worker of the job engine: its tasks are jobs whose
//! `workerName` is the agent's id, run by the engine's worker actor for it
//! (one actor per agent, concurrency from the agent's config).

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_trait::async_trait;
use serde_json::Value;

use super::task::{self, AgentRuntime, AgentTools};
use crate::config::AgentConfig;
use crate::engine::{JobContext, Registration, Worker, WorkerCategory, WorkerError};

/// Where agents find their runtime. Set once, right after the engine starts:
/// the engine must exist before the tools that enqueue jobs, and the agents
/// (its workers) need those tools; the slot breaks that cycle. It is filled
/// before the first job can be claimed.
///
/// Emptied when the runtime shuts down or is dropped: the agents' runtime
/// reaches the engine (through its tools), whose registrations reach the
/// agents, so holding it for good would keep the whole runtime, its store
/// among it, alive in a cycle.
#[derive(Clone, Default)]
pub(crate) struct RuntimeSlot(Arc<RwLock<Option<Arc<AgentRuntime>>>>);

impl RuntimeSlot {
    /// Hands the agents their runtime.
    pub(crate) fn set(&self, runtime: AgentRuntime) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(runtime));
    }

    /// The runtime, while it is set.
    pub(crate) fn get(&self) -> Option<Arc<AgentRuntime>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Lets go of the runtime (at shutdown).
    pub(crate) fn clear(&self) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// What [`AgentWorker::tools`] keeps: the registry version, the tools and
/// the allowed names (wildcards replaced).
type CachedTools = (u64, AgentTools, Arc<[String]>);

/// Runs one agent's tasks.
pub(crate) struct AgentWorker {
    config: AgentConfig,
    allowed: Arc<[String]>,
    /// The allowed tools' definitions as every model call offers them, and
    /// made on the first task (the tools are registered by then), and
    /// shared by every task after it until the registry's live (MCP) tools
    /// change: with the registry version they were made at and the allowed
    /// names as of then (each `<server>_*` replaced by the server's tools).
    tools: Mutex<Option<CachedTools>>,
    runtime: RuntimeSlot,
    description: String,
}

impl AgentWorker {
    /// The worker for `config`, sharing `runtime` with the other agents.
    pub(crate) fn new(config: AgentConfig, runtime: RuntimeSlot) -> Self {
        let allowed: Arc<[String]> = config.tools.clone().into();
        let description = format!(
            "{} (agent, model {}/{})",
            config.name, config.model_config.provider, config.model_config.model
        );
        Self {
            config,
            allowed,
            tools: Mutex::new(None),
            runtime,
            description,
        }
    }

    /// Registers it with the agent's concurrency, and recycling per its
    /// `restartAfterTasks` and `restartAboveMemoryMib`, on a thread of its
    /// own. Registered with a
    /// factory: every restart of the agent's actor builds a new
    /// `AgentWorker`, so whatever the old one accumulated is let go.
    pub(crate) fn registration(self) -> Registration {
        let concurrency = self.config.concurrency;
        let recycle = self.config.restart_after_tasks;
        let memory = self.config.restart_above_memory_mib;
        let (config, runtime) = (self.config, self.runtime);
        let mut registration = Registration::with_factory(
            move || Arc::new(AgentWorker::new(config.clone(), runtime.clone())),
            concurrency,
        );
        if let Some(n) = recycle {
            registration = registration.recycle_after(n);
        }
        if let Some(mib) = memory {
            registration = registration.recycle_above_memory(mib.saturating_mul(1024 * 1024));
        }
        // Its own thread: the task loop (context, checkpoints, tool calls)
        // of 1,000 tasks in flight is more than one thread can carry beside
        // the scheduler and the providers' HTTP work.
        registration.on_own_thread()
    }
}

#[async_trait]
impl Worker for AgentWorker {
    // The worker name is the agent's id (what tasks name), not its display name.
    #[allow(clippy::misnamed_getters)]
    fn name(&self) -> &str {
        &self.config.id
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn category(&self) -> WorkerCategory {
        WorkerCategory::Agent
    }

    async fn run(&self, args: Value, ctx: JobContext) -> Result<Value, WorkerError> {
        let Some(runtime) = self.runtime.get() else {
            return Err(WorkerError::retryable(format!(
                "agent `{}`: the agent runtime is not started yet",
                self.config.id
            )));
        };
        let registry = runtime.tools.registry();
        let version = registry.version();
        let (tools, allowed) = {
            let mut cached = self.tools.lock().unwrap_or_else(PoisonError::into_inner);
            match cached.as_ref().filter(|(v, _, _)| *v == version) {
                Some((_, tools, allowed)) => (tools.clone(), allowed.clone()),
                None => {
                    let allowed = registry.expand(&self.allowed);
                    let mut approval = self.config.approvals.tools.clone();
                    approval.extend(
                        allowed
                            .iter()
                            .filter(|t| registry.requires_approval(t) && !approval.contains(t))
                            .cloned()
                            .collect::<Vec<_>>(),
                    );
                    let tools = AgentTools {
                        definitions: registry.definitions_for(&allowed),
                        approval: approval.into(),
                    };
                    *cached = Some((version, tools.clone(), allowed.clone()));
                    (tools, allowed)
                }
            }
        };
        task::run(&self.config, &allowed, tools, &runtime, args, ctx).await
    }
}
