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
use crate::config::{AgentConfig, ModelConfig, TroupeConfig};
use crate::job::JobStatus;
use crate::memory::MemoryScope;
use crate::runtime::{Answer, TaskOptions, Troupe};
use crate::sled::{SledConfig, SledStore};
use crate::store::ListQuery;

use super::agents::print_result;
use super::{output, CliError, Global};

/// `troupe demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
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
        tools: [
            "send_message",
            "analyze_code",
            "create_task",
            "remember",
            "recall",
            "scheduler",
            "worker_manager",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        model_config: ModelConfig {
            provider,
            model,
            temperature: 0.3,
            max_tokens: 800,
            fallbacks: Vec::new(),
        },
        concurrency: 1,
        max_steps: 6,
        reflect: false,
        budget: None,
        restart_after_tasks: None,
        restart_above_memory_mib: None,
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
        let conversation = "frontend-team".to_string();
        let mut results = Vec::new();
        // One task at a time, so that each can use what the last one left.
        for (i, prompt) in TASKS.iter().enumerate() {
            println!("[{}/{}] sarah ← {prompt}", i + 1, TASKS.len());
            let options = TaskOptions {
                conversation_id: Some(conversation.clone()),
                user_id: Some("team".into()),
                source: Some("demo".into()),
            };
            let job = troupe.task("sarah", prompt, options).await?;
            let ended = troupe.engine().wait_for(job.id).await?;
            let result = ProcessingResult::of(Answer::of(&ended));
            print_result(&result);
            println!();
            results.push(result);
        }

        let scope = MemoryScope {
            agent_id: "sarah".into(),
            user_id: Some("team".into()),
        };
        // The compaction job was queued by the last task's `scheduler` call.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let counts = troupe.engine().counts().await?;
            if counts.status(JobStatus::Queued) == 0 && counts.status(JobStatus::Running) == 0 {
                break;
            }
            if Instant::now() > deadline {
                return Err(CliError::Usage(
                    "the demo's jobs did not finish within 60 s".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let memories = troupe.memories().list(scope, true).await?;
        println!("sarah's memories about the team:");
        for m in &memories {
            let state = if m.archived { "archived" } else { "live    " };
            println!(
                "  {state} [{} {}/10] {}",
                m.kind.as_str(),
                m.importance,
                m.content
            );
        }
        let messages = troupe.conversations().messages(&conversation).await?;
        println!(
            "\nconversation `{conversation}`: {} messages",
            messages.len()
        );
        for m in messages.iter().filter(|m| m.author != "team") {
            let mut content = m.content.clone();
            if content.chars().count() > 110 {
                content = content.chars().take(109).collect::<String>() + "…";
            }
            println!("  {}: {content}", m.author);
        }

        let page = troupe
            .engine()
            .list_jobs(&ListQuery {
                limit: 50,
                ..ListQuery::default()
            })
            .await?;
        println!("\njobs:");
        output::job_table(&page.jobs)?;
        if json_out {
            output::json(&results)?;
        }
        troupe.shutdown().await?;
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
