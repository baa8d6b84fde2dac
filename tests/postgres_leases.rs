//! Leases on PostgreSQL: a node's heartbeat renews only the jobs it holds.
//! A job left `running` under its id that it does not hold (a claim whose
//! answer never reached it) is not renewed, so another node rescues it,
//! while the job it does hold keeps running. Skipped, saying so, without
//! `$TROUPE_TEST_DATABASE_URL`.

mod common;

use std::time::Duration;

use chrono::Utc;
use troupe::job::{JobStatus, DEFAULT_MAX_ATTEMPTS};
use troupe::postgres::{PostgresStore, ScratchSchema};
use troupe::store::prelude::*;
use troupe::store::ClaimRequest;
use uuid::Uuid;

use common::cluster::{database_url, quick_node, schema_client, sleep_jobs, until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_renews_only_the_jobs_its_node_holds() {
    let Some(url) = database_url("a_heartbeat_renews_only_the_jobs_its_node_holds") else {
        return;
    };
    let (schema, config) = quick_node(&url, 4);
    let a = PostgresStore::connect(config.clone()).await.unwrap();
    let mut b_config = config.clone();
    b_config.node_id = Some(Uuid::now_v7());
    let b = PostgresStore::connect(b_config).await.unwrap();

    let mut jobs = sleep_jobs(2, 1, DEFAULT_MAX_ATTEMPTS);
    let lost = jobs.pop().unwrap();
    let held = jobs.pop().unwrap();
    a.insert(held.clone()).await.unwrap();
    let claimed = a.claim(&ClaimRequest::any(Utc::now(), 1)).await.unwrap();
    assert_eq!(
        claimed.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![held.id]
    );
    // A claim that committed under A's id but never reached A: made by
    // another handle with A's node id, dropped at once.
    a.insert(lost.clone()).await.unwrap();
    let mut ghost_config = config.clone();
    ghost_config.node_id = Some(a.node_id());
    let ghost = PostgresStore::connect(ghost_config).await.unwrap();
    let ghost_claim = ghost
        .claim(&ClaimRequest::any(Utc::now(), 1))
        .await
        .unwrap();
    assert_eq!(
        ghost_claim.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![lost.id]
    );
    drop(ghost);
    let lost_at = std::time::Instant::now();

    let rescued = until(
        "the lost job is rescued by B",
        Duration::from_secs(30),
        || async {
            match b.get_job(lost.id).await.unwrap() {
                Some(j) if j.status == JobStatus::Queued && j.attempt == 1 => Ok(j),
                other => Err(format!("{:?}", other.map(|j| (j.status, j.attempt)))),
            }
        },
    )
    .await;
    assert!(
        rescued.errors[0]
            .message
            .contains("stopped renewing the lease"),
        "{:?}",
        rescued.errors
    );
    assert!(
        lost_at.elapsed() >= Duration::from_millis(500),
        "rescued before its lease could end"
    );
    // Several leases later, the job A holds is still A's, still running.
    let job = a.get_job(held.id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempt), (JobStatus::Running, 1));
    let outcome = a
        .complete(held.id, 1, serde_json::json!("done"))
        .await
        .unwrap();
    assert!(outcome.applied().is_some(), "{outcome:?}");
    drop((a, b));
    drop(schema);
}

/// A running job with no lease at all (as `troupe migrate --from sled:`
/// copies one in) is no one's: a node rescues it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_without_a_lease_is_rescued() {
    let Some(url) = database_url("a_running_job_without_a_lease_is_rescued") else {
        return;
    };
    let schema = ScratchSchema::new(&url);
    let mut config = schema.config().clone();
    config.lease = Duration::from_secs(1);
    config.heartbeat = Duration::from_millis(200);
    config.pool_size = 4;
    let client = PostgresStore::connect(config.clone().as_node(false))
        .await
        .unwrap();
    let job = sleep_jobs(1, 1, DEFAULT_MAX_ATTEMPTS).remove(0);
    client.insert(job.clone()).await.unwrap();
    client
        .claim(&ClaimRequest::any(Utc::now(), 1))
        .await
        .unwrap();
    let (sql, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let updated = sql
        .execute(
            &format!(
                "UPDATE {}.jobs SET lease_node = NULL, lease_until = NULL WHERE id = $1",
                config.schema
            ),
            &[&job.id],
        )
        .await
        .unwrap();
    assert_eq!(updated, 1);
    assert_eq!(
        client.get_job(job.id).await.unwrap().map(|j| j.status),
        Some(JobStatus::Running)
    );
    config.node_id = Some(Uuid::now_v7());
    let node = PostgresStore::connect(config).await.unwrap();
    until("the node rescues it", Duration::from_secs(30), || async {
        match node.get_job(job.id).await.unwrap() {
            Some(j) if j.status == JobStatus::Queued => Ok(()),
            other => Err(format!("{:?}", other.map(|j| j.status))),
        }
    })
    .await;
    drop((client, node));
    drop(schema);
}

/// The heartbeat does not wait for the pool: with the node's only pooled
/// connection held by a write that waits on a lock, its held job's lease
/// is renewed all the same, beat after beat, past several leases, and no
/// other node rescues it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_pool_does_not_stop_the_heartbeat() {
    let Some(url) = database_url("a_busy_pool_does_not_stop_the_heartbeat") else {
        return;
    };
    let (schema, config) = quick_node(&url, 1);
    let a = PostgresStore::connect(config.clone()).await.unwrap();
    let mut b_config = config.clone();
    b_config.node_id = Some(Uuid::now_v7());
    let b = PostgresStore::connect(b_config).await.unwrap();
    let job = sleep_jobs(1, 1, DEFAULT_MAX_ATTEMPTS).remove(0);
    a.insert(job.clone()).await.unwrap();
    let claimed = a.claim(&ClaimRequest::any(Utc::now(), 1)).await.unwrap();
    assert_eq!(claimed.len(), 1);

    // The test holds the schedules table; A's write to it waits for the
    // lock, holding A's one pooled connection meanwhile.
    let mut sql = schema_client(&config).await;
    let tx = sql.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE schedules IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let schedule = troupe::Schedule::new(
        "held",
        "sleep",
        serde_json::json!({"ms": 1}),
        troupe::ScheduleSpec::every(Duration::from_secs(60)).unwrap(),
        Utc::now(),
    )
    .unwrap();
    let blocked = tokio::spawn(async move { a.put_schedule(schedule).await.map(|()| a) });
    // Three leases long, the job stays A's and running, and its lease is
    // renewed (it always ends in the future).
    let until_time = std::time::Instant::now() + Duration::from_secs(3);
    let mut last_lease = None;
    let mut renewals = 0;
    while std::time::Instant::now() < until_time {
        let row = tx
            .query_one(
                "SELECT status, coalesce(lease_until > now(), false), lease_until \
                 FROM jobs WHERE id = $1",
                &[&job.id],
            )
            .await
            .unwrap();
        let (status, live, lease): (String, bool, Option<chrono::DateTime<Utc>>) =
            (row.get(0), row.get(1), row.get(2));
        assert_eq!(status, "running", "never rescued");
        assert!(live, "the lease ran out: {lease:?}");
        if last_lease.is_some_and(|l| l < lease) {
            renewals += 1;
        }
        last_lease = Some(lease);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(renewals >= 5, "renewed {renewals} times in 3 s");
    assert!(
        !blocked.is_finished(),
        "the pooled connection was busy throughout"
    );
    tx.rollback().await.unwrap();
    let a = blocked.await.unwrap().unwrap();
    let job = b.get_job(job.id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempt), (JobStatus::Running, 1));
    drop((a, b));
    drop(schema);
}
