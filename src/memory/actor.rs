//! The Memory actor: the one way agents and tools reach memories.
//!
//! Owns: an `Arc<dyn MemoryStore>` and the [`RecallWeights`] recall ranks
//! with. Takes, one message type per interaction: [`Remember`],
//! [`Recall`] (ranks the scope's live memories and touches those it
//! returns), [`Forget`], [`ListMemories`] and [`Compact`]. Every reply is a
//! `Result<_, StoreError>`.
//!
//! Each store call runs as a reply future beside the mailbox, so a slow
//! flush never blocks other messages. The actor keeps no state of its own
//! beyond configuration, so a restart loses nothing.

use std::sync::Arc;

use chrono::Utc;
use troupe_actors::{Actor, Context, Handler, Message, Reply};

use super::rank::{rank, RecallWeights, ScoredMemory};
use super::{Compacted, Memory, MemoryId, MemoryScope, MemoryStore, NewMemory, Remembered};
use crate::store::StoreError;

/// Hosts the memory store for the actor tree. Build one per (re)start with
/// [`MemoryActor::new`] from a child factory; it is cheap (two clones).
pub(crate) struct MemoryActor {
    store: Arc<dyn MemoryStore>,
    weights: RecallWeights,
}

impl MemoryActor {
    /// An actor over `store`, ranking recalls with `weights` (validated, so
    /// a bad config is refused at start and not at the first recall).
    pub(crate) fn new(
        store: Arc<dyn MemoryStore>,
        weights: RecallWeights,
    ) -> Result<Self, StoreError> {
        weights.validate()?;
        Ok(MemoryActor { store, weights })
    }
}

impl Actor for MemoryActor {}

/// Store a memory (the `remember` tool, a reflection step).
#[derive(Debug, Clone)]
pub(crate) struct Remember {
    /// What to store.
    pub memory: NewMemory,
    /// Makes a replayed tool step store nothing new; see
    /// [`MemoryStore::remember`].
    pub idempotency_key: Option<String>,
}

impl Message for Remember {
    type Result = Result<Remembered, StoreError>;
}

/// The `limit` most useful live (not archived) memories of `scope` for
/// `query`, best first, ranked by [`rank`] at the current time. Returned
/// memories are touched (their `lastAccessedAt` becomes now, durably, and so
/// in the answer), which is what makes recency mean "recently used".
#[derive(Debug, Clone)]
pub(crate) struct Recall {
    /// Whose memories.
    pub scope: MemoryScope,
    /// What they should be relevant to (free text; may be empty).
    pub query: String,
    /// How many at most.
    pub limit: usize,
}

impl Message for Recall {
    type Result = Result<Vec<ScoredMemory>, StoreError>;
}

/// Delete a memory for good; answers whether it existed.
#[derive(Debug, Clone)]
pub(crate) struct Forget {
    /// Which memory.
    pub id: MemoryId,
}

impl Message for Forget {
    type Result = Result<bool, StoreError>;
}

/// A scope's memories, oldest first (`troupe memories AGENT`, compaction).
#[derive(Debug, Clone)]
pub(crate) struct ListMemories {
    /// Whose memories.
    pub scope: MemoryScope,
    /// Also the archived originals of past compactions.
    pub include_archived: bool,
}

impl Message for ListMemories {
    type Result = Result<Vec<Memory>, StoreError>;
}

/// Archive `originals` and store `summaries` in one atomic step (the
/// `memory_compaction_worker`); see [`MemoryStore::compact`].
#[derive(Debug, Clone)]
pub(crate) struct Compact {
    /// The scope every original and summary belongs to.
    pub scope: MemoryScope,
    /// The memories the summaries replace.
    pub originals: Vec<MemoryId>,
    /// The summaries.
    pub summaries: Vec<NewMemory>,
}

impl Message for Compact {
    type Result = Result<Compacted, StoreError>;
}

impl Handler<Remember> for MemoryActor {
    fn handle(
        &mut self,
        msg: Remember,
        _: &mut Context<'_, Self>,
    ) -> Reply<Result<Remembered, StoreError>> {
        let store = self.store.clone();
        Reply::future(async move { store.remember(msg.memory, msg.idempotency_key).await })
    }
}

impl Handler<Recall> for MemoryActor {
    fn handle(
        &mut self,
        msg: Recall,
        _: &mut Context<'_, Self>,
    ) -> Reply<Result<Vec<ScoredMemory>, StoreError>> {
        let store = self.store.clone();
        let weights = self.weights;
        Reply::future(async move {
            msg.scope.validate()?;
            if msg.limit == 0 {
                return Ok(Vec::new());
            }
            let candidates = store.list_memories(&msg.scope, false).await?;
            let now = Utc::now();
            let mut ranked = rank(candidates, &msg.query, now, &weights, msg.limit);
            if !ranked.is_empty() {
                let ids: Vec<MemoryId> = ranked.iter().map(|s| s.memory.id).collect();
                store.touch(&ids, now).await?;
                for scored in &mut ranked {
                    if scored.memory.last_accessed_at < now {
                        scored.memory.last_accessed_at = now;
                    }
                }
            }
            Ok(ranked)
        })
    }
}

impl Handler<Forget> for MemoryActor {
    fn handle(
        &mut self,
        msg: Forget,
        _: &mut Context<'_, Self>,
    ) -> Reply<Result<bool, StoreError>> {
        let store = self.store.clone();
        Reply::future(async move { store.forget(msg.id).await })
    }
}

impl Handler<ListMemories> for MemoryActor {
    fn handle(
        &mut self,
        msg: ListMemories,
        _: &mut Context<'_, Self>,
    ) -> Reply<Result<Vec<Memory>, StoreError>> {
        let store = self.store.clone();
        Reply::future(async move {
            msg.scope.validate()?;
            store.list_memories(&msg.scope, msg.include_archived).await
        })
    }
}

impl Handler<Compact> for MemoryActor {
    fn handle(
        &mut self,
        msg: Compact,
        _: &mut Context<'_, Self>,
    ) -> Reply<Result<Compacted, StoreError>> {
        let store = self.store.clone();
        Reply::future(async move {
            store
                .compact(&msg.scope, msg.originals, msg.summaries)
                .await
        })
    }
}
