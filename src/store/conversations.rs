//! The conversations port: the messages exchanged with and between agents, kept
//! durably so that they can be replayed as history into the next prompt.
//!
//! A conversation is just an id (the job ctx's `conversationId`); it exists
//! as soon as it has a message. Messages are ordered by their UUID v7 id,
//! which the store assigns at append time, so "recent" means "appended last".

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::StoreError;

/// A message's id: a UUID v7 (append order).
pub type MessageId = Uuid;

/// Largest accepted message `content`, in bytes: large enough for a long
/// tool result, small enough that history stays a prompt and not a dump.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Largest accepted conversation id or author, in bytes (part of index keys).
pub const MAX_NAME_BYTES: usize = 256;

/// Who speaks in a message, as model APIs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A person (or another service on their behalf).
    User,
    /// An agent's answer.
    Assistant,
    /// Instructions set by the operator.
    System,
    /// A tool's output.
    Tool,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
            Role::Tool => "tool",
        })
    }
}

/// One stored message, camelCase JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    /// UUID v7, assigned by the store.
    pub id: MessageId,
    /// The conversation it belongs to.
    pub conversation_id: String,
    /// Who speaks.
    pub role: Role,
    /// Who wrote it: an agent id, a user id, a tool name.
    pub author: String,
    /// The text.
    pub content: String,
    /// When it was appended.
    pub created_at: DateTime<Utc>,
}

/// What a caller gives to append a message; the store assigns id and time
/// so that id order is append order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewMessage {
    /// The conversation; non-empty, at most [`MAX_NAME_BYTES`].
    pub conversation_id: String,
    /// Who speaks.
    pub role: Role,
    /// Who wrote it; non-empty, at most [`MAX_NAME_BYTES`].
    pub author: String,
    /// The text; may be empty (an assistant turn that only called tools),
    /// at most [`MAX_MESSAGE_BYTES`].
    pub content: String,
}

impl NewMessage {
    /// A message for `conversation_id`.
    pub fn new(
        conversation_id: impl Into<String>,
        role: Role,
        author: impl Into<String>,
        content: impl Into<String>,
    ) -> Self {
        NewMessage {
            conversation_id: conversation_id.into(),
            role,
            author: author.into(),
            content: content.into(),
        }
    }

    /// Rejects what the store cannot index or a prompt should not carry,
    /// naming the camelCase field.
    pub fn validate(&self) -> Result<(), StoreError> {
        check_name("conversationId", &self.conversation_id)?;
        check_name("author", &self.author)?;
        if self.content.len() > MAX_MESSAGE_BYTES {
            return Err(StoreError::InvalidInput {
                field: "content",
                reason: format!(
                    "is {} bytes, more than the limit of {MAX_MESSAGE_BYTES}",
                    self.content.len()
                ),
            });
        }
        Ok(())
    }

    /// The stored record: a fresh UUID v7, created `now`.
    pub fn into_message(self, now: DateTime<Utc>) -> ChatMessage {
        ChatMessage {
            id: Uuid::now_v7(),
            conversation_id: self.conversation_id,
            role: self.role,
            author: self.author,
            content: self.content,
            created_at: now,
        }
    }
}

/// The answer to [`ConversationStore::append`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The stored message (the earlier one when the idempotency key was used).
    pub message: ChatMessage,
    /// `false` when the idempotency key had already stored this message.
    pub created: bool,
}

/// Durable storage of conversation messages. Object safe and free of
/// backend types (agents and the `send_message` tool hold an
/// `Arc<dyn ConversationStore>`); changes are durable before a method
/// returns.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Appends a message after [`NewMessage::validate`].
    ///
    /// With `idempotency_key`, the first call stores the message and the key
    /// in one atomic step; any later call with the same key stores nothing
    /// and returns that message with `created: false` — so a replayed tool
    /// step (`send_message` after a crash) makes no duplicate.
    async fn append(
        &self,
        message: NewMessage,
        idempotency_key: Option<String>,
    ) -> Result<Appended, StoreError>;

    /// The last `limit` messages of a conversation, oldest first (ready to
    /// be replayed as history). Empty for an unknown conversation.
    async fn recent(
        &self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError>;

    /// Every message of a conversation, oldest first.
    async fn list_messages(&self, conversation_id: &str) -> Result<Vec<ChatMessage>, StoreError>;
}

/// Checks the conversation id of a read ([`ConversationStore::recent`],
/// [`ConversationStore::list_messages`]): an empty one is refused
/// ([`StoreError::InvalidInput`] `conversationId`) rather than answered
/// with nothing, since no message can have it.
pub fn validate_conversation_id(conversation_id: &str) -> Result<(), StoreError> {
    if conversation_id.trim().is_empty() {
        return Err(StoreError::InvalidInput {
            field: "conversationId",
            reason: "must not be empty".into(),
        });
    }
    Ok(())
}

fn check_name(field: &'static str, value: &str) -> Result<(), StoreError> {
    if value.trim().is_empty() {
        return Err(StoreError::InvalidInput {
            field,
            reason: "must not be empty".into(),
        });
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(StoreError::InvalidInput {
            field,
            reason: format!(
                "is {} bytes, more than the limit of {MAX_NAME_BYTES}",
                value.len()
            ),
        });
    }
    Ok(())
}
