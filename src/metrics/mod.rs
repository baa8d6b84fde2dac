//! Metrics of a running Troupe in the Prometheus text format; every series
//! is prefixed `troupe_`. The runtime gathers them (`Troupe::metrics`);
//! `GET /metrics` serves them.
//!
//! Two sources:
//! - **read at scrape time** from state the runtime keeps anyway: job counts
//!   by status and worker (the store's in-memory indexes), the pause state,
//!   each actor's state, restarts and mailbox depth (troupe-actors' shared
//!   atomics, through `SupervisorRef::children`), each provider's circuit,
//!   and today's tokens and cost per agent and provider (the usage totals);
//! - **pushed as things happen**, where nothing is left to read afterwards:
//!   job waits and run times (histograms), attempts, retries and outcomes
//!   ([`EngineStats`], recorded by the Scheduler actor), and provider calls
//!   and errors by class ([`CallStats`], recorded by the `ProviderSet`).
//!
//! Why hand-written rather than the `metrics` or `prometheus` crates: most
//! series are snapshots of existing state, which those crates would have us
//! copy into gauges on every scrape; the pushed ones are a handful of
//! counters and histograms; and the text format is a few lines. A global
//! recorder (`metrics`) would also mix the figures of several runtimes in
//! one process (tests, embedding), while these live in each runtime.

mod history;
mod registry;
mod text;

pub(crate) use history::MinuteHistory;

pub(crate) use registry::{CounterVec, HistogramVec, SECONDS_BUCKETS};
pub(crate) use text::{Exposition, Kind, CONTENT_TYPE};
