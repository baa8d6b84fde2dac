//! What the job engine reports as jobs move: the figures that cannot be read
//! back from the store afterwards (waits, run times, retries, outcomes).
//!
//! The Scheduler actor calls these from its handlers; each call is a few
//! atomic adds plus one short mutex to find the worker's series.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::job::{ApprovalState, JobStatus};
use crate::metrics::{CounterVec, HistogramVec, MinuteHistory, SECONDS_BUCKETS};

/// Job figures of one engine, by worker. Shared by the engine and the
/// metrics endpoint ([`crate::engine::WorkerEngine::stats`]).
#[derive(Debug)]
pub(crate) struct EngineStats {
    /// From when a job was ready (enqueued, or its delay or retry backoff
    /// ended) to when an attempt started.
    pub queue_wait: HistogramVec,
    /// How long each attempt ran, whatever its outcome.
    pub run_time: HistogramVec,
    /// Attempts started.
    pub started: CounterVec<String>,
    /// Failed attempts put back in the queue for another try.
    pub retries: CounterVec<String>,
    /// Jobs that ended, by worker and final status.
    pub ended: CounterVec<(String, JobStatus)>,
    /// Attempts that parked awaiting approval of tool calls.
    pub parked: CounterVec<String>,
    /// Approvals decided through this engine's process, by decision
    /// (`approved`, `denied`, `expired`).
    pub decisions: CounterVec<ApprovalState>,
    /// Jobs completed and failed per minute over the last hour (the
    /// Studio's charts).
    pub history: MinuteHistory,
}

impl Default for EngineStats {
    fn default() -> Self {
        EngineStats {
            queue_wait: HistogramVec::new(SECONDS_BUCKETS),
            run_time: HistogramVec::new(SECONDS_BUCKETS),
            started: CounterVec::default(),
            retries: CounterVec::default(),
            ended: CounterVec::default(),
            parked: CounterVec::default(),
            decisions: CounterVec::default(),
            history: MinuteHistory::default(),
        }
    }
}

impl EngineStats {
    /// An attempt of a job of `worker`, ready since `ready_at`, starts `now`.
    pub(crate) fn attempt_started(
        &self,
        worker: &str,
        ready_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        let wait = (now - ready_at).to_std().unwrap_or(Duration::ZERO);
        self.queue_wait.observe(worker, wait);
        self.started.inc(worker.to_string());
    }

    /// An attempt of `worker` answered after `ran`.
    pub(crate) fn attempt_finished(&self, worker: &str, ran: Duration) {
        self.run_time.observe(worker, ran);
    }

    /// A failed attempt of `worker` was queued again.
    pub(crate) fn retried(&self, worker: &str) {
        self.retries.inc(worker.to_string());
    }

    /// An attempt of `worker` parked awaiting approval.
    pub(crate) fn parked(&self, worker: &str) {
        self.parked.inc(worker.to_string());
    }

    /// An approval was decided (`approved`, `denied` or `expired`).
    pub(crate) fn decided(&self, state: ApprovalState) {
        self.decisions.inc(state);
    }

    /// A job of `worker` ended with `status`.
    pub(crate) fn ended(&self, worker: &str, status: JobStatus) {
        self.ended.inc((worker.to_string(), status));
        match status {
            JobStatus::Completed => self.history.record(Utc::now(), false),
            JobStatus::Failed => self.history.record(Utc::now(), true),
            _ => {}
        }
    }
}
