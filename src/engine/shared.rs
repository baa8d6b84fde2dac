//! State shared by the engine handle and its actors.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use troupe_actors::ActorRef;

use crate::store::Store;

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
    pub(crate) workers: RwLock<BTreeMap<String, WorkerEntry>>,
    pub(crate) waiters: Waiters,
    pub(crate) config: EngineConfig,
    /// Waits, run times, retries and outcomes, for the metrics endpoint.
    pub(crate) stats: Arc<crate::metrics::EngineStats>,
    /// The `workers` supervisor, for the watchdog's restarts (set at start).
    pub(crate) workers_sup: std::sync::OnceLock<troupe_actors::SupervisorRef>,
}

impl EngineShared {
    pub(crate) fn worker_names(&self) -> Vec<String> {
        let workers = self
            .workers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        workers.keys().cloned().collect()
    }
}
