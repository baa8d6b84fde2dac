//! A failed store: once a write could not be made durable (a flush failed
//! or never ended; the harness stands in for the disk with
//! [`Harness::fail`]), every write is refused with [`StoreError::Failed`],
//! reads go on and see what was there, [`JobStore::health`] says so, and the
//! store opened again (a restart) has everything acknowledged and takes
//! writes again.

use chrono::Utc;
use serde_json::json;

use super::durability::snapshot;
use super::support::{claim_worker, enqueue, new_job};
use super::usage::call_at;
use super::{ConformanceError, Context, Fixture, Harness};
use crate::job::schedule::{Schedule, ScheduleSpec};
use crate::job::{EnqueueOptions, FailAction, Job};
use crate::store::prelude::*;
use crate::store::{
    ClaimRequest, MemoryId, MemoryScope, NewMemory, NewMessage, PauseTarget, Retention, Role,
    StoreError,
};

/// The reason the cases fail their store with.
const REASON: &str = "conformance: the disk is full";

/// What the cases store before the failure: a queued and a running job,
/// a memory, a message, a step, a key, usage.
struct Before {
    queued: Job,
    running: Job,
    memory: MemoryId,
}

async fn store_some_of_everything<S: Store + ?Sized>(
    store: &S,
) -> Result<Before, ConformanceError> {
    let queued = enqueue(store, "q", EnqueueOptions::default()).await?;
    let running = enqueue(store, "r", EnqueueOptions::default()).await?;
    claim_worker(store, "r", 1, Utc::now()).await?;
    let scope = MemoryScope::user("sarah", "u1");
    let memory = store
        .remember(NewMemory::new(&scope, "fact", "likes tea", 5), None)
        .await
        .context("remember")?
        .memory
        .id;
    store
        .append(NewMessage::new("c1", Role::User, "u1", "hello"), None)
        .await
        .context("append")?;
    store
        .save_step(running.id, 0, json!({"step": 0}))
        .await
        .context("save a step")?;
    store
        .claim_key("k1", json!({"jobId": running.id}))
        .await
        .context("claim a key")?;
    store
        .record(&call_at(Utc::now(), "sarah", "openai"))
        .await
        .context("record usage")?;
    Ok(Before {
        queued,
        running,
        memory,
    })
}

/// `result` must be [`StoreError::Failed`] naming [`REASON`].
fn failed<T: std::fmt::Debug>(
    result: Result<T, StoreError>,
    doing: &str,
) -> Result<(), ConformanceError> {
    match result {
        Err(StoreError::Failed { reason }) if reason.contains(REASON) => Ok(()),
        other => bail!(
            "{doing} on a failed store: expected StoreError::Failed naming {REASON:?}, got {other:?}"
        ),
    }
}

/// Tries every kind of write of every port; each must be refused.
async fn every_write_is_refused<S: Store + ?Sized>(
    store: &S,
    before: &Before,
) -> Result<(), ConformanceError> {
    let now = Utc::now();
    let (queued, running) = (before.queued.id, before.running.id);
    let scope = MemoryScope::user("sarah", "u1");
    let spec = ScheduleSpec::cron("0 * * * *").context("cron")?;
    let schedule = Schedule::new("s", "digest", json!({}), spec, now).context("schedule")?;
    failed(
        store.insert(new_job("q", EnqueueOptions::default())?).await,
        "insert",
    )?;
    let many = vec![new_job("q", EnqueueOptions::default())?];
    failed(store.insert_many(many).await, "insert_many")?;
    failed(store.claim(&ClaimRequest::any(now, 10)).await, "claim")?;
    failed(store.complete(running, 1, json!(1)).await, "complete")?;
    let fail = store.fail(running, 1, "x".into(), FailAction::Final).await;
    failed(fail, "fail")?;
    failed(store.cancel(queued).await, "cancel")?;
    failed(store.ack_cancel(running, 1).await, "ack_cancel")?;
    failed(store.discard(queued, "x".into()).await, "discard")?;
    failed(store.recover(now).await, "recover")?;
    let retention = Retention {
        max_age: Some(std::time::Duration::ZERO),
        max_count: Some(0),
    };
    failed(store.prune(&retention, now).await, "prune")?;
    failed(store.set_paused(PauseTarget::All, true).await, "set_paused")?;
    failed(store.put_schedule(schedule).await, "put_schedule")?;
    failed(store.delete_schedule("s").await, "delete_schedule")?;
    failed(store.fire_due_schedules(now).await, "fire_due_schedules")?;
    let memory = NewMemory::new(&scope, "fact", "likes coffee", 5);
    failed(store.remember(memory, None).await, "remember")?;
    failed(store.forget(before.memory).await, "forget")?;
    let later = now + chrono::Duration::hours(1);
    failed(store.touch(&[before.memory], later).await, "touch")?;
    let summary = vec![NewMemory::new(&scope, "summary", "drinks tea", 6)];
    let compact = store.compact(&scope, vec![before.memory], summary).await;
    failed(compact, "compact")?;
    let message = NewMessage::new("c1", Role::User, "u1", "again");
    failed(store.append(message, None).await, "append")?;
    failed(store.save_step(running, 1, json!({})).await, "save_step")?;
    failed(store.clear_steps(running).await, "clear_steps")?;
    failed(store.claim_key("k2", json!(2)).await, "claim_key")?;
    let call = call_at(now, "sarah", "openai");
    failed(store.record(&call).await, "record")?;
    Ok(())
}

/// Every write of every port is refused with the failure; reads answer as
/// before (the refused writes changed nothing), and `health` reports it.
pub async fn a_failed_store_refuses_every_write_and_serves_reads<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let before = store_some_of_everything(store).await?;
    store.health().await.context("health before the failure")?;
    let day = Utc::now().date_naive();
    let seen = snapshot(store, before.running.id, day).await?;

    f.fail(REASON).await?;
    failed(store.health().await, "health")?;
    every_write_is_refused(store, &before).await?;
    failed(
        store.insert(new_job("q", EnqueueOptions::default())?).await,
        "a write after the refusals",
    )?;
    let now = snapshot(store, before.running.id, day).await?;
    ensure_eq!(now, seen, "what reads answer on a failed store");
    Ok(())
}

/// A failed store opened again (the restart a failure asks for) has
/// everything acknowledged before the failure, says it is healthy, and
/// takes writes again.
pub async fn a_failed_store_is_whole_and_writable_after_a_restart<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let before = store_some_of_everything(f.store()).await?;
    let day = Utc::now().date_naive();
    let seen = snapshot(f.store(), before.running.id, day).await?;
    f.fail(REASON).await?;
    failed(
        f.store()
            .insert(new_job("q", EnqueueOptions::default())?)
            .await,
        "insert",
    )?;

    let f = f.crash().await?;
    let store = f.store();
    store.health().await.context("health after the restart")?;
    let after = snapshot(store, before.running.id, day).await?;
    ensure_eq!(after, seen, "everything acknowledged, after the restart");
    enqueue(store, "q", EnqueueOptions::default()).await?;
    store
        .complete(before.running.id, 1, json!({"done": true}))
        .await
        .context("complete the job left running")?;
    Ok(())
}
