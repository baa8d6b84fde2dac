//! CPU per call through [`Provider::generate`] versus a bare reqwest call to
//! the same loopback server, in one run (issue 4's budget: at most 1.15x).
//!
//! The server (wiremock, answering with a recorded OpenAI body) runs in a
//! child process so its CPU is not counted. CPU is this process's on-CPU time
//! summed over its threads (`/proc/self/task/*/schedstat`, Linux), measured
//! over alternating rounds so drift hits both arms alike.
//!
//! Run: `cargo run --release --example bench_provider -- [calls_per_round] [rounds]`

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use troupe::__bench::Provider;
use troupe::{ApiKey, GenerateRequest, Message, ProviderConfig, ProviderKind};

const BODY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/openai-chat-text-usage.json"
);

mod support;

use support::cpu_time;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        return serve();
    }
    let calls: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let rounds: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4);

    let server = support::ChildServer::start(&["--serve"])?;
    let uri = server.uri.clone();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(bench(&uri, calls, rounds));
    drop(server); // closing its stdin tells the server to exit
    result
}

fn serve() -> Result<(), Box<dyn Error>> {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let server = MockServer::start().await;
        let body = std::fs::read(BODY)?;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
            .mount(&server)
            .await;
        println!("{}", server.uri());
        // Serve until the parent closes our stdin.
        support::until_stdin_closes().await;
        Ok::<_, Box<dyn Error>>(())
    })
}

async fn bench(uri: &str, calls: u32, rounds: u32) -> Result<(), Box<dyn Error>> {
    let key = "sk-bench-0123456789";
    let provider = Provider::new(
        ProviderConfig::new("bench", ProviderKind::Openai)
            .with_base_url(uri)
            .with_api_key(ApiKey::new(key)),
    )?;
    let req = GenerateRequest {
        model: "gpt-4.1-nano".into(),
        system: Some("You are a helpful assistant.".into()),
        messages: vec![Message::user(
            "Invent a new holiday and describe its traditions.",
        )],
        temperature: Some(0.7),
        max_tokens: Some(2000),
        ..Default::default()
    };
    let body = serde_json::to_vec(&provider.encode(&req))?;
    let url = format!("{uri}/chat/completions");
    let bare = reqwest::Client::builder().build()?;
    // The same per-request timeout the provider uses (its default, 120 s):
    // production code never calls without one, and it costs a timer per call.
    let bare_timeout = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;

    // One call of each arm: 0 = bare, 1 = bare + timeout, 2 = bare + timeout
    // + parsing the body into a `serde_json::Value` (the idiomatic bare call,
    // `resp.json()`), 3 = Provider (encode, limiter, breaker, retry, decode).
    const ARMS: usize = 4;
    let call = |arm: usize| {
        let (provider, req, body, url) = (&provider, &req, &body, &url);
        let client = if arm == 0 { &bare } else { &bare_timeout };
        async move {
            if arm == 3 {
                black_box(provider.generate(req.clone()).await?);
            } else if arm == 2 {
                let r = client
                    .post(url)
                    .bearer_auth(key)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                black_box(r.json::<serde_json::Value>().await?);
            } else {
                let r = client
                    .post(url)
                    .bearer_auth(key)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                black_box(r.bytes().await?);
            }
            Ok::<(), Box<dyn Error>>(())
        }
    };
    // Warm the connection pools.
    for _ in 0..200 {
        for arm in 0..ARMS {
            call(arm).await?;
        }
    }
    let mut cpu = [Duration::ZERO; ARMS];
    let mut wall = [Duration::ZERO; ARMS];
    for round in 0..rounds {
        // Rotate the order so no arm always runs first or last.
        for k in 0..ARMS {
            let arm = (k + round as usize) % ARMS;
            let (c0, w0) = (cpu_time(), Instant::now());
            for _ in 0..calls {
                call(arm).await?;
            }
            cpu[arm] += cpu_time() - c0;
            wall[arm] += w0.elapsed();
        }
    }
    let n = f64::from(calls * rounds);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n;
    println!("calls per arm: {}", calls * rounds);
    for (arm, name) in [
        "bare reqwest",
        "bare + timeout",
        "bare + t + json",
        "Provider",
    ]
    .iter()
    .enumerate()
    {
        println!(
            "{name:<15}: {:7.1} us CPU/call, {:7.1} us wall/call",
            per(cpu[arm]),
            per(wall[arm])
        );
    }
    let ratio = |a: usize, b: usize| cpu[a].as_secs_f64() / cpu[b].as_secs_f64();
    println!(
        "CPU ratio Provider / bare                 : {:.3}x",
        ratio(3, 0)
    );
    println!(
        "CPU ratio Provider / bare + timeout       : {:.3}x",
        ratio(3, 1)
    );
    println!(
        "CPU ratio Provider / bare + timeout + json: {:.3}x",
        ratio(3, 2)
    );
    Ok(())
}
