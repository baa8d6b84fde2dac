//! The `troupe` binary: job commands, bad input, a held data directory, and
//! `troupe run` draining on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cli::{command, stderr, stdout};

fn troupe(dir: &Path, args: &[&str]) -> Output {
    command()
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run troupe")
}

#[test]
fn help_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = troupe(dir.path(), &["--version"]);
    assert!(out.status.success());
    assert!(stdout(&out).starts_with("troupe "));
    let out = troupe(dir.path(), &["--help"]);
    assert!(out.status.success());
    for cmd in ["enqueue", "jobs", "job", "workers", "cancel", "run"] {
        assert!(stdout(&out).contains(cmd), "help lists {cmd}");
    }
}

#[test]
fn enqueue_list_show_cancel_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let out = troupe(
        dir.path(),
        &[
            "enqueue",
            "echo",
            "--args",
            r#"{"x":1}"#,
            "--ctx",
            r#"{"userId":"u7"}"#,
            "--delay",
            "1h",
            "--priority",
            "-3",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out);
    assert_eq!(id.len(), 36, "prints the job id: {id}");

    let out = troupe(dir.path(), &["jobs", "--json", "--status", "queued"]);
    let jobs: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(jobs[0]["id"], id.as_str());
    assert_eq!(jobs[0]["workerName"], "echo");
    assert_eq!(jobs[0]["priority"], -3);
    assert_eq!(jobs[0]["ctx"]["userId"], "u7");
    assert!(
        jobs[0].get("args").is_none(),
        "a list leaves out args: {jobs}"
    );
    let out = troupe(dir.path(), &["jobs", "--json", "--fields", "args,result"]);
    let jobs: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(jobs[0]["args"], serde_json::json!({"x": 1}));
    assert_eq!(jobs[0]["result"], serde_json::Value::Null);
    let out = troupe(dir.path(), &["jobs", "--fields", "secrets"]);
    assert!(
        stderr(&out).contains("`secrets` is not a job field"),
        "{}",
        stderr(&out)
    );

    let out = troupe(dir.path(), &["job", &id]);
    assert!(stdout(&out).contains("status      queued"));
    assert!(stdout(&out).contains(r#"args        {"x":1}"#));

    let out = troupe(dir.path(), &["cancel", &id]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("cancelled"));
    let out = troupe(dir.path(), &["job", &id, "--json"]);
    let job: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(job["status"], "cancelled");

    let out = troupe(dir.path(), &["enqueue", "echo", "--unique-key", "k"]);
    let first = stdout(&out);
    let out = troupe(dir.path(), &["enqueue", "echo", "--unique-key", "k"]);
    assert_eq!(stdout(&out), first, "same unique key, same job");

    let out = troupe(dir.path(), &["workers", "--json"]);
    let workers: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(workers[0]["name"], "echo");
    assert_eq!(workers[0]["category"], "diagnostic");
}

#[test]
fn bad_input_fails_with_one_line_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    // Owner-only, as the store makes its own: `troupe run` warns about a
    // data directory others can read before anything else it says.
    let owner_only = std::os::unix::fs::PermissionsExt::from_mode(0o700);
    std::fs::set_permissions(dir.path(), owner_only).unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["enqueue", "nope"], "unknown worker `nope`"),
        (
            &["enqueue", "echo", "--args", "{oops"],
            "invalid JSON in --args",
        ),
        (
            &["enqueue", "echo", "--ctx", "[1]"],
            "--ctx: must be a JSON object",
        ),
        (&["enqueue", "echo", "--delay", "5 parsecs"], "--delay"),
        (&["enqueue", "echo", "--max-attempts", "0"], "maxAttempts"),
        (&["job", "not-an-id"], "`not-an-id` is not a job id"),
        (
            &["job", "01a2083c-fd6f-71e8-88ad-83b7ce258175"],
            "no job with id 01a2083c-fd6f-71e8-88ad-83b7ce258175",
        ),
        (
            &["cancel", "01a2083c-fd6f-71e8-88ad-83b7ce258175"],
            "no job with id",
        ),
        (&["jobs", "--status", "sleeping"], "sleeping"),
        (&["jobs", "--limit", "0"], "--limit must be at least 1"),
        (
            &["run", "--concurrency", "0"],
            "--concurrency must be at least 1",
        ),
        (
            &["pause", "--worker", "a", "--agent", "b"],
            "cannot be used with",
        ),
        (&["run", "--http", "0.0.0.0:0"], "allowedHosts"),
        (&["jobs", "--server", "ftp://x"], "must start with http://"),
    ];
    for (args, expected) in cases {
        let out = troupe(dir.path(), args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = stderr(&out);
        assert!(
            err.contains(expected),
            "{args:?}: expected `{expected}` in: {err}"
        );
        assert!(err.starts_with("error"), "{args:?}: {err}");
    }
}

#[test]
fn a_data_dir_held_by_a_running_engine_is_named_and_sigterm_drains() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        let out = troupe(dir.path(), &["enqueue", "sleep", "--args", r#"{"ms":300}"#]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let mut child = command()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["run", "--no-http"])
        .env("RUST_LOG", "troupe=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut started = 0;
    while started < 3 {
        let line = lines.next().expect("daemon output").unwrap();
        if line.contains("job started") {
            started += 1;
        }
        assert!(Instant::now() < deadline);
    }

    let out = troupe(dir.path(), &["jobs"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&dir.path().display().to_string()),
        "names the directory: {err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");

    let kill = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit 0 after SIGTERM: {status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("SIGTERM")), "{rest:?}");

    let out = troupe(dir.path(), &["jobs", "--json"]);
    let jobs: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let statuses: Vec<_> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        statuses,
        ["completed", "completed", "completed"],
        "drained, not dropped"
    );
}

#[test]
fn run_logs_json_lines_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let out = troupe(
        dir.path(),
        &[
            "run",
            "--no-http",
            "--exit-when-idle",
            "--log-format",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 2, "{text}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{line}"
        );
    }
    let out = troupe(dir.path(), &["run", "--log-format", "xml"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("xml"));
}
