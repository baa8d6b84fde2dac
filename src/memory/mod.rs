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
//! Compactions of one scope run one after the other ([`ScopeLocks`]), and
//! nothing is lost by compaction: [`MemoryStore::compact`] marks the
//! originals `archived` (with `archivedInto` naming the summary) and inserts
//! the summaries in one atomic, durable step.

pub(crate) mod actor;
mod locks;
pub(crate) mod rank;

pub(crate) use crate::store::{
    Compacted, Memory, MemoryId, MemoryScope, MemoryStore, MemoryType, NewMemory, Remembered,
};
pub(crate) use locks::ScopeLocks;
pub(crate) use rank::RecallWeights;
pub use rank::ScoredMemory;

#[cfg(test)]
mod tests;
