//! Conversations in memory: each conversation's messages by id (UUID v7,
//! so append order), the idempotency keys that appended them, and the
//! [`ConversationStore`] port.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::Utc;

use super::InMemoryStore;
use crate::store::{
    validate_conversation_id, validate_key, Appended, ChatMessage, ConversationStore, MessageId,
    NewMessage, StoreError,
};

/// Messages per conversation, and which message each key appended.
#[derive(Default)]
pub(super) struct Conversations {
    by_conversation: HashMap<String, BTreeMap<MessageId, ChatMessage>>,
    keys: HashMap<String, (String, MessageId)>,
}

impl Conversations {
    fn messages(&self, conversation_id: &str) -> impl DoubleEndedIterator<Item = &ChatMessage> {
        self.by_conversation
            .get(conversation_id)
            .into_iter()
            .flat_map(|messages| messages.values())
    }
}

#[async_trait]
impl ConversationStore for InMemoryStore {
    async fn append(
        &self,
        message: NewMessage,
        idempotency_key: Option<String>,
    ) -> Result<Appended, StoreError> {
        message.validate()?;
        if let Some(key) = &idempotency_key {
            validate_key(key)?;
        }
        let mut state = self.write()?;
        let conversations = &mut state.conversations;
        if let Some((conversation, id)) = idempotency_key
            .as_ref()
            .and_then(|key| conversations.keys.get(key))
        {
            let message = conversations
                .by_conversation
                .get(conversation)
                .and_then(|messages| messages.get(id))
                .cloned()
                .ok_or_else(|| StoreError::NotFound {
                    what: "message",
                    id: id.to_string(),
                })?;
            return Ok(Appended {
                message,
                created: false,
            });
        }
        let message = message.into_message(Utc::now());
        if let Some(key) = idempotency_key {
            conversations
                .keys
                .insert(key, (message.conversation_id.clone(), message.id));
        }
        conversations
            .by_conversation
            .entry(message.conversation_id.clone())
            .or_default()
            .insert(message.id, message.clone());
        Ok(Appended {
            message,
            created: true,
        })
    }

    async fn recent(
        &self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        validate_conversation_id(conversation_id)?;
        let state = self.lock();
        let mut last: Vec<ChatMessage> = state
            .conversations
            .messages(conversation_id)
            .rev()
            .take(limit)
            .cloned()
            .collect();
        last.reverse();
        Ok(last)
    }

    async fn list_messages(&self, conversation_id: &str) -> Result<Vec<ChatMessage>, StoreError> {
        validate_conversation_id(conversation_id)?;
        Ok(self
            .lock()
            .conversations
            .messages(conversation_id)
            .cloned()
            .collect())
    }
}
