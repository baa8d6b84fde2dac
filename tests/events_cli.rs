//! `--follow` from the `troupe` binary: a task's events printed as they
//! happen, as readable lines and as one JSON object per line, with the
//! runtime run by the command itself and against a running daemon
//! (`troupe task … --follow`, `troupe job ID --follow`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use common::cli::{start_daemon, stderr, stdout, stop_daemon, troupe};

fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    let config = dir.join("troupe.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[store]
dataDir = "{}"

[[agents]]
id = "sarah"
name = "Sarah"
systemPrompt = "You are Sarah."
tools = ["remember"]
[agents.modelConfig]
provider = "offline"
model = "offline"
"#,
            data.display()
        ),
    )
    .unwrap();
    (data, config)
}

/// The JSON lines of a `--follow --json` run that succeeded.
fn json_lines(out: &Output) -> Vec<Value> {
    assert!(out.status.success(), "{}", stderr(out));
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// What the offline model's task to remember something emits.
const REMEMBER: [&str; 7] = [
    "attemptStarted",
    "modelCall",
    "toolCall",
    "toolResult",
    "modelCall",
    "text",
    "completed",
];

fn check_remember_task(events: &[Value]) {
    assert_eq!(types(events), REMEMBER, "{events:#?}");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    // Attempt 1's events, `1 << 32 | n`; the terminal one last of all.
    let expected: Vec<u64> = (1..=6)
        .map(|n| 1 << 32 | n)
        .chain([1 << 32 | u64::from(u32::MAX)])
        .collect();
    assert_eq!(seqs, expected);
    assert_eq!(events[2]["name"], "remember");
    assert_eq!(events[3]["isError"], false, "{}", events[3]);
    let job = events[0]["jobId"].as_str().unwrap();
    assert!(events.iter().all(|e| e["jobId"] == job));
}

const PROMPT: &str = "Remember that the events are followed";

#[test]
fn task_follow_prints_the_events_with_the_runtime_run_here() {
    let dir = tempfile::tempdir().unwrap();
    let (_data, config) = setup(dir.path());
    let out = troupe(&config, &["task", "sarah", PROMPT, "--follow", "--json"]);
    check_remember_task(&json_lines(&out));

    let out = troupe(&config, &["task", "sarah", PROMPT, "--follow"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    assert!(
        lines[0].starts_with("#1.1 ") && lines[0].ends_with("attempt 1 started"),
        "{text}"
    );
    assert!(lines[1].contains("model call 0: offline/offline"), "{text}");
    assert!(lines[2].contains("tool call remember"), "{text}");
    assert!(lines[3].contains("tool result remember"), "{text}");
    assert!(lines[5].contains("text: "), "{text}");
    assert!(lines[6].ends_with("completed"), "{text}");
    assert!(lines[6].starts_with("#1.end "), "{text}");

    let refused = troupe(&config, &["task", "sarah", PROMPT, "--follow", "--wait"]);
    assert!(!refused.status.success());
}

#[test]
fn task_and_job_follow_go_through_a_running_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let (data, config) = setup(dir.path());
    let daemon = start_daemon(&config, &data);

    let out = troupe(&config, &["task", "sarah", PROMPT, "--follow", "--json"]);
    let events = json_lines(&out);
    check_remember_task(&events);
    // The same job followed again after its end: its history, then the end.
    let id = events[0]["jobId"].as_str().unwrap();
    let again = json_lines(&troupe(&config, &["job", id, "--follow", "--json"]));
    assert_eq!(again, events);
    // A job that is not an agent's: its attempts and its end.
    let out = troupe(&config, &["enqueue", "echo", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = job["job"]["id"].as_str().unwrap();
    let echo = json_lines(&troupe(&config, &["job", id, "--follow", "--json"]));
    assert_eq!(types(&echo), ["attemptStarted", "completed"]);
    let unknown = troupe(
        &config,
        &["job", &uuid::Uuid::now_v7().to_string(), "--follow"],
    );
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("no job"), "{}", stderr(&unknown));

    stop_daemon(daemon);
}
