//! What agents may start, end to end on the public surface: a scripted
//! model (our own model seam), the real tool actors and router, the real
//! job engine on the in-memory store.
//!
//! - a reply asking for more tool calls than `maxToolCallsPerReply` runs
//!   only the first ones;
//! - a task creates at most `maxTasksPerTask` tasks, whatever its replies ask;
//! - the "bomb": a model that answers every call with three `create_task`
//!   calls ends, with the defaults, at a bounded number of jobs;
//! - concurrent compactions of one scope all succeed and lose nothing.
//!
//! No test sleeps for a fixed time: each waits on a condition, with a
//! deadline that only a hang reaches.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use troupe::job::{Job, JobStatus};
use troupe::store::ListQuery;
use troupe::testing::{InMemoryStore, ScriptedModel};
use troupe::{
    AgentConfig, CallMeta, EnqueueOptions, GenerateRequest, GenerateResponse, JobCtx, MemoryScope,
    ModelConfig, ModelGateway, NewMemory, ProviderError, TaskOptions, ToolContext, Troupe,
    TroupeConfig, TypedTool,
};
use troupe_actors::run_system;

/// Waits until `done` holds, polling; fails the test at `within`.
async fn until<F, Fut>(what: &str, within: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every job of the runtime, oldest first.
async fn all_jobs(troupe: &Troupe) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut cursor = None;
    loop {
        let page = troupe
            .engine()
            .list_jobs(&ListQuery {
                limit: 1000,
                cursor,
                ..ListQuery::default()
            })
            .await
            .unwrap();
        jobs.extend(page.jobs);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    jobs.reverse();
    jobs
}

/// The value of one sample of the runtime's metrics, if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Arguments of the `tick` test tool.
#[derive(Deserialize, JsonSchema)]
struct TickArgs {
    /// Any number.
    #[allow(dead_code)]
    n: u32,
}

/// A tool that counts its calls.
struct Tick(Arc<AtomicUsize>);

#[async_trait]
impl TypedTool for Tick {
    type Args = TickArgs;
    type Output = ();
    type Error = std::convert::Infallible;
    fn name(&self) -> &str {
        "tick"
    }
    fn description(&self) -> &str {
        "Counts."
    }
    async fn run(&self, _: TickArgs, _: ToolContext) -> Result<(), std::convert::Infallible> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn scripted(id: &str, tools: &[&str]) -> AgentConfig {
    AgentConfig::new(
        id,
        id,
        "You test limits.",
        ModelConfig::new("scripted", "any"),
    )
    .tools(tools.iter().copied())
}

#[test]
fn a_reply_with_too_many_tool_calls_runs_only_the_first_ones() {
    run_system(async {
        let ticks = Arc::new(AtomicUsize::new(0));
        let calls: Vec<(&str, Value)> = (0..20).map(|n| ("tick", json!({ "n": n }))).collect();
        let model = ScriptedModel::new().tool_calls(calls).reply("Done.");
        let config = TroupeConfig::default().agent(scripted("ed", &["tick"]));
        let troupe = Troupe::builder(config)
            .store(InMemoryStore::new())
            .model(model.clone())
            .tool(Tick(ticks.clone()))
            .start()
            .await
            .unwrap();
        let answer = troupe
            .ask("ed", "Tick twenty times", TaskOptions::default())
            .await
            .unwrap();
        assert_eq!(answer.text, "Done.");
        assert_eq!(ticks.load(Ordering::SeqCst), 16, "the default limit is 16");
        assert_eq!(answer.tool_calls.len(), 20, "every call has a result");
        for (i, call) in answer.tool_calls.iter().enumerate() {
            let refused = call.result["ok"] == false;
            assert_eq!(refused, i >= 16, "call {i}: {}", call.result);
            if refused {
                assert_eq!(call.result["error"]["kind"], "limit_reached");
                let message = call.result["error"]["message"].as_str().unwrap();
                assert!(message.contains("maxToolCallsPerReply"), "{message}");
            }
        }
        // The model saw the refusals as tool errors of their calls.
        let second = &model.requests()[1];
        let text = serde_json::to_string(&second.messages).unwrap();
        let refusals = text
            .matches("Refused by the limit `maxToolCallsPerReply`")
            .count();
        assert_eq!(refusals, 4, "{text}");
        let metrics = troupe.metrics().await;
        assert_eq!(
            sample(
                &metrics,
                r#"troupe_limit_refusals_total{agent="ed",limit="maxToolCallsPerReply"}"#
            ),
            Some(4.0),
            "{metrics}"
        );
        troupe.shutdown().await.unwrap();
    });
}

/// The reply of issue 13: 5,000 tool calls, which all ran at once.
#[test]
fn a_reply_with_5000_tool_calls_runs_16_and_the_task_goes_on() {
    run_system(async {
        let ticks = Arc::new(AtomicUsize::new(0));
        let calls: Vec<(&str, Value)> = (0..5000).map(|n| ("tick", json!({ "n": n }))).collect();
        let model = ScriptedModel::new().tool_calls(calls).reply("Done.");
        let config = TroupeConfig::default().agent(scripted("ed", &["tick"]));
        let troupe = Troupe::builder(config)
            .store(InMemoryStore::new())
            .model(model)
            .tool(Tick(ticks.clone()))
            .start()
            .await
            .unwrap();
        let answer = troupe
            .ask("ed", "Tick", TaskOptions::default())
            .await
            .unwrap();
        assert_eq!(answer.text, "Done.");
        assert_eq!(ticks.load(Ordering::SeqCst), 16);
        let refused = answer
            .tool_calls
            .iter()
            .filter(|c| c.result["error"]["kind"] == "limit_reached")
            .count();
        assert_eq!(refused, 4984);
        troupe.shutdown().await.unwrap();
    });
}

#[test]
fn a_task_creates_at_most_max_tasks_per_task_and_goes_on() {
    run_system(async {
        let three = || {
            (0..3)
                .map(|i| {
                    (
                        "create_task",
                        json!({ "prompt": format!("child {i}"), "agentId": "bob" }),
                    )
                })
                .collect::<Vec<_>>()
        };
        let model = ScriptedModel::new()
            .tool_calls(three())
            .tool_calls(three())
            .tool_calls(three())
            .tool_calls(three())
            .reply("Delegated.");
        let config = TroupeConfig::default()
            .agent(scripted("ed", &["create_task"]))
            .agent(scripted("bob", &[]));
        let troupe = Troupe::builder(config)
            .store(InMemoryStore::new())
            .model(model.clone())
            .start()
            .await
            .unwrap();
        // Bob's tasks stay queued: only Ed's task runs.
        troupe
            .engine()
            .pause(troupe::store::PauseTarget::Worker("bob".into()))
            .await
            .unwrap();
        let answer = troupe
            .ask("ed", "Delegate twelve things", TaskOptions::default())
            .await
            .unwrap();
        assert_eq!(answer.text, "Delegated.", "the task went on");
        let ok = answer
            .tool_calls
            .iter()
            .filter(|c| c.result["ok"] == true)
            .count();
        assert_eq!(ok, 10, "the default limit is 10");
        let refused: Vec<&Value> = answer
            .tool_calls
            .iter()
            .map(|c| &c.result)
            .filter(|r| r["ok"] == false)
            .collect();
        assert_eq!(refused.len(), 2);
        for r in refused {
            assert_eq!(r["error"]["kind"], "limit_reached", "{r}");
            let message = r["error"]["message"].as_str().unwrap();
            assert!(message.contains("maxTasksPerTask"), "{message}");
        }
        let bob: Vec<Job> = all_jobs(&troupe)
            .await
            .into_iter()
            .filter(|j| j.worker_name == "bob")
            .collect();
        assert_eq!(bob.len(), 10);
        for job in &bob {
            assert_eq!(job.ctx.extra["depth"], 1, "{:?}", job.ctx);
        }
        let metrics = troupe.metrics().await;
        assert_eq!(
            sample(
                &metrics,
                r#"troupe_limit_refusals_total{agent="ed",limit="maxTasksPerTask"}"#
            ),
            Some(2.0),
            "{metrics}"
        );
        troupe.shutdown().await.unwrap();
    });
}

/// `scheduler`'s jobs count too, in the order the reply asks for them.
#[test]
fn scheduled_jobs_count_toward_max_tasks_per_task() {
    run_system(async {
        let model = ScriptedModel::new()
            .tool_calls([
                ("scheduler", json!({"kind": "memory_compaction"})),
                ("create_task", json!({"prompt": "later", "agentId": "bob"})),
                ("scheduler", json!({"kind": "memory_compaction"})),
            ])
            .reply("Planned.");
        let mut ed = scripted("ed", &["create_task", "scheduler"]);
        ed.limits.max_tasks_per_task = 2;
        let config = TroupeConfig::default()
            .agent(ed)
            .agent(scripted("bob", &[]));
        let troupe = Troupe::builder(config)
            .store(InMemoryStore::new())
            .model(model)
            .start()
            .await
            .unwrap();
        // What Ed creates stays queued.
        for worker in ["bob", troupe::names::MEMORY_COMPACTION_WORKER] {
            let target = troupe::store::PauseTarget::Worker(worker.into());
            troupe.engine().pause(target).await.unwrap();
        }
        let job = troupe
            .task("ed", "Plan", TaskOptions::default())
            .await
            .unwrap();
        let answer = troupe.wait(job.id).await.unwrap();
        let ok: Vec<bool> = answer
            .tool_calls
            .iter()
            .map(|c| c.result["ok"] == true)
            .collect();
        assert_eq!(ok, [true, true, false], "{:?}", answer.tool_calls);
        assert_eq!(
            answer.tool_calls[2].result["error"]["kind"],
            "limit_reached"
        );
        troupe.shutdown().await.unwrap();
    });
}

/// The bomb of issue 13: a model that answers every call with three
/// `create_task` calls (for the same agent), with every limit at its
/// default. Before the limits, one task grew to thousands of jobs in
/// seconds and kept growing across restarts; now the tree of tasks is cut
/// at depth 3 with at most 10 children per task, so at most
/// 1 + 10 + 100 + 1,000 = 1,111 jobs, and the queue cap (100 queued per
/// agent) cuts it further.
#[test]
fn the_bomb_ends_bounded_with_the_default_limits() {
    run_system(async {
        const BOUND: usize = 1 + 10 + 100 + 1000;
        let three: Vec<(&str, Value)> = (0..3)
            .map(|_| {
                (
                    "create_task",
                    json!({ "prompt": "Do it again, three times." }),
                )
            })
            .collect();
        // More turns than the bounded bomb can use (1,111 tasks of at most
        // 8 model calls each): the script never ends, so the model always
        // asks for three more tasks.
        let mut model = ScriptedModel::new();
        for _ in 0..(BOUND * 8 + 100) {
            model = model.tool_calls(three.clone());
        }
        let config = TroupeConfig::default().agent(scripted("bomber", &["create_task"]));
        let troupe = Troupe::builder(config)
            .store(InMemoryStore::new())
            .model(model.clone())
            .start()
            .await
            .unwrap();
        let root = troupe
            .task("bomber", "Start the chain.", TaskOptions::default())
            .await
            .unwrap();
        let engine = troupe.engine().clone();
        until("the bomb to end", Duration::from_secs(300), || {
            let engine = engine.clone();
            async move {
                let counts = engine.counts().await.unwrap();
                counts.status(JobStatus::Queued) + counts.status(JobStatus::Running) == 0
            }
        })
        .await;
        assert!(model.remaining() > 0, "the script never ran out");
        let jobs = all_jobs(&troupe).await;
        let total = jobs.len();
        println!("bomb: {total} jobs with the default limits (bound {BOUND})");
        assert!(total <= BOUND, "{total} jobs");
        assert!(total > 10, "the chain did start: {total} jobs");
        // Depth and fan-out, job by job.
        let mut children: BTreeMap<String, usize> = BTreeMap::new();
        for job in &jobs {
            let depth = job.ctx.extra.get("depth").and_then(Value::as_u64);
            if job.id == root.id {
                assert_eq!(depth, None);
                continue;
            }
            let depth = depth.unwrap_or_else(|| panic!("no depth: {:?}", job.ctx));
            assert!((1..=3).contains(&depth), "depth {depth}");
            let parent = job.ctx.extra["parentJobId"].as_str().unwrap().to_string();
            *children.entry(parent).or_default() += 1;
        }
        assert!(children.values().all(|n| *n <= 10), "{children:?}");
        let metrics = troupe.metrics().await;
        for limit in ["maxTasksPerTask", "maxTaskDepth"] {
            let series =
                format!(r#"troupe_limit_refusals_total{{agent="bomber",limit="{limit}"}}"#);
            let n = sample(&metrics, &series).unwrap_or(0.0);
            assert!(n > 0.0, "{series}: {metrics}");
        }
        troupe.shutdown().await.unwrap();
    });
}

/// The bomb again, without the queue cap, stopped twice half-way (running
/// tasks aborted mid-step) and started again on the same store: the tree is
/// cut at depth 3 with exactly 10 children per task (the depth is in each
/// job's ctx, the count of created tasks in each task's checkpoints, and
/// a replayed step creates nothing twice), so it ends at exactly
/// 1 + 10 + 100 + 1,000 jobs, restarts or not.
#[test]
fn the_bomb_stays_bounded_across_restarts() {
    run_system(async {
        const BOUND: usize = 1 + 10 + 100 + 1000;
        let three: Vec<(&str, Value)> = (0..3)
            .map(|_| {
                (
                    "create_task",
                    json!({ "prompt": "Do it again, three times." }),
                )
            })
            .collect();
        let mut model = ScriptedModel::new();
        for _ in 0..(BOUND * 8 + 100) {
            model = model.tool_calls(three.clone());
        }
        let mut bomber = scripted("bomber", &["create_task"]);
        bomber.limits.max_queued_tasks = u64::MAX;
        let mut config = TroupeConfig::default().agent(bomber);
        config.engine.drain_timeout = "1ms".into();
        let store = InMemoryStore::new();
        let start = || {
            Troupe::builder(config.clone())
                .store(store.clone())
                .model(model.clone())
                .start()
        };
        let mut troupe = start().await.unwrap();
        troupe
            .task("bomber", "Start the chain.", TaskOptions::default())
            .await
            .unwrap();
        for stop_at in [50, 400] {
            let engine = troupe.engine().clone();
            until("the bomb to grow", Duration::from_secs(120), || {
                let engine = engine.clone();
                async move {
                    let counts = engine.counts().await.unwrap();
                    counts.by_status.values().sum::<u64>() >= stop_at
                }
            })
            .await;
            let report = troupe.shutdown().await.unwrap();
            println!("stopped at {stop_at}+ jobs: {report:?}");
            troupe = start().await.unwrap();
        }
        let engine = troupe.engine().clone();
        until("the bomb to end", Duration::from_secs(300), || {
            let engine = engine.clone();
            async move {
                let counts = engine.counts().await.unwrap();
                counts.status(JobStatus::Queued) + counts.status(JobStatus::Running) == 0
            }
        })
        .await;
        let total = all_jobs(&troupe).await.len();
        println!("bomb without the queue cap, two restarts: {total} jobs");
        assert_eq!(total, BOUND);
        troupe.shutdown().await.unwrap();
    });
}

/// A model whose calls all wait until the test opens the gate, counting
/// the calls that arrived.
#[derive(Clone, Default)]
struct Gate {
    arrived: Arc<AtomicUsize>,
    open: Arc<tokio::sync::Notify>,
    opened: Arc<Mutex<bool>>,
}

impl Gate {
    fn open(&self) {
        *self.opened.lock().unwrap() = true;
        self.open.notify_waiters();
    }
}

#[async_trait]
impl ModelGateway for Gate {
    async fn generate(
        &self,
        _meta: &CallMeta,
        model: &ModelConfig,
        _request: GenerateRequest,
    ) -> Result<GenerateResponse, ProviderError> {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        loop {
            let notified = self.open.notified();
            if *self.opened.lock().unwrap() {
                break;
            }
            notified.await;
        }
        Ok(GenerateResponse {
            text: "A summary of everything.".into(),
            tool_calls: Vec::new(),
            finish_reason: troupe::FinishReason::Stop,
            usage: Default::default(),
            provider: "gate".into(),
            model: model.model.clone(),
            latency: Duration::ZERO,
        })
    }
}

/// Issue 13, item 10: 29 of 40 concurrent compactions of one scope failed
/// with "already archived". Each compaction listed the live memories, asked
/// the model, then archived what it had listed, which another had archived
/// meanwhile. Now compactions of one scope run one after the other: every
/// job succeeds on its first attempt, one summary holds every original, and
/// nothing is lost.
#[test]
fn forty_concurrent_compactions_of_one_scope_all_succeed_and_lose_nothing() {
    run_system(async {
        const JOBS: usize = 40;
        let gate = Gate::default();
        let mut config = TroupeConfig::default().agent(scripted("sarah", &["scheduler"]));
        config.engine.concurrency = JOBS;
        let troupe = Troupe::builder(config)
            .store(InMemoryStore::new())
            .model(gate.clone())
            .start()
            .await
            .unwrap();
        let scope = MemoryScope::user("sarah", "ana");
        for i in 0..5 {
            let memory = NewMemory::new(&scope, "fact", format!("Ana fact {i}"), 5);
            troupe.memories().remember(memory, None).await.unwrap();
        }
        let mut ids = Vec::new();
        for _ in 0..JOBS {
            let args = json!({"kind": "memory_compaction", "agentId": "sarah", "userId": "ana"});
            let job = troupe
                .engine()
                .enqueue(
                    troupe::names::MEMORY_COMPACTION_WORKER,
                    args,
                    JobCtx::default(),
                    EnqueueOptions::default(),
                )
                .await
                .unwrap();
            ids.push(job.job().id);
        }
        // Every job is running and the first has asked the model: then let
        // the model answer.
        let engine = troupe.engine().clone();
        let arrived = gate.arrived.clone();
        until("all compactions running", Duration::from_secs(30), || {
            let engine = engine.clone();
            let arrived = arrived.clone();
            async move {
                let counts = engine.counts().await.unwrap();
                counts.worker(troupe::names::MEMORY_COMPACTION_WORKER, JobStatus::Running)
                    == JOBS as u64
                    && arrived.load(Ordering::SeqCst) >= 1
            }
        })
        .await;
        gate.open();
        for id in ids {
            let job = troupe.engine().wait_for(id).await.unwrap();
            assert_eq!(job.status, JobStatus::Completed, "{job:?}");
            assert_eq!(job.attempt, 1, "no attempt failed: {:?}", job.errors);
        }
        let all = troupe.memories().list(scope, true).await.unwrap();
        let live: Vec<_> = all.iter().filter(|m| !m.archived).collect();
        assert_eq!(live.len(), 1, "one summary: {all:?}");
        assert_eq!(live[0].kind.as_str(), "summary");
        let archived: Vec<_> = all.iter().filter(|m| m.archived).collect();
        assert_eq!(archived.len(), 5, "every original archived, none lost");
        assert!(archived.iter().all(|m| m.archived_into == Some(live[0].id)));
        assert_eq!(
            gate.arrived.load(Ordering::SeqCst),
            1,
            "one summary asked for"
        );
        troupe.shutdown().await.unwrap();
    });
}
