//! Impossible specs are refused when the tree is built, naming child and field.

mod common;

use std::time::Duration;

use common::*;
use troupe_actors::{BackoffPolicy, BuildError, Intensity, LookupError, SupervisorSpec};

#[actix_rt::test]
async fn zero_mailbox_capacity_is_refused_naming_the_child() {
    let log = Log::default();
    let err = SupervisorSpec::new("root")
        .child(probe("ok", &log))
        .child(probe("w", &log).mailbox(0))
        .start()
        .unwrap_err();
    assert!(
        matches!(&err, BuildError::InvalidSetting { child, field: "mailbox", .. } if child == "root/w"),
        "{err:?}"
    );
    assert!(err.to_string().contains("root/w"));
    assert_eq!(log.events(), Vec::<String>::new(), "nothing started");
}

#[actix_rt::test]
async fn zero_period_is_refused_naming_the_nested_supervisor() {
    let log = Log::default();
    let err = SupervisorSpec::new("root")
        .supervisor(
            SupervisorSpec::new("sub")
                .intensity(Intensity::new(3, Duration::ZERO))
                .child(probe("w", &log)),
        )
        .start()
        .unwrap_err();
    assert_eq!(
        err,
        BuildError::InvalidSetting {
            child: "root/sub".into(),
            field: "intensity.period",
            reason: "must be longer than zero".into()
        }
    );
}

#[actix_rt::test]
async fn bad_backoff_duplicate_ids_and_bad_ids_are_refused() {
    let log = Log::default();
    let bad = BackoffPolicy {
        multiplier: 0.1,
        ..BackoffPolicy::default()
    };
    let err = SupervisorSpec::new("root")
        .child(probe("w", &log).backoff(bad))
        .start()
        .unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::InvalidSetting {
                field: "backoff.multiplier",
                ..
            }
        ),
        "{err:?}"
    );

    let err = SupervisorSpec::new("root")
        .child(probe("w", &log))
        .child(probe("w", &log))
        .start()
        .unwrap_err();
    assert_eq!(
        err,
        BuildError::DuplicateChild {
            supervisor: "root".into(),
            child: "w".into()
        }
    );

    let err = SupervisorSpec::new("root")
        .child(probe("a/b", &log))
        .start()
        .unwrap_err();
    assert_eq!(err, BuildError::InvalidId { id: "a/b".into() });
}

#[test]
fn starting_outside_an_actix_system_is_refused() {
    let log = Log::default();
    let err = SupervisorSpec::new("root")
        .child(probe("w", &log))
        .start()
        .unwrap_err();
    assert_eq!(err, BuildError::NoRuntime);
}

#[actix_rt::test]
async fn lookups_name_missing_and_mistyped_paths() {
    let log = Log::default();
    let tree = SupervisorSpec::new("root")
        .supervisor(SupervisorSpec::new("sub").child(probe("w", &log)))
        .start()
        .unwrap();
    assert!(tree.actor::<Probe>("sub/w").is_ok());
    assert_eq!(
        tree.actor::<Probe>("nope").unwrap_err(),
        LookupError::NotFound {
            path: "nope".into()
        }
    );
    assert!(matches!(
        tree.actor::<Probe>("sub"),
        Err(LookupError::WrongType { .. })
    ));
    assert_eq!(tree.supervisor("sub").unwrap().name(), "sub");
}

#[actix_rt::test]
async fn children_can_be_added_at_run_time() {
    let log = Log::default();
    let tree = SupervisorSpec::new("root")
        .child(probe("a", &log))
        .start()
        .unwrap();
    let b = tree.root().start_child(probe("b", &log)).await.unwrap();
    assert_eq!(b.send(Inc).await, Ok(1));
    assert!(b.send(Panic).await.is_err());
    assert_eq!(b.send(Inc).await, Ok(1));
    let dup = tree.root().start_child(probe("a", &log)).await.unwrap_err();
    assert!(dup.to_string().contains("two children named `a`"), "{dup}");
    let bad = tree
        .root()
        .start_child(probe("c", &log).mailbox(0))
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("root/c"), "{bad}");
    log.clear();
    tree.shutdown().await;
    assert_eq!(log.events(), vec!["stop:b", "stop:a"]);
}
