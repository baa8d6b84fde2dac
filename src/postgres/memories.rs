//! Memories as rows, and the [`MemoryStore`] port. A memory is whole in
//! `memories.data`; its scope (`agent_id`, `user_id`) and `archived` are
//! beside it for listing. The keys of idempotent `remember`s are in
//! `memory_keys`, inserted in the same statement as the memory they stored
//! (`ON CONFLICT DO NOTHING`), so of racing callers on any nodes exactly one
//! stores and the others read its memory. A compaction is one transaction
//! that locks the originals, checks them with the port's rules and writes
//! the archived originals and the summaries. Validation is the port's
//! ([`NewMemory::validate`], [`validate_compaction`], [`archive_original`]).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use tokio_postgres::types::Json;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{db, PostgresStore};
use crate::store::{
    archive_original, validate_compaction, validate_key, Compacted, Memory, MemoryId, MemoryScope,
    MemoryStore, NewMemory, Remembered, StoreError,
};

fn not_found(id: MemoryId) -> StoreError {
    StoreError::NotFound {
        what: "memory",
        id: id.to_string(),
    }
}

/// The memory in column `data` of a row that has its `id` too, or a
/// corrupt-record error naming it.
pub(super) fn memory_of(row: &Row) -> Result<Memory, StoreError> {
    match row.try_get::<_, Json<Memory>>("data") {
        Ok(Json(memory)) => Ok(memory),
        Err(e) => Err(StoreError::CorruptRecord {
            what: "memory",
            key: row
                .try_get::<_, Uuid>("id")
                .map(|id| id.to_string())
                .unwrap_or_else(|_| "?".into()),
            reason: e.to_string(),
        }),
    }
}

fn memories_of(rows: &[Row]) -> Result<Vec<Memory>, StoreError> {
    rows.iter().map(memory_of).collect()
}

/// The user id's bytes, as the `user_id` column holds them.
fn user_bytes(memory: &Memory) -> Option<&[u8]> {
    memory.user_id.as_deref().map(str::as_bytes)
}

/// Inserts new memories (the summaries of a compaction) in one statement.
pub(super) async fn insert_rows(
    tx: &Transaction<'_>,
    op: &'static str,
    memories: &[Memory],
) -> Result<(), StoreError> {
    if memories.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO memories (id, agent_id, user_id, archived, data) \
             SELECT * FROM unnest($1::uuid[], $2::bytea[], $3::bytea[], $4::bool[], $5::json[])",
        )
        .await
        .map_err(db(op))?;
    let ids: Vec<Uuid> = memories.iter().map(|m| m.id).collect();
    let agents: Vec<&[u8]> = memories.iter().map(|m| m.agent_id.as_bytes()).collect();
    let users: Vec<Option<&[u8]>> = memories.iter().map(user_bytes).collect();
    let archived: Vec<bool> = memories.iter().map(|m| m.archived).collect();
    let data: Vec<Json<&Memory>> = memories.iter().map(Json).collect();
    tx.execute(&stmt, &[&ids, &agents, &users, &archived, &data])
        .await
        .map_err(db(op))?;
    Ok(())
}

/// Writes new versions of stored memories (archived, touched).
async fn write_back(
    tx: &Transaction<'_>,
    op: &'static str,
    memories: &[Memory],
) -> Result<(), StoreError> {
    if memories.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(
            "UPDATE memories SET archived = u.archived, data = u.data \
             FROM unnest($1::uuid[], $2::bool[], $3::json[]) AS u(id, archived, data) \
             WHERE memories.id = u.id",
        )
        .await
        .map_err(db(op))?;
    let ids: Vec<Uuid> = memories.iter().map(|m| m.id).collect();
    let archived: Vec<bool> = memories.iter().map(|m| m.archived).collect();
    let data: Vec<Json<&Memory>> = memories.iter().map(Json).collect();
    tx.execute(&stmt, &[&ids, &archived, &data])
        .await
        .map_err(db(op))?;
    Ok(())
}

/// The stored memories among `ids`, locked until the transaction ends (in
/// id order, so concurrent lockers never deadlock), by id.
async fn lock_memories(
    tx: &Transaction<'_>,
    op: &'static str,
    ids: &[MemoryId],
) -> Result<HashMap<MemoryId, Memory>, StoreError> {
    let stmt = tx
        .prepare_cached("SELECT id, data FROM memories WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .await
        .map_err(db(op))?;
    let rows = tx.query(&stmt, &[&ids]).await.map_err(db(op))?;
    Ok(memories_of(&rows)?.into_iter().map(|m| (m.id, m)).collect())
}

impl PostgresStore {
    /// The memory an idempotency key stored (it won a race, or an earlier
    /// call): `NotFound` naming it when it was forgotten since.
    async fn remembered_by_key(&self, key: String) -> Result<Remembered, StoreError> {
        self.run("remember", move |client, _| async move {
            let stmt = client
                .prepare_cached(
                    "SELECT k.memory_id AS id, m.data FROM memory_keys k \
                     LEFT JOIN memories m ON m.id = k.memory_id WHERE k.key = $1",
                )
                .await
                .map_err(db("remember"))?;
            let row = client
                .query_opt(&stmt, &[&key.as_bytes()])
                .await
                .map_err(db("remember"))?
                .ok_or_else(|| StoreError::Backend {
                    operation: "remember",
                    source: format!("idempotency key {key:?} was taken but is not stored").into(),
                })?;
            let id: Uuid = row.try_get("id").map_err(db("remember"))?;
            let data: Option<Json<Memory>> =
                row.try_get("data").map_err(|e| StoreError::CorruptRecord {
                    what: "memory",
                    key: id.to_string(),
                    reason: e.to_string(),
                })?;
            match data {
                Some(Json(memory)) => Ok(Remembered {
                    memory,
                    created: false,
                }),
                None => Err(not_found(id)),
            }
        })
        .await
    }
}

#[async_trait]
impl MemoryStore for PostgresStore {
    async fn remember(
        &self,
        memory: NewMemory,
        idempotency_key: Option<String>,
    ) -> Result<Remembered, StoreError> {
        memory.validate()?;
        if let Some(key) = &idempotency_key {
            validate_key(key)?;
        }
        let memory = memory.into_memory(Utc::now());
        let stored = memory.clone();
        let key = idempotency_key.clone();
        let created = self
            .write("remember", move |client, _| async move {
                let agent = memory.agent_id.as_bytes();
                let user = user_bytes(&memory);
                let data = Json(&memory);
                let inserted = match &key {
                    None => {
                        let stmt = client
                            .prepare_cached(
                                "INSERT INTO memories (id, agent_id, user_id, archived, data) \
                                 VALUES ($1, $2, $3, false, $4)",
                            )
                            .await
                            .map_err(db("remember"))?;
                        client
                            .execute(&stmt, &[&memory.id, &agent, &user, &data])
                            .await
                            .map_err(db("remember"))?
                    }
                    // One statement, so one transaction: the memory goes in
                    // only with its key, and only if the key was free.
                    Some(key) => {
                        let stmt = client
                            .prepare_cached(
                                "WITH k AS ( \
                                     INSERT INTO memory_keys (key, memory_id) VALUES ($1, $2) \
                                     ON CONFLICT DO NOTHING RETURNING memory_id) \
                                 INSERT INTO memories (id, agent_id, user_id, archived, data) \
                                 SELECT memory_id, $3::bytea, $4::bytea, false, $5::json FROM k",
                            )
                            .await
                            .map_err(db("remember"))?;
                        client
                            .execute(&stmt, &[&key.as_bytes(), &memory.id, &agent, &user, &data])
                            .await
                            .map_err(db("remember"))?
                    }
                };
                Ok(inserted > 0)
            })
            .await?;
        match (created, idempotency_key) {
            (true, _) => Ok(Remembered {
                memory: stored,
                created: true,
            }),
            (false, Some(key)) => self.remembered_by_key(key).await,
            (false, None) => Err(StoreError::Backend {
                operation: "remember",
                source: "the insert stored nothing".into(),
            }),
        }
    }

    async fn get_memory(&self, id: MemoryId) -> Result<Option<Memory>, StoreError> {
        self.run("get memory", move |client, _| async move {
            let stmt = client
                .prepare_cached("SELECT id, data FROM memories WHERE id = $1")
                .await
                .map_err(db("get memory"))?;
            let row = client
                .query_opt(&stmt, &[&id])
                .await
                .map_err(db("get memory"))?;
            row.as_ref().map(memory_of).transpose()
        })
        .await
    }

    async fn list_memories(
        &self,
        scope: &MemoryScope,
        include_archived: bool,
    ) -> Result<Vec<Memory>, StoreError> {
        scope.validate()?;
        let scope = scope.clone();
        self.run("list memories", move |client, _| async move {
            let agent = scope.agent_id.as_bytes();
            let rows = match &scope.user_id {
                None => {
                    let stmt = client
                        .prepare_cached(
                            "SELECT id, data FROM memories \
                             WHERE agent_id = $1 AND user_id IS NULL AND ($2 OR NOT archived) \
                             ORDER BY id",
                        )
                        .await
                        .map_err(db("list memories"))?;
                    client.query(&stmt, &[&agent, &include_archived]).await
                }
                Some(user) => {
                    let stmt = client
                        .prepare_cached(
                            "SELECT id, data FROM memories \
                             WHERE agent_id = $1 AND user_id = $2 AND ($3 OR NOT archived) \
                             ORDER BY id",
                        )
                        .await
                        .map_err(db("list memories"))?;
                    client
                        .query(&stmt, &[&agent, &user.as_bytes(), &include_archived])
                        .await
                }
            }
            .map_err(db("list memories"))?;
            memories_of(&rows)
        })
        .await
    }

    async fn forget(&self, id: MemoryId) -> Result<bool, StoreError> {
        self.write("forget", move |client, _| async move {
            let stmt = client
                .prepare_cached("DELETE FROM memories WHERE id = $1")
                .await
                .map_err(db("forget"))?;
            let removed = client.execute(&stmt, &[&id]).await.map_err(db("forget"))?;
            Ok(removed > 0)
        })
        .await
    }

    async fn touch(&self, ids: &[MemoryId], at: DateTime<Utc>) -> Result<usize, StoreError> {
        self.writable()?;
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = ids.to_vec();
        self.write("touch memories", move |mut client, _| async move {
            let tx = client.transaction().await.map_err(db("touch memories"))?;
            let stored = lock_memories(&tx, "touch memories", &ids).await?;
            let touched: Vec<Memory> = stored
                .into_values()
                .filter(|m| m.last_accessed_at < at)
                .map(|mut m| {
                    m.last_accessed_at = at;
                    m
                })
                .collect();
            write_back(&tx, "touch memories", &touched).await?;
            tx.commit().await.map_err(db("touch memories"))?;
            Ok(touched.len())
        })
        .await
    }

    async fn compact(
        &self,
        scope: &MemoryScope,
        originals: Vec<MemoryId>,
        summaries: Vec<NewMemory>,
    ) -> Result<Compacted, StoreError> {
        validate_compaction(scope, &originals, &summaries)?;
        let scope = scope.clone();
        let now = Utc::now();
        let summaries: Vec<Memory> = summaries.into_iter().map(|s| s.into_memory(now)).collect();
        let into = summaries.first().map(|s| s.id);
        self.write("compact memories", move |mut client, _| async move {
            let op = "compact memories";
            let tx = client.transaction().await.map_err(db(op))?;
            let mut stored = lock_memories(&tx, op, &originals).await?;
            // In input order, so the refusal names the first bad original;
            // any refusal drops the transaction: nothing changes.
            let archived = originals
                .iter()
                .map(|id| {
                    let original = stored.remove(id).ok_or_else(|| not_found(*id))?;
                    archive_original(&original, &scope, into)
                })
                .collect::<Result<Vec<Memory>, StoreError>>()?;
            write_back(&tx, op, &archived).await?;
            insert_rows(&tx, op, &summaries).await?;
            tx.commit().await.map_err(db(op))?;
            Ok(Compacted {
                archived,
                summaries,
            })
        })
        .await
    }
}
