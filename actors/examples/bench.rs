//! Supervision overhead, restart latency and memory per idle actor.
//!
//! Run: `cargo run --release -p troupe-actors --example bench`
//! (`-- --quick` for a short smoke run). Figures are printed, not asserted:
//! timing targets belong in benchmarks, not in tests.

use std::time::{Duration, Instant};

use troupe_actors::{
    Actor, ChildSpec, Context, Handler, Intensity, Message, Reply, SupervisorSpec,
};

struct Echo;
impl Actor for Echo {}

struct Ping(u64);
impl Message for Ping {
    type Result = u64;
}
impl Handler<Ping> for Echo {
    fn handle(&mut self, Ping(n): Ping, _: &mut Context<'_, Self>) -> Reply<u64> {
        Reply::Ready(n + 1)
    }
}

struct Crash;
impl Message for Crash {
    type Result = ();
}
impl Handler<Crash> for Echo {
    fn handle(&mut self, _: Crash, _: &mut Context<'_, Self>) -> Reply<()> {
        panic!("benchmark crash");
    }
}

struct BareEcho;
impl actix::Actor for BareEcho {
    type Context = actix::Context<Self>;
}
struct BarePing(u64);
impl actix::Message for BarePing {
    type Result = u64;
}
impl actix::Handler<BarePing> for BareEcho {
    type Result = u64;
    fn handle(&mut self, BarePing(n): BarePing, _: &mut Self::Context) -> u64 {
        n + 1
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, per_round, restarts, idle) = if quick {
        (2, 20_000, 200, 10_000)
    } else {
        (21, 100_000, 2_000, 100_000)
    };
    // Silence the default panic message for the thousands of deliberate crashes.
    std::panic::set_hook(Box::new(|_| {}));
    actix::System::new().block_on(async move {
        round_trip(rounds, per_round).await;
        restart_latency(restarts).await;
        idle_actors(idle).await;
    });
}

async fn round_trip(rounds: usize, per_round: u64) {
    let bare = actix::Actor::start(BareEcho);
    let tree = SupervisorSpec::new("bench")
        .child(ChildSpec::new("echo", || Echo))
        .start()
        .expect("tree");
    let echo = tree.actor::<Echo>("echo").expect("echo");
    // Alternate the two in adjacent rounds and compare each pair, so that
    // load from other processes hits both sides alike.
    let mut bare_ns = Vec::new();
    let mut sup_ns = Vec::new();
    let mut ratios = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        for i in 0..per_round {
            bare.send(BarePing(i)).await.expect("bare");
        }
        let b = t.elapsed().as_nanos() as f64 / per_round as f64;
        let t = Instant::now();
        for i in 0..per_round {
            echo.send(Ping(i)).await.expect("supervised");
        }
        let s = t.elapsed().as_nanos() as f64 / per_round as f64;
        bare_ns.push(b);
        sup_ns.push(s);
        ratios.push(s / b);
    }
    for v in [&mut bare_ns, &mut sup_ns, &mut ratios] {
        v.sort_by(f64::total_cmp);
    }
    let mid = rounds / 2;
    println!("round trip ({rounds} paired rounds x {per_round} sequential sends, same thread):");
    println!(
        "  bare actix actor      {:8.1} ns/msg (median)",
        bare_ns[mid]
    );
    println!(
        "  supervised actor      {:8.1} ns/msg (median)",
        sup_ns[mid]
    );
    println!(
        "  overhead              {:+8.1} % (median of paired ratios; min {:+.1} %)",
        (ratios[mid] - 1.0) * 100.0,
        (ratios[0] - 1.0) * 100.0
    );
    tree.shutdown().await;
}

async fn restart_latency(children: usize) {
    // The default policy restarts the first crash after a quiet period at
    // once and backs off after that; one crash per child measures the
    // immediate path, which is what a rare crash of a healthy actor sees.
    let tree = SupervisorSpec::new("bench")
        .intensity(Intensity::new(u32::MAX, Duration::from_secs(1)))
        .children((0..children).map(|i| ChildSpec::new(format!("e{i}"), || Echo)))
        .start()
        .expect("tree");
    let refs: Vec<_> = (0..children)
        .map(|i| tree.actor::<Echo>(&format!("e{i}")).expect("child"))
        .collect();
    for r in &refs {
        r.send(Ping(0)).await.expect("started");
    }
    let mut samples = Vec::with_capacity(children);
    for r in &refs {
        let t = Instant::now();
        let _ = r.send(Crash).await;
        r.send(Ping(1)).await.expect("restarted");
        samples.push(t.elapsed());
    }
    samples.sort();
    println!("restart latency (panic sent -> new instance answered, {children} restarts, default policy):");
    println!(
        "  median {:?}  p90 {:?}  p99 {:?}  max {:?}",
        percentile(&samples, 0.5),
        percentile(&samples, 0.9),
        percentile(&samples, 0.99),
        samples[samples.len() - 1]
    );
    tree.shutdown().await;
}

async fn idle_actors(n: usize) {
    let before = rss_bytes();
    let t = Instant::now();
    let tree = SupervisorSpec::new("bench")
        .children((0..n).map(|i| ChildSpec::new(format!("idle{i}"), || Echo)))
        .start()
        .expect("tree");
    let last = tree.actor::<Echo>(&format!("idle{}", n - 1)).expect("last");
    // Children start in order on this thread: once the last answers, all run.
    last.send(Ping(0)).await.expect("last started");
    let elapsed = t.elapsed();
    let after = rss_bytes();
    let per = (after.saturating_sub(before)) as f64 / n as f64;
    println!("{n} idle supervised actors under one supervisor:");
    println!(
        "  start time {elapsed:?} ({:.2} us/actor)",
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "  RSS growth {:.1} MiB, {per:.0} bytes/actor",
        (after - before) as f64 / 1048576.0
    );
    let t = Instant::now();
    tree.shutdown().await;
    println!("  ordered shutdown of all {n}: {:?}", t.elapsed());
}
