//! Test actors and helpers shared by the supervision-tree tests.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use troupe_actors::{Actor, ChildSpec, Context, Handler, Message, Reply};

/// What happened, in order, across all probes of a test.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, event: impl Into<String>) {
        self.0.lock().unwrap().push(event.into());
    }
    pub fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub fn count(&self, event: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| *e == event)
            .count()
    }
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// A probe actor: counts, crashes on request, logs its life cycle.
pub struct Probe {
    pub id: String,
    pub log: Log,
    pub count: u64,
    pub stop_delay: Option<Duration>,
}

impl Actor for Probe {
    fn started(&mut self, _ctx: &mut Context<'_, Self>) {
        self.log.push(format!("start:{}", self.id));
    }

    fn stopping(&mut self, _ctx: &mut Context<'_, Self>) -> Reply<()> {
        self.log.push(format!("stop:{}", self.id));
        match self.stop_delay {
            Some(delay) => {
                let log = self.log.clone();
                let id = self.id.clone();
                Reply::future(async move {
                    tokio::time::sleep(delay).await;
                    log.push(format!("stopped-late:{id}"));
                })
            }
            None => Reply::Ready(()),
        }
    }
}

/// Adds one to the count; answers the new count.
pub struct Inc;
impl Message for Inc {
    type Result = u64;
}
impl Handler<Inc> for Probe {
    fn handle(&mut self, _: Inc, _: &mut Context<'_, Self>) -> Reply<u64> {
        self.count += 1;
        Reply::Ready(self.count)
    }
}

/// Panics in the handler.
pub struct Panic;
impl Message for Panic {
    type Result = ();
}
impl Handler<Panic> for Probe {
    fn handle(&mut self, _: Panic, _: &mut Context<'_, Self>) -> Reply<()> {
        panic!("probe {} asked to panic", self.id);
    }
}

/// Panics inside the reply future.
pub struct PanicAsync;
impl Message for PanicAsync {
    type Result = ();
}
impl Handler<PanicAsync> for Probe {
    fn handle(&mut self, _: PanicAsync, _: &mut Context<'_, Self>) -> Reply<()> {
        Reply::future(async {
            tokio::task::yield_now().await;
            panic!("async handler panicked");
        })
    }
}

/// Answers once the gate is opened: holds a message in flight.
pub struct Wait(pub Arc<Notify>);
impl Message for Wait {
    type Result = &'static str;
}
impl Handler<Wait> for Probe {
    fn handle(&mut self, Wait(gate): Wait, _: &mut Context<'_, Self>) -> Reply<&'static str> {
        Reply::future(async move {
            gate.notified().await;
            "opened"
        })
    }
}

/// Stops normally.
pub struct StopNormal;
impl Message for StopNormal {
    type Result = ();
}
impl Handler<StopNormal> for Probe {
    fn handle(&mut self, _: StopNormal, ctx: &mut Context<'_, Self>) -> Reply<()> {
        ctx.stop();
        Reply::Ready(())
    }
}

/// Reports a failure (no panic).
pub struct Fail;
impl Message for Fail {
    type Result = ();
}
impl Handler<Fail> for Probe {
    fn handle(&mut self, _: Fail, ctx: &mut Context<'_, Self>) -> Reply<()> {
        ctx.fail("asked to fail");
        Reply::Ready(())
    }
}

/// Blocks the handler (synchronously) until the gate opens; fills mailboxes.
pub struct BlockOn(pub Arc<std::sync::Barrier>);
impl Message for BlockOn {
    type Result = ();
}
impl Handler<BlockOn> for Probe {
    fn handle(&mut self, BlockOn(b): BlockOn, _: &mut Context<'_, Self>) -> Reply<()> {
        b.wait();
        Reply::Ready(())
    }
}

pub fn probe(id: &str, log: &Log) -> ChildSpec<Probe> {
    probe_with_stop(id, log, None)
}

pub fn probe_with_stop(id: &str, log: &Log, stop_delay: Option<Duration>) -> ChildSpec<Probe> {
    let log = log.clone();
    let name = id.to_string();
    ChildSpec::new(id, move || Probe {
        id: name.clone(),
        log: log.clone(),
        count: 0,
        stop_delay,
    })
    .backoff(troupe_actors::BackoffPolicy::none())
}

/// Waits until `cond` holds, checking every millisecond, for at most 10 s.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Like [`eventually`] for async conditions.
pub async fn eventually_async<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
