//! [`ToolError`]: every way a tool call can fail, as a value that goes back
//! to the model so it can correct itself.
//!
//! None of these stops the agent: the agent sends the error to the model as
//! the call's result (marked as an error), records it, and goes on.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How many validation issues are reported at most; a model needs the first
/// few to fix its call, not a wall of text.
pub(crate) const MAX_ISSUES: usize = 20;

/// One thing wrong with a call's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgumentIssue {
    /// Where in the arguments, as a JSON Pointer (`""` for the whole object,
    /// `/limit`, `/items/0`), so the model can find the field.
    pub path: String,
    /// What is wrong there, in the validator's words.
    pub message: String,
}

impl fmt::Display for ArgumentIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "(arguments): {}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a tool call produced no result. One enum for the whole tool layer:
/// the router makes `UnknownTool`, `Denied`, `InvalidArguments`, `TimedOut`
/// and `Crashed`; tools make `Failed` (and `InvalidArguments` for checks a
/// schema cannot express); the agent's limits and grants make
/// `LimitReached` and `NotGranted`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToolError {
    /// No tool of that name is registered.
    #[error("unknown tool `{name}`")]
    UnknownTool {
        /// The name the model asked for.
        name: String,
        /// The tools this agent may call, so the model can pick one.
        available: Vec<String>,
    },
    /// The tool exists but this agent is not configured to use it.
    #[error("agent `{agent_id}` may not use tool `{name}`")]
    Denied {
        /// The tool asked for.
        name: String,
        /// The agent that asked.
        agent_id: String,
        /// The tools this agent may call.
        allowed: Vec<String>,
    },
    /// The arguments do not match the tool's JSON Schema (or a tool's own
    /// checks); each issue names the place and the problem.
    #[error("invalid arguments: {}", join_issues(.issues))]
    InvalidArguments {
        /// What is wrong, at most 20 issues.
        issues: Vec<ArgumentIssue>,
    },
    /// The tool ran and reported an error.
    #[error("tool failed: {message}")]
    Failed {
        /// The tool's explanation.
        message: String,
    },
    /// The tool did not answer within its timeout; its work was dropped.
    #[error("tool timed out after {after_ms} ms")]
    TimedOut {
        /// The timeout that passed, in milliseconds.
        after_ms: u64,
    },
    /// The tool panicked; its actor was restarted and the call is lost.
    #[error("tool crashed: {message}")]
    Crashed {
        /// What is known of the crash.
        message: String,
    },
    /// A limit of the calling agent's config (`maxToolCallsPerReply`,
    /// `maxTasksPerTask`, `maxTaskDepth`, `maxQueuedTasks`) stopped the
    /// call before it had any effect. The task goes on.
    #[error("limit `{limit}` reached: {message}")]
    LimitReached {
        /// The config key of the limit.
        limit: String,
        /// What was refused and why, with the limit's value.
        message: String,
    },
    /// The call would act beyond the task's own user or conversation (or
    /// read a hidden file), and the agent's config does not grant it.
    #[error("not granted by `{grant}`: {message}")]
    NotGranted {
        /// The config key that would have to grant it.
        grant: String,
        /// What was refused, and what the agent's config would have to say.
        message: String,
    },
    /// The call needed a person's approval and did not get it: denied (with
    /// the person's reason), past its deadline, or its task was cancelled.
    /// It did not run.
    #[error("not approved: {reason}")]
    NotApproved {
        /// The tool called.
        tool: String,
        /// Why: the denial's reason, or "approval deadline passed".
        reason: String,
    },
}

fn join_issues(issues: &[ArgumentIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ToolError {
    /// A tool's own failure, with an explanation the model can act on.
    pub fn failed(message: impl fmt::Display) -> Self {
        ToolError::Failed {
            message: message.to_string(),
        }
    }

    /// One argument problem a schema could not catch (a tool's own check).
    pub fn invalid_argument(path: impl Into<String>, message: impl fmt::Display) -> Self {
        ToolError::InvalidArguments {
            issues: vec![ArgumentIssue {
                path: path.into(),
                message: message.to_string(),
            }],
        }
    }

    /// A refusal by the limit `limit` (its config key), explained by `message`.
    pub fn limit_reached(limit: impl Into<String>, message: impl fmt::Display) -> Self {
        ToolError::LimitReached {
            limit: limit.into(),
            message: message.to_string(),
        }
    }

    /// A refusal for want of the grant `grant` (its config key), explained by
    /// `message`.
    pub fn not_granted(grant: impl Into<String>, message: impl fmt::Display) -> Self {
        ToolError::NotGranted {
            grant: grant.into(),
            message: message.to_string(),
        }
    }

    /// A timeout of `after`.
    pub fn timed_out(after: Duration) -> Self {
        ToolError::TimedOut {
            after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// A short stable name of the kind (`unknown_tool`, `denied`,
    /// `invalid_arguments`, `failed`, `timed_out`, `crashed`,
    /// `limit_reached`, `not_granted`, `not_approved`), for records and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ToolError::UnknownTool { .. } => "unknown_tool",
            ToolError::Denied { .. } => "denied",
            ToolError::InvalidArguments { .. } => "invalid_arguments",
            ToolError::Failed { .. } => "failed",
            ToolError::TimedOut { .. } => "timed_out",
            ToolError::Crashed { .. } => "crashed",
            ToolError::LimitReached { .. } => "limit_reached",
            ToolError::NotGranted { .. } => "not_granted",
            ToolError::NotApproved { .. } => "not_approved",
        }
    }

    /// Concise text for the model: what went wrong and what it can do about
    /// it (pick another tool, fix the named fields, retry).
    pub fn to_model_message(&self) -> String {
        match self {
            ToolError::UnknownTool { name, available } => format!(
                "Unknown tool `{name}`. Available tools: {}.",
                list_or_none(available)
            ),
            ToolError::Denied { name, allowed, .. } => format!(
                "You may not use tool `{name}`. Tools you may use: {}.",
                list_or_none(allowed)
            ),
            ToolError::InvalidArguments { issues } => {
                let mut text = String::from("Invalid arguments:");
                for issue in issues {
                    text.push_str("\n- ");
                    text.push_str(&issue.to_string());
                }
                text.push_str("\nFix these and call the tool again.");
                text
            }
            ToolError::Failed { message } => format!("Tool error: {message}"),
            ToolError::TimedOut { after_ms } => format!(
                "The tool did not finish within {after_ms} ms and was stopped. \
                 Try again with a smaller request, or go on without it."
            ),
            ToolError::Crashed { .. } => "The tool crashed and was restarted; its work was lost. \
                 You may call it again."
                .to_string(),
            ToolError::LimitReached { limit, message } => {
                format!("Refused by the limit `{limit}`: {message} Not done.")
            }
            ToolError::NotGranted { message, .. } => {
                format!("Not allowed: {message} Nothing was done.")
            }
            ToolError::NotApproved { tool, reason } => format!(
                "The call of `{tool}` was not approved, so it did not run. Reason: {reason}"
            ),
        }
    }

    /// The error as a tool result value, in the same envelope as a typed
    /// tool's success (`{"ok":true,"data":…}`, made at dispatch):
    /// `{"ok":false,"error":{"kind":…,"message":…,"issues"?:[…]}}`.
    pub fn to_result_value(&self) -> Value {
        let mut error = json!({
            "kind": self.kind(),
            "message": self.to_model_message(),
        });
        if let ToolError::InvalidArguments { issues } = self {
            error["issues"] = json!(issues);
        }
        json!({ "ok": false, "error": error })
    }
}

impl From<std::convert::Infallible> for ToolError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_arguments_name_every_path() {
        let e = ToolError::InvalidArguments {
            issues: vec![
                ArgumentIssue {
                    path: String::new(),
                    message: "\"kind\" is a required property".into(),
                },
                ArgumentIssue {
                    path: "/limit".into(),
                    message: "-1 is less than the minimum of 1".into(),
                },
            ],
        };
        let text = e.to_model_message();
        assert!(text.contains("(arguments): \"kind\" is a required property"));
        assert!(text.contains("/limit: -1 is less than the minimum of 1"));
        let v = e.to_result_value();
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"]["kind"], "invalid_arguments");
        assert_eq!(v["error"]["issues"][1]["path"], "/limit");
    }

    #[test]
    fn errors_round_trip_as_json() {
        let e = ToolError::timed_out(Duration::from_millis(1500));
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(s, r#"{"kind":"timed_out","after_ms":1500}"#);
        let back: ToolError = serde_json::from_str(&s).unwrap();
        assert_eq!(back, e);
    }
}
