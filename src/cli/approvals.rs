//! Approval commands: `approvals`, `approve`, `deny`. Like the job
//! commands they work on the data directory directly, or through the
//! daemon that holds it (which then resumes the task at once).

use std::io::Write;

use clap::Args;

use crate::api::{parse_approval_id, ApproveRequest, Control, DecidedAnswer, DenyRequest};
use crate::job::Approval;

use super::connect::{call, Need};
use super::{output, CliError, Global};

/// `troupe approve`.
#[derive(Debug, Args)]
pub(super) struct ApproveArgs {
    /// The approval's id, as `troupe approvals` lists it (`<job id>.<n>`).
    id: String,
    /// Why, for the record.
    #[arg(long)]
    note: Option<String>,
}

/// `troupe deny`.
#[derive(Debug, Args)]
pub(super) struct DenyArgs {
    /// The approval's id, as `troupe approvals` lists it (`<job id>.<n>`).
    id: String,
    /// Why: the model gets it as the call's error.
    #[arg(long)]
    reason: String,
}

/// Lists the pending approvals.
pub(super) fn list(global: &Global) -> Result<(), CliError> {
    let config = global.load_config()?;
    let answer = call(global, &config, Need::Store, async |c| c.approvals().await)?;
    if global.json {
        return output::json(&answer);
    }
    table(&answer.approvals)
}

/// Approves one.
pub(super) fn approve(global: &Global, args: ApproveArgs) -> Result<(), CliError> {
    let id = parse_approval_id(&args.id)?;
    let config = global.load_config()?;
    let request = ApproveRequest { note: args.note };
    let answer = call(global, &config, Need::Store, async |c: &dyn Control| {
        c.approve(id, request.clone()).await
    })?;
    said(global, &answer)
}

/// Denies one.
pub(super) fn deny(global: &Global, args: DenyArgs) -> Result<(), CliError> {
    let id = parse_approval_id(&args.id)?;
    let config = global.load_config()?;
    let request = DenyRequest {
        reason: args.reason,
    };
    let answer = call(global, &config, Need::Store, async |c: &dyn Control| {
        c.deny(id, request.clone()).await
    })?;
    said(global, &answer)
}

fn said(global: &Global, answer: &DecidedAnswer) -> Result<(), CliError> {
    if global.json {
        return output::json(answer);
    }
    println!(
        "{}: {} (job {} is {})",
        answer.approval.id, answer.approval.state, answer.job.id, answer.job.status
    );
    Ok(())
}

fn table(approvals: &[Approval]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    if approvals.is_empty() {
        writeln!(out, "no approvals pending")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<40}  {:<14} {:<16} {:<20}  {:<20}  arguments",
        "id", "agent", "tool", "requested", "deadline"
    )?;
    for a in approvals {
        let deadline = a
            .deadline
            .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{:<40}  {:<14} {:<16} {:<20}  {:<20}  {}",
            a.id.to_string(),
            output::short(&a.agent_id, 14),
            output::short(&a.tool, 16),
            a.requested_at.format("%Y-%m-%d %H:%M:%S"),
            deadline,
            output::short(&a.arguments.to_string(), 80),
        )?;
    }
    Ok(())
}
