//! What a supervised actor is: its state, the messages it takes, its replies.
//!
//! These traits are ours rather than actix's so that code built on
//! `troupe-actors` never names an actix type: the runtime underneath can be
//! swapped without touching the actors themselves.

use std::future::Future;
use std::pin::Pin;

use crate::context::Context;

/// A message an actor can be sent; `Result` is what the sender gets back.
pub trait Message: Send + 'static {
    /// The reply type.
    type Result: Send + 'static;
}

/// The state of one supervised actor.
///
/// A fresh value is made by the child's factory at every (re)start, so a
/// restart always begins from a clean state: whatever a crash left half-done
/// is dropped with the old value.
pub trait Actor: Sized + 'static {
    /// Called once the instance is in place, before it handles any message.
    /// Timers and background futures belong here: they do not survive a
    /// restart, and this runs again after each one.
    fn started(&mut self, _ctx: &mut Context<'_, Self>) {}

    /// Called when the supervisor stops this actor (shutdown, or a sibling's
    /// failure under one_for_all / rest_for_one). The returned future may do
    /// asynchronous clean-up; the supervisor waits for it at most the child's
    /// shutdown timeout, then drops the instance anyway.
    fn stopping(&mut self, _ctx: &mut Context<'_, Self>) -> Reply<()> {
        Reply::Ready(())
    }
}

/// How an actor answers message `M`.
pub trait Handler<M: Message>: Actor {
    /// Handles one message. A panic in here, or in the future returned in a
    /// [`Reply::Future`], is caught: the sender gets an error, the instance is
    /// dropped and the supervisor decides whether to restart it.
    fn handle(&mut self, msg: M, ctx: &mut Context<'_, Self>) -> Reply<M::Result>;
}

/// A boxed, single-threaded future, as the actor's executor runs it.
pub type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T> + 'static>>;

/// The answer to a message: now, or later from a future.
///
/// A future runs concurrently with the messages that follow (the mailbox is
/// not blocked while it waits), so a slow call such as a model request never
/// stalls the actor. It cannot borrow the actor; to change the actor's state
/// when it finishes, send the actor a message from inside it.
pub enum Reply<R> {
    /// The answer is ready.
    Ready(R),
    /// The answer comes when this future resolves.
    Future(LocalBoxFuture<R>),
}

impl<R> Reply<R> {
    /// An immediate answer.
    pub fn ready(value: R) -> Self {
        Reply::Ready(value)
    }

    /// An answer computed by a future.
    pub fn future<F>(fut: F) -> Self
    where
        F: Future<Output = R> + 'static,
    {
        Reply::Future(Box::pin(fut))
    }
}

impl<R> From<R> for Reply<R> {
    fn from(value: R) -> Self {
        Reply::Ready(value)
    }
}

impl<R> std::fmt::Debug for Reply<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Ready(_) => f.write_str("Reply::Ready(..)"),
            Reply::Future(_) => f.write_str("Reply::Future(..)"),
        }
    }
}
