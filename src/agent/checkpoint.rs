//! Durable agent steps and the idempotency registry, so an agent task that
//! crashes or is retried resumes where it was instead of starting over.
//!
//! **Steps.** The task loop saves each model reply and each tool result as
//! one JSON record under its job, numbered from 0, *before* it acts on it
//! ([`CheckpointStore::save_step`] is durable when it returns). On a new
//! attempt it [`load`](CheckpointStore::load)s the records and continues
//! after the last one: a model call already answered is not paid for again,
//! a tool call already run is not run again. Steps are contiguous: step `n`
//! can be saved once steps `0..n` exist (saving an existing index replaces
//! it), so a loaded list has no holes. [`clear`](CheckpointStore::clear)
//! drops them when the task has ended.
//!
//! **Idempotency keys.** A side-effecting tool (`create_task`, `scheduler`,
//! `send_message`) derives a key from the job, step and call ids and calls
//! [`CheckpointStore::claim_key`] with a value naming its effect *before*
//! doing it (e.g. `{"jobId": <a fresh id>}`). The guarantee:
//! - **one winner**: of all calls with the same key, ever, in any process
//!   using the store, exactly one gets [`Claim::Claimed`]; every other gets
//!   [`Claim::Existing`] with the winner's value (a compare-and-swap on the
//!   key);
//! - **durable first**: either answer is returned only once the claim is
//!   durable, so no effect is started on a claim a crash could take back;
//! - **not atomic with the effect**: a crash after the claim and before the
//!   effect leaves the key claimed and the effect undone. So the value must
//!   carry the effect's identity, and a caller that gets `Existing` must
//!   check the effect and redo it *with that identity* if it is missing
//!   (insert the job with the recorded id, which the job store refuses to
//!   store twice). Claim-then-effect-with-recorded-id makes the effect
//!   happen at most once per key and, with the check, at least once.
//!
//! A key that names its job the way [`ToolContext::idempotency_key`]
//! does (`tool:<job id>:…`, whatever comes before it) lives as long as that
//! job: when retention prunes the ended job, which can never run again,
//! its keys go with it, so a daemon's registry does not grow without end.
//! Other keys never expire; they are small (key plus a short JSON value).
//!
//! [`ToolContext::idempotency_key`]: crate::tools::ToolContext::idempotency_key

use async_trait::async_trait;
use serde_json::Value;

use crate::job::JobId;
use crate::store::StoreError;

/// Largest accepted step record, in bytes of JSON: a model reply or tool
/// result, with room for large tool outputs.
pub const MAX_STEP_BYTES: usize = 4 * 1024 * 1024;
/// Largest accepted idempotency key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest accepted idempotency value, in bytes of JSON: it names an effect,
/// it does not hold one.
pub const MAX_KEY_VALUE_BYTES: usize = 64 * 1024;

/// The answer to [`CheckpointStore::claim_key`].
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This call claimed the key (its value is stored): do the effect.
    Claimed,
    /// The key was claimed before, with this value: do not do the effect
    /// again (but see the module documentation on checking it happened).
    Existing(Value),
}

/// Durable step records per job, and the idempotency registry. Object safe
/// and free of backend types; every change is durable before the method
/// returns.
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    /// Saves step `step_index` of `job_id`, durable on return. Fails with
    /// [`StoreError::InvalidInput`] (`stepIndex`) when steps before it are
    /// missing, and (`record`) when the JSON is larger than
    /// [`MAX_STEP_BYTES`]. Saving an index that exists replaces it.
    async fn save_step(
        &self,
        job_id: JobId,
        step_index: u32,
        record: Value,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_vec(&record).map_err(|e| StoreError::InvalidInput {
            field: "record",
            reason: format!("step {step_index} of job {job_id} cannot be written as JSON: {e}"),
        })?;
        self.save_step_json(job_id, step_index, json).await
    }

    /// [`save_step`](Self::save_step) for a record the caller has written as
    /// JSON already: it is stored as given (checked to be one JSON value,
    /// else refused with [`StoreError::InvalidInput`] `record`). The agent loop serializes its replies straight from their
    /// types this way, without building a [`Value`] tree first.
    async fn save_step_json(
        &self,
        job_id: JobId,
        step_index: u32,
        json: Vec<u8>,
    ) -> Result<(), StoreError>;

    /// The saved steps of `job_id`, in step order (empty if none).
    async fn load(&self, job_id: JobId) -> Result<Vec<Value>, StoreError>;

    /// Deletes the steps of `job_id`; returns how many there were.
    async fn clear(&self, job_id: JobId) -> Result<usize, StoreError>;

    /// Claims `key` for `value`, or returns the value it was claimed with.
    /// See the module documentation for the exact guarantee. Fails with
    /// [`StoreError::InvalidInput`] (`key`, `value`) for an empty or
    /// oversize key or an oversize value.
    async fn claim_key(&self, key: &str, value: Value) -> Result<Claim, StoreError>;

    /// The value `key` was claimed with, if it was.
    async fn get_key(&self, key: &str) -> Result<Option<Value>, StoreError>;
}

/// The job an idempotency key belongs to: the first UUID that follows a
/// `tool:` in it (the form [`crate::tools::ToolContext::idempotency_key`]
/// makes, whatever a tool puts in front, even a name ending in `tool`).
pub fn job_of_key(key: &str) -> Option<JobId> {
    key.match_indices("tool:").find_map(|(at, found)| {
        let start = at + found.len();
        key.get(start..start + 36)?.parse().ok()
    })
}

/// Checks an idempotency key (shared by every backend and by the memory and
/// conversation stores, whose idempotency keys follow the same rules).
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::InvalidInput {
            field: "key",
            reason: "an idempotency key must not be empty".into(),
        });
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(StoreError::InvalidInput {
            field: "key",
            reason: format!(
                "is {} bytes, more than the limit of {MAX_KEY_BYTES}",
                key.len()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::job_of_key;

    #[test]
    fn the_job_of_a_key_is_found_after_any_prefix() {
        let job = uuid::Uuid::now_v7();
        let key = |prefix: &str| format!("{prefix}tool:{job}:2:call_1");
        assert_eq!(job_of_key(&key("")), Some(job));
        assert_eq!(job_of_key(&key("create_task:")), Some(job));
        assert_eq!(job_of_key(&key("http_tool:")), Some(job));
        assert_eq!(
            job_of_key(&format!("{}#done", key("scheduler:"))),
            Some(job)
        );
        assert_eq!(job_of_key("race"), None);
        assert_eq!(job_of_key("tool:not-a-uuid:1:2"), None);
        assert_eq!(job_of_key("tool:"), None);
    }
}
