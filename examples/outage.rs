//! A provider outage, waited out: tasks keep arriving while the model
//! server answers 503 (overloaded) for a while, then it comes back. Every
//! setting is the default (breaker: 5 failures open it for 30 s; provider
//! retries: 4 attempts; jobs: 3 attempts, outage allowance 40), so the
//! figure is what a daemon does out of the box.
//!
//! Run: `cargo run --release --example outage [-- --minutes 2 --tasks 30]`
//!
//! Prints how many tasks completed and failed (lost), their attempts and
//! the outages each waited out, and how long after the provider came back
//! the last one finished.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use troupe::prelude::*;
use troupe::JobStatus;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// 503 while the provider is down, a final answer once it is back.
struct Flaky(Arc<AtomicBool>);

impl Respond for Flaky {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        if self.0.load(Ordering::SeqCst) {
            return ResponseTemplate::new(503)
                .set_body_json(json!({"error": {"message": "overloaded"}}));
        }
        ResponseTemplate::new(200).set_body_json(json!({
            "id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "done"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
        }))
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (minutes, tasks) = (arg("--minutes", 2), arg("--tasks", 30));
    let down = Arc::new(AtomicBool::new(true));
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(Flaky(down.clone()))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir()?;
    let config = TroupeConfig::default()
        .data_dir(dir.path())
        .provider(
            ProviderConfig::new("llm", ProviderKind::OpenaiCompatible)
                .with_base_url(server.uri())
                .with_api_key(troupe::ApiKey::new("sk-outage-example")),
        )
        .agent(AgentConfig::new(
            "ed",
            "Ed",
            "You edit.",
            ModelConfig::new("llm", "m"),
        ));
    let troupe = Troupe::builder(config).start().await?;
    let started = Instant::now();
    let outage = Duration::from_secs(minutes * 60);
    let mut ids = Vec::new();
    // Tasks arrive all through the outage.
    let spacing = outage / u32::try_from(tasks.max(1))?;
    for i in 0..tasks {
        let job = troupe
            .task("ed", &format!("task {i}"), TaskOptions::default())
            .await?;
        ids.push(job.id);
        tokio::time::sleep(spacing).await;
    }
    tokio::time::sleep(outage.saturating_sub(started.elapsed())).await;
    down.store(false, Ordering::SeqCst);
    let back = Instant::now();
    println!(
        "provider down for {:?}; {tasks} tasks queued during it",
        started.elapsed()
    );
    let (mut completed, mut failed, mut max_outages, mut max_attempts) = (0, 0, 0, 0);
    for id in &ids {
        let job = troupe.engine().wait_for(*id).await?;
        match job.status {
            JobStatus::Completed => completed += 1,
            _ => {
                failed += 1;
                println!("  lost: {} {:?}", job.id, job.error);
            }
        }
        max_outages = max_outages.max(job.outages);
        max_attempts = max_attempts.max(job.attempt - job.outages);
    }
    println!(
        "completed {completed}, failed (lost) {failed}; most outages waited out by one task {max_outages}, most attempts spent {max_attempts} of 3; last task done {:?} after the provider came back",
        back.elapsed()
    );
    troupe.shutdown().await?;
    Ok(())
}
