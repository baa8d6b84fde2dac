//! Conversation messages as rows, and the [`ConversationStore`] port. A
//! message is whole in `messages.data`, keyed by its conversation and its
//! UUIDv7 id (so id order is append order). The keys of idempotent appends
//! are in `message_keys`, inserted in the same statement as the message
//! they stored (`ON CONFLICT DO NOTHING`), so of racing callers on any
//! nodes exactly one appends and the others read its message. Validation
//! is the port's ([`NewMessage::validate`], [`validate_conversation_id`]).

use async_trait::async_trait;
use chrono::Utc;
use tokio_postgres::types::Json;
use tokio_postgres::Row;

use super::{db, PostgresStore};
use crate::store::{
    validate_conversation_id, validate_key, Appended, ChatMessage, ConversationStore, NewMessage,
    StoreError,
};

/// The message in column `data` of a row that has its `id` too, or a
/// corrupt-record error naming it.
pub(super) fn message_of(row: &Row) -> Result<ChatMessage, StoreError> {
    match row.try_get::<_, Json<ChatMessage>>("data") {
        Ok(Json(message)) => Ok(message),
        Err(e) => Err(StoreError::CorruptRecord {
            what: "message",
            key: row
                .try_get::<_, uuid::Uuid>("id")
                .map(|id| id.to_string())
                .unwrap_or_else(|_| "?".into()),
            reason: e.to_string(),
        }),
    }
}

fn messages_of(rows: &[Row]) -> Result<Vec<ChatMessage>, StoreError> {
    rows.iter().map(message_of).collect()
}

impl PostgresStore {
    /// The message an idempotency key appended (it won a race, or an
    /// earlier call).
    async fn appended_by_key(&self, key: String) -> Result<Appended, StoreError> {
        self.run("append message", move |client, _| async move {
            let op = "append message";
            let stmt = client
                .prepare_cached(
                    "SELECT k.message_id AS id, m.data FROM message_keys k \
                     LEFT JOIN messages m \
                       ON m.conversation_id = k.conversation_id AND m.id = k.message_id \
                     WHERE k.key = $1",
                )
                .await
                .map_err(db(op))?;
            let row = client
                .query_opt(&stmt, &[&key.as_bytes()])
                .await
                .map_err(db(op))?
                .ok_or_else(|| StoreError::Backend {
                    operation: op,
                    source: format!("idempotency key {key:?} was taken but is not stored").into(),
                })?;
            let id: uuid::Uuid = row.try_get("id").map_err(db(op))?;
            let data: Option<Json<ChatMessage>> =
                row.try_get("data").map_err(|e| StoreError::CorruptRecord {
                    what: "message",
                    key: id.to_string(),
                    reason: e.to_string(),
                })?;
            match data {
                Some(Json(message)) => Ok(Appended {
                    message,
                    created: false,
                }),
                None => Err(StoreError::NotFound {
                    what: "message",
                    id: id.to_string(),
                }),
            }
        })
        .await
    }

    /// The messages of a conversation in append order: the last `limit`
    /// of them, or all.
    async fn read_messages(
        &self,
        conversation_id: &str,
        limit: Option<usize>,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        validate_conversation_id(conversation_id)?;
        if limit == Some(0) {
            return Ok(Vec::new());
        }
        let conversation = conversation_id.as_bytes().to_vec();
        self.run("read messages", move |client, _| async move {
            let op = "read messages";
            let rows = match limit {
                None => {
                    let stmt = client
                        .prepare_cached(
                            "SELECT id, data FROM messages WHERE conversation_id = $1 ORDER BY id",
                        )
                        .await
                        .map_err(db(op))?;
                    client.query(&stmt, &[&conversation]).await
                }
                Some(limit) => {
                    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                    let stmt = client
                        .prepare_cached(
                            "SELECT id, data FROM ( \
                                 SELECT id, data FROM messages WHERE conversation_id = $1 \
                                 ORDER BY id DESC LIMIT $2) last \
                             ORDER BY id",
                        )
                        .await
                        .map_err(db(op))?;
                    client.query(&stmt, &[&conversation, &limit]).await
                }
            }
            .map_err(db(op))?;
            messages_of(&rows)
        })
        .await
    }
}

#[async_trait]
impl ConversationStore for PostgresStore {
    async fn append(
        &self,
        message: NewMessage,
        idempotency_key: Option<String>,
    ) -> Result<Appended, StoreError> {
        message.validate()?;
        if let Some(key) = &idempotency_key {
            validate_key(key)?;
        }
        let message = message.into_message(Utc::now());
        let stored = message.clone();
        let key = idempotency_key.clone();
        let created = self
            .write("append message", move |client, _| async move {
                let op = "append message";
                let conversation = message.conversation_id.as_bytes();
                let data = Json(&message);
                let inserted = match &key {
                    None => {
                        let stmt = client
                            .prepare_cached(
                                "INSERT INTO messages (conversation_id, id, data) \
                                 VALUES ($1, $2, $3)",
                            )
                            .await
                            .map_err(db(op))?;
                        client
                            .execute(&stmt, &[&conversation, &message.id, &data])
                            .await
                            .map_err(db(op))?
                    }
                    // One statement, so one transaction: the message goes
                    // in only with its key, and only if the key was free.
                    Some(key) => {
                        let stmt = client
                            .prepare_cached(
                                "WITH k AS ( \
                                     INSERT INTO message_keys (key, conversation_id, message_id) \
                                     VALUES ($1, $2, $3) \
                                     ON CONFLICT DO NOTHING RETURNING conversation_id, message_id) \
                                 INSERT INTO messages (conversation_id, id, data) \
                                 SELECT conversation_id, message_id, $4::json FROM k",
                            )
                            .await
                            .map_err(db(op))?;
                        client
                            .execute(&stmt, &[&key.as_bytes(), &conversation, &message.id, &data])
                            .await
                            .map_err(db(op))?
                    }
                };
                Ok(inserted > 0)
            })
            .await?;
        match (created, idempotency_key) {
            (true, _) => Ok(Appended {
                message: stored,
                created: true,
            }),
            (false, Some(key)) => self.appended_by_key(key).await,
            (false, None) => Err(StoreError::Backend {
                operation: "append message",
                source: "the insert stored nothing".into(),
            }),
        }
    }

    async fn recent(
        &self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, StoreError> {
        self.read_messages(conversation_id, Some(limit)).await
    }

    async fn list_messages(&self, conversation_id: &str) -> Result<Vec<ChatMessage>, StoreError> {
        self.read_messages(conversation_id, None).await
    }
}
