//! Panics in handlers become restarts of that child only; addresses stay
//! valid; queued messages reach the new instance; the in-flight one errors.

mod common;

use std::sync::Arc;

use common::*;
use futures::future::join_all;
use tokio::sync::Notify;
use troupe_actors::{CallError, SupervisorSpec};

fn tree(log: &Log) -> troupe_actors::Tree {
    SupervisorSpec::new("root")
        .intensity(troupe_actors::Intensity::new(
            100,
            std::time::Duration::from_secs(1),
        ))
        .child(probe("a", log))
        .child(probe("b", log))
        .start()
        .unwrap()
}

#[actix_rt::test]
async fn sync_handler_panic_errors_the_caller_and_restarts() {
    let log = Log::default();
    let tree = tree(&log);
    let a = tree.actor::<Probe>("a").unwrap();
    assert_eq!(a.send(Inc).await, Ok(1));
    assert_eq!(
        a.send(Panic).await,
        Err(CallError::Dropped { actor: "a".into() })
    );
    assert_eq!(a.send(Inc).await, Ok(1));
    assert_eq!(a.restarts(), 1);
}

#[actix_rt::test]
async fn async_handler_panic_errors_the_caller_and_restarts() {
    let log = Log::default();
    let tree = tree(&log);
    let a = tree.actor::<Probe>("a").unwrap();
    assert_eq!(a.send(Inc).await, Ok(1));
    assert_eq!(
        a.send(PanicAsync).await,
        Err(CallError::Dropped { actor: "a".into() })
    );
    assert_eq!(a.send(Inc).await, Ok(1));
    assert_eq!(a.restarts(), 1);
}

#[actix_rt::test]
async fn panic_leaves_a_sibling_on_the_same_thread_running_with_its_state() {
    let log = Log::default();
    let tree = tree(&log);
    let a = tree.actor::<Probe>("a").unwrap();
    let b = tree.actor::<Probe>("b").unwrap();
    for _ in 0..5 {
        b.send(Inc).await.unwrap();
    }
    // An in-flight async request on b survives a's crash.
    let gate = Arc::new(Notify::new());
    let pending = b.send(Wait(gate.clone()));
    let (crash, ()) = tokio::join!(a.send(Panic), async {
        tokio::task::yield_now().await;
    });
    assert!(crash.is_err());
    gate.notify_one();
    assert_eq!(pending.await, Ok("opened"));
    assert_eq!(b.send(Inc).await, Ok(6));
    assert_eq!(b.restarts(), 0);
}

#[actix_rt::test]
async fn messages_queued_behind_a_crash_reach_the_new_instance() {
    let log = Log::default();
    let tree = tree(&log);
    let a = tree.actor::<Probe>("a").unwrap();
    let a2 = a.clone();
    // All enqueued before the actor runs: the panic first, five increments behind it.
    let crash = a.send(Panic);
    let incs = join_all((0..5).map(|_| a2.send(Inc)));
    let (crash, incs) = tokio::join!(crash, incs);
    assert_eq!(crash, Err(CallError::Dropped { actor: "a".into() }));
    assert_eq!(incs, vec![Ok(1), Ok(2), Ok(3), Ok(4), Ok(5)]);
    assert_eq!(a.restarts(), 1);
}

#[actix_rt::test]
async fn in_flight_async_reply_is_dropped_by_a_restart_not_left_hanging() {
    let log = Log::default();
    let tree = tree(&log);
    let a = tree.actor::<Probe>("a").unwrap();
    let gate = Arc::new(Notify::new());
    let (waiting, crash) = tokio::join!(a.send(Wait(gate)), a.send(Panic));
    assert!(crash.is_err());
    assert_eq!(waiting, Err(CallError::Dropped { actor: "a".into() }));
}

#[actix_rt::test]
async fn a_bare_actix_actor_dies_for_good_where_ours_restarts() {
    // The behaviour this crate exists to fix, shown side by side.
    struct Bare;
    impl actix::Actor for Bare {
        type Context = actix::Context<Self>;
    }
    struct Boom;
    impl actix::Message for Boom {
        type Result = ();
    }
    impl actix::Handler<Boom> for Bare {
        type Result = ();
        fn handle(&mut self, _: Boom, _: &mut Self::Context) {
            panic!("bare actor panicked");
        }
    }
    let bare = actix::Actor::start(Bare);
    assert!(bare.send(Boom).await.is_err());
    assert!(
        bare.send(Boom).await.is_err(),
        "actix: every later send fails"
    );

    let log = Log::default();
    let tree = tree(&log);
    let a = tree.actor::<Probe>("a").unwrap();
    assert!(a.send(Panic).await.is_err());
    assert_eq!(
        a.send(Inc).await,
        Ok(1),
        "ours: the same address works again"
    );
}

#[actix_rt::test]
async fn panic_in_a_spawned_future_or_timer_restarts_the_actor() {
    use std::time::Duration;
    use troupe_actors::{Actor, ChildSpec, Context, Handler, Message, Reply};

    struct Ticker {
        log: Log,
    }
    impl Actor for Ticker {
        fn started(&mut self, _ctx: &mut Context<'_, Self>) {
            self.log.push("start");
        }
    }
    struct ArmTimer;
    impl Message for ArmTimer {
        type Result = ();
    }
    impl Handler<ArmTimer> for Ticker {
        fn handle(&mut self, _: ArmTimer, ctx: &mut Context<'_, Self>) -> Reply<()> {
            ctx.run_later(Duration::from_millis(1), |_, _| panic!("timer panicked"));
            Reply::Ready(())
        }
    }
    struct SpawnBomb;
    impl Message for SpawnBomb {
        type Result = ();
    }
    impl Handler<SpawnBomb> for Ticker {
        fn handle(&mut self, _: SpawnBomb, ctx: &mut Context<'_, Self>) -> Reply<()> {
            ctx.spawn(async { panic!("spawned future panicked") });
            Reply::Ready(())
        }
    }
    let log = Log::default();
    let l = log.clone();
    let tree = SupervisorSpec::new("root")
        .child(
            ChildSpec::new("t", move || Ticker { log: l.clone() })
                .backoff(troupe_actors::BackoffPolicy::none()),
        )
        .start()
        .unwrap();
    let t = tree.actor::<Ticker>("t").unwrap();
    t.send(ArmTimer).await.unwrap();
    eventually("timer panic restarted the actor", || t.restarts() == 1).await;
    t.send(SpawnBomb).await.unwrap();
    eventually("spawned panic restarted the actor", || t.restarts() == 2).await;
    eventually("three starts", || log.count("start") == 3).await;
}
