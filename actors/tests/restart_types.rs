//! Permanent, transient and temporary children.

mod common;

use common::*;
use troupe_actors::{CallError, ChildState, Restart, SupervisorSpec};

fn tree_with(restart: Restart, log: &Log) -> troupe_actors::Tree {
    SupervisorSpec::new("root")
        .child(probe("w", log).restart(restart))
        .start()
        .unwrap()
}

#[actix_rt::test]
async fn permanent_restarts_after_normal_stop_and_after_failure() {
    let log = Log::default();
    let tree = tree_with(Restart::Permanent, &log);
    let w = tree.actor::<Probe>("w").unwrap();
    w.send(StopNormal).await.unwrap();
    assert_eq!(w.send(Inc).await, Ok(1));
    w.send(Fail).await.unwrap();
    assert_eq!(w.send(Inc).await, Ok(1));
    assert_eq!(w.restarts(), 2);
    assert_eq!(log.count("start:w"), 3);
}

#[actix_rt::test]
async fn transient_stays_stopped_after_normal_stop_but_restarts_after_panic() {
    let log = Log::default();
    let tree = tree_with(Restart::Transient, &log);
    let w = tree.actor::<Probe>("w").unwrap();
    assert!(w.send(Panic).await.is_err());
    assert_eq!(w.send(Inc).await, Ok(1), "abnormal exit: restarted");
    w.send(StopNormal).await.unwrap();
    eventually("transient child stopped", || {
        w.state() == ChildState::Stopped
    })
    .await;
    assert_eq!(
        w.send(Inc).await,
        Err(CallError::Dropped { actor: "w".into() }),
        "a stopped child answers with an error at once"
    );
    assert_eq!(w.restarts(), 1);
}

#[actix_rt::test]
async fn temporary_is_never_restarted() {
    let log = Log::default();
    let tree = tree_with(Restart::Temporary, &log);
    let w = tree.actor::<Probe>("w").unwrap();
    assert!(w.send(Panic).await.is_err());
    eventually("temporary child stopped", || {
        w.state() == ChildState::Stopped
    })
    .await;
    assert!(w.send(Inc).await.is_err());
    assert_eq!(w.restarts(), 0);
    assert_eq!(log.count("start:w"), 1);
    let info = tree.root().children().await.unwrap();
    assert_eq!(info[0].state, ChildState::Stopped);
    // The supervisor itself is unaffected.
    assert_eq!(tree.root().state(), ChildState::Running);
}
