//! Troupe: LLM agents as supervised actors, with a durable job engine.
//!
//! The agent runtime built on `troupe-actors`; its layers land here in turn.
