//! A soak run: the whole runtime at steady load for a long time, watching
//! memory and open files, and checking that no job is lost.
//!
//! Run: `cargo run --release --example soak -- [--minutes 30] [--rate 200]`
//!
//! Load, every 100 ms: `rate / 10` jobs of a counting worker, a few `sleep`
//! jobs, and one agent task a second against a scripted model server on
//! 127.0.0.1 (a child process). Retention prunes ended jobs after a minute,
//! as a long-running daemon would. Every 30 s it samples RSS and the open
//! file count; at the end it reports their growth after the first fifth of
//! the run (warm-up) and checks that every counting job ran.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};
use troupe::job::{JobCtx, JobStatus};
use troupe::names::{ANALYZE_CODE_TOOL, SLEEP_WORKER};
use troupe::store::Retention;
use troupe::{AgentConfig, ModelConfig, TroupeConfig};
use troupe::{EngineConfig, JobContext, NewJob, Registration, Worker, WorkerCategory, WorkerError};
use troupe::{ProviderConfig, ProviderKind};
use troupe::{TaskOptions, Troupe};

mod support;

use support::{open_files, rss_mib, ChildServer};

type BoxError = Box<dyn std::error::Error>;

/// Marks job `n` as run.
struct Counter {
    seen: Arc<Vec<AtomicBool>>,
}

#[async_trait]
impl Worker for Counter {
    fn name(&self) -> &str {
        "count"
    }
    fn description(&self) -> &str {
        "marks its job as run"
    }
    fn category(&self) -> WorkerCategory {
        WorkerCategory::Diagnostic
    }
    async fn run(&self, args: Value, _: JobContext) -> Result<Value, WorkerError> {
        let n = args["n"]
            .as_u64()
            .ok_or_else(|| WorkerError::permanent("no n"))? as usize;
        let flag = self
            .seen
            .get(n)
            .ok_or_else(|| WorkerError::permanent("n out of range"))?;
        flag.store(true, Ordering::Relaxed);
        Ok(Value::Null)
    }
}

fn serve() -> Result<(), BoxError> {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    struct HasToolResult;
    impl wiremock::Match for HasToolResult {
        fn matches(&self, request: &wiremock::Request) -> bool {
            String::from_utf8_lossy(&request.body).contains(r#""role":"tool""#)
        }
    }
    // A stateless tool: what the soak watches is the runtime, not data an
    // agent keeps on purpose (memories are kept until compacted).
    let calls = json!([{"id": "call_1", "type": "function", "function": {"name": "analyze_code",
        "arguments": "{\"code\":\"fn soak() {\\n    // TODO\\n}\"}"}}]);
    let first = json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "soak",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": calls}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 10, "total_tokens": 50}});
    let second = json!({"id": "c2", "object": "chat.completion", "created": 1, "model": "soak",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 60, "completion_tokens": 2, "total_tokens": 62}});
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let server = MockServer::builder()
            .disable_request_recording()
            .start()
            .await;
        Mock::given(method("POST"))
            .and(HasToolResult)
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(second)
                    .set_delay(Duration::from_millis(50)),
            )
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(first)
                    .set_delay(Duration::from_millis(50)),
            )
            .mount(&server)
            .await;
        println!("{}", server.uri());
        support::until_stdin_closes().await;
        Ok(())
    })
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        return serve();
    }
    let minutes = arg(&args, "--minutes", 30);
    let rate = arg(&args, "--rate", 200).max(10);
    let server = ChildServer::start(&["--serve"])?;
    let uri = server.uri.clone();
    let dir = tempfile::tempdir()?;

    let total = (minutes * 60 * rate) as usize + rate as usize * 2;
    let seen: Arc<Vec<AtomicBool>> = Arc::new((0..total).map(|_| AtomicBool::new(false)).collect());
    let mut config = TroupeConfig::default();
    config.store.data_dir = dir.path().to_path_buf();
    config
        .providers
        .push(ProviderConfig::new("llm", ProviderKind::OpenaiCompatible).with_base_url(&uri));
    config.agents.push(AgentConfig {
        id: "soaker".into(),
        name: "Soaker".into(),
        system_prompt: "You soak.".into(),
        tools: vec![ANALYZE_CODE_TOOL.into()],
        model_config: ModelConfig {
            provider: "llm".into(),
            model: "soak".into(),
            temperature: Some(0.0),
            max_tokens: Some(50),
            fallbacks: Vec::new(),
            stream: false,
        },
        concurrency: 8,
        max_steps: 4,
        reflect: false,
        budget: None,
        restart_after_tasks: None,
        restart_above_memory_mib: None,
        limits: Default::default(),
        grants: Default::default(),
        approvals: Default::default(),
    });
    let engine = EngineConfig {
        retention: Retention {
            max_age: Some(Duration::from_secs(60)),
            max_count: None,
        },
        prune_every: Duration::from_secs(10),
        ..EngineConfig::default()
    };
    let seen_for_worker = seen.clone();
    let result = troupe_actors::run_system(async move {
        let troupe = Troupe::builder(config)
            .engine_config(engine)
            .worker(Registration::new(
                Arc::new(Counter {
                    seen: seen_for_worker,
                }),
                64,
            ))
            .start()
            .await?;
        let started = Instant::now();
        let run_for = Duration::from_secs(minutes * 60);
        let warm_up = run_for / 5;
        let mut samples: Vec<(Duration, f64, usize)> = Vec::new();
        // Anonymous RSS at each sample (heap: what a leak would grow).
        let mut anon: Vec<f64> = Vec::new();
        // Heap in use per glibc at each sample (what the program holds).
        let mut heap: Vec<f64> = Vec::new();
        let mut next_sample = Instant::now();
        let mut next_task = Instant::now();
        let mut n = 0usize;
        let agent_done = Arc::new(AtomicUsize::new(0));
        let agent_failed = Arc::new(AtomicUsize::new(0));
        let mut agent_sent = 0usize;
        let per_tick = (rate / 10) as usize;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while started.elapsed() < run_for {
            tick.tick().await;
            let mut batch: Vec<NewJob> = (0..per_tick)
                .map(|i| NewJob {
                    worker_name: "count".into(),
                    args: json!({ "n": n + i }),
                    ctx: JobCtx::default(),
                    options: Default::default(),
                })
                .collect();
            n += per_tick;
            batch.push(NewJob {
                worker_name: SLEEP_WORKER.into(),
                args: json!({ "ms": 20 }),
                ctx: JobCtx::default(),
                options: Default::default(),
            });
            troupe.engine().enqueue_many(batch).await?;
            if Instant::now() >= next_task {
                next_task += Duration::from_secs(1);
                let job = troupe
                    .task("soaker", "soak", TaskOptions::default())
                    .await?;
                agent_sent += 1;
                let engine = troupe.engine().clone();
                let (done, failed) = (agent_done.clone(), agent_failed.clone());
                tokio::task::spawn_local(async move {
                    match engine.wait_for(job.id).await {
                        Ok(j) if j.status == JobStatus::Completed => {
                            done.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                });
            }
            if Instant::now() >= next_sample {
                next_sample += Duration::from_secs(30);
                let sample = (started.elapsed(), rss_mib(), open_files());
                let counts = troupe.engine().counts().await?;
                anon.push(support::rss_anon_mib());
                heap.push(support::heap_in_use_mib());
                println!(
                    "{:>5.0} s  RSS {:>6.1} MiB (anon {:>5.1}, file {:>5.1}; heap in use {:>5.1})  open files {:>4}  queued {:>5}  running {:>3}  jobs {:>7}  agent tasks {}/{}",
                    sample.0.as_secs_f64(),
                    sample.1,
                    support::rss_anon_mib(),
                    support::rss_file_mib(),
                    support::heap_in_use_mib(),
                    sample.2,
                    counts.status(JobStatus::Queued),
                    counts.status(JobStatus::Running),
                    n,
                    agent_done.load(Ordering::Relaxed),
                    agent_sent
                );
                samples.push(sample);
            }
        }
        // Let the queue drain, then check that nothing was lost.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let counts = troupe.engine().counts().await?;
            let agents_settled = agent_done.load(Ordering::Relaxed)
                + agent_failed.load(Ordering::Relaxed)
                == agent_sent;
            if counts.status(JobStatus::Queued) == 0
                && counts.status(JobStatus::Running) == 0
                && agents_settled
            {
                break;
            }
            if Instant::now() > deadline {
                return Err("the queue did not drain within 2 minutes".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let lost = (0..n).filter(|i| !seen[*i].load(Ordering::Relaxed)).count();
        let base = samples
            .iter()
            .find(|s| s.0 >= warm_up)
            .copied()
            .unwrap_or(samples[0]);
        let last = samples.last().copied().unwrap_or(base);
        let base_at = samples.iter().position(|s| s.0 >= warm_up).unwrap_or(0);
        let anon_base = anon.get(base_at).copied().unwrap_or(0.0);
        let anon_last = anon.last().copied().unwrap_or(anon_base);
        // The mean of the last fifth against the fifth after warm-up: one
        // sample is noisy (the allocator returns memory in steps).
        let fifth = (samples.len() / 5).max(1);
        let mean = |xs: &[(Duration, f64, usize)]| {
            xs.iter().map(|s| s.1).sum::<f64>() / xs.len().max(1) as f64
        };
        let early = mean(&samples[base_at..(base_at + fifth).min(samples.len())]);
        let late = mean(&samples[samples.len().saturating_sub(fifth)..]);
        println!("\nsoak: {minutes} min at {rate} jobs/s + 1 agent task/s");
        println!("  counting jobs enqueued {n}, never run {lost}");
        println!(
            "  agent tasks {agent_sent}: {} completed, {} failed",
            agent_done.load(Ordering::Relaxed),
            agent_failed.load(Ordering::Relaxed)
        );
        println!(
            "  RSS after warm-up {:.1} MiB -> end {:.1} MiB ({:+.1}%)",
            base.1,
            last.1,
            (last.1 / base.1 - 1.0) * 100.0
        );
        println!(
            "  RSS mean of the {fifth} samples after warm-up {early:.1} MiB -> of the last {fifth} {late:.1} MiB ({:+.1}%)",
            (late / early - 1.0) * 100.0
        );
        println!(
            "  anonymous RSS after warm-up {anon_base:.1} MiB -> end {anon_last:.1} MiB ({:+.1}%)",
            (anon_last / anon_base - 1.0) * 100.0
        );
        let heap_mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
        let heap_early = heap_mean(&heap[base_at..(base_at + fifth).min(heap.len())]);
        let heap_late = heap_mean(&heap[heap.len().saturating_sub(fifth)..]);
        println!(
            "  heap in use (glibc), mean after warm-up {heap_early:.1} MiB -> of the last fifth {heap_late:.1} MiB ({:+.1}%)",
            (heap_late / heap_early - 1.0) * 100.0
        );
        println!(
            "  open files after warm-up {} -> end {} ({:+.1}%)",
            base.2,
            last.2,
            (last.2 as f64 / base.2 as f64 - 1.0) * 100.0
        );
        troupe.shutdown().await?;
        if lost > 0 || agent_failed.load(Ordering::Relaxed) > 0 {
            return Err("jobs were lost or failed".into());
        }
        Ok::<(), BoxError>(())
    });
    drop(server);
    result
}
