//! [`StepStore`] and [`IdempotencyStore`] for [`SledStore`]: agent steps
//! and idempotency keys on their own sled trees, made durable by the
//! store's group commit.
//!
//! Trees:
//! - `checkpoints`: key = the 16 bytes of the job id ++ `u32 BE` step index
//!   (so a prefix scan is one job's steps in order); value = the step's JSON.
//! - `idempotency`: key = the idempotency key (UTF-8); value = the JSON the
//!   key was claimed with. A claim is one compare-and-swap from absent, so
//!   exactly one caller wins; see [`crate::store::IdempotencyStore`].
//! - `idempotency_jobs`: key = the 16 bytes of a job id ++ a key of that job
//!   ([`job_of_key`]); empty. Retention removes a pruned job's keys by it.

use async_trait::async_trait;
use serde_json::Value;

use super::SledStore;
use crate::job::JobId;
use crate::store::{
    check_step_index, encode_key_value, job_of_key, validate_key, validate_step_json, Claim,
    IdempotencyStore, StepStore, StoreError,
};

/// Tree of step records.
pub(super) const CHECKPOINTS: &str = "checkpoints";
/// Tree of idempotency keys.
pub(super) const IDEMPOTENCY: &str = "idempotency";
/// Which keys belong to which job: the 16 bytes of the job id ++ the key;
/// empty values. Retention drops a pruned job's keys through it.
const IDEMPOTENCY_JOBS: &str = "idempotency_jobs";

fn step_key(job_id: JobId, step_index: u32) -> [u8; 20] {
    let mut key = [0u8; 20];
    key[..16].copy_from_slice(job_id.as_bytes());
    key[16..].copy_from_slice(&step_index.to_be_bytes());
    key
}

/// The step index of a `checkpoints` key, if the key is well formed.
pub(super) fn step_of(key: &[u8]) -> Option<u32> {
    let tail: [u8; 4] = key.get(16..20)?.try_into().ok()?;
    (key.len() == 20).then(|| u32::from_be_bytes(tail))
}

pub(super) fn corrupt(what: &'static str, key: String, reason: impl ToString) -> StoreError {
    StoreError::CorruptRecord {
        what,
        key,
        reason: reason.to_string(),
    }
}

impl SledStore {
    /// Removes a job's steps and idempotency keys without a flush of their
    /// own: retention calls it for each job it prunes, and its own flush
    /// covers these removals. Plain removes, not a batch: a batch contends
    /// with running flushes.
    pub(super) fn drop_steps(&self, job_id: JobId) -> Result<usize, StoreError> {
        let tree = self.checkpoint_tree(CHECKPOINTS)?;
        let mut count = 0;
        for key in tree.scan_prefix(job_id.as_bytes()).keys() {
            let key = key.map_err(|e| StoreError::backend("drop steps", e))?;
            tree.remove(key)
                .map_err(|e| self.write_error("drop steps", e))?;
            count += 1;
        }
        let keys = self.checkpoint_tree(IDEMPOTENCY)?;
        let by_job = self.checkpoint_tree(IDEMPOTENCY_JOBS)?;
        for entry in by_job.scan_prefix(job_id.as_bytes()).keys() {
            let entry = entry.map_err(|e| StoreError::backend("drop keys", e))?;
            if let Some(key) = entry.get(16..) {
                keys.remove(key)
                    .map_err(|e| self.write_error("drop keys", e))?;
            }
            by_job
                .remove(&entry)
                .map_err(|e| self.write_error("drop keys", e))?;
        }
        Ok(count)
    }

    /// How many steps `job_id` has saved (its last index + 1; 0 for none).
    fn saved_steps(&self, tree: &sled::Tree, job_id: JobId) -> Result<u32, StoreError> {
        let last = tree
            .scan_prefix(job_id.as_bytes())
            .keys()
            .next_back()
            .transpose()
            .map_err(|e| StoreError::backend("save step", e))?;
        match last {
            None => Ok(0),
            Some(key) => step_of(&key)
                .map(|step| step.saturating_add(1))
                .ok_or_else(|| {
                    corrupt(
                        "checkpoint",
                        format!("job {job_id}"),
                        "key is not a job id and step index",
                    )
                }),
        }
    }

    fn checkpoint_tree(&self, name: &'static str) -> Result<sled::Tree, StoreError> {
        // sled keeps opened trees in a map: a lookup after the first call.
        self.inner
            .db
            .open_tree(name)
            .map_err(|e| StoreError::backend("open checkpoint tree", e))
    }
}

#[async_trait]
impl StepStore for SledStore {
    async fn save_step_json(
        &self,
        job_id: JobId,
        step_index: u32,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.writable()?;
        validate_step_json(job_id, step_index, &bytes)?;
        let tree = self.checkpoint_tree(CHECKPOINTS)?;
        // Step `step_index - 1` stored means the last step is at least
        // that, so the rule holds: one point lookup, where a reverse scan
        // of the job's prefix for the last step cost sled about 4% of an
        // agent task's CPU. Only without it is the last step looked up,
        // for the rule as before (steps are saved contiguously from 0, so
        // this is the refusal, worded with the count saved).
        let follows = match step_index.checked_sub(1) {
            None => true,
            Some(before) => tree
                .contains_key(step_key(job_id, before))
                .map_err(|e| StoreError::backend("save step", e))?,
        };
        if !follows {
            check_step_index(job_id, step_index, self.saved_steps(&tree, job_id)?)?;
        }
        tree.insert(step_key(job_id, step_index), bytes)
            .map_err(|e| self.write_error("save step", e))?;
        self.durable("save step").await
    }

    async fn load_steps(&self, job_id: JobId) -> Result<Vec<Value>, StoreError> {
        let tree = self.checkpoint_tree(CHECKPOINTS)?;
        tree.scan_prefix(job_id.as_bytes())
            .map(|entry| {
                let (key, value) = entry.map_err(|e| StoreError::backend("load steps", e))?;
                serde_json::from_slice(&value).map_err(|e| {
                    let step = step_of(&key).map_or_else(|| "?".to_owned(), |s| s.to_string());
                    corrupt("checkpoint", format!("job {job_id} step {step}"), e)
                })
            })
            .collect()
    }

    async fn clear_steps(&self, job_id: JobId) -> Result<usize, StoreError> {
        self.writable()?;
        let tree = self.checkpoint_tree(CHECKPOINTS)?;
        let mut batch = sled::Batch::default();
        let mut count = 0usize;
        for key in tree.scan_prefix(job_id.as_bytes()).keys() {
            let key = key.map_err(|e| StoreError::backend("clear steps", e))?;
            batch.remove(key);
            count += 1;
        }
        if count == 0 {
            return Ok(0);
        }
        tree.apply_batch(batch)
            .map_err(|e| self.write_error("clear steps", e))?;
        self.durable("clear steps").await?;
        Ok(count)
    }
}

#[async_trait]
impl IdempotencyStore for SledStore {
    async fn claim_key(&self, key: &str, value: Value) -> Result<Claim, StoreError> {
        self.writable()?;
        validate_key(key)?;
        let bytes = encode_key_value(&value)?;
        let tree = self.checkpoint_tree(IDEMPOTENCY)?;
        // The job's index entry goes first (idempotent, on every claim): a
        // crash can then leave an entry without its key, never a key that
        // retention would not find.
        if let Some(job) = job_of_key(key) {
            let mut entry = job.as_bytes().to_vec();
            entry.extend_from_slice(key.as_bytes());
            self.checkpoint_tree(IDEMPOTENCY_JOBS)?
                .insert(entry, &[])
                .map_err(|e| self.write_error("claim key", e))?;
        }
        let swapped = tree
            .compare_and_swap(key.as_bytes(), None::<&[u8]>, Some(bytes))
            .map_err(|e| self.write_error("claim key", e))?;
        // Both answers wait for durability: the winner's claim must survive
        // before anyone acts on it, whoever asks.
        self.durable("claim key").await?;
        match swapped {
            Ok(()) => Ok(Claim::Claimed),
            Err(conflict) => {
                let current = conflict.current.ok_or_else(|| {
                    corrupt("idempotency", key.to_owned(), "claimed key has no value")
                })?;
                serde_json::from_slice(&current)
                    .map(Claim::Existing)
                    .map_err(|e| corrupt("idempotency", key.to_owned(), e))
            }
        }
    }

    async fn get_key(&self, key: &str) -> Result<Option<Value>, StoreError> {
        validate_key(key)?;
        let tree = self.checkpoint_tree(IDEMPOTENCY)?;
        match tree
            .get(key.as_bytes())
            .map_err(|e| StoreError::backend("get key", e))?
        {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| corrupt("idempotency", key.to_owned(), e)),
        }
    }
}
