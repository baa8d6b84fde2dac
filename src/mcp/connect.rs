//! Reaching one MCP server with rmcp: the transport its config names
//! (a child process on stdio, or streamable HTTP with headers taken from
//! the environment), the MCP handshake, and the listing of its tools.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{NotificationContext, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ServiceExt};
use serde_json::Value;

use crate::config::McpServerConfig;

use super::link::RemoteTool;
use super::McpError;

/// One server's settings, checked and resolved at start (header values
/// read from the environment: secrets, never printed).
pub(crate) struct ServerSetup {
    pub(crate) name: String,
    pub(crate) transport: TransportSetup,
    pub(crate) allow: Option<Vec<String>>,
    pub(crate) timeout: Duration,
    /// The server's tools whose calls need approval (`"*"`: all).
    pub(crate) approval: Vec<String>,
}

/// How to reach the server.
pub(crate) enum TransportSetup {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<std::path::PathBuf>,
    },
    Http {
        url: String,
        headers: HashMap<http::HeaderName, http::HeaderValue>,
    },
}

impl std::fmt::Debug for ServerSetup {
    // Header values and environment values may be secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = match &self.transport {
            TransportSetup::Stdio { command, .. } => format!("stdio `{command}`"),
            TransportSetup::Http { url, .. } => format!("http `{url}`"),
        };
        f.debug_struct("ServerSetup")
            .field("name", &self.name)
            .field("transport", &transport)
            .field("allow", &self.allow)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ServerSetup {
    /// Checks `config` again (it may have been built in code) and reads its
    /// header values from the environment.
    pub(crate) fn resolve(config: &McpServerConfig) -> Result<Self, McpError> {
        let invalid = |key: String, reason: String| McpError::Config {
            server: config.name.clone(),
            key,
            reason,
        };
        config
            .check()
            .map_err(|(key, reason)| invalid(key, reason))?;
        let timeout = config
            .call_timeout()
            .map_err(|r| invalid("timeout".into(), r))?;
        let transport = match (&config.command, &config.url) {
            (Some(command), _) => TransportSetup::Stdio {
                command: command.clone(),
                args: config.args.clone(),
                env: config.env.clone(),
                cwd: config.cwd.clone(),
            },
            (None, Some(url)) => {
                let mut headers = HashMap::new();
                for (header, var) in &config.headers {
                    let key = format!("headers.{header}");
                    let value = std::env::var(var).map_err(|_| {
                        invalid(
                            key.clone(),
                            format!("environment variable `{var}` is not set"),
                        )
                    })?;
                    let name = http::HeaderName::from_bytes(header.as_bytes())
                        .map_err(|_| invalid(key.clone(), "is not an HTTP header name".into()))?;
                    let mut value = http::HeaderValue::from_str(&value).map_err(|_| {
                        invalid(
                            key.clone(),
                            format!("`{var}` holds characters a header value cannot carry"),
                        )
                    })?;
                    value.set_sensitive(true);
                    headers.insert(name, value);
                }
                TransportSetup::Http {
                    url: url.clone(),
                    headers,
                }
            }
            (None, None) => {
                return Err(invalid(
                    "command".into(),
                    "give `command` (stdio) or `url` (HTTP)".into(),
                ))
            }
        };
        Ok(ServerSetup {
            name: config.name.clone(),
            transport,
            allow: config.tools.clone(),
            approval: config.approval.clone(),
            timeout,
        })
    }
}

/// The client side of one connection: tells the server's actor when the
/// server's tool list changed.
#[derive(Clone)]
pub(crate) struct Notifier {
    pub(crate) on_tools_changed: Arc<dyn Fn() + Send + Sync>,
}

impl ClientHandler for Notifier {
    fn on_tool_list_changed(
        &self,
        _: NotificationContext<RoleClient>,
    ) -> impl std::future::Future<Output = ()> + Send + '_ {
        (self.on_tools_changed)();
        std::future::ready(())
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("troupe", env!("CARGO_PKG_VERSION")),
        )
    }
}

/// A live connection.
pub(crate) type Connection = RunningService<RoleClient, Notifier>;

/// Starts the transport and makes the MCP handshake.
pub(crate) async fn connect(setup: &ServerSetup, notifier: Notifier) -> Result<Connection, String> {
    match &setup.transport {
        TransportSetup::Stdio {
            command,
            args,
            env,
            cwd,
        } => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(args).envs(env).kill_on_drop(true);
            if let Some(dir) = cwd {
                cmd.current_dir(dir);
            }
            // The server's own log lines go where Troupe's go.
            let (transport, _) = TokioChildProcess::builder(cmd)
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| format!("cannot start `{command}`: {e}"))?;
            notifier
                .serve(transport)
                .await
                .map_err(|e| format!("the MCP handshake failed: {e}"))
        }
        TransportSetup::Http { url, headers } => {
            // reqwest 0.13 (rmcp's) uses rustls without a crypto provider of
            // its own: install ring's, unless the process already chose one.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                .custom_headers(headers.clone());
            let transport = StreamableHttpClientTransport::from_config(config);
            notifier
                .serve(transport)
                .await
                .map_err(|e| format!("the MCP handshake with {url} failed: {e}"))
        }
    }
}

/// A listing: the tools offered (of the allow-list), and the allow-list's
/// names the server does not offer.
pub(crate) type Listing = (BTreeMap<String, RemoteTool>, Vec<String>);

/// Lists the server's tools, keeping those of the allow-list, and names
/// the allow-list's tools the server does not offer.
pub(crate) async fn list_tools(
    connection: &rmcp::service::Peer<RoleClient>,
    allow: Option<&[String]>,
) -> Result<Listing, String> {
    let listed = connection
        .list_all_tools()
        .await
        .map_err(|e| format!("listing its tools failed: {e}"))?;
    let mut tools = BTreeMap::new();
    for tool in listed {
        let name = tool.name.to_string();
        if allow.is_some_and(|allow| !allow.iter().any(|a| a == &name)) {
            continue;
        }
        let schema = Value::Object((*tool.input_schema).clone());
        let description = tool.description.map(|d| d.to_string()).unwrap_or_default();
        tools.insert(
            name,
            RemoteTool {
                description,
                schema,
            },
        );
    }
    let missing = allow
        .unwrap_or_default()
        .iter()
        .filter(|a| !tools.contains_key(a.as_str()))
        .cloned()
        .collect();
    Ok((tools, missing))
}
