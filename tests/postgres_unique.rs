//! Unique keys on PostgreSQL under a race: an insert whose key's holder
//! ends between the insert and the look for the holder takes the key (the
//! job is inserted after all), never "a job with this id is already
//! stored". Skipped, saying so, without `$TROUPE_TEST_DATABASE_URL`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use troupe::job::{EnqueueOptions, Job, JobCtx};
use troupe::postgres::PostgresStore;
use troupe::store::prelude::*;
use troupe::store::{ClaimRequest, InsertOutcome};

use common::cluster::{database_url, quick_node};

/// Four tasks insert jobs under one unique key while another ends the
/// key's holder as fast as it can: every insert answers `Inserted` or
/// `Existing`, and the key changes hands many times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_freed_during_an_insert_is_taken_not_refused() {
    let Some(url) = database_url("a_key_freed_during_an_insert_is_taken_not_refused") else {
        return;
    };
    let (schema, mut config) = quick_node(&url, 8);
    config.lease = Duration::from_secs(30);
    let store = Arc::new(PostgresStore::connect(config).await.unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let ender = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut ended = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let claimed = store
                    .claim(&ClaimRequest::any(Utc::now(), 10))
                    .await
                    .unwrap();
                for job in claimed {
                    store
                        .complete(job.id, job.attempt, json!(null))
                        .await
                        .unwrap();
                    ended += 1;
                }
                tokio::task::yield_now().await;
            }
            ended
        })
    };
    let options = EnqueueOptions {
        unique_key: Some("the-key".into()),
        ..EnqueueOptions::default()
    };
    let mut inserters = Vec::new();
    for _ in 0..4 {
        let (store, options) = (store.clone(), options.clone());
        inserters.push(tokio::spawn(async move {
            let (mut inserted, mut existing) = (0u64, 0u64);
            for _ in 0..150 {
                let job =
                    Job::new("echo", json!({}), JobCtx::default(), &options, Utc::now()).unwrap();
                match store.insert(job).await {
                    Ok(InsertOutcome::Inserted(_)) => inserted += 1,
                    Ok(InsertOutcome::Existing(_)) => existing += 1,
                    Err(e) => panic!("an insert under a contested key failed: {e}"),
                }
            }
            (inserted, existing)
        }));
    }
    let (mut inserted, mut existing) = (0, 0);
    for task in inserters {
        let (i, e) = task.await.unwrap();
        inserted += i;
        existing += e;
    }
    stop.store(true, Ordering::SeqCst);
    let ended = ender.await.unwrap();
    assert_eq!(inserted + existing, 600);
    assert!(inserted >= 10, "the key changed hands {inserted} times");
    assert!(ended + 1 >= inserted, "{ended} ended, {inserted} inserted");
    drop(store);
    drop(schema);
}
