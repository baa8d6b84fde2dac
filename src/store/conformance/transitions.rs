//! Job transitions: every operation from every status gives what
//! [`crate::job::rules`] says, outcomes are fenced by status and attempt
//! (stale ones change nothing), terminal statuses have no way out, and the
//! everyday paths (retries, cancels, discards) end where they should.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::support::{at, claim_all, claim_worker, enqueue, get, ids};
use super::{ConformanceError, Context, Fixture, Harness};
use crate::job::rules::{self, CancelMove};
use crate::job::{EnqueueOptions, FailAction, Job, JobCtx, JobId, JobStatus};
use crate::store::prelude::*;
use crate::store::{CancelOutcome, Outcome, StoreError};

/// Insert, get, claim, complete: each answer is the job as stored.
pub async fn a_job_runs_the_happy_path<H: Harness>(h: &H) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let job = enqueue(store, "echo", EnqueueOptions::default()).await?;
    ensure_eq!(
        get(store, job.id).await?,
        job,
        "get answers the inserted job"
    );
    let unknown = uuid::Uuid::now_v7();
    ensure_eq!(
        store.get_job(unknown).await.context("get an unknown job")?,
        None,
        "get of an id never stored"
    );

    let claimed = claim_all(store, Utc::now()).await?;
    ensure_eq!(claimed.len(), 1, "one ready job, one claimed");
    ensure_eq!(
        (claimed[0].id, claimed[0].status, claimed[0].attempt),
        (job.id, JobStatus::Running, 1),
        "a claimed job is running its first attempt"
    );
    ensure_eq!(
        get(store, job.id).await?,
        claimed[0],
        "claim answers the job as stored"
    );

    let done = store
        .complete(job.id, 1, json!({"ok": true}))
        .await
        .context("complete attempt 1")?;
    let Some(done) = done.applied().cloned() else {
        bail!("completing the running attempt must apply, got {done:?}");
    };
    ensure_eq!(done.status, JobStatus::Completed, "status after complete");
    ensure_eq!(
        done.result,
        Some(json!({"ok": true})),
        "result after complete"
    );
    ensure_eq!(
        get(store, job.id).await?,
        done,
        "complete answers the job as stored"
    );
    Ok(())
}

/// A job comes back with every field it was stored with (the seed's JSON
/// shape: ctx extras, timeout, unique key, times), after a claim and a
/// completion too, and after a crash.
pub async fn a_job_keeps_every_field_it_was_stored_with<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let mut ctx = JobCtx {
        user_id: Some("u1".into()),
        conversation_id: Some("c1".into()),
        source: Some("cli".into()),
        ..JobCtx::default()
    };
    ctx.extra.insert("tenant".into(), json!("acme"));
    ctx.extra
        .insert("nested".into(), json!({"a": [1, 2.5, null]}));
    let options = EnqueueOptions::default()
        .run_at(Utc::now() - chrono::Duration::seconds(5))
        .priority(-7)
        .max_attempts(4)
        .unique_key("kept")
        .timeout(std::time::Duration::from_millis(1500));
    let args = json!({"x": 1, "text": "é \u{1F600} \"quoted\"", "list": [true, {}]});
    let job = Job::new("echo", args, ctx, &options, Utc::now()).context("build the job")?;
    f.store()
        .insert(job.clone())
        .await
        .context("insert the job")?;
    ensure_eq!(
        get(f.store(), job.id).await?,
        job,
        "the stored job, every field"
    );
    let claimed = claim_all(f.store(), Utc::now()).await?;
    ensure_eq!(claimed.len(), 1, "the job is claimed");
    let result = json!({"answer": "done", "usage": {"tokens": 12}});
    let done = store_applied(
        f.store()
            .complete(job.id, 1, result.clone())
            .await
            .context("complete the job")?,
        "complete the job",
    )?;
    let mut expected = job.clone();
    expected.status = JobStatus::Completed;
    expected.attempt = 1;
    expected.result = Some(result);
    expected.updated_at = done.updated_at;
    ensure_eq!(
        done,
        expected,
        "only status, attempt, result and updatedAt change"
    );
    let f = f.crash().await?;
    ensure_eq!(
        get(f.store(), job.id).await?,
        expected,
        "the job after a crash"
    );
    Ok(())
}

/// `complete` names the attempt it finishes: a wrong attempt, a second
/// completion, a late failure and a completion of a queued job are stale
/// and change nothing; an unknown id is an error naming it.
pub async fn a_completion_is_recorded_once<H: Harness>(h: &H) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let job = enqueue(store, "echo", EnqueueOptions::default()).await?;
    claim_all(store, Utc::now()).await?;
    ensure_eq!(
        store
            .complete(job.id, 2, json!(1))
            .await
            .context("complete attempt 2")?,
        Outcome::Stale {
            status: JobStatus::Running,
            attempt: 1
        },
        "completing an attempt that is not running"
    );
    store_applied(
        store
            .complete(job.id, 1, json!(1))
            .await
            .context("complete attempt 1")?,
        "complete attempt 1",
    )?;
    ensure_eq!(
        store
            .complete(job.id, 1, json!(2))
            .await
            .context("complete again")?,
        Outcome::Stale {
            status: JobStatus::Completed,
            attempt: 1
        },
        "a second completion"
    );
    ensure_eq!(
        store
            .fail(job.id, 1, "late".into(), FailAction::Final)
            .await
            .context("fail after completion")?,
        Outcome::Stale {
            status: JobStatus::Completed,
            attempt: 1
        },
        "a late failure"
    );
    ensure_eq!(
        get(store, job.id).await?.result,
        Some(json!(1)),
        "the first completion's result stays"
    );
    let queued = enqueue(store, "later", EnqueueOptions::default()).await?;
    let out = store
        .complete(queued.id, 0, json!(1))
        .await
        .context("complete a queued job")?;
    ensure!(
        matches!(
            out,
            Outcome::Stale {
                status: JobStatus::Queued,
                attempt: 0
            }
        ),
        "completing a job never claimed must be stale, got {out:?}"
    );
    Ok(())
}

/// An attempt that waited out an outage queues the job again at the given
/// time without spending one of its attempts, and says so in `outages`,
/// until the allowance is used; then it counts like a retry. Survives a
/// crash.
pub async fn an_outage_is_waited_out_without_spending_attempts<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let mut f = Fixture::open(h).await?;
    let job = enqueue(f.store(), "llm", EnqueueOptions::default().max_attempts(1)).await?;
    let now = Utc::now();
    for n in 1..=2u32 {
        let store = f.store();
        let claimed = claim_all(store, now).await?;
        ensure_eq!(claimed.len(), 1, "claimed for attempt {n}");
        let postpone = FailAction::Postpone {
            at: now,
            allowance: 2,
        };
        let queued = store_applied(
            store
                .fail(job.id, n, format!("circuit open {n}"), postpone)
                .await
                .context("fail with an outage")?,
            "fail with an outage",
        )?;
        ensure_eq!(
            (queued.status, queued.attempt, queued.outages),
            (JobStatus::Queued, n, n),
            "outage {n} waited out: queued, attempt kept, counted as an outage"
        );
        f = f.crash().await?;
    }
    let store = f.store();
    ensure_eq!(
        get(store, job.id).await?.outages,
        2,
        "outages survive a crash"
    );
    claim_all(store, now).await?;
    let postpone = FailAction::Postpone {
        at: now,
        allowance: 2,
    };
    let failed = store_applied(
        store
            .fail(job.id, 3, "circuit open 3".into(), postpone)
            .await
            .context("fail past the allowance")?,
        "fail past the allowance",
    )?;
    ensure_eq!(
        failed.status,
        JobStatus::Failed,
        "past the allowance an outage spends the job's one attempt"
    );
    Ok(())
}

/// A retryable failure queues the job again at its backoff time while
/// attempts are left; a retry asked for on the last attempt ends it
/// `failed`; every attempt's error is kept.
pub async fn failures_retry_until_attempts_run_out<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let job = enqueue(store, "flaky", EnqueueOptions::default().max_attempts(2)).await?;
    let now = Utc::now();
    claim_all(store, now).await?;
    let retry_at = now + chrono::Duration::seconds(30);
    let queued = store_applied(
        store
            .fail(job.id, 1, "boom 1".into(), FailAction::RetryAt(retry_at))
            .await
            .context("fail attempt 1 with a retry")?,
        "fail attempt 1",
    )?;
    ensure_eq!(
        (queued.status, queued.run_at, queued.attempt),
        (JobStatus::Queued, retry_at, 1),
        "queued again at the retry time, attempt kept"
    );
    ensure_eq!(queued.error.as_deref(), Some("boom 1"), "the last error");
    ensure_eq!(queued.errors.len(), 1, "errors kept");
    ensure!(
        claim_all(store, now + chrono::Duration::seconds(29))
            .await?
            .is_empty(),
        "a job waiting for its retry time must not be claimed before it"
    );
    ensure_eq!(
        store.next_wake(None).await.context("next_wake")?,
        Some(retry_at),
        "the scheduler wakes at the retry time"
    );
    let again = claim_all(store, retry_at).await?;
    ensure_eq!(
        again.iter().map(|j| j.attempt).collect::<Vec<_>>(),
        vec![2],
        "claimed again at the retry time for attempt 2"
    );
    let failed = store_applied(
        store
            .fail(job.id, 2, "boom 2".into(), FailAction::RetryAt(retry_at))
            .await
            .context("fail attempt 2 with a retry")?,
        "fail attempt 2",
    )?;
    ensure_eq!(
        failed.status,
        JobStatus::Failed,
        "a retry on the last attempt is final"
    );
    ensure_eq!(failed.error.as_deref(), Some("boom 2"), "the last error");
    ensure_eq!(
        failed
            .errors
            .iter()
            .map(|e| (e.attempt, e.message.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "boom 1"), (2, "boom 2")],
        "one error per attempt, oldest first"
    );
    Ok(())
}

/// `FailAction::Final` ends the job whatever attempts are left.
pub async fn a_permanent_failure_ends_the_job_at_once<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let job = enqueue(store, "w", EnqueueOptions::default().max_attempts(5)).await?;
    claim_all(store, Utc::now()).await?;
    let failed = store_applied(
        store
            .fail(job.id, 1, "bad input".into(), FailAction::Final)
            .await
            .context("fail for good")?,
        "fail for good",
    )?;
    ensure_eq!(
        (failed.status, failed.attempt),
        (JobStatus::Failed, 1),
        "failed on its first attempt"
    );
    ensure!(
        claim_all(store, Utc::now() + chrono::Duration::days(1))
            .await?
            .is_empty(),
        "a failed job is never claimed"
    );
    Ok(())
}

/// Cancel: a queued job ends `cancelled` at once; a running one gets
/// `cancelRequested` (durable, idempotent) until `ack_cancel`; an ended
/// one is left as it is; a failing attempt of a cancel-requested job ends
/// `cancelled`, not retried.
pub async fn cancel_ends_a_queued_job_and_requests_a_running_one<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let queued = enqueue(store, "w", EnqueueOptions::default()).await?;
    match store.cancel(queued.id).await.context("cancel queued")? {
        CancelOutcome::Cancelled(j) if j.status == JobStatus::Cancelled => {}
        other => bail!("cancelling a queued job must end it cancelled, got {other:?}"),
    }
    ensure!(
        claim_all(store, Utc::now()).await?.is_empty(),
        "a cancelled job is never claimed"
    );

    let running = enqueue(store, "w", EnqueueOptions::default()).await?;
    claim_all(store, Utc::now()).await?;
    match store.cancel(running.id).await.context("cancel running")? {
        CancelOutcome::Requested(j) if j.status == JobStatus::Running && j.cancel_requested => {}
        other => bail!("cancelling a running job must request it, got {other:?}"),
    }
    ensure!(
        get(store, running.id).await?.cancel_requested,
        "the request is stored for the scheduler to see"
    );
    match store.cancel(running.id).await.context("cancel again")? {
        CancelOutcome::Requested(j) if j.cancel_requested => {}
        other => bail!("a second cancel of a running job is still a request, got {other:?}"),
    }
    let acked = store_applied(
        store
            .ack_cancel(running.id, 1)
            .await
            .context("acknowledge the cancel")?,
        "ack_cancel",
    )?;
    ensure_eq!(acked.status, JobStatus::Cancelled, "acknowledged cancel");
    match store
        .cancel(running.id)
        .await
        .context("cancel an ended job")?
    {
        CancelOutcome::AlreadyEnded(j) if j.status == JobStatus::Cancelled => {}
        other => bail!("cancelling an ended job changes nothing, got {other:?}"),
    }

    let failing = enqueue(store, "w", EnqueueOptions::default()).await?;
    claim_all(store, Utc::now()).await?;
    store
        .cancel(failing.id)
        .await
        .context("cancel the failing job")?;
    let out = store_applied(
        store
            .fail(
                failing.id,
                1,
                "stopped".into(),
                FailAction::RetryAt(Utc::now()),
            )
            .await
            .context("fail the cancel-requested attempt")?,
        "fail a cancel-requested attempt",
    )?;
    ensure_eq!(
        out.status,
        JobStatus::Cancelled,
        "no retry after a cancel request"
    );
    Ok(())
}

/// `ack_cancel` is fenced like `complete`: only the running attempt it names.
pub async fn ack_cancel_is_fenced_by_status_and_attempt<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let queued = enqueue(store, "q", EnqueueOptions::default()).await?;
    ensure_eq!(
        store
            .ack_cancel(queued.id, 0)
            .await
            .context("ack a queued job")?,
        Outcome::Stale {
            status: JobStatus::Queued,
            attempt: 0
        },
        "ack_cancel of a queued job"
    );
    let job = enqueue(store, "r", EnqueueOptions::default()).await?;
    claim_worker(store, "r", 1, Utc::now()).await?;
    store.cancel(job.id).await.context("request a cancel")?;
    ensure_eq!(
        store
            .ack_cancel(job.id, 2)
            .await
            .context("ack another attempt")?,
        Outcome::Stale {
            status: JobStatus::Running,
            attempt: 1
        },
        "ack_cancel naming an attempt that is not running"
    );
    store_applied(
        store
            .ack_cancel(job.id, 1)
            .await
            .context("ack the running attempt")?,
        "ack_cancel",
    )?;
    ensure_eq!(
        store.ack_cancel(job.id, 1).await.context("ack again")?,
        Outcome::Stale {
            status: JobStatus::Cancelled,
            attempt: 1
        },
        "a second ack_cancel"
    );
    Ok(())
}

/// `discard` fails a queued job with the reason, without an attempt; any
/// other status is stale.
pub async fn discard_fails_only_a_queued_job<H: Harness>(h: &H) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let job = enqueue(store, "gone", EnqueueOptions::default()).await?;
    let failed = store_applied(
        store
            .discard(job.id, "worker gone is not registered".into())
            .await
            .context("discard a queued job")?,
        "discard",
    )?;
    ensure_eq!(
        (failed.status, failed.attempt),
        (JobStatus::Failed, 0),
        "discarded: failed, no attempt made"
    );
    ensure_eq!(
        failed.error.as_deref(),
        Some("worker gone is not registered"),
        "the reason is the error"
    );
    ensure_eq!(
        store
            .discard(job.id, "x".into())
            .await
            .context("discard again")?,
        Outcome::Stale {
            status: JobStatus::Failed,
            attempt: 0
        },
        "discarding an ended job"
    );
    let running = enqueue(store, "busy", EnqueueOptions::default()).await?;
    claim_worker(store, "busy", 1, Utc::now()).await?;
    ensure_eq!(
        store
            .discard(running.id, "x".into())
            .await
            .context("discard a running job")?,
        Outcome::Stale {
            status: JobStatus::Running,
            attempt: 1
        },
        "discarding a running job"
    );
    Ok(())
}

/// Completed, failed and cancelled jobs answer every operation with
/// "stale" or "already ended" and never change again.
pub async fn terminal_statuses_have_no_way_out<H: Harness>(h: &H) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let mut ended = Vec::new();
    for (i, end) in ["complete", "fail", "cancel", "ack", "discard"]
        .into_iter()
        .enumerate()
    {
        let worker = format!("w{i}");
        let job = enqueue(store, &worker, EnqueueOptions::default()).await?;
        if end != "cancel" && end != "discard" {
            claim_worker(store, &worker, 1, Utc::now()).await?;
        }
        let doing = format!("end a job by {end}");
        match end {
            "complete" => {
                store.complete(job.id, 1, json!(i)).await.context(&doing)?;
            }
            "fail" => {
                let action = FailAction::Final;
                store
                    .fail(job.id, 1, "e".into(), action)
                    .await
                    .context(&doing)?;
            }
            "ack" => {
                store.cancel(job.id).await.context(&doing)?;
                store.ack_cancel(job.id, 1).await.context(&doing)?;
            }
            "cancel" => {
                store.cancel(job.id).await.context(&doing)?;
            }
            _ => {
                store.discard(job.id, "gone".into()).await.context(&doing)?;
            }
        }
        let now = get(store, job.id).await?;
        ensure!(
            now.status.is_terminal(),
            "setting up a job ended by {end}: got {now:?}"
        );
        ended.push(now);
    }
    let later = Utc::now() + chrono::Duration::days(1);
    ensure!(
        claim_all(store, later).await?.is_empty(),
        "an ended job is never claimed"
    );
    let recovered = store.recover(later).await.context("recover")?;
    ensure!(
        recovered.requeued.is_empty() && recovered.cancelled.is_empty(),
        "recover leaves ended jobs alone, got {recovered:?}"
    );
    for job in &ended {
        let stale = Outcome::Stale {
            status: job.status,
            attempt: job.attempt,
        };
        for attempt in [job.attempt, job.attempt + 1] {
            ensure_eq!(
                store
                    .complete(job.id, attempt, json!("late"))
                    .await
                    .context("complete")?,
                stale,
                "complete of a {} job (attempt {attempt})",
                job.status
            );
            ensure_eq!(
                store
                    .fail(job.id, attempt, "late".into(), FailAction::RetryAt(later))
                    .await
                    .context("fail")?,
                stale,
                "fail of a {} job (attempt {attempt})",
                job.status
            );
            ensure_eq!(
                store
                    .ack_cancel(job.id, attempt)
                    .await
                    .context("ack_cancel")?,
                stale,
                "ack_cancel of a {} job (attempt {attempt})",
                job.status
            );
        }
        ensure_eq!(
            store
                .discard(job.id, "late".into())
                .await
                .context("discard")?,
            stale,
            "discard of a {} job",
            job.status
        );
        match store.cancel(job.id).await.context("cancel")? {
            CancelOutcome::AlreadyEnded(j) if j == *job => {}
            other => bail!(
                "cancel of a {} job must answer AlreadyEnded with the job unchanged, got {other:?}",
                job.status
            ),
        }
        ensure_eq!(
            get(store, job.id).await?,
            *job,
            "a {} job after every operation",
            job.status
        );
    }
    Ok(())
}

/// The states a job is put in before each operation of the matrix.
const STATES: [&str; 10] = [
    "queued",
    "queued-later",
    "running",
    "cancel-requested",
    "retry-queued",
    "completed",
    "failed",
    "cancelled",
    "discarded",
    "waiting",
];

/// The operations of the matrix; `+1` names the attempt after the current.
const OPERATIONS: [&str; 14] = [
    "park",
    "park+1",
    "claim",
    "complete",
    "complete+1",
    "fail-retry",
    "fail-retry+1",
    "fail-final",
    "fail-final+1",
    "cancel",
    "ack_cancel",
    "ack_cancel+1",
    "discard",
    "recover",
];

/// The matrix: each operation applied to a job in each state gives exactly
/// the job (and answer) that the pure rule gives for the job as stored;
/// every change is a legal move ([`JobStatus::can_transition_to`]) and
/// every refusal changes nothing.
pub async fn every_operation_from_every_status_follows_the_rules<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    for (s, state) in STATES.into_iter().enumerate() {
        for (o, operation) in OPERATIONS.into_iter().enumerate() {
            // One worker per cell, so claims of one cell see no other job.
            let worker = format!("cell-{s}-{o}");
            let before = prepare(f.store(), &worker, state).await?;
            check_cell(f.store(), &before, state, operation)
                .await
                .map_err(|e| e.within(format!("{operation} on a {state} job")))?;
        }
    }
    Ok(())
}

/// A job of `worker` brought into `state`, as stored.
async fn prepare<S: Store + ?Sized>(
    store: &S,
    worker: &str,
    state: &str,
) -> Result<Job, ConformanceError> {
    let mut options = EnqueueOptions::default();
    if state == "queued-later" {
        options = options.run_at(Utc::now() + chrono::Duration::hours(1));
    }
    let job = enqueue(store, worker, options).await?;
    let now = Utc::now();
    let claim = || claim_worker(store, worker, 1, now);
    let doing = format!("bring a job into state {state}");
    match state {
        "queued" | "queued-later" => {}
        "running" => {
            claim().await?;
        }
        "cancel-requested" => {
            claim().await?;
            store.cancel(job.id).await.context(&doing)?;
        }
        "retry-queued" => {
            claim().await?;
            let past = now - chrono::Duration::seconds(1);
            let action = FailAction::RetryAt(past);
            store
                .fail(job.id, 1, "first".into(), action)
                .await
                .context(&doing)?;
        }
        "completed" => {
            claim().await?;
            store
                .complete(job.id, 1, json!("r"))
                .await
                .context(&doing)?;
        }
        "failed" => {
            claim().await?;
            let action = FailAction::Final;
            store
                .fail(job.id, 1, "e".into(), action)
                .await
                .context(&doing)?;
        }
        "cancelled" => {
            store.cancel(job.id).await.context(&doing)?;
        }
        "waiting" => {
            claim().await?;
            store
                .park_job(job.id, 1, vec![super::approvals::request(0, None)])
                .await
                .context(&doing)?;
        }
        _ => {
            store.discard(job.id, "gone".into()).await.context(&doing)?;
        }
    }
    get(store, job.id).await
}

/// Applies `operation` to `before` through the store and compares with the rule.
async fn check_cell<S: Store + ?Sized>(
    store: &S,
    before: &Job,
    state: &str,
    operation: &str,
) -> Result<(), ConformanceError> {
    let now = Utc::now();
    let retry_at = at("2030-01-01T00:00:00Z")?;
    let (name, next_attempt) = match operation.strip_suffix("+1") {
        Some(name) => (name, true),
        None => (operation, false),
    };
    let attempt = before.attempt + u32::from(next_attempt);
    let expected: Option<Job> = match name {
        "claim" => {
            let claimed = claim_worker(store, &before.worker_name, 10, now).await?;
            let rule = rules::claim(before, now);
            ensure_eq!(
                ids(&claimed),
                rule.iter().map(|j| j.id).collect::<Vec<_>>(),
                "jobs claimed"
            );
            if let Some(claimed) = claimed.first() {
                ensure_eq!(
                    claimed,
                    &get(store, before.id).await?,
                    "claim answers the job as stored"
                );
            }
            rule
        }
        "complete" => {
            let out = store
                .complete(before.id, attempt, json!("done"))
                .await
                .context("complete")?;
            fenced(
                store,
                before,
                out,
                rules::complete(before, attempt, json!("done"), now),
            )
            .await?
        }
        "fail-retry" | "fail-final" => {
            let action = if name == "fail-retry" {
                FailAction::RetryAt(retry_at)
            } else {
                FailAction::Final
            };
            let out = store
                .fail(before.id, attempt, "boom".into(), action)
                .await
                .context("fail")?;
            let rule = rules::fail(before, attempt, "boom".into(), action, now);
            fenced(store, before, out, rule).await?
        }
        "park" => {
            let asked = vec![super::approvals::request(0, None)];
            let out = store
                .park_job(before.id, attempt, asked.clone())
                .await
                .context("park")?;
            fenced(store, before, out, rules::park(before, attempt, asked, now)).await?
        }
        "ack_cancel" => {
            let out = store
                .ack_cancel(before.id, attempt)
                .await
                .context("ack_cancel")?;
            fenced(store, before, out, rules::ack_cancel(before, attempt, now)).await?
        }
        "discard" => {
            let out = store
                .discard(before.id, "gone".into())
                .await
                .context("discard")?;
            fenced(
                store,
                before,
                out,
                rules::discard(before, "gone".into(), now),
            )
            .await?
        }
        "cancel" => {
            let out = store.cancel(before.id).await.context("cancel")?;
            let after = get(store, before.id).await?;
            match (rules::cancel(before, now), &out) {
                (CancelMove::Cancel(rule), CancelOutcome::Cancelled(j)) if *j == after => {
                    Some(rule)
                }
                (CancelMove::Request(rule), CancelOutcome::Requested(j)) if *j == after => {
                    Some(rule)
                }
                (CancelMove::AlreadyRequested, CancelOutcome::Requested(j)) if j == before => None,
                (CancelMove::AlreadyEnded, CancelOutcome::AlreadyEnded(j)) if j == before => None,
                (rule, out) => {
                    bail!("the rule says {rule:?}; the store answered {out:?} and stored {after:?}")
                }
            }
        }
        _ => {
            let recovered = store.recover(now).await.context("recover")?;
            let rule = rules::recover(before, now);
            let requeued = recovered.requeued.contains(&before.id);
            let cancelled = recovered.cancelled.contains(&before.id);
            let listed = match rule.as_ref().map(|j| j.status) {
                Some(JobStatus::Queued) => (true, false),
                Some(_) => (false, true),
                None => (false, false),
            };
            ensure_eq!(
                (requeued, cancelled),
                listed,
                "whether recover lists the job as (requeued, cancelled)"
            );
            rule
        }
    };
    let after = get(store, before.id).await?;
    match expected {
        None => ensure_eq!(&after, before, "a refused operation changes nothing"),
        Some(rule) => {
            ensure!(
                before.status.can_transition_to(after.status)
                    || (before.status == after.status && !after.status.is_terminal()),
                "{} -> {} is not a legal move",
                before.status,
                after.status
            );
            ensure_eq!(
                Essentials::of(&after),
                Essentials::of(&rule),
                "the stored job against the rule's (state {state})"
            );
        }
    }
    Ok(())
}

/// Checks the answer of a fenced operation against its rule: applied with
/// the job as stored, or stale with the job's status and attempt.
async fn fenced<S: Store + ?Sized>(
    store: &S,
    before: &Job,
    out: Outcome,
    rule: Result<Job, rules::Stale>,
) -> Result<Option<Job>, ConformanceError> {
    match (rule, out) {
        (Ok(rule), Outcome::Applied(job)) => {
            ensure_eq!(
                job,
                get(store, before.id).await?,
                "the answer is the job as stored"
            );
            Ok(Some(rule))
        }
        (Err(stale), out) => {
            ensure_eq!(out, Outcome::from(stale), "a stale outcome");
            Ok(None)
        }
        (Ok(rule), out) => bail!("the rule applies ({rule:?}) but the store answered {out:?}"),
    }
}

/// What a transition decides, without the times the store reads from its
/// own clock (`updatedAt`, each error's `at`).
#[derive(Debug, PartialEq)]
struct Essentials {
    id: JobId,
    status: JobStatus,
    attempt: u32,
    run_at: DateTime<Utc>,
    cancel_requested: bool,
    result: Option<Value>,
    error: Option<String>,
    errors: Vec<(u32, String)>,
    parked: u32,
    approvals: Vec<(String, crate::job::ApprovalState)>,
}

impl Essentials {
    fn of(job: &Job) -> Self {
        Essentials {
            id: job.id,
            status: job.status,
            attempt: job.attempt,
            run_at: job.run_at,
            cancel_requested: job.cancel_requested,
            result: job.result.clone(),
            error: job.error.clone(),
            errors: job
                .errors
                .iter()
                .map(|e| (e.attempt, e.message.clone()))
                .collect(),
            parked: job.parked,
            approvals: job
                .approvals
                .iter()
                .map(|a| (a.id.to_string(), a.state))
                .collect(),
        }
    }
}

/// Operations on an id that was never stored fail with
/// [`StoreError::JobNotFound`] naming it (get answers `None`).
pub async fn operations_on_an_unknown_job_name_it<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let unknown = uuid::Uuid::now_v7();
    let results = [
        ("complete", store.complete(unknown, 1, json!(1)).await.err()),
        (
            "fail",
            store
                .fail(unknown, 1, "e".into(), FailAction::Final)
                .await
                .err(),
        ),
        ("ack_cancel", store.ack_cancel(unknown, 1).await.err()),
        ("discard", store.discard(unknown, "e".into()).await.err()),
        ("cancel", store.cancel(unknown).await.err()),
    ];
    for (operation, err) in results {
        match err {
            Some(e @ StoreError::JobNotFound { id }) if id == unknown => ensure!(
                e.to_string().contains(&unknown.to_string()),
                "{operation}: the message must name the id, got {e}"
            ),
            other => bail!(
                "{operation} of an unknown job must fail with JobNotFound naming it, got {other:?}"
            ),
        }
    }
    Ok(())
}

/// The job of an applied outcome, or a failure saying what was stale.
#[track_caller]
fn store_applied(outcome: Outcome, doing: &str) -> Result<Job, ConformanceError> {
    match outcome {
        Outcome::Applied(job) => Ok(job),
        stale => Err(ConformanceError::new(format!(
            "{doing}: expected the change to apply, got {stale:?}"
        ))),
    }
}
