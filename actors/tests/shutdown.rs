//! Ordered shutdown: reverse start order, each child within its timeout.

mod common;

use std::time::Duration;

use common::*;
use troupe_actors::{ChildState, SupervisorSpec};

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
