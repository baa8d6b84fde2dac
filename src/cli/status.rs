//! `troupe pause`, `troupe resume` and `troupe status`.

use clap::Args;

use crate::api::{PauseRequest, Request, StatusScreen};

use super::connect::{call, Need};
use super::{output, CliError, Global};

/// What to pause or resume.
#[derive(Debug, Args)]
pub(super) struct PauseArgs {
    /// Only this worker.
    #[arg(long, conflicts_with = "agent")]
    worker: Option<String>,
    /// Only this agent's tasks.
    #[arg(long)]
    agent: Option<String>,
}

pub(super) fn pause(global: &Global, args: PauseArgs, paused: bool) -> Result<(), CliError> {
    let config = global.load_config()?;
    let name = args.worker.clone().or(args.agent.clone());
    let request = PauseRequest {
        worker: args.worker,
        agent: args.agent,
    };
    request.validate()?;
    let answer = call(global, &config, Need::Store, async |c| {
        if paused {
            c.pause(request).await
        } else {
            c.resume(request).await
        }
    })?;
    if global.json {
        return output::json(&answer);
    }
    let verb = if paused { "paused" } else { "resumed" };
    match name {
        Some(n) => println!("{n}: {verb}"),
        None => println!("all workers: {verb}"),
    }
    let now = &answer.paused;
    let workers: Vec<&str> = now.workers.iter().map(String::as_str).collect();
    println!(
        "paused now: {}",
        if now.all {
            "everything".to_string()
        } else if workers.is_empty() {
            "nothing".to_string()
        } else {
            workers.join(", ")
        }
    );
    Ok(())
}

pub(super) fn status(global: &Global) -> Result<(), CliError> {
    let config = global.load_config()?;
    let screen = call(global, &config, Need::Store, async |c| c.status().await)?;
    if global.json {
        return output::json(&screen);
    }
    let dir = global.data_dir_for(&config);
    render(&screen, &dir.display().to_string())
}

/// `troupe nodes`: the nodes sharing the store.
pub(super) fn nodes(global: &Global) -> Result<(), CliError> {
    let config = global.load_config()?;
    let answer = call(global, &config, Need::Store, async |c| c.nodes().await)?;
    if global.json {
        return output::json(&answer.nodes);
    }
    if answer.nodes.is_empty() {
        println!("no nodes: this store is not shared (sled or in memory)");
    } else {
        print_nodes(&answer.nodes);
    }
    Ok(())
}

fn print_nodes(nodes: &[crate::store::NodeInfo]) {
    for n in nodes {
        println!(
            "  {}  {:<5}  {}:{}  v{}  running {:>3}  heartbeat {}  started {}",
            n.id,
            if n.alive { "alive" } else { "gone" },
            n.host,
            n.pid,
            n.version,
            n.running,
            n.last_heartbeat.format("%H:%M:%S"),
            n.started_at.format("%Y-%m-%d %H:%M:%S"),
        );
    }
}

/// The status screen for people.
fn render(view: &StatusScreen, dir: &str) -> Result<(), CliError> {
    match &view.daemon {
        Some(url) => println!(
            "daemon       {url} ({})",
            if view.ready == Some(true) {
                "ready"
            } else {
                "not ready"
            }
        ),
        None => println!("daemon       not running ({dir})"),
    }
    println!(
        "queue        {} queued, {} running{}",
        view.queue_depth,
        view.running.len(),
        if view.paused_all {
            " — everything paused"
        } else {
            ""
        }
    );
    if view.waiting > 0 || view.pending_approvals > 0 {
        println!(
            "approvals    {} pending, {} jobs waiting (`troupe approvals`)",
            view.pending_approvals, view.waiting
        );
    }
    println!("spend today  ${:.4}", view.spend_today_usd);
    if !view.nodes.is_empty() {
        let alive = view.nodes.iter().filter(|n| n.alive).count();
        println!("cluster      {} nodes, {alive} alive", view.nodes.len());
        print_nodes(&view.nodes);
    }
    let paused = |p: bool| if p { "  (paused)" } else { "" };
    println!("\nworkers");
    for w in &view.workers {
        println!(
            "  {:<26} queued {:>5}  running {:>3}{}",
            w.info.name,
            w.queued,
            w.running,
            paused(w.paused)
        );
    }
    println!("\nagents");
    for a in &view.agents {
        println!("  {:<26} {}{}", a.id, a.name, paused(a.paused));
    }
    println!("\nproviders");
    for p in &view.providers {
        let circuit = match p.circuit {
            Some(state) => serde_json::to_value(state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            None => "not running".into(),
        };
        println!("  {:<26} circuit {circuit}", p.name);
    }
    if !view.running.is_empty() {
        println!("\nrunning jobs");
        for j in &view.running {
            println!("  {}  {:<20} attempt {}", j.id, j.worker_name, j.attempt);
        }
    }
    Ok(())
}
