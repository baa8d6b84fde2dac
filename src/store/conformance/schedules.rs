//! Schedules and the pause state: put/get/list/delete and validation;
//! firing once per due time as [`crate::job::schedule::plan_firings`] plans
//! it (skip or catch up), coalesced by a unique key, parked when it can
//! never fire again, atomic and durable; pauses durable across a crash.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::support::{at, claim_all, secs};
use super::{ConformanceError, Context, Fixture, Harness};
use crate::job::schedule::{Schedule, ScheduleSpec, MAX_CATCH_UP_PER_CALL};
use crate::job::{JobCtx, JobStatus};
use crate::store::prelude::*;
use crate::store::{PauseTarget, StoreError};

/// A schedule of worker `digest` whose next fire time is `next`.
fn schedule(
    id: &str,
    spec: ScheduleSpec,
    next: DateTime<Utc>,
) -> Result<Schedule, ConformanceError> {
    let mut s = Schedule::new(id, "digest", json!({"k": id}), spec, next - secs(1))
        .context(format!("build schedule {id}"))?;
    s.next_fire_at = next;
    Ok(s)
}

fn hourly() -> Result<ScheduleSpec, ConformanceError> {
    ScheduleSpec::cron("0 * * * *").context("parse an hourly cron")
}

fn every(period: u64) -> Result<ScheduleSpec, ConformanceError> {
    ScheduleSpec::every(Duration::from_secs(period)).context("build an interval")
}

/// Put creates or replaces, get answers it or `None`, list is by id,
/// delete says whether it existed, `next_schedule_fire` is the earliest
/// `nextFireAt`; all of it across a crash.
pub async fn schedules_are_put_got_listed_and_deleted<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let t0 = at("2025-03-01T10:00:00Z")?;
    ensure_eq!(
        store.next_schedule_fire().await.context("next fire")?,
        None,
        "no schedule, no fire time"
    );
    let b = schedule("b", hourly()?, t0 + secs(7200))?;
    let mut a = schedule("a", every(60)?, t0 + secs(60))?;
    a.catch_up = true;
    a.priority = 4;
    a.max_attempts = 7;
    a.timeout_ms = Some(2500);
    a.unique_key = Some("a-key".into());
    a.ctx.user_id = Some("u1".into());
    store.put_schedule(b.clone()).await.context("put b")?;
    store.put_schedule(a.clone()).await.context("put a")?;
    ensure_eq!(
        store.get_schedule("a").await.context("get a")?,
        Some(a.clone()),
        "get answers the schedule as put"
    );
    ensure_eq!(
        store.get_schedule("zzz").await.context("get zzz")?,
        None,
        "an unknown schedule"
    );
    ensure_eq!(
        store.list_schedules().await.context("list")?,
        vec![a.clone(), b.clone()],
        "listed by id"
    );
    ensure_eq!(
        store.next_schedule_fire().await.context("next fire")?,
        Some(t0 + secs(60)),
        "the earliest nextFireAt"
    );
    let mut b2 = b.clone();
    b2.args = json!({"replaced": true});
    b2.next_fire_at = t0 + secs(30);
    store.put_schedule(b2.clone()).await.context("replace b")?;
    ensure_eq!(
        store.next_schedule_fire().await.context("next fire")?,
        Some(t0 + secs(30)),
        "a replaced schedule's fire time counts"
    );
    let f = f.crash().await?;
    let store = f.store();
    ensure_eq!(
        store.list_schedules().await.context("list")?,
        vec![a, b2],
        "after a crash"
    );
    ensure!(
        store.delete_schedule("b").await.context("delete b")?,
        "deleting an existing schedule says so"
    );
    ensure!(
        !store.delete_schedule("b").await.context("delete b again")?,
        "deleting it again says it did not exist"
    );
    let f = f.crash().await?;
    ensure_eq!(
        f.store()
            .list_schedules()
            .await
            .context("list")?
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        vec!["a"],
        "a deletion survives a crash"
    );
    Ok(())
}

/// A schedule with a bad spec is refused naming its id (and the bad
/// expression); an empty id or worker name is refused naming the field;
/// nothing is stored.
pub async fn invalid_schedules_are_refused_with_their_id<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let now = Utc::now();
    let mut bad_cron = schedule("bad", hourly()?, now)?;
    bad_cron.spec = ScheduleSpec::Cron {
        expression: "99 * * * *".into(),
    };
    match store.put_schedule(bad_cron).await {
        Err(e @ StoreError::Schedule { .. }) => ensure!(
            e.to_string().contains("\"bad\"") && e.to_string().contains("99 * * * *"),
            "the refusal must name the schedule and the expression, got {e}"
        ),
        other => bail!("a bad cron expression must be refused, got {other:?}"),
    }
    let mut zero = schedule("zero", every(1)?, now)?;
    zero.spec = ScheduleSpec::Interval { every_ms: 0 };
    let out = store.put_schedule(zero).await;
    ensure!(
        matches!(&out, Err(StoreError::Schedule { id, .. }) if id == "zero"),
        "a zero interval must be refused naming the schedule, got {out:?}"
    );
    let mut no_id = schedule("x", every(1)?, now)?;
    no_id.id = String::new();
    let out = store.put_schedule(no_id).await;
    ensure!(
        matches!(out, Err(StoreError::InvalidInput { field: "id", .. })),
        "an empty id must be refused naming `id`, got {out:?}"
    );
    let mut no_worker = schedule("y", every(1)?, now)?;
    no_worker.worker_name = " ".into();
    let out = store.put_schedule(no_worker).await;
    ensure!(
        matches!(
            out,
            Err(StoreError::InvalidInput {
                field: "workerName",
                ..
            })
        ),
        "an empty worker name must be refused naming `workerName`, got {out:?}"
    );
    ensure!(
        store.list_schedules().await.context("list")?.is_empty(),
        "nothing is stored"
    );
    Ok(())
}

/// A due schedule fires once per due time: not before, once at it, not
/// again at the same instant; after downtime a skip-mode schedule fires
/// once for the latest missed time and a catch-up one for every missed
/// time; the jobs name their schedule; all of it across crashes.
pub async fn schedules_fire_once_per_due_time_across_a_crash<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let t0 = at("2025-03-01T10:00:00Z")?;
    let store = f.store();
    store
        .put_schedule(schedule("hourly", hourly()?, t0)?)
        .await
        .context("put hourly")?;
    let mut catch = schedule("catch", hourly()?, t0)?;
    catch.catch_up = true;
    store.put_schedule(catch).await.context("put catch")?;
    ensure!(
        store
            .fire_due_schedules(t0 - secs(1))
            .await
            .context("fire before t0")?
            .is_empty(),
        "nothing fires before its time"
    );
    let fired = store.fire_due_schedules(t0).await.context("fire at t0")?;
    ensure_eq!(fired.len(), 2, "both fire at t0");
    for f in &fired {
        ensure_eq!(f.jobs.len(), 1, "one job for {}", f.schedule.id);
        ensure_eq!(
            (f.schedule.last_fired_at, f.schedule.next_fire_at),
            (Some(t0), t0 + secs(3600)),
            "(lastFiredAt, nextFireAt) of {}",
            f.schedule.id
        );
        let job = &f.jobs[0];
        ensure_eq!(
            job.ctx.source.as_deref(),
            Some(format!("schedule:{}", f.schedule.id).as_str()),
            "the job's source"
        );
        ensure_eq!(job.run_at, t0, "the job runs at its fire time");
        ensure_eq!(
            job.ctx.extra.get("scheduledFor"),
            Some(&json!(t0.to_rfc3339())),
            "scheduledFor is the fire time"
        );
        ensure_eq!(
            store.get_job(job.id).await.context("get")?.as_ref(),
            Some(job),
            "the fired job is stored as answered"
        );
    }
    ensure!(
        store
            .fire_due_schedules(t0)
            .await
            .context("fire at t0 again")?
            .is_empty(),
        "the same instant again fires nothing"
    );
    let f = f.crash().await?;
    let store = f.store();
    ensure_eq!(
        store
            .counts()
            .await
            .context("counts")?
            .status(JobStatus::Queued),
        2,
        "the fired jobs survive a crash"
    );
    let fired = store
        .fire_due_schedules(t0 + secs(5 * 3600 + 1800))
        .await
        .context("fire after five missed hours")?;
    let by_id: BTreeMap<_, _> = fired.iter().map(|f| (f.schedule.id.as_str(), f)).collect();
    let (Some(hourly), Some(catch)) = (by_id.get("hourly"), by_id.get("catch")) else {
        bail!("both schedules fire after downtime, got {fired:?}");
    };
    ensure_eq!(
        hourly.jobs.iter().map(|j| j.run_at).collect::<Vec<_>>(),
        vec![t0 + secs(5 * 3600)],
        "skip mode fires once, for the latest missed time"
    );
    ensure_eq!(
        catch.jobs.iter().map(|j| j.run_at).collect::<Vec<_>>(),
        (1..=5).map(|h| t0 + secs(h * 3600)).collect::<Vec<_>>(),
        "catch-up fires every missed time, oldest first"
    );
    ensure_eq!(
        hourly.schedule.next_fire_at,
        t0 + secs(6 * 3600),
        "skip mode moves to the first time after now"
    );
    ensure_eq!(
        store
            .counts()
            .await
            .context("counts")?
            .status(JobStatus::Queued),
        8,
        "jobs queued in all"
    );
    let f = f.crash().await?;
    ensure_eq!(
        f.store()
            .get_schedule("hourly")
            .await
            .context("get")?
            .map(|s| s.next_fire_at),
        Some(t0 + secs(6 * 3600)),
        "the advanced schedule survives a crash"
    );
    Ok(())
}

/// Catch-up fires at most [`MAX_CATCH_UP_PER_CALL`] times per call; the
/// next call goes on from the first time not fired.
pub async fn catch_up_fires_missed_times_in_bounded_chunks<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let start = at("2025-03-01T00:00:00Z")?;
    let mut s = schedule("tick", every(1)?, start)?;
    s.catch_up = true;
    store.put_schedule(s).await.context("put")?;
    let chunk = i64::try_from(MAX_CATCH_UP_PER_CALL).context("chunk size")?;
    let now = start + secs(chunk + 9);
    let first = store.fire_due_schedules(now).await.context("fire")?;
    ensure_eq!(
        first
            .first()
            .map(|f| (f.jobs.len(), f.schedule.next_fire_at)),
        Some((MAX_CATCH_UP_PER_CALL, start + secs(chunk))),
        "(jobs, nextFireAt) of the first call"
    );
    let second = store.fire_due_schedules(now).await.context("fire again")?;
    ensure_eq!(
        second
            .first()
            .map(|f| (f.jobs.len(), f.schedule.next_fire_at)),
        Some((10, now + secs(1))),
        "(jobs, nextFireAt) of the second call"
    );
    let counts = store.counts().await.context("counts")?;
    ensure_eq!(
        counts.status(JobStatus::Queued),
        u64::try_from(MAX_CATCH_UP_PER_CALL + 10).context("count")?,
        "one job per fire time"
    );
    Ok(())
}

/// A schedule with a unique key enqueues nothing while the previous job
/// with the key is queued or running (the schedule still advances); within
/// one catch-up call its missed times coalesce into one job.
pub async fn a_unique_key_coalesces_firings<H: Harness>(h: &H) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let t0 = Utc::now();
    let mut slow = schedule("slow", every(60)?, t0)?;
    slow.unique_key = Some("slow-job".into());
    store.put_schedule(slow).await.context("put slow")?;
    let first = store.fire_due_schedules(t0).await.context("fire")?;
    ensure_eq!(
        first.first().map(|f| f.jobs.len()),
        Some(1),
        "the first firing enqueues"
    );
    let fired = store
        .fire_due_schedules(t0 + secs(60))
        .await
        .context("fire while queued")?;
    ensure_eq!(
        fired
            .first()
            .map(|f| (f.jobs.len(), f.schedule.next_fire_at)),
        Some((0, t0 + secs(120))),
        "(jobs, nextFireAt) while the previous job is queued"
    );
    claim_all(store, t0 + secs(120)).await?;
    let fired = store
        .fire_due_schedules(t0 + secs(120))
        .await
        .context("fire while running")?;
    ensure_eq!(
        fired.first().map(|f| f.jobs.len()),
        Some(0),
        "nothing while the previous job runs"
    );
    ensure_eq!(
        store
            .counts()
            .await
            .context("counts")?
            .status(JobStatus::Running),
        1,
        "one job in all"
    );

    let mut catch = schedule("catch", every(60)?, t0)?;
    catch.catch_up = true;
    catch.unique_key = Some("catch-job".into());
    store.put_schedule(catch).await.context("put catch")?;
    let fired = store
        .fire_due_schedules(t0 + secs(300))
        .await
        .context("fire five missed times")?;
    let catch = fired.iter().find(|f| f.schedule.id == "catch");
    ensure_eq!(
        catch.map(|f| (f.jobs.len(), f.schedule.next_fire_at)),
        Some((1, t0 + secs(360))),
        "(jobs, nextFireAt): missed times coalesce into one job"
    );
    Ok(())
}

/// A cron expression with no fire time left is parked (far in the future):
/// it is not fired, not found due again, and still listed after a crash.
pub async fn a_cron_that_never_fires_again_is_parked<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let spec = ScheduleSpec::cron("0 0 0 1 1 * 2020").context("cron of 2020 only")?;
    // Built while 2020 was ahead, found due once 2020 is over.
    let mut s = schedule("once", spec, at("2019-12-31T00:00:00Z")?)?;
    s.next_fire_at = at("2021-01-01T00:00:00Z")?;
    store.put_schedule(s).await.context("put")?;
    let fired = store.fire_due_schedules(Utc::now()).await.context("fire")?;
    ensure_eq!(fired.len(), 1, "the exhausted schedule is reported once");
    ensure!(fired[0].jobs.is_empty(), "it enqueues nothing");
    let far = Utc::now() + chrono::Duration::days(365 * 1000);
    ensure!(
        fired[0].schedule.next_fire_at > far,
        "it is parked far in the future, got {}",
        fired[0].schedule.next_fire_at
    );
    ensure!(
        store
            .fire_due_schedules(Utc::now())
            .await
            .context("fire again")?
            .is_empty(),
        "a parked schedule is not found due again"
    );
    let f = f.crash().await?;
    ensure_eq!(
        f.store().list_schedules().await.context("list")?.len(),
        1,
        "a parked schedule is kept"
    );
    Ok(())
}

/// A firing stores its job (with the schedule's worker, args, ctx and
/// options) and the advanced schedule together: after a crash both are
/// there, and the same due time does not fire again.
pub async fn a_firing_is_atomic_and_survives_a_crash<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let t0 = at("2025-06-01T08:00:00Z")?;
    let mut s = schedule("report", every(600)?, t0)?;
    s.priority = 5;
    s.max_attempts = 9;
    s.timeout_ms = Some(1234);
    s.ctx = JobCtx {
        user_id: Some("u7".into()),
        source: Some("ops".into()),
        ..JobCtx::default()
    };
    f.store().put_schedule(s).await.context("put")?;
    let fired = f
        .store()
        .fire_due_schedules(t0 + secs(30))
        .await
        .context("fire")?;
    let Some(job) = fired.first().and_then(|f| f.jobs.first()).cloned() else {
        bail!("the due schedule must fire a job, got {fired:?}");
    };
    ensure_eq!(
        (
            job.worker_name.as_str(),
            job.args.clone(),
            job.priority,
            job.max_attempts,
            job.timeout_ms
        ),
        ("digest", json!({"k": "report"}), 5, 9, Some(1234)),
        "(worker, args, priority, maxAttempts, timeout) from the schedule"
    );
    ensure_eq!(
        (job.ctx.user_id.as_deref(), job.ctx.source.as_deref()),
        (Some("u7"), Some("ops")),
        "the schedule's ctx, its own source kept"
    );
    let f = f.crash().await?;
    let store = f.store();
    ensure_eq!(
        store.get_job(job.id).await.context("get")?,
        Some(job),
        "the fired job after a crash"
    );
    ensure_eq!(
        store
            .get_schedule("report")
            .await
            .context("get")?
            .map(|s| (s.last_fired_at, s.next_fire_at)),
        Some((Some(t0), t0 + secs(600))),
        "the advanced schedule after a crash"
    );
    ensure!(
        store
            .fire_due_schedules(t0 + secs(30))
            .await
            .context("fire again")?
            .is_empty(),
        "the same due time does not fire again after a crash"
    );
    Ok(())
}

/// The pause state (one worker, everything) is durable: after a crash it
/// reads back and still keeps claims away.
pub async fn pause_state_survives_a_crash<H: Harness>(h: &H) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    super::support::enqueue(store, "a", Default::default()).await?;
    super::support::enqueue(store, "b", Default::default()).await?;
    store
        .set_paused(PauseTarget::Worker("a".into()), true)
        .await
        .context("pause a")?;
    let f = f.crash().await?;
    let store = f.store();
    let state = store.pause_state().await.context("pause state")?;
    ensure!(
        state.workers.contains("a") && !state.all && state.workers.len() == 1,
        "one paused worker after a crash, got {state:?}"
    );
    ensure_eq!(
        store
            .next_wake(Some(&["a".to_string()]))
            .await
            .context("next_wake of a")?,
        None,
        "a paused worker does not wake the scheduler after a crash"
    );
    let got = claim_all(store, Utc::now()).await?;
    ensure_eq!(
        got.iter()
            .map(|j| j.worker_name.as_str())
            .collect::<Vec<_>>(),
        vec!["b"],
        "the paused worker's job is not claimed after a crash"
    );
    store
        .set_paused(PauseTarget::All, true)
        .await
        .context("pause all")?;
    store
        .set_paused(PauseTarget::Worker("a".into()), false)
        .await
        .context("resume a")?;
    let f = f.crash().await?;
    let store = f.store();
    let state = store.pause_state().await.context("pause state")?;
    ensure!(
        state.all && state.workers.is_empty(),
        "all paused, no worker, after a crash, got {state:?}"
    );
    ensure!(
        claim_all(store, Utc::now()).await?.is_empty(),
        "nothing is claimed while all is paused"
    );
    ensure_eq!(
        store.next_wake(None).await.context("next_wake")?,
        None,
        "nothing wakes the scheduler while all is paused"
    );
    store
        .set_paused(PauseTarget::All, false)
        .await
        .context("resume all")?;
    ensure_eq!(
        claim_all(store, Utc::now())
            .await?
            .iter()
            .map(|j| j.worker_name.as_str())
            .collect::<Vec<_>>(),
        vec!["a"],
        "resumed"
    );
    Ok(())
}
