//! Conversations (stub: being written).
