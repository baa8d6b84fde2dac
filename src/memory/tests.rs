//! The Memory actor on a sled store: recall ranking, touching what it
//! returns, scopes, compaction through the actor, refused weights. What the
//! store itself promises about memories is the conformance suite's
//! (`crate::store::conformance::memories`).

use std::sync::Arc;

use crate::memory::actor::{Compact, Forget, ListMemories, MemoryActor, Recall, Remember};
use crate::memory::{MemoryScope, MemoryStore, NewMemory, RecallWeights};
use crate::sled::SledStore;
use chrono::{Duration, Utc};
use tempfile::TempDir;
use troupe_actors::{run_system, ActorRef, ChildSpec, SupervisorSpec};

use crate::test_support::{field_of, open};

fn fact(scope: &MemoryScope, content: &str, importance: u8) -> NewMemory {
    NewMemory::new(scope, "fact", content, importance)
}

fn start(store: SledStore) -> (troupe_actors::Tree, ActorRef<MemoryActor>) {
    let store: Arc<dyn MemoryStore> = Arc::new(store);
    let tree = SupervisorSpec::new("root")
        .child(ChildSpec::try_new("memory", move || {
            MemoryActor::new(store.clone(), RecallWeights::default())
        }))
        .start()
        .unwrap();
    let memory = tree.actor("memory").unwrap();
    (tree, memory)
}

#[test]
fn actor_recall_ranks_touches_and_respects_scope() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    run_system(async move {
        let (tree, memory) = start(store.clone());
        let u1 = MemoryScope::user("sarah", "u1");
        let u2 = MemoryScope::user("sarah", "u2");
        let remember = |scope: &MemoryScope, content: &str, importance: u8| Remember {
            memory: fact(scope, content, importance),
            idempotency_key: None,
        };
        let a = memory
            .send(remember(
                &u1,
                "the user prefers dark mode in the editor",
                10,
            ))
            .await
            .unwrap()
            .unwrap()
            .memory;
        let b = memory
            .send(remember(&u1, "dark mode dark mode", 1))
            .await
            .unwrap()
            .unwrap()
            .memory;
        let c = memory
            .send(remember(&u1, "lunch was pizza", 5))
            .await
            .unwrap()
            .unwrap()
            .memory;
        let secret = memory
            .send(remember(&u2, "dark mode is what u2 wants", 10))
            .await
            .unwrap()
            .unwrap()
            .memory;
        // Same last access for all, so recency ties and importance +
        // relevance decide: a (importance 1 + some relevance), b (relevance
        // 1), c (importance 0.44, no relevance).
        let same = Utc::now() + Duration::minutes(10);
        store.touch(&[a.id, b.id, c.id], same).await.unwrap();

        let ranked = memory
            .send(Recall {
                scope: u1.clone(),
                query: "Dark mode?".into(),
                limit: 10,
            })
            .await
            .unwrap()
            .unwrap();
        let order: Vec<_> = ranked.iter().map(|s| s.memory.id).collect();
        assert_eq!(order, vec![a.id, b.id, c.id]);
        assert!(ranked.iter().all(|s| s.score.is_finite()));
        assert!(!order.contains(&secret.id), "another user's memory leaked");

        // The returned memories are touched (times never go back).
        let before = Utc::now();
        let top = memory
            .send(Recall {
                scope: u2.clone(),
                query: "dark".into(),
                limit: 1,
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].memory.id, secret.id);
        let stored = store.get_memory(secret.id).await.unwrap().unwrap();
        assert!(stored.last_accessed_at >= before);
        assert_eq!(stored.last_accessed_at, top[0].memory.last_accessed_at);

        // Compact through the actor, then recall sees only the summary.
        let compacted = memory
            .send(Compact {
                scope: u1.clone(),
                originals: vec![a.id, b.id],
                summaries: vec![NewMemory::new(&u1, "summary", "likes dark mode", 8)],
            })
            .await
            .unwrap()
            .unwrap();
        let live = memory
            .send(ListMemories {
                scope: u1.clone(),
                include_archived: false,
            })
            .await
            .unwrap()
            .unwrap();
        let live: Vec<_> = live.into_iter().map(|m| m.id).collect();
        assert_eq!(live, vec![c.id, compacted.summaries[0].id]);
        let all = memory
            .send(ListMemories {
                scope: u1.clone(),
                include_archived: true,
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(all.len(), 4);
        let recalled = memory
            .send(Recall {
                scope: u1.clone(),
                query: "dark mode".into(),
                limit: 10,
            })
            .await
            .unwrap()
            .unwrap();
        assert!(recalled.iter().all(|s| !s.memory.archived));
        assert_eq!(recalled[0].memory.id, compacted.summaries[0].id);

        assert!(memory.send(Forget { id: c.id }).await.unwrap().unwrap());
        let err = memory
            .send(Remember {
                memory: fact(&u1, "x", 11),
                idempotency_key: None,
            })
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(field_of(&err), "importance");
        let none = memory
            .send(Recall {
                scope: u1,
                query: "dark".into(),
                limit: 0,
            })
            .await
            .unwrap()
            .unwrap();
        assert!(none.is_empty());
        tree.shutdown().await;
    });
}

#[test]
fn bad_recall_weights_are_refused_at_start() {
    let dir = TempDir::new().unwrap();
    let store: Arc<dyn MemoryStore> = Arc::new(open(&dir));
    let weights = RecallWeights {
        relevance: -1.0,
        ..RecallWeights::default()
    };
    let err = MemoryActor::new(store, weights).err().unwrap();
    assert!(err.to_string().contains("recallWeights.relevance"), "{err}");
}
