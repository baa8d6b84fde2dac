//! The worker actor: runs one registered [`Worker`]'s jobs.
//!
//! Owns: the `Arc<dyn Worker>`. Takes: [`RunJob`], answered with a
//! [`RunOutcome`] once the job's future ends, times out or is aborted.
//!
//! Jobs run as reply futures, so several run at once and the mailbox keeps
//! flowing. A panic in `Worker::run` restarts this actor (troupe-actors
//! catches it); every job it was running then answers the scheduler with a
//! call error, which the scheduler records as a failed, retryable attempt.

use std::sync::Arc;
use std::time::Duration;

use futures::future::{AbortRegistration, Abortable};
use serde_json::Value;
use tracing::Instrument;
use troupe_actors::{Actor, Context, Handler, Message, Reply};

use crate::job::{JobCtx, JobId};

use super::worker::{JobContext, Worker, WorkerError};

/// Hosts one worker.
pub(crate) struct WorkerActor {
    pub(crate) worker: Arc<dyn Worker>,
    /// Stop (and so be restarted fresh) after this many jobs, between jobs.
    pub(crate) recycle_after: Option<u64>,
    pub(crate) started: u64,
    pub(crate) in_flight: std::rc::Rc<std::cell::Cell<usize>>,
}

impl WorkerActor {
    pub(crate) fn new(worker: Arc<dyn Worker>, recycle_after: Option<u64>) -> Self {
        Self {
            worker,
            recycle_after,
            started: 0,
            in_flight: Default::default(),
        }
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
        let due = self.recycle_after.is_some_and(|n| self.started >= n);
        if due && self.in_flight.get() == 0 {
            tracing::info!(worker = %self.worker.name(), jobs = self.started, "recycling the worker's actor between jobs");
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
        let worker = self.worker.clone();
        self.started += 1;
        let in_flight = self.in_flight.clone();
        in_flight.set(in_flight.get() + 1);
        let me = self.recycle_after.map(|_| ctx.address());
        let ended = move || {
            in_flight.set(in_flight.get().saturating_sub(1));
            if let Some(me) = &me {
                let _ = me.try_send(JobEnded);
            }
        };
        // One span per job attempt: every event of the worker (an agent's
        // model and tool calls among them) carries the job id and worker.
        let span = tracing::info_span!("job", job = %msg.job_id, worker = %worker.name(), attempt = msg.attempt);
        Reply::future(
            async move {
                let outcome = run_one(worker, msg).await;
                ended();
                outcome
            }
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
