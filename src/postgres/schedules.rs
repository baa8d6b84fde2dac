//! Schedules and pauses as rows, and the [`ScheduleStore`] port. A due
//! schedule's row is locked (`FOR UPDATE SKIP LOCKED`) while its jobs are
//! inserted and it is advanced, in one transaction: however many nodes look
//! at the same moment, each firing happens once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use tokio_postgres::types::Json;

use super::{db, jobs, PostgresStore};
use crate::job::rules;
use crate::job::schedule::{plan_firings, Schedule, ScheduleError};
use crate::store::{
    parked, validate_schedule, FiredSchedule, PauseState, PauseTarget, ScheduleStore, StoreError,
};

/// The pause row of a target: `*` for everything.
pub(super) fn target_key(target: &PauseTarget) -> &str {
    match target {
        PauseTarget::All => "*",
        PauseTarget::Worker(w) => w.as_str(),
    }
}

async fn read_pauses(client: &tokio_postgres::Client) -> Result<PauseState, StoreError> {
    let rows = client
        .query("SELECT target FROM pauses", &[])
        .await
        .map_err(db("pause state"))?;
    let mut state = PauseState::default();
    for row in rows {
        let target: String = row.get(0);
        if target == "*" {
            state.all = true;
        } else {
            state.workers.insert(target);
        }
    }
    Ok(state)
}

pub(super) fn schedule_of(row: &tokio_postgres::Row) -> Result<Schedule, StoreError> {
    match row.try_get::<_, Json<Schedule>>(0) {
        Ok(Json(s)) => Ok(s),
        Err(e) => Err(StoreError::CorruptRecord {
            what: "schedule",
            key: row.try_get::<_, String>(1).unwrap_or_default(),
            reason: e.to_string(),
        }),
    }
}

pub(super) async fn store_schedule(
    tx: &Transaction<'_>,
    schedule: &Schedule,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO schedules (id, next_fire_at, data) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET next_fire_at = $2, data = $3",
        &[&schedule.id, &schedule.next_fire_at, &Json(schedule)],
    )
    .await
    .map_err(db("save schedule"))?;
    Ok(())
}

/// Fires one due, locked schedule: its jobs inserted (a firing whose unique
/// key is held by an active job coalesces into it) and the schedule
/// advanced, or `None` when it is not due after all.
async fn fire(
    tx: &Transaction<'_>,
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
        Err(ScheduleError::Exhausted { .. }) => {
            let parked = parked(schedule);
            store_schedule(tx, &parked).await?;
            return Ok(Some(FiredSchedule {
                schedule: parked,
                jobs: Vec::new(),
            }));
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
    let mut planned = Vec::with_capacity(plan.fire_times.len());
    for fire_at in &plan.fire_times {
        let job = rules::scheduled_job(schedule, *fire_at, now).map_err(|e| {
            StoreError::InvalidInput {
                field: "schedule",
                reason: format!("schedule {:?}: {e}", schedule.id),
            }
        })?;
        planned.push(job);
    }
    let fired = jobs::insert_all(tx, planned)
        .await?
        .into_iter()
        .filter_map(|outcome| match outcome {
            crate::store::InsertOutcome::Inserted(job) => Some(job),
            crate::store::InsertOutcome::Existing(_) => None,
        })
        .collect();
    let mut advanced = schedule.clone();
    advanced.next_fire_at = plan.next_fire_at;
    advanced.last_fired_at = Some(last);
    store_schedule(tx, &advanced).await?;
    Ok(Some(FiredSchedule {
        schedule: advanced,
        jobs: fired,
    }))
}

#[async_trait]
impl ScheduleStore for PostgresStore {
    async fn set_paused(
        &self,
        target: PauseTarget,
        paused: bool,
    ) -> Result<PauseState, StoreError> {
        target.validate()?;
        self.write("pause", move |mut client, shared| async move {
            let tx = client.transaction().await.map_err(db("pause"))?;
            let key = target_key(&target);
            if paused {
                tx.execute(
                    "INSERT INTO pauses (target) VALUES ($1) ON CONFLICT DO NOTHING",
                    &[&key],
                )
                .await
                .map_err(db("pause"))?;
            } else {
                tx.execute("DELETE FROM pauses WHERE target = $1", &[&key])
                    .await
                    .map_err(db("resume"))?;
            }
            tx.commit().await.map_err(db("pause"))?;
            if !paused {
                // A resume makes work claimable on every node.
                shared.wake_others();
            }
            read_pauses(&client).await
        })
        .await
    }

    async fn pause_state(&self) -> Result<PauseState, StoreError> {
        self.run("pause state", |client, _| async move {
            read_pauses(&client).await
        })
        .await
    }

    async fn put_schedule(&self, schedule: Schedule) -> Result<(), StoreError> {
        validate_schedule(&schedule)?;
        self.write("save schedule", move |mut client, shared| async move {
            let tx = client.transaction().await.map_err(db("save schedule"))?;
            store_schedule(&tx, &schedule).await?;
            tx.commit().await.map_err(db("save schedule"))?;
            // Every node reads the first fire time again when woken.
            shared.wake_others();
            Ok(())
        })
        .await
    }

    async fn get_schedule(&self, id: &str) -> Result<Option<Schedule>, StoreError> {
        let id = id.to_string();
        self.run("get schedule", move |client, _| async move {
            let row = client
                .query_opt("SELECT data, id FROM schedules WHERE id = $1", &[&id])
                .await
                .map_err(db("get schedule"))?;
            row.as_ref().map(schedule_of).transpose()
        })
        .await
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        self.run("list schedules", |client, _| async move {
            let rows = client
                .query("SELECT data, id FROM schedules ORDER BY id", &[])
                .await
                .map_err(db("list schedules"))?;
            rows.iter().map(schedule_of).collect()
        })
        .await
    }

    async fn delete_schedule(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.write("delete schedule", move |client, _| async move {
            let n = client
                .execute("DELETE FROM schedules WHERE id = $1", &[&id])
                .await
                .map_err(db("delete schedule"))?;
            Ok(n > 0)
        })
        .await
    }

    async fn fire_due_schedules(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<FiredSchedule>, StoreError> {
        self.write("fire schedules", move |mut client, shared| async move {
            let tx = client.transaction().await.map_err(db("fire schedules"))?;
            let rows = tx
                .query(
                    "SELECT data, id FROM schedules WHERE next_fire_at <= $1 \
                     ORDER BY id FOR UPDATE SKIP LOCKED",
                    &[&now],
                )
                .await
                .map_err(db("fire schedules"))?;
            let mut answer = Vec::new();
            for row in &rows {
                let schedule = schedule_of(row)?;
                if let Some(done) = fire(&tx, &schedule, now).await? {
                    answer.push(done);
                }
            }
            tx.commit().await.map_err(db("fire schedules"))?;
            if answer.iter().any(|fired| !fired.jobs.is_empty()) {
                shared.wake_others();
            }
            Ok(answer)
        })
        .await
    }

    async fn next_schedule_fire(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.run("next schedule fire", |client, _| async move {
            let row = client
                .query_one("SELECT min(next_fire_at) FROM schedules", &[])
                .await
                .map_err(db("next schedule fire"))?;
            Ok(row.get(0))
        })
        .await
    }
}
