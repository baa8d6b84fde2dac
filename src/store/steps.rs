//! The steps port: durable agent steps, so an agent task that crashes or
//! is retried resumes where it was instead of starting over.
//!
//! The task loop saves each model reply and each tool result as one JSON
//! record under its job, numbered from 0, *before* it acts on it
//! ([`StepStore::save_step`] is durable when it returns). On a new attempt
//! it [`load_steps`](StepStore::load_steps)s the records and continues after the last
//! one: a model call already answered is not paid for again, a tool call
//! already run is not run again. Steps are contiguous: step `n` can be saved
//! once steps `0..n` exist (saving an existing index replaces it), so a
//! loaded list has no holes. [`clear_steps`](StepStore::clear_steps) drops them when the
//! task has ended; retention drops them with their job.

use async_trait::async_trait;
use serde_json::Value;

use crate::job::JobId;

use super::StoreError;

/// Largest accepted step record, in bytes of JSON: a model reply or tool
/// result, with room for large tool outputs.
pub const MAX_STEP_BYTES: usize = 4 * 1024 * 1024;

/// Durable step records per job. Object safe and free of backend types;
/// every change is durable before the method returns.
#[async_trait]
pub trait StepStore: Send + Sync {
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
    async fn load_steps(&self, job_id: JobId) -> Result<Vec<Value>, StoreError>;

    /// Deletes the steps of `job_id`; returns how many there were.
    async fn clear_steps(&self, job_id: JobId) -> Result<usize, StoreError>;
}

/// Checks a step record written as JSON, as [`StepStore::save_step_json`]
/// promises: at most [`MAX_STEP_BYTES`] and exactly one JSON value (checked,
/// not decoded: no tree is built), else [`StoreError::InvalidInput`]
/// `record` naming the job and step. Bytes that are not one JSON value
/// would only fail later, at the resume that needs them.
pub fn validate_step_json(job_id: JobId, step_index: u32, json: &[u8]) -> Result<(), StoreError> {
    if json.len() > MAX_STEP_BYTES {
        return Err(StoreError::InvalidInput {
            field: "record",
            reason: format!(
                "step {step_index} of job {job_id} is {} bytes of JSON, more than the limit of {MAX_STEP_BYTES}",
                json.len()
            ),
        });
    }
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(json) {
        return Err(StoreError::InvalidInput {
            field: "record",
            reason: format!("step {step_index} of job {job_id} is not one JSON value: {e}"),
        });
    }
    Ok(())
}

/// The contiguity rule: with `saved` steps stored (indexes `0..saved`), step
/// `step_index` may be saved (a new last step, or a replacement) only if it
/// is at most `saved`; else [`StoreError::InvalidInput`] `stepIndex`.
pub fn check_step_index(job_id: JobId, step_index: u32, saved: u32) -> Result<(), StoreError> {
    if step_index > saved {
        return Err(StoreError::InvalidInput {
            field: "stepIndex",
            reason: format!(
                "job {job_id} has {saved} saved steps, so step {step_index} cannot be saved yet (at most {saved})"
            ),
        });
    }
    Ok(())
}
