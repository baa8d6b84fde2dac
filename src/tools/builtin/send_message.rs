//! The `send_message` tool: stores a message from the agent in a
//! conversation (the task's, unless another is named) and returns its id.
//! Another conversation than the task's is refused unless the agent's
//! config grants it (`conversations`, see [`policy`](crate::tools::policy)).
//!
//! The message is appended with the idempotency key
//! `send_message:<job>:<step>:<call>`, which the conversation store records
//! in the same atomic step as the message: a repeated call stores nothing
//! and answers with the first message's id.
//!
//! Result: `{"ok":true,"data":{"messageId":…,"conversationId":…,"created":…}}`.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::conversation::{ConversationStore, MessageId, NewMessage, Role};
use crate::names::SEND_MESSAGE_TOOL;
use crate::tools::{Policies, ToolContext, ToolError, TypedTool};

use super::jobs::store_error;

/// Arguments of `send_message`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SendMessageArgs {
    /// The message text.
    #[schemars(length(min = 1))]
    pub content: String,
    /// The conversation to post in; defaults to the current task's.
    #[serde(default)]
    pub conversation_id: Option<String>,
}

/// What `send_message` answers: the stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageSent {
    /// The message.
    pub message_id: MessageId,
    /// The conversation it is in.
    pub conversation_id: String,
    /// False when a repeat of the call found the message stored before.
    pub created: bool,
}

/// The `send_message` tool.
pub(crate) struct SendMessageTool {
    store: Arc<dyn ConversationStore>,
    policies: Arc<Policies>,
}

impl SendMessageTool {
    /// Stores messages in `store`, in the conversations `policies` allow.
    pub(crate) fn new(store: Arc<dyn ConversationStore>, policies: Arc<Policies>) -> Self {
        SendMessageTool { store, policies }
    }
}

#[async_trait]
impl TypedTool for SendMessageTool {
    type Args = SendMessageArgs;
    type Output = MessageSent;
    type Error = ToolError;

    fn name(&self) -> &str {
        SEND_MESSAGE_TOOL
    }

    fn description(&self) -> &str {
        "Send a message to the conversation (the current one unless conversationId \
         is given). Returns the stored message's id."
    }

    async fn run(&self, args: SendMessageArgs, ctx: ToolContext) -> Result<MessageSent, ToolError> {
        let conversation_id = match args.conversation_id {
            Some(named) => {
                self.policies.check_conversation(&ctx, &named, "post to")?;
                named
            }
            None => ctx.conversation_id.clone().ok_or_else(|| {
                ToolError::invalid_argument(
                    "/conversationId",
                    "this task has no conversation; give conversationId",
                )
            })?,
        };
        let message = NewMessage::new(
            conversation_id,
            Role::Assistant,
            &ctx.agent_id,
            args.content,
        );
        let appended = self
            .store
            .append(
                message,
                Some(format!("{SEND_MESSAGE_TOOL}:{}", ctx.idempotency_key())),
            )
            .await
            .map_err(store_error)?;
        Ok(MessageSent {
            message_id: appended.message.id,
            conversation_id: appended.message.conversation_id,
            created: appended.created,
        })
    }
}
