//! The supervisor's actix actor and its messages.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::fut::ActorFutureExt;
use actix::{AsyncContext, Handler};

use crate::control::{AfterStop, Command};
use crate::error::{BuildError, CallError};
use crate::exit::ExitReason;
use crate::spec::{Registry, Restart, StartChild};
use crate::status::{ChildInfo, ChildState, Shared};
use crate::strategy::{Intensity, Strategy};
use crate::tree::StartChildError;

use super::slot::{ParentLink, Slot};

/// A child's instance ended (sent by the child's cell or sub-supervisor).
pub(crate) struct ChildExited {
    pub(crate) index: usize,
    pub(crate) generation: u64,
    pub(crate) reason: ExitReason,
}

impl actix::Message for ChildExited {
    type Result = ();
}

/// A command from this supervisor's own parent (or the tree handle).
pub(crate) struct SupCommand(pub(crate) Command);

impl actix::Message for SupCommand {
    type Result = ();
}

/// Snapshot of the children, in start order.
pub(crate) struct GetChildren;

impl actix::Message for GetChildren {
    type Result = Vec<ChildInfo>;
}

/// Adds and starts a child at run time; answers with its address.
pub(crate) struct AddChild(pub(crate) Box<dyn StartChild>);

impl actix::Message for AddChild {
    type Result = Result<Box<dyn Any + Send + Sync>, StartChildError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Supervising.
    Running,
    /// Running a multi-step sequence.
    Busy,
    /// Children stopped; waiting for the parent to start it again.
    Paused,
    /// Children stopped for good.
    Stopped,
    /// Stopped for good with its whole tree: its children let go of their
    /// factories, it let go of its parent; it only answers queries.
    Released,
}

pub(crate) struct SupervisorActor {
    pub(crate) path: Arc<str>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) strategy: Strategy,
    pub(crate) intensity: Intensity,
    pub(crate) children: Vec<Slot>,
    pub(crate) parent: ParentLink,
    restart_log: VecDeque<Instant>,
    generation: u64,
    phase: Phase,
}

impl SupervisorActor {
    pub(crate) fn new(
        path: Arc<str>,
        shared: Arc<Shared>,
        strategy: Strategy,
        intensity: Intensity,
        children: Vec<Slot>,
        parent: ParentLink,
    ) -> Self {
        Self {
            path,
            shared,
            strategy,
            intensity,
            children,
            parent,
            restart_log: VecDeque::new(),
            generation: 0,
            phase: Phase::Running,
        }
    }

    /// Records a restart; `false` when it exceeds the intensity.
    fn within_intensity(&mut self) -> bool {
        let now = Instant::now();
        self.restart_log.push_back(now);
        while let Some(&first) = self.restart_log.front() {
            if now.duration_since(first) > self.intensity.period {
                self.restart_log.pop_front();
            } else {
                break;
            }
        }
        self.restart_log.len() <= self.intensity.max_restarts as usize
    }

    /// Stops (reverse order) and restarts (start order) the children in
    /// `members`, after `delay`; `failed` is already down.
    fn restart_group(
        &mut self,
        ctx: &mut actix::Context<Self>,
        failed: usize,
        members: std::ops::Range<usize>,
        delay: Duration,
    ) {
        self.phase = Phase::Busy;
        let mut stops = Vec::new();
        for j in members.clone().rev() {
            let slot = &self.children[j];
            if j != failed && slot.control.state() != ChildState::Stopped {
                let then = if slot.restart == Restart::Temporary {
                    AfterStop::Halt
                } else {
                    AfterStop::Pause
                };
                stops.push((slot.control.clone(), then, slot.shutdown));
            }
        }
        let mut starts = Vec::new();
        for j in members {
            let slot = &mut self.children[j];
            let restartable = j == failed
                || (slot.restart != Restart::Temporary
                    && slot.control.state() != ChildState::Stopped);
            if restartable {
                let generation = slot.next_generation(delay);
                starts.push((slot.control.clone(), generation));
            }
        }
        let work = async move {
            for (control, then, timeout) in stops {
                control.stop(then, timeout).await;
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            for (control, generation) in starts {
                control.start(generation).await;
            }
        };
        ctx.wait(actix::fut::wrap_future::<_, Self>(work).map(|(), act, _| {
            if act.phase == Phase::Busy {
                act.phase = Phase::Running;
            }
        }));
    }

    /// Stops every child in reverse start order, then runs `after`.
    fn stop_all(
        &mut self,
        ctx: &mut actix::Context<Self>,
        then: AfterStop,
        after: impl FnOnce(&mut Self) + 'static,
    ) {
        if self.phase != Phase::Released {
            self.phase = Phase::Busy;
        }
        let stops: Vec<_> = self
            .children
            .iter()
            .rev()
            .filter(|slot| slot.control.state() != ChildState::Stopped || then == AfterStop::Pause)
            .map(|slot| (slot.control.clone(), slot.shutdown))
            .collect();
        let work = async move {
            for (control, timeout) in stops {
                control.stop(then, timeout).await;
            }
        };
        ctx.wait(actix::fut::wrap_future::<_, Self>(work).map(move |(), act, _| after(act)));
    }

    /// Too many restarts: stop everything and let the parent decide.
    fn escalate(&mut self, ctx: &mut actix::Context<Self>, cause: String) {
        tracing::error!(
            supervisor = %self.path,
            max_restarts = self.intensity.max_restarts,
            period = ?self.intensity.period,
            cause = %cause,
            "restart intensity exceeded; stopping all children and escalating"
        );
        self.shared.set_state(ChildState::Restarting);
        self.stop_all(ctx, AfterStop::Halt, move |act| {
            act.phase = Phase::Paused;
            let reason = ExitReason::Escalated {
                supervisor: act.path.to_string(),
                cause,
            };
            act.parent.report(act.generation, reason);
            // A root that gave up is never started again: nothing above it
            // restarts it, so its tree is stopped for good.
            if matches!(act.parent, ParentLink::Root(_)) {
                act.release();
            }
        });
    }

    /// Its tree is stopped for good (its root halted or gave up): every
    /// child (already halted) lets go of what it kept for restarts, and so
    /// does this supervisor of its parent. A strong link up from a child
    /// keeps its parent alive while the parent keeps the child's control,
    /// so without this the stopped tree (and what its factories captured:
    /// an engine's store) lived as long as the actix system. The slots stay,
    /// for the children's last states; they hold nothing but handles.
    fn release(&mut self) {
        if self.phase == Phase::Released {
            return;
        }
        self.phase = Phase::Released;
        for slot in &self.children {
            slot.control.release();
        }
        if !matches!(self.parent, ParentLink::Root(_)) {
            self.parent = ParentLink::Released;
        }
    }
}

impl actix::Actor for SupervisorActor {
    type Context = actix::Context<Self>;

    fn stopping(&mut self, _: &mut Self::Context) -> actix::Running {
        // Ended only when nothing can reach it any more (system stopped).
        actix::Running::Stop
    }
}

impl Handler<ChildExited> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: ChildExited, ctx: &mut Self::Context) {
        let path = self.path.clone();
        let Some(slot) = self.children.get_mut(msg.index) else {
            return;
        };
        if msg.generation != slot.generation {
            return;
        }
        slot.last_exit = Some(msg.reason.to_string());
        if self.phase != Phase::Running {
            return;
        }
        let restart = match slot.restart {
            Restart::Permanent => true,
            Restart::Transient => msg.reason.is_abnormal(),
            Restart::Temporary => false,
        };
        if !restart {
            tracing::info!(supervisor = %path, child = %slot.id, reason = %msg.reason, "child exited; not restarted ({:?})", slot.restart);
            slot.control.send(Command::Stop {
                then: AfterStop::Halt,
                ack: None,
            });
            return;
        }
        let cause = format!("child `{}` {}", slot.id, msg.reason);
        if !self.within_intensity() {
            self.escalate(ctx, cause);
            return;
        }
        let slot = &mut self.children[msg.index];
        if slot.started_at.elapsed() >= slot.backoff.policy().reset_after {
            slot.backoff.reset();
        }
        let delay = slot.backoff.next_delay();
        tracing::warn!(
            supervisor = %path,
            child = %slot.id,
            reason = %msg.reason,
            restarts = slot.restarts() + 1,
            delay_ms = delay.as_millis() as u64,
            strategy = ?self.strategy,
            "restarting child"
        );
        match self.strategy {
            Strategy::OneForOne => {
                let generation = slot.next_generation(delay);
                slot.control.send(Command::Start {
                    generation,
                    delay,
                    ack: None,
                });
            }
            Strategy::OneForAll => {
                let all = 0..self.children.len();
                self.restart_group(ctx, msg.index, all, delay);
            }
            Strategy::RestForOne => {
                let rest = msg.index..self.children.len();
                self.restart_group(ctx, msg.index, rest, delay);
            }
        }
    }
}

impl Handler<SupCommand> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, SupCommand(cmd): SupCommand, ctx: &mut Self::Context) {
        match cmd {
            Command::Start {
                generation,
                delay,
                ack,
            } => {
                if matches!(self.phase, Phase::Running | Phase::Released) {
                    if let Some(ack) = ack {
                        let _ = ack.send(());
                    }
                    return;
                }
                self.generation = generation;
                self.phase = Phase::Busy;
                self.restart_log.clear();
                let starts: Vec<_> = self
                    .children
                    .iter_mut()
                    .map(|slot| {
                        let generation = slot.next_generation(delay);
                        (slot.control.clone(), generation)
                    })
                    .collect();
                let work = async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    for (control, generation) in starts {
                        control.start(generation).await;
                    }
                };
                ctx.wait(
                    actix::fut::wrap_future::<_, Self>(work).map(move |(), act, _| {
                        act.phase = Phase::Running;
                        act.shared.set_state(ChildState::Running);
                        if let Some(ack) = ack {
                            let _ = ack.send(());
                        }
                    }),
                );
            }
            Command::Stop { then, ack } => {
                self.stop_all(ctx, then, move |act| {
                    let (phase, state) = match then {
                        AfterStop::Pause => (Phase::Paused, ChildState::Restarting),
                        AfterStop::Halt => (Phase::Stopped, ChildState::Stopped),
                    };
                    if act.phase != Phase::Released {
                        act.phase = phase;
                    }
                    act.shared.set_state(state);
                    if let ParentLink::Root(tx) = &act.parent {
                        if then == AfterStop::Halt {
                            tx.send_replace(Some(Ok(())));
                            // Nothing starts a root again.
                            act.release();
                        }
                    }
                    if let Some(ack) = ack {
                        let _ = ack.send(());
                    }
                });
            }
            Command::Release => {
                // After the parent's `Stop` with `Halt` (the mailbox keeps
                // their order); anything still running is stopped first.
                self.stop_all(ctx, AfterStop::Halt, |act| {
                    if act.phase != Phase::Released {
                        act.phase = Phase::Stopped;
                    }
                    act.shared.set_state(ChildState::Stopped);
                    act.release();
                });
            }
        }
    }
}

impl Handler<GetChildren> for SupervisorActor {
    type Result = Vec<ChildInfo>;

    fn handle(&mut self, _: GetChildren, _: &mut Self::Context) -> Vec<ChildInfo> {
        self.children.iter().map(Slot::info).collect()
    }
}

/// Restart a child from outside, as if it had failed (a watchdog's verdict
/// that it stopped answering); answers whether the child exists.
pub(crate) struct RestartChild {
    pub(crate) id: String,
    pub(crate) reason: String,
}

impl actix::Message for RestartChild {
    type Result = bool;
}

impl Handler<RestartChild> for SupervisorActor {
    type Result = bool;

    fn handle(&mut self, msg: RestartChild, ctx: &mut Self::Context) -> bool {
        let Some(index) = self.children.iter().position(|slot| *slot.id == *msg.id) else {
            return false;
        };
        let slot = &self.children[index];
        if slot.control.state() == ChildState::Stopped {
            return true;
        }
        // Stop the instance (it may be stuck: the stop is out of band and
        // bounded by the child's shutdown timeout), then handle it like any
        // abnormal exit: restart type, intensity, strategy, backoff.
        let generation = slot.generation;
        let control = slot.control.clone();
        let timeout = slot.shutdown;
        let reason = ExitReason::Failed(msg.reason);
        let me = ctx.address();
        ctx.spawn(actix::fut::wrap_future::<_, Self>(async move {
            control.stop(AfterStop::Pause, timeout).await;
            me.do_send(ChildExited {
                index,
                generation,
                reason,
            });
        }));
        true
    }
}

impl Handler<AddChild> for SupervisorActor {
    type Result = Result<Box<dyn Any + Send + Sync>, StartChildError>;

    fn handle(&mut self, AddChild(child): AddChild, ctx: &mut Self::Context) -> Self::Result {
        if self.phase == Phase::Released {
            // Its tree is stopped for good: a child started now would run
            // unsupervised, and hold this supervisor alive.
            return Err(StartChildError::Call(CallError::Dropped {
                actor: self.shared.name.to_string(),
            }));
        }
        let id = child.id().to_string();
        if self.children.iter().any(|slot| *slot.id == *id) {
            return Err(BuildError::DuplicateChild {
                supervisor: self.path.to_string(),
                child: id,
            }
            .into());
        }
        let path = format!("{}/{}", self.path, id);
        child.validate(&path)?;
        let link = ParentLink::Supervisor {
            recipient: ctx.address().recipient(),
            index: self.children.len(),
        };
        let mut registry = Registry::new();
        let slot = child.start(link, path.clone(), &mut registry);
        self.children.push(slot);
        registry
            .remove(&path)
            .ok_or(BuildError::InvalidId { id }.into())
    }
}
