//! Approvals: a running job parks (`waiting`) with its approvals in its
//! record; it is neither claimed nor recovered while it waits, keeps its
//! unique key, and survives a crash; a decision is made once among racing
//! deciders; the last decision queues the job again; a cancel cancels the
//! pending approvals; past-deadline approvals are denied by themselves.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::support::{claim_all, claim_worker, enqueue, get};
use super::{ConformanceError, Context, Fixture, Harness};
use crate::job::{
    ApprovalId, ApprovalRequest, ApprovalState, Decision, EnqueueOptions, Job, JobStatus,
    DEADLINE_REASON,
};
use crate::store::prelude::*;
use crate::store::{CancelOutcome, DecideOutcome, InsertOutcome, Outcome, StoreError};

/// A request for call `call` of step 0 of `send_message`.
pub(super) fn request(call: u32, deadline: Option<DateTime<Utc>>) -> ApprovalRequest {
    ApprovalRequest {
        tool: "send_message".into(),
        arguments: json!({"content": format!("hello {call}")}),
        step: 0,
        call,
        call_id: format!("call_{call}"),
        deadline,
    }
}

/// A job of `worker`, claimed and parked awaiting `requests`.
async fn parked<S: Store + ?Sized>(
    store: &S,
    worker: &str,
    options: EnqueueOptions,
    requests: Vec<ApprovalRequest>,
) -> Result<Job, ConformanceError> {
    let job = enqueue(store, worker, options).await?;
    let claimed = claim_worker(store, worker, 1, Utc::now()).await?;
    ensure_eq!(claimed.len(), 1, "the job is claimed");
    match store
        .park_job(job.id, 1, requests)
        .await
        .context("park the job")?
    {
        Outcome::Applied(parked) => {
            ensure_eq!(
                parked,
                get(store, job.id).await?,
                "park answers the job as stored"
            );
            Ok(parked)
        }
        stale => bail!("parking a running job must apply, got {stale:?}"),
    }
}

fn id(job: &Job, number: u32) -> ApprovalId {
    ApprovalId {
        job: job.id,
        number,
    }
}

fn approve() -> Decision {
    Decision::Approve {
        note: Some("fine".into()),
    }
}

/// Parked, the job waits with one pending approval per call, numbered in
/// order, is neither claimed, nor woken for, nor recovered, and survives a
/// crash; each decision is recorded, and the last queues the job again,
/// due at once, its parked attempt not counted.
pub async fn a_parked_job_waits_until_every_approval_is_decided<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let job = parked(
        f.store(),
        "ed",
        EnqueueOptions::default().max_attempts(1),
        vec![request(0, None), request(1, None)],
    )
    .await?;
    ensure_eq!(job.status, JobStatus::Waiting, "status after parking");
    ensure_eq!(job.parked, 1, "parked attempts");
    let numbered: Vec<String> = job.approvals.iter().map(|a| a.id.to_string()).collect();
    ensure_eq!(
        numbered,
        vec![id(&job, 1).to_string(), id(&job, 2).to_string()],
        "approval ids"
    );
    ensure!(
        job.approvals
            .iter()
            .all(|a| a.state == ApprovalState::Pending
                && a.agent_id == "ed"
                && a.decided_at.is_none()),
        "every approval pending: {:?}",
        job.approvals
    );
    let f = f.crash().await?;
    let store = f.store();
    ensure_eq!(
        get(store, job.id).await?,
        job,
        "the parked job after a crash"
    );
    let pending = store.pending_approvals().await.context("list pending")?;
    ensure_eq!(pending, job.approvals, "pending approvals");
    ensure!(
        claim_all(store, Utc::now()).await?.is_empty(),
        "a waiting job is not claimed"
    );
    ensure_eq!(
        store.next_wake(None).await.context("next wake")?,
        None,
        "nothing to wake for"
    );
    let recovered = store.recover(Utc::now()).await.context("recover")?;
    ensure!(
        recovered.requeued.is_empty() && recovered.cancelled.is_empty(),
        "recover leaves a waiting job alone: {recovered:?}"
    );
    let counts = store.counts().await.context("counts")?;
    ensure_eq!(counts.status(JobStatus::Waiting), 1, "counted waiting");

    let first = store
        .decide_approval(id(&job, 1), approve())
        .await
        .context("approve the first")?;
    let DecideOutcome::Decided {
        approval,
        job: after,
    } = first
    else {
        bail!("the first decision must apply, got {first:?}")
    };
    ensure_eq!(
        approval.state,
        ApprovalState::Approved,
        "the first approval"
    );
    ensure_eq!(approval.note.as_deref(), Some("fine"), "its note");
    ensure_eq!(
        after.status,
        JobStatus::Waiting,
        "one approval still pending"
    );
    let second = store
        .decide_approval(
            id(&job, 2),
            Decision::Deny {
                reason: "no".into(),
            },
        )
        .await
        .context("deny the second")?;
    let DecideOutcome::Decided { job: after, .. } = second else {
        bail!("the second decision must apply, got {second:?}")
    };
    ensure_eq!(after.status, JobStatus::Queued, "every approval decided");
    ensure!(after.run_at <= Utc::now(), "due at once");
    ensure!(
        after.has_attempts_left(),
        "the parked attempt is not counted"
    );
    let states: Vec<ApprovalState> = after.approvals.iter().map(|a| a.state).collect();
    ensure_eq!(
        states,
        vec![ApprovalState::Approved, ApprovalState::Denied],
        "decisions"
    );
    ensure!(
        store.pending_approvals().await.context("list")?.is_empty(),
        "nothing pending"
    );
    let f = f.crash().await?;
    let again = claim_all(f.store(), Utc::now()).await?;
    ensure_eq!(
        again.len(),
        1,
        "the decided job is claimed again after a crash"
    );
    ensure_eq!(again[0].approvals, after.approvals, "with its decisions");
    Ok(())
}

/// Of many deciders racing on one approval, exactly one decides; the others
/// are told how it was decided. An unknown approval is not found.
pub async fn one_of_many_racing_decisions_wins<H: Harness>(h: &H) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let job = parked(
        f.store(),
        "ed",
        EnqueueOptions::default(),
        vec![request(0, None)],
    )
    .await?;
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = f.shared();
        let approval = id(&job, 1);
        tasks.push(tokio::spawn(async move {
            let decision = if n % 2 == 0 {
                approve()
            } else {
                Decision::Deny {
                    reason: format!("no {n}"),
                }
            };
            store.decide_approval(approval, decision).await
        }));
    }
    let mut won = Vec::new();
    let mut lost = Vec::new();
    for task in tasks {
        match task.await.context("join a decider")?.context("decide")? {
            DecideOutcome::Decided { approval, .. } => won.push(approval),
            DecideOutcome::AlreadyDecided(approval) => lost.push(approval),
        }
    }
    ensure_eq!(won.len(), 1, "deciders that won");
    ensure!(
        lost.iter()
            .all(|a| a.state == won[0].state && a.note == won[0].note),
        "the losers see the winner's decision: {won:?} vs {lost:?}"
    );
    let stored = get(f.store(), job.id).await?;
    ensure_eq!(stored.approvals, won, "stored as the winner decided");
    ensure_eq!(stored.status, JobStatus::Queued, "queued again");
    for unknown in [
        id(&job, 2),
        id(&job, 0),
        ApprovalId {
            job: uuid::Uuid::now_v7(),
            number: 1,
        },
    ] {
        match f.store().decide_approval(unknown, approve()).await {
            Err(StoreError::NotFound {
                what: "approval", ..
            }) => {}
            other => bail!("deciding unknown approval {unknown}: expected NotFound, got {other:?}"),
        }
    }
    Ok(())
}

/// A waiting job keeps its unique key; cancelling it ends it `cancelled`
/// with its pending approvals `cancelled`, which no decision can change,
/// and frees the key.
pub async fn cancelling_a_waiting_job_cancels_its_approvals<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let keyed = EnqueueOptions::default().unique_key("k");
    let job = parked(store, "ed", keyed.clone(), vec![request(0, None)]).await?;
    let again = super::support::new_job("ed", keyed.clone())?;
    match store
        .insert(again)
        .await
        .context("insert with the held key")?
    {
        InsertOutcome::Existing(j) if j.id == job.id => {}
        other => bail!("a waiting job holds its unique key, got {other:?}"),
    }
    let cancelled = match store.cancel(job.id).await.context("cancel")? {
        CancelOutcome::Cancelled(j) => j,
        other => bail!("a waiting job is cancelled at once, got {other:?}"),
    };
    ensure_eq!(cancelled.status, JobStatus::Cancelled, "status");
    ensure_eq!(
        cancelled.approvals[0].state,
        ApprovalState::Cancelled,
        "its approval"
    );
    match store.decide_approval(id(&job, 1), approve()).await.context("decide")? {
        DecideOutcome::AlreadyDecided(a) if a.state == ApprovalState::Cancelled => {}
        other => bail!("deciding a cancelled task's approval: expected AlreadyDecided(cancelled), got {other:?}"),
    }
    ensure!(
        store.pending_approvals().await.context("list")?.is_empty(),
        "nothing pending"
    );
    ensure_eq!(
        get(store, job.id).await?,
        cancelled,
        "nothing changed by the decision"
    );
    let fresh = super::support::new_job("ed", keyed)?;
    ensure!(
        store
            .insert(fresh)
            .await
            .context("insert with the freed key")?
            .is_new(),
        "the key is free once the job is cancelled"
    );
    Ok(())
}

/// Approvals past their deadline are denied by themselves
/// ([`DEADLINE_REASON`]), also after a crash; the job waits for the
/// others, and `next_deadline` says when to look again.
pub async fn deadlines_deny_by_themselves_across_a_crash<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let now = Utc::now();
    let soon = now + chrono::Duration::seconds(1);
    let later = now + chrono::Duration::hours(1);
    let job = parked(
        f.store(),
        "ed",
        EnqueueOptions::default(),
        vec![request(0, Some(soon)), request(1, Some(later))],
    )
    .await?;
    let other = parked(
        f.store(),
        "al",
        EnqueueOptions::default(),
        vec![request(0, None)],
    )
    .await?;
    let f = f.crash().await?;
    let store = f.store();
    let none = store.expire_approvals(now).await.context("expire before")?;
    ensure!(none.jobs.is_empty(), "nothing due yet: {none:?}");
    ensure_eq!(none.next_deadline, Some(soon), "the next deadline");
    let first = store
        .expire_approvals(soon + chrono::Duration::milliseconds(1))
        .await
        .context("expire the first")?;
    ensure_eq!(first.jobs.len(), 1, "one job touched");
    let after = &first.jobs[0];
    ensure_eq!(
        after.status,
        JobStatus::Waiting,
        "one approval still pending"
    );
    ensure_eq!(
        after.approvals[0].state,
        ApprovalState::Expired,
        "the first"
    );
    ensure_eq!(
        after.approvals[0].note.as_deref(),
        Some(DEADLINE_REASON),
        "its reason"
    );
    ensure_eq!(first.next_deadline, Some(later), "the next deadline");
    ensure_eq!(&get(store, job.id).await?, after, "as stored");
    let f = f.crash().await?;
    let store = f.store();
    let last = store
        .expire_approvals(later + chrono::Duration::seconds(1))
        .await
        .context("expire the second")?;
    ensure_eq!(last.jobs.len(), 1, "one job touched");
    ensure_eq!(last.jobs[0].status, JobStatus::Queued, "queued again");
    ensure_eq!(last.next_deadline, None, "no deadline left");
    ensure_eq!(
        get(store, other.id).await?.status,
        JobStatus::Waiting,
        "an approval without a deadline waits"
    );
    Ok(())
}
