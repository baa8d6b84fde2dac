//! Each restart strategy, observed through actor state and life-cycle logs.

mod common;

use common::*;
use std::sync::Arc;
use troupe_actors::{ActorRef, Intensity, Strategy, SupervisorSpec};

fn tree(strategy: Strategy, log: &Log) -> troupe_actors::Tree {
    SupervisorSpec::new("root")
        .strategy(strategy)
        .intensity(Intensity::new(10, std::time::Duration::from_secs(10)))
        .child(probe("a", log))
        .child(probe("b", log))
        .child(probe("c", log))
        .start()
        .unwrap()
}

fn refs(tree: &troupe_actors::Tree) -> (ActorRef<Probe>, ActorRef<Probe>, ActorRef<Probe>) {
    (
        tree.actor("a").unwrap(),
        tree.actor("b").unwrap(),
        tree.actor("c").unwrap(),
    )
}

#[actix_rt::test]
async fn one_for_one_restarts_only_the_failed_child() {
    let log = Log::default();
    let tree = tree(Strategy::OneForOne, &log);
    let (a, b, c) = refs(&tree);
    assert_eq!(b.send(Inc).await, Ok(1));
    assert_eq!(b.send(Inc).await, Ok(2));
    assert_eq!(c.send(Inc).await, Ok(1));
    assert_eq!(a.send(Inc).await, Ok(1));
    log.clear();

    assert!(a.send(Panic).await.is_err());
    // The same address reaches a fresh instance.
    assert_eq!(a.send(Inc).await, Ok(1));
    assert_eq!(b.send(Inc).await, Ok(3), "sibling kept its state");
    assert_eq!(c.send(Inc).await, Ok(2), "sibling kept its state");
    assert_eq!((a.restarts(), b.restarts(), c.restarts()), (1, 0, 0));
    assert_eq!(log.events(), vec!["start:a"]);
    tree.shutdown().await;
}

#[actix_rt::test]
async fn one_for_all_stops_siblings_in_reverse_and_starts_all_in_order() {
    let log = Log::default();
    let tree = tree(Strategy::OneForAll, &log);
    let (a, b, c) = refs(&tree);
    for r in [&a, &b, &c] {
        assert_eq!(r.send(Inc).await, Ok(1));
    }
    log.clear();

    assert!(a.send(Panic).await.is_err());
    for r in [&a, &b, &c] {
        assert_eq!(r.send(Inc).await, Ok(1), "{} restarted fresh", r.name());
    }
    assert_eq!(
        log.events(),
        vec!["stop:c", "stop:b", "start:a", "start:b", "start:c"]
    );
    assert_eq!((a.restarts(), b.restarts(), c.restarts()), (1, 1, 1));
    tree.shutdown().await;
}

#[actix_rt::test]
async fn rest_for_one_restarts_the_failed_child_and_those_after_it() {
    let log = Log::default();
    let tree = tree(Strategy::RestForOne, &log);
    let (a, b, c) = refs(&tree);
    for r in [&a, &b, &c] {
        assert_eq!(r.send(Inc).await, Ok(1));
    }
    log.clear();

    assert!(b.send(Panic).await.is_err());
    assert_eq!(a.send(Inc).await, Ok(2), "a started before b: untouched");
    assert_eq!(b.send(Inc).await, Ok(1));
    assert_eq!(c.send(Inc).await, Ok(1));
    assert_eq!(log.events(), vec!["stop:c", "start:b", "start:c"]);
    assert_eq!((a.restarts(), b.restarts(), c.restarts()), (0, 1, 1));
    tree.shutdown().await;
}

#[actix_rt::test]
async fn children_report_state_restarts_and_last_exit() {
    let log = Log::default();
    let tree = tree(Strategy::OneForOne, &log);
    let (a, _, _) = refs(&tree);
    assert!(a.send(Panic).await.is_err());
    assert_eq!(a.send(Inc).await, Ok(1));
    let children = tree.root().children().await.unwrap();
    let ids: Vec<_> = children.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(children[0].restarts, 1);
    assert_eq!(children[0].state, troupe_actors::ChildState::Running);
    let last = children[0].last_exit.clone().unwrap();
    assert!(last.contains("probe a asked to panic"), "{last}");
    assert_eq!(children[1].last_exit, None);
    let mailbox = children[0].mailbox.unwrap();
    assert_eq!(mailbox.capacity, troupe_actors::DEFAULT_MAILBOX);
    assert_eq!(mailbox.queued, 0);
    assert_eq!(
        mailbox.handled, 2,
        "the Panic and the Inc, across the restart"
    );
    tree.shutdown().await;
}

#[actix_rt::test]
async fn a_child_can_be_restarted_from_outside_like_a_failure() {
    let log = Log::default();
    let tree = tree(Strategy::OneForOne, &log);
    let (a, b, _) = refs(&tree);
    assert_eq!(a.send(Inc).await, Ok(1));
    assert_eq!(b.send(Inc).await, Ok(1));
    assert_eq!(
        tree.root()
            .restart_child("a", "watchdog: stopped answering")
            .await,
        Ok(true)
    );
    eventually("a restarted", || {
        a.restarts() == 1 && a.state() == troupe_actors::ChildState::Running
    })
    .await;
    assert_eq!(a.send(Inc).await, Ok(1), "fresh instance");
    assert_eq!(b.send(Inc).await, Ok(2), "sibling untouched");
    let info = tree.root().children().await.unwrap();
    assert!(
        info[0].last_exit.as_deref().unwrap().contains("watchdog"),
        "{:?}",
        info[0].last_exit
    );
    assert_eq!(tree.root().restart_child("nobody", "x").await, Ok(false));
    tree.shutdown().await;
}

/// Restarts `id` from outside and waits until it runs again.
async fn restarted_from_outside(tree: &troupe_actors::Tree, id: &str) {
    assert_eq!(
        tree.root()
            .restart_child(id, "watchdog: stopped answering")
            .await,
        Ok(true)
    );
    let root = tree.root().clone();
    eventually_async(&format!("{id} restarted and running"), || {
        let root = root.clone();
        async move {
            let children = root.children().await.unwrap();
            children.iter().any(|child| {
                child.id == id
                    && child.restarts == 1
                    && child.state == troupe_actors::ChildState::Running
            })
        }
    })
    .await;
}

#[actix_rt::test]
async fn a_child_whose_handles_were_all_dropped_is_still_restarted() {
    // Children added at run time by a caller that kept no handle: nothing
    // outside addresses them, yet their supervisor restarts them like any
    // other, whether a reply of theirs is in flight or not.
    let log = Log::default();
    let tree = tree(Strategy::OneForOne, &log);
    let idle = tree.root().start_child(probe("d", &log)).await.unwrap();
    assert_eq!(idle.send(Inc).await, Ok(1));
    drop(idle);
    restarted_from_outside(&tree, "d").await;
    assert_eq!(log.count("start:d"), 2, "{:?}", log.events());

    let busy = tree.root().start_child(probe("e", &log)).await.unwrap();
    let never = Arc::new(tokio::sync::Notify::new());
    assert!(busy.try_send(Wait(never.clone())).is_ok());
    eventually("the reply in flight", || busy.mailbox().handled == 1).await;
    drop(busy);
    restarted_from_outside(&tree, "e").await;
    assert_eq!(log.count("start:e"), 2, "{:?}", log.events());

    tree.shutdown().await;
    assert!(log.events().contains(&"stop:d".to_string()));
    assert!(log.events().contains(&"stop:e".to_string()));
}
