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
