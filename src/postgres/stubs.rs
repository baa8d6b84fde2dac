//! TEMPORARY: the data ports until they are written (removed before merge).
#![allow(unused_variables)]

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::PostgresStore;
use crate::job::JobId;
use crate::store::*;

fn todo_err() -> StoreError {
    StoreError::Backend {
        operation: "todo",
        source: "not written yet".into(),
    }
}

#[async_trait]
impl MemoryStore for PostgresStore {
    async fn remember(
        &self,
        memory: NewMemory,
        idempotency_key: Option<String>,
    ) -> Result<Remembered, StoreError> {
        Err(todo_err())
    }
    async fn get_memory(&self, id: MemoryId) -> Result<Option<Memory>, StoreError> {
        Err(todo_err())
    }
    async fn list_memories(
        &self,
        scope: &MemoryScope,
        include_archived: bool,
    ) -> Result<Vec<Memory>, StoreError> {
        Err(todo_err())
    }
    async fn forget(&self, id: MemoryId) -> Result<bool, StoreError> {
        Err(todo_err())
    }
    async fn touch(&self, ids: &[MemoryId], at: DateTime<Utc>) -> Result<usize, StoreError> {
        Err(todo_err())
    }
    async fn compact(
        &self,
        scope: &MemoryScope,
        originals: Vec<MemoryId>,
        summaries: Vec<NewMemory>,
    ) -> Result<Compacted, StoreError> {
        Err(todo_err())
    }
}

#[async_trait]
impl ConversationStore for PostgresStore {
    async fn append(
        &self,
        message: NewMessage,
        idempotency_key: Option<String>,
    ) -> Result<Appended, StoreError> {
        Err(todo_err())
    }
    async fn recent(
        &self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        Err(todo_err())
    }
    async fn list_messages(&self, conversation_id: &str) -> Result<Vec<ChatMessage>, StoreError> {
        Err(todo_err())
    }
}

#[async_trait]
impl StepStore for PostgresStore {
    async fn save_step_json(
        &self,
        job_id: JobId,
        step_index: u32,
        json: Vec<u8>,
    ) -> Result<(), StoreError> {
        Err(todo_err())
    }
    async fn load_steps(&self, job_id: JobId) -> Result<Vec<Value>, StoreError> {
        Err(todo_err())
    }
    async fn clear_steps(&self, job_id: JobId) -> Result<usize, StoreError> {
        Err(todo_err())
    }
}

#[async_trait]
impl IdempotencyStore for PostgresStore {
    async fn claim_key(&self, key: &str, value: Value) -> Result<Claim, StoreError> {
        Err(todo_err())
    }
    async fn get_key(&self, key: &str) -> Result<Option<Value>, StoreError> {
        Err(todo_err())
    }
}

#[async_trait]
impl UsageStore for PostgresStore {
    async fn record(&self, record: &UsageRecord) -> Result<(), StoreError> {
        Err(todo_err())
    }
    async fn totals(&self, scope: &UsageScope, day: NaiveDate) -> Result<UsageTotals, StoreError> {
        Err(todo_err())
    }
    async fn day_usage(&self, day: NaiveDate) -> Result<DayUsage, StoreError> {
        Err(todo_err())
    }
    async fn calls(&self, day: NaiveDate) -> Result<Vec<UsageRecord>, StoreError> {
        Err(todo_err())
    }
}
