//! Agent commands: `task`, `memories`, `conversation`.

use clap::Args;

use crate::agent::ProcessingResult;
use crate::api::{ControlError, MemoriesQuery, Request, TaskAnswer, TaskRequest};
use crate::config::TroupeConfig;

use super::connect::{call, Need};
use super::{output, CliError, Global};

/// `troupe task`.
#[derive(Debug, Args)]
pub(super) struct TaskArgs {
    /// The agent's id.
    agent: String,
    /// What to do.
    prompt: String,
    /// The conversation it belongs to.
    #[arg(long)]
    conversation: Option<String>,
    /// The user it is for.
    #[arg(long)]
    user: Option<String>,
    /// Wait until the task ends and print its result (with no daemon, the
    /// runtime runs here meanwhile).
    #[arg(long)]
    wait: bool,
    /// The JSON Schema the answer must validate against: the JSON itself,
    /// or `@FILE` to read it from a file. The result then carries the
    /// answer as JSON (`output`).
    #[arg(long, value_name = "SCHEMA")]
    output_schema: Option<String>,
    /// Print the task's events as they happen, until it ends (`--json`:
    /// one JSON object per line); with no daemon, the runtime runs here
    /// meanwhile.
    #[arg(long, conflicts_with = "wait")]
    follow: bool,
}

/// `troupe memories`.
#[derive(Debug, Args)]
pub(super) struct MemoriesArgs {
    /// The agent's id.
    agent: String,
    /// Only this user's memories (default: the agent's own).
    #[arg(long)]
    user: Option<String>,
    /// Also the originals archived by compaction.
    #[arg(long)]
    archived: bool,
}

fn check_agent(config: &TroupeConfig, global: &Global, agent: &str) -> Result<(), CliError> {
    if config.agents.iter().any(|a| a.id == agent) {
        return Ok(());
    }
    if global.config.is_none() {
        return Err(CliError::Usage(format!(
            "unknown agent `{agent}`: no config given (pass --config FILE or set TROUPE_CONFIG)"
        )));
    }
    let known: Vec<_> = config.agents.iter().map(|a| a.id.as_str()).collect();
    Err(CliError::Usage(format!(
        "unknown agent `{agent}` (configured: {})",
        known.join(", ")
    )))
}

pub(super) fn task(global: &Global, args: TaskArgs) -> Result<(), CliError> {
    let config = global.load_config()?;
    check_agent(&config, global, &args.agent)?;
    let output_schema = args.output_schema.as_deref().map(read_schema).transpose()?;
    let request = TaskRequest {
        conversation_id: args.conversation,
        user_id: args.user,
        output_schema,
        wait: args.wait,
        ..TaskRequest::new(args.prompt)
    };
    request.validate()?;
    if args.follow {
        let (agent, json) = (args.agent, global.json);
        return call(global, &config, Need::Runtime, async |c| {
            let job = match c.task(&agent, request).await? {
                TaskAnswer::Queued(job) => job,
                TaskAnswer::Finished(_) => {
                    return Err(ControlError::Internal(
                        "a task not waited for was answered".into(),
                    ))
                }
            };
            super::follow::follow(c, job.id, json).await
        })?
        .into_result();
    }
    let need = if args.wait {
        Need::Runtime
    } else {
        Need::Store
    };
    let spinner = args.wait.then(|| {
        let message = format!("task for `{}`: running…", args.agent);
        output::Waiting::start(message, global.json)
    });
    let agent = args.agent;
    let answer = call(global, &config, need, async |c| {
        c.task(&agent, request).await
    })?;
    drop(spinner);
    match answer {
        TaskAnswer::Queued(job) if global.json => output::json(&job),
        TaskAnswer::Queued(job) => {
            println!("{}", job.id);
            Ok(())
        }
        TaskAnswer::Finished(result) => report(result, global.json),
    }
}

/// `--output-schema`: JSON, or `@FILE` holding it.
fn read_schema(arg: &str) -> Result<serde_json::Value, CliError> {
    let (text, from) = match arg.strip_prefix('@') {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::Usage(format!("--output-schema: cannot read `{path}`: {e}"))
            })?;
            (text, format!(" in `{path}`"))
        }
        None => (arg.to_string(), String::new()),
    };
    serde_json::from_str(&text).map_err(|e| {
        CliError::Usage(format!(
            "--output-schema: the schema{from} is not JSON: {e}"
        ))
    })
}

/// Prints a task's result; a failed task is the command's failure too.
fn report(result: ProcessingResult, json: bool) -> Result<(), CliError> {
    if json {
        output::json(&result)?;
    } else {
        print_result(&result);
    }
    if result.success {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "task failed: {}",
            result.error.unwrap_or_default()
        )))
    }
}

/// A ProcessingResult for people.
pub(super) fn print_result(result: &ProcessingResult) {
    for call in &result.tool_calls {
        let mut shown = call.result.to_string();
        if shown.chars().count() > 100 {
            shown = shown.chars().take(99).collect::<String>() + "…";
        }
        println!("  tool {} {} -> {}", call.tool, call.parameters, shown);
    }
    match (&result.response, &result.error) {
        (Some(_), _) if result.output.is_some() => {
            let pretty = serde_json::to_string_pretty(&result.output).unwrap_or_default();
            println!("{pretty}");
        }
        (Some(r), _) if result.success => println!("{r}"),
        (_, Some(e)) => println!("failed: {e}"),
        _ => {}
    }
    println!(
        "  ({} model calls, {} input + {} output tokens{})",
        result.steps,
        result.usage.input_tokens,
        result.usage.output_tokens,
        result
            .provider
            .as_deref()
            .map(|p| format!(", answered by {p}"))
            .unwrap_or_default()
    );
}

pub(super) fn memories(global: &Global, args: MemoriesArgs) -> Result<(), CliError> {
    let config = global.load_config()?;
    let query = MemoriesQuery {
        user_id: args.user,
        archived: args.archived,
    };
    let agent = args.agent;
    let answer = call(global, &config, Need::Store, async |c| {
        c.memories(&agent, query).await
    })?;
    if global.json {
        return output::json(&answer.memories);
    }
    output::memory_table(&answer.memories)
}

pub(super) fn conversation(global: &Global, id: &str) -> Result<(), CliError> {
    let config = global.load_config()?;
    let messages = call(global, &config, Need::Store, async |c| {
        match c.messages(id).await {
            Ok(answer) => Ok(answer.messages),
            // A conversation nobody wrote to: no messages (an empty list
            // with --json).
            Err(ControlError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    })?;
    if global.json {
        return output::json(&messages);
    }
    if messages.is_empty() {
        return Err(CliError::Usage(format!(
            "no messages in conversation `{id}`"
        )));
    }
    for m in &messages {
        println!(
            "{} {:<9} {}: {}",
            m.created_at.format("%H:%M:%S"),
            m.role,
            m.author,
            m.content
        );
    }
    Ok(())
}
