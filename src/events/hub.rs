//! The event hub: per job, a bounded log of its events and a wake-up for
//! those following it.
//!
//! A job's log is created by its first event (or its first follower) and
//! kept while the job is active; once the job's terminal event is in, the
//! log is kept for [`HubConfig::keep_ended_for`], and only the last
//! [`HubConfig::keep_ended`] ended jobs' logs are kept at all. A log holds
//! at most [`HubConfig::per_job`] events: past that the oldest go (a
//! follower that far behind skips them, and reads on from the oldest kept).
//!
//! Followers read the log with a cursor (the next `seq` they want), so the
//! history and the live events are the same read: nothing is lost between
//! the two and nothing is read twice. An emitter wakes followers only when
//! the log has some.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;

use super::bell::{Batch, Bell};
use super::event::{seq, TaskEvent, TaskEventKind};
use crate::job::{ApprovalId, ApprovalState, Job, JobId};

/// How much the hub keeps.
#[derive(Debug, Clone)]
pub(crate) struct HubConfig {
    /// Events kept per job (the oldest go first).
    pub(crate) per_job: usize,
    /// Ended jobs whose logs are kept (the earliest ended go first). An
    /// agent task's log holds a few KiB, and a late follower of a job past
    /// the cap gets its history rebuilt from the record, so the cap is set
    /// by memory, not by who might still follow.
    pub(crate) keep_ended: usize,
    /// How long an ended job's log is kept.
    pub(crate) keep_ended_for: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            per_job: 1024,
            keep_ended: 1024,
            keep_ended_for: Duration::from_secs(600),
        }
    }
}

/// Set (to anything) when the runtime starts, turns emitting off: for
/// `examples/bench_events.rs` to measure what emitting costs. Not a
/// setting: followers of a runtime started so get nothing.
const NO_EVENTS: &str = "TROUPE_BENCH_NO_EVENTS";

/// Every job's events in this process. Cheap to share (`Arc`).
#[derive(Debug)]
pub(crate) struct EventHub {
    config: HubConfig,
    jobs: Mutex<HashMap<JobId, Arc<JobLog>>>,
    /// Ended jobs, earliest first, with when they ended.
    ended: Mutex<VecDeque<(Instant, JobId)>>,
    /// Set when the runtime stops: followers end.
    closed: AtomicBool,
    /// Emitting is off (the benchmark's switch, [`NO_EVENTS`]).
    silent: bool,
    /// Wakes followers once per tick, not at each event.
    batch: Batch,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub {
            config: HubConfig::default(),
            jobs: Mutex::default(),
            ended: Mutex::default(),
            closed: AtomicBool::new(false),
            silent: std::env::var_os(NO_EVENTS).is_some(),
            batch: Batch::default(),
        }
    }
}

/// One event as the log holds it, with its SSE frame once a follower
/// asked for it (written once, shared by every follower).
#[derive(Debug)]
pub(crate) struct Logged {
    pub(crate) event: TaskEvent,
    frame: OnceLock<Arc<str>>,
}

impl Logged {
    /// The event's SSE frame.
    pub(crate) fn frame(&self) -> Arc<str> {
        self.frame
            .get_or_init(|| Arc::from(super::sse::frame(&self.event)))
            .clone()
    }
}

/// One job's log.
#[derive(Debug, Default)]
struct JobLog {
    state: Mutex<LogState>,
    /// What followers wait on.
    bell: Arc<Bell>,
    /// Live subscriptions: emitters wake followers only when there are any.
    followers: AtomicUsize,
}

#[derive(Debug)]
struct LogState {
    /// By `seq`, growing.
    events: VecDeque<Arc<Logged>>,
    /// The last `seq` given (0: none yet).
    last: u64,
    ended: bool,
}

/// Room for an agent task's events (an attempt, two model calls with two
/// tool calls and results, the text, the end) made once, not grown from 4
/// to 8 to 16 as they come.
const EVENTS_ROOM: usize = 16;

impl Default for LogState {
    fn default() -> Self {
        LogState {
            events: VecDeque::with_capacity(EVENTS_ROOM),
            last: 0,
            ended: false,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks, so a poisoned one is whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The `seq` of the `approvalDecided` event of approval `id` of `job` (the
/// record with the decision in): its rank among the job's decided
/// approvals by when they were decided, within the job's attempt (the one
/// that asked). The same in any process that emits it.
pub(crate) fn decision_seq(job: &Job, id: &ApprovalId) -> u64 {
    let mut decided: Vec<_> = job
        .approvals
        .iter()
        .filter(|a| a.state != ApprovalState::Pending)
        .map(|a| (a.decided_at, a.id.to_string()))
        .collect();
    decided.sort();
    let id = id.to_string();
    let rank = decided.iter().position(|(_, a)| *a == id).unwrap_or(0) + 1;
    seq::decision(job.attempt, u32::try_from(rank).unwrap_or(u32::MAX))
}

impl JobLog {
    /// Appends one event, numbered `at` if given (else after the last; an
    /// `attemptStarted` at its attempt's first number), never at or below
    /// the last one's; whether it ended the job. Events after the job's
    /// end (a late attempt's) are dropped.
    fn push(&self, job: JobId, at: Option<u64>, kind: TaskEventKind, cap: usize) -> bool {
        let terminal = kind.is_terminal();
        {
            let mut state = lock(&self.state);
            if state.ended {
                return false;
            }
            let next = state.last.saturating_add(1);
            let wanted = match (&kind, at) {
                (_, Some(at)) => at,
                (TaskEventKind::AttemptStarted { attempt }, None) => {
                    seq::attempt_base(*attempt) | 1
                }
                _ => next,
            };
            let event = TaskEvent {
                seq: wanted.max(next),
                at: Utc::now(),
                job_id: job,
                kind,
            };
            state.last = event.seq;
            state.events.push_back(Arc::new(Logged {
                event,
                frame: OnceLock::new(),
            }));
            if state.events.len() > cap.max(1) {
                state.events.pop_front();
            }
            state.ended = terminal;
        }
        terminal
    }
}

impl EventHub {
    /// A hub keeping what `config` says.
    #[cfg(test)]
    pub(crate) fn new(config: HubConfig) -> Self {
        EventHub {
            config,
            ..EventHub::default()
        }
    }

    /// The log of `job`, made if there is none.
    fn log(&self, job: JobId) -> Arc<JobLog> {
        lock(&self.jobs).entry(job).or_default().clone()
    }

    /// What the task loop emits through: the job's log, found once.
    pub(crate) fn emitter(self: &Arc<Self>, job: JobId) -> Emitter {
        Emitter {
            hub: self.clone(),
            log: self.log(job),
            job,
        }
    }

    /// Emits one event of `job`, numbered after the last.
    pub(crate) fn emit(&self, job: JobId, kind: TaskEventKind) {
        self.emit_at(job, None, kind);
    }

    /// Emits one event of `job`, numbered `at` if that is above the last
    /// (see `seq`).
    pub(crate) fn emit_at(&self, job: JobId, at: Option<u64>, kind: TaskEventKind) {
        if self.silent {
            return;
        }
        self.append(&self.log(job), job, at, kind);
    }

    /// Appends an event to `log` (see [`JobLog::push`]), has its
    /// followers, if any, woken at the next tick, and notes the job's end.
    fn append(&self, log: &JobLog, job: JobId, at: Option<u64>, kind: TaskEventKind) {
        let ended = log.push(job, at, kind, self.config.per_job);
        if log.followers.load(Ordering::SeqCst) > 0 {
            self.batch.ring(&log.bell);
        }
        if ended {
            self.ended(job);
        }
    }

    /// Emits the terminal event `kind` of ended job `job`, numbered after
    /// every other event of its last attempt.
    pub(crate) fn emit_end(&self, job: &Job, kind: TaskEventKind) {
        self.emit_at(job.id, Some(seq::end(job.attempt)), kind);
    }

    /// Whether the hub holds anything of `job`.
    pub(crate) fn holds(&self, job: JobId) -> bool {
        lock(&self.jobs).contains_key(&job)
    }

    /// Follows `job` from the first event numbered above `after` (0: from
    /// the start).
    pub(crate) fn subscribe(self: &Arc<Self>, job: JobId, after: u64) -> Subscription {
        let log = self.log(job);
        log.followers.fetch_add(1, Ordering::SeqCst);
        Subscription {
            hub: self.clone(),
            log,
            job,
            next: after.saturating_add(1),
        }
    }

    /// Notes that `job` ended, and lets go of the logs ended too long ago
    /// or beyond the count kept.
    fn ended(&self, job: JobId) {
        let now = Instant::now();
        let mut gone = Vec::new();
        {
            let mut ended = lock(&self.ended);
            ended.push_back((now, job));
            while let Some(&(at, id)) = ended.front() {
                let old = now.duration_since(at) > self.config.keep_ended_for;
                if ended.len() <= self.config.keep_ended && !old {
                    break;
                }
                ended.pop_front();
                gone.push(id);
            }
        }
        if !gone.is_empty() {
            let mut jobs = lock(&self.jobs);
            for id in gone {
                jobs.remove(&id);
            }
        }
    }

    /// Ends every subscription (the runtime stops): followers get what the
    /// logs hold, then their streams end.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.batch.stop();
        let logs: Vec<_> = lock(&self.jobs).values().cloned().collect();
        for log in logs {
            log.bell.ring_now();
        }
    }

    /// How many jobs' logs are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.jobs).len()
    }

    /// Whether no job's log is held.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Emits the events of one job into its log, found once.
#[derive(Debug, Clone)]
pub(crate) struct Emitter {
    hub: Arc<EventHub>,
    log: Arc<JobLog>,
    job: JobId,
}

impl Emitter {
    /// Emits one event, numbered after the last.
    pub(crate) fn emit(&self, kind: TaskEventKind) {
        if self.hub.silent {
            return;
        }
        self.hub.append(&self.log, self.job, None, kind);
    }
}

/// A follower of one job's events: the history from its cursor, then the
/// live events, until the terminal one.
#[derive(Debug)]
pub(crate) struct Subscription {
    hub: Arc<EventHub>,
    log: Arc<JobLog>,
    job: JobId,
    /// The lowest `seq` wanted next.
    next: u64,
}

/// What a look at the log found.
enum Look {
    Event(Arc<Logged>),
    Ended,
    Nothing,
}

impl Subscription {
    /// Whether the job's terminal event is in its log.
    pub(crate) fn job_ended(&self) -> bool {
        lock(&self.log.state).ended
    }

    /// Whether this process emitted anything of the job (so it exists).
    pub(crate) fn has_events(&self) -> bool {
        lock(&self.log.state).last > 0
    }

    fn look(&mut self) -> Look {
        let state = lock(&self.log.state);
        // The first at or above the cursor; those before the oldest kept
        // are gone, so a follower that far behind reads on from it.
        let index = state.events.partition_point(|e| e.event.seq < self.next);
        match state.events.get(index) {
            Some(logged) => {
                self.next = logged.event.seq.saturating_add(1);
                Look::Event(logged.clone())
            }
            None if state.ended => Look::Ended,
            None => Look::Nothing,
        }
    }

    /// The next event without waiting, if the log has one.
    #[cfg(test)]
    pub(crate) fn try_next(&mut self) -> Option<Arc<Logged>> {
        match self.look() {
            Look::Event(e) => Some(e),
            _ => None,
        }
    }

    /// The next event, waiting for it; `None` once the terminal event has
    /// been read, or the hub closed. Cancel-safe: a dropped call reads
    /// nothing.
    pub(crate) async fn next(&mut self) -> Option<Arc<Logged>> {
        loop {
            let log = self.log.clone();
            let woken = log.bell.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match self.look() {
                Look::Event(e) => return Some(e),
                Look::Ended => return None,
                Look::Nothing if self.hub.closed.load(Ordering::SeqCst) => return None,
                Look::Nothing => woken.await,
            }
        }
    }

    /// Appends the terminal event `kind` of ended job `job` to its log (an
    /// end learned from the record: the job ended on another node, or
    /// before this process held its events).
    pub(crate) fn emit_end(&self, job: &Job, kind: TaskEventKind) {
        let at = Some(seq::end(job.attempt));
        self.hub.append(&self.log, self.job, at, kind);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.log.followers.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        // The last follower of a log nothing was emitted to (a job that
        // never ran here) lets it go, so following costs nothing after.
        let empty = {
            let state = lock(&self.log.state);
            state.events.is_empty() && !state.ended
        };
        if empty {
            let mut jobs = lock(&self.hub.jobs);
            if jobs
                .get(&self.job)
                .is_some_and(|l| Arc::ptr_eq(l, &self.log))
                && self.log.followers.load(Ordering::SeqCst) == 0
            {
                jobs.remove(&self.job);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(n: u32) -> TaskEventKind {
        TaskEventKind::AttemptStarted { attempt: n }
    }

    fn text(t: &str) -> TaskEventKind {
        TaskEventKind::Text {
            step: 0,
            text: t.into(),
        }
    }

    /// `seq` of event `n` of attempt `a`.
    fn id(a: u32, n: u64) -> u64 {
        seq::attempt_base(a) | n
    }

    #[tokio::test]
    async fn a_follower_reads_history_then_live_events_then_ends() {
        let hub = Arc::new(EventHub::default());
        let job = uuid::Uuid::now_v7();
        hub.emit(job, attempt(1));
        let mut sub = hub.subscribe(job, 0);
        assert_eq!(sub.next().await.unwrap().event.seq, id(1, 1));
        let emitter = hub.emitter(job);
        let follower = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(e) = sub.next().await {
                seen.push(e.event.seq);
            }
            seen
        });
        emitter.emit(text("hi"));
        hub.emit_at(job, Some(seq::end(1)), TaskEventKind::Completed);
        emitter.emit(attempt(9)); // after the end: dropped
        assert_eq!(follower.await.unwrap(), vec![id(1, 2), seq::end(1)]);
        // Resuming after the second reads the rest, once.
        let mut again = hub.subscribe(job, id(1, 2));
        let end = again.next().await.unwrap();
        assert_eq!(end.event.kind, TaskEventKind::Completed);
        assert!(end.frame().starts_with(&format!("id: {}\n", seq::end(1))));
        assert!(again.next().await.is_none());
    }

    #[test]
    fn ids_of_a_later_attempt_in_another_process_sort_after_and_resume_exactly() {
        let job = uuid::Uuid::now_v7();
        // The first process: attempt 3 ran 57 events, then it died.
        let before = Arc::new(EventHub::default());
        before.emit(job, attempt(3));
        for i in 2..=57 {
            before.emit(job, text(&i.to_string()));
        }
        let mut sub = before.subscribe(job, 0);
        let mut last = 0;
        while let Some(e) = sub.try_next() {
            assert!(e.event.seq > last);
            last = e.event.seq;
        }
        assert_eq!(last, id(3, 57));
        // The next process runs attempt 4, from 1 again in the low bits.
        let after = Arc::new(EventHub::default());
        let mut resumed = after.subscribe(job, last);
        assert!(resumed.try_next().is_none());
        after.emit(job, attempt(4));
        after.emit(job, text("a"));
        let got: Vec<_> = std::iter::from_fn(|| resumed.try_next())
            .map(|e| e.event.seq)
            .collect();
        assert_eq!(got, vec![id(4, 1), id(4, 2)]);
        assert_eq!(seq::attempt_of(got[0]), 4);
    }

    #[test]
    fn decisions_and_ends_made_from_the_record_sort_after_the_attempt_anywhere() {
        let job = uuid::Uuid::now_v7();
        let decided = |approval_id: &str| TaskEventKind::ApprovalDecided {
            approval_id: approval_id.into(),
            approved: true,
            note: None,
        };
        // The process that ran attempt 2 parked it after many events.
        let before = Arc::new(EventHub::default());
        before.emit(job, attempt(2));
        for _ in 0..100 {
            before.emit(job, text("x"));
        }
        before.emit_at(job, Some(seq::decision(2, 1)), decided("a"));
        // Another process decides the second approval, then the job ends
        // (cancelled while waiting): both sort after what the first had.
        let after = Arc::new(EventHub::default());
        let mut sub = after.subscribe(job, seq::decision(2, 1));
        after.emit_at(job, Some(seq::decision(2, 2)), decided("b"));
        after.emit_at(job, Some(seq::end(2)), TaskEventKind::Cancelled);
        let got: Vec<_> = std::iter::from_fn(|| sub.try_next())
            .map(|e| e.event.seq)
            .collect();
        assert_eq!(got, vec![seq::decision(2, 2), seq::end(2)]);
        assert!(seq::decision(2, 1) > id(2, 101));
        assert!(seq::end(2) < seq::attempt_base(3));
        // Numbers never go backwards within a log: a decision emitted
        // before an event numbered after the last is numbered after it.
        let third = Arc::new(EventHub::default());
        third.emit_at(job, Some(seq::decision(2, 2)), decided("b"));
        third.emit_at(job, Some(seq::decision(2, 1)), decided("a"));
        let mut sub = third.subscribe(job, 0);
        assert_eq!(sub.try_next().unwrap().event.seq, seq::decision(2, 2));
        assert_eq!(sub.try_next().unwrap().event.seq, seq::decision(2, 2) + 1);
    }

    #[test]
    fn ended_logs_beyond_the_count_kept_go() {
        let hub = Arc::new(EventHub::new(HubConfig {
            per_job: 2,
            keep_ended: 2,
            keep_ended_for: Duration::from_secs(600),
        }));
        let jobs: Vec<_> = (0..3).map(|_| uuid::Uuid::now_v7()).collect();
        for &job in &jobs {
            for n in 1..=5 {
                hub.emit(job, attempt(n));
            }
            hub.emit(job, TaskEventKind::Completed);
        }
        assert_eq!(hub.len(), 2);
        assert!(!hub.holds(jobs[0]));
        // Only the last `per_job` events are kept.
        let mut sub = hub.subscribe(jobs[2], 0);
        assert_eq!(sub.try_next().unwrap().event.seq, id(5, 1));
        assert_eq!(sub.try_next().unwrap().event.seq, id(5, 2));
        assert!(sub.try_next().is_none());
    }

    #[test]
    fn a_follower_of_a_job_with_no_events_leaves_nothing_behind() {
        let hub = Arc::new(EventHub::default());
        let sub = hub.subscribe(uuid::Uuid::now_v7(), 0);
        assert_eq!(hub.len(), 1);
        drop(sub);
        assert!(hub.is_empty());
    }

    #[tokio::test]
    async fn closing_the_hub_ends_its_followers() {
        let hub = Arc::new(EventHub::default());
        let job = uuid::Uuid::now_v7();
        hub.emit(job, attempt(1));
        let mut sub = hub.subscribe(job, id(1, 1));
        let waiting = tokio::spawn(async move { sub.next().await });
        tokio::task::yield_now().await;
        hub.close();
        assert!(waiting.await.unwrap().is_none());
    }
}
