//! A supervisor's record of one child, and the links between the two.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use crate::control::{AfterStop, Command, ControlSender};
use crate::error::TreeError;
use crate::exit::ExitReason;
use crate::retry::Backoff;
use crate::spec::Restart;
use crate::status::{ChildInfo, ChildKind, ChildState, Shared};

use super::actor::{ChildExited, SupCommand, SupervisorActor};

/// Extra time a supervisor waits for a child's stop acknowledgement beyond the
/// child's own shutdown timeout, which the child enforces itself.
const ACK_GRACE: Duration = Duration::from_millis(500);

/// How long a supervisor waits for a child to report that it started.
const START_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// How a child reports its exits upward.
#[derive(Clone)]
pub(crate) enum ParentLink {
    /// To the supervisor that started it, as child number `index`.
    Supervisor {
        recipient: actix::Recipient<ChildExited>,
        index: usize,
    },
    /// The root: to whoever waits on the tree.
    Root(Arc<watch::Sender<Option<Result<(), TreeError>>>>),
    /// Nobody: the tree was stopped for good and the child let go of its
    /// parent (a strong link up would keep the parent alive, and the parent
    /// keeps the child's control: a cycle that outlives the tree).
    Released,
}

impl ParentLink {
    pub(crate) fn report(&self, generation: u64, reason: ExitReason) {
        match self {
            ParentLink::Supervisor { recipient, index } => recipient.do_send(ChildExited {
                index: *index,
                generation,
                reason,
            }),
            ParentLink::Root(tx) => {
                let outcome = match reason {
                    ExitReason::Escalated { supervisor, cause } => Err(TreeError::Escalated {
                        root: supervisor,
                        cause,
                    }),
                    other => Err(TreeError::Escalated {
                        root: String::from("root"),
                        cause: other.to_string(),
                    }),
                };
                tx.send_replace(Some(outcome));
            }
            ParentLink::Released => {}
        }
    }
}

/// The supervisor's handle on a child: commands go out, state is read back.
#[derive(Clone)]
pub(crate) enum Control {
    Worker {
        tx: ControlSender,
        shared: Arc<Shared>,
    },
    Supervisor {
        addr: actix::Addr<SupervisorActor>,
        shared: Arc<Shared>,
    },
}

impl Control {
    fn shared(&self) -> &Arc<Shared> {
        match self {
            Control::Worker { shared, .. } | Control::Supervisor { shared, .. } => shared,
        }
    }

    pub(crate) fn send(&self, cmd: Command) {
        match self {
            Control::Worker { tx, .. } => tx.send(cmd),
            Control::Supervisor { addr, .. } => addr.do_send(SupCommand(cmd)),
        }
    }

    pub(crate) fn state(&self) -> ChildState {
        self.shared().state()
    }

    /// Stops the child and waits for it to be gone (or for the deadline).
    pub(crate) async fn stop(&self, then: AfterStop, timeout: Duration) {
        let (ack, done) = oneshot::channel();
        self.send(Command::Stop {
            then,
            ack: Some(ack),
        });
        if tokio::time::timeout(timeout + ACK_GRACE, done)
            .await
            .is_err()
        {
            tracing::error!(
                child = %self.shared().name,
                ?timeout,
                "child did not confirm its stop in time; its thread may be blocked"
            );
        }
    }

    /// Tells the child its tree is stopped for good (see [`Command::Release`]).
    pub(crate) fn release(&self) {
        self.send(Command::Release);
    }

    /// Starts the child and waits until it runs (or failed to start).
    pub(crate) async fn start(&self, generation: u64) {
        let (ack, done) = oneshot::channel();
        self.send(Command::Start {
            generation,
            delay: Duration::ZERO,
            ack: Some(ack),
        });
        if tokio::time::timeout(START_ACK_TIMEOUT, done).await.is_err() {
            tracing::error!(child = %self.shared().name, "child did not confirm its start in time");
        }
    }
}

/// One child, as its supervisor tracks it.
pub(crate) struct Slot {
    pub(crate) id: Arc<str>,
    pub(crate) kind: ChildKind,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Duration,
    pub(crate) backoff: Backoff,
    pub(crate) control: Control,
    /// Bumped at every (re)start; exits of older generations are stale.
    pub(crate) generation: u64,
    pub(crate) started_at: Instant,
    pub(crate) last_exit: Option<String>,
}

impl Slot {
    pub(crate) fn new(
        id: Arc<str>,
        kind: ChildKind,
        restart: Restart,
        shutdown: Duration,
        backoff: Backoff,
        control: Control,
    ) -> Self {
        Self {
            id,
            kind,
            restart,
            shutdown,
            backoff,
            control,
            generation: 0,
            started_at: Instant::now(),
            last_exit: None,
        }
    }

    /// Marks a new generation about to start (after `delay`).
    pub(crate) fn next_generation(&mut self, delay: Duration) -> u64 {
        self.generation += 1;
        self.started_at = Instant::now() + delay;
        self.control.shared().count_restart();
        self.generation
    }

    pub(crate) fn restarts(&self) -> u64 {
        self.control.shared().restarts()
    }

    pub(crate) fn info(&self) -> ChildInfo {
        let shared = self.control.shared();
        ChildInfo {
            id: self.id.to_string(),
            kind: self.kind,
            state: shared.state(),
            restarts: shared.restarts(),
            last_exit: self.last_exit.clone(),
            mailbox: match self.kind {
                ChildKind::Worker => Some(shared.mailbox()),
                ChildKind::Supervisor => None,
            },
        }
    }
}
