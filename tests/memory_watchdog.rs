//! Memory-based recycling with the accounting allocator installed, as the
//! `troupe` binary installs it: a worker whose heap grows past its limit is
//! rebuilt between jobs and its memory let go; one under the limit is left
//! alone; memory is charged to whoever allocated it, whoever frees it.
//! (`memory_watchdog_refused.rs` checks the refusals without the allocator.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};
use troupe::alloc::{Account, AccountingAllocator};
use troupe::job::{EnqueueOptions, JobCtx, JobStatus};
use troupe::sled::{SledConfig, SledStore};
use troupe::store::prelude::*;
use troupe::{AgentConfig, ModelConfig, TroupeConfig};
use troupe::{JobContext, Registration, Worker, WorkerCategory, WorkerEngine, WorkerError};
use troupe::{TaskOptions, Troupe};
use troupe_actors::run_system;

#[global_allocator]
static ALLOC: AccountingAllocator = AccountingAllocator;

const MIB: usize = 1024 * 1024;

/// Keeps 1 MiB per job in the worker struct; answers how many it holds.
struct Hoarder {
    name: &'static str,
    kept: Mutex<Vec<Vec<u8>>>,
}

#[async_trait]
impl Worker for Hoarder {
    fn name(&self) -> &str {
        self.name
    }

    fn description(&self) -> &str {
        "keeps a MiB per job"
    }

    fn category(&self) -> WorkerCategory {
        WorkerCategory::Diagnostic
    }

    async fn run(&self, _: Value, _: JobContext) -> Result<Value, WorkerError> {
        let mut kept = self
            .kept
            .lock()
            .map_err(|_| WorkerError::permanent("poisoned"))?;
        kept.push(vec![1u8; MIB]);
        Ok(json!(kept.len()))
    }
}

/// A factory of hoarders that counts what it built.
fn hoarders(name: &'static str) -> (impl Fn() -> Arc<dyn Worker> + Send + Sync, Arc<AtomicUsize>) {
    let built = Arc::new(AtomicUsize::new(0));
    let count = built.clone();
    let factory = move || -> Arc<dyn Worker> {
        count.fetch_add(1, Ordering::SeqCst);
        Arc::new(Hoarder {
            name,
            kept: Mutex::new(Vec::new()),
        })
    };
    (factory, built)
}

fn open(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(SledStore::open(SledConfig::new(dir)).unwrap())
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Runs one job to its end; returns its result.
async fn run_job(engine: &WorkerEngine, worker: &str, i: usize) -> Value {
    let job = engine
        .enqueue(
            worker,
            json!(i),
            JobCtx::default(),
            EnqueueOptions::default(),
        )
        .await
        .unwrap()
        .into_job();
    let job = engine.wait_for(job.id).await.unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    job.result.unwrap()
}

async fn worker_restarts(engine: &WorkerEngine, worker: &str) -> u64 {
    let workers = engine.tree().supervisor("workers").unwrap();
    let children = workers.children().await.unwrap();
    children
        .iter()
        .find(|c| c.id == format!("worker:{worker}"))
        .map(|c| c.restarts)
        .unwrap_or(0)
}

#[test]
fn the_accounting_allocator_is_installed_here() {
    assert!(troupe::alloc::installed());
}

#[test]
fn a_worker_past_its_memory_limit_is_rebuilt_between_jobs_and_its_heap_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let (factory, built) = hoarders("hoarder");
        let registration =
            Registration::with_factory(factory, 1).recycle_above_memory(3 * MIB as u64 / 2);
        let account = registration.account().clone();
        assert_eq!(built.load(Ordering::SeqCst), 1, "built once to be named");
        let engine = WorkerEngine::builder(open(dir.path()))
            .register(registration)
            .start()
            .unwrap();

        let mut results = Vec::new();
        for i in 0..5 {
            results.push(run_job(&engine, "hoarder", i).await);
        }
        // Holding 1 MiB (under the limit): not recycled, and charged to it.
        assert!(
            account.live_bytes() >= MIB as u64,
            "the kept MiB is charged to the worker: {}",
            account.live_bytes()
        );
        results.push(run_job(&engine, "hoarder", 5).await);
        // Each instance grew past 1.5 MiB at its second job and was replaced
        // by a fresh one, which starts with nothing kept.
        assert_eq!(results, [1, 2, 1, 2, 1, 2].map(|n| json!(n)));
        eventually("the fourth instance after the third recycling", || {
            built.load(Ordering::SeqCst) == 4
        })
        .await;
        eventually("the recycled instance's memory to be let go", || {
            account.live_bytes() < MIB as u64 / 2
        })
        .await;
        assert_eq!(worker_restarts(&engine, "hoarder").await, 3);
        let heap = engine.worker_heap_bytes();
        assert!(heap
            .iter()
            .any(|(name, bytes)| name == "hoarder" && *bytes < MIB as u64 / 2));
        engine.shutdown().await.unwrap();
    });
}

#[test]
fn a_worker_under_its_memory_limit_is_not_recycled() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let (factory, built) = hoarders("saver");
        let registration =
            Registration::with_factory(factory, 2).recycle_above_memory(64 * MIB as u64);
        let account = registration.account().clone();
        let engine = WorkerEngine::builder(open(dir.path()))
            .register(registration)
            .start()
            .unwrap();
        let mut results = Vec::new();
        for i in 0..5 {
            results.push(run_job(&engine, "saver", i).await);
        }
        assert_eq!(results, [1, 2, 3, 4, 5].map(|n| json!(n)), "one instance");
        assert_eq!(built.load(Ordering::SeqCst), 1);
        assert_eq!(worker_restarts(&engine, "saver").await, 0);
        let live = account.live_bytes();
        assert!(
            (5 * MIB as u64..6 * MIB as u64).contains(&live),
            "the five kept MiB are charged to the worker: {live}"
        );
        engine.shutdown().await.unwrap();
    });
}

#[test]
fn count_recycling_with_a_factory_starts_each_instance_fresh() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let (factory, built) = hoarders("counted");
        let registration = Registration::with_factory(factory, 1).recycle_after(2);
        let engine = WorkerEngine::builder(open(dir.path()))
            .register(registration)
            .start()
            .unwrap();
        let mut results = Vec::new();
        for i in 0..4 {
            results.push(run_job(&engine, "counted", i).await);
        }
        assert_eq!(results, [1, 2, 1, 2].map(|n| json!(n)));
        eventually("a third instance", || built.load(Ordering::SeqCst) == 3).await;
        engine.shutdown().await.unwrap();
    });
}

#[test]
fn memory_freed_elsewhere_is_released_from_the_account_that_allocated_it() {
    let owner = Account::new();
    let kept = {
        let _in = owner.enter();
        vec![7u8; MIB]
    };
    assert_eq!(owner.live_bytes(), MIB as u64);
    // Freed on another thread, outside any scope.
    std::thread::spawn(move || drop(kept)).join().unwrap();
    assert_eq!(owner.live_bytes(), 0);

    // Allocated by a scoped future, grown (realloc) and freed outside it.
    let mut grown =
        futures::executor::block_on(owner.scope(async { Vec::<u8>::with_capacity(16) }));
    assert_eq!(owner.live_bytes(), 16);
    grown.reserve_exact(MIB);
    assert_eq!(
        owner.live_bytes(),
        grown.capacity() as u64,
        "realloc keeps the owner"
    );
    drop(grown);
    assert_eq!(owner.live_bytes(), 0);

    // Another account's allocations are not charged to this one.
    let other = Account::new();
    let theirs = {
        let _in = other.enter();
        vec![0u8; 1000]
    };
    assert_eq!((owner.live_bytes(), other.live_bytes()), (0, 1000));
    drop(theirs);
}

#[test]
fn agents_with_a_memory_limit_run_tasks_and_their_heap_is_a_metric() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = TroupeConfig::default();
    config.store.data_dir = dir.path().to_path_buf();
    config.engine.drain_timeout = "2s".into();
    config.agents.push(AgentConfig {
        id: "frugal".into(),
        name: "Frugal".into(),
        system_prompt: "You are frugal.".into(),
        tools: Vec::new(),
        model_config: ModelConfig {
            provider: "offline".into(),
            model: "offline".into(),
            temperature: Some(0.2),
            max_tokens: Some(200),
            fallbacks: Vec::new(),
            stream: false,
        },
        concurrency: 1,
        max_steps: 4,
        reflect: false,
        budget: None,
        restart_after_tasks: None,
        restart_above_memory_mib: Some(1),
        limits: Default::default(),
        grants: Default::default(),
        approvals: Default::default(),
    });
    run_system(async move {
        let troupe = Troupe::builder(config).start().await.unwrap();
        for prompt in ["Say hello", "Say goodbye"] {
            let job = troupe
                .task("frugal", prompt, TaskOptions::default())
                .await
                .unwrap();
            let _ = troupe.wait(job.id).await.unwrap();
        }
        let text = troupe.metrics().await;
        assert!(
            text.contains("# TYPE troupe_worker_heap_bytes gauge"),
            "{text}"
        );
        assert!(
            text.contains("troupe_worker_heap_bytes{worker=\"frugal\"}"),
            "{text}"
        );
        troupe.shutdown().await.unwrap();
    });
}
