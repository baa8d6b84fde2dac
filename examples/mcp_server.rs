//! An MCP server built with `rmcp` (the official Rust SDK), for Troupe's
//! MCP tests and benchmark: a real process speaking the real protocol.
//!
//! ```text
//! cargo run --example mcp_server -- stdio [--count-file PATH] [--hidden TOOL]…
//! cargo run --example mcp_server -- http  [--count-file PATH] [--port N] [--hidden TOOL]…
//! ```
//! `stdio` speaks MCP on stdin/stdout (the client starts it as a child
//! process); `http` serves streamable HTTP on `127.0.0.1` at a free port
//! (or `--port`) and prints `listening http://127.0.0.1:PORT/mcp` as its
//! first line.
//!
//! Tools: `add` (two integers), `echo` (a text back), `fail` (an `isError`
//! result), `slow` (answers after `ms` milliseconds), `crash` (the process
//! exits in the middle of the call, never answering), `hide` (stops
//! offering a tool and sends `notifications/tools/list_changed`), `reveal`
//! (offers a hidden tool again, or one `--hidden` kept back from the start,
//! and sends the same notification), and one with a 50-character name
//! (`report_the_weather_for_every_city_in_the_world_now`). With `--count-file`,
//! every call that reaches a tool appends the tool's name and a newline to
//! that file, so a test can tell which calls reached the server.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{schemars, tool, tool_handler, tool_router, RoleServer, ServerHandler, ServiceExt};

/// Arguments of `add`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    /// The first term.
    a: i64,
    /// The second term.
    b: i64,
}

/// Arguments of `echo`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// The text to send back.
    text: String,
}

/// Arguments of `slow`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct SlowArgs {
    /// How long to wait before answering, in milliseconds.
    ms: u64,
}

/// Arguments of the tools that take none.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct NoArgs {}

/// Arguments of `hide` and `reveal`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct HideArgs {
    /// The tool to stop offering, or to offer again.
    tool: String,
}

#[derive(Clone)]
struct TestServer {
    count_file: Option<Arc<PathBuf>>,
    /// Tools no longer offered (see `hide`).
    hidden: Arc<Mutex<BTreeSet<String>>>,
}

impl TestServer {
    fn new(count_file: Option<PathBuf>, hidden: BTreeSet<String>) -> Self {
        TestServer {
            count_file: count_file.map(Arc::new),
            hidden: Arc::new(Mutex::new(hidden)),
        }
    }

    /// The tools offered now: all but the hidden ones.
    fn current_router(&self) -> ToolRouter<Self> {
        let mut router = Self::tool_router();
        for tool in self.hidden.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            router.remove_route(tool);
        }
        router
    }

    /// Appends the tool's name to the count file, if there is one.
    fn count(&self, tool: &str) {
        let Some(path) = &self.count_file else { return };
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path.as_ref())
            .and_then(|mut f| f.write_all(format!("{tool}\n").as_bytes()));
        if let Err(e) = written {
            eprintln!("mcp_server: cannot write {}: {e}", path.display());
        }
    }
}

#[tool_router]
impl TestServer {
    #[tool(description = "Adds two integers.")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        self.count("add");
        a.saturating_add(b).to_string()
    }

    #[tool(description = "Sends the text back.")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        self.count("echo");
        text
    }

    #[tool(description = "Always fails (an isError result).")]
    fn fail(&self, Parameters(NoArgs {}): Parameters<NoArgs>) -> CallToolResult {
        self.count("fail");
        CallToolResult::error(vec![ContentBlock::text("the disk is on fire")])
    }

    #[tool(description = "Answers after `ms` milliseconds.")]
    async fn slow(&self, Parameters(SlowArgs { ms }): Parameters<SlowArgs>) -> String {
        self.count("slow");
        tokio::time::sleep(Duration::from_millis(ms)).await;
        format!("waited {ms} ms")
    }

    #[tool(description = "A tool with a long name (50 characters), for the 64-character limit.")]
    fn report_the_weather_for_every_city_in_the_world_now(
        &self,
        Parameters(NoArgs {}): Parameters<NoArgs>,
    ) -> String {
        self.count("report_the_weather_for_every_city_in_the_world_now");
        "sunny".into()
    }

    #[tool(description = "Stops offering a tool and tells the client (tools/list_changed).")]
    async fn hide(
        &self,
        Parameters(HideArgs { tool }): Parameters<HideArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> String {
        self.count("hide");
        self.hidden
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tool.clone());
        if let Err(e) = ctx.peer.notify_tool_list_changed().await {
            eprintln!("mcp_server: cannot notify: {e}");
        }
        format!("`{tool}` is hidden")
    }

    #[tool(description = "Offers a hidden tool again and tells the client (tools/list_changed).")]
    async fn reveal(
        &self,
        Parameters(HideArgs { tool }): Parameters<HideArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> String {
        self.count("reveal");
        self.hidden
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&tool);
        if let Err(e) = ctx.peer.notify_tool_list_changed().await {
            eprintln!("mcp_server: cannot notify: {e}");
        }
        format!("`{tool}` is offered")
    }

    #[tool(description = "Makes the server process exit in the middle of the call.")]
    fn crash(&self, Parameters(NoArgs {}): Parameters<NoArgs>) -> String {
        self.count("crash");
        std::process::exit(3);
    }
}

#[tool_handler(router = self.current_router())]
impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_instructions("Troupe's test server")
    }
}

fn usage() -> ! {
    eprintln!("usage: mcp_server (stdio|http) [--count-file PATH] [--port N] [--hidden TOOL]…");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| usage());
    let mut count_file = None;
    let mut port = 0u16;
    let mut hidden = BTreeSet::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--hidden" => {
                hidden.insert(args.next().unwrap_or_else(|| usage()));
            }
            "--port" => {
                port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--count-file" => {
                count_file = Some(PathBuf::from(args.next().unwrap_or_else(|| usage())))
            }
            _ => usage(),
        }
    }
    let server = TestServer::new(count_file, hidden);
    let result = match mode.as_str() {
        "stdio" => serve_stdio(server).await,
        "http" => serve_http(server, port).await,
        _ => usage(),
    };
    if let Err(e) = result {
        eprintln!("mcp_server: {e}");
        std::process::exit(1);
    }
}

async fn serve_stdio(server: TestServer) -> Result<(), Box<dyn std::error::Error>> {
    let running = server.serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}

async fn serve_http(server: TestServer, port: u16) -> Result<(), Box<dyn std::error::Error>> {
    use rmcp::transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    };
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening http://{}/mcp", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let (stream, _) = listener.accept().await?;
        let service = hyper_util::service::TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                // A client going away mid-exchange is its own business.
                if !e.is_incomplete_message() {
                    eprintln!("mcp_server: connection: {e}");
                }
            }
        });
    }
}
