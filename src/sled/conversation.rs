//! [`ConversationStore`] for [`SledStore`]: messages on their own sled
//! trees, made durable by the store's group commit.
//!
//! Trees:
//! - `messages`: key = `u16 BE len(conversationId) ++ conversationId ++` the
//!   16 bytes of the message's UUID v7; value = the [`ChatMessage`] as
//!   camelCase JSON. The length prefix makes a conversation's prefix
//!   self-delimiting, so one prefix scan is one conversation in append order
//!   (the record key is its own time index: no second tree to keep in step).
//! - `message_keys`: key = an idempotency key (UTF-8); value = the full
//!   `messages` key of the message it stored.
//!
//! An append without a key is one insert; with a key it is one transaction
//! over both trees, so a key never points at a message that a crash lost.

use async_trait::async_trait;
use chrono::Utc;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::SledStore;
use crate::store::{
    validate_conversation_id, validate_key, Appended, ChatMessage, ConversationStore, NewMessage,
    StoreError,
};

/// Tree of messages.
pub(super) const MESSAGES: &str = "messages";
/// Tree of idempotency key → message key.
pub(super) const MESSAGE_KEYS: &str = "message_keys";

fn conversation_prefix(conversation_id: &str) -> Vec<u8> {
    // Validation caps ids at 256 bytes; saturate rather than wrap.
    let len = u16::try_from(conversation_id.len()).unwrap_or(u16::MAX);
    let mut key = Vec::with_capacity(2 + usize::from(len) + 16);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(&conversation_id.as_bytes()[..usize::from(len)]);
    key
}

fn message_key(message: &ChatMessage) -> Vec<u8> {
    let mut key = conversation_prefix(&message.conversation_id);
    key.extend_from_slice(message.id.as_bytes());
    key
}

/// The conversation id and message id of a `messages` key (the inverse of
/// [`message_key`]), or `None` when it is not one.
pub(super) fn decode_message_key(key: &[u8]) -> Option<(String, uuid::Uuid)> {
    let len = usize::from(u16::from_be_bytes(key.get(..2)?.try_into().ok()?));
    let conversation = std::str::from_utf8(key.get(2..2 + len)?).ok()?;
    let id = uuid::Uuid::from_slice(key.get(2 + len..)?).ok()?;
    Some((conversation.to_owned(), id))
}

pub(super) fn decode(key: &[u8], bytes: &[u8]) -> Result<ChatMessage, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::CorruptRecord {
        what: "message",
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

impl SledStore {
    fn conversation_tree(&self, name: &'static str) -> Result<sled::Tree, StoreError> {
        // sled keeps opened trees in a map: a lookup after the first call.
        self.inner
            .db
            .open_tree(name)
            .map_err(|e| StoreError::backend("open conversation tree", e))
    }

    /// The message an idempotency key stored, once that write is durable.
    async fn appended_by_key(
        &self,
        messages: &sled::Tree,
        key: &str,
        message_key: &[u8],
    ) -> Result<Appended, StoreError> {
        self.durable("append message").await?;
        let bytes = messages
            .get(message_key)
            .map_err(|e| StoreError::backend("append message", e))?
            .ok_or_else(|| StoreError::NotFound {
                what: "message",
                id: format!("stored under idempotency key {key:?}"),
            })?;
        Ok(Appended {
            message: decode(message_key, &bytes)?,
            created: false,
        })
    }

    fn scan_messages(
        &self,
        conversation_id: &str,
        limit: Option<usize>,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        validate_conversation_id(conversation_id)?;
        let messages = self.conversation_tree(MESSAGES)?;
        let scan = messages.scan_prefix(conversation_prefix(conversation_id));
        let entries: Vec<_> = match limit {
            Some(limit) => {
                let mut last: Vec<_> = scan.rev().take(limit).collect();
                last.reverse();
                last
            }
            None => scan.collect(),
        };
        entries
            .into_iter()
            .map(|entry| {
                let (key, value) = entry.map_err(|e| StoreError::backend("read messages", e))?;
                decode(&key, &value)
            })
            .collect()
    }
}

#[async_trait]
impl ConversationStore for SledStore {
    async fn append(
        &self,
        message: NewMessage,
        idempotency_key: Option<String>,
    ) -> Result<Appended, StoreError> {
        self.writable()?;
        message.validate()?;
        let messages = self.conversation_tree(MESSAGES)?;
        let message = message.into_message(Utc::now());
        let key = message_key(&message);
        let bytes =
            serde_json::to_vec(&message).map_err(|e| StoreError::backend("encode message", e))?;
        let Some(idem) = idempotency_key else {
            messages
                .insert(key, bytes)
                .map_err(|e| self.write_error("append message", e))?;
            self.durable("append message").await?;
            return Ok(Appended {
                message,
                created: true,
            });
        };
        validate_key(&idem)?;
        let keys = self.conversation_tree(MESSAGE_KEYS)?;
        // Ok(None): stored; Ok(Some(k)): the key had stored message key `k`.
        let existing = (&messages, &keys)
            .transaction(|(messages, keys)| {
                if let Some(existing) = keys.get(idem.as_bytes())? {
                    return Ok(Some(existing));
                }
                keys.insert(idem.as_bytes(), key.as_slice())?;
                messages.insert(key.as_slice(), bytes.as_slice())?;
                Ok::<_, ConflictableTransactionError<StoreError>>(None)
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => self.write_error("append message", e),
            })?;
        if let Some(existing) = existing {
            return self.appended_by_key(&messages, &idem, &existing).await;
        }
        self.durable("append message").await?;
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
        if limit == 0 {
            validate_conversation_id(conversation_id)?;
            return Ok(Vec::new());
        }
        self.scan_messages(conversation_id, Some(limit))
    }

    async fn list_messages(&self, conversation_id: &str) -> Result<Vec<ChatMessage>, StoreError> {
        self.scan_messages(conversation_id, None)
    }
}
