//! The `analyze_code` tool: metrics and findings for a code snippet or for a
//! file under a configured project root.
//!
//! The tool reads the input (refusing what it may not read) and hands the
//! text to [`scanner`], which computes the report by deterministic text
//! rules.
//!
//! Files: `path` must be relative to the project root and stay inside it.
//! Absolute paths and `..` are refused outright. The file is then opened
//! once, and everything after is checked on what was opened, never on the
//! path again (a path checked, then opened later, can lead elsewhere in
//! between): the opened file's own metadata says whether it is a regular
//! file, where it really is must be under the canonical root (the kernel's
//! name for the open file on Linux, `/proc/self/fd`; elsewhere the path
//! resolved after the open, which must name the same file, device and
//! inode), and at most the size limit plus one byte is read, so a file
//! that grew after any check is refused, not read whole. A symlink cannot
//! lead out, and neither can a directory swapped for one.
//!
//! Hidden files and directories (any name under the root starting with
//! `.`: `.env`, `.git/config`) are refused, on the path as given and on
//! where the opened file really is, unless the agent's config has
//! `readHiddenFiles = true` (see [`policy`](crate::tools::policy)).

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::names::ANALYZE_CODE_TOOL;
use crate::tools::{Policies, ToolContext, ToolError, TypedTool};

pub(crate) mod scanner;

use scanner::{analyze, CodeReport};

/// Largest file or snippet analysed, in bytes.
pub(crate) const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;

/// Arguments of `analyze_code`: exactly one of `code` and `path`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AnalyzeCodeArgs {
    /// Source code to analyse. Give this or `path`.
    #[serde(default)]
    pub code: Option<String>,
    /// A file to analyse, relative to the project root. Give this or `code`.
    #[serde(default)]
    pub path: Option<String>,
    /// The language, if known (e.g. `rust`, `python`); guessed otherwise.
    #[serde(default)]
    pub language: Option<String>,
}

/// What `analyze_code` answers: the report, and the file's path when it
/// read one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Analysis {
    /// The scanner's report.
    #[serde(flatten)]
    pub report: CodeReport,
    /// The file analysed, as given (relative to the project root).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The `analyze_code` tool.
pub(crate) struct AnalyzeCodeTool {
    root: PathBuf,
    max_bytes: u64,
    policies: Arc<Policies>,
}

impl AnalyzeCodeTool {
    /// Analyses snippets, and files under `project_root` (hidden ones as
    /// `policies` allow).
    pub(crate) fn new(project_root: impl Into<PathBuf>, policies: Arc<Policies>) -> Self {
        AnalyzeCodeTool {
            root: project_root.into(),
            max_bytes: DEFAULT_MAX_BYTES,
            policies,
        }
    }

    /// Analyses at most `bytes` of a file or snippet.
    #[cfg(test)]
    pub(crate) fn with_max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Reads `rel` if it is a text file inside the project root, for the
    /// call `ctx`.
    async fn read(&self, rel: &str, ctx: &ToolContext) -> Result<String, ToolError> {
        let path = Path::new(rel);
        if rel.trim().is_empty() {
            return Err(ToolError::invalid_argument("/path", "must not be empty"));
        }
        if path.is_absolute()
            || path
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(ToolError::invalid_argument(
                "/path",
                "must be relative to the project root, without `..`",
            ));
        }
        if is_hidden(path) {
            self.policies.check_hidden(ctx, rel)?;
        }
        let root = tokio::fs::canonicalize(&self.root)
            .await
            .map_err(|e| ToolError::failed(format!("the project root is unavailable: {e}")))?;
        let (full, max) = (root.join(path), self.max_bytes);
        // Blocking file calls, and up to the limit read: off the actor's thread.
        let opened = tokio::task::spawn_blocking(move || open_beneath(&root, &full, max))
            .await
            .map_err(|e| ToolError::failed(format!("reading `{rel}` failed: {e}")))?;
        let (bytes, hidden) = opened.map_err(|e| e.into_tool_error(rel, max))?;
        if hidden {
            self.policies.check_hidden(ctx, rel)?;
        }
        String::from_utf8(bytes)
            .map_err(|_| ToolError::invalid_argument("/path", "is not a UTF-8 text file"))
    }
}

/// Whether a path (relative to the project root) names or passes through a
/// hidden file or directory.
fn is_hidden(rel: &Path) -> bool {
    rel.components().any(|c| match c {
        Component::Normal(name) => name.to_string_lossy().starts_with('.'),
        _ => false,
    })
}

/// Why a file under the root was not read.
#[derive(Debug)]
enum ReadRefused {
    NotFound,
    NotAFile,
    Outside,
    /// Its size, when its metadata said; `None` when it was more than it said.
    TooLarge(Option<u64>),
    Io(std::io::Error),
}

impl ReadRefused {
    fn into_tool_error(self, rel: &str, max: u64) -> ToolError {
        match self {
            ReadRefused::NotFound => ToolError::invalid_argument(
                "/path",
                format!("no file `{rel}` under the project root"),
            ),
            ReadRefused::NotAFile => ToolError::invalid_argument("/path", "is not a file"),
            ReadRefused::Outside => {
                ToolError::invalid_argument("/path", "is outside the project root")
            }
            ReadRefused::TooLarge(Some(len)) => ToolError::invalid_argument(
                "/path",
                format!("the file has {len} bytes, more than the limit of {max}"),
            ),
            ReadRefused::TooLarge(None) => ToolError::invalid_argument(
                "/path",
                format!("the file has more bytes than the limit of {max}"),
            ),
            ReadRefused::Io(e) => ToolError::failed(format!("cannot read `{rel}`: {e}")),
        }
    }
}

/// Opens `full` (a path under the canonical `root`) once and reads at most
/// `max` bytes of it, checking what was opened: a regular file, really
/// under `root`. Answers the bytes and whether the file really is in a
/// hidden file or directory under the root.
fn open_beneath(root: &Path, full: &Path, max: u64) -> Result<(Vec<u8>, bool), ReadRefused> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => ReadRefused::NotFound,
        _ => ReadRefused::Io(e),
    };
    // Opening a FIFO would wait for a writer: the path's type is a first
    // look, so one is not opened; what counts is checked on the open file.
    if !std::fs::metadata(full).map_err(io)?.is_file() {
        return Err(ReadRefused::NotAFile);
    }
    let file = std::fs::File::open(full).map_err(io)?;
    let meta = file.metadata().map_err(ReadRefused::Io)?;
    if !meta.is_file() {
        return Err(ReadRefused::NotAFile);
    }
    let real = opened_path(&file, &meta, full)?;
    let Ok(inside) = real.strip_prefix(root) else {
        return Err(ReadRefused::Outside);
    };
    if meta.len() > max {
        return Err(ReadRefused::TooLarge(Some(meta.len())));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadRefused::Io)?;
    if bytes.len() as u64 > max {
        return Err(ReadRefused::TooLarge(None));
    }
    Ok((bytes, is_hidden(inside)))
}

/// Where the open `file` really is.
fn opened_path(
    file: &std::fs::File,
    meta: &std::fs::Metadata,
    full: &Path,
) -> Result<PathBuf, ReadRefused> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        // The kernel's name for the open file itself: no path to race with.
        if let Ok(real) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            if real.is_absolute() {
                return Ok(real);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
    // Elsewhere (or without /proc): the path resolved now, which must still
    // name the file that was opened.
    let real = std::fs::canonicalize(full).map_err(|_| ReadRefused::Outside)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let now = std::fs::metadata(&real).map_err(|_| ReadRefused::Outside)?;
        if (now.dev(), now.ino()) != (meta.dev(), meta.ino()) {
            return Err(ReadRefused::Outside);
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    Ok(real)
}

#[async_trait]
impl TypedTool for AnalyzeCodeTool {
    type Args = AnalyzeCodeArgs;
    type Output = Analysis;
    type Error = ToolError;

    fn name(&self) -> &str {
        ANALYZE_CODE_TOOL
    }

    fn description(&self) -> &str {
        "Analyse source code (a snippet in `code`, or a project file in `path`): line \
         counts, comment lines, the longest function, TODO/FIXME markers, long lines, \
         nesting depth, the language, and findings worth fixing."
    }

    async fn run(&self, args: AnalyzeCodeArgs, ctx: ToolContext) -> Result<Analysis, ToolError> {
        let (source, path) = match (args.code, args.path) {
            (Some(code), None) => {
                if code.len() as u64 > self.max_bytes {
                    return Err(ToolError::invalid_argument(
                        "/code",
                        format!("is longer than the limit of {} bytes", self.max_bytes),
                    ));
                }
                (code, None)
            }
            (None, Some(path)) => (self.read(&path, &ctx).await?, Some(path)),
            _ => {
                return Err(ToolError::invalid_argument(
                    "",
                    "give exactly one of `code` and `path`",
                ))
            }
        };
        // Up to a megabyte of text: off the actor's thread.
        let language = args.language;
        let for_analysis = path.clone();
        let report = tokio::task::spawn_blocking(move || {
            analyze(
                &source,
                language.as_deref(),
                for_analysis.as_deref().map(Path::new),
            )
        })
        .await
        .map_err(|e| ToolError::failed(format!("the analysis failed: {e}")))?;
        Ok(Analysis { report, path })
    }
}
