//! Steps and idempotency keys (stub: being written).

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::db;
use crate::store::StoreError;

/// Deletes the steps of `jobs` and the idempotency keys that name them.
pub(super) async fn drop_jobs(tx: &Transaction<'_>, jobs: &[Uuid]) -> Result<(), StoreError> {
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

#[allow(dead_code)]
fn _unused(_: DateTime<Utc>) {}
