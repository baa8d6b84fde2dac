//! An actix system on a thread of its own, so that a program that is not
//! an actix program — a plain `#[tokio::main]` service — can host actors.
//!
//! Actors need a running actix system on the thread that starts them; a
//! tokio runtime is not one. [`SystemThread`] starts a system on a new OS
//! thread and runs futures on it ([`SystemThread::run`]); what they start
//! (trees, addresses) is then used from any thread, since addresses send
//! messages over thread-safe channels.

use std::future::Future;
use std::thread::JoinHandle;

use futures::channel::oneshot;

use crate::BuildError;

/// Whether the current thread runs inside an actix system (where trees can
/// be started directly).
pub fn in_system() -> bool {
    actix::System::try_current().is_some()
}

/// A running actix system on its own OS thread. Stopped, and its thread
/// joined, by [`SystemThread::stop`] or when dropped.
pub struct SystemThread {
    system: actix::System,
    arbiter: actix::ArbiterHandle,
    thread: Option<JoinHandle<()>>,
}

/// The system thread stopped before a future sent to it finished (it was
/// stopped, or the future panicked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the actor system thread `{name}` stopped before the work sent to it finished")]
pub struct SystemGone {
    /// The thread's name.
    pub name: String,
}

impl SystemThread {
    /// Starts a system on a new thread called `name`.
    pub fn spawn(name: &str) -> Result<SystemThread, BuildError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let system = actix::System::new();
                let _ = tx.send((actix::System::current(), actix::Arbiter::current()));
                let _ = system.run();
            })
            .map_err(|e| BuildError::Thread(e.to_string()))?;
        let (system, arbiter) = rx
            .recv()
            .map_err(|_| BuildError::Thread(format!("thread `{name}` ended at start")))?;
        Ok(SystemThread {
            system,
            arbiter,
            thread: Some(thread),
        })
    }

    /// Runs the future made by `make` on the system's thread (the future
    /// itself need not be `Send`; `make` and the output must be) and waits
    /// for its output.
    pub async fn run<M, F, T>(&self, make: M) -> Result<T, SystemGone>
    where
        M: FnOnce() -> F + Send + 'static,
        F: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let sent = self.arbiter.spawn_fn(move || {
            actix::spawn(async move {
                let _ = tx.send(make().await);
            });
        });
        let gone = || SystemGone { name: self.name() };
        if !sent {
            return Err(gone());
        }
        rx.await.map_err(|_| gone())
    }

    /// The thread's name.
    pub fn name(&self) -> String {
        self.thread
            .as_ref()
            .and_then(|t| t.thread().name().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Stops the system (its actors are dropped) and waits for its thread.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.system.stop();
        if let Some(thread) = self.thread.take() {
            // Joining from the system's own thread would wait for itself.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for SystemThread {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

impl std::fmt::Debug for SystemThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemThread")
            .field("name", &self.name())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn a_future_that_is_not_send_runs_on_the_system_thread() {
        let thread = SystemThread::spawn("test-system").unwrap_or_else(|e| panic!("{e}"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!in_system());
        let (inside, name) = rt
            .block_on(thread.run(|| async {
                let local = Rc::new(7); // not Send: fine, it stays on that thread
                tokio::task::yield_now().await;
                (
                    in_system() && *local == 7,
                    std::thread::current().name().map(str::to_owned),
                )
            }))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(inside);
        assert_eq!(name.as_deref(), Some("test-system"));
        thread.stop();
    }
}
