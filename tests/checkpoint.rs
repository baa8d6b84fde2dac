//! Agent step checkpoints and the idempotency registry on a real sled
//! store in temporary directories, across reopen.

use std::sync::Arc;

use serde_json::{json, Value};
use tempfile::TempDir;
use troupe::sled::{SledConfig, SledStore};
use troupe::store::StoreError;
use troupe::store::{Claim, IdempotencyStore, StepStore, MAX_KEY_VALUE_BYTES, MAX_STEP_BYTES};
use uuid::Uuid;

fn open(dir: &TempDir) -> SledStore {
    SledStore::open(SledConfig::new(dir.path())).unwrap()
}

fn field_of(err: &StoreError) -> &'static str {
    match err {
        StoreError::InvalidInput { field, .. } => field,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[tokio::test]
async fn steps_save_load_replace_and_clear_across_reopen() {
    let dir = TempDir::new().unwrap();
    let job = Uuid::now_v7();
    let other = Uuid::now_v7();
    {
        let store = open(&dir);
        assert!(store.load_steps(job).await.unwrap().is_empty());
        // More than 256 steps: order must be numeric, not by the low byte.
        for i in 0..300u32 {
            store
                .save_step(job, i, json!({"step": i, "kind": "model"}))
                .await
                .unwrap();
        }
        store
            .save_step(other, 0, json!({"other": true}))
            .await
            .unwrap();
        // Replacing an existing step is allowed.
        store
            .save_step(job, 1, json!({"step": 1, "kind": "tool"}))
            .await
            .unwrap();
    }
    let store = open(&dir);
    let steps = store.load_steps(job).await.unwrap();
    assert_eq!(steps.len(), 300);
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["step"], json!(i));
    }
    assert_eq!(steps[1]["kind"], "tool");
    assert_eq!(
        store.load_steps(other).await.unwrap(),
        vec![json!({"other": true})]
    );

    assert_eq!(store.clear_steps(job).await.unwrap(), 300);
    assert_eq!(store.clear_steps(job).await.unwrap(), 0);
    drop(store);
    let store = open(&dir);
    assert!(store.load_steps(job).await.unwrap().is_empty());
    assert_eq!(store.load_steps(other).await.unwrap().len(), 1);
    // After a clear the job starts at step 0 again.
    store.save_step(job, 0, json!("again")).await.unwrap();
    assert_eq!(store.load_steps(job).await.unwrap(), vec![json!("again")]);
}

#[tokio::test]
async fn bad_steps_are_refused_naming_the_field() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let job = Uuid::now_v7();
    let err = store.save_step(job, 1, json!({})).await.unwrap_err();
    assert_eq!(field_of(&err), "stepIndex");
    assert!(err.to_string().contains(&job.to_string()), "{err}");
    store.save_step(job, 0, json!({})).await.unwrap();
    let err = store.save_step(job, 5, json!({})).await.unwrap_err();
    assert_eq!(field_of(&err), "stepIndex");
    let huge = Value::String("x".repeat(MAX_STEP_BYTES));
    let err = store.save_step(job, 1, huge).await.unwrap_err();
    assert_eq!(field_of(&err), "record");
    assert_eq!(store.load_steps(job).await.unwrap(), vec![json!({})]);
    // Bytes that are not one JSON value are refused, naming the step.
    for bad in [&b"{\"kind\":"[..], b"not json", b"{} {}", b""] {
        let err = store
            .save_step_json(job, 1, bad.to_vec())
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "record");
        assert!(err.to_string().contains("not one JSON value"), "{err}");
    }
    store
        .save_step_json(job, 1, br#"{"kind":"tools"}"#.to_vec())
        .await
        .unwrap();
    assert_eq!(
        store.load_steps(job).await.unwrap(),
        vec![json!({}), json!({"kind": "tools"})]
    );
}

#[tokio::test]
async fn idempotency_keys_claim_once_across_reopen() {
    let dir = TempDir::new().unwrap();
    let key = "job-1/step-4/call-2";
    let job_id = Uuid::now_v7().to_string();
    {
        let store = open(&dir);
        assert_eq!(store.get_key(key).await.unwrap(), None);
        assert_eq!(
            store
                .claim_key(key, json!({"jobId": job_id}))
                .await
                .unwrap(),
            Claim::Claimed
        );
        assert_eq!(
            store
                .claim_key(key, json!({"jobId": "other"}))
                .await
                .unwrap(),
            Claim::Existing(json!({"jobId": job_id}))
        );
    }
    let store = Arc::new(open(&dir));
    assert_eq!(
        store
            .claim_key(key, json!({"jobId": "late"}))
            .await
            .unwrap(),
        Claim::Existing(json!({"jobId": job_id}))
    );
    assert_eq!(
        store.get_key(key).await.unwrap(),
        Some(json!({"jobId": job_id}))
    );

    // Many concurrent claimers: exactly one wins, all see its value.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { (i, store.claim_key("race", json!(i)).await.unwrap()) })
        })
        .collect();
    let mut winners = Vec::new();
    let mut seen = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (i, Claim::Claimed) => winners.push(json!(i)),
            (_, Claim::Existing(v)) => seen.push(v),
        }
    }
    assert_eq!(winners.len(), 1);
    assert!(seen.iter().all(|v| *v == winners[0]));
    assert_eq!(
        store.get_key("race").await.unwrap(),
        Some(winners[0].clone())
    );
}

#[tokio::test]
async fn bad_keys_are_refused_naming_the_field() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let err = store.claim_key("", json!(1)).await.unwrap_err();
    assert_eq!(field_of(&err), "key");
    let err = store
        .claim_key(&"k".repeat(1025), json!(1))
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), "key");
    let err = store
        .claim_key("k", Value::String("v".repeat(MAX_KEY_VALUE_BYTES)))
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), "value");
    assert_eq!(store.get_key("k").await.unwrap(), None);
    let err = store.get_key("").await.unwrap_err();
    assert_eq!(field_of(&err), "key");
}

/// Retention drops a pruned job's idempotency keys (and its steps) with it,
/// so the registry of a long-running daemon does not grow without end; keys
/// of jobs still kept, and keys that name no job, stay.
#[tokio::test]
async fn pruning_a_job_drops_its_idempotency_keys() {
    use chrono::Utc;
    use troupe::job::{EnqueueOptions, Job, JobCtx};
    use troupe::store::prelude::*;
    use troupe::store::{ClaimRequest, Retention};

    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let new_job = || {
        Job::new(
            "w",
            json!({}),
            JobCtx::default(),
            &EnqueueOptions::default(),
            Utc::now(),
        )
        .unwrap()
    };
    let ended = JobStore::insert(&store, new_job())
        .await
        .unwrap()
        .into_job();
    let kept = JobStore::insert(&store, new_job())
        .await
        .unwrap()
        .into_job();
    let claimed = JobStore::claim(&store, &ClaimRequest::any(Utc::now(), 1))
        .await
        .unwrap();
    assert_eq!(claimed[0].id, ended.id);
    JobStore::complete(&store, ended.id, 1, json!("done"))
        .await
        .unwrap();
    let ended_key = format!("create_task:tool:{}:0:call_1", ended.id);
    let ended_done = format!("{ended_key}#done");
    let kept_key = format!("scheduler:tool:{}:0:call_1", kept.id);
    for key in [
        &ended_key,
        &ended_done,
        &kept_key,
        &"no job here".to_string(),
    ] {
        assert_eq!(
            store.claim_key(key, json!({"k": key})).await.unwrap(),
            Claim::Claimed
        );
    }
    store
        .save_step(ended.id, 0, json!({"kind": "tools"}))
        .await
        .unwrap();

    let retention = Retention {
        max_age: None,
        max_count: Some(0),
    };
    assert_eq!(
        JobStore::prune(&store, &retention, Utc::now())
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.get_key(&ended_key).await.unwrap(), None);
    assert_eq!(store.get_key(&ended_done).await.unwrap(), None);
    assert!(store.load_steps(ended.id).await.unwrap().is_empty());
    assert!(store.get_key(&kept_key).await.unwrap().is_some());
    assert!(store.get_key("no job here").await.unwrap().is_some());
    // Durable: the same after reopening.
    drop(store);
    let store = open(&dir);
    assert_eq!(store.get_key(&ended_key).await.unwrap(), None);
    assert!(store.get_key(&kept_key).await.unwrap().is_some());
}
