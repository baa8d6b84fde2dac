//! Built-in diagnostic workers for smoke tests, health probes and benchmarks.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::names::{ECHO_WORKER, SLEEP_WORKER};

use super::worker::{JobContext, Worker, WorkerCategory, WorkerError};

/// `echo`: returns its args unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct EchoWorker;

#[async_trait]
impl Worker for EchoWorker {
    fn name(&self) -> &str {
        ECHO_WORKER
    }
    fn description(&self) -> &str {
        "Returns its args unchanged."
    }
    fn category(&self) -> WorkerCategory {
        WorkerCategory::Diagnostic
    }
    async fn run(&self, args: Value, _: JobContext) -> Result<Value, WorkerError> {
        Ok(args)
    }
}

/// `sleep`: `{"ms": N}` returns after N ms; `{"fail": true}` fails retryably
/// (after the sleep, if any); `{"fail": "permanent"}` fails permanently.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SleepWorker;

#[async_trait]
impl Worker for SleepWorker {
    fn name(&self) -> &str {
        SLEEP_WORKER
    }
    fn description(&self) -> &str {
        "Sleeps {\"ms\": N} milliseconds; {\"fail\": true} fails retryably, {\"fail\": \"permanent\"} permanently."
    }
    fn category(&self) -> WorkerCategory {
        WorkerCategory::Diagnostic
    }
    async fn run(&self, args: Value, ctx: JobContext) -> Result<Value, WorkerError> {
        let obj = match &args {
            Value::Object(map) => map,
            Value::Null => &serde_json::Map::new(),
            other => {
                return Err(WorkerError::permanent(format!(
                    "sleep: args must be an object like {{\"ms\": 100}}, got {other}"
                )))
            }
        };
        let ms = match obj.get("ms") {
            None => 0,
            Some(v) => v.as_u64().ok_or_else(|| {
                WorkerError::permanent(format!(
                    "sleep: `ms` must be a whole number of milliseconds, got {v}"
                ))
            })?,
        };
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        match obj.get("fail") {
            None | Some(Value::Bool(false)) | Some(Value::Null) => {
                Ok(json!({ "sleptMs": ms, "attempt": ctx.attempt }))
            }
            Some(Value::Bool(true)) => Err(WorkerError::retryable(format!(
                "sleep: asked to fail (attempt {})",
                ctx.attempt
            ))),
            Some(Value::String(s)) if s == "permanent" => {
                Err(WorkerError::permanent("sleep: asked to fail permanently"))
            }
            Some(other) => Err(WorkerError::permanent(format!(
                "sleep: `fail` must be true, false or \"permanent\", got {other}"
            ))),
        }
    }
}
