//! Starting outside an actix system is an error naming the cause, not a
//! panic, also now that agents, providers and `on_own_thread` workers get
//! threads of their own (which need a running system to be made).

use std::sync::Arc;

use troupe::config::TroupeConfig;
use troupe::engine::{EchoWorker, Registration, WorkerEngine};
use troupe::provider::{ProviderConfig, ProviderKind};
use troupe::runtime::Troupe;
use troupe::sled::{SledConfig, SledStore};

fn plain_tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn an_engine_with_a_worker_on_its_own_thread_outside_a_system_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(SledConfig::new(dir.path())).unwrap();
    let started = plain_tokio().block_on(async move {
        WorkerEngine::builder(Arc::new(store))
            .register(Registration::new(Arc::new(EchoWorker), 1).on_own_thread())
            .start()
    });
    let err = match started {
        Ok(_) => panic!("an engine started outside an actix system"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("worker `echo`"), "{err}");
    assert!(err.contains("actix system"), "{err}");
}

#[test]
fn a_runtime_with_providers_outside_a_system_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = TroupeConfig::default();
    config.store.data_dir = dir.path().join("data");
    config.providers.push(
        ProviderConfig::new("llm", ProviderKind::OpenaiCompatible)
            .with_base_url("http://127.0.0.1:9"),
    );
    let started = plain_tokio().block_on(async move { Troupe::builder(config).start().await });
    let err = match started {
        Ok(_) => panic!("a runtime started outside an actix system"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("actix system"), "{err}");
}

#[test]
fn a_bad_provider_config_is_a_typed_source_of_the_start_error() {
    use std::error::Error as _;
    use troupe::provider::{ErrorKind, ProviderSetError};
    use troupe::runtime::RuntimeError;

    let dir = tempfile::tempdir().unwrap();
    let mut config = TroupeConfig::default();
    config.store.data_dir = dir.path().join("data");
    // An OpenAI-compatible server needs a base URL.
    config
        .providers
        .push(ProviderConfig::new("llm", ProviderKind::OpenaiCompatible));
    let started = troupe_actors::run_system(async move { Troupe::builder(config).start().await });
    let err = match started {
        Ok(_) => panic!("a runtime started with a provider without a base URL"),
        Err(e) => e,
    };
    assert!(matches!(err, RuntimeError::Providers(_)), "{err:?}");
    assert!(err.to_string().contains("baseUrl"), "{err}");
    let source = err.source().expect("a source");
    match source.downcast_ref::<ProviderSetError>() {
        Some(ProviderSetError::Provider(e)) => {
            assert_eq!(e.kind, ErrorKind::InvalidConfig);
            assert_eq!(e.provider, "llm");
        }
        other => panic!("not the provider set's error: {other:?}"),
    }
}

#[test]
fn an_actor_tree_that_cannot_start_is_the_source_of_the_start_error() {
    use std::error::Error as _;
    use troupe::runtime::RuntimeError;

    let dir = tempfile::tempdir().unwrap();
    let mut config = TroupeConfig::default();
    config.store.data_dir = dir.path().join("data");
    config.providers.push(
        ProviderConfig::new("llm", ProviderKind::OpenaiCompatible)
            .with_base_url("http://127.0.0.1:9"),
    );
    let started = plain_tokio().block_on(async move { Troupe::builder(config).start().await });
    let err = match started {
        Ok(_) => panic!("a runtime started outside an actix system"),
        Err(e) => e,
    };
    assert!(matches!(err, RuntimeError::Start { .. }), "{err:?}");
    let source = err.source().expect("a source");
    assert_eq!(
        source.downcast_ref::<troupe_actors::BuildError>(),
        Some(&troupe_actors::BuildError::NoRuntime)
    );
}
