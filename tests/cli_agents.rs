//! The agent commands of the `troupe` binary: task (with --wait), memories,
//! conversation, demo, and a bad config refused at start.

mod common;

use std::path::Path;
use std::process::Output;

use common::cli::command;

fn troupe(args: &[&str]) -> Output {
    command().args(args).output().expect("run troupe")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

fn write_config(dir: &Path) -> String {
    let path = dir.join("troupe.toml");
    let config = format!(
        r#"
[store]
dataDir = "{}"

[[agents]]
id = "sarah"
name = "Sarah the Frontend Developer"
systemPrompt = "You are Sarah."
tools = ["send_message", "remember", "recall", "analyze_code"]
[agents.modelConfig]
provider = "offline"
model = "offline"
"#,
        dir.join("data").display()
    );
    std::fs::write(&path, config).unwrap();
    path.display().to_string()
}

#[test]
fn task_wait_memories_and_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let out = troupe(&[
        "task",
        "sarah",
        "Remember that the team ships on Thursdays and tell the team",
        "--conversation",
        "frontend",
        "--user",
        "ana",
        "--wait",
        "--json",
        "--config",
        &config,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let result: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(result["success"], true);
    let tools: Vec<_> = result["toolCalls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tool"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tools, ["remember", "send_message"]);
    assert!(result["response"].as_str().unwrap().starts_with("Done:"));

    let out = troupe(&[
        "memories", "sarah", "--user", "ana", "--json", "--config", &config,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let memories: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(memories.as_array().unwrap().len(), 1);
    assert_eq!(memories[0]["type"], "learning");

    let out = troupe(&["conversation", "frontend", "--config", &config]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("ana: Remember that the team ships on Thursdays"),
        "{shown}"
    );
    assert!(shown.contains("sarah: Update on"), "{shown}");

    let out = troupe(&["conversation", "nobody-talked-here", "--config", &config]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no messages in conversation `nobody-talked-here`"));
}

#[test]
fn unknown_agents_and_bad_configs_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let out = troupe(&["task", "ghost", "hello", "--config", &config]);
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr),
        "error: unknown agent `ghost` (configured: sarah)"
    );

    let out = troupe(&["task", "sarah", "hello"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no config given"),
        "{}",
        text(&out.stderr)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[agents]]\nid = \"x\"\nname = \"X\"\nsystemPrompt = \"s\"\n[agents.modelConfig]\nprovider = \"nowhere\"\nmodel = \"m\"\n").unwrap();
    let out = troupe(&["run", "--config", &bad.display().to_string()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("bad.toml"), "names the file: {err}");
    assert!(
        err.contains("agents[0].modelConfig.provider"),
        "names the key: {err}"
    );
    assert!(
        err.contains("`nowhere` is not a configured provider"),
        "says why: {err}"
    );

    let missing_key = dir.path().join("nokey.toml");
    std::fs::write(
        &missing_key,
        format!(
            "[store]\ndataDir = \"{}\"\n[[providers]]\nname = \"openai\"\ntype = \"openai\"\napiKeyEnv = \"TROUPE_TEST_UNSET_KEY\"\n",
            dir.path().join("d2").display()
        ),
    )
    .unwrap();
    let out = troupe(&["run", "--config", &missing_key.display().to_string()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("TROUPE_TEST_UNSET_KEY"),
        "names the missing variable: {err}"
    );
}

#[test]
fn the_demo_runs_offline_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let out = troupe(&["demo", "--offline", "--dir", &data.display().to_string()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("using the deterministic offline model"),
        "says so"
    );
    assert!(stdout.contains("5 tasks, 5 succeeded"), "{stdout}");
    assert!(
        stdout.contains("archived [learning"),
        "compaction archived the originals: {stdout}"
    );
    assert!(stdout.contains("live     [summary"), "{stdout}");
    assert!(
        stdout.contains("memory_compac"),
        "the compaction job is in the table"
    );
}

#[test]
fn json_logs_carry_job_and_tool_call_spans() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let out = troupe(&[
        "task",
        "sarah",
        "Remember that spans work",
        "--config",
        &config,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = command()
        .args([
            "run",
            "--no-http",
            "--exit-when-idle",
            "--log-format",
            "json",
            "--config",
            &config,
        ])
        .env("RUST_LOG", "troupe=debug")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let tool_call = lines
        .iter()
        .find(|l| l["span"]["name"] == "tool_call")
        .unwrap_or_else(|| panic!("no event in a tool_call span: {lines:?}"));
    assert_eq!(tool_call["span"]["tool"], "remember");
    assert_eq!(tool_call["span"]["agent"], "sarah");
    assert!(tool_call["span"]["job"].is_string());
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["name"] == "job" || l["spans"].to_string().contains("\"job\"")),
        "a job span"
    );
}

#[test]
fn task_output_schema_gives_json_and_bad_schemas_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let schema = dir.path().join("schema.json");
    std::fs::write(
        &schema,
        r#"{"type": "object", "properties": {"title": {"type": "string"}, "priority": {"type": "integer", "minimum": 1}}, "required": ["title", "priority"]}"#,
    )
    .unwrap();
    let at_schema = format!("@{}", schema.display());
    let out = troupe(&[
        "task",
        "sarah",
        "File a ticket for the flaky login test",
        "--output-schema",
        &at_schema,
        "--wait",
        "--json",
        "--config",
        &config,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let result: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(result["success"], true);
    assert_eq!(result["output"]["priority"], 1, "{result}");
    assert!(result["output"]["title"].is_string(), "{result}");

    for (arg, says) in [
        ("{not json", "--output-schema: the schema is not JSON"),
        ("\"object\"", "`outputSchema`: must be a JSON Schema object"),
        (
            "{\"type\": 7}",
            "`outputSchema`: is not a valid JSON Schema",
        ),
        (
            "@/nonexistent/schema.json",
            "cannot read `/nonexistent/schema.json`",
        ),
    ] {
        let out = troupe(&[
            "task",
            "sarah",
            "x",
            "--output-schema",
            arg,
            "--config",
            &config,
        ]);
        assert!(!out.status.success(), "{arg}");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{arg}: {err}");
    }
}
