//! Storage-layer benchmark for the job engine. Run with
//! `cargo run --release --example bench_store [-- SECONDS_PER_CASE]`.
//!
//! Prints, on this machine and in this run:
//! - raw sled: insert + flush per record (one writer), and inserts alone;
//! - enqueue through `SledStore::insert` (durable, group commit) with 1, 8
//!   and 64 concurrent producers, for both durability levels;
//! - bulk enqueue (`insert_many`, 1,000 jobs per call);
//! - claim + complete throughput (claims of 256, completions concurrent);
//! - end to end: 64 producers and a claim/complete loop at the same time.
//!
//! Every figure is also shown as a ratio to the raw insert+flush rate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::join_all;
use serde_json::json;
use troupe::job::{EnqueueOptions, Job, JobCtx, JobStatus};
use troupe::sled::{SledConfig, SledStore};
use troupe::store::prelude::*;
use troupe::store::{ClaimRequest, Durability};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn new_job() -> Result<Job, BoxError> {
    let ctx = JobCtx {
        user_id: Some("user-1".into()),
        source: Some("bench".into()),
        ..JobCtx::default()
    };
    Ok(Job::new(
        "noop",
        json!({"n": 1}),
        ctx,
        &EnqueueOptions::default(),
        Utc::now(),
    )?)
}

fn open(dir: &tempfile::TempDir, durability: Durability) -> Result<Arc<SledStore>, BoxError> {
    Ok(Arc::new(SledStore::open(
        SledConfig::new(dir.path()).durability(durability),
    )?))
}

/// Raw sled: one writer, insert of a job-sized record then flush, repeatedly.
fn raw_insert_flush(per_case: Duration) -> Result<(f64, f64), BoxError> {
    let dir = tempfile::TempDir::new()?;
    let db = sled::open(dir.path())?;
    let tree = db.open_tree("jobs")?;
    let value = serde_json::to_vec(&new_job()?)?;
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < per_case {
        tree.insert(uuid::Uuid::now_v7().as_bytes(), value.as_slice())?;
        db.flush()?;
        n += 1;
    }
    let flushed = n as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < per_case {
        for _ in 0..1000 {
            tree.insert(uuid::Uuid::now_v7().as_bytes(), value.as_slice())?;
        }
        n += 1000;
    }
    let raw = n as f64 / start.elapsed().as_secs_f64();
    db.flush()?;
    Ok((flushed, raw))
}

/// `producers` tasks each enqueue one job at a time (durable) until the deadline.
async fn enqueue_rate(
    producers: usize,
    durability: Durability,
    per_case: Duration,
) -> Result<(f64, f64), BoxError> {
    let dir = tempfile::TempDir::new()?;
    let store = open(&dir, durability)?;
    let before = store.commit_stats();
    let start = Instant::now();
    let tasks = (0..producers).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut n = 0u64;
            while start.elapsed() < per_case {
                store.insert(new_job()?).await?;
                n += 1;
            }
            Ok::<u64, BoxError>(n)
        })
    });
    let mut total = 0;
    for r in join_all(tasks).await {
        total += r??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let stats = store.commit_stats();
    let per_flush =
        (stats.writers - before.writers) as f64 / (stats.flushes - before.flushes).max(1) as f64;
    Ok((total as f64 / elapsed, per_flush))
}

async fn bulk_rate(per_case: Duration) -> Result<f64, BoxError> {
    let dir = tempfile::TempDir::new()?;
    let store = open(&dir, Durability::Process)?;
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < per_case {
        let jobs = (0..1000)
            .map(|_| new_job())
            .collect::<Result<Vec<_>, _>>()?;
        store.insert_many(jobs).await?;
        n += 1000;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Claims up to 256 ready jobs and completes them all concurrently; returns
/// how many were completed.
async fn claim_complete_round(store: &Arc<SledStore>) -> Result<usize, BoxError> {
    let claimed = store.claim(&ClaimRequest::any(Utc::now(), 256)).await?;
    let n = claimed.len();
    let done = claimed.into_iter().map(|job| {
        let store = Arc::clone(store);
        async move { store.complete(job.id, job.attempt, json!(null)).await }
    });
    for r in join_all(done).await {
        r?;
    }
    Ok(n)
}

async fn claim_complete_rate(jobs: usize) -> Result<f64, BoxError> {
    let dir = tempfile::TempDir::new()?;
    let store = open(&dir, Durability::Process)?;
    for _ in 0..jobs / 1000 {
        let batch = (0..1000)
            .map(|_| new_job())
            .collect::<Result<Vec<_>, _>>()?;
        store.insert_many(batch).await?;
    }
    let start = Instant::now();
    let mut done = 0;
    loop {
        let n = claim_complete_round(&store).await?;
        if n == 0 {
            break;
        }
        done += n;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let counts = store.counts().await?;
    if counts.status(JobStatus::Completed) as usize != done {
        return Err("completed count does not match".into());
    }
    drop(store);
    let start = Instant::now();
    let reopened = open(&dir, Durability::Process)?;
    let reopen = start.elapsed();
    let n = reopened.counts().await?.status(JobStatus::Completed);
    println!(
        "reopen (scan + index rebuild)         {:>10.1} ms for {n} jobs",
        reopen.as_secs_f64() * 1000.0
    );
    Ok(done as f64 / elapsed)
}

/// 64 single-job producers and one claim/complete loop at once; the rate of
/// jobs enqueued and completed, counting until the queue is drained.
async fn end_to_end(per_case: Duration) -> Result<f64, BoxError> {
    let dir = tempfile::TempDir::new()?;
    let store = open(&dir, Durability::Process)?;
    let stop = Arc::new(AtomicBool::new(false));
    let enqueued = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let producers: Vec<_> = (0..64)
        .map(|_| {
            let (store, stop, enqueued) =
                (Arc::clone(&store), Arc::clone(&stop), Arc::clone(&enqueued));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    store.insert(new_job()?).await?;
                    enqueued.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<(), BoxError>(())
            })
        })
        .collect();
    let consumer = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut done = 0u64;
            loop {
                let n = claim_complete_round(&store).await?;
                done += n as u64;
                if n == 0 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            }
            Ok::<u64, BoxError>(done)
        })
    };
    tokio::time::sleep(per_case).await;
    stop.store(true, Ordering::Relaxed);
    for p in join_all(producers).await {
        p??;
    }
    let done = consumer.await??;
    let elapsed = start.elapsed().as_secs_f64();
    if done != enqueued.load(Ordering::Relaxed) {
        return Err("end to end: not every enqueued job was completed".into());
    }
    Ok(done as f64 / elapsed)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let secs: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(2.0);
    let per_case = Duration::from_secs_f64(secs);
    let ratio = |x: f64, base: f64| x / base;

    let (flushed, raw) = tokio::task::spawn_blocking(move || raw_insert_flush(per_case)).await??;
    println!("raw sled insert+flush (1 writer)      {flushed:>10.0} rec/s   (baseline = 1.00)");
    println!("raw sled insert, no flush             {raw:>10.0} rec/s");
    for durability in [Durability::Process, Durability::PowerLoss] {
        for producers in [1, 8, 64] {
            let (rate, per_flush) = enqueue_rate(producers, durability, per_case).await?;
            let label = format!("enqueue, {durability:?}, {producers} producers");
            println!(
                "{label:<38}{rate:>10.0} jobs/s  x{:.2}  ({per_flush:.1} jobs/flush)",
                ratio(rate, flushed),
            );
        }
    }
    let bulk = bulk_rate(per_case).await?;
    println!(
        "bulk enqueue (1,000 per call)         {bulk:>10.0} jobs/s  x{:.2}",
        ratio(bulk, flushed)
    );
    let cc = claim_complete_rate(50_000).await?;
    println!(
        "claim(256)+complete, 50k jobs         {cc:>10.0} jobs/s  x{:.2}",
        ratio(cc, flushed)
    );
    let done = end_to_end(per_case).await?;
    println!(
        "end to end, 64 producers, completed   {done:>10.0} jobs/s  x{:.2}",
        ratio(done, flushed)
    );
    Ok(())
}
