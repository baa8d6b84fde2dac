//! Steps on PostgreSQL are fenced by the job's lease: a node that does not
//! hold the lease of a running job cannot save its steps (it may have lost
//! the job to another node), and its refused save writes nothing. Skipped,
//! saying so, when `$TROUPE_TEST_DATABASE_URL` is not set.

use chrono::Utc;
use serde_json::json;
use troupe::job::{EnqueueOptions, Job, JobCtx};
use troupe::postgres::{PostgresStore, ScratchSchema, TEST_DATABASE_URL};
use troupe::store::prelude::*;
use troupe::store::{ClaimRequest, StoreError};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_lease_cannot_save_steps() {
    let Some(url) = std::env::var(TEST_DATABASE_URL)
        .ok()
        .filter(|url| !url.trim().is_empty())
    else {
        eprintln!("skipped: {TEST_DATABASE_URL} is not set (no PostgreSQL to test against)");
        return;
    };
    let schema = ScratchSchema::new(&url);
    let owner = PostgresStore::connect(schema.config().clone())
        .await
        .expect("connect the owner");
    let job = Job::new(
        "w",
        json!({}),
        JobCtx::default(),
        &EnqueueOptions::default(),
        Utc::now(),
    )
    .expect("a new job");
    let id = job.id;
    owner.insert(job).await.expect("insert");
    let claimed = owner
        .claim(&ClaimRequest::any(Utc::now(), 1))
        .await
        .expect("claim");
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id]);
    owner
        .save_step(id, 0, json!({"by": "owner"}))
        .await
        .expect("the lease holder saves a step");

    let mut config = schema.config().clone();
    config.node_id = Some(Uuid::now_v7());
    let other = PostgresStore::connect(config)
        .await
        .expect("connect another node");
    assert_ne!(other.node_id(), owner.node_id());
    for (index, what) in [(1, "a new step"), (0, "a replacement")] {
        match other.save_step(id, index, json!({"by": "other"})).await {
            Err(StoreError::Fenced { id: fenced }) => assert_eq!(fenced, id),
            got => panic!("{what} from a node without the lease: expected Fenced, got {got:?}"),
        }
    }
    assert_eq!(
        other.load_steps(id).await.expect("load"),
        vec![json!({"by": "owner"})],
        "only the lease holder's step is stored"
    );
    // A job id without a row is not fenced (the port takes any id).
    let bare = Uuid::now_v7();
    other
        .save_step(bare, 0, json!("free"))
        .await
        .expect("a step of an id without a job row");

    drop(other);
    drop(owner);
    drop(schema);
}
