//! Claims: which ready jobs a claim hands out, in what order, how many,
//! never a paused worker's and never one job twice; and `next_wake`, the
//! time a scheduler may sleep until.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;

use super::support::{claim_all, enqueue, ids, new_job, secs};
use super::{ConformanceError, Context, Fixture, Harness};
use crate::job::{EnqueueOptions, Job, JobStatus};
use crate::store::prelude::*;
use crate::store::{ClaimRequest, PauseTarget, StoreError};

/// Higher priority first, then earlier `runAt`, then older id
/// ([`crate::job::rules::claim_order`]), across workers too.
pub async fn claim_order_is_priority_then_run_at_then_id<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let base = Utc::now() - secs(100);
    let opts = |priority: i32, run_at| EnqueueOptions::default().priority(priority).run_at(run_at);
    let low_early = enqueue(store, "w", opts(0, base)).await?;
    let high_late = enqueue(store, "w", opts(5, base + secs(10))).await?;
    let high_early = enqueue(store, "w", opts(5, base)).await?;
    let negative = enqueue(store, "v", opts(-3, base - secs(50))).await?;
    let low_same_time = enqueue(store, "v", opts(0, base)).await?;
    let first = store
        .claim(&ClaimRequest::any(Utc::now(), 3))
        .await
        .context("claim 3")?;
    ensure_eq!(
        ids(&first),
        vec![high_early.id, high_late.id, low_early.id],
        "the first three in claim order"
    );
    let rest = claim_all(store, Utc::now()).await?;
    ensure_eq!(
        ids(&rest),
        vec![low_same_time.id, negative.id],
        "the rest in claim order"
    );
    Ok(())
}

/// A job is claimed once `runAt <= now`, not before, and a delayed job of
/// high priority does not hold back a ready one of low priority.
pub async fn jobs_are_not_claimed_before_they_are_due<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let now = Utc::now();
    let delayed = enqueue(
        store,
        "w",
        EnqueueOptions::default()
            .priority(9)
            .delay(std::time::Duration::from_secs(60)),
    )
    .await?;
    let ready = enqueue(store, "w", EnqueueOptions::default().priority(1)).await?;
    ensure_eq!(
        ids(&claim_all(store, now + secs(1)).await?),
        vec![ready.id],
        "only the ready job"
    );
    ensure_eq!(
        store.next_wake(None).await.context("next_wake")?,
        Some(delayed.run_at),
        "the wake-up time is the delayed job's runAt"
    );
    let just_before = delayed.run_at - chrono::Duration::milliseconds(1);
    ensure!(
        claim_all(store, just_before).await?.is_empty(),
        "a job is not claimed a millisecond before its runAt"
    );
    ensure_eq!(
        ids(&claim_all(store, delayed.run_at).await?),
        vec![delayed.id],
        "claimed at exactly its runAt"
    );
    ensure_eq!(
        store.next_wake(None).await.context("next_wake")?,
        None,
        "nothing queued, nothing to wake for"
    );
    Ok(())
}

/// `limit` bounds a claim in total, `per_worker` bounds each named worker
/// and leaves out every other; a limit of 0 claims nothing.
pub async fn claims_are_limited_in_total_and_per_worker<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let jobs: Vec<Job> = (0..15)
        .map(|i| new_job(["a", "b", "c"][i % 3], EnqueueOptions::default()))
        .collect::<Result<_, _>>()?;
    store.insert_many(jobs).await.context("insert 15 jobs")?;
    let now = Utc::now();
    ensure!(
        store
            .claim(&ClaimRequest::any(now, 0))
            .await
            .context("claim 0")?
            .is_empty(),
        "a claim with limit 0 claims nothing"
    );
    let per_worker = BTreeMap::from([("a".to_string(), 2), ("b".to_string(), 1)]);
    let got = store
        .claim(&ClaimRequest {
            now,
            limit: 10,
            per_worker: Some(per_worker),
        })
        .await
        .context("claim with quotas")?;
    ensure_eq!(
        by_worker(&got),
        BTreeMap::from([("a".to_string(), 2), ("b".to_string(), 1)]),
        "each worker at most its quota, unnamed workers none"
    );
    let per_worker = BTreeMap::from([
        ("a".to_string(), 5),
        ("b".to_string(), 5),
        ("c".to_string(), 0),
    ]);
    let got = store
        .claim(&ClaimRequest {
            now,
            limit: 4,
            per_worker: Some(per_worker),
        })
        .await
        .context("claim with a total below the quotas")?;
    ensure_eq!(got.len(), 4, "the total limit bounds the claim");
    ensure!(
        got.iter().all(|j| j.worker_name != "c"),
        "a quota of 0 claims nothing of that worker"
    );
    let counts = store.counts().await.context("counts")?;
    ensure_eq!(
        (
            counts.status(JobStatus::Running),
            counts.status(JobStatus::Queued)
        ),
        (7, 8),
        "(running, queued) after the claims"
    );
    Ok(())
}

/// A paused worker's jobs (or everyone's, when all is paused) are not
/// claimed and do not count for `next_wake`; resuming hands them out.
pub async fn paused_workers_are_not_claimed_and_do_not_wake_the_scheduler<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let a = enqueue(store, "a", EnqueueOptions::default()).await?;
    let later = Utc::now() + secs(60);
    let b = enqueue(store, "b", EnqueueOptions::default().run_at(later)).await?;
    let state = store
        .set_paused(PauseTarget::Worker("a".into()), true)
        .await
        .context("pause a")?;
    ensure!(
        state.is_paused("a") && !state.is_paused("b") && !state.all,
        "pausing a answers the new state, got {state:?}"
    );
    ensure_eq!(
        store.next_wake(None).await.context("next_wake")?,
        Some(later),
        "a paused worker's ready job does not wake the scheduler"
    );
    ensure_eq!(
        store
            .next_wake(Some(&["a".to_string()]))
            .await
            .context("next_wake of a")?,
        None,
        "next_wake of a paused worker"
    );
    ensure!(
        claim_all(store, Utc::now()).await?.is_empty(),
        "a paused worker's job is not claimed"
    );
    store
        .set_paused(PauseTarget::All, true)
        .await
        .context("pause all")?;
    store
        .set_paused(PauseTarget::Worker("a".into()), false)
        .await
        .context("resume a")?;
    ensure!(
        claim_all(store, later).await?.is_empty(),
        "nothing is claimed while all is paused"
    );
    ensure_eq!(
        store.next_wake(None).await.context("next_wake")?,
        None,
        "nothing wakes while all is paused"
    );
    let state = store
        .set_paused(PauseTarget::All, false)
        .await
        .context("resume all")?;
    ensure_eq!(
        (state.all, state.workers.len()),
        (false, 0),
        "(all, paused workers) after resuming"
    );
    ensure_eq!(
        ids(&claim_all(store, later).await?),
        vec![a.id, b.id],
        "resumed: both claimed"
    );
    let err = store
        .set_paused(PauseTarget::Worker(" ".into()), true)
        .await;
    ensure!(
        matches!(
            err,
            Err(StoreError::InvalidInput {
                field: "worker",
                ..
            })
        ),
        "pausing an empty worker name must be refused naming `worker`, got {err:?}"
    );
    Ok(())
}

/// `next_wake` is the earliest `runAt` of queued jobs, due or not, of the
/// named workers when given; running and ended jobs do not count.
pub async fn next_wake_is_the_earliest_claimable_run_at<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    ensure_eq!(
        store.next_wake(None).await.context("next_wake")?,
        None,
        "an empty store"
    );
    let now = Utc::now();
    let past = enqueue(store, "a", EnqueueOptions::default().run_at(now - secs(5))).await?;
    let soon = enqueue(store, "b", EnqueueOptions::default().run_at(now + secs(5))).await?;
    enqueue(store, "b", EnqueueOptions::default().run_at(now + secs(9))).await?;
    ensure_eq!(
        store.next_wake(None).await.context("next_wake")?,
        Some(past.run_at),
        "a due job's runAt, though it is past"
    );
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    ensure_eq!(
        store
            .next_wake(Some(&names(&["b", "zzz"])))
            .await
            .context("next_wake of b")?,
        Some(soon.run_at),
        "only the named workers"
    );
    ensure_eq!(
        store
            .next_wake(Some(&names(&["zzz"])))
            .await
            .context("next_wake of an unknown worker")?,
        None,
        "a worker without jobs"
    );
    ensure_eq!(
        store
            .next_wake(Some(&[]))
            .await
            .context("next_wake of no worker")?,
        None,
        "an empty list of workers"
    );
    claim_all(store, now).await?;
    ensure_eq!(
        store.next_wake(None).await.context("next_wake")?,
        Some(soon.run_at),
        "a running job does not count"
    );
    Ok(())
}

/// Eight tasks claiming at once hand out 400 jobs exactly once each.
pub async fn concurrent_claimers_never_claim_a_job_twice<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let jobs: Vec<Job> = (0..400)
        .map(|_| new_job("w", EnqueueOptions::default()))
        .collect::<Result<_, _>>()?;
    f.store()
        .insert_many(jobs)
        .await
        .context("insert 400 jobs")?;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = f.shared();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim(&ClaimRequest::any(Utc::now(), 7)).await?;
                if got.is_empty() {
                    return Ok::<_, StoreError>(mine);
                }
                mine.extend(got.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.context("join a claimer")?.context("claim")?);
    }
    let unique: BTreeSet<_> = all.iter().collect();
    ensure_eq!(
        (all.len(), unique.len()),
        (400, 400),
        "(claims, distinct jobs claimed)"
    );
    Ok(())
}

fn by_worker(jobs: &[Job]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for job in jobs {
        *counts.entry(job.worker_name.clone()).or_insert(0) += 1;
    }
    counts
}
