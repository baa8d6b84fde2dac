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
use troupe_actors::{Actor, Context, Handler, Message, Reply};

use crate::job::{JobCtx, JobId};

use super::worker::{JobContext, Worker, WorkerError};

/// Hosts one worker.
pub(crate) struct WorkerActor {
    pub(crate) worker: Arc<dyn Worker>,
}

impl Actor for WorkerActor {}

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
    fn handle(&mut self, msg: RunJob, _: &mut Context<'_, Self>) -> Reply<RunOutcome> {
        let worker = self.worker.clone();
        Reply::future(async move {
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
        })
    }
}
