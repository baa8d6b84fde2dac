//! Memories on a real sled store in temporary directories: validation,
//! scopes, idempotency, forget, compaction (atomic, archived not lost,
//! across reopen) and recall ranking through the Memory actor.

use std::sync::Arc;

use chrono::{Duration, Utc};
use tempfile::TempDir;
use troupe::memory::actor::{Compact, Forget, ListMemories, MemoryActor, Recall, Remember};
use troupe::memory::{
    MemoryScope, MemoryStore, MemoryType, NewMemory, RecallWeights, MAX_CONTENT_BYTES,
};
use troupe::sled::{SledConfig, SledStore};
use troupe::store::StoreError;
use troupe_actors::{run_system, ActorRef, ChildSpec, SupervisorSpec};

fn open(dir: &TempDir) -> SledStore {
    SledStore::open(SledConfig::new(dir.path())).unwrap()
}

fn fact(scope: &MemoryScope, content: &str, importance: u8) -> NewMemory {
    NewMemory::new(scope, "fact", content, importance)
}

fn field_of(err: &StoreError) -> &'static str {
    match err {
        StoreError::InvalidInput { field, .. } => field,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let scope = MemoryScope::agent("sarah");
    let cases = [
        (fact(&scope, "x", 0), "importance"),
        (fact(&scope, "x", 11), "importance"),
        (fact(&scope, "", 5), "content"),
        (fact(&scope, "   \n", 5), "content"),
        (
            fact(&scope, &"a".repeat(MAX_CONTENT_BYTES + 1), 5),
            "content",
        ),
        (fact(&MemoryScope::agent(""), "x", 5), "agentId"),
        (fact(&MemoryScope::user("sarah", ""), "x", 5), "userId"),
        (NewMemory::new(&scope, "", "x", 5), "type"),
    ];
    for (memory, field) in cases {
        let err = store.remember(memory, None).await.unwrap_err();
        assert_eq!(field_of(&err), field, "{err}");
        assert!(err.to_string().contains(field), "{err}");
    }
    let err = store
        .remember(fact(&scope, "x", 5), Some(String::new()))
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), "key");
    // The largest accepted content and the bounds of importance are fine.
    for importance in [1, 10] {
        store
            .remember(
                fact(&scope, &"a".repeat(MAX_CONTENT_BYTES), importance),
                None,
            )
            .await
            .unwrap();
    }
    assert_eq!(store.list_memories(&scope, true).await.unwrap().len(), 2);
}

#[tokio::test]
async fn remember_get_list_forget_and_json_shape() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let scope = MemoryScope::user("sarah", "u1");
    let job = uuid::Uuid::now_v7();
    let first = store
        .remember(
            NewMemory::new(&scope, "preference", "likes dark mode", 7).with_source(job),
            None,
        )
        .await
        .unwrap();
    assert!(first.created);
    let m = first.memory;
    assert_eq!(m.kind, MemoryType::Preference);
    assert_eq!(m.importance, 7);
    assert_eq!(m.source, Some(job));
    assert!(!m.archived);
    assert_eq!(m.created_at, m.last_accessed_at);

    let json = serde_json::to_value(&m).unwrap();
    for key in [
        "id",
        "agentId",
        "userId",
        "type",
        "content",
        "importance",
        "createdAt",
        "lastAccessedAt",
        "source",
        "archived",
    ] {
        assert!(json.get(key).is_some(), "missing {key} in {json}");
    }
    assert_eq!(json["type"], "preference");
    let odd: NewMemory = serde_json::from_value(serde_json::json!({
        "agentId": "sarah", "type": "hunch", "content": "x", "importance": 3
    }))
    .unwrap();
    assert_eq!(odd.kind, MemoryType::Other("hunch".into()));
    assert_eq!(serde_json::to_value(&odd).unwrap()["type"], "hunch");

    let second = store
        .remember(fact(&scope, "uses vim", 3), None)
        .await
        .unwrap()
        .memory;
    assert_eq!(store.get_memory(m.id).await.unwrap().unwrap(), m);
    let listed = store.list_memories(&scope, false).await.unwrap();
    assert_eq!(listed, vec![m.clone(), second.clone()]);

    assert!(store.forget(m.id).await.unwrap());
    assert!(!store.forget(m.id).await.unwrap());
    assert_eq!(store.get_memory(m.id).await.unwrap(), None);
    assert_eq!(
        store.list_memories(&scope, true).await.unwrap(),
        vec![second.clone()]
    );

    drop(store);
    let store = open(&dir);
    assert_eq!(
        store.list_memories(&scope, true).await.unwrap(),
        vec![second]
    );
    assert_eq!(store.get_memory(m.id).await.unwrap(), None);
}

#[tokio::test]
async fn scopes_are_isolated_by_agent_and_user() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let scopes = [
        MemoryScope::agent("a"),
        MemoryScope::user("a", "u1"),
        MemoryScope::user("a", "u2"),
        MemoryScope::agent("ab"),
        MemoryScope::user("ab", "u1"),
        // Ids that would collide without length prefixes in the index keys.
        MemoryScope::agent("a\u{0}\u{1}"),
    ];
    for scope in &scopes {
        for i in 0..3 {
            store
                .remember(fact(scope, &format!("{scope} note {i}"), 5), None)
                .await
                .unwrap();
        }
    }
    for scope in &scopes {
        let listed = store.list_memories(scope, false).await.unwrap();
        assert_eq!(listed.len(), 3, "{scope}");
        assert!(listed.iter().all(|m| m.scope() == *scope), "{scope}");
        assert!(listed
            .iter()
            .all(|m| m.content.starts_with(&scope.to_string())));
    }
    assert!(store
        .list_memories(&MemoryScope::user("a", "u3"), true)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn idempotent_remember_survives_reopen() {
    let dir = TempDir::new().unwrap();
    let scope = MemoryScope::agent("sarah");
    let key = "job-1/step-2/call-3".to_owned();
    let first = {
        let store = open(&dir);
        let first = store
            .remember(fact(&scope, "the build uses cargo", 6), Some(key.clone()))
            .await
            .unwrap();
        assert!(first.created);
        let again = store
            .remember(fact(&scope, "something else", 2), Some(key.clone()))
            .await
            .unwrap();
        assert!(!again.created);
        assert_eq!(again.memory, first.memory);
        first.memory
    };
    let store = open(&dir);
    let again = store
        .remember(fact(&scope, "the build uses cargo", 6), Some(key.clone()))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.memory, first);
    assert_eq!(store.list_memories(&scope, true).await.unwrap().len(), 1);

    // Concurrent replays of one step store one memory.
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            let scope = scope.clone();
            tokio::spawn(async move {
                store
                    .remember(fact(&scope, &format!("race {i}"), 4), Some("race".into()))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        created += usize::from(r.created);
        ids.insert(r.memory.id);
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
    assert_eq!(store.list_memories(&scope, true).await.unwrap().len(), 2);

    // A forgotten memory's key stays spent and says so.
    assert!(store.forget(first.id).await.unwrap());
    let err = store
        .remember(fact(&scope, "the build uses cargo", 6), Some(key))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { what: "memory", id } if *id == first.id.to_string()),
        "{err:?}"
    );
}

#[tokio::test]
async fn touch_only_moves_forward_and_skips_unknown_ids() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let scope = MemoryScope::agent("a");
    let m = store
        .remember(fact(&scope, "x", 5), None)
        .await
        .unwrap()
        .memory;
    let later = m.last_accessed_at + Duration::hours(1);
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(store.touch(&[m.id, unknown], later).await.unwrap(), 1);
    assert_eq!(
        store.touch(&[m.id], m.last_accessed_at).await.unwrap(),
        0,
        "never backwards"
    );
    assert_eq!(
        store
            .get_memory(m.id)
            .await
            .unwrap()
            .unwrap()
            .last_accessed_at,
        later
    );
    assert_eq!(store.touch(&[], later).await.unwrap(), 0);
}

#[tokio::test]
async fn compaction_archives_originals_atomically_and_survives_reopen() {
    let dir = TempDir::new().unwrap();
    let scope = MemoryScope::user("sarah", "u1");
    let other = MemoryScope::user("sarah", "u2");
    let (originals, kept, summary_id) = {
        let store = open(&dir);
        let mut originals = Vec::new();
        for i in 0..3 {
            let m = store
                .remember(fact(&scope, &format!("detail {i}"), 4), None)
                .await
                .unwrap()
                .memory;
            originals.push(m.id);
        }
        let kept = store
            .remember(fact(&scope, "keep me", 9), None)
            .await
            .unwrap()
            .memory;
        let foreign = store
            .remember(fact(&other, "someone else", 5), None)
            .await
            .unwrap()
            .memory;

        // Refused compactions change nothing, even when part of them was fine.
        let summary = NewMemory::new(&scope, "summary", "details 0-2", 6);
        let err = store
            .compact(
                &scope,
                vec![originals[0], foreign.id],
                vec![summary.clone()],
            )
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "originals");
        assert!(err.to_string().contains(&foreign.id.to_string()), "{err}");
        let missing = uuid::Uuid::now_v7();
        let err = store
            .compact(&scope, vec![originals[0], missing], vec![summary.clone()])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::NotFound { id, .. } if *id == missing.to_string()),
            "{err:?}"
        );
        let err = store
            .compact(
                &scope,
                vec![originals[0]],
                vec![NewMemory::new(&other, "summary", "wrong scope", 6)],
            )
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "summaries");
        let err = store
            .compact(
                &scope,
                vec![originals[0]],
                vec![NewMemory::new(&scope, "summary", "x", 0)],
            )
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "summaries");
        assert!(err.to_string().contains("importance"), "{err}");
        let err = store
            .compact(&scope, vec![originals[0], originals[0]], vec![])
            .await
            .unwrap_err();
        assert_eq!(field_of(&err), "originals");
        let err = store.compact(&scope, vec![], vec![]).await.unwrap_err();
        assert_eq!(field_of(&err), "originals");
        assert_eq!(store.list_memories(&scope, false).await.unwrap().len(), 4);
        assert!(store
            .list_memories(&scope, true)
            .await
            .unwrap()
            .iter()
            .all(|m| !m.archived));

        let done = store
            .compact(&scope, originals.clone(), vec![summary])
            .await
            .unwrap();
        assert_eq!(done.summaries.len(), 1);
        let summary_id = done.summaries[0].id;
        assert_eq!(done.summaries[0].kind, MemoryType::Summary);
        assert_eq!(done.archived.len(), 3);
        assert!(done
            .archived
            .iter()
            .all(|m| m.archived && m.archived_into == Some(summary_id)));

        // Compacting an archived memory again is refused, naming it.
        let err = store
            .compact(&scope, vec![kept.id, originals[1]], vec![])
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&originals[1].to_string()), "{err}");
        assert!(!store.get_memory(kept.id).await.unwrap().unwrap().archived);
        (originals, kept, summary_id)
    };

    let store = open(&dir);
    let live: Vec<_> = store
        .list_memories(&scope, false)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(live, vec![kept.id, summary_id]);
    let all = store.list_memories(&scope, true).await.unwrap();
    assert_eq!(all.len(), 5);
    for id in &originals {
        let m = store.get_memory(*id).await.unwrap().unwrap();
        assert!(m.archived);
        assert_eq!(m.archived_into, Some(summary_id));
        assert!(all.iter().any(|a| a.id == *id));
    }
    assert_eq!(store.list_memories(&other, false).await.unwrap().len(), 1);
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
