//! Usage (stub: being written).

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;

use super::db;
use crate::store::StoreError;

/// Deletes usage call records older than `cutoff` (day totals are kept).
pub(super) async fn prune_calls(
    tx: &Transaction<'_>,
    cutoff: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute("DELETE FROM usage_calls WHERE at < $1", &[&cutoff])
        .await
        .map_err(db("prune"))?;
    Ok(())
}
