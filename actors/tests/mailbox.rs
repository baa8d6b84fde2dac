//! Bounded mailboxes: `send` waits for room, `try_send` fails when full.

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::*;
use troupe_actors::{Arbiter, SupervisorSpec, TrySendError};

#[actix_rt::test]
async fn full_mailbox_backpressures_send_and_refuses_try_send() {
    let log = Log::default();
    let arbiter = Arbiter::new();
    let tree = SupervisorSpec::new("root")
        .child(probe("w", &log).mailbox(2).on_arbiter(&arbiter))
        .start()
        .unwrap();
    let w = tree.actor::<Probe>("w").unwrap();
    assert_eq!(w.mailbox().capacity, 2);
    let barrier = Arc::new(Barrier::new(2));
    // Occupy the actor's thread so nothing is taken from the mailbox.
    w.try_send(BlockOn(barrier.clone())).unwrap();
    eventually("blocker taken", || w.mailbox().queued == 0).await;

    let mut accepted = 0;
    let refused = loop {
        match w.try_send(Inc) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 100, "the mailbox never filled");
    };
    assert!(
        matches!(refused, TrySendError::Full { ref actor, .. } if actor == "w"),
        "{refused:?}"
    );
    assert!(
        accepted >= 2,
        "capacity 2 accepts at least 2, got {accepted}"
    );
    assert_eq!(w.mailbox().queued, accepted);

    // A send now waits: it does not complete while the actor is held.
    let waiting = tokio::time::timeout(Duration::from_millis(50), w.send(Inc)).await;
    assert!(waiting.is_err(), "send must wait while the mailbox is full");

    barrier.wait();
    assert_eq!(w.send(Inc).await, Ok(accepted as u64 + 1));
    eventually("mailbox drained", || w.mailbox().queued == 0).await;
    tree.shutdown().await;
    arbiter.stop();
}
