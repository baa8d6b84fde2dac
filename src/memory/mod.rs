//! What agents remember: recall ranking ([`mod@rank`]) and the Memory actor
//! ([`actor`]). The [`Memory`] record and the [`MemoryStore`] port that
//! keeps memories durable are the storage layer's (`crate::store`),
//! re-exported here.
//!
//! Memories are scoped: each belongs to exactly one [`MemoryScope`] (an
//! agent, and optionally one user of that agent). Listing and recall look at
//! one scope only, so one user's preferences never reach another user's
//! prompt; agent-wide knowledge lives in the scope without a user.
//!
//! Nothing is lost by compaction: [`MemoryStore::compact`] marks the
//! originals `archived` (with `archivedInto` naming the summary) and inserts
//! the summaries in one atomic, durable step.

pub mod actor;
pub mod rank;

pub use crate::store::{
    Compacted, Memory, MemoryId, MemoryScope, MemoryStore, MemoryType, NewMemory, Remembered,
    MAX_CONTENT_BYTES, MAX_ID_BYTES, MAX_IMPORTANCE, MIN_IMPORTANCE,
};
pub use rank::{rank, RecallWeights, ScoredMemory};

#[cfg(test)]
mod tests;
