//! Agent commands: `task`, `memories`, `conversation`.

use clap::Args;
use serde_json::json;

use crate::agent::ProcessingResult;
use crate::config::TroupeConfig;
use crate::job::{EnqueueOptions, Job, JobCtx};
use crate::memory::MemoryScope;
use crate::runtime::{Answer, TaskOptions, Troupe};
use crate::store::prelude::*;

use super::jobs::encode;
use super::remote::{open_target, Remote, Target};
use super::{output, CliError, Global};

/// `troupe task`.
#[derive(Debug, Args)]
pub struct TaskArgs {
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
    /// Run the runtime here until the task ends and print its result.
    #[arg(long)]
    wait: bool,
}

/// `troupe memories`.
#[derive(Debug, Args)]
pub struct MemoriesArgs {
    /// The agent's id.
    agent: String,
    /// Only this user's memories (default: the agent's own).
    #[arg(long)]
    user: Option<String>,
    /// Also the originals archived by compaction.
    #[arg(long)]
    archived: bool,
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
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
    if args.prompt.trim().is_empty() {
        return Err(CliError::Usage("the prompt is empty".into()));
    }
    let dir = global.data_dir_for(&config);
    let store = match open_target(global, &dir)? {
        Target::Local(store) => store,
        Target::Remote(remote) => return remote_task(global, &remote, args),
    };
    if !args.wait {
        let mut task_args = json!({ "prompt": args.prompt });
        if let Some(c) = &args.conversation {
            task_args["conversationId"] = json!(c);
        }
        let ctx = JobCtx {
            user_id: args.user,
            conversation_id: args.conversation,
            source: Some("cli".into()),
            ..JobCtx::default()
        };
        let job = Job::new(
            &args.agent,
            task_args,
            ctx,
            &EnqueueOptions::default(),
            chrono::Utc::now(),
        )
        .map_err(|e| CliError::Usage(e.to_string()))?;
        let outcome = runtime()?.block_on(store.insert(job))?;
        return if global.json {
            output::json(outcome.job())
        } else {
            println!("{}", outcome.job().id);
            Ok(())
        };
    }
    let json_out = global.json;
    troupe_actors::run_system(async move {
        let troupe = Troupe::builder(config).store(store).start().await?;
        let options = TaskOptions {
            conversation_id: args.conversation,
            user_id: args.user,
            source: Some("cli".into()),
        };
        let job = troupe.task(&args.agent, &args.prompt, options).await?;
        let spinner = output::Waiting::start(
            format!("task {} for `{}`: running…", job.id, args.agent),
            json_out,
        );
        let ended = troupe.engine().wait_for(job.id).await?;
        drop(spinner);
        troupe.shutdown().await?;
        report(ProcessingResult::of(Answer::of(&ended)), json_out)
    })
}

/// Prints a task's result; a failed task is the command's failure too.
fn report(result: crate::agent::ProcessingResult, json: bool) -> Result<(), CliError> {
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
pub(super) fn print_result(result: &crate::agent::ProcessingResult) {
    for call in &result.tool_calls {
        let mut shown = call.result.to_string();
        if shown.chars().count() > 100 {
            shown = shown.chars().take(99).collect::<String>() + "…";
        }
        println!("  tool {} {} -> {}", call.tool, call.parameters, shown);
    }
    match (&result.response, &result.error) {
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
    let dir = global.data_dir_for(&config);
    let memories: Vec<crate::memory::Memory> = match open_target(global, &dir)? {
        Target::Local(store) => {
            let scope = MemoryScope {
                agent_id: args.agent,
                user_id: args.user,
            };
            runtime()?.block_on(store.list_memories(&scope, args.archived))?
        }
        Target::Remote(remote) => {
            let mut path = format!(
                "/v1/agents/{}/memories?archived={}",
                encode(&args.agent),
                args.archived
            );
            if let Some(user) = &args.user {
                path.push_str(&format!("&userId={}", encode(user)));
            }
            serde_json::from_value(remote.get(&path)?["memories"].clone())
                .map_err(|e| CliError::Usage(format!("unexpected answer from the daemon: {e}")))?
        }
    };
    if global.json {
        return output::json(&memories);
    }
    println!(
        "{:<36}  {:<10} {:>3}  {:<8}  content",
        "id", "type", "imp", "state"
    );
    for m in &memories {
        let state = if m.archived { "archived" } else { "live" };
        println!(
            "{:<36}  {:<10} {:>3}  {:<8}  {}",
            m.id,
            m.kind.as_str(),
            m.importance,
            state,
            m.content
        );
    }
    Ok(())
}

pub(super) fn conversation(global: &Global, id: &str) -> Result<(), CliError> {
    let config = global.load_config()?;
    let dir = global.data_dir_for(&config);
    let messages: Vec<crate::conversation::ChatMessage> = match open_target(global, &dir)? {
        Target::Local(store) => runtime()?.block_on(store.list_messages(id))?,
        Target::Remote(remote) => {
            match remote.get(&format!("/v1/conversations/{}/messages", encode(id))) {
                Ok(value) => serde_json::from_value(value["messages"].clone()).map_err(|e| {
                    CliError::Usage(format!("unexpected answer from the daemon: {e}"))
                })?,
                Err(_) => Vec::new(),
            }
        }
    };
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

/// `troupe task` against a running daemon.
fn remote_task(global: &Global, remote: &Remote, args: TaskArgs) -> Result<(), CliError> {
    let mut body = json!({ "prompt": args.prompt, "wait": args.wait });
    if let Some(c) = &args.conversation {
        body["conversationId"] = json!(c);
    }
    if let Some(u) = &args.user {
        body["userId"] = json!(u);
    }
    let spinner = args.wait.then(|| {
        let message = format!("task for `{}` at {}: running…", args.agent, remote.url());
        output::Waiting::start(message, global.json)
    });
    let value = remote.post(&format!("/v1/agents/{}/tasks", encode(&args.agent)), body)?;
    drop(spinner);
    if !args.wait {
        let job = value.get("job").cloned().unwrap_or(value);
        return if global.json {
            output::json(&job)
        } else {
            println!("{}", job["id"].as_str().unwrap_or_default());
            Ok(())
        };
    }
    let result: crate::agent::ProcessingResult =
        serde_json::from_value(value.get("result").cloned().unwrap_or(value))
            .map_err(|e| CliError::Usage(format!("unexpected answer from the daemon: {e}")))?;
    report(result, global.json)
}
