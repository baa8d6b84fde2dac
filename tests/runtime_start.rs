//! Starting the runtime: from a plain tokio program it runs on an actix
//! system of its own; the bare engine still needs one (an error naming the
//! cause, not a panic); a bad config is a typed error.

mod common;

use std::sync::Arc;

use troupe::sled::{SledConfig, SledStore};
use troupe::TroupeConfig;
use troupe::{ProviderConfig, ProviderKind};
use troupe::{Registration, WorkerEngine};
use troupe::{TaskOptions, Troupe};

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
            .register(Registration::new(Arc::new(common::Echo), 1).on_own_thread())
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
fn a_runtime_starts_from_plain_tokio_and_its_handle_works_from_any_thread() {
    fn send_sync_clone<T: Send + Sync + Clone + 'static>(_: &T) {}
    let dir = tempfile::tempdir().unwrap();
    let config = common::offline_config(dir.path());
    // A service's own runtime, several threads, no actix anywhere.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        assert!(!troupe_actors::in_system());
        let troupe = Troupe::builder(config).start().await.unwrap();
        send_sync_clone(&troupe);
        let clone = troupe.clone();
        let answer =
            tokio::spawn(async move { clone.ask("ed", "Say hello", TaskOptions::default()).await })
                .await
                .unwrap()
                .unwrap();
        assert!(!answer.text.is_empty(), "{answer:?}");
        let job = troupe.engine().get_job(answer.job_id).await.unwrap();
        assert_eq!(job.status, troupe::job::JobStatus::Completed);
        troupe.shutdown().await.unwrap();
    });
    // Dropping the last handle stopped the runtime's own system thread and
    // let go of the store: it opens again.
    SledStore::open(SledConfig::new(dir.path().join("data"))).unwrap();
}

#[test]
fn a_bad_provider_config_is_a_typed_source_of_the_start_error() {
    use std::error::Error as _;
    use troupe::RuntimeError;
    use troupe::{ErrorKind, ProviderSetError};

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
