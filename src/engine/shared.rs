//! State shared by the engine handle and its actors.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use troupe_actors::ActorRef;

use crate::events::{EventHub, TaskEventKind};
use crate::job::{Job, JobStatus};
use crate::store::prelude::*;

use super::config::EngineConfig;
use super::runner::WorkerActor;
use super::waiters::Waiters;
use super::worker::Registration;

/// A registered worker and, once started, its actor.
pub(crate) struct WorkerEntry {
    pub(crate) registration: Registration,
    pub(crate) actor: Option<ActorRef<WorkerActor>>,
}

pub(crate) struct EngineShared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) workers: RwLock<Workers>,
    pub(crate) waiters: Waiters,
    pub(crate) config: EngineConfig,
    /// Waits, run times, retries and outcomes, for the metrics endpoint.
    pub(crate) stats: Arc<crate::engine::EngineStats>,
    /// The `workers` supervisor, for the watchdog's restarts (set at start).
    pub(crate) workers_sup: std::sync::OnceLock<troupe_actors::SupervisorRef>,
    /// Where the jobs' live events go.
    pub(crate) events: Arc<EventHub>,
}

/// The registered workers by name.
type Workers = BTreeMap<String, WorkerEntry>;

impl EngineShared {
    /// The workers, to read. Nothing panics while holding the lock, so a
    /// poisoned one still holds a whole map.
    pub(crate) fn read_workers(&self) -> RwLockReadGuard<'_, Workers> {
        self.workers.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The workers, to change (see [`read_workers`](Self::read_workers)).
    pub(crate) fn write_workers(&self) -> RwLockWriteGuard<'_, Workers> {
        self.workers.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// A job ended: its terminal event, then its waiters (who may follow
    /// its events and expect the terminal one in).
    pub(crate) fn job_ended(&self, job: &Job) {
        self.events.emit_end(job, terminal_event(job));
        self.waiters.notify(job);
    }

    pub(crate) fn worker_names(&self) -> Vec<String> {
        self.read_workers().keys().cloned().collect()
    }
}

/// The terminal event of an ended job, from its record.
pub(crate) fn terminal_event(job: &Job) -> TaskEventKind {
    match job.status {
        JobStatus::Completed => TaskEventKind::Completed,
        JobStatus::Cancelled => TaskEventKind::Cancelled,
        _ => TaskEventKind::Failed {
            error: job.error.clone().unwrap_or_default(),
        },
    }
}
