//! Live task events under load: tasks at 1,000 in flight against a model
//! answering in 200 ms, with no one following them, then with 200
//! followers reading `GET /v1/jobs/{id}/events` (Server-Sent Events) over
//! HTTP, each following one task after another from its start to its end.
//! The target: throughput with followers within 5% of without.
//!
//! Run: `cargo run --release [--features mimalloc] --example bench_events
//! [-- --quick]`
//!
//! The model server and the followers run in child processes (this same
//! executable), so their CPU is not the runtime's; they share the
//! machine's cores with it all the same. Runs alternate (none, followed,
//! none, followed, …) and the medians are compared.
//!
//! `--arms none,followed,silent` picks the runs of each round, in order
//! (`silent`: no followers and event emission turned off in the runtime,
//! for what emitting costs); `--rounds N` how many rounds (default 3, 1
//! with `--quick`).

use std::error::Error;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use troupe::http::{ControlServer, HttpConfig};
use troupe::job::{JobCtx, JobStatus};
use troupe::{AgentConfig, EngineConfig, ModelConfig, ProviderConfig, ProviderKind};
use troupe::{ToolContext, Troupe, TroupeConfig, TypedTool};

mod support;

use support::{cpu_time, ChildServer};

type BoxError = Box<dyn Error>;

const IN_FLIGHT: usize = 1000;
const FOLLOWERS: usize = 200;

fn reply(body: &Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The model: a tool call first, the answer once the request carries a
/// tool result, each after `delay_ms` (a minimal HTTP/1.1 keep-alive
/// responder, as in bench_agents).
fn serve(delay_ms: u64) -> Result<(), BoxError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let calls = Arc::new(reply(&json!({
        "id": "c1", "object": "chat.completion", "created": 1, "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "noop", "arguments": "{\"n\":1}"}}
        ]}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 60, "completion_tokens": 20, "total_tokens": 80}
    })));
    let answer = Arc::new(reply(&json!({
        "id": "c2", "object": "chat.completion", "created": 1, "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "done"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 90, "completion_tokens": 5, "total_tokens": 95}
    })));
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("http://{}", listener.local_addr()?);
        let delay = Duration::from_millis(delay_ms);
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (calls, answer) = (calls.clone(), answer.clone());
                tokio::spawn(async move {
                    let _ = conn.set_nodelay(true);
                    let mut buf = Vec::with_capacity(4096);
                    loop {
                        // One request: headers, then `content-length` bytes.
                        let body = loop {
                            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head =
                                    String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                                let len: usize = head
                                    .lines()
                                    .find_map(|l| l.strip_prefix("content-length:"))
                                    .and_then(|v| v.trim().parse().ok())
                                    .unwrap_or(0);
                                if buf.len() >= end + 4 + len {
                                    let body = buf[end + 4..end + 4 + len].to_vec();
                                    buf.drain(..end + 4 + len);
                                    break Some(body);
                                }
                            }
                            match conn.read_buf(&mut buf).await {
                                Ok(0) | Err(_) => break None,
                                Ok(_) => {}
                            }
                        };
                        let Some(body) = body else { return };
                        let has_result = body.windows(13).any(|w| w == br#""role":"tool""#);
                        tokio::time::sleep(delay).await;
                        let out = if has_result { &answer } else { &calls };
                        if conn.write_all(out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        support::until_stdin_closes().await;
        Ok(())
    })
}

/// The followers, in a child: job ids on stdin, one per line; `FOLLOWERS`
/// of them each take the next id and read its events to the end. Prints
/// how many tasks and events were followed.
fn follow(base: String, token: String) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let client = reqwest::Client::new();
        let mut followers = Vec::new();
        for _ in 0..FOLLOWERS {
            let (rx, client, base, token) =
                (rx.clone(), client.clone(), base.clone(), token.clone());
            followers.push(tokio::spawn(async move {
                let (mut tasks, mut events) = (0u64, 0u64);
                loop {
                    let Some(id) = rx.lock().await.recv().await else {
                        return Ok::<_, String>((tasks, events));
                    };
                    let mut resp = client
                        .get(format!("{base}/v1/jobs/{id}/events"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    let mut seen_end = false;
                    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
                        let text = String::from_utf8_lossy(&chunk);
                        events += text.matches("\nid: ").count() as u64
                            + u64::from(text.starts_with("id: "));
                        seen_end |= text.contains("event: completed");
                    }
                    if !seen_end {
                        return Err(format!("the events of {id} ended without `completed`"));
                    }
                    tasks += 1;
                }
            }));
        }
        let (mut tasks, mut events) = (0, 0);
        for f in followers {
            let (t, e) = f.await??;
            tasks += t;
            events += e;
        }
        println!("{tasks} {events}");
        Ok(())
    })
}

/// A tool that does nothing.
struct Noop;

#[derive(Deserialize, JsonSchema)]
struct NoopArgs {
    /// Any number.
    #[allow(dead_code)]
    n: u32,
}

#[async_trait]
impl TypedTool for Noop {
    type Args = NoopArgs;
    type Output = ();
    type Error = std::convert::Infallible;
    fn name(&self) -> &str {
        "noop"
    }
    fn description(&self) -> &str {
        "Does nothing."
    }
    async fn run(&self, _: NoopArgs, _: ToolContext) -> Result<(), std::convert::Infallible> {
        Ok(())
    }
}

fn config(uri: &str, dir: &std::path::Path) -> TroupeConfig {
    let mut provider =
        ProviderConfig::new("llm", ProviderKind::OpenaiCompatible).with_base_url(uri);
    provider.retry.max_attempts = 1;
    let mut agent = AgentConfig::new(
        "bench",
        "Bench",
        "You are a benchmark.",
        ModelConfig::new("llm", "bench"),
    )
    .tools(["noop"]);
    agent.concurrency = IN_FLIGHT;
    agent.max_steps = 4;
    let mut config = TroupeConfig::default().agent(agent);
    config.providers.push(provider);
    config.store.data_dir = dir.to_path_buf();
    config
}

/// One run of `n` tasks; with followers when `followed`. Its throughput
/// (tasks/s) and the runtime's CPU per task.
async fn run(uri: &str, n: usize, followed: bool) -> Result<(f64, Duration), BoxError> {
    let dir = tempfile::tempdir()?;
    let engine = EngineConfig {
        claim_batch: 1024,
        ..EngineConfig::default()
    };
    let troupe = Troupe::builder(config(uri, dir.path()))
        .tool(Noop)
        .engine_config(engine)
        .start()
        .await?;
    let http = HttpConfig {
        addr: "127.0.0.1:0".into(),
        ..HttpConfig::default()
    };
    let token = http.token.secret().to_string();
    let server = ControlServer::start(troupe.clone(), http)?;
    let base = format!("http://{}", server.local_addr());
    let mut followers = if followed {
        Some(
            Command::new(std::env::current_exe()?)
                .args(["--follow", &base, &token])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?,
        )
    } else {
        None
    };
    let jobs: Vec<troupe::NewJob> = (0..n)
        .map(|i| troupe::NewJob {
            worker_name: "bench".into(),
            args: json!({ "prompt": format!("task {i}") }),
            ctx: JobCtx::default(),
            options: Default::default(),
        })
        .collect();
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let enqueued = troupe.engine().enqueue_many(jobs).await?;
    progress("enqueued");
    if let Some(child) = &mut followers {
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let ids: String = enqueued
            .iter()
            .map(|o| format!("{}\n", o.job().id))
            .collect();
        // Written from a thread: the pipe holds less than all the ids, and
        // this thread runs the scheduler.
        std::thread::spawn(move || stdin.write_all(ids.as_bytes()));
        progress("ids sent");
    }
    let mut last_report = Instant::now();
    loop {
        let counts = troupe.engine().counts().await?;
        if counts.status(JobStatus::Completed) as usize >= n {
            break;
        }
        if std::env::var_os("BENCH_PROGRESS").is_some() && last_report.elapsed().as_secs() >= 2 {
            last_report = Instant::now();
            eprintln!(
                "    {:?}: {} completed, {} running, {} queued",
                t0.elapsed(),
                counts.status(JobStatus::Completed),
                counts.status(JobStatus::Running),
                counts.status(JobStatus::Queued)
            );
        }
        if counts.status(JobStatus::Failed) > 0 {
            return Err("a benchmark task failed".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let wall = t0.elapsed();
    let cpu = (cpu_time() - cpu0) / n as u32;
    if let Some(child) = followers {
        // Waited for from a thread: this one runs the runtime the
        // followers are still reading from.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || tx.send(child.wait_with_output()));
        let out = rx.await??;
        let said = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || said.split_whitespace().next() != Some(&n.to_string()) {
            return Err(format!("the followers did not follow every task: {said}").into());
        }
        let events: u64 = said
            .split_whitespace()
            .nth(1)
            .and_then(|e| e.parse().ok())
            .unwrap_or(0);
        println!("    followed {n} tasks over SSE, {events} events");
    }
    server.stop().await;
    troupe.shutdown().await?;
    Ok((n as f64 / wall.as_secs_f64(), cpu))
}

fn progress(what: &str) {
    if std::env::var_os("BENCH_PROGRESS").is_some() {
        eprintln!("    {what}");
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--serve") => return serve(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0)),
        Some("--follow") => {
            let base = args.get(2).cloned().ok_or("--follow BASE TOKEN")?;
            let token = args.get(3).cloned().ok_or("--follow BASE TOKEN")?;
            return follow(base, token);
        }
        _ => {}
    }
    let quick = args.iter().any(|a| a == "--quick");
    let (rounds, repeats) = if quick { (2, 1) } else { (4, 3) };
    let arms: Vec<Arm> = match args.iter().position(|a| a == "--arms") {
        Some(i) => args
            .get(i + 1)
            .ok_or("--arms none,followed,silent")?
            .split(',')
            .map(Arm::parse)
            .collect::<Result<_, _>>()?,
        None if args.iter().any(|a| a == "--followed-first") => vec![Arm::Followed, Arm::None],
        None => vec![Arm::None, Arm::Followed],
    };
    let repeats = match args.iter().position(|a| a == "--rounds") {
        Some(i) => args
            .get(i + 1)
            .and_then(|r| r.parse().ok())
            .ok_or("--rounds N")?,
        None => repeats,
    };
    let n = IN_FLIGHT * rounds;
    troupe_actors::run_system(async move {
        let model = ChildServer::start(&["--serve", "200"])?;
        println!(
            "{n} tasks (two model calls, one tool call each) at {IN_FLIGHT} in flight, model answering in 200 ms (ideal {:.0} tasks/s):",
            IN_FLIGHT as f64 / 0.4
        );
        let mut figures: Vec<(Arm, Vec<f64>, Vec<f64>)> =
            arms.iter().map(|&a| (a, Vec::new(), Vec::new())).collect();
        for _ in 0..repeats {
            for (arm, rates, cpus) in figures.iter_mut() {
                // Read when the runtime starts (its event hub): the
                // benchmark's switch for measuring what emitting costs.
                if *arm == Arm::Silent {
                    std::env::set_var(NO_EVENTS, "1");
                } else {
                    std::env::remove_var(NO_EVENTS);
                }
                let (rate, cpu) = run(&model.uri, n, *arm == Arm::Followed).await?;
                std::env::remove_var(NO_EVENTS);
                let us = cpu.as_secs_f64() * 1e6;
                println!(
                    "  {}: {rate:.0} tasks/s, {us:.0} us CPU per task (the runtime's process)",
                    arm.label()
                );
                rates.push(rate);
                cpus.push(us);
            }
        }
        let base = figures
            .iter()
            .find(|f| f.0 == Arm::None)
            .map(|f| median(f.1.clone()));
        for (arm, rates, cpus) in &figures {
            let (lo, hi) = range(rates);
            let (clo, chi) = range(cpus);
            let m = median(rates.clone());
            let vs = match base {
                Some(b) if *arm != Arm::None => {
                    format!(" ({:+.1}% vs no followers)", 100.0 * (m - b) / b)
                }
                _ => String::new(),
            };
            println!(
                "{}: median {m:.0} tasks/s{vs}, range {lo:.0}-{hi:.0}; CPU per task median {:.0} us, range {clo:.0}-{chi:.0}",
                arm.label(),
                median(cpus.clone()),
            );
        }
        Ok(())
    })
}

/// The environment variable that turns event emission off in the runtime
/// (read by the event hub when it is made; for this benchmark only).
const NO_EVENTS: &str = "TROUPE_BENCH_NO_EVENTS";

/// What a run measures.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Arm {
    /// No one follows the tasks.
    None,
    /// 200 followers over SSE.
    Followed,
    /// No one follows, and no event is emitted at all.
    Silent,
}

impl Arm {
    fn parse(s: &str) -> Result<Arm, String> {
        match s {
            "none" => Ok(Arm::None),
            "followed" => Ok(Arm::Followed),
            "silent" => Ok(Arm::Silent),
            _ => Err(format!("unknown arm `{s}` (none, followed, silent)")),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Arm::None => "no followers          ",
            Arm::Followed => "200 followers         ",
            Arm::Silent => "no followers, no events",
        }
    }
}

fn range(xs: &[f64]) -> (f64, f64) {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}
