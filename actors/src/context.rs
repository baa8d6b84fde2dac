//! What a handler may do besides answering: reach itself, stop, fail, and
//! start timers or background futures that live as long as the instance.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::AsyncContext;

use crate::actor::Actor;
use crate::address::ActorRef;
use crate::cell::Cell;
use crate::exit::ExitReason;
use crate::status::Shared;

/// The handle an actor gets in its hooks and handlers.
pub struct Context<'a, A: Actor> {
    pub(crate) inner: &'a mut actix::Context<Cell<A>>,
    pub(crate) shared: &'a Arc<Shared>,
    pub(crate) exit: &'a mut Option<ExitReason>,
    pub(crate) epoch: &'a crate::cell::Epoch,
    /// The cell's own weak address, for the tasks [`spawn`](Self::spawn)
    /// starts (see `Cell::me`).
    pub(crate) me: &'a actix::WeakAddr<Cell<A>>,
}

impl<A: Actor> Context<'_, A> {
    /// This actor's own address (the same across restarts).
    pub fn address(&self) -> ActorRef<A> {
        ActorRef {
            addr: self.inner.address(),
            shared: self.shared.clone(),
        }
    }

    /// This child's id.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Stops this instance once the current handler returns, as a normal
    /// exit: a transient or temporary child stays stopped, a permanent one is
    /// restarted.
    pub fn stop(&mut self) {
        self.exit.get_or_insert(ExitReason::Normal);
    }

    /// Ends this instance as a failure once the current handler returns; the
    /// supervisor restarts it under its strategy. Returning an error to the
    /// caller is usually better; this is for state that cannot be trusted.
    pub fn fail(&mut self, reason: impl Display) {
        *self.exit = Some(ExitReason::Failed(reason.to_string()));
    }

    /// Runs a future next to the mailbox for as long as this instance lives.
    /// A panic in it restarts the actor like a panic in a handler.
    pub fn spawn<F>(&mut self, fut: F)
    where
        F: Future<Output = ()> + 'static,
    {
        // A task of its own, polled only when woken (see `cell::spawn_task`).
        crate::cell::spawn_task(self.epoch.subscribe(), self.me.clone(), fut, |()| {});
    }

    /// Calls `f` with the actor every `every` while the instance lives.
    pub fn run_interval<F>(&mut self, every: Duration, mut f: F)
    where
        F: FnMut(&mut A, &mut Context<'_, A>) + 'static,
    {
        self.inner.run_interval(every, move |cell, ctx| {
            cell.with_instance(ctx, |actor, c| f(actor, c));
        });
    }

    /// Calls `f` with the actor once, after `after`, unless the instance has
    /// ended by then.
    pub fn run_later<F>(&mut self, after: Duration, f: F)
    where
        F: FnOnce(&mut A, &mut Context<'_, A>) + 'static,
    {
        self.inner.run_later(after, move |cell, ctx| {
            cell.with_instance(ctx, f);
        });
    }
}
