//! The schedules port: recurring schedules and the pause state, the two
//! things that decide what the queue may hand out besides the jobs.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::job::schedule::Schedule;

use super::{FiredSchedule, PauseState, PauseTarget, StoreError};

/// Durable storage of schedules and pauses. Object safe; every method that
/// changes state returns only once the change is durable.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Pauses or resumes claiming for everything or one worker; durable.
    async fn set_paused(&self, target: PauseTarget, paused: bool)
        -> Result<PauseState, StoreError>;

    /// The current pause state.
    async fn pause_state(&self) -> Result<PauseState, StoreError>;

    /// Creates or replaces a schedule (its spec is validated).
    async fn put_schedule(&self, schedule: Schedule) -> Result<(), StoreError>;

    /// The schedule with this id.
    async fn get_schedule(&self, id: &str) -> Result<Option<Schedule>, StoreError>;

    /// All schedules, by id.
    async fn list_schedules(&self) -> Result<Vec<Schedule>, StoreError>;

    /// Deletes a schedule; returns whether it existed.
    async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError>;

    /// Fires every schedule due at `now` (see
    /// [`crate::job::schedule::plan_firings`]): enqueues its jobs and advances
    /// it, both in one atomic, durable step, so each firing happens once
    /// across restarts.
    async fn fire_due_schedules(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<FiredSchedule>, StoreError>;

    /// The earliest `nextFireAt` among schedules.
    async fn next_schedule_fire(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
}

/// Checks a schedule handed to [`ScheduleStore::put_schedule`]: a non-empty
/// id ([`StoreError::InvalidInput`] `id`), a worker name
/// (`workerName`), and a spec that can produce fire times
/// ([`StoreError::Schedule`] naming the schedule). Every adapter calls it,
/// so a bad schedule is refused alike everywhere and nothing is stored.
pub fn validate_schedule(schedule: &Schedule) -> Result<(), StoreError> {
    if schedule.id.is_empty() {
        return Err(StoreError::InvalidInput {
            field: "id",
            reason: "a schedule id must not be empty".into(),
        });
    }
    if schedule.worker_name.trim().is_empty() {
        return Err(StoreError::InvalidInput {
            field: "workerName",
            reason: format!("schedule {:?} has an empty worker name", schedule.id),
        });
    }
    schedule
        .spec
        .validate()
        .map_err(|source| StoreError::Schedule {
            id: schedule.id.clone(),
            source,
        })
}

/// A schedule whose spec has no fire time left (a cron expression bound to
/// a past year), as [`ScheduleStore::fire_due_schedules`] stores it: kept,
/// so it can be listed and deleted, but with `nextFireAt` at
/// 9999-12-31T23:59:59Z (far, and still valid RFC 3339), so it is not found
/// due again on every pass.
pub fn parked(schedule: &Schedule) -> Schedule {
    let mut parked = schedule.clone();
    parked.next_fire_at =
        DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(schedule.next_fire_at);
    parked
}
