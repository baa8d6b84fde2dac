//! The supervisor actor: restarts children under a strategy, within a
//! restart intensity, and escalates to its own parent past it.
//!
//! Owns: its children's slots (spec settings, generation, restart counts,
//! backoff state, control handle) and the log of recent restarts.
//!
//! Takes: [`ChildExited`] from its children; [`SupCommand`] (start, stop)
//! from its parent or the tree handle; `GetChildren` and `AddChild` from
//! [`SupervisorRef`](crate::SupervisorRef).
//!
//! Multi-step work (stopping siblings in reverse order, starting them again
//! in order, ordered shutdown) runs as one `ctx.wait` future, so no other
//! exit is handled half-way through; exits that arrive meanwhile queue up
//! and those from a generation that has since been replaced are ignored.

mod actor;
mod slot;

pub(crate) use actor::{AddChild, GetChildren, RestartChild, SupCommand, SupervisorActor};
pub(crate) use slot::{Control, ParentLink, Slot};
