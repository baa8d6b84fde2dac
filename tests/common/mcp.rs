//! For the MCP tests: the example MCP server (`examples/mcp_server.rs`,
//! built once per test binary with the same cargo and profile), a count of
//! the calls that reached it, and a scripted OpenAI-shaped model on
//! 127.0.0.1 whose replies are picked by how many tool results the
//! conversation holds.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use troupe::{
    AgentConfig, McpServerConfig, ModelConfig, ProviderConfig, ProviderKind, TroupeConfig,
};
use wiremock::MockServer;

// The MCP tests script their model with these; not every test binary
// that builds `common` uses them.
#[allow(unused_imports)]
pub use super::scripted::{openai_text, openai_tool_calls, step, step_for};

/// The example MCP server's executable, built on first use.
pub fn mcp_server_exe() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        // target/<profile>/deps/<this test> → target/<profile>/examples/
        let this = std::env::current_exe().expect("the test's own path");
        let profile_dir = this
            .parent()
            .and_then(Path::parent)
            .expect("the test runs from target/<profile>/deps");
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--quiet", "--example", "mcp_server"]);
        // Without the variables cargo sets for a test, so build scripts
        // that watch them see the same environment as `cargo test`'s own
        // build (otherwise the two builds rebuild each other's crates).
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let set_for_tests = [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
            ]
            .iter()
            .any(|p| key.starts_with(p))
                || [
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "OUT_DIR",
                    "RUST_TEST_THREADS",
                ]
                .contains(&key.as_ref());
            if set_for_tests {
                build.env_remove(key.as_ref());
            }
        }
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build --example mcp_server failed");
        profile_dir.join("examples").join("mcp_server")
    })
    .clone()
}

/// The example server started over stdio by Troupe, counting its calls in
/// `count_file`.
pub fn stdio_server(name: &str, count_file: &Path) -> McpServerConfig {
    McpServerConfig::stdio(
        name,
        mcp_server_exe().to_string_lossy(),
        [
            "stdio".to_string(),
            "--count-file".to_string(),
            count_file.to_string_lossy().into_owned(),
        ],
    )
}

/// The example server serving streamable HTTP on 127.0.0.1; killed when
/// dropped.
pub struct HttpServer {
    child: Child,
    /// Its endpoint, `http://127.0.0.1:PORT/mcp`.
    pub url: String,
}

impl HttpServer {
    /// Starts it, counting its calls in `count_file`.
    pub fn start(count_file: &Path) -> HttpServer {
        Self::start_on(count_file, 0)
    }

    /// Starts it on `port` (0: any free one).
    pub fn start_on(count_file: &Path, port: u16) -> HttpServer {
        let mut child = Command::new(mcp_server_exe())
            .args(["http", "--count-file"])
            .arg(count_file)
            .args(["--port", &port.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the example server starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the server prints its address");
        let url = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        HttpServer { child, url }
    }
}

impl HttpServer {
    /// Its port.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches("/mcp").parse().ok())
            .expect("a port in the URL")
    }

    /// Kills it (SIGKILL) and waits for it to end.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tools that reached the server, in order (one name per call).
pub fn calls(count_file: &Path) -> Vec<String> {
    std::fs::read_to_string(count_file)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits (at most 20 s) until `f` holds.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A config with the scripted model as provider `openai`, one agent
/// `ana` allowed `tools`, and `servers`.
pub fn config(
    model: &MockServer,
    data_dir: &Path,
    tools: &[&str],
    servers: Vec<McpServerConfig>,
) -> TroupeConfig {
    let provider =
        ProviderConfig::new("openai", ProviderKind::OpenaiCompatible).with_base_url(model.uri());
    let mut agent = AgentConfig::new(
        "ana",
        "Ana",
        "You use tools.",
        ModelConfig::new("openai", "gpt-test"),
    );
    agent.tools = tools.iter().map(|t| t.to_string()).collect();
    agent.max_steps = 8;
    let mut config = TroupeConfig::default()
        .data_dir(data_dir)
        .provider(provider)
        .agent(agent);
    config.mcp_servers = servers;
    config.engine.drain_timeout = "2s".into();
    config
}
