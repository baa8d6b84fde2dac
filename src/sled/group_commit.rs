//! Group commit: one committer thread runs a flush for every writer that was
//! waiting when it started, so concurrent writers share a flush.

use std::fs::File;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::channel::oneshot;

/// Figures about the commits done so far (for benchmarks and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// Flushes (each followed by an fdatasync with `Durability::PowerLoss`).
    pub flushes: u64,
    /// Writers acknowledged; `writers / flushes` is the group size.
    pub writers: u64,
}

type Waiter = oneshot::Sender<Result<(), String>>;

/// Writes the store buffers (usage records) before each flush, on the
/// committer thread; says whether it wrote anything. Also run about every
/// [`IDLE_TICK`] when nobody waits, so buffered writes reach sled (and
/// then the disk) without a durable write to carry them.
pub(crate) type BeforeFlush = Box<dyn Fn() -> bool + Send>;

/// How often an idle committer runs [`BeforeFlush`].
const IDLE_TICK: Duration = Duration::from_millis(500);

#[derive(Default)]
struct State {
    waiting: Vec<Waiter>,
    stop: bool,
    stats: CommitStats,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The committer never panics while holding the lock; a poisoned lock
        // still holds consistent data (a list of senders).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The committer. Dropping it flushes the last waiters and joins the thread,
/// which releases its handle on the database (so the directory can be
/// reopened in the same process).
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the committer thread. `sync_file` is sled's log file when
    /// power-loss durability is asked for.
    pub(crate) fn start(
        db: sled::Db,
        sync_file: Option<File>,
        window: Duration,
        before_flush: BeforeFlush,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("troupe-store-commit".into())
            .spawn(move || {
                run(
                    &thread_shared,
                    &db,
                    sync_file.as_ref(),
                    window,
                    before_flush.as_ref(),
                )
            })?;
        Ok(GroupCommit {
            shared,
            thread: Some(thread),
        })
    }

    /// Waits until every write this thread made before the call is durable.
    pub(crate) async fn wait(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.shared.lock();
            if state.stop {
                return Err("the store is shutting down".into());
            }
            state.waiting.push(tx);
        }
        self.shared.wake.notify_one();
        match rx.await {
            Ok(result) => result,
            Err(_) => Err("the committer stopped before flushing".into()),
        }
    }

    /// Commit figures so far.
    pub(crate) fn stats(&self) -> CommitStats {
        self.shared.lock().stats
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            // A panic in the committer has already failed its waiters.
            let _ = thread.join();
        }
    }
}

/// The committer's loop. Under concurrent load (the previous flush served
/// more than one writer) a flush starts at most once per `window`, and the
/// writers that arrive meanwhile share it: each flush costs sled a buffer
/// write and a `sync_file_range` whatever it carries, so back-to-back
/// flushes of a few records each would spend a core on I/O. A lone writer
/// (the previous flush served one, or it was longer than `window` ago) is
/// flushed at once, so light-load latency does not pay for the window.
fn run(
    shared: &Shared,
    db: &sled::Db,
    sync_file: Option<&File>,
    window: Duration,
    before_flush: &(dyn Fn() -> bool + Send),
) {
    // Should the committer ever panic (sled, the buffer writer), fail every
    // waiting writer and refuse new ones, rather than leave them waiting
    // for a flush that will never come.
    struct FailOnPanic<'a>(&'a Shared);
    impl Drop for FailOnPanic<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let mut state = self.0.lock();
                state.stop = true;
                for waiter in state.waiting.drain(..) {
                    let _ = waiter.send(Err("the store's committer thread panicked".into()));
                }
            }
        }
    }
    let _fail_on_panic = FailOnPanic(shared);
    // A panic while writing buffered records loses that batch, not the
    // committer.
    let before_flush = || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(before_flush)).unwrap_or_else(|_| {
            tracing::error!("writing buffered records panicked; that batch is lost");
            false
        })
    };
    // When the previous flush started, if it served several writers.
    let mut last_start: Option<Instant> = None;
    let flush = || {
        db.flush()
            .map(|_| ())
            .map_err(|e| format!("sled flush: {e}"))
            .and_then(|()| match sync_file {
                Some(file) => file.sync_data().map_err(|e| format!("fdatasync: {e}")),
                None => Ok(()),
            })
    };
    loop {
        let batch = {
            let mut state = shared.lock();
            while state.waiting.is_empty() && !state.stop {
                let (guard, waited) = shared
                    .wake
                    .wait_timeout(state, IDLE_TICK)
                    .unwrap_or_else(|e| e.into_inner());
                state = guard;
                if waited.timed_out() && state.waiting.is_empty() && !state.stop {
                    drop(state);
                    if before_flush() {
                        if let Err(e) = flush() {
                            tracing::error!(error = %e, "background flush of buffered writes failed");
                        }
                    }
                    state = shared.lock();
                }
            }
            if state.waiting.is_empty() {
                // Stopping: what is buffered goes out with a last flush.
                drop(state);
                if before_flush() {
                    if let Err(e) = flush() {
                        tracing::error!(error = %e, "last flush of buffered writes failed");
                    }
                }
                return;
            }
            // A window too long to add to an instant means no window.
            if let Some(due) = last_start.and_then(|t| t.checked_add(window)) {
                while !state.stop {
                    let now = Instant::now();
                    if now >= due {
                        break;
                    }
                    state = shared
                        .wake
                        .wait_timeout(state, due - now)
                        .map(|(guard, _)| guard)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
            }
            std::mem::take(&mut state.waiting)
        };
        last_start = (batch.len() > 1).then(Instant::now);
        before_flush();
        let result = flush();
        {
            let mut state = shared.lock();
            state.stats.flushes += 1;
            state.stats.writers += batch.len() as u64;
        }
        for waiter in batch {
            // A writer that stopped waiting (future dropped) needs no answer.
            let _ = waiter.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_buffer_writer_loses_its_batch_not_the_committer() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let commit = GroupCommit::start(
            db,
            None,
            Duration::ZERO,
            Box::new(move || {
                if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    panic!("a buffer writer bug");
                }
                false
            }),
        )
        .unwrap();
        futures::executor::block_on(async {
            assert_eq!(commit.wait().await, Ok(()));
            assert_eq!(commit.wait().await, Ok(()));
        });
        assert!(calls.load(std::sync::atomic::Ordering::SeqCst) >= 2);
        assert_eq!(commit.stats().flushes, 2);
    }
}
