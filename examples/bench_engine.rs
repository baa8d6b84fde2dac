//! The job engine end to end: durable no-op jobs from enqueue to `completed`.
//!
//! Run: `cargo run --release --example bench_engine [-- --quick]
//! [--durability process|power-loss]` (default: the store's, power-loss;
//! `BENCH_WINDOW_US` sets the store's group-commit window)
//!
//! Prints, in one run on this machine:
//! - the raw rate of sled insert + flush (one writer), the baseline;
//! - bulk enqueue (`enqueue_many`, 1,000 jobs a call) to all completed;
//! - 64 concurrent single-job producers to all completed;
//! - enqueue-to-start latency at light load (one job at a time).
//!
//! Every enqueue is durable (flushed) before it is acknowledged.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};
use troupe::job::{EnqueueOptions, JobCtx, JobStatus};
use troupe::sled::{SledConfig, SledStore};
use troupe::store::prelude::*;
use troupe::store::Durability;
use troupe::{
    EngineConfig, JobContext, NewJob, Registration, Worker, WorkerCategory, WorkerEngine,
    WorkerError,
};

mod support;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// When each job (by its `n`) started.
type Starts = Arc<Mutex<Vec<(u64, Instant)>>>;

/// Does nothing; optionally notes when each job started.
struct Noop {
    started: Option<Starts>,
}

#[async_trait]
impl Worker for Noop {
    fn name(&self) -> &str {
        "noop"
    }
    fn description(&self) -> &str {
        "does nothing"
    }
    fn category(&self) -> WorkerCategory {
        WorkerCategory::Diagnostic
    }
    async fn run(&self, args: Value, _: JobContext) -> Result<Value, WorkerError> {
        if let Some(started) = &self.started {
            let n = args["n"].as_u64().unwrap_or(0);
            started
                .lock()
                .map_err(WorkerError::permanent)?
                .push((n, Instant::now()));
        }
        Ok(Value::Null)
    }
}

/// The level `--durability` asks for (`None`: the store's default).
static DURABILITY: std::sync::OnceLock<Option<Durability>> = std::sync::OnceLock::new();

fn engine(dir: &std::path::Path, started: Option<Starts>) -> Result<WorkerEngine, BoxError> {
    let mut sled = SledConfig::new(dir);
    if let Some(Some(durability)) = DURABILITY.get() {
        sled = sled.durability(*durability);
    }
    // `BENCH_WINDOW_US`: the group-commit window (default: the store's).
    if let Some(us) = support::env_number("BENCH_WINDOW_US", "microseconds")? {
        sled.commit_window = std::time::Duration::from_micros(us);
    }
    let store: Arc<dyn Store> = Arc::new(SledStore::open(sled)?);
    let config = EngineConfig {
        claim_batch: 1024,
        ..EngineConfig::default()
    };
    Ok(WorkerEngine::builder(store)
        .config(config)
        .register(Registration::new(Arc::new(Noop { started }), 1024))
        .start()?)
}

async fn wait_all_completed(engine: &WorkerEngine, n: u64) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let counts = engine.counts().await?;
        if counts.status(JobStatus::Completed) >= n {
            return Ok(());
        }
        if counts.status(JobStatus::Failed) > 0 {
            return Err("a no-op job failed".into());
        }
        if Instant::now() > deadline {
            return Err("jobs did not complete in time".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn raw_insert_flush(per_case: Duration) -> Result<f64, BoxError> {
    let dir = tempfile::TempDir::new()?;
    let db = sled::open(dir.path())?;
    let tree = db.open_tree("jobs")?;
    let job = troupe::job::Job::new(
        "noop",
        json!({"n": 1}),
        JobCtx::default(),
        &EnqueueOptions::default(),
        chrono::Utc::now(),
    )?;
    let value = serde_json::to_vec(&job)?;
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < per_case {
        tree.insert(uuid::Uuid::now_v7().as_bytes(), value.as_slice())?;
        db.flush()?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

async fn bulk(total: u64) -> Result<f64, BoxError> {
    let dir = tempfile::TempDir::new()?;
    let engine = engine(dir.path(), None)?;
    let t = Instant::now();
    let mut n = 0;
    while n < total {
        let batch: Vec<NewJob> = (0..1000)
            .map(|i| NewJob {
                worker_name: "noop".into(),
                args: json!({ "n": n + i }),
                ctx: JobCtx::default(),
                options: EnqueueOptions::default(),
            })
            .collect();
        engine.enqueue_many(batch).await?;
        n += 1000;
    }
    wait_all_completed(&engine, total).await?;
    let rate = total as f64 / t.elapsed().as_secs_f64();
    engine.shutdown().await?;
    Ok(rate)
}

async fn producers(producers: u64, per_producer: u64) -> Result<f64, BoxError> {
    let dir = tempfile::TempDir::new()?;
    let engine = engine(dir.path(), None)?;
    let t = Instant::now();
    let mut handles = Vec::new();
    for p in 0..producers {
        let engine = engine.clone();
        handles.push(tokio::task::spawn_local(async move {
            for i in 0..per_producer {
                engine
                    .enqueue(
                        "noop",
                        json!({ "n": p * per_producer + i }),
                        JobCtx::default(),
                        EnqueueOptions::default(),
                    )
                    .await?;
            }
            Ok::<(), troupe::EngineError>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let total = producers * per_producer;
    wait_all_completed(&engine, total).await?;
    let rate = total as f64 / t.elapsed().as_secs_f64();
    engine.shutdown().await?;
    Ok(rate)
}

async fn latency(samples: u64) -> Result<Vec<Duration>, BoxError> {
    let dir = tempfile::TempDir::new()?;
    let started = Arc::new(Mutex::new(Vec::new()));
    let engine = engine(dir.path(), Some(started.clone()))?;
    let mut out = Vec::new();
    for n in 0..samples {
        let t = Instant::now();
        let job = engine
            .enqueue(
                "noop",
                json!({ "n": n }),
                JobCtx::default(),
                EnqueueOptions::default(),
            )
            .await?
            .into_job();
        engine.wait_for(job.id).await?;
        let at = started
            .lock()
            .map_err(|e| e.to_string())?
            .iter()
            .find(|(m, _)| *m == n)
            .map(|(_, at)| *at)
            .ok_or("no start recorded")?;
        out.push(at - t);
    }
    engine.shutdown().await?;
    out.sort();
    Ok(out)
}

fn main() -> Result<(), BoxError> {
    let quick = std::env::args().any(|a| a == "--quick");
    let args: Vec<String> = std::env::args().collect();
    let durability = match args.iter().position(|a| a == "--durability") {
        None => None,
        Some(i) => match args.get(i + 1).map(String::as_str) {
            Some("process") => Some(Durability::Process),
            Some("power-loss") => Some(Durability::PowerLoss),
            other => {
                return Err(
                    format!("--durability takes process or power-loss, not {other:?}").into(),
                )
            }
        },
    };
    let _ = DURABILITY.set(durability);
    println!(
        "durability: {}",
        durability.map_or("the default", |d| match d {
            Durability::Process => "process",
            Durability::PowerLoss => "power-loss",
        })
    );
    let (bulk_n, prod_n, lat_n, raw_secs) = if quick {
        (5_000, 50, 100, 1)
    } else {
        (100_000, 500, 1_000, 3)
    };
    let raw = raw_insert_flush(Duration::from_secs(raw_secs))?;
    println!("raw sled insert+flush (1 writer)          {raw:>9.0} rec/s  (baseline)");
    troupe_actors::run_system(async move {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                let b = bulk(bulk_n).await?;
                println!(
                    "bulk enqueue -> completed ({bulk_n} jobs)    {b:>9.0} jobs/s  ({:.1}x raw)",
                    b / raw
                );
                let p = producers(64, prod_n).await?;
                println!(
                    "64 producers -> completed ({} jobs)      {p:>9.0} jobs/s  ({:.1}x raw)",
                    64 * prod_n,
                    p / raw
                );
                let l = latency(lat_n).await?;
                let pct = |q: f64| l[((l.len() as f64 - 1.0) * q).round() as usize];
                println!(
                    "enqueue -> start latency, light load      median {:?}  p90 {:?}  p99 {:?}",
                    pct(0.5),
                    pct(0.9),
                    pct(0.99)
                );
                Ok::<(), BoxError>(())
            })
            .await
    })
}
