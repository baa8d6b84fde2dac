//! What the Studio open with live updates costs the daemon: a real `troupe
//! run` (the release binary) with ~1,000 agent tasks in flight against a
//! scripted OpenAI-compatible model on 127.0.0.1 (each answer after a
//! latency), its CPU time read from `/proc/<pid>/stat` (user + system)
//! over fixed windows, alternately with no Studio open and with the Studio
//! open in real headless Chromium (Debian's, driven over chromedriver):
//! one window on the overview (it polls `/v1/status`, `/v1/stats` and
//! `/v1/approvals` every 2 s) and one on the page of a task in flight (it
//! follows `/v1/jobs/{id}/events` and reloads the job and its steps on each
//! event). Both pages are visible the whole window, so this is two tabs'
//! worth of Studio: one tab costs no more.
//!
//! The load: `--tasks` client loops, each giving the agent a task with
//! `"wait": true` and giving another once it ends, so that many are in
//! flight throughout. A task asks for `recall`, then answers: two model
//! calls of `--latency-ms` each. One more task, the watched one, goes on
//! asking for `recall` for the whole run (its page is the one open).
//!
//! ```text
//! cargo build --release --bin troupe --example bench_studio_live
//! target/release/examples/bench_studio_live [--tasks 1000] [--latency-ms 5000] \
//!     [--window-secs 30] [--rounds 4]
//! ```
//!
//! Prints each window's daemon CPU (% of one core), tasks finished, and per
//! arm the range and mean; the Studio's cost is the difference of the
//! means, as a share of one core and of the daemon's own CPU.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The watched task's prompt; the model keeps it going.
const WATCHED: &str = "Watch the queue";

struct Args {
    tasks: usize,
    latency: Duration,
    window: Duration,
    rounds: usize,
}

fn args() -> Args {
    let mut a = Args {
        tasks: 1000,
        latency: Duration::from_millis(5000),
        window: Duration::from_secs(30),
        rounds: 4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut number = |name: &str| -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match flag.as_str() {
            "--tasks" => a.tasks = number("--tasks") as usize,
            "--latency-ms" => a.latency = Duration::from_millis(number("--latency-ms")),
            "--window-secs" => a.window = Duration::from_secs(number("--window-secs")),
            "--rounds" => a.rounds = number("--rounds") as usize,
            "--bench" => {}
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// Kills the processes it holds when dropped.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `troupe` binary built beside this example (`target/release/troupe`).
fn troupe_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("TROUPE_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/release")
        .join("troupe");
    assert!(
        bin.exists(),
        "{} is missing: cargo build --release --bin troupe",
        bin.display()
    );
    bin
}

fn completion(message: Value, finish: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 18, "total_tokens": 138}
    }))
}

/// The model: asks for `recall` once (the watched task: always), then
/// answers; every reply after `latency`.
async fn model(latency: Duration) -> MockServer {
    let server = MockServer::builder()
        .disable_request_recording()
        .start()
        .await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(move |req: &Request| {
            let body = String::from_utf8_lossy(&req.body);
            let answered = body.contains(r#""role":"tool""#);
            let reply = if answered && !body.contains(WATCHED) {
                completion(json!({"role": "assistant", "content": "All done."}), "stop")
            } else {
                let args = json!({"query": "what is queued"});
                completion(
                    json!({"role": "assistant", "content": null, "tool_calls": [{
                        "id": "call_1", "type": "function",
                        "function": {"name": "recall", "arguments": args.to_string()}
                    }]}),
                    "tool_calls",
                )
            };
            reply.set_delay(latency)
        })
        .mount(&server)
        .await;
    server
}

fn write_config(dir: &Path, model: &str, tasks: usize) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    let config = dir.join("troupe.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[store]
dataDir = "{data}"

# Each load loop holds a connection while its task runs.
[http]
maxConnections = {connections}

[[providers]]
name = "scripted"
type = "openai-compatible"
baseUrl = "{model}"
apiKeyEnv = "BENCH_KEY"

[[agents]]
id = "load"
name = "The load"
systemPrompt = "You work."
tools = ["recall"]
concurrency = {concurrency}
maxSteps = 100000
[agents.modelConfig]
provider = "scripted"
model = "gpt-test"
"#,
            data = data.display(),
            concurrency = tasks + 16,
            connections = tasks + 256,
        ),
    )
    .expect("config");
    (data, config)
}

/// Polls `probe` until it answers (60 s at most).
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The daemon's CPU time so far (user + system), from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the command (which is in parentheses and may hold
    // spaces): state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

async fn browser(port: u16) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,800"]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a chromium session")
}

/// A browser on the Studio's page `hash`, logged in, once drawn.
async fn open_page(port: u16, base: &str, token: &str, hash: &str, view: &str) -> Client {
    let c = browser(port).await;
    c.goto(&format!("{base}/")).await.expect("goto");
    // The token, as a person gives it (kept in the tab's sessionStorage).
    let field = c
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#token"))
        .await
        .expect("token field");
    field.send_keys(token).await.expect("type token");
    c.find(Locator::Css("#token-go"))
        .await
        .expect("button")
        .click()
        .await
        .expect("click");
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("body[data-loaded=\"overview\"]"))
        .await
        .expect("overview drawn");
    if view != "overview" {
        c.goto(&format!("{base}/{hash}")).await.expect("goto");
        c.wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css(&format!("body[data-loaded=\"{view}\"]")))
            .await
            .expect("view drawn");
    }
    c
}

/// One measured window: the daemon's CPU as a share of one core (%), and
/// how many tasks ended in it.
struct Window {
    cpu_pct: f64,
    finished: u64,
}

fn measure(pid: u32, window: Duration, finished: &AtomicU64) -> Window {
    let (c0, t0, f0) = (
        cpu_time(pid),
        Instant::now(),
        finished.load(Ordering::Relaxed),
    );
    std::thread::sleep(window);
    let (c1, t1, f1) = (
        cpu_time(pid),
        Instant::now(),
        finished.load(Ordering::Relaxed),
    );
    Window {
        cpu_pct: (c1 - c0).as_secs_f64() / (t1 - t0).as_secs_f64() * 100.0,
        finished: f1 - f0,
    }
}

fn main() {
    let args = args();
    assert!(
        Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists(),
        "needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(args));
}

async fn run(args: Args) {
    let model = model(args.latency).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (data, config) = write_config(dir.path(), &model.uri(), args.tasks);
    let daemon = Command::new(troupe_bin())
        .args(["run", "--http", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("BENCH_KEY", "sk-bench")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("daemon.log")).expect("log"))
        .spawn()
        .expect("troupe run");
    let pid = daemon.id();
    let mut processes = Processes(vec![daemon]);
    let announced = data.join("daemon.json");
    let base = wait_for("the daemon to announce its address", || {
        let text = std::fs::read_to_string(&announced).ok()?;
        let daemon: Value = serde_json::from_str(&text).ok()?;
        daemon["url"].as_str().map(str::to_string)
    });
    let token = std::fs::read_to_string(data.join("http.token"))
        .expect("token")
        .trim()
        .to_string();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(args.tasks + 8)
        .build()
        .expect("client");

    // The watched task, then the load: each loop gives a task and waits
    // for its end, then gives the next.
    let watched: Value = http
        .post(format!("{base}/v1/agents/load/tasks"))
        .json(&json!({"prompt": WATCHED}))
        .send()
        .await
        .expect("watched task")
        .json()
        .await
        .expect("job");
    let watched = watched["id"].as_str().expect("job id").to_string();
    let finished = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    for n in 0..args.tasks {
        let (http, base, finished, failed) =
            (http.clone(), base.clone(), finished.clone(), failed.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            loop {
                let answer = http
                    .post(format!("{base}/v1/agents/load/tasks"))
                    .json(&json!({"prompt": format!("Task {n}.{i}"), "wait": true}))
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        finished.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
                i += 1;
            }
        });
    }
    // Warm up: every task in flight and a few of each finished.
    let start = Instant::now();
    loop {
        let status: Value = http
            .get(format!("{base}/v1/status"))
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("status json");
        // The agent's own count (the status's `running` list is cut short).
        let running = status["agents"][0]["running"].as_u64().unwrap_or(0) as usize;
        if running > args.tasks && finished.load(Ordering::Relaxed) >= args.tasks as u64 {
            println!(
                "bench_studio_live: {} tasks in flight after {:.0}s (and the watched one); model latency {} ms; windows of {} s",
                running - 1,
                start.elapsed().as_secs_f64(),
                args.latency.as_millis(),
                args.window.as_secs()
            );
            break;
        }
        if start.elapsed().as_secs() % 10 == 0 {
            println!(
                "  warming up: {running} running, {} queued, {} ended, {} client errors",
                status["queueDepth"],
                finished.load(Ordering::Relaxed),
                failed.load(Ordering::Relaxed)
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the load never got going: {running} running"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver");
    processes.0.push(driver);
    wait_for("chromedriver", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });

    let mut without = Vec::new();
    let mut with = Vec::new();
    for round in 0..args.rounds {
        // Without: nothing but the load.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let w = {
            let f = finished.clone();
            let window = args.window;
            tokio::task::spawn_blocking(move || measure(pid, window, &f))
                .await
                .expect("measure")
        };
        println!(
            "  round {round}: without the Studio  daemon CPU {:6.2}% of a core  ({} tasks ended, {:.1}/s)",
            w.cpu_pct,
            w.finished,
            w.finished as f64 / args.window.as_secs_f64()
        );
        without.push(w);

        // With: the overview and the watched task's page, each in its own
        // browser window, visible.
        let overview = open_page(port, &base, &token, "#/", "overview").await;
        let job = open_page(port, &base, &token, &format!("#/jobs/{watched}"), "job").await;
        let follow = job
            .execute("return document.body.dataset.follow || ''", vec![])
            .await
            .expect("follow");
        assert_eq!(
            follow,
            json!("sse"),
            "the job page follows the event stream"
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        let w = {
            let f = finished.clone();
            let window = args.window;
            tokio::task::spawn_blocking(move || measure(pid, window, &f))
                .await
                .expect("measure")
        };
        let events = job
            .execute("return Number(document.body.dataset.events || 0)", vec![])
            .await
            .expect("events");
        println!(
            "  round {round}: with the Studio     daemon CPU {:6.2}% of a core  ({} tasks ended, {:.1}/s; the job page has read {events} events)",
            w.cpu_pct,
            w.finished,
            w.finished as f64 / args.window.as_secs_f64()
        );
        with.push(w);
        overview.close().await.expect("close");
        job.close().await.expect("close");
    }

    // Per arm: mean, range, and the daemon's CPU per task ended (ms): the
    // load's pace varies a little between windows (the browser starting
    // competes for the same two cores), so the cost is also given at the
    // same pace (the per-task difference times the load's pace).
    let window = args.window.as_secs_f64();
    let stats = |ws: &[Window]| {
        let v: Vec<f64> = ws.iter().map(|w| w.cpu_pct).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let ended: u64 = ws.iter().map(|w| w.finished).sum();
        let cpu_ms: f64 = v.iter().map(|p| p / 100.0 * window * 1000.0).sum();
        let rate = ended as f64 / (window * ws.len() as f64);
        (mean, min, max, cpu_ms / ended.max(1) as f64, rate)
    };
    let (a, amin, amax, a_task, a_rate) = stats(&without);
    let (b, bmin, bmax, b_task, b_rate) = stats(&with);
    println!(
        "  without the Studio: daemon CPU {a:.2}% of a core (range {amin:.2}–{amax:.2}); {a_task:.3} ms per task at {a_rate:.1} tasks/s"
    );
    println!(
        "  with the Studio:    daemon CPU {b:.2}% of a core (range {bmin:.2}–{bmax:.2}); {b_task:.3} ms per task at {b_rate:.1} tasks/s"
    );
    let at_pace = (b_task - a_task) * a_rate / 10.0;
    println!(
        "  the Studio's cost: {:+.2} points of one core ({:+.1}% of the daemon's own CPU); at the same pace {:+.2} points ({:+.1}%) (target: ≤ 2%)",
        b - a,
        (b - a) / a * 100.0,
        at_pace,
        at_pace / a * 100.0
    );
    // The daemon's own CPU creeps up as the store and the watched task's
    // history grow: each window with the Studio against the mean of the
    // windows without it just before and just after (one more closes the
    // series).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let last = {
        let f = finished.clone();
        let window = args.window;
        tokio::task::spawn_blocking(move || measure(pid, window, &f))
            .await
            .expect("measure")
    };
    println!(
        "  closing window without the Studio: daemon CPU {:.2}% of a core",
        last.cpu_pct
    );
    without.push(last);
    let deltas: Vec<f64> = (0..with.len())
        .map(|i| with[i].cpu_pct - (without[i].cpu_pct + without[i + 1].cpu_pct) / 2.0)
        .collect();
    let mean = deltas.iter().sum::<f64>() / deltas.len() as f64;
    let (lo, hi) = deltas
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), d| {
            (l.min(*d), h.max(*d))
        });
    println!(
        "  the Studio's cost against its neighbours: {mean:+.2} points of one core (range {lo:+.2} to {hi:+.2}); {:+.1}% of the daemon's own CPU",
        mean / a * 100.0
    );
    println!(
        "  tasks failed to start or wait (client side): {}",
        failed.load(Ordering::Relaxed)
    );
    drop(processes);
}
