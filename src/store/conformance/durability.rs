//! Crash and reopen: everything acknowledged survives, nothing changes
//! state on its own (running jobs wait for `recover`), and whatever the
//! adapter derives from its records is rebuilt.

use chrono::{NaiveDate, Utc};
use serde_json::json;

use super::support::{claim_all, claim_worker, enqueue, get, ids};
use super::usage::call_at;
use super::{ConformanceError, Context, Fixture, Harness};
use crate::job::schedule::{Schedule, ScheduleSpec};
use crate::job::{EnqueueOptions, FailAction, Job, JobStatus};
use crate::store::prelude::*;
use crate::store::{
    ChatMessage, DayUsage, JobCounts, ListQuery, Memory, MemoryScope, NewMemory, NewMessage,
    PauseState, PauseTarget, Role, UsageRecord,
};

/// Everything a store answers about, captured to compare across a crash.
#[derive(Debug, PartialEq)]
pub(super) struct Snapshot {
    jobs: Vec<Job>,
    counts: JobCounts,
    schedules: Vec<Schedule>,
    pause: PauseState,
    memories: Vec<Memory>,
    messages: Vec<ChatMessage>,
    steps: Vec<serde_json::Value>,
    key: Option<serde_json::Value>,
    day: DayUsage,
    calls: Vec<UsageRecord>,
}

/// What `store` answers about everything the cases store (the steps of
/// `job_for_steps`, usage of `day`).
pub(super) async fn snapshot<S: Store + ?Sized>(
    store: &S,
    job_for_steps: crate::job::JobId,
    day: NaiveDate,
) -> Result<Snapshot, ConformanceError> {
    Ok(Snapshot {
        jobs: store
            .list_jobs(&ListQuery {
                limit: 1000,
                ..ListQuery::default()
            })
            .await
            .context("list jobs")?
            .jobs,
        counts: store.counts().await.context("counts")?,
        schedules: store.list_schedules().await.context("list schedules")?,
        pause: store.pause_state().await.context("pause state")?,
        memories: store
            .list_memories(&MemoryScope::user("sarah", "u1"), true)
            .await
            .context("list memories")?,
        messages: store.list_messages("c1").await.context("list messages")?,
        steps: store
            .load_steps(job_for_steps)
            .await
            .context("load steps")?,
        key: store.get_key("k1").await.context("get key")?,
        day: store.day_usage(day).await.context("day usage")?,
        calls: store.calls(day).await.context("calls")?,
    })
}

/// Jobs in every status (with results, errors, cancel requests), a
/// schedule, the pause state, memories (one archived), messages, steps, an
/// idempotency key and usage: all read back the same after a crash.
pub async fn everything_acknowledged_survives_a_crash<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let now = Utc::now();
    enqueue(store, "queued", EnqueueOptions::default().priority(3)).await?;
    enqueue(
        store,
        "delayed",
        EnqueueOptions::default().run_at(now + chrono::Duration::hours(1)),
    )
    .await?;
    let mut running = Vec::new();
    for worker in ["run", "cancel-req", "done", "failed", "retry", "acked"] {
        let job = enqueue(store, worker, EnqueueOptions::default().unique_key(worker)).await?;
        claim_worker(store, worker, 1, Utc::now()).await?;
        running.push(job.id);
    }
    store.cancel(running[1]).await.context("request a cancel")?;
    store
        .complete(running[2], 1, json!({"answer": 42}))
        .await
        .context("complete")?;
    store
        .fail(running[3], 1, "broken".into(), FailAction::Final)
        .await
        .context("fail")?;
    let retry_at = now + chrono::Duration::minutes(5);
    store
        .fail(running[4], 1, "flaky".into(), FailAction::RetryAt(retry_at))
        .await
        .context("fail with a retry")?;
    store.cancel(running[5]).await.context("request a cancel")?;
    store.ack_cancel(running[5], 1).await.context("ack")?;
    let cancelled = enqueue(store, "cancelled", EnqueueOptions::default()).await?;
    store.cancel(cancelled.id).await.context("cancel")?;
    let discarded = enqueue(store, "discarded", EnqueueOptions::default()).await?;
    store
        .discard(discarded.id, "gone".into())
        .await
        .context("discard")?;

    let spec = ScheduleSpec::cron("0 * * * *").context("cron")?;
    let schedule =
        Schedule::new("hourly", "digest", json!({"k": 1}), spec, now).context("schedule")?;
    store
        .put_schedule(schedule)
        .await
        .context("put a schedule")?;
    store
        .set_paused(PauseTarget::Worker("queued".into()), true)
        .await
        .context("pause")?;

    let scope = MemoryScope::user("sarah", "u1");
    let mut originals = Vec::new();
    for content in ["likes tea", "likes coffee"] {
        let m = store
            .remember(NewMemory::new(&scope, "preference", content, 5), None)
            .await
            .context("remember")?;
        originals.push(m.memory.id);
    }
    store
        .remember(
            NewMemory::new(&scope, "fact", "uses vim", 3).with_source(running[2]),
            Some("mem-key".into()),
        )
        .await
        .context("remember with a key")?;
    store
        .compact(
            &scope,
            vec![originals[0]],
            vec![NewMemory::new(&scope, "summary", "drinks tea", 6)],
        )
        .await
        .context("compact")?;
    for (i, role) in [Role::User, Role::Assistant].into_iter().enumerate() {
        store
            .append(
                NewMessage::new("c1", role, "sarah", format!("m{i}")),
                Some(format!("msg-{i}")),
            )
            .await
            .context("append")?;
    }
    for step in 0..3u32 {
        store
            .save_step(running[0], step, json!({"step": step}))
            .await
            .context("save a step")?;
    }
    store
        .claim_key("k1", json!({"jobId": running[0]}))
        .await
        .context("claim a key")?;
    for _ in 0..3 {
        store
            .record(&call_at(Utc::now(), "sarah", "openai"))
            .await
            .context("record usage")?;
    }
    let day = Utc::now().date_naive();

    let before = snapshot(f.store(), running[0], day).await?;
    ensure_eq!(before.jobs.len(), 10, "jobs stored before the crash");
    let f = f.crash().await?;
    let after = snapshot(f.store(), running[0], day).await?;
    ensure_eq!(after, before, "everything, after a crash");
    Ok(())
}

/// Opening a store changes no job: jobs left running stay running until
/// `recover`, which queues them again with the attempt counted (or ends
/// them cancelled when a cancel was requested); the interrupted attempt's
/// late completion is then stale.
pub async fn running_jobs_stay_running_until_recover<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let running = enqueue(store, "w", EnqueueOptions::default()).await?;
    let cancelling = enqueue(store, "w", EnqueueOptions::default()).await?;
    claim_all(store, Utc::now()).await?;
    store
        .cancel(cancelling.id)
        .await
        .context("request a cancel")?;
    let queued = enqueue(store, "w", EnqueueOptions::default()).await?;
    let f = f.crash().await?;
    let store = f.store();
    ensure_eq!(
        get(store, running.id).await?.status,
        JobStatus::Running,
        "a running job after reopening, before recover"
    );
    let now = Utc::now();
    let recovered = store.recover(now).await.context("recover")?;
    ensure_eq!(recovered.requeued, vec![running.id], "requeued");
    ensure_eq!(recovered.cancelled, vec![cancelling.id], "cancelled");
    let job = get(store, running.id).await?;
    ensure_eq!(
        (job.status, job.attempt, job.run_at),
        (JobStatus::Queued, 1, now),
        "queued again, attempt kept, runnable at the recovery time"
    );
    ensure!(
        job.errors.len() == 1 && job.errors[0].message.contains("interrupted"),
        "the interruption is recorded, got {:?}",
        job.errors
    );
    ensure_eq!(
        get(store, cancelling.id).await?.status,
        JobStatus::Cancelled,
        "a cancel-requested job is cancelled by recovery"
    );
    ensure_eq!(
        get(store, queued.id).await?.status,
        JobStatus::Queued,
        "a queued job is left alone"
    );
    let again = claim_all(store, now).await?;
    ensure_eq!(again.len(), 2, "both queued jobs are claimed");
    ensure_eq!(
        again.iter().find(|j| j.id == running.id).map(|j| j.attempt),
        Some(2),
        "the recovered job runs attempt 2"
    );
    let stale = store
        .complete(running.id, 1, json!(0))
        .await
        .context("complete attempt 1")?;
    ensure!(
        stale.applied().is_none(),
        "the interrupted attempt's completion must be stale, got {stale:?}"
    );
    let done = store
        .complete(running.id, 2, json!(0))
        .await
        .context("complete attempt 2")?;
    ensure!(
        done.applied().is_some(),
        "the new attempt completes, got {done:?}"
    );
    let f = f.crash().await?;
    let recovered = f.store().recover(Utc::now()).await.context("recover")?;
    ensure_eq!(
        (recovered.requeued, recovered.cancelled),
        (vec![queued.id], vec![]),
        "only the job still running is recovered after the next crash"
    );
    Ok(())
}

/// What an adapter derives from its records (unique keys of active jobs,
/// ready jobs in claim order, per-worker and per-status sets, the pause
/// state, idempotency keys) works the same after a crash.
pub async fn derived_state_is_rebuilt_after_a_crash<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let held_queued = enqueue(store, "u", EnqueueOptions::default().unique_key("q")).await?;
    let held_running = enqueue(store, "r", EnqueueOptions::default().unique_key("r")).await?;
    claim_worker(store, "r", 1, Utc::now()).await?;
    let ended = enqueue(store, "e", EnqueueOptions::default().unique_key("e")).await?;
    store.cancel(ended.id).await.context("cancel")?;
    let low = enqueue(store, "w", EnqueueOptions::default().priority(1)).await?;
    let high = enqueue(store, "w", EnqueueOptions::default().priority(7)).await?;
    let later = Utc::now() + chrono::Duration::hours(2);
    let delayed = enqueue(store, "d", EnqueueOptions::default().run_at(later)).await?;
    store
        .set_paused(PauseTarget::Worker("u".into()), true)
        .await
        .context("pause u")?;
    let scope = MemoryScope::agent("sarah");
    let remembered = store
        .remember(NewMemory::new(&scope, "fact", "x", 5), Some("mk".into()))
        .await
        .context("remember")?;
    let appended = store
        .append(
            NewMessage::new("c", Role::User, "u", "hi"),
            Some("ck".into()),
        )
        .await
        .context("append")?;

    let f = f.crash().await?;
    let store = f.store();
    for (key, holder) in [("q", held_queued.id), ("r", held_running.id)] {
        let again = store
            .insert(super::support::new_job(
                "x",
                EnqueueOptions::default().unique_key(key),
            )?)
            .await
            .context("insert with a held key")?;
        ensure!(
            !again.is_new() && again.job().id == holder,
            "key {key:?} is still held by {holder} after a crash, got {again:?}"
        );
    }
    let free = store
        .insert(super::support::new_job(
            "x",
            EnqueueOptions::default().unique_key("e"),
        )?)
        .await
        .context("insert with an ended job's key")?;
    ensure!(
        free.is_new(),
        "an ended job's key is free after a crash, got {free:?}"
    );
    ensure_eq!(
        store
            .next_wake(Some(&["d".to_string(), "u".to_string()]))
            .await
            .context("next_wake")?,
        Some(delayed.run_at),
        "next_wake after a crash skips the paused worker"
    );
    let claimed = store
        .claim(&crate::store::ClaimRequest {
            now: Utc::now(),
            limit: 10,
            per_worker: Some([("w".to_string(), 10), ("u".to_string(), 10)].into()),
        })
        .await
        .context("claim w and u")?;
    ensure_eq!(
        ids(&claimed),
        vec![high.id, low.id],
        "claim order after a crash, the paused worker left out"
    );
    let running = store
        .list_jobs(&ListQuery {
            status: Some(JobStatus::Running),
            worker: Some("r".into()),
            ..ListQuery::default()
        })
        .await
        .context("list running jobs of r")?;
    ensure_eq!(
        ids(&running.jobs),
        vec![held_running.id],
        "the status and worker filters after a crash"
    );
    let again = store
        .remember(NewMemory::new(&scope, "fact", "y", 5), Some("mk".into()))
        .await
        .context("remember with the key again")?;
    ensure!(
        !again.created && again.memory == remembered.memory,
        "a memory idempotency key survives a crash, got {again:?}"
    );
    let again = store
        .append(
            NewMessage::new("c", Role::User, "u", "hi?"),
            Some("ck".into()),
        )
        .await
        .context("append with the key again")?;
    ensure!(
        !again.created && again.message == appended.message,
        "a message idempotency key survives a crash, got {again:?}"
    );
    Ok(())
}
