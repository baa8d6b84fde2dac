//! Troupe: LLM agents as supervised actors, with a durable job engine.
//!
//! This crate is the agent runtime built on `troupe-actors`: the job model
//! ([`job`]) and its durable storage ([`store`]) are the base that the job
//! engine, the providers and the CLI build on.

pub mod agent;
pub mod alloc;
pub mod cli;
pub mod config;
pub mod conversation;
pub mod engine;
pub mod http;
pub mod in_memory;
pub mod job;
pub mod memory;
pub mod metrics;
pub mod names;
pub mod provider;
pub mod runtime;
pub mod secrets;
pub mod sled;
pub mod store;
pub mod tools;
