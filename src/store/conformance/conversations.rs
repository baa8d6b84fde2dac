//! Conversations: messages appended once per idempotency key, read back in
//! append order (all, or the last few oldest first), validation.

use std::collections::HashSet;

use super::support::refused;
use super::{ConformanceError, Context, Fixture, Harness};
use crate::store::prelude::*;
use crate::store::{NewMessage, Role, MAX_MESSAGE_BYTES, MAX_NAME_BYTES};

fn msg(conversation: &str, content: &str) -> NewMessage {
    NewMessage::new(conversation, Role::User, "u1", content)
}

/// Append assigns id and time; `recent` is the last `limit` oldest first,
/// `list_messages` all of them; conversations whose ids share a prefix do
/// not mix; all of it across a crash.
pub async fn messages_are_appended_and_read_in_order<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    for i in 0..10 {
        let role = if i % 2 == 0 {
            Role::User
        } else {
            Role::Assistant
        };
        let appended = f
            .store()
            .append(NewMessage::new("c1", role, "x", format!("m{i}")), None)
            .await
            .context("append")?;
        ensure!(
            appended.created
                && appended.message.conversation_id == "c1"
                && appended.message.role == role
                && appended.message.content == format!("m{i}"),
            "append answers the message as stored, got {appended:?}"
        );
    }
    f.store()
        .append(msg("c10", "other"), None)
        .await
        .context("append to c10")?;
    f.store()
        .append(msg("c", "other"), None)
        .await
        .context("append to c")?;
    let f = f.crash().await?;
    let store = f.store();
    let recent = store.recent("c1", 3).await.context("recent")?;
    ensure_eq!(
        recent
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>(),
        vec!["m7", "m8", "m9"],
        "the last three, oldest first"
    );
    ensure!(
        recent
            .windows(2)
            .all(|w| w[0].id < w[1].id && w[0].created_at <= w[1].created_at),
        "ids and times grow in append order"
    );
    let all = store.list_messages("c1").await.context("list")?;
    ensure_eq!(
        all.iter().map(|m| m.content.clone()).collect::<Vec<_>>(),
        (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>(),
        "every message, in append order"
    );
    ensure_eq!(
        store.recent("c1", 100).await.context("recent 100")?,
        all,
        "recent beyond the count is all"
    );
    ensure!(
        store.recent("c1", 0).await.context("recent 0")?.is_empty(),
        "recent 0 is nothing"
    );
    for (conversation, count) in [("c10", 1), ("c", 1), ("nobody", 0)] {
        ensure_eq!(
            store
                .list_messages(conversation)
                .await
                .context("list")?
                .len(),
            count,
            "messages of {conversation:?}"
        );
    }
    let shape = serde_json::to_value(&all[1]).context("message as JSON")?;
    for key in [
        "id",
        "conversationId",
        "role",
        "author",
        "content",
        "createdAt",
    ] {
        ensure!(shape.get(key).is_some(), "missing {key} in {shape}");
    }
    ensure_eq!(
        shape["role"],
        serde_json::json!("assistant"),
        "roles in lowercase"
    );
    Ok(())
}

/// With an idempotency key, the first append stores and any later one
/// (after a crash, or racing) answers that message with `created: false`.
pub async fn an_idempotency_key_appends_once<H: Harness>(h: &H) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let key = "job-7/step-3/call-1".to_owned();
    let first = f
        .store()
        .append(msg("c1", "hello"), Some(key.clone()))
        .await
        .context("append with a key")?;
    ensure!(first.created, "the first append stores");
    let again = f
        .store()
        .append(msg("c1", "hello again?"), Some(key.clone()))
        .await
        .context("append with the key again")?;
    ensure!(
        !again.created && again.message == first.message,
        "a replay answers the first message, got {again:?}"
    );
    let f = f.crash().await?;
    let again = f
        .store()
        .append(msg("c1", "hello"), Some(key))
        .await
        .context("append with the key after a crash")?;
    ensure!(
        !again.created && again.message == first.message,
        "a replay after a crash answers the first message, got {again:?}"
    );
    ensure_eq!(
        f.store().list_messages("c1").await.context("list")?,
        vec![first.message],
        "one message"
    );
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = f.shared();
        let message = msg("c2", &format!("try {i}"));
        tasks.push(tokio::spawn(async move {
            store.append(message, Some("race".into())).await
        }));
    }
    let mut created = 0;
    let mut ids = HashSet::new();
    for task in tasks {
        let r = task.await.context("join")?.context("append in a race")?;
        created += usize::from(r.created);
        ids.insert(r.message.id);
    }
    ensure_eq!(
        (created, ids.len()),
        (1, 1),
        "(created, distinct messages) of 16 racing replays"
    );
    ensure_eq!(
        f.store().list_messages("c2").await.context("list")?.len(),
        1,
        "one message stored"
    );
    Ok(())
}

/// Append refuses an empty or oversize conversation id or author and
/// oversize content, naming the field; a bad key is refused; reads refuse
/// an empty conversation id; empty content is fine.
pub async fn bad_messages_are_refused_naming_the_field<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let cases = [
        (msg("", "x"), "conversationId"),
        (msg(&"c".repeat(MAX_NAME_BYTES + 1), "x"), "conversationId"),
        (NewMessage::new("c1", Role::Tool, " ", "x"), "author"),
        (msg("c1", &"x".repeat(MAX_MESSAGE_BYTES + 1)), "content"),
    ];
    for (message, field) in cases {
        refused(
            store.append(message, None).await,
            field,
            &format!("append with a bad {field}"),
        )?;
    }
    refused(
        store.append(msg("c1", "x"), Some("k".repeat(2000))).await,
        "key",
        "append with an oversize key",
    )?;
    refused(
        store.append(msg("c1", "x"), Some(String::new())).await,
        "key",
        "append with an empty key",
    )?;
    refused(
        store.recent("", 5).await,
        "conversationId",
        "recent of an empty id",
    )?;
    refused(
        store.list_messages(" ").await,
        "conversationId",
        "list of an empty id",
    )?;
    ensure!(
        store.list_messages("c1").await.context("list")?.is_empty(),
        "nothing was stored"
    );
    let empty = store
        .append(NewMessage::new("c1", Role::Assistant, "sarah", ""), None)
        .await
        .context("append empty content")?;
    ensure!(empty.created, "empty content is allowed");
    Ok(())
}
