//! Erlang/OTP-style supervision trees on actix, knowing nothing of LLMs.
//!
//! # Runtime semantics
//!
//! - **A child** is a factory plus settings ([`ChildSpec`]). Its instance is
//!   made by the factory at start and at every restart, so a restarted actor
//!   begins from a clean state.
//! - **Addresses are stable.** An [`ActorRef`] points at the child's mailbox,
//!   which outlives every instance. Messages queued while the child restarts
//!   wait and are delivered to the new instance; the message being handled
//!   when it crashed gets [`CallError::Dropped`], never a hang.
//! - **A panic is a restart**, of that child only. Handlers, hooks, timers and
//!   futures run under `catch_unwind` (actix by itself lets a panic end the
//!   actor for good). Other actors, on the same thread or not, keep running
//!   with their state.
//! - **Strategies** ([`Strategy`]): one_for_one restarts the child that
//!   exited; one_for_all stops the others in reverse start order and starts
//!   all again in order; rest_for_one does the same for the children started
//!   after it.
//! - **Restart types** ([`Restart`]): permanent children always restart,
//!   transient ones only after an abnormal exit, temporary ones never.
//! - **Intensity** ([`Intensity`]): more than `max_restarts` restarts within
//!   `period` and the supervisor stops all its children (reverse order) and
//!   reports itself failed to its parent, which treats it like any failed
//!   child; at the root, [`Tree::wait`] returns the error. Trees nest to any
//!   depth.
//! - **Restart delay** ([`BackoffPolicy`]): the first restart after a stable
//!   period is immediate; consecutive ones back off exponentially with
//!   jitter. Running `reset_after` without a crash starts the sequence over.
//! - **Bounded mailboxes**: [`ActorRef::send`] waits while the mailbox is at
//!   capacity; [`ActorRef::try_send`] fails at once.
//! - **Ordered shutdown**: children stop in reverse start order; each gets its
//!   `stopping` hook and its shutdown timeout, then is dropped regardless.
//!   A handler that blocks its thread cannot be interrupted; keep blocking
//!   work off actor threads.
//! - **Observability**: each child's state, restart count and mailbox figures
//!   are readable without a message ([`ActorRef::state`],
//!   [`SupervisorRef::children`]); every restart emits a `tracing` event with
//!   the reason.
//!
//! # Example
//!
//! ```
//! use troupe_actors::*;
//!
//! struct Counter(u64);
//! impl Actor for Counter {}
//!
//! struct Add(u64);
//! impl Message for Add { type Result = u64; }
//! impl Handler<Add> for Counter {
//!     fn handle(&mut self, Add(n): Add, _: &mut Context<'_, Self>) -> Reply<u64> {
//!         self.0 += n;
//!         Reply::Ready(self.0)
//!     }
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     run_system(async {
//!         let tree = SupervisorSpec::new("root")
//!             .strategy(Strategy::OneForOne)
//!             .intensity(Intensity::new(3, std::time::Duration::from_secs(5)))
//!             .child(ChildSpec::new("counter", || Counter(0)).mailbox(128))
//!             .start()?;
//!         let counter: ActorRef<Counter> = tree.actor("counter")?;
//!         assert_eq!(counter.send(Add(2)).await?, 2);
//!         tree.shutdown().await;
//!         Ok::<(), Box<dyn std::error::Error>>(())
//!     })
//! }
//! ```
//!
//! Everything must run inside an actix system (`actix_rt::System`, or
//! `#[actix::main]`, or [`run_system`]); [`SupervisorSpec::start`] refuses
//! otherwise. A program that is not an actix program (a `#[tokio::main]`
//! service) hosts its actors on a [`SystemThread`].

mod actor;
mod address;
mod cell;
mod context;
mod control;
mod error;
mod exit;
mod retry;
mod spec;
mod status;
mod strategy;
mod supervisor;
mod system;
mod tree;

pub use actor::{Actor, Handler, LocalBoxFuture, Message, Reply};
pub use address::{ActorRef, Recipient};
pub use context::Context;
pub use error::{BuildError, CallError, LookupError, TreeError, TrySendError};
pub use exit::ExitReason;
pub use retry::{
    Backoff, BackoffPolicy, BackoffPolicyError, FailedAttempt, GiveUpReason, RetryDecision,
    RetryPolicy,
};
pub use spec::{Arbiter, ChildSpec, Restart, DEFAULT_MAILBOX, DEFAULT_SHUTDOWN};
pub use status::{ChildInfo, ChildKind, ChildState, MailboxStats};
pub use strategy::{Intensity, Strategy};
pub use system::{in_system, SystemGone, SystemThread};
pub use tree::{StartChildError, SupervisorRef, SupervisorSpec, Tree};

/// Runs a future to completion on a fresh actix system (one thread) and
/// returns its output; for `main` functions, tests and examples, so that they
/// need not name actix themselves.
pub fn run_system<F: std::future::Future>(fut: F) -> F::Output {
    actix::System::new().block_on(fut)
}
