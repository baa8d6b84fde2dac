//! A task's way in and out of the façade: where it belongs
//! ([`TaskOptions`]), what it answered ([`Answer`]), and why it did not
//! ([`TaskError`]).

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::agent::{ProcessingResult, ToolCallRecord};
use crate::job::{Job, JobId, JobStatus};
use crate::provider::Usage;

use super::RuntimeError;

/// Where a task belongs.
#[derive(Debug, Clone, Default)]
pub struct TaskOptions {
    /// The conversation: its recent messages are context, the answer is added.
    pub conversation_id: Option<String>,
    /// The user the task is for (memories are kept per user).
    pub user_id: Option<String>,
    /// Where it came from (`cli`, `api`, …).
    pub source: Option<String>,
    /// The JSON Schema the final answer must validate against: the answer
    /// is then also given as JSON ([`Answer::output`]).
    pub output_schema: Option<Value>,
}

impl TaskOptions {
    /// Sets the conversation.
    pub fn conversation(mut self, id: impl Into<String>) -> Self {
        self.conversation_id = Some(id.into());
        self
    }

    /// Sets the user.
    pub fn user(mut self, id: impl Into<String>) -> Self {
        self.user_id = Some(id.into());
        self
    }

    /// Sets where it came from.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Asks for the final answer as JSON validating against `schema`.
    pub fn output_schema(mut self, schema: Value) -> Self {
        self.output_schema = Some(schema);
        self
    }

    /// Asks for the final answer as a `T`, by the JSON Schema schemars
    /// makes of it (its objects closed to unknown fields, which `T` would
    /// ignore, so providers' strict modes take it); read it back with
    /// [`Answer::output_as`].
    pub fn output_type<T: JsonSchema>(self) -> Self {
        self.output_schema(crate::agent::closed(crate::tools::schema_for::<T>()))
    }
}

/// What an agent answered a task: the final reply, every tool call it made
/// on the way, and what it cost. The seed's `ProcessingResult` with
/// `success: true` carries the same ([`From`] converts).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    /// The task (job) it answers.
    pub job_id: JobId,
    /// The final reply.
    pub text: String,
    /// Every tool call made, in order, with its result.
    pub tool_calls: Vec<ToolCallRecord>,
    /// Tokens used by all model calls of the task.
    pub usage: Usage,
    /// Model calls made.
    pub steps: u32,
    /// The provider that gave the final answer.
    pub provider: Option<String>,
    /// The model that gave the final answer.
    pub model: Option<String>,
    /// The final answer as JSON, for a task with an output schema (it
    /// validated against it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

impl Answer {
    /// The structured answer as a `T` (a task queued with
    /// [`TaskOptions::output_type`] or an `outputSchema`).
    pub fn output_as<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        let not = |reason: String| TaskError::NotAnAnswer {
            job: self.job_id,
            reason,
        };
        let value = self
            .output
            .clone()
            .ok_or_else(|| not("the task had no output schema, so its answer is text".into()))?;
        serde_json::from_value(value)
            .map_err(|e| not(format!("its output is not the type asked for: {e}")))
    }
}

/// Why a task has no answer.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// It failed: its last attempt's error (a permanent error, or the last
    /// of its attempts).
    #[error("task {job} failed after {attempts} attempt(s): {error}")]
    Failed {
        /// The task.
        job: JobId,
        /// What its last attempt said.
        error: String,
        /// Attempts made.
        attempts: u32,
    },
    /// Someone cancelled it.
    #[error("task {job} was cancelled")]
    Cancelled {
        /// The task.
        job: JobId,
    },
    /// It completed, but its result is not an agent's answer (the job was
    /// not an agent task, or its record was changed).
    #[error("job {job} completed without an agent's answer: {reason}")]
    NotAnAnswer {
        /// The job.
        job: JobId,
        /// What is wrong with its result.
        reason: String,
    },
    /// The runtime could not find or wait for it.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl TaskError {
    /// The task it is about, when known.
    pub fn job(&self) -> Option<JobId> {
        match self {
            TaskError::Failed { job, .. }
            | TaskError::Cancelled { job }
            | TaskError::NotAnAnswer { job, .. } => Some(*job),
            TaskError::Runtime(_) => None,
        }
    }
}

impl Answer {
    /// The answer of an ended task job, or why there is none.
    pub fn of(job: &Job) -> Result<Answer, TaskError> {
        match job.status {
            JobStatus::Completed => {
                let result = job.result.clone().unwrap_or_default();
                let done: ProcessingResult =
                    serde_json::from_value(result).map_err(|e| TaskError::NotAnAnswer {
                        job: job.id,
                        reason: e.to_string(),
                    })?;
                Ok(Answer {
                    job_id: job.id,
                    text: done.response.unwrap_or_default(),
                    tool_calls: done.tool_calls,
                    usage: done.usage,
                    steps: done.steps,
                    provider: done.provider,
                    model: done.model,
                    output: done.output,
                })
            }
            JobStatus::Cancelled => Err(TaskError::Cancelled { job: job.id }),
            _ => Err(TaskError::Failed {
                job: job.id,
                error: job
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("job {} ended {}", job.id, job.status)),
                attempts: job.attempt,
            }),
        }
    }
}

impl From<Answer> for ProcessingResult {
    fn from(answer: Answer) -> Self {
        ProcessingResult {
            success: true,
            response: Some(answer.text),
            tool_calls: answer.tool_calls,
            error: None,
            usage: answer.usage,
            steps: answer.steps,
            provider: answer.provider,
            model: answer.model,
            output: answer.output,
        }
    }
}

impl ProcessingResult {
    /// The seed's shape of a task's outcome: `success: true` with the
    /// answer, or `success: false` with the error.
    pub fn of(outcome: Result<Answer, TaskError>) -> Self {
        match outcome {
            Ok(answer) => answer.into(),
            Err(TaskError::Failed { error, .. }) => ProcessingResult::failed(error),
            Err(e) => ProcessingResult::failed(e.to_string()),
        }
    }
}
