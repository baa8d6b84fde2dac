//! [`WorkerEngine`]: the handle for enqueueing and inspecting jobs, and the
//! builder that starts the engine's supervision tree.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use troupe_actors::{
    ActorRef, Arbiter, ChildSpec, Intensity, Strategy, SupervisorRef, SupervisorSpec, Tree,
};

use crate::job::schedule::Schedule;
use crate::job::{Approval, ApprovalId, Decision, EnqueueOptions, Job, JobCtx, JobId};
use crate::store::{
    CancelOutcome, DecideOutcome, InsertOutcome, JobCounts, JobPage, ListQuery, PauseState,
    PauseTarget, Store,
};

use super::config::EngineConfig;
use super::diagnostic::{EchoWorker, SleepWorker};
use super::error::EngineError;
use super::events::EventStream;
use super::runner::WorkerActor;
use super::scheduler::{Cancel, Drain, DrainReport, ScheduleAt, Scheduler, Wake};
use super::shared::{terminal_event, EngineShared, WorkerEntry};
use super::worker::{Registration, Worker, WorkerInfo};

/// How often [`WorkerEngine::wait_for`] looks at a job another node may
/// be running (a cluster store).
const CLUSTER_WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// How many jobs of a large `WorkerEngine::enqueue_many` go into its first
/// durable write: enough for the first claims, small enough to be stored
/// within a few milliseconds.
pub(crate) const FIRST_INSERT: usize = 256;

/// The most jobs of one `WorkerEngine::enqueue_many` in one durable write.
/// The writer's thread is busy for the whole write (about 1 ms per 100 jobs
/// on sled), and in an actix system that is also the scheduler's thread.
pub(crate) const LARGEST_INSERT: usize = 1024;

/// One job of a bulk enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The worker to run it.
    pub worker_name: String,
    /// Its input.
    pub args: Value,
    /// Who asked and from where.
    pub ctx: JobCtx,
    /// When, how urgent, how often, deduplication, timeout.
    pub options: EnqueueOptions,
}

/// Collects the store, settings and workers, then starts the engine.
pub struct EngineBuilder {
    store: Arc<dyn Store>,
    config: EngineConfig,
    workers: Vec<Registration>,
}

impl EngineBuilder {
    /// Replaces the default settings.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Registers a worker with the default concurrency.
    pub fn worker(mut self, worker: impl Worker) -> Self {
        let concurrency = self.config.default_concurrency;
        self.workers
            .push(Registration::new(Arc::new(worker), concurrency));
        self
    }

    /// Registers a worker that runs at most `concurrency` jobs at once.
    pub fn register(mut self, registration: Registration) -> Self {
        self.workers.push(registration);
        self
    }

    /// Registers the built-in diagnostic workers `echo` and `sleep`.
    pub fn diagnostics(self) -> Self {
        self.worker(EchoWorker).worker(SleepWorker)
    }

    /// Starts the engine's actors on the current actix system. Jobs left
    /// `running` by a previous process are queued again before any is claimed.
    pub fn start(self) -> Result<WorkerEngine, EngineError> {
        let mut entries = BTreeMap::new();
        for registration in self.workers {
            validate(&registration, &entries)?;
            entries.insert(
                registration.name.clone(),
                WorkerEntry {
                    registration,
                    actor: None,
                },
            );
        }
        let mut workers_sup = SupervisorSpec::new("workers")
            .strategy(Strategy::OneForOne)
            .intensity(Intensity::new(100, Duration::from_secs(10)));
        // Stopped when dropped: a start that fails below leaves no thread.
        let arbiters = OwnThreads::default();
        for entry in entries.values() {
            workers_sup = workers_sup.child(worker_spec(&entry.registration, &arbiters)?);
        }
        let shared = Arc::new(EngineShared {
            store: self.store,
            workers: RwLock::new(entries),
            waiters: Default::default(),
            config: self.config,
            stats: Default::default(),
            workers_sup: Default::default(),
            events: Default::default(),
        });
        let for_scheduler = shared.clone();
        let tree = SupervisorSpec::new("engine")
            .strategy(Strategy::RestForOne)
            .intensity(Intensity::new(10, Duration::from_secs(10)))
            .supervisor(workers_sup)
            .child(
                ChildSpec::new("scheduler", move || Scheduler::new(for_scheduler.clone()))
                    .mailbox(4096),
            )
            .start()
            .map_err(|e| EngineError::Start(e.to_string()))?;
        // Fill in the actors before yielding: the scheduler runs only once
        // this task awaits, and by then every worker has its actor.
        {
            let mut workers = shared.write_workers();
            for (name, entry) in workers.iter_mut() {
                let actor = tree
                    .actor::<WorkerActor>(&format!("workers/{}", child_id(name)))
                    .map_err(|e| EngineError::Start(e.to_string()))?;
                entry.actor = Some(actor);
            }
        }
        let scheduler = tree
            .actor::<Scheduler>("scheduler")
            .map_err(|e| EngineError::Start(e.to_string()))?;
        let workers_sup = tree
            .supervisor("workers")
            .map_err(|e| EngineError::Start(e.to_string()))?;
        let _ = shared.workers_sup.set(workers_sup.clone());
        Ok(WorkerEngine {
            inner: Arc::new(Inner {
                shared,
                tree,
                scheduler,
                workers_sup,
                arbiters,
            }),
        })
    }
}

fn child_id(worker: &str) -> String {
    format!("worker:{worker}")
}

/// The worker's actor spec: each start (the first and every restart) builds
/// its worker from the registration, so a worker registered with a factory
/// starts fresh.
fn worker_spec(
    registration: &Registration,
    threads: &OwnThreads,
) -> Result<ChildSpec<WorkerActor>, EngineError> {
    let for_actor = registration.clone();
    let spec = ChildSpec::new(child_id(&registration.name), move || {
        WorkerActor::new(&for_actor)
    })
    .mailbox(1024);
    if !registration.own_thread {
        return Ok(spec);
    }
    let arbiter = Arbiter::try_new().map_err(|e| {
        EngineError::Start(format!(
            "worker `{}` runs on a thread of its own: {e}",
            registration.name
        ))
    })?;
    let spec = spec.on_arbiter(&arbiter);
    threads.lock().push(arbiter);
    Ok(spec)
}

/// How long a shutdown waits for each worker thread to end.
const THREAD_JOIN: Duration = Duration::from_secs(5);

/// Threads of the workers registered `on_own_thread`. They are stopped when
/// the engine shuts down, and when this is dropped (the engine is dropped
/// without a shutdown, or its start failed half way), so none is left
/// running with nobody to stop it.
#[derive(Default)]
struct OwnThreads(std::sync::Mutex<Vec<Arbiter>>);

impl OwnThreads {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arbiter>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops every thread and waits a moment for each to end, so the
    /// actors on them (and what they hold: the store) are gone when the
    /// engine's shutdown returns.
    fn stop_all(&self) {
        let arbiters: Vec<Arbiter> = self.lock().drain(..).collect();
        for arbiter in arbiters {
            if !arbiter.stop_and_join(THREAD_JOIN) {
                tracing::warn!("a worker thread did not end within {THREAD_JOIN:?} of its stop");
            }
        }
    }
}

impl Drop for OwnThreads {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn validate(
    registration: &Registration,
    existing: &BTreeMap<String, WorkerEntry>,
) -> Result<(), EngineError> {
    let name = registration.name.as_str();
    if name.trim().is_empty() || name.contains('/') {
        return Err(EngineError::InvalidWorker {
            name: name.to_string(),
            field: "name",
            reason: "must be non-empty and contain no `/`".into(),
        });
    }
    if registration.concurrency == 0 {
        return Err(EngineError::InvalidWorker {
            name: name.to_string(),
            field: "concurrency",
            reason: "must be at least 1".into(),
        });
    }
    if registration.recycle_above_memory.is_some() && !crate::alloc::installed() {
        return Err(EngineError::InvalidWorker {
            name: name.to_string(),
            field: "recycle_above_memory",
            reason: format!(
                "the accounting allocator is not installed, so the worker's memory cannot be measured: {}",
                crate::alloc::INSTALL_HINT
            ),
        });
    }
    if existing.contains_key(name) {
        return Err(EngineError::DuplicateWorker {
            name: name.to_string(),
        });
    }
    Ok(())
}

struct Inner {
    shared: Arc<EngineShared>,
    tree: Tree,
    scheduler: ActorRef<Scheduler>,
    workers_sup: SupervisorRef,
    /// Threads of the workers registered `on_own_thread`.
    arbiters: OwnThreads,
}

/// The job engine: enqueue, inspect, cancel, wait, pause, shut down.
/// Cheap to clone; every clone drives the same engine.
#[derive(Clone)]
pub struct WorkerEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WorkerEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerEngine")
            .field("workers", &self.inner.shared.worker_names())
            .finish()
    }
}

impl WorkerEngine {
    /// A builder over `store`.
    pub fn builder(store: Arc<dyn Store>) -> EngineBuilder {
        EngineBuilder {
            store,
            config: EngineConfig::default(),
            workers: Vec::new(),
        }
    }

    /// The store the engine runs on.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.shared.store
    }

    /// Job waits, run times, retries and outcomes by worker, as the
    /// scheduler records them: the figures `/metrics` cannot read back from
    /// the store.
    pub(crate) fn stats(&self) -> &Arc<crate::engine::EngineStats> {
        &self.inner.shared.stats
    }

    /// The hub its jobs' events go to (the task loop emits into it too).
    pub(crate) fn event_hub(&self) -> &Arc<crate::events::EventHub> {
        &self.inner.shared.events
    }

    /// The engine's supervision tree (`engine` → `workers`, `scheduler`),
    /// for restart counts and mailbox depths.
    pub fn tree(&self) -> &Tree {
        &self.inner.tree
    }

    /// Enqueues one job; returns once it is durable. With a unique key held
    /// by a queued or running job, returns that job instead
    /// ([`InsertOutcome::Existing`]).
    pub async fn enqueue(
        &self,
        worker_name: &str,
        args: Value,
        ctx: JobCtx,
        options: EnqueueOptions,
    ) -> Result<InsertOutcome, EngineError> {
        self.check_worker(worker_name)?;
        let job = Job::new(worker_name, args, ctx, &options, chrono::Utc::now())?;
        let outcome = self.inner.shared.store.insert(job).await?;
        self.wake();
        Ok(outcome)
    }

    /// Enqueues a job the caller built with [`Job::new`]: for callers that
    /// must fix the job's id before it exists (the `scheduler` and
    /// `create_task` tools record it in the idempotency registry first, see
    /// `crate::agent::checkpoint`). Same rules as [`enqueue`](Self::enqueue);
    /// a job whose id is already stored is refused with an error.
    pub async fn enqueue_job(&self, job: Job) -> Result<InsertOutcome, EngineError> {
        self.check_worker(&job.worker_name)?;
        let outcome = self.inner.shared.store.insert(job).await?;
        self.wake();
        Ok(outcome)
    }

    /// Enqueues many jobs; outcomes in input order. Nothing is stored if
    /// any job is invalid (all are built and checked first).
    ///
    /// A large batch is stored in a few durable writes, not one: the first
    /// 256 jobs, then twice as many each time up to 1,024, and the
    /// scheduler is woken after each. So the first jobs start while the
    /// rest are still being written: 10,000 jobs in one write took sled
    /// 80–120 ms, all of it before the first start. Each write is one
    /// store call (on PostgreSQL one transaction): a store error part way
    /// returns the error with the writes before it stored, as a failing
    /// sled write already did within its one call; unique keys make a
    /// retry safe.
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<InsertOutcome>, EngineError> {
        let now = chrono::Utc::now();
        let mut built = Vec::with_capacity(jobs.len());
        for new in jobs {
            self.check_worker(&new.worker_name)?;
            let job = Job::new(new.worker_name, new.args, new.ctx, &new.options, now)?;
            crate::job::rules::validate_new(&job).map_err(|source| {
                EngineError::Store(crate::store::StoreError::InvalidJob { id: job.id, source })
            })?;
            built.push(job);
        }
        let mut outcomes = Vec::with_capacity(built.len());
        let mut rest = built.into_iter();
        let mut size = FIRST_INSERT;
        loop {
            let part: Vec<Job> = rest.by_ref().take(size).collect();
            if part.is_empty() {
                break;
            }
            outcomes.extend(self.inner.shared.store.insert_many(part).await?);
            self.wake();
            if size == FIRST_INSERT {
                // On the scheduler's own thread (an actix system), let it
                // take the first wake and start its claim before the next
                // write holds the thread: that claim then shares the next
                // write's flush. Later wakes fold into the claim passes
                // already under way, which then claim more at a time.
                tokio::task::yield_now().await;
            }
            size = (size * 2).min(LARGEST_INSERT);
        }
        Ok(outcomes)
    }

    fn check_worker(&self, name: &str) -> Result<(), EngineError> {
        let workers = self.inner.shared.read_workers();
        if workers.contains_key(name) {
            return Ok(());
        }
        Err(EngineError::UnknownWorker {
            name: name.to_string(),
            registered: workers.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    fn wake(&self) {
        // A full mailbox means the scheduler has work queued that ends in a
        // claim pass anyway, so a wake that does not fit is not needed.
        let _ = self.inner.scheduler.try_send(Wake);
    }

    /// Registers a worker on the running engine.
    pub async fn register_worker(&self, registration: Registration) -> Result<(), EngineError> {
        let name = registration.name.clone();
        {
            let mut workers = self.inner.shared.write_workers();
            validate(&registration, &workers)?;
            workers.insert(
                name.clone(),
                WorkerEntry {
                    registration: registration.clone(),
                    actor: None,
                },
            );
        }
        let actor = match worker_spec(&registration, &self.inner.arbiters) {
            Ok(spec) => self
                .inner
                .workers_sup
                .start_child(spec)
                .await
                .map_err(|e| EngineError::Start(e.to_string())),
            Err(e) => Err(e),
        };
        let mut workers = self.inner.shared.write_workers();
        match actor {
            Ok(actor) => {
                if let Some(entry) = workers.get_mut(&name) {
                    entry.actor = Some(actor);
                }
                drop(workers);
                self.wake();
                Ok(())
            }
            Err(e) => {
                workers.remove(&name);
                Err(e)
            }
        }
    }

    /// Each registered worker's heap: the bytes charged to its account and
    /// not yet freed (see [`crate::alloc`]), by name. All 0 unless the
    /// accounting allocator is installed ([`crate::alloc::installed`]).
    pub fn worker_heap_bytes(&self) -> Vec<(String, u64)> {
        let workers = self.inner.shared.read_workers();
        workers
            .iter()
            .map(|(name, e)| (name.clone(), e.registration.account.live_bytes()))
            .collect()
    }

    /// The registered workers, by name.
    pub fn list_workers(&self) -> Vec<WorkerInfo> {
        let workers = self.inner.shared.read_workers();
        workers.values().map(|e| e.registration.info()).collect()
    }

    /// Jobs, newest first, filtered and paged.
    pub async fn list_jobs(&self, query: &ListQuery) -> Result<JobPage, EngineError> {
        Ok(self.inner.shared.store.list_jobs(query).await?)
    }

    /// One job by id.
    pub async fn get_job(&self, id: JobId) -> Result<Job, EngineError> {
        self.inner
            .shared
            .store
            .get_job(id)
            .await?
            .ok_or(EngineError::JobNotFound { id })
    }

    /// Counts by status and worker.
    pub async fn counts(&self) -> Result<JobCounts, EngineError> {
        Ok(self.inner.shared.store.counts().await?)
    }

    /// Cancels a job: a queued one ends `cancelled` at once; a running one
    /// has its work stopped, then ends `cancelled`.
    pub async fn cancel_job(&self, id: JobId) -> Result<CancelOutcome, EngineError> {
        match self.inner.scheduler.send(Cancel(id)).await {
            Ok(outcome) => Ok(outcome?),
            Err(e) => Err(EngineError::Stopped(e.to_string())),
        }
    }

    /// Resolves with the job once it has ended (completed, failed, cancelled).
    pub async fn wait_for(&self, id: JobId) -> Result<Job, EngineError> {
        let mut rx = self.inner.shared.waiters.register(id);
        let job = self.get_job(id).await?;
        if job.status.is_terminal() {
            self.inner.shared.waiters.forget(id);
            return Ok(job);
        }
        let stopped = || EngineError::Stopped(format!("stopped while waiting for job {id}"));
        if self.inner.shared.store.subscribe().is_none() {
            return rx.await.map_err(|_| stopped());
        }
        // A store several processes share: another node may run the job and
        // end it there, where this process's waiters never hear of it.
        let mut look = tokio::time::interval(CLUSTER_WAIT_POLL);
        loop {
            tokio::select! {
                ended = &mut rx => return ended.map_err(|_| stopped()),
                _ = look.tick() => {
                    let job = self.get_job(id).await?;
                    if job.status.is_terminal() {
                        self.inner.shared.waiters.forget(id);
                        return Ok(job);
                    }
                }
            }
        }
    }

    /// Follows job `id`'s events: those after `after` (0: from the first)
    /// that this process still holds, then the live ones; the stream ends
    /// after the job's terminal event (also when the job ends on another
    /// node, or ended before this process held its events: then the
    /// terminal event is made from the job record), or when the engine
    /// stops. [`EngineError::NotFound`](EngineError) for an unknown job.
    pub async fn events(&self, id: JobId, after: u64) -> Result<EventStream, EngineError> {
        self.events_of(id, after, None).await
    }

    /// [`events`](Self::events), with the job's record when the caller
    /// just read it. The store is read only when this process emitted
    /// nothing of the job yet (to know it exists, and whether it ended
    /// before this process held its events): a follower of a job running
    /// here costs no read.
    pub(crate) async fn events_of(
        &self,
        id: JobId,
        after: u64,
        record: Option<Job>,
    ) -> Result<EventStream, EngineError> {
        let sub = self.inner.shared.events.subscribe(id, after);
        if !sub.job_ended() {
            let job = match record {
                Some(job) => Some(job),
                None if !sub.has_events() => Some(self.get_job(id).await?),
                None => None,
            };
            if let Some(job) = job.filter(|j| j.status.is_terminal()) {
                sub.emit_end(&job, terminal_event(&job));
            }
        }
        // With a store only this process holds, every end goes through
        // `job_ended`, which puts the terminal event in the log before
        // waking anyone: the log alone ends the stream. A shared store's
        // job may end on another node, heard through the waiters.
        let end = if self.inner.shared.store.subscribe().is_some() && !sub.job_ended() {
            let engine = self.clone();
            let end: super::events::JobEnd = Box::pin(async move { engine.wait_for(id).await });
            Some(end)
        } else {
            None
        };
        Ok(EventStream::new(sub, end))
    }

    /// Creates or replaces a recurring schedule (durable); it fires once per
    /// period across restarts, skipping firings missed while down unless its
    /// `catch_up` is set.
    pub async fn put_schedule(&self, schedule: Schedule) -> Result<(), EngineError> {
        self.check_worker(&schedule.worker_name)?;
        let at = schedule.next_fire_at;
        self.inner.shared.store.put_schedule(schedule).await?;
        let _ = self.inner.scheduler.send(ScheduleAt(at)).await;
        Ok(())
    }

    /// Removes a schedule; returns whether it existed.
    pub async fn delete_schedule(&self, id: &str) -> Result<bool, EngineError> {
        Ok(self.inner.shared.store.delete_schedule(id).await?)
    }

    /// All schedules, by id.
    pub async fn list_schedules(&self) -> Result<Vec<Schedule>, EngineError> {
        Ok(self.inner.shared.store.list_schedules().await?)
    }

    /// Stops claiming jobs of `target` (durable across restarts); running
    /// jobs finish.
    pub async fn pause(&self, target: PauseTarget) -> Result<PauseState, EngineError> {
        Ok(self.inner.shared.store.set_paused(target, true).await?)
    }

    /// The approvals waiting for a person's decision, oldest job first.
    pub async fn pending_approvals(&self) -> Result<Vec<Approval>, EngineError> {
        Ok(self.inner.shared.store.pending_approvals().await?)
    }

    /// Decides approval `id`: durable before it returns; when it was its
    /// job's last pending approval, the job is queued again and the
    /// scheduler woken, so the task resumes at once with the decision.
    /// Of two decisions racing, one is applied and the other answers
    /// [`DecideOutcome::AlreadyDecided`].
    pub async fn decide_approval(
        &self,
        id: ApprovalId,
        decision: Decision,
    ) -> Result<DecideOutcome, EngineError> {
        let outcome = self
            .inner
            .shared
            .store
            .decide_approval(id, decision)
            .await?;
        if let DecideOutcome::Decided { approval, job } = &outcome {
            self.inner.shared.stats.decided(approval.state);
            let event = super::scheduler::approval_decided(approval);
            let at = crate::events::decision_seq(job, &approval.id);
            self.inner.shared.events.emit_at(job.id, Some(at), event);
            tracing::info!(approval = %approval.id, job = %job.id, decision = %approval.state, "approval decided");
            if job.status == crate::job::JobStatus::Queued {
                self.wake();
            }
        }
        Ok(outcome)
    }

    /// Resumes claiming for `target`.
    pub async fn resume(&self, target: PauseTarget) -> Result<PauseState, EngineError> {
        let state = self.inner.shared.store.set_paused(target, false).await?;
        self.wake();
        Ok(state)
    }

    /// Stops claiming, lets running jobs finish within the configured drain
    /// timeout, queues the rest again, then stops every actor.
    pub async fn shutdown(&self) -> Result<DrainReport, EngineError> {
        let timeout = self.inner.shared.config.drain_timeout;
        self.shutdown_within(timeout).await
    }

    /// [`shutdown`](Self::shutdown) with an explicit drain deadline.
    pub async fn shutdown_within(&self, timeout: Duration) -> Result<DrainReport, EngineError> {
        let report = self
            .inner
            .scheduler
            .send(Drain(timeout))
            .await
            .map_err(|e| EngineError::Stopped(e.to_string()))?;
        self.inner.tree.shutdown().await;
        self.inner.arbiters.stop_all();
        self.inner.shared.events.close();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn the_engine_handle_can_cross_threads() {
        assert_send_sync::<WorkerEngine>();
    }
}
