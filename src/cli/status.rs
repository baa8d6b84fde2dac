//! `troupe pause`, `troupe resume` and `troupe status`.

use clap::Args;
use serde_json::{json, Value};

use crate::job::JobStatus;
use crate::store::prelude::*;
use crate::store::{ListQuery, PauseTarget};

use super::jobs::encode;
use super::remote::{open_target, Target};
use super::{output, CliError, Global};

/// What to pause or resume.
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Only this worker.
    #[arg(long, conflicts_with = "agent")]
    worker: Option<String>,
    /// Only this agent's tasks.
    #[arg(long)]
    agent: Option<String>,
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub(super) fn pause(global: &Global, args: PauseArgs, paused: bool) -> Result<(), CliError> {
    let config = global.load_config()?;
    let name = args.worker.or(args.agent);
    let verb = if paused { "paused" } else { "resumed" };
    let state = match open_target(global, &global.data_dir_for(&config))? {
        Target::Local(store) => {
            let target = match &name {
                Some(n) => PauseTarget::Worker(n.clone()),
                None => PauseTarget::All,
            };
            let state = runtime()?.block_on(store.set_paused(target, paused))?;
            json!({ "all": state.all, "workers": state.workers })
        }
        Target::Remote(remote) => {
            let body = match &name {
                Some(n) => json!({ "worker": n }),
                None => json!({}),
            };
            let path = if paused { "/v1/pause" } else { "/v1/resume" };
            remote.post(path, body)?["paused"].clone()
        }
    };
    if global.json {
        return output::json(&json!({ "paused": state }));
    }
    match name {
        Some(n) => println!("{n}: {verb}"),
        None => println!("all workers: {verb}"),
    }
    let workers: Vec<&str> = state["workers"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    println!(
        "paused now: {}",
        if state["all"] == true {
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
    let dir = global.data_dir_for(&config);
    let view = match open_target(global, &dir)? {
        Target::Remote(remote) => {
            let ready = remote.get("/readyz").unwrap_or(Value::Null);
            let workers = remote.get("/v1/workers")?;
            let agents = remote.get("/v1/agents")?;
            let running = remote.get(&format!("/v1/jobs?status=running&limit={}", encode("20")))?;
            let queued = workers["workers"]
                .as_array()
                .map(|w| w.iter().filter_map(|w| w["queued"].as_u64()).sum::<u64>())
                .unwrap_or(0);
            let metrics = remote.get_text("/metrics").unwrap_or_default();
            let spend: f64 = metrics
                .lines()
                .filter(|l| l.starts_with("troupe_agent_cost_usd_today"))
                .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
                .sum();
            json!({
                "daemon": remote.url(),
                "ready": ready["ready"],
                "workers": workers["workers"],
                "pausedAll": workers["pausedAll"],
                "agents": agents["agents"],
                "queueDepth": queued,
                "running": running["jobs"],
                "providers": ready["providers"],
                "spendTodayUsd": spend,
            })
        }
        Target::Local(store) => {
            let rt = runtime()?;
            let counts = rt.block_on(store.counts())?;
            let pause = rt.block_on(store.pause_state())?;
            let running = rt
                .block_on(store.list_jobs(&ListQuery {
                    status: Some(JobStatus::Running),
                    limit: 20,
                    ..ListQuery::default()
                }))?
                .jobs;
            let today = chrono::Utc::now().date_naive();
            let usage = rt.block_on(store.day_usage(today)).ok();
            let workers: Vec<Value> = counts
                .by_worker
                .keys()
                .map(|w| {
                    json!({
                        "name": w,
                        "paused": pause.is_paused(w),
                        "queued": counts.worker(w, JobStatus::Queued),
                        "running": counts.worker(w, JobStatus::Running),
                    })
                })
                .collect();
            let spend: f64 = usage
                .as_ref()
                .map(|u| u.by_agent.values().map(|t| t.cost_usd()).sum())
                .unwrap_or(0.0);
            json!({
                "daemon": null,
                "workers": workers,
                "pausedAll": pause.all,
                "agents": config.agents.iter().map(|a| json!({"id": a.id, "name": a.name, "paused": pause.is_paused(&a.id)})).collect::<Vec<_>>(),
                "queueDepth": counts.status(JobStatus::Queued),
                "running": running,
                "providers": config.providers.iter().map(|p| json!({"name": p.name, "circuit": "not running"})).collect::<Vec<_>>(),
                "spendTodayUsd": spend,
            })
        }
    };
    if global.json {
        return output::json(&view);
    }
    match view["daemon"].as_str() {
        Some(url) => println!(
            "daemon       {url} ({})",
            if view["ready"] == true {
                "ready"
            } else {
                "not ready"
            }
        ),
        None => println!("daemon       not running ({})", dir.display()),
    }
    println!(
        "queue        {} queued, {} running{}",
        view["queueDepth"],
        view["running"].as_array().map(|a| a.len()).unwrap_or(0),
        if view["pausedAll"] == true {
            " — everything paused"
        } else {
            ""
        }
    );
    println!(
        "spend today  ${:.4}",
        view["spendTodayUsd"].as_f64().unwrap_or(0.0)
    );
    println!("\nworkers");
    for w in view["workers"].as_array().into_iter().flatten() {
        println!(
            "  {:<26} queued {:>5}  running {:>3}{}",
            w["name"].as_str().unwrap_or("?"),
            w["queued"].as_u64().unwrap_or(0),
            w["running"].as_u64().unwrap_or(0),
            if w["paused"] == true {
                "  (paused)"
            } else {
                ""
            }
        );
    }
    println!("\nagents");
    for a in view["agents"].as_array().into_iter().flatten() {
        println!(
            "  {:<26} {}{}",
            a["id"].as_str().unwrap_or("?"),
            a["name"].as_str().unwrap_or(""),
            if a["paused"] == true {
                "  (paused)"
            } else {
                ""
            }
        );
    }
    println!("\nproviders");
    for p in view["providers"].as_array().into_iter().flatten() {
        println!(
            "  {:<26} circuit {}",
            p["name"].as_str().unwrap_or("?"),
            p["circuit"]
        );
    }
    let running = view["running"].as_array().cloned().unwrap_or_default();
    if !running.is_empty() {
        println!("\nrunning jobs");
        for j in running {
            println!(
                "  {}  {:<20} attempt {}",
                j["id"].as_str().unwrap_or("?"),
                j["workerName"].as_str().unwrap_or("?"),
                j["attempt"]
            );
        }
    }
    Ok(())
}
