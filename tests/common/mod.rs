//! Helpers shared by the integration tests: a control API served in
//! process ([`daemon`]) and the `troupe` binary ([`cli`]).

// Each test crate uses a part of these.
#![allow(dead_code)]

pub mod cli;
pub mod daemon;
