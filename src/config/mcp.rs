//! `[[mcpServers]]`: MCP servers whose tools agents may call, and the
//! checks made when the config is loaded.
//!
//! ```toml
//! [[mcpServers]]
//! name = "fs"                                  # tools are named fs_<tool>
//! command = "npx"                              # stdio: a child process…
//! args = ["@modelcontextprotocol/server-filesystem", "/srv/docs"]
//! env = { NODE_OPTIONS = "--max-old-space-size=256" }
//! tools = ["read_file", "list_directory"]      # optional allow-list
//! timeout = "20s"                              # per call (default 30s)
//!
//! [[mcpServers]]
//! name = "search"
//! url = "https://mcp.example.com/mcp"          # …or streamable HTTP
//! headers = { Authorization = "SEARCH_MCP_AUTH" }  # header = env var holding its value
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::parse_duration;

/// The call timeout of an MCP server's tools when `timeout` is not given.
pub(crate) const DEFAULT_MCP_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest server name: the tools are named `<server>_<tool>` and a
/// tool name may have 64 characters in all.
pub(crate) const MAX_MCP_SERVER_NAME: usize = 32;

/// Headers the MCP transport sets itself; a config may not set them.
const RESERVED_HEADERS: &[&str] = &[
    "accept",
    "content-type",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

/// One `[[mcpServers]]` entry: an MCP server started as a child process
/// (`command`) or reached over streamable HTTP (`url`).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpServerConfig {
    /// The server's name, the prefix of its tools' names (`<name>_<tool>`):
    /// letters, digits, `_` and `-`, at most 32 characters.
    pub name: String,
    /// The program to start (stdio transport). Give this or `url`.
    #[serde(default)]
    pub command: Option<String>,
    /// The program's arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables set for the program, on top of Troupe's own
    /// environment (which it inherits). Values are plain settings; a secret
    /// is better passed through Troupe's environment. Never printed.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The directory the program starts in (default: Troupe's).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// The server's streamable HTTP endpoint (`http://` or `https://`).
    /// Give this or `command`.
    #[serde(default)]
    pub url: Option<String>,
    /// HTTP headers sent with every request: each value is the *name of the
    /// environment variable* holding the header's value (a secret never
    /// sits in the config), e.g. `{ Authorization = "SEARCH_MCP_AUTH" }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The server's tools agents may be given (by the server's own names);
    /// unset: all of them.
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    /// The time limit of one call (`30s` by default).
    #[serde(default)]
    pub timeout: Option<String>,
    /// The server's tools (by its own names; `"*"` for all) whose every
    /// call waits for a person's approval, whichever agent makes it (an
    /// agent's own `approval` list adds to this).
    #[serde(default)]
    pub approval: Vec<String>,
}

impl std::fmt::Debug for McpServerConfig {
    // Environment values may be secrets: only their names are printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServerConfig")
            .field("name", &self.name)
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("cwd", &self.cwd)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("tools", &self.tools)
            .field("timeout", &self.timeout)
            .field("approval", &self.approval)
            .finish()
    }
}

impl McpServerConfig {
    /// A server started as `command args…`, speaking MCP on its stdio.
    pub fn stdio(
        name: impl Into<String>,
        command: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        McpServerConfig {
            name: name.into(),
            command: Some(command.into()),
            args: args.into_iter().map(Into::into).collect(),
            env: BTreeMap::new(),
            cwd: None,
            url: None,
            headers: BTreeMap::new(),
            tools: None,
            timeout: None,
            approval: Vec::new(),
        }
    }

    /// A server reached over streamable HTTP at `url`.
    pub fn http(name: impl Into<String>, url: impl Into<String>) -> Self {
        McpServerConfig {
            name: name.into(),
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            url: Some(url.into()),
            headers: BTreeMap::new(),
            tools: None,
            timeout: None,
            approval: Vec::new(),
        }
    }

    /// The call timeout (checked at load; a config built in code with a bad
    /// one is refused when the runtime starts).
    pub(crate) fn call_timeout(&self) -> Result<Duration, String> {
        match &self.timeout {
            None => Ok(DEFAULT_MCP_TIMEOUT),
            Some(text) => match parse_duration(text)? {
                d if d.is_zero() => Err("must be longer than 0".into()),
                d => Ok(d),
            },
        }
    }

    /// Every check of one entry; `Err((key, reason))` names the key (below
    /// the entry) at fault.
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, reason: String| Err((key.to_string(), reason));
        check_server_name(&self.name).or_else(|r| bad("name", r))?;
        match (&self.command, &self.url) {
            (Some(_), Some(_)) => {
                return bad(
                    "url",
                    "give either `command` (stdio) or `url` (HTTP), not both".into(),
                )
            }
            (None, None) => {
                return bad(
                    "command",
                    "give `command` (a program speaking MCP on stdio) or `url` (streamable HTTP)"
                        .into(),
                )
            }
            (Some(command), None) => {
                if command.trim().is_empty() {
                    return bad("command", "must not be empty".into());
                }
                if !self.headers.is_empty() {
                    return bad("headers", "apply only with `url`".into());
                }
                for name in self.env.keys() {
                    if !is_env_name(name) {
                        return bad(
                            &format!("env.{name}"),
                            "is not an environment variable name".into(),
                        );
                    }
                }
            }
            (None, Some(url)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return bad(
                        "url",
                        format!("`{url}` must start with http:// or https://"),
                    );
                }
                let set = [
                    ("args", !self.args.is_empty()),
                    ("env", !self.env.is_empty()),
                    ("cwd", self.cwd.is_some()),
                ];
                if let Some((key, _)) = set.iter().find(|(_, is_set)| *is_set) {
                    return bad(key, "applies only with `command`".into());
                }
                for (header, var) in &self.headers {
                    check_header(header, var).or_else(|r| bad(&format!("headers.{header}"), r))?;
                }
            }
        }
        if let Some(tools) = &self.tools {
            for (i, tool) in tools.iter().enumerate() {
                if tool.is_empty() {
                    return bad(&format!("tools[{i}]"), "must not be empty".into());
                }
            }
        }
        for (i, tool) in self.approval.iter().enumerate() {
            if tool.trim().is_empty() {
                return bad(&format!("approval[{i}]"), "must not be empty".into());
            }
        }
        self.call_timeout()
            .map_err(|r| ("timeout".to_string(), r))?;
        Ok(())
    }
}

/// A server name: the prefix of its tools' names.
pub(crate) fn check_server_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_MCP_SERVER_NAME {
        return Err(format!(
            "`{name}` must be 1 to {MAX_MCP_SERVER_NAME} characters"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "`{name}` may contain only ASCII letters, digits, `_` and `-` (it prefixes tool names)"
        ));
    }
    Ok(())
}

fn check_header(header: &str, var: &str) -> Result<(), String> {
    if header.is_empty()
        || !header
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err("is not an HTTP header name".into());
    }
    if RESERVED_HEADERS.contains(&header.to_ascii_lowercase().as_str()) {
        return Err("is set by the MCP transport itself".into());
    }
    if !is_env_name(var) {
        return Err(format!(
            "the value names the environment variable holding the header's value \
             (letters, digits and `_`, e.g. `MCP_AUTH`), so no secret sits in the config; \
             got something else ({} characters)",
            var.chars().count()
        ));
    }
    Ok(())
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(c: &McpServerConfig) -> String {
        c.check().unwrap_err().0
    }

    #[test]
    fn each_check_names_its_key() {
        assert!(McpServerConfig::stdio("fs", "node", ["x.js"])
            .check()
            .is_ok());
        assert!(McpServerConfig::http("web", "http://127.0.0.1:1/mcp")
            .check()
            .is_ok());
        assert_eq!(
            key_of(&McpServerConfig::stdio("a b", "node", [""; 0])),
            "name"
        );
        assert_eq!(
            key_of(&McpServerConfig::stdio("x".repeat(33), "n", [""; 0])),
            "name"
        );
        let mut both = McpServerConfig::stdio("fs", "node", [""; 0]);
        both.url = Some("http://h/mcp".into());
        assert_eq!(key_of(&both), "url");
        let mut neither = both.clone();
        neither.url = None;
        neither.command = None;
        assert_eq!(key_of(&neither), "command");
        let mut ftp = McpServerConfig::http("w", "ftp://h");
        assert_eq!(key_of(&ftp), "url");
        ftp.url = Some("http://h".into());
        ftp.headers
            .insert("Authorization".into(), "Bearer sk-123".into());
        let (key, reason) = ftp.check().unwrap_err();
        assert_eq!(key, "headers.Authorization");
        assert!(!reason.contains("sk-123"), "{reason}");
        ftp.headers.clear();
        ftp.headers.insert("Accept".into(), "X".into());
        assert_eq!(key_of(&ftp), "headers.Accept");
        let mut slow = McpServerConfig::stdio("fs", "node", [""; 0]);
        slow.timeout = Some("0s".into());
        assert_eq!(key_of(&slow), "timeout");
        slow.timeout = Some("soon".into());
        assert_eq!(key_of(&slow), "timeout");
        let mut listed = McpServerConfig::stdio("fs", "node", [""; 0]);
        listed.tools = Some(vec!["read".into(), String::new()]);
        assert_eq!(key_of(&listed), "tools[1]");
        let mut asks = McpServerConfig::stdio("fs", "node", [""; 0]);
        asks.approval = vec!["write".into(), " ".into()];
        assert_eq!(key_of(&asks), "approval[1]");
        asks.approval = vec!["write".into(), "*".into()];
        assert!(asks.check().is_ok());
    }

    fn load(text: &str) -> Result<crate::config::TroupeConfig, String> {
        crate::config::TroupeConfig::parse(text, std::path::Path::new("t.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_config_file_names_servers_and_agents_their_tools() {
        let base = r#"
[[mcpServers]]
name = "fs"
command = "node"
args = ["server.js", "/srv"]
timeout = "5s"

[[mcpServers]]
name = "web"
url = "https://mcp.example.com/mcp"
headers = { Authorization = "WEB_MCP_AUTH" }

[[agents]]
id = "ana"
name = "Ana"
systemPrompt = "."
tools = ["send_message", "fs_read_text_file", "web_search"]
[agents.modelConfig]
provider = "offline"
model = "offline"
"#;
        let config = load(base).unwrap();
        assert_eq!(config.mcp_servers.len(), 2);
        assert_eq!(
            config.mcp_servers[0].call_timeout(),
            Ok(Duration::from_secs(5))
        );
        // All of a server's tools, now and later.
        assert!(load(&base.replace("web_search", "web_*")).is_ok());
        let unknown = load(&base.replace("web_search", "ftp_get")).unwrap_err();
        assert!(
            unknown.contains("agents[0].tools[2]") && unknown.contains("fs, web"),
            "{unknown}"
        );
        let twice = load(&base.replace("name = \"web\"", "name = \"fs\"")).unwrap_err();
        assert!(
            twice.contains("mcpServers[1].name") && twice.contains("defined twice"),
            "{twice}"
        );
        let both = load(&base.replace("timeout = \"5s\"", "url = \"http://h/mcp\"")).unwrap_err();
        assert!(
            both.contains("mcpServers[0].url") && both.contains("not both"),
            "{both}"
        );
        let typo = load(&base.replace("timeout =", "timout =")).unwrap_err();
        assert!(typo.contains("timout"), "{typo}");
    }

    #[test]
    fn debug_prints_no_env_value() {
        let mut c = McpServerConfig::stdio("fs", "node", [""; 0]);
        c.env.insert("TOKEN".into(), "s3cret".into());
        let text = format!("{c:?}");
        assert!(text.contains("TOKEN") && !text.contains("s3cret"), "{text}");
    }
}
