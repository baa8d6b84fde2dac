//! Conversations on a real sled store in temporary directories: append,
//! recent (oldest first), isolation, idempotency across reopen, bad input.

use std::collections::HashSet;
use std::sync::Arc;

use tempfile::TempDir;
use troupe::conversation::{ConversationStore, NewMessage, Role, MAX_MESSAGE_BYTES};
use troupe::sled::{SledConfig, SledStore};
use troupe::store::StoreError;

fn open(dir: &TempDir) -> SledStore {
    SledStore::open(SledConfig::new(dir.path())).unwrap()
}

fn msg(conversation: &str, content: &str) -> NewMessage {
    NewMessage::new(conversation, Role::User, "u1", content)
}

fn field_of(err: &StoreError) -> &'static str {
    match err {
        StoreError::InvalidInput { field, .. } => field,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[tokio::test]
async fn append_recent_and_list_in_order_across_reopen() {
    let dir = TempDir::new().unwrap();
    {
        let store = open(&dir);
        for i in 0..10 {
            let role = if i % 2 == 0 {
                Role::User
            } else {
                Role::Assistant
            };
            let appended = store
                .append(NewMessage::new("c1", role, "x", format!("m{i}")), None)
                .await
                .unwrap();
            assert!(appended.created);
            assert_eq!(appended.message.conversation_id, "c1");
            assert_eq!(appended.message.role, role);
        }
        // A conversation whose id extends the first must not mix with it.
        store.append(msg("c10", "other"), None).await.unwrap();
        store.append(msg("c", "other"), None).await.unwrap();
    }
    let store = open(&dir);
    let recent = store.recent("c1", 3).await.unwrap();
    let contents: Vec<_> = recent.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, vec!["m7", "m8", "m9"]);
    assert!(recent.windows(2).all(|w| w[0].id < w[1].id));
    assert!(recent
        .windows(2)
        .all(|w| w[0].created_at <= w[1].created_at));

    let all = store.list_messages("c1").await.unwrap();
    assert_eq!(all.len(), 10);
    let contents: Vec<_> = all.iter().map(|m| m.content.clone()).collect();
    assert_eq!(
        contents,
        (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    assert_eq!(store.recent("c1", 100).await.unwrap(), all);
    assert!(store.recent("c1", 0).await.unwrap().is_empty());
    assert_eq!(store.list_messages("c10").await.unwrap().len(), 1);
    assert_eq!(store.list_messages("c").await.unwrap().len(), 1);
    assert!(store.list_messages("nobody").await.unwrap().is_empty());

    let json = serde_json::to_value(&all[1]).unwrap();
    for key in [
        "id",
        "conversationId",
        "role",
        "author",
        "content",
        "createdAt",
    ] {
        assert!(json.get(key).is_some(), "missing {key} in {json}");
    }
    assert_eq!(json["role"], "assistant");
}

#[tokio::test]
async fn idempotency_key_makes_no_duplicate_across_reopen() {
    let dir = TempDir::new().unwrap();
    let key = "job-7/step-3/call-1".to_owned();
    let first = {
        let store = open(&dir);
        let first = store
            .append(msg("c1", "hello"), Some(key.clone()))
            .await
            .unwrap();
        assert!(first.created);
        let again = store
            .append(msg("c1", "hello again?"), Some(key.clone()))
            .await
            .unwrap();
        assert!(!again.created);
        assert_eq!(again.message, first.message);
        first.message
    };
    let store = Arc::new(open(&dir));
    let again = store
        .append(msg("c1", "hello"), Some(key.clone()))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.message, first);
    assert_eq!(store.list_messages("c1").await.unwrap(), vec![first]);

    // Concurrent replays of one step append one message.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(msg("c2", &format!("try {i}")), Some("race".into()))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = 0;
    let mut ids = HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        created += usize::from(r.created);
        ids.insert(r.message.id);
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
    assert_eq!(store.list_messages("c2").await.unwrap().len(), 1);
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir);
    let cases = [
        (msg("", "x"), "conversationId"),
        (msg(&"c".repeat(257), "x"), "conversationId"),
        (NewMessage::new("c1", Role::Tool, " ", "x"), "author"),
        (msg("c1", &"x".repeat(MAX_MESSAGE_BYTES + 1)), "content"),
    ];
    for (message, field) in cases {
        let err = store.append(message, None).await.unwrap_err();
        assert_eq!(field_of(&err), field, "{err}");
        assert!(err.to_string().contains(field), "{err}");
    }
    let err = store
        .append(msg("c1", "x"), Some("k".repeat(2000)))
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), "key");
    let err = store.recent("", 5).await.unwrap_err();
    assert_eq!(field_of(&err), "conversationId");
    assert!(store.list_messages("c1").await.unwrap().is_empty());
    // Empty content is allowed (an assistant turn that only called tools).
    let empty = store
        .append(NewMessage::new("c1", Role::Assistant, "sarah", ""), None)
        .await
        .unwrap();
    assert!(empty.created);
}
