//! [`MemoryStore`] for [`SledStore`]: memories on their own sled trees,
//! made durable by the store's group commit like every other write.
//!
//! Trees:
//! - `memories`: key = the 16 bytes of the memory's UUID v7 (creation
//!   order); value = the [`Memory`] as camelCase JSON. The source of truth.
//! - `memory_scopes`: key = scope prefix ++ the 16-byte id; value empty. The
//!   scope prefix is `u16 BE len(agentId) ++ agentId ++ 0x00` for the
//!   agent-wide scope and `… ++ 0x01 ++ u16 BE len(userId) ++ userId` for a
//!   user's; the lengths make prefixes self-delimiting, so a prefix scan
//!   returns exactly one scope's ids, oldest first.
//! - `memory_keys`: key = an idempotency key (UTF-8); value = the 16-byte id
//!   of the memory it stored.
//!
//! Every write to these trees (remember, forget, touch, compact) is one sled
//! transaction over the trees it changes, so the index never disagrees with
//! the records, concurrent writers are serialised, and a compaction is all
//! or nothing after a crash. Transactions cost more than the job store's
//! compare-and-swaps (they contend with flushes), which is fine at the rate
//! agents remember things.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::Transactional;
use uuid::Uuid;

use super::SledStore;
use crate::store::{
    archive_original, validate_compaction, validate_key, Compacted, Memory, MemoryId, MemoryScope,
    MemoryStore, NewMemory, Remembered, StoreError,
};

/// Tree of memory records.
pub(super) const MEMORIES: &str = "memories";
/// Tree of scope → ids index entries.
const MEMORY_SCOPES: &str = "memory_scopes";
/// Tree of idempotency key → memory id.
pub(super) const MEMORY_KEYS: &str = "memory_keys";

/// The key prefix of a scope in `memory_scopes` (see the module docs).
fn scope_prefix(scope: &MemoryScope) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + scope.agent_id.len() + 16);
    push_str(&mut key, &scope.agent_id);
    match &scope.user_id {
        None => key.push(0),
        Some(user) => {
            key.push(1);
            push_str(&mut key, user);
        }
    }
    key
}

fn push_str(key: &mut Vec<u8>, s: &str) {
    // Validation caps ids at 256 bytes; saturate rather than wrap if a
    // caller skipped it, so keys stay well formed.
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

fn scope_key(scope: &MemoryScope, id: MemoryId) -> Vec<u8> {
    let mut key = scope_prefix(scope);
    key.extend_from_slice(id.as_bytes());
    key
}

fn encode(memory: &Memory) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(memory).map_err(|e| StoreError::backend("encode memory", e))
}

pub(super) fn decode(key: &[u8], bytes: &[u8]) -> Result<Memory, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::CorruptRecord {
        what: "memory",
        key: Uuid::from_slice(key)
            .map(|id| id.to_string())
            .unwrap_or_else(|_| String::from_utf8_lossy(key).into_owned()),
        reason: e.to_string(),
    })
}

fn not_found(id: MemoryId) -> StoreError {
    StoreError::NotFound {
        what: "memory",
        id: id.to_string(),
    }
}

/// Reads and decodes one memory inside a transaction.
fn tx_read(
    tree: &TransactionalTree,
    id: MemoryId,
) -> Result<Option<Memory>, ConflictableTransactionError<StoreError>> {
    match tree.get(id.as_bytes())? {
        None => Ok(None),
        Some(bytes) => decode(id.as_bytes(), &bytes)
            .map(Some)
            .map_err(ConflictableTransactionError::Abort),
    }
}

fn abort<T>(e: StoreError) -> Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(e))
}

/// Writes a memory and its scope entry inside a transaction.
fn tx_insert(
    memories: &TransactionalTree,
    scopes: &TransactionalTree,
    memory: &Memory,
    bytes: &[u8],
) -> Result<(), UnabortableTransactionError> {
    memories.insert(memory.id.as_bytes(), bytes)?;
    scopes.insert(scope_key(&memory.scope(), memory.id), &[] as &[u8])?;
    Ok(())
}

impl SledStore {
    /// Turns a failed transaction into the store error (ours when aborted).
    fn tx_error(&self, operation: &'static str, e: TransactionError<StoreError>) -> StoreError {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => self.write_error(operation, e),
        }
    }

    fn memory_tree(&self, name: &'static str) -> Result<sled::Tree, StoreError> {
        // sled keeps opened trees in a map: a lookup after the first call.
        self.inner
            .db
            .open_tree(name)
            .map_err(|e| StoreError::backend("open memory tree", e))
    }

    fn read_memory(
        &self,
        memories: &sled::Tree,
        operation: &'static str,
        id: MemoryId,
    ) -> Result<Option<Memory>, StoreError> {
        match memories
            .get(id.as_bytes())
            .map_err(|e| StoreError::backend(operation, e))?
        {
            None => Ok(None),
            Some(bytes) => decode(id.as_bytes(), &bytes).map(Some),
        }
    }

    /// The memory an idempotency key stored, after waiting until the key's
    /// write is durable (a concurrent caller's flush may still be running).
    async fn remembered_by_key(
        &self,
        memories: &sled::Tree,
        id: MemoryId,
    ) -> Result<Remembered, StoreError> {
        self.durable("remember").await?;
        let memory = self
            .read_memory(memories, "remember", id)?
            .ok_or_else(|| not_found(id))?;
        Ok(Remembered {
            memory,
            created: false,
        })
    }
}

pub(super) fn decode_key_id(key: &str, bytes: &[u8]) -> Result<MemoryId, StoreError> {
    Uuid::from_slice(bytes).map_err(|_| StoreError::CorruptRecord {
        what: "memory idempotency key",
        key: key.to_owned(),
        reason: "value is not a 16-byte memory id".into(),
    })
}

#[async_trait]
impl MemoryStore for SledStore {
    async fn remember(
        &self,
        memory: NewMemory,
        idempotency_key: Option<String>,
    ) -> Result<Remembered, StoreError> {
        self.writable()?;
        memory.validate()?;
        if let Some(key) = &idempotency_key {
            validate_key(key)?;
        }
        let memories = self.memory_tree(MEMORIES)?;
        let scopes = self.memory_tree(MEMORY_SCOPES)?;
        let keys = self.memory_tree(MEMORY_KEYS)?;
        if let Some(key) = &idempotency_key {
            if let Some(bytes) = keys
                .get(key.as_bytes())
                .map_err(|e| StoreError::backend("remember", e))?
            {
                let id = decode_key_id(key, &bytes)?;
                return self.remembered_by_key(&memories, id).await;
            }
        }
        let memory = memory.into_memory(Utc::now());
        let bytes = encode(&memory)?;
        // Ok(None): stored; Ok(Some(id)): the key was taken meanwhile.
        let outcome = (&memories, &scopes, &keys)
            .transaction(|(memories, scopes, keys)| {
                if let Some(key) = &idempotency_key {
                    if let Some(existing) = keys.get(key.as_bytes())? {
                        return match decode_key_id(key, &existing) {
                            Ok(id) => Ok(Some(id)),
                            Err(e) => abort(e),
                        };
                    }
                    keys.insert(key.as_bytes(), memory.id.as_bytes())?;
                }
                tx_insert(memories, scopes, &memory, &bytes)?;
                Ok(None)
            })
            .map_err(|e| self.tx_error("remember", e))?;
        if let Some(id) = outcome {
            return self.remembered_by_key(&memories, id).await;
        }
        self.durable("remember").await?;
        Ok(Remembered {
            memory,
            created: true,
        })
    }

    async fn get_memory(&self, id: MemoryId) -> Result<Option<Memory>, StoreError> {
        let memories = self.memory_tree(MEMORIES)?;
        self.read_memory(&memories, "get memory", id)
    }

    async fn may_hold_memories(&self, scope: &MemoryScope) -> Result<bool, StoreError> {
        scope.validate()?;
        // One step into the scope's index: exact, as every write to it is
        // this process's.
        let scopes = self.memory_tree(MEMORY_SCOPES)?;
        match scopes.scan_prefix(scope_prefix(scope)).keys().next() {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(StoreError::backend("look for memories", e)),
        }
    }

    async fn list_memories(
        &self,
        scope: &MemoryScope,
        include_archived: bool,
    ) -> Result<Vec<Memory>, StoreError> {
        scope.validate()?;
        let memories = self.memory_tree(MEMORIES)?;
        let scopes = self.memory_tree(MEMORY_SCOPES)?;
        let prefix = scope_prefix(scope);
        let mut out = Vec::new();
        for key in scopes.scan_prefix(&prefix).keys() {
            let key = key.map_err(|e| StoreError::backend("list memories", e))?;
            let Ok(id) = Uuid::from_slice(&key[prefix.len()..]) else {
                return Err(StoreError::CorruptRecord {
                    what: "memory scope index",
                    key: String::from_utf8_lossy(&key).into_owned(),
                    reason: "does not end with a 16-byte memory id".into(),
                });
            };
            // A missing record can only be a forget racing this scan.
            if let Some(memory) = self.read_memory(&memories, "list memories", id)? {
                if include_archived || !memory.archived {
                    out.push(memory);
                }
            }
        }
        Ok(out)
    }

    async fn forget(&self, id: MemoryId) -> Result<bool, StoreError> {
        self.writable()?;
        let memories = self.memory_tree(MEMORIES)?;
        let scopes = self.memory_tree(MEMORY_SCOPES)?;
        let existed = (&memories, &scopes)
            .transaction(|(memories, scopes)| {
                let Some(memory) = tx_read(memories, id)? else {
                    return Ok(false);
                };
                memories.remove(id.as_bytes())?;
                scopes.remove(scope_key(&memory.scope(), id))?;
                Ok(true)
            })
            .map_err(|e| self.tx_error("forget", e))?;
        if existed {
            self.durable("forget").await?;
        }
        Ok(existed)
    }

    async fn touch(&self, ids: &[MemoryId], at: DateTime<Utc>) -> Result<usize, StoreError> {
        self.writable()?;
        if ids.is_empty() {
            return Ok(0);
        }
        let memories = self.memory_tree(MEMORIES)?;
        let touched = memories
            .transaction(|memories| {
                let mut touched = 0usize;
                for &id in ids {
                    let Some(mut memory) = tx_read(memories, id)? else {
                        continue;
                    };
                    if memory.last_accessed_at >= at {
                        continue;
                    }
                    memory.last_accessed_at = at;
                    let bytes = match encode(&memory) {
                        Ok(b) => b,
                        Err(e) => return abort(e),
                    };
                    memories.insert(id.as_bytes(), bytes)?;
                    touched += 1;
                }
                Ok(touched)
            })
            .map_err(|e| self.tx_error("touch memories", e))?;
        if touched > 0 {
            self.durable("touch memories").await?;
        }
        Ok(touched)
    }

    async fn compact(
        &self,
        scope: &MemoryScope,
        originals: Vec<MemoryId>,
        summaries: Vec<NewMemory>,
    ) -> Result<Compacted, StoreError> {
        self.writable()?;
        validate_compaction(scope, &originals, &summaries)?;
        let now = Utc::now();
        let summaries: Vec<Memory> = summaries.into_iter().map(|s| s.into_memory(now)).collect();
        let encoded = summaries
            .iter()
            .map(encode)
            .collect::<Result<Vec<_>, _>>()?;
        let compaction = Compaction {
            scope,
            originals: &originals,
            into: summaries.first().map(|s| s.id),
            summaries: &summaries,
            encoded: &encoded,
        };
        let memories = self.memory_tree(MEMORIES)?;
        let scopes = self.memory_tree(MEMORY_SCOPES)?;
        let archived = (&memories, &scopes)
            .transaction(|(memories, scopes)| compaction.write(memories, scopes))
            .map_err(|e| self.tx_error("compact memories", e))?;
        self.durable("compact memories").await?;
        Ok(Compacted {
            archived,
            summaries,
        })
    }
}

/// One compaction, as its transaction writes it (and may run it again when
/// it conflicts).
struct Compaction<'a> {
    scope: &'a MemoryScope,
    originals: &'a [MemoryId],
    /// The summary the originals are archived into.
    into: Option<MemoryId>,
    summaries: &'a [Memory],
    /// The summaries' JSON, encoded once outside the transaction.
    encoded: &'a [Vec<u8>],
}

impl Compaction<'_> {
    /// Archives every original and stores the summaries; aborts, writing
    /// nothing, when an original is missing or may not be archived.
    fn write(
        &self,
        memories: &TransactionalTree,
        scopes: &TransactionalTree,
    ) -> Result<Vec<Memory>, ConflictableTransactionError<StoreError>> {
        let mut archived = Vec::with_capacity(self.originals.len());
        for &id in self.originals {
            archived.push(self.archive(memories, id)?);
        }
        for (summary, bytes) in self.summaries.iter().zip(self.encoded) {
            tx_insert(memories, scopes, summary, bytes)?;
        }
        Ok(archived)
    }

    /// One original, archived into the summary (see [`archive_original`]).
    fn archive(
        &self,
        memories: &TransactionalTree,
        id: MemoryId,
    ) -> Result<Memory, ConflictableTransactionError<StoreError>> {
        let Some(original) = tx_read(memories, id)? else {
            return abort(not_found(id));
        };
        let memory = archive_original(&original, self.scope, self.into)
            .map_err(ConflictableTransactionError::Abort)?;
        let bytes = encode(&memory).map_err(ConflictableTransactionError::Abort)?;
        memories.insert(id.as_bytes(), bytes)?;
        Ok(memory)
    }
}
