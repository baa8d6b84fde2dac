//! CPU per call through the provider actor versus a bare reqwest call to the
//! same loopback server, in one run (issue 4's budget: at most 1.15x).
//!
//! Arms, interleaved round by round so drift hits all alike:
//! - `bare reqwest`: POST the pre-encoded body, read the bytes;
//! - `bare + t + json`: the same with a request timeout and `resp.json()`
//!   into a `serde_json::Value` (the idiomatic bare call);
//! - `Provider`: [`Provider::generate`] called directly (encode, limiter,
//!   breaker, retry, decode);
//! - `actor`: `Generate` sent to a supervised [`ProviderActor`];
//! - `actor + meter`: the same with a budget check and usage recording in
//!   memory;
//! - `set + sled meter`: [`ProviderSet::generate`] (failover path) with the
//!   budget check and a durable usage record in the sled store (one flush
//!   per call: the committer thread's CPU is counted).
//!
//! The server (wiremock, answering with a recorded OpenAI body) runs in a
//! child process so its CPU is not counted. CPU is this process's on-CPU
//! time over all its threads (`/proc/self/task/*/schedstat`, Linux).
//!
//! Run: `cargo run --release --example bench_provider_actor -- [calls_per_round] [rounds]`

use std::error::Error;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use troupe::__bench::{Generate, KeySource, Provider, ProviderActor, ProviderSet, UsageMeter};
use troupe::in_memory::InMemoryStore;
use troupe::sled::{SledConfig, SledStore};
use troupe::{ApiKey, Budget, GenerateRequest, Message, ModelConfig, ProviderConfig, ProviderKind};
use troupe_actors::{run_system, SupervisorSpec};

const BODY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/openai-chat-text-usage.json"
);

const ARMS: [&str; 6] = [
    "bare reqwest",
    "bare + t + json",
    "Provider",
    "actor",
    "actor + meter",
    "set + sled meter",
];

mod support;

use support::cpu_time;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        return serve();
    }
    let calls: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3000);
    let rounds: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4);

    let server = support::ChildServer::start(&["--serve"])?;
    let uri = server.uri.clone();
    let data = tempfile::tempdir()?;
    let result = run_system(bench(&uri, data.path(), calls, rounds));
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
        support::until_stdin_closes().await;
        Ok::<_, Box<dyn Error>>(())
    })
}

fn config(name: &str, uri: &str) -> ProviderConfig {
    ProviderConfig::new(name, ProviderKind::Openai)
        .with_base_url(uri)
        .with_api_key(ApiKey::new("sk-bench-0123456789"))
}

async fn bench(
    uri: &str,
    data_dir: &std::path::Path,
    calls: u32,
    rounds: u32,
) -> Result<(), Box<dyn Error>> {
    let key = "sk-bench-0123456789";
    let direct = Provider::new(config("direct", uri))?;
    let budget = Budget::tokens(u64::MAX);
    let memory = UsageMeter::new(Arc::new(InMemoryStore::new())).with_budget("sarah", budget);
    let sled = SledStore::open(SledConfig::new(data_dir))?;
    let durable = UsageMeter::new(Arc::new(sled)).with_budget("sarah", budget);
    let set = ProviderSet::from_actors(vec![
        (
            ProviderActor::new(Provider::new(config("plain", uri))?, None, None),
            KeySource::Code,
        ),
        (
            ProviderActor::new(Provider::new(config("metered", uri))?, None, Some(memory)),
            KeySource::Code,
        ),
        (
            ProviderActor::new(Provider::new(config("durable", uri))?, None, Some(durable)),
            KeySource::Code,
        ),
    ])?;
    let tree = SupervisorSpec::new("root")
        .supervisor(set.supervisor_spec("providers"))
        .start()?;
    set.attach(&tree, "providers")?;
    let plain = set.actor("plain").ok_or("no actor")?;
    let metered = set.actor("metered").ok_or("no actor")?;
    let route = ModelConfig::new("durable", "gpt-4.1-nano");

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
    let body = serde_json::to_vec(&direct.encode(&req))?;
    let url = format!("{uri}/chat/completions");
    let bare = reqwest::Client::builder().build()?;
    let bare_timeout = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;

    let call = |arm: usize| {
        let (req, body, url) = (&req, &body, &url);
        let (direct, plain, metered, set, route) = (&direct, &plain, &metered, &set, &route);
        let (bare, bare_timeout) = (&bare, &bare_timeout);
        async move {
            match arm {
                0 => {
                    let r = bare
                        .post(url)
                        .bearer_auth(key)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await?;
                    black_box(r.bytes().await?);
                }
                1 => {
                    let r = bare_timeout
                        .post(url)
                        .bearer_auth(key)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await?;
                    black_box(r.json::<serde_json::Value>().await?);
                }
                2 => {
                    black_box(direct.generate(req.clone()).await?);
                }
                3 => {
                    black_box(plain.send(Generate::new(req.clone())).await??);
                }
                4 => {
                    black_box(
                        metered
                            .send(Generate::new(req.clone()).agent("sarah"))
                            .await??,
                    );
                }
                _ => {
                    black_box(
                        set.generate(route, Generate::new(req.clone()).agent("sarah"))
                            .await?,
                    );
                }
            }
            Ok::<(), Box<dyn Error>>(())
        }
    };
    // Warm the connection pools.
    for _ in 0..200 {
        for arm in 0..ARMS.len() {
            call(arm).await?;
        }
    }
    let mut cpu = [Duration::ZERO; ARMS.len()];
    let mut wall = [Duration::ZERO; ARMS.len()];
    for round in 0..rounds {
        for k in 0..ARMS.len() {
            let arm = (k + round as usize) % ARMS.len();
            let (c0, w0) = (cpu_time(), Instant::now());
            for _ in 0..calls {
                call(arm).await?;
            }
            cpu[arm] += cpu_time() - c0;
            wall[arm] += w0.elapsed();
        }
    }
    tree.shutdown().await;
    let n = f64::from(calls * rounds);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n;
    println!("calls per arm: {}", calls * rounds);
    for (arm, name) in ARMS.iter().enumerate() {
        println!(
            "{name:<17}: {:7.1} us CPU/call, {:7.1} us wall/call",
            per(cpu[arm]),
            per(wall[arm])
        );
    }
    let ratio = |a: usize, b: usize| cpu[a].as_secs_f64() / cpu[b].as_secs_f64();
    for (arm, name) in ARMS.iter().enumerate().skip(2) {
        println!(
            "CPU ratio {name:<17} / bare: {:.3}x, / bare + t + json: {:.3}x",
            ratio(arm, 0),
            ratio(arm, 1)
        );
    }
    println!(
        "CPU ratio actor / Provider (the actor hop alone): {:.3}x",
        ratio(3, 2)
    );
    Ok(())
}
