//! The CLI against a live daemon on 127.0.0.1: it finds the daemon holding
//! the data directory by itself, or takes `--server`; job, task, memory and
//! pause commands work while `troupe run` runs; pause survives a restart.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::cli::{command, ok_json, start_daemon, stop_daemon, troupe};

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
tools = ["remember", "send_message"]
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

fn wait_status(config: &Path, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = ok_json(troupe(config, &["job", id, "--json"]));
        if job["status"] == status {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never became {status}: {job}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_cli_drives_a_running_daemon_and_pause_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (data, config) = setup(dir.path());
    let daemon = start_daemon(&config, &data);

    // Jobs: enqueue, list, show, cancel, all through the daemon.
    let out = ok_json(troupe(
        &config,
        &["enqueue", "echo", "--args", r#"{"hi":1}"#, "--json"],
    ));
    let id = out["job"]["id"].as_str().unwrap().to_string();
    let done = wait_status(&config, &id, "completed");
    assert_eq!(done["result"]["hi"], 1);
    let jobs = ok_json(troupe(&config, &["jobs", "--json", "--worker", "echo"]));
    assert_eq!(jobs[0]["id"], id.as_str());
    let unknown = troupe(&config, &["enqueue", "ghost"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("ghost"));

    // A task, waited for, through the daemon.
    let result = ok_json(troupe(
        &config,
        &[
            "task",
            "sarah",
            "Remember that the daemon answers",
            "--user",
            "ana",
            "--wait",
            "--json",
        ],
    ));
    assert_eq!(result["success"], true, "{result}");
    let memories = ok_json(troupe(
        &config,
        &["memories", "sarah", "--user", "ana", "--json"],
    ));
    assert_eq!(memories.as_array().unwrap().len(), 1);

    // Pause one worker; its jobs wait while others run.
    ok_json(troupe(&config, &["pause", "--worker", "echo", "--json"]));
    let held = ok_json(troupe(&config, &["enqueue", "echo", "--json"]))["job"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = ok_json(troupe(&config, &["enqueue", "sleep", "--json"]))["job"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_status(&config, &other, "completed");
    assert_eq!(
        ok_json(troupe(&config, &["job", &held, "--json"]))["status"],
        "queued"
    );

    let status = ok_json(troupe(&config, &["status", "--json"]));
    assert!(status["daemon"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    let echo = status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "echo")
        .unwrap()
        .clone();
    assert_eq!(echo["paused"], true);

    // The pause is durable: it holds across a restart.
    stop_daemon(daemon);
    assert!(!data.join("daemon.json").exists(), "removed at shutdown");
    let daemon = start_daemon(&config, &data);
    let other = ok_json(troupe(&config, &["enqueue", "sleep", "--json"]))["job"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_status(&config, &other, "completed");
    assert_eq!(
        ok_json(troupe(&config, &["job", &held, "--json"]))["status"],
        "queued"
    );
    ok_json(troupe(&config, &["resume", "--worker", "echo", "--json"]));
    wait_status(&config, &held, "completed");
    stop_daemon(daemon);

    // Offline, the same commands read the store directly again.
    let jobs = ok_json(troupe(&config, &["jobs", "--json"]));
    assert!(jobs.as_array().unwrap().len() >= 4);
}

#[test]
fn an_unreachable_server_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_, config) = setup(dir.path());
    let out = troupe(&config, &["jobs", "--server", "http://127.0.0.1:9"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the daemon at http://127.0.0.1:9"),
        "{err}"
    );
    let out = troupe(&config, &["jobs", "--server", "localhost:7700"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("must start with http://"));
}

/// `troupe run` on 127.0.0.1:0 with `env` set, its log going to `log`;
/// returns once it has announced its address.
fn start_daemon_with(config: &Path, data: &Path, log: &Path, env: &[(&str, &str)]) -> Child {
    let mut command = command();
    command
        .args(["run", "--http", "127.0.0.1:0", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    for (k, v) in env {
        command.env(k, v);
    }
    let child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !data.join("daemon.json").exists() {
        assert!(
            Instant::now() < deadline,
            "the daemon never announced its address"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

/// The status line and body of `GET path` on the daemon of `data`, with
/// `token` as the bearer token when given.
fn get_raw(data: &Path, path: &str, token: Option<&str>) -> String {
    use std::io::{Read, Write};
    let daemon: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("daemon.json")).unwrap()).unwrap();
    let addr = daemon["url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn the_daemon_keeps_a_token_that_the_cli_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (data, config) = setup(dir.path());
    let log = dir.path().join("daemon.log");
    let daemon = start_daemon_with(&config, &data, &log, &[]);
    // Made at first start, random, readable by its owner alone.
    let file = data.join("http.token");
    let token = std::fs::read_to_string(&file)
        .expect("the daemon writes http.token at first start")
        .trim()
        .to_string();
    assert!(token.len() >= 43, "{} characters", token.len());
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
    }
    // Required even on loopback; the probes stay open.
    assert!(get_raw(&data, "/v1/jobs", None).starts_with("HTTP/1.1 401"));
    assert!(get_raw(&data, "/metrics", None).starts_with("HTTP/1.1 401"));
    assert!(get_raw(&data, "/healthz", None).starts_with("HTTP/1.1 200"));
    assert!(get_raw(&data, "/v1/jobs", Some(&token)).starts_with("HTTP/1.1 200"));
    // The CLI finds it by itself: no flag, no variable.
    ok_json(troupe(&config, &["enqueue", "echo", "--json"]));
    let jobs = ok_json(troupe(&config, &["jobs", "--json"]));
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    // TROUPE_HTTP_TOKEN wins over the file; a wrong one says where to look.
    let out = command()
        .env("TROUPE_HTTP_TOKEN", "not-the-token")
        .args(["jobs", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http.token"), "{err}");
    assert!(err.contains("TROUPE_HTTP_TOKEN"), "{err}");
    stop_daemon(daemon);

    // Kept across restarts, and never logged.
    let daemon = start_daemon_with(&config, &data, &log, &[]);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    ok_json(troupe(&config, &["status", "--json"]));
    stop_daemon(daemon);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        !logged.contains(&token),
        "the token is in the log:\n{logged}"
    );

    // TROUPE_HTTP_TOKEN sets the daemon's token instead of the file.
    let env = [("TROUPE_HTTP_TOKEN", "an-operator-chosen-token")];
    let daemon = start_daemon_with(&config, &data, &log, &env);
    assert!(get_raw(&data, "/v1/jobs", Some(&token)).starts_with("HTTP/1.1 401"));
    assert!(get_raw(&data, "/v1/jobs", Some(env[0].1)).starts_with("HTTP/1.1 200"));
    let out = command()
        .envs(env)
        .args(["jobs", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    ok_json(out);
    stop_daemon(daemon);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        !logged.contains(env[0].1),
        "the token is in the log:\n{logged}"
    );
}

#[test]
fn a_token_on_the_command_line_is_refused_saying_where_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let (_, config) = setup(dir.path());
    for args in [
        &["jobs", "--token", "s3cret"][..],
        &["--token=s3cret", "status"],
        &["task", "sarah", "hi", "--token", "s3cret"],
        &["jobs", "--token"],
    ] {
        let out = troupe(&config, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--token"), "{args:?}: {err}");
        assert!(err.contains("TROUPE_HTTP_TOKEN"), "{args:?}: {err}");
        assert!(err.contains("http.token"), "{args:?}: {err}");
        assert!(!err.contains("s3cret"), "{args:?}: {err}");
    }
}
