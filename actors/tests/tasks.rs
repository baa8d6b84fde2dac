//! Reply futures and spawned futures run as tasks of their own: each is
//! polled when it is woken, not whenever any future of the actor is; they
//! still end with the instance that started them.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use common::*;
use futures::future::join_all;
use tokio::sync::Notify;
use troupe_actors::{
    Actor, CallError, ChildSpec, Context, Handler, Message, Reply, SupervisorSpec,
};

/// Counts its polls in a counter shared by all futures of a test.
struct Counted<F> {
    inner: Pin<Box<F>>,
    polls: Arc<AtomicU64>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.inner.as_mut().poll(cx)
    }
}

/// Holds each call until its own gate opens.
struct Gated {
    polls: Arc<AtomicU64>,
}
impl Actor for Gated {}

struct Hold(Arc<Notify>);
impl Message for Hold {
    type Result = ();
}
impl Handler<Hold> for Gated {
    fn handle(&mut self, Hold(gate): Hold, _: &mut Context<'_, Self>) -> Reply<()> {
        let polls = self.polls.clone();
        Reply::future(Counted {
            inner: Box::pin(async move { gate.notified().await }),
            polls,
        })
    }
}

/// With many replies in flight, waking one polls that one: the polls grow
/// with the number of calls, not with its square (actix's own spawned
/// futures are all polled on every wake-up of their actor, which made 1,000
/// jobs in flight cost more than the jobs).
#[actix_rt::test]
async fn each_reply_in_flight_is_polled_only_when_woken() {
    const N: usize = 500;
    let polls = Arc::new(AtomicU64::new(0));
    let p = polls.clone();
    let tree = SupervisorSpec::new("root")
        .child(ChildSpec::new("g", move || Gated { polls: p.clone() }).mailbox(N + 1))
        .start()
        .unwrap();
    let g = tree.actor::<Gated>("g").unwrap();
    let gates: Vec<Arc<Notify>> = (0..N).map(|_| Arc::new(Notify::new())).collect();
    let calls: Vec<_> = gates
        .iter()
        .map(|gate| {
            let (g, gate) = (g.clone(), gate.clone());
            async move { g.send(Hold(gate)).await }
        })
        .collect();
    let all = tokio::task::spawn_local(join_all(calls));
    eventually("every call is in flight", || {
        polls.load(Ordering::Relaxed) >= N as u64
    })
    .await;
    for gate in &gates {
        gate.notify_one();
        tokio::task::yield_now().await;
    }
    let results = all.await.unwrap();
    assert!(results.iter().all(Result::is_ok));
    let total = polls.load(Ordering::Relaxed);
    assert!(
        total <= 4 * N as u64,
        "{total} polls for {N} calls: futures were polled when others woke"
    );
}

/// A reply still in flight when its instance ends (here: a panic in another
/// handler) is dropped with it, and its caller gets an error rather than
/// waiting for ever; the restarted instance answers again.
#[actix_rt::test]
async fn a_reply_in_flight_ends_with_its_instance() {
    let log = Log::default();
    let tree = SupervisorSpec::new("root")
        .child(probe("a", &log))
        .start()
        .unwrap();
    let a = tree.actor::<Probe>("a").unwrap();
    let gate = Arc::new(Notify::new());
    let held = tokio::task::spawn_local({
        let a = a.clone();
        let gate = gate.clone();
        async move { a.send(Wait(gate)).await }
    });
    // The mailbox is first in, first out: once this is answered, the held
    // call has been handled and its reply future runs.
    assert_eq!(a.send(Inc).await, Ok(1));
    assert!(!held.is_finished());
    assert!(a.send(Panic).await.is_err());
    assert_eq!(
        held.await.unwrap(),
        Err(CallError::Dropped { actor: "a".into() })
    );
    assert_eq!(a.send(Inc).await, Ok(1));
    assert_eq!(a.restarts(), 1);
}

/// Stops itself and answers with a future: the future must never run.
struct Quitter {
    log: Log,
}
impl Actor for Quitter {}

struct QuitWithReply;
impl Message for QuitWithReply {
    type Result = u32;
}
impl Handler<QuitWithReply> for Quitter {
    fn handle(&mut self, _: QuitWithReply, ctx: &mut Context<'_, Self>) -> Reply<u32> {
        ctx.stop();
        let log = self.log.clone();
        Reply::future(async move {
            log.push("reply ran");
            1
        })
    }
}

/// A handler that ends its own instance and answers with a future: the
/// future ends with the instance before it is ever polled (as actix dropped
/// it unpolled when its items were context items), and the caller gets an
/// error.
#[actix_rt::test]
async fn a_reply_of_a_handler_that_ends_its_instance_never_runs() {
    let log = Log::default();
    let l = log.clone();
    let tree = SupervisorSpec::new("root")
        .child(
            ChildSpec::new("q", move || Quitter { log: l.clone() })
                .backoff(troupe_actors::BackoffPolicy::none()),
        )
        .start()
        .unwrap();
    let q = tree.actor::<Quitter>("q").unwrap();
    assert_eq!(
        q.send(QuitWithReply).await,
        Err(CallError::Dropped { actor: "q".into() })
    );
    eventually("the actor was restarted", || q.restarts() == 1).await;
    // One more round trip through the new instance's mailbox: any task of
    // the old one that was going to run has had its turn.
    assert!(q.send(QuitWithReply).await.is_err());
    assert_eq!(log.count("reply ran"), 0, "{:?}", log.events());
}
