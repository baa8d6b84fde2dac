//! What can be read about a child at run time, without asking its actor.
//!
//! Each worker child shares a small block of atomics with every address to it
//! and with its supervisor, so health checks and metrics read state, restart
//! counts and mailbox depth without sending a message (and so without waiting
//! behind a full mailbox).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

/// The life-cycle state of a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildState {
    /// Handling messages.
    Running,
    /// Crashed or being restarted; messages wait in the mailbox.
    Restarting,
    /// Stopped for good (temporary child, shutdown, or given up); messages
    /// sent now get an error at once.
    Stopped,
}

impl ChildState {
    fn to_u8(self) -> u8 {
        match self {
            ChildState::Running => 0,
            ChildState::Restarting => 1,
            ChildState::Stopped => 2,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => ChildState::Running,
            1 => ChildState::Restarting,
            _ => ChildState::Stopped,
        }
    }

    /// Lower-case name, as used in logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ChildState::Running => "running",
            ChildState::Restarting => "restarting",
            ChildState::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for ChildState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Whether a child is an actor or a nested supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildKind {
    /// A worker actor.
    Worker,
    /// A nested supervisor with children of its own.
    Supervisor,
}

/// Mailbox figures of a worker child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxStats {
    /// The bound: `send` waits once this many messages are queued.
    pub capacity: usize,
    /// Messages sent and not yet handled, including senders waiting for room.
    pub queued: usize,
    /// Messages handled since the tree started, across restarts.
    pub handled: u64,
}

/// A snapshot of one child, as returned by `SupervisorRef::children`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildInfo {
    /// The child's id, unique among its siblings.
    pub id: String,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Current state.
    pub state: ChildState,
    /// How many times the supervisor restarted this child.
    pub restarts: u64,
    /// Why it last exited, if it ever did.
    pub last_exit: Option<String>,
    /// Mailbox figures (workers only).
    pub mailbox: Option<MailboxStats>,
}

/// State shared by a worker cell, its addresses and its supervisor.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    state: AtomicU8,
    restarts: AtomicU64,
    /// Every message in flight holds a clone of this token, so its strong
    /// count, less this one, is the mailbox depth: exact whatever happens to
    /// a message (handled, or dropped with an abandoned send), at the cost of
    /// one atomic increment and decrement per message.
    queue_token: Arc<QueueToken>,
    /// Written only by the cell's own thread; a plain load and store.
    handled: AtomicU64,
    capacity: usize,
}

/// See [`Shared::queue_token`].
#[derive(Debug)]
pub(crate) struct QueueToken;

impl Shared {
    pub(crate) fn new(name: Arc<str>, capacity: usize) -> Self {
        Self {
            name,
            state: AtomicU8::new(ChildState::Running.to_u8()),
            restarts: AtomicU64::new(0),
            queue_token: Arc::new(QueueToken),
            handled: AtomicU64::new(0),
            capacity,
        }
    }

    pub(crate) fn state(&self) -> ChildState {
        ChildState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn set_state(&self, state: ChildState) {
        self.state.store(state.to_u8(), Ordering::Release);
    }

    pub(crate) fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    pub(crate) fn count_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// A token for one message entering the mailbox.
    pub(crate) fn queue_slot(&self) -> Arc<QueueToken> {
        self.queue_token.clone()
    }

    /// Counts a handled message; only ever called from the cell's thread.
    pub(crate) fn handled(&self) {
        let n = self.handled.load(Ordering::Relaxed);
        self.handled.store(n + 1, Ordering::Relaxed);
    }

    pub(crate) fn mailbox(&self) -> MailboxStats {
        MailboxStats {
            capacity: self.capacity,
            queued: Arc::strong_count(&self.queue_token) - 1,
            handled: self.handled.load(Ordering::Relaxed),
        }
    }
}
