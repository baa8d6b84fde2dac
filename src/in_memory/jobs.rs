//! Jobs in memory: the records by id (so id order is creation order, and
//! "newest first" is a reverse scan), the indexes derived from them (queued
//! jobs, unique keys of active jobs), and the [`JobStore`] port, whose every
//! transition is the answer of [`crate::job::rules`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{InMemoryStore, State};
use crate::job::rules::{self, CancelMove};
use crate::job::{FailAction, Job, JobError, JobId, JobStatus};
use crate::store::{
    CancelOutcome, ClaimRequest, InsertOutcome, JobCounts, JobPage, JobStore, ListQuery, Outcome,
    PauseState, Recovered, Retention, StoreError,
};

/// The job records and what is derived from them.
#[derive(Default)]
pub(super) struct Jobs {
    pub(super) records: BTreeMap<JobId, Job>,
    /// Ids of queued jobs (derived).
    queued: BTreeSet<JobId>,
    /// The active (queued or running) job holding each unique key (derived).
    unique: HashMap<String, JobId>,
}

impl Jobs {
    /// Rebuilds the derived indexes from the records, as an open does.
    pub(super) fn rebuild_index(&mut self) {
        self.queued.clear();
        self.unique.clear();
        let records = std::mem::take(&mut self.records);
        for job in records.values() {
            self.index(job);
        }
        self.records = records;
    }

    fn index(&mut self, job: &Job) {
        if job.status == JobStatus::Queued {
            self.queued.insert(job.id);
        }
        if let (true, Some(key)) = (job.status.is_active(), &job.unique_key) {
            self.unique.insert(key.clone(), job.id);
        }
    }

    fn unindex(&mut self, job: &Job) {
        self.queued.remove(&job.id);
        if let Some(key) = &job.unique_key {
            if self.unique.get(key) == Some(&job.id) {
                self.unique.remove(key);
            }
        }
    }

    /// Stores `job` (new or a new version), keeping the indexes in step.
    pub(super) fn put(&mut self, job: Job) {
        if let Some(old) = self.records.get(&job.id).cloned() {
            self.unindex(&old);
        }
        self.index(&job);
        self.records.insert(job.id, job);
    }

    /// The active job holding `key`.
    pub(super) fn unique_holder(&self, key: &str) -> Option<&Job> {
        self.unique.get(key).and_then(|id| self.records.get(id))
    }

    /// Inserts a new, validated job: its key's holder if the key is held,
    /// a refusal if its id is taken.
    fn insert(&mut self, job: Job) -> Result<InsertOutcome, StoreError> {
        if let Some(holder) = job
            .unique_key
            .as_deref()
            .and_then(|k| self.unique_holder(k))
        {
            return Ok(InsertOutcome::Existing(holder.clone()));
        }
        if self.records.contains_key(&job.id) {
            return Err(StoreError::InvalidJob {
                id: job.id,
                source: JobError::Invalid {
                    field: "id",
                    reason: "a job with this id is already stored".into(),
                },
            });
        }
        self.put(job.clone());
        Ok(InsertOutcome::Inserted(job))
    }

    fn get(&self, id: JobId) -> Result<&Job, StoreError> {
        self.records.get(&id).ok_or(StoreError::JobNotFound { id })
    }

    /// A transition that names an attempt: the rule's job stored, or the
    /// rule's reason to change nothing.
    pub(super) fn fenced(
        &mut self,
        id: JobId,
        rule: impl FnOnce(&Job) -> Result<Job, rules::Stale>,
    ) -> Result<Outcome, StoreError> {
        match rule(self.get(id)?) {
            Ok(new) => {
                self.put(new.clone());
                Ok(Outcome::Applied(new))
            }
            Err(stale) => Ok(stale.into()),
        }
    }

    fn claim(&mut self, request: &ClaimRequest, pause: &PauseState) -> Vec<Job> {
        let now = request.now;
        if request.limit == 0 || pause.all {
            return Vec::new();
        }
        let quota = |worker: &str| match &request.per_worker {
            None => Some(request.limit),
            Some(map) => map.get(worker).copied(),
        };
        let mut ready: Vec<&Job> = self
            .queued
            .iter()
            .filter_map(|id| self.records.get(id))
            .filter(|j| rules::is_ready(j, now) && !pause.is_paused(&j.worker_name))
            .filter(|j| quota(&j.worker_name).is_some_and(|q| q > 0))
            .collect();
        ready.sort_by(|a, b| rules::claim_order(a, b));
        let mut taken: HashMap<&str, usize> = HashMap::new();
        let mut claimed = Vec::new();
        for job in ready {
            if claimed.len() >= request.limit {
                break;
            }
            let count = taken.entry(job.worker_name.as_str()).or_default();
            if quota(&job.worker_name).is_some_and(|q| *count < q) {
                if let Some(new) = rules::claim(job, now) {
                    *count += 1;
                    claimed.push(new);
                }
            }
        }
        for job in &claimed {
            self.put(job.clone());
        }
        claimed
    }

    /// Ended jobs beyond the retention limits, oldest ended first.
    fn prunable(&self, retention: &Retention, now: DateTime<Utc>) -> Vec<JobId> {
        let mut ended: Vec<(DateTime<Utc>, JobId)> = self
            .records
            .values()
            .filter_map(|j| rules::ended_at(j).map(|at| (at, j.id)))
            .collect();
        ended.sort_unstable();
        let mut out = Vec::new();
        let mut taken = 0;
        if let Some(max) = retention.max_count {
            taken = ended.len().saturating_sub(max);
            out.extend(ended[..taken].iter().map(|(_, id)| *id));
        }
        if let Some(cutoff) = cutoff(retention, now) {
            out.extend(
                ended[taken..]
                    .iter()
                    .take_while(|(at, _)| *at < cutoff)
                    .map(|(_, id)| *id),
            );
        }
        out
    }

    fn remove(&mut self, id: JobId) -> bool {
        match self.records.remove(&id) {
            Some(job) => {
                self.unindex(&job);
                true
            }
            None => false,
        }
    }
}

/// `now - max_age`, when retention has an age limit (and it is in range).
fn cutoff(retention: &Retention, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    retention
        .max_age
        .and_then(|age| chrono::Duration::from_std(age).ok())
        .and_then(|age| now.checked_sub_signed(age))
}

/// [`rules::validate_new`], as a store error naming the job.
fn validate_new(job: &Job) -> Result<(), StoreError> {
    rules::validate_new(job).map_err(|source| StoreError::InvalidJob { id: job.id, source })
}

#[async_trait]
impl JobStore for InMemoryStore {
    async fn insert(&self, job: Job) -> Result<InsertOutcome, StoreError> {
        validate_new(&job)?;
        self.write()?.jobs.insert(job)
    }

    async fn insert_many(&self, jobs: Vec<Job>) -> Result<Vec<InsertOutcome>, StoreError> {
        for job in &jobs {
            validate_new(job)?;
        }
        let mut state = self.write()?;
        jobs.into_iter().map(|job| state.jobs.insert(job)).collect()
    }

    async fn get_job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        Ok(self.lock().jobs.records.get(&id).cloned())
    }

    async fn list_jobs(&self, query: &ListQuery) -> Result<JobPage, StoreError> {
        let limit = query.page_size();
        let state = self.lock();
        let records = &state.jobs.records;
        let older = match query.cursor {
            Some(cursor) => records.range(..cursor),
            None => records.range(..),
        };
        let mut jobs: Vec<Job> = older
            .rev()
            .map(|(_, job)| job)
            .filter(|j| query.status.is_none_or(|s| j.status == s))
            .filter(|j| query.worker.as_deref().is_none_or(|w| j.worker_name == w))
            .take(limit.saturating_add(1))
            .cloned()
            .collect();
        let more = jobs.len() > limit;
        jobs.truncate(limit);
        let next_cursor = if more {
            jobs.last().map(|j| j.id)
        } else {
            None
        };
        Ok(JobPage { jobs, next_cursor })
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<Job>, StoreError> {
        let mut state = self.write()?;
        let State {
            jobs, schedules, ..
        } = &mut *state;
        Ok(jobs.claim(request, schedules.pause()))
    }

    async fn complete(
        &self,
        id: JobId,
        attempt: u32,
        result: Value,
    ) -> Result<Outcome, StoreError> {
        let now = Utc::now();
        self.write()?
            .jobs
            .fenced(id, |job| rules::complete(job, attempt, result, now))
    }

    async fn fail(
        &self,
        id: JobId,
        attempt: u32,
        error: String,
        action: FailAction,
    ) -> Result<Outcome, StoreError> {
        let now = Utc::now();
        self.write()?
            .jobs
            .fenced(id, |job| rules::fail(job, attempt, error, action, now))
    }

    async fn cancel(&self, id: JobId) -> Result<CancelOutcome, StoreError> {
        let now = Utc::now();
        let mut state = self.write()?;
        let job = state.jobs.get(id)?;
        Ok(match rules::cancel(job, now) {
            CancelMove::Cancel(new) => {
                state.jobs.put(new.clone());
                CancelOutcome::Cancelled(new)
            }
            CancelMove::Request(new) => {
                state.jobs.put(new.clone());
                CancelOutcome::Requested(new)
            }
            CancelMove::AlreadyRequested => CancelOutcome::Requested(job.clone()),
            CancelMove::AlreadyEnded => CancelOutcome::AlreadyEnded(job.clone()),
        })
    }

    async fn ack_cancel(&self, id: JobId, attempt: u32) -> Result<Outcome, StoreError> {
        let now = Utc::now();
        self.write()?
            .jobs
            .fenced(id, |job| rules::ack_cancel(job, attempt, now))
    }

    async fn discard(&self, id: JobId, error: String) -> Result<Outcome, StoreError> {
        let now = Utc::now();
        self.write()?
            .jobs
            .fenced(id, |job| rules::discard(job, error, now))
    }

    async fn recover(&self, now: DateTime<Utc>) -> Result<Recovered, StoreError> {
        let mut state = self.write()?;
        let recovered: Vec<Job> = state
            .jobs
            .records
            .values()
            .filter_map(|job| rules::recover(job, now))
            .collect();
        let mut answer = Recovered::default();
        for job in recovered {
            match job.status {
                JobStatus::Queued => answer.requeued.push(job.id),
                _ => answer.cancelled.push(job.id),
            }
            state.jobs.put(job);
        }
        Ok(answer)
    }

    async fn next_wake(
        &self,
        workers: Option<&[String]>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let state = self.lock();
        let pause = state.schedules.pause();
        if pause.all {
            return Ok(None);
        }
        let jobs = &state.jobs;
        Ok(jobs
            .queued
            .iter()
            .filter_map(|id| jobs.records.get(id))
            .filter(|j| !pause.is_paused(&j.worker_name))
            .filter(|j| workers.is_none_or(|ws| ws.contains(&j.worker_name)))
            .map(|j| j.run_at)
            .min())
    }

    async fn prune(&self, retention: &Retention, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut state = self.write()?;
        let doomed = state.jobs.prunable(retention, now);
        let mut removed = 0;
        for id in &doomed {
            if state.jobs.remove(*id) {
                removed += 1;
            }
        }
        state.steps.drop_jobs(&doomed);
        if let Some(cutoff) = cutoff(retention, now) {
            state.usage.prune_calls(cutoff);
        }
        Ok(removed)
    }

    async fn counts(&self) -> Result<JobCounts, StoreError> {
        let state = self.lock();
        let mut counts = JobCounts {
            by_status: JobStatus::ALL.into_iter().map(|s| (s, 0)).collect(),
            by_worker: BTreeMap::new(),
        };
        for job in state.jobs.records.values() {
            *counts.by_status.entry(job.status).or_default() += 1;
            *counts
                .by_worker
                .entry(job.worker_name.clone())
                .or_default()
                .entry(job.status)
                .or_default() += 1;
        }
        Ok(counts)
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.healthy()
    }
}
