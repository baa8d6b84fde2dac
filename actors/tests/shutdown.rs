//! Ordered shutdown: reverse start order, each child within its timeout;
//! a tree stopped for good lets go of its children's factories.

mod common;

use std::any::Any;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use common::*;
use troupe_actors::{
    CallError, ChildSpec, ChildState, Intensity, StartChildError, Strategy, SupervisorSpec,
};

#[actix_rt::test]
async fn children_stop_in_reverse_start_order_including_nested_trees() {
    let log = Log::default();
    let tree = SupervisorSpec::new("root")
        .child(probe("a", &log))
        .supervisor(
            SupervisorSpec::new("sub")
                .child(probe("s1", &log))
                .child(probe("s2", &log)),
        )
        .child(probe("c", &log))
        .start()
        .unwrap();
    let a = tree.actor::<Probe>("a").unwrap();
    assert_eq!(a.send(Inc).await, Ok(1));
    log.clear();
    tree.shutdown().await;
    assert_eq!(log.events(), vec!["stop:c", "stop:s2", "stop:s1", "stop:a"]);
    assert_eq!(tree.wait().await, Ok(()));
    assert_eq!(a.state(), ChildState::Stopped);
    assert!(a.send(Inc).await.is_err(), "stopped for good");
}

#[actix_rt::test]
async fn a_child_that_overruns_its_timeout_is_stopped_hard_and_the_rest_go_on() {
    let log = Log::default();
    let tree = SupervisorSpec::new("root")
        .child(probe("a", &log))
        .child(
            probe_with_stop("slow", &log, Some(Duration::from_secs(3600)))
                .shutdown_timeout(Duration::from_millis(20)),
        )
        .child(probe("c", &log))
        .start()
        .unwrap();
    let slow = tree.actor::<Probe>("slow").unwrap();
    eventually("all started", || log.events().len() == 3).await;
    log.clear();
    tree.shutdown().await;
    assert_eq!(log.events(), vec!["stop:c", "stop:slow", "stop:a"]);
    assert_eq!(slow.state(), ChildState::Stopped);
}

#[actix_rt::test]
async fn a_child_gets_its_async_stopping_hook_within_the_timeout() {
    let log = Log::default();
    let tree = SupervisorSpec::new("root")
        .child(
            probe_with_stop("tidy", &log, Some(Duration::from_millis(5)))
                .shutdown_timeout(Duration::from_secs(5)),
        )
        .start()
        .unwrap();
    tree.shutdown().await;
    assert_eq!(
        log.events(),
        vec!["start:tidy", "stop:tidy", "stopped-late:tidy"]
    );
}

/// A probe whose factory holds `held` (as an engine's holds its store).
fn holding<T: Send + Sync + 'static>(id: &str, log: &Log, held: &Arc<T>) -> ChildSpec<Probe> {
    let (log, name, held) = (log.clone(), id.to_string(), held.clone());
    ChildSpec::new(id, move || {
        let _ = &held;
        Probe {
            id: name.clone(),
            log: log.clone(),
            count: 0,
            stop_delay: None,
        }
    })
    .backoff(troupe_actors::BackoffPolicy::none())
}

/// Waits until nothing holds what `held` points to.
async fn released<T: ?Sized>(held: &Weak<T>) {
    let what = "the factories let go of what they hold";
    eventually(what, || held.strong_count() == 0).await;
}

#[actix_rt::test]
async fn a_shut_down_tree_lets_go_of_what_its_factories_hold() {
    let log = Log::default();
    let held = Arc::new(());
    let weak = Arc::downgrade(&held);
    let tree = SupervisorSpec::new("root")
        .child(holding("a", &log, &held))
        .supervisor(SupervisorSpec::new("sub").child(holding("s1", &log, &held)))
        .start()
        .unwrap();
    let a = tree.actor::<Probe>("a").unwrap();
    let s1 = tree.actor::<Probe>("sub/s1").unwrap();
    drop(held);
    assert_eq!(a.send(Inc).await, Ok(1));
    tree.shutdown().await;
    // Nothing starts a shut-down tree again, so its factories go, even
    // while the tree and addresses of its children are still held.
    released(&weak).await;
    assert_eq!(a.state(), ChildState::Stopped);
    assert_eq!(s1.state(), ChildState::Stopped);
    assert!(a.send(Inc).await.is_err(), "stopped for good");
    assert!(s1.send(Inc).await.is_err(), "stopped for good");
    let children = tree.root().children().await.unwrap();
    assert!(children.iter().all(|c| c.state == ChildState::Stopped));
    // A second shutdown is harmless.
    tree.shutdown().await;
    assert_eq!(tree.wait().await, Ok(()));
}

#[actix_rt::test]
async fn a_factory_holding_addresses_into_its_own_tree_does_not_keep_it_alive() {
    // As an engine's scheduler: its factory holds the state the engine
    // shares, which holds the workers' supervisor and the workers.
    let log = Log::default();
    let refs: Arc<Mutex<Vec<Box<dyn Any + Send>>>> = Arc::default();
    let weak = Arc::downgrade(&refs);
    let tree = SupervisorSpec::new("root")
        .strategy(Strategy::RestForOne)
        .supervisor(SupervisorSpec::new("workers").child(probe("w1", &log)))
        .child(holding("scheduler", &log, &refs))
        .start()
        .unwrap();
    let added = tree
        .supervisor("workers")
        .unwrap()
        .start_child(holding("w2", &log, &refs))
        .await
        .unwrap();
    {
        let mut held = refs.lock().unwrap();
        held.push(Box::new(tree.supervisor("workers").unwrap()));
        held.push(Box::new(tree.actor::<Probe>("workers/w1").unwrap()));
        held.push(Box::new(added));
        held.push(Box::new(tree.actor::<Probe>("scheduler").unwrap()));
    }
    drop(refs);
    tree.shutdown().await;
    drop(tree);
    released(&weak).await;
}

#[actix_rt::test]
async fn a_root_that_gave_up_lets_go_of_what_its_factories_hold() {
    let log = Log::default();
    let held = Arc::new(());
    let weak = Arc::downgrade(&held);
    let tree = SupervisorSpec::new("root")
        .intensity(Intensity::new(0, Duration::from_secs(60)))
        .child(holding("a", &log, &held))
        .child(holding("b", &log, &held))
        .start()
        .unwrap();
    drop(held);
    let a = tree.actor::<Probe>("a").unwrap();
    let _ = a.send(Panic).await;
    assert!(tree.wait().await.is_err(), "the root gave up");
    // Nothing restarts a root: its tree is stopped for good.
    released(&weak).await;
}

#[actix_rt::test]
async fn a_shut_down_supervisor_takes_no_new_children() {
    let log = Log::default();
    let tree = SupervisorSpec::new("root")
        .child(probe("a", &log))
        .start()
        .unwrap();
    tree.shutdown().await;
    let refused = tree.root().start_child(probe("late", &log)).await;
    assert!(
        matches!(
            refused,
            Err(StartChildError::Call(CallError::Dropped { .. }))
        ),
        "{refused:?}"
    );
    assert!(!log.events().contains(&"start:late".to_string()));
}

#[actix_rt::test]
async fn a_nested_supervisor_that_gave_up_keeps_its_factories_for_its_restart() {
    // Only a root's halt is final: a nested supervisor's children halted by
    // its escalation are started again, from their factories, when its
    // parent restarts it.
    let log = Log::default();
    let held = Arc::new(());
    let weak = Arc::downgrade(&held);
    let tree = SupervisorSpec::new("root")
        .intensity(Intensity::new(5, Duration::from_secs(60)))
        .supervisor(
            SupervisorSpec::new("sub")
                .intensity(Intensity::new(0, Duration::from_secs(60)))
                .backoff(troupe_actors::BackoffPolicy::none())
                .child(holding("s1", &log, &held))
                .child(holding("s2", &log, &held)),
        )
        .start()
        .unwrap();
    drop(held);
    let s1 = tree.actor::<Probe>("sub/s1").unwrap();
    let s2 = tree.actor::<Probe>("sub/s2").unwrap();
    let _ = s1.send(Panic).await;
    eventually("the sub-tree restarted", || {
        log.count("start:s1") == 2 && log.count("start:s2") == 2
    })
    .await;
    assert_eq!(s2.send(Inc).await, Ok(1));
    assert_eq!(weak.strong_count(), 2, "both factories are kept");
    tree.shutdown().await;
    released(&weak).await;
}
