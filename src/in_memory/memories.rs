//! Memories in memory: the records by id (creation order), the idempotency
//! keys that stored them, and the [`MemoryStore`] port. Validation is the
//! port's ([`NewMemory::validate`], [`validate_compaction`],
//! [`archive_original`]); a compaction is checked whole before anything is
//! written, so a refused one changes nothing.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::InMemoryStore;
use crate::store::{
    archive_original, validate_compaction, validate_key, Compacted, Memory, MemoryId, MemoryScope,
    MemoryStore, NewMemory, Remembered, StoreError,
};

/// Memories and the idempotency keys that stored them.
#[derive(Default)]
pub(super) struct Memories {
    by_id: BTreeMap<MemoryId, Memory>,
    /// A key stays spent after its memory is forgotten.
    keys: HashMap<String, MemoryId>,
}

fn not_found(id: MemoryId) -> StoreError {
    StoreError::NotFound {
        what: "memory",
        id: id.to_string(),
    }
}

impl InMemoryStore {
    /// `read` over the memories of exactly `scope` (archived ones
    /// included), oldest first, once the scope is checked.
    fn in_scope<R>(
        &self,
        scope: &MemoryScope,
        read: impl FnOnce(&mut dyn Iterator<Item = &Memory>) -> R,
    ) -> Result<R, StoreError> {
        scope.validate()?;
        let state = self.lock();
        let mut memories = state
            .memories
            .by_id
            .values()
            .filter(|m| m.agent_id == scope.agent_id && m.user_id == scope.user_id);
        Ok(read(&mut memories))
    }
}

#[async_trait]
impl MemoryStore for InMemoryStore {
    async fn remember(
        &self,
        memory: NewMemory,
        idempotency_key: Option<String>,
    ) -> Result<Remembered, StoreError> {
        memory.validate()?;
        if let Some(key) = &idempotency_key {
            validate_key(key)?;
        }
        let mut state = self.write()?;
        let memories = &mut state.memories;
        if let Some(id) = idempotency_key
            .as_ref()
            .and_then(|key| memories.keys.get(key))
        {
            let memory = memories
                .by_id
                .get(id)
                .cloned()
                .ok_or_else(|| not_found(*id))?;
            return Ok(Remembered {
                memory,
                created: false,
            });
        }
        let memory = memory.into_memory(Utc::now());
        if let Some(key) = idempotency_key {
            memories.keys.insert(key, memory.id);
        }
        memories.by_id.insert(memory.id, memory.clone());
        Ok(Remembered {
            memory,
            created: true,
        })
    }

    async fn get_memory(&self, id: MemoryId) -> Result<Option<Memory>, StoreError> {
        Ok(self.lock().memories.by_id.get(&id).cloned())
    }

    async fn may_hold_memories(&self, scope: &MemoryScope) -> Result<bool, StoreError> {
        self.in_scope(scope, |memories| memories.next().is_some())
    }

    async fn list_memories(
        &self,
        scope: &MemoryScope,
        include_archived: bool,
    ) -> Result<Vec<Memory>, StoreError> {
        self.in_scope(scope, |memories| {
            memories
                .filter(|m| include_archived || !m.archived)
                .cloned()
                .collect()
        })
    }

    async fn forget(&self, id: MemoryId) -> Result<bool, StoreError> {
        Ok(self.write()?.memories.by_id.remove(&id).is_some())
    }

    async fn touch(&self, ids: &[MemoryId], at: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut state = self.write()?;
        let mut touched = 0;
        for id in ids {
            if let Some(memory) = state.memories.by_id.get_mut(id) {
                if memory.last_accessed_at < at {
                    memory.last_accessed_at = at;
                    touched += 1;
                }
            }
        }
        Ok(touched)
    }

    async fn compact(
        &self,
        scope: &MemoryScope,
        originals: Vec<MemoryId>,
        summaries: Vec<NewMemory>,
    ) -> Result<Compacted, StoreError> {
        validate_compaction(scope, &originals, &summaries)?;
        let now = Utc::now();
        let summaries: Vec<Memory> = summaries.into_iter().map(|s| s.into_memory(now)).collect();
        let into = summaries.first().map(|s| s.id);
        let mut state = self.write()?;
        let memories = &mut state.memories;
        let archived = originals
            .iter()
            .map(|id| {
                let original = memories.by_id.get(id).ok_or_else(|| not_found(*id))?;
                archive_original(original, scope, into)
            })
            .collect::<Result<Vec<Memory>, StoreError>>()?;
        for memory in archived.iter().chain(&summaries) {
            memories.by_id.insert(memory.id, memory.clone());
        }
        Ok(Compacted {
            archived,
            summaries,
        })
    }
}
