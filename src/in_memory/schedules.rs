//! Schedules and the pause state in memory, and the [`ScheduleStore`]
//! port: a firing is planned by [`plan_firings`], its jobs built by
//! [`rules::scheduled_job`], and stored with the advanced schedule under
//! the store's one lock, so it is all or nothing.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::jobs::Jobs;
use super::InMemoryStore;
use crate::job::rules;
use crate::job::schedule::{plan_firings, Schedule, ScheduleError};
use crate::job::Job;
use crate::store::{
    parked, validate_schedule, FiredSchedule, PauseState, PauseTarget, ScheduleStore, StoreError,
};

/// The schedules by id, and the pause state.
#[derive(Default)]
pub(super) struct Schedules {
    by_id: BTreeMap<String, Schedule>,
    pause: PauseState,
}

impl Schedules {
    /// The pause state, which claims and wake-ups honour.
    pub(super) fn pause(&self) -> &PauseState {
        &self.pause
    }
}

/// Fires one due schedule into `jobs`: the schedule as it must be stored
/// next and the jobs stored for it, or `None` when it is not due.
fn fire(
    schedule: &Schedule,
    now: DateTime<Utc>,
    jobs: &mut Jobs,
) -> Result<Option<FiredSchedule>, StoreError> {
    let plan = match plan_firings(
        &schedule.spec,
        schedule.next_fire_at,
        now,
        schedule.catch_up,
    ) {
        Ok(plan) => plan,
        Err(ScheduleError::Exhausted { .. }) => {
            return Ok(Some(FiredSchedule {
                schedule: parked(schedule),
                jobs: Vec::new(),
            }))
        }
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
    let mut fired: Vec<Job> = Vec::new();
    for fire_at in &plan.fire_times {
        if let Some(key) = &schedule.unique_key {
            let held = jobs.unique_holder(key).is_some()
                || fired.iter().any(|j| j.unique_key.as_ref() == Some(key));
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
        fired.push(job);
    }
    // Only now, with nothing left to fail, is anything stored.
    for job in &fired {
        jobs.put(job.clone());
    }
    let mut advanced = schedule.clone();
    advanced.next_fire_at = plan.next_fire_at;
    advanced.last_fired_at = Some(last);
    Ok(Some(FiredSchedule {
        schedule: advanced,
        jobs: fired,
    }))
}

#[async_trait]
impl ScheduleStore for InMemoryStore {
    async fn set_paused(
        &self,
        target: PauseTarget,
        paused: bool,
    ) -> Result<PauseState, StoreError> {
        target.validate()?;
        let mut state = self.write()?;
        let pause = &mut state.schedules.pause;
        match (target, paused) {
            (PauseTarget::All, p) => pause.all = p,
            (PauseTarget::Worker(w), true) => {
                pause.workers.insert(w);
            }
            (PauseTarget::Worker(w), false) => {
                pause.workers.remove(&w);
            }
        }
        Ok(pause.clone())
    }

    async fn pause_state(&self) -> Result<PauseState, StoreError> {
        Ok(self.lock().schedules.pause.clone())
    }

    async fn put_schedule(&self, schedule: Schedule) -> Result<(), StoreError> {
        validate_schedule(&schedule)?;
        self.write()?
            .schedules
            .by_id
            .insert(schedule.id.clone(), schedule);
        Ok(())
    }

    async fn get_schedule(&self, id: &str) -> Result<Option<Schedule>, StoreError> {
        Ok(self.lock().schedules.by_id.get(id).cloned())
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        Ok(self.lock().schedules.by_id.values().cloned().collect())
    }

    async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.write()?.schedules.by_id.remove(id).is_some())
    }

    async fn fire_due_schedules(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<FiredSchedule>, StoreError> {
        let mut state = self.write()?;
        let due: Vec<Schedule> = state
            .schedules
            .by_id
            .values()
            .filter(|s| s.next_fire_at <= now)
            .cloned()
            .collect();
        let mut answer = Vec::new();
        for schedule in due {
            if let Some(done) = fire(&schedule, now, &mut state.jobs)? {
                state
                    .schedules
                    .by_id
                    .insert(schedule.id.clone(), done.schedule.clone());
                answer.push(done);
            }
        }
        Ok(answer)
    }

    async fn next_schedule_fire(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .lock()
            .schedules
            .by_id
            .values()
            .map(|s| s.next_fire_at)
            .min())
    }
}
