//! The tool runtime end to end: the ToolRouter and tool actors on a real
//! actix system, the built-in tools on a real sled store and a real job
//! engine.
//!
//! No test sleeps to wait for something or asserts on timing: jobs are
//! awaited with `wait_for`, and the one timeout test uses a tool that never
//! finishes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{AgentConfig, AgentGrants, AgentLimits};
use crate::conversation::ConversationStore;
use crate::engine::{JobContext, Worker, WorkerCategory, WorkerEngine, WorkerError};
use crate::job::{EnqueueOptions, JobCtx, JobStatus};
use crate::memory::actor::MemoryActor;
use crate::memory::{MemoryScope, MemoryStore, RecallWeights};
use crate::sled::{SledConfig, SledStore};
use crate::store::prelude::*;
use crate::store::{Claim, IdempotencyStore};
use crate::store::{ListQuery, PauseTarget};
use crate::tools::builtin::{
    AnalyzeCodeTool, CreateTaskTool, RecallTool, RememberTool, SchedulerTool, SendMessageTool,
    WorkerManagerTool,
};
use crate::tools::tool::schema_for;
use crate::tools::{
    Tool, ToolContext, ToolError, ToolRequest, ToolSetupError, Tools, ToolsBuilder, TypedTool,
};
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tempfile::TempDir;
use troupe_actors::{run_system, ChildSpec, SupervisorSpec, Tree};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Test tools

/// Arguments of the `echo` test tool.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EchoArgs {
    /// The text to echo.
    text: String,
    /// How many times.
    #[schemars(range(min = 1, max = 5))]
    times: u8,
    /// Panic instead of answering.
    #[serde(default)]
    panic: bool,
}

/// What the `echo` test tool answers.
#[derive(Serialize)]
struct Echoed {
    text: String,
    agent: String,
}

struct EchoTool {
    calls: Arc<AtomicUsize>,
}

#[async_trait]
impl TypedTool for EchoTool {
    type Args = EchoArgs;
    type Output = Echoed;
    type Error = ToolError;
    fn name(&self) -> &str {
        "echo"
    }
    fn description(&self) -> &str {
        "Echoes text."
    }
    async fn run(&self, args: EchoArgs, ctx: ToolContext) -> Result<Echoed, ToolError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if args.panic {
            panic!("echo was asked to panic");
        }
        Ok(Echoed {
            text: args.text.repeat(usize::from(args.times)),
            agent: ctx.agent_id,
        })
    }
}

/// A hand-written (untyped) tool that never answers.
struct Stuck;

#[async_trait]
impl Tool for Stuck {
    fn name(&self) -> &str {
        "stuck"
    }
    fn description(&self) -> &str {
        "Never finishes."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object"})
    }
    fn timeout(&self) -> Option<Duration> {
        Some(Duration::from_millis(50))
    }
    async fn call(&self, _args: Value, _ctx: ToolContext) -> Result<Value, ToolError> {
        futures::future::pending::<()>().await;
        Ok(Value::Null)
    }
}

/// A tool that always fails.
struct Failing;

#[async_trait]
impl Tool for Failing {
    fn name(&self) -> &str {
        "failing"
    }
    fn description(&self) -> &str {
        "Always fails."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object"})
    }
    async fn call(&self, _args: Value, _ctx: ToolContext) -> Result<Value, ToolError> {
        Err(ToolError::failed("the disk is on fire"))
    }
}

fn ctx(step: u32, call: &str) -> ToolContext {
    ToolContext::new("sarah", Uuid::nil(), step, call)
        .user("u1")
        .conversation("c1")
}

fn allowed(names: &[&str]) -> Arc<[String]> {
    names
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .into()
}

fn call(
    tools: &Tools,
    name: &str,
    args: Value,
    ctx: ToolContext,
    may: &[&str],
) -> impl std::future::Future<Output = Result<Value, ToolError>> {
    let tools = tools.clone();
    let call = ToolRequest::new(name, args, ctx, allowed(may));
    async move { tools.call(call).await }
}

fn test_tools(calls: Arc<AtomicUsize>) -> (Tree, Tools) {
    ToolsBuilder::new()
        .tool(EchoTool { calls })
        .tool(Stuck)
        .tool(Failing)
        .build()
        .unwrap()
        .start()
        .unwrap()
}

// ---------------------------------------------------------------------------
// Schema, validation, routing

#[test]
fn the_schema_is_generated_from_the_rust_type() {
    let schema = EchoTool {
        calls: Default::default(),
    }
    .parameters();
    assert_eq!(schema, schema_for::<EchoArgs>());
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["text"]["type"], "string");
    assert_eq!(
        schema["properties"]["text"]["description"],
        "The text to echo."
    );
    assert_eq!(schema["properties"]["times"]["minimum"], 1);
    assert_eq!(schema["properties"]["times"]["maximum"], 5);
    assert_eq!(schema["additionalProperties"], false);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, ["text", "times"]);
    assert!(schema.get("$schema").is_none());
    assert!(schema.get("title").is_none());
    // schemars' `format: "uint8"` says nothing a model or validator knows.
    assert!(
        schema["properties"]["times"].get("format").is_none(),
        "{schema}"
    );
}

#[test]
fn the_registry_lists_definitions_for_model_requests() {
    run_system(async {
        let (tree, tools) = test_tools(Default::default());
        let registry = tools.registry();
        assert_eq!(registry.names(), ["echo", "failing", "stuck"]);
        let defs = registry.definitions_for(&["stuck".into(), "nope".into(), "echo".into()]);
        let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["stuck", "echo"]);
        assert_eq!(defs[1].description, "Echoes text.");
        assert_eq!(defs[1].parameters, schema_for::<EchoArgs>());
        assert_eq!(registry.unknown(&["echo".into(), "nope".into()]), ["nope"]);
        assert_eq!(registry.timeout("stuck"), Some(Duration::from_millis(50)));
        tree.shutdown().await;
    });
}

#[test]
fn a_valid_call_reaches_the_tool() {
    run_system(async {
        let calls = Arc::new(AtomicUsize::new(0));
        let (tree, tools) = test_tools(calls.clone());
        let out = call(
            &tools,
            "echo",
            json!({"text": "ab", "times": 2}),
            ctx(0, "c"),
            &["echo"],
        )
        .await
        .unwrap();
        assert_eq!(
            out,
            json!({"ok": true, "data": {"text": "abab", "agent": "sarah"}})
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tree.shutdown().await;
    });
}

#[test]
fn invalid_arguments_list_every_problem_and_the_tool_does_not_run() {
    run_system(async {
        let calls = Arc::new(AtomicUsize::new(0));
        let (tree, tools) = test_tools(calls.clone());
        let err = call(
            &tools,
            "echo",
            json!({"times": 9, "colour": "red"}),
            ctx(0, "c"),
            &["echo"],
        )
        .await
        .unwrap_err();
        let ToolError::InvalidArguments { issues } = &err else {
            panic!("expected invalid arguments, got {err:?}");
        };
        assert_eq!(issues.len(), 3, "{issues:?}");
        assert!(issues
            .iter()
            .any(|i| i.path.is_empty() && i.message.contains("\"text\"")));
        assert!(issues
            .iter()
            .any(|i| i.path.is_empty() && i.message.contains("colour")));
        assert!(issues
            .iter()
            .any(|i| i.path == "/times" && i.message.contains('5')));
        let text = err.to_model_message();
        assert!(text.starts_with("Invalid arguments:"), "{text}");
        assert!(text.contains("/times:"), "{text}");
        assert!(text.contains("call the tool again"), "{text}");
        assert_eq!(err.to_result_value()["error"]["kind"], "invalid_arguments");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        tree.shutdown().await;
    });
}

#[test]
fn unknown_and_denied_tools_are_errors_for_the_model() {
    run_system(async {
        let (tree, tools) = test_tools(Default::default());
        let err = call(
            &tools,
            "rm_rf",
            json!({}),
            ctx(0, "c"),
            &["echo", "failing"],
        )
        .await
        .unwrap_err();
        assert_eq!(
            err,
            ToolError::UnknownTool {
                name: "rm_rf".into(),
                available: vec!["echo".into(), "failing".into()],
            }
        );
        assert!(err
            .to_model_message()
            .contains("Available tools: echo, failing"));

        let err = call(&tools, "stuck", json!({}), ctx(0, "c"), &["echo"])
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ToolError::Denied {
                name: "stuck".into(),
                agent_id: "sarah".into(),
                allowed: vec!["echo".into()],
            }
        );
        assert_eq!(err.kind(), "denied");

        let err = call(&tools, "failing", json!({}), ctx(0, "c"), &["failing"])
            .await
            .unwrap_err();
        assert_eq!(err.to_model_message(), "Tool error: the disk is on fire");
        tree.shutdown().await;
    });
}

#[test]
fn a_tool_past_its_timeout_is_stopped_and_reported() {
    run_system(async {
        let (tree, tools) = test_tools(Default::default());
        let err = call(&tools, "stuck", json!({}), ctx(0, "c"), &["stuck"])
            .await
            .unwrap_err();
        assert_eq!(err, ToolError::TimedOut { after_ms: 50 });
        // The router and the other tools carry on.
        let out = call(
            &tools,
            "echo",
            json!({"text": "x", "times": 1}),
            ctx(0, "d"),
            &["echo"],
        )
        .await;
        assert!(out.is_ok());
        tree.shutdown().await;
    });
}

#[test]
fn a_panicking_tool_restarts_alone_and_everything_keeps_running() {
    run_system(async {
        let calls = Arc::new(AtomicUsize::new(0));
        let (tree, tools) = test_tools(calls.clone());
        let err = call(
            &tools,
            "echo",
            json!({"text": "x", "times": 1, "panic": true}),
            ctx(0, "c"),
            &["echo"],
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), "crashed");
        assert!(err.to_model_message().contains("restarted"));

        // Another tool and the router were untouched.
        let other = call(&tools, "failing", json!({}), ctx(0, "d"), &["failing"]).await;
        assert_eq!(other.unwrap_err().kind(), "failed");
        // The crashed tool answers again from its restarted actor.
        let again = call(
            &tools,
            "echo",
            json!({"text": "y", "times": 1}),
            ctx(0, "e"),
            &["echo"],
        )
        .await
        .unwrap();
        assert_eq!(again["data"]["text"], "y");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let children = tree.root().children().await.unwrap();
        let restarts = |id: &str| {
            children
                .iter()
                .find(|c| c.id == id)
                .map(|c| c.restarts)
                .unwrap()
        };
        assert_eq!(restarts("tool:echo"), 1);
        assert_eq!(restarts("tool:failing"), 0);
        assert_eq!(restarts("router"), 0);
        tree.shutdown().await;
    });
}

#[test]
fn bad_tool_declarations_are_refused_at_build() {
    struct Named(&'static str, Value);
    #[async_trait]
    impl Tool for Named {
        fn name(&self) -> &str {
            self.0
        }
        fn description(&self) -> &str {
            "x"
        }
        fn parameters(&self) -> Value {
            self.1.clone()
        }
        async fn call(&self, _: Value, _: ToolContext) -> Result<Value, ToolError> {
            Ok(Value::Null)
        }
    }
    let err = ToolsBuilder::new()
        .tool(Named("a", json!({})))
        .tool(Named("a", json!({})))
        .build()
        .unwrap_err();
    assert_eq!(err, ToolSetupError::Duplicate { name: "a".into() });
    let err = ToolsBuilder::new()
        .tool(Named("bad name", json!({})))
        .build()
        .unwrap_err();
    assert!(matches!(err, ToolSetupError::InvalidTool { .. }), "{err:?}");
    let err = ToolsBuilder::new()
        .tool(Named("s", json!({"type": 12})))
        .build()
        .unwrap_err();
    assert!(matches!(err, ToolSetupError::InvalidTool { .. }), "{err:?}");
}

#[test]
fn the_tools_mount_under_a_parent_supervisor() {
    run_system(async {
        let (spec, mount) = ToolsBuilder::new()
            .tool(Failing)
            .build()
            .unwrap()
            .into_parts();
        let tree = SupervisorSpec::new("root")
            .supervisor(spec)
            .start()
            .unwrap();
        let tools = mount.connect(&tree, "tools").unwrap();
        let err = call(&tools, "failing", json!({}), ctx(0, "c"), &["failing"])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "failed");
        tree.shutdown().await;
    });
}

// ---------------------------------------------------------------------------
// Built-in tools on a real store and engine

struct Noop {
    name: &'static str,
    category: WorkerCategory,
}

#[async_trait]
impl Worker for Noop {
    fn name(&self) -> &str {
        self.name
    }
    fn description(&self) -> &str {
        "does nothing"
    }
    fn category(&self) -> WorkerCategory {
        self.category.clone()
    }
    async fn run(&self, _args: Value, _ctx: JobContext) -> Result<Value, WorkerError> {
        Ok(json!({"done": true}))
    }
}

struct Env {
    _dir: TempDir,
    store: SledStore,
    engine: WorkerEngine,
    trees: Vec<Tree>,
    tools: Tools,
    policies: Arc<crate::tools::Policies>,
}

const ALL: &[&str] = &[
    "scheduler",
    "worker_manager",
    "create_task",
    "send_message",
    "remember",
    "recall",
    "analyze_code",
];

impl Env {
    fn start(registry: bool) -> Env {
        Env::start_with(registry, &[])
    }

    /// An environment whose tools follow the limits and grants of `agents`
    /// (the defaults for any other agent).
    fn start_with(registry: bool, agents: &[AgentConfig]) -> Env {
        let policies = crate::agent::tool_policies(agents);
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(SledConfig::new(dir.path().join("data"))).unwrap();
        let engine = WorkerEngine::builder(Arc::new(store.clone()) as Arc<dyn Store>)
            .worker(Noop {
                name: "memory_compaction_worker",
                category: WorkerCategory::Memory,
            })
            .worker(Noop {
                name: "sarah",
                category: WorkerCategory::Agent,
            })
            .worker(Noop {
                name: "bob",
                category: WorkerCategory::Agent,
            })
            .diagnostics()
            .start()
            .unwrap();
        let memory_store: Arc<dyn MemoryStore> = Arc::new(store.clone());
        let memory_tree = SupervisorSpec::new("troupe")
            .child(ChildSpec::try_new("memory", move || {
                MemoryActor::new(memory_store.clone(), RecallWeights::default())
            }))
            .start()
            .unwrap();
        let memory = memory_tree.actor::<MemoryActor>("memory").unwrap();
        let checkpoints: Option<Arc<dyn IdempotencyStore>> = if registry {
            Some(Arc::new(store.clone()))
        } else {
            None
        };
        let project = dir.path().join("project");
        std::fs::create_dir_all(project.join("src")).unwrap();
        let (tools_tree, tools) = ToolsBuilder::new()
            .tool(SchedulerTool::new(
                engine.clone(),
                checkpoints.clone(),
                policies.clone(),
            ))
            .tool(WorkerManagerTool::new(engine.clone(), policies.clone()))
            .tool(CreateTaskTool::new(
                engine.clone(),
                checkpoints,
                policies.clone(),
            ))
            .tool(SendMessageTool::new(
                Arc::new(store.clone()),
                policies.clone(),
            ))
            .tool(RememberTool::new(memory.recipient(), policies.clone()))
            .tool(RecallTool::new(memory.recipient()))
            .tool(AnalyzeCodeTool::new(&project, policies.clone()))
            .build()
            .unwrap()
            .start()
            .unwrap();
        Env {
            _dir: dir,
            store,
            engine,
            trees: vec![memory_tree, tools_tree],
            tools,
            policies,
        }
    }

    fn project(&self) -> std::path::PathBuf {
        self._dir.path().join("project")
    }

    async fn call(&self, name: &str, args: Value, ctx: ToolContext) -> Result<Value, ToolError> {
        call(&self.tools, name, args, ctx, ALL).await
    }

    async fn jobs_of(&self, worker: &str) -> Vec<crate::job::Job> {
        self.engine
            .list_jobs(&ListQuery {
                worker: Some(worker.into()),
                limit: 1000,
                ..ListQuery::default()
            })
            .await
            .unwrap()
            .jobs
    }

    async fn stop(self) {
        for tree in &self.trees {
            tree.shutdown().await;
        }
        self.engine.shutdown().await.unwrap();
    }
}

/// Sarah, the calling agent of `ctx`, with these grants.
fn sarah(grants: AgentGrants) -> AgentConfig {
    AgentConfig::new(
        "sarah",
        "Sarah",
        "You are Sarah.",
        crate::config::ModelConfig::new("offline", "offline"),
    )
    .grants(grants)
}

fn job_id_of(out: &Value) -> Uuid {
    out["data"]["jobId"].as_str().unwrap().parse().unwrap()
}

#[test]
fn scheduler_enqueues_once_per_call_and_answers_in_the_seed_shape() {
    run_system(async {
        let env = Env::start(true);
        let args = json!({"kind": "memory_compaction", "title": "weekly", "content": "keep names"});
        let first = env
            .call("scheduler", args.clone(), ctx(1, "call_a"))
            .await
            .unwrap();
        let id = job_id_of(&first);
        assert_eq!(
            first,
            json!({"ok": true, "data": {
                "scheduled": true,
                "jobId": id.to_string(),
                "workerName": "memory_compaction_worker",
            }})
        );
        let job = env.engine.wait_for(id).await.unwrap();
        assert_eq!(job.status, JobStatus::Completed);
        assert_eq!(job.args["kind"], "memory_compaction");
        assert_eq!(job.args["agentId"], "sarah");
        assert_eq!(job.args["userId"], "u1");
        assert_eq!(job.args["title"], "weekly");
        assert_eq!(job.ctx.source.as_deref(), Some("tool:scheduler"));
        assert_eq!(job.ctx.conversation_id.as_deref(), Some("c1"));

        // The same step replayed after the job ended: nothing new.
        for _ in 0..3 {
            let again = env
                .call("scheduler", args.clone(), ctx(1, "call_a"))
                .await
                .unwrap();
            assert_eq!(again, first);
        }
        assert_eq!(env.jobs_of("memory_compaction_worker").await.len(), 1);

        // Another call is another job.
        let other = env.call("scheduler", args, ctx(1, "call_b")).await.unwrap();
        assert_ne!(job_id_of(&other), id);
        assert_eq!(env.jobs_of("memory_compaction_worker").await.len(), 2);
        env.stop().await;
    });
}

#[test]
fn scheduler_finishes_a_call_that_crashed_between_claim_and_enqueue() {
    run_system(async {
        let env = Env::start(true);
        // A previous run claimed the key with this job id, then died.
        let recorded = Uuid::now_v7();
        let key = format!("scheduler:{}", ctx(4, "call_z").idempotency_key());
        let claim = env
            .store
            .claim_key(&key, json!({"jobId": recorded}))
            .await
            .unwrap();
        assert_eq!(claim, Claim::Claimed);
        assert!(env.jobs_of("memory_compaction_worker").await.is_empty());

        let out = env
            .call(
                "scheduler",
                json!({"kind": "memory_compaction"}),
                ctx(4, "call_z"),
            )
            .await
            .unwrap();
        assert_eq!(job_id_of(&out), recorded);
        env.engine.wait_for(recorded).await.unwrap();
        let again = env
            .call(
                "scheduler",
                json!({"kind": "memory_compaction"}),
                ctx(4, "call_z"),
            )
            .await
            .unwrap();
        assert_eq!(again, out);
        assert_eq!(env.jobs_of("memory_compaction_worker").await.len(), 1);
        env.stop().await;
    });
}

#[test]
fn without_the_registry_the_unique_key_guards_an_active_job() {
    run_system(async {
        let env = Env::start(false);
        env.engine
            .pause(PauseTarget::Worker("memory_compaction_worker".into()))
            .await
            .unwrap();
        let args = json!({"kind": "memory_compaction"});
        let first = env
            .call("scheduler", args.clone(), ctx(0, "k"))
            .await
            .unwrap();
        let again = env.call("scheduler", args, ctx(0, "k")).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(env.jobs_of("memory_compaction_worker").await.len(), 1);
        env.stop().await;
    });
}

#[test]
fn scheduler_refuses_unknown_kinds() {
    run_system(async {
        let env = Env::start(true);
        let err = env
            .call("scheduler", json!({"kind": "defrag"}), ctx(0, "k"))
            .await
            .unwrap_err();
        let ToolError::InvalidArguments { issues } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(issues[0].path, "/kind");
        assert!(
            issues[0].message.contains("memory_compaction"),
            "{issues:?}"
        );
        assert!(env.jobs_of("memory_compaction_worker").await.is_empty());
        env.stop().await;
    });
}

#[test]
fn worker_manager_lists_workers_and_jobs() {
    run_system(async {
        // Granted every user's jobs: the echo jobs below are done for no user.
        let env = Env::start_with(
            true,
            &[sarah(AgentGrants {
                users: vec!["*".into()],
                ..AgentGrants::default()
            })],
        );
        let out = env
            .call(
                "worker_manager",
                json!({"action": "list_workers"}),
                ctx(0, "w"),
            )
            .await
            .unwrap();
        assert_eq!(out["ok"], true);
        let workers = out["data"].as_array().unwrap();
        let names: Vec<&str> = workers
            .iter()
            .map(|w| w["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"memory_compaction_worker"), "{names:?}");
        assert!(names.contains(&"echo"), "{names:?}");
        let sarah = workers.iter().find(|w| w["name"] == "sarah").unwrap();
        assert_eq!(sarah["category"], "agent");
        assert!(sarah["description"].is_string());
        assert!(sarah["concurrency"].is_u64());

        for i in 0..3 {
            let job = env
                .engine
                .enqueue(
                    "echo",
                    json!({"i": i}),
                    JobCtx::default(),
                    EnqueueOptions::default(),
                )
                .await
                .unwrap();
            env.engine.wait_for(job.job().id).await.unwrap();
        }
        let out = env
            .call(
                "worker_manager",
                json!({"action": "list_jobs", "status": "completed", "worker": "echo", "limit": 2}),
                ctx(0, "w"),
            )
            .await
            .unwrap();
        let jobs = out["data"].as_array().unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0]["workerName"], "echo");
        assert_eq!(jobs[0]["status"], "completed");
        assert_eq!(jobs[0]["args"], json!({"i": 2}), "newest first");
        for key in ["id", "createdAt", "updatedAt", "ctx", "error"] {
            assert!(jobs[0].get(key).is_some(), "missing {key}");
        }

        let err = env
            .call(
                "worker_manager",
                json!({"action": "list_jobs", "limit": 0}),
                ctx(0, "w"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "invalid_arguments");
        env.stop().await;
    });
}

#[test]
fn create_task_enqueues_a_task_for_an_agent_once() {
    run_system(async {
        let env = Env::start(true);
        let args = json!({"prompt": "review the login page", "agentId": "bob"});
        let out = env
            .call("create_task", args.clone(), ctx(2, "t1"))
            .await
            .unwrap();
        assert_eq!(out["data"]["created"], true);
        assert_eq!(out["data"]["agentId"], "bob");
        let id = job_id_of(&out);
        let job = env.engine.wait_for(id).await.unwrap();
        assert_eq!(job.worker_name, "bob");
        assert_eq!(job.args, json!({"prompt": "review the login page"}));
        assert_eq!(job.ctx.user_id.as_deref(), Some("u1"));
        assert_eq!(job.ctx.extra["requestedBy"], "sarah");
        assert_eq!(job.ctx.extra["parentJobId"], Uuid::nil().to_string());

        let again = env.call("create_task", args, ctx(2, "t1")).await.unwrap();
        assert_eq!(job_id_of(&again), id);
        assert_eq!(again["data"]["created"], false);
        assert_eq!(env.jobs_of("bob").await.len(), 1);

        // Defaults to the calling agent.
        let own = env
            .call("create_task", json!({"prompt": "follow up"}), ctx(2, "t2"))
            .await
            .unwrap();
        assert_eq!(own["data"]["agentId"], "sarah");

        // Only agents can be given tasks.
        for target in ["echo", "nobody"] {
            let err = env
                .call(
                    "create_task",
                    json!({"prompt": "x", "agentId": target}),
                    ctx(2, "t3"),
                )
                .await
                .unwrap_err();
            let ToolError::InvalidArguments { issues } = &err else {
                panic!("{err:?}");
            };
            assert_eq!(issues[0].path, "/agentId");
            assert!(issues[0].message.contains("bob, sarah"), "{issues:?}");
        }
        assert!(env.jobs_of("echo").await.is_empty());
        env.stop().await;
    });
}

#[test]
fn send_message_stores_one_message_per_call() {
    run_system(async {
        // Granted `c2` beside the task's own `c1`.
        let env = Env::start_with(
            true,
            &[sarah(AgentGrants {
                conversations: vec!["c2".into()],
                ..AgentGrants::default()
            })],
        );
        let out = env
            .call("send_message", json!({"content": "Hello!"}), ctx(0, "m1"))
            .await
            .unwrap();
        assert_eq!(out["data"]["conversationId"], "c1");
        assert_eq!(out["data"]["created"], true);
        let again = env
            .call("send_message", json!({"content": "Hello!"}), ctx(0, "m1"))
            .await
            .unwrap();
        assert_eq!(again["data"]["messageId"], out["data"]["messageId"]);
        assert_eq!(again["data"]["created"], false);

        let messages = ConversationStore::list_messages(&env.store, "c1")
            .await
            .unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].content, "Hello!");
        assert_eq!(messages[0].author, "sarah");
        assert_eq!(messages[0].id.to_string(), out["data"]["messageId"]);

        env.call(
            "send_message",
            json!({"content": "elsewhere", "conversationId": "c2"}),
            ctx(0, "m2"),
        )
        .await
        .unwrap();
        assert_eq!(
            ConversationStore::list_messages(&env.store, "c2")
                .await
                .unwrap()
                .len(),
            1
        );

        let no_conversation = ToolContext::new("sarah", Uuid::nil(), 0, "m3");
        let err = env
            .call("send_message", json!({"content": "hi"}), no_conversation)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "invalid_arguments");
        env.stop().await;
    });
}

#[test]
fn remember_and_recall_go_through_the_memory_actor() {
    run_system(async {
        // Granted agent-wide memories from a user's task.
        let env = Env::start_with(
            true,
            &[sarah(AgentGrants {
                shared_memory: true,
                ..AgentGrants::default()
            })],
        );
        let args =
            json!({"type": "preference", "content": "The user prefers dark mode", "importance": 8});
        let first = env
            .call("remember", args.clone(), ctx(0, "r1"))
            .await
            .unwrap();
        let again = env.call("remember", args, ctx(0, "r1")).await.unwrap();
        assert_eq!(again["data"]["memoryId"], first["data"]["memoryId"]);
        assert_eq!(again["data"]["created"], false);
        env.call(
            "remember",
            json!({"type": "fact", "content": "The app is written in React", "importance": 5, "scope": "agent"}),
            ctx(0, "r2"),
        )
        .await
        .unwrap();
        let user_scope = MemoryScope::user("sarah", "u1");
        assert_eq!(
            MemoryStore::list_memories(&env.store, &user_scope, false)
                .await
                .unwrap()
                .len(),
            1
        );

        let found = env
            .call("recall", json!({"query": "dark mode"}), ctx(1, "q"))
            .await
            .unwrap();
        let data = found["data"].as_array().unwrap();
        assert_eq!(data.len(), 1);
        assert_eq!(data[0]["content"], "The user prefers dark mode");
        assert_eq!(data[0]["type"], "preference");
        let agent_wide = env
            .call(
                "recall",
                json!({"query": "react", "scope": "agent"}),
                ctx(1, "q2"),
            )
            .await
            .unwrap();
        assert_eq!(
            agent_wide["data"][0]["content"],
            "The app is written in React"
        );

        let err = env
            .call(
                "remember",
                json!({"type": "fact", "content": "x", "importance": 11}),
                ctx(0, "r3"),
            )
            .await
            .unwrap_err();
        let ToolError::InvalidArguments { issues } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(issues[0].path, "/importance");
        env.stop().await;
    });
}

#[test]
fn analyze_code_reports_metrics_for_snippets_and_project_files() {
    run_system(async {
        let env = Env::start(true);
        let code = "fn main() {\n    // TODO: greet properly\n    if true {\n        println!(\"hi\");\n    }\n}\n";
        let out = env
            .call("analyze_code", json!({"code": code}), ctx(0, "a"))
            .await
            .unwrap();
        let d = &out["data"];
        assert_eq!(d["language"], "rust");
        assert_eq!(d["lines"], 6);
        assert_eq!(d["commentLines"], 1);
        assert_eq!(d["todoCount"], 1);
        assert_eq!(d["maxNesting"], 2);
        assert_eq!(
            d["longestBlock"],
            json!({"name": "main", "startLine": 1, "lines": 6})
        );

        std::fs::write(
            env.project().join("src/app.py"),
            "def f(x):\n    return x\n",
        )
        .unwrap();
        let out = env
            .call("analyze_code", json!({"path": "src/app.py"}), ctx(0, "b"))
            .await
            .unwrap();
        assert_eq!(out["data"]["language"], "python");
        assert_eq!(out["data"]["path"], "src/app.py");
        assert_eq!(out["data"]["functions"], 1);

        // Same input, same report.
        let again = env
            .call("analyze_code", json!({"path": "src/app.py"}), ctx(0, "c"))
            .await
            .unwrap();
        assert_eq!(again, out);

        let err = env
            .call(
                "analyze_code",
                json!({"code": "x", "path": "src/app.py"}),
                ctx(0, "d"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "invalid_arguments");
        env.stop().await;
    });
}

#[test]
fn analyze_code_refuses_paths_outside_the_project_root() {
    run_system(async {
        let env = Env::start(true);
        let secret = env._dir.path().join("secret.txt");
        std::fs::write(&secret, "password").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&secret, env.project().join("src/link.txt")).unwrap();
            std::os::unix::fs::symlink(env._dir.path(), env.project().join("up")).unwrap();
        }
        let mut refused = vec![
            "../secret.txt".to_string(),
            "src/../../secret.txt".to_string(),
            secret.display().to_string(),
            "/etc/passwd".to_string(),
        ];
        if cfg!(unix) {
            refused.push("src/link.txt".into());
            refused.push("up/secret.txt".into());
        }
        for path in refused {
            let err = env
                .call("analyze_code", json!({"path": path}), ctx(0, "p"))
                .await
                .unwrap_err();
            let ToolError::InvalidArguments { issues } = &err else {
                panic!("{path}: {err:?}");
            };
            assert_eq!(issues[0].path, "/path", "{path}");
            let text = err.to_model_message();
            assert!(!text.contains("password"), "{text}");
            assert!(
                issues[0].message.contains("outside the project root")
                    || issues[0].message.contains("without `..`"),
                "{path}: {issues:?}"
            );
        }
        let err = env
            .call(
                "analyze_code",
                json!({"path": "src/missing.rs"}),
                ctx(0, "p"),
            )
            .await
            .unwrap_err();
        assert!(err.to_model_message().contains("no file"), "{err:?}");
        let err = env
            .call("analyze_code", json!({"path": "src"}), ctx(0, "p"))
            .await
            .unwrap_err();
        assert!(err.to_model_message().contains("not a file"), "{err:?}");
        env.stop().await;
    });
}

#[test]
fn builtin_schemas_are_self_contained_and_plain() {
    run_system(async {
        let env = Env::start(true);
        for def in env.tools.registry().definitions() {
            let text = def.parameters.to_string();
            println!("{}: {}", def.name, text);
            for word in ["$ref", "$defs", "oneOf", "$schema"] {
                assert!(!text.contains(word), "{}: {word} in {text}", def.name);
            }
            assert_eq!(def.parameters["type"], "object", "{}", def.name);
            assert_eq!(
                def.parameters["additionalProperties"], false,
                "{}",
                def.name
            );
        }
        let scheduler = env.tools.registry().get("scheduler").unwrap();
        assert_eq!(
            scheduler.parameters["properties"]["kind"]["enum"],
            json!(["memory_compaction"])
        );
        assert_eq!(scheduler.parameters["required"], json!(["kind"]));
        env.stop().await;
    });
}

/// The whole answer of every built-in tool, not just a few fields: the seed's
/// `{"ok":true,"data":…}` with exactly these keys and values, as the model
/// sees it (its text is the JSON written out, keys in order).
#[test]
fn every_builtin_answers_in_the_exact_seed_json() {
    run_system(async {
        let env = Env::start(true);
        let exact = |out: &Value, want: Value| {
            assert_eq!(out, &want);
            assert_eq!(out.to_string(), want.to_string());
        };

        let out = env
            .call(
                "scheduler",
                json!({"kind": "memory_compaction"}),
                ctx(0, "s"),
            )
            .await
            .unwrap();
        let id = job_id_of(&out);
        exact(
            &out,
            json!({"ok": true, "data": {"scheduled": true, "jobId": id, "workerName": "memory_compaction_worker"}}),
        );
        env.engine.wait_for(id).await.unwrap();

        let out = env
            .call(
                "create_task",
                json!({"prompt": "p", "agentId": "bob"}),
                ctx(0, "t"),
            )
            .await
            .unwrap();
        let task = job_id_of(&out);
        exact(
            &out,
            json!({"ok": true, "data": {"created": true, "jobId": task, "agentId": "bob"}}),
        );
        env.engine.wait_for(task).await.unwrap();

        let out = env
            .call("send_message", json!({"content": "hi"}), ctx(0, "m"))
            .await
            .unwrap();
        let messages = ConversationStore::list_messages(&env.store, "c1")
            .await
            .unwrap();
        exact(
            &out,
            json!({"ok": true, "data": {"messageId": messages[0].id, "conversationId": "c1", "created": true}}),
        );

        let out = env
            .call(
                "remember",
                json!({"type": "fact", "content": "The build uses vite", "importance": 4}),
                ctx(0, "r"),
            )
            .await
            .unwrap();
        let scope = MemoryScope::user("sarah", "u1");
        let memories = MemoryStore::list_memories(&env.store, &scope, false)
            .await
            .unwrap();
        let memory = &memories[0];
        exact(
            &out,
            json!({"ok": true, "data": {"memoryId": memory.id, "created": true}}),
        );

        let out = env
            .call("recall", json!({"query": "vite build"}), ctx(1, "q"))
            .await
            .unwrap();
        let score = out["data"][0]["score"].clone();
        assert!(score.is_number(), "{out}");
        exact(
            &out,
            json!({"ok": true, "data": [{
                "id": memory.id,
                "type": memory.kind,
                "content": "The build uses vite",
                "importance": 4,
                "score": score,
                "createdAt": memory.created_at,
            }]}),
        );

        let out = env
            .call(
                "worker_manager",
                json!({"action": "list_workers"}),
                ctx(0, "w"),
            )
            .await
            .unwrap();
        exact(&out, json!({"ok": true, "data": env.engine.list_workers()}));
        let out = env
            .call(
                "worker_manager",
                json!({"action": "list_jobs", "worker": "bob"}),
                ctx(0, "w"),
            )
            .await
            .unwrap();
        let job = env.engine.get_job(task).await.unwrap();
        exact(
            &out,
            json!({"ok": true, "data": [{
                "id": job.id,
                "workerName": job.worker_name,
                "status": job.status,
                "attempt": job.attempt,
                "createdAt": job.created_at,
                "updatedAt": job.updated_at,
                "args": job.args,
                "ctx": job.ctx,
                "error": job.error,
            }]}),
        );

        let code = "def f(x):\n    return x\n";
        let report = crate::tools::builtin::analyze_code::scanner::analyze(code, None, None);
        let out = env
            .call("analyze_code", json!({"code": code}), ctx(0, "a"))
            .await
            .unwrap();
        exact(&out, json!({"ok": true, "data": report}));
        std::fs::write(env.project().join("src/f.py"), code).unwrap();
        let out = env
            .call("analyze_code", json!({"path": "src/f.py"}), ctx(0, "b"))
            .await
            .unwrap();
        let mut data = json!(report);
        data["path"] = json!("src/f.py");
        exact(&out, json!({"ok": true, "data": data}));
        env.stop().await;
    });
}

// ---------------------------------------------------------------------------
// Issue 13: tools are bound to the task's user and conversation

#[test]
fn send_message_posts_only_in_the_tasks_conversation_unless_granted() {
    run_system(async {
        let env = Env::start(true);
        let err = env
            .call(
                "send_message",
                json!({"content": "hello from elsewhere", "conversationId": "c2"}),
                ctx(0, "m1"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "not_granted", "{err:?}");
        let text = err.to_model_message();
        assert!(text.contains("`c2`"), "{text}");
        assert!(text.contains("conversations = [\"c2\"]"), "{text}");
        assert_eq!(
            env.policies.refusals().snapshot(),
            [("sarah".to_string(), "conversations".to_string(), 1)],
            "counted for the metric"
        );
        assert!(
            ConversationStore::list_messages(&env.store, "c2")
                .await
                .unwrap()
                .is_empty(),
            "nothing was written"
        );
        // The task's own conversation, named or not, is fine.
        for (call, args) in [
            ("m2", json!({"content": "here"})),
            ("m3", json!({"content": "here", "conversationId": "c1"})),
        ] {
            env.call("send_message", args, ctx(0, call)).await.unwrap();
        }
        // A task without a conversation cannot pick one either.
        let err = env
            .call(
                "send_message",
                json!({"content": "hi", "conversationId": "c1"}),
                ToolContext::new("sarah", Uuid::nil(), 0, "m4").user("u1"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "not_granted", "{err:?}");
        env.stop().await;
    });
}

#[test]
fn scheduler_compacts_only_the_tasks_user_unless_granted() {
    run_system(async {
        let env = Env::start(true);
        for (call, args, grant) in [
            (
                "s1",
                json!({"kind": "memory_compaction", "userId": "u2"}),
                "users",
            ),
            (
                "s2",
                json!({"kind": "memory_compaction", "conversationId": "c2"}),
                "conversations",
            ),
        ] {
            let err = env.call("scheduler", args, ctx(0, call)).await.unwrap_err();
            assert_eq!(err.kind(), "not_granted", "{err:?}");
            let text = err.to_model_message();
            assert!(text.contains(&format!("{grant} = [")), "{text}");
        }
        assert!(env.jobs_of("memory_compaction_worker").await.is_empty());
        // Its own user, named or not.
        env.call(
            "scheduler",
            json!({"kind": "memory_compaction", "userId": "u1"}),
            ctx(0, "s3"),
        )
        .await
        .unwrap();
        env.stop().await;
    });
}

#[test]
fn worker_manager_redacts_the_jobs_of_other_users() {
    run_system(async {
        let env = Env::start(true);
        let mut ids = Vec::new();
        for (user, prompt) in [
            ("u1", "my own prompt"),
            ("u2", "another user's secret prompt"),
        ] {
            let job = env
                .engine
                .enqueue(
                    "echo",
                    json!({"prompt": prompt}),
                    JobCtx {
                        user_id: Some(user.into()),
                        conversation_id: Some(format!("conv-of-{user}")),
                        ..JobCtx::default()
                    },
                    EnqueueOptions::default(),
                )
                .await
                .unwrap();
            ids.push(job.job().id);
            env.engine.wait_for(job.job().id).await.unwrap();
        }
        let out = env
            .call(
                "worker_manager",
                json!({"action": "list_jobs", "worker": "echo"}),
                ctx(0, "w"),
            )
            .await
            .unwrap();
        let text = out.to_string();
        assert!(!text.contains("secret"), "{text}");
        assert!(!text.contains("conv-of-u2"), "{text}");
        let jobs = out["data"].as_array().unwrap();
        assert_eq!(jobs.len(), 2, "both are listed");
        let own = jobs.iter().find(|j| j["id"] == json!(ids[0])).unwrap();
        assert_eq!(own["args"]["prompt"], "my own prompt");
        let other = jobs.iter().find(|j| j["id"] == json!(ids[1])).unwrap();
        assert_eq!(other["redacted"], true, "{other}");
        assert_eq!(other["status"], "completed");
        env.stop().await;
    });
}

#[test]
fn remember_writes_agent_wide_memories_only_with_shared_memory() {
    run_system(async {
        let env = Env::start(true);
        let err = env
            .call(
                "remember",
                json!({"type": "fact", "content": "everyone sees this", "importance": 5, "scope": "agent"}),
                ctx(0, "r1"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "not_granted", "{err:?}");
        assert!(
            err.to_model_message().contains("sharedMemory = true"),
            "{err:?}"
        );
        let agent_scope = MemoryScope::agent("sarah");
        assert!(MemoryStore::list_memories(&env.store, &agent_scope, false)
            .await
            .unwrap()
            .is_empty());
        // A task without a user has the agent's scope as its own.
        env.call(
            "remember",
            json!({"type": "fact", "content": "no user here", "importance": 5, "scope": "agent"}),
            ToolContext::new("sarah", Uuid::nil(), 0, "r2"),
        )
        .await
        .unwrap();
        env.stop().await;
    });
}

// ---------------------------------------------------------------------------
// Issue 13: limits on the work a task may start

#[test]
fn create_task_is_refused_past_the_target_agents_queue_cap() {
    run_system(async {
        let env = Env::start(true);
        env.engine
            .pause(PauseTarget::Worker("bob".into()))
            .await
            .unwrap();
        let jobs = (0..100)
            .map(|i| crate::engine::NewJob {
                worker_name: "bob".into(),
                args: json!({"prompt": format!("queued {i}")}),
                ctx: JobCtx::default(),
                options: EnqueueOptions::default(),
            })
            .collect();
        env.engine.enqueue_many(jobs).await.unwrap();
        let err = env
            .call(
                "create_task",
                json!({"prompt": "one more", "agentId": "bob"}),
                ctx(0, "t1"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "limit_reached", "{err:?}");
        assert!(err.to_model_message().contains("maxQueuedTasks"), "{err:?}");
        assert_eq!(env.jobs_of("bob").await.len(), 100);
        // Another agent's queue is its own.
        env.call(
            "create_task",
            json!({"prompt": "for me", "agentId": "sarah"}),
            ctx(0, "t2"),
        )
        .await
        .unwrap();
        env.stop().await;
    });
}

// ---------------------------------------------------------------------------
// Issue 13: analyze_code reads what it checked, and no dotfiles

#[test]
fn analyze_code_refuses_hidden_files_and_directories() {
    run_system(async {
        let env = Env::start(true);
        let project = env.project();
        std::fs::write(project.join(".env"), "API_KEY=sk-secret\n").unwrap();
        std::fs::create_dir_all(project.join(".git")).unwrap();
        std::fs::write(project.join(".git/config"), "[core]\n").unwrap();
        std::fs::create_dir_all(project.join("src/.cache")).unwrap();
        std::fs::write(project.join("src/.cache/x.rs"), "fn x() {}\n").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(project.join(".env"), project.join("src/env.txt")).unwrap();
        let mut hidden = vec![".env", ".git/config", "src/.cache/x.rs", "./.env"];
        if cfg!(unix) {
            hidden.push("src/env.txt");
        }
        for path in hidden {
            let err = env
                .call("analyze_code", json!({"path": path}), ctx(0, "h"))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), "not_granted", "{path}: {err:?}");
            assert!(
                err.to_model_message().contains("readHiddenFiles"),
                "{path}: {err:?}"
            );
        }
        env.stop().await;
    });
}

/// A directory of the checked path is swapped for a symlink to outside the
/// root, over and over, while the tool reads: whatever it answers must come
/// from the file inside. (Before, the path was resolved and checked, then
/// opened again later, so a swap in between read the file outside.)
#[cfg(unix)]
#[test]
fn analyze_code_reads_only_what_it_checked_while_the_path_is_swapped() {
    use std::sync::atomic::AtomicBool;
    run_system(async {
        let env = Env::start(true);
        let project = env.project();
        let outside = env._dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("f.rs"), "// outside\n".repeat(50)).unwrap();
        std::fs::create_dir_all(project.join("real")).unwrap();
        std::fs::write(project.join("real/f.rs"), "fn f() {}\n").unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flipper = {
            let (stop, project, outside) = (stop.clone(), project.clone(), outside.clone());
            std::thread::spawn(move || {
                let (real, parked, tmp) = (
                    project.join("real"),
                    project.join("parked"),
                    project.join("tmp"),
                );
                // Errors are ignored: only the reader's answers are checked.
                while !stop.load(Ordering::SeqCst) {
                    let _ = std::fs::rename(&real, &parked);
                    let _ = std::os::unix::fs::symlink(&outside, &tmp);
                    let _ = std::fs::rename(&tmp, &real);
                    let _ = std::fs::remove_file(&real);
                    let _ = std::fs::rename(&parked, &real);
                }
            })
        };
        let (mut inside, mut refused) = (0, 0);
        for i in 0..5000 {
            match env
                .call(
                    "analyze_code",
                    json!({"path": "real/f.rs"}),
                    ctx(0, &format!("p{i}")),
                )
                .await
            {
                Ok(out) => {
                    assert_eq!(out["data"]["lines"], 1, "read outside the root: {out}");
                    inside += 1;
                }
                Err(_) => refused += 1,
            }
        }
        stop.store(true, Ordering::SeqCst);
        flipper.join().unwrap();
        println!("swapped path: {inside} reads inside, {refused} refused");
        env.stop().await;
    });
}

/// A writer that appends to a shared buffer (the logs a test reads).
#[derive(Clone)]
struct LogBuf(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Issue 13: a tool name with a newline and ANSI escapes, chosen by the
/// model, wrote a forged `ERROR` line into the text logs. Whatever the model
/// chooses (the tool's name, the call's id) is escaped in every log line.
#[test]
fn a_model_chosen_tool_name_cannot_forge_a_log_line() {
    let logs = LogBuf(Arc::new(std::sync::Mutex::new(Vec::new())));
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let forged = "x\n2030-01-01T00:00:00.000000Z ERROR troupe: forged by the model \u{1b}[2K";
    tracing::subscriber::with_default(subscriber, || {
        run_system(async {
            let calls = Arc::new(AtomicUsize::new(0));
            let (tree, tools) = test_tools(calls);
            for name in [forged, "echo"] {
                let mut c = ctx(0, "c\n2030-01-01T00:00:00.000000Z ERROR forged call id");
                c.call_id.push('\u{1b}');
                let args = json!({"text": forged, "times": 9});
                call(&tools, name, args, c, &["echo"]).await.unwrap_err();
            }
            tree.shutdown().await;
        })
    });
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("tool call failed"), "{text}");
    assert!(
        text.contains("tool=echo "),
        "a plain name logs as itself: {text}"
    );
    assert!(!text.contains('\u{1b}'), "a raw escape: {text}");
    for line in text.lines() {
        assert!(!line.starts_with("2030-01-01"), "a forged line: {line}");
    }
}

/// The size limit holds for what is read, not for what the file's metadata
/// said before: a procfs file reports 0 bytes and has more. (Before, the
/// size was checked on the path, then the whole file read.)
#[cfg(target_os = "linux")]
#[test]
fn analyze_code_reads_at_most_the_limit_whatever_the_size_said() {
    let tool =
        AnalyzeCodeTool::new("/proc/self", crate::agent::tool_policies(&[])).with_max_bytes(16);
    let status = std::fs::read("/proc/self/status").unwrap();
    assert!(status.len() > 16);
    assert_eq!(std::fs::metadata("/proc/self/status").unwrap().len(), 0);
    let out = run_system(Tool::call(&tool, json!({"path": "status"}), ctx(0, "p")));
    let err = out.unwrap_err();
    assert_eq!(err.kind(), "invalid_arguments", "{err:?}");
    assert!(err.to_model_message().contains("limit of 16"), "{err:?}");
}

#[test]
fn what_an_agents_config_grants_its_tools_may_do() {
    run_system(async {
        let env = Env::start_with(
            true,
            &[sarah(AgentGrants {
                conversations: vec!["team".into()],
                users: vec!["u2".into()],
                shared_memory: false,
                read_hidden_files: true,
            })],
        );
        env.call(
            "send_message",
            json!({"content": "to the team", "conversationId": "team"}),
            ctx(0, "m"),
        )
        .await
        .unwrap();
        let err = env
            .call(
                "send_message",
                json!({"content": "elsewhere", "conversationId": "other"}),
                ctx(0, "m2"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "not_granted");
        env.call(
            "scheduler",
            json!({"kind": "memory_compaction", "userId": "u2", "conversationId": "team"}),
            ctx(0, "s"),
        )
        .await
        .unwrap();
        let err = env
            .call(
                "scheduler",
                json!({"kind": "memory_compaction", "userId": "u3"}),
                ctx(0, "s2"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "not_granted");
        // u2's jobs unredacted, u3's not.
        for user in ["u2", "u3"] {
            let job = env
                .engine
                .enqueue(
                    "echo",
                    json!({"prompt": format!("prompt of {user}")}),
                    JobCtx {
                        user_id: Some(user.into()),
                        ..JobCtx::default()
                    },
                    EnqueueOptions::default(),
                )
                .await
                .unwrap();
            env.engine.wait_for(job.job().id).await.unwrap();
        }
        let out = env
            .call(
                "worker_manager",
                json!({"action": "list_jobs", "worker": "echo"}),
                ctx(0, "w"),
            )
            .await
            .unwrap();
        let text = out.to_string();
        assert!(text.contains("prompt of u2"), "{text}");
        assert!(!text.contains("prompt of u3"), "{text}");
        std::fs::write(env.project().join(".env"), "KEY=1\n").unwrap();
        let out = env
            .call("analyze_code", json!({"path": ".env"}), ctx(0, "a"))
            .await
            .unwrap();
        assert_eq!(out["data"]["lines"], 1);
        let mut refused = env.policies.refusals().snapshot();
        refused.sort();
        assert_eq!(
            refused,
            [
                ("sarah".to_string(), "conversations".to_string(), 1),
                ("sarah".to_string(), "users".to_string(), 1),
            ]
        );
        env.stop().await;
    });
}

#[test]
fn create_task_carries_the_depth_and_refuses_beyond_max_task_depth() {
    run_system(async {
        let bob = AgentConfig {
            id: "bob".into(),
            limits: AgentLimits {
                max_task_depth: 0,
                ..AgentLimits::default()
            },
            ..AgentConfig::default()
        };
        let env = Env::start_with(true, &[bob]);
        env.engine
            .pause(PauseTarget::Worker("bob".into()))
            .await
            .unwrap();
        // From outside (depth 0) down to depth 3, sarah's default limit.
        for depth in 0..3 {
            let out = env
                .call(
                    "create_task",
                    json!({"prompt": "deeper", "agentId": "bob"}),
                    ctx(0, &format!("d{depth}")).depth(depth),
                )
                .await
                .unwrap();
            let job = env.engine.get_job(job_id_of(&out)).await.unwrap();
            assert_eq!(job.ctx.extra["depth"], depth + 1);
        }
        let err = env
            .call(
                "create_task",
                json!({"prompt": "deeper still", "agentId": "bob"}),
                ctx(0, "d3").depth(3),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "limit_reached", "{err:?}");
        let text = err.to_model_message();
        assert!(text.contains("maxTaskDepth = 3"), "{text}");
        assert_eq!(env.jobs_of("bob").await.len(), 3);
        // The caller's limit counts: bob may create none, even from depth 0.
        let bobs = ToolContext::new("bob", Uuid::nil(), 0, "b").user("u1");
        let err = env
            .call("create_task", json!({"prompt": "x"}), bobs)
            .await
            .unwrap_err();
        assert!(
            err.to_model_message().contains("maxTaskDepth = 0"),
            "{err:?}"
        );
        env.stop().await;
    });
}

#[test]
fn a_repeated_create_task_call_is_not_refused_by_the_queue_it_filled() {
    run_system(async {
        let bob = AgentConfig {
            id: "bob".into(),
            limits: AgentLimits {
                max_queued_tasks: 1,
                ..AgentLimits::default()
            },
            ..AgentConfig::default()
        };
        let env = Env::start_with(true, &[bob]);
        env.engine
            .pause(PauseTarget::Worker("bob".into()))
            .await
            .unwrap();
        let args = json!({"prompt": "once", "agentId": "bob"});
        let first = env
            .call("create_task", args.clone(), ctx(0, "t"))
            .await
            .unwrap();
        // The same step again (a resumed task): the same task, not a refusal.
        let again = env
            .call("create_task", args.clone(), ctx(0, "t"))
            .await
            .unwrap();
        assert_eq!(job_id_of(&again), job_id_of(&first));
        let err = env
            .call("create_task", args, ctx(0, "t2"))
            .await
            .unwrap_err();
        assert!(
            err.to_model_message().contains("maxQueuedTasks = 1"),
            "{err:?}"
        );
        env.stop().await;
    });
}
