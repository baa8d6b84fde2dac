//! MCP client tools against a real MCP server (`examples/mcp_server.rs`,
//! built with rmcp) run as a process of its own, over stdio and streamable
//! HTTP: an agent whose scripted model (an OpenAI-shaped server on
//! 127.0.0.1) calls the server's tools through the ToolRouter; a server
//! that dies mid-call; arguments the server's schema refuses; names
//! refused at start. The server appends each call it receives to a file,
//! so the tests see which calls reached it.

mod common;

use common::mcp::{
    calls, config, openai_text, openai_tool_calls, stdio_server, step, step_for, HttpServer,
};
use serde_json::{json, Value};
use troupe::{
    Decision, McpError, McpServerConfig, RuntimeError, TaskOptions, ToolContext, ToolError, Troupe,
    TroupeConfig, TypedTool,
};
use troupe_actors::run_system;
use wiremock::MockServer;

/// Runs one task of agent `ana` and returns each tool call's result.
async fn run_task(config: TroupeConfig) -> (Vec<(String, Value)>, String) {
    let troupe = Troupe::builder(config)
        .start()
        .await
        .expect("the runtime starts");
    let answer = troupe
        .ask("ana", "Use your tools", TaskOptions::default())
        .await
        .expect("the task answers");
    let results = answer
        .tool_calls
        .iter()
        .map(|c| (c.tool.clone(), c.result.clone()))
        .collect();
    troupe.shutdown().await.expect("the runtime stops");
    (results, answer.text)
}

async fn start_error(config: TroupeConfig) -> RuntimeError {
    match Troupe::builder(config).start().await {
        Ok(_) => panic!("the runtime started"),
        Err(e) => e,
    }
}

#[test]
fn an_agent_calls_a_stdio_servers_tools_through_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("calls");
    run_system(async {
        let model = MockServer::start().await;
        step(
            &model,
            0,
            openai_tool_calls(&[
                ("c1", "calc_add", json!({"a": 2, "b": 40})),
                ("c2", "calc_echo", json!({"text": "hi"})),
            ]),
        )
        .await;
        step(&model, 2, openai_text("2 + 40 = 42")).await;
        let config = config(
            &model,
            &dir.path().join("data"),
            &["calc_add", "calc_echo"],
            vec![stdio_server("calc", &count)],
        );
        let (results, text) = run_task(config).await;
        assert_eq!(text, "2 + 40 = 42");
        assert_eq!(
            results[0],
            ("calc_add".into(), json!({"ok": true, "data": "42"}))
        );
        assert_eq!(
            results[1],
            ("calc_echo".into(), json!({"ok": true, "data": "hi"}))
        );
        // The model was offered the server's tools with their schemas.
        let first = &model.received_requests().await.unwrap()[0];
        let body: Value = serde_json::from_slice(&first.body).unwrap();
        let add = body["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["function"]["name"] == "calc_add")
            .expect("calc_add offered");
        assert_eq!(add["function"]["description"], "Adds two integers.");
        assert_eq!(add["function"]["parameters"]["required"], json!(["a", "b"]));
    });
    let mut seen = calls(&count);
    seen.sort();
    assert_eq!(seen, ["add", "echo"]);
}

#[test]
fn an_agent_calls_an_http_servers_tools() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("calls");
    let server = HttpServer::start(&count);
    run_system(async {
        let model = MockServer::start().await;
        step(
            &model,
            0,
            openai_tool_calls(&[("c1", "web_add", json!({"a": -1, "b": 1}))]),
        )
        .await;
        step(&model, 1, openai_text("zero")).await;
        let config = config(
            &model,
            &dir.path().join("data"),
            &["web_add"],
            vec![McpServerConfig::http("web", &server.url)],
        );
        let (results, _) = run_task(config).await;
        assert_eq!(
            results[0],
            ("web_add".into(), json!({"ok": true, "data": "0"}))
        );
    });
    assert_eq!(calls(&count), ["add"]);
}

#[test]
fn an_http_server_that_dies_is_reached_again_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let (first_count, second_count) = (dir.path().join("first"), dir.path().join("second"));
    let first = HttpServer::start(&first_count);
    let (url, port) = (first.url.clone(), first.port());
    let data = dir.path().join("data");
    let second_path = second_count.clone();
    run_system(async move {
        let model = MockServer::start().await;
        step(
            &model,
            0,
            openai_tool_calls(&[("c1", "web_add", json!({"a": 1, "b": 2}))]),
        )
        .await;
        step(&model, 1, openai_text("done")).await;
        let config = config(
            &model,
            &data,
            &["web_add"],
            vec![McpServerConfig::http("web", &url)],
        );
        let troupe = Troupe::builder(config).start().await.unwrap();
        let add = || troupe.ask("ana", "add", TaskOptions::default());
        assert_eq!(add().await.unwrap().tool_calls[0].result["data"], "3");
        first.kill();
        let _second = HttpServer::start_on(&second_path, port);
        // Calls fail as tool errors until the actor has a new session.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let result = add().await.unwrap().tool_calls[0].result.clone();
            if result["ok"] == true {
                assert_eq!(result["data"], "3");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never reconnected: {result}"
            );
        }
        troupe.shutdown().await.unwrap();
    });
    assert_eq!(calls(&first_count), ["add"]);
    assert_eq!(calls(&second_count), ["add"]);
}

#[test]
fn a_server_killed_mid_call_fails_that_call_and_the_next_call_works() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("calls");
    run_system(async {
        let model = MockServer::start().await;
        step(
            &model,
            0,
            openai_tool_calls(&[("c1", "calc_crash", json!({}))]),
        )
        .await;
        step(
            &model,
            1,
            openai_tool_calls(&[("c2", "calc_add", json!({"a": 1, "b": 1}))]),
        )
        .await;
        step(&model, 2, openai_text("recovered")).await;
        let config = config(
            &model,
            &dir.path().join("data"),
            &["calc_crash", "calc_add"],
            vec![stdio_server("calc", &count)],
        );
        let (results, text) = run_task(config).await;
        assert_eq!(results[0].1["ok"], false);
        assert_eq!(results[0].1["error"]["kind"], "crashed", "{}", results[0].1);
        // The actor restarted its server (a new process) and the next call
        // waited for it.
        assert_eq!(results[1].1, json!({"ok": true, "data": "2"}));
        assert_eq!(text, "recovered");
    });
    assert_eq!(calls(&count), ["crash", "add"]);
}

#[test]
fn arguments_the_schema_refuses_never_reach_the_server_and_server_errors_reach_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("calls");
    run_system(async {
        let model = MockServer::start().await;
        step(
            &model,
            0,
            openai_tool_calls(&[
                ("c1", "calc_add", json!({"a": "two", "b": 1})),
                ("c2", "calc_echo", json!({})),
                ("c3", "calc_fail", json!({})),
            ]),
        )
        .await;
        step(&model, 3, openai_text("done")).await;
        let config = config(
            &model,
            &dir.path().join("data"),
            &["calc_add", "calc_echo", "calc_fail"],
            vec![stdio_server("calc", &count)],
        );
        let (results, _) = run_task(config).await;
        assert_eq!(results[0].1["error"]["kind"], "invalid_arguments");
        assert_eq!(results[0].1["error"]["issues"][0]["path"], "/a");
        assert_eq!(results[1].1["error"]["kind"], "invalid_arguments");
        assert_eq!(results[2].1["error"]["kind"], "failed");
        let message = results[2].1["error"]["message"].as_str().unwrap();
        assert!(message.contains("the disk is on fire"), "{message}");
        // The refusals went back to the model as tool errors.
        let last = model.received_requests().await.unwrap().pop().unwrap();
        let body = String::from_utf8_lossy(&last.body);
        assert!(body.contains("Invalid arguments"), "{body}");
    });
    // Only the valid call reached the server.
    assert_eq!(calls(&count), ["fail"]);
}

#[test]
fn the_tools_are_listed_again_when_the_server_says_they_changed() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("calls");
    run_system(async {
        let model = MockServer::start().await;
        let hide = openai_tool_calls(&[("c1", "calc_hide", json!({"tool": "echo"}))]);
        step_for(&model, "TASK-HIDE", 0, hide).await;
        step_for(&model, "TASK-HIDE", 1, openai_text("hidden")).await;
        let echo = openai_tool_calls(&[("c1", "calc_echo", json!({"text": "hi"}))]);
        step_for(&model, "TASK-ECHO", 0, echo).await;
        step_for(&model, "TASK-ECHO", 1, openai_text("done")).await;
        let config = config(
            &model,
            &dir.path().join("data"),
            &["calc_hide", "calc_echo"],
            vec![stdio_server("calc", &count)],
        );
        let troupe = Troupe::builder(config).start().await.unwrap();
        let opts = TaskOptions::default;
        let hidden = troupe.ask("ana", "TASK-HIDE", opts()).await.unwrap();
        assert_eq!(hidden.tool_calls[0].result["ok"], true);
        // The server's notification makes the actor list the tools again,
        // a moment later: from then on `echo` is refused before the call.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let refusal = loop {
            let answer = troupe.ask("ana", "TASK-ECHO", opts()).await.unwrap();
            let result = answer.tool_calls[0].result.clone();
            if result["ok"] == false {
                break result;
            }
            assert!(std::time::Instant::now() < deadline, "echo still offered");
        };
        troupe.shutdown().await.unwrap();
        // A tool the server dropped is unknown, as any tool no one offers.
        assert_eq!(refusal["error"]["kind"], "unknown_tool", "{refusal}");
        let message = refusal["error"]["message"].as_str().unwrap();
        assert!(message.contains("`calc_echo`"), "{message}");
    });
    let seen = calls(&count);
    assert_eq!(seen[0], "hide");
    assert!(seen[1..].iter().all(|c| c == "echo"), "{seen:?}");
}

#[test]
fn a_call_over_its_timeout_fails_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("calls");
    run_system(async {
        let model = MockServer::start().await;
        step(
            &model,
            0,
            openai_tool_calls(&[("c1", "calc_slow", json!({"ms": 10_000}))]),
        )
        .await;
        step(
            &model,
            1,
            openai_tool_calls(&[("c2", "calc_echo", json!({"text": "still here"}))]),
        )
        .await;
        step(&model, 2, openai_text("done")).await;
        let mut server = stdio_server("calc", &count);
        server.timeout = Some("500ms".into());
        let config = config(
            &model,
            &dir.path().join("data"),
            &["calc_slow", "calc_echo"],
            vec![server],
        );
        let (results, _) = run_task(config).await;
        assert_eq!(results[0].1["error"]["kind"], "timed_out");
        assert_eq!(results[1].1, json!({"ok": true, "data": "still here"}));
    });
}

/// A custom tool named like an MCP tool would be.
struct CalcAdd;

#[async_trait::async_trait]
impl TypedTool for CalcAdd {
    type Args = Value;
    type Output = Value;
    type Error = ToolError;
    fn name(&self) -> &str {
        "calc_add"
    }
    fn description(&self) -> &str {
        "Adds, locally."
    }
    async fn run(&self, args: Value, _: ToolContext) -> Result<Value, ToolError> {
        Ok(args)
    }
}

#[test]
fn a_name_clash_an_over_long_name_and_a_dead_server_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("calls");
    run_system(async {
        let model = MockServer::start().await;
        let data = dir.path().join("data");
        // Server `calc`'s `add` would be `calc_add`, a custom tool's name.
        let clash = config(&model, &data, &[], vec![stdio_server("calc", &count)]);
        let e = match Troupe::builder(clash).tool(CalcAdd).start().await {
            Ok(_) => panic!("started"),
            Err(e) => e,
        };
        assert!(
            matches!(&e, RuntimeError::Mcp(McpError::NameClash { name, .. }) if name == "calc_add"),
            "{e}"
        );
        assert!(e.to_string().contains("`calc_add`"), "{e}");

        let long = config(
            &model,
            &data,
            &[],
            vec![stdio_server("a-rather-long-server-name", &count)],
        );
        let e = start_error(long).await;
        assert!(
            matches!(&e, RuntimeError::Mcp(McpError::InvalidName { tool, .. })
                if tool == "report_the_weather_for_every_city_in_the_world_now"),
            "{e}"
        );
        assert!(e.to_string().contains("more than the 64"), "{e}");

        // With an allow-list leaving the long tool out, the same server starts.
        let mut allowed = stdio_server("a-rather-long-server-name", &count);
        allowed.tools = Some(vec!["add".into()]);
        let troupe = Troupe::builder(config(&model, &data, &[], vec![allowed]))
            .start()
            .await
            .expect("starts with the allow-list");
        troupe.shutdown().await.unwrap();

        let dead = McpServerConfig::stdio(
            "gone",
            dir.path().join("no-such-program").to_string_lossy(),
            [""; 0],
        );
        let e = start_error(config(&model, &data, &[], vec![dead])).await;
        assert!(
            matches!(&e, RuntimeError::Mcp(McpError::Unreachable { server, .. }) if server == "gone"),
            "{e}"
        );
    });
    assert!(calls(&count).is_empty());
}

#[test]
fn a_server_whose_tool_needs_approval_waits_for_it_then_runs_the_call_once() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("calls");
    run_system(async {
        let model = MockServer::start().await;
        step(
            &model,
            0,
            openai_tool_calls(&[("c1", "calc_add", json!({"a": 1, "b": 2}))]),
        )
        .await;
        step(&model, 1, openai_text("1 + 2 = 3")).await;
        let mut server = stdio_server("calc", &count);
        server.approval = vec!["add".into()];
        let config = config(
            &model,
            &dir.path().join("data"),
            &["calc_add"],
            vec![server],
        );
        let troupe = Troupe::builder(config).start().await.unwrap();
        let job = troupe
            .task("ana", "Add them", TaskOptions::default())
            .await
            .unwrap();
        let engine = troupe.engine();
        let pending = common::daemon::eventually("the call to wait for approval", || async {
            let pending = engine.pending_approvals().await.unwrap();
            (!pending.is_empty()).then_some(pending)
        })
        .await;
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].tool, "calc_add");
        assert_eq!(pending[0].arguments, json!({"a": 1, "b": 2}));
        assert!(
            calls(&count).is_empty(),
            "nothing reached the server before approval"
        );
        engine
            .decide_approval(pending[0].id, Decision::Approve { note: None })
            .await
            .unwrap();
        let answer = troupe.wait(job.id).await.unwrap();
        assert_eq!(answer.text, "1 + 2 = 3");
        assert_eq!(
            answer.tool_calls[0].result,
            json!({"ok": true, "data": "3"})
        );
        troupe.shutdown().await.unwrap();
    });
    assert_eq!(calls(&count), ["add"], "the approved call ran once");
}

/// The example server over stdio keeping `hidden` back until a `reveal`.
fn stdio_server_hiding(name: &str, count: &std::path::Path, hidden: &[&str]) -> McpServerConfig {
    let mut server = stdio_server(name, count);
    for tool in hidden {
        server.args.push("--hidden".into());
        server.args.push(tool.to_string());
    }
    server
}

/// The names of the tools the model was offered in `request`.
fn offered(request: &wiremock::Request) -> Vec<String> {
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    body["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .map(|t| t["function"]["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The first model request of each task whose prompt holds `token`, in
/// order.
async fn first_requests(model: &MockServer, token: &str) -> Vec<wiremock::Request> {
    model
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| {
            let body = String::from_utf8_lossy(&r.body);
            body.contains(token) && !body.contains(r#""role":"tool""#)
        })
        .collect()
}

/// Runs task `token` of agent `ana` until its first tool call's result
/// satisfies `done` (the server's listing is picked up a moment after its
/// notification), at most 20 s; that result.
async fn until_result(troupe: &Troupe, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let answer = troupe
            .ask("ana", token, TaskOptions::default())
            .await
            .unwrap();
        let result = answer.tool_calls[0].result.clone();
        if done(&result) {
            return result;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{token}: still {result}"
        );
    }
}

#[test]
fn a_tool_the_server_adds_after_start_is_offered_to_the_model_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("calls");
    run_system(async {
        let model = MockServer::start().await;
        let reveal = openai_tool_calls(&[("c1", "calc_reveal", json!({"tool": "echo"}))]);
        step_for(&model, "TASK-REVEAL", 0, reveal).await;
        step_for(&model, "TASK-REVEAL", 1, openai_text("revealed")).await;
        let echo = openai_tool_calls(&[("c1", "calc_echo", json!({"text": "new"}))]);
        step_for(&model, "TASK-ECHO", 0, echo).await;
        step_for(&model, "TASK-ECHO", 1, openai_text("done")).await;
        let hide = openai_tool_calls(&[("c1", "calc_hide", json!({"tool": "echo"}))]);
        step_for(&model, "TASK-HIDE", 0, hide).await;
        step_for(&model, "TASK-HIDE", 1, openai_text("hidden")).await;
        // Agent `ana` may use every tool of server `calc`, now and later.
        let config = config(
            &model,
            &dir.path().join("data"),
            &["calc_*"],
            vec![stdio_server_hiding("calc", &count, &["echo"])],
        );
        let troupe = Troupe::builder(config).start().await.unwrap();
        let opts = TaskOptions::default;
        let revealed = troupe.ask("ana", "TASK-REVEAL", opts()).await.unwrap();
        assert_eq!(revealed.tool_calls[0].result["ok"], true);
        let before = offered(&first_requests(&model, "TASK-REVEAL").await[0]);
        assert!(before.contains(&"calc_reveal".to_string()), "{before:?}");
        assert!(!before.contains(&"calc_echo".to_string()), "{before:?}");

        let echoed = until_result(&troupe, "TASK-ECHO", |r| r["ok"] == true).await;
        assert_eq!(echoed, json!({"ok": true, "data": "new"}));
        // The task whose call ran offered the new tool, with its schema.
        let requests = first_requests(&model, "TASK-ECHO").await;
        let last = requests.last().unwrap();
        assert!(
            offered(last).contains(&"calc_echo".to_string()),
            "{:?}",
            offered(last)
        );
        let body: Value = serde_json::from_slice(&last.body).unwrap();
        let echo_def = body["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["function"]["name"] == "calc_echo")
            .unwrap();
        assert_eq!(
            echo_def["function"]["parameters"]["required"],
            json!(["text"])
        );

        // Dropped again: refused as unknown, and no longer offered.
        let hidden = troupe.ask("ana", "TASK-HIDE", opts()).await.unwrap();
        assert_eq!(hidden.tool_calls[0].result["ok"], true);
        let refused = until_result(&troupe, "TASK-ECHO", |r| r["ok"] == false).await;
        assert_eq!(refused["error"]["kind"], "unknown_tool", "{refused}");
        let requests = first_requests(&model, "TASK-ECHO").await;
        let last = offered(requests.last().unwrap());
        assert!(!last.contains(&"calc_echo".to_string()), "{last:?}");
        troupe.shutdown().await.unwrap();
    });
    let seen = calls(&count);
    assert_eq!(seen.iter().filter(|c| *c == "echo").count(), 1, "{seen:?}");
}

/// A custom tool of any name, answering `"local"`.
struct Local(&'static str);

#[async_trait::async_trait]
impl TypedTool for Local {
    type Args = Value;
    type Output = Value;
    type Error = ToolError;
    fn name(&self) -> &str {
        self.0
    }
    fn description(&self) -> &str {
        "Answers locally."
    }
    async fn run(&self, _: Value, _: ToolContext) -> Result<Value, ToolError> {
        Ok(json!("local"))
    }
}

#[test]
fn a_tool_added_later_under_an_unusable_or_taken_name_is_left_out_and_the_rest_serves() {
    const LONG: &str = "report_the_weather_for_every_city_in_the_world_now";
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("calls");
    run_system(async {
        let model = MockServer::start().await;
        // `srv-with-a-long-name_` + LONG is 71 characters; `…_add` is a
        // custom tool's name.
        let reveal = |id, tool: &str| {
            openai_tool_calls(&[(id, "srv-with-a-long-name_reveal", json!({"tool": tool}))])
        };
        step_for(&model, "TASK-REVEAL", 0, reveal("c1", LONG)).await;
        step_for(&model, "TASK-REVEAL", 1, reveal("c2", "add")).await;
        step_for(&model, "TASK-REVEAL", 2, reveal("c3", "echo")).await;
        step_for(&model, "TASK-REVEAL", 3, openai_text("revealed")).await;
        let echo = openai_tool_calls(&[
            ("c1", "srv-with-a-long-name_echo", json!({"text": "new"})),
            ("c2", "srv-with-a-long-name_add", json!({"a": 1, "b": 2})),
        ]);
        step_for(&model, "TASK-ECHO", 0, echo).await;
        step_for(&model, "TASK-ECHO", 2, openai_text("done")).await;
        let config = config(
            &model,
            &dir.path().join("data"),
            &["srv-with-a-long-name_*", "srv-with-a-long-name_add"],
            vec![stdio_server_hiding(
                "srv-with-a-long-name",
                &count,
                &[LONG, "add", "echo"],
            )],
        );
        let troupe = Troupe::builder(config)
            .tool(Local("srv-with-a-long-name_add"))
            .start()
            .await
            .unwrap();
        let revealed = troupe
            .ask("ana", "TASK-REVEAL", TaskOptions::default())
            .await
            .unwrap();
        assert!(
            revealed.tool_calls.iter().all(|c| c.result["ok"] == true),
            "{:?}",
            revealed.tool_calls
        );
        // `echo`, revealed last, is callable once its listing (which also
        // holds the two others) is published.
        until_result(&troupe, "TASK-ECHO", |r| r["ok"] == true).await;
        let answer = troupe
            .ask("ana", "TASK-ECHO", TaskOptions::default())
            .await
            .unwrap();
        assert_eq!(answer.tool_calls[0].result["data"], "new");
        // The name a custom tool has keeps answering as that tool.
        assert_eq!(answer.tool_calls[1].result["data"], "local");
        let requests = first_requests(&model, "TASK-ECHO").await;
        let tools = offered(requests.last().unwrap());
        assert!(
            tools.contains(&"srv-with-a-long-name_echo".to_string()),
            "{tools:?}"
        );
        assert!(!tools.iter().any(|t| t.contains("weather")), "{tools:?}");
        assert_eq!(
            tools
                .iter()
                .filter(|t| *t == "srv-with-a-long-name_add")
                .count(),
            1,
            "{tools:?}"
        );
        troupe.shutdown().await.unwrap();
    });
    let seen = calls(&count);
    assert!(!seen.contains(&"add".to_string()), "{seen:?}");
}
