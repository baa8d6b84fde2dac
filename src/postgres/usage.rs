//! Model-call usage as rows, and the [`UsageStore`] port.
//!
//! - `usage_calls`: every recorded call, whole in `record`, with its time,
//!   its UTC day and a sequence number taken when it is recorded, so a
//!   day's calls come back by time and, within the same time, in recording
//!   order.
//! - `usage_totals`: per (day, `agent` | `provider`, name), the sums of the
//!   calls. A record adds to them with `INSERT … ON CONFLICT DO UPDATE SET
//!   calls = calls + 1 …`, so recorders on several nodes never lose an
//!   update; the call and its totals go in one statement (one transaction).
//!
//! Retention drops old calls ([`prune_calls`]); the day totals stay.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Transaction;
use tokio_postgres::types::Json;
use tokio_postgres::Row;

use super::{db, PostgresStore};
use crate::store::{DayUsage, StoreError, UsageRecord, UsageScope, UsageStore, UsageTotals};

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

/// A count of the record as the `bigint` column holds it; one beyond its
/// range is refused naming the field.
pub(super) fn column(field: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::InvalidInput {
        field,
        reason: format!("{value} is more than the store can add up ({})", i64::MAX),
    })
}

/// The `kind` and `name` columns of a scope.
pub(super) fn scope_columns(scope: &UsageScope) -> (&'static str, &[u8]) {
    match scope {
        UsageScope::Agent(a) => ("agent", a.as_bytes()),
        UsageScope::Provider(p) => ("provider", p.as_bytes()),
    }
}

/// The totals in columns `calls`, `input_tokens`, `output_tokens`,
/// `cost_nanos` of a row; `what` names it in a corrupt-record error.
pub(super) fn totals_of(row: &Row, what: impl Fn() -> String) -> Result<UsageTotals, StoreError> {
    let get = |column: &str| -> Result<u64, StoreError> {
        let corrupt = |reason: String| StoreError::CorruptRecord {
            what: "usage totals",
            key: what(),
            reason,
        };
        let n: i64 = row.try_get(column).map_err(|e| corrupt(e.to_string()))?;
        u64::try_from(n).map_err(|_| corrupt(format!("{column} is negative ({n})")))
    };
    Ok(UsageTotals {
        calls: get("calls")?,
        input_tokens: get("input_tokens")?,
        output_tokens: get("output_tokens")?,
        cost_nanos: get("cost_nanos")?,
    })
}

#[async_trait]
impl UsageStore for PostgresStore {
    async fn record(&self, record: &UsageRecord) -> Result<(), StoreError> {
        let input = column("inputTokens", record.input_tokens)?;
        let output = column("outputTokens", record.output_tokens)?;
        let cost = column("costNanos", record.cost_nanos)?;
        let record = record.clone();
        self.write("record", move |client, _| async move {
            // The agent's row before the provider's, in every call: two
            // recorders lock shared rows in the same order.
            let stmt = client
                .prepare_cached(
                    "WITH call AS ( \
                         INSERT INTO usage_calls (at, day, record) VALUES ($1, $2, $3)) \
                     INSERT INTO usage_totals AS t \
                         (day, kind, name, calls, input_tokens, output_tokens, cost_nanos) \
                     SELECT $2::date, s.kind, s.name, 1, $6::int8, $7::int8, $8::int8 \
                     FROM (VALUES ('agent', $4::bytea), ('provider', $5::bytea)) AS s(kind, name) \
                     WHERE s.name IS NOT NULL \
                     ON CONFLICT (day, kind, name) DO UPDATE SET \
                         calls = t.calls + EXCLUDED.calls, \
                         input_tokens = t.input_tokens + EXCLUDED.input_tokens, \
                         output_tokens = t.output_tokens + EXCLUDED.output_tokens, \
                         cost_nanos = t.cost_nanos + EXCLUDED.cost_nanos",
                )
                .await
                .map_err(db("record"))?;
            let agent = record.agent.as_deref().map(str::as_bytes);
            client
                .execute(
                    &stmt,
                    &[
                        &record.at,
                        &record.day(),
                        &Json(&record),
                        &agent,
                        &record.provider.as_bytes(),
                        &input,
                        &output,
                        &cost,
                    ],
                )
                .await
                .map_err(db("record"))?;
            Ok(())
        })
        .await
    }

    async fn totals(&self, scope: &UsageScope, day: NaiveDate) -> Result<UsageTotals, StoreError> {
        let scope = scope.clone();
        self.run("totals", move |client, _| async move {
            let (kind, name) = scope_columns(&scope);
            let stmt = client
                .prepare_cached(
                    "SELECT calls, input_tokens, output_tokens, cost_nanos FROM usage_totals \
                     WHERE day = $1 AND kind = $2 AND name = $3",
                )
                .await
                .map_err(db("totals"))?;
            match client
                .query_opt(&stmt, &[&day, &kind, &name])
                .await
                .map_err(db("totals"))?
            {
                Some(row) => totals_of(&row, || format!("{scope:?} on {day}")),
                None => Ok(UsageTotals::default()),
            }
        })
        .await
    }

    async fn day_usage(&self, day: NaiveDate) -> Result<DayUsage, StoreError> {
        self.run("day usage", move |client, _| async move {
            let stmt = client
                .prepare_cached(
                    "SELECT kind, name, calls, input_tokens, output_tokens, cost_nanos \
                     FROM usage_totals WHERE day = $1",
                )
                .await
                .map_err(db("day usage"))?;
            let rows = client
                .query(&stmt, &[&day])
                .await
                .map_err(db("day usage"))?;
            let mut out = DayUsage {
                day: Some(day),
                ..DayUsage::default()
            };
            for row in rows {
                let kind: String = row.try_get("kind").map_err(db("day usage"))?;
                let name: Vec<u8> = row.try_get("name").map_err(db("day usage"))?;
                let name = String::from_utf8(name).map_err(|e| StoreError::CorruptRecord {
                    what: "usage totals",
                    key: format!(
                        "{kind} {:?} on {day}",
                        String::from_utf8_lossy(e.as_bytes())
                    ),
                    reason: "the name is not UTF-8".into(),
                })?;
                let totals = totals_of(&row, || format!("{kind} {name:?} on {day}"))?;
                match kind.as_str() {
                    "agent" => out.by_agent.insert(name, totals),
                    _ => out.by_provider.insert(name, totals),
                };
            }
            Ok(out)
        })
        .await
    }

    async fn calls(&self, day: NaiveDate) -> Result<Vec<UsageRecord>, StoreError> {
        self.run("calls", move |client, _| async move {
            let stmt = client
                .prepare_cached(
                    "SELECT seq, record FROM usage_calls WHERE day = $1 ORDER BY at, seq",
                )
                .await
                .map_err(db("calls"))?;
            let rows = client.query(&stmt, &[&day]).await.map_err(db("calls"))?;
            rows.iter()
                .map(|row| match row.try_get::<_, Json<UsageRecord>>("record") {
                    Ok(Json(call)) => Ok(call),
                    Err(e) => Err(StoreError::CorruptRecord {
                        what: "usage call",
                        key: row
                            .try_get::<_, i64>("seq")
                            .map_or_else(|_| "?".to_owned(), |s| s.to_string()),
                        reason: e.to_string(),
                    }),
                })
                .collect()
        })
        .await
    }
}
