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
//! `--arms none,followed,silent,again` picks the runs of each round, in
//! order (`silent`: no followers and event emission turned off in the
//! runtime, for what emitting costs; `again`: a second run without
//! followers, whose pairing with the first is the estimator's own noise
//! on this machine: how far apart two identical runs land); `--rounds N` how many rounds (default 3, 1
//! with `--quick`); `--waves N` how many times `IN_FLIGHT` tasks a run
//! has (default 8, 3 with `--quick`).
//!
//! `BENCH_HTTP_WORKERS=N` sets the control API's worker threads (default:
//! `HttpConfig`'s).
//!
//! The last line pairs each round's runs: throughput with followers
//! against the same round's without (the machine drifts over minutes; a
//! ratio of neighbours cancels the drift a ratio of medians keeps). From 6
//! rounds on it also gives a distribution-free 95% interval for the
//! median of those ratios: the target is shown met when the whole interval
//! is above -5%, which no single round, as noisy as the `again` arm shows
//! rounds to be, can tell.
//!
//! Each run reports two throughputs. *Steady*, the target's measure, is
//! from the 1,000th completion to the 1,000th before the last, while
//! 1,000 tasks are in flight all along. *Whole run* adds the bulk enqueue
//! of every task, the ramp (the 200 followers' first requests land on it
//! at once), and the tail, so it is lower and noisier for a fixed cost
//! that does not grow with the run.

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
/// how many tasks, events and chunks were followed.
///
/// Each follower is a minimal HTTP/1.1 client on one keep-alive
/// connection (as the model server is a minimal responder): it shares the
/// runtime's two cores, so what it spends is taken from the runtime, and a
/// real follower runs elsewhere. It still reads every byte: the chunked
/// body to its last chunk, each event counted, the `completed` one seen.
fn follow(base: String, token: String) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let addr = base
        .strip_prefix("http://")
        .ok_or("--follow BASE: http://HOST:PORT")?
        .to_string();
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
        let mut followers = Vec::new();
        for _ in 0..FOLLOWERS {
            let (rx, addr, token) = (rx.clone(), addr.clone(), token.clone());
            followers.push(tokio::spawn(async move {
                let mut conn = tokio::net::TcpStream::connect(&addr)
                    .await
                    .map_err(|e| e.to_string())?;
                conn.set_nodelay(true).map_err(|e| e.to_string())?;
                let mut buf = Vec::with_capacity(8192);
                let mut seen = Followed::default();
                loop {
                    let Some(id) = rx.lock().await.recv().await else {
                        return Ok::<_, String>(seen);
                    };
                    let request = format!(
                        "GET /v1/jobs/{id}/events HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\r\n"
                    );
                    tokio::io::AsyncWriteExt::write_all(&mut conn, request.as_bytes())
                        .await
                        .map_err(|e| e.to_string())?;
                    read_events(&mut conn, &mut buf, &mut seen)
                        .await
                        .map_err(|e| format!("following {id}: {e}"))?;
                }
            }));
        }
        let mut all = Followed::default();
        for f in followers {
            let seen = f.await??;
            all.tasks += seen.tasks;
            all.events += seen.events;
            all.chunks += seen.chunks;
        }
        println!("{} {} {}", all.tasks, all.events, all.chunks);
        Ok(())
    })
}

/// What a follower read.
#[derive(Default)]
struct Followed {
    tasks: u64,
    events: u64,
    chunks: u64,
}

/// Reads one response off `conn`: a 200 with a chunked body, to its last
/// chunk; counts its events and chunks, and the task once `completed` was
/// among them. `buf` keeps what was read past the response.
async fn read_events(
    conn: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
    seen: &mut Followed,
) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    async fn more(conn: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
        match conn.read_buf(buf).await {
            Ok(0) => Err("the connection closed mid-response".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
    fn find(buf: &[u8], what: &[u8]) -> Option<usize> {
        buf.windows(what.len()).position(|w| w == what)
    }
    let head_end = loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            break end + 4;
        }
        more(conn, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") || !head.contains("transfer-encoding: chunked") {
        return Err(format!("not a chunked 200: {head}"));
    }
    buf.drain(..head_end);
    let mut completed = false;
    loop {
        // A chunk: its size in hex, CRLF, the data, CRLF.
        let line_end = loop {
            if let Some(end) = find(buf, b"\r\n") {
                break end;
            }
            more(conn, buf).await?;
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.trim(), 16)
            .map_err(|_| format!("a bad chunk size: {size_text:?}"))?;
        while buf.len() < line_end + 2 + size + 2 {
            more(conn, buf).await?;
        }
        let data = &buf[line_end + 2..line_end + 2 + size];
        if size == 0 {
            buf.drain(..line_end + 4);
            break;
        }
        seen.chunks += 1;
        seen.events += find_all(data, b"\nid: ") + u64::from(data.starts_with(b"id: "));
        completed |= find(data, b"event: completed").is_some();
        buf.drain(..line_end + 2 + size + 2);
    }
    if !completed {
        return Err("the events ended without `completed`".into());
    }
    seen.tasks += 1;
    Ok(())
}

/// How many times `what` is in `data`.
fn find_all(data: &[u8], what: &[u8]) -> u64 {
    data.windows(what.len()).filter(|w| *w == what).count() as u64
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

/// What one run measured.
struct Measured {
    /// Tasks per second over the whole run: the bulk enqueue, the ramp to
    /// `IN_FLIGHT` running, the steady state and the tail.
    whole: f64,
    /// Tasks per second in the steady state: from the `IN_FLIGHT`th
    /// completion to the `n - IN_FLIGHT`th, when `IN_FLIGHT` tasks are in
    /// flight all along (the start's burst of enqueue and connections, and
    /// the tail of the last tasks, left out).
    steady: f64,
    /// The runtime's CPU per task over the whole run.
    cpu: Duration,
    /// The runtime's CPU per task in the steady window.
    steady_cpu: Duration,
}

/// One run of `n` tasks; with followers when `followed`.
async fn run(uri: &str, n: usize, followed: bool) -> Result<Measured, BoxError> {
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
    let mut http = HttpConfig {
        addr: "127.0.0.1:0".into(),
        ..HttpConfig::default()
    };
    if let Ok(workers) = std::env::var("BENCH_HTTP_WORKERS") {
        http.workers = workers
            .parse()
            .ok()
            .filter(|&w: &usize| w > 0)
            .ok_or_else(|| {
                format!("BENCH_HTTP_WORKERS={workers:?}: a number of threads, 1 or more")
            })?;
    }
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
    // (when, completed, CPU) at the window's two ends.
    let (lo, hi) = (IN_FLIGHT, n - IN_FLIGHT);
    let mut window: [Option<(Instant, usize, Duration)>; 2] = [None, None];
    let mut threads = [None, None];
    loop {
        let counts = troupe.engine().counts().await?;
        let completed = counts.status(JobStatus::Completed) as usize;
        for ((end, at), by_thread) in window.iter_mut().zip([lo, hi]).zip(threads.iter_mut()) {
            if end.is_none() && completed >= at {
                *end = Some((Instant::now(), completed, cpu_time()));
                *by_thread = Some(support::cpu_by_thread());
            }
        }
        if completed >= n {
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
    let [Some((t_lo, c_lo, cpu_lo)), Some((t_hi, c_hi, cpu_hi))] = window else {
        return Err("the steady window was never reached".into());
    };
    let steady_tasks = c_hi.saturating_sub(c_lo).max(1);
    let steady = steady_tasks as f64 / (t_hi - t_lo).as_secs_f64();
    let steady_cpu = (cpu_hi - cpu_lo) / steady_tasks as u32;
    if let (true, [Some(t_lo), Some(t_hi)]) =
        (std::env::var_os("BENCH_THREADS").is_some(), &threads)
    {
        for (name, per_task) in support::cpu_split(t_lo, t_hi, steady_tasks as u32) {
            println!(
                "    thread {name:<24} {:>8.1} us/task",
                per_task.as_secs_f64() * 1e6
            );
        }
        let metrics = troupe.metrics().await;
        println!(
            "    mean attempt {:.1} ms, mean wait from ready to started {:.1} ms (whole run)",
            support::mean_ms(&metrics, "troupe_job_run_seconds"),
            support::mean_ms(&metrics, "troupe_job_queue_wait_seconds")
        );
    }
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
        let figure = |i: usize| -> u64 {
            said.split_whitespace()
                .nth(i)
                .and_then(|e| e.parse().ok())
                .unwrap_or(0)
        };
        println!(
            "    followed {n} tasks over SSE, {} events in {} chunks",
            figure(1),
            figure(2)
        );
    }
    server.stop().await;
    troupe.shutdown().await?;
    Ok(Measured {
        whole: n as f64 / wall.as_secs_f64(),
        steady,
        cpu,
        steady_cpu,
    })
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

/// A distribution-free confidence interval for the median of `xs` (the
/// order statistics `x(k)` and `x(n+1-k)` for the largest `k` whose
/// interval still covers the median with at least 95% probability, from
/// the binomial(n, 1/2) law of how many values fall below it), with its
/// exact coverage; `None` below 6 values, where no interval reaches 95%.
/// It asks nothing of the noise's shape, only that rounds are independent,
/// which pairing each round with its own baseline makes closer to true.
fn median_interval(xs: &[f64]) -> Option<(f64, f64, f64)> {
    let n = xs.len();
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    // P(Bin(n, 1/2) <= j) for j = 0, 1, ...
    let mut below = Vec::with_capacity(n + 1);
    let (mut term, mut sum) = (0.5f64.powi(i32::try_from(n).ok()?), 0.0);
    for j in 0..=n {
        sum += term;
        below.push(sum);
        term *= (n - j) as f64 / (j + 1) as f64;
    }
    let k = (1..=n / 2).rev().find(|&k| below[k - 1] <= 0.025)?;
    Some((sorted[k - 1], sorted[n - k], 1.0 - 2.0 * below[k - 1]))
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
    let (waves, repeats) = if quick { (3, 1) } else { (8, 3) };
    let arms: Vec<Arm> = match args.iter().position(|a| a == "--arms") {
        Some(i) => args
            .get(i + 1)
            .ok_or("--arms none,followed,silent,again")?
            .split(',')
            .map(Arm::parse)
            .collect::<Result<_, _>>()?,
        None if args.iter().any(|a| a == "--followed-first") => vec![Arm::Followed, Arm::None],
        None => vec![Arm::None, Arm::Followed],
    };
    let repeats = number_after(&args, "--rounds")?.unwrap_or(repeats);
    let waves = number_after(&args, "--waves")?.unwrap_or(waves);
    if waves < 3 {
        return Err(
            "--waves N: at least 3 (the steady window is all but the first and the last)".into(),
        );
    }
    let n = IN_FLIGHT * waves;
    troupe_actors::run_system(async move {
        let model = ChildServer::start(&["--serve", "200"])?;
        println!(
            "{n} tasks (two model calls, one tool call each) at {IN_FLIGHT} in flight, model answering in 200 ms (ideal {:.0} tasks/s); steady: completions {IN_FLIGHT} to {}:",
            IN_FLIGHT as f64 / 0.4,
            n - IN_FLIGHT
        );
        let mut figures: Vec<(Arm, Vec<Measured>)> =
            arms.iter().map(|&a| (a, Vec::new())).collect();
        for _ in 0..repeats {
            for (arm, runs) in figures.iter_mut() {
                // Read when the runtime starts (its event hub): the
                // benchmark's switch for measuring what emitting costs.
                if *arm == Arm::Silent {
                    std::env::set_var(NO_EVENTS, "1");
                } else {
                    std::env::remove_var(NO_EVENTS);
                }
                let m = run(&model.uri, n, *arm == Arm::Followed).await?;
                std::env::remove_var(NO_EVENTS);
                println!(
                    "  {}: steady {:.0} tasks/s, {:.0} us CPU per task; whole run {:.0} tasks/s, {:.0} us (the runtime's process)",
                    arm.label(),
                    m.steady,
                    us(m.steady_cpu),
                    m.whole,
                    us(m.cpu),
                );
                runs.push(m);
            }
        }
        let column = |runs: &[Measured], f: fn(&Measured) -> f64| -> Vec<f64> {
            runs.iter().map(f).collect()
        };
        let base = figures.iter().find(|f| f.0 == Arm::None).map(|f| {
            (
                median(column(&f.1, |m| m.steady)),
                median(column(&f.1, |m| m.whole)),
            )
        });
        for (arm, runs) in &figures {
            let vs = |m: f64, b: Option<f64>| match b {
                Some(b) if *arm != Arm::None => {
                    format!(" ({:+.1}% vs no followers)", 100.0 * (m - b) / b)
                }
                _ => String::new(),
            };
            for (what, rates, cpus, b) in [
                (
                    "steady",
                    column(runs, |m| m.steady),
                    column(runs, |m| us(m.steady_cpu)),
                    base.map(|b| b.0),
                ),
                (
                    "whole ",
                    column(runs, |m| m.whole),
                    column(runs, |m| us(m.cpu)),
                    base.map(|b| b.1),
                ),
            ] {
                let (lo, hi) = range(&rates);
                let (clo, chi) = range(&cpus);
                let m = median(rates);
                println!(
                    "{} {what}: median {m:.0} tasks/s{}, range {lo:.0}-{hi:.0}; CPU per task median {:.0} us, range {clo:.0}-{chi:.0}",
                    arm.label(),
                    vs(m, b),
                    median(cpus),
                );
            }
        }
        // Each round's runs against that round's run without followers:
        // the machine drifts over minutes, and a ratio of neighbours
        // cancels what the ratio of medians keeps.
        if let Some((_, none)) = figures.iter().find(|f| f.0 == Arm::None) {
            for (arm, runs) in figures.iter().filter(|f| f.0 != Arm::None) {
                let ratios: Vec<f64> = runs
                    .iter()
                    .zip(none)
                    .map(|(m, b)| 100.0 * (m.steady - b.steady) / b.steady)
                    .collect();
                let (lo, hi) = range(&ratios);
                let within = ratios.iter().filter(|r| **r >= -5.0).count();
                let interval = match median_interval(&ratios) {
                    Some((a, b, coverage)) => format!(
                        "; median's {:.0}% interval {a:+.1}% to {b:+.1}% ({})",
                        100.0 * coverage,
                        if a >= -5.0 {
                            "within 5%"
                        } else {
                            "not shown within 5%"
                        }
                    ),
                    None => String::new(),
                };
                println!(
                    "{} steady, paired by round: median {:+.1}%, range {lo:+.1}% to {hi:+.1}%, {within} of {} rounds within 5%{interval}",
                    arm.label(),
                    median(ratios.clone()),
                    ratios.len()
                );
            }
        }
        Ok(())
    })
}

/// The number after `flag` in `args`, if the flag is there.
fn number_after(args: &[String], flag: &str) -> Result<Option<usize>, BoxError> {
    match args.iter().position(|a| a == flag) {
        Some(i) => Ok(Some(
            args.get(i + 1)
                .and_then(|r| r.parse().ok())
                .ok_or_else(|| format!("{flag} N"))?,
        )),
        None => Ok(None),
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
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
    /// No one follows, as in `None`: paired with it, the noise of the
    /// paired estimator (what "within 5%" can be told apart from).
    Again,
}

impl Arm {
    fn parse(s: &str) -> Result<Arm, String> {
        match s {
            "none" => Ok(Arm::None),
            "followed" => Ok(Arm::Followed),
            "silent" => Ok(Arm::Silent),
            "again" => Ok(Arm::Again),
            _ => Err(format!("unknown arm `{s}` (none, followed, silent, again)")),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Arm::None => "no followers          ",
            Arm::Followed => "200 followers         ",
            Arm::Silent => "no followers, no events",
            Arm::Again => "no followers, again   ",
        }
    }
}

fn range(xs: &[f64]) -> (f64, f64) {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::median_interval;

    /// The ranks and coverages of the binomial table (the values are their
    /// own ranks, shuffled, so a wrong rank or a missing sort shows).
    #[test]
    fn the_median_interval_takes_the_ranks_of_the_binomial_table() {
        let shuffled =
            |n: usize| -> Vec<f64> { (1..=n).map(|i| ((i * 7) % n + 1) as f64).collect() };
        assert_eq!(median_interval(&shuffled(5)), None);
        for (n, lo, hi, coverage) in [
            (6, 1.0, 6.0, 0.969),
            (12, 3.0, 10.0, 0.961),
            (16, 4.0, 13.0, 0.979),
        ] {
            let (a, b, c) = median_interval(&shuffled(n)).expect("an interval from 6 values on");
            assert_eq!((a, b), (lo, hi), "{n} values");
            assert!((c - coverage).abs() < 0.001, "{n} values: coverage {c}");
        }
    }
}
