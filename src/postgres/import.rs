//! A whole store in and out: [`SnapshotImport`] and [`SnapshotExport`] for
//! [`PostgresStore`] (`troupe migrate --from sled:DIR`).
//!
//! # Import
//!
//! **One transaction for the whole import**: a failure anywhere (a record
//! of the source that does not decode, a refused record, a lost
//! connection) leaves the target as it was. The source's chunks come
//! through a short channel to the task that writes them, so the import
//! holds a few chunks at a time, not the store. Inside the transaction:
//!
//! 1. An advisory lock, so two imports into one schema go one at a time.
//! 2. The target's records are counted per kind ([`ImportReport::before`]).
//!    A target holding jobs, memories, messages, steps, keys or usage is
//!    refused with [`StoreError::NotEmpty`] naming what it holds, unless
//!    [`ImportOptions::force`]. Schedules and pauses do not count: a node
//!    that started once put its config's schedules.
//! 3. Each chunk goes in as its rows, encoded by the helpers the ports use
//!    (`jobs::insert_rows`, `memories::insert_rows`, `schedules::store_schedule`,
//!    the usage columns …). Nothing is overwritten: a record whose id or
//!    key the target held before is refused with
//!    [`StoreError::AlreadyStored`] naming it (a job whose unique key an
//!    active job holds, with [`StoreError::InvalidJob`] `uniqueKey`).
//!    Schedules are the exception the ports' own rule makes: the source's
//!    replace the target's of the same id (they carry when they fire next,
//!    so no firing is repeated); a pause already there is kept.
//!
//! Records go in as stored: every status (a `running` job comes in running
//! with no lease, and the first node to start recovers it, as a restarted
//! sled daemon would), attempts, timestamps, archived flags, keys, usage
//! totals as stored (not recomputed from the calls). Checking the id of
//! usage calls already there scans `usage_calls` (they have no index by
//! id): only done when the target held calls before, so only with `force`.
//!
//! # Export
//!
//! One read-only, repeatable-read transaction (a consistent view), each
//! table read through a portal a few rows at a time, decoded as the ports
//! read it, and handed to the sink through a short channel.

use std::collections::HashSet;

use async_trait::async_trait;
use deadpool_postgres::{Object, Transaction};
use tokio::sync::mpsc;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{IsolationLevel, Row};
use uuid::Uuid;

use super::{conversations, db, jobs, memories, schedules, usage, PostgresStore};
use crate::job::{Job, JobError};
use crate::store::{
    job_of_key, ClaimedKey, DayTotals, ImportOptions, ImportReport, MemoryKey, MessageKey,
    PauseTarget, SnapshotChunk, SnapshotCounts, SnapshotExport, SnapshotImport, SnapshotKind,
    SnapshotSink, StepRecord, StoreError, UsageScope,
};

/// The operation named in errors.
const IMPORT: &str = "import";
const EXPORT: &str = "export";

/// Chunks in flight between the two sides of a copy.
const DEPTH: usize = 2;

/// The first half of the import's advisory lock key: "impo" in ASCII (the
/// steps' locks use another).
const IMPORT_LOCK: i32 = 0x696d_706f;

/// How long a copy's transaction may wait for the other side (the
/// connection's own limit, the lease, is for nodes' short transactions).
const IDLE_LIMIT: &str = "SET LOCAL idle_in_transaction_session_timeout = '10min'";

/// Rows read per round trip when exporting; fewer for steps, which may
/// each be megabytes.
const FETCH_ROWS: i32 = 200;
const FETCH_STEPS: i32 = 16;

/// The table of each kind.
const TABLES: [(SnapshotKind, &str); 11] = [
    (SnapshotKind::Jobs, "jobs"),
    (SnapshotKind::Schedules, "schedules"),
    (SnapshotKind::Pauses, "pauses"),
    (SnapshotKind::Memories, "memories"),
    (SnapshotKind::MemoryKeys, "memory_keys"),
    (SnapshotKind::Messages, "messages"),
    (SnapshotKind::MessageKeys, "message_keys"),
    (SnapshotKind::Steps, "steps"),
    (SnapshotKind::IdempotencyKeys, "idempotency_keys"),
    (SnapshotKind::UsageCalls, "usage_calls"),
    (SnapshotKind::UsageTotals, "usage_totals"),
];

/// What the source side sends the writer.
enum Feed {
    Chunk(SnapshotChunk),
    /// The source was read to the end: commit.
    Commit,
}

/// The sink the source exports into: the channel to the writer.
struct Feeder {
    out: mpsc::Sender<Feed>,
    /// The writer stopped (its error is the one to report).
    writer_gone: bool,
}

fn stopped(operation: &'static str) -> StoreError {
    StoreError::Backend {
        operation,
        source: "the other side of the copy stopped".into(),
    }
}

#[async_trait]
impl SnapshotSink for Feeder {
    async fn write(&mut self, chunk: SnapshotChunk) -> Result<(), StoreError> {
        if self.out.send(Feed::Chunk(chunk)).await.is_err() {
            self.writer_gone = true;
            return Err(stopped(IMPORT));
        }
        Ok(())
    }
}

#[async_trait]
impl SnapshotImport for PostgresStore {
    async fn import(
        &self,
        source: &dyn SnapshotExport,
        options: ImportOptions,
    ) -> Result<ImportReport, StoreError> {
        let config = self.config();
        let target = format!("schema {:?} at {}", config.schema, config.redacted_url());
        let (out, feed) = mpsc::channel(DEPTH);
        let writer = self.write(IMPORT, move |client, _| {
            write_all(client, feed, options, target)
        });
        let reader = async move {
            let mut feeder = Feeder {
                out,
                writer_gone: false,
            };
            let exported = source.export(&mut feeder).await;
            if exported.is_ok() {
                // A writer that stopped already has its own error to give.
                let _ = feeder.out.send(Feed::Commit).await;
            }
            (exported, feeder.writer_gone)
        };
        let (written, (exported, writer_gone)) = tokio::join!(writer, reader);
        match (exported, written) {
            (Ok(source), Ok((before, copied))) => Ok(ImportReport {
                source,
                before,
                copied,
            }),
            (Err(_), Err(w)) if writer_gone => Err(w),
            (Err(e), _) => Err(e),
            (Ok(_), Err(w)) => Err(w),
        }
    }
}

/// The writer: one transaction, committed when the source has been read
/// to the end, dropped (rolled back) on any error or if the source stops.
async fn write_all(
    mut client: Object,
    mut feed: mpsc::Receiver<Feed>,
    options: ImportOptions,
    target: String,
) -> Result<(SnapshotCounts, SnapshotCounts), StoreError> {
    let tx = client.transaction().await.map_err(db(IMPORT))?;
    tx.batch_execute(IDLE_LIMIT).await.map_err(db(IMPORT))?;
    tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&IMPORT_LOCK])
        .await
        .map_err(db(IMPORT))?;
    let before = count(&tx, IMPORT).await?;
    let data = before.data();
    if !options.force && !data.is_empty() {
        let mut holds = SnapshotCounts::default();
        for (kind, n) in data {
            holds.set(kind, n);
        }
        return Err(StoreError::NotEmpty {
            target,
            holds: holds.to_string(),
        });
    }
    let mut copied = SnapshotCounts::default();
    loop {
        match feed.recv().await {
            Some(Feed::Chunk(chunk)) => {
                let kind = chunk.kind();
                let check = before.get(kind) > 0;
                let n = write_chunk(&tx, chunk, check).await?;
                copied.add(kind, n);
            }
            Some(Feed::Commit) => break,
            None => {
                return Err(StoreError::Backend {
                    operation: IMPORT,
                    source: "the source stopped before its end; nothing was imported".into(),
                })
            }
        }
    }
    tx.commit().await.map_err(db(IMPORT))?;
    Ok((before, copied))
}

/// The records of each kind in the target.
async fn count(tx: &Transaction<'_>, op: &'static str) -> Result<SnapshotCounts, StoreError> {
    let columns: Vec<String> = TABLES
        .iter()
        .map(|(_, table)| format!("(SELECT count(*) FROM {table})"))
        .collect();
    let row = tx
        .query_one(&format!("SELECT {}", columns.join(", ")), &[])
        .await
        .map_err(db(op))?;
    let mut counts = SnapshotCounts::default();
    for (i, (kind, _)) in TABLES.iter().enumerate() {
        let n: i64 = row.try_get(i).map_err(db(op))?;
        counts.set(*kind, u64::try_from(n).unwrap_or(0));
    }
    Ok(counts)
}

/// Refuses the chunk when `sql` (given `params`) finds a row: the first
/// record the target holds already, as text.
async fn refuse_existing(
    tx: &Transaction<'_>,
    what: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<(), StoreError> {
    let found = tx
        .query_opt(&format!("{sql} LIMIT 1"), params)
        .await
        .map_err(db(IMPORT))?;
    match found {
        None => Ok(()),
        Some(row) => {
            let id: String = row.try_get(0).map_err(db(IMPORT))?;
            Err(StoreError::AlreadyStored { what, id })
        }
    }
}

/// The text of a key column (`bytea`), for an error that names it.
const KEY_TEXT: &str = "encode(key, 'escape')";

/// Writes one chunk; how many records it wrote. `check`: the target held
/// records of this kind before, so each must be looked for first.
async fn write_chunk(
    tx: &Transaction<'_>,
    chunk: SnapshotChunk,
    check: bool,
) -> Result<u64, StoreError> {
    let n = chunk.len() as u64;
    match chunk {
        SnapshotChunk::Jobs(v) => write_jobs(tx, &v, check).await?,
        SnapshotChunk::Schedules(v) => {
            for schedule in &v {
                schedules::store_schedule(tx, schedule).await?;
            }
        }
        SnapshotChunk::Pauses(v) => {
            let targets: Vec<&str> = v.iter().map(schedules::target_key).collect();
            tx.execute(
                "INSERT INTO pauses (target) SELECT * FROM unnest($1::text[]) \
                 ON CONFLICT (target) DO NOTHING",
                &[&targets],
            )
            .await
            .map_err(db(IMPORT))?;
        }
        SnapshotChunk::Memories(v) => {
            if check {
                let ids: Vec<Uuid> = v.iter().map(|m| m.id).collect();
                refuse_existing(
                    tx,
                    "memory",
                    "SELECT id::text FROM memories WHERE id = ANY($1)",
                    &[&ids],
                )
                .await?;
            }
            memories::insert_rows(tx, IMPORT, &v).await?;
        }
        SnapshotChunk::MemoryKeys(v) => write_memory_keys(tx, &v, check).await?,
        SnapshotChunk::Messages(v) => {
            let conversations: Vec<&[u8]> =
                v.iter().map(|m| m.conversation_id.as_bytes()).collect();
            let ids: Vec<Uuid> = v.iter().map(|m| m.id).collect();
            if check {
                refuse_existing(
                    tx,
                    "message",
                    "SELECT id::text FROM messages \
                     WHERE (conversation_id, id) IN (SELECT * FROM unnest($1::bytea[], $2::uuid[]))",
                    &[&conversations, &ids],
                )
                .await?;
            }
            let data: Vec<Json<&crate::store::ChatMessage>> = v.iter().map(Json).collect();
            tx.execute(
                "INSERT INTO messages (conversation_id, id, data) \
                 SELECT * FROM unnest($1::bytea[], $2::uuid[], $3::json[])",
                &[&conversations, &ids, &data],
            )
            .await
            .map_err(db(IMPORT))?;
        }
        SnapshotChunk::MessageKeys(v) => write_message_keys(tx, &v, check).await?,
        SnapshotChunk::Steps(v) => write_steps(tx, &v, check).await?,
        SnapshotChunk::IdempotencyKeys(v) => write_claimed_keys(tx, &v, check).await?,
        SnapshotChunk::UsageCalls(v) => {
            if check {
                let ids: Vec<String> = v.iter().map(|c| c.id.to_string()).collect();
                refuse_existing(
                    tx,
                    "usage call",
                    "SELECT record->>'id' FROM usage_calls WHERE record->>'id' = ANY($1)",
                    &[&ids],
                )
                .await?;
            }
            let ats: Vec<_> = v.iter().map(|c| c.at).collect();
            let days: Vec<_> = v.iter().map(|c| c.day()).collect();
            let data: Vec<Json<&crate::store::UsageRecord>> = v.iter().map(Json).collect();
            // In the source's order, so calls of the same time keep it.
            tx.execute(
                "INSERT INTO usage_calls (at, day, record) \
                 SELECT at, day, record FROM unnest($1::timestamptz[], $2::date[], $3::json[]) \
                     WITH ORDINALITY AS u(at, day, record, n) ORDER BY n",
                &[&ats, &days, &data],
            )
            .await
            .map_err(db(IMPORT))?;
        }
        SnapshotChunk::UsageTotals(v) => write_totals(tx, &v, check).await?,
    }
    Ok(n)
}

async fn write_jobs(tx: &Transaction<'_>, v: &[Job], check: bool) -> Result<(), StoreError> {
    if check {
        let ids: Vec<Uuid> = v.iter().map(|j| j.id).collect();
        refuse_existing(
            tx,
            "job",
            "SELECT id::text FROM jobs WHERE id = ANY($1)",
            &[&ids],
        )
        .await?;
    }
    let refs: Vec<&Job> = v.iter().collect();
    let inserted: HashSet<Uuid> = jobs::insert_rows(tx, &refs).await?.into_iter().collect();
    // Not an id (looked for above, and unique in the source): the unique
    // key of an active job.
    match v.iter().find(|j| !inserted.contains(&j.id)) {
        None => Ok(()),
        Some(job) => Err(StoreError::InvalidJob {
            id: job.id,
            source: JobError::Invalid {
                field: "uniqueKey",
                reason: format!(
                    "{:?} is held by another active job (in the target or the source)",
                    job.unique_key.as_deref().unwrap_or_default()
                ),
            },
        }),
    }
}

async fn write_memory_keys(
    tx: &Transaction<'_>,
    v: &[MemoryKey],
    check: bool,
) -> Result<(), StoreError> {
    let keys: Vec<&[u8]> = v.iter().map(|k| k.key.as_bytes()).collect();
    let ids: Vec<Uuid> = v.iter().map(|k| k.memory_id).collect();
    if check {
        refuse_existing(
            tx,
            "memory idempotency key",
            &format!("SELECT {KEY_TEXT} FROM memory_keys WHERE key = ANY($1)"),
            &[&keys],
        )
        .await?;
    }
    tx.execute(
        "INSERT INTO memory_keys (key, memory_id) SELECT * FROM unnest($1::bytea[], $2::uuid[])",
        &[&keys, &ids],
    )
    .await
    .map_err(db(IMPORT))?;
    Ok(())
}

async fn write_message_keys(
    tx: &Transaction<'_>,
    v: &[MessageKey],
    check: bool,
) -> Result<(), StoreError> {
    let keys: Vec<&[u8]> = v.iter().map(|k| k.key.as_bytes()).collect();
    let conversations: Vec<&[u8]> = v.iter().map(|k| k.conversation_id.as_bytes()).collect();
    let ids: Vec<Uuid> = v.iter().map(|k| k.message_id).collect();
    if check {
        refuse_existing(
            tx,
            "message idempotency key",
            &format!("SELECT {KEY_TEXT} FROM message_keys WHERE key = ANY($1)"),
            &[&keys],
        )
        .await?;
    }
    tx.execute(
        "INSERT INTO message_keys (key, conversation_id, message_id) \
         SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::uuid[])",
        &[&keys, &conversations, &ids],
    )
    .await
    .map_err(db(IMPORT))?;
    Ok(())
}

async fn write_steps(
    tx: &Transaction<'_>,
    v: &[StepRecord],
    check: bool,
) -> Result<(), StoreError> {
    for step in v {
        step.check()?;
    }
    let jobs: Vec<Uuid> = v.iter().map(|s| s.job_id).collect();
    let indexes: Vec<i64> = v.iter().map(|s| i64::from(s.step_index)).collect();
    let records: Vec<&str> = v.iter().map(|s| s.json.as_str()).collect();
    if check {
        refuse_existing(
            tx,
            "step",
            "SELECT 'job ' || job_id || ' step ' || step_index FROM steps \
             WHERE (job_id, step_index) IN (SELECT * FROM unnest($1::uuid[], $2::int8[]))",
            &[&jobs, &indexes],
        )
        .await?;
    }
    // Bound as text, stored as written (as `save_step_json` does).
    tx.execute(
        "INSERT INTO steps (job_id, step_index, record) \
         SELECT j, i, r::json FROM unnest($1::uuid[], $2::int8[], $3::text[]) AS u(j, i, r)",
        &[&jobs, &indexes, &records],
    )
    .await
    .map_err(db(IMPORT))?;
    Ok(())
}

async fn write_claimed_keys(
    tx: &Transaction<'_>,
    v: &[ClaimedKey],
    check: bool,
) -> Result<(), StoreError> {
    let keys: Vec<&[u8]> = v.iter().map(|k| k.key.as_bytes()).collect();
    let jobs: Vec<Option<Uuid>> = v.iter().map(|k| job_of_key(&k.key)).collect();
    let values: Vec<Json<&serde_json::Value>> = v.iter().map(|k| Json(&k.value)).collect();
    if check {
        refuse_existing(
            tx,
            "idempotency key",
            &format!("SELECT {KEY_TEXT} FROM idempotency_keys WHERE key = ANY($1)"),
            &[&keys],
        )
        .await?;
    }
    tx.execute(
        "INSERT INTO idempotency_keys (key, job_id, value) \
         SELECT * FROM unnest($1::bytea[], $2::uuid[], $3::json[])",
        &[&keys, &jobs, &values],
    )
    .await
    .map_err(db(IMPORT))?;
    Ok(())
}

async fn write_totals(
    tx: &Transaction<'_>,
    v: &[DayTotals],
    check: bool,
) -> Result<(), StoreError> {
    let days: Vec<_> = v.iter().map(|t| t.day).collect();
    let (kinds, names): (Vec<&str>, Vec<&[u8]>) =
        v.iter().map(|t| usage::scope_columns(&t.scope)).unzip();
    if check {
        refuse_existing(
            tx,
            "usage day total",
            "SELECT kind || ' ' || encode(name, 'escape') || ' on ' || day FROM usage_totals \
             WHERE (day, kind, name) IN (SELECT * FROM unnest($1::date[], $2::text[], $3::bytea[]))",
            &[&days, &kinds, &names],
        )
        .await?;
    }
    let mut calls = Vec::with_capacity(v.len());
    let mut inputs = Vec::with_capacity(v.len());
    let mut outputs = Vec::with_capacity(v.len());
    let mut costs = Vec::with_capacity(v.len());
    for t in v {
        calls.push(usage::column("calls", t.totals.calls)?);
        inputs.push(usage::column("inputTokens", t.totals.input_tokens)?);
        outputs.push(usage::column("outputTokens", t.totals.output_tokens)?);
        costs.push(usage::column("costNanos", t.totals.cost_nanos)?);
    }
    tx.execute(
        "INSERT INTO usage_totals \
             (day, kind, name, calls, input_tokens, output_tokens, cost_nanos) \
         SELECT * FROM unnest($1::date[], $2::text[], $3::bytea[], \
                              $4::int8[], $5::int8[], $6::int8[], $7::int8[])",
        &[&days, &kinds, &names, &calls, &inputs, &outputs, &costs],
    )
    .await
    .map_err(db(IMPORT))?;
    Ok(())
}

#[async_trait]
impl SnapshotExport for PostgresStore {
    async fn export(&self, sink: &mut dyn SnapshotSink) -> Result<SnapshotCounts, StoreError> {
        let (out, mut chunks) = mpsc::channel(DEPTH);
        let reader = self.run(EXPORT, move |client, _| read_all(client, out));
        let feed = async move {
            let mut counts = SnapshotCounts::default();
            while let Some(chunk) = chunks.recv().await {
                counts.add(chunk.kind(), chunk.len() as u64);
                sink.write(chunk).await?;
            }
            Ok::<_, StoreError>(counts)
        };
        let (read, fed) = tokio::join!(reader, feed);
        // The sink's error first: the reader then only saw it stop.
        let counts = fed?;
        read?;
        Ok(counts)
    }
}

/// Reads every table through a portal and sends its records.
async fn read_all(mut client: Object, out: mpsc::Sender<SnapshotChunk>) -> Result<(), StoreError> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(db(EXPORT))?;
    tx.batch_execute(IDLE_LIMIT).await.map_err(db(EXPORT))?;
    let r = Reader { tx: &tx, out: &out };
    r.table(
        "SELECT data, id FROM jobs ORDER BY id",
        FETCH_ROWS,
        |row| jobs::job_of(row, 0),
        SnapshotChunk::Jobs,
    )
    .await?;
    r.table(
        "SELECT data, id FROM schedules ORDER BY id",
        FETCH_ROWS,
        schedules::schedule_of,
        SnapshotChunk::Schedules,
    )
    .await?;
    r.table(
        "SELECT target FROM pauses ORDER BY target",
        FETCH_ROWS,
        |row| {
            let target: String = row.try_get(0).map_err(db(EXPORT))?;
            Ok(match target.as_str() {
                "*" => PauseTarget::All,
                _ => PauseTarget::Worker(target),
            })
        },
        SnapshotChunk::Pauses,
    )
    .await?;
    r.table(
        "SELECT id, data FROM memories ORDER BY id",
        FETCH_ROWS,
        memories::memory_of,
        SnapshotChunk::Memories,
    )
    .await?;
    r.table(
        "SELECT key, memory_id FROM memory_keys ORDER BY key",
        FETCH_ROWS,
        |row| {
            Ok(MemoryKey {
                key: text(row, 0, "memory idempotency key")?,
                memory_id: row.try_get(1).map_err(db(EXPORT))?,
            })
        },
        SnapshotChunk::MemoryKeys,
    )
    .await?;
    r.table(
        "SELECT id, data FROM messages ORDER BY conversation_id, id",
        FETCH_ROWS,
        conversations::message_of,
        SnapshotChunk::Messages,
    )
    .await?;
    r.table(
        "SELECT key, conversation_id, message_id FROM message_keys ORDER BY key",
        FETCH_ROWS,
        |row| {
            Ok(MessageKey {
                key: text(row, 0, "message idempotency key")?,
                conversation_id: text(row, 1, "message idempotency key")?,
                message_id: row.try_get(2).map_err(db(EXPORT))?,
            })
        },
        SnapshotChunk::MessageKeys,
    )
    .await?;
    r.table(
        "SELECT job_id, step_index, record::text FROM steps ORDER BY job_id, step_index",
        FETCH_STEPS,
        |row| {
            let job_id: Uuid = row.try_get(0).map_err(db(EXPORT))?;
            let index: i64 = row.try_get(1).map_err(db(EXPORT))?;
            let step_index = u32::try_from(index).map_err(|_| StoreError::CorruptRecord {
                what: "step",
                key: format!("job {job_id} step {index}"),
                reason: "the step index is out of range".into(),
            })?;
            Ok(StepRecord {
                job_id,
                step_index,
                json: row.try_get(2).map_err(db(EXPORT))?,
            })
        },
        SnapshotChunk::Steps,
    )
    .await?;
    r.table(
        "SELECT key, value FROM idempotency_keys ORDER BY key",
        FETCH_ROWS,
        |row| {
            let key = text(row, 0, "idempotency key")?;
            match row.try_get::<_, Json<serde_json::Value>>(1) {
                Ok(Json(value)) => Ok(ClaimedKey { key, value }),
                Err(e) => Err(StoreError::CorruptRecord {
                    what: "idempotency key",
                    key,
                    reason: e.to_string(),
                }),
            }
        },
        SnapshotChunk::IdempotencyKeys,
    )
    .await?;
    r.table(
        "SELECT seq, record FROM usage_calls ORDER BY day, at, seq",
        FETCH_ROWS,
        |row| match row.try_get::<_, Json<crate::store::UsageRecord>>(1) {
            Ok(Json(call)) => Ok(call),
            Err(e) => Err(StoreError::CorruptRecord {
                what: "usage call",
                key: row
                    .try_get::<_, i64>(0)
                    .map_or_else(|_| "?".to_owned(), |s| s.to_string()),
                reason: e.to_string(),
            }),
        },
        SnapshotChunk::UsageCalls,
    )
    .await?;
    r.table(
        "SELECT day, kind, name, calls, input_tokens, output_tokens, cost_nanos \
         FROM usage_totals ORDER BY day, kind, name",
        FETCH_ROWS,
        |row| {
            let day: chrono::NaiveDate = row.try_get("day").map_err(db(EXPORT))?;
            let kind: String = row.try_get("kind").map_err(db(EXPORT))?;
            let name = text(row, 2, "usage totals")?;
            let totals = usage::totals_of(row, || format!("{kind} {name:?} on {day}"))?;
            let scope = match kind.as_str() {
                "agent" => UsageScope::Agent(name),
                _ => UsageScope::Provider(name),
            };
            Ok(DayTotals { day, scope, totals })
        },
        SnapshotChunk::UsageTotals,
    )
    .await?;
    tx.commit().await.map_err(db(EXPORT))?;
    Ok(())
}

/// A `bytea` column holding UTF-8 text (a key, a name).
fn text(row: &Row, column: usize, what: &'static str) -> Result<String, StoreError> {
    let bytes: Vec<u8> = row.try_get(column).map_err(db(EXPORT))?;
    String::from_utf8(bytes).map_err(|e| StoreError::CorruptRecord {
        what,
        key: String::from_utf8_lossy(e.as_bytes()).into_owned(),
        reason: "not UTF-8".into(),
    })
}

/// The export's transaction and the channel to the sink.
struct Reader<'a, 't> {
    tx: &'a Transaction<'t>,
    out: &'a mpsc::Sender<SnapshotChunk>,
}

impl Reader<'_, '_> {
    /// Sends the records `sql` selects, `fetch` rows at a time.
    async fn table<T>(
        &self,
        sql: &str,
        fetch: i32,
        decode: impl Fn(&Row) -> Result<T, StoreError>,
        wrap: fn(Vec<T>) -> SnapshotChunk,
    ) -> Result<(), StoreError> {
        let stmt = self.tx.prepare(sql).await.map_err(db(EXPORT))?;
        let portal = self.tx.bind(&stmt, &[]).await.map_err(db(EXPORT))?;
        loop {
            let rows = self
                .tx
                .query_portal(&portal, fetch)
                .await
                .map_err(db(EXPORT))?;
            let last = rows.len() < usize::try_from(fetch).unwrap_or(0);
            if !rows.is_empty() {
                let records = rows.iter().map(&decode).collect::<Result<Vec<T>, _>>()?;
                self.out
                    .send(wrap(records))
                    .await
                    .map_err(|_| stopped(EXPORT))?;
            }
            if last {
                return Ok(());
            }
        }
    }
}
