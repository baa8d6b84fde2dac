//! The job state machine as pure functions: given a job as stored and a
//! request, the job as it must be stored next, or why nothing changes.
//!
//! Every adapter of [`crate::store::JobStore`] (sled, in-memory, PostgreSQL)
//! applies these and only these, so they agree on every move; the legal
//! moves themselves are [`JobStatus::can_transition_to`]. An adapter's job
//! is to read the record, call the rule, and write the answer atomically
//! with respect to other writers of the same record (a compare-and-swap, a
//! row lock): a rule never sees two versions of a job at once.
//!
//! Times are arguments, never read from a clock here, so the rules are
//! deterministic and a test can state exactly what each produces.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::schedule::Schedule;
use super::{
    Approval, ApprovalId, ApprovalRequest, ApprovalState, AttemptError, Decision, Job, JobCtx,
    JobError, JobStatus, DEADLINE_REASON, MAX_NOTE_BYTES,
};

/// What to do with a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailAction {
    /// Queue the job again, not to run before `at` (backoff). Becomes
    /// [`FailAction::Final`] when no attempts are left or a cancel was requested.
    RetryAt(DateTime<Utc>),
    /// End the job `failed` now (permanent error or last attempt).
    Final,
    /// The attempt waited out an outage (an open circuit, an overload, a
    /// rate limit): queue the job again, not to run before `at`, without
    /// counting the attempt against `maxAttempts` — while the job has had
    /// fewer than `allowance` such waits; past that, as [`RetryAt`](Self::RetryAt).
    Postpone {
        /// Not claimed before this time.
        at: DateTime<Utc>,
        /// Outages a job may wait out without spending attempts.
        allowance: u32,
    },
}

/// Why a transition that names an attempt changed nothing: the job is no
/// longer where the caller assumed (a second completion, or a completion
/// from an attempt that a crash recovery already re-queued).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stale {
    /// The job's status now.
    pub status: JobStatus,
    /// The job's attempt now.
    pub attempt: u32,
}

impl Stale {
    fn of(job: &Job) -> Self {
        Stale {
            status: job.status,
            attempt: job.attempt,
        }
    }
}

/// What a cancel request does to a job.
// Built and matched once per call; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum CancelMove {
    /// It was queued: store this, now `cancelled`.
    Cancel(Job),
    /// It is running: store this, with `cancelRequested` set; the scheduler
    /// running it must stop the attempt and acknowledge.
    Request(Job),
    /// It is running and a cancel was already requested: nothing to store.
    AlreadyRequested,
    /// It had ended: nothing to store.
    AlreadyEnded,
}

/// Rejects a job handed to `insert` that did not come from [`Job::new`] (or
/// was tampered with), naming the field.
pub fn validate_new(job: &Job) -> Result<(), JobError> {
    let invalid = |field: &'static str, reason: &str| {
        Err(JobError::Invalid {
            field,
            reason: reason.to_owned(),
        })
    };
    if job.status != JobStatus::Queued {
        return invalid("status", "a new job must be queued");
    }
    if job.attempt != 0 {
        return invalid("attempt", "a new job must have attempt 0");
    }
    if job.max_attempts == 0 {
        return invalid("maxAttempts", "must be at least 1");
    }
    if job.worker_name.trim().is_empty() {
        return invalid("workerName", "must not be empty");
    }
    if matches!(&job.unique_key, Some(k) if k.is_empty()) {
        return invalid("uniqueKey", "must not be empty");
    }
    Ok(())
}

/// Whether a job may be claimed at `now`: queued and due. (Pauses and
/// per-worker limits are the claim's own filters, not the job's.)
pub fn is_ready(job: &Job, now: DateTime<Utc>) -> bool {
    job.status == JobStatus::Queued && job.run_at <= now
}

/// Claims a ready job: `running`, one more attempt. `None` when it is not
/// ready (see [`is_ready`]).
pub fn claim(job: &Job, now: DateTime<Utc>) -> Option<Job> {
    if !is_ready(job, now) {
        return None;
    }
    let mut new = job.clone();
    claim_in(&mut new, now);
    Some(new)
}

/// [`claim`] in place, for an adapter that owns the job it read (a copy
/// of a job is a copy of its args and result): whether it was ready, and
/// is now claimed; left as it was otherwise.
pub fn claim_in(job: &mut Job, now: DateTime<Utc>) -> bool {
    if !is_ready(job, now) {
        return false;
    }
    job.status = JobStatus::Running;
    job.attempt = job.attempt.saturating_add(1);
    job.updated_at = now;
    true
}

/// Attempt `attempt` finished with `result`: `completed`.
pub fn complete(job: &Job, attempt: u32, result: Value, now: DateTime<Utc>) -> Result<Job, Stale> {
    running_attempt(job, attempt)?;
    let mut new = job.clone();
    complete_in(&mut new, attempt, result, now)?;
    Ok(new)
}

/// [`complete`] in place (see [`claim_in`]); on [`Stale`] the job is left
/// as it was.
pub fn complete_in(
    job: &mut Job,
    attempt: u32,
    result: Value,
    now: DateTime<Utc>,
) -> Result<(), Stale> {
    running_attempt(job, attempt)?;
    job.status = JobStatus::Completed;
    job.result = Some(result);
    job.error = None;
    job.updated_at = now;
    Ok(())
}

/// Attempt `attempt` failed with `error`: queued again for `action`'s time
/// while attempts are left, else `failed`; `cancelled` when a cancel was
/// requested meanwhile. The error joins the job's `errors` either way.
pub fn fail(
    job: &Job,
    attempt: u32,
    error: String,
    action: FailAction,
    now: DateTime<Utc>,
) -> Result<Job, Stale> {
    running_attempt(job, attempt)?;
    let mut new = with_error(job, attempt, error, now);
    match action {
        _ if job.cancel_requested => new.status = JobStatus::Cancelled,
        FailAction::Postpone { at, allowance } if job.outages < allowance => {
            new.status = JobStatus::Queued;
            new.run_at = at;
            new.outages = job.outages + 1;
        }
        FailAction::RetryAt(at) | FailAction::Postpone { at, .. } if job.has_attempts_left() => {
            new.status = JobStatus::Queued;
            new.run_at = at;
        }
        _ => new.status = JobStatus::Failed,
    }
    Ok(new)
}

/// A cancel request; see [`CancelMove`].
pub fn cancel(job: &Job, now: DateTime<Utc>) -> CancelMove {
    match job.status {
        JobStatus::Queued => {
            let mut new = job.clone();
            new.status = JobStatus::Cancelled;
            new.updated_at = now;
            CancelMove::Cancel(new)
        }
        JobStatus::Running if job.cancel_requested => CancelMove::AlreadyRequested,
        JobStatus::Running => {
            let mut new = job.clone();
            new.cancel_requested = true;
            new.updated_at = now;
            CancelMove::Request(new)
        }
        JobStatus::Waiting => {
            let mut new = job.clone();
            new.status = JobStatus::Cancelled;
            new.updated_at = now;
            for approval in &mut new.approvals {
                if approval.state == ApprovalState::Pending {
                    approval.state = ApprovalState::Cancelled;
                    approval.decided_at = Some(now);
                }
            }
            CancelMove::Cancel(new)
        }
        JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled => CancelMove::AlreadyEnded,
    }
}

/// The `runAt` of a waiting job with no deadline: never due. A waiting job's
/// `runAt` is when its first pending approval expires, so stores find the
/// approvals past their deadline as they find due jobs.
pub fn no_deadline() -> DateTime<Utc> {
    // 9999-12-31T23:59:59Z: representable in RFC 3339 and in PostgreSQL.
    DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Attempt `attempt` parks awaiting approval of `requests`: `waiting`, with
/// one pending [`Approval`] per request (a request for a call that already
/// has one, the same step and position, adds nothing: a task parked again
/// after a resume asks once); `runAt` the earliest pending deadline. The
/// parked attempt does not count against `maxAttempts`. `cancelled` when a
/// cancel was requested meanwhile.
pub fn park(
    job: &Job,
    attempt: u32,
    requests: Vec<ApprovalRequest>,
    now: DateTime<Utc>,
) -> Result<Job, Stale> {
    running_attempt(job, attempt)?;
    let mut new = job.clone();
    new.updated_at = now;
    if job.cancel_requested {
        new.status = JobStatus::Cancelled;
        return Ok(new);
    }
    for r in requests {
        let known = new
            .approvals
            .iter()
            .any(|a| a.step == r.step && a.call == r.call);
        if known {
            continue;
        }
        let number = u32::try_from(new.approvals.len() + 1).unwrap_or(u32::MAX);
        new.approvals.push(Approval {
            id: ApprovalId {
                job: job.id,
                number,
            },
            agent_id: job.worker_name.clone(),
            tool: r.tool,
            arguments: r.arguments,
            step: r.step,
            call: r.call,
            call_id: r.call_id,
            requested_at: now,
            deadline: r.deadline,
            state: ApprovalState::Pending,
            note: None,
            decided_at: None,
        });
    }
    new.status = JobStatus::Waiting;
    new.parked = job.parked.saturating_add(1);
    new.run_at = earliest_deadline(&new);
    Ok(new)
}

fn earliest_deadline(job: &Job) -> DateTime<Utc> {
    job.approvals
        .iter()
        .filter(|a| a.state == ApprovalState::Pending)
        .filter_map(|a| a.deadline)
        .min()
        .unwrap_or_else(no_deadline)
}

/// Why a decision changed nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Undecided {
    /// The job has no approval of that number.
    NotFound,
    /// It was decided before (approved, denied, expired, or cancelled with
    /// its task): the approval as it stands (boxed, so the error side of
    /// [`decide`] stays small).
    AlreadyDecided(Box<Approval>),
}

/// A person's decision on approval `number` of a waiting job: the approval
/// decided; once none of the job's approvals is pending, the job goes back
/// to `queued` (runnable at `now`) and its task resumes with the decisions.
/// Only a pending approval can be decided, so of two deciders racing on
/// the same record exactly one wins.
pub fn decide(
    job: &Job,
    number: u32,
    decision: &Decision,
    now: DateTime<Utc>,
) -> Result<Job, Undecided> {
    let approval = job.approval(number).ok_or(Undecided::NotFound)?;
    if approval.state != ApprovalState::Pending || job.status != JobStatus::Waiting {
        return Err(Undecided::AlreadyDecided(Box::new(approval.clone())));
    }
    let mut new = job.clone();
    let index = usize::try_from(number - 1).unwrap_or(usize::MAX);
    if let Some(a) = new.approvals.get_mut(index) {
        a.state = decision.state();
        a.note = match decision {
            Decision::Approve { note } => note.clone().map(bounded_note),
            Decision::Deny { reason } => Some(bounded_note(reason.clone())),
        };
        a.decided_at = Some(now);
    }
    new.updated_at = now;
    requeue_when_decided(&mut new, now);
    Ok(new)
}

/// The approvals of a waiting job whose deadline passed by `now`:
/// `expired`, with [`DEADLINE_REASON`]; the job queued again once none is
/// pending. `None` when none of its approvals is due.
pub fn expire(job: &Job, now: DateTime<Utc>) -> Option<Job> {
    if job.status != JobStatus::Waiting {
        return None;
    }
    let due =
        |a: &Approval| a.state == ApprovalState::Pending && a.deadline.is_some_and(|d| d <= now);
    if !job.approvals.iter().any(due) {
        return None;
    }
    let mut new = job.clone();
    for a in &mut new.approvals {
        if due(a) {
            a.state = ApprovalState::Expired;
            a.note = Some(DEADLINE_REASON.to_string());
            a.decided_at = Some(now);
        }
    }
    new.updated_at = now;
    requeue_when_decided(&mut new, now);
    Some(new)
}

/// A waiting job none of whose approvals is pending: `queued`, due now;
/// else its `runAt` follows the earliest pending deadline.
fn requeue_when_decided(job: &mut Job, now: DateTime<Utc>) {
    if job
        .approvals
        .iter()
        .any(|a| a.state == ApprovalState::Pending)
    {
        job.run_at = earliest_deadline(job);
    } else {
        job.status = JobStatus::Queued;
        job.run_at = now;
    }
}

fn bounded_note(mut note: String) -> String {
    if note.len() > MAX_NOTE_BYTES {
        let mut at = MAX_NOTE_BYTES;
        while !note.is_char_boundary(at) {
            at -= 1;
        }
        note.truncate(at);
    }
    note
}

/// The scheduler stopped attempt `attempt` after a cancel request: `cancelled`.
pub fn ack_cancel(job: &Job, attempt: u32, now: DateTime<Utc>) -> Result<Job, Stale> {
    running_attempt(job, attempt)?;
    let mut new = job.clone();
    new.status = JobStatus::Cancelled;
    new.updated_at = now;
    Ok(new)
}

/// A queued job that will never run (its worker is gone): `failed` with
/// `error`, without an attempt.
pub fn discard(job: &Job, error: String, now: DateTime<Utc>) -> Result<Job, Stale> {
    if job.status != JobStatus::Queued {
        return Err(Stale::of(job));
    }
    let mut new = with_error(job, job.attempt, error, now);
    new.status = JobStatus::Failed;
    Ok(new)
}

/// Crash recovery of a job found `running` when a scheduler starts: back to
/// `queued`, runnable at `now`, its attempt kept and the interruption
/// recorded; `cancelled` when a cancel had been requested. `None` for a job
/// that is not running.
pub fn recover(job: &Job, now: DateTime<Utc>) -> Option<Job> {
    if job.status != JobStatus::Running {
        return None;
    }
    let message = format!(
        "attempt {} interrupted: the process stopped while it was running",
        job.attempt
    );
    let mut new = with_error(job, job.attempt, message, now);
    if job.cancel_requested {
        new.status = JobStatus::Cancelled;
    } else {
        new.status = JobStatus::Queued;
        new.run_at = now;
    }
    Some(new)
}

/// A running job taken back from a node that stopped renewing its lease (it
/// died, froze or lost the store): like [`recover`], with `why` as the
/// interruption's words, except that the lost attempt counts against the
/// job's attempts — a job whose node dies on its last attempt ends
/// `failed`, so a job that kills whatever runs it cannot go round the
/// cluster for ever. `None` for a job that is not running.
pub fn rescue(job: &Job, why: &str, now: DateTime<Utc>) -> Option<Job> {
    let mut new = recover(job, now)?;
    let message = format!("attempt {} interrupted: {why}", job.attempt);
    if let Some(last) = new.errors.last_mut() {
        last.message.clone_from(&message);
    }
    new.error = Some(message);
    if new.status == JobStatus::Queued && !job.has_attempts_left() {
        new.status = JobStatus::Failed;
    }
    Some(new)
}

/// The job a schedule enqueues for its firing at `fire_at`: the schedule's
/// worker, args and options, its ctx with `source` = `schedule:<id>` (unless
/// set) and `scheduledFor` = the fire time.
pub fn scheduled_job(
    schedule: &Schedule,
    fire_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Job, JobError> {
    let mut ctx: JobCtx = schedule.ctx.clone();
    if ctx.source.is_none() {
        ctx.source = Some(format!("schedule:{}", schedule.id));
    }
    ctx.extra
        .insert("scheduledFor".into(), Value::String(fire_at.to_rfc3339()));
    Job::new(
        schedule.worker_name.clone(),
        schedule.args.clone(),
        ctx,
        &schedule.enqueue_options(fire_at),
        now,
    )
}

/// Claim order among ready jobs: higher priority first, then earlier
/// `runAt`, then older (smaller id).
pub fn claim_order(a: &Job, b: &Job) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then(a.run_at.cmp(&b.run_at))
        .then(a.id.cmp(&b.id))
}

/// When an ended job ended (its last change), for retention.
pub fn ended_at(job: &Job) -> Option<DateTime<Utc>> {
    job.status.is_terminal().then_some(job.updated_at)
}

fn running_attempt(job: &Job, attempt: u32) -> Result<(), Stale> {
    if job.status == JobStatus::Running && job.attempt == attempt {
        Ok(())
    } else {
        Err(Stale::of(job))
    }
}

/// The longest error message a job keeps per attempt, in bytes: an error
/// is stored with every attempt, and a worker or provider that answers
/// with megabytes of text must not make the job record megabytes too.
pub const MAX_ERROR_BYTES: usize = 4096;

/// `message` cut to [`MAX_ERROR_BYTES`] at a character boundary, saying
/// how much was left out.
pub fn bounded_error(mut message: String) -> String {
    if message.len() <= MAX_ERROR_BYTES {
        return message;
    }
    let mut at = MAX_ERROR_BYTES;
    while !message.is_char_boundary(at) {
        at -= 1;
    }
    let rest = message.len() - at;
    message.truncate(at);
    message.push_str(&format!("… ({rest} more bytes)"));
    message
}

/// The job after attempt `attempt` ended with `message`.
fn with_error(job: &Job, attempt: u32, message: String, now: DateTime<Utc>) -> Job {
    let message = bounded_error(message);
    let mut new = job.clone();
    new.errors.push(AttemptError {
        attempt,
        at: now,
        message: message.clone(),
    });
    new.error = Some(message);
    new.updated_at = now;
    new
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::EnqueueOptions;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap_or_default()
    }

    fn queued() -> Job {
        Job::new(
            "w",
            Value::Null,
            JobCtx::default(),
            &EnqueueOptions::default(),
            at(0),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_job_runs_through_its_attempts_and_ends_failed() {
        let job = queued();
        assert!(claim(&job, at(-1)).is_none(), "not due yet");
        let running = claim(&job, at(1)).unwrap_or_else(|| panic!("claimable"));
        assert_eq!((running.status, running.attempt), (JobStatus::Running, 1));
        let retry = fail(
            &running,
            1,
            "boom".into(),
            FailAction::RetryAt(at(10)),
            at(2),
        )
        .unwrap_or_else(|s| panic!("{s:?}"));
        assert_eq!((retry.status, retry.run_at), (JobStatus::Queued, at(10)));
        assert_eq!(retry.errors.len(), 1);
        let mut last = retry;
        for n in 2..=3 {
            let r = claim(&last, at(30)).unwrap_or_else(|| panic!("claimable"));
            last = fail(
                &r,
                n,
                format!("boom {n}"),
                FailAction::RetryAt(at(20)),
                at(11),
            )
            .unwrap_or_else(|s| panic!("{s:?}"));
        }
        assert_eq!(last.status, JobStatus::Failed, "no attempts left");
        assert_eq!(last.error.as_deref(), Some("boom 3"));
        assert_eq!(last.errors.len(), 3);
    }

    #[test]
    fn outcomes_are_fenced_by_the_attempt() {
        let running = claim(&queued(), at(1)).unwrap_or_else(|| panic!("claimable"));
        let stale = complete(&running, 2, Value::Null, at(2));
        assert_eq!(
            stale,
            Err(Stale {
                status: JobStatus::Running,
                attempt: 1
            })
        );
        let done =
            complete(&running, 1, Value::Bool(true), at(2)).unwrap_or_else(|s| panic!("{s:?}"));
        assert_eq!(done.status, JobStatus::Completed);
        assert!(
            complete(&done, 1, Value::Null, at(3)).is_err(),
            "completed once"
        );
        assert!(fail(&done, 1, "late".into(), FailAction::Final, at(3)).is_err());
        assert!(recover(&done, at(3)).is_none());
        assert_eq!(cancel(&done, at(3)), CancelMove::AlreadyEnded);
    }

    #[test]
    fn cancel_of_a_running_job_is_requested_then_acknowledged() {
        let running = claim(&queued(), at(1)).unwrap_or_else(|| panic!("claimable"));
        let CancelMove::Request(requested) = cancel(&running, at(2)) else {
            panic!("a running job's cancel is a request")
        };
        assert_eq!(cancel(&requested, at(3)), CancelMove::AlreadyRequested);
        let failed = fail(&requested, 1, "x".into(), FailAction::RetryAt(at(9)), at(4))
            .unwrap_or_else(|s| panic!("{s:?}"));
        assert_eq!(
            failed.status,
            JobStatus::Cancelled,
            "no retry after a cancel"
        );
        let acked = ack_cancel(&requested, 1, at(4)).unwrap_or_else(|s| panic!("{s:?}"));
        assert_eq!(acked.status, JobStatus::Cancelled);
        let recovered = recover(&requested, at(5)).unwrap_or_else(|| panic!("running"));
        assert_eq!(recovered.status, JobStatus::Cancelled);
    }

    #[test]
    fn recovery_requeues_with_the_attempt_kept() {
        let running = claim(&queued(), at(1)).unwrap_or_else(|| panic!("claimable"));
        let back = recover(&running, at(7)).unwrap_or_else(|| panic!("running"));
        assert_eq!(
            (back.status, back.attempt, back.run_at),
            (JobStatus::Queued, 1, at(7))
        );
        assert!(back.errors[0].message.contains("interrupted"));
        assert!(
            discard(&running, "gone".into(), at(8)).is_err(),
            "only queued jobs"
        );
        let gone = discard(&back, "gone".into(), at(8)).unwrap_or_else(|s| panic!("{s:?}"));
        assert_eq!((gone.status, gone.attempt), (JobStatus::Failed, 1));
    }

    #[test]
    fn a_rescue_counts_the_lost_attempt() {
        let mut job = queued();
        job.max_attempts = 2;
        let first = claim(&job, at(1)).unwrap_or_else(|| panic!("claimable"));
        let back = rescue(&first, "its node stopped", at(2)).unwrap_or_else(|| panic!("running"));
        assert_eq!((back.status, back.attempt), (JobStatus::Queued, 1));
        assert_eq!(
            back.error.as_deref(),
            Some("attempt 1 interrupted: its node stopped")
        );
        let last = claim(&back, at(3)).unwrap_or_else(|| panic!("claimable"));
        let gone = rescue(&last, "its node stopped", at(4)).unwrap_or_else(|| panic!("running"));
        assert_eq!((gone.status, gone.attempt), (JobStatus::Failed, 2));
        assert_eq!(gone.errors.len(), 2);
        assert!(rescue(&gone, "x", at(5)).is_none(), "only running jobs");
    }

    #[test]
    fn every_move_a_rule_makes_is_legal() {
        let job = queued();
        let running = claim(&job, at(1)).unwrap_or_else(|| panic!("claimable"));
        let moves = [
            (&job, running.clone()),
            (
                &running,
                complete(&running, 1, Value::Null, at(2)).unwrap_or_else(|s| panic!("{s:?}")),
            ),
            (
                &running,
                fail(&running, 1, "e".into(), FailAction::Final, at(2))
                    .unwrap_or_else(|s| panic!("{s:?}")),
            ),
            (
                &running,
                recover(&running, at(2)).unwrap_or_else(|| panic!("running")),
            ),
            (
                &running,
                ack_cancel(&running, 1, at(2)).unwrap_or_else(|s| panic!("{s:?}")),
            ),
            (
                &job,
                discard(&job, "e".into(), at(2)).unwrap_or_else(|s| panic!("{s:?}")),
            ),
        ];
        for (from, to) in moves {
            assert!(
                from.status.can_transition_to(to.status),
                "{} -> {}",
                from.status,
                to.status
            );
        }
    }

    #[test]
    fn an_outage_is_waited_out_without_spending_attempts_up_to_the_allowance() {
        let options = EnqueueOptions::default().max_attempts(1);
        let mut job = Job::new("w", Value::Null, JobCtx::default(), &options, at(0))
            .unwrap_or_else(|e| panic!("{e}"));
        for n in 1..=2u32 {
            let running = claim(&job, at(100)).unwrap_or_else(|| panic!("claimable"));
            let when = at(i64::from(n));
            let postpone = FailAction::Postpone {
                at: when,
                allowance: 2,
            };
            job = fail(&running, n, "circuit open".into(), postpone, when)
                .unwrap_or_else(|s| panic!("{s:?}"));
            assert_eq!(job.status, JobStatus::Queued, "outage {n} waited out");
            assert_eq!((job.attempt, job.outages, job.run_at), (n, n, when));
            assert!(job.has_attempts_left(), "its one attempt is still there");
        }
        let running = claim(&job, at(100)).unwrap_or_else(|| panic!("claimable"));
        let postpone = FailAction::Postpone {
            at: at(9),
            allowance: 2,
        };
        let spent = fail(&running, 3, "circuit open".into(), postpone, at(9))
            .unwrap_or_else(|s| panic!("{s:?}"));
        assert_eq!(
            spent.status,
            JobStatus::Failed,
            "past the allowance it counts"
        );
        assert_eq!((spent.attempt, spent.outages), (3, 2));
        assert_eq!(spent.errors.len(), 3);
    }

    fn ask(call: u32, deadline: Option<DateTime<Utc>>) -> ApprovalRequest {
        ApprovalRequest {
            tool: "send_message".into(),
            arguments: Value::Null,
            step: 0,
            call,
            call_id: format!("c{call}"),
            deadline,
        }
    }

    #[test]
    fn a_parked_job_waits_for_every_decision_then_runs_again() {
        let mut job = queued();
        job.max_attempts = 1;
        let running = claim(&job, at(1)).unwrap_or_else(|| panic!("claimable"));
        let parked = park(&running, 1, vec![ask(0, None), ask(1, Some(at(50)))], at(2))
            .unwrap_or_else(|s| panic!("{s:?}"));
        assert_eq!((parked.status, parked.run_at), (JobStatus::Waiting, at(50)));
        assert!(
            claim(&parked, at(100)).is_none(),
            "never claimed while waiting"
        );
        assert!(recover(&parked, at(3)).is_none(), "nor recovered");
        let again = park(&parked, 1, vec![ask(0, None)], at(3));
        assert!(again.is_err(), "parking is fenced by the running attempt");
        let approve = Decision::Approve { note: None };
        let one = decide(&parked, 1, &approve, at(4)).unwrap_or_else(|u| panic!("{u:?}"));
        assert_eq!(one.status, JobStatus::Waiting);
        assert!(matches!(
            decide(&one, 1, &approve, at(5)),
            Err(Undecided::AlreadyDecided(a)) if a.state == ApprovalState::Approved
        ));
        assert_eq!(decide(&one, 3, &approve, at(5)), Err(Undecided::NotFound));
        assert!(expire(&one, at(49)).is_none(), "not due yet");
        let both = expire(&one, at(50)).unwrap_or_else(|| panic!("due"));
        assert_eq!((both.status, both.run_at), (JobStatus::Queued, at(50)));
        assert_eq!(both.approvals[1].note.as_deref(), Some(DEADLINE_REASON));
        assert!(
            both.has_attempts_left(),
            "the parked attempt is not counted"
        );
        let resumed = claim(&both, at(51)).unwrap_or_else(|| panic!("claimable"));
        let reparked = park(&resumed, 2, vec![ask(0, None), ask(1, None)], at(52))
            .unwrap_or_else(|s| panic!("{s:?}"));
        assert_eq!(reparked.approvals.len(), 2, "a call asked about once");
        for (from, to) in [(&running, &parked), (&parked, &one), (&one, &both)] {
            assert!(
                from.status == to.status || from.status.can_transition_to(to.status),
                "{} -> {}",
                from.status,
                to.status
            );
        }
    }

    #[test]
    fn a_cancel_ends_a_waiting_job_and_its_approvals() {
        let running = claim(&queued(), at(1)).unwrap_or_else(|| panic!("claimable"));
        let parked =
            park(&running, 1, vec![ask(0, None)], at(2)).unwrap_or_else(|s| panic!("{s:?}"));
        let CancelMove::Cancel(cancelled) = cancel(&parked, at(3)) else {
            panic!("a waiting job is cancelled at once")
        };
        assert_eq!(cancelled.status, JobStatus::Cancelled);
        assert_eq!(cancelled.approvals[0].state, ApprovalState::Cancelled);
        let approve = Decision::Approve { note: None };
        assert!(matches!(
            decide(&cancelled, 1, &approve, at(4)),
            Err(Undecided::AlreadyDecided(a)) if a.state == ApprovalState::Cancelled
        ));
        let CancelMove::Request(requested) = cancel(&running, at(2)) else {
            panic!("a running job's cancel is a request")
        };
        let parked =
            park(&requested, 1, vec![ask(0, None)], at(3)).unwrap_or_else(|s| panic!("{s:?}"));
        assert_eq!(
            parked.status,
            JobStatus::Cancelled,
            "a requested cancel wins"
        );
    }

    #[test]
    fn a_huge_error_is_kept_bounded() {
        let running = claim(&queued(), at(1)).unwrap_or_else(|| panic!("claimable"));
        let huge = "é".repeat(3 * 1024 * 1024);
        let failed =
            fail(&running, 1, huge, FailAction::Final, at(2)).unwrap_or_else(|s| panic!("{s:?}"));
        let kept = failed.error.unwrap_or_default();
        assert!(kept.len() < MAX_ERROR_BYTES + 64, "{} bytes", kept.len());
        assert!(kept.ends_with("more bytes)"));
        assert_eq!(failed.errors[0].message, kept);
    }

    #[test]
    fn new_jobs_are_checked() {
        let mut job = queued();
        assert!(validate_new(&job).is_ok());
        job.attempt = 1;
        assert!(matches!(
            validate_new(&job),
            Err(JobError::Invalid {
                field: "attempt",
                ..
            })
        ));
    }
}
