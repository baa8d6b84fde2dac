//! In-memory indexes derived from the job records.
//!
//! Every change goes through [`Index::replace`] under the same mutex as the
//! compare-and-swap of the record it mirrors, so the index always describes
//! exactly the records in sled; at open it is rebuilt by scanning them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::job::{Job, JobId, JobStatus};
use crate::store::{JobCounts, PauseState, Retention};

/// Order of ready jobs within one worker: priority descending (stored
/// negated), then earliest `runAt`, then oldest id.
type ReadyKey = (i64, DateTime<Utc>, Uuid);

type PerStatus = [BTreeSet<Uuid>; JobStatus::ALL.len()];

/// A claim candidate: its order key and its worker.
pub(crate) struct Candidate {
    pub key: ReadyKey,
    pub id: JobId,
}

#[derive(Default)]
pub(crate) struct Index {
    names: HashSet<Arc<str>>,
    ready: HashMap<Arc<str>, BTreeSet<ReadyKey>>,
    due: HashMap<Arc<str>, BTreeSet<(DateTime<Utc>, Uuid)>>,
    by_status: PerStatus,
    by_worker: HashMap<Arc<str>, PerStatus>,
    ended: BTreeSet<(DateTime<Utc>, Uuid)>,
    /// Waiting jobs by `runAt`: their earliest approval deadline.
    waiting: BTreeSet<(DateTime<Utc>, Uuid)>,
    unique: HashMap<String, Uuid>,
    pub(crate) paused: PauseState,
}

fn ready_key(job: &Job) -> ReadyKey {
    (-i64::from(job.priority), job.run_at, job.id)
}

impl Index {
    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.names.get(name) {
            return Arc::clone(n);
        }
        let n: Arc<str> = Arc::from(name);
        self.names.insert(Arc::clone(&n));
        n
    }

    /// Adds the entries of a stored job.
    pub(crate) fn add(&mut self, job: &Job) {
        let worker = self.intern(&job.worker_name);
        let slot = job.status.index();
        self.by_status[slot].insert(job.id);
        self.by_worker.entry(Arc::clone(&worker)).or_default()[slot].insert(job.id);
        match job.status {
            JobStatus::Queued => {
                self.ready
                    .entry(Arc::clone(&worker))
                    .or_default()
                    .insert(ready_key(job));
                self.due
                    .entry(worker)
                    .or_default()
                    .insert((job.run_at, job.id));
            }
            JobStatus::Running => {}
            JobStatus::Waiting => {
                self.waiting.insert((job.run_at, job.id));
            }
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled => {
                self.ended.insert((job.updated_at, job.id));
            }
        }
        if job.status.is_active() {
            if let Some(key) = &job.unique_key {
                self.unique.insert(key.clone(), job.id);
            }
        }
    }

    /// Removes the entries of a stored job (the exact record being replaced).
    pub(crate) fn remove(&mut self, job: &Job) {
        let slot = job.status.index();
        self.by_status[slot].remove(&job.id);
        let name: &str = &job.worker_name;
        if let Some(sets) = self.by_worker.get_mut(name) {
            sets[slot].remove(&job.id);
            if sets.iter().all(BTreeSet::is_empty) {
                self.by_worker.remove(name);
                self.names.remove(name);
            }
        }
        if job.status == JobStatus::Queued {
            if let Some(set) = self.ready.get_mut(name) {
                set.remove(&ready_key(job));
                if set.is_empty() {
                    self.ready.remove(name);
                }
            }
            if let Some(set) = self.due.get_mut(name) {
                set.remove(&(job.run_at, job.id));
                if set.is_empty() {
                    self.due.remove(name);
                }
            }
        }
        if job.status.is_terminal() {
            self.ended.remove(&(job.updated_at, job.id));
        }
        if job.status == JobStatus::Waiting {
            self.waiting.remove(&(job.run_at, job.id));
        }
        if let Some(key) = &job.unique_key {
            if self.unique.get(key) == Some(&job.id) {
                self.unique.remove(key);
            }
        }
    }

    /// What the index reads of `job` (its key fields), without the args,
    /// context, result and errors: what a transition keeps of the version
    /// it replaces, so the rule can take that version over instead of
    /// copying it.
    pub(crate) fn shell(job: &Job) -> Job {
        Job {
            id: job.id,
            worker_name: job.worker_name.clone(),
            status: job.status,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            outages: job.outages,
            parked: job.parked,
            priority: job.priority,
            run_at: job.run_at,
            unique_key: job.unique_key.clone(),
            timeout_ms: job.timeout_ms,
            args: serde_json::Value::Null,
            ctx: Default::default(),
            result: None,
            error: None,
            errors: Vec::new(),
            cancel_requested: job.cancel_requested,
            approvals: Vec::new(),
            created_at: job.created_at,
            updated_at: job.updated_at,
        }
    }

    /// Replaces the entries of `old` by those of `new`.
    pub(crate) fn replace(&mut self, old: &Job, new: &Job) {
        self.remove(old);
        self.add(new);
    }

    /// The active job holding a unique key.
    pub(crate) fn unique_holder(&self, key: &str) -> Option<JobId> {
        self.unique.get(key).copied()
    }

    /// Ready jobs in claim order, honouring the pause state and per-worker quotas.
    pub(crate) fn claim_candidates(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        per_worker: Option<&BTreeMap<String, usize>>,
    ) -> Vec<Candidate> {
        let mut out = Vec::new();
        if limit == 0 || self.paused.all {
            return out;
        }
        for (worker, set) in &self.ready {
            if self.paused.workers.contains(&**worker) {
                continue;
            }
            let quota = match per_worker {
                None => limit,
                Some(map) => match map.get(&**worker) {
                    Some(q) => (*q).min(limit),
                    None => continue,
                },
            };
            collect_ready(set, now, quota, &mut out);
        }
        out.sort_by_key(|a| a.key);
        out.truncate(limit);
        out
    }

    /// Earliest `runAt` among queued jobs of unpaused workers (in `workers` if given).
    pub(crate) fn next_wake(&self, workers: Option<&[String]>) -> Option<DateTime<Utc>> {
        if self.paused.all {
            return None;
        }
        self.due
            .iter()
            .filter(|(w, _)| !self.paused.workers.contains(&***w))
            .filter(|(w, _)| match workers {
                None => true,
                Some(ws) => ws.iter().any(|x| x.as_str() == &***w),
            })
            .filter_map(|(_, set)| set.first().map(|(at, _)| *at))
            .min()
    }

    /// Ids of jobs that are running.
    pub(crate) fn running(&self) -> Vec<JobId> {
        self.by_status[JobStatus::Running.index()]
            .iter()
            .copied()
            .collect()
    }

    /// Ids of waiting jobs, oldest first.
    pub(crate) fn waiting(&self) -> Vec<JobId> {
        let mut ids: Vec<JobId> = self.by_status[JobStatus::Waiting.index()]
            .iter()
            .copied()
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Ids of waiting jobs whose `runAt` (earliest deadline) is at or
    /// before `now`.
    pub(crate) fn waiting_due(&self, now: DateTime<Utc>) -> Vec<JobId> {
        self.waiting
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| *id)
            .collect()
    }

    /// The earliest `runAt` of a waiting job, before `never`.
    pub(crate) fn next_deadline(&self, never: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.waiting
            .first()
            .map(|(at, _)| *at)
            .filter(|at| *at < never)
    }

    /// Ids matching a filter, newest first, strictly older than `cursor`,
    /// at most `limit`.
    pub(crate) fn list(
        &self,
        status: Option<JobStatus>,
        worker: Option<&str>,
        cursor: Option<JobId>,
        limit: usize,
        all_ids: impl FnOnce(Option<JobId>, usize) -> Vec<JobId>,
    ) -> Vec<JobId> {
        let upper = match cursor {
            Some(c) => Bound::Excluded(c),
            None => Bound::Unbounded,
        };
        let take = |set: &BTreeSet<Uuid>| -> Vec<JobId> {
            set.range((Bound::Unbounded, upper))
                .rev()
                .take(limit)
                .copied()
                .collect()
        };
        match (status, worker) {
            (Some(s), None) => take(&self.by_status[s.index()]),
            (Some(s), Some(w)) => self
                .by_worker
                .get(w)
                .map(|sets| take(&sets[s.index()]))
                .unwrap_or_default(),
            (None, Some(w)) => {
                let Some(sets) = self.by_worker.get(w) else {
                    return Vec::new();
                };
                let mut ids: Vec<JobId> = sets.iter().flat_map(take).collect();
                ids.sort_unstable_by(|a, b| b.cmp(a));
                ids.truncate(limit);
                ids
            }
            (None, None) => all_ids(cursor, limit),
        }
    }

    /// Counts by status and by worker.
    pub(crate) fn counts(&self) -> JobCounts {
        let mut counts = JobCounts::default();
        for st in JobStatus::ALL {
            counts
                .by_status
                .insert(st, self.by_status[st.index()].len() as u64);
        }
        for (worker, sets) in &self.by_worker {
            let per: BTreeMap<JobStatus, u64> = JobStatus::ALL
                .into_iter()
                .filter(|st| !sets[st.index()].is_empty())
                .map(|st| (st, sets[st.index()].len() as u64))
                .collect();
            counts.by_worker.insert(worker.to_string(), per);
        }
        counts
    }

    /// Ended jobs beyond the retention limits, oldest ended first.
    pub(crate) fn prunable(&self, retention: &Retention, now: DateTime<Utc>) -> Vec<JobId> {
        let mut out: Vec<JobId> = Vec::new();
        let mut taken = 0usize;
        if let Some(max) = retention.max_count {
            let excess = self.ended.len().saturating_sub(max);
            out.extend(self.ended.iter().take(excess).map(|(_, id)| *id));
            taken = excess;
        }
        if let Some(age) = retention.max_age {
            let cutoff = chrono::Duration::from_std(age)
                .ok()
                .and_then(|d| now.checked_sub_signed(d));
            if let Some(cutoff) = cutoff {
                out.extend(
                    self.ended
                        .iter()
                        .skip(taken)
                        .take_while(|(at, _)| *at < cutoff)
                        .map(|(_, id)| *id),
                );
            }
        }
        out
    }
}

/// Walks one worker's ready set in order, skipping to the next priority as
/// soon as a job is not yet due, so delayed jobs cost one step per priority.
fn collect_ready(
    set: &BTreeSet<ReadyKey>,
    now: DateTime<Utc>,
    quota: usize,
    out: &mut Vec<Candidate>,
) {
    let mut taken = 0;
    let mut lower: Bound<ReadyKey> = Bound::Unbounded;
    'priorities: while taken < quota {
        for key in set.range((lower, Bound::Unbounded)) {
            if key.1 <= now {
                out.push(Candidate {
                    key: *key,
                    id: key.2,
                });
                taken += 1;
                if taken >= quota {
                    break 'priorities;
                }
            } else {
                lower = Bound::Excluded((key.0, DateTime::<Utc>::MAX_UTC, Uuid::max()));
                continue 'priorities;
            }
        }
        break;
    }
}
