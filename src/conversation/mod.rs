//! Conversations: the messages exchanged with and between agents, kept
//! durably so that they can be replayed as history into the next prompt.
//! The records and the [`ConversationStore`] port are the storage layer's
//! (`crate::store`), re-exported here.
//!
//! A conversation is just an id (the job ctx's `conversationId`); it exists
//! as soon as it has a message. Messages are ordered by their UUID v7 id,
//! which the store assigns at append time, so "recent" means "appended last".

pub(crate) use crate::store::{
    Appended, ChatMessage, ConversationStore, MessageId, NewMessage, Role,
};
