//! The Studio's API calls, timed with many jobs stored: what the overview
//! asks for (`/v1/status`, `/v1/stats`, `/v1/jobs` first pages) with
//! 1,000,000 jobs in a sled store (inserted with the store's bulk path,
//! `insert_many`), and what a job's page asks for (`/v1/jobs/{id}`,
//! `/v1/jobs/{id}/steps`) for an agent task of 50 steps. Each call goes
//! through the daemon's HTTP server on loopback, with its token, as the
//! page sends it; the figures are per call (median and slowest of 20).
//!
//! ```text
//! cargo run --release --example bench_studio -- [--jobs 1000000] [--steps 50]
//! ```

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use troupe::http::{ControlServer, HttpConfig};
use troupe::job::{EnqueueOptions, Job, JobCtx};
use troupe::sled::{SledConfig, SledStore};
use troupe::store::prelude::*;
use troupe::Troupe;
use troupe::TroupeConfig;

/// Jobs written per `insert_many` call.
const BATCH: usize = 10_000;
/// Timed calls per route (after warm-up).
const ROUNDS: usize = 20;
/// Workers the stored jobs are spread over (registered by every runtime).
/// Claiming is paused (durably, before the runtime starts), so the store
/// holds all of them queued while the calls are timed and nothing else
/// loads the machine.
const WORKERS: [&str; 2] = ["echo", "sleep"];

struct Args {
    jobs: usize,
    steps: u32,
}

fn args() -> Args {
    let mut a = Args {
        jobs: 1_000_000,
        steps: 50,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut number = |name: &str| -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match flag.as_str() {
            "--jobs" => a.jobs = number("--jobs"),
            "--steps" => a.steps = number("--steps") as u32,
            "--bench" => {}
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// A model step and a tools step, about the size a real task writes.
fn step(i: u32) -> Value {
    if i % 2 == 0 {
        json!({"kind": "model", "response": {
            "text": "", "finishReason": "toolCalls",
            "toolCalls": [{"id": format!("call_{i}"), "name": "recall", "arguments": {"query": "the user's plans for the week", "limit": 5}}],
            "usage": {"inputTokens": 1800 + i, "outputTokens": 40, "cachedInputTokens": 0},
            "provider": "openai", "model": "gpt-4o-mini", "latency": {"secs": 0, "nanos": 734_000_000}
        }})
    } else {
        json!({"kind": "tools", "results": [{
            "callId": format!("call_{}", i - 1), "tool": "recall",
            "parameters": {"query": "the user's plans for the week", "limit": 5},
            "result": {"ok": true, "data": (0..5).map(|n| json!({"content": format!("Memory {n}: {}", "x".repeat(120)), "score": 0.5})).collect::<Vec<_>>()},
            "content": "…", "isError": false
        }]})
    }
}

/// Median and slowest of [`ROUNDS`] GETs of `path` (after 3 unmeasured).
async fn time(client: &reqwest::Client, base: &str, path: &str) -> (Duration, Duration, String) {
    let mut times = Vec::with_capacity(ROUNDS);
    let mut body = Vec::new();
    for round in 0..ROUNDS + 3 {
        let start = Instant::now();
        let resp = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("request");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        body = resp.bytes().await.expect("body").to_vec();
        if round >= 3 {
            times.push(start.elapsed());
        }
    }
    times.sort();
    // What came: its size, and how many jobs or steps when it lists some.
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let listed = ["jobs", "steps"]
        .iter()
        .find_map(|k| value[k].as_array().map(|a| format!(", {} {k}", a.len())))
        .unwrap_or_default();
    let what = format!("{} bytes{listed}", body.len());
    (times[ROUNDS / 2], times[ROUNDS - 1], what)
}

fn main() {
    let args = args();
    let dir = tempfile::tempdir().expect("temp dir");
    troupe_actors::run_system(async move {
        let store = SledStore::open(SledConfig::new(dir.path().join("data"))).expect("store");
        let now = chrono::Utc::now();
        let options = EnqueueOptions::default();
        let started = Instant::now();
        let mut left = args.jobs;
        let mut n = 0usize;
        while left > 0 {
            let batch: Vec<Job> = (0..left.min(BATCH))
                .map(|_| {
                    n += 1;
                    let ctx = JobCtx {
                        source: Some("bench".into()),
                        ..JobCtx::default()
                    };
                    Job::new(
                        WORKERS[n % WORKERS.len()],
                        json!({"n": n}),
                        ctx,
                        &options,
                        now,
                    )
                    .expect("job")
                })
                .collect();
            left -= batch.len();
            store.insert_many(batch).await.expect("insert_many");
        }
        let inserted = started.elapsed();
        store
            .set_paused(troupe::store::PauseTarget::All, true)
            .await
            .expect("pause");
        // The agent task of the job page, with its steps.
        let task = Job::new(
            "bench_agent",
            json!({"prompt": "Plan my week"}),
            JobCtx::default(),
            &options,
            now,
        )
        .expect("job");
        let task_id = task.id;
        store.insert(task).await.expect("insert");
        for i in 0..args.steps {
            store.save_step(task_id, i, step(i)).await.expect("step");
        }
        println!(
            "bench_studio: {} jobs inserted with insert_many in {:.1}s; a task of {} steps",
            args.jobs + 1,
            inserted.as_secs_f64(),
            args.steps
        );

        let start = Instant::now();
        let troupe = Troupe::builder(TroupeConfig::default())
            .store(store)
            .start()
            .await
            .expect("runtime");
        println!(
            "  runtime started on them in {:.2}s",
            start.elapsed().as_secs_f64()
        );
        let http = HttpConfig {
            addr: "127.0.0.1:0".into(),
            ..HttpConfig::default()
        };
        let token = http.token.secret().to_string();
        let server = ControlServer::start(troupe.clone(), http).expect("server");
        let base = format!("http://{}", server.local_addr());
        let client = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("client runtime");
            rt.block_on(async move {
                let mut auth = reqwest::header::HeaderMap::new();
                let bearer = format!("Bearer {token}").parse().expect("token header");
                auth.insert(reqwest::header::AUTHORIZATION, bearer);
                let client = reqwest::Client::builder()
                    .default_headers(auth)
                    .build()
                    .expect("client");
                let mut rows = Vec::new();
                for (page, path) in [
                    ("overview", "/v1/status".to_string()),
                    ("overview", "/v1/stats".to_string()),
                    ("jobs", "/v1/jobs?limit=50".to_string()),
                    ("jobs", "/v1/jobs?limit=50&status=queued".to_string()),
                    ("jobs", "/v1/jobs?limit=50&status=failed".to_string()),
                    ("jobs", "/v1/jobs?limit=50&worker=sleep".to_string()),
                    ("jobs", "/v1/jobs?limit=50&fields=args".to_string()),
                    ("jobs", "/v1/workers".to_string()),
                    ("job", format!("/v1/jobs/{task_id}")),
                    ("job", format!("/v1/jobs/{task_id}/steps")),
                ] {
                    let (median, slowest, what) = time(&client, &base, &path).await;
                    rows.push((page, path, median, slowest, what));
                }
                rows
            })
        });
        let rows = loop {
            if client.is_finished() {
                break client.join().expect("client thread");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut worst = Duration::ZERO;
        for (page, path, median, slowest, what) in rows {
            worst = worst.max(slowest);
            println!(
                "  {page:<9} GET {path:<52} median {:>7.2} ms  slowest {:>7.2} ms  ({what})",
                median.as_secs_f64() * 1000.0,
                slowest.as_secs_f64() * 1000.0
            );
        }
        println!(
            "  slowest call of all: {:.2} ms (target: 50 ms)",
            worst.as_secs_f64() * 1000.0
        );
        server.stop().await;
        let _ = troupe.shutdown().await;
    });
}
