//! [`Troupe`]: the handle of a running runtime, what a service keeps. Cheap
//! to clone, `Send + Sync`: every clone reaches the same agents, engine and
//! store, from any thread or executor.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde_json::json;
use troupe_actors::{ActorRef, SystemThread, Tree};

use crate::agent::RuntimeSlot;
use crate::config::TroupeConfig;
use crate::conversation::ConversationStore;
use crate::engine::{DrainReport, EventStream, WorkerEngine};
use crate::job::{EnqueueOptions, Job, JobCtx, JobId};
use crate::memory::actor::MemoryActor;
use crate::provider::set::ProviderSet;
use crate::store::Store;

use super::builder::TroupeBuilder;
use super::handles::{Conversations, Memories};
use super::task::{Answer, TaskError, TaskOptions};
use super::RuntimeError;

/// A running Troupe: agents, tools, memory and the job engine. Clones share
/// one runtime; it runs until [`shutdown`](Self::shutdown), or until the
/// last clone is dropped (which stops its actors without draining).
#[derive(Clone)]
pub struct Troupe {
    inner: Arc<Inner>,
}

/// What [`TroupeBuilder`] hands over once everything is started.
pub(crate) struct Parts {
    pub(crate) providers: Option<ProviderSet>,
    pub(crate) provider_thread: Option<OwnThread>,
    pub(crate) config: TroupeConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) engine: WorkerEngine,
    pub(crate) memory: ActorRef<MemoryActor>,
    pub(crate) conversations: Arc<dyn ConversationStore>,
    /// Emptied at shutdown and drop, which ends the cycle through it.
    pub(crate) slot: RuntimeSlot,
    pub(crate) trees: Vec<Tree>,
}

struct Inner {
    parts: Parts,
    memories: Memories,
    conversations: Conversations,
    // Last: dropping it stops the actors it hosts, after everything above
    // that addresses them is gone.
    system: OnceLock<SystemThread>,
}

/// A thread for some of the runtime's actors, stopped when the runtime is
/// dropped (also when its start fails half way), so none is left behind.
pub(crate) struct OwnThread(std::sync::Mutex<Option<troupe_actors::Arbiter>>);

impl OwnThread {
    pub(crate) fn new(arbiter: troupe_actors::Arbiter) -> Self {
        OwnThread(std::sync::Mutex::new(Some(arbiter)))
    }

    /// Runs `f` with the thread, while it runs.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&troupe_actors::Arbiter) -> T) -> Option<T> {
        let guard = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.as_ref().map(f)
    }

    /// Stops the thread and waits a moment until it has ended, so what its
    /// actors held is let go.
    pub(crate) fn stop(&self) {
        let taken = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(arbiter) = taken {
            if !arbiter.stop_and_join(std::time::Duration::from_secs(5)) {
                tracing::warn!("the provider actors' thread did not end within 5 s of its stop");
            }
        }
    }
}

impl Drop for OwnThread {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Troupe {
    /// A builder for `config`.
    pub fn builder(config: TroupeConfig) -> TroupeBuilder {
        TroupeBuilder::new(config)
    }

    pub(crate) fn from_parts(parts: Parts) -> Troupe {
        let memories = Memories::new(parts.memory.clone());
        let conversations = Conversations::new(parts.conversations.clone());
        Troupe {
            inner: Arc::new(Inner {
                parts,
                memories,
                conversations,
                system: OnceLock::new(),
            }),
        }
    }

    /// Keeps the actix system the runtime was started on (from outside
    /// one) alive as long as the runtime.
    pub(crate) fn own_system(&self, system: SystemThread) {
        let _ = self.inner.system.set(system);
    }

    fn parts(&self) -> &Parts {
        &self.inner.parts
    }

    /// The job engine: enqueue background jobs, list and cancel jobs, pause
    /// and resume workers, register workers.
    pub fn engine(&self) -> &WorkerEngine {
        &self.parts().engine
    }

    /// The agents' memories.
    pub fn memories(&self) -> &Memories {
        &self.inner.memories
    }

    /// The conversations.
    pub fn conversations(&self) -> &Conversations {
        &self.inner.conversations
    }

    /// The configuration it runs.
    pub fn config(&self) -> &TroupeConfig {
        &self.parts().config
    }

    /// Where it keeps its local files (`secrets.json`, `daemon.json`).
    pub fn data_dir(&self) -> PathBuf {
        self.parts().config.store.data_dir.clone()
    }

    /// One tool call through the ToolRouter, made as agent `agent` allowed
    /// only `tool` would make it (no task): what `examples/bench_mcp.rs`
    /// measures. Reached through `troupe::__bench` only.
    pub(crate) async fn route_tool_call(
        &self,
        agent: &str,
        tool: &str,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, crate::tools::ToolError> {
        let Some(runtime) = self.inner.parts.slot.get() else {
            return Err(crate::tools::ToolError::failed("the runtime is stopped"));
        };
        let ctx = crate::tools::ToolContext::new(agent, uuid::Uuid::nil(), 0, "bench");
        let allowed: Arc<[String]> = Arc::from(vec![tool.to_string()]);
        let request = crate::tools::ToolRequest::new(tool, args, ctx, allowed);
        runtime.tools.call(request).await
    }

    /// Every `troupe_*` metric of this runtime now, in the Prometheus text
    /// format. A part whose source fails is left out and counted in
    /// `troupe_scrape_errors`.
    pub async fn metrics(&self) -> String {
        super::metrics::render(self).await
    }

    /// Queues a task for `agent`; returns the job once it is durable.
    pub async fn task(
        &self,
        agent: &str,
        prompt: &str,
        options: TaskOptions,
    ) -> Result<Job, RuntimeError> {
        let agents = &self.parts().config.agents;
        if !agents.iter().any(|a| a.id == agent) {
            let known: Vec<&str> = agents.iter().map(|a| a.id.as_str()).collect();
            return Err(RuntimeError::UnknownAgent {
                id: agent.to_string(),
                known: known.join(", "),
            });
        }
        let mut args = json!({ "prompt": prompt });
        if let Some(conv) = &options.conversation_id {
            args["conversationId"] = json!(conv);
        }
        if let Some(schema) = options.output_schema {
            crate::agent::check_schema(&schema)
                .map_err(|reason| RuntimeError::OutputSchema { reason })?;
            args["outputSchema"] = schema;
        }
        let ctx = JobCtx {
            user_id: options.user_id,
            conversation_id: options.conversation_id,
            source: options.source,
            ..JobCtx::default()
        };
        let outcome = self
            .engine()
            .enqueue(agent, args, ctx, EnqueueOptions::default())
            .await?;
        Ok(outcome.into_job())
    }

    /// Waits for a task to end: its answer, or why it has none.
    pub async fn wait(&self, job: JobId) -> Result<Answer, TaskError> {
        let job = self
            .engine()
            .wait_for(job)
            .await
            .map_err(RuntimeError::from)?;
        Answer::of(&job)
    }

    /// Queues a task and waits for its answer.
    pub async fn ask(
        &self,
        agent: &str,
        prompt: &str,
        options: TaskOptions,
    ) -> Result<Answer, TaskError> {
        let job = self.task(agent, prompt, options).await?;
        self.wait(job.id).await
    }

    /// Follows a task's live events (any job's: a worker's job has its
    /// attempts and its end): what it did so far, then what it does, ending
    /// after its terminal event (`completed`, `failed`, `cancelled`).
    /// [`events_after`](Self::events_after) resumes after a `seq` already
    /// seen.
    pub async fn events(&self, job: JobId) -> Result<EventStream, RuntimeError> {
        self.events_after(job, 0).await
    }

    /// The events of `job` after the one numbered `after` (its `seq`), then
    /// the live ones. A task that ended before this process held its events
    /// (a restart) has them rebuilt from its record and checkpoints, which
    /// keep less (see ARCHITECTURE.md, "Live task events").
    pub async fn events_after(&self, job: JobId, after: u64) -> Result<EventStream, RuntimeError> {
        let engine = self.engine();
        let hub = engine.event_hub();
        let mut record = None;
        if !hub.holds(job) {
            let found = engine.get_job(job).await?;
            let is_agent = self
                .config()
                .agents
                .iter()
                .any(|a| a.id == found.worker_name);
            if found.status.is_terminal() && is_agent {
                let steps = self.store().load_steps(job).await.unwrap_or_default();
                // Another follower may have rebuilt it meanwhile.
                if !hub.holds(job) {
                    for kind in crate::agent::rebuild_events(&found, &steps) {
                        hub.emit(job, kind);
                    }
                }
            }
            record = Some(found);
        }
        Ok(engine.events_of(job, after, record).await?)
    }

    /// Drains the engine (running jobs get the drain timeout to finish, the
    /// rest are queued again), then stops every actor tree.
    pub async fn shutdown(&self) -> Result<DrainReport, RuntimeError> {
        let parts = self.parts();
        let report = parts.engine.shutdown().await?;
        for tree in parts.trees.iter().rev() {
            tree.shutdown().await;
        }
        if let Some(thread) = &parts.provider_thread {
            thread.stop();
        }
        parts.slot.clear();
        Ok(report)
    }

    // What the faces (the HTTP API, metrics, the CLI) and the crate's own
    // tests read; not for embedders, whose surface is the methods above.

    /// The provider actors, when providers are configured.
    pub(crate) fn providers(&self) -> Option<&ProviderSet> {
        self.parts().providers.as_ref()
    }

    /// Every supervision tree of the runtime (`troupe`, `engine`, `tools`).
    pub(crate) fn trees(&self) -> Vec<&Tree> {
        let parts = self.parts();
        let mut trees: Vec<&Tree> = parts.trees.iter().collect();
        trees.insert(1.min(trees.len()), parts.engine.tree());
        trees
    }

    /// The store.
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.parts().store
    }

    /// Refusals by the agents' limits and grants: `(agent, key, count)`
    /// (none once the runtime has stopped).
    pub(crate) fn limit_refusals(&self) -> Vec<(String, String, u64)> {
        let runtime = self.parts().slot.get();
        runtime.map_or_else(Vec::new, |rt| rt.policies.refusals().snapshot())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.parts.slot.clear();
    }
}

impl std::fmt::Debug for Troupe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let agents: Vec<&str> = self.config().agents.iter().map(|a| a.id.as_str()).collect();
        f.debug_struct("Troupe")
            .field("agents", &agents)
            .field("data_dir", &self.data_dir())
            .finish_non_exhaustive()
    }
}
