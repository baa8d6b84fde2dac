//! The worker actor: runs one registered [`Worker`]'s jobs.
//!
//! Owns: the `Arc<dyn Worker>` (a fresh one per start when the worker was
//! registered with a factory) and a clone of the worker's heap account.
//! Takes: [`RunJob`], answered with a [`RunOutcome`] once the job's future
//! ends, times out or is aborted; [`JobEnded`], its own note that a job
//! ended, on which it stops itself (to be restarted fresh) when recycling is
//! due: after `recycle_after` jobs, or once its heap grew past
//! `recycle_above_memory` (see [`crate::alloc`]).
//!
//! Jobs run as reply futures, so several run at once and the mailbox keeps
//! flowing. A panic in `Worker::run` restarts this actor (troupe-actors
//! catches it); every job it was running then answers the scheduler with a
//! call error, which the scheduler records as a failed, retryable attempt.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{AbortRegistration, Abortable};
use serde_json::Value;
use tracing::Instrument;
use troupe_actors::{Actor, Context, Handler, Message, Reply};

use crate::alloc::Account;
use crate::job::{Approval, JobCtx, JobId};

use super::worker::{JobContext, Registration, Worker, WorkerError};

/// Hosts one worker.
pub(crate) struct WorkerActor {
    pub(crate) worker: Arc<dyn Worker>,
    /// The registered name (what logs and metrics show).
    name: String,
    /// Stop (and so be restarted fresh) after this many jobs, between jobs.
    pub(crate) recycle_after: Option<u64>,
    /// Stop, between jobs, once the account grew more than this many bytes
    /// since this instance started.
    recycle_above_memory: Option<u64>,
    /// The worker's heap account, current while its jobs are polled.
    account: Account,
    /// The least the account held since this instance started: growth is
    /// measured from here, so memory an earlier instance left behind (and
    /// that is freed late, or never) neither counts against this one nor
    /// makes it restart after every job.
    baseline: u64,
    /// Shared with the scheduler: recycling is due, give no new jobs.
    recycling: Arc<AtomicBool>,
    pub(crate) started: u64,
    pub(crate) in_flight: std::rc::Rc<std::cell::Cell<usize>>,
}

impl WorkerActor {
    /// An actor for one start of `registration`'s worker: a fresh worker
    /// when it was registered with a factory.
    pub(crate) fn new(registration: &Registration) -> Self {
        let account = registration.account.clone();
        // Taken before a restart builds its worker, so that worker's own
        // size counts (the first instance is built at registration).
        let baseline = account.live_bytes();
        let worker = registration.instance();
        if worker.name() != registration.name {
            tracing::warn!(
                worker = %registration.name,
                built = %worker.name(),
                "the worker's factory built a worker of another name; it runs as the registered one"
            );
        }
        Self {
            worker,
            name: registration.name.clone(),
            recycle_after: registration.recycle_after,
            recycle_above_memory: registration.recycle_above_memory,
            account,
            baseline,
            recycling: {
                // A fresh start takes jobs again.
                registration.recycling.store(false, Ordering::Relaxed);
                registration.recycling.clone()
            },
            started: 0,
            in_flight: Default::default(),
        }
    }

    /// Whether this actor should stop after its jobs end.
    fn recycles(&self) -> bool {
        self.recycle_after.is_some() || self.recycle_above_memory.is_some()
    }
}

impl Actor for WorkerActor {}

/// A job of this actor ended: time to recycle it?
pub(crate) struct JobEnded;

impl Message for JobEnded {
    type Result = ();
}

impl Handler<JobEnded> for WorkerActor {
    fn handle(&mut self, _: JobEnded, ctx: &mut Context<'_, Self>) -> Reply<()> {
        let live = self.account.live_bytes();
        self.baseline = self.baseline.min(live);
        let by_count = self.recycle_after.is_some_and(|n| self.started >= n);
        let grown = live - self.baseline;
        let by_memory = self.recycle_above_memory.is_some_and(|limit| grown > limit);
        let idle = self.in_flight.get() == 0;
        // Due while jobs still run: take no new ones (the scheduler reads
        // this), so that a worker that is never idle is recycled too.
        self.recycling
            .store((by_count || by_memory) && !idle, Ordering::Relaxed);
        if !idle {
            return Reply::Ready(());
        }
        if by_count {
            tracing::info!(worker = %self.name, jobs = self.started, "recycling the worker's actor between jobs");
            self.recycling.store(true, Ordering::Relaxed);
            ctx.stop();
        } else if by_memory {
            tracing::info!(
                worker = %self.name,
                live_bytes = live,
                grown_bytes = grown,
                limit_bytes = self.recycle_above_memory.unwrap_or_default(),
                jobs = self.started,
                "recycling the worker's actor between jobs: its heap grew past the limit"
            );
            self.recycling.store(true, Ordering::Relaxed);
            ctx.stop();
        }
        Reply::Ready(())
    }
}

/// Run one attempt of a job.
pub(crate) struct RunJob {
    pub(crate) job_id: JobId,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) args: Value,
    pub(crate) ctx: JobCtx,
    pub(crate) approvals: Vec<Approval>,
    pub(crate) timeout: Option<Duration>,
    /// Aborting drops the job's future: cancel and shutdown stop the work
    /// itself, not only the bookkeeping.
    pub(crate) abort: AbortRegistration,
}

/// How one attempt ended.
#[derive(Debug)]
pub(crate) enum RunOutcome {
    Done(Value),
    Failed(WorkerError),
    TimedOut(Duration),
    Aborted,
}

impl Message for RunJob {
    type Result = RunOutcome;
}

impl Handler<RunJob> for WorkerActor {
    fn handle(&mut self, msg: RunJob, ctx: &mut Context<'_, Self>) -> Reply<RunOutcome> {
        let _in = self.account.enter();
        let worker = self.worker.clone();
        self.started += 1;
        let in_flight = self.in_flight.clone();
        in_flight.set(in_flight.get() + 1);
        let me = self.recycles().then(|| ctx.address());
        let ended = move || {
            in_flight.set(in_flight.get().saturating_sub(1));
            if let Some(me) = &me {
                let _ = me.try_send(JobEnded);
            }
        };
        // One span per job attempt: every event of the worker (an agent's
        // model and tool calls among them) carries the job id and worker.
        let span = tracing::info_span!("job", job = %msg.job_id, worker = %self.name, attempt = msg.attempt);
        // Polled with the worker's account current: what the job allocates
        // is charged to the worker until it is freed.
        Reply::future(
            self.account
                .scope(async move {
                    let outcome = run_one(worker, msg).await;
                    ended();
                    outcome
                })
                .instrument(span),
        )
    }
}

/// Runs one attempt under its timeout and abort handle.
async fn run_one(worker: Arc<dyn Worker>, msg: RunJob) -> RunOutcome {
    let ctx = JobContext {
        job_id: msg.job_id,
        attempt: msg.attempt,
        max_attempts: msg.max_attempts,
        ctx: msg.ctx,
        approvals: msg.approvals,
    };
    let run = Abortable::new(worker.run(msg.args, ctx), msg.abort);
    let finished = match msg.timeout {
        Some(limit) => match tokio::time::timeout(limit, run).await {
            Ok(finished) => finished,
            Err(_) => return RunOutcome::TimedOut(limit),
        },
        None => run.await,
    };
    match finished {
        Ok(Ok(value)) => RunOutcome::Done(value),
        Ok(Err(e)) => RunOutcome::Failed(e),
        Err(_aborted) => RunOutcome::Aborted,
    }
}
