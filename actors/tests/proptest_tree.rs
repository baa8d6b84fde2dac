//! Property: random crashes and normal messages across a tree never leave a
//! permanent child dead while its supervisor lives within its intensity.

mod common;

use std::time::Duration;

use common::*;
use proptest::prelude::*;
use troupe_actors::{ActorRef, ChildState, Intensity, Strategy as Sup, SupervisorSpec};

#[derive(Debug, Clone)]
enum Op {
    Inc(usize),
    Panic(usize),
    PanicAsync(usize),
    Fail(usize),
    Stop(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..5usize).prop_map(Op::Inc),
        2 => (0..5usize).prop_map(Op::Panic),
        1 => (0..5usize).prop_map(Op::PanicAsync),
        1 => (0..5usize).prop_map(Op::Fail),
        1 => (0..5usize).prop_map(Op::Stop),
    ]
}

fn strategy() -> impl Strategy<Value = Sup> {
    prop_oneof![
        Just(Sup::OneForOne),
        Just(Sup::OneForAll),
        Just(Sup::RestForOne)
    ]
}

async fn run(root_strategy: Sup, sub_strategy: Sup, ops: Vec<Op>) {
    let log = Log::default();
    let generous = Intensity::new(10_000, Duration::from_secs(60));
    let tree = SupervisorSpec::new("root")
        .strategy(root_strategy)
        .intensity(generous)
        .child(probe("p0", &log))
        .child(probe("p1", &log))
        .supervisor(
            SupervisorSpec::new("sub")
                .strategy(sub_strategy)
                .intensity(generous)
                .child(probe("p2", &log))
                .child(probe("p3", &log)),
        )
        .child(probe("p4", &log))
        .start()
        .unwrap();
    let refs: Vec<ActorRef<Probe>> = ["p0", "p1", "sub/p2", "sub/p3", "p4"]
        .iter()
        .map(|p| tree.actor(p).unwrap())
        .collect();
    for op in ops {
        match op {
            Op::Inc(i) => {
                // A permanent child always answers (possibly after a restart).
                assert!(refs[i].send(Inc).await.is_ok(), "{op:?}");
            }
            Op::Panic(i) => assert!(refs[i].send(Panic).await.is_err()),
            Op::PanicAsync(i) => assert!(refs[i].send(PanicAsync).await.is_err()),
            Op::Fail(i) => refs[i].send(Fail).await.unwrap(),
            Op::Stop(i) => refs[i].send(StopNormal).await.unwrap(),
        }
    }
    eventually("every permanent child running", || {
        refs.iter().all(|r| r.state() == ChildState::Running)
    })
    .await;
    for r in &refs {
        assert!(r.send(Inc).await.is_ok(), "{} answers", r.name());
    }
    assert!(tree.outcome().is_none(), "the root is still supervising");
    tree.shutdown().await;
    assert!(refs.iter().all(|r| r.state() == ChildState::Stopped));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn permanent_children_survive_any_sequence(
        root in strategy(),
        sub in strategy(),
        ops in proptest::collection::vec(op(), 1..30),
    ) {
        let system = actix::System::new();
        system.block_on(run(root, sub, ops));
    }
}
