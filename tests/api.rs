//! The control API's types (`troupe::api`): every request and answer type
//! survives its own wire format (JSON, or a query string for the GET
//! queries), and every request type refuses bad input with the status the
//! daemon answers and a message naming the field at fault.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use troupe::api::*;
use troupe::job::{EnqueueOptions, Job, JobCtx, JobStatus};
use troupe::BreakerState;
use troupe::ProcessingResult;
use troupe::{WorkerCategory, WorkerInfo};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let text = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(&back, value, "{text}");
}

/// A request read back as the daemon reads it off the wire.
fn round_trip_body<T: Request + Serialize + PartialEq + Debug>(value: &T) {
    round_trip(value);
    let body = serde_json::to_vec(value).unwrap();
    let back: T = parse_body(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&back, value);
}

/// A query read back as the daemon reads it from the URL the client wrote.
fn round_trip_query<T: Request + Serialize + PartialEq + Debug>(value: &T) {
    round_trip(value);
    let query = serde_urlencoded::to_string(value).unwrap();
    let back: T = parse_query(&query).unwrap_or_else(|e| panic!("{e}: {query}"));
    assert_eq!(&back, value, "{query}");
}

fn job() -> Job {
    let mut ctx = JobCtx {
        user_id: Some("ann".into()),
        source: Some("test".into()),
        ..JobCtx::default()
    };
    ctx.extra.insert("team".into(), json!("frontend"));
    let options = EnqueueOptions::default()
        .priority(-2)
        .unique_key("k1")
        .timeout(std::time::Duration::from_secs(5));
    Job::new(
        "echo",
        json!({"x": [1, 2]}),
        ctx,
        &options,
        chrono::Utc::now(),
    )
    .unwrap()
}

fn result() -> ProcessingResult {
    serde_json::from_value(json!({
        "success": true, "response": "Done.", "error": null, "steps": 2,
        "toolCalls": [{"tool": "remember", "parameters": {"content": "x"}, "result": {"ok": true}}],
        "usage": {"inputTokens": 10, "outputTokens": 3, "cachedInputTokens": 0},
        "provider": "offline", "model": "offline"
    }))
    .unwrap()
}

fn worker(name: &str, category: WorkerCategory) -> WorkerState {
    WorkerState {
        info: WorkerInfo {
            name: name.into(),
            description: format!("the {name} worker"),
            category,
            concurrency: 4,
        },
        paused: true,
        queued: 3,
        running: 1,
        failed: 2,
    }
}

fn agent() -> AgentState {
    AgentState {
        id: "sarah".into(),
        name: "Sarah".into(),
        provider: "offline".into(),
        model: "offline".into(),
        tools: vec!["remember".into()],
        concurrency: 2,
        paused: false,
        queued: 1,
        running: 0,
        completed: 5,
        failed: 1,
    }
}

fn provider(circuit: Option<BreakerState>) -> ProviderState {
    ProviderState {
        name: "openai".into(),
        circuit,
        actor: "running".into(),
        restarts: 2,
        ok: true,
    }
}

#[test]
fn job_types_survive_their_wire_format() {
    let mut full = EnqueueRequest::new("echo");
    full.args = Some(json!({"a": {"b": [true, null]}}));
    full.ctx = Some(job().ctx);
    full.delay_ms = Some(1500);
    full.priority = Some(-7);
    full.max_attempts = Some(9);
    full.unique_key = Some("u".into());
    full.timeout_ms = Some(30_000);
    round_trip_body(&full);
    round_trip_body(&EnqueueRequest::new("sleep"));
    let at = EnqueueRequest {
        run_at: Some("2999-01-01T00:00:00Z".parse().unwrap()),
        ..EnqueueRequest::new("echo")
    };
    round_trip_body(&at);

    round_trip(&Enqueued {
        new: false,
        job: job(),
    });
    round_trip_query(&JobsQuery::default());
    round_trip_query(&JobsQuery {
        status: Some(JobStatus::Failed),
        worker: Some("a worker/with spaces&more".into()),
        limit: Some(1000),
        cursor: Some(job().id),
        fields: vec![JobField::Result, JobField::Args],
    });
    round_trip_query(&JobsQuery {
        fields: vec![JobField::Args],
        ..JobsQuery::default()
    });
    round_trip(&JobsPage {
        jobs: vec![job(), job()],
        next_cursor: Some(job().id),
        omitted: vec![],
    });
    round_trip(&JobsPage {
        jobs: vec![],
        next_cursor: None,
        omitted: vec![],
    });
    // A list's jobs without their args and results: the fields are absent
    // on the wire, and come back empty.
    let mut listed = job();
    listed.args = Value::Null;
    listed.result = None;
    round_trip(&JobsPage {
        jobs: vec![listed.clone()],
        next_cursor: None,
        omitted: JobField::ALL.to_vec(),
    });
    let wire = serde_json::to_value(JobsPage {
        jobs: vec![listed],
        next_cursor: None,
        omitted: JobField::ALL.to_vec(),
    })
    .unwrap();
    assert!(wire["jobs"][0].get("args").is_none(), "{wire}");
    assert!(wire["jobs"][0].get("result").is_none(), "{wire}");
    assert_eq!(wire["omitted"], json!(["args", "result"]));
    for outcome in [
        CancelKind::Cancelled,
        CancelKind::Requested,
        CancelKind::AlreadyEnded,
    ] {
        round_trip(&CancelAnswer {
            outcome,
            job: job(),
        });
    }
}

#[test]
fn agent_types_survive_their_wire_format() {
    round_trip(&AgentsAnswer {
        agents: vec![agent()],
    });
    round_trip_body(&TaskRequest::new("Review the PR"));
    round_trip_body(&TaskRequest {
        conversation_id: Some("c-1".into()),
        user_id: Some("ann".into()),
        wait: true,
        ..TaskRequest::new("Hello")
    });
    round_trip(&TaskAnswer::Queued(job()));
    round_trip(&TaskAnswer::Finished(result()));
    round_trip(&TaskAnswer::Finished(ProcessingResult::failed("it broke")));
    round_trip_query(&MemoriesQuery::default());
    round_trip_query(&MemoriesQuery {
        user_id: Some("ann é&=?".into()),
        archived: true,
    });
    let memory = serde_json::from_value(json!({
        "id": "0190f0c4-0000-7000-8000-000000000001", "agentId": "sarah", "userId": "ann",
        "type": "learning", "content": "ships on Thursdays", "importance": 7,
        "createdAt": "2026-01-01T00:00:00Z", "lastAccessedAt": "2026-01-02T00:00:00.123456Z",
        "archived": true, "archivedInto": "0190f0c4-0000-7000-8000-000000000002"
    }))
    .unwrap();
    round_trip(&MemoriesAnswer {
        memories: vec![memory],
    });
    let message = serde_json::from_value(json!({
        "id": "0190f0c4-0000-7000-8000-000000000003", "conversationId": "c-1",
        "role": "assistant", "author": "sarah", "content": "Done.",
        "createdAt": "2026-01-01T00:00:00Z"
    }))
    .unwrap();
    round_trip(&MessagesAnswer {
        messages: vec![message],
    });
}

#[test]
fn worker_pause_and_status_types_survive_their_wire_format() {
    let workers = vec![
        worker("echo", WorkerCategory::Diagnostic),
        worker("custom", WorkerCategory::Other("ingest".into())),
    ];
    round_trip(&WorkersAnswer {
        workers: workers.clone(),
        paused_all: true,
    });
    round_trip_body(&PauseRequest::all());
    round_trip_body(&PauseRequest::worker("echo"));
    round_trip_body(&PauseRequest::agent("sarah"));
    let paused = PauseView {
        all: false,
        workers: ["echo".to_string(), "sarah".to_string()].into(),
    };
    round_trip(&paused);
    round_trip(&PausedAnswer { paused });

    round_trip(&Health::ok());
    let readiness = Readiness {
        ready: false,
        degraded: true,
        store: StoreCheck {
            ok: false,
            error: Some("disk gone".into()),
        },
        supervisors: vec![SupervisorState {
            name: "engine".into(),
            state: "running".into(),
            ok: true,
            ended: None,
        }],
        providers: vec![
            provider(Some(BreakerState::HalfOpen)),
            ProviderState::not_running("anthropic"),
        ],
    };
    round_trip(&readiness);
    for screen in [
        StatusScreen {
            daemon: Some("http://127.0.0.1:7700".into()),
            ready: Some(true),
            workers,
            paused_all: false,
            agents: vec![agent()],
            queue_depth: 12,
            waiting: 2,
            pending_approvals: 3,
            running: vec![job()],
            providers: vec![provider(Some(BreakerState::Open))],
            spend_today_usd: 0.125,
            nodes: vec![troupe::store::NodeInfo {
                id: uuid::Uuid::now_v7(),
                host: "db-1".into(),
                pid: 4242,
                version: "0.1.0".into(),
                started_at: chrono::Utc::now(),
                last_heartbeat: chrono::Utc::now(),
                running: 3,
                alive: true,
            }],
        },
        StatusScreen {
            daemon: None,
            ready: None,
            workers: vec![],
            paused_all: true,
            agents: vec![],
            queue_depth: 0,
            waiting: 0,
            pending_approvals: 0,
            running: vec![],
            providers: vec![ProviderState::not_running("openai")],
            spend_today_usd: 0.0,
            nodes: vec![],
        },
    ] {
        round_trip(&screen);
    }
    round_trip(&ErrorBody::new(422, "invalid field `x`: no"));
}

#[test]
fn the_wire_shapes_are_the_documented_ones() {
    // The daemon's answers as README and scripts know them.
    let cancel = serde_json::to_value(CancelAnswer {
        outcome: CancelKind::AlreadyEnded,
        job: job(),
    })
    .unwrap();
    assert_eq!(cancel["outcome"], "alreadyEnded");
    assert_eq!(cancel["job"]["workerName"], "echo");
    let page = serde_json::to_value(JobsPage {
        jobs: vec![],
        next_cursor: None,
        omitted: vec![],
    })
    .unwrap();
    assert_eq!(page, json!({"jobs": [], "nextCursor": null}));
    let w = serde_json::to_value(worker("echo", WorkerCategory::Diagnostic)).unwrap();
    assert_eq!(
        w,
        json!({"name": "echo", "description": "the echo worker", "category": "diagnostic",
               "concurrency": 4, "paused": true, "queued": 3, "running": 1, "failed": 2})
    );
    let paused = serde_json::to_value(PausedAnswer::default()).unwrap();
    assert_eq!(paused, json!({"paused": {"all": false, "workers": []}}));
    let error = serde_json::to_value(ControlError::field("prompt", "must not be empty").body());
    assert_eq!(
        error.unwrap(),
        json!({"error": {"status": 422, "message": "invalid field `prompt`: must not be empty"}})
    );
    let ready = serde_json::to_value(StoreCheck {
        ok: true,
        error: None,
    });
    assert_eq!(ready.unwrap(), json!({"ok": true}));
    // Answers read back from the variant's own shape.
    let queued = serde_json::to_value(TaskAnswer::Queued(job())).unwrap();
    assert!(queued["id"].is_string() && queued.get("success").is_none());
}

/// Parses `body` as `T`, expecting a refusal with `status` whose message
/// names `field` in backquotes.
fn refused<T: Request + Debug>(body: Value, status: u16, field: &str) {
    let text = body.to_string();
    match parse_body::<T>(text.as_bytes()) {
        Ok(parsed) => panic!("{text} parsed as {parsed:?}"),
        Err(e) => {
            assert_eq!(e.status(), status, "{text} → {e}");
            assert!(
                e.to_string().contains(&format!("`{field}`")),
                "{text} → {e}"
            );
        }
    }
}

/// Parses `query` as `T`, expecting a 400 naming `param` in backquotes.
fn refused_query<T: Request + Debug>(query: &str, param: &str) {
    match parse_query::<T>(query) {
        Ok(parsed) => panic!("{query} parsed as {parsed:?}"),
        Err(e) => {
            assert_eq!(e.status(), 400, "{query} → {e}");
            assert!(
                e.to_string().contains(&format!("`{param}`")),
                "{query} → {e}"
            );
        }
    }
}

#[test]
fn bad_enqueue_requests_name_the_field() {
    type E = EnqueueRequest;
    // Unknown and missing fields.
    refused::<E>(
        json!({"workerName": "echo", "colour": "red"}),
        422,
        "colour",
    );
    refused::<E>(json!({"args": {}}), 422, "workerName");
    refused::<E>(json!({}), 422, "workerName");
    // Wrong types.
    for (field, value) in [
        ("workerName", json!(7)),
        ("ctx", json!([1])),
        ("ctx", json!({"userId": 5})),
        ("ctx", json!("userId")),
        ("delayMs", json!(1.5)),
        ("delayMs", json!(-1)),
        ("delayMs", json!("5s")),
        ("runAt", json!("tomorrow")),
        ("runAt", json!(1_700_000_000)),
        ("priority", json!("high")),
        ("priority", json!(1u64 << 40)),
        ("maxAttempts", json!(-1)),
        ("maxAttempts", json!(true)),
        ("uniqueKey", json!(5)),
        ("timeoutMs", json!({})),
    ] {
        let mut body = json!({"workerName": "echo"});
        body[field] = value;
        refused::<E>(body, 422, field);
    }
    // Empty and zero values.
    for (field, value) in [
        ("workerName", json!("")),
        ("workerName", json!("   ")),
        ("maxAttempts", json!(0)),
        ("uniqueKey", json!("")),
        ("timeoutMs", json!(0)),
    ] {
        let mut body = json!({"workerName": "echo"});
        body[field] = value;
        refused::<E>(body, 422, field);
    }
    // Exclusive fields: both named.
    let both = json!({"workerName": "echo", "delayMs": 5, "runAt": "2999-01-01T00:00:00Z"});
    refused::<E>(both.clone(), 422, "delayMs");
    refused::<E>(both, 422, "runAt");
    // `null` is absent.
    let parsed: E = parse_body(br#"{"workerName":"echo","priority":null,"args":null}"#).unwrap();
    assert_eq!(parsed, EnqueueRequest::new("echo"));
    assert_eq!(parsed.job_args(), json!({}));
}

#[test]
fn bad_task_and_pause_requests_name_the_field() {
    type T = TaskRequest;
    refused::<T>(json!({}), 422, "prompt");
    refused::<T>(json!({"prompt": "x", "agent": "sarah"}), 422, "agent");
    for (field, value) in [
        ("prompt", json!(5)),
        ("prompt", json!("")),
        ("prompt", json!(" \n")),
        ("conversationId", json!(["c"])),
        ("conversationId", json!("")),
        ("userId", json!(7)),
        ("userId", json!(" ")),
        ("wait", json!("yes")),
        ("wait", json!(1)),
    ] {
        let mut body = json!({"prompt": "hello"});
        body[field] = value;
        refused::<T>(body, 422, field);
    }
    let parsed: T = parse_body(br#"{"prompt":"hi","wait":null}"#).unwrap();
    assert!(!parsed.wait);

    type P = PauseRequest;
    refused::<P>(json!({"everything": true}), 422, "everything");
    refused::<P>(json!({"worker": 7}), 422, "worker");
    refused::<P>(json!({"agent": false}), 422, "agent");
    refused::<P>(json!({"worker": ""}), 422, "worker");
    refused::<P>(json!({"agent": "  "}), 422, "agent");
    refused::<P>(json!({"worker": "echo", "agent": "sarah"}), 422, "agent");
    assert_eq!(parse_body::<P>(b"").unwrap(), PauseRequest::all());
    assert_eq!(parse_body::<P>(b" {} ").unwrap(), PauseRequest::all());
}

#[test]
fn bodies_that_are_not_json_objects_are_bad_requests() {
    for (body, says) in [
        (&b"{not json"[..], "not valid JSON"),
        (b"[1,2]", "must be a JSON object, not an array"),
        (b"\"hi\"", "must be a JSON object, not a string"),
        (b"null", "must be a JSON object, not null"),
        (b"prompt=hi", "not valid JSON"),
    ] {
        let e = parse_body::<TaskRequest>(body).unwrap_err();
        assert_eq!(e.status(), 400, "{e}");
        assert!(e.to_string().contains(says), "{e}");
    }
    let e = parse_job_id("not-a-uuid").unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(
        e.to_string().contains("`not-a-uuid` is not a job id"),
        "{e}"
    );
}

#[test]
fn bad_queries_name_the_parameter() {
    type J = JobsQuery;
    refused_query::<J>("status=sleeping", "status");
    refused_query::<J>("limit=0", "limit");
    refused_query::<J>("limit=1001", "limit");
    refused_query::<J>("limit=lots", "limit");
    refused_query::<J>("limit=-1", "limit");
    refused_query::<J>("cursor=zzz", "cursor");
    refused_query::<J>("colour=red", "colour");
    refused_query::<J>("fields=args,secrets", "fields");
    refused_query::<J>("fields=ctx", "fields");
    let q: J = parse_query("fields=%20result%20,,args,result").unwrap();
    assert_eq!(q.fields, [JobField::Result, JobField::Args]);
    assert_eq!(q.omitted(), []);
    let q: J = parse_query("fields=").unwrap();
    assert_eq!(q.omitted(), JobField::ALL);
    let q: J = parse_query("status=running&worker=a%20b&limit=7").unwrap();
    assert_eq!(q.status, Some(JobStatus::Running));
    assert_eq!(q.worker.as_deref(), Some("a b"));
    assert_eq!(q.list_query().limit, 7);
    assert_eq!(
        parse_query::<J>("").unwrap().list_query().limit,
        DEFAULT_PAGE
    );

    type M = MemoriesQuery;
    refused_query::<M>("archived=maybe", "archived");
    refused_query::<M>("userId=", "userId");
    refused_query::<M>("user=ann", "user");
    let q: M = parse_query("userId=ann&archived=true").unwrap();
    assert_eq!(q.user_id.as_deref(), Some("ann"));
    assert!(q.archived);
}

#[test]
fn control_errors_keep_their_status_across_the_wire() {
    for (e, status) in [
        (ControlError::BadRequest("b".into()), 400),
        (ControlError::Unauthorized, 401),
        (ControlError::NotFound("n".into()), 404),
        (ControlError::too_large(1024), 413),
        (ControlError::field("f", "r"), 422),
        (ControlError::Internal("i".into()), 500),
        (ControlError::Unavailable("u".into()), 503),
    ] {
        assert_eq!(e.status(), status);
        let body: ErrorBody =
            serde_json::from_value(serde_json::to_value(e.body()).unwrap()).unwrap();
        let back = ControlError::from_status(body.error.status, body.error.message);
        assert_eq!(back.status(), status);
        assert_eq!(back.to_string(), e.to_string());
    }
}
