//! The memories port: the [`Memory`] record (the seed's JSON shape) and the
//! [`MemoryStore`] trait that keeps memories durable. Recall ranking and the
//! Memory actor are the domain's (`crate::memory`).
//!
//! Memories are scoped: each belongs to exactly one [`MemoryScope`] (an
//! agent, and optionally one user of that agent). Listing and recall look at
//! one scope only, so one user's preferences never reach another user's
//! prompt; agent-wide knowledge lives in the scope without a user.
//!
//! Nothing is lost by compaction: [`MemoryStore::compact`] marks the
//! originals `archived` (with `archivedInto` naming the summary) and inserts
//! the summaries in one atomic, durable step.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StoreError;
use crate::job::JobId;

/// A memory's id: a UUID v7, so ids sort in creation order.
pub type MemoryId = Uuid;

/// Largest accepted `content`, in bytes: a memory is a note for a prompt,
/// and a prompt has a token budget.
pub const MAX_CONTENT_BYTES: usize = 64 * 1024;
/// Largest accepted agent or user id, in bytes (they are part of index keys).
pub const MAX_ID_BYTES: usize = 256;
/// Lowest accepted importance.
pub const MIN_IMPORTANCE: u8 = 1;
/// Highest accepted importance.
pub const MAX_IMPORTANCE: u8 = 10;

/// What kind of thing a memory is. The seed's names, kept as plain strings
/// in JSON (`"learning"`, `"fact"` …); any other string round-trips as
/// [`MemoryType::Other`] so a model inventing a type loses nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MemoryType {
    /// Something the agent learned from doing a task.
    Learning,
    /// A fact about the world or the project.
    Fact,
    /// A preference of the user (or the agent's operator).
    Preference,
    /// A summary written by compaction, standing for archived memories.
    Summary,
    /// Any other type name, kept verbatim.
    Other(String),
}

impl MemoryType {
    /// The JSON name.
    pub fn as_str(&self) -> &str {
        match self {
            MemoryType::Learning => "learning",
            MemoryType::Fact => "fact",
            MemoryType::Preference => "preference",
            MemoryType::Summary => "summary",
            MemoryType::Other(s) => s,
        }
    }
}

impl From<&str> for MemoryType {
    fn from(s: &str) -> Self {
        match s {
            "learning" => MemoryType::Learning,
            "fact" => MemoryType::Fact,
            "preference" => MemoryType::Preference,
            "summary" => MemoryType::Summary,
            other => MemoryType::Other(other.to_owned()),
        }
    }
}

impl From<String> for MemoryType {
    fn from(s: String) -> Self {
        match MemoryType::from(s.as_str()) {
            MemoryType::Other(_) => MemoryType::Other(s),
            known => known,
        }
    }
}

impl fmt::Display for MemoryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for MemoryType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MemoryType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(MemoryType::from)
    }
}

/// Whose memories: an agent's own (no user) or those about one user of it.
/// A memory belongs to exactly one scope; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryScope {
    /// The agent the memories belong to.
    pub agent_id: String,
    /// The user they are about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

impl MemoryScope {
    /// The agent-wide scope (no user).
    pub fn agent(agent_id: impl Into<String>) -> Self {
        MemoryScope {
            agent_id: agent_id.into(),
            user_id: None,
        }
    }

    /// The scope of one user of an agent.
    pub fn user(agent_id: impl Into<String>, user_id: impl Into<String>) -> Self {
        MemoryScope {
            agent_id: agent_id.into(),
            user_id: Some(user_id.into()),
        }
    }

    /// Checks the ids can be stored (non-empty, at most [`MAX_ID_BYTES`]).
    pub fn validate(&self) -> Result<(), StoreError> {
        check_id("agentId", &self.agent_id)?;
        if let Some(user) = &self.user_id {
            check_id("userId", user)?;
        }
        Ok(())
    }
}

impl fmt::Display for MemoryScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.user_id {
            Some(user) => write!(f, "agent {:?} user {:?}", self.agent_id, user),
            None => write!(f, "agent {:?}", self.agent_id),
        }
    }
}

/// One stored memory, in the seed's camelCase JSON shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    /// UUID v7, assigned by the store.
    pub id: MemoryId,
    /// The agent it belongs to.
    pub agent_id: String,
    /// The user it is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Its kind (`learning`, `fact`, `preference`, `summary`, or any string).
    #[serde(rename = "type")]
    pub kind: MemoryType,
    /// The text that goes into a prompt.
    pub content: String,
    /// How much it matters, 1 (trivia) to 10 (core); one of recall's factors.
    pub importance: u8,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// When it was last returned by a recall (recency decays from here).
    pub last_accessed_at: DateTime<Utc>,
    /// The job (agent task) it came from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<JobId>,
    /// Replaced by a summary through compaction: kept, but not recalled.
    #[serde(default)]
    pub archived: bool,
    /// The summary memory that replaced it, when archived by compaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_into: Option<MemoryId>,
}

impl Memory {
    /// The scope it belongs to.
    pub fn scope(&self) -> MemoryScope {
        MemoryScope {
            agent_id: self.agent_id.clone(),
            user_id: self.user_id.clone(),
        }
    }
}

/// What a caller gives to store a memory; the store assigns the id and times.
/// Validated by [`NewMemory::validate`] (every store calls it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewMemory {
    /// The agent it belongs to.
    pub agent_id: String,
    /// The user it is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: MemoryType,
    /// The text; non-empty, at most [`MAX_CONTENT_BYTES`].
    pub content: String,
    /// 1 to 10.
    pub importance: u8,
    /// The job it came from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<JobId>,
}

impl NewMemory {
    /// A memory for `scope` with no source job.
    pub fn new(
        scope: &MemoryScope,
        kind: impl Into<MemoryType>,
        content: impl Into<String>,
        importance: u8,
    ) -> Self {
        NewMemory {
            agent_id: scope.agent_id.clone(),
            user_id: scope.user_id.clone(),
            kind: kind.into(),
            content: content.into(),
            importance,
            source: None,
        }
    }

    /// Sets the job it came from.
    pub fn with_source(mut self, job: JobId) -> Self {
        self.source = Some(job);
        self
    }

    /// The scope it will belong to.
    pub fn scope(&self) -> MemoryScope {
        MemoryScope {
            agent_id: self.agent_id.clone(),
            user_id: self.user_id.clone(),
        }
    }

    /// Rejects what a prompt cannot use or the store cannot index, naming
    /// the camelCase field: empty or oversize `content`, `importance` outside
    /// 1–10, empty or oversize `agentId`/`userId`, an empty `type`.
    pub fn validate(&self) -> Result<(), StoreError> {
        self.scope().validate()?;
        if self.kind.as_str().trim().is_empty() {
            return Err(invalid("type", "must not be empty".into()));
        }
        if !(MIN_IMPORTANCE..=MAX_IMPORTANCE).contains(&self.importance) {
            return Err(invalid(
                "importance",
                format!(
                    "must be between {MIN_IMPORTANCE} and {MAX_IMPORTANCE}, got {}",
                    self.importance
                ),
            ));
        }
        if self.content.trim().is_empty() {
            return Err(invalid("content", "must not be empty".into()));
        }
        if self.content.len() > MAX_CONTENT_BYTES {
            return Err(invalid(
                "content",
                format!(
                    "is {} bytes, more than the limit of {MAX_CONTENT_BYTES}",
                    self.content.len()
                ),
            ));
        }
        Ok(())
    }

    /// The stored record: a fresh UUID v7, created and last accessed `now`.
    pub fn into_memory(self, now: DateTime<Utc>) -> Memory {
        Memory {
            id: Uuid::now_v7(),
            agent_id: self.agent_id,
            user_id: self.user_id,
            kind: self.kind,
            content: self.content,
            importance: self.importance,
            created_at: now,
            last_accessed_at: now,
            source: self.source,
            archived: false,
            archived_into: None,
        }
    }
}

/// The answer to [`MemoryStore::remember`].
#[derive(Debug, Clone, PartialEq)]
pub struct Remembered {
    /// The stored memory (the earlier one when the idempotency key was used).
    pub memory: Memory,
    /// `false` when the idempotency key had already stored this memory.
    pub created: bool,
}

/// The answer to [`MemoryStore::compact`].
#[derive(Debug, Clone, PartialEq)]
pub struct Compacted {
    /// The originals as now stored: `archived`, `archivedInto` set.
    pub archived: Vec<Memory>,
    /// The summaries as stored, in input order.
    pub summaries: Vec<Memory>,
}

/// Durable storage of memories. Object safe and free of backend types, so
/// agents and tools hold an `Arc<dyn MemoryStore>` and a PostgreSQL store
/// can stand in for sled. Every method that changes state returns only once
/// the change is durable (the same contract as [`crate::store::Store`]).
#[async_trait]
pub trait MemoryStore: Send + Sync {
    /// Stores a new memory after [`NewMemory::validate`].
    ///
    /// With `idempotency_key`, the first call stores and records the key (in
    /// the same atomic step); any later call with the same key stores nothing
    /// and returns that memory with `created: false`, whatever its other
    /// arguments, so a replayed tool step makes no duplicate. A key whose
    /// memory was forgotten stays spent: the call fails with
    /// [`StoreError::NotFound`] naming the memory.
    async fn remember(
        &self,
        memory: NewMemory,
        idempotency_key: Option<String>,
    ) -> Result<Remembered, StoreError>;

    /// The memory with this id (archived ones included), if stored.
    async fn get_memory(&self, id: MemoryId) -> Result<Option<Memory>, StoreError>;

    /// The memories of exactly this scope, oldest first; archived ones only
    /// when `include_archived`.
    async fn list_memories(
        &self,
        scope: &MemoryScope,
        include_archived: bool,
    ) -> Result<Vec<Memory>, StoreError>;

    /// Whether `scope` may hold memories (archived ones included): `false`
    /// only when it certainly holds none, so an agent that has never
    /// remembered anything skips recall. The default, for an adapter that
    /// cannot tell for less than a listing costs, is `true`.
    async fn may_hold_memories(&self, scope: &MemoryScope) -> Result<bool, StoreError> {
        scope.validate()?;
        Ok(true)
    }

    /// Deletes a memory for good (unlike archiving); returns whether it existed.
    async fn forget(&self, id: MemoryId) -> Result<bool, StoreError>;

    /// Records that these memories were just used (recall's recency factor
    /// decays from `lastAccessedAt`). Never moves a time backwards; unknown
    /// ids are skipped (a concurrent forget). Returns how many were updated.
    async fn touch(&self, ids: &[MemoryId], at: DateTime<Utc>) -> Result<usize, StoreError>;

    /// Compaction: archives `originals` and stores `summaries` in one atomic,
    /// durable step — either all of it survives a crash or none of it does.
    ///
    /// Every original must exist, belong to `scope` and not be archived yet
    /// (else [`StoreError::InvalidInput`] or [`StoreError::NotFound`] naming
    /// it, and nothing changes); every summary must belong to `scope` and
    /// pass validation. Each original's `archivedInto` is the first
    /// summary's id (none when `summaries` is empty: plain archiving). A
    /// retried compaction job should therefore list the scope again rather
    /// than replay its old list of originals.
    async fn compact(
        &self,
        scope: &MemoryScope,
        originals: Vec<MemoryId>,
        summaries: Vec<NewMemory>,
    ) -> Result<Compacted, StoreError>;
}

/// Checks a compaction's arguments before anything is read, as
/// [`MemoryStore::compact`] promises: a valid scope, at least one original
/// and none twice, every summary valid (its field named after `summaries`)
/// and of `scope`. Every adapter calls it first, so they refuse alike.
pub fn validate_compaction(
    scope: &MemoryScope,
    originals: &[MemoryId],
    summaries: &[NewMemory],
) -> Result<(), StoreError> {
    scope.validate()?;
    if originals.is_empty() {
        return Err(invalid(
            "originals",
            "a compaction must archive at least one memory".into(),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for id in originals {
        if !seen.insert(*id) {
            return Err(invalid("originals", format!("memory {id} is listed twice")));
        }
    }
    for (i, summary) in summaries.iter().enumerate() {
        summary.validate().map_err(|e| match e {
            StoreError::InvalidInput { field, reason } => invalid(
                "summaries",
                format!("summary {i}: invalid {field}: {reason}"),
            ),
            other => other,
        })?;
        if summary.scope() != *scope {
            return Err(invalid(
                "summaries",
                format!(
                    "summary {i} belongs to {}, not to the compacted {scope}",
                    summary.scope()
                ),
            ));
        }
    }
    Ok(())
}

/// One original of a compaction as it must be stored: `archived`, with
/// `archivedInto` = `into`. Refuses (naming the memory) one of another scope
/// or one already archived; the adapter then aborts the whole compaction,
/// so nothing changes.
pub fn archive_original(
    memory: &Memory,
    scope: &MemoryScope,
    into: Option<MemoryId>,
) -> Result<Memory, StoreError> {
    if memory.scope() != *scope {
        return Err(invalid(
            "originals",
            format!(
                "memory {} belongs to {}, not to the compacted {scope}",
                memory.id,
                memory.scope()
            ),
        ));
    }
    if memory.archived {
        return Err(invalid(
            "originals",
            format!("memory {} is already archived", memory.id),
        ));
    }
    let mut archived = memory.clone();
    archived.archived = true;
    archived.archived_into = into;
    Ok(archived)
}

fn invalid(field: &'static str, reason: String) -> StoreError {
    StoreError::InvalidInput { field, reason }
}

fn check_id(field: &'static str, value: &str) -> Result<(), StoreError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be empty".into()));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(invalid(
            field,
            format!(
                "is {} bytes, more than the limit of {MAX_ID_BYTES}",
                value.len()
            ),
        ));
    }
    Ok(())
}
