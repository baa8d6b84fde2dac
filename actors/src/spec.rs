//! Child specs: how a supervisor makes, restarts and stops each child.
//!
//! A spec holds a factory rather than an instance, because a restart must
//! build the actor afresh; and it is checked as a whole before anything
//! starts, so an impossible setting is refused with the child's path and the
//! field, never discovered at the first crash.

use std::any::Any;
use std::collections::HashMap;
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use crate::actor::Actor;
use crate::cell::{Cell, CellConfig, Factory};
use crate::error::BuildError;
use crate::retry::BackoffPolicy;
use crate::status::ChildKind;
use crate::supervisor::{Control, ParentLink, Slot};

/// When a child that exited is restarted (OTP's restart types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    /// Always: the child must be running while its supervisor runs.
    #[default]
    Permanent,
    /// Only after an abnormal exit (panic, failure); a normal stop is final.
    Transient,
    /// Never: one-off work; its exit is recorded and that is all.
    Temporary,
}

/// The default bound of a child's mailbox.
pub const DEFAULT_MAILBOX: usize = 64;

/// The default time a child gets to stop before it is stopped hard.
pub const DEFAULT_SHUTDOWN: Duration = Duration::from_secs(5);

/// An OS thread with its own single-threaded executor, for children that
/// should not share a thread with the rest of the tree.
pub struct Arbiter {
    inner: actix::Arbiter,
}

impl Arbiter {
    /// Starts a new thread. It runs until [`Arbiter::stop`]: dropping this
    /// value leaves it running, since actors on it may still be addressed.
    /// Panics outside an actix system; see [`Arbiter::try_new`].
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self {
            inner: actix::Arbiter::new(),
        }
    }

    /// [`Arbiter::new`], or [`BuildError::NoRuntime`] outside an actix
    /// system (where `new` panics).
    pub fn try_new() -> Result<Self, crate::BuildError> {
        if actix::System::try_current().is_none() {
            return Err(crate::BuildError::NoRuntime);
        }
        Ok(Self::new())
    }

    /// Stops the thread once its current work is done.
    pub fn stop(&self) -> bool {
        self.inner.stop()
    }

    /// Stops the thread and waits, at most `timeout`, until it has ended and
    /// dropped its actors (so whatever they held, a store's file lock, is
    /// let go). Returns whether it ended in time. Never call it from the
    /// thread itself: it would wait the whole timeout.
    pub fn stop_and_join(self, timeout: Duration) -> bool {
        self.inner.stop();
        let (tx, rx) = std::sync::mpsc::channel();
        let inner = self.inner;
        let joiner = std::thread::Builder::new()
            .name("arbiter-join".into())
            .spawn(move || {
                let _ = inner.join();
                let _ = tx.send(());
            });
        joiner.is_ok() && rx.recv_timeout(timeout).is_ok()
    }

    pub(crate) fn handle(&self) -> actix::ArbiterHandle {
        self.inner.handle()
    }
}

impl std::fmt::Debug for Arbiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Arbiter")
    }
}

/// How to make and look after one worker child of actor type `A`.
pub struct ChildSpec<A: Actor> {
    pub(crate) id: String,
    pub(crate) factory: Factory<A>,
    pub(crate) restart: Restart,
    pub(crate) mailbox: usize,
    pub(crate) shutdown: Duration,
    pub(crate) backoff: BackoffPolicy,
    pub(crate) arbiter: Option<actix::ArbiterHandle>,
}

impl<A: Actor> ChildSpec<A> {
    /// A child built by `factory` at every (re)start.
    pub fn new<F>(id: impl Into<String>, factory: F) -> Self
    where
        F: Fn() -> A + Send + Sync + 'static,
    {
        Self::with_factory(id.into(), Arc::new(move || Ok(factory())))
    }

    /// A child whose factory can fail (e.g. opening a file); a failure counts
    /// as an exit, restarted under the same rules as a crash.
    pub fn try_new<F, E>(id: impl Into<String>, factory: F) -> Self
    where
        F: Fn() -> Result<A, E> + Send + Sync + 'static,
        E: Display,
    {
        Self::with_factory(
            id.into(),
            Arc::new(move || factory().map_err(|e| e.to_string())),
        )
    }

    fn with_factory(id: String, factory: Factory<A>) -> Self {
        Self {
            id,
            factory,
            restart: Restart::default(),
            mailbox: DEFAULT_MAILBOX,
            shutdown: DEFAULT_SHUTDOWN,
            backoff: BackoffPolicy::default(),
            arbiter: None,
        }
    }

    /// When the child is restarted; permanent by default.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// The mailbox bound (at least 1): senders wait beyond it.
    pub fn mailbox(mut self, capacity: usize) -> Self {
        self.mailbox = capacity;
        self
    }

    /// How long the `stopping` hook may take before the instance is dropped.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown = timeout;
        self
    }

    /// The delays between consecutive restarts.
    pub fn backoff(mut self, policy: BackoffPolicy) -> Self {
        self.backoff = policy;
        self
    }

    /// Runs the child on `arbiter`'s thread instead of its supervisor's.
    pub fn on_arbiter(mut self, arbiter: &Arbiter) -> Self {
        self.arbiter = Some(arbiter.handle());
        self
    }
}

/// Path-keyed addresses of everything started in a tree.
pub(crate) type Registry = HashMap<String, Box<dyn Any + Send + Sync>>;

/// A child spec with its actor type erased, as a supervisor holds it.
pub(crate) trait StartChild: Send {
    fn id(&self) -> &str;
    fn validate(&self, path: &str) -> Result<(), BuildError>;
    /// Starts the child (and its subtree); records addresses under `path`.
    fn start(self: Box<Self>, link: ParentLink, path: String, registry: &mut Registry) -> Slot;
}

pub(crate) fn invalid(child: &str, field: &'static str, reason: impl Display) -> BuildError {
    BuildError::InvalidSetting {
        child: child.to_string(),
        field,
        reason: reason.to_string(),
    }
}

pub(crate) fn check_id(id: &str) -> Result<(), BuildError> {
    if id.is_empty() || id.contains('/') {
        return Err(BuildError::InvalidId { id: id.to_string() });
    }
    Ok(())
}

impl<A: Actor> StartChild for ChildSpec<A> {
    fn id(&self) -> &str {
        &self.id
    }

    fn validate(&self, path: &str) -> Result<(), BuildError> {
        check_id(&self.id)?;
        if self.mailbox == 0 {
            return Err(invalid(path, "mailbox", "capacity must be at least 1"));
        }
        self.backoff.validate().map_err(|(field, e)| {
            let field = match field {
                "multiplier" => "backoff.multiplier",
                "jitter" => "backoff.jitter",
                _ => "backoff.max",
            };
            invalid(path, field, e)
        })
    }

    fn start(self: Box<Self>, link: ParentLink, path: String, registry: &mut Registry) -> Slot {
        let spec = *self;
        let name: Arc<str> = Arc::from(spec.id.as_str());
        let (actor_ref, tx) = Cell::spawn(
            CellConfig {
                name: name.clone(),
                factory: spec.factory,
                capacity: spec.mailbox,
                shutdown_timeout: spec.shutdown,
                arbiter: spec.arbiter,
            },
            link,
        );
        let shared = actor_ref.shared.clone();
        registry.insert(path, Box::new(actor_ref));
        Slot::new(
            name,
            ChildKind::Worker,
            spec.restart,
            spec.shutdown,
            spec.backoff.start(),
            Control::Worker { tx, shared },
        )
    }
}
