//! [`LocalControl`]: the control API over a running runtime. The one file
//! that calls into [`Troupe`]: when the embedding façade changes, this is
//! what changes with it.

use async_trait::async_trait;
use troupe_actors::ChildState;

use super::agents::find_agent;
use super::status::spend;
use super::*;
use crate::agent::ProcessingResult;
use crate::engine::{DrainReport, EngineError};
use crate::job::{ApprovalId, JobStatus};
use crate::provider::BreakerState;
use crate::runtime::{TaskError, TaskOptions, Troupe};
use crate::store::{ListQuery, PauseTarget};

/// The control API answered by a runtime in this process: what the HTTP
/// handlers call, and the CLI when it runs the runtime itself.
pub struct LocalControl {
    troupe: Troupe,
    /// What tasks queued through it say they came from (`ctx.source`).
    source: String,
    /// Whether [`Control::close`] stops the runtime.
    owned: bool,
}

impl LocalControl {
    /// Answers for a runtime its owner stops (the daemon's HTTP server);
    /// tasks say they came from `api`.
    pub fn new(troupe: Troupe) -> Self {
        LocalControl {
            troupe,
            source: "api".into(),
            owned: false,
        }
    }

    /// Takes the runtime over: [`Control::close`] (or
    /// [`shutdown`](Self::shutdown)) drains and stops it.
    pub fn owning(troupe: Troupe) -> Self {
        LocalControl {
            owned: true,
            ..LocalControl::new(troupe)
        }
    }

    /// Tasks queued through this control say they came from `source`
    /// (`cli`, `demo`, …).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// The ids of the configured agents.
    pub fn agent_ids(&self) -> Vec<String> {
        let agents = &self.troupe.config().agents;
        agents.iter().map(|a| a.id.clone()).collect()
    }

    /// Whether no job is queued or running (for runs that end when idle).
    pub async fn is_idle(&self) -> Result<bool, ControlError> {
        let counts = self.troupe.engine().counts().await?;
        Ok(counts.status(JobStatus::Queued) == 0 && counts.status(JobStatus::Running) == 0)
    }

    /// Drains the engine and stops the runtime; what the drain did.
    pub async fn shutdown(&self) -> Result<DrainReport, ControlError> {
        Ok(self.troupe.shutdown().await?)
    }

    /// The worker or agent a pause request names, checked to exist.
    fn pause_target(&self, request: &PauseRequest) -> Result<PauseTarget, ControlError> {
        request.validate()?;
        match (&request.worker, &request.agent) {
            (Some(worker), _) => {
                let workers = self.troupe.engine().list_workers();
                if !workers.iter().any(|w| &w.name == worker) {
                    let registered: Vec<_> = workers.into_iter().map(|w| w.name).collect();
                    return Err(EngineError::UnknownWorker {
                        name: worker.clone(),
                        registered: registered.join(", "),
                    }
                    .into());
                }
                Ok(PauseTarget::Worker(worker.clone()))
            }
            // An agent's tasks are the jobs of the worker named after it.
            (None, Some(agent)) => {
                find_agent(&self.troupe.config().agents, agent)?;
                Ok(PauseTarget::Worker(agent.clone()))
            }
            (None, None) => Ok(PauseTarget::All),
        }
    }
}

#[async_trait]
impl Control for LocalControl {
    async fn enqueue(&self, request: EnqueueRequest) -> Result<Enqueued, ControlError> {
        request.validate()?;
        let ctx = request.ctx.clone().unwrap_or_default();
        let outcome = self
            .troupe
            .engine()
            .enqueue(
                &request.worker_name,
                request.job_args(),
                ctx,
                request.options(),
            )
            .await?;
        Ok(outcome.into())
    }

    async fn jobs(&self, query: JobsQuery) -> Result<JobsPage, ControlError> {
        query.validate()?;
        query.page(self.troupe.engine().store().as_ref()).await
    }

    async fn job(&self, id: JobId) -> Result<Job, ControlError> {
        Ok(self.troupe.engine().get_job(id).await?)
    }

    async fn cancel(&self, id: JobId) -> Result<CancelAnswer, ControlError> {
        Ok(self.troupe.engine().cancel_job(id).await?.into())
    }

    async fn approvals(&self) -> Result<ApprovalsAnswer, ControlError> {
        Ok(ApprovalsAnswer {
            approvals: self.troupe.engine().pending_approvals().await?,
        })
    }

    async fn approve(
        &self,
        id: ApprovalId,
        request: ApproveRequest,
    ) -> Result<DecidedAnswer, ControlError> {
        request.validate()?;
        self.decide(id, request.into()).await
    }

    async fn deny(
        &self,
        id: ApprovalId,
        request: DenyRequest,
    ) -> Result<DecidedAnswer, ControlError> {
        request.validate()?;
        self.decide(id, request.into()).await
    }

    async fn nodes(&self) -> Result<NodesAnswer, ControlError> {
        Ok(NodesAnswer {
            nodes: self.troupe.store().nodes().await?,
        })
    }

    async fn workers(&self) -> Result<WorkersAnswer, ControlError> {
        let engine = self.troupe.engine();
        let pause = engine.store().pause_state().await?;
        let counts = engine.counts().await?;
        let workers = engine
            .list_workers()
            .into_iter()
            .map(|w| WorkerState::new(w, &counts, &pause))
            .collect();
        Ok(WorkersAnswer {
            workers,
            paused_all: pause.all,
        })
    }

    async fn agents(&self) -> Result<AgentsAnswer, ControlError> {
        let engine = self.troupe.engine();
        let pause = engine.store().pause_state().await?;
        let counts = engine.counts().await?;
        let agents = self.troupe.config().agents.iter();
        Ok(AgentsAnswer {
            agents: agents
                .map(|a| AgentState::new(a, &counts, &pause))
                .collect(),
        })
    }

    async fn task(&self, agent: &str, request: TaskRequest) -> Result<TaskAnswer, ControlError> {
        find_agent(&self.troupe.config().agents, agent)?;
        request.validate()?;
        let options = TaskOptions {
            conversation_id: request.conversation_id,
            user_id: request.user_id,
            source: Some(self.source.clone()),
            output_schema: request.output_schema,
        };
        let job = self.troupe.task(agent, &request.prompt, options).await?;
        if !request.wait {
            return Ok(TaskAnswer::Queued(job));
        }
        let result = match self.troupe.wait(job.id).await {
            Err(TaskError::Runtime(e)) => return Err(e.into()),
            outcome => ProcessingResult::of(outcome),
        };
        Ok(TaskAnswer::Finished(result))
    }

    async fn memories(
        &self,
        agent: &str,
        query: MemoriesQuery,
    ) -> Result<MemoriesAnswer, ControlError> {
        let agent = &find_agent(&self.troupe.config().agents, agent)?.id;
        query.validate()?;
        let memories = self
            .troupe
            .memories()
            .list(query.scope(agent)?, query.archived)
            .await?;
        Ok(MemoriesAnswer { memories })
    }

    async fn messages(&self, conversation: &str) -> Result<MessagesAnswer, ControlError> {
        let messages = self.troupe.conversations().messages(conversation).await?;
        if messages.is_empty() {
            return Err(ControlError::NotFound(format!(
                "no conversation with id `{conversation}`"
            )));
        }
        Ok(MessagesAnswer { messages })
    }

    async fn pause(&self, request: PauseRequest) -> Result<PausedAnswer, ControlError> {
        let target = self.pause_target(&request)?;
        let now = self.troupe.engine().pause(target).await?;
        Ok(PausedAnswer { paused: now.into() })
    }

    async fn resume(&self, request: PauseRequest) -> Result<PausedAnswer, ControlError> {
        let target = self.pause_target(&request)?;
        let now = self.troupe.engine().resume(target).await?;
        Ok(PausedAnswer { paused: now.into() })
    }

    async fn status(&self) -> Result<StatusScreen, ControlError> {
        let readiness = self.readiness().await?;
        let workers = self.workers().await?;
        let agents = self.agents().await?.agents;
        let engine = self.troupe.engine();
        let counts = engine.counts().await?;
        let running = engine
            .list_jobs(&ListQuery {
                status: Some(JobStatus::Running),
                limit: STATUS_RUNNING,
                ..ListQuery::default()
            })
            .await?
            .jobs;
        let today = chrono::Utc::now().date_naive();
        let spend = spend(&self.troupe.store().day_usage(today).await?);
        Ok(StatusScreen {
            daemon: None,
            ready: Some(readiness.ready),
            workers: workers.workers,
            paused_all: workers.paused_all,
            agents,
            queue_depth: counts.status(JobStatus::Queued),
            waiting: counts.status(JobStatus::Waiting),
            pending_approvals: self.troupe.store().pending_approvals().await?.len() as u64,
            running,
            providers: readiness.providers,
            spend_today_usd: spend,
            nodes: self.troupe.store().nodes().await?,
        })
    }

    async fn steps(&self, id: JobId) -> Result<StepsAnswer, ControlError> {
        self.job(id).await?;
        let mut steps = self.troupe.store().load_steps(id).await?;
        let prices = crate::provider::PriceTable::from_config(&self.troupe.config().pricing);
        for step in &mut steps {
            super::steps::add_cost(step, &prices);
        }
        Ok(StepsAnswer::new(id, steps))
    }

    async fn stats(&self) -> Result<StatsAnswer, ControlError> {
        let now = chrono::Utc::now();
        let minutes = self.troupe.engine().stats().history.last_hour(now);
        let day = self.troupe.store().day_usage(now.date_naive()).await?;
        Ok(StatsAnswer {
            minutes: minutes
                .into_iter()
                .map(|m| MinuteStat {
                    at: chrono::DateTime::from_timestamp(m.minute * 60, 0).unwrap_or(now),
                    completed: m.completed,
                    failed: m.failed,
                })
                .collect(),
            providers: self.provider_stats(),
            spend: stats::agent_spend(&self.troupe.config().agents, &day),
        })
    }

    async fn agent(&self, agent: &str) -> Result<AgentDetail, ControlError> {
        let config = find_agent(&self.troupe.config().agents, agent)?;
        let engine = self.troupe.engine();
        let pause = engine.store().pause_state().await?;
        let counts = engine.counts().await?;
        let state = AgentState::new(config, &counts, &pause);
        Ok(AgentDetail::new(config, state))
    }

    async fn recall(&self, agent: &str, query: RecallQuery) -> Result<RecallAnswer, ControlError> {
        let agent = &find_agent(&self.troupe.config().agents, agent)?.id;
        query.validate()?;
        let limit = query.limit.unwrap_or(DEFAULT_RECALL);
        let scored = self
            .troupe
            .memories()
            .recall(query.scope(agent)?, query.q.clone(), limit)
            .await?;
        Ok(RecallAnswer {
            memories: scored.into_iter().map(Recalled::from).collect(),
        })
    }

    async fn health(&self) -> Result<Health, ControlError> {
        Ok(Health::ok())
    }

    async fn readiness(&self) -> Result<Readiness, ControlError> {
        let store = match self.troupe.store().health().await {
            Ok(_) => StoreCheck {
                ok: true,
                error: None,
            },
            Err(e) => StoreCheck {
                ok: false,
                error: Some(e.to_string()),
            },
        };
        let supervisors = self.supervisors();
        let providers = self.providers();
        let ready = store.ok && supervisors.iter().all(|s| s.ok) && providers.iter().all(|p| p.ok);
        let degraded = providers
            .iter()
            .any(|p| p.circuit != Some(BreakerState::Closed));
        Ok(Readiness {
            ready,
            degraded,
            store,
            supervisors,
            providers,
        })
    }

    async fn metrics(&self) -> Result<String, ControlError> {
        Ok(self.troupe.metrics().await)
    }

    async fn events(&self, id: JobId, after: u64) -> Result<EventsStream, ControlError> {
        use futures::StreamExt;
        let stream = self.troupe.events_after(id, after).await?;
        Ok(Box::pin(stream.map(Ok)))
    }

    async fn event_frames(&self, id: JobId, after: u64) -> Result<FramesStream, ControlError> {
        use futures::StreamExt;
        let stream = self.troupe.events_after(id, after).await?.into_logged();
        Ok(Box::pin(stream.map(|logged| Ok(logged.frame()))))
    }

    async fn close(&self) -> Result<(), ControlError> {
        if self.owned {
            self.shutdown().await?;
        }
        Ok(())
    }
}

impl LocalControl {
    /// Stores a decision of approval `id` through the engine (which wakes
    /// its task).
    async fn decide(
        &self,
        id: ApprovalId,
        decision: crate::job::Decision,
    ) -> Result<DecidedAnswer, ControlError> {
        let outcome = self.troupe.engine().decide_approval(id, decision).await?;
        super::approvals::decided(outcome)
    }

    /// Each supervision tree's root, up or not.
    fn supervisors(&self) -> Vec<SupervisorState> {
        self.troupe
            .trees()
            .into_iter()
            .map(|tree| {
                let root = tree.root();
                let ended = tree.outcome();
                SupervisorState {
                    name: root.name().to_string(),
                    state: root.state().as_str().to_string(),
                    ok: ended.is_none() && root.state() == ChildState::Running,
                    ended: ended.map(|o| match o {
                        Ok(()) => "stopped".to_string(),
                        Err(e) => e.to_string(),
                    }),
                }
            })
            .collect()
    }

    /// Each configured provider's calls, errors by class and latency.
    fn provider_stats(&self) -> Vec<ProviderStat> {
        let Some(set) = self.troupe.providers() else {
            return Vec::new();
        };
        set.status()
            .into_iter()
            .map(|p| {
                let calls = set.call_stats(&p.name);
                ProviderStat {
                    circuit: Some(p.breaker),
                    ok: calls.map_or(0, |c| c.ok()),
                    errors: calls
                        .map(|c| c.errors())
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, n)| (k.to_string(), n))
                        .collect(),
                    mean_latency_ms: calls.and_then(|c| c.mean_latency_ms()),
                    name: p.name,
                }
            })
            .collect()
    }

    /// Each configured provider's actor and circuit.
    fn providers(&self) -> Vec<ProviderState> {
        let status = self.troupe.providers().map(|set| set.status());
        status
            .unwrap_or_default()
            .into_iter()
            .map(|p| ProviderState {
                ok: p.actor != "stopped",
                name: p.name,
                circuit: Some(p.breaker),
                actor: p.actor.to_string(),
                restarts: p.restarts,
            })
            .collect()
    }
}
