//! `troupe demo`: the main job end to end on the embedded default.
//!
//! Starts the whole runtime on a fresh sled directory, gives Sarah the
//! frontend developer a few tasks that use tools and memory, lets her
//! schedule a memory compaction, waits for it all, and prints the results,
//! her memories before and after compaction, and the job table. With a
//! provider key in the environment it uses that provider; without one, the
//! deterministic offline model, and it says so.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use crate::agent::ProcessingResult;
use crate::api::{Control, JobsQuery, LocalControl, MemoriesQuery, TaskAnswer, TaskRequest};
use crate::config::{AgentConfig, ModelConfig, TroupeConfig};
use crate::runtime::Troupe;
use crate::sled::{SledConfig, SledStore};

use super::agents::print_result;
use super::{output, CliError, Global};

/// `troupe demo`.
#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    /// Where to keep the demo's data (default: a new directory under the
    /// system's temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Use the offline model even if a provider key is set.
    #[arg(long)]
    offline: bool,
}

const SARAH_PROMPT: &str = "You are Sarah, a helpful frontend developer. You review code, keep the team informed \
     through messages, and remember what you learn about the team's preferences. Use your tools; be brief.";

/// The conversation the demo's tasks belong to.
const CONVERSATION: &str = "frontend-team";

/// The user the demo's tasks are for.
const USER: &str = "team";

const TASKS: &[&str] = &[
    "Remember that the team prefers TypeScript strict mode and small components.",
    "Review `function add(a, b) { return a + b } // TODO: types` and tell the team what you found.",
    "Remember that code reviews happen on Tuesdays.",
    "Recall what you know about the team's preferences before the next review.",
    "Compact your memories so they stay tidy.",
];

fn demo_config(offline: bool) -> (TroupeConfig, String) {
    let mut config = TroupeConfig::default();
    let (provider, model, note) = match detect_provider(offline) {
        Some((p, model)) => {
            let note = format!("using provider `{}` ({model}) from your environment", p.name);
            let name = p.name.clone();
            config.providers.push(p);
            (name, model, note)
        }
        None => (
            crate::agent::OFFLINE_PROVIDER.to_string(),
            "offline-demo".to_string(),
            "no provider key in the environment (OPENAI_API_KEY, ANTHROPIC_API_KEY, DEEPSEEK_API_KEY, \
             MISTRAL_API_KEY): using the deterministic offline model"
                .to_string(),
        ),
    };
    config.agents.push(AgentConfig {
        id: "sarah".into(),
        name: "Sarah the Frontend Developer".into(),
        system_prompt: SARAH_PROMPT.into(),
        tools: crate::names::BUILTIN_TOOLS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        model_config: ModelConfig {
            provider,
            model,
            temperature: Some(0.3),
            max_tokens: Some(800),
            fallbacks: Vec::new(),
            stream: false,
        },
        concurrency: 1,
        max_steps: 6,
        reflect: false,
        budget: None,
        restart_after_tasks: None,
        restart_above_memory_mib: None,
        limits: Default::default(),
        grants: Default::default(),
        approvals: Default::default(),
    });
    (config, note)
}

pub(super) fn run(global: &Global, args: DemoArgs) -> Result<(), CliError> {
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "troupe-demo-{}-{}",
            std::process::id(),
            chrono::Utc::now().format("%Y%m%d%H%M%S")
        ))
    });
    let (config, note) = demo_config(args.offline);
    let json_out = global.json;
    println!("troupe demo: data in {}", dir.display());
    println!("model: {note}\n");
    let store = SledStore::open(SledConfig::new(&dir))?;
    troupe_actors::run_system(async move {
        let started = Instant::now();
        let troupe = Troupe::builder(config).store(store).start().await?;
        let control = LocalControl::owning(troupe).source("demo");
        let shown = show(&control, json_out).await;
        control.close().await?;
        let results = shown?;
        let failed = results.iter().filter(|r| !r.success).count();
        println!(
            "\n{} tasks, {} succeeded, in {} ms; data kept in {}",
            results.len(),
            results.len() - failed,
            started.elapsed().as_millis(),
            dir.display()
        );
        if failed > 0 {
            return Err(CliError::Usage(format!("{failed} demo tasks failed")));
        }
        Ok(())
    })
}

/// Runs the tasks and prints what came of them: results, memories, the
/// conversation and the job table.
async fn show(control: &LocalControl, json_out: bool) -> Result<Vec<ProcessingResult>, CliError> {
    let results = run_tasks(control).await?;
    // The compaction job was queued by the last task's `scheduler` call.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !control.is_idle().await? {
        if Instant::now() > deadline {
            return Err(CliError::Usage(
                "the demo's jobs did not finish within 60 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let query = MemoriesQuery {
        user_id: Some(USER.into()),
        archived: true,
    };
    println!("sarah's memories about the team:");
    for m in &control.memories("sarah", query).await?.memories {
        let state = if m.archived { "archived" } else { "live    " };
        println!(
            "  {state} [{} {}/10] {}",
            m.kind.as_str(),
            m.importance,
            m.content
        );
    }
    let messages = control.messages(CONVERSATION).await?.messages;
    println!(
        "\nconversation `{CONVERSATION}`: {} messages",
        messages.len()
    );
    for m in messages.iter().filter(|m| m.author != USER) {
        let mut content = m.content.clone();
        if content.chars().count() > 110 {
            content = content.chars().take(109).collect::<String>() + "…";
        }
        println!("  {}: {content}", m.author);
    }
    let page = control.jobs(JobsQuery::default()).await?;
    println!("\njobs:");
    output::job_table(&page.jobs)?;
    if json_out {
        output::json(&results)?;
    }
    Ok(results)
}

/// Gives Sarah the tasks one at a time, so that each can use what the last
/// one left, printing each result.
async fn run_tasks(control: &LocalControl) -> Result<Vec<ProcessingResult>, CliError> {
    let mut results = Vec::new();
    for (i, prompt) in TASKS.iter().enumerate() {
        println!("[{}/{}] sarah ← {prompt}", i + 1, TASKS.len());
        let request = TaskRequest {
            conversation_id: Some(CONVERSATION.into()),
            user_id: Some(USER.into()),
            wait: true,
            ..TaskRequest::new(*prompt)
        };
        let result = match control.task("sarah", request).await? {
            TaskAnswer::Finished(result) => result,
            TaskAnswer::Queued(job) => {
                ProcessingResult::failed(format!("task {} was queued, not waited for", job.id))
            }
        };
        print_result(&result);
        println!();
        results.push(result);
    }
    Ok(results)
}

/// A provider for the demo from the environment: the first of
/// `OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `DEEPSEEK_API_KEY`,
/// `MISTRAL_API_KEY` that is set, with a small model. `None` when none is set
/// or `offline` is asked for.
fn detect_provider(offline: bool) -> Option<(crate::provider::ProviderConfig, String)> {
    use crate::provider::{ProviderConfig, ProviderKind};
    if offline {
        return None;
    }
    let candidates = [
        (
            "OPENAI_API_KEY",
            "openai",
            ProviderKind::Openai,
            "gpt-4o-mini",
        ),
        (
            "ANTHROPIC_API_KEY",
            "anthropic",
            ProviderKind::Anthropic,
            "claude-haiku-4-5",
        ),
        (
            "DEEPSEEK_API_KEY",
            "deepseek",
            ProviderKind::Deepseek,
            "deepseek-chat",
        ),
        (
            "MISTRAL_API_KEY",
            "mistral",
            ProviderKind::Mistral,
            "mistral-small-latest",
        ),
    ];
    candidates.into_iter().find_map(|(var, name, kind, model)| {
        let set = std::env::var(var)
            .map(|v| !v.trim().is_empty())
            .unwrap_or(false);
        set.then(|| {
            let mut config = ProviderConfig::new(name, kind);
            config.api_key_env = Some(var.to_string());
            (config, model.to_string())
        })
    })
}
