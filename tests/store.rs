//! What only the sled adapter promises, on real files in temporary
//! directories: the directory lock, corrupt records reported or
//! quarantined, `Durability::PowerLoss`, group commit and its window. The
//! behaviour every adapter shares is the conformance suite's
//! (`tests/conformance_sled.rs`).

mod common;

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;
use tempfile::TempDir;
use troupe::job::{EnqueueOptions, JobStatus};
use troupe::sled::{SledConfig, SledStore};
use troupe::store::prelude::*;
use troupe::store::{Durability, StoreError};

use common::{claim_all, enqueue, open};

#[tokio::test]
async fn a_held_data_dir_is_a_clear_error_naming_it() {
    let dir = TempDir::new().unwrap();
    let _held = open(&dir);
    let err = SledStore::open(SledConfig::new(dir.path())).err().unwrap();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    assert!(msg.contains("already in use"), "{msg}");
}

#[tokio::test]
async fn a_corrupt_record_is_reported_by_id_or_quarantined() {
    let dir = TempDir::new().unwrap();
    let (good, bad) = {
        let store = open(&dir);
        let good = enqueue(&store, "w", EnqueueOptions::default()).await;
        let bad = enqueue(&store, "w", EnqueueOptions::default()).await;
        (good, bad)
    };
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("jobs")
            .unwrap()
            .insert(bad.id.as_bytes(), &b"{not json"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let err = common::open_after_raw_sled(SledConfig::new(dir.path()))
        .err()
        .unwrap();
    assert!(
        matches!(&err, StoreError::CorruptJob { id, .. } if *id == bad.id.to_string()),
        "{err:?}"
    );
    assert!(err.to_string().contains(&bad.id.to_string()));

    let mut config = SledConfig::new(dir.path());
    config.quarantine_corrupt = true;
    let store = common::open_after_raw_sled(config).unwrap();
    assert!(store.get_job(bad.id).await.unwrap().is_none());
    assert_eq!(store.get_job(good.id).await.unwrap().unwrap().id, good.id);
    drop(store);
    // Quarantined for good: a plain open works again.
    let store = open(&dir);
    assert_eq!(store.counts().await.unwrap().status(JobStatus::Queued), 1);
}

#[tokio::test]
async fn power_loss_durability_works_the_same() {
    let dir = TempDir::new().unwrap();
    let store =
        SledStore::open(SledConfig::new(dir.path()).durability(Durability::PowerLoss)).unwrap();
    let j = enqueue(&store, "w", EnqueueOptions::default()).await;
    claim_all(&store, Utc::now()).await;
    store.complete(j.id, 1, json!(1)).await.unwrap();
    assert!(store.commit_stats().flushes >= 3);
    drop(store);
    let store = open(&dir);
    assert_eq!(
        store.get_job(j.id).await.unwrap().unwrap().status,
        JobStatus::Completed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_shares_flushes_between_concurrent_writers() {
    let dir = TempDir::new().unwrap();
    let store = Arc::new(open(&dir));
    let before = store.commit_stats();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                enqueue(&*store, "w", EnqueueOptions::default()).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let after = store.commit_stats();
    assert_eq!(after.writers - before.writers, 320);
    assert!(after.flushes - before.flushes <= 320);
    assert_eq!(store.counts().await.unwrap().status(JobStatus::Queued), 320);
}

/// Under concurrent load the commit window gathers writers into shared
/// flushes: 8 writers each waiting for its own write, with a long window,
/// share nearly every flush among all 8.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_commit_window_gathers_concurrent_writers_into_one_flush() {
    let dir = TempDir::new().unwrap();
    let mut config = SledConfig::new(dir.path());
    config.commit_window = std::time::Duration::from_millis(30);
    let store = Arc::new(SledStore::open(config).unwrap());
    let before = store.commit_stats();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                enqueue(&*store, "w", EnqueueOptions::default()).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let after = store.commit_stats();
    let (writers, flushes) = (
        after.writers - before.writers,
        after.flushes - before.flushes,
    );
    assert_eq!(writers, 80);
    // Without the window each flush would start as soon as one writer
    // waits; with it, a flush serves about all 8.
    assert!(
        flushes <= 20,
        "{flushes} flushes for {writers} writers: the window did not gather them"
    );
}

/// A window too long to add to a clock reading (a bad setting) does not
/// hang concurrent writers: it means no window.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unrepresentable_commit_window_does_not_hang_writers() {
    let dir = TempDir::new().unwrap();
    let mut config = SledConfig::new(dir.path());
    config.commit_window = std::time::Duration::MAX;
    let store = Arc::new(SledStore::open(config).unwrap());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                enqueue(&*store, "w", EnqueueOptions::default()).await;
            }
        }));
    }
    let all = async {
        for t in tasks {
            t.await.unwrap();
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), all)
        .await
        .expect("writers hung on an unrepresentable commit window");
    assert_eq!(store.counts().await.unwrap().status(JobStatus::Queued), 40);
}

/// A lone writer does not wait for the window: sequential writes with an
/// hour-long window still finish (each flush served one writer, so the next
/// one starts at once).
#[tokio::test]
async fn a_lone_writer_is_flushed_at_once_whatever_the_window() {
    let dir = TempDir::new().unwrap();
    let mut config = SledConfig::new(dir.path());
    config.commit_window = std::time::Duration::from_secs(3600);
    let store = SledStore::open(config).unwrap();
    let writes = async {
        for _ in 0..20 {
            enqueue(&store, "w", EnqueueOptions::default()).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), writes)
        .await
        .expect("sequential writes were held by the commit window");
    assert_eq!(store.counts().await.unwrap().status(JobStatus::Queued), 20);
}

/// sled and the in-memory store know exactly which scopes hold memories,
/// so an agent with none skips recall: none before, yes after remembering
/// (archived ones count), none again once forgotten, and other scopes stay
/// empty.
#[tokio::test]
async fn embedded_stores_know_which_scopes_hold_memories() {
    use troupe::store::{MemoryScope, MemoryType, NewMemory};
    let dir = TempDir::new().unwrap();
    let sled: Arc<dyn Store> = Arc::new(open(&dir));
    let memory: Arc<dyn Store> = Arc::new(troupe::in_memory::InMemoryStore::new());
    for store in [sled, memory] {
        let scope = MemoryScope::user("sarah", "u1");
        let others = [MemoryScope::agent("sarah"), MemoryScope::user("sara", "u1")];
        assert!(!store.may_hold_memories(&scope).await.unwrap());
        let kept = store
            .remember(
                NewMemory::new(&scope, MemoryType::Fact, "likes tea", 5),
                None,
            )
            .await
            .unwrap();
        assert!(store.may_hold_memories(&scope).await.unwrap());
        for other in &others {
            assert!(!store.may_hold_memories(other).await.unwrap(), "{other}");
        }
        store.forget(kept.memory.id).await.unwrap();
        assert!(!store.may_hold_memories(&scope).await.unwrap());
        let bad = MemoryScope::agent("");
        assert!(store.may_hold_memories(&bad).await.is_err());
    }
}
