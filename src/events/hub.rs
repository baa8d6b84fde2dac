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
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::Notify;

use super::event::{TaskEvent, TaskEventKind};
use crate::job::JobId;

/// How much the hub keeps.
#[derive(Debug, Clone)]
pub(crate) struct HubConfig {
    /// Events kept per job (the oldest go first).
    pub(crate) per_job: usize,
    /// Ended jobs whose logs are kept (the earliest ended go first).
    pub(crate) keep_ended: usize,
    /// How long an ended job's log is kept.
    pub(crate) keep_ended_for: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            per_job: 1024,
            keep_ended: 4096,
            keep_ended_for: Duration::from_secs(600),
        }
    }
}

/// Every job's events in this process. Cheap to share (`Arc`).
#[derive(Debug, Default)]
pub(crate) struct EventHub {
    config: HubConfig,
    jobs: Mutex<HashMap<JobId, Arc<JobLog>>>,
    /// Ended jobs, earliest first, with when they ended.
    ended: Mutex<VecDeque<(Instant, JobId)>>,
    /// Set when the runtime stops: followers end.
    closed: AtomicBool,
}

/// One job's log.
#[derive(Debug, Default)]
struct JobLog {
    state: Mutex<LogState>,
    wake: Notify,
    /// Live subscriptions: emitters wake followers only when there are any.
    followers: AtomicUsize,
}

#[derive(Debug)]
struct LogState {
    events: VecDeque<Arc<TaskEvent>>,
    next_seq: u64,
    ended: bool,
}

impl Default for LogState {
    fn default() -> Self {
        LogState {
            events: VecDeque::new(),
            next_seq: 1,
            ended: false,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks, so a poisoned one is whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl JobLog {
    /// Appends one event; whether it ended the job. Events after the job's
    /// end (a late attempt's) are dropped.
    fn push(&self, job: JobId, kind: TaskEventKind, cap: usize) -> bool {
        let terminal = kind.is_terminal();
        {
            let mut state = lock(&self.state);
            if state.ended {
                return false;
            }
            let event = TaskEvent {
                seq: state.next_seq,
                at: Utc::now(),
                job_id: job,
                kind,
            };
            state.next_seq += 1;
            state.events.push_back(Arc::new(event));
            if state.events.len() > cap.max(1) {
                state.events.pop_front();
            }
            state.ended = terminal;
        }
        if self.followers.load(Ordering::SeqCst) > 0 {
            self.wake.notify_waiters();
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

    /// Emits one event of `job`.
    pub(crate) fn emit(&self, job: JobId, kind: TaskEventKind) {
        let log = self.log(job);
        if log.push(job, kind, self.config.per_job) {
            self.ended(job);
        }
    }

    /// Whether the hub holds anything of `job`.
    pub(crate) fn holds(&self, job: JobId) -> bool {
        lock(&self.jobs).contains_key(&job)
    }

    /// Follows `job` from the event after `after` (0: from the start).
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
        let logs: Vec<_> = lock(&self.jobs).values().cloned().collect();
        for log in logs {
            log.wake.notify_waiters();
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
    /// Emits one event.
    pub(crate) fn emit(&self, kind: TaskEventKind) {
        if self.log.push(self.job, kind, self.hub.config.per_job) {
            self.hub.ended(self.job);
        }
    }
}

/// A follower of one job's events: the history from its cursor, then the
/// live events, until the terminal one.
#[derive(Debug)]
pub(crate) struct Subscription {
    hub: Arc<EventHub>,
    log: Arc<JobLog>,
    job: JobId,
    /// The `seq` wanted next.
    next: u64,
}

/// What a look at the log found.
enum Look {
    Event(Arc<TaskEvent>),
    Ended,
    Nothing,
}

impl Subscription {
    /// Whether the job's terminal event is in its log.
    pub(crate) fn job_ended(&self) -> bool {
        lock(&self.log.state).ended
    }

    fn look(&mut self) -> Look {
        let state = lock(&self.log.state);
        let Some(first) = state.events.front() else {
            return if state.ended {
                Look::Ended
            } else {
                Look::Nothing
            };
        };
        // Those before the oldest kept are gone: read on from it.
        let index = self.next.saturating_sub(first.seq);
        match usize::try_from(index)
            .ok()
            .and_then(|i| state.events.get(i))
        {
            Some(event) => {
                self.next = event.seq + 1;
                Look::Event(event.clone())
            }
            None if state.ended => Look::Ended,
            None => Look::Nothing,
        }
    }

    /// The next event without waiting, if the log has one.
    #[cfg(test)]
    pub(crate) fn try_next(&mut self) -> Option<Arc<TaskEvent>> {
        match self.look() {
            Look::Event(e) => Some(e),
            _ => None,
        }
    }

    /// The next event, waiting for it; `None` once the terminal event has
    /// been read, or the hub closed. Cancel-safe: a dropped call reads
    /// nothing.
    pub(crate) async fn next(&mut self) -> Option<Arc<TaskEvent>> {
        loop {
            let log = self.log.clone();
            let woken = log.wake.notified();
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

    /// Appends `kind` to the job's log (a terminal event learned elsewhere:
    /// the job ended on another node).
    pub(crate) fn emit(&self, kind: TaskEventKind) {
        if self.log.push(self.job, kind, self.hub.config.per_job) {
            self.hub.ended(self.job);
        }
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

    #[tokio::test]
    async fn a_follower_reads_history_then_live_events_then_ends() {
        let hub = Arc::new(EventHub::default());
        let job = uuid::Uuid::now_v7();
        hub.emit(job, attempt(1));
        let mut sub = hub.subscribe(job, 0);
        assert_eq!(sub.next().await.unwrap().seq, 1);
        let emitter = hub.emitter(job);
        let follower = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(e) = sub.next().await {
                seen.push(e.seq);
            }
            seen
        });
        emitter.emit(TaskEventKind::Text {
            step: 0,
            text: "hi".into(),
        });
        emitter.emit(TaskEventKind::Completed);
        emitter.emit(attempt(9)); // after the end: dropped
        assert_eq!(follower.await.unwrap(), vec![2, 3]);
        // Resuming after seq 2 reads the rest, once.
        let mut again = hub.subscribe(job, 2);
        assert_eq!(again.next().await.unwrap().kind, TaskEventKind::Completed);
        assert!(again.next().await.is_none());
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
        assert_eq!(sub.try_next().unwrap().seq, 5);
        assert_eq!(sub.try_next().unwrap().seq, 6);
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
        let mut sub = hub.subscribe(job, 1);
        let waiting = tokio::spawn(async move { sub.next().await });
        tokio::task::yield_now().await;
        hub.close();
        assert!(waiting.await.unwrap().is_none());
    }
}
