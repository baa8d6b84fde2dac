//! [`StoreControl`]: the control API over the store alone, for the CLI when
//! no daemon runs. Nothing is started: jobs and tasks are queued for the
//! next `troupe run`, reads see what the last run left.

use std::sync::Arc;

use async_trait::async_trait;

use super::agents::find_agent;
use super::status::spend;
use super::*;
use crate::agent::{AgentWorker, CompactionWorker, RuntimeSlot};
use crate::config::TroupeConfig;
use crate::engine::{EchoWorker, EngineError, SleepWorker, Worker, WorkerCategory, WorkerInfo};
use crate::job::{ApprovalId, JobStatus};
use crate::store::{ListQuery, PauseTarget, Store};

/// The control API answered from a store no runtime holds. What needs a
/// running runtime (waiting for a task, readiness, metrics) is refused
/// as unavailable; names are checked against the config where the daemon
/// would check them against what it runs, except pause and memory
/// targets, which are taken as given (the config may be absent).
pub struct StoreControl {
    store: Arc<dyn Store>,
    config: TroupeConfig,
    /// What tasks queued through it say they came from.
    source: String,
}

impl StoreControl {
    /// Answers from `store`, knowing the workers and agents of `config`;
    /// tasks say they came from `cli`.
    pub fn new(store: Arc<dyn Store>, config: TroupeConfig) -> Self {
        StoreControl {
            store,
            config,
            source: "cli".into(),
        }
    }

    /// Tasks queued through this control say they came from `source`.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// The workers the daemon for this config registers, described and
    /// ordered (by name) as it lists them: the diagnostic ones, memory
    /// compaction, and one per agent (built here, never run).
    pub fn known_workers(&self) -> Vec<WorkerInfo> {
        let slot = RuntimeSlot::default();
        let agents = &self.config.agents;
        let concurrency = self.config.engine.concurrency;
        let shared: [Box<dyn Worker>; 3] = [
            Box::new(EchoWorker),
            Box::new(SleepWorker),
            Box::new(CompactionWorker::new(agents, slot.clone())),
        ];
        let info = |w: &dyn Worker, concurrency| WorkerInfo {
            name: w.name().to_string(),
            description: w.description().to_string(),
            category: w.category(),
            concurrency,
        };
        let mut infos: Vec<WorkerInfo> = shared.iter().map(|w| info(&**w, concurrency)).collect();
        infos.extend(agents.iter().map(|a| {
            let worker = AgentWorker::new(a.clone(), slot.clone());
            info(&worker, a.concurrency)
        }));
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        infos
    }

    fn check_worker(&self, name: &str) -> Result<(), ControlError> {
        let known: Vec<String> = self.known_workers().into_iter().map(|w| w.name).collect();
        if known.iter().any(|k| k == name) {
            return Ok(());
        }
        Err(EngineError::UnknownWorker {
            name: name.to_string(),
            registered: known.join(", "),
        }
        .into())
    }

    async fn set_paused(
        &self,
        request: PauseRequest,
        paused: bool,
    ) -> Result<PausedAnswer, ControlError> {
        request.validate()?;
        let target = match request.worker.or(request.agent) {
            Some(name) => PauseTarget::Worker(name),
            None => PauseTarget::All,
        };
        let now = self.store.set_paused(target, paused).await?;
        Ok(PausedAnswer { paused: now.into() })
    }

    fn unavailable(what: &str) -> ControlError {
        ControlError::Unavailable(format!(
            "{what} needs a running daemon (`troupe run`); none holds this data directory"
        ))
    }
}

#[async_trait]
impl Control for StoreControl {
    async fn enqueue(&self, request: EnqueueRequest) -> Result<Enqueued, ControlError> {
        request.validate()?;
        self.check_worker(&request.worker_name)?;
        let job = Job::new(
            request.worker_name.clone(),
            request.job_args(),
            request.ctx.clone().unwrap_or_default(),
            &request.options(),
            chrono::Utc::now(),
        )?;
        Ok(self.store.insert(job).await?.into())
    }

    async fn jobs(&self, query: JobsQuery) -> Result<JobsPage, ControlError> {
        query.validate()?;
        query.page(self.store.as_ref()).await
    }

    async fn job(&self, id: JobId) -> Result<Job, ControlError> {
        self.store
            .get_job(id)
            .await?
            .ok_or_else(|| EngineError::JobNotFound { id }.into())
    }

    async fn cancel(&self, id: JobId) -> Result<CancelAnswer, ControlError> {
        Ok(self.store.cancel(id).await?.into())
    }

    async fn approvals(&self) -> Result<ApprovalsAnswer, ControlError> {
        Ok(ApprovalsAnswer {
            approvals: self.store.pending_approvals().await?,
        })
    }

    /// Decided in the store; the daemon, when it next starts, runs the
    /// task on.
    async fn approve(
        &self,
        id: ApprovalId,
        request: ApproveRequest,
    ) -> Result<DecidedAnswer, ControlError> {
        request.validate()?;
        super::approvals::decided(self.store.decide_approval(id, request.into()).await?)
    }

    async fn deny(
        &self,
        id: ApprovalId,
        request: DenyRequest,
    ) -> Result<DecidedAnswer, ControlError> {
        request.validate()?;
        super::approvals::decided(self.store.decide_approval(id, request.into()).await?)
    }

    async fn nodes(&self) -> Result<NodesAnswer, ControlError> {
        Ok(NodesAnswer {
            nodes: self.store.nodes().await?,
        })
    }

    async fn workers(&self) -> Result<WorkersAnswer, ControlError> {
        let pause = self.store.pause_state().await?;
        let counts = self.store.counts().await?;
        let mut infos = self.known_workers();
        // Workers with jobs in the store that the config does not name
        // (say, an agent's, with no config given) are shown too.
        let unknown: Vec<String> = counts
            .by_worker
            .keys()
            .filter(|name| !infos.iter().any(|w| &&w.name == name))
            .cloned()
            .collect();
        infos.extend(unknown.into_iter().map(|name| WorkerInfo {
            name,
            description: "not in the config".into(),
            category: WorkerCategory::Other("unknown".into()),
            concurrency: self.config.engine.concurrency,
        }));
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        let workers = infos
            .into_iter()
            .map(|w| WorkerState::new(w, &counts, &pause))
            .collect();
        Ok(WorkersAnswer {
            workers,
            paused_all: pause.all,
        })
    }

    async fn agents(&self) -> Result<AgentsAnswer, ControlError> {
        let pause = self.store.pause_state().await?;
        let counts = self.store.counts().await?;
        let agents = self.config.agents.iter();
        Ok(AgentsAnswer {
            agents: agents
                .map(|a| AgentState::new(a, &counts, &pause))
                .collect(),
        })
    }

    async fn task(&self, agent: &str, request: TaskRequest) -> Result<TaskAnswer, ControlError> {
        let agent = &find_agent(&self.config.agents, agent)?.id;
        request.validate()?;
        if request.wait {
            return Err(Self::unavailable("waiting for a task"));
        }
        let (args, ctx) = request.job_parts(&self.source);
        let options = crate::job::EnqueueOptions::default();
        let job = Job::new(agent, args, ctx, &options, chrono::Utc::now())?;
        Ok(TaskAnswer::Queued(self.store.insert(job).await?.into_job()))
    }

    async fn memories(
        &self,
        agent: &str,
        query: MemoriesQuery,
    ) -> Result<MemoriesAnswer, ControlError> {
        query.validate()?;
        let scope = query.scope(agent)?;
        let memories = self.store.list_memories(&scope, query.archived).await?;
        Ok(MemoriesAnswer { memories })
    }

    async fn messages(&self, conversation: &str) -> Result<MessagesAnswer, ControlError> {
        let messages = self.store.list_messages(conversation).await?;
        if messages.is_empty() {
            return Err(ControlError::NotFound(format!(
                "no conversation with id `{conversation}`"
            )));
        }
        Ok(MessagesAnswer { messages })
    }

    async fn pause(&self, request: PauseRequest) -> Result<PausedAnswer, ControlError> {
        self.set_paused(request, true).await
    }

    async fn resume(&self, request: PauseRequest) -> Result<PausedAnswer, ControlError> {
        self.set_paused(request, false).await
    }

    async fn status(&self) -> Result<StatusScreen, ControlError> {
        let workers = self.workers().await?;
        let agents = self.agents().await?.agents;
        let counts = self.store.counts().await?;
        let running = self
            .store
            .list_jobs(&ListQuery {
                status: Some(JobStatus::Running),
                limit: STATUS_RUNNING,
                ..ListQuery::default()
            })
            .await?
            .jobs;
        let today = chrono::Utc::now().date_naive();
        let spend = self.store.day_usage(today).await.map(|d| spend(&d));
        let providers = self.config.providers.iter();
        Ok(StatusScreen {
            daemon: None,
            ready: None,
            workers: workers.workers,
            paused_all: workers.paused_all,
            agents,
            queue_depth: counts.status(JobStatus::Queued),
            waiting: counts.status(JobStatus::Waiting),
            pending_approvals: self.store.pending_approvals().await?.len() as u64,
            running,
            providers: providers
                .map(|p| ProviderState::not_running(&p.name))
                .collect(),
            spend_today_usd: spend.unwrap_or(0.0),
            nodes: self.store.nodes().await?,
        })
    }

    async fn steps(&self, id: JobId) -> Result<StepsAnswer, ControlError> {
        self.job(id).await?;
        Ok(StepsAnswer::new(id, self.store.load_steps(id).await?))
    }

    async fn stats(&self) -> Result<StatsAnswer, ControlError> {
        let today = chrono::Utc::now().date_naive();
        let day = self.store.day_usage(today).await?;
        let providers = self.config.providers.iter();
        Ok(StatsAnswer {
            minutes: Vec::new(),
            providers: providers
                .map(|p| ProviderStat {
                    name: p.name.clone(),
                    circuit: None,
                    ok: 0,
                    errors: Default::default(),
                    mean_latency_ms: None,
                })
                .collect(),
            spend: stats::agent_spend(&self.config.agents, &day),
        })
    }

    async fn agent(&self, agent: &str) -> Result<AgentDetail, ControlError> {
        let config = find_agent(&self.config.agents, agent)?;
        let pause = self.store.pause_state().await?;
        let counts = self.store.counts().await?;
        let state = AgentState::new(config, &counts, &pause);
        Ok(AgentDetail::new(config, state))
    }

    async fn recall(
        &self,
        _agent: &str,
        _query: RecallQuery,
    ) -> Result<RecallAnswer, ControlError> {
        Err(Self::unavailable("recall"))
    }

    async fn health(&self) -> Result<Health, ControlError> {
        Err(Self::unavailable("health"))
    }

    async fn readiness(&self) -> Result<Readiness, ControlError> {
        Err(Self::unavailable("readiness"))
    }

    async fn metrics(&self) -> Result<String, ControlError> {
        Err(Self::unavailable("metrics"))
    }
}
