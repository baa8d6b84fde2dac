//! Inserts: unique keys (held while a job is queued or running, free once
//! it ended, also between jobs of one `insert_many` and between racing
//! inserts), duplicate ids, and the refusals of
//! [`crate::job::rules::validate_new`].

use std::collections::BTreeSet;

use chrono::Utc;
use serde_json::json;

use super::support::{claim_all, claim_worker, enqueue, new_job};
use super::{ConformanceError, Context, Fixture, Harness};
use crate::job::{EnqueueOptions, FailAction, JobError, JobStatus};
use crate::store::prelude::*;
use crate::store::{InsertOutcome, StoreError};

/// A job with a unique key held by a queued or running job is not stored:
/// the insert answers the holder. Within one `insert_many` the second job
/// with a key answers the first. Once the holder ended, the key is free.
pub async fn unique_keys_are_held_while_queued_or_running<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let opts = || EnqueueOptions::default().unique_key("daily-digest");
    let first = store
        .insert(new_job("w", opts())?)
        .await
        .context("insert the first job with the key")?;
    ensure!(
        first.is_new(),
        "the first job with a key is stored, got {first:?}"
    );
    let dup = store
        .insert(new_job("w", opts())?)
        .await
        .context("insert a second job with the key")?;
    ensure_eq!(
        dup,
        InsertOutcome::Existing(first.job().clone()),
        "a queued holder is answered"
    );
    claim_all(store, Utc::now()).await?;
    let dup = store
        .insert(new_job("other-worker", opts())?)
        .await
        .context("insert while the holder runs")?;
    ensure!(
        !dup.is_new() && dup.job().id == first.job().id && dup.job().status == JobStatus::Running,
        "a running holder is answered (whatever the new job's worker), got {dup:?}"
    );
    store
        .complete(first.job().id, 1, json!(null))
        .await
        .context("complete the holder")?;
    let next = store
        .insert(new_job("w", opts())?)
        .await
        .context("insert after the holder ended")?;
    ensure!(
        next.is_new() && next.job().id != first.job().id,
        "the key is free once its holder ended, got {next:?}"
    );
    let bulk = store
        .insert_many(vec![
            new_job("w", EnqueueOptions::default().unique_key("b"))?,
            new_job("w", EnqueueOptions::default().unique_key("b"))?,
        ])
        .await
        .context("insert_many two jobs with one key")?;
    ensure!(bulk.len() == 2, "two outcomes, got {bulk:?}");
    ensure!(bulk[0].is_new(), "the first of the bulk is stored");
    ensure_eq!(
        bulk[1],
        InsertOutcome::Existing(bulk[0].job().clone()),
        "the second of the bulk answers the first"
    );
    let counts = store.counts().await.context("counts")?;
    ensure_eq!(
        counts.status(JobStatus::Queued),
        2,
        "queued jobs: one per free key"
    );
    Ok(())
}

/// Every way a job ends frees its key: completed, failed, cancelled while
/// queued, cancelled while running, discarded. A retry (queued again) and
/// a cancel request keep it.
pub async fn a_unique_key_is_freed_by_every_way_a_job_ends<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    for end in [
        "complete", "fail", "cancel", "ack", "discard", "retry", "request",
    ] {
        let key = format!("key-{end}");
        let worker = format!("w-{end}");
        let opts = || EnqueueOptions::default().unique_key(key.clone());
        let job = enqueue(store, &worker, opts()).await?;
        if !matches!(end, "cancel" | "discard") {
            claim_worker(store, &worker, 1, Utc::now()).await?;
        }
        let doing = format!("end the holder by {end}");
        match end {
            "complete" => {
                store.complete(job.id, 1, json!(1)).await.context(&doing)?;
            }
            "fail" => {
                let action = FailAction::Final;
                store
                    .fail(job.id, 1, "e".into(), action)
                    .await
                    .context(&doing)?;
            }
            "cancel" | "request" => {
                store.cancel(job.id).await.context(&doing)?;
            }
            "ack" => {
                store.cancel(job.id).await.context(&doing)?;
                store.ack_cancel(job.id, 1).await.context(&doing)?;
            }
            "discard" => {
                store.discard(job.id, "gone".into()).await.context(&doing)?;
            }
            _ => {
                let action = FailAction::RetryAt(Utc::now() + chrono::Duration::hours(1));
                store
                    .fail(job.id, 1, "e".into(), action)
                    .await
                    .context(&doing)?;
            }
        }
        let again = store
            .insert(new_job(&worker, opts())?)
            .await
            .context(format!("insert with the key after {end}"))?;
        let held = matches!(end, "retry" | "request");
        ensure_eq!(
            !again.is_new(),
            held,
            "whether the key is still held after {end}"
        );
    }
    Ok(())
}

/// 32 tasks inserting a job with one key at once store exactly one.
pub async fn concurrent_inserts_with_one_unique_key_store_one_job<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let store = f.shared();
        let job = new_job("w", EnqueueOptions::default().unique_key("one"))?;
        tasks.push(tokio::spawn(async move { store.insert(job).await }));
    }
    let mut ids = BTreeSet::new();
    let mut new = 0;
    for task in tasks {
        let out = task.await.context("join an inserter")?.context("insert")?;
        new += usize::from(out.is_new());
        ids.insert(out.job().id);
    }
    ensure_eq!(
        (new, ids.len()),
        (1, 1),
        "(jobs stored, distinct jobs answered)"
    );
    let counts = f.store().counts().await.context("counts")?;
    ensure_eq!(counts.status(JobStatus::Queued), 1, "one job queued");
    Ok(())
}

/// A job whose id is stored already is refused naming the field `id`, and
/// the stored one is left as it was.
pub async fn a_duplicate_id_is_refused<H: Harness>(h: &H) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let job = enqueue(store, "w", EnqueueOptions::default()).await?;
    claim_all(store, Utc::now()).await?;
    let stored = store.get_job(job.id).await.context("get")?;
    for (call, result) in [
        ("insert", store.insert(job.clone()).await.map(|_| ())),
        (
            "insert_many",
            store.insert_many(vec![job.clone()]).await.map(|_| ()),
        ),
    ] {
        match result {
            Err(StoreError::InvalidJob {
                id,
                source: JobError::Invalid { field: "id", .. },
            }) if id == job.id => {}
            other => bail!(
                "{call} of a job whose id is stored must be refused naming `id`, got {other:?}"
            ),
        }
    }
    ensure_eq!(
        store.get_job(job.id).await.context("get")?,
        stored,
        "the stored job is unchanged"
    );
    Ok(())
}

/// Makes a new job unfit for `insert` in one field.
type Spoil = fn(&mut crate::job::Job);

/// `insert` and `insert_many` refuse a job that is not new (not built by
/// `Job::new`, or tampered with), naming the field, and store nothing;
/// one bad job in an `insert_many` stores none of them.
pub async fn jobs_that_are_not_new_are_refused_naming_the_field<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let cases: [(&str, Spoil); 6] = [
        ("status", |j| j.status = JobStatus::Running),
        ("status", |j| j.status = JobStatus::Completed),
        ("attempt", |j| j.attempt = 1),
        ("maxAttempts", |j| j.max_attempts = 0),
        ("workerName", |j| j.worker_name = "  ".into()),
        ("uniqueKey", |j| j.unique_key = Some(String::new())),
    ];
    for (field, spoil) in cases {
        let mut bad = new_job("w", EnqueueOptions::default())?;
        spoil(&mut bad);
        let good = new_job("w", EnqueueOptions::default())?;
        for (call, result) in [
            ("insert", store.insert(bad.clone()).await.map(|_| ())),
            (
                "insert_many",
                store.insert_many(vec![good, bad.clone()]).await.map(|_| ()),
            ),
        ] {
            match result {
                Err(
                    e @ StoreError::InvalidJob {
                        id,
                        source: JobError::Invalid { field: f, .. },
                    },
                ) if id == bad.id && f == field => ensure!(
                    e.to_string().contains(field) && e.to_string().contains(&bad.id.to_string()),
                    "{call}: the message must name the job and the field {field}, got {e}"
                ),
                other => bail!(
                    "{call} of a job with a bad {field} must be refused naming it, got {other:?}"
                ),
            }
        }
    }
    let counts = store.counts().await.context("counts")?;
    ensure_eq!(
        counts.by_status.values().sum::<u64>(),
        0,
        "nothing was stored"
    );
    Ok(())
}

/// `insert_many` answers one outcome per job, in input order, each job as
/// stored (or its key's holder).
pub async fn insert_many_answers_in_input_order<H: Harness>(h: &H) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let held = enqueue(store, "w", EnqueueOptions::default().unique_key("held")).await?;
    let jobs = vec![
        new_job("c", EnqueueOptions::default())?,
        new_job("a", EnqueueOptions::default().priority(9))?,
        new_job("w", EnqueueOptions::default().unique_key("held"))?,
        new_job("b", EnqueueOptions::default())?,
    ];
    let outcomes = store
        .insert_many(jobs.clone())
        .await
        .context("insert_many")?;
    let expected = vec![
        InsertOutcome::Inserted(jobs[0].clone()),
        InsertOutcome::Inserted(jobs[1].clone()),
        InsertOutcome::Existing(held),
        InsertOutcome::Inserted(jobs[3].clone()),
    ];
    ensure_eq!(outcomes, expected, "one outcome per job, in input order");
    for job in [&jobs[0], &jobs[1], &jobs[3]] {
        ensure_eq!(
            store.get_job(job.id).await.context("get")?.as_ref(),
            Some(job),
            "each inserted job is stored as given"
        );
    }
    ensure!(
        store.get_job(jobs[2].id).await.context("get")?.is_none(),
        "a coalesced job is not stored"
    );
    ensure!(
        store
            .insert_many(Vec::new())
            .await
            .context("insert_many of nothing")?
            .is_empty(),
        "insert_many of no job answers nothing"
    );
    Ok(())
}
