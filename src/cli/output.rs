//! Human and JSON output of jobs and workers.

use std::io::Write;

use serde::Serialize;

use crate::api::WorkerState;
use crate::job::Job;
use crate::memory::Memory;

use super::CliError;

/// Prints `value` as pretty JSON on stdout.
pub(super) fn json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Usage(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

pub(super) fn short(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// A table of jobs, one per line.
pub(super) fn job_table(jobs: &[Job]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<36}  {:<14} {:<10} {:>7}  {:<20}  error",
        "id", "worker", "status", "attempt", "updated"
    )?;
    for job in jobs {
        writeln!(
            out,
            "{:<36}  {:<14} {:<10} {:>3}/{:<3}  {:<20}  {}",
            job.id,
            short(&job.worker_name, 14),
            job.status.as_str(),
            job.attempt,
            job.max_attempts,
            job.updated_at.format("%Y-%m-%d %H:%M:%S"),
            short(job.error.as_deref().unwrap_or(""), 60),
        )?;
    }
    Ok(())
}

/// One job, field by field.
pub(super) fn job_detail(job: &Job) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "id          {}", job.id)?;
    writeln!(out, "worker      {}", job.worker_name)?;
    writeln!(out, "status      {}", job.status)?;
    writeln!(out, "attempt     {} of {}", job.attempt, job.max_attempts)?;
    writeln!(out, "priority    {}", job.priority)?;
    writeln!(out, "run at      {}", job.run_at.to_rfc3339())?;
    writeln!(out, "created     {}", job.created_at.to_rfc3339())?;
    writeln!(out, "updated     {}", job.updated_at.to_rfc3339())?;
    if let Some(key) = &job.unique_key {
        writeln!(out, "unique key  {key}")?;
    }
    if let Some(ms) = job.timeout_ms {
        writeln!(out, "timeout     {ms} ms")?;
    }
    writeln!(out, "args        {}", job.args)?;
    writeln!(
        out,
        "ctx         {}",
        serde_json::to_string(&job.ctx).unwrap_or_default()
    )?;
    if let Some(result) = &job.result {
        writeln!(out, "result      {result}")?;
    }
    if let Some(error) = &job.error {
        writeln!(out, "error       {error}")?;
    }
    for e in &job.errors {
        writeln!(
            out,
            "  attempt {} at {}: {}",
            e.attempt,
            e.at.to_rfc3339(),
            e.message
        )?;
    }
    Ok(())
}

/// A table of workers.
pub(super) fn worker_table(workers: &[WorkerState]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<16} {:<11} {:>11}  description",
        "name", "category", "concurrency"
    )?;
    for w in workers.iter().map(|w| &w.info) {
        writeln!(
            out,
            "{:<16} {:<11} {:>11}  {}",
            w.name, w.category, w.concurrency, w.description
        )?;
    }
    Ok(())
}

/// A table of memories.
pub(super) fn memory_table(memories: &[Memory]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<36}  {:<10} {:>3}  {:<8}  content",
        "id", "type", "imp", "state"
    )?;
    for m in memories {
        let state = if m.archived { "archived" } else { "live" };
        writeln!(
            out,
            "{:<36}  {:<10} {:>3}  {:<8}  {}",
            m.id,
            m.kind.as_str(),
            m.importance,
            state,
            m.content
        )?;
    }
    Ok(())
}

/// A spinner on stderr while the CLI waits (only on a terminal, and never
/// with `--json`, so scripts see clean output). Cleared when dropped.
pub(super) struct Waiting(Option<indicatif::ProgressBar>);

impl Waiting {
    /// Starts spinning with `message`.
    pub(super) fn start(message: impl Into<String>, json: bool) -> Self {
        use std::io::IsTerminal;
        if json || !std::io::stderr().is_terminal() {
            return Waiting(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(message.into());
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        Waiting(Some(bar))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}
