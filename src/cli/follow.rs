//! `--follow`: a job's events printed as they happen (`troupe task …
//! --follow`, `troupe job ID --follow`), one readable line each, or one
//! JSON object per line with `--json`. Text deltas of a streaming model
//! are printed as they come, on one line per reply. Names the model chose
//! (tools, call ids) are printed escaped, so they cannot restyle the
//! terminal.

use std::io::Write;

use futures::StreamExt;

use crate::api::{Control, ControlError};
use crate::escape::Escaped;
use crate::events::{TaskEvent, TaskEventKind};
use crate::job::JobId;

use super::CliError;

/// How a followed job ended.
pub(super) enum Ended {
    /// Completed.
    Completed,
    /// Failed, with its error; or cancelled.
    NotCompleted(String),
}

impl Ended {
    /// The command's result: a job that did not complete fails it.
    pub(super) fn into_result(self) -> Result<(), CliError> {
        match self {
            Ended::Completed => Ok(()),
            Ended::NotCompleted(why) => Err(CliError::Usage(why)),
        }
    }
}

/// Prints job `id`'s events until it ends.
pub(super) async fn follow(
    control: &dyn Control,
    id: JobId,
    json: bool,
) -> Result<Ended, ControlError> {
    let mut stream = control.events(id, 0).await?;
    let mut printer = Printer {
        json,
        streaming: None,
    };
    let mut ended = None;
    while let Some(event) = stream.next().await {
        let event = event?;
        ended = match &event.kind {
            TaskEventKind::Completed => Some(Ended::Completed),
            TaskEventKind::Failed { error } => {
                Some(Ended::NotCompleted(format!("job {id} failed: {error}")))
            }
            TaskEventKind::Cancelled => {
                Some(Ended::NotCompleted(format!("job {id} was cancelled")))
            }
            _ => None,
        };
        printer
            .print(&event)
            .map_err(|e| ControlError::Internal(format!("cannot write the events: {e}")))?;
    }
    Ok(ended.unwrap_or_else(|| {
        Ended::NotCompleted(format!("the events of job {id} ended before the job did"))
    }))
}

struct Printer {
    json: bool,
    /// The step whose text deltas are being printed, on a line not ended.
    streaming: Option<u32>,
}

impl Printer {
    fn print(&mut self, event: &TaskEvent) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        if self.json {
            let line = serde_json::to_string(event).map_err(std::io::Error::other)?;
            writeln!(out, "{line}")?;
            return out.flush();
        }
        match &event.kind {
            TaskEventKind::TextDelta { step, delta } => {
                if self.streaming != Some(*step) {
                    self.end_line(&mut out)?;
                    write!(out, "{} text: ", head(event))?;
                    self.streaming = Some(*step);
                }
                write!(out, "{delta}")?;
                return out.flush();
            }
            // Its deltas already printed it.
            TaskEventKind::Text { step, .. } if self.streaming == Some(*step) => {
                self.streaming = None;
                writeln!(out)?;
                return out.flush();
            }
            _ => {}
        }
        self.end_line(&mut out)?;
        writeln!(out, "{} {}", head(event), describe(&event.kind))?;
        out.flush()
    }

    fn end_line(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.streaming.take().is_some() {
            writeln!(out)?;
        }
        Ok(())
    }
}

/// `#<attempt>.<n> HH:MM:SS.mmm` (the `seq` as people read it).
fn head(event: &TaskEvent) -> String {
    let seq = crate::events::seq::label(event.seq);
    format!("#{seq} {}", event.at.format("%H:%M:%S%.3f"))
}

/// At most `max` characters of `text` on one line.
fn short(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// One event for people.
fn describe(kind: &TaskEventKind) -> String {
    match kind {
        TaskEventKind::AttemptStarted { attempt } => format!("attempt {attempt} started"),
        TaskEventKind::ModelCall {
            step,
            provider,
            model,
            input_tokens,
            output_tokens,
            latency_ms,
        } => format!(
            "model call {step}: {provider}/{model}, {input_tokens} in + {output_tokens} out tokens, {latency_ms} ms"
        ),
        TaskEventKind::TextDelta { delta, .. } => format!("text: {delta}"),
        TaskEventKind::Text { text, .. } => format!("text: {text}"),
        TaskEventKind::ToolCall {
            id, name, arguments, ..
        } => format!(
            "tool call {} ({}) {}",
            Escaped(name),
            Escaped(id),
            short(&arguments.to_string(), 200)
        ),
        TaskEventKind::ToolResult {
            id,
            name,
            is_error,
            result,
            ..
        } => {
            let what = if *is_error { "tool error" } else { "tool result" };
            format!(
                "{what} {} ({}) {}",
                Escaped(name),
                Escaped(id),
                short(&result.to_string(), 200)
            )
        }
        TaskEventKind::ApprovalRequested {
            approval_id, tool, ..
        } => format!("approval requested for {}: {approval_id}", Escaped(tool)),
        TaskEventKind::ApprovalDecided {
            approval_id,
            approved,
            note,
        } => {
            let what = if *approved { "approved" } else { "denied" };
            let note = note.as_deref().map(|n| format!(": {n}")).unwrap_or_default();
            format!("{approval_id} {what}{note}")
        }
        TaskEventKind::RetryScheduled {
            attempt,
            run_at,
            error,
        } => format!(
            "attempt {attempt} failed, retry at {}: {}",
            run_at.format("%H:%M:%S%.3f"),
            short(error, 300)
        ),
        TaskEventKind::Completed => "completed".into(),
        TaskEventKind::Failed { error } => format!("failed: {error}"),
        TaskEventKind::Cancelled => "cancelled".into(),
    }
}
