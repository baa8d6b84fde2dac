//! CPU per MCP tool call through Troupe's ToolRouter versus the same call
//! made directly with an rmcp client, to the same kind of server, in one
//! run (issue 14's budget: at most 1.2x).
//!
//! Arms, interleaved round by round so drift hits both alike:
//! - `rmcp direct`: `Peer::call_tool` of `add` on an rmcp client of the
//!   example server (`examples/mcp_server.rs`) over stdio;
//! - `router`: the same call as an agent makes it: a `ToolRequest` through
//!   `Tools::call` (the router's checks, run in the caller's task for an
//!   MCP tool: lookup, permission, JSON Schema validation of the arguments,
//!   the timeout), the MCP tool (the link's peer, `tools/call` through the
//!   server actor's connection), the result put in `{"ok":true,"data":…}`.
//!
//! Each arm has a server process of its own; its CPU is not counted: CPU is
//! this process's (`CLOCK_PROCESS_CPUTIME_ID`, all threads), the client
//! side of each call.
//!
//! Run: `cargo run --release --example bench_mcp -- [calls_per_round] [rounds]`
//! (it builds `examples/mcp_server.rs` in the same profile first).

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::service::{Peer, RoleClient};
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use serde_json::json;
use troupe::{AgentConfig, McpServerConfig, ModelConfig, Troupe, TroupeConfig};
use troupe_actors::run_system;

mod support;

use support::cpu_time;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let calls: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3000);
    let rounds: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4);
    let server = build_server()?;
    let data = tempfile::tempdir()?;
    run_system(bench(server, data.path().to_path_buf(), calls, rounds))
}

/// Builds the example server in this profile; its path.
fn build_server() -> Result<PathBuf, Box<dyn Error>> {
    let this = std::env::current_exe()?;
    let examples = this.parent().ok_or("no examples directory")?;
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "--quiet", "--example", "mcp_server"]);
    if examples.parent().and_then(Path::file_name) == Some("release".as_ref()) {
        build.arg("--release");
    }
    if !build
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()?
        .success()
    {
        return Err("cargo build --example mcp_server failed".into());
    }
    Ok(examples.join("mcp_server"))
}

async fn bench(
    server: PathBuf,
    data: PathBuf,
    calls: u32,
    rounds: u32,
) -> Result<(), Box<dyn Error>> {
    // The direct client.
    let mut cmd = tokio::process::Command::new(&server);
    cmd.arg("stdio");
    let direct = ().serve(TokioChildProcess::new(cmd)?).await?;
    let peer: Peer<RoleClient> = direct.peer().clone();

    // The runtime, with the same server behind the router.
    let mut agent = AgentConfig::new("bench", "Bench", "", ModelConfig::new("offline", "offline"));
    agent.tools = vec!["calc_add".into()];
    let config = TroupeConfig::default()
        .data_dir(&data)
        .agent(agent)
        .mcp_server(McpServerConfig::stdio(
            "calc",
            server.to_string_lossy(),
            ["stdio"],
        ));
    let troupe = Troupe::builder(config).start().await?;

    // Warm both paths (connections, allocator, caches).
    direct_calls(&peer, 200).await?;
    router_calls(&troupe, 200).await?;

    // What the process burns with no call at all (the runtime's own
    // timers and polls), per second of wall time.
    let (idle_cpu, idle_wall) = measure(async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(())
    })
    .await?;
    let idle_per_s = idle_cpu.as_secs_f64() / idle_wall.as_secs_f64();
    println!("idle: {:.1} ms CPU per s of wall", idle_per_s * 1e3);

    let mut direct_cpu = Duration::ZERO;
    let mut router_cpu = Duration::ZERO;
    let mut direct_wall = Duration::ZERO;
    let mut router_wall = Duration::ZERO;
    for round in 0..rounds {
        let (d_cpu, wall) = measure(direct_calls(&peer, calls)).await?;
        direct_cpu += d_cpu;
        direct_wall += wall;
        let (r_cpu, wall) = measure(router_calls(&troupe, calls)).await?;
        router_cpu += r_cpu;
        router_wall += wall;
        println!(
            "round {}: direct {:.1} µs CPU/call, router {:.1} µs CPU/call",
            round + 1,
            per_call(d_cpu, calls),
            per_call(r_cpu, calls),
        );
    }
    let n = calls * rounds;
    let (d, r) = (per_call(direct_cpu, n), per_call(router_cpu, n));
    println!("{n} calls per arm ({rounds} rounds of {calls}), CPU of this process per call:");
    println!(
        "  rmcp direct  {d:7.1} µs CPU   {:7.1} µs wall",
        per_call(direct_wall, n)
    );
    println!(
        "  router       {r:7.1} µs CPU   {:7.1} µs wall",
        per_call(router_wall, n)
    );
    println!("  ratio        {:.2}x (budget: at most 1.2x)", r / d);
    troupe.shutdown().await?;
    direct.cancel().await?;
    Ok(())
}

fn per_call(d: Duration, calls: u32) -> f64 {
    d.as_secs_f64() * 1e6 / f64::from(calls.max(1))
}

async fn measure(
    work: impl std::future::Future<Output = Result<(), Box<dyn Error>>>,
) -> Result<(Duration, Duration), Box<dyn Error>> {
    let (cpu, wall) = (cpu_time(), Instant::now());
    work.await?;
    Ok((cpu_time() - cpu, wall.elapsed()))
}

async fn direct_calls(peer: &Peer<RoleClient>, calls: u32) -> Result<(), Box<dyn Error>> {
    for i in 0..calls {
        let args = json!({"a": i, "b": 1});
        let serde_json::Value::Object(args) = args else {
            return Err("not an object".into());
        };
        let result = peer
            .call_tool(CallToolRequestParams::new("add").with_arguments(args))
            .await?;
        std::hint::black_box(result);
    }
    Ok(())
}

async fn router_calls(troupe: &Troupe, calls: u32) -> Result<(), Box<dyn Error>> {
    for i in 0..calls {
        let result =
            troupe::__bench::call_tool(troupe, "bench", "calc_add", json!({"a": i, "b": 1}))
                .await?;
        std::hint::black_box(result);
    }
    Ok(())
}
