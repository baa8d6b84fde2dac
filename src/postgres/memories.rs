//! Memories (stub: being written).
