//! Futures that resolve when a job ends.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::job::{Job, JobId};

/// Callers waiting for jobs to end, by job id.
#[derive(Default)]
pub(crate) struct Waiters {
    map: Mutex<HashMap<JobId, Vec<oneshot::Sender<Job>>>>,
}

impl Waiters {
    /// Registers interest in `id`; the receiver gets the job once it ends.
    pub(crate) fn register(&self, id: JobId) -> oneshot::Receiver<Job> {
        let (tx, rx) = oneshot::channel();
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(id).or_default().push(tx);
        rx
    }

    /// Wakes everyone waiting for this (ended) job.
    pub(crate) fn notify(&self, job: &Job) {
        let senders = {
            let mut map = self
                .map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.remove(&job.id)
        };
        for tx in senders.into_iter().flatten() {
            let _ = tx.send(job.clone());
        }
    }

    /// Drops a registration whose caller found the job already ended.
    pub(crate) fn forget(&self, id: JobId) {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(list) = map.get_mut(&id) {
            list.retain(|tx| !tx.is_closed());
            if list.is_empty() {
                map.remove(&id);
            }
        }
    }
}
