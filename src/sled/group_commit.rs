//! Group commit: one committer thread runs a flush for every writer that was
//! waiting when it started, so concurrent writers share a flush. A watchdog
//! thread fails the store when a flush does not end in time, so no writer
//! waits for ever.
//!
//! # When a flush fails
//!
//! A flush that returns an error, or has not returned after the flush
//! timeout, marks the store **failed**: its writers and every writer waiting
//! are answered with the reason, every later [`GroupCommit::wait`] is refused
//! at once, and the committer stops. Nothing clears it: sled keeps an I/O
//! error for the life of the database (its later flushes fail the same way),
//! and a flush stuck inside sled never returns (sled 0.34.7 leaves its log
//! waiting for ever when a write to its blob files fails), so the only way
//! back is to open the store again, in a new process. Dropping the store then
//! waits for the committer only while it can still end: one stuck in a flush
//! is left behind with its handle on the database, which keeps sled from
//! flushing (and hanging) again when the store goes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::channel::oneshot;

use super::power_sync::PowerSync;

/// Figures about the commits done so far (for benchmarks and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// Flushes (each followed by an fdatasync with `Durability::PowerLoss`).
    pub flushes: u64,
    /// Writers acknowledged; `writers / flushes` is the group size.
    pub writers: u64,
    /// Times the committer thread woke from a wait (for writers, the window
    /// or an idle tick). Each is a context switch on a core the tasks
    /// share: under load one or two per flush (a batch's first writer, the
    /// window's end), as writers joining a batch that is already waiting
    /// do not wake it; idle ticks (about two a second) count too.
    pub wakeups: u64,
}

type Waiter = oneshot::Sender<Result<(), String>>;

/// Writes the store buffers (usage records) before each flush, on the
/// committer thread; says whether it wrote anything. Also run about every
/// [`IDLE_TICK`] when nobody waits, so buffered writes reach sled (and
/// then the disk) without a durable write to carry them.
pub(crate) type BeforeFlush = Box<dyn Fn() -> bool + Send>;

/// How often an idle committer runs [`BeforeFlush`].
const IDLE_TICK: Duration = Duration::from_millis(500);

/// What the committer needs: the database, how and when to flush it.
pub(crate) struct CommitSettings {
    /// The database to flush.
    pub(crate) db: sled::Db,
    /// What to `fdatasync` after each flush when power-loss durability is
    /// asked for.
    pub(crate) power_sync: Option<PowerSync>,
    /// Under concurrent load, at most one flush per window.
    pub(crate) window: Duration,
    /// A flush still running after this long fails the store.
    pub(crate) flush_timeout: Duration,
    /// Run before each flush (see [`BeforeFlush`]).
    pub(crate) before_flush: BeforeFlush,
}

#[derive(Default)]
struct State {
    /// Writers waiting for the next flush.
    waiting: Vec<Waiter>,
    /// Writers of the flush under way (the watchdog answers them if it hangs).
    flushing: Vec<Waiter>,
    /// When the flush under way started; `None` between flushes.
    flush_started: Option<Instant>,
    /// The store is being dropped.
    stop: bool,
    /// The committer thread has ended.
    ended: bool,
    stats: CommitStats,
    /// Durable writes per operation (a handful of names, so a list).
    by_operation: Vec<(&'static str, u64)>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the committer: a writer arrived, or the store is dropped.
    wake: Condvar,
    /// Wakes the watchdog and a dropping store: the committer ended, or the
    /// store failed.
    watch: Condvar,
    /// Why the store failed. Set once (the first reason stays), never
    /// cleared; read without the lock by the writers' fast check.
    failed: OnceLock<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned lock still holds
        // consistent data (lists of senders, flags, counters).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failure(&self) -> Option<&str> {
        self.failed.get().map(String::as_str)
    }

    /// Marks the store failed and answers every writer waiting, or in the
    /// flush under way, with the reason. Called with the state locked, so no
    /// writer can register after the answers and wait for ever.
    fn fail(&self, state: &mut State, reason: String) {
        if self.failed.set(reason).is_ok() {
            tracing::error!(
                reason = self.failure().unwrap_or_default(),
                "the store failed: it refuses writes until it is opened again (restart the process)"
            );
        }
        let reason = self.failure().unwrap_or_default().to_owned();
        for waiter in state.waiting.drain(..).chain(state.flushing.drain(..)) {
            // A writer that stopped waiting (future dropped) needs no answer.
            let _ = waiter.send(Err(reason.clone()));
        }
        self.wake.notify_one();
        self.watch.notify_all();
    }
}

/// The committer and its watchdog. Dropping it flushes the last waiters and
/// joins the threads, which releases the committer's handle on the database
/// (so the directory can be reopened in the same process), unless the
/// committer is stuck in a flush the watchdog gave up on.
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    committer: Option<JoinHandle<()>>,
    watchdog: Option<JoinHandle<()>>,
    /// Set when the drop left a stuck committer behind (see [`CommitFate`]).
    left_behind: Arc<AtomicBool>,
}

impl GroupCommit {
    /// Starts the committer and the watchdog threads.
    pub(crate) fn start(settings: CommitSettings) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            watch: Condvar::new(),
            failed: OnceLock::new(),
        });
        let flush_timeout = settings.flush_timeout;
        let committer = Committer {
            shared: Arc::clone(&shared),
            db: settings.db,
            power_sync: settings.power_sync.map(std::cell::RefCell::new),
            window: settings.window,
            before_flush: settings.before_flush,
            last_start: None,
        };
        let committer = std::thread::Builder::new()
            .name("troupe-store-commit".into())
            .spawn(move || committer.run())?;
        let watched = Arc::clone(&shared);
        let watchdog = std::thread::Builder::new()
            .name("troupe-store-watch".into())
            .spawn(move || watch(&watched, flush_timeout));
        let mut commit = GroupCommit {
            shared,
            committer: Some(committer),
            watchdog: None,
            left_behind: Arc::new(AtomicBool::new(false)),
        };
        // On error, dropping `commit` stops the committer.
        commit.watchdog = Some(watchdog?);
        Ok(commit)
    }

    /// Waits until every write this thread made before the call is durable.
    /// Fails with the reason once the store has failed (at once for a
    /// writer that comes after).
    /// `operation` names the write, for [`GroupCommit::writes_by_operation`].
    pub(crate) async fn wait(&self, operation: &'static str) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        let wake;
        {
            let mut state = self.shared.lock();
            if let Some(reason) = self.shared.failure() {
                return Err(reason.to_owned());
            }
            if state.stop {
                return Err("the store is shutting down".into());
            }
            state.waiting.push(tx);
            // Only the batch's first writer wakes the committer: it is
            // either waiting for writers (and this is the one it needs) or
            // busy flushing. Later writers join a batch that the committer
            // already knows of and holds for the window, and waking it for
            // each of them would only put it back to sleep: a context switch
            // per write on the cores the tasks run on.
            wake = state.waiting.len() == 1;
            match state
                .by_operation
                .iter_mut()
                .find(|(op, _)| *op == operation)
            {
                Some((_, n)) => *n += 1,
                None => state.by_operation.push((operation, 1)),
            }
        }
        if wake {
            self.shared.wake.notify_one();
        }
        match rx.await {
            Ok(result) => result,
            Err(_) => Err("the committer stopped before flushing".into()),
        }
    }

    /// Why the store failed, if it did. Lock-free: every write asks first.
    pub(crate) fn failure(&self) -> Option<&str> {
        self.shared.failure()
    }

    /// Marks the store failed (the first reason stays) and answers every
    /// waiting writer with the reason.
    pub(crate) fn fail(&self, reason: String) {
        let mut state = self.shared.lock();
        self.shared.fail(&mut state, reason);
    }

    /// Commit figures so far.
    pub(crate) fn stats(&self) -> CommitStats {
        self.shared.lock().stats
    }

    /// Durable writes so far, per operation, in the order first seen.
    pub(crate) fn writes_by_operation(&self) -> Vec<(&'static str, u64)> {
        self.shared.lock().by_operation.clone()
    }

    /// What became of the committer, readable after it is dropped.
    pub(crate) fn fate(&self) -> CommitFate {
        CommitFate {
            shared: Arc::clone(&self.shared),
            left_behind: Arc::clone(&self.left_behind),
        }
    }
}

/// What became of a dropped [`GroupCommit`]: whether the store failed, and
/// whether the committer was left behind in a stuck flush.
pub(crate) struct CommitFate {
    shared: Arc<Shared>,
    left_behind: Arc<AtomicBool>,
}

impl CommitFate {
    /// The store failed (see the module documentation).
    pub(crate) fn failed(&self) -> bool {
        self.shared.failure().is_some()
    }

    /// The committer was left behind, stuck in a flush with its handle on
    /// the database: sled then keeps the directory locked until the process
    /// ends, so nobody should wait for it.
    pub(crate) fn left_behind(&self) -> bool {
        self.left_behind.load(Ordering::SeqCst)
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.stop = true;
        self.shared.wake.notify_one();
        self.shared.watch.notify_all();
        // Wait for the committer's last flush, but not for one the watchdog
        // gave up on: that one never ends.
        loop {
            let given_up = self.shared.failure().is_some() && state.flush_started.is_some();
            if state.ended || given_up {
                break;
            }
            state = self
                .shared
                .watch
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        let ended = state.ended;
        drop(state);
        if let Some(watchdog) = self.watchdog.take() {
            let _ = watchdog.join();
        }
        if let Some(committer) = self.committer.take() {
            if ended {
                // A panic in the committer has already failed its waiters.
                let _ = committer.join();
            } else {
                self.left_behind.store(true, Ordering::SeqCst);
                tracing::warn!("the store's committer is stuck in a flush; leaving it behind");
            }
        }
    }
}

/// The watchdog's loop: fails the store when a flush has run longer than
/// `timeout`. Looks about four times per timeout (at most once a second),
/// and never takes part in a flush, so it costs the writers nothing.
fn watch(shared: &Shared, timeout: Duration) {
    let tick = (timeout / 4).clamp(Duration::from_millis(5), Duration::from_secs(1));
    let mut state = shared.lock();
    loop {
        if state.ended || (state.stop && shared.failure().is_some()) {
            return;
        }
        let late = state.flush_started.is_some_and(|t| t.elapsed() >= timeout);
        if late && shared.failure().is_none() {
            shared.fail(
                &mut state,
                format!("a flush did not finish within {timeout:?}; the disk or sled is stuck"),
            );
        }
        state = shared
            .watch
            .wait_timeout(state, tick)
            .map(|(guard, _)| guard)
            .unwrap_or_else(|e| e.into_inner().0);
    }
}

/// Marks the committer ended when its thread ends, also by a panic, which
/// fails the store rather than leave writers waiting for a flush that will
/// never come.
struct Ended<'a>(&'a Shared);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.ended = true;
        state.flush_started = None;
        if std::thread::panicking() {
            self.0
                .fail(&mut state, "the store's committer thread panicked".into());
        }
        self.0.watch.notify_all();
    }
}

/// The committer thread's own state.
struct Committer {
    shared: Arc<Shared>,
    db: sled::Db,
    /// Only the committer thread syncs.
    power_sync: Option<std::cell::RefCell<PowerSync>>,
    window: Duration,
    before_flush: BeforeFlush,
    /// When the previous flush started, if it served several writers.
    last_start: Option<Instant>,
}

impl Committer {
    /// The committer's loop. Under concurrent load (the previous flush
    /// served more than one writer) a flush starts at most once per
    /// `window`, and the writers that arrive meanwhile share it: each flush
    /// costs sled a buffer write and a `sync_file_range` whatever it carries,
    /// so back-to-back flushes of a few records each would spend a core on
    /// I/O. A lone writer (the previous flush served one, or it was longer
    /// than `window` ago) is flushed at once, so light-load latency does not
    /// pay for the window. Ends when the store is dropped (after a last
    /// flush of what is buffered) or has failed.
    fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        let _ended = Ended(&shared);
        loop {
            let Some(state) = self.wait_for_writers(self.shared.lock()) else {
                break;
            };
            let mut state = self.wait_for_window(state);
            if shared.failure().is_some() {
                return;
            }
            let started = Instant::now();
            state.flushing = super::take_keeping_room(&mut state.waiting);
            state.flush_started = Some(started);
            let writers = state.flushing.len();
            drop(state);
            self.last_start = (writers > 1).then_some(started);
            self.write_buffers();
            let result = self.flush();
            if !self.answer(result) {
                return;
            }
        }
        if shared.failure().is_none() {
            // Stopping: what is buffered goes out with a last flush.
            self.flush_buffered("last flush of buffered writes");
        }
    }

    /// Waits until writers wait (the lock held, `Some`) or it is time to end
    /// (`None`: the store is dropped or failed), writing buffered records
    /// out at each idle tick.
    fn wait_for_writers<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
    ) -> Option<MutexGuard<'a, State>> {
        loop {
            if self.shared.failure().is_some() {
                return None;
            }
            if !state.waiting.is_empty() {
                return Some(state);
            }
            if state.stop {
                return None;
            }
            let (guard, waited) = self
                .shared
                .wake
                .wait_timeout(state, IDLE_TICK)
                .unwrap_or_else(|e| e.into_inner());
            state = guard;
            state.stats.wakeups += 1;
            if waited.timed_out() && state.waiting.is_empty() && !state.stop {
                drop(state);
                self.flush_buffered("background flush of buffered writes");
                state = self.shared.lock();
            }
        }
    }

    /// Under load, holds the batch open until `window` after the previous
    /// flush started, so the writers arriving meanwhile share the flush.
    fn wait_for_window<'a>(&self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        // A window too long to add to an instant means no window.
        let Some(due) = self.last_start.and_then(|t| t.checked_add(self.window)) else {
            return state;
        };
        while !state.stop && self.shared.failure().is_none() {
            let now = Instant::now();
            if now >= due {
                break;
            }
            state = self
                .shared
                .wake
                .wait_timeout(state, due - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
            state.stats.wakeups += 1;
        }
        state
    }

    /// Ends the flush under way: counts it, answers its writers, and fails
    /// the store if it failed. False when the store has failed (also by the
    /// watchdog while this flush ran): the committer stops.
    fn answer(&self, result: Result<(), String>) -> bool {
        let mut state = self.shared.lock();
        state.flush_started = None;
        state.stats.flushes += 1;
        let batch = std::mem::take(&mut state.flushing);
        state.stats.writers += batch.len() as u64;
        if let Err(reason) = &result {
            self.shared.fail(&mut state, reason.clone());
        }
        drop(state);
        for waiter in batch {
            // A writer that stopped waiting (future dropped) needs no answer.
            let _ = waiter.send(result.clone());
        }
        self.shared.failure().is_none()
    }

    /// Writes buffered records and flushes them when there were any, with
    /// no writer waiting: at idle ticks and at the end. The watchdog times
    /// this flush too, and a failure fails the store like any other.
    fn flush_buffered(&self, what: &str) {
        self.shared.lock().flush_started = Some(Instant::now());
        let result = if self.write_buffers() {
            self.flush()
        } else {
            Ok(())
        };
        let mut state = self.shared.lock();
        state.flush_started = None;
        if let Err(reason) = result {
            tracing::error!(error = %reason, "{what} failed");
            self.shared.fail(&mut state, reason);
        }
    }

    /// Runs [`BeforeFlush`]; a panic there loses that batch of buffered
    /// records, not the committer. Whether it wrote anything.
    fn write_buffers(&self) -> bool {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.before_flush)()))
            .unwrap_or_else(|_| {
                tracing::error!("writing buffered records panicked; that batch is lost");
                false
            })
    }

    /// One sled flush, then an fdatasync of what it wrote when asked for.
    fn flush(&self) -> Result<(), String> {
        self.db.flush().map_err(|e| format!("sled flush: {e}"))?;
        match &self.power_sync {
            Some(sync) => sync
                .borrow_mut()
                .sync()
                .map_err(|e| format!("fdatasync: {e}")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    fn start(flush_timeout: Duration, before_flush: BeforeFlush) -> GroupCommit {
        start_with_window(Duration::ZERO, flush_timeout, before_flush)
    }

    fn start_with_window(
        window: Duration,
        flush_timeout: Duration,
        before_flush: BeforeFlush,
    ) -> GroupCommit {
        let db = sled::Config::new().temporary(true).open().unwrap();
        GroupCommit::start(CommitSettings {
            db,
            power_sync: None,
            window,
            flush_timeout,
            before_flush,
        })
        .unwrap()
    }

    /// 32 writers wait again as soon as their flush is done, so each batch
    /// fills while the committer holds it for the window. Only a batch's
    /// first writer wakes the committer: about two wake-ups per flush (that
    /// writer, the window's end). Waking it for every writer, as before,
    /// woke it 4.6 times per flush here (142 for 31 flushes), each only to
    /// put it back to sleep.
    #[test]
    fn writers_joining_a_held_batch_do_not_wake_the_committer() {
        let commit = start_with_window(
            Duration::from_millis(5),
            Duration::from_secs(60),
            Box::new(|| false),
        );
        let before = commit.stats();
        futures::executor::block_on(futures::future::join_all((0..32).map(|_| async {
            for _ in 0..10 {
                assert_eq!(commit.wait("test").await, Ok(()));
            }
        })));
        let stats = commit.stats();
        let flushes = stats.flushes - before.flushes;
        let wakeups = stats.wakeups - before.wakeups;
        assert_eq!(stats.writers - before.writers, 320);
        assert!(flushes < 320, "writers shared flushes: {flushes} flushes");
        assert!(
            wakeups <= 3 * flushes + 3,
            "{wakeups} wake-ups for {flushes} flushes"
        );
    }

    #[test]
    fn a_panicking_buffer_writer_loses_its_batch_not_the_committer() {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let commit = start(
            Duration::from_secs(60),
            Box::new(move || {
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("a buffer writer bug");
                }
                false
            }),
        );
        futures::executor::block_on(async {
            assert_eq!(commit.wait("test").await, Ok(()));
            assert_eq!(commit.wait("test").await, Ok(()));
        });
        assert!(calls.load(Ordering::SeqCst) >= 2);
        assert_eq!(commit.stats().flushes, 2);
        assert_eq!(commit.failure(), None);
    }

    /// A flush that never returns (the committer blocked in it): its writer
    /// is answered with the failure once the timeout has passed, later
    /// writers at once, and dropping the store does not wait for it.
    #[test]
    fn a_flush_that_never_ends_fails_the_store_and_does_not_hold_its_drop() {
        let (release, blocked) = mpsc::channel::<()>();
        let blocked = Mutex::new(blocked);
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let commit = start(
            Duration::from_millis(50),
            Box::new(move || {
                // The first batch blocks until the test lets it go.
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    let _ = blocked.lock().unwrap().recv();
                }
                false
            }),
        );
        let first = futures::executor::block_on(commit.wait("test"));
        let reason = first.expect_err("the stuck flush's writer fails");
        assert!(reason.contains("did not finish within"), "{reason}");
        assert_eq!(commit.failure(), Some(reason.as_str()));
        let later = futures::executor::block_on(commit.wait("test"));
        assert_eq!(later, Err(reason));
        drop(commit);
        // The committer thread is still blocked: let it go.
        release.send(()).unwrap();
    }

    /// A store marked failed answers its waiting writers and refuses later
    /// ones; the committer stops without another flush.
    #[test]
    fn a_failure_answers_every_writer_and_refuses_later_ones() {
        let commit = start(Duration::from_secs(60), Box::new(|| false));
        futures::executor::block_on(async {
            assert_eq!(commit.wait("test").await, Ok(()));
        });
        commit.fail("sled flush: no space left".into());
        commit.fail("a second reason is not kept".into());
        let later = futures::executor::block_on(commit.wait("test"));
        assert_eq!(later, Err("sled flush: no space left".into()));
        assert_eq!(commit.stats().flushes, 1);
    }
}
