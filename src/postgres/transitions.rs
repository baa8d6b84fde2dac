//! Fenced transitions (complete, fail, acknowledge a cancel, discard) in
//! groups: one task per store takes every transition waiting and applies
//! them in one transaction — rows locked in id order, each job's rule
//! applied to the job as stored (and to its own earlier answer when the
//! same job comes twice), one `UPDATE … FROM unnest` — and answers each
//! caller only after the commit. A lone transition goes at once; under load
//! they share the commit, as sled's group commit shares a flush. A job
//! costs about three transactions in all (insert, claim, this), each
//! shared with other jobs.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::jobs::{job_of, write_back};
use super::{db, Shared};
use crate::job::rules::Stale;
use crate::job::{Job, JobId};
use crate::store::{Outcome, StoreError};

/// The most transitions one transaction takes.
const MAX_GROUP: usize = 512;

/// A job's rule: what it becomes, or why nothing changes.
pub(super) type Rule = Box<dyn FnOnce(&Job) -> Result<Job, Stale> + Send>;

/// One transition waiting for its group.
pub(super) struct Transition {
    pub(super) id: JobId,
    pub(super) rule: Rule,
    pub(super) reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

/// Starts the store's transition task; the sender goes into [`Shared`].
pub(super) fn start(shared: Weak<Shared>) -> mpsc::UnboundedSender<Transition> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(shared, rx));
    tx
}

async fn run(shared: Weak<Shared>, mut rx: mpsc::UnboundedReceiver<Transition>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        apply(&shared, std::mem::take(&mut group)).await;
    }
}

/// Applies one group and answers every caller in it.
async fn apply(shared: &Arc<Shared>, group: Vec<Transition>) {
    let ids: Vec<Uuid> = group.iter().map(|t| t.id).collect();
    let mut rules = Vec::with_capacity(group.len());
    let mut replies = Vec::with_capacity(group.len());
    for t in group {
        rules.push((t.id, t.rule));
        replies.push(t.reply);
    }
    match apply_rules(shared, &ids, rules).await {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
        Err(e) => {
            let reason = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(StoreError::Backend {
                    operation: "transition",
                    source: reason.clone().into(),
                }));
            }
        }
    }
}

/// One transaction for the group: each transition's outcome (a missing job
/// is that transition's own error), or the error that failed them all.
async fn apply_rules(
    shared: &Shared,
    ids: &[Uuid],
    rules: Vec<(JobId, Rule)>,
) -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
    let mut client = shared
        .pool
        .get()
        .await
        .map_err(|e| super::pool_error("transition", e))?;
    let tx = client.transaction().await.map_err(db("transition"))?;
    let stmt = tx
        .prepare_cached("SELECT data, id FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .await
        .map_err(db("transition"))?;
    let rows = tx.query(&stmt, &[&ids]).await.map_err(db("transition"))?;
    let mut current: HashMap<JobId, Job> = HashMap::with_capacity(rows.len());
    // A record that does not decode fails its own transitions, not the
    // group's.
    let mut corrupt: HashMap<JobId, String> = HashMap::new();
    for row in &rows {
        match job_of(row, 0) {
            Ok(job) => {
                current.insert(job.id, job);
            }
            Err(e) => {
                let id: Uuid = row.try_get(1).map_err(db("transition"))?;
                let reason = match e {
                    StoreError::CorruptJob { reason, .. } => reason,
                    other => other.to_string(),
                };
                corrupt.insert(id, reason);
            }
        }
    }
    let mut changed: Vec<JobId> = Vec::new();
    let mut outcomes = Vec::with_capacity(rules.len());
    for (id, rule) in rules {
        let Some(job) = current.get(&id) else {
            outcomes.push(Err(match corrupt.get(&id) {
                Some(reason) => StoreError::CorruptJob {
                    id: id.to_string(),
                    reason: reason.clone(),
                },
                None => StoreError::JobNotFound { id },
            }));
            continue;
        };
        match rule(job) {
            Ok(new) => {
                if !changed.contains(&id) {
                    changed.push(id);
                }
                outcomes.push(Ok(Outcome::Applied(new.clone())));
                current.insert(id, new);
            }
            Err(stale) => outcomes.push(Ok(Outcome::from(stale))),
        }
    }
    let written: Vec<Job> = changed.iter().filter_map(|id| current.remove(id)).collect();
    write_back(&tx, "transition", &written).await?;
    tx.commit().await.map_err(db("transition"))?;
    // Jobs no longer running are no longer this node's to renew. (A stale
    // answer about a job running again — maybe here, as a later attempt —
    // keeps it.)
    let running = crate::job::JobStatus::Running;
    shared.release(
        ids.iter()
            .zip(&outcomes)
            .filter_map(|(id, outcome)| match outcome {
                Ok(Outcome::Applied(job)) if job.status != running => Some(*id),
                Ok(Outcome::Stale { status, .. }) if *status != running => Some(*id),
                _ => None,
            }),
    );
    Ok(outcomes)
}
