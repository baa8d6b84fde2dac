//! The Scheduler actor: claims ready jobs and runs them on worker actors.
//!
//! Owns: the jobs this process is running (with abort handles), the busy
//! count per worker, the one timer that wakes it for delayed jobs, retries,
//! schedules and pruning.
//!
//! Takes: [`Wake`] (new work may be ready), [`Cancel`], [`Drain`], and its
//! own internal messages: [`Ready`] (recovery done), [`Claimed`] (a claim
//! pass ended), [`Finished`] (a worker actor answered), [`Recorded`] (a job's
//! outcome is durable), [`AbortJob`], [`AbortAll`]. With a store several
//! processes share, it also hears the store's events (`listen`): another
//! node's enqueue is a [`Wake`], its cancel of a job running here an
//! [`AbortJob`].
//!
//! The store is the source of truth. At most one claim pass is in flight;
//! wakes that arrive meanwhile fold into one more pass, so under load claims
//! are batched (one durable write for many jobs) and under light load a job
//! is claimed as soon as it is enqueued. Store calls run as futures next to
//! the mailbox and report back by message, so the actor never blocks on I/O.
//!
//! On every start, including a restart after a crash of this actor, the
//! running jobs in the store go back to `queued` before anything is claimed:
//! their outcome would otherwise never be recorded. A job interrupted so may
//! run twice; its completion is recorded once (the store checks the attempt).

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::AbortHandle;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use troupe_actors::{
    Actor, ActorRef, CallError, Context, FailedAttempt, Handler, Message, Reply, RetryDecision,
    RetryPolicy,
};

use crate::events::TaskEventKind;
use crate::job::{Job, JobId, JobStatus};
use crate::store::{
    CancelOutcome, ClaimRequest, FailAction, ListQuery, Outcome, StoreError, StoreEvent,
};

use super::runner::{RunJob, RunOutcome};
use super::shared::EngineShared;
use super::worker::WorkerError;

/// How long a drain waits for aborted jobs to report back.
const ABORT_GRACE: Duration = Duration::from_secs(5);

/// While a backlog waits, a claim pass waits at most this long for a quarter
/// of the capacity to come free, so that one durable claim takes many jobs
/// instead of one per finished job.
const CLAIM_COALESCE: Duration = Duration::from_millis(1);

/// How soon the scheduler looks again at a worker whose actor is being
/// recycled (its restart takes microseconds; nothing tells the scheduler).
const RECYCLE_RECHECK: Duration = Duration::from_millis(2);

/// How much past a job's timeout the scheduler waits for the worker's
/// answer before its watchdog gives up on it.
const WATCHDOG_GRACE: Duration = Duration::from_secs(1);

/// The shortest wait before a job that waited out an outage goes again, so
/// a provider that says "retry now" while it is down is not called in a
/// tight loop.
const MIN_OUTAGE_WAIT: Duration = Duration::from_millis(250);

/// After a store error, try again this much later.
const STORE_RETRY: Duration = Duration::from_secs(1);

struct RunningJob {
    worker: String,
    /// Which attempt runs: a job this node lost (its lease ran out while it
    /// was slow) can come back here as a later attempt before the earlier
    /// one has answered, and only the later one counts.
    attempt: u32,
    /// The job's `maxAttempts`: with the engine's backoff, its retry policy.
    max_attempts: u32,
    /// Outages the job has waited out so far (attempts not counted).
    outages: u32,
    /// Attempts the job parked awaiting approval (not counted either).
    parked: u32,
    abort: AbortHandle,
    /// Aborted by a shutdown, not a cancel: leave it for recovery.
    shutdown: bool,
    /// When the attempt was sent to the worker (run-time metric).
    started: std::time::Instant,
}

pub(crate) struct Scheduler {
    shared: Arc<EngineShared>,
    running: HashMap<JobId, RunningJob>,
    busy: HashMap<String, usize>,
    /// Store writes of outcomes still in flight (a drain waits for them).
    recording: usize,
    claiming: bool,
    wake_again: bool,
    /// The last claim pass filled its limit: more jobs are ready.
    backlog: bool,
    /// Since when a claim pass is being held back to batch it.
    deferred_since: Option<Instant>,
    ready: bool,
    draining: bool,
    /// Jobs that were running when the drain began or were claimed by a pass
    /// already in flight then.
    drained: usize,
    drain_waiters: Vec<oneshot::Sender<usize>>,
    timer: Rc<Timer>,
    next_prune: Instant,
    next_schedule: Option<DateTime<Utc>>,
    /// When the earliest pending approval deadline passes (denied by
    /// itself), as last read from the store; `Some(past)` to look at once
    /// (at start, and again at every retention pass, for the deadlines of
    /// jobs other nodes parked).
    next_deadline: Option<DateTime<Utc>>,
}

impl Scheduler {
    pub(crate) fn new(shared: Arc<EngineShared>) -> Self {
        let next_prune = Instant::now() + shared.config.prune_every;
        Self {
            shared,
            running: HashMap::new(),
            busy: HashMap::new(),
            recording: 0,
            claiming: false,
            wake_again: false,
            backlog: false,
            deferred_since: None,
            ready: false,
            draining: false,
            drained: 0,
            drain_waiters: Vec::new(),
            timer: Rc::new(Timer::default()),
            next_prune,
            next_schedule: None,
            next_deadline: Some(DateTime::<Utc>::MIN_UTC),
        }
    }

    /// Starts a claim pass if there is room and none is in flight.
    fn pump(&mut self, ctx: &mut Context<'_, Self>) {
        if !self.ready || self.draining {
            return;
        }
        if self.claiming {
            self.wake_again = true;
            return;
        }
        self.wake_again = false;
        self.prune_if_due(ctx);
        let (free, registered) = self.free_capacity();
        let fire_schedules = self.next_schedule.is_some_and(|at| at <= Utc::now());
        let expire_approvals = self.next_deadline.is_some_and(|at| at <= Utc::now());
        if free.is_empty() && !fire_schedules && !expire_approvals {
            return;
        }
        if !fire_schedules && !expire_approvals && self.defer_small_claim(&free) {
            return;
        }
        self.deferred_since = None;
        self.claiming = true;
        let limit = free
            .values()
            .sum::<usize>()
            .min(self.shared.config.claim_batch);
        let pass = ClaimPass {
            free,
            registered,
            limit,
            fire_schedules,
            expire_approvals,
        };
        let shared = self.shared.clone();
        let me = ctx.address();
        ctx.spawn(async move {
            let _ = me.send(pass.run(&shared).await).await;
        });
    }

    /// Prunes ended jobs past retention, in the background, when it is time.
    fn prune_if_due(&mut self, ctx: &mut Context<'_, Self>) {
        if Instant::now() < self.next_prune {
            return;
        }
        self.next_prune = Instant::now() + self.shared.config.prune_every;
        // Look again at the approval deadlines: another node's parked jobs.
        self.next_deadline = Some(DateTime::<Utc>::MIN_UTC);
        if self.timer.take_forward_jump() {
            tracing::warn!(
                "the wall clock jumped forward since the last retention pass; skipping this one"
            );
            return;
        }
        let shared = self.shared.clone();
        ctx.spawn(async move {
            match shared
                .store
                .prune(&shared.config.retention, Utc::now())
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "pruned ended jobs past retention"),
                Err(e) => tracing::error!(error = %e, "pruning ended jobs failed"),
            }
        });
    }

    /// With a backlog, a claim for only a few free slots waits up to
    /// [`CLAIM_COALESCE`] for more slots to free up, so one pass claims them
    /// together; true while it waits (the timer wakes the scheduler).
    fn defer_small_claim(&mut self, free: &BTreeMap<String, usize>) -> bool {
        if !self.backlog {
            return false;
        }
        let free_total: usize = free.values().sum();
        let threshold = (self.capacity() / 4).clamp(1, self.shared.config.claim_batch);
        if free_total >= threshold {
            return false;
        }
        let since = *self.deferred_since.get_or_insert_with(Instant::now);
        if since.elapsed() < CLAIM_COALESCE {
            self.timer.at(since + CLAIM_COALESCE);
            return true;
        }
        false
    }

    /// The concurrency of all workers together.
    fn capacity(&self) -> usize {
        let workers = self.shared.read_workers();
        workers.values().map(|e| e.registration.concurrency).sum()
    }

    /// Free slots per registered worker (only those with room) and the
    /// names of all registered workers.
    fn free_capacity(&self) -> (BTreeMap<String, usize>, Vec<String>) {
        let workers = self.shared.read_workers();
        let mut free = BTreeMap::new();
        let mut names = Vec::with_capacity(workers.len());
        for (name, entry) in workers.iter() {
            names.push(name.clone());
            if entry.actor.is_none() {
                continue;
            }
            let busy = self.busy.get(name).copied().unwrap_or(0);
            if entry
                .registration
                .recycling
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                // Its actor is letting its jobs finish before a restart, or
                // restarting: look again shortly (the restart clears it).
                if busy == 0 {
                    self.timer.at(Instant::now() + RECYCLE_RECHECK);
                }
                continue;
            }
            let room = entry.registration.concurrency.saturating_sub(busy);
            if room > 0 {
                free.insert(name.clone(), room);
            }
        }
        (free, names)
    }

    fn dispatch(&mut self, job: Job, ctx: &mut Context<'_, Self>) {
        let actor = {
            let workers = self.shared.read_workers();
            workers.get(&job.worker_name).and_then(|e| e.actor.clone())
        };
        let Some(actor) = actor else {
            // Claimed for a worker that has no actor: hand it back for a retry.
            let reason = format!("worker `{}` is not running", job.worker_name);
            self.record(
                ctx,
                job.id,
                async_fail(&self.shared, job.id, job.attempt, reason, FailAction::Final),
            );
            return;
        };
        let (abort, registration) = AbortHandle::new_pair();
        let earlier = self.running.insert(
            job.id,
            RunningJob {
                worker: job.worker_name.clone(),
                attempt: job.attempt,
                max_attempts: job.max_attempts,
                outages: job.outages,
                parked: job.parked,
                abort,
                shutdown: false,
                started: std::time::Instant::now(),
            },
        );
        if let Some(earlier) = earlier {
            // Its lease ran out while it ran here (a freeze, a slow store),
            // another node requeued it, and this node claimed it again: the
            // earlier attempt's writes are fenced, so it only holds a slot.
            tracing::warn!(job = %job.id, worker = %job.worker_name, earlier = earlier.attempt,
                attempt = job.attempt, "job claimed again here while an earlier attempt still ran; stopping that attempt");
            earlier.abort.abort();
            if let Some(busy) = self.busy.get_mut(&earlier.worker) {
                *busy = busy.saturating_sub(1);
            }
        }
        self.shared
            .stats
            .attempt_started(&job.worker_name, job.run_at, Utc::now());
        *self.busy.entry(job.worker_name.clone()).or_default() += 1;
        let (id, attempt) = (job.id, job.attempt);
        tracing::debug!(job = %id, worker = %job.worker_name, attempt, "job started");
        self.shared
            .events
            .emit(id, TaskEventKind::AttemptStarted { attempt });
        let msg = RunJob {
            job_id: job.id,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            args: job.args,
            ctx: job.ctx,
            approvals: job.approvals,
            timeout: job.timeout_ms.map(Duration::from_millis),
            abort: registration,
        };
        let me = ctx.address();
        // The watchdog: the worker's actor enforces the job's timeout itself;
        // if it does not even answer by then (its thread is blocked), the
        // attempt fails and the actor is restarted.
        let watch = msg.timeout.map(|t| t + WATCHDOG_GRACE);
        let shared = self.shared.clone();
        let worker_name = job.worker_name.clone();
        ctx.spawn(async move {
            let outcome = match watch {
                None => actor.send(msg).await,
                Some(limit) => match tokio::time::timeout(limit, actor.send(msg)).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        tracing::error!(job = %id, worker = %worker_name, ?limit, "worker stopped answering; restarting its actor");
                        if let Some(sup) = shared.workers_sup.get() {
                            let reason = format!("watchdog: no answer within {limit:?}");
                            let _ = sup.restart_child(&format!("worker:{worker_name}"), reason).await;
                        }
                        Err(CallError::Timeout {
                            actor: format!("worker:{worker_name}"),
                            timeout: limit,
                        })
                    }
                },
            };
            let _ = me.send(Finished { id, attempt, outcome }).await;
        });
    }

    /// Runs a store write of a job's outcome (again, while the store's
    /// error is a passing one: see [`write_outcome`]), then reports it back.
    fn record(&mut self, ctx: &mut Context<'_, Self>, id: JobId, write: OutcomeWrite) {
        self.recording += 1;
        let shared = self.shared.clone();
        let me = ctx.address();
        ctx.spawn(async move {
            let mut requeued_at = None;
            let mut deadline = None;
            match write_outcome(id, &write).await {
                Ok(Outcome::Applied(job)) if job.status.is_terminal() => {
                    tracing::debug!(job = %job.id, worker = %job.worker_name, status = %job.status, attempt = job.attempt, "job ended");
                    shared.stats.ended(&job.worker_name, job.status);
                    shared.job_ended(&job);
                }
                Ok(Outcome::Applied(job)) if job.status == JobStatus::Waiting => {
                    tracing::info!(job = %job.id, worker = %job.worker_name, approvals = crate::store::pending_of(&job).count(), "job parked awaiting approval");
                    shared.stats.parked(&job.worker_name);
                    for a in crate::store::pending_of(&job) {
                        shared.events.emit(job.id, approval_requested(a));
                    }
                    deadline = Some(job.run_at);
                }
                Ok(Outcome::Applied(job)) => {
                    shared.stats.retried(&job.worker_name);
                    shared.events.emit(job.id, retry_event(&job));
                    requeued_at = Some(job.run_at);
                }
                Ok(Outcome::Stale { status, attempt }) => {
                    tracing::debug!(job = %id, %status, attempt, "outcome not recorded: the job has moved on");
                }
                Err(e) => tracing::error!(job = %id, error = %e, "recording a job outcome failed"),
            }
            let _ = me.send(Recorded { requeued_at, deadline }).await;
        });
    }

    fn check_drained(&mut self) {
        if self.draining && self.running.is_empty() && self.recording == 0 && !self.claiming {
            for tx in self.drain_waiters.drain(..) {
                let _ = tx.send(self.drained);
            }
        }
    }

    /// What becomes of a job whose attempt failed in a way worth retrying:
    /// the engine's backoff and the job's `maxAttempts` make its
    /// [`RetryPolicy`], whose decision queues it again no earlier than the
    /// failure's `retry_after` (a provider's `Retry-After`, a breaker's
    /// cooldown), or fails it once its attempts are spent.
    fn retry_action(
        &self,
        attempt: u32,
        max_attempts: u32,
        retry_after: Option<Duration>,
    ) -> FailAction {
        let policy = RetryPolicy::new(self.shared.config.retry.clone(), max_attempts);
        let failed = FailedAttempt {
            attempt,
            retry_after,
            elapsed: Duration::ZERO,
        };
        match policy.decide(&failed) {
            RetryDecision::RetryAfter(wait) => FailAction::RetryAt(after(Utc::now(), wait)),
            RetryDecision::GiveUp(_) => FailAction::Final,
        }
    }

    /// An attempt that waited out an outage: queued again when the outage
    /// says it may be over (`retry_after`: the provider's wait, the open
    /// circuit's remaining cooldown; at least [`MIN_OUTAGE_WAIT`]), else
    /// after the engine's backoff for the outages so far; not counted
    /// against `maxAttempts` while within the outage allowance. Following
    /// the breaker's cooldown rather than a growing backoff means tasks go
    /// again within one cooldown of the provider's return.
    fn outage_action(&self, outages: u32, retry_after: Option<Duration>) -> FailAction {
        let wait = match retry_after {
            Some(wait) => wait.max(MIN_OUTAGE_WAIT),
            None => self
                .shared
                .config
                .retry
                .delay_for_attempt(outages.saturating_add(1)),
        };
        FailAction::Postpone {
            at: after(Utc::now(), wait),
            allowance: self.shared.config.outage_allowance,
        }
    }
}

/// The event of a job queued again after a failed attempt.
fn retry_event(job: &Job) -> TaskEventKind {
    let error = job.errors.last().map(|e| e.message.clone());
    TaskEventKind::RetryScheduled {
        attempt: job.attempt,
        run_at: job.run_at,
        error: error.or_else(|| job.error.clone()).unwrap_or_default(),
    }
}

/// `now + wait`, or the last representable time when that is out of
/// range: a worker may ask for any wait, and a panic here would take the
/// scheduler down.
fn after(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(wait)
        .ok()
        .and_then(|wait| now.checked_add_signed(wait))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A store write of a job's outcome, as a function so it can be made again.
type OutcomeWrite =
    Box<dyn Fn() -> futures::future::LocalBoxFuture<'static, Result<Outcome, StoreError>>>;

/// How long an outcome write is tried again while the store's errors pass.
const RECORD_PATIENCE: Duration = Duration::from_secs(600);

/// Makes `write` until it answers, or fails in a way that does not pass
/// (the store failed, the job is gone), or [`RECORD_PATIENCE`] is spent. A
/// lost connection (a database restarting, a connection killed) must not
/// leave the job `running` on a node that has finished it: a shared store
/// renews this node's leases while the node lives, so no one else would
/// ever take the job back. Outcomes are fenced by attempt, so a write that
/// did commit before its answer was lost comes back `Stale`, harmlessly.
async fn write_outcome(id: JobId, write: &OutcomeWrite) -> Result<Outcome, StoreError> {
    let give_up = Instant::now() + RECORD_PATIENCE;
    let mut wait = Duration::from_millis(50);
    loop {
        match write().await {
            Err(e) if e.is_transient() && Instant::now() < give_up => {
                tracing::warn!(job = %id, error = %e, retry_in_ms = wait.as_millis() as u64, "recording a job outcome failed; trying again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            answer => return answer,
        }
    }
}

fn async_fail(
    shared: &Arc<EngineShared>,
    id: JobId,
    attempt: u32,
    error: String,
    action: FailAction,
) -> OutcomeWrite {
    let shared = shared.clone();
    Box::new(move || {
        let (shared, error) = (shared.clone(), error.clone());
        Box::pin(async move { shared.store.fail(id, attempt, error, action).await })
    })
}

/// Fails every queued job whose worker is not registered, naming it, so that
/// no job waits forever for a worker that a config change removed. Not on
/// a store other processes share (a cluster): another node may register
/// the worker this one lacks (nodes of other versions, a rolling deploy),
/// and its jobs are not this node's to fail.
pub(crate) async fn discard_orphans(shared: &Arc<EngineShared>) {
    if shared.store.subscribe().is_some() {
        return;
    }
    let registered: BTreeSet<String> = {
        let workers = shared.read_workers();
        workers.keys().cloned().collect()
    };
    let counts = match shared.store.counts().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "counting jobs failed");
            return;
        }
    };
    for (worker, by_status) in counts.by_worker {
        if registered.contains(&worker)
            || by_status.get(&JobStatus::Queued).copied().unwrap_or(0) == 0
        {
            continue;
        }
        let reason = format!("worker `{worker}` is not registered");
        let mut cursor = None;
        loop {
            let query = ListQuery {
                status: Some(JobStatus::Queued),
                worker: Some(worker.clone()),
                limit: 500,
                cursor,
            };
            let page = match shared.store.list_jobs(&query).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, %worker, "listing orphaned jobs failed");
                    break;
                }
            };
            for job in page.jobs {
                match shared.store.discard(job.id, reason.clone()).await {
                    Ok(Outcome::Applied(job)) => {
                        tracing::warn!(job = %job.id, %worker, "failed a queued job: its worker is not registered");
                        shared.job_ended(&job);
                    }
                    Ok(Outcome::Stale { .. }) => {}
                    Err(e) => {
                        tracing::error!(job = %job.id, error = %e, "failing an orphaned job failed")
                    }
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
}

fn instant_at(at: DateTime<Utc>) -> Instant {
    let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    Instant::now() + wait
}

impl Actor for Scheduler {
    fn started(&mut self, ctx: &mut Context<'_, Self>) {
        self.timer = Rc::new(Timer::default());
        let timer = self.timer.clone();
        let me = ctx.address();
        ctx.spawn(async move { timer.run(me).await });

        if let Some(events) = self.shared.store.subscribe() {
            ctx.spawn(listen(events, self.shared.clone(), ctx.address()));
        }

        let shared = self.shared.clone();
        let me = ctx.address();
        ctx.spawn(async move {
            match shared.store.recover(Utc::now()).await {
                Ok(r) if r.requeued.is_empty() && r.cancelled.is_empty() => {}
                Ok(r) => tracing::warn!(
                    requeued = r.requeued.len(),
                    cancelled = r.cancelled.len(),
                    "recovered jobs left running by a previous run"
                ),
                Err(e) => tracing::error!(error = %e, "recovering running jobs failed"),
            }
            discard_orphans(&shared).await;
            let next_schedule = shared.store.next_schedule_fire().await.ok().flatten();
            let _ = me.send(Ready { next_schedule }).await;
        });
    }
}

/// Acts on what other processes sharing the store did (a cluster): work
/// they enqueued or requeued wakes this scheduler, and so does a schedule
/// they stored (its first fire time is read again on every wake-up, the
/// store's polls included, so a schedule another node added fires here
/// too); a cancel of a job that runs here aborts it. Ends with the
/// scheduler.
async fn listen(
    mut events: tokio::sync::broadcast::Receiver<StoreEvent>,
    shared: Arc<EngineShared>,
    me: ActorRef<Scheduler>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let sent = match events.recv().await {
            Ok(StoreEvent::Wake) | Err(RecvError::Lagged(_)) => {
                if let Ok(Some(at)) = shared.store.next_schedule_fire().await {
                    if me.send(ScheduleAt(at)).await.is_err() {
                        return;
                    }
                }
                me.send(Wake).await
            }
            Ok(StoreEvent::CancelRequested(id)) => me.send(AbortJob(id)).await,
            Err(RecvError::Closed) => return,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// New work may be ready (an enqueue, a resume, the timer).
pub(crate) struct Wake;
impl Message for Wake {
    type Result = ();
}
impl Handler<Wake> for Scheduler {
    fn handle(&mut self, _: Wake, ctx: &mut Context<'_, Self>) -> Reply<()> {
        self.pump(ctx);
        Reply::Ready(())
    }
}

/// A schedule was added or changed: fire it no later than this.
pub(crate) struct ScheduleAt(pub(crate) DateTime<Utc>);
impl Message for ScheduleAt {
    type Result = ();
}
impl Handler<ScheduleAt> for Scheduler {
    fn handle(&mut self, ScheduleAt(at): ScheduleAt, _: &mut Context<'_, Self>) -> Reply<()> {
        if self.next_schedule.is_none_or(|next| at < next) {
            self.next_schedule = Some(at);
        }
        self.timer.at(instant_at(at));
        Reply::Ready(())
    }
}

/// Recovery is done; claiming may start.
pub(crate) struct Ready {
    next_schedule: Option<DateTime<Utc>>,
}
impl Message for Ready {
    type Result = ();
}
impl Handler<Ready> for Scheduler {
    fn handle(&mut self, msg: Ready, ctx: &mut Context<'_, Self>) -> Reply<()> {
        self.ready = true;
        self.next_schedule = msg.next_schedule;
        if let Some(at) = self.next_schedule {
            self.timer.at(instant_at(at));
        }
        self.timer.at(self.next_prune);
        self.pump(ctx);
        Reply::Ready(())
    }
}

/// One claim pass, run off the scheduler's mailbox: fire due schedules (if
/// asked), claim up to `limit` jobs for the workers with free slots, and
/// find when to wake next.
struct ClaimPass {
    free: BTreeMap<String, usize>,
    registered: Vec<String>,
    limit: usize,
    fire_schedules: bool,
    /// Deny the approvals past their deadline first.
    expire_approvals: bool,
}

impl ClaimPass {
    async fn run(self, shared: &Arc<EngineShared>) -> Claimed {
        let now = Utc::now();
        let mut next_schedule = None;
        if self.fire_schedules {
            match shared.store.fire_due_schedules(now).await {
                Ok(fired) => {
                    for f in &fired {
                        tracing::info!(schedule = %f.schedule.id, jobs = f.jobs.len(), "schedule fired");
                    }
                    if !fired.is_empty() {
                        discard_orphans(shared).await;
                    }
                }
                Err(e) => tracing::error!(error = %e, "firing due schedules failed"),
            }
            next_schedule = Some(shared.store.next_schedule_fire().await.ok().flatten());
        }
        let mut next_deadline = None;
        if self.expire_approvals {
            match shared.store.expire_approvals(now).await {
                Ok(expired) => {
                    for job in &expired.jobs {
                        for a in job.approvals.iter().filter(|a| {
                            a.state == crate::job::ApprovalState::Expired
                                && a.decided_at == Some(job.updated_at)
                        }) {
                            shared.stats.decided(crate::job::ApprovalState::Expired);
                            let at = crate::events::decision_seq(job, &a.id);
                            shared.events.emit_at(job.id, Some(at), approval_decided(a));
                        }
                        tracing::info!(job = %job.id, worker = %job.worker_name, "approval deadline passed: denied by itself");
                    }
                    next_deadline = Some(expired.next_deadline);
                }
                Err(e) => {
                    tracing::error!(error = %e, "denying approvals past their deadline failed")
                }
            }
        }
        let jobs = if self.free.is_empty() {
            Ok(Vec::new())
        } else {
            let request = ClaimRequest {
                now,
                limit: self.limit,
                per_worker: Some(self.free),
            };
            shared.store.claim(&request).await
        };
        let next_wake = shared
            .store
            .next_wake(Some(&self.registered))
            .await
            .ok()
            .flatten();
        Claimed {
            jobs,
            limit: self.limit,
            next_wake,
            next_schedule,
            next_deadline,
        }
    }
}

/// A claim pass ended.
pub(crate) struct Claimed {
    jobs: Result<Vec<Job>, StoreError>,
    limit: usize,
    next_wake: Option<DateTime<Utc>>,
    /// `Some` when the pass fired schedules: the new next fire time.
    next_schedule: Option<Option<DateTime<Utc>>>,
    /// `Some` when the pass denied approvals past their deadline: the next
    /// pending deadline.
    next_deadline: Option<Option<DateTime<Utc>>>,
}
impl Message for Claimed {
    type Result = ();
}
impl Handler<Claimed> for Scheduler {
    fn handle(&mut self, msg: Claimed, ctx: &mut Context<'_, Self>) -> Reply<()> {
        self.claiming = false;
        if let Some(next) = msg.next_schedule {
            self.next_schedule = next;
        }
        if let Some(next) = msg.next_deadline {
            self.next_deadline = next;
        }
        if let Some(at) = self.next_deadline {
            self.timer.at(instant_at(at));
        }
        match msg.jobs {
            Ok(jobs) => {
                self.backlog = msg.limit > 0 && jobs.len() >= msg.limit;
                if self.backlog {
                    self.wake_again = true;
                }
                if self.draining {
                    // Claimed by a pass that began before the drain: run them.
                    self.drained += jobs.len();
                }
                for job in jobs {
                    self.dispatch(job, ctx);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "claiming jobs failed; trying again shortly");
                self.timer.at(Instant::now() + STORE_RETRY);
            }
        }
        if let Some(at) = msg.next_wake {
            self.timer.at(instant_at(at));
        }
        if let Some(at) = self.next_schedule {
            self.timer.at(instant_at(at));
        }
        self.timer.at(self.next_prune);
        if self.wake_again {
            self.pump(ctx);
        }
        self.check_drained();
        Reply::Ready(())
    }
}

/// A worker actor answered for one attempt.
pub(crate) struct Finished {
    id: JobId,
    attempt: u32,
    outcome: Result<RunOutcome, CallError>,
}
impl Message for Finished {
    type Result = ();
}
impl Handler<Finished> for Scheduler {
    fn handle(&mut self, msg: Finished, ctx: &mut Context<'_, Self>) -> Reply<()> {
        // An attempt replaced by a later one of the same job (see
        // `dispatch`) answers for nothing.
        if self.running.get(&msg.id).map(|r| r.attempt) != Some(msg.attempt) {
            return Reply::Ready(());
        }
        let Some(run) = self.running.remove(&msg.id) else {
            return Reply::Ready(());
        };
        self.shared
            .stats
            .attempt_finished(&run.worker, run.started.elapsed());
        if let Some(busy) = self.busy.get_mut(&run.worker) {
            *busy = busy.saturating_sub(1);
        }
        let (id, attempt) = (msg.id, msg.attempt);
        let max_attempts = run.max_attempts;
        // Attempts that waited out an outage, or parked awaiting approval,
        // do not count against maxAttempts.
        let counted = attempt
            .saturating_sub(run.outages)
            .saturating_sub(run.parked);
        let shared = self.shared.clone();
        match msg.outcome {
            Ok(RunOutcome::Failed(WorkerError::Parked { approvals, .. })) => {
                self.record(
                    ctx,
                    id,
                    Box::new(move || {
                        let (shared, approvals) = (shared.clone(), approvals.clone());
                        Box::pin(async move { shared.store.park_job(id, attempt, approvals).await })
                    }),
                );
            }
            Ok(RunOutcome::Done(value)) => {
                self.record(
                    ctx,
                    id,
                    Box::new(move || {
                        let (shared, value) = (shared.clone(), value.clone());
                        Box::pin(async move { shared.store.complete(id, attempt, value).await })
                    }),
                );
            }
            Ok(RunOutcome::Failed(e)) => {
                let action = if e.is_outage() {
                    self.outage_action(run.outages, e.earliest_retry())
                } else if e.is_retryable() {
                    self.retry_action(counted, max_attempts, e.earliest_retry())
                } else {
                    FailAction::Final
                };
                tracing::debug!(job = %id, worker = %run.worker, attempt,
                    error = %crate::escape::Escaped(e.message()),
                    retry_after_ms = e.earliest_retry().map(|d| d.as_millis() as u64), ?action,
                    "attempt failed");
                let write = async_fail(&shared, id, attempt, e.to_string(), action);
                self.record(ctx, id, write);
            }
            Ok(RunOutcome::TimedOut(limit)) => {
                let error = format!("attempt {attempt} timed out after {} ms", limit.as_millis());
                // This and the failures below are not the worker's own
                // answer, so they name no wait.
                let action = self.retry_action(counted, max_attempts, None);
                let write = async_fail(&shared, id, attempt, error, action);
                self.record(ctx, id, write);
            }
            Ok(RunOutcome::Aborted) if run.shutdown => {}
            Ok(RunOutcome::Aborted) => {
                self.record(
                    ctx,
                    id,
                    Box::new(move || {
                        let shared = shared.clone();
                        Box::pin(async move { shared.store.ack_cancel(id, attempt).await })
                    }),
                );
            }
            Err(CallError::Timeout { timeout, .. }) => {
                let error = format!(
                    "worker `{}` stopped answering: no reply within {} ms (the job's timeout plus {} s); its actor was restarted",
                    run.worker,
                    timeout.as_millis(),
                    WATCHDOG_GRACE.as_secs()
                );
                let action = self.retry_action(counted, max_attempts, None);
                let write = async_fail(&shared, id, attempt, error, action);
                self.record(ctx, id, write);
            }
            Err(call) => {
                let error = format!(
                    "worker `{}` crashed while running the job ({call})",
                    run.worker
                );
                let action = self.retry_action(counted, max_attempts, None);
                let write = async_fail(&shared, id, attempt, error, action);
                self.record(ctx, id, write);
            }
        }
        self.check_drained();
        self.pump(ctx);
        Reply::Ready(())
    }
}

/// A job's outcome was written.
pub(crate) struct Recorded {
    requeued_at: Option<DateTime<Utc>>,
    /// A job parked: its `runAt`, the earliest deadline of its approvals.
    deadline: Option<DateTime<Utc>>,
}
impl Message for Recorded {
    type Result = ();
}
impl Handler<Recorded> for Scheduler {
    fn handle(&mut self, msg: Recorded, _: &mut Context<'_, Self>) -> Reply<()> {
        self.recording = self.recording.saturating_sub(1);
        if let Some(at) = msg.requeued_at {
            self.timer.at(instant_at(at));
        }
        if let Some(at) = msg
            .deadline
            .filter(|at| *at < crate::job::rules::no_deadline())
        {
            self.next_deadline = Some(self.next_deadline.map_or(at, |next| next.min(at)));
            self.timer.at(instant_at(at));
        }
        self.check_drained();
        Reply::Ready(())
    }
}

/// Cancel a job: queued ones end at once, running ones are aborted.
pub(crate) struct Cancel(pub(crate) JobId);
impl Message for Cancel {
    type Result = Result<CancelOutcome, StoreError>;
}
impl Handler<Cancel> for Scheduler {
    fn handle(
        &mut self,
        Cancel(id): Cancel,
        ctx: &mut Context<'_, Self>,
    ) -> Reply<Result<CancelOutcome, StoreError>> {
        let shared = self.shared.clone();
        let me = ctx.address();
        Reply::future(async move {
            let outcome = shared.store.cancel(id).await?;
            match &outcome {
                CancelOutcome::Requested(_) => {
                    let _ = me.send(AbortJob(id)).await;
                }
                CancelOutcome::Cancelled(job) => shared.job_ended(job),
                CancelOutcome::AlreadyEnded(_) => {}
            }
            Ok(outcome)
        })
    }
}

/// Abort the running attempt of a job (after a cancel request).
pub(crate) struct AbortJob(JobId);
impl Message for AbortJob {
    type Result = ();
}
impl Handler<AbortJob> for Scheduler {
    fn handle(&mut self, AbortJob(id): AbortJob, _: &mut Context<'_, Self>) -> Reply<()> {
        if let Some(run) = self.running.get(&id) {
            run.abort.abort();
        }
        Reply::Ready(())
    }
}

/// Stop claiming, let running jobs finish within `timeout`, then abort the
/// rest and put them back to `queued`. Answers once nothing runs.
pub(crate) struct Drain(pub(crate) Duration);
impl Message for Drain {
    type Result = DrainReport;
}

/// What a drain did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Jobs running when the drain began (including any a claim in flight
    /// had just taken).
    pub running: usize,
    /// Of those, stopped at the deadline and queued again.
    pub requeued: usize,
}

impl Handler<Drain> for Scheduler {
    fn handle(&mut self, Drain(timeout): Drain, ctx: &mut Context<'_, Self>) -> Reply<DrainReport> {
        if !self.draining {
            self.draining = true;
            self.drained = self.running.len();
        }
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        self.check_drained();
        let me = ctx.address();
        let shared = self.shared.clone();
        Reply::future(async move {
            if let Ok(Ok(running)) = tokio::time::timeout(timeout, rx).await {
                return DrainReport {
                    running,
                    requeued: 0,
                };
            }
            let (requeued, done) = match me.send(AbortAll).await {
                Ok(pair) => pair,
                Err(_) => {
                    return DrainReport {
                        running: 0,
                        requeued: 0,
                    }
                }
            };
            let running = tokio::time::timeout(ABORT_GRACE, done)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(requeued);
            if let Err(e) = shared.store.recover(Utc::now()).await {
                tracing::error!(error = %e, "re-queueing jobs stopped by the shutdown failed");
            }
            DrainReport { running, requeued }
        })
    }
}

/// Abort every running job for a shutdown; answers how many and a receiver
/// that fires once they have all reported back.
pub(crate) struct AbortAll;
impl Message for AbortAll {
    type Result = (usize, oneshot::Receiver<usize>);
}
impl Handler<AbortAll> for Scheduler {
    fn handle(
        &mut self,
        _: AbortAll,
        _: &mut Context<'_, Self>,
    ) -> Reply<(usize, oneshot::Receiver<usize>)> {
        let n = self.running.len();
        for run in self.running.values_mut() {
            run.shutdown = true;
            run.abort.abort();
        }
        tracing::warn!(
            jobs = n,
            "drain deadline passed; stopping running jobs and queueing them again"
        );
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        self.check_drained();
        Reply::Ready((n, rx))
    }
}

/// The single timer of a scheduler instance: sleeps until the earliest
/// instant asked for, then sends a [`Wake`].
///
/// Its instants are monotonic, but what they stand for (a job's `runAt`, a
/// schedule's next fire) are wall-clock times, converted when the timer was
/// set. So while a timer is pending it also watches the wall clock, one
/// [`CLOCK_WATCH`] slice at a time: when the wall clock moved by more than
/// [`CLOCK_JUMP`] against the monotonic one (an NTP step, a resumed VM), it
/// wakes the scheduler at once, which plans again from the wall clock —
/// jobs that became due in the jump run now, not when the stale timer
/// fires — and it records a forward jump, which skips the next retention
/// pass (a clock set a year ahead by mistake must not prune a year of
/// jobs; the pass after it prunes by the clock as it then is).
#[derive(Default)]
struct Timer {
    next: Cell<Option<Instant>>,
    notify: Notify,
    /// A forward jump was seen since the last retention pass.
    jumped_forward: Cell<bool>,
}

/// How long the timer sleeps at most before it looks at the wall clock.
const CLOCK_WATCH: Duration = Duration::from_secs(1);

/// The drift between the wall clock and the monotonic one taken for a jump.
const CLOCK_JUMP: Duration = Duration::from_secs(2);

impl Timer {
    /// Wake no later than `when`.
    fn at(&self, when: Instant) {
        if self.next.get().is_none_or(|next| when < next) {
            self.next.set(Some(when));
            self.notify.notify_one();
        }
    }

    /// Whether a forward jump of the wall clock was seen since the last
    /// call (and forgets it).
    fn take_forward_jump(&self) -> bool {
        self.jumped_forward.replace(false)
    }

    async fn run(self: Rc<Self>, me: ActorRef<Scheduler>) {
        self.run_with(Utc::now, || async { me.send(Wake).await.is_ok() })
            .await;
    }

    /// The timer's loop, with the wall clock and the wake-up as arguments
    /// (tests give their own). Ends when `wake` says the scheduler is gone.
    async fn run_with<F, W>(&self, wall: fn() -> DateTime<Utc>, wake: W)
    where
        W: Fn() -> F,
        F: std::future::Future<Output = bool>,
    {
        let mut mark = (Instant::now(), wall());
        loop {
            let Some(at) = self.next.get() else {
                self.notify.notified().await;
                mark = (Instant::now(), wall());
                continue;
            };
            let slice = at.min(Instant::now() + CLOCK_WATCH);
            tokio::select! {
                _ = tokio::time::sleep_until(slice) => {
                    let jumped = self.clock_jumped(&mut mark, wall);
                    if slice < at && !jumped {
                        continue;
                    }
                    if slice == at && self.next.get() == Some(at) {
                        self.next.set(None);
                    }
                    if !wake().await {
                        return;
                    }
                }
                _ = self.notify.notified() => {}
            }
        }
    }

    /// Compares the wall clock's progress since `mark` with the monotonic
    /// clock's, moves `mark` on, and says whether it jumped.
    fn clock_jumped(
        &self,
        mark: &mut (Instant, DateTime<Utc>),
        wall: fn() -> DateTime<Utc>,
    ) -> bool {
        let (now, now_wall) = (Instant::now(), wall());
        let monotonic = now.saturating_duration_since(mark.0);
        let walled = now_wall - mark.1;
        *mark = (now, now_wall);
        let drift = walled - chrono::Duration::from_std(monotonic).unwrap_or(chrono::Duration::MAX);
        let limit = chrono::Duration::from_std(CLOCK_JUMP).unwrap_or(chrono::Duration::MAX);
        if drift.abs() <= limit {
            return false;
        }
        if drift > chrono::Duration::zero() {
            self.jumped_forward.set(true);
        }
        tracing::warn!(
            drift_ms = drift.num_milliseconds(),
            "the wall clock jumped; planning the jobs' wake-ups again"
        );
        true
    }
}

/// The event of an approval a parked task asks for.
pub(crate) fn approval_requested(a: &crate::job::Approval) -> TaskEventKind {
    TaskEventKind::ApprovalRequested {
        approval_id: a.id.to_string(),
        tool_call_id: a.call_id.clone(),
        tool: a.tool.clone(),
        arguments: a.arguments.clone(),
    }
}

/// The event of an approval decided (by a person, or by its deadline).
pub(crate) fn approval_decided(a: &crate::job::Approval) -> TaskEventKind {
    TaskEventKind::ApprovalDecided {
        approval_id: a.id.to_string(),
        approved: a.state == crate::job::ApprovalState::Approved,
        note: a.note.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    /// How far the test's wall clock is set from the real one, in seconds.
    static OFFSET: AtomicI64 = AtomicI64::new(0);

    fn wall() -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(OFFSET.load(Ordering::SeqCst))
    }

    #[test]
    fn a_jump_of_the_wall_clock_wakes_the_scheduler_at_once() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let timer = Rc::new(Timer::default());
            // A job due in an hour of wall time: the timer sleeps an hour.
            timer.at(Instant::now() + Duration::from_secs(3600));
            let (tx, mut woken) = tokio::sync::mpsc::unbounded_channel();
            let running = timer.clone();
            tokio::task::spawn_local(async move {
                running
                    .run_with(wall, || {
                        let tx = tx.clone();
                        async move { tx.send(()).is_ok() }
                    })
                    .await
            });
            // Let the timer take its first look at the clocks.
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            let deadline = Duration::from_secs(10);
            // The wall clock jumps forward by that hour (a resumed VM):
            // the scheduler is woken now, not in an hour.
            OFFSET.store(3600, Ordering::SeqCst);
            let woke = tokio::time::timeout(deadline, woken.recv()).await;
            assert!(
                matches!(woke, Ok(Some(()))),
                "not woken after a forward jump"
            );
            assert!(timer.take_forward_jump(), "a forward jump is recorded");
            assert!(!timer.take_forward_jump(), "and forgotten once taken");
            assert!(timer.next.get().is_some(), "the planned wake-up stays");
            // Back again (an NTP step backwards): woken too, not recorded.
            OFFSET.store(0, Ordering::SeqCst);
            let woke = tokio::time::timeout(deadline, woken.recv()).await;
            assert!(
                matches!(woke, Ok(Some(()))),
                "not woken after a backward jump"
            );
            assert!(!timer.take_forward_jump());
        });
    }
}
