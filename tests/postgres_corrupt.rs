//! A job record on PostgreSQL that does not decode (edited by hand, written
//! by something else) must not stop the cluster: a claim that meets it
//! claims the others and ends it `failed` (its record kept, the job named
//! in the error of whoever reads it), a rescue skips it the same way, and a
//! completion group it shares fails only its own transition. Skipped,
//! saying so, without `$TROUPE_TEST_DATABASE_URL`.

mod common;

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use troupe::job::{JobStatus, DEFAULT_MAX_ATTEMPTS};
use troupe::postgres::PostgresStore;
use troupe::store::prelude::*;
use troupe::store::{ClaimRequest, Outcome, StoreError};
use uuid::Uuid;

use common::cluster::{database_url, quick_node, schema_client, sleep_jobs};

/// A row whose `data` is no job, `status` as given, leased to `node`.
async fn corrupt_row(sql: &tokio_postgres::Client, status: &str, node: Option<Uuid>) -> Uuid {
    let id = Uuid::now_v7();
    sql.execute(
        "INSERT INTO jobs (id, worker, status, attempt, priority, run_at, updated_at, data, \
                           lease_node, lease_until) \
         VALUES ($1, 'sleep', $2, 1, 100, now() - interval '1 minute', now(), \
                 '{\"not\": \"a job\"}', $3, \
                 CASE WHEN $3::uuid IS NULL THEN NULL ELSE now() - interval '1 minute' END)",
        &[&id, &status, &node],
    )
    .await
    .unwrap();
    id
}

async fn status_of(sql: &tokio_postgres::Client, id: Uuid) -> String {
    sql.query_one("SELECT status FROM jobs WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_does_not_decode_blocks_nothing() {
    let Some(url) = database_url("a_record_that_does_not_decode_blocks_nothing") else {
        return;
    };
    let (_schema, config) = quick_node(&url, 4);
    let store = PostgresStore::connect(config.clone()).await.unwrap();
    let sql = schema_client(&config).await;

    // A claim: the corrupt row comes first in claim order (higher
    // priority), the good jobs are claimed all the same.
    let bad_queued = corrupt_row(&sql, "queued", None).await;
    let good = sleep_jobs(2, 1, DEFAULT_MAX_ATTEMPTS);
    store.insert_many(good.clone()).await.unwrap();
    assert!(
        store.next_wake(None).await.unwrap().is_some(),
        "the next wake-up reads past it"
    );
    let claimed = store
        .claim(&ClaimRequest::any(Utc::now(), 10))
        .await
        .unwrap();
    let mut ids: Vec<Uuid> = claimed.iter().map(|j| j.id).collect();
    ids.sort();
    assert_eq!(ids, good.iter().map(|j| j.id).collect::<Vec<_>>());
    assert_eq!(status_of(&sql, bad_queued).await, "failed");
    match store.get_job(bad_queued).await {
        Err(StoreError::CorruptJob { id, .. }) => assert_eq!(id, bad_queued.to_string()),
        other => panic!("reading it names it: {other:?}"),
    }

    // A completion group holding a transition of a corrupt running row:
    // only that one fails.
    let bad_running = corrupt_row(&sql, "running", Some(store.node_id())).await;
    let (a, b, c) = tokio::join!(
        store.complete(good[0].id, 1, json!("a")),
        store.complete(bad_running, 1, json!("x")),
        store.complete(good[1].id, 1, json!("b")),
    );
    assert!(matches!(a, Ok(Outcome::Applied(ref j)) if j.status == JobStatus::Completed));
    assert!(matches!(c, Ok(Outcome::Applied(ref j)) if j.status == JobStatus::Completed));
    match b {
        Err(StoreError::CorruptJob { id, .. }) => assert_eq!(id, bad_running.to_string()),
        other => panic!("the corrupt one fails alone: {other:?}"),
    }

    // A rescue (another node's expired lease) skips it and takes the rest.
    let lost = sleep_jobs(1, 1, DEFAULT_MAX_ATTEMPTS).remove(0);
    store.insert(lost.clone()).await.unwrap();
    let dead = Uuid::now_v7();
    let bad_leased = corrupt_row(&sql, "running", Some(dead)).await;
    let mut claimer = config.clone();
    claimer.node_id = Some(dead);
    let ghost = PostgresStore::connect(claimer).await.unwrap();
    let taken = ghost
        .claim(&ClaimRequest::any(Utc::now(), 10))
        .await
        .unwrap();
    assert_eq!(
        taken.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![lost.id]
    );
    drop(ghost);
    // The ghost is gone: its leases end, and the store's rescuer takes the
    // good job back, ending the corrupt one.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = store.get_job(lost.id).await.unwrap().unwrap();
        if job.status == JobStatus::Queued && status_of(&sql, bad_leased).await == "failed" {
            assert_eq!(job.attempt, 1);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not rescued: {:?}",
            job.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
