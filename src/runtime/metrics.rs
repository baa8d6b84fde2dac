//! Gathers every series of a running [`Troupe`] into one Prometheus
//! exposition: the runtime is the one place that sees every part (engine,
//! trees, providers, usage), so collection lives here and the metric
//! primitives stay below, in `crate::metrics`.

use std::collections::BTreeMap;

use troupe_actors::{ChildKind, ChildState, Tree};

use super::Troupe;
use crate::job::JobStatus;
use crate::metrics::{Exposition, Kind};
use crate::provider::BreakerState;

const STATUSES: [JobStatus; 6] = [
    JobStatus::Queued,
    JobStatus::Running,
    JobStatus::Completed,
    JobStatus::Failed,
    JobStatus::Cancelled,
    JobStatus::Waiting,
];

/// The Prometheus text of `troupe` now. A part whose source fails (the
/// store, a supervisor that does not answer) is left out and counted in
/// `troupe_scrape_errors`, so one broken part does not hide the rest.
pub(crate) async fn render(troupe: &Troupe) -> String {
    let mut e = Exposition::new();
    let mut errors = 0u32;
    e.family("troupe_up", Kind::Gauge, "1 while the runtime answers.");
    e.sample("troupe_up", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);

    jobs(troupe, &mut e, &mut errors).await;
    approvals(troupe, &mut e, &mut errors).await;
    engine_stats(troupe, &mut e);
    heap(troupe, &mut e);
    actors(troupe, &mut e, &mut errors).await;
    providers(troupe, &mut e);
    limits(troupe, &mut e);
    usage(troupe, &mut e, &mut errors).await;

    e.family(
        "troupe_scrape_errors",
        Kind::Gauge,
        "Parts of this scrape whose source failed (left out).",
    );
    e.sample("troupe_scrape_errors", &[], f64::from(errors));
    e.finish()
}

async fn jobs(troupe: &Troupe, e: &mut Exposition, errors: &mut u32) {
    let engine = troupe.engine();
    match engine.counts().await {
        Ok(counts) => {
            e.family(
                "troupe_jobs",
                Kind::Gauge,
                "Stored jobs by worker and status.",
            );
            let mut workers: Vec<String> =
                engine.list_workers().into_iter().map(|w| w.name).collect();
            for name in counts.by_worker.keys() {
                if !workers.contains(name) {
                    workers.push(name.clone());
                }
            }
            workers.sort();
            for worker in &workers {
                for status in STATUSES {
                    let n = counts.worker(worker, status);
                    let status = status.to_string();
                    e.sample(
                        "troupe_jobs",
                        &[("worker", worker), ("status", &status)],
                        n as f64,
                    );
                }
            }
            e.family(
                "troupe_queue_depth",
                Kind::Gauge,
                "Queued jobs (ready or delayed) by worker.",
            );
            for worker in &workers {
                let n = counts.worker(worker, JobStatus::Queued);
                e.sample("troupe_queue_depth", &[("worker", worker)], n as f64);
            }
            e.family(
                "troupe_queue_depth_total",
                Kind::Gauge,
                "Queued jobs (ready or delayed) over all workers.",
            );
            e.sample(
                "troupe_queue_depth_total",
                &[],
                counts.status(JobStatus::Queued) as f64,
            );
        }
        Err(err) => {
            tracing::warn!(error = %err, "metrics: job counts unavailable");
            *errors += 1;
        }
    }
    match engine.store().pause_state().await {
        Ok(pause) => {
            e.family(
                "troupe_paused",
                Kind::Gauge,
                "1 when claiming is paused: worker=\"*\" for everything, else one worker.",
            );
            e.sample(
                "troupe_paused",
                &[("worker", "*")],
                f64::from(u8::from(pause.all)),
            );
            for worker in engine.list_workers() {
                let paused = pause.workers.contains(&worker.name);
                e.sample(
                    "troupe_paused",
                    &[("worker", &worker.name)],
                    f64::from(u8::from(paused)),
                );
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "metrics: pause state unavailable");
            *errors += 1;
        }
    }
}

fn engine_stats(troupe: &Troupe, e: &mut Exposition) {
    let stats = troupe.engine().stats();
    e.family(
        "troupe_job_queue_wait_seconds",
        Kind::Histogram,
        "From when a job was ready (enqueued, or its delay or retry backoff ended) to the start of an attempt.",
    );
    for (worker, h) in stats.queue_wait.snapshot() {
        e.histogram("troupe_job_queue_wait_seconds", &[("worker", &worker)], &h);
    }
    e.family(
        "troupe_job_run_seconds",
        Kind::Histogram,
        "How long attempts ran, whatever their outcome.",
    );
    for (worker, h) in stats.run_time.snapshot() {
        e.histogram("troupe_job_run_seconds", &[("worker", &worker)], &h);
    }
    e.family(
        "troupe_job_attempts_total",
        Kind::Counter,
        "Attempts started by this process.",
    );
    for (worker, n) in stats.started.snapshot() {
        e.sample(
            "troupe_job_attempts_total",
            &[("worker", &worker)],
            n as f64,
        );
    }
    e.family(
        "troupe_job_retries_total",
        Kind::Counter,
        "Failed attempts queued again for another try.",
    );
    for (worker, n) in stats.retries.snapshot() {
        e.sample("troupe_job_retries_total", &[("worker", &worker)], n as f64);
    }
    e.family(
        "troupe_jobs_finished_total",
        Kind::Counter,
        "Jobs ended by an attempt this process ran, by final status.",
    );
    for ((worker, status), n) in stats.ended.snapshot() {
        let status = status.to_string();
        e.sample(
            "troupe_jobs_finished_total",
            &[("worker", &worker), ("status", &status)],
            n as f64,
        );
    }
}

/// Pending approvals (from the store) and decisions (this process's).
async fn approvals(troupe: &Troupe, e: &mut Exposition, errors: &mut u32) {
    let engine = troupe.engine();
    match engine.pending_approvals().await {
        Ok(pending) => {
            e.family(
                "troupe_approvals_pending",
                Kind::Gauge,
                "Tool calls waiting for a person's approval.",
            );
            e.sample("troupe_approvals_pending", &[], pending.len() as f64);
        }
        Err(_) => *errors += 1,
    }
    let stats = engine.stats();
    e.family(
        "troupe_approval_decisions_total",
        Kind::Counter,
        "Approvals decided through this process, by decision (approved, denied, expired).",
    );
    for (state, n) in stats.decisions.snapshot() {
        e.sample(
            "troupe_approval_decisions_total",
            &[("decision", state.as_str())],
            n as f64,
        );
    }
    e.family(
        "troupe_job_parks_total",
        Kind::Counter,
        "Attempts that parked awaiting approval of tool calls, by worker.",
    );
    for (worker, n) in stats.parked.snapshot() {
        e.sample("troupe_job_parks_total", &[("worker", &worker)], n as f64);
    }
}

/// Each worker's accounted heap; only when the accounting allocator is
/// installed (otherwise every account reads 0, which would mislead).
fn heap(troupe: &Troupe, e: &mut Exposition) {
    if !crate::alloc::installed() {
        return;
    }
    e.family(
        "troupe_worker_heap_bytes",
        Kind::Gauge,
        "Heap allocated by the worker's jobs (and its construction) and not yet freed, across restarts.",
    );
    for (worker, bytes) in troupe.engine().worker_heap_bytes() {
        e.sample(
            "troupe_worker_heap_bytes",
            &[("worker", &worker)],
            bytes as f64,
        );
    }
}

/// One supervised child, by its path from the root (`engine/workers/worker:echo`).
struct ActorRow {
    path: String,
    supervisor: bool,
    state: ChildState,
    restarts: u64,
    mailbox: Option<(usize, usize, u64)>,
}

async fn actors_of(tree: &Tree) -> Result<Vec<ActorRow>, troupe_actors::CallError> {
    let root = tree.root().name().to_string();
    let mut rows = Vec::new();
    // Breadth-first over nested supervisors: (path relative to the root, handle).
    let mut pending = vec![(String::new(), tree.root().clone())];
    while let Some((rel, sup)) = pending.pop() {
        for child in sup.children().await? {
            let child_rel = if rel.is_empty() {
                child.id.clone()
            } else {
                format!("{rel}/{}", child.id)
            };
            if child.kind == ChildKind::Supervisor {
                if let Ok(nested) = tree.supervisor(&child_rel) {
                    pending.push((child_rel.clone(), nested));
                }
            }
            rows.push(ActorRow {
                path: format!("{root}/{child_rel}"),
                supervisor: child.kind == ChildKind::Supervisor,
                state: child.state,
                restarts: child.restarts,
                mailbox: child.mailbox.map(|m| (m.queued, m.capacity, m.handled)),
            });
        }
    }
    rows.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(rows)
}

async fn actors(troupe: &Troupe, e: &mut Exposition, errors: &mut u32) {
    let mut rows = Vec::new();
    for tree in troupe.trees() {
        match actors_of(tree).await {
            Ok(r) => rows.extend(r),
            Err(err) => {
                tracing::warn!(tree = tree.root().name(), error = %err, "metrics: supervisor did not answer");
                *errors += 1;
            }
        }
    }
    actor_states(&rows, e);
    e.family(
        "troupe_actor_restarts_total",
        Kind::Counter,
        "Times its supervisor restarted the actor.",
    );
    for r in &rows {
        let restarts = r.restarts as f64;
        e.sample(
            "troupe_actor_restarts_total",
            &[("actor", &r.path)],
            restarts,
        );
    }
    mailboxes(&rows, e);
}

/// `troupe_actor_up`: one sample per actor and state, 1 for its state now.
fn actor_states(rows: &[ActorRow], e: &mut Exposition) {
    e.family(
        "troupe_actor_up",
        Kind::Gauge,
        "1 for the current state of each supervised actor or supervisor.",
    );
    for r in rows {
        let kind = if r.supervisor { "supervisor" } else { "actor" };
        for state in [
            ChildState::Running,
            ChildState::Restarting,
            ChildState::Stopped,
        ] {
            let v = f64::from(u8::from(r.state == state));
            let labels = [
                ("actor", r.path.as_str()),
                ("kind", kind),
                ("state", state.as_str()),
            ];
            e.sample("troupe_actor_up", &labels, v);
        }
    }
}

/// The mailbox series of every actor that has one (supervisors do not).
fn mailboxes(rows: &[ActorRow], e: &mut Exposition) {
    type Pick = fn((usize, usize, u64)) -> f64;
    let series: [(&str, Kind, &str, Pick); 3] = [
        (
            "troupe_actor_mailbox_depth",
            Kind::Gauge,
            "Messages sent to the actor and not yet handled.",
            |(queued, _, _)| queued as f64,
        ),
        (
            "troupe_actor_mailbox_capacity",
            Kind::Gauge,
            "The mailbox bound: senders wait beyond it.",
            |(_, capacity, _)| capacity as f64,
        ),
        (
            "troupe_actor_messages_handled_total",
            Kind::Counter,
            "Messages the actor handled, across restarts.",
            |(_, _, handled)| handled as f64,
        ),
    ];
    for (name, kind, help, pick) in series {
        e.family(name, kind, help);
        for r in rows {
            if let Some(mailbox) = r.mailbox {
                e.sample(name, &[("actor", &r.path)], pick(mailbox));
            }
        }
    }
}

fn providers(troupe: &Troupe, e: &mut Exposition) {
    let Some(set) = troupe.providers() else {
        return;
    };
    let status = set.status();
    e.family(
        "troupe_provider_circuit",
        Kind::Gauge,
        "1 for the current state of each provider's circuit breaker.",
    );
    for p in &status {
        for (state, name) in [
            (BreakerState::Closed, "closed"),
            (BreakerState::Open, "open"),
            (BreakerState::HalfOpen, "halfOpen"),
        ] {
            let v = f64::from(u8::from(p.breaker == state));
            e.sample(
                "troupe_provider_circuit",
                &[("provider", &p.name), ("state", name)],
                v,
            );
        }
    }
    e.family(
        "troupe_provider_calls_total",
        Kind::Counter,
        "Model calls sent to the provider by this process, by outcome.",
    );
    let mut errors_by_provider = BTreeMap::new();
    for p in &status {
        if let Some(calls) = set.call_stats(&p.name) {
            let errors = calls.errors();
            let failed: u64 = errors.values().sum();
            e.sample(
                "troupe_provider_calls_total",
                &[("provider", &p.name), ("outcome", "ok")],
                calls.ok() as f64,
            );
            e.sample(
                "troupe_provider_calls_total",
                &[("provider", &p.name), ("outcome", "error")],
                failed as f64,
            );
            errors_by_provider.insert(p.name.clone(), errors);
        }
    }
    e.family(
        "troupe_provider_errors_total",
        Kind::Counter,
        "Failed model calls by provider and error class.",
    );
    for (provider, errors) in &errors_by_provider {
        for (kind, n) in errors {
            e.sample(
                "troupe_provider_errors_total",
                &[("provider", provider), ("class", kind)],
                *n as f64,
            );
        }
    }
}

/// What the agents' limits and grants refused, by agent and config key.
fn limits(troupe: &Troupe, e: &mut Exposition) {
    e.family(
        "troupe_limit_refusals_total",
        Kind::Counter,
        "Tool calls refused by an agent's limit or for want of a grant, by agent and config key (maxToolCallsPerReply, maxTasksPerTask, maxTaskDepth, maxQueuedTasks, conversations, users, sharedMemory, readHiddenFiles).",
    );
    for (agent, limit, n) in troupe.limit_refusals() {
        e.sample(
            "troupe_limit_refusals_total",
            &[("agent", &agent), ("limit", &limit)],
            n as f64,
        );
    }
}

async fn usage(troupe: &Troupe, e: &mut Exposition, errors: &mut u32) {
    let today = chrono::Utc::now().date_naive();
    let day = match troupe.store().day_usage(today).await {
        Ok(day) => day,
        Err(err) => {
            tracing::warn!(error = %err, "metrics: usage totals unavailable");
            *errors += 1;
            return;
        }
    };
    for (scope, label, totals) in [
        ("agent", "agent", &day.by_agent),
        ("provider", "provider", &day.by_provider),
    ] {
        let tokens = format!("troupe_{scope}_tokens_today");
        e.family(
            &tokens,
            Kind::Gauge,
            &format!("Tokens spent today (UTC) by {scope}, input and output."),
        );
        for (name, t) in totals {
            e.sample(
                &tokens,
                &[(label, name), ("direction", "input")],
                t.input_tokens as f64,
            );
            e.sample(
                &tokens,
                &[(label, name), ("direction", "output")],
                t.output_tokens as f64,
            );
        }
        let cost = format!("troupe_{scope}_cost_usd_today");
        e.family(
            &cost,
            Kind::Gauge,
            &format!("Cost today (UTC) by {scope}, in US dollars."),
        );
        for (name, t) in totals {
            e.sample(&cost, &[(label, name)], t.cost_usd());
        }
        let calls = format!("troupe_{scope}_model_calls_today");
        e.family(
            &calls,
            Kind::Gauge,
            &format!("Answered model calls today (UTC) by {scope}."),
        );
        for (name, t) in totals {
            e.sample(&calls, &[(label, name)], t.calls as f64);
        }
    }
}
