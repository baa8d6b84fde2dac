//! The sled store on real files in temporary directories.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tempfile::TempDir;
use troupe::job::schedule::{Schedule, ScheduleSpec};
use troupe::job::{EnqueueOptions, Job, JobCtx, JobId, JobStatus};
use troupe::sled::{SledConfig, SledStore};
use troupe::store::prelude::*;
use troupe::store::{
    CancelOutcome, ClaimRequest, Durability, FailAction, InsertOutcome, ListQuery, Outcome,
    PauseTarget, Retention, StoreError,
};

fn open(dir: &TempDir) -> SledStore {
    SledStore::open(SledConfig::new(dir.path())).unwrap()
}

fn job(worker: &str, opts: EnqueueOptions) -> Job {
    Job::new(
        worker,
        json!({"n": 1}),
        JobCtx::default(),
        &opts,
        Utc::now(),
    )
    .unwrap()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

async fn enqueue(store: &dyn Store, worker: &str, opts: EnqueueOptions) -> Job {
    store.insert(job(worker, opts)).await.unwrap().into_job()
}

async fn claim_all(store: &dyn Store, now: DateTime<Utc>) -> Vec<Job> {
    store.claim(&ClaimRequest::any(now, 1000)).await.unwrap()
}

#[tokio::test]
async fn insert_get_and_the_full_happy_path() {
    let dir = TempDir::new().unwrap();
    let store: Arc<dyn Store> = Arc::new(open(&dir));
    let j = enqueue(&*store, "echo", EnqueueOptions::default()).await;
    assert_eq!(store.get_job(j.id).await.unwrap().unwrap(), j);
    assert_eq!(store.get_job(uuid::Uuid::now_v7()).await.unwrap(), None);

    let claimed = claim_all(&*store, Utc::now()).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].status, JobStatus::Running);
    assert_eq!(claimed[0].attempt, 1);

    let done = store.complete(j.id, 1, json!({"ok": true})).await.unwrap();
    let done = done.applied().unwrap().clone();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.result, Some(json!({"ok": true})));
    assert_eq!(store.get_job(j.id).await.unwrap().unwrap(), done);
}

#[tokio::test]
async fn a_completion_is_recorded_once() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let j = enqueue(&store, "echo", EnqueueOptions::default()).await;
    claim_all(&store, Utc::now()).await;
    // Wrong attempt: stale.
    assert_eq!(
        store.complete(j.id, 2, json!(1)).await.unwrap(),
        Outcome::Stale {
            status: JobStatus::Running,
            attempt: 1
        }
    );
    assert!(store
        .complete(j.id, 1, json!(1))
        .await
        .unwrap()
        .applied()
        .is_some());
    // Second completion and a late failure are no-ops that say so.
    assert_eq!(
        store.complete(j.id, 1, json!(2)).await.unwrap(),
        Outcome::Stale {
            status: JobStatus::Completed,
            attempt: 1
        }
    );
    assert_eq!(
        store
            .fail(j.id, 1, "late".into(), FailAction::Final)
            .await
            .unwrap(),
        Outcome::Stale {
            status: JobStatus::Completed,
            attempt: 1
        }
    );
    assert_eq!(
        store.get_job(j.id).await.unwrap().unwrap().result,
        Some(json!(1))
    );
    // A completion for a queued job (never claimed) is stale too.
    let q = enqueue(&store, "echo", EnqueueOptions::default()).await;
    assert!(matches!(
        store.complete(q.id, 0, json!(1)).await.unwrap(),
        Outcome::Stale {
            status: JobStatus::Queued,
            ..
        }
    ));
    // Unknown ids are errors naming the id.
    let unknown = uuid::Uuid::now_v7();
    let err = store.complete(unknown, 1, json!(1)).await.unwrap_err();
    assert!(matches!(err, StoreError::JobNotFound { id } if id == unknown));
    assert!(err.to_string().contains(&unknown.to_string()));
}

#[tokio::test]
async fn failures_retry_until_attempts_run_out() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let j = enqueue(&store, "flaky", EnqueueOptions::default().max_attempts(2)).await;
    let now = Utc::now();
    claim_all(&store, now).await;
    let retry_at = now + secs(30);
    let out = store
        .fail(j.id, 1, "boom 1".into(), FailAction::RetryAt(retry_at))
        .await
        .unwrap();
    let queued = out.applied().unwrap();
    assert_eq!(queued.status, JobStatus::Queued);
    assert_eq!(queued.run_at, retry_at);
    assert_eq!(queued.attempt, 1);
    assert_eq!(queued.error.as_deref(), Some("boom 1"));
    assert_eq!(queued.errors.len(), 1);
    // Backoff: not claimable before retry_at.
    assert!(claim_all(&store, now + secs(29)).await.is_empty());
    assert_eq!(store.next_wake(None).await.unwrap(), Some(retry_at));
    let again = claim_all(&store, retry_at).await;
    assert_eq!(again[0].attempt, 2);
    // A retry asked for on the last attempt becomes final.
    let out = store
        .fail(j.id, 2, "boom 2".into(), FailAction::RetryAt(retry_at))
        .await
        .unwrap();
    let failed = out.applied().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("boom 2"));
    assert_eq!(
        failed
            .errors
            .iter()
            .map(|e| (e.attempt, e.message.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "boom 1"), (2, "boom 2")]
    );
}

#[tokio::test]
async fn permanent_failure_ends_at_once() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let j = enqueue(&store, "w", EnqueueOptions::default().max_attempts(5)).await;
    claim_all(&store, Utc::now()).await;
    let out = store
        .fail(j.id, 1, "bad input".into(), FailAction::Final)
        .await
        .unwrap();
    assert_eq!(out.applied().unwrap().status, JobStatus::Failed);
}

#[tokio::test]
async fn cancel_queued_running_and_ended_jobs() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let q = enqueue(&store, "w", EnqueueOptions::default()).await;
    match store.cancel(q.id).await.unwrap() {
        CancelOutcome::Cancelled(j) => assert_eq!(j.status, JobStatus::Cancelled),
        other => panic!("{other:?}"),
    }
    assert!(claim_all(&store, Utc::now()).await.is_empty());

    let r = enqueue(&store, "w", EnqueueOptions::default()).await;
    claim_all(&store, Utc::now()).await;
    match store.cancel(r.id).await.unwrap() {
        CancelOutcome::Requested(j) => {
            assert_eq!(j.status, JobStatus::Running);
            assert!(j.cancel_requested);
        }
        other => panic!("{other:?}"),
    }
    // The flag is visible to the scheduler and idempotent.
    assert!(store.get_job(r.id).await.unwrap().unwrap().cancel_requested);
    assert!(matches!(
        store.cancel(r.id).await.unwrap(),
        CancelOutcome::Requested(_)
    ));
    let out = store.ack_cancel(r.id, 1).await.unwrap();
    assert_eq!(out.applied().unwrap().status, JobStatus::Cancelled);
    assert!(
        matches!(store.cancel(r.id).await.unwrap(), CancelOutcome::AlreadyEnded(j) if j.status == JobStatus::Cancelled)
    );

    // A failing attempt of a cancel-requested job ends cancelled, not retried.
    let f = enqueue(&store, "w", EnqueueOptions::default()).await;
    claim_all(&store, Utc::now()).await;
    store.cancel(f.id).await.unwrap();
    let out = store
        .fail(f.id, 1, "stopped".into(), FailAction::RetryAt(Utc::now()))
        .await
        .unwrap();
    assert_eq!(out.applied().unwrap().status, JobStatus::Cancelled);
}

#[tokio::test]
async fn discard_fails_a_queued_job_naming_the_reason() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let j = enqueue(&store, "gone", EnqueueOptions::default()).await;
    let out = store
        .discard(j.id, "worker gone is not registered".into())
        .await
        .unwrap();
    let failed = out.applied().unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(
        failed.error.as_deref(),
        Some("worker gone is not registered")
    );
    assert!(matches!(
        store.discard(j.id, "x".into()).await.unwrap(),
        Outcome::Stale { .. }
    ));
}

#[tokio::test]
async fn unique_key_returns_the_active_job_and_frees_when_it_ends() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let opts = EnqueueOptions::default().unique_key("daily-digest");
    let first = store.insert(job("w", opts.clone())).await.unwrap();
    assert!(first.is_new());
    let dup = store.insert(job("w", opts.clone())).await.unwrap();
    assert_eq!(dup, InsertOutcome::Existing(first.job().clone()));
    // Still held while running.
    claim_all(&store, Utc::now()).await;
    let dup = store.insert(job("w", opts.clone())).await.unwrap();
    assert_eq!(dup.job().id, first.job().id);
    assert!(!dup.is_new());
    store
        .complete(first.job().id, 1, json!(null))
        .await
        .unwrap();
    // Ended: the key is free again.
    let next = store.insert(job("w", opts.clone())).await.unwrap();
    assert!(next.is_new());
    assert_ne!(next.job().id, first.job().id);
    // Within one bulk insert the second job with the key returns the first.
    let bulk = store
        .insert_many(vec![
            job("w", EnqueueOptions::default().unique_key("b")),
            job("w", EnqueueOptions::default().unique_key("b")),
        ])
        .await
        .unwrap();
    assert!(bulk[0].is_new());
    assert_eq!(bulk[1], InsertOutcome::Existing(bulk[0].job().clone()));
    // Unique keys survive a reopen.
    drop(store);
    let store = open(&dir);
    assert_eq!(
        store.insert(job("w", opts)).await.unwrap().job().id,
        next.job().id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_with_one_unique_key_store_one_job() {
    let dir = TempDir::new().unwrap();
    let store = Arc::new(open(&dir));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .insert(job("w", EnqueueOptions::default().unique_key("one")))
                .await
                .unwrap()
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut new = 0;
    for t in tasks {
        let out = t.await.unwrap();
        new += usize::from(out.is_new());
        ids.insert(out.job().id);
    }
    assert_eq!(new, 1);
    assert_eq!(ids.len(), 1);
    assert_eq!(store.counts().await.unwrap().status(JobStatus::Queued), 1);
}

#[tokio::test]
async fn claim_orders_by_priority_then_run_at_then_age() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let base = Utc::now() - secs(100);
    let low_early = enqueue(
        &store,
        "w",
        EnqueueOptions::default().priority(0).run_at(base),
    )
    .await;
    let high_late = enqueue(
        &store,
        "w",
        EnqueueOptions::default()
            .priority(5)
            .run_at(base + secs(10)),
    )
    .await;
    let high_early = enqueue(
        &store,
        "w",
        EnqueueOptions::default().priority(5).run_at(base),
    )
    .await;
    let neg = enqueue(
        &store,
        "v",
        EnqueueOptions::default()
            .priority(-3)
            .run_at(base - secs(50)),
    )
    .await;
    let low_same_time = enqueue(
        &store,
        "v",
        EnqueueOptions::default().priority(0).run_at(base),
    )
    .await;
    let got: Vec<JobId> = store
        .claim(&ClaimRequest::any(Utc::now(), 3))
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(got, vec![high_early.id, high_late.id, low_early.id]);
    let got: Vec<JobId> = claim_all(&store, Utc::now())
        .await
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(got, vec![low_same_time.id, neg.id]);
}

#[tokio::test]
async fn delayed_jobs_are_not_claimed_early_and_do_not_block_ready_ones() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let now = Utc::now();
    let delayed = enqueue(
        &store,
        "w",
        EnqueueOptions::default()
            .priority(9)
            .delay(Duration::from_secs(60)),
    )
    .await;
    let ready = enqueue(&store, "w", EnqueueOptions::default().priority(1)).await;
    let got = claim_all(&store, now + secs(1)).await;
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![ready.id]);
    assert_eq!(store.next_wake(None).await.unwrap(), Some(delayed.run_at));
    assert!(
        claim_all(&store, delayed.run_at - chrono::Duration::milliseconds(1))
            .await
            .is_empty()
    );
    assert_eq!(claim_all(&store, delayed.run_at).await[0].id, delayed.id);
    assert_eq!(store.next_wake(None).await.unwrap(), None);
}

#[tokio::test]
async fn claim_respects_worker_filter_and_quotas() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    for _ in 0..5 {
        enqueue(&store, "a", EnqueueOptions::default()).await;
        enqueue(&store, "b", EnqueueOptions::default()).await;
        enqueue(&store, "c", EnqueueOptions::default()).await;
    }
    let per_worker = BTreeMap::from([("a".to_string(), 2), ("b".to_string(), 1)]);
    let got = store
        .claim(&ClaimRequest {
            now: Utc::now(),
            limit: 10,
            per_worker: Some(per_worker),
        })
        .await
        .unwrap();
    let mut by_worker = BTreeMap::new();
    for j in &got {
        *by_worker.entry(j.worker_name.clone()).or_insert(0) += 1;
    }
    assert_eq!(
        by_worker,
        BTreeMap::from([("a".to_string(), 2), ("b".to_string(), 1)])
    );
    assert!(store
        .next_wake(Some(&["c".to_string()]))
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store.next_wake(Some(&["zzz".to_string()])).await.unwrap(),
        None
    );
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.worker("a", JobStatus::Running), 2);
    assert_eq!(counts.worker("a", JobStatus::Queued), 3);
    assert_eq!(counts.status(JobStatus::Running), 3);
    assert_eq!(counts.status(JobStatus::Queued), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_never_claim_a_job_twice() {
    let dir = TempDir::new().unwrap();
    let store = Arc::new(open(&dir));
    let jobs: Vec<Job> = (0..400)
        .map(|_| job("w", EnqueueOptions::default()))
        .collect();
    store.insert_many(jobs).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim(&ClaimRequest::any(Utc::now(), 7))
                    .await
                    .unwrap();
                if got.is_empty() {
                    break mine;
                }
                mine.extend(got.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: std::collections::BTreeSet<_> = all.iter().collect();
    assert_eq!(all.len(), 400);
    assert_eq!(unique.len(), 400);
}

#[tokio::test]
async fn pause_state_blocks_claims_and_survives_reopen() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    enqueue(&store, "a", EnqueueOptions::default()).await;
    enqueue(&store, "b", EnqueueOptions::default()).await;
    let state = store
        .set_paused(PauseTarget::Worker("a".into()), true)
        .await
        .unwrap();
    assert!(state.is_paused("a") && !state.is_paused("b"));
    drop(store);

    let store = open(&dir);
    let state = store.pause_state().await.unwrap();
    assert!(state.workers.contains("a") && !state.all);
    assert_eq!(
        store.next_wake(Some(&["a".to_string()])).await.unwrap(),
        None
    );
    let got = claim_all(&store, Utc::now()).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].worker_name, "b");

    store.set_paused(PauseTarget::All, true).await.unwrap();
    store
        .set_paused(PauseTarget::Worker("a".into()), false)
        .await
        .unwrap();
    drop(store);
    let store = open(&dir);
    assert!(store.pause_state().await.unwrap().all);
    assert!(claim_all(&store, Utc::now()).await.is_empty());
    assert_eq!(store.next_wake(None).await.unwrap(), None);
    store.set_paused(PauseTarget::All, false).await.unwrap();
    assert_eq!(claim_all(&store, Utc::now()).await[0].worker_name, "a");
    assert!(store
        .set_paused(PauseTarget::Worker("".into()), true)
        .await
        .is_err());
}

#[tokio::test]
async fn running_jobs_are_requeued_after_reopen_with_the_attempt_counted() {
    let dir = TempDir::new().unwrap();
    let (running, cancelling, queued) = {
        let store = open(&dir);
        let a = enqueue(&store, "w", EnqueueOptions::default()).await;
        let b = enqueue(&store, "w", EnqueueOptions::default()).await;
        claim_all(&store, Utc::now()).await;
        store.cancel(b.id).await.unwrap();
        let c = enqueue(&store, "w", EnqueueOptions::default()).await;
        (a, b, c)
        // Dropped without completing: like a crash after the claims.
    };
    let store = open(&dir);
    // Opening alone changes nothing.
    assert_eq!(
        store.get_job(running.id).await.unwrap().unwrap().status,
        JobStatus::Running
    );
    let now = Utc::now();
    let rec = store.recover(now).await.unwrap();
    assert_eq!(rec.requeued, vec![running.id]);
    assert_eq!(rec.cancelled, vec![cancelling.id]);
    let r = store.get_job(running.id).await.unwrap().unwrap();
    assert_eq!((r.status, r.attempt), (JobStatus::Queued, 1));
    assert_eq!(r.errors.len(), 1);
    assert!(r.errors[0].message.contains("interrupted"));
    assert_eq!(
        store.get_job(cancelling.id).await.unwrap().unwrap().status,
        JobStatus::Cancelled
    );
    assert_eq!(
        store.get_job(queued.id).await.unwrap().unwrap().status,
        JobStatus::Queued
    );
    // The stale completion of the interrupted attempt is refused once it runs again.
    let again = claim_all(&store, now).await;
    assert_eq!(again.len(), 2);
    let r = again.iter().find(|j| j.id == running.id).unwrap();
    assert_eq!(r.attempt, 2);
    assert!(matches!(
        store.complete(running.id, 1, json!(0)).await.unwrap(),
        Outcome::Stale { .. }
    ));
    assert!(store
        .complete(running.id, 2, json!(0))
        .await
        .unwrap()
        .applied()
        .is_some());
    // Nothing left to recover.
    drop(store);
    let store = open(&dir);
    assert_eq!(
        store.recover(Utc::now()).await.unwrap().requeued,
        vec![queued.id]
    );
}

#[tokio::test]
async fn prune_by_age_and_by_count_keeps_active_jobs() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let mut ended = Vec::new();
    for i in 0..6 {
        let j = enqueue(&store, "w", EnqueueOptions::default()).await;
        claim_all(&store, Utc::now()).await;
        if i % 2 == 0 {
            store.complete(j.id, 1, json!(i)).await.unwrap();
        } else {
            store
                .fail(j.id, 1, "x".into(), FailAction::Final)
                .await
                .unwrap();
        }
        ended.push(j.id);
    }
    let active = enqueue(&store, "w", EnqueueOptions::default()).await;
    let running = enqueue(&store, "w", EnqueueOptions::default()).await;
    claim_all(&store, Utc::now()).await;

    // Nothing is old enough yet.
    let keep_day = Retention {
        max_age: Some(Duration::from_secs(86_400)),
        max_count: None,
    };
    assert_eq!(store.prune(&keep_day, Utc::now()).await.unwrap(), 0);
    // Count: keep the 4 most recently ended.
    let removed = store
        .prune(
            &Retention {
                max_age: None,
                max_count: Some(4),
            },
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert!(store.get_job(ended[0]).await.unwrap().is_none());
    assert!(store.get_job(ended[1]).await.unwrap().is_none());
    assert!(store.get_job(ended[2]).await.unwrap().is_some());
    // Age: a day later every ended job is old.
    let removed = store
        .prune(&keep_day, Utc::now() + secs(2 * 86_400))
        .await
        .unwrap();
    assert_eq!(removed, 4);
    let counts = store.counts().await.unwrap();
    assert_eq!(
        counts.status(JobStatus::Completed) + counts.status(JobStatus::Failed),
        0
    );
    assert!(store.get_job(active.id).await.unwrap().is_some());
    assert!(store.get_job(running.id).await.unwrap().is_some());
    // Pruned records are gone after reopen too.
    drop(store);
    let store = open(&dir);
    assert_eq!(
        store
            .counts()
            .await
            .unwrap()
            .by_status
            .values()
            .sum::<u64>(),
        2
    );
}

#[tokio::test]
async fn list_filters_newest_first_with_cursor_paging() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let mut ids = Vec::new();
    for i in 0..7 {
        let w = if i % 2 == 0 { "even" } else { "odd" };
        ids.push(enqueue(&store, w, EnqueueOptions::default()).await.id);
    }
    // Complete the two oldest "even" jobs.
    let per = BTreeMap::from([("even".to_string(), 2)]);
    for j in store
        .claim(&ClaimRequest {
            now: Utc::now(),
            limit: 2,
            per_worker: Some(per),
        })
        .await
        .unwrap()
    {
        store.complete(j.id, 1, json!(null)).await.unwrap();
    }
    let all = store
        .list_jobs(&ListQuery {
            limit: 3,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[6], ids[5], ids[4]]
    );
    let page2 = store
        .list_jobs(&ListQuery {
            limit: 3,
            cursor: all.next_cursor,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page2.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[3], ids[2], ids[1]]
    );
    let page3 = store
        .list_jobs(&ListQuery {
            limit: 3,
            cursor: page2.next_cursor,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page3.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    assert_eq!(page3.next_cursor, None);

    let even = store
        .list_jobs(&ListQuery {
            worker: Some("even".into()),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        even.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[6], ids[4], ids[2], ids[0]]
    );
    let done = store
        .list_jobs(&ListQuery {
            status: Some(JobStatus::Completed),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        done.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[2], ids[0]]
    );
    let even_queued = store
        .list_jobs(&ListQuery {
            status: Some(JobStatus::Queued),
            worker: Some("even".into()),
            limit: 1,
            cursor: None,
        })
        .await
        .unwrap();
    assert_eq!(even_queued.jobs[0].id, ids[6]);
    assert_eq!(even_queued.next_cursor, Some(ids[6]));
    let rest = store
        .list_jobs(&ListQuery {
            status: Some(JobStatus::Queued),
            worker: Some("even".into()),
            limit: 5,
            cursor: even_queued.next_cursor,
        })
        .await
        .unwrap();
    assert_eq!(
        rest.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[4]]
    );
    let none = store
        .list_jobs(&ListQuery {
            worker: Some("nobody".into()),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert!(none.jobs.is_empty());
}

#[tokio::test]
async fn a_held_data_dir_is_a_clear_error_naming_it() {
    let dir = TempDir::new().unwrap();
    let _held = open(&dir);
    let err = SledStore::open(SledConfig::new(dir.path())).err().unwrap();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    assert!(msg.contains("already in use"), "{msg}");
}

#[tokio::test]
async fn a_corrupt_record_is_reported_by_id_or_quarantined() {
    let dir = TempDir::new().unwrap();
    let (good, bad) = {
        let store = open(&dir);
        let good = enqueue(&store, "w", EnqueueOptions::default()).await;
        let bad = enqueue(&store, "w", EnqueueOptions::default()).await;
        (good, bad)
    };
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("jobs")
            .unwrap()
            .insert(bad.id.as_bytes(), &b"{not json"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let err = SledStore::open(SledConfig::new(dir.path())).err().unwrap();
    assert!(
        matches!(&err, StoreError::CorruptJob { id, .. } if *id == bad.id.to_string()),
        "{err:?}"
    );
    assert!(err.to_string().contains(&bad.id.to_string()));

    let mut config = SledConfig::new(dir.path());
    config.quarantine_corrupt = true;
    let store = SledStore::open(config).unwrap();
    assert!(store.get_job(bad.id).await.unwrap().is_none());
    assert_eq!(store.get_job(good.id).await.unwrap().unwrap().id, good.id);
    drop(store);
    // Quarantined for good: a plain open works again.
    let store = open(&dir);
    assert_eq!(store.counts().await.unwrap().status(JobStatus::Queued), 1);
}

#[tokio::test]
async fn jobs_that_are_not_new_are_rejected() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let mut j = job("w", EnqueueOptions::default());
    j.status = JobStatus::Running;
    let err = store.insert(j).await.unwrap_err();
    assert!(err.to_string().contains("status"), "{err}");
    let j = job("w", EnqueueOptions::default());
    store.insert(j.clone()).await.unwrap();
    assert!(store.insert(j).await.is_err());
}

#[tokio::test]
async fn power_loss_durability_works_the_same() {
    let dir = TempDir::new().unwrap();
    let store =
        SledStore::open(SledConfig::new(dir.path()).durability(Durability::PowerLoss)).unwrap();
    let j = enqueue(&store, "w", EnqueueOptions::default()).await;
    claim_all(&store, Utc::now()).await;
    store.complete(j.id, 1, json!(1)).await.unwrap();
    assert!(store.commit_stats().flushes >= 3);
    drop(store);
    let store = open(&dir);
    assert_eq!(
        store.get_job(j.id).await.unwrap().unwrap().status,
        JobStatus::Completed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_shares_flushes_between_concurrent_writers() {
    let dir = TempDir::new().unwrap();
    let store = Arc::new(open(&dir));
    let before = store.commit_stats();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                enqueue(&*store, "w", EnqueueOptions::default()).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let after = store.commit_stats();
    assert_eq!(after.writers - before.writers, 320);
    assert!(after.flushes - before.flushes <= 320);
    assert_eq!(store.counts().await.unwrap().status(JobStatus::Queued), 320);
}

/// Under concurrent load the commit window gathers writers into shared
/// flushes: 8 writers each waiting for its own write, with a long window,
/// share nearly every flush among all 8.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_commit_window_gathers_concurrent_writers_into_one_flush() {
    let dir = TempDir::new().unwrap();
    let mut config = SledConfig::new(dir.path());
    config.commit_window = std::time::Duration::from_millis(30);
    let store = Arc::new(SledStore::open(config).unwrap());
    let before = store.commit_stats();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                enqueue(&*store, "w", EnqueueOptions::default()).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let after = store.commit_stats();
    let (writers, flushes) = (
        after.writers - before.writers,
        after.flushes - before.flushes,
    );
    assert_eq!(writers, 80);
    // Without the window each flush would start as soon as one writer
    // waits; with it, a flush serves about all 8.
    assert!(
        flushes <= 20,
        "{flushes} flushes for {writers} writers: the window did not gather them"
    );
}

/// A window too long to add to a clock reading (a bad setting) does not
/// hang concurrent writers: it means no window.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unrepresentable_commit_window_does_not_hang_writers() {
    let dir = TempDir::new().unwrap();
    let mut config = SledConfig::new(dir.path());
    config.commit_window = std::time::Duration::MAX;
    let store = Arc::new(SledStore::open(config).unwrap());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                enqueue(&*store, "w", EnqueueOptions::default()).await;
            }
        }));
    }
    let all = async {
        for t in tasks {
            t.await.unwrap();
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), all)
        .await
        .expect("writers hung on an unrepresentable commit window");
    assert_eq!(store.counts().await.unwrap().status(JobStatus::Queued), 40);
}

/// A lone writer does not wait for the window: sequential writes with an
/// hour-long window still finish (each flush served one writer, so the next
/// one starts at once).
#[tokio::test]
async fn a_lone_writer_is_flushed_at_once_whatever_the_window() {
    let dir = TempDir::new().unwrap();
    let mut config = SledConfig::new(dir.path());
    config.commit_window = std::time::Duration::from_secs(3600);
    let store = SledStore::open(config).unwrap();
    let writes = async {
        for _ in 0..20 {
            enqueue(&store, "w", EnqueueOptions::default()).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), writes)
        .await
        .expect("sequential writes were held by the commit window");
    assert_eq!(store.counts().await.unwrap().status(JobStatus::Queued), 20);
}

fn schedule(id: &str, spec: ScheduleSpec, next: DateTime<Utc>) -> Schedule {
    let mut s = Schedule::new(id, "digest", json!({"k": id}), spec, next - secs(1)).unwrap();
    s.next_fire_at = next;
    s
}

#[tokio::test]
async fn schedules_fire_once_per_period_across_reopen() {
    let dir = TempDir::new().unwrap();
    let t0 = DateTime::parse_from_rfc3339("2025-03-01T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    {
        let store = open(&dir);
        store
            .put_schedule(schedule(
                "hourly",
                ScheduleSpec::cron("0 * * * *").unwrap(),
                t0,
            ))
            .await
            .unwrap();
        let mut catch = schedule("catch", ScheduleSpec::cron("0 * * * *").unwrap(), t0);
        catch.catch_up = true;
        store.put_schedule(catch).await.unwrap();
        assert_eq!(store.next_schedule_fire().await.unwrap(), Some(t0));
        assert!(store
            .fire_due_schedules(t0 - secs(1))
            .await
            .unwrap()
            .is_empty());
        let fired = store.fire_due_schedules(t0).await.unwrap();
        assert_eq!(fired.len(), 2);
        for f in &fired {
            assert_eq!(f.jobs.len(), 1);
            assert_eq!(f.schedule.last_fired_at, Some(t0));
            assert_eq!(f.schedule.next_fire_at, t0 + secs(3600));
            assert_eq!(
                f.jobs[0].ctx.source.as_deref(),
                Some(&*format!("schedule:{}", f.schedule.id))
            );
            assert_eq!(f.jobs[0].run_at, t0);
        }
        // Same instant again: already advanced, nothing fires.
        assert!(store.fire_due_schedules(t0).await.unwrap().is_empty());
    }
    // After "downtime" until 15:30 (five missed hours).
    let store = open(&dir);
    assert_eq!(store.counts().await.unwrap().status(JobStatus::Queued), 2);
    let fired = store
        .fire_due_schedules(t0 + secs(5 * 3600 + 1800))
        .await
        .unwrap();
    let by_id: BTreeMap<_, _> = fired.iter().map(|f| (f.schedule.id.clone(), f)).collect();
    assert_eq!(by_id["hourly"].jobs.len(), 1, "skip mode fires once");
    assert_eq!(by_id["hourly"].jobs[0].run_at, t0 + secs(5 * 3600));
    assert_eq!(
        by_id["catch"].jobs.len(),
        5,
        "catch-up fires every missed hour"
    );
    assert_eq!(by_id["hourly"].schedule.next_fire_at, t0 + secs(6 * 3600));
    assert_eq!(store.counts().await.unwrap().status(JobStatus::Queued), 8);
    drop(store);
    let store = open(&dir);
    assert_eq!(
        store
            .get_schedule("hourly")
            .await
            .unwrap()
            .unwrap()
            .next_fire_at,
        t0 + secs(6 * 3600)
    );
    assert_eq!(store.list_schedules().await.unwrap().len(), 2);
    assert!(store.delete_schedule("catch").await.unwrap());
    assert!(!store.delete_schedule("catch").await.unwrap());
    drop(store);
    let store = open(&dir);
    assert_eq!(store.list_schedules().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_schedule_with_a_unique_key_does_not_pile_up() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let t0 = Utc::now();
    let mut s = schedule(
        "slow",
        ScheduleSpec::every(Duration::from_secs(60)).unwrap(),
        t0,
    );
    s.unique_key = Some("slow-job".into());
    store.put_schedule(s).await.unwrap();
    assert_eq!(store.fire_due_schedules(t0).await.unwrap()[0].jobs.len(), 1);
    // The first job is still queued: the next firing enqueues nothing.
    let fired = store.fire_due_schedules(t0 + secs(60)).await.unwrap();
    assert!(fired[0].jobs.is_empty());
    assert_eq!(fired[0].schedule.next_fire_at, t0 + secs(120));
    assert_eq!(store.counts().await.unwrap().status(JobStatus::Queued), 1);
}

#[tokio::test]
async fn invalid_schedules_are_rejected_with_their_id() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let mut s = schedule("bad", ScheduleSpec::cron("0 * * * *").unwrap(), Utc::now());
    s.spec = ScheduleSpec::Cron {
        expression: "99 * * * *".into(),
    };
    let err = store.put_schedule(s).await.unwrap_err();
    assert!(matches!(&err, StoreError::Schedule { id, .. } if id == "bad"));
    assert!(err.to_string().contains("99 * * * *"), "{err}");
    let mut s = schedule(
        "zero",
        ScheduleSpec::every(Duration::from_secs(1)).unwrap(),
        Utc::now(),
    );
    s.spec = ScheduleSpec::Interval { every_ms: 0 };
    assert!(store.put_schedule(s).await.is_err());
    assert!(store.list_schedules().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_cron_that_never_fires_again_is_parked_not_refired() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let t0 = DateTime::parse_from_rfc3339("2019-12-31T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    // Year 2020 only: nothing after 2020.
    let mut s = schedule("once", ScheduleSpec::cron("0 0 0 1 1 * 2020").unwrap(), t0);
    s.next_fire_at = DateTime::parse_from_rfc3339("2021-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    store.put_schedule(s).await.unwrap();
    let fired = store.fire_due_schedules(Utc::now()).await.unwrap();
    assert!(fired[0].jobs.is_empty());
    assert!(fired[0].schedule.next_fire_at.format("%Y").to_string() == "9999");
    assert!(store
        .fire_due_schedules(Utc::now())
        .await
        .unwrap()
        .is_empty());
    drop(store);
    let store = open(&dir);
    assert_eq!(store.list_schedules().await.unwrap().len(), 1);
}
