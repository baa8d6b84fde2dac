//! What tasks parked awaiting approval cost while they wait.
//!
//! Run: `cargo run --release --example bench_approvals [-- --tasks N]`
//!
//! One agent (concurrency 4) whose `send_message` needs approval, a model
//! in this process that asks for that call at once (no network, so the
//! figures are the runtime's own), the job engine on a sled store in a
//! temporary directory. After a warm-up (a few tasks parked and decided,
//! so allocator arenas and caches exist before the first measure), N tasks
//! (1,000 by default) are queued and run until every one is parked, then:
//!
//! - the jobs waiting, running and queued: all N waiting, none running,
//!   although the agent has 4 slots (a parked task holds none);
//! - the process's RSS before queueing and once all are parked, per task;
//!   the stored state of a parked task (its job record as stored, with its
//!   approval, and its checkpoint), per task; the RSS per task beyond that
//!   (the target: at most 8 KiB);
//! - the time to queue and park them all, then to approve them all and
//!   see every task complete.

use std::error::Error;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;
use troupe::job::{Decision, JobStatus};
use troupe::sled::{SledConfig, SledStore};
use troupe::store::prelude::*;
use troupe::store::ListQuery;
use troupe::{
    AgentConfig, CallMeta, FinishReason, GenerateRequest, GenerateResponse, Message, ModelConfig,
    ModelGateway, ProviderError, TaskOptions, ToolCall, Troupe, TroupeConfig, Usage,
};

/// A model that asks for one `send_message` call, then answers once the
/// call's result (approved or not) is in.
struct AskOnce;

#[async_trait]
impl ModelGateway for AskOnce {
    async fn generate(
        &self,
        _: &CallMeta,
        _: &ModelConfig,
        request: GenerateRequest,
    ) -> Result<GenerateResponse, ProviderError> {
        let answered = request
            .messages
            .iter()
            .any(|m| matches!(m, Message::Tool(_)));
        let tool_calls = if answered {
            Vec::new()
        } else {
            vec![ToolCall {
                id: "call_1".into(),
                name: "send_message".into(),
                arguments: json!({"content": "Deploy at 5pm"}),
                arguments_error: None,
            }]
        };
        Ok(GenerateResponse {
            text: if answered {
                "Done.".into()
            } else {
                String::new()
            },
            finish_reason: if answered {
                FinishReason::Stop
            } else {
                FinishReason::ToolCalls
            },
            tool_calls,
            usage: Usage::default(),
            provider: "bench".into(),
            model: "bench".into(),
            latency: Duration::ZERO,
        })
    }
}

/// The process's resident set, in bytes (Linux).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn tasks_arg() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--tasks")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

/// Waits until `count` jobs are `status`.
async fn until_status(
    troupe: &Troupe,
    status: JobStatus,
    count: u64,
) -> Result<(), Box<dyn Error>> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if troupe.engine().counts().await?.status(status) >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {count} jobs {status}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Parks `n` tasks and waits until they all wait.
async fn park(troupe: &Troupe, n: usize, waiting_before: u64) -> Result<(), Box<dyn Error>> {
    for i in 0..n {
        troupe
            .task(
                "ed",
                &format!("Announce deploy {i}"),
                TaskOptions::default(),
            )
            .await?;
    }
    until_status(troupe, JobStatus::Waiting, waiting_before + n as u64).await
}

/// Approves every pending approval.
async fn approve_all(troupe: &Troupe) -> Result<usize, Box<dyn Error>> {
    let pending = troupe.engine().pending_approvals().await?;
    for a in &pending {
        troupe
            .engine()
            .decide_approval(a.id, Decision::Approve { note: None })
            .await?;
    }
    Ok(pending.len())
}

/// What the parked tasks keep in the store: their job records as stored
/// (JSON) and their checkpoints, in bytes.
async fn stored_bytes(store: &SledStore) -> Result<u64, Box<dyn Error>> {
    let mut bytes = 0u64;
    let mut cursor = None;
    loop {
        let page = store
            .list_jobs(&ListQuery {
                status: Some(JobStatus::Waiting),
                limit: 500,
                cursor,
                ..ListQuery::default()
            })
            .await?;
        for job in &page.jobs {
            bytes += serde_json::to_vec(job)?.len() as u64;
            for step in store.load_steps(job.id).await? {
                bytes += serde_json::to_vec(&step)?.len() as u64;
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(bytes),
        }
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let n = tasks_arg();
    let dir = tempfile::tempdir()?;
    let store = SledStore::open(SledConfig::new(dir.path().join("data")))?;
    let agent = AgentConfig::new(
        "ed",
        "Ed",
        "You announce.",
        ModelConfig::new("bench", "bench"),
    )
    .tools(["send_message"])
    .approval(["send_message"], None)
    .concurrency(4);
    let config = TroupeConfig::default().agent(agent);
    troupe_actors::run_system(async move {
        let troupe = Troupe::builder(config)
            .store(store.clone())
            .model(AskOnce)
            .start()
            .await?;

        // Warm-up: park and decide a few, so the first measure is not
        // of caches and arenas being made.
        park(&troupe, 50, 0).await?;
        approve_all(&troupe).await?;
        until_status(&troupe, JobStatus::Completed, 50).await?;

        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = rss();
        let started = Instant::now();
        park(&troupe, n, 0).await?;
        let parked_in = started.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss();
        let counts = troupe.engine().counts().await?;
        let stored = stored_bytes(&store).await?;

        let per_task = after.saturating_sub(before) as f64 / n as f64;
        let stored_per_task = stored as f64 / n as f64;
        let beyond = (per_task - stored_per_task).max(0.0);
        println!("bench_approvals: {n} tasks parked awaiting approval");
        println!(
            "  jobs: {} waiting, {} running, {} queued (the agent has 4 slots)",
            counts.status(JobStatus::Waiting),
            counts.status(JobStatus::Running),
            counts.status(JobStatus::Queued)
        );
        println!("  queued and parked in {parked_in:.2?}");
        println!(
            "  RSS: {:.1} MiB before, {:.1} MiB parked: {:.0} B per task",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            per_task
        );
        println!("  stored state: {stored_per_task:.0} B per task (job record with its approval, checkpoint)");
        println!(
            "  RSS beyond the stored state: {beyond:.0} B per task (target <= 8192): {}",
            if beyond <= 8192.0 { "ok" } else { "OVER" }
        );

        let started = Instant::now();
        let decided = approve_all(&troupe).await?;
        until_status(&troupe, JobStatus::Completed, 50 + n as u64).await?;
        println!(
            "  {decided} approved; every task completed in {:.2?}",
            started.elapsed()
        );
        troupe.shutdown().await?;
        Ok(())
    })
}
