//! The schema's versions, embedded in the binary and applied in order, each
//! in its own transaction with its version recorded, under an advisory lock
//! so two nodes starting together do not both apply it.

use tokio_postgres::Client;

use crate::store::StoreError;

/// One version of the schema.
pub(super) struct Migration {
    /// Applied in increasing order; never reused or edited once released.
    pub(super) version: i32,
    /// What it does, as `troupe migrate` prints it.
    pub(super) name: &'static str,
    pub(super) sql: &'static str,
}

/// Every version this build knows, oldest first.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "jobs, schedules, pauses, nodes",
        sql: include_str!("sql/0001_jobs.sql"),
    },
    Migration {
        version: 2,
        name: "memories, conversations, steps, idempotency keys, usage",
        sql: include_str!("sql/0002_data.sql"),
    },
    Migration {
        version: 3,
        name: "waiting jobs: unique keys held while waiting, approval deadlines",
        sql: include_str!("sql/0003_waiting.sql"),
    },
];

/// The newest version this build knows.
pub(super) fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// What [`PostgresStore::migrate`](super::PostgresStore::migrate) found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The schema's version before.
    pub from: i32,
    /// Its version now.
    pub to: i32,
    /// The versions applied, with their names.
    pub applied: Vec<(i32, &'static str)>,
}

fn failed(schema: &str, reason: String) -> StoreError {
    StoreError::SchemaVersion {
        schema: schema.to_string(),
        reason,
    }
}

fn db(schema: &str, what: &str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    let schema = schema.to_string();
    let what = what.to_string();
    move |e| failed(&schema, format!("{what}: {}", super::describe(&e)))
}

/// Brings `schema` to the newest version (when `apply`), or checks that it
/// is there. Refuses a schema newer than this build (an older binary must
/// not write a newer layout) and, without `apply`, an older one.
pub(super) async fn migrate(
    client: &mut Client,
    schema: &str,
    apply: bool,
) -> Result<MigrationReport, StoreError> {
    // Session-level lock, keyed by the schema name: released below, or by
    // the server when this connection ends.
    let lock_key = format!("troupe-migrate:{schema}");
    client
        .execute("SELECT pg_advisory_lock(hashtext($1))", &[&lock_key])
        .await
        .map_err(db(schema, "taking the migration lock"))?;
    let result = migrate_locked(client, schema, apply).await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&lock_key])
        .await;
    if let (Ok(_), Err(e)) = (&result, unlock) {
        return Err(db(schema, "releasing the migration lock")(e));
    }
    result
}

async fn migrate_locked(
    client: &mut Client,
    schema: &str,
    apply: bool,
) -> Result<MigrationReport, StoreError> {
    let from = current_version(client, schema).await?;
    let newest = latest();
    if from > newest {
        return Err(failed(
            schema,
            format!(
                "the database is at schema version {from}, newer than this build of troupe knows \
                 ({newest}); run a troupe at least as new as the one that migrated it"
            ),
        ));
    }
    if from < newest && !apply {
        return Err(failed(
            schema,
            format!(
                "the database is at schema version {from}, this build needs {newest}; \
                 run `troupe migrate` (or set migrate = true in [store])"
            ),
        ));
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version > from) {
        let tx = client
            .transaction()
            .await
            .map_err(db(schema, "starting a migration"))?;
        tx.batch_execute(&format!("SET LOCAL search_path TO {schema};\n{}", m.sql))
            .await
            .map_err(db(
                schema,
                &format!("applying version {} ({})", m.version, m.name),
            ))?;
        tx.execute(
            &format!(
                "INSERT INTO {schema}.troupe_migrations (version, name, applied_at) \
                 VALUES ($1, $2, now())"
            ),
            &[&m.version, &m.name],
        )
        .await
        .map_err(db(schema, "recording a migration"))?;
        tx.commit()
            .await
            .map_err(db(schema, &format!("committing version {}", m.version)))?;
        applied.push((m.version, m.name));
    }
    Ok(MigrationReport {
        from,
        to: if applied.is_empty() { from } else { newest },
        applied,
    })
}

/// The schema's version: 0 for a schema that does not exist or is empty.
/// A schema that holds tables but no version record was not made by troupe
/// and is refused rather than written into.
async fn current_version(client: &Client, schema: &str) -> Result<i32, StoreError> {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};\n\
             CREATE TABLE IF NOT EXISTS {schema}.troupe_migrations (\n\
                 version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)"
        ))
        .await
        .map_err(db(schema, "creating the schema"))?;
    let row = client
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {schema}.troupe_migrations"),
            &[],
        )
        .await
        .map_err(db(schema, "reading the schema version"))?;
    let version: i32 = row.get(0);
    if version == 0 {
        let other: i64 = client
            .query_one(
                "SELECT count(*) FROM information_schema.tables \
                 WHERE table_schema = $1 AND table_name <> 'troupe_migrations'",
                &[&schema],
            )
            .await
            .map_err(db(schema, "listing the schema's tables"))?
            .get(0);
        if other > 0 {
            return Err(failed(
                schema,
                format!(
                    "holds {other} tables that troupe did not make; choose another schema \
                     (schema = \"…\" in [store])"
                ),
            ));
        }
    }
    Ok(version)
}
