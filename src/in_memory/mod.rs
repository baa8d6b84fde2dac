//! [`InMemoryStore`]: the in-memory adapter of every storage port. Nothing
//! outlives the process; for tests, for `troupe::testing`, for benchmarks
//! that must not measure a disk, and for embedders that keep nothing. It
//! imports nothing above the ports (`crate::store`) and the job model and
//! rules (`crate::job`), and passes the same conformance suite as sled.
//!
//! # How it keeps the contract
//!
//! - **One lock.** All data sits behind one mutex, taken for each call and
//!   never held across an `.await`, so every call is atomic with respect
//!   to every other: a claim never hands out a job twice, a key is claimed
//!   once, a compaction or a schedule firing is all or nothing, and
//!   retention drops a job with its steps and keys in one step.
//! - **The rules are the job module's.** Every job transition is the answer
//!   of [`crate::job::rules`] for the job as stored, claims are ordered by
//!   [`crate::job::rules::claim_order`], schedules fire as
//!   [`crate::job::schedule::plan_firings`] plans; validation is the ports'
//!   own (`NewMemory::validate`, `validate_compaction`, `validate_step_json`
//!   …). This adapter adds only the bookkeeping.
//! - **Durable means "in the map".** A call returns once its change is in
//!   memory, which is all the durability it has: [`crate::store::Durability`]
//!   does not apply.
//! - **A failure is asked for.** Nothing here can fail to flush, so
//!   [`InMemoryStore::mark_failed`] stands in for it: from then on every
//!   write is refused with [`StoreError::Failed`] and reads go on, as the
//!   ports' contract says of a failed store; a [`reopen`](InMemoryStore::reopen)
//!   (the "restart") takes writes again.
//! - **Records and what is derived from them.** Like a real store it keeps
//!   records (jobs, schedules, pauses, memories, messages, steps, keys,
//!   usage) and indexes derived from them (the unique keys of active jobs,
//!   the queued jobs). [`InMemoryStore::reopen`] is the "process restart"
//!   of the conformance suite: a new handle over the same records with the
//!   indexes rebuilt from them, as sled rebuilds its own at open.
//!
//! | file | holds |
//! |---|---|
//! | `jobs.rs` | jobs and their indexes; the [`crate::store::JobStore`] port |
//! | `schedules.rs` | schedules and the pause state; [`crate::store::ScheduleStore`] |
//! | `memories.rs` | memories and their idempotency keys; [`crate::store::MemoryStore`] |
//! | `conversations.rs` | messages and their idempotency keys; [`crate::store::ConversationStore`] |
//! | `steps.rs` | agent steps and the idempotency registry; [`crate::store::StepStore`], [`crate::store::IdempotencyStore`] |
//! | `usage.rs` | usage records and day totals; [`crate::store::UsageStore`] |
//! | `harness.rs` | [`InMemoryHarness`], the conformance suite's way in |

mod approvals;
mod conversations;
mod harness;
mod jobs;
mod memories;
mod schedules;
mod steps;
mod usage;

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::store::StoreError;

pub use harness::InMemoryHarness;

/// Every storage port in memory. Cheap to clone (a shared handle: clones
/// see the same data), `Send + Sync`; the data lives as long as any handle.
#[derive(Clone, Default)]
pub struct InMemoryStore {
    state: Arc<Mutex<State>>,
    /// Why this handle (and its clones) failed, when told to.
    failed: Arc<OnceLock<String>>,
}

impl std::fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryStore").finish_non_exhaustive()
    }
}

/// Everything the store holds, one part per port.
#[derive(Default)]
struct State {
    jobs: jobs::Jobs,
    schedules: schedules::Schedules,
    memories: memories::Memories,
    conversations: conversations::Conversations,
    steps: steps::Steps,
    usage: usage::Usage,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new handle over the same data, as a restarted process would open
    /// it: whatever is derived from the records is rebuilt from them (and
    /// nothing else changes: jobs left running stay running until
    /// [`crate::store::JobStore::recover`]). The conformance suite's crash.
    pub fn reopen(&self) -> InMemoryStore {
        self.lock().jobs.rebuild_index();
        InMemoryStore {
            state: Arc::clone(&self.state),
            failed: Arc::default(),
        }
    }

    /// Marks this store (every clone of this handle) failed, as a store
    /// whose flush failed is: every later write is refused with
    /// [`StoreError::Failed`] and `reason` (the first reason given stays),
    /// reads go on, and [`crate::store::JobStore::health`] reports it, until
    /// [`reopen`](Self::reopen). For tests of what a failed store does to
    /// the code above it, and the conformance suite's failure cases.
    pub fn mark_failed(&self, reason: impl Into<String>) {
        let _ = self.failed.set(reason.into());
    }

    /// [`StoreError::Failed`] once [`mark_failed`](Self::mark_failed).
    fn healthy(&self) -> Result<(), StoreError> {
        match self.failed.get() {
            None => Ok(()),
            Some(reason) => Err(StoreError::Failed {
                reason: reason.clone(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock (every rule is total); if
        // one did, the data is still whole: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lock, for a write: refused once the store has failed.
    fn write(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.healthy()?;
        Ok(self.lock())
    }
}
