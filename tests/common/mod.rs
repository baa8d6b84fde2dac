//! Helpers shared by the root crate's integration tests: stores and jobs,
//! a control API served in process ([`daemon`]) and the `troupe` binary
//! ([`cli`]). Each test file that needs them says `mod common;`; not every
//! file uses every helper.
#![allow(dead_code)]

pub mod cli;
pub mod cluster;
pub mod daemon;
pub mod mcp;
pub mod scripted;
pub mod sse;

use std::path::Path;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use troupe::job::{EnqueueOptions, Job, JobCtx};
use troupe::sled::{SledConfig, SledStore};
use troupe::store::prelude::*;
use troupe::store::{ClaimRequest, StoreError};
use troupe::{JobContext, Worker, WorkerCategory, WorkerError};

/// `SledStore::open(config)` once a sled handle just dropped on the same
/// directory (a raw `sled::Db` of the test's, or one a failed open let go
/// of) has released it: sled releases its lock from a thread of its own a
/// moment after the drop (a store's own drop waits for that; these do not).
pub fn open_after_raw_sled(config: SledConfig) -> Result<SledStore, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match SledStore::open(config.clone()) {
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// One agent, Ed, on the offline model, with its data in `<dir>/data`.
pub fn offline_config(dir: &Path) -> troupe::TroupeConfig {
    let mut config: troupe::TroupeConfig = toml::from_str(
        r#"
        [[agents]]
        id = "ed"
        name = "Ed"
        systemPrompt = "You edit."
        [agents.modelConfig]
        provider = "offline"
        model = "offline"
        "#,
    )
    .unwrap();
    config.store.data_dir = dir.join("data");
    config
}

/// The sled store in `dir`, with the default configuration.
pub fn open(dir: impl AsRef<Path>) -> SledStore {
    let dir = dir.as_ref();
    SledStore::open(SledConfig::new(dir))
        .unwrap_or_else(|e| panic!("open the store in {}: {e}", dir.display()))
}

/// A new queued job for `worker` (args `{"n": 1}`, created now).
pub fn job(worker: &str, opts: EnqueueOptions) -> Job {
    Job::new(
        worker,
        json!({"n": 1}),
        JobCtx::default(),
        &opts,
        Utc::now(),
    )
    .unwrap_or_else(|e| panic!("build a job: {e}"))
}

/// Inserts a new job for `worker` and returns it as stored.
pub async fn enqueue(store: &dyn Store, worker: &str, opts: EnqueueOptions) -> Job {
    store
        .insert(job(worker, opts))
        .await
        .unwrap_or_else(|e| panic!("insert: {e}"))
        .into_job()
}

/// Claims every ready job at `now`.
pub async fn claim_all(store: &dyn Store, now: DateTime<Utc>) -> Vec<Job> {
    store
        .claim(&ClaimRequest::any(now, 1000))
        .await
        .unwrap_or_else(|e| panic!("claim: {e}"))
}

/// The field an [`StoreError::InvalidInput`] names (panics on any other error).
pub fn field_of(err: &StoreError) -> &'static str {
    match err {
        StoreError::InvalidInput { field, .. } => field,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

/// `echo`: returns its args unchanged (as the engine's built-in diagnostic
/// worker of that name does).
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

#[async_trait]
impl Worker for Echo {
    fn name(&self) -> &str {
        troupe::names::ECHO_WORKER
    }
    fn description(&self) -> &str {
        "Returns its args unchanged."
    }
    fn category(&self) -> WorkerCategory {
        WorkerCategory::Diagnostic
    }
    async fn run(&self, args: Value, _: JobContext) -> Result<Value, WorkerError> {
        Ok(args)
    }
}
