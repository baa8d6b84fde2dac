//! [`ScheduleStore`] for [`SledStore`]: the pause flags (tree `pause`) and
//! the recurring schedules (tree `schedules`), both mirrored in memory, and
//! their firing: a schedule's jobs and its advanced record are written in
//! one sled transaction (rare, so off the hot path), so each firing happens
//! once across restarts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::index::Index;
use super::{keys, SledStore};
use crate::job::rules;
use crate::job::schedule::{plan_firings, Schedule, ScheduleError};
use crate::job::Job;
use crate::store::{
    parked, validate_schedule, FiredSchedule, PauseState, PauseTarget, ScheduleStore, StoreError,
};

#[async_trait]
impl ScheduleStore for SledStore {
    async fn set_paused(
        &self,
        target: PauseTarget,
        paused: bool,
    ) -> Result<PauseState, StoreError> {
        self.writable()?;
        target.validate()?;
        let key = match &target {
            PauseTarget::All => keys::PAUSE_ALL.to_vec(),
            PauseTarget::Worker(w) => keys::pause_worker_key(w),
        };
        let state = {
            let mut index = self.index();
            let result = if paused {
                self.inner.pause.insert(key, &b"1"[..]).map(|_| ())
            } else {
                self.inner.pause.remove(key).map(|_| ())
            };
            result.map_err(|e| self.write_error("set_paused", e))?;
            match (target, paused) {
                (PauseTarget::All, p) => index.paused.all = p,
                (PauseTarget::Worker(w), true) => {
                    index.paused.workers.insert(w);
                }
                (PauseTarget::Worker(w), false) => {
                    index.paused.workers.remove(&w);
                }
            }
            index.paused.clone()
        };
        self.durable("set_paused").await?;
        Ok(state)
    }

    async fn pause_state(&self) -> Result<PauseState, StoreError> {
        Ok(self.index().paused.clone())
    }

    async fn put_schedule(&self, schedule: Schedule) -> Result<(), StoreError> {
        self.writable()?;
        validate_schedule(&schedule)?;
        let bytes = keys::encode_schedule(&schedule)?;
        {
            let mut schedules = self.schedules();
            self.inner
                .schedules_tree
                .insert(schedule.id.as_bytes(), bytes)
                .map_err(|e| self.write_error("put_schedule", e))?;
            schedules.insert(schedule.id.clone(), schedule);
        }
        self.durable("put_schedule").await
    }

    async fn get_schedule(&self, id: &str) -> Result<Option<Schedule>, StoreError> {
        Ok(self.schedules().get(id).cloned())
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        Ok(self.schedules().values().cloned().collect())
    }

    async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError> {
        self.writable()?;
        let existed = {
            let mut schedules = self.schedules();
            self.inner
                .schedules_tree
                .remove(id.as_bytes())
                .map_err(|e| self.write_error("delete_schedule", e))?;
            schedules.remove(id).is_some()
        };
        self.durable("delete_schedule").await?;
        Ok(existed)
    }

    async fn fire_due_schedules(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<FiredSchedule>, StoreError> {
        self.writable()?;
        let mut fired = Vec::new();
        {
            let mut schedules = self.schedules();
            let due: Vec<String> = schedules
                .values()
                .filter(|s| s.next_fire_at <= now)
                .map(|s| s.id.clone())
                .collect();
            for id in due {
                let Some(schedule) = schedules.get(&id).cloned() else {
                    continue;
                };
                if let Some(done) = self.fire_one(&schedule, now)? {
                    schedules.insert(id, done.schedule.clone());
                    fired.push(done);
                }
            }
        }
        if !fired.is_empty() {
            self.durable("fire_due_schedules").await?;
        }
        Ok(fired)
    }

    async fn next_schedule_fire(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.schedules().values().map(|s| s.next_fire_at).min())
    }
}

impl SledStore {
    /// Fires one due schedule, under the schedules lock: the jobs of every
    /// time it was due and its advanced record in one transaction, under the
    /// index lock too (so the unique keys seen are the ones written against).
    /// `None` when it was not due after all.
    fn fire_one(
        &self,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> Result<Option<FiredSchedule>, StoreError> {
        let plan = match plan_firings(
            &schedule.spec,
            schedule.next_fire_at,
            now,
            schedule.catch_up,
        ) {
            Ok(plan) => plan,
            Err(ScheduleError::Exhausted { .. }) => return self.park(schedule).map(Some),
            Err(source) => {
                return Err(StoreError::Schedule {
                    id: schedule.id.clone(),
                    source,
                })
            }
        };
        let Some(last) = plan.fire_times.last().copied() else {
            return Ok(None);
        };
        let mut advanced = schedule.clone();
        advanced.next_fire_at = plan.next_fire_at;
        advanced.last_fired_at = Some(last);

        let mut index = self.index();
        let jobs = scheduled_jobs(&index, schedule, &plan.fire_times, now)?;
        self.write_firing(&jobs, &advanced)?;
        for job in &jobs {
            index.add(job);
        }
        Ok(Some(FiredSchedule {
            schedule: advanced,
            jobs,
        }))
    }

    /// A schedule that never fires again is parked instead of being found
    /// due for ever.
    fn park(&self, schedule: &Schedule) -> Result<FiredSchedule, StoreError> {
        let parked = parked(schedule);
        let bytes = keys::encode_schedule(&parked)?;
        self.inner
            .schedules_tree
            .insert(parked.id.as_bytes(), bytes)
            .map_err(|e| self.write_error("fire_due_schedules", e))?;
        Ok(FiredSchedule {
            schedule: parked,
            jobs: Vec::new(),
        })
    }

    /// The firing's jobs and the advanced schedule, in one transaction.
    fn write_firing(&self, jobs: &[Job], advanced: &Schedule) -> Result<(), StoreError> {
        let schedule_bytes = keys::encode_schedule(advanced)?;
        let mut encoded = Vec::with_capacity(jobs.len());
        for job in jobs {
            encoded.push((keys::job_key(job.id), keys::encode_job(job)?));
        }
        let result: Result<(), TransactionError<()>> =
            (&self.inner.jobs, &self.inner.schedules_tree).transaction(
                |(jobs_tx, schedules_tx)| {
                    for (key, bytes) in &encoded {
                        jobs_tx.insert(&key[..], bytes.as_slice())?;
                    }
                    schedules_tx.insert(advanced.id.as_bytes(), schedule_bytes.as_slice())?;
                    Ok::<(), ConflictableTransactionError<()>>(())
                },
            );
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Storage(e)) => Err(self.write_error("fire_due_schedules", e)),
            Err(TransactionError::Abort(())) => Err(StoreError::InvalidInput {
                field: "schedule",
                reason: format!("firing schedule {:?} was aborted", advanced.id),
            }),
        }
    }
}

/// The jobs of one firing, one per due time, except where the schedule's
/// unique key is already held (by an active job, or by a job of this
/// firing): then that time coalesces into the holder.
fn scheduled_jobs(
    index: &Index,
    schedule: &Schedule,
    fire_times: &[DateTime<Utc>],
    now: DateTime<Utc>,
) -> Result<Vec<Job>, StoreError> {
    let mut jobs: Vec<Job> = Vec::new();
    for fire_at in fire_times {
        if let Some(key) = &schedule.unique_key {
            let held = index.unique_holder(key).is_some()
                || jobs.iter().any(|j| j.unique_key.as_deref() == Some(key));
            if held {
                continue;
            }
        }
        let job = rules::scheduled_job(schedule, *fire_at, now).map_err(|e| {
            StoreError::InvalidInput {
                field: "schedule",
                reason: format!("schedule {:?}: {e}", schedule.id),
            }
        })?;
        jobs.push(job);
    }
    Ok(jobs)
}
