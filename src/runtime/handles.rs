//! What a service reaches an agent's memory and conversations through: small
//! cloneable handles over the Memory actor and the conversation store, so an
//! embedder never holds an actor address or names a message type.

use std::sync::Arc;

use troupe_actors::ActorRef;

use crate::conversation::{Appended, ChatMessage, ConversationStore, NewMessage};
use crate::memory::actor::{Forget, ListMemories, MemoryActor, Recall, Remember};
use crate::memory::{Memory, MemoryId, MemoryScope, NewMemory, Remembered, ScoredMemory};

use super::RuntimeError;

/// The agents' memories: remember, recall (ranked as agents recall them),
/// list and forget, per [`MemoryScope`]. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Memories {
    actor: ActorRef<MemoryActor>,
}

/// The Memory actor could not answer (the runtime is stopping, or the
/// actor is restarting).
fn memory_error(source: troupe_actors::CallError) -> RuntimeError {
    RuntimeError::Unavailable {
        what: "the Memory actor",
        source,
    }
}

impl Memories {
    pub(crate) fn new(actor: ActorRef<MemoryActor>) -> Self {
        Memories { actor }
    }

    /// Stores a memory. With `idempotency_key`, a repeated call stores
    /// nothing and returns the first one (`created: false`).
    pub async fn remember(
        &self,
        memory: NewMemory,
        idempotency_key: Option<String>,
    ) -> Result<Remembered, RuntimeError> {
        let msg = Remember {
            memory,
            idempotency_key,
        };
        Ok(self.actor.send(msg).await.map_err(memory_error)??)
    }

    /// The `limit` memories of `scope` most useful for `query`, best first,
    /// with their scores (recency, importance, relevance). Marks them used.
    pub async fn recall(
        &self,
        scope: MemoryScope,
        query: impl Into<String>,
        limit: usize,
    ) -> Result<Vec<ScoredMemory>, RuntimeError> {
        let msg = Recall {
            scope,
            query: query.into(),
            limit,
        };
        Ok(self.actor.send(msg).await.map_err(memory_error)??)
    }

    /// The memories of `scope`, oldest first; compacted originals too when
    /// `include_archived`.
    pub async fn list(
        &self,
        scope: MemoryScope,
        include_archived: bool,
    ) -> Result<Vec<Memory>, RuntimeError> {
        let msg = ListMemories {
            scope,
            include_archived,
        };
        Ok(self.actor.send(msg).await.map_err(memory_error)??)
    }

    /// Deletes a memory for good; whether it existed.
    pub async fn forget(&self, id: MemoryId) -> Result<bool, RuntimeError> {
        Ok(self
            .actor
            .send(Forget { id })
            .await
            .map_err(memory_error)??)
    }
}

/// The conversations: messages by conversation id, oldest first. Cheap to
/// clone; `Send + Sync`.
#[derive(Clone)]
pub struct Conversations {
    store: Arc<dyn ConversationStore>,
}

impl Conversations {
    pub(crate) fn new(store: Arc<dyn ConversationStore>) -> Self {
        Conversations { store }
    }

    /// Every message of a conversation, oldest first (empty when it has none).
    pub async fn messages(&self, conversation_id: &str) -> Result<Vec<ChatMessage>, RuntimeError> {
        Ok(self.store.list_messages(conversation_id).await?)
    }

    /// The last `limit` messages, oldest first.
    pub async fn recent(
        &self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, RuntimeError> {
        Ok(self.store.recent(conversation_id, limit).await?)
    }

    /// Adds a message (a person's turn, a note from the service). With
    /// `idempotency_key`, a repeated call adds nothing.
    pub async fn append(
        &self,
        message: NewMessage,
        idempotency_key: Option<String>,
    ) -> Result<Appended, RuntimeError> {
        Ok(self.store.append(message, idempotency_key).await?)
    }
}
