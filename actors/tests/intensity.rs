//! Restart intensity: past it a supervisor gives up and its parent sees it
//! fail, up through a three-level tree to the root.

mod common;

use std::time::Duration;

use common::*;
use troupe_actors::{ChildState, Intensity, SupervisorSpec, TreeError};

fn one_per_minute() -> Intensity {
    Intensity::new(1, Duration::from_secs(60))
}

#[actix_rt::test]
async fn intensity_exceeded_escalates_through_three_levels() {
    let log = Log::default();
    let tree = SupervisorSpec::new("root")
        .intensity(one_per_minute())
        .child(probe("sibling", &log))
        .supervisor(
            SupervisorSpec::new("mid")
                .intensity(one_per_minute())
                .backoff(troupe_actors::BackoffPolicy::none())
                .supervisor(
                    SupervisorSpec::new("leaf")
                        .intensity(one_per_minute())
                        .backoff(troupe_actors::BackoffPolicy::none())
                        .child(probe("w", &log)),
                ),
        )
        .start()
        .unwrap();
    let w = tree.actor::<Probe>("mid/leaf/w").unwrap();
    let leaf = tree.supervisor("mid/leaf").unwrap();
    let mid = tree.supervisor("mid").unwrap();
    let sibling = tree.actor::<Probe>("sibling").unwrap();
    assert_eq!(sibling.send(Inc).await, Ok(1));

    // (w restarts, leaf restarts, mid restarts) expected after each crash.
    let steps = [
        (1, 0, 0), // leaf restarts w
        (2, 1, 0), // leaf gives up; mid restarts leaf, which starts w
        (3, 1, 0),
        (4, 2, 1), // leaf gives up again; mid gives up; root restarts mid
        (5, 2, 1),
        (6, 3, 1), // leaf gives up; mid restarts it (its window was reset)
        (7, 3, 1),
    ];
    for (i, (w_r, leaf_r, mid_r)) in steps.into_iter().enumerate() {
        assert!(w.send(Panic).await.is_err(), "crash {i}");
        eventually(&format!("state after crash {i}"), || {
            w.restarts() == w_r
                && leaf.restarts() == leaf_r
                && mid.restarts() == mid_r
                && w.state() == ChildState::Running
        })
        .await;
        assert_eq!(
            w.send(Inc).await,
            Ok(1),
            "w answers from a fresh instance after crash {i}"
        );
        assert!(tree.outcome().is_none());
    }
    // Leaf gives up, mid gives up, root gives up (its second restart in the window).
    assert!(w.send(Panic).await.is_err());
    let outcome = tree.wait().await;
    match outcome {
        Err(TreeError::Escalated { root, cause }) => {
            assert_eq!(root, "root");
            assert!(cause.contains("mid"), "{cause}");
        }
        other => panic!("expected escalation, got {other:?}"),
    }
    eventually("everything stopped", || {
        sibling.state() == ChildState::Stopped
            && w.state() == ChildState::Stopped
            && mid.state() != ChildState::Running
    })
    .await;
    assert!(sibling.send(Inc).await.is_err());
}

#[actix_rt::test]
async fn zero_intensity_escalates_at_the_first_exit() {
    let log = Log::default();
    let tree = SupervisorSpec::new("root")
        .intensity(Intensity::new(0, Duration::from_secs(1)))
        .child(probe("w", &log))
        .start()
        .unwrap();
    let w = tree.actor::<Probe>("w").unwrap();
    assert!(w.send(Panic).await.is_err());
    assert!(matches!(
        tree.wait().await,
        Err(TreeError::Escalated { .. })
    ));
    assert_eq!(w.restarts(), 0);
}

#[actix_rt::test]
async fn restarts_spread_over_more_than_the_period_do_not_escalate() {
    let log = Log::default();
    // A zero-length window is refused, so use a short one and space crashes
    // past it by waiting on the clock (a condition, not a fixed sleep).
    let period = Duration::from_millis(30);
    let tree = SupervisorSpec::new("root")
        .intensity(Intensity::new(1, period))
        .child(probe("w", &log))
        .start()
        .unwrap();
    let w = tree.actor::<Probe>("w").unwrap();
    for _ in 0..4 {
        let t0 = std::time::Instant::now();
        assert!(w.send(Panic).await.is_err());
        assert_eq!(w.send(Inc).await, Ok(1));
        eventually("window passed", || t0.elapsed() > period * 2).await;
    }
    assert!(tree.outcome().is_none());
    assert_eq!(w.restarts(), 4);
}

#[actix_rt::test]
async fn consecutive_restarts_back_off() {
    use troupe_actors::BackoffPolicy;
    let log = Log::default();
    let policy = BackoffPolicy {
        initial: Duration::from_millis(40),
        max: Duration::from_secs(1),
        multiplier: 2.0,
        jitter: 0.0,
        immediate_first: true,
        reset_after: Duration::from_secs(60),
    };
    let tree = SupervisorSpec::new("root")
        .intensity(Intensity::new(10, Duration::from_secs(60)))
        .child(probe("w", &log).backoff(policy))
        .start()
        .unwrap();
    let w = tree.actor::<Probe>("w").unwrap();
    let mut waited = Vec::new();
    for _ in 0..3 {
        let t0 = std::time::Instant::now();
        assert!(w.send(Panic).await.is_err());
        assert_eq!(w.send(Inc).await, Ok(1));
        waited.push(t0.elapsed());
    }
    // First immediate (no lower bound), then at least 40 ms, then 80 ms.
    assert!(waited[1] >= Duration::from_millis(40), "{waited:?}");
    assert!(waited[2] >= Duration::from_millis(80), "{waited:?}");
}
