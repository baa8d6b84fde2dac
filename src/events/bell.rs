//! Waking followers in batches, at most once per [`TICK`].
//!
//! Owns: the list of job logs with events their followers have not been
//! woken for, and the thread (`troupe-events`, started by the first
//! follower's first event) that wakes them once per tick.
//!
//! Why not wake at each event: a follower is a task on an HTTP worker
//! thread, so each wake-up is a cross-thread wake of that thread and, once
//! it runs, one write to the follower's socket. An agent task's events
//! come in bursts (a model reply, the tool calls it asked for, their
//! results) that a wake per event cut into several writes, and every wake
//! was a system call on the runtime's own threads, in the middle of
//! running tasks. Batched, an emitter only appends to a list; one wake-up
//! of a worker thread carries the events of every job it follows; and a
//! burst is one write. An event waits at most a tick more, which no one
//! following a task can see.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// How long events gather before their followers are woken.
pub(crate) const TICK: Duration = Duration::from_millis(2);

/// One job log's wake-up: what its followers wait on, and whether it is
/// already due.
#[derive(Debug, Default)]
pub(crate) struct Bell {
    notify: Notify,
    /// In the batch's list, not yet rung.
    due: AtomicBool,
}

impl Bell {
    /// What a follower awaits; see [`Notify::notified`].
    pub(crate) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// Wakes the followers waiting now.
    pub(crate) fn ring_now(&self) {
        self.notify.notify_waiters();
    }
}

/// The bells due at the next tick, shared with the ringing thread.
#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when the list stops being empty while the thread waits
    /// for that, and when the batch stops.
    work: Condvar,
}

#[derive(Debug, Default)]
struct State {
    due: Vec<Arc<Bell>>,
    /// The thread is waiting on `work` (not in a tick's sleep).
    idle: bool,
    stopped: bool,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // Nothing panics while holding this lock, so a poisoned one is whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Rings bells once per tick. Its thread stops with [`Batch::stop`] (or
/// when the batch is dropped).
#[derive(Debug, Default)]
pub(crate) struct Batch {
    shared: Arc<Shared>,
    /// Whether the thread started (false: it could not be, and bells ring
    /// at once).
    thread: OnceLock<bool>,
}

impl Batch {
    /// Rings `bell` at the next tick (at once once the batch stopped, or
    /// if its thread could not start).
    pub(crate) fn ring(&self, bell: &Arc<Bell>) {
        if bell.due.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut state = lock(&self.shared.state);
        if state.stopped || !*self.thread.get_or_init(|| self.start()) {
            drop(state);
            bell.due.store(false, Ordering::Release);
            bell.ring_now();
            return;
        }
        state.due.push(bell.clone());
        if state.idle {
            state.idle = false;
            self.shared.work.notify_one();
        }
    }

    /// Rings what is due and stops the thread; later bells ring at once.
    pub(crate) fn stop(&self) {
        lock(&self.shared.state).stopped = true;
        self.shared.work.notify_one();
    }

    fn start(&self) -> bool {
        let shared = self.shared.clone();
        let started = std::thread::Builder::new()
            .name("troupe-events".into())
            .spawn(move || shared.run());
        match started {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "no thread for batching event wake-ups; followers are woken at each event");
                false
            }
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    /// The thread: waits for a due bell, lets a tick's events gather,
    /// rings every bell due, again until stopped.
    fn run(&self) {
        loop {
            let stopped = {
                let mut state = lock(&self.state);
                while state.due.is_empty() && !state.stopped {
                    state.idle = true;
                    state = self
                        .work
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                state.idle = false;
                state.stopped
            };
            if !stopped {
                std::thread::sleep(TICK);
            }
            let due = std::mem::take(&mut lock(&self.state).due);
            for bell in due {
                // Cleared before ringing: an event pushed after this rings
                // again; one pushed before is seen by the followers woken.
                bell.due.store(false, Ordering::Release);
                bell.ring_now();
            }
            if stopped {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bell_rung_many_times_in_a_tick_wakes_its_waiter_and_rings_again_later() {
        let batch = Batch::default();
        let bell = Arc::new(Bell::default());
        for _ in 0..2 {
            let woken = bell.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            for _ in 0..5 {
                batch.ring(&bell);
            }
            tokio::time::timeout(Duration::from_secs(10), woken)
                .await
                .expect("the waiter is woken within the deadline");
        }
    }

    #[tokio::test]
    async fn after_stop_a_bell_rings_at_once() {
        let batch = Batch::default();
        batch.stop();
        let bell = Arc::new(Bell::default());
        let woken = bell.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        batch.ring(&bell);
        assert!(
            futures::FutureExt::now_or_never(woken).is_some(),
            "rung without waiting for a tick"
        );
    }
}
