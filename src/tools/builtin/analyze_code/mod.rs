//! The `analyze_code` tool: metrics and findings for a code snippet or for a
//! file under a configured project root.
//!
//! The tool reads the input (refusing what it may not read) and hands the
//! text to [`scanner`], which computes the report by deterministic text
//! rules.
//!
//! Files: `path` must be relative to the project root and stay inside it.
//! Absolute paths and `..` are refused outright; the rest is canonicalised
//! (symlinks resolved) and refused unless the result is under the
//! canonical root, so a symlink cannot lead out either.

use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::names::ANALYZE_CODE_TOOL;
use crate::tools::{ToolContext, ToolError, TypedTool};

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
}

impl AnalyzeCodeTool {
    /// Analyses snippets, and files under `project_root`.
    pub(crate) fn new(project_root: impl Into<PathBuf>) -> Self {
        AnalyzeCodeTool {
            root: project_root.into(),
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// Reads `rel` if it is a text file inside the project root.
    async fn read(&self, rel: &str) -> Result<String, ToolError> {
        let outside = || ToolError::invalid_argument("/path", "is outside the project root");
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
        let root = tokio::fs::canonicalize(&self.root)
            .await
            .map_err(|e| ToolError::failed(format!("the project root is unavailable: {e}")))?;
        let full = match tokio::fs::canonicalize(root.join(path)).await {
            Ok(full) => full,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ToolError::invalid_argument(
                    "/path",
                    format!("no file `{rel}` under the project root"),
                ))
            }
            Err(e) => return Err(ToolError::failed(format!("cannot resolve `{rel}`: {e}"))),
        };
        if !full.starts_with(&root) {
            return Err(outside());
        }
        let meta = tokio::fs::metadata(&full)
            .await
            .map_err(|e| ToolError::failed(format!("cannot read `{rel}`: {e}")))?;
        if !meta.is_file() {
            return Err(ToolError::invalid_argument("/path", "is not a file"));
        }
        if meta.len() > self.max_bytes {
            return Err(ToolError::invalid_argument(
                "/path",
                format!(
                    "the file has {} bytes, more than the limit of {}",
                    meta.len(),
                    self.max_bytes
                ),
            ));
        }
        let bytes = tokio::fs::read(&full)
            .await
            .map_err(|e| ToolError::failed(format!("cannot read `{rel}`: {e}")))?;
        String::from_utf8(bytes)
            .map_err(|_| ToolError::invalid_argument("/path", "is not a UTF-8 text file"))
    }
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

    async fn run(&self, args: AnalyzeCodeArgs, _ctx: ToolContext) -> Result<Analysis, ToolError> {
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
            (None, Some(path)) => (self.read(&path).await?, Some(path)),
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
