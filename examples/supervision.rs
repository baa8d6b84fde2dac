//! A small supervision tree in which a worker crashes now and then and is
//! restarted, while its siblings carry on.
//!
//! Run: `cargo run --example supervision`
//!
//! The tree:
//! ```text
//! root (one_for_one)
//! ├── counter            keeps a running total; never crashes
//! ├── flaky              parses jobs; panics on every 7th one
//! └── pipeline (rest_for_one)
//!     ├── reader         fails on purpose once, taking writer down with it
//!     └── writer
//! ```

use std::time::Duration;

use troupe_actors::{
    Actor, ChildSpec, ChildState, Context, Handler, Intensity, Message, Reply, Strategy,
    SupervisorSpec,
};

/// Adds numbers; its total survives the other actors' crashes.
#[derive(Default)]
struct Counter {
    total: u64,
}
impl Actor for Counter {}

struct Add(u64);
impl Message for Add {
    type Result = u64;
}
impl Handler<Add> for Counter {
    fn handle(&mut self, Add(n): Add, _: &mut Context<'_, Self>) -> Reply<u64> {
        self.total += n;
        Reply::Ready(self.total)
    }
}

/// Handles jobs, and panics on every seventh it sees since its last start.
#[derive(Default)]
struct Flaky {
    seen: u64,
}
impl Actor for Flaky {
    fn started(&mut self, ctx: &mut Context<'_, Self>) {
        println!("  [{}] started", ctx.name());
    }
}

struct Job(u64);
impl Message for Job {
    type Result = u64;
}
impl Handler<Job> for Flaky {
    fn handle(&mut self, Job(n): Job, _: &mut Context<'_, Self>) -> Reply<u64> {
        self.seen += 1;
        if self.seen % 7 == 0 {
            panic!("job {n} tripped the flaky worker");
        }
        // An answer computed asynchronously: the mailbox keeps flowing.
        Reply::future(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            n * 2
        })
    }
}

/// A pipeline stage that logs its starts and can be told to fail.
struct Stage;
impl Actor for Stage {
    fn started(&mut self, ctx: &mut Context<'_, Self>) {
        println!("  [pipeline/{}] started", ctx.name());
    }
}

struct Break;
impl Message for Break {
    type Result = ();
}
impl Handler<Break> for Stage {
    fn handle(&mut self, _: Break, ctx: &mut Context<'_, Self>) -> Reply<()> {
        ctx.fail("input file vanished");
        Reply::Ready(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    troupe_actors::run_system(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    // The deliberate panics are reported by the supervisor's restart events.
    std::panic::set_hook(Box::new(|_| {}));

    println!("starting the tree");
    let tree = SupervisorSpec::new("root")
        .strategy(Strategy::OneForOne)
        .intensity(Intensity::new(20, Duration::from_secs(5)))
        .child(ChildSpec::new("counter", Counter::default))
        .child(ChildSpec::new("flaky", Flaky::default).mailbox(16))
        .supervisor(
            SupervisorSpec::new("pipeline")
                .strategy(Strategy::RestForOne)
                .child(ChildSpec::new("reader", || Stage))
                .child(ChildSpec::new("writer", || Stage)),
        )
        .start()?;

    let counter = tree.actor::<Counter>("counter")?;
    let flaky = tree.actor::<Flaky>("flaky")?;
    let reader = tree.actor::<Stage>("pipeline/reader")?;

    println!("sending 30 jobs to `flaky` through the same address throughout");
    let (mut done, mut lost) = (0, 0);
    for n in 1..=30u64 {
        match flaky.send(Job(n)).await {
            Ok(doubled) => {
                done += 1;
                counter.send(Add(doubled)).await?;
            }
            Err(e) => {
                lost += 1;
                println!("  job {n}: {e}; the supervisor restarts it");
            }
        }
    }
    println!("asking `pipeline/reader` to fail: rest_for_one restarts reader, then writer");
    reader.send(Break).await?;
    // Wait for the pipeline to come back (a condition, with a deadline).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while reader.restarts() == 0 || reader.state() != ChildState::Running {
        if tokio::time::Instant::now() > deadline {
            return Err("pipeline did not restart in time".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let total = counter.send(Add(0)).await?;
    println!("\n{done} jobs answered, {lost} lost to crashes; counter total {total} (kept across all restarts)");
    println!(
        "\n{:<10} {:<11} {:>8}  last exit",
        "child", "state", "restarts"
    );
    for child in tree.root().children().await? {
        let last = child.last_exit.unwrap_or_else(|| "-".into());
        println!(
            "{:<10} {:<11} {:>8}  {last}",
            child.id, child.state, child.restarts
        );
    }
    for child in tree.supervisor("pipeline")?.children().await? {
        let last = child.last_exit.unwrap_or_else(|| "-".into());
        println!(
            "{:<10} {:<11} {:>8}  {last}",
            format!("  {}", child.id),
            child.state,
            child.restarts
        );
    }

    println!("\nshutting down in reverse start order");
    tree.shutdown().await;
    tree.wait().await?;
    println!("done");
    Ok(())
}
