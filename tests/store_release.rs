//! A shut-down engine or runtime lets go of its store, while the actix
//! system it ran on (an embedding service's) goes on: the last reference
//! to the store is dropped, so a sled directory can be opened again (a
//! PostgreSQL store's pool, heartbeat and rescuer end with it).

mod common;

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};
use troupe::job::{EnqueueOptions, JobCtx, JobStatus};
use troupe::sled::{SledConfig, SledStore};
use troupe::store::prelude::*;
use troupe::{
    JobContext, Registration, TaskOptions, Troupe, Worker, WorkerCategory, WorkerEngine,
    WorkerError,
};
use troupe_actors::run_system;

fn open(dir: &Path) -> Arc<dyn Store> {
    Arc::new(SledStore::open(SledConfig::new(dir)).unwrap())
}

/// Waits (at most 10 s) for the last reference to the store to go, then
/// opens its directory again: sled refuses while another handle holds it.
async fn assert_released(store: &Weak<dyn Store>, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.strong_count() > 0 {
        assert!(
            Instant::now() < deadline,
            "the store is still held {} time(s) after the shutdown",
            store.strong_count()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Err(e) = SledStore::open(SledConfig::new(dir)) {
        panic!("the store's directory does not open again: {e}");
    }
}

async fn run_echo(engine: &WorkerEngine) {
    let id = engine
        .enqueue(
            "echo",
            json!({"hi": 1}),
            JobCtx::default(),
            EnqueueOptions::default(),
        )
        .await
        .unwrap()
        .into_job()
        .id;
    let job = engine.wait_for(id).await.unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
}

#[test]
fn a_shut_down_engine_lets_go_of_its_store() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let store = open(dir.path());
        let weak = Arc::downgrade(&store);
        let engine = WorkerEngine::builder(store).diagnostics().start().unwrap();
        run_echo(&engine).await;
        engine.shutdown().await.unwrap();
        drop(engine);
        assert_released(&weak, dir.path()).await;
    });
}

/// A worker registered on the running engine.
struct Later;

#[async_trait]
impl Worker for Later {
    fn name(&self) -> &str {
        "later"
    }
    fn description(&self) -> &str {
        "registered at run time"
    }
    fn category(&self) -> WorkerCategory {
        WorkerCategory::Other("test".into())
    }
    async fn run(&self, args: Value, _: JobContext) -> Result<Value, WorkerError> {
        Ok(args)
    }
}

#[test]
fn a_shut_down_engine_with_workers_added_and_on_threads_lets_go_of_its_store() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let store = open(dir.path());
        let weak = Arc::downgrade(&store);
        let engine = WorkerEngine::builder(store)
            .register(Registration::new(Arc::new(common::Echo), 1).on_own_thread())
            .start()
            .unwrap();
        // One more at run time: a child its supervisor adds while running.
        engine
            .register_worker(Registration::new(Arc::new(Later), 1))
            .await
            .unwrap();
        run_echo(&engine).await;
        // A clone outlives the shutdown a moment, as a server's would.
        let clone = engine.clone();
        engine.shutdown().await.unwrap();
        drop(engine);
        drop(clone);
        assert_released(&weak, dir.path()).await;
    });
}

#[test]
fn a_shut_down_runtime_lets_go_of_its_store_on_the_embedders_system() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("jobs");
    run_system(async {
        let store = open(&store_dir);
        let weak = Arc::downgrade(&store);
        let troupe = Troupe::builder(common::offline_config(dir.path()))
            .store_arc(store)
            .start()
            .await
            .unwrap();
        let answer = troupe
            .ask("ed", "Say hello", TaskOptions::default())
            .await
            .unwrap();
        assert!(!answer.text.is_empty(), "{answer:?}");
        troupe.shutdown().await.unwrap();
        drop(troupe);
        assert_released(&weak, &store_dir).await;
    });
}
