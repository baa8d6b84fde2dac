//! Live task events: what a job does as it goes, for whoever follows it.
//!
//! Each job (an agent task, or any worker's job) emits [`TaskEvent`]s: its
//! attempts starting, each model call, the answer's text, each tool call and
//! result, approvals, retries, and how it ended. They go to the
//! [`EventHub`], which keeps, per job, a bounded history and wakes the
//! job's live followers; a [`Subscription`] reads the history from a given
//! `seq` on, then the live events, and ends after the job's terminal event.
//!
//! The hub is memory only, of this process: it keeps a job's events while
//! the job is active and, after it ends, for `HubConfig::keep_ended_for`
//! among the last `HubConfig::keep_ended` ended jobs. What outlives that
//! (after a restart, on another node) is rebuilt from the durable record by
//! the runtime (see ARCHITECTURE.md, "Live task events").
//!
//! Emitting costs a lock of the job's own log and a push: followers are
//! woken only when there are any, and then in batches, once per tick
//! (`bell`), so a job nobody follows pays for little more than the events
//! it keeps, and a burst of events reaches a follower in one write. Each event's SSE frame is written once,
//! by its first follower, and shared by the others.

mod bell;
mod event;
mod hub;
pub(crate) mod sse;

pub(crate) use event::seq;
pub use event::{TaskEvent, TaskEventKind};
pub(crate) use hub::{decision_seq, Emitter, EventHub, Logged, Subscription};
