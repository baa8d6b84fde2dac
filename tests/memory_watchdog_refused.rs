//! Memory-based recycling refused where it cannot work: a limit of 0 in the
//! config, and a limit in a program whose global allocator is not the
//! accounting one (this test binary installs none).
//! (`memory_watchdog.rs` runs it with the allocator installed.)

mod common;

use std::path::Path;
use std::sync::Arc;

use troupe::sled::{SledConfig, SledStore};
use troupe::{AgentConfig, ModelConfig, TroupeConfig};
use troupe::{EngineError, Registration, WorkerEngine};
use troupe::{RuntimeError, Troupe};
use troupe_actors::run_system;

const AGENT: &str = r#"
[[agents]]
id = "sarah"
name = "Sarah"
systemPrompt = "You are Sarah."
restartAboveMemoryMib = LIMIT
[agents.modelConfig]
provider = "offline"
model = "m"
"#;

#[test]
fn a_memory_limit_of_zero_is_refused_naming_the_key() {
    let err = TroupeConfig::parse(&AGENT.replace("LIMIT", "0"), Path::new("troupe.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("troupe.toml: "), "{err}");
    assert!(err.contains("`agents[0].restartAboveMemoryMib`"), "{err}");
    assert!(err.contains("at least 1"), "{err}");
    let config =
        TroupeConfig::parse(&AGENT.replace("LIMIT", "256"), Path::new("troupe.toml")).unwrap();
    assert_eq!(config.agents[0].restart_above_memory_mib, Some(256));
}

#[test]
fn the_accounting_allocator_is_not_installed_here() {
    assert!(!troupe::alloc::installed());
}

#[test]
fn a_runtime_with_a_memory_limit_refuses_to_start_without_the_allocator() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = TroupeConfig::default();
    config.store.data_dir = dir.path().join("data");
    config.agents.push(AgentConfig {
        id: "frugal".into(),
        name: "Frugal".into(),
        system_prompt: "You are frugal.".into(),
        tools: Vec::new(),
        model_config: ModelConfig {
            provider: "offline".into(),
            model: "offline".into(),
            temperature: Some(0.2),
            max_tokens: Some(200),
            fallbacks: Vec::new(),
            stream: false,
        },
        concurrency: 1,
        max_steps: 4,
        reflect: false,
        budget: None,
        restart_after_tasks: None,
        restart_above_memory_mib: Some(64),
        limits: Default::default(),
        grants: Default::default(),
        approvals: Default::default(),
    });
    let data = config.store.data_dir.clone();
    run_system(async move {
        let err = match Troupe::builder(config).start().await {
            Ok(_) => panic!("started without the accounting allocator"),
            Err(e) => e,
        };
        assert!(
            matches!(&err, RuntimeError::AllocatorNotInstalled { agent } if agent == "frugal"),
            "{err:?}"
        );
        let message = err.to_string();
        for needle in [
            "agent `frugal` sets `restartAboveMemoryMib`",
            "the accounting allocator is not installed",
            "#[global_allocator] static A: troupe::alloc::AccountingAllocator = troupe::alloc::AccountingAllocator;",
        ] {
            assert!(message.contains(needle), "`{needle}` in: {message}");
        }
    });
    assert!(!data.exists(), "refused before the store was opened");
}

#[test]
fn the_engine_refuses_a_memory_limit_without_the_allocator() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let store = Arc::new(SledStore::open(SledConfig::new(dir.path())).unwrap());
        let registration = Registration::new(Arc::new(common::Echo), 1).recycle_above_memory(1024);
        match WorkerEngine::builder(store).register(registration).start() {
            Err(EngineError::InvalidWorker {
                name,
                field,
                reason,
            }) => {
                assert_eq!((name.as_str(), field), ("echo", "recycle_above_memory"));
                assert!(reason.contains("#[global_allocator]"), "{reason}");
            }
            Err(other) => panic!("unexpected error: {other}"),
            Ok(_) => panic!("started without the accounting allocator"),
        }
    });
}
