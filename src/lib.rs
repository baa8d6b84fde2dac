//! Troupe: LLM agents as supervised actors, with a durable job engine.
//!
//! This crate is the agent runtime built on `troupe-actors`. So far it holds
//! the job model ([`job`]) and its durable storage ([`store`]); the scheduler,
//! workers, providers, tools and memory build on these.

pub mod cli;
pub mod engine;
pub mod job;
pub mod provider;
pub mod store;
