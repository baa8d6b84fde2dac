//! Memories: validation, scopes, remembering once per idempotency key,
//! forgetting, touching (never backwards), and compaction (originals
//! archived with `archivedInto`, summaries stored, all or nothing).

use std::collections::HashSet;

use chrono::Duration;
use serde_json::json;

use super::support::refused;
use super::{ConformanceError, Context, Fixture, Harness};
use crate::store::prelude::*;
use crate::store::{Memory, MemoryScope, MemoryType, NewMemory, StoreError, MAX_CONTENT_BYTES};

fn fact(scope: &MemoryScope, content: &str, importance: u8) -> NewMemory {
    NewMemory::new(scope, "fact", content, importance)
}

/// `remember` refuses what a prompt cannot use or an index cannot hold,
/// naming the camelCase field; the limits themselves are accepted.
pub async fn bad_memories_are_refused_naming_the_field<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
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
        (
            fact(&MemoryScope::agent("a".repeat(257)), "x", 5),
            "agentId",
        ),
        (fact(&MemoryScope::user("sarah", ""), "x", 5), "userId"),
        (NewMemory::new(&scope, "", "x", 5), "type"),
    ];
    for (memory, field) in cases {
        refused(
            store.remember(memory, None).await,
            field,
            &format!("remember with a bad {field}"),
        )?;
    }
    refused(
        store
            .remember(fact(&scope, "x", 5), Some(String::new()))
            .await,
        "key",
        "remember with an empty idempotency key",
    )?;
    refused(
        store.list_memories(&MemoryScope::agent(" "), false).await,
        "agentId",
        "list an empty agent's memories",
    )?;
    for importance in [1, 10] {
        store
            .remember(
                fact(&scope, &"a".repeat(MAX_CONTENT_BYTES), importance),
                None,
            )
            .await
            .context("remember at the limits")?;
    }
    ensure_eq!(
        store
            .list_memories(&scope, true)
            .await
            .context("list")?
            .len(),
        2,
        "only the memories at the limits are stored"
    );
    Ok(())
}

/// Remember assigns id and times and answers the memory as stored (the
/// seed's JSON shape); get answers it; list is oldest first; forget removes
/// it for good and says whether it existed; all of it across a crash.
pub async fn memories_are_remembered_listed_and_forgotten<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let scope = MemoryScope::user("sarah", "u1");
    let job = uuid::Uuid::now_v7();
    let first = store
        .remember(
            NewMemory::new(&scope, "preference", "likes dark mode", 7).with_source(job),
            None,
        )
        .await
        .context("remember")?;
    ensure!(first.created, "a memory without a key is created");
    let m = first.memory;
    ensure_eq!(
        (
            m.kind.clone(),
            m.importance,
            m.source,
            m.archived,
            m.archived_into
        ),
        (MemoryType::Preference, 7, Some(job), false, None),
        "(type, importance, source, archived, archivedInto)"
    );
    ensure_eq!(
        m.created_at,
        m.last_accessed_at,
        "a new memory was last accessed when it was made"
    );
    let shape = serde_json::to_value(&m).context("memory as JSON")?;
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
        ensure!(shape.get(key).is_some(), "missing {key} in {shape}");
    }
    let odd = store
        .remember(
            NewMemory::new(&scope, MemoryType::Other("hunch".into()), "odd", 3),
            None,
        )
        .await
        .context("remember a type of one's own")?
        .memory;
    ensure_eq!(
        serde_json::to_value(&odd).context("JSON")?["type"],
        json!("hunch"),
        "any type name is kept verbatim"
    );
    let second = store
        .remember(fact(&scope, "uses vim", 3), None)
        .await
        .context("remember")?
        .memory;
    ensure_eq!(
        store.get_memory(m.id).await.context("get")?,
        Some(m.clone()),
        "get answers the memory as remembered"
    );
    ensure_eq!(
        store.list_memories(&scope, false).await.context("list")?,
        vec![m.clone(), odd.clone(), second.clone()],
        "oldest first"
    );
    ensure!(
        store.forget(m.id).await.context("forget")?,
        "forget says the memory existed"
    );
    ensure!(
        !store.forget(m.id).await.context("forget again")?,
        "forgetting again says it did not"
    );
    ensure_eq!(
        store.get_memory(m.id).await.context("get")?,
        None,
        "a forgotten memory"
    );
    let f = f.crash().await?;
    ensure_eq!(
        f.store()
            .list_memories(&scope, true)
            .await
            .context("list")?,
        vec![odd, second],
        "after a crash"
    );
    ensure_eq!(
        f.store().get_memory(m.id).await.context("get")?,
        None,
        "forgotten for good"
    );
    Ok(())
}

/// Each scope lists only its own memories: the agent's, each user's,
/// agents whose ids share a prefix, ids with control bytes.
pub async fn scopes_are_isolated_by_agent_and_user<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let scopes = [
        MemoryScope::agent("a"),
        MemoryScope::user("a", "u1"),
        MemoryScope::user("a", "u2"),
        MemoryScope::agent("ab"),
        MemoryScope::user("ab", "u1"),
        MemoryScope::agent("a\u{0}\u{1}"),
    ];
    for scope in &scopes {
        for i in 0..3 {
            store
                .remember(fact(scope, &format!("{scope} note {i}"), 5), None)
                .await
                .context("remember")?;
        }
    }
    for scope in &scopes {
        let listed = store.list_memories(scope, false).await.context("list")?;
        ensure_eq!(listed.len(), 3, "memories of {scope}");
        // A scope with memories is never said to have none (recall would
        // skip them).
        ensure!(
            store.may_hold_memories(scope).await.context("may hold")?,
            "{scope} holds memories"
        );
        ensure!(
            listed
                .iter()
                .all(|m| m.scope() == *scope && m.content.starts_with(&scope.to_string())),
            "{scope} lists only its own memories, got {listed:?}"
        );
    }
    ensure!(
        store
            .list_memories(&MemoryScope::user("a", "u3"), true)
            .await
            .context("list")?
            .is_empty(),
        "a scope without memories"
    );
    Ok(())
}

/// With an idempotency key, the first `remember` stores and any later one
/// (after a crash, or racing) answers that memory with `created: false`,
/// whatever its arguments; a forgotten memory's key stays spent.
pub async fn an_idempotency_key_remembers_once<H: Harness>(h: &H) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let scope = MemoryScope::agent("sarah");
    let key = "job-1/step-2/call-3".to_owned();
    let first = f
        .store()
        .remember(fact(&scope, "the build uses cargo", 6), Some(key.clone()))
        .await
        .context("remember with a key")?;
    ensure!(first.created, "the first call stores");
    let again = f
        .store()
        .remember(fact(&scope, "something else", 2), Some(key.clone()))
        .await
        .context("remember with the key again")?;
    ensure!(
        !again.created && again.memory == first.memory,
        "a replay answers the first memory, got {again:?}"
    );
    let f = f.crash().await?;
    let again = f
        .store()
        .remember(fact(&scope, "the build uses cargo", 6), Some(key.clone()))
        .await
        .context("remember with the key after a crash")?;
    ensure!(
        !again.created && again.memory == first.memory,
        "a replay after a crash answers the first memory, got {again:?}"
    );
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = f.shared();
        let memory = fact(&scope, &format!("race {i}"), 4);
        tasks.push(tokio::spawn(async move {
            store.remember(memory, Some("race".into())).await
        }));
    }
    let mut created = 0;
    let mut ids = HashSet::new();
    for task in tasks {
        let r = task.await.context("join")?.context("remember in a race")?;
        created += usize::from(r.created);
        ids.insert(r.memory.id);
    }
    ensure_eq!(
        (created, ids.len()),
        (1, 1),
        "(created, distinct memories) of 16 racing replays"
    );
    ensure_eq!(
        f.store()
            .list_memories(&scope, true)
            .await
            .context("list")?
            .len(),
        2,
        "one memory per key"
    );
    ensure!(
        f.store().forget(first.memory.id).await.context("forget")?,
        "forget the keyed memory"
    );
    match f
        .store()
        .remember(fact(&scope, "the build uses cargo", 6), Some(key))
        .await
    {
        Err(StoreError::NotFound { what: "memory", id }) if id == first.memory.id.to_string() => {}
        other => bail!(
            "a forgotten memory's key stays spent (NotFound naming the memory), got {other:?}"
        ),
    }
    Ok(())
}

/// `touch` moves `lastAccessedAt` forward only, skips unknown ids, and
/// counts what it changed.
pub async fn touch_never_moves_time_backwards<H: Harness>(h: &H) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let scope = MemoryScope::agent("a");
    let m = store
        .remember(fact(&scope, "x", 5), None)
        .await
        .context("remember")?
        .memory;
    let later = m.last_accessed_at + Duration::hours(1);
    let unknown = uuid::Uuid::now_v7();
    ensure_eq!(
        store
            .touch(&[m.id, unknown], later)
            .await
            .context("touch")?,
        1,
        "one known memory touched"
    );
    ensure_eq!(
        store
            .touch(&[m.id], m.last_accessed_at)
            .await
            .context("touch earlier")?,
        0,
        "an earlier time changes nothing"
    );
    ensure_eq!(
        store.touch(&[m.id], later).await.context("touch same")?,
        0,
        "the same time changes nothing"
    );
    ensure_eq!(
        store
            .get_memory(m.id)
            .await
            .context("get")?
            .map(|m| m.last_accessed_at),
        Some(later),
        "lastAccessedAt"
    );
    ensure_eq!(
        store.touch(&[], later).await.context("touch nothing")?,
        0,
        "touching no id"
    );
    let f = f.crash().await?;
    ensure_eq!(
        f.store()
            .get_memory(m.id)
            .await
            .context("get")?
            .map(|m| m.last_accessed_at),
        Some(later),
        "a touch survives a crash"
    );
    Ok(())
}

/// Compaction marks the originals `archived` with `archivedInto` the first
/// summary, stores the summaries in the scope, and leaves them listed only
/// with `include_archived`; plain archiving (no summary) sets no
/// `archivedInto`; all of it across a crash.
pub async fn compaction_archives_originals_and_stores_summaries<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let scope = MemoryScope::user("sarah", "u1");
    let other = MemoryScope::user("sarah", "u2");
    let mut originals = Vec::new();
    for i in 0..3 {
        originals.push(remember(f.store(), &scope, &format!("detail {i}")).await?);
    }
    let kept = remember(f.store(), &scope, "keep me").await?;
    let plain = remember(f.store(), &scope, "archive me").await?;
    remember(f.store(), &other, "someone else").await?;
    let done = f
        .store()
        .compact(
            &scope,
            originals.iter().map(|m| m.id).collect(),
            vec![
                NewMemory::new(&scope, "summary", "details 0-2", 6),
                NewMemory::new(&scope, "summary", "more about them", 4),
            ],
        )
        .await
        .context("compact")?;
    ensure_eq!(done.summaries.len(), 2, "summaries stored");
    let summary = done.summaries[0].id;
    ensure!(
        done.summaries
            .iter()
            .all(|s| s.kind == MemoryType::Summary && s.scope() == scope && !s.archived),
        "summaries are live memories of the scope, got {:?}",
        done.summaries
    );
    ensure_eq!(
        done.archived.iter().map(|m| m.id).collect::<Vec<_>>(),
        originals.iter().map(|m| m.id).collect::<Vec<_>>(),
        "the archived originals, in input order"
    );
    ensure!(
        done.archived
            .iter()
            .all(|m| m.archived && m.archived_into == Some(summary)),
        "originals archived into the first summary, got {:?}",
        done.archived
    );
    let archived = f
        .store()
        .compact(&scope, vec![plain.id], vec![])
        .await
        .context("archive without a summary")?;
    ensure!(
        archived.summaries.is_empty()
            && archived.archived.len() == 1
            && archived.archived[0].archived
            && archived.archived[0].archived_into.is_none(),
        "plain archiving sets no archivedInto, got {archived:?}"
    );
    let f = f.crash().await?;
    let store = f.store();
    let live: Vec<_> = store
        .list_memories(&scope, false)
        .await
        .context("list live")?
        .into_iter()
        .map(|m| m.id)
        .collect();
    ensure_eq!(
        live,
        vec![kept.id, summary, done.summaries[1].id],
        "live memories after a crash"
    );
    let all = store
        .list_memories(&scope, true)
        .await
        .context("list all")?;
    ensure_eq!(all.len(), 7, "archived memories are kept");
    for original in &originals {
        let stored = store
            .get_memory(original.id)
            .await
            .context("get")?
            .context("an archived original is still stored")?;
        ensure!(
            stored.archived && stored.archived_into == Some(summary),
            "archived after a crash, got {stored:?}"
        );
        ensure_eq!(
            stored.content,
            original.content,
            "an archived memory keeps its content"
        );
    }
    ensure_eq!(
        store
            .list_memories(&other, false)
            .await
            .context("list other")?
            .len(),
        1,
        "another scope is untouched"
    );
    Ok(())
}

/// A compaction refused for any original (another scope's, missing,
/// already archived, listed twice, none at all) or any summary (another
/// scope's, invalid) changes nothing, even when the rest was fine.
pub async fn refused_compactions_change_nothing<H: Harness>(h: &H) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let scope = MemoryScope::user("sarah", "u1");
    let other = MemoryScope::user("sarah", "u2");
    let a = remember(store, &scope, "a").await?;
    let b = remember(store, &scope, "b").await?;
    let foreign = remember(store, &other, "someone else").await?;
    let archived = remember(store, &scope, "old").await?;
    store
        .compact(&scope, vec![archived.id], vec![])
        .await
        .context("archive one")?;
    let before = (
        store.list_memories(&scope, true).await.context("list")?,
        store.list_memories(&other, true).await.context("list")?,
    );
    let summary = || NewMemory::new(&scope, "summary", "a and b", 6);
    let err = refused(
        store
            .compact(&scope, vec![a.id, foreign.id], vec![summary()])
            .await,
        "originals",
        "compact another scope's memory",
    )?;
    ensure!(
        err.to_string().contains(&foreign.id.to_string()),
        "the refusal names the memory, got {err}"
    );
    let missing = uuid::Uuid::now_v7();
    match store
        .compact(&scope, vec![a.id, missing], vec![summary()])
        .await
    {
        Err(StoreError::NotFound { id, .. }) if id == missing.to_string() => {}
        other => bail!("compacting a missing memory must fail naming it, got {other:?}"),
    }
    let err = refused(
        store
            .compact(&scope, vec![b.id, archived.id], vec![summary()])
            .await,
        "originals",
        "compact an archived memory",
    )?;
    ensure!(
        err.to_string().contains(&archived.id.to_string()),
        "the refusal names the archived memory, got {err}"
    );
    refused(
        store.compact(&scope, vec![a.id, a.id], vec![]).await,
        "originals",
        "compact a memory listed twice",
    )?;
    refused(
        store.compact(&scope, vec![], vec![summary()]).await,
        "originals",
        "compact nothing",
    )?;
    refused(
        store
            .compact(
                &scope,
                vec![a.id],
                vec![NewMemory::new(&other, "summary", "wrong scope", 6)],
            )
            .await,
        "summaries",
        "a summary of another scope",
    )?;
    let err = refused(
        store
            .compact(
                &scope,
                vec![a.id],
                vec![summary(), NewMemory::new(&scope, "summary", "x", 0)],
            )
            .await,
        "summaries",
        "an invalid summary",
    )?;
    ensure!(
        err.to_string().contains("importance"),
        "the refusal names the summary's bad field, got {err}"
    );
    let after = (
        store.list_memories(&scope, true).await.context("list")?,
        store.list_memories(&other, true).await.context("list")?,
    );
    ensure_eq!(after, before, "refused compactions changed nothing");
    Ok(())
}

async fn remember<S: Store + ?Sized>(
    store: &S,
    scope: &MemoryScope,
    content: &str,
) -> Result<Memory, ConformanceError> {
    Ok(store
        .remember(fact(scope, content, 4), None)
        .await
        .context(format!("remember {content:?}"))?
        .memory)
}
