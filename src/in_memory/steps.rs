//! Agent steps and the idempotency registry in memory, and the
//! [`StepStore`] and [`IdempotencyStore`] ports. The checks are the ports'
//! ([`validate_step_json`], [`check_step_index`], [`validate_key`],
//! [`encode_key_value`]); retention drops a pruned job's steps and the keys
//! that name it ([`job_of_key`]) through [`Steps::drop_jobs`].

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use serde_json::Value;

use super::InMemoryStore;
use crate::job::JobId;
use crate::store::{
    check_step_index, encode_key_value, job_of_key, validate_key, validate_step_json, Claim,
    IdempotencyStore, StepStore, StoreError,
};

/// Each job's steps in step order, and the claimed keys with their values.
#[derive(Default)]
pub(super) struct Steps {
    by_job: HashMap<JobId, Vec<Value>>,
    keys: HashMap<String, Value>,
}

impl Steps {
    /// Drops the steps of `jobs` and every key that names one of them.
    pub(super) fn drop_jobs(&mut self, jobs: &[JobId]) {
        if jobs.is_empty() {
            return;
        }
        for job in jobs {
            self.by_job.remove(job);
        }
        let jobs: HashSet<&JobId> = jobs.iter().collect();
        self.keys
            .retain(|key, _| job_of_key(key).is_none_or(|job| !jobs.contains(&job)));
    }
}

#[async_trait]
impl StepStore for InMemoryStore {
    async fn save_step_json(
        &self,
        job_id: JobId,
        step_index: u32,
        json: Vec<u8>,
    ) -> Result<(), StoreError> {
        validate_step_json(job_id, step_index, &json)?;
        let record: Value =
            serde_json::from_slice(&json).map_err(|e| StoreError::InvalidInput {
                field: "record",
                reason: format!("step {step_index} of job {job_id} is not one JSON value: {e}"),
            })?;
        let mut state = self.write()?;
        let saved = state.steps.by_job.get(&job_id).map_or(0, Vec::len);
        check_step_index(job_id, step_index, u32::try_from(saved).unwrap_or(u32::MAX))?;
        let steps = state.steps.by_job.entry(job_id).or_default();
        match usize::try_from(step_index) {
            Ok(i) if i < steps.len() => steps[i] = record,
            _ => steps.push(record),
        }
        Ok(())
    }

    async fn load_steps(&self, job_id: JobId) -> Result<Vec<Value>, StoreError> {
        Ok(self
            .lock()
            .steps
            .by_job
            .get(&job_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn clear_steps(&self, job_id: JobId) -> Result<usize, StoreError> {
        Ok(self
            .write()?
            .steps
            .by_job
            .remove(&job_id)
            .map_or(0, |steps| steps.len()))
    }
}

#[async_trait]
impl IdempotencyStore for InMemoryStore {
    async fn claim_key(&self, key: &str, value: Value) -> Result<Claim, StoreError> {
        validate_key(key)?;
        encode_key_value(&value)?;
        let mut state = self.write()?;
        match state.steps.keys.get(key) {
            Some(existing) => Ok(Claim::Existing(existing.clone())),
            None => {
                state.steps.keys.insert(key.to_owned(), value);
                Ok(Claim::Claimed)
            }
        }
    }

    async fn get_key(&self, key: &str) -> Result<Option<Value>, StoreError> {
        validate_key(key)?;
        Ok(self.lock().steps.keys.get(key).cloned())
    }
}
