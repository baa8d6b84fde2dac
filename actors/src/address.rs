//! Addresses: how callers reach a supervised actor.
//!
//! An [`ActorRef`] points at the child's mailbox, which outlives every
//! restart of the instance behind it, so a caller keeps the same address for
//! the life of the tree and never looks an actor up again.

use std::sync::Arc;
use std::time::Duration;

use crate::actor::{Actor, Handler, Message};
use crate::cell::Cell;
use crate::error::{CallError, TrySendError};
use crate::status::{ChildState, MailboxStats, QueueToken, Shared};

/// A message on its way through a mailbox. The guard keeps the mailbox depth
/// right whatever happens to the message: handled, or dropped unhandled.
pub(crate) struct Envelope<M> {
    pub(crate) msg: M,
    pub(crate) slot: QueueSlot,
}

impl<M: Message> actix::Message for Envelope<M> {
    type Result = M::Result;
}

/// Counts one queued message for as long as it lives (see `Shared`).
pub(crate) struct QueueSlot(#[allow(dead_code)] Arc<QueueToken>);

impl QueueSlot {
    pub(crate) fn new(shared: &Shared) -> Self {
        QueueSlot(shared.queue_slot())
    }
}

/// The address of a supervised actor of type `A`. Cheap to clone.
pub struct ActorRef<A: Actor> {
    pub(crate) addr: actix::Addr<Cell<A>>,
    pub(crate) shared: Arc<Shared>,
}

impl<A: Actor> Clone for ActorRef<A> {
    fn clone(&self) -> Self {
        Self {
            addr: self.addr.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<A: Actor> std::fmt::Debug for ActorRef<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorRef")
            .field("name", &&*self.shared.name)
            .field("state", &self.shared.state())
            .finish()
    }
}

impl<A: Actor> ActorRef<A> {
    /// Sends a message and waits for the answer. Waits for room while the
    /// mailbox is full (backpressure). If the instance crashes or is stopped
    /// before answering, the error says so; it never hangs on a dead actor.
    pub async fn send<M>(&self, msg: M) -> Result<M::Result, CallError>
    where
        M: Message,
        A: Handler<M>,
    {
        let envelope = Envelope {
            msg,
            slot: QueueSlot::new(&self.shared),
        };
        self.addr
            .send(envelope)
            .await
            .map_err(|_| CallError::Dropped {
                actor: self.shared.name.to_string(),
            })
    }

    /// Like [`send`](Self::send), giving up after `timeout`.
    pub async fn send_timeout<M>(&self, msg: M, timeout: Duration) -> Result<M::Result, CallError>
    where
        M: Message,
        A: Handler<M>,
    {
        match tokio::time::timeout(timeout, self.send(msg)).await {
            Ok(res) => res,
            Err(_) => Err(CallError::Timeout {
                actor: self.shared.name.to_string(),
                timeout,
            }),
        }
    }

    /// Queues a message without waiting and without an answer; fails at once
    /// when the mailbox is full, handing the message back.
    pub fn try_send<M>(&self, msg: M) -> Result<(), TrySendError<M>>
    where
        M: Message,
        A: Handler<M>,
    {
        let envelope = Envelope {
            msg,
            slot: QueueSlot::new(&self.shared),
        };
        self.addr.try_send(envelope).map_err(|e| {
            let (full, envelope) = match e {
                actix::prelude::SendError::Full(env) => (true, env),
                actix::prelude::SendError::Closed(env) => (false, env),
            };
            let actor = self.shared.name.to_string();
            if full {
                TrySendError::Full {
                    actor,
                    msg: envelope.msg,
                }
            } else {
                TrySendError::Closed {
                    actor,
                    msg: envelope.msg,
                }
            }
        })
    }

    /// An address that only knows message type `M`, hiding the actor type.
    pub fn recipient<M>(&self) -> Recipient<M>
    where
        M: Message,
        A: Handler<M>,
    {
        Recipient {
            inner: self.addr.clone().recipient(),
            shared: self.shared.clone(),
        }
    }

    /// The child's id.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The child's current state.
    pub fn state(&self) -> ChildState {
        self.shared.state()
    }

    /// How many times the child was restarted.
    pub fn restarts(&self) -> u64 {
        self.shared.restarts()
    }

    /// Mailbox figures.
    pub fn mailbox(&self) -> MailboxStats {
        self.shared.mailbox()
    }
}

/// An address for one message type, whatever actor takes it. Tool routing
/// uses these: the router knows the message, not the tool's actor type.
pub struct Recipient<M: Message> {
    inner: actix::Recipient<Envelope<M>>,
    shared: Arc<Shared>,
}

impl<M: Message> Clone for Recipient<M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<M: Message> std::fmt::Debug for Recipient<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recipient")
            .field("name", &&*self.shared.name)
            .finish()
    }
}

impl<M: Message> Recipient<M> {
    /// Sends and waits for the answer; see [`ActorRef::send`].
    pub async fn send(&self, msg: M) -> Result<M::Result, CallError> {
        let envelope = Envelope {
            msg,
            slot: QueueSlot::new(&self.shared),
        };
        self.inner
            .send(envelope)
            .await
            .map_err(|_| CallError::Dropped {
                actor: self.shared.name.to_string(),
            })
    }

    /// The receiving child's id.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The receiving child's current state.
    pub fn state(&self) -> ChildState {
        self.shared.state()
    }
}
