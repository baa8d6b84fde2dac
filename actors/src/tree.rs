//! Declaring, starting, querying and stopping a supervision tree.

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;

use actix::AsyncContext;
use tokio::sync::{oneshot, watch};

use crate::actor::Actor;
use crate::address::ActorRef;
use crate::control::{AfterStop, Command};
use crate::error::{BuildError, CallError, LookupError, TreeError};
use crate::retry::BackoffPolicy;
use crate::spec::{check_id, invalid, ChildSpec, Registry, Restart, StartChild, DEFAULT_SHUTDOWN};
use crate::status::{ChildInfo, ChildKind, ChildState, Shared};
use crate::strategy::{Intensity, Strategy};
use crate::supervisor::{
    AddChild, Control, GetChildren, ParentLink, RestartChild, Slot, SupCommand, SupervisorActor,
};

/// A supervisor and its children, declared before anything starts.
///
/// ```no_run
/// # use troupe_actors::*;
/// # struct Cache; impl Actor for Cache {}
/// # async fn demo() -> Result<(), BuildError> {
/// let tree = SupervisorSpec::new("root")
///     .strategy(Strategy::OneForOne)
///     .child(ChildSpec::new("cache", || Cache).mailbox(128))
///     .start()?;
/// let cache: ActorRef<Cache> = tree.actor("cache").expect("declared above");
/// # Ok(()) }
/// ```
pub struct SupervisorSpec {
    id: String,
    strategy: Strategy,
    intensity: Intensity,
    restart: Restart,
    shutdown: std::time::Duration,
    backoff: BackoffPolicy,
    children: Vec<Box<dyn StartChild>>,
}

impl SupervisorSpec {
    /// A supervisor with no children yet (one_for_one, 3 restarts in 5 s).
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            strategy: Strategy::default(),
            intensity: Intensity::default(),
            restart: Restart::Permanent,
            shutdown: DEFAULT_SHUTDOWN,
            backoff: BackoffPolicy::default(),
            children: Vec::new(),
        }
    }

    /// The restart strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The restart intensity.
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.intensity = intensity;
        self
    }

    /// As a nested supervisor: when its parent restarts it.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// As a nested supervisor: the delays between its restarts.
    pub fn backoff(mut self, policy: BackoffPolicy) -> Self {
        self.backoff = policy;
        self
    }

    /// As a nested supervisor: how long its parent waits for it to stop.
    /// Its own children's timeouts should fit inside.
    pub fn shutdown_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.shutdown = timeout;
        self
    }

    /// Adds a worker child; children start in the order they are added.
    pub fn child<A: Actor>(mut self, spec: ChildSpec<A>) -> Self {
        self.children.push(Box::new(spec));
        self
    }

    /// Adds many worker children.
    pub fn children<A: Actor>(mut self, specs: impl IntoIterator<Item = ChildSpec<A>>) -> Self {
        for spec in specs {
            self.children.push(Box::new(spec));
        }
        self
    }

    /// Adds a nested supervisor.
    pub fn supervisor(mut self, spec: SupervisorSpec) -> Self {
        self.children.push(Box::new(spec));
        self
    }

    /// Checks the whole tree, then starts it on the current actix system.
    /// Nothing starts if any spec is impossible.
    pub fn start(self) -> Result<Tree, BuildError> {
        if actix::Arbiter::try_current().is_none() {
            return Err(BuildError::NoRuntime);
        }
        let path = self.id.clone();
        self.validate(&path)?;
        let (tx, exit) = watch::channel(None);
        let mut registry = Registry::new();
        let root_name: Arc<str> = Arc::from(path.as_str());
        let (addr, shared) = self.spawn(ParentLink::Root(Arc::new(tx)), path, &mut registry);
        Ok(Tree {
            root: SupervisorRef { addr, shared },
            registry,
            exit,
            root_name,
        })
    }

    fn spawn(
        self,
        link: ParentLink,
        path: String,
        registry: &mut Registry,
    ) -> (actix::Addr<SupervisorActor>, Arc<Shared>) {
        let ctx = actix::Context::<SupervisorActor>::new();
        let addr = ctx.address();
        let shared = Arc::new(Shared::new(Arc::from(self.id.as_str()), 0));
        let mut slots = Vec::with_capacity(self.children.len());
        for (index, child) in self.children.into_iter().enumerate() {
            let child_path = format!("{path}/{}", child.id());
            let child_link = ParentLink::Supervisor {
                recipient: addr.clone().recipient(),
                index,
            };
            slots.push(child.start(child_link, child_path, registry));
        }
        let actor = SupervisorActor::new(
            Arc::from(path.as_str()),
            shared.clone(),
            self.strategy,
            self.intensity,
            slots,
            link,
        );
        ctx.run(actor);
        registry.insert(
            path,
            Box::new(SupervisorRef {
                addr: addr.clone(),
                shared: shared.clone(),
            }),
        );
        (addr, shared)
    }
}

impl StartChild for SupervisorSpec {
    fn id(&self) -> &str {
        &self.id
    }

    fn validate(&self, path: &str) -> Result<(), BuildError> {
        check_id(&self.id)?;
        if self.intensity.period.is_zero() {
            return Err(invalid(
                path,
                "intensity.period",
                "must be longer than zero",
            ));
        }
        self.backoff
            .validate()
            .map_err(|(_, e)| invalid(path, "backoff", e))?;
        let mut seen = HashSet::new();
        for child in &self.children {
            if !seen.insert(child.id()) {
                return Err(BuildError::DuplicateChild {
                    supervisor: path.to_string(),
                    child: child.id().to_string(),
                });
            }
            child.validate(&format!("{path}/{}", child.id()))?;
        }
        Ok(())
    }

    fn start(self: Box<Self>, link: ParentLink, path: String, registry: &mut Registry) -> Slot {
        let id: Arc<str> = Arc::from(self.id.as_str());
        let restart = self.restart;
        let shutdown = self.shutdown;
        let backoff = self.backoff.start();
        let (addr, shared) = self.spawn(link, path, registry);
        Slot::new(
            id,
            ChildKind::Supervisor,
            restart,
            shutdown,
            backoff,
            Control::Supervisor { addr, shared },
        )
    }
}

/// A running tree: addresses by path, the root's handle, and its outcome.
pub struct Tree {
    root: SupervisorRef,
    registry: Registry,
    exit: watch::Receiver<Option<Result<(), TreeError>>>,
    root_name: Arc<str>,
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tree")
            .field("root", &&*self.root_name)
            .finish()
    }
}

impl Tree {
    /// The address of the worker at `path`, relative to the root
    /// (`"cache"`, `"workers/w1"`). Look it up once: it stays valid across
    /// restarts.
    pub fn actor<A: Actor>(&self, path: &str) -> Result<ActorRef<A>, LookupError> {
        self.lookup::<ActorRef<A>>(path, std::any::type_name::<A>())
    }

    /// The handle of the supervisor at `path` (`""` for the root).
    pub fn supervisor(&self, path: &str) -> Result<SupervisorRef, LookupError> {
        if path.is_empty() {
            return Ok(self.root.clone());
        }
        self.lookup::<SupervisorRef>(path, "supervisor")
    }

    fn lookup<T: Clone + 'static>(
        &self,
        path: &str,
        expected: &'static str,
    ) -> Result<T, LookupError> {
        let full = format!("{}/{}", self.root_name, path);
        let entry = self
            .registry
            .get(&full)
            .ok_or_else(|| LookupError::NotFound {
                path: path.to_string(),
            })?;
        let any: &dyn Any = entry.as_ref();
        any.downcast_ref::<T>()
            .cloned()
            .ok_or(LookupError::WrongType {
                path: path.to_string(),
                expected,
            })
    }

    /// The root supervisor.
    pub fn root(&self) -> &SupervisorRef {
        &self.root
    }

    /// Resolves when the tree has ended: `Ok` after [`shutdown`](Self::shutdown),
    /// an error when the root gave up after too many restarts.
    pub async fn wait(&self) -> Result<(), TreeError> {
        let mut exit = self.exit.clone();
        let outcome = exit.wait_for(Option::is_some).await;
        match outcome {
            Ok(value) => value.clone().unwrap_or(Ok(())),
            Err(_) => Err(TreeError::Gone {
                root: self.root_name.to_string(),
            }),
        }
    }

    /// Whether the tree has ended, and how, without waiting.
    pub fn outcome(&self) -> Option<Result<(), TreeError>> {
        self.exit.borrow().clone()
    }

    /// Stops every child, deepest and latest first, each within its shutdown
    /// timeout; returns once all are stopped. The tree is then stopped for
    /// good: right after, each child lets go of its factory (and what that
    /// captured), so nothing of it outlives the tree's handles.
    pub async fn shutdown(&self) {
        self.root.shutdown().await;
    }
}

/// The handle of a running supervisor.
#[derive(Clone)]
pub struct SupervisorRef {
    addr: actix::Addr<SupervisorActor>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SupervisorRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorRef")
            .field("name", &&*self.shared.name)
            .field("state", &self.shared.state())
            .finish()
    }
}

impl SupervisorRef {
    /// The supervisor's id.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Running, restarting (gave up, waiting on its parent) or stopped.
    pub fn state(&self) -> ChildState {
        self.shared.state()
    }

    /// How many times its parent restarted it.
    pub fn restarts(&self) -> u64 {
        self.shared.restarts()
    }

    /// A snapshot of the children in start order.
    pub async fn children(&self) -> Result<Vec<ChildInfo>, CallError> {
        self.addr
            .send(GetChildren)
            .await
            .map_err(|_| CallError::Dropped {
                actor: self.shared.name.to_string(),
            })
    }

    /// Adds and starts a worker child at run time (e.g. an agent added to a
    /// running daemon); it is stopped first at shutdown. Refused with
    /// [`CallError::Dropped`] once the tree is stopped for good.
    ///
    /// The child is supervised whether or not the returned handle is kept.
    /// It stays in the tree (its cell, mailbox and factory, with what the
    /// factory captured) until the tree is shut down, even once it has
    /// stopped for good (a `Temporary` child that exited): a supervisor has
    /// no way to remove a child.
    pub async fn start_child<A: Actor>(
        &self,
        spec: ChildSpec<A>,
    ) -> Result<ActorRef<A>, StartChildError> {
        let path = spec.id.clone();
        let started = self
            .addr
            .send(AddChild(Box::new(spec)))
            .await
            .map_err(|_| {
                StartChildError::Call(CallError::Dropped {
                    actor: self.shared.name.to_string(),
                })
            })??;
        let any: Box<dyn Any> = started;
        any.downcast::<ActorRef<A>>()
            .map(|r| *r)
            .map_err(|_| StartChildError::Build(BuildError::InvalidId { id: path }))
    }

    /// Restarts the child `id` as if it had failed, e.g. when a watchdog finds
    /// it stopped answering: its instance is stopped (hard, after its
    /// shutdown timeout) and the supervisor applies its restart rules.
    /// `Ok(false)` when there is no such child.
    pub async fn restart_child(
        &self,
        id: &str,
        reason: impl Into<String>,
    ) -> Result<bool, CallError> {
        self.addr
            .send(RestartChild {
                id: id.to_string(),
                reason: reason.into(),
            })
            .await
            .map_err(|_| CallError::Dropped {
                actor: self.shared.name.to_string(),
            })
    }

    /// Stops all children in reverse start order; see [`Tree::shutdown`].
    /// Only the root's is final: a nested supervisor keeps its children's
    /// factories, since an ancestor's restart starts it again.
    pub async fn shutdown(&self) {
        let (ack, done) = oneshot::channel();
        self.addr.do_send(SupCommand(Command::Stop {
            then: AfterStop::Halt,
            ack: Some(ack),
        }));
        let _ = done.await;
    }
}

/// A child could not be added to a running supervisor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartChildError {
    /// The spec was refused.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The supervisor is gone.
    #[error(transparent)]
    Call(#[from] CallError),
}
