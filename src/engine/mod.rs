//! The job engine: one durable queue for agent tasks and background worker
//! jobs, run by a supervised Scheduler actor.
//!
//! ```text
//! engine (rest_for_one)
//! ├── workers (one_for_one)
//! │   └── worker:<name>     one WorkerActor per registered Worker
//! └── scheduler             claims ready jobs, dispatches RunJob, records outcomes
//! ```
//!
//! [`WorkerEngine`] is the handle users hold: it writes jobs to the store
//! (durable before it returns) and wakes the scheduler; the scheduler claims
//! them, sends each to its worker's actor, and records the outcome. A job's
//! way: `enqueue` → store (`queued`) → claim (`running`, attempt + 1) →
//! `RunJob` to the worker actor → `completed`, or a retry after backoff and
//! no earlier than the [`WorkerError`]'s `retry_after` (`queued` with a later
//! `runAt`), or `failed` with the last error.

mod config;
mod diagnostic;
mod error;
mod events;
mod handle;
mod runner;
mod scheduler;
mod shared;
mod stats;
mod waiters;
mod worker;

pub use config::EngineConfig;
pub(crate) use config::DEFAULT_OUTAGE_ALLOWANCE;
pub(crate) use diagnostic::{EchoWorker, SleepWorker};
pub use error::EngineError;
pub use events::EventStream;
pub use handle::{EngineBuilder, NewJob, WorkerEngine};
pub use scheduler::DrainReport;
pub(crate) use stats::EngineStats;
pub use worker::{
    BoxError, JobContext, Registration, Worker, WorkerCategory, WorkerError, WorkerInfo,
};
