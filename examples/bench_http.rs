//! Enqueue throughput through the control API: `POST /v1/jobs` from many
//! concurrent keep-alive clients against `troupe`'s HTTP server on
//! loopback, with a real sled store in a temporary directory.
//!
//! ```text
//! cargo run --release --example bench_http -- [--jobs 50000] [--clients 32] [--paused]
//! ```
//! By default the engine runs the `echo` jobs as they arrive (the daemon's
//! real load: enqueue, claim and completion share the machine); `--paused`
//! pauses claiming first, measuring the enqueue path alone. The clients run
//! on their own thread and runtime, the server on its two worker threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use troupe::http::{ControlServer, HttpConfig};
use troupe::job::JobStatus;
use troupe::sled::{SledConfig, SledStore};
use troupe::store::PauseTarget;
use troupe::Troupe;
use troupe::TroupeConfig;

struct Args {
    jobs: usize,
    clients: usize,
    paused: bool,
}

fn args() -> Args {
    let mut a = Args {
        jobs: 50_000,
        clients: 32,
        paused: false,
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
            "--clients" => a.clients = number("--clients").max(1),
            "--paused" => a.paused = true,
            "--bench" => {}
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// Sends `jobs` enqueue requests from `clients` concurrent clients, with
/// the server's `token`; returns the elapsed time and how many answered 201.
fn load(base: String, token: String, jobs: usize, clients: usize) -> (Duration, usize) {
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
            .pool_max_idle_per_host(clients)
            .build()
            .expect("client");
        let url = format!("{base}/v1/jobs");
        // Warm-up: open the connections.
        let mut warm = Vec::new();
        for i in 0..clients {
            let (c, u) = (client.clone(), url.clone());
            warm.push(tokio::spawn(async move {
                c.post(u)
                    .json(&json!({"workerName": "echo", "args": {"warm": i}}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }));
        }
        for w in warm {
            let _ = w.await;
        }
        let next = Arc::new(AtomicUsize::new(0));
        let created = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (c, u, next, created) =
                (client.clone(), url.clone(), next.clone(), created.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= jobs {
                        break;
                    }
                    let body =
                        json!({"workerName": "echo", "args": {"i": i}, "ctx": {"source": "bench"}});
                    match c.post(&u).json(&body).send().await {
                        Ok(r) if r.status().as_u16() == 201 => {
                            let _ = r.bytes().await;
                            created.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => eprintln!("unexpected status {}", r.status()),
                        Err(e) => eprintln!("request failed: {e}"),
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        (start.elapsed(), created.load(Ordering::Relaxed))
    })
}

fn main() {
    let args = args();
    let dir = tempfile::tempdir().expect("temp dir");
    troupe_actors::run_system(async move {
        let store = SledStore::open(SledConfig::new(dir.path().join("data"))).expect("store");
        let troupe = Troupe::builder(TroupeConfig::default())
            .store(store)
            .start()
            .await
            .expect("runtime");
        if args.paused {
            troupe
                .engine()
                .pause(PauseTarget::All)
                .await
                .expect("pause");
        }
        let http = HttpConfig {
            addr: "127.0.0.1:0".into(),
            ..HttpConfig::default()
        };
        let token = http.token.secret().to_string();
        let server = ControlServer::start(troupe.clone(), http).expect("server");
        let base = format!("http://{}", server.local_addr());
        let (jobs, clients) = (args.jobs, args.clients);
        let client = std::thread::spawn(move || load(base, token, jobs, clients));
        // Let the System run the server and the engine while the clients work.
        let (elapsed, created) = loop {
            if client.is_finished() {
                break client.join().expect("client thread");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let rate = created as f64 / elapsed.as_secs_f64();
        let counts = troupe.engine().counts().await.expect("counts");
        println!(
            "bench_http: {created} jobs via POST /v1/jobs from {clients} clients in {:.2}s: {rate:.0} jobs/s ({}; completed so far {}, queued {})",
            elapsed.as_secs_f64(),
            if args.paused { "engine paused" } else { "engine running them" },
            counts.status(JobStatus::Completed),
            counts.status(JobStatus::Queued),
        );
        server.stop().await;
        let _ = troupe.shutdown().await;
    });
}
