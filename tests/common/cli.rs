//! Running the `troupe` binary.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `troupe` binary with none of the environment that would steer it
/// (data directory, config, daemon, token, provider keys).
pub fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_troupe"));
    for var in [
        "TROUPE_DATA_DIR",
        "TROUPE_CONFIG",
        "TROUPE_SERVER",
        "TROUPE_HTTP_TOKEN",
        "TROUPE_DATABASE_URL",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "DEEPSEEK_API_KEY",
        "MISTRAL_API_KEY",
    ] {
        command.env_remove(var);
    }
    command
}

/// What it printed on stdout, trimmed.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What it printed on stderr, trimmed.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// Its stdout as JSON, after checking it succeeded.
pub fn ok_json(out: Output) -> Value {
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("json")
}

/// `troupe ARGS --config CONFIG`, run to its end.
pub fn troupe(config: &Path, args: &[&str]) -> Output {
    command()
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run troupe")
}

/// `troupe run --http 127.0.0.1:0 --config CONFIG`, once it has written
/// `daemon.json` into `data` (from then on the CLI finds it).
pub fn start_daemon(config: &Path, data: &Path) -> Child {
    let child = command()
        .args(["run", "--http", "127.0.0.1:0", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
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

/// SIGTERM to a daemon, which must then exit 0.
pub fn stop_daemon(mut child: Child) {
    let kill = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    assert!(child.wait().unwrap().success(), "exit 0 after SIGTERM");
}
