//! The storage ports: what the engine, the agents and the tools need from a
//! store, as traits split by capability, their one error type, the answer
//! types they share, and the conformance suite every adapter must pass.
//!
//! Nothing here names a backend. The adapters implement these traits in
//! their own folders and import nothing above this layer: `crate::sled`
//! (the embedded default) and `crate::in_memory` (tests, `troupe::testing`).
//! The job state machine they all apply is pure code in [`crate::job::rules`].
//!
//! | trait | holds |
//! |---|---|
//! | [`JobStore`] | jobs: insert, claim, complete, fail, cancel, recover, list, count, prune |
//! | [`ScheduleStore`] | recurring schedules and the pause state |
//! | [`MemoryStore`] | memories, with compaction in one atomic step |
//! | [`ConversationStore`] | conversation messages |
//! | [`StepStore`] | an agent task's durable steps |
//! | [`IdempotencyStore`] | keys claimed once, for side-effecting tools |
//! | [`UsageStore`] | model calls' usage and day totals |
//! | [`ApprovalStore`] | tasks parked awaiting approval of tool calls, and the decisions |
//! | [`SnapshotExport`], [`SnapshotImport`] | a whole store read or written at once (migrating between adapters) |
//!
//! [`Store`] is all of them: what the runtime takes.
//!
//! Whatever every adapter must check or decide alike is written once, here
//! or in [`crate::job::rules`], not in each adapter: the validation of
//! records ([`NewMemory::validate`], [`NewMessage::validate`],
//! [`validate_key`], [`validate_schedule`] …), the compaction rule
//! ([`validate_compaction`], [`archive_original`]), the step rules
//! ([`validate_step_json`], [`check_step_index`]). The [`conformance`]
//! suite checks that an adapter behaves as these documents say.
//!
//! # Durability contract (every adapter)
//!
//! - **Every call that changes state returns only after the change is
//!   durable**, to the level of the adapter's [`Durability`]. Inserting,
//!   claiming, completing, failing, cancelling, recovering, pruning,
//!   pausing, saving and firing schedules, remembering, appending, saving
//!   steps and claiming keys all end by waiting for that.
//! - **Reads may see writes whose durability is still in flight** (a claim
//!   can pick up a job whose enqueue has not been acknowledged yet). The
//!   claim's own durable write then covers the enqueue too, so nothing is
//!   acted upon that a crash could take back without also taking back the
//!   action.
//! - **At least once, completion once.** After a crash, [`JobStore::recover`]
//!   puts every `running` job back to `queued` (its attempt stays counted,
//!   the interruption is appended to `errors`). A job may therefore run
//!   twice; `complete` and `fail` name the attempt they finish and are
//!   no-ops ([`Outcome::Stale`]) unless the job is still `running` with that
//!   attempt, and terminal statuses have no way out, so a completion is
//!   recorded once. The rules are [`crate::job::rules`]; adapters apply them.
//! - **A schedule firing is atomic**: its jobs and its advanced record are
//!   written together, so each firing happens once across restarts.
//! - **A compaction is atomic**: the originals archived and the summaries
//!   stored together, or neither.
//! - **A write that cannot be made durable fails the store, in bounded
//!   time.** When a flush fails (a full disk) or does not end (a stuck
//!   disk), the writers waiting for it get [`StoreError::Failed`] naming
//!   why, and so does every later write, at once and before it changes
//!   anything; reads go on, and [`JobStore::health`] reports the failure.
//!   The write that met the failure may or may not survive a restart; what
//!   was acknowledged before it does. Nothing but opening the store again
//!   (a restart) clears it. The conformance suite's `failure` group checks
//!   it through [`conformance::Harness::fail`].
//! - Opening a store does not change job states: the scheduler calls
//!   [`JobStore::recover`] when it starts, so read-only commands (listing
//!   jobs) never requeue anything.

mod approvals;
pub mod conformance;
mod conversations;
mod error;
mod idempotency;
mod jobs;
mod memories;
mod schedules;
mod snapshot;
mod steps;
mod types;
mod usage;

pub use approvals::{approval_not_found, pending_of, ApprovalStore, DecideOutcome, Expired};
pub use conversations::{
    validate_conversation_id, Appended, ChatMessage, ConversationStore, MessageId, NewMessage,
    Role, MAX_MESSAGE_BYTES, MAX_NAME_BYTES,
};
pub use error::{BackendError, StoreError};
pub use idempotency::{
    encode_key_value, job_of_key, validate_key, Claim, IdempotencyStore, MAX_KEY_BYTES,
    MAX_KEY_VALUE_BYTES,
};
pub use jobs::JobStore;
pub use memories::{
    archive_original, validate_compaction, Compacted, Memory, MemoryId, MemoryScope, MemoryStore,
    MemoryType, NewMemory, Remembered, MAX_CONTENT_BYTES, MAX_ID_BYTES, MAX_IMPORTANCE,
    MIN_IMPORTANCE,
};
pub use schedules::{parked, validate_schedule, ScheduleStore};
pub use snapshot::{
    Batch, ClaimedKey, DayTotals, ImportOptions, ImportReport, KindCheck, MemoryKey, MessageKey,
    Snapshot, SnapshotChunk, SnapshotCounts, SnapshotExport, SnapshotImport, SnapshotKind,
    SnapshotSink, StepRecord, CHUNK_BYTES, CHUNK_RECORDS,
};
pub use steps::{check_step_index, validate_step_json, StepStore, MAX_STEP_BYTES};
pub use types::{
    CancelOutcome, ClaimRequest, Durability, FiredSchedule, InsertOutcome, JobCounts, JobPage,
    ListQuery, NodeInfo, Outcome, PauseState, PauseTarget, Recovered, Retention, StoreEvent,
    DEFAULT_PAGE_SIZE,
};
pub use usage::{DayUsage, UsageRecord, UsageScope, UsageStore, UsageTotals};

pub use crate::job::FailAction;

/// Every storage capability together: what the runtime needs from an
/// adapter. Implemented for every type that implements all the ports, so an
/// adapter never writes `impl Store`; an `Arc<dyn Store>` upcasts to any
/// single port (`Arc<dyn JobStore>`, `Arc<dyn MemoryStore>` …).
pub trait Store:
    JobStore
    + ScheduleStore
    + MemoryStore
    + ConversationStore
    + StepStore
    + IdempotencyStore
    + UsageStore
    + ApprovalStore
    + 'static
{
}

impl<T> Store for T where
    T: JobStore
        + ScheduleStore
        + MemoryStore
        + ConversationStore
        + StepStore
        + IdempotencyStore
        + UsageStore
        + ApprovalStore
        + 'static
{
}

/// Every port trait, for code that calls a whole [`Store`]: a method of a
/// supertrait needs that trait in scope, even through `dyn Store`.
pub mod prelude {
    pub use super::{
        ApprovalStore, ConversationStore, IdempotencyStore, JobStore, MemoryStore, ScheduleStore,
        StepStore, Store, UsageStore,
    };
}

/// Checks the name of a namespace in a database (a PostgreSQL schema): it is
/// written into SQL (it cannot be a bound parameter), so only a plain
/// lowercase identifier is accepted. Here, below the adapters and the
/// config, so both refuse the same names.
pub fn validate_schema_name(schema: &str) -> Result<(), StoreError> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = schema
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    // 56, not PostgreSQL's 63: the notification channel is
    // `troupe_<schema>`, and a channel name must fit in 63 bytes too.
    if first_ok && rest_ok && schema.len() <= 56 {
        Ok(())
    } else {
        Err(StoreError::InvalidInput {
            field: "schema",
            reason: format!(
                "{schema:?} is not a plain identifier \
                 (lowercase letters, digits, _; at most 56 bytes)"
            ),
        })
    }
}
