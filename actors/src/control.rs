//! The out-of-band channel from a supervisor to one of its children.
//!
//! Supervisor commands must overtake the child's mailbox (a sibling's crash
//! restarts this child *now*, not after the hundred messages queued ahead),
//! so they travel on a side channel that the child polls next to its mailbox.
//! It is a mutex-guarded queue rather than a tokio channel because 100,000
//! idle children must stay cheap: an empty `VecDeque` allocates nothing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::oneshot;

/// What a stopped child becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterStop {
    /// Hold messages in the mailbox: a restart is coming.
    Pause,
    /// Stopped for good: answer messages with an error.
    Halt,
}

/// A supervisor's order to a child.
#[derive(Debug)]
pub(crate) enum Command {
    /// Build a new instance after `delay`, numbered `generation`; the ack is
    /// sent once it runs (or has failed to start, which is reported as an exit).
    Start {
        generation: u64,
        delay: Duration,
        ack: Option<oneshot::Sender<()>>,
    },
    /// Stop the instance gracefully (within the child's shutdown timeout);
    /// the ack is sent once it is gone.
    Stop {
        then: AfterStop,
        ack: Option<oneshot::Sender<()>>,
    },
    /// The tree is stopped for good (its root halted): nothing will start
    /// the child again, so it lets go of what it kept for restarts (its
    /// factory, and with it whatever the factory captured; the link to its
    /// parent) and ends once nobody addresses it. Follows a `Stop` with
    /// `Halt` on the same channel; a child still running is stopped first.
    Release,
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Command>,
    waker: Option<Waker>,
}

/// Sending side, kept by the supervisor.
#[derive(Debug, Clone)]
pub(crate) struct ControlSender(Arc<Mutex<Inner>>);

/// Receiving side, kept by the child.
#[derive(Debug)]
pub(crate) struct ControlReceiver(Arc<Mutex<Inner>>);

pub(crate) fn channel() -> (ControlSender, ControlReceiver) {
    let inner = Arc::new(Mutex::new(Inner::default()));
    (ControlSender(inner.clone()), ControlReceiver(inner))
}

impl ControlSender {
    pub(crate) fn send(&self, cmd: Command) {
        // A poisoned lock only means a panic elsewhere while holding it; the
        // queue itself is still consistent (push/pop are not interrupted).
        let waker = {
            let mut inner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            inner.queue.push_back(cmd);
            inner.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

#[cfg(test)]
impl ControlSender {
    /// Whether the receiving end (the child's cell) still exists.
    pub(crate) fn receiver_alive(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }
}

impl ControlReceiver {
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Command> {
        let mut inner = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match inner.queue.pop_front() {
            Some(cmd) => Poll::Ready(cmd),
            None => {
                match &inner.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => inner.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}
