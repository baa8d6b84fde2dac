//! Agent steps and the idempotency registry as rows, and the [`StepStore`]
//! and [`IdempotencyStore`] ports.
//!
//! - `steps`: one row per (job, step index), the record as the caller wrote
//!   its JSON. A save is one transaction that takes a per-job advisory lock
//!   (saves and clears of one job, on any node, go one at a time, so the
//!   contiguity rule holds), checks the rule ([`check_step_index`]) and
//!   writes. It is **fenced** by the job's lease: while the job's row says
//!   it is running on another node, a save is refused with
//!   [`StoreError::Fenced`] and writes nothing, so a node that lost its
//!   lease (it froze, the rescuer requeued the job and another node claimed
//!   it) cannot write over the new owner's checkpoints. The job's row is
//!   read `FOR SHARE`, so its lease cannot move before the save commits.
//!   A job that no node runs (queued, or ended) is not fenced: a late save
//!   cannot interleave with another node's then, and the suite saves steps
//!   of such jobs; nor are ids without a job row (the port takes any id).
//! - `idempotency_keys`: each key claimed once by `INSERT … ON CONFLICT DO
//!   NOTHING` (the primary key decides between racing nodes), with the job
//!   the key names ([`job_of_key`]) beside it for retention.
//!
//! The checks are the ports' ([`validate_step_json`], [`validate_key`],
//! [`encode_key_value`]).

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use serde_json::Value;
use tokio_postgres::types::Json;
use uuid::Uuid;

use super::{db, PostgresStore};
use crate::job::{JobId, JobStatus};
use crate::store::{
    check_step_index, encode_key_value, job_of_key, validate_key, validate_step_json, Claim,
    IdempotencyStore, StepStore, StoreError,
};

/// The first half of the steps' advisory lock keys (`pg_advisory_xact_lock`
/// with two `int4`s, a key space of its own): "step" in ASCII.
const STEP_LOCK_CLASS: i32 = 0x7374_6570;

/// How many times a claim retries when the key it lost to is gone before it
/// could read it (pruned meanwhile with its job).
const CLAIM_ATTEMPTS: usize = 3;

/// Deletes the steps of `jobs` and the idempotency keys that name them.
pub(super) async fn drop_jobs(tx: &Transaction<'_>, jobs: &[Uuid]) -> Result<(), StoreError> {
    if jobs.is_empty() {
        return Ok(());
    }
    tx.execute("DELETE FROM steps WHERE job_id = ANY($1)", &[&jobs])
        .await
        .map_err(db("prune"))?;
    tx.execute(
        "DELETE FROM idempotency_keys WHERE job_id = ANY($1)",
        &[&jobs],
    )
    .await
    .map_err(db("prune"))?;
    Ok(())
}

/// The second half of a job's advisory lock key: its id folded to 32 bits
/// (two jobs that share it only wait for each other).
fn lock_key(job_id: JobId) -> i32 {
    let n = job_id.as_u128();
    let folded = (n ^ (n >> 32) ^ (n >> 64) ^ (n >> 96)) as u32;
    i32::from_ne_bytes(folded.to_ne_bytes())
}

/// Takes the job's step lock until the transaction ends.
async fn lock_steps(
    tx: &Transaction<'_>,
    op: &'static str,
    job_id: JobId,
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1, $2)")
        .await
        .map_err(db(op))?;
    tx.execute(&stmt, &[&STEP_LOCK_CLASS, &lock_key(job_id)])
        .await
        .map_err(db(op))?;
    Ok(())
}

fn corrupt(what: &'static str, key: String, reason: impl ToString) -> StoreError {
    StoreError::CorruptRecord {
        what,
        key,
        reason: reason.to_string(),
    }
}

#[async_trait]
impl StepStore for PostgresStore {
    async fn save_step_json(
        &self,
        job_id: JobId,
        step_index: u32,
        json: Vec<u8>,
    ) -> Result<(), StoreError> {
        validate_step_json(job_id, step_index, &json)?;
        // One JSON value is UTF-8 text; bound as text, stored as written.
        let text = String::from_utf8(json).map_err(|e| StoreError::InvalidInput {
            field: "record",
            reason: format!("step {step_index} of job {job_id} is not one JSON value: {e}"),
        })?;
        self.write("save step", move |mut client, shared| async move {
            let op = "save step";
            let tx = client.transaction().await.map_err(db(op))?;
            let job = tx
                .prepare_cached("SELECT status, lease_node FROM jobs WHERE id = $1 FOR SHARE")
                .await
                .map_err(db(op))?;
            if let Some(row) = tx.query_opt(&job, &[&job_id]).await.map_err(db(op))? {
                let status: String = row.try_get(0).map_err(db(op))?;
                let lease: Option<Uuid> = row.try_get(1).map_err(db(op))?;
                if status == JobStatus::Running.as_str() && lease != Some(shared.node) {
                    return Err(StoreError::Fenced { id: job_id });
                }
            }
            lock_steps(&tx, op, job_id).await?;
            let count = tx
                .prepare_cached("SELECT count(*) FROM steps WHERE job_id = $1")
                .await
                .map_err(db(op))?;
            let saved: i64 = tx
                .query_one(&count, &[&job_id])
                .await
                .map_err(db(op))?
                .try_get(0)
                .map_err(db(op))?;
            check_step_index(
                job_id,
                step_index,
                u32::try_from(saved).unwrap_or(u32::MAX),
            )?;
            let upsert = tx
                .prepare_cached(
                    "INSERT INTO steps (job_id, step_index, record) VALUES ($1, $2, $3::text::json) \
                     ON CONFLICT (job_id, step_index) DO UPDATE SET record = EXCLUDED.record",
                )
                .await
                .map_err(db(op))?;
            tx.execute(&upsert, &[&job_id, &i64::from(step_index), &text])
                .await
                .map_err(db(op))?;
            tx.commit().await.map_err(db(op))?;
            Ok(())
        })
        .await
    }

    async fn load_steps(&self, job_id: JobId) -> Result<Vec<Value>, StoreError> {
        self.run("load steps", move |client, _| async move {
            let op = "load steps";
            let stmt = client
                .prepare_cached(
                    "SELECT step_index, record FROM steps WHERE job_id = $1 ORDER BY step_index",
                )
                .await
                .map_err(db(op))?;
            let rows = client.query(&stmt, &[&job_id]).await.map_err(db(op))?;
            rows.iter()
                .map(|row| match row.try_get::<_, Json<Value>>(1) {
                    Ok(Json(step)) => Ok(step),
                    Err(e) => {
                        let step = row
                            .try_get::<_, i64>(0)
                            .map_or_else(|_| "?".to_owned(), |s| s.to_string());
                        Err(corrupt("step", format!("job {job_id} step {step}"), e))
                    }
                })
                .collect()
        })
        .await
    }

    async fn clear_steps(&self, job_id: JobId) -> Result<usize, StoreError> {
        self.write("clear steps", move |mut client, _| async move {
            let op = "clear steps";
            let tx = client.transaction().await.map_err(db(op))?;
            lock_steps(&tx, op, job_id).await?;
            let stmt = tx
                .prepare_cached("DELETE FROM steps WHERE job_id = $1")
                .await
                .map_err(db(op))?;
            let removed = tx.execute(&stmt, &[&job_id]).await.map_err(db(op))?;
            tx.commit().await.map_err(db(op))?;
            Ok(usize::try_from(removed).unwrap_or(usize::MAX))
        })
        .await
    }
}

#[async_trait]
impl IdempotencyStore for PostgresStore {
    async fn claim_key(&self, key: &str, value: Value) -> Result<Claim, StoreError> {
        validate_key(key)?;
        let bytes = encode_key_value(&value)?;
        let text = String::from_utf8(bytes).map_err(|e| StoreError::backend("claim key", e))?;
        let key = key.to_owned();
        self.write("claim key", move |client, _| async move {
            let op = "claim key";
            let insert = client
                .prepare_cached(
                    "INSERT INTO idempotency_keys (key, job_id, value) \
                     VALUES ($1, $2, $3::text::json) ON CONFLICT DO NOTHING",
                )
                .await
                .map_err(db(op))?;
            let read = client
                .prepare_cached("SELECT value FROM idempotency_keys WHERE key = $1")
                .await
                .map_err(db(op))?;
            let job = job_of_key(&key);
            for _ in 0..CLAIM_ATTEMPTS {
                let inserted = client
                    .execute(&insert, &[&key.as_bytes(), &job, &text])
                    .await
                    .map_err(db(op))?;
                if inserted > 0 {
                    return Ok(Claim::Claimed);
                }
                // Lost to a committed claim: a new statement sees it.
                if let Some(row) = client
                    .query_opt(&read, &[&key.as_bytes()])
                    .await
                    .map_err(db(op))?
                {
                    return match row.try_get::<_, Json<Value>>(0) {
                        Ok(Json(existing)) => Ok(Claim::Existing(existing)),
                        Err(e) => Err(corrupt("idempotency key", key.clone(), e)),
                    };
                }
            }
            Err(StoreError::Backend {
                operation: op,
                source: format!(
                    "idempotency key {key:?} was taken and gone again {CLAIM_ATTEMPTS} times"
                )
                .into(),
            })
        })
        .await
    }

    async fn get_key(&self, key: &str) -> Result<Option<Value>, StoreError> {
        validate_key(key)?;
        let key = key.to_owned();
        self.run("get key", move |client, _| async move {
            let stmt = client
                .prepare_cached("SELECT value FROM idempotency_keys WHERE key = $1")
                .await
                .map_err(db("get key"))?;
            let row = client
                .query_opt(&stmt, &[&key.as_bytes()])
                .await
                .map_err(db("get key"))?;
            match row.map(|r| r.try_get::<_, Json<Value>>(0)) {
                None => Ok(None),
                Some(Ok(Json(value))) => Ok(Some(value)),
                Some(Err(e)) => Err(corrupt("idempotency key", key, e)),
            }
        })
        .await
    }
}
