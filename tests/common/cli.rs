//! Running the `troupe` binary.

use std::process::{Command, Output};

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
