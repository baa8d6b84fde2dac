//! The cell: the actix actor that hosts one supervised instance.
//!
//! Owns: the instance (`Option<A>`, empty between a crash and the restart),
//! the factory that makes new ones and its own address (both until its tree
//! is stopped for good: then the cell lets go of them, see
//! [`Command::Release`]), and the receiving end of the supervisor's control
//! channel. The mailbox is actix's and outlives every instance, which is
//! what keeps addresses valid across restarts.
//!
//! Takes: `Envelope<M>` for every `M` the actor handles; `Command`s from its
//! supervisor on the control channel (start, stop).
//!
//! Why it exists: actix alone lets a panicking handler end the actor for
//! good. Here each handler, hook, timer and spawned future runs under
//! `catch_unwind`; a panic drops the instance, answers the in-flight message
//! with an error (its reply channel is dropped), reports the exit to the
//! supervisor and holds the mailbox until the supervisor says what next.
//! Every transition that must cancel the instance's futures goes through an
//! actix context restart (`ctx.stop()` under `actix::Supervisor`), which
//! drops its timers while keeping the mailbox. Reply futures and spawned
//! futures are tasks of their own ([`spawn_task`]); they end when the
//! cell's `epoch` moves on, which it does when the instance is dropped, when
//! a graceful stop begins and when the context stops: a task is not polled
//! again after that (it is dropped at its next wake-up).

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use actix::dev::{MessageResponse, OneshotSender};
use actix::fut::{ActorFuture, ActorFutureExt};
use actix::AsyncContext;
use futures::FutureExt;
use tokio::sync::oneshot;

use crate::actor::{Actor, Handler, LocalBoxFuture, Message, Reply};
use crate::address::{ActorRef, Envelope};
use crate::context::Context;
use crate::control::{self, AfterStop, Command, ControlReceiver, ControlSender};
use crate::exit::ExitReason;
use crate::status::{ChildState, Shared};
use crate::supervisor::ParentLink;

/// Makes a fresh instance; an `Err` is a start failure the supervisor counts.
pub(crate) type Factory<A> = Arc<dyn Fn() -> Result<A, String> + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Created, first instance not built yet.
    Init,
    /// An instance handles messages.
    Running,
    /// The instance is running its `stopping` hook.
    Stopping,
    /// No instance; the mailbox is held until a `Start` comes.
    Paused,
    /// No instance; messages are answered with an error.
    Stopped,
    /// Stopped for good, its tree with it: no factory, no parent, no
    /// listener. The actix context ends once nobody addresses the cell.
    Released,
}

struct PendingStart {
    sleep: Pin<Box<tokio::time::Sleep>>,
    ack: Option<oneshot::Sender<()>>,
}

/// How a cell is spawned.
pub(crate) struct CellConfig<A: Actor> {
    pub(crate) name: Arc<str>,
    pub(crate) factory: Factory<A>,
    pub(crate) capacity: usize,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) arbiter: Option<actix::ArbiterHandle>,
}

pub(crate) struct Cell<A: Actor> {
    // Boxed so the cell is `Unpin` (actix requires it) whatever `A` is.
    instance: Option<Box<A>>,
    /// `None` once released: nothing starts the cell again, and what the
    /// factory captured (a store, say) must not outlive the tree.
    factory: Option<Factory<A>>,
    shared: Arc<Shared>,
    control: ControlReceiver,
    parent: ParentLink,
    generation: u64,
    phase: Phase,
    shutdown_timeout: Duration,
    pending_exit: Option<ExitReason>,
    pending_start: Option<PendingStart>,
    /// A `Release` came while an instance ran: released once it stopped.
    release_after_stop: bool,
    /// Moves on when an instance ends, which ends that instance's tasks
    /// (see [`spawn_task`]).
    epoch: Epoch,
    /// The cell's own address, kept until it is released. actix's
    /// supervisor restarts a stopped context only while its mailbox is
    /// connected, that is while some strong address exists; without this
    /// one, a child whose outside handles were all dropped (one added with
    /// `start_child` by a caller that kept no handle) ended at its first
    /// restart instead of restarting.
    own_address: Option<actix::Addr<Cell<A>>>,
    /// The same, weak, made once: what the instance's tasks tell of a
    /// panic. actix's `address()` allocates a sender of its own (two
    /// `Arc`s) at every call, and a task is spawned for every reply answered
    /// by a future: a handful per agent task. A weak address upgrades for
    /// as long as the cell exists. Tasks used to hold strong ones, and those
    /// were what kept a cell without outside handles restartable while a
    /// task ran; `own_address` does that now, for every cell.
    me: actix::WeakAddr<Cell<A>>,
}

impl<A: Actor> Cell<A> {
    /// Starts a cell (on the current arbiter unless one is given) and returns
    /// its address and the supervisor's end of its control channel.
    pub(crate) fn spawn(config: CellConfig<A>, parent: ParentLink) -> (ActorRef<A>, ControlSender) {
        let (tx, rx) = control::channel();
        let shared = Arc::new(Shared::new(config.name, config.capacity));
        let cell_shared = shared.clone();
        let capacity = config.capacity;
        let factory = config.factory;
        let shutdown_timeout = config.shutdown_timeout;
        let make = move |ctx: &mut actix::Context<Cell<A>>| {
            ctx.set_mailbox_capacity(capacity);
            let own_address = ctx.address();
            Cell {
                instance: None,
                factory: Some(factory),
                shared: cell_shared,
                control: rx,
                parent,
                generation: 0,
                phase: Phase::Init,
                shutdown_timeout,
                pending_exit: None,
                pending_start: None,
                release_after_stop: false,
                epoch: tokio::sync::watch::channel(0).0,
                me: own_address.downgrade(),
                own_address: Some(own_address),
            }
        };
        let addr = match config.arbiter {
            Some(arbiter) => actix::Supervisor::start_in_arbiter(&arbiter, make),
            None => actix::Supervisor::start(make),
        };
        (ActorRef { addr, shared }, tx)
    }

    /// Runs `f` on the instance under `catch_unwind`, then acts on a stop or
    /// failure the actor asked for. `None` when there is no instance or it
    /// panicked.
    pub(crate) fn with_instance<R>(
        &mut self,
        ctx: &mut actix::Context<Self>,
        f: impl FnOnce(&mut A, &mut Context<'_, A>) -> R,
    ) -> Option<R> {
        let instance = self.instance.as_mut()?;
        let mut c = Context {
            inner: ctx,
            shared: &self.shared,
            exit: &mut self.pending_exit,
            epoch: &self.epoch,
            me: &self.me,
        };
        match catch_unwind(AssertUnwindSafe(|| f(instance, &mut c))) {
            Ok(value) => {
                if let Some(reason) = self.pending_exit.take() {
                    self.exit(reason, ctx);
                }
                Some(value)
            }
            Err(payload) => {
                self.pending_exit = None;
                self.exit(ExitReason::from_panic(payload), ctx);
                None
            }
        }
    }

    /// The running instance ended: drop it, tell the supervisor, hold the
    /// mailbox until it decides.
    pub(crate) fn exit(&mut self, reason: ExitReason, ctx: &mut actix::Context<Self>) {
        if self.phase != Phase::Running {
            return;
        }
        self.drop_instance();
        self.phase = Phase::Paused;
        self.shared.set_state(ChildState::Restarting);
        self.parent.report(self.generation, reason);
        actix::ActorContext::stop(ctx);
    }

    /// Ends the tasks of the current instance (see [`spawn_task`]).
    fn end_tasks(&self) {
        self.epoch.send_modify(|e| *e += 1);
    }

    fn drop_instance(&mut self) {
        // The instance's tasks (reply futures, spawned futures) end with it.
        self.end_tasks();
        if let Some(instance) = self.instance.take() {
            // A panicking `Drop` must not take the cell down with it.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(instance)));
        }
    }

    fn start_instance(&mut self, ctx: &mut actix::Context<Self>, ack: Option<oneshot::Sender<()>>) {
        let made = match &self.factory {
            Some(factory) => catch_unwind(AssertUnwindSafe(|| factory())),
            None => Ok(Err(String::from("its tree was stopped for good"))),
        };
        self.phase = Phase::Running;
        match made {
            Ok(Ok(instance)) => {
                self.instance = Some(Box::new(instance));
                self.shared.set_state(ChildState::Running);
                ctx.spawn(Listener);
                self.with_instance(ctx, |actor, c| actor.started(c));
            }
            Ok(Err(why)) => self.exit(ExitReason::StartFailed(why), ctx),
            Err(payload) => {
                let why = crate::exit::panic_message(payload.as_ref());
                self.exit(
                    ExitReason::StartFailed(format!("factory panicked: {why}")),
                    ctx,
                );
            }
        }
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
    }

    /// Acts on one supervisor command; `true` when the listener that polled
    /// it must end (the cell changes mode).
    fn on_command(&mut self, cmd: Command, ctx: &mut actix::Context<Self>) -> bool {
        match (self.phase, cmd) {
            (Phase::Running, Command::Start { ack, .. }) => {
                send_ack(ack);
                false
            }
            (Phase::Running, Command::Stop { then, ack }) => {
                self.graceful_stop(then, ack, ctx);
                true
            }
            (
                Phase::Paused,
                Command::Start {
                    generation,
                    delay,
                    ack,
                },
            ) => {
                self.generation = generation;
                if delay.is_zero() {
                    self.start_instance(ctx, ack);
                    return true;
                }
                self.pending_start = Some(PendingStart {
                    sleep: Box::pin(tokio::time::sleep(delay)),
                    ack,
                });
                false
            }
            (Phase::Paused, Command::Stop { then, ack }) => self.stop_paused(then, ack, ctx),
            (
                Phase::Stopped,
                Command::Start {
                    generation,
                    delay,
                    ack,
                },
            ) => self.revive(generation, delay, ack, ctx),
            (Phase::Stopped, Command::Stop { then, ack }) => self.stop_stopped(then, ack, ctx),
            (Phase::Running, Command::Release) => {
                // Not expected (a `Stop` with `Halt` comes first), but a
                // release never leaves an instance running.
                self.release_after_stop = true;
                self.graceful_stop(AfterStop::Halt, None, ctx);
                true
            }
            (Phase::Paused, Command::Release) => {
                self.stop_paused(AfterStop::Halt, None, ctx);
                self.release();
                true
            }
            (Phase::Stopped, Command::Release) => {
                self.release();
                true
            }
            // Init and Stopping have no listener; nothing arrives there.
            // Released has none either, nor a parent to command it.
            (
                Phase::Init | Phase::Stopping | Phase::Released,
                Command::Start { ack, .. } | Command::Stop { ack, .. },
            ) => {
                send_ack(ack);
                false
            }
            (Phase::Init | Phase::Stopping | Phase::Released, Command::Release) => false,
        }
    }

    /// The tree is stopped for good: drop what was kept for restarts (the
    /// factory, the parent link, a pending start, the cell's own address).
    /// Nothing is listened to any more; messages are answered with an
    /// error, and the actix context ends (dropping the cell) once the last
    /// outside address is gone.
    fn release(&mut self) {
        self.drop_instance();
        self.phase = Phase::Released;
        self.shared.set_state(ChildState::Stopped);
        self.pending_start = None;
        self.factory = None;
        self.parent = ParentLink::Released;
        // From now on only outside handles keep the cell.
        self.own_address = None;
    }

    /// `Stop` while no instance runs: a pending start is dropped; `Halt`
    /// stops the cell for good (its mailbox answers `Dropped`).
    fn stop_paused(
        &mut self,
        then: AfterStop,
        ack: Option<oneshot::Sender<()>>,
        ctx: &mut actix::Context<Self>,
    ) -> bool {
        self.pending_start = None;
        send_ack(ack);
        if then == AfterStop::Pause {
            return false;
        }
        self.phase = Phase::Stopped;
        self.shared.set_state(ChildState::Stopped);
        actix::ActorContext::stop(ctx);
        true
    }

    /// `Start` of a stopped cell (its subtree restarted): back to paused,
    /// with the start pending its delay, through an actix restart.
    fn revive(
        &mut self,
        generation: u64,
        delay: Duration,
        ack: Option<oneshot::Sender<()>>,
        ctx: &mut actix::Context<Self>,
    ) -> bool {
        self.generation = generation;
        self.phase = Phase::Paused;
        self.shared.set_state(ChildState::Restarting);
        self.pending_start = Some(PendingStart {
            sleep: Box::pin(tokio::time::sleep(delay)),
            ack,
        });
        actix::ActorContext::stop(ctx);
        true
    }

    /// `Stop` of a stopped cell: `Pause` makes it paused again (messages
    /// queue for the next start); `Halt` changes nothing.
    fn stop_stopped(
        &mut self,
        then: AfterStop,
        ack: Option<oneshot::Sender<()>>,
        ctx: &mut actix::Context<Self>,
    ) -> bool {
        send_ack(ack);
        if then != AfterStop::Pause {
            return false;
        }
        self.phase = Phase::Paused;
        self.shared.set_state(ChildState::Restarting);
        actix::ActorContext::stop(ctx);
        true
    }

    /// Runs the instance's `stopping` hook within the shutdown timeout, then
    /// drops it (the hard stop) and all its futures.
    fn graceful_stop(
        &mut self,
        then: AfterStop,
        ack: Option<oneshot::Sender<()>>,
        ctx: &mut actix::Context<Self>,
    ) {
        self.phase = Phase::Stopping;
        // The instance's tasks end here, before its `stopping` hook: as
        // before they were tasks (actix holds its items while a `wait`
        // future runs, and dropped them at the stop), none of them runs
        // on, or panics unseen, once the instance is stopping.
        self.end_tasks();
        let hook = match self.instance.as_mut() {
            Some(instance) => {
                let mut ignored_exit = None;
                let mut c = Context {
                    inner: ctx,
                    shared: &self.shared,
                    exit: &mut ignored_exit,
                    epoch: &self.epoch,
                    me: &self.me,
                };
                catch_unwind(AssertUnwindSafe(|| instance.stopping(&mut c))).ok()
            }
            None => None,
        };
        match hook {
            Some(Reply::Future(fut)) => {
                let timeout = self.shutdown_timeout;
                let name = self.shared.name.clone();
                let wait = async move {
                    let guarded = AssertUnwindSafe(fut).catch_unwind();
                    if tokio::time::timeout(timeout, guarded).await.is_err() {
                        tracing::warn!(actor = %name, ?timeout, "stopping hook overran its shutdown timeout; stopping hard");
                    }
                };
                ctx.wait(
                    actix::fut::wrap_future::<_, Self>(wait)
                        .map(move |(), cell, ctx| cell.finish_stop(then, ack, ctx)),
                );
            }
            Some(Reply::Ready(())) | None => self.finish_stop(then, ack, ctx),
        }
    }

    fn finish_stop(
        &mut self,
        then: AfterStop,
        ack: Option<oneshot::Sender<()>>,
        ctx: &mut actix::Context<Self>,
    ) {
        self.drop_instance();
        match then {
            AfterStop::Pause => {
                self.phase = Phase::Paused;
                self.shared.set_state(ChildState::Restarting);
            }
            AfterStop::Halt => {
                self.phase = Phase::Stopped;
                self.shared.set_state(ChildState::Stopped);
            }
        }
        if std::mem::take(&mut self.release_after_stop) {
            self.release();
        }
        send_ack(ack);
        actix::ActorContext::stop(ctx);
    }
}

fn send_ack(ack: Option<oneshot::Sender<()>>) {
    if let Some(ack) = ack {
        let _ = ack.send(());
    }
}

impl<A: Actor> actix::Actor for Cell<A> {
    type Context = actix::Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        match self.phase {
            Phase::Init => self.start_instance(ctx, None),
            // Paused: hold the mailbox; only the control channel is read.
            Phase::Paused => {
                ctx.wait(Listener);
            }
            Phase::Stopped | Phase::Running => {
                ctx.spawn(Listener);
            }
            // Nothing keeps a released cell alive but its addresses.
            Phase::Stopping | Phase::Released => {}
        }
    }

    fn stopping(&mut self, _: &mut Self::Context) -> actix::Running {
        actix::Running::Stop
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // However the context ended, no task of it outlives it.
        self.end_tasks();
    }
}

impl<A: Actor> actix::Supervised for Cell<A> {}

/// Reads the control channel (and a pending delayed start) for the cell.
/// Spawned while the mailbox runs, waited on while it is held.
struct Listener;

impl<A: Actor> ActorFuture<Cell<A>> for Listener {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        cell: &mut Cell<A>,
        ctx: &mut actix::Context<Cell<A>>,
        task: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        loop {
            if let Some(pending) = cell.pending_start.as_mut() {
                if pending.sleep.as_mut().poll(task).is_ready() {
                    let ack = cell.pending_start.take().and_then(|p| p.ack);
                    cell.start_instance(ctx, ack);
                    return Poll::Ready(());
                }
            }
            match cell.control.poll_recv(task) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(cmd) => {
                    if cell.on_command(cmd, ctx) {
                        return Poll::Ready(());
                    }
                }
            }
        }
    }
}

/// Ends the tasks of one instance: see [`spawn_task`].
pub(crate) type Epoch = tokio::sync::watch::Sender<u64>;

/// Runs `fut` as a task of its own on the cell's thread, then `done` with its
/// output. Why not actix's own `ctx.spawn`: actix polls every future spawned
/// in a context each time any one of them is woken, so an actor with 1,000
/// replies in flight (a worker running 1,000 jobs, a provider with 1,000
/// calls out) did 1,000 polls per wake-up, and that cost more than the work.
/// As tasks, each is polled only when it is woken.
///
/// The instance semantics stay: the task ends (dropped, so a waiting caller
/// gets an error) when the instance it was spawned by ends (`ended` moves
/// on), and a panic in it ends that instance like a panic in a handler (the
/// cell is told by a [`TaskPanicked`] message).
pub(crate) fn spawn_task<A: Actor, T: 'static>(
    mut ended: tokio::sync::watch::Receiver<u64>,
    cell: actix::WeakAddr<Cell<A>>,
    fut: impl Future<Output = T> + 'static,
    done: impl FnOnce(T) + 'static,
) {
    let spawned_in = *ended.borrow_and_update();
    actix::spawn(async move {
        let guarded = AssertUnwindSafe(fut).catch_unwind();
        let outcome = tokio::select! {
            // Checked first: once the instance has ended, the future is not
            // polled again, not even when it could finish on that poll.
            biased;
            // Moved on, or the cell is gone.
            _ = ended.changed() => return,
            outcome = guarded => outcome,
        };
        match outcome {
            Ok(value) => done(value),
            Err(payload) => {
                // A cell already gone has no instance left to end.
                if let Some(cell) = cell.upgrade() {
                    cell.do_send(TaskPanicked {
                        reason: ExitReason::from_panic(payload),
                        epoch: spawned_in,
                    });
                }
            }
        }
    });
}

/// A task of the instance of `epoch` panicked.
pub(crate) struct TaskPanicked {
    reason: ExitReason,
    epoch: u64,
}

impl actix::Message for TaskPanicked {
    type Result = ();
}

impl<A: Actor> actix::Handler<TaskPanicked> for Cell<A> {
    type Result = ();

    fn handle(&mut self, msg: TaskPanicked, ctx: &mut Self::Context) {
        // A task of an instance that has ended since is no reason to end
        // its successor.
        if *self.epoch.borrow() == msg.epoch {
            self.exit(msg.reason, ctx);
        }
    }
}

/// The cell's answer to one message, handed to actix.
pub(crate) enum CellReply<A: Actor, R> {
    Ready(R),
    /// Answered by a task of the instance (see [`spawn_task`]), which tells
    /// the cell (its weak address) of a panic.
    Future(
        LocalBoxFuture<R>,
        tokio::sync::watch::Receiver<u64>,
        actix::WeakAddr<Cell<A>>,
    ),
    /// No answer: the sender gets an error.
    Dropped,
}

impl<A, M> MessageResponse<Cell<A>, Envelope<M>> for CellReply<A, M::Result>
where
    A: Handler<M>,
    M: Message,
{
    fn handle(self, _ctx: &mut actix::Context<Cell<A>>, tx: Option<OneshotSender<M::Result>>) {
        match self {
            CellReply::Ready(value) => {
                if let Some(tx) = tx {
                    let _ = tx.send(value);
                }
            }
            CellReply::Dropped => drop(tx),
            CellReply::Future(fut, ended, cell) => {
                spawn_task(ended, cell, fut, move |value| {
                    if let Some(tx) = tx {
                        let _ = tx.send(value);
                    }
                });
            }
        }
    }
}

impl<A, M> actix::Handler<Envelope<M>> for Cell<A>
where
    A: Handler<M>,
    M: Message,
{
    type Result = CellReply<A, M::Result>;

    fn handle(&mut self, envelope: Envelope<M>, ctx: &mut Self::Context) -> Self::Result {
        let Envelope { msg, slot } = envelope;
        drop(slot);
        if self.phase != Phase::Running {
            return CellReply::Dropped;
        }
        self.shared.handled();
        // Subscribed before the handler runs: if the handler ends the
        // instance (`stop`, `fail`), its reply future is ended with it.
        let ended = self.epoch.subscribe();
        match self.with_instance(ctx, |actor, c| actor.handle(msg, c)) {
            Some(Reply::Ready(value)) => CellReply::Ready(value),
            Some(Reply::Future(fut)) => CellReply::Future(fut, ended, self.me.clone()),
            None => CellReply::Dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Idle;
    impl Actor for Idle {}

    fn spawn_idle() -> (ActorRef<Idle>, ControlSender) {
        let config = CellConfig {
            name: Arc::from("idle"),
            factory: Arc::new(|| Ok(Idle)),
            capacity: 16,
            shutdown_timeout: Duration::from_secs(1),
            arbiter: None,
        };
        Cell::spawn(config, ParentLink::Released)
    }

    /// Waits for an acknowledgement, 10 s at most.
    async fn acked(what: &str, ack: oneshot::Receiver<()>) {
        let waited = tokio::time::timeout(Duration::from_secs(10), ack).await;
        assert!(matches!(waited, Ok(Ok(()))), "{what}: {waited:?}");
    }

    /// Lets the cell's arbiter run until `cond` holds (10 s at most).
    async fn until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[actix_rt::test]
    async fn a_cell_nobody_addresses_lives_on_until_released_then_ends() {
        let (handle, control) = spawn_idle();
        until("running", || handle.state() == ChildState::Running).await;
        drop(handle);
        // A restart cycle without any outside handle: the cell survives it.
        let (ack, stopped) = oneshot::channel();
        control.send(Command::Stop {
            then: AfterStop::Pause,
            ack: Some(ack),
        });
        acked("the stop", stopped).await;
        let (ack, started) = oneshot::channel();
        control.send(Command::Start {
            generation: 1,
            delay: Duration::ZERO,
            ack: Some(ack),
        });
        acked("the restart", started).await;
        assert!(control.receiver_alive());
        // Released, it keeps nothing alive: with no handle left, it ends.
        let (ack, halted) = oneshot::channel();
        control.send(Command::Stop {
            then: AfterStop::Halt,
            ack: Some(ack),
        });
        acked("the halt", halted).await;
        control.send(Command::Release);
        until("the released cell ended", || !control.receiver_alive()).await;
    }
}
