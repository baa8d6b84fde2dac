//! How the sled store buffers and batches the call records the usage
//! meter writes: a recorded call reaches the disk, and records of earlier
//! versions are read and pruned. Usage and cost through the provider
//! actors are the crate's own tests (`src/provider/tests/usage.rs`); what
//! every usage store promises is the conformance suite's
//! (`troupe::store::conformance::usage`).

mod common;

use std::time::Duration;

use troupe::sled::SledConfig;
use troupe::store::{UsageRecord, UsageScope, UsageStore};
use troupe_actors::run_system;

use common::open;

/// A call made at `at`, with a v7 id of that time (as the meter makes them).
fn call_at(at: chrono::DateTime<chrono::Utc>) -> UsageRecord {
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        at.timestamp() as u64,
        at.timestamp_subsec_nanos(),
    );
    UsageRecord {
        id: uuid::Uuid::new_v7(ts),
        at,
        provider: "openai".into(),
        model: "gpt-4.1-nano".into(),
        agent: Some("sarah".into()),
        job: None,
        input_tokens: 10,
        output_tokens: 5,
        cached_input_tokens: 0,
        latency_ms: 3,
        cost_nanos: 7,
        priced: true,
    }
}

/// Recording only buffers the call; the store's committer writes it. With
/// no read and no durable write after it, the record still reaches the
/// disk: the store's last flush (on drop) writes what is buffered.
#[test]
fn a_recorded_call_reaches_the_disk_without_a_read_or_a_durable_write() {
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    {
        let sled = open(dir.path());
        run_system(async {
            sled.record(&call_at(now)).await.unwrap();
            sled.record(&call_at(now)).await.unwrap();
        });
    }
    let sled = open(dir.path());
    run_system(async move {
        let day = now.date_naive();
        let totals = sled
            .totals(&UsageScope::Agent("sarah".into()), day)
            .await
            .unwrap();
        assert_eq!(totals.calls, 2);
        assert_eq!(totals.input_tokens, 20);
        assert_eq!(sled.calls(day).await.unwrap().len(), 2);
    });
}

/// Calls are written a batch per record; a call stored alone, as earlier
/// versions did, is still read and pruned beside the batches.
#[test]
fn calls_stored_one_per_record_by_earlier_versions_are_read_and_pruned() {
    use troupe::store::prelude::*;
    use troupe::store::Retention;
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    let old = now - chrono::Duration::hours(2);
    let legacy = call_at(old);
    {
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("usage").unwrap();
        let mut key = format!("c/{}/", old.format("%Y-%m-%d")).into_bytes();
        key.extend_from_slice(legacy.id.as_bytes());
        tree.insert(key, serde_json::to_vec(&legacy).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    let sled = common::open_after_raw_sled(SledConfig::new(dir.path())).unwrap();
    run_system(async move {
        let young = call_at(now);
        sled.record(&young).await.unwrap();
        sled.record(&call_at(now)).await.unwrap();
        let mut ids = Vec::new();
        for day in [old.date_naive(), now.date_naive()] {
            for call in sled.calls(day).await.unwrap() {
                if !ids.contains(&call.id) {
                    ids.push(call.id);
                }
            }
        }
        assert_eq!(ids.len(), 3, "the old single record and the new batch");
        assert!(ids.contains(&legacy.id));
        let retention = Retention {
            max_age: Some(Duration::from_secs(3600)),
            max_count: None,
        };
        JobStore::prune(&sled, &retention, now).await.unwrap();
        let left = sled.calls(now.date_naive()).await.unwrap();
        assert_eq!(left.len(), 2, "the young batch stays whole: {left:?}");
        assert!(!left.iter().any(|c| c.id == legacy.id));
        assert!(sled
            .calls(old.date_naive())
            .await
            .unwrap()
            .iter()
            .all(|c| c.id != legacy.id));
    });
}
