//! Agents under load, against a model server on loopback (in a child
//! process, so its CPU is not counted).
//!
//! Run: `cargo run --release [--features mimalloc] --example bench_agents
//! [-- --quick] [--cpu-only] [--troupe-only] [--load-only]
//! [--durability process|power-loss]`
//! (`BENCH_THREADS=1` also prints the CPU per task of each thread and the
//! store's flushes and committer wake-ups; `BENCH_WINDOW_US` and
//! `BENCH_CACHE_MIB` set the store's group-commit window and page cache;
//! `BENCH_TASKS` how many tasks the CPU run makes, 4,000 by default.)
//!
//! 1. CPU per agent task (two model calls, two tool calls, job records and
//!    step checkpoints durable) against a zero-latency server, 64 in flight,
//!    versus a hand-written tokio + reqwest loop making the same two calls,
//!    in one run. Also against two hand-written loops making the same
//!    durable writes with sled: one flushing after each write, one sharing
//!    flushes (group commit) as Troupe does, and one making only the writes
//!    a crash needs (the floor of any loop keeping its steps in sled). Then
//!    what one task writes (durable writes per operation, flushes, bytes)
//!    and allocates (a separate, counted run), Troupe's and the bare loop's.
//! 2. 500 and 2,000 tasks in flight against a server answering in 200 ms:
//!    the ideal is N tasks per 0.4 s (two calls each); prints throughput as
//!    a share of the ideal and the peak RSS, each level and each of Troupe,
//!    the bare loop and the durable floor in a process of its own (so one's
//!    peak is not another's).
//!
//! `--durability` sets the sled store's level (default: the store's
//! default, power-loss).

use std::error::Error;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use troupe::job::{JobCtx, JobStatus};
use troupe::store::Durability;
use troupe::EngineConfig;
use troupe::Troupe;
use troupe::{AgentConfig, ModelConfig, TroupeConfig};
use troupe::{ProviderConfig, ProviderKind};
use troupe::{ToolContext, TypedTool};

/// The allocator under the count: with `--features mimalloc`, the one the
/// `troupe` binary then uses (the hand-written loops run on it too).
#[cfg(feature = "mimalloc")]
type Inner = mimalloc::MiMalloc;
#[cfg(not(feature = "mimalloc"))]
type Inner = std::alloc::System;
#[cfg(feature = "mimalloc")]
const INNER: Inner = mimalloc::MiMalloc;
#[cfg(not(feature = "mimalloc"))]
const INNER: Inner = std::alloc::System;

/// Counts allocations while [`COUNTING`] is on (the counted runs only: the
/// shared counter would cost the timed runs their figures).
struct Counting;

static COUNTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static ALLOCATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

// SAFETY: every call goes to the inner allocator unchanged; the counter
// neither allocates nor panics.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use std::sync::atomic::Ordering::Relaxed;
        if COUNTING.load(Relaxed) {
            ALLOCATIONS.fetch_add(1, Relaxed);
        }
        // SAFETY: the caller's promises, passed on.
        unsafe { INNER.alloc(layout) }
    }
    /// Passed on as a zeroed allocation, not left to the trait's default
    /// (allocate, then write zeros): the system allocator gets fresh pages
    /// zeroed from the kernel without touching them, and the default's
    /// writes would make them resident. sled's 41 metric histograms (512
    /// KiB each, allocated zeroed and never written without its `metrics`
    /// feature) then counted 21 MiB in Troupe's peak RSS that an embedder
    /// on the system allocator does not pay.
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        use std::sync::atomic::Ordering::Relaxed;
        if COUNTING.load(Relaxed) {
            ALLOCATIONS.fetch_add(1, Relaxed);
        }
        // SAFETY: as in `alloc`.
        unsafe { INNER.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: as in `alloc`.
        unsafe { INNER.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        use std::sync::atomic::Ordering::Relaxed;
        if COUNTING.load(Relaxed) {
            ALLOCATIONS.fetch_add(1, Relaxed);
        }
        // SAFETY: as in `alloc`.
        unsafe { INNER.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (and reallocations) `run` makes, counted.
async fn count_allocations<T, F: std::future::Future<Output = T>>(run: F) -> (T, u64) {
    use std::sync::atomic::Ordering::SeqCst;
    ALLOCATIONS.store(0, SeqCst);
    COUNTING.store(true, SeqCst);
    let out = run.await;
    COUNTING.store(false, SeqCst);
    (out, ALLOCATIONS.load(SeqCst))
}

mod support;

use support::{cpu_time, peak_rss_mib, ChildServer};

type BoxError = Box<dyn Error>;

/// Which allocator this build runs on.
const ALLOCATOR: &str = if cfg!(feature = "mimalloc") {
    "mimalloc"
} else {
    "the system allocator"
};

fn tool_calls_body() -> Value {
    let calls = json!([
        {"id": "call_1", "type": "function", "function": {"name": "noop", "arguments": "{\"n\":1}"}},
        {"id": "call_2", "type": "function", "function": {"name": "noop", "arguments": "{\"n\":2}"}}
    ]);
    json!({
        "id": "c1", "object": "chat.completion", "created": 1, "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": calls}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 60, "completion_tokens": 20, "total_tokens": 80}
    })
}

fn answer_body() -> Value {
    json!({
        "id": "c2", "object": "chat.completion", "created": 1, "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "done"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 90, "completion_tokens": 5, "total_tokens": 95}
    })
}

/// Reads one HTTP/1.1 request (headers and a `content-length` body) from
/// `conn`, keeping what follows in `buf`; `None` when the peer closed.
async fn read_request(
    conn: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Vec<u8>>> {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let total = end + 4 + len;
            while buf.len() < total {
                if conn.read_buf(buf).await? == 0 {
                    return Ok(None);
                }
            }
            let body = buf[end + 4..total].to_vec();
            buf.drain(..total);
            return Ok(Some(body));
        }
        if conn.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// The model server: a minimal HTTP/1.1 keep-alive responder with two
/// canned replies (tool calls first; the answer once the request carries a
/// tool result), each after `delay_ms`. Hand-written rather than wiremock,
/// whose per-request work would take the CPU this benchmark measures (the
/// two processes share the machine's cores).
fn serve(delay_ms: u64) -> Result<(), BoxError> {
    use tokio::io::AsyncWriteExt;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let response = |body: Value| {
        let body = body.to_string();
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let calls = std::sync::Arc::new(response(tool_calls_body()));
    let answer = std::sync::Arc::new(response(answer_body()));
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
                    while let Ok(Some(body)) = read_request(&mut conn, &mut buf).await {
                        let has_result = body.windows(13).any(|w| w == br#""role":"tool""#);
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        let reply = if has_result { &answer } else { &calls };
                        if conn.write_all(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        support::until_stdin_closes().await;
        Ok(())
    })
}

/// A tool that does nothing, so the figures measure the runtime.
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

fn config(uri: &str, concurrency: usize) -> TroupeConfig {
    let mut provider =
        ProviderConfig::new("llm", ProviderKind::OpenaiCompatible).with_base_url(uri);
    provider.retry.max_attempts = 1;
    TroupeConfig {
        providers: vec![provider],
        agents: vec![AgentConfig {
            id: "bench".into(),
            name: "Bench".into(),
            system_prompt: "You are a benchmark.".into(),
            tools: vec!["noop".into()],
            model_config: ModelConfig {
                provider: "llm".into(),
                model: "bench".into(),
                temperature: None,
                max_tokens: None,
                fallbacks: Vec::new(),
                stream: false,
            },
            concurrency,
            max_steps: 4,
            reflect: false,
            budget: None,
            restart_after_tasks: None,
            restart_above_memory_mib: None,
            limits: Default::default(),
            grants: Default::default(),
            approvals: Default::default(),
        }],
        ..TroupeConfig::default()
    }
}

/// What a run of Troupe tasks cost and wrote.
#[derive(Default)]
struct Run {
    /// CPU per task.
    cpu: Duration,
    wall: Duration,
    /// Durable writes per operation, in all.
    writes: Vec<(&'static str, u64)>,
    flushes: u64,
    /// Bytes handed to `write` (sled's log and blobs).
    bytes: u64,
}

impl Run {
    /// What one task wrote, on one line.
    fn per_task(&self, n: usize) -> String {
        let n = n as f64;
        let total: u64 = self.writes.iter().map(|(_, c)| c).sum();
        let ops: Vec<String> = self
            .writes
            .iter()
            .map(|(op, c)| format!("{op} {:.2}", *c as f64 / n))
            .collect();
        format!(
            "{:.2} durable writes ({}), {:.2} flushes, {:.2} KiB written",
            total as f64 / n,
            ops.join(", "),
            self.flushes as f64 / n,
            self.bytes as f64 / n / 1024.0
        )
    }
}

/// Runs `n` tasks with at most `concurrency` in flight through Troupe.
async fn troupe_tasks(
    uri: &str,
    n: usize,
    concurrency: usize,
    durability: Option<Durability>,
) -> Result<Run, BoxError> {
    let dir = tempfile::tempdir()?;
    let mut cfg = config(uri, concurrency);
    cfg.store.data_dir = dir.path().to_path_buf();
    let engine = EngineConfig {
        claim_batch: 1024,
        ..EngineConfig::default()
    };
    let mut sled_config = troupe::sled::SledConfig::new(dir.path());
    if let Some(durability) = durability {
        sled_config = sled_config.durability(durability);
    }
    // `BENCH_CACHE_MIB`: sled's page cache (default: the store's, 32 MiB).
    if let Some(mib) = support::env_number("BENCH_CACHE_MIB", "MiB")? {
        let bytes = mib
            .checked_mul(1024 * 1024)
            .ok_or_else(|| format!("BENCH_CACHE_MIB={mib}: more bytes than fit a u64"))?;
        sled_config.cache_capacity = Some(bytes);
    }
    // `BENCH_WINDOW_US`: the group-commit window (default: the store's).
    if let Some(us) = support::env_number("BENCH_WINDOW_US", "microseconds")? {
        sled_config.commit_window = Duration::from_micros(us);
    }
    let sled = troupe::sled::SledStore::open(sled_config)?;
    let troupe = Troupe::builder(cfg)
        .store(sled.clone())
        .tool(Noop)
        .engine_config(engine)
        .start()
        .await?;
    let jobs: Vec<troupe::NewJob> = (0..n)
        .map(|i| troupe::NewJob {
            worker_name: "bench".into(),
            args: json!({ "prompt": format!("task {i}") }),
            ctx: JobCtx::default(),
            options: Default::default(),
        })
        .collect();
    let commits0 = sled.commit_stats();
    let writes0 = sled.writes_by_operation();
    let written0 = support::written_bytes();
    let cpu0 = cpu_time();
    let threads0 = support::cpu_by_thread();
    let t0 = Instant::now();
    // Enqueued beside the wait, so the wait sees when the first task
    // starts: before the enqueue returns when a large batch is stored in
    // several writes.
    let engine = troupe.engine().clone();
    let enqueue = tokio::task::spawn_local(async move {
        let stored = engine.enqueue_many(jobs).await;
        (stored, t0.elapsed())
    });
    let mut first_start = None;
    loop {
        let counts = troupe.engine().counts().await?;
        if first_start.is_none()
            && counts.status(JobStatus::Running) + counts.status(JobStatus::Completed) > 0
        {
            first_start = Some(t0.elapsed());
        }
        if counts.status(JobStatus::Completed) as usize >= n {
            break;
        }
        if counts.status(JobStatus::Failed) > 0 {
            return Err("a benchmark task failed".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let wall = t0.elapsed();
    let cpu = (cpu_time() - cpu0) / n as u32;
    let (stored, enqueued) = enqueue.await?;
    stored?;
    println!(
        "    {n} tasks enqueued in {:.1} ms; the first started after {:.1} ms",
        enqueued.as_secs_f64() * 1e3,
        first_start.unwrap_or(wall).as_secs_f64() * 1e3
    );
    let bytes = support::written_bytes() - written0;
    let writes = sled
        .writes_by_operation()
        .into_iter()
        .map(|(op, c)| {
            let before = writes0
                .iter()
                .find(|(o, _)| *o == op)
                .map_or(0, |(_, b)| *b);
            (op, c - before)
        })
        .filter(|(_, c)| *c > 0)
        .collect();
    let flushes = sled.commit_stats().flushes - commits0.flushes;
    if std::env::var_os("BENCH_THREADS").is_some() {
        for (name, per_task) in support::cpu_split(&threads0, &support::cpu_by_thread(), n as u32) {
            println!(
                "    thread {name:<24} {:>8.1} us/task",
                per_task.as_secs_f64() * 1e6
            );
        }
        let commits = sled.commit_stats();
        let flushes = commits.flushes - commits0.flushes;
        let writers = commits.writers - commits0.writers;
        let wakeups = commits.wakeups - commits0.wakeups;
        println!(
            "    flushes {flushes} ({:.2} per task), durable waits {writers} ({:.2} per task), committer wake-ups {wakeups} ({:.2} per flush)",
            flushes as f64 / n as f64,
            writers as f64 / n as f64,
            wakeups as f64 / flushes.max(1) as f64
        );
        // Mean time an attempt ran, and waited from ready to started: how
        // much of a task's time is the task itself, how much the refill
        // (the engine's histograms, read from its metrics).
        let metrics = troupe.metrics().await;
        println!(
            "    mean attempt {:.1} ms, mean wait from ready to started {:.1} ms",
            support::mean_ms(&metrics, "troupe_job_run_seconds"),
            support::mean_ms(&metrics, "troupe_job_queue_wait_seconds")
        );
        println!(
            "    written {:.1} KiB per task",
            (support::written_bytes() - written0) as f64 / n as f64 / 1024.0
        );
        // When the tasks ended, from the first one's creation.
        let mut ends = Vec::with_capacity(n);
        let mut cursor = None;
        let mut first = None;
        loop {
            let page = troupe
                .engine()
                .list_jobs(&troupe::store::ListQuery {
                    status: Some(JobStatus::Completed),
                    worker: Some("bench".into()),
                    limit: 1000,
                    cursor,
                })
                .await?;
            for job in &page.jobs {
                first = Some(
                    first.map_or(job.created_at, |f: chrono::DateTime<chrono::Utc>| {
                        f.min(job.created_at)
                    }),
                );
                ends.push(job.updated_at);
            }
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        if let Some(first) = first {
            let mut ms: Vec<i64> = ends
                .iter()
                .map(|e| (*e - first).num_milliseconds())
                .collect();
            ms.sort_unstable();
            let at = |q: f64| ms[((ms.len() - 1) as f64 * q) as usize];
            println!(
                "    tasks ended after (ms): p10 {} p50 {} p90 {} max {}",
                at(0.1),
                at(0.5),
                at(0.9),
                at(1.0)
            );
        }
    }
    troupe.shutdown().await?;
    Ok(Run {
        cpu,
        wall,
        writes,
        flushes,
        bytes,
    })
}

/// A task's opening messages in the hand-written loops.
fn first_messages(i: usize) -> Vec<Value> {
    vec![
        json!({"role": "system", "content": "You are a benchmark."}),
        json!({"role": "user", "content": format!("Task: task {i}")}),
    ]
}

/// The `noop` tool as the hand-written loops declare it.
fn noop_tools() -> Value {
    json!([{"type": "function", "function": {"name": "noop", "description": "Does nothing.",
        "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}}])
}

/// One chat completion call of the hand-written loops.
async fn chat(
    client: &reqwest::Client,
    url: &str,
    messages: &[Value],
    tools: &Value,
) -> Result<Value, BoxError> {
    Ok(client
        .post(url)
        .json(&json!({"model": "bench", "messages": messages, "tools": tools}))
        .send()
        .await?
        .json()
        .await?)
}

/// Runs (parses the arguments of) each tool call in `message` and returns
/// the tool messages answering them.
fn tool_results(message: &Value) -> Result<Vec<Value>, BoxError> {
    let calls = message["tool_calls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    calls
        .iter()
        .map(|call| {
            let _args: Value =
                serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or("{}"))?;
            Ok(json!({"role": "tool", "tool_call_id": call["id"], "content": "{\"ok\":true}"}))
        })
        .collect()
}

/// The same two calls per task, written by hand with tokio + reqwest.
async fn hand_written(uri: &str, n: usize, concurrency: usize) -> Result<Duration, BoxError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let url = format!("{uri}/chat/completions");
    let cpu0 = cpu_time();
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let client = client.clone();
        let url = url.clone();
        let permit = semaphore.clone().acquire_owned().await?;
        handles.push(tokio::task::spawn_local(async move {
            let _permit = permit;
            let mut messages = first_messages(i);
            let tools = noop_tools();
            let first = chat(&client, &url, &messages, &tools).await?;
            let message = first["choices"][0]["message"].clone();
            let results = tool_results(&message)?;
            messages.push(message);
            messages.extend(results);
            let second = chat(&client, &url, &messages, &tools).await?;
            let _ = second["choices"][0]["message"]["content"].as_str();
            Ok::<(), BoxError>(())
        }));
    }
    for h in handles {
        h.await.map_err(|e| e.to_string())??;
    }
    Ok((cpu_time() - cpu0) / n as u32)
}

/// A flush on tokio's blocking pool (sled's own `flush_async` hangs when 32
/// of them wait at once: they fill sled's I/O pool, which the flush needs).
async fn flush(db: &sled::Db) -> Result<(), BoxError> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || db.flush()).await??;
    Ok(())
}

/// Group commit by hand: a flusher thread runs one `flush` for every writer
/// that asked before it started, as a careful hand-written durable loop
/// would (the flush-per-write loop is the naive one).
struct GroupFlush {
    /// Tickets handed out (the last one asked for).
    asked: std::sync::Mutex<(u64, bool)>,
    wake: std::sync::Condvar,
    /// Tickets covered by a finished flush.
    done: tokio::sync::watch::Sender<u64>,
}

impl GroupFlush {
    fn start(db: sled::Db) -> std::sync::Arc<Self> {
        let group = std::sync::Arc::new(GroupFlush {
            asked: std::sync::Mutex::new((0, false)),
            wake: std::sync::Condvar::new(),
            done: tokio::sync::watch::channel(0).0,
        });
        let g = group.clone();
        std::thread::spawn(move || {
            let mut done = 0;
            loop {
                let target = {
                    let mut asked = g.asked.lock().unwrap_or_else(|e| e.into_inner());
                    while asked.0 == done && !asked.1 {
                        asked = g.wake.wait(asked).unwrap_or_else(|e| e.into_inner());
                    }
                    if asked.0 == done {
                        return;
                    }
                    asked.0
                };
                if db.flush().is_err() {
                    return;
                }
                done = target;
                g.done.send_replace(done);
            }
        });
        group
    }

    /// Waits until the writes made before the call are flushed.
    async fn durable(&self) -> Result<(), BoxError> {
        let ticket = {
            let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
            asked.0 += 1;
            asked.0
        };
        self.wake.notify_one();
        self.done.subscribe().wait_for(|&d| d >= ticket).await?;
        Ok(())
    }

    fn stop(&self) {
        self.asked.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.wake.notify_one();
    }
}

/// How a hand-written durable loop writes.
#[derive(Clone, Copy, PartialEq)]
enum HandWrites {
    /// Troupe's writes, each with a flush of its own: the naive loop.
    FlushEach,
    /// Troupe's writes, concurrent tasks sharing flushes ([`GroupFlush`]).
    Grouped,
    /// Only the writes a crash needs, flushes shared: no claim record (a
    /// job a crash caught running is still queued, and runs again from its
    /// checkpoints), so three per task where Troupe makes 3.08 (its claims
    /// are batched). The floor of any loop keeping these steps in sled.
    Needed,
}

/// The same two calls per task, plus the durable writes Troupe makes, written
/// by hand with sled: the job records at enqueue (all at once, one flush),
/// and at claim and completion, the
/// first model reply and the tool results, each durable before the loop
/// moves on, as `writes` says. A flush here is sled's (`sync_file_range`),
/// without the `fdatasync` Troupe's default adds: these loops are the
/// cheaper for it.
async fn hand_written_durable(
    uri: &str,
    n: usize,
    concurrency: usize,
    writes: HandWrites,
) -> Result<Duration, BoxError> {
    let grouped = writes != HandWrites::FlushEach;
    let dir = tempfile::tempdir()?;
    let db = sled::open(dir.path())?;
    let jobs = db.open_tree("jobs")?;
    let steps = db.open_tree("steps")?;
    let group = GroupFlush::start(db.clone());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let url = format!("{uri}/chat/completions");
    let cpu0 = cpu_time();
    // Enqueued up front, with one flush, as Troupe's `enqueue_many` is.
    let mut queued = Vec::with_capacity(n);
    for i in 0..n {
        let id = uuid::Uuid::now_v7();
        let job = json!({"id": id, "workerName": "bench", "args": {"prompt": format!("task {i}")},
            "status": "queued", "attempts": 0, "maxAttempts": 3, "createdAt": chrono::Utc::now()});
        jobs.insert(id.as_bytes(), serde_json::to_vec(&job)?)?;
        queued.push((id, job));
    }
    flush(&db).await?;
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut handles = Vec::with_capacity(n);
    for (i, (id, mut job)) in queued.into_iter().enumerate() {
        let (client, url, db, jobs, steps, group) = (
            client.clone(),
            url.clone(),
            db.clone(),
            jobs.clone(),
            steps.clone(),
            group.clone(),
        );
        let permit = semaphore.clone().acquire_owned().await?;
        handles.push(tokio::task::spawn_local(async move {
            let _permit = permit;
            let durable = || async {
                if grouped {
                    group.durable().await
                } else {
                    flush(&db).await
                }
            };
            let step_key = |step: u8| {
                let mut key = id.as_bytes().to_vec();
                key.push(step);
                key
            };
            job["status"] = json!("running");
            job["attempts"] = json!(1);
            job["startedAt"] = json!(chrono::Utc::now());
            if writes != HandWrites::Needed {
                jobs.insert(id.as_bytes(), serde_json::to_vec(&job)?)?;
                durable().await?;
            }
            let mut messages = first_messages(i);
            let tools = noop_tools();
            let first = chat(&client, &url, &messages, &tools).await?;
            let message = first["choices"][0]["message"].clone();
            steps.insert(
                step_key(0),
                serde_json::to_vec(&json!({"kind": "model", "messages": messages, "response": message}))?,
            )?;
            durable().await?;
            let results = tool_results(&message)?;
            messages.push(message);
            messages.extend(results.iter().cloned());
            steps.insert(step_key(1), serde_json::to_vec(&json!({"kind": "tools", "results": results}))?)?;
            durable().await?;
            let second = chat(&client, &url, &messages, &tools).await?;
            job["status"] = json!("completed");
            job["result"] = json!({"success": true, "response": second["choices"][0]["message"]["content"], "usage": second["usage"]});
            job["completedAt"] = json!(chrono::Utc::now());
            jobs.insert(id.as_bytes(), serde_json::to_vec(&job)?)?;
            durable().await?;
            Ok::<(), BoxError>(())
        }));
    }
    let mut outcome = Ok(());
    for h in handles {
        if let Err(e) = h
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        {
            outcome = Err(e);
        }
    }
    let cpu = (cpu_time() - cpu0) / n as u32;
    group.stop();
    outcome?;
    Ok(cpu)
}

/// The model server answering in 200 ms.
fn slow_server() -> Result<ChildServer, BoxError> {
    ChildServer::start(&["--serve", "200"])
}

/// Part 2, in a child process of its own: `in_flight` tasks in flight
/// against `slow`, `rounds` times over, through Troupe (`who` = `troupe`),
/// the bare loop (`hand`) or the hand-written loop making only the durable
/// writes a crash needs (`floor`); prints one line.
async fn load_child(
    who: &str,
    in_flight: usize,
    rounds: usize,
    durability: Option<Durability>,
) -> Result<(), BoxError> {
    if !["troupe", "hand", "floor"].contains(&who) {
        return Err(format!("--load-child takes troupe, hand or floor, not {who:?}").into());
    }
    let slow = slow_server()?;
    let ideal_rate = in_flight as f64 / 0.4;
    let n = in_flight * rounds;
    let (cpu, wall) = if who == "troupe" {
        let run = troupe_tasks(&slow.uri, n, in_flight, durability).await?;
        (run.cpu, run.wall)
    } else if who == "floor" {
        let t0 = Instant::now();
        let cpu = hand_written_durable(&slow.uri, n, in_flight, HandWrites::Needed).await?;
        (cpu, t0.elapsed())
    } else {
        let t0 = Instant::now();
        let cpu = hand_written(&slow.uri, n, in_flight).await?;
        (cpu, t0.elapsed())
    };
    let rate = n as f64 / wall.as_secs_f64();
    println!(
        "  {in_flight:>5} in flight, {who:<6}: {n} tasks in {wall:.2?}, {rate:.0} tasks/s = {:>3.0}% of ideal, {:.0} us CPU per task, peak RSS {:.0} MiB",
        100.0 * rate / ideal_rate,
        cpu.as_secs_f64() * 1e6,
        peak_rss_mib()
    );
    Ok(())
}

/// Part 2: each load level, Troupe's run, the bare loop's and the durable
/// floor's, each in a child process.
fn load(levels: &[(usize, usize)], durability: &str) -> Result<(), BoxError> {
    println!("Tasks in flight, model answering in 200 ms (ideal: N tasks per 0.4 s; {ALLOCATOR}):");
    for &(in_flight, rounds) in levels {
        for who in ["troupe", "hand", "floor"] {
            let out = std::process::Command::new(std::env::current_exe()?)
                .args([
                    "--load-child",
                    who,
                    &in_flight.to_string(),
                    &rounds.to_string(),
                    durability,
                ])
                .stderr(std::process::Stdio::inherit())
                .output()?;
            if !out.status.success() {
                return Err(format!("the {who} run at {in_flight} in flight failed").into());
            }
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
    }
    Ok(())
}

/// `--durability LEVEL`: `None` for the store's default.
fn durability_arg(args: &[String]) -> Result<Option<Durability>, BoxError> {
    match args.iter().position(|a| a == "--durability") {
        None => Ok(None),
        Some(i) => match args.get(i + 1).map(String::as_str) {
            Some("process") => Ok(Some(Durability::Process)),
            Some("power-loss") => Ok(Some(Durability::PowerLoss)),
            other => Err(format!("--durability takes process or power-loss, not {other:?}").into()),
        },
    }
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        let delay = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
        return serve(delay);
    }
    if args.get(1).map(String::as_str) == Some("--load-child") {
        let who = args.get(2).cloned().unwrap_or_default();
        let number = |i: usize, name: &str, default: usize| -> Result<usize, BoxError> {
            match args.get(i) {
                None => Ok(default),
                Some(s) => match s.parse() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(format!(
                        "--load-child: {name} must be a whole number above 0, not {s:?}"
                    )
                    .into()),
                },
            }
        };
        let in_flight = number(3, "tasks in flight", 500)?;
        let rounds = number(4, "rounds", 1)?;
        let durability = match args.get(5).map(String::as_str) {
            Some("process") => Some(Durability::Process),
            Some("power-loss") => Some(Durability::PowerLoss),
            _ => None,
        };
        return troupe_actors::run_system(async move {
            tokio::task::LocalSet::new()
                .run_until(load_child(&who, in_flight, rounds, durability))
                .await
        });
    }
    let quick = args.iter().any(|a| a == "--quick");
    let cpu_only = args.iter().any(|a| a == "--cpu-only");
    // For profiling: only Troupe's CPU run.
    let troupe_only = args.iter().any(|a| a == "--troupe-only");
    let load_only = args.iter().any(|a| a == "--load-only");
    let durability = durability_arg(&args)?;
    let durability_name = match durability {
        None => "default",
        Some(Durability::Process) => "process",
        Some(Durability::PowerLoss) => "power-loss",
    };
    let (n_cpu, levels): (usize, Vec<(usize, usize)>) = if quick {
        (400, vec![(500, 2), (2_000, 1)])
    } else {
        (4_000, vec![(500, 10), (2_000, 5)])
    };
    // `BENCH_TASKS`: how many tasks the CPU run makes (a longer run for a
    // profiler); default 4,000.
    let n_cpu = match support::env_number("BENCH_TASKS", "tasks")? {
        None => n_cpu,
        Some(0) => return Err("BENCH_TASKS=0: a run needs at least one task".into()),
        Some(n) => usize::try_from(n).map_err(|_| format!("BENCH_TASKS={n}: too many"))?,
    };
    const IN_FLIGHT: usize = 64;
    if !load_only {
        troupe_actors::run_system(async move {
            tokio::task::LocalSet::new()
                .run_until(async move {
                    let fast = ChildServer::start(&["--serve", "0"])?;
                    let run = troupe_tasks(&fast.uri, n_cpu, IN_FLIGHT, durability).await?;
                    let cpu_troupe = run.cpu;
                    let wall = run.wall;
                    if troupe_only {
                        println!("troupe: {:.1} us per task ({wall:?} wall)", cpu_troupe.as_secs_f64() * 1e6);
                        return Ok::<(), BoxError>(());
                    }
                    let cpu_hand = hand_written(&fast.uri, n_cpu, IN_FLIGHT).await?;
                    let cpu_durable = hand_written_durable(&fast.uri, n_cpu, IN_FLIGHT, HandWrites::FlushEach).await?;
                    let cpu_grouped = hand_written_durable(&fast.uri, n_cpu, IN_FLIGHT, HandWrites::Grouped).await?;
                    let cpu_needed = hand_written_durable(&fast.uri, n_cpu, IN_FLIGHT, HandWrites::Needed).await?;
                    println!("CPU per task, {n_cpu} tasks, {IN_FLIGHT} in flight, zero-latency model server ({ALLOCATOR}, durability {durability_name}):");
                    println!(
                        "  troupe (durable jobs and checkpoints)  {:>8.1} us ({wall:?} wall)",
                        cpu_troupe.as_secs_f64() * 1e6
                    );
                    println!(
                        "  hand-written tokio + reqwest loop      {:>8.1} us",
                        cpu_hand.as_secs_f64() * 1e6
                    );
                    println!(
                        "  ratio                                  {:>8.2}x",
                        cpu_troupe.as_secs_f64() / cpu_hand.as_secs_f64()
                    );
                    println!(
                        "  hand-written, same durable writes (sled) {:>6.1} us",
                        cpu_durable.as_secs_f64() * 1e6
                    );
                    println!(
                        "  ratio to the durable hand-written loop {:>8.2}x",
                        cpu_troupe.as_secs_f64() / cpu_durable.as_secs_f64()
                    );
                    println!(
                        "  hand-written, same writes, group commit {:>6.1} us",
                        cpu_grouped.as_secs_f64() * 1e6
                    );
                    println!(
                        "  ratio to the group-commit loop         {:>8.2}x",
                        cpu_troupe.as_secs_f64() / cpu_grouped.as_secs_f64()
                    );
                    println!(
                        "  hand-written, only the writes a crash needs {:>6.1} us ({:.2}x the bare loop)",
                        cpu_needed.as_secs_f64() * 1e6,
                        cpu_needed.as_secs_f64() / cpu_hand.as_secs_f64()
                    );
                    println!("Per task (troupe): {}", run.per_task(n_cpu));
                    // Counted apart: the count itself costs CPU.
                    let n_counted = n_cpu / 4;
                    let (counted, troupe_allocs) = count_allocations(troupe_tasks(
                        &fast.uri,
                        n_counted,
                        IN_FLIGHT,
                        durability,
                    ))
                    .await;
                    counted?;
                    let (counted, hand_allocs) =
                        count_allocations(hand_written(&fast.uri, n_counted, IN_FLIGHT)).await;
                    counted?;
                    println!(
                        "Allocations per task: troupe {:.0}, hand-written loop {:.0} ({n_counted} tasks each, start and stop included)",
                        troupe_allocs as f64 / n_counted as f64,
                        hand_allocs as f64 / n_counted as f64
                    );
                    Ok(())
                })
                .await
        })?;
        if cpu_only || troupe_only {
            return Ok(());
        }
    }
    load(&levels, durability_name)
}
