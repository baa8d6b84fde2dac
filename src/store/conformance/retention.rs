//! Retention (`prune`): ended jobs beyond the age and count limits go, with
//! their steps and the idempotency keys that name them; active jobs stay;
//! usage call records older than the age limit go while day totals stay.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use super::support::{claim_all, enqueue, secs};
use super::usage::call_at;
use super::{ConformanceError, Context, Fixture, Harness};
use crate::job::{EnqueueOptions, FailAction, JobStatus};
use crate::store::prelude::*;
use crate::store::{Claim, Retention, UsageScope};

/// By count the most recently ended jobs are kept; by age those ended
/// longer ago than `max_age` go; queued and running jobs are never pruned;
/// pruned jobs stay gone after a crash.
pub async fn prune_by_age_and_by_count_keeps_active_jobs<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let mut ended = Vec::new();
    for i in 0..6 {
        let job = enqueue(store, "w", EnqueueOptions::default()).await?;
        claim_all(store, Utc::now()).await?;
        if i % 2 == 0 {
            store
                .complete(job.id, 1, json!(i))
                .await
                .context("complete")?;
        } else {
            store
                .fail(job.id, 1, "x".into(), FailAction::Final)
                .await
                .context("fail")?;
        }
        ended.push(job.id);
    }
    let active = enqueue(store, "w", EnqueueOptions::default()).await?;
    let running = enqueue(store, "w", EnqueueOptions::default()).await?;
    claim_all(store, Utc::now()).await?;
    let queued_old = enqueue(
        store,
        "w",
        EnqueueOptions::default().run_at(Utc::now() + secs(86_400 * 30)),
    )
    .await?;

    let keep_day = Retention {
        max_age: Some(Duration::from_secs(86_400)),
        max_count: None,
    };
    ensure_eq!(
        store.prune(&keep_day, Utc::now()).await.context("prune")?,
        0,
        "nothing has been ended a day yet"
    );
    let keep_four = Retention {
        max_age: None,
        max_count: Some(4),
    };
    ensure_eq!(
        store
            .prune(&keep_four, Utc::now())
            .await
            .context("prune by count")?,
        2,
        "jobs beyond the 4 most recently ended"
    );
    for (i, id) in ended.iter().enumerate() {
        let kept = store.get_job(*id).await.context("get")?.is_some();
        ensure_eq!(kept, i >= 2, "whether ended job {i} is kept");
    }
    let removed = store
        .prune(&keep_day, Utc::now() + secs(2 * 86_400))
        .await
        .context("prune by age")?;
    ensure_eq!(removed, 4, "two days later every ended job is old");
    let counts = store.counts().await.context("counts")?;
    ensure_eq!(
        counts.status(JobStatus::Completed) + counts.status(JobStatus::Failed),
        0,
        "no ended job left"
    );
    for id in [active.id, running.id, queued_old.id] {
        ensure!(
            store.get_job(id).await.context("get")?.is_some(),
            "active job {id} is never pruned"
        );
    }
    let f = f.crash().await?;
    let counts = f.store().counts().await.context("counts")?;
    ensure_eq!(
        counts.by_status.values().sum::<u64>(),
        3,
        "after a crash only the active jobs are there"
    );
    for id in &ended {
        ensure!(
            f.store().get_job(*id).await.context("get")?.is_none(),
            "pruned job {id} stays gone after a crash"
        );
    }
    Ok(())
}

/// A pruned job's steps and the idempotency keys naming it
/// (`…tool:<job>:…`, whatever comes before, `#done` after) go with it; keys
/// of kept jobs and keys that name no job stay. Durable across a crash.
pub async fn pruning_a_job_drops_its_steps_and_idempotency_keys<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let ended = enqueue(store, "w", EnqueueOptions::default()).await?;
    let kept = enqueue(store, "w", EnqueueOptions::default()).await?;
    let claimed = store
        .claim(&crate::store::ClaimRequest::any(Utc::now(), 1))
        .await
        .context("claim one")?;
    ensure_eq!(
        claimed.first().map(|j| j.id),
        Some(ended.id),
        "the older job is claimed first"
    );
    store
        .complete(ended.id, 1, json!("done"))
        .await
        .context("complete")?;
    let ended_keys = [
        format!("create_task:tool:{}:0:call_1", ended.id),
        format!("scheduler:tool:{}:0:call_1#done", ended.id),
        format!("http_tool:tool:{}:3:call_9", ended.id),
    ];
    let other_keys = [
        format!("scheduler:tool:{}:0:call_1", kept.id),
        "no job here".to_string(),
        format!("tool:not-a-uuid:{}", ended.id),
    ];
    for key in ended_keys.iter().chain(&other_keys) {
        let claim = store
            .claim_key(key, json!({"k": key}))
            .await
            .context(format!("claim {key}"))?;
        ensure_eq!(claim, Claim::Claimed, "a fresh key {key}");
    }
    for step in 0..2 {
        store
            .save_step(ended.id, step, json!({"kind": "tools"}))
            .await
            .context("save a step of the ended job")?;
    }
    store
        .save_step(kept.id, 0, json!({"kind": "model"}))
        .await
        .context("save a step of the kept job")?;
    let retention = Retention {
        max_age: None,
        max_count: Some(0),
    };
    ensure_eq!(
        store.prune(&retention, Utc::now()).await.context("prune")?,
        1,
        "the ended job is pruned"
    );
    let kept_keys = (kept.id, &ended_keys[..], &other_keys[..]);
    only_the_pruned_jobs_data_is_gone(f.store(), ended.id, kept_keys, "after prune").await?;
    let f = f.crash().await?;
    only_the_pruned_jobs_data_is_gone(f.store(), ended.id, kept_keys, "after a crash").await?;
    let again = f
        .store()
        .claim_key(&ended_keys[0], json!("new"))
        .await
        .context("claim a dropped key again")?;
    ensure_eq!(again, Claim::Claimed, "a dropped key can be claimed anew");
    Ok(())
}

async fn only_the_pruned_jobs_data_is_gone<S: Store + ?Sized>(
    store: &S,
    pruned: crate::job::JobId,
    (kept, pruned_keys, other_keys): (crate::job::JobId, &[String], &[String]),
    when: &str,
) -> Result<(), ConformanceError> {
    for key in pruned_keys {
        ensure_eq!(
            store.get_key(key).await.context("get key")?,
            None,
            "{when}: key {key} of the pruned job"
        );
    }
    for key in other_keys {
        ensure!(
            store.get_key(key).await.context("get key")?.is_some(),
            "{when}: key {key} stays"
        );
    }
    ensure!(
        store
            .load_steps(pruned)
            .await
            .context("load steps")?
            .is_empty(),
        "{when}: the pruned job's steps are gone"
    );
    ensure_eq!(
        store.load_steps(kept).await.context("load steps")?.len(),
        1,
        "{when}: the kept job's steps stay"
    );
    Ok(())
}

/// With `max_age`, usage call records older than it are pruned and the day
/// totals still count them; without `max_age` the call log is kept.
pub async fn pruning_drops_old_usage_calls_and_keeps_day_totals<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let now = Utc::now();
    let old = now - chrono::Duration::hours(2);
    let young = now - chrono::Duration::minutes(10);
    let young_call = call_at(young, "sarah", "openai");
    for call in [
        call_at(old, "sarah", "openai"),
        call_at(old, "sarah", "openai"),
        young_call.clone(),
    ] {
        store.record(&call).await.context("record a call")?;
    }
    let keep_all = Retention {
        max_age: None,
        max_count: Some(10),
    };
    store
        .prune(&keep_all, now + chrono::Duration::days(2))
        .await
        .context("prune without max_age")?;
    let mut days = vec![old.date_naive(), young.date_naive()];
    days.dedup();
    let mut before = Vec::new();
    for day in &days {
        before.extend(store.calls(*day).await.context("calls")?);
    }
    ensure_eq!(before.len(), 3, "without max_age no call is pruned");
    let retention = Retention {
        max_age: Some(Duration::from_secs(3600)),
        max_count: None,
    };
    store
        .prune(&retention, now)
        .await
        .context("prune with max_age")?;
    let mut left = Vec::new();
    let mut total_calls = 0;
    for day in &days {
        left.extend(store.calls(*day).await.context("calls")?);
        total_calls += store
            .totals(&UsageScope::Agent("sarah".into()), *day)
            .await
            .context("totals")?
            .calls;
    }
    ensure_eq!(left, vec![young_call], "only the young call is left");
    ensure_eq!(total_calls, 3, "the day totals still count pruned calls");
    Ok(())
}

/// A retention without limits prunes nothing.
pub async fn no_retention_limit_prunes_nothing<H: Harness>(h: &H) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let job = enqueue(store, "w", EnqueueOptions::default()).await?;
    store.cancel(job.id).await.context("cancel")?;
    ensure_eq!(
        store
            .prune(&Retention::default(), Utc::now() + secs(86_400 * 365))
            .await
            .context("prune")?,
        0,
        "nothing pruned without limits"
    );
    ensure!(
        store.get_job(job.id).await.context("get")?.is_some(),
        "the ended job stays"
    );
    Ok(())
}
