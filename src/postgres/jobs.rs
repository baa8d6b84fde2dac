//! Jobs as rows, and the [`JobStore`] port. Every transition locks the
//! job's row (`FOR UPDATE`), asks [`crate::job::rules`] what the job
//! becomes, and writes that back in the same transaction; claims lock
//! ready rows with `SKIP LOCKED`, so nodes claiming together never wait on
//! each other nor take the same job.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde_json::Value;
use tokio_postgres::types::Json;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{db, PostgresStore, Shared};
use crate::job::rules::{self, CancelMove};
use crate::job::{FailAction, Job, JobError, JobId, JobStatus};
use crate::store::{
    CancelOutcome, ClaimRequest, InsertOutcome, JobCounts, JobPage, JobStore, ListQuery, Outcome,
    Recovered, Retention, StoreError,
};

/// How long [`JobStore::health`] waits for the database.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The statuses that hold a unique key, as SQL.
const ACTIVE: &str = "status IN ('queued', 'running', 'waiting')";

/// A job read from its `data` column, or a corrupt-record error naming it.
pub(super) fn job_of(row: &Row, column: usize) -> Result<Job, StoreError> {
    match row.try_get::<_, Json<Job>>(column) {
        Ok(Json(job)) => Ok(job),
        Err(e) => Err(StoreError::CorruptJob {
            id: row
                .try_get::<_, Uuid>("id")
                .map(|id| id.to_string())
                .unwrap_or_else(|_| "?".into()),
            reason: e.to_string(),
        }),
    }
}

fn jobs_of(rows: &[Row]) -> Result<Vec<Job>, StoreError> {
    rows.iter().map(|row| job_of(row, 0)).collect()
}

/// The jobs of rows (`data, id`) locked in `tx` to be acted on (claimed,
/// rescued). A row whose record does not decode (edited by hand, written
/// by something else) is left out and ended `failed` by its status column,
/// its record kept for inspection and named in the log: it must not make
/// every claim or rescue that meets it fail, which would stop the cluster.
async fn decodable(
    tx: &Transaction<'_>,
    op: &'static str,
    rows: &[Row],
) -> Result<Vec<Job>, StoreError> {
    let mut jobs = Vec::with_capacity(rows.len());
    let mut corrupt: Vec<Uuid> = Vec::new();
    for row in rows {
        match job_of(row, 0) {
            Ok(job) => jobs.push(job),
            Err(e) => {
                let id: Uuid = row.try_get(1).map_err(db(op))?;
                tracing::error!(job = %id, error = %e, "a job record does not decode; ending it failed (its record is kept)");
                corrupt.push(id);
            }
        }
    }
    if !corrupt.is_empty() {
        tx.execute(
            "UPDATE jobs SET status = 'failed', lease_node = NULL, lease_until = NULL, \
                 updated_at = now() WHERE id = ANY($1)",
            &[&corrupt],
        )
        .await
        .map_err(db(op))?;
    }
    Ok(jobs)
}

fn attempt_i32(job: &Job) -> i32 {
    i32::try_from(job.attempt).unwrap_or(i32::MAX)
}

/// Inserts validated jobs in one statement; the ids that went in.
pub(super) async fn insert_rows(
    tx: &Transaction<'_>,
    jobs: &[&Job],
) -> Result<Vec<Uuid>, StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO jobs (id, worker, status, attempt, priority, run_at, updated_at, unique_key, data) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int4[], $5::int4[], \
                                  $6::timestamptz[], $7::timestamptz[], $8::text[], $9::json[]) \
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .await
        .map_err(db("insert"))?;
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    let workers: Vec<&str> = jobs.iter().map(|j| j.worker_name.as_str()).collect();
    let statuses: Vec<&str> = jobs.iter().map(|j| j.status.as_str()).collect();
    let attempts: Vec<i32> = jobs.iter().map(|j| attempt_i32(j)).collect();
    let priorities: Vec<i32> = jobs.iter().map(|j| j.priority).collect();
    let run_ats: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.run_at).collect();
    let updated: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.updated_at).collect();
    let keys: Vec<Option<&str>> = jobs.iter().map(|j| j.unique_key.as_deref()).collect();
    let data: Vec<Json<&Job>> = jobs.iter().map(|j| Json(*j)).collect();
    let rows = tx
        .query(
            &stmt,
            &[
                &ids,
                &workers,
                &statuses,
                &attempts,
                &priorities,
                &run_ats,
                &updated,
                &keys,
                &data,
            ],
        )
        .await
        .map_err(db("insert"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The active job holding `key`, if any.
async fn key_holder(tx: &Transaction<'_>, key: &str) -> Result<Option<Job>, StoreError> {
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT data, id FROM jobs WHERE unique_key = $1 AND {ACTIVE}"
        ))
        .await
        .map_err(db("insert"))?;
    let row = tx.query_opt(&stmt, &[&key]).await.map_err(db("insert"))?;
    row.map(|r| job_of(&r, 0)).transpose()
}

/// Inserts `jobs` in `tx`: each is `Inserted`, or `Existing` with the
/// active job holding its key (an earlier job of the same call included); a
/// taken id is refused. The caller wakes the other nodes once `tx` has
/// committed ([`Shared::wake_others`]).
pub(super) async fn insert_all(
    tx: &Transaction<'_>,
    jobs: Vec<Job>,
) -> Result<Vec<InsertOutcome>, StoreError> {
    let refs: Vec<&Job> = jobs.iter().collect();
    let inserted = insert_rows(tx, &refs).await?;
    let inserted: std::collections::HashSet<Uuid> = inserted.into_iter().collect();
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        if inserted.contains(&job.id) {
            out.push(InsertOutcome::Inserted(job));
        } else {
            out.push(settle(tx, job).await?);
        }
    }
    Ok(out)
}

/// How often [`settle`] looks again for a key that keeps changing hands.
const SETTLE_TRIES: usize = 8;

/// A job the insert skipped: `Existing` with the active job holding its
/// unique key, or, when that job ended between the insert and the look (a
/// statement sees what committed before it began), inserted after all. An
/// id already stored is refused.
async fn settle(tx: &Transaction<'_>, job: Job) -> Result<InsertOutcome, StoreError> {
    let stored = tx
        .prepare_cached("SELECT 1 FROM jobs WHERE id = $1")
        .await
        .map_err(db("insert"))?;
    for _ in 0..SETTLE_TRIES {
        if let Some(key) = job.unique_key.as_deref() {
            if let Some(holder) = key_holder(tx, key).await? {
                if holder.id != job.id {
                    return Ok(InsertOutcome::Existing(holder));
                }
            }
        }
        if tx
            .query_opt(&stored, &[&job.id])
            .await
            .map_err(db("insert"))?
            .is_some()
        {
            return Err(StoreError::InvalidJob {
                id: job.id,
                source: JobError::Invalid {
                    field: "id",
                    reason: "a job with this id is already stored".into(),
                },
            });
        }
        if !insert_rows(tx, &[&job]).await?.is_empty() {
            return Ok(InsertOutcome::Inserted(job));
        }
    }
    Err(StoreError::Backend {
        operation: "insert",
        source: format!(
            "the unique key of job {} changed hands {SETTLE_TRIES} times while it was inserted",
            job.id
        )
        .into(),
    })
}

/// Writes new versions of stored jobs. A running job keeps its lease (a
/// cancel request from another node must not move it here); any other
/// status has none.
pub(super) async fn write_back(
    tx: &Transaction<'_>,
    op: &'static str,
    jobs: &[Job],
) -> Result<(), StoreError> {
    match jobs {
        [] => return Ok(()),
        [job] => return write_back_one(tx, op, job).await,
        _ => {}
    }
    let stmt = tx
        .prepare_cached(
            "UPDATE jobs SET status = u.status, attempt = u.attempt, priority = u.priority, \
                 run_at = u.run_at, updated_at = u.updated_at, data = u.data, \
                 lease_node = CASE WHEN u.status = 'running' THEN jobs.lease_node END, \
                 lease_until = CASE WHEN u.status = 'running' THEN jobs.lease_until END \
             FROM unnest($1::uuid[], $2::text[], $3::int4[], $4::int4[], $5::timestamptz[], \
                         $6::timestamptz[], $7::json[]) \
                  AS u(id, status, attempt, priority, run_at, updated_at, data) \
             WHERE jobs.id = u.id",
        )
        .await
        .map_err(db(op))?;
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    let statuses: Vec<&str> = jobs.iter().map(|j| j.status.as_str()).collect();
    let attempts: Vec<i32> = jobs.iter().map(attempt_i32).collect();
    let priorities: Vec<i32> = jobs.iter().map(|j| j.priority).collect();
    let run_ats: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.run_at).collect();
    let updated: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.updated_at).collect();
    let data: Vec<Json<&Job>> = jobs.iter().map(Json).collect();
    tx.execute(
        &stmt,
        &[
            &ids,
            &statuses,
            &attempts,
            &priorities,
            &run_ats,
            &updated,
            &data,
        ],
    )
    .await
    .map_err(db(op))?;
    Ok(())
}

/// [`write_back`] of one job: a plain `WHERE id = $1`, whose plan the
/// server keeps (an `unnest` of arrays is planned again on every call).
async fn write_back_one(
    tx: &Transaction<'_>,
    op: &'static str,
    job: &Job,
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "UPDATE jobs SET status = $2, attempt = $3, priority = $4, run_at = $5, \
                 updated_at = $6, data = $7, \
                 lease_node = CASE WHEN $2 = 'running' THEN lease_node END, \
                 lease_until = CASE WHEN $2 = 'running' THEN lease_until END \
             WHERE id = $1",
        )
        .await
        .map_err(db(op))?;
    tx.execute(
        &stmt,
        &[
            &job.id,
            &job.status.as_str(),
            &attempt_i32(job),
            &job.priority,
            &job.run_at,
            &job.updated_at,
            &Json(job),
        ],
    )
    .await
    .map_err(db(op))?;
    Ok(())
}

/// The job's row, locked until the transaction ends; `None` when there is
/// no such job.
pub(super) async fn lock_job_row(
    tx: &Transaction<'_>,
    op: &'static str,
    id: JobId,
) -> Result<Option<Job>, StoreError> {
    match lock_job(tx, op, id).await {
        Ok(job) => Ok(Some(job)),
        Err(StoreError::JobNotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The job's row, locked until the transaction ends.
async fn lock_job(tx: &Transaction<'_>, op: &'static str, id: JobId) -> Result<Job, StoreError> {
    let stmt = tx
        .prepare_cached("SELECT data, id FROM jobs WHERE id = $1 FOR UPDATE")
        .await
        .map_err(db(op))?;
    match tx.query_opt(&stmt, &[&id]).await.map_err(db(op))? {
        Some(row) => job_of(&row, 0),
        None => Err(StoreError::JobNotFound { id }),
    }
}

/// Ready jobs in claim order, locked, skipping rows other claimers hold.
async fn lock_ready(tx: &Transaction<'_>, request: &ClaimRequest) -> Result<Vec<Job>, StoreError> {
    let limit = i64::try_from(request.limit).unwrap_or(i64::MAX);
    let not_paused =
        "NOT EXISTS (SELECT 1 FROM pauses p WHERE p.target = '*' OR p.target = jobs.worker)";
    let rows = match &request.per_worker {
        None => {
            let stmt = tx
                .prepare_cached(&format!(
                    "SELECT data, id FROM jobs \
                     WHERE status = 'queued' AND run_at <= $1 AND {not_paused} \
                     ORDER BY priority DESC, run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED"
                ))
                .await
                .map_err(db("claim"))?;
            tx.query(&stmt, &[&request.now, &limit])
                .await
                .map_err(db("claim"))?
        }
        Some(quotas) => {
            let (names, counts): (Vec<&str>, Vec<i64>) = quotas
                .iter()
                .filter(|(_, q)| **q > 0)
                .map(|(w, q)| (w.as_str(), i64::try_from(*q).unwrap_or(i64::MAX)))
                .unzip();
            if names.is_empty() {
                return Ok(Vec::new());
            }
            let stmt = tx
                .prepare_cached(&format!(
                    "SELECT j.data, j.id FROM unnest($1::text[], $2::int8[]) AS w(name, quota) \
                     CROSS JOIN LATERAL ( \
                         SELECT data, id, priority, run_at FROM jobs \
                         WHERE status = 'queued' AND worker = w.name AND run_at <= $3 AND {not_paused} \
                         ORDER BY priority DESC, run_at, id LIMIT w.quota FOR UPDATE SKIP LOCKED) j \
                     ORDER BY j.priority DESC, j.run_at, j.id LIMIT $4"
                ))
                .await
                .map_err(db("claim"))?;
            tx.query(&stmt, &[&names, &counts, &request.now, &limit])
                .await
                .map_err(db("claim"))?
        }
    };
    decodable(tx, "claim", &rows).await
}

/// Claims ready jobs for `shared.node`: running, attempt + 1, leased.
pub(super) async fn claim(
    tx: &Transaction<'_>,
    shared: &Shared,
    request: &ClaimRequest,
) -> Result<Vec<Job>, StoreError> {
    if request.limit == 0 {
        return Ok(Vec::new());
    }
    let ready = lock_ready(tx, request).await?;
    let claimed: Vec<Job> = ready
        .iter()
        .filter_map(|job| rules::claim(job, request.now))
        .collect();
    if claimed.is_empty() {
        return Ok(claimed);
    }
    let stmt = tx
        .prepare_cached(
            "UPDATE jobs SET status = 'running', attempt = u.attempt, updated_at = $4, data = u.data, \
                 lease_node = $5, lease_until = now() + make_interval(secs => $6) \
             FROM unnest($1::uuid[], $2::int4[], $3::json[]) AS u(id, attempt, data) \
             WHERE jobs.id = u.id",
        )
        .await
        .map_err(db("claim"))?;
    let ids: Vec<Uuid> = claimed.iter().map(|j| j.id).collect();
    let attempts: Vec<i32> = claimed.iter().map(attempt_i32).collect();
    let data: Vec<Json<&Job>> = claimed.iter().map(Json).collect();
    let lease = shared.config.lease.as_secs_f64();
    tx.execute(
        &stmt,
        &[&ids, &attempts, &data, &request.now, &shared.node, &lease],
    )
    .await
    .map_err(db("claim"))?;
    Ok(claimed)
}

/// One fenced transition: the rule's job written, or its reason to change
/// nothing; applied with the others waiting, in one transaction (see
/// `transitions.rs`). A stale completion or failure is a late node's (or a
/// late attempt's): logged, and dropped.
pub(super) async fn fenced(
    store: &PostgresStore,
    op: &'static str,
    id: JobId,
    rule: impl FnOnce(&Job) -> Result<Job, rules::Stale> + Send + 'static,
) -> Result<Outcome, StoreError> {
    store.writable()?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    let stopped = || StoreError::Backend {
        operation: op,
        source: "the store's transition task has stopped".into(),
    };
    store
        .inner
        .shared
        .transitions
        .send(super::transitions::Transition {
            id,
            rule: Box::new(rule),
            reply,
        })
        .map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?
}

/// Requeues running jobs `pick` selects (`WHERE` text over `jobs`, with
/// `params` bound): [`rules::recover`] (this node's own, after its restart)
/// or, with `why`, [`rules::rescue`] (another node's, its lease ended: the
/// lost attempt counts). At most 1,000 per call. Rows are locked waiting, not skipped: a
/// heartbeat renewing a lease holds its row only for a moment, and a
/// skipped job would stay running with no node.
pub(super) async fn requeue(
    tx: &Transaction<'_>,
    pick: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    why: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Recovered, StoreError> {
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT data, id FROM jobs WHERE status = 'running' AND ({pick}) \
             ORDER BY id LIMIT 1000 FOR UPDATE"
        ))
        .await
        .map_err(db("recover"))?;
    let rows = tx.query(&stmt, params).await.map_err(db("recover"))?;
    let mut answer = Recovered::default();
    let mut moved = Vec::with_capacity(rows.len());
    for job in decodable(tx, "recover", &rows).await? {
        let moved_job = match why {
            Some(why) => rules::rescue(&job, why, now),
            None => rules::recover(&job, now),
        };
        if let Some(new) = moved_job {
            match new.status {
                JobStatus::Queued => answer.requeued.push(new.id),
                JobStatus::Cancelled => answer.cancelled.push(new.id),
                // A rescue on the job's last attempt: failed, and said so
                // in the job's errors.
                _ => {}
            }
            moved.push(new);
        }
    }
    write_back(tx, "recover", &moved).await?;
    Ok(answer)
}

/// Ended jobs beyond the retention limits, oldest ended first.
async fn prunable(
    tx: &Transaction<'_>,
    retention: &Retention,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, StoreError> {
    let ended = "status IN ('completed', 'failed', 'cancelled')";
    let mut doomed = Vec::new();
    if let Some(max) = retention.max_count {
        let keep = i64::try_from(max).unwrap_or(i64::MAX);
        let rows = tx
            .query(
                &format!(
                    "SELECT id FROM jobs WHERE {ended} ORDER BY updated_at DESC, id DESC OFFSET $1"
                ),
                &[&keep],
            )
            .await
            .map_err(db("prune"))?;
        doomed.extend(rows.iter().map(|r| r.get::<_, Uuid>(0)));
    }
    if let Some(cutoff) = cutoff(retention, now) {
        let rows = tx
            .query(
                &format!("SELECT id FROM jobs WHERE {ended} AND updated_at < $1"),
                &[&cutoff],
            )
            .await
            .map_err(db("prune"))?;
        doomed.extend(rows.iter().map(|r| r.get::<_, Uuid>(0)));
    }
    doomed.sort_unstable();
    doomed.dedup();
    Ok(doomed)
}

/// `now - max_age`, when retention has an age limit (and it is in range).
pub(super) fn cutoff(retention: &Retention, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    retention
        .max_age
        .and_then(|age| chrono::Duration::from_std(age).ok())
        .and_then(|age| now.checked_sub_signed(age))
}

fn validate_new(job: &Job) -> Result<(), StoreError> {
    rules::validate_new(job).map_err(|source| StoreError::InvalidJob { id: job.id, source })
}

#[async_trait]
impl JobStore for PostgresStore {
    async fn insert(&self, job: Job) -> Result<InsertOutcome, StoreError> {
        let mut out = self.insert_many(vec![job]).await?;
        out.pop().ok_or_else(|| StoreError::Backend {
            operation: "insert",
            source: "the insert returned no outcome".into(),
        })
    }

    async fn insert_many(&self, jobs: Vec<Job>) -> Result<Vec<InsertOutcome>, StoreError> {
        for job in &jobs {
            validate_new(job)?;
        }
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        self.write("insert", move |mut client, shared| async move {
            let tx = client.transaction().await.map_err(db("insert"))?;
            let out = insert_all(&tx, jobs).await?;
            tx.commit().await.map_err(db("insert"))?;
            if out.iter().any(InsertOutcome::is_new) {
                shared.wake_others();
            }
            Ok(out)
        })
        .await
    }

    async fn get_job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.run("get job", move |client, _| async move {
            let stmt = client
                .prepare_cached("SELECT data, id FROM jobs WHERE id = $1")
                .await
                .map_err(db("get job"))?;
            let row = client
                .query_opt(&stmt, &[&id])
                .await
                .map_err(db("get job"))?;
            row.map(|r| job_of(&r, 0)).transpose()
        })
        .await
    }

    async fn list_jobs(&self, query: &ListQuery) -> Result<JobPage, StoreError> {
        let query = query.clone();
        self.run("list jobs", move |client, _| async move {
            let limit = query.page_size();
            let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
            let status = query.status.map(JobStatus::as_str);
            let rows = client
                .query(
                    "SELECT data, id FROM jobs \
                     WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR worker = $2) \
                       AND ($3::uuid IS NULL OR id < $3) \
                     ORDER BY id DESC LIMIT $4",
                    &[&status, &query.worker, &query.cursor, &fetch],
                )
                .await
                .map_err(db("list jobs"))?;
            let mut jobs = jobs_of(&rows)?;
            let more = jobs.len() > limit;
            jobs.truncate(limit);
            let next_cursor = if more {
                jobs.last().map(|j| j.id)
            } else {
                None
            };
            Ok(JobPage { jobs, next_cursor })
        })
        .await
    }

    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<Job>, StoreError> {
        let request = request.clone();
        self.write("claim", move |mut client, shared| async move {
            let tx = client.transaction().await.map_err(db("claim"))?;
            let claimed = claim(&tx, &shared, &request).await?;
            tx.commit().await.map_err(db("claim"))?;
            shared.hold(claimed.iter().map(|j| j.id));
            Ok(claimed)
        })
        .await
    }

    async fn complete(
        &self,
        id: JobId,
        attempt: u32,
        result: Value,
    ) -> Result<Outcome, StoreError> {
        let outcome = fenced(self, "complete", id, move |job| {
            rules::complete(job, attempt, result, Utc::now())
        })
        .await?;
        log_fenced("complete", id, attempt, &outcome);
        Ok(outcome)
    }

    async fn fail(
        &self,
        id: JobId,
        attempt: u32,
        error: String,
        action: FailAction,
    ) -> Result<Outcome, StoreError> {
        let outcome = fenced(self, "fail", id, move |job| {
            rules::fail(job, attempt, error, action, Utc::now())
        })
        .await?;
        log_fenced("fail", id, attempt, &outcome);
        Ok(outcome)
    }

    async fn cancel(&self, id: JobId) -> Result<CancelOutcome, StoreError> {
        self.write("cancel", move |mut client, shared| async move {
            let tx = client.transaction().await.map_err(db("cancel"))?;
            let job = lock_job(&tx, "cancel", id).await?;
            let outcome = match rules::cancel(&job, Utc::now()) {
                CancelMove::Cancel(new) => {
                    write_back(&tx, "cancel", std::slice::from_ref(&new)).await?;
                    CancelOutcome::Cancelled(new)
                }
                CancelMove::Request(new) => {
                    write_back(&tx, "cancel", std::slice::from_ref(&new)).await?;
                    super::cluster::notify_cancel(&tx, &shared, id).await?;
                    CancelOutcome::Requested(new)
                }
                CancelMove::AlreadyRequested => CancelOutcome::Requested(job),
                CancelMove::AlreadyEnded => CancelOutcome::AlreadyEnded(job),
            };
            tx.commit().await.map_err(db("cancel"))?;
            Ok(outcome)
        })
        .await
    }

    async fn ack_cancel(&self, id: JobId, attempt: u32) -> Result<Outcome, StoreError> {
        fenced(self, "ack cancel", id, move |job| {
            rules::ack_cancel(job, attempt, Utc::now())
        })
        .await
    }

    async fn discard(&self, id: JobId, error: String) -> Result<Outcome, StoreError> {
        fenced(self, "discard", id, move |job| {
            rules::discard(job, error, Utc::now())
        })
        .await
    }

    /// This node's running jobs, and any whose lease has ended: never
    /// another live node's (it is still running them).
    async fn recover(&self, now: DateTime<Utc>) -> Result<Recovered, StoreError> {
        self.write("recover", move |mut client, shared| async move {
            let tx = client.transaction().await.map_err(db("recover"))?;
            let mut answer = Recovered::default();
            loop {
                let batch = requeue(
                    &tx,
                    "lease_node = $1 OR lease_node IS NULL OR lease_until < now()",
                    &[&shared.node],
                    None,
                    now,
                )
                .await?;
                let done = batch.requeued.len() + batch.cancelled.len() < 1000;
                answer.requeued.extend(batch.requeued);
                answer.cancelled.extend(batch.cancelled);
                if done {
                    break;
                }
            }
            tx.commit().await.map_err(db("recover"))?;
            shared.release(answer.requeued.iter().chain(&answer.cancelled).copied());
            if !answer.requeued.is_empty() {
                shared.wake_others();
            }
            Ok(answer)
        })
        .await
    }

    async fn next_wake(
        &self,
        workers: Option<&[String]>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let workers: Option<Vec<String>> = workers.map(<[String]>::to_vec);
        self.run("next wake", move |client, _| async move {
            // The earliest `run_at` from its own index (the scan stops at
            // the first ready job of a worker that is not paused), then the
            // jobs at that time decoded: the column holds microseconds, the
            // job's own `runAt` (in `data`) is exact.
            let stmt = client
                .prepare_cached(
                    "WITH p AS (SELECT coalesce(bool_or(target = '*'), false) AS all_paused, \
                                       coalesce(array_agg(target), '{}') AS paused FROM pauses), \
                          earliest AS ( \
                              SELECT run_at FROM jobs, p \
                              WHERE status = 'queued' AND NOT p.all_paused \
                                AND NOT (worker = ANY(p.paused)) \
                                AND ($1::text[] IS NULL OR worker = ANY($1)) \
                              ORDER BY run_at LIMIT 1) \
                     SELECT data, id, run_at FROM jobs, p \
                     WHERE status = 'queued' AND run_at = (SELECT run_at FROM earliest) \
                       AND NOT (worker = ANY(p.paused)) \
                       AND ($1::text[] IS NULL OR worker = ANY($1))",
                )
                .await
                .map_err(db("next wake"))?;
            let rows = client
                .query(&stmt, &[&workers])
                .await
                .map_err(db("next wake"))?;
            // A record that does not decode still has its column (the
            // claim that meets it ends it).
            Ok(rows
                .iter()
                .filter_map(|row| match job_of(row, 0) {
                    Ok(job) => Some(job.run_at),
                    Err(_) => row.try_get::<_, DateTime<Utc>>(2).ok(),
                })
                .min())
        })
        .await
    }

    async fn prune(&self, retention: &Retention, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let retention = *retention;
        self.write("prune", move |mut client, _| async move {
            let tx = client.transaction().await.map_err(db("prune"))?;
            let doomed = prunable(&tx, &retention, now).await?;
            let removed = tx
                .execute("DELETE FROM jobs WHERE id = ANY($1)", &[&doomed])
                .await
                .map_err(db("prune"))?;
            super::steps::drop_jobs(&tx, &doomed).await?;
            if let Some(cutoff) = cutoff(&retention, now) {
                super::usage::prune_calls(&tx, cutoff).await?;
            }
            tx.commit().await.map_err(db("prune"))?;
            Ok(usize::try_from(removed).unwrap_or(usize::MAX))
        })
        .await
    }

    async fn counts(&self) -> Result<JobCounts, StoreError> {
        self.run("counts", move |client, _| async move {
            let rows = client
                .query(
                    "SELECT worker, status, count(*) FROM jobs GROUP BY worker, status",
                    &[],
                )
                .await
                .map_err(db("counts"))?;
            let mut counts = JobCounts {
                by_status: JobStatus::ALL.into_iter().map(|s| (s, 0)).collect(),
                by_worker: BTreeMap::new(),
            };
            for row in rows {
                let worker: String = row.get(0);
                let status: String = row.get(1);
                let n = u64::try_from(row.get::<_, i64>(2)).unwrap_or(0);
                let status: JobStatus = status.parse().map_err(|e| StoreError::CorruptRecord {
                    what: "job status",
                    key: worker.clone(),
                    reason: format!("{e}"),
                })?;
                *counts.by_status.entry(status).or_default() += n;
                *counts
                    .by_worker
                    .entry(worker)
                    .or_default()
                    .entry(status)
                    .or_default() += n;
            }
            Ok(counts)
        })
        .await
    }

    async fn nodes(&self) -> Result<Vec<crate::store::NodeInfo>, StoreError> {
        self.run("nodes", |client, shared| async move {
            super::cluster::nodes(&client, &shared).await
        })
        .await
    }

    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<crate::store::StoreEvent>> {
        Some(self.inner.shared.events.subscribe())
    }

    /// A database that does not answer within 2 s (`HEALTH_TIMEOUT`) is not
    /// healthy: a readiness check must answer quickly, whatever the pool
    /// would wait for a connection.
    async fn health(&self) -> Result<(), StoreError> {
        self.writable()?;
        let check = self.run("health", |client, _| async move {
            client
                .simple_query("SELECT 1")
                .await
                .map_err(db("health"))?;
            Ok(())
        });
        match tokio::time::timeout(HEALTH_TIMEOUT, check).await {
            Ok(answer) => answer,
            Err(_) => Err(StoreError::Backend {
                operation: "health",
                source: format!("the database did not answer within {HEALTH_TIMEOUT:?}").into(),
            }),
        }
    }
}

/// A completion or failure that came too late: another attempt (maybe on
/// another node) owns the job now, so this result is dropped.
fn log_fenced(op: &str, id: JobId, attempt: u32, outcome: &Outcome) {
    if let Outcome::Stale {
        status,
        attempt: now,
    } = outcome
    {
        tracing::warn!(
            job = %id,
            attempt,
            status = status.as_str(),
            current_attempt = now,
            "fenced: {op} of an attempt that no longer holds the job; result dropped"
        );
    }
}
