//! The job engine on PostgreSQL (the cluster store) beside sled, in one run.
//!
//! Run: `cargo run --release --example bench_cluster [-- --quick]`
//!
//! The database is `$TROUPE_BENCH_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`; its user, password, database,
//! host and port are used). Every PostgreSQL part runs in a fresh scratch
//! schema, dropped after it; sled runs in a temp dir with its default
//! settings. The engine's settings are `bench_engine`'s: the no-op worker
//! runs up to 1,024 jobs at once and a claim takes up to 1,024.
//!
//! Prints, PostgreSQL and sled side by side:
//! 1. **bulk**: 20,000 durable no-op jobs enqueued 1,000 a call
//!    (`enqueue_many`), one engine node working them off: jobs/s from the
//!    first enqueue to the last completion (as the store reports it);
//! 2. **64 producers**: 64 tasks enqueueing single jobs (10,000 in all)
//!    while the node works them off: jobs/s, the same way;
//! 3. **enqueue → start**: one job at a time, each waited for until it
//!    starts before the next (10 untimed, then 500 samples): median, p90,
//!    p99 and max from the enqueue's acknowledgement to the worker's start.
//!    On PostgreSQL across nodes: a bare `PostgresStore` (node A) enqueues,
//!    a second node's engine (node B, woken by LISTEN/NOTIFY) runs the job;
//!    on sled in one process;
//! 4. **what a job costs the database**, two ways: the `pg_stat_*` deltas of
//!    the timed PostgreSQL runs (transactions, rows written, WAL bytes, WAL
//!    syncs; `pg_stat_database` and `pg_stat_wal` are server-wide, so other
//!    sessions' work would show up there, the row counts are the scratch
//!    schema's own), and a separate run of each through a proxy that reads
//!    the wire protocol: statements, round trips, transactions and rows
//!    written per job for each kind of statement (enqueue, claim, complete,
//!    heartbeat, …);
//!    (The proxy sees command tags, so a heartbeat's renewals of running
//!    jobs, made in a CTE, are not in its rows; the `pg_stat` rows are.)
//! 5. **dead node rescue**: this executable re-run as a child (the victim,
//!    node A) claims 100 long jobs and is SIGKILLed while running them, at
//!    a random point of its heartbeat period; node B, with the default
//!    lease (15 s) and heartbeat (3 s), its rescuer started at a random
//!    point too, rescues them and completes them (its worker returns at
//!    once: the rescue is measured, not the work). Time from the kill to
//!    all 100 running again on B and to all 100 completed, the lease the
//!    victim had left, and double completions, counted in the database by
//!    a trigger. (The producer's store is a node too: two nodes rescue.)
//!
//! Besides, for the throughput runs: CPU per job of the node and of the
//! postgres processes, and how many CPUs the node, postgres, everything
//! else on the machine and iowait took (busy CPUs mean work; idle ones mean
//! waiting: round trips, fsyncs, locks).
//!
//! Each part runs in a process of its own (this executable again, told its
//! part by `$TROUPE_BENCH_CLUSTER_PART`, answering with a JSON line): a
//! stopped engine does not let go of its store, so its connections would
//! stay open (and their statistics unwritten) until the process ends.
//!
//! A run takes about a minute. `--quick`: 2,000 bulk jobs, 1,000 from the
//! producers, 50 latency samples (the rescue is the same). Its figures are
//! noisy on a shared machine: compare several runs.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::BufRead;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use troupe::job::{EnqueueOptions, Job, JobCtx, JobStatus};
use troupe::postgres::{PostgresConfig, PostgresStore, ScratchSchema};
use troupe::store::prelude::*;
use troupe::{
    EngineConfig, JobContext, NewJob, Registration, Worker, WorkerCategory, WorkerEngine,
    WorkerError,
};

mod support;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where the database is.
const URL_VAR: &str = "TROUPE_BENCH_DATABASE_URL";
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Jobs the victim holds when it is killed.
const RESCUED: usize = 100;
/// Untimed enqueue → start samples before the timed ones.
const WARMUP: u64 = 10;

// ---------------------------------------------------------------- workers

type Starts = tokio::sync::mpsc::UnboundedSender<(u64, Instant)>;

/// Does nothing; counts its runs and, when asked, says when each started.
struct Noop {
    runs: Arc<AtomicU64>,
    starts: Option<Starts>,
}

#[async_trait]
impl Worker for Noop {
    fn name(&self) -> &str {
        "noop"
    }
    fn description(&self) -> &str {
        "does nothing"
    }
    fn category(&self) -> WorkerCategory {
        WorkerCategory::Diagnostic
    }
    async fn run(&self, args: Value, _: JobContext) -> Result<Value, WorkerError> {
        if let Some(starts) = &self.starts {
            let _ = starts.send((args["n"].as_u64().unwrap_or(0), Instant::now()));
        }
        self.runs.fetch_add(1, Ordering::Relaxed);
        Ok(Value::Null)
    }
}

/// The rescue's job: on the victim it runs until the process is killed; on
/// the rescuing node it notes when it started and returns at once.
struct Nap {
    starts: Option<Arc<Mutex<Vec<Instant>>>>,
}

#[async_trait]
impl Worker for Nap {
    fn name(&self) -> &str {
        "nap"
    }
    fn description(&self) -> &str {
        "a long job (on the victim), a short one elsewhere"
    }
    fn category(&self) -> WorkerCategory {
        WorkerCategory::Diagnostic
    }
    async fn run(&self, _: Value, _: JobContext) -> Result<Value, WorkerError> {
        match &self.starts {
            None => tokio::time::sleep(Duration::from_secs(3600)).await,
            Some(starts) => starts
                .lock()
                .map_err(WorkerError::permanent)?
                .push(Instant::now()),
        }
        Ok(Value::Null)
    }
}

fn engine(
    store: Arc<dyn Store>,
    worker: Arc<dyn Worker>,
    concurrency: usize,
) -> Result<WorkerEngine, BoxError> {
    let config = EngineConfig {
        claim_batch: 1024,
        ..EngineConfig::default()
    };
    Ok(WorkerEngine::builder(store)
        .config(config)
        .register(Registration::new(worker, concurrency))
        .start()?)
}

fn noop_job(n: u64) -> Result<Job, BoxError> {
    let options = EnqueueOptions::default();
    Ok(Job::new(
        "noop",
        json!({ "n": n }),
        JobCtx::default(),
        &options,
        Utc::now(),
    )?)
}

/// Until the store says `n` jobs completed: first until the worker ran `n`
/// (no load on the database), then asking every 2 ms. On PostgreSQL it asks
/// with `sql` whether any job is still queued or running (an index probe;
/// `counts` would scan the table each time), then checks the counts once.
/// How many times it asked (on PostgreSQL each is a transaction).
async fn wait_completed(
    engine: &WorkerEngine,
    runs: &AtomicU64,
    n: u64,
    sql: Option<&tokio_postgres::Client>,
) -> Result<u64, BoxError> {
    let mut polls = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while runs.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline {
            return Err("jobs did not run in time".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    loop {
        polls += 1;
        let over = match sql {
            Some(sql) => {
                let open: bool = sql
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM jobs WHERE status IN ('queued', 'running'))",
                        &[],
                    )
                    .await?
                    .get(0);
                !open
            }
            None => engine.counts().await?.status(JobStatus::Completed) >= n,
        };
        if over {
            break;
        }
        if Instant::now() > deadline {
            return Err("jobs did not complete in time".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let counts = engine.counts().await?;
    if counts.status(JobStatus::Completed) != n {
        return Err(format!("{n} jobs enqueued, but: {counts:?}").into());
    }
    Ok(polls)
}

// ---------------------------------------------------------------- stores

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Backend {
    Postgres,
    Sled,
}

/// The database the benchmark runs on.
struct Pg {
    base: tokio_postgres::Config,
}

impl Pg {
    fn new(url: &str) -> Result<Self, BoxError> {
        Ok(Pg { base: url.parse()? })
    }

    /// The server's address, for the counting proxy.
    fn upstream(&self) -> Result<SocketAddr, BoxError> {
        let port = self.base.get_ports().first().copied().unwrap_or(5432);
        match self.base.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => (host.as_str(), port)
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| format!("{host} does not resolve").into()),
            _ => Err("the wire count needs a TCP host in the URL".into()),
        }
    }

    /// A connection string to the server (or to `via`, the proxy) that
    /// names the application `app`, so its sessions can be told apart in
    /// `pg_stat_activity`.
    fn conninfo(&self, via: Option<SocketAddr>, app: &str) -> String {
        fn quote(v: &str) -> String {
            format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
        }
        let port = self.base.get_ports().first().copied().unwrap_or(5432);
        let (host, port) = match (via, self.base.get_hosts().first()) {
            (Some(addr), _) => (addr.ip().to_string(), addr.port()),
            (None, Some(tokio_postgres::config::Host::Tcp(h))) => (h.clone(), port),
            #[cfg(unix)]
            (None, Some(tokio_postgres::config::Host::Unix(p))) => (p.display().to_string(), port),
            (None, None) => ("localhost".to_string(), port),
        };
        let mut info = format!(
            "host={} port={port} application_name={}",
            quote(&host),
            quote(app)
        );
        if let Some(user) = self.base.get_user() {
            info.push_str(&format!(" user={}", quote(user)));
        }
        if let Some(db) = self.base.get_dbname() {
            info.push_str(&format!(" dbname={}", quote(db)));
        }
        if let Some(pw) = self.base.get_password() {
            info.push_str(&format!(
                " password={}",
                quote(&String::from_utf8_lossy(pw))
            ));
        }
        info
    }

    /// A node on `schema` (a new node id, default lease and heartbeat),
    /// connected as `app`.
    async fn store(
        &self,
        schema: &str,
        via: Option<SocketAddr>,
        app: &str,
    ) -> Result<PostgresStore, BoxError> {
        let config = PostgresConfig::new(self.conninfo(via, app)).schema(schema.to_string());
        Ok(PostgresStore::connect(config).await?)
    }

    /// A new scratch schema, dropped (with everything in it) when dropped.
    fn scratch(&self) -> ScratchSchema {
        ScratchSchema::new(&self.conninfo(None, "troupe-bench-schema"))
    }

    /// A plain client, for statistics and counts.
    async fn sql(&self) -> Result<tokio_postgres::Client, BoxError> {
        let info = self.conninfo(None, "troupe-bench-sql");
        let (client, connection) = tokio_postgres::connect(&info, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// [`sql`](Self::sql) with `schema` on the search path.
    async fn sql_on(&self, schema: &str) -> Result<tokio_postgres::Client, BoxError> {
        let client = self.sql().await?;
        client
            .batch_execute(&format!("SET search_path TO {schema}"))
            .await?;
        Ok(client)
    }
}

/// A store for one part: a node on `schema` (connected as `app`, through
/// `via` if given), or sled in a new directory (kept by the answer).
async fn open(
    pg: &Pg,
    schema: Option<&str>,
    app: &str,
    via: Option<SocketAddr>,
) -> Result<(Arc<dyn Store>, Option<tempfile::TempDir>), BoxError> {
    if let Some(schema) = schema {
        return Ok((Arc::new(pg.store(schema, via, app).await?), None));
    }
    let dir = tempfile::TempDir::new()?;
    let store = troupe::sled::SledStore::open(troupe::sled::SledConfig::new(dir.path()))?;
    Ok((Arc::new(store), Some(dir)))
}

// ---------------------------------------------------------------- statistics

/// Server-wide counters (`pg_stat_database`, `pg_stat_wal`).
#[derive(Debug, Default, Clone, Copy)]
struct ServerStats {
    commits: i64,
    wal_bytes: f64,
    wal_syncs: i64,
}

async fn server_stats(sql: &tokio_postgres::Client) -> Result<ServerStats, BoxError> {
    let db = sql
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await?;
    let wal = sql
        .query_one("SELECT wal_bytes::float8, wal_sync FROM pg_stat_wal", &[])
        .await?;
    Ok(ServerStats {
        commits: db.get(0),
        wal_bytes: wal.get(0),
        wal_syncs: wal.get(1),
    })
}

/// Rows the schema's tables took: inserted, updated (of which HOT), deleted.
async fn row_stats(sql: &tokio_postgres::Client, schema: &str) -> Result<[i64; 4], BoxError> {
    let row = sql
        .query_one(
            "SELECT coalesce(sum(n_tup_ins), 0)::int8, coalesce(sum(n_tup_upd), 0)::int8, \
                    coalesce(sum(n_tup_hot_upd), 0)::int8, coalesce(sum(n_tup_del), 0)::int8 \
             FROM pg_stat_user_tables WHERE schemaname = $1",
            &[&schema],
        )
        .await?;
    Ok([row.get(0), row.get(1), row.get(2), row.get(3)])
}

/// Until every session named `app` has ended (their statistics are written
/// when they end), and a moment more.
async fn wait_sessions_gone(sql: &tokio_postgres::Client, app: &str) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left: i64 = sql
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&app],
            )
            .await?
            .get(0);
        if left == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("{left} sessions of {app} did not end").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

/// CPU time so far: this process, the postgres processes, the machine
/// (busy, in iowait), and when.
#[derive(Debug, Clone, Copy)]
struct Cpu {
    at: Instant,
    own: Duration,
    postgres: Duration,
    busy: Duration,
    iowait: Duration,
}

fn cpu() -> Cpu {
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .unwrap_or(100)
        .max(1);
    let ticks = |n: u64| Duration::from_micros(n * 1_000_000 / hz);
    let mut postgres = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] == "postgres" {
            // utime and stime: fields 14 and 15 of proc(5); the state is 3.
            let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            for i in [11, 12] {
                postgres += fields
                    .get(i)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    // user nice system idle iowait irq softirq steal
    let machine: Vec<u64> = std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let field = |i: usize| machine.get(i).copied().unwrap_or(0);
    Cpu {
        at: Instant::now(),
        own: support::cpu_time(),
        postgres: ticks(postgres),
        busy: ticks(machine.iter().sum::<u64>() - field(3) - field(4)),
        iowait: ticks(field(4)),
    }
}

/// CPU between two readings: per job, this process and postgres; in CPUs
/// kept busy, those two, everything else on the machine, and iowait.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct CpuUse {
    own_us: f64,
    postgres_us: f64,
    own_cpus: f64,
    postgres_cpus: f64,
    other_cpus: f64,
    iowait_cpus: f64,
}

fn cpu_use(a: Cpu, b: Cpu, jobs: u64) -> CpuUse {
    let wall = (b.at - a.at).as_secs_f64().max(1e-9);
    let own = (b.own - a.own).as_secs_f64();
    let postgres = b.postgres.saturating_sub(a.postgres).as_secs_f64();
    let busy = b.busy.saturating_sub(a.busy).as_secs_f64();
    let jobs = jobs.max(1) as f64;
    CpuUse {
        own_us: own * 1e6 / jobs,
        postgres_us: postgres * 1e6 / jobs,
        own_cpus: own / wall,
        postgres_cpus: postgres / wall,
        other_cpus: (busy - own - postgres).max(0.0) / wall,
        iowait_cpus: b.iowait.saturating_sub(a.iowait).as_secs_f64() / wall,
    }
}

// ---------------------------------------------------------------- the wire

/// What one kind of statement cost, at the wire.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    statements: u64,
    round_trips: u64,
    transactions: u64,
    rows: u64,
}

type Tallies = Arc<Mutex<BTreeMap<String, Tally>>>;

/// Kinds of statement, by a piece of their SQL; the first match wins.
const KINDS: &[(&str, &str)] = &[
    ("INSERT INTO jobs", "enqueue: insert"),
    ("pg_notify", "enqueue: notify"),
    ("FOR UPDATE SKIP LOCKED", "claim: lock ready jobs"),
    ("SET status = 'running'", "claim: mark them running"),
    ("WITH ready", "claim: next wake (after each claim)"),
    ("earliest AS", "claim: next wake (after each claim)"),
    ("WHERE id = $1 FOR UPDATE", "complete: lock the job"),
    (
        "WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        "complete: lock the jobs",
    ),
    ("SET status = u.status", "complete: write it back"),
    ("SET status = $2", "complete: write it back"),
    ("WITH renewed", "heartbeat"),
    ("pg_try_advisory_xact_lock", "rescue: take the lock"),
    ("status = 'running' AND (", "rescue/recover: find expired"),
    ("GROUP BY worker, status", "counts (the benchmark's wait)"),
];

fn kind_of(sql: &str) -> String {
    KINDS
        .iter()
        .find(|(piece, _)| sql.contains(piece))
        .map(|(_, kind)| (*kind).to_string())
        .unwrap_or_else(|| {
            let words: Vec<&str> = sql.split_whitespace().collect();
            let text = words.join(" ");
            format!("other: {}", text.chars().take(44).collect::<String>())
        })
}

/// A TCP proxy in front of PostgreSQL that reads the protocol both ways
/// and counts, per kind of statement: executions, round trips (a `Sync` or
/// a simple query: the client waits for the server's answer), transactions
/// (a `BEGIN`…`COMMIT`, counted to its first statement, with its two round
/// trips; or a statement outside one) and rows written (from the server's
/// command tags). It forwards bytes untouched, parsing a copy.
struct Wire {
    addr: SocketAddr,
    tallies: Tallies,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Wire {
    fn start(upstream: SocketAddr) -> Result<Wire, BoxError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("wire-count")
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let tallies = Tallies::default();
        let for_relays = tallies.clone();
        runtime.spawn(async move {
            let Ok(listener) = TcpListener::from_std(listener) else {
                return;
            };
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, for_relays.clone()));
            }
        });
        Ok(Wire {
            addr,
            tallies,
            runtime: Some(runtime),
        })
    }

    /// The counts so far, cleared.
    fn take(&self) -> BTreeMap<String, Tally> {
        self.tallies
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default()
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Kinds of the statements of each round trip not yet answered, oldest
/// first: the server answers in order.
type Pending = Arc<Mutex<VecDeque<VecDeque<String>>>>;

async fn relay(client: TcpStream, upstream: SocketAddr, tallies: Tallies) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let pending = Pending::default();
    let mut up = Up::new(tallies.clone(), pending.clone());
    let mut down = Down {
        frames: Frames::typed(),
        tallies,
        pending,
    };
    let upward = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = client_rx.read(&mut buf).await {
            up.feed(&buf[..n]);
            if server_tx.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_tx.shutdown().await;
    };
    let downward = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = server_rx.read(&mut buf).await {
            down.feed(&buf[..n]);
            if client_tx.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_tx.shutdown().await;
    };
    tokio::join!(upward, downward);
}

/// Cuts a byte stream into protocol messages: a type byte and a length that
/// counts itself; before the startup message, no type byte.
struct Frames {
    buf: Vec<u8>,
    typed: bool,
}

impl Frames {
    fn typed() -> Self {
        Frames {
            buf: Vec::new(),
            typed: true,
        }
    }

    /// Calls `each(type, body)` for every whole message (type 0 before the
    /// startup message).
    fn push(&mut self, bytes: &[u8], mut each: impl FnMut(u8, &[u8])) {
        self.buf.extend_from_slice(bytes);
        let mut at = 0;
        loop {
            let skip = usize::from(self.typed);
            let rest = &self.buf[at..];
            if rest.len() < skip + 4 {
                break;
            }
            let mut len = [0u8; 4];
            len.copy_from_slice(&rest[skip..skip + 4]);
            let len = usize::try_from(i32::from_be_bytes(len)).unwrap_or(0).max(4);
            if rest.len() < skip + len {
                break;
            }
            let kind = if self.typed { rest[0] } else { 0 };
            let body = &rest[skip + 4..skip + len];
            if !self.typed {
                // SSLRequest and GSSENCRequest are followed by another
                // untyped message; the startup message by typed ones.
                let code = body.get(..4).map(|c| [c[0], c[1], c[2], c[3]]);
                let code = code.map(u32::from_be_bytes).unwrap_or(0);
                self.typed = code != 80_877_103 && code != 80_877_104;
            }
            each(kind, body);
            at += skip + len;
        }
        self.buf.drain(..at);
    }
}

/// The strings of a message body, each ended by a 0 byte.
fn strings(body: &[u8]) -> impl Iterator<Item = &str> {
    body.split(|b| *b == 0)
        .map(|s| std::str::from_utf8(s).unwrap_or(""))
}

fn tally<'a>(tallies: &'a mut BTreeMap<String, Tally>, kind: &str) -> &'a mut Tally {
    tallies.entry(kind.to_string()).or_default()
}

/// The client's side: what it asks.
struct Up {
    frames: Frames,
    tallies: Tallies,
    pending: Pending,
    /// Prepared statements by name: their kind.
    prepared: HashMap<String, String>,
    /// The kind of the statement bound last.
    bound: String,
    /// The kind of this round trip (its last Parse or Bind).
    trip: Option<String>,
    /// Whether this round trip executed something.
    executed: bool,
    /// Whether the answers of this round trip have a list in `pending`.
    open: bool,
    in_tx: bool,
    /// The kind of the transaction's first statement.
    tx_kind: Option<String>,
}

impl Up {
    fn new(tallies: Tallies, pending: Pending) -> Self {
        Up {
            frames: Frames {
                buf: Vec::new(),
                typed: false,
            },
            tallies,
            pending,
            prepared: HashMap::new(),
            bound: "other".into(),
            trip: None,
            executed: false,
            open: false,
            in_tx: false,
            tx_kind: None,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let mut frames = std::mem::replace(&mut self.frames, Frames::typed());
        frames.push(bytes, |kind, body| self.message(kind, body));
        self.frames = frames;
    }

    /// The server will answer a statement of `kind` in this round trip.
    fn expect(&mut self, kind: &str) {
        if let Ok(mut pending) = self.pending.lock() {
            if !self.open {
                pending.push_back(VecDeque::new());
            }
            if let Some(trip) = pending.back_mut() {
                trip.push_back(kind.to_string());
            }
        }
        self.open = true;
    }

    /// This round trip is sent: the server ends its answer with
    /// ReadyForQuery.
    fn end_trip(&mut self) {
        if !self.open {
            if let Ok(mut pending) = self.pending.lock() {
                pending.push_back(VecDeque::new());
            }
        }
        self.open = false;
    }

    fn message(&mut self, kind: u8, body: &[u8]) {
        let Ok(mut tallies) = self.tallies.lock() else {
            return;
        };
        match kind {
            // The startup message: the server answers with ReadyForQuery.
            0 => {
                drop(tallies);
                self.end_trip();
            }
            b'P' => {
                let mut s = strings(body);
                let name = s.next().unwrap_or("").to_string();
                let kind = kind_of(s.next().unwrap_or(""));
                self.trip = Some(kind.clone());
                self.prepared.insert(name, kind);
            }
            b'B' => {
                let statement = strings(body).nth(1).unwrap_or("");
                self.bound = self
                    .prepared
                    .get(statement)
                    .cloned()
                    .unwrap_or_else(|| "other".into());
                self.trip = Some(self.bound.clone());
            }
            b'E' => {
                let kind = self.bound.clone();
                tally(&mut tallies, &kind).statements += 1;
                if self.in_tx && self.tx_kind.is_none() {
                    self.tx_kind = Some(kind.clone());
                }
                self.executed = true;
                drop(tallies);
                self.expect(&kind);
            }
            // Close (of a statement prepared for one query): counted to
            // that statement's kind.
            b'C' if body.first() == Some(&b'S') => {
                let name = strings(&body[1..]).next().unwrap_or("");
                self.trip = Some(self.prepared.remove(name).unwrap_or_else(|| "other".into()));
            }
            b'S' => {
                let kind = self.trip.take().unwrap_or_else(|| "other".into());
                let t = tally(&mut tallies, &kind);
                t.round_trips += 1;
                if self.executed && !self.in_tx {
                    t.transactions += 1;
                }
                self.executed = false;
                drop(tallies);
                self.end_trip();
            }
            b'Q' => {
                let sql = strings(body).next().unwrap_or("").trim();
                let upper = sql.to_ascii_uppercase();
                let verb = if upper.starts_with("BEGIN") || upper.starts_with("START TRANSACTION") {
                    "BEGIN"
                } else {
                    upper.as_str()
                };
                let expected = match verb {
                    "BEGIN" => {
                        self.in_tx = true;
                        self.tx_kind = None;
                        "BEGIN".to_string()
                    }
                    "COMMIT" | "ROLLBACK" => {
                        self.in_tx = false;
                        let kind = self.tx_kind.take().unwrap_or_else(|| "other".into());
                        let t = tally(&mut tallies, &kind);
                        t.round_trips += 2;
                        t.transactions += 1;
                        "COMMIT".to_string()
                    }
                    _ => {
                        let kind = kind_of(sql);
                        let t = tally(&mut tallies, &kind);
                        t.statements += 1;
                        t.round_trips += 1;
                        if !self.in_tx {
                            t.transactions += 1;
                        }
                        kind
                    }
                };
                drop(tallies);
                self.expect(&expected);
                self.end_trip();
            }
            _ => {}
        }
    }
}

/// The server's side: its command tags give the rows written.
struct Down {
    frames: Frames,
    tallies: Tallies,
    pending: Pending,
}

impl Down {
    fn feed(&mut self, bytes: &[u8]) {
        let (tallies, pending) = (&self.tallies, &self.pending);
        self.frames.push(bytes, |kind, body| {
            let (Ok(mut tallies), Ok(mut pending)) = (tallies.lock(), pending.lock()) else {
                return;
            };
            match kind {
                b'C' => {
                    let tag: Vec<&str> = strings(body).next().unwrap_or("").split(' ').collect();
                    let rows = match tag.first().copied() {
                        Some("INSERT") => tag.get(2),
                        Some("UPDATE") | Some("DELETE") => tag.get(1),
                        _ => None,
                    };
                    let rows: u64 = rows.and_then(|r| r.parse().ok()).unwrap_or(0);
                    let trip = pending.front_mut();
                    // A simple query of several statements has one kind.
                    let kind = trip.and_then(|t| {
                        if t.len() > 1 {
                            t.pop_front()
                        } else {
                            t.front().cloned()
                        }
                    });
                    if rows > 0 {
                        tally(&mut tallies, kind.as_deref().unwrap_or("other")).rows += rows;
                    }
                }
                b'Z' => {
                    pending.pop_front();
                }
                _ => {}
            }
        });
    }
}

// ---------------------------------------------------------------- the parts

/// One part of the benchmark, run in a process of its own (this executable
/// again, told which part by `$TROUPE_BENCH_CLUSTER_PART`): a stopped
/// engine keeps its store (and, on PostgreSQL, its connections) until the
/// process ends (its supervisors hold each other and the engine's state
/// after a shutdown), and the server writes a session's statistics when
/// the session ends. PostgreSQL parts run on a schema the parent made and
/// drops after.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Part {
    Throughput {
        feed: Feed,
        schema: Option<String>,
        via: Option<SocketAddr>,
    },
    Latency {
        samples: u64,
        schema: Option<String>,
    },
    Rescue {
        schema: String,
    },
    /// The node killed in the rescue.
    Victim {
        schema: String,
    },
}

/// Says which part the child runs.
const PART_VAR: &str = "TROUPE_BENCH_CLUSTER_PART";
/// What every node of a part is called in `pg_stat_activity`.
const APP: &str = "troupe-bench-node";

/// Runs `part` in a child process and reads its answer (its last stdout
/// line, JSON). The child's stderr is ours.
async fn run_part<T: DeserializeOwned>(url: &str, part: &Part) -> Result<T, BoxError> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .env(PART_VAR, serde_json::to_string(part)?)
        .env(URL_VAR, url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let out = tokio::task::spawn_blocking(move || command.output()).await??;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.lines().last() {
        Some(line) if out.status.success() => Ok(serde_json::from_str(line)?),
        _ => Err(format!("{part:?} failed ({}): {text}", out.status).into()),
    }
}

/// In the child: runs `part` and prints its answer.
fn child(pg: &Pg, url: &str, part: Part) -> Result<(), BoxError> {
    if let Part::Victim { schema } = &part {
        return victim(pg, schema);
    }
    let answer = troupe_actors::run_system(async move {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                Ok::<Value, BoxError>(match part {
                    Part::Throughput { feed, schema, via } => {
                        serde_json::to_value(throughput(pg, feed, schema.as_deref(), via).await?)?
                    }
                    Part::Latency { samples, schema } => {
                        serde_json::to_value(latency(pg, samples, schema.as_deref()).await?)?
                    }
                    Part::Rescue { schema } => {
                        serde_json::to_value(rescue(pg, url, &schema).await?)?
                    }
                    Part::Victim { .. } => Value::Null,
                })
            })
            .await
    })?;
    println!("{answer}");
    Ok(())
}

// ---------------------------------------------------------------- parts 1, 2, 4

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Feed {
    /// This many jobs, 1,000 an `enqueue_many`.
    Bulk(u64),
    /// 64 tasks enqueueing one job at a time, this many in all.
    Producers(u64),
}

impl Feed {
    fn total(self) -> u64 {
        match self {
            Feed::Bulk(n) | Feed::Producers(n) => n,
        }
    }
}

/// What a PostgreSQL run cost, per job, from the server's statistics.
#[derive(Debug, Clone, Copy)]
struct PgCost {
    commits: f64,
    inserted: f64,
    updated: f64,
    hot: f64,
    deleted: f64,
    wal_bytes: f64,
    wal_syncs: f64,
}

/// A throughput run, as the child measured it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Run {
    rate: f64,
    cpu: CpuUse,
    /// The completion wait's queries (each a transaction): the benchmark's,
    /// not the engine's.
    polls: u64,
}

async fn enqueue_all(engine: &WorkerEngine, feed: Feed) -> Result<(), BoxError> {
    match feed {
        Feed::Bulk(total) => {
            let mut n = 0;
            while n < total {
                let batch: Vec<NewJob> = (n..(n + 1000).min(total))
                    .map(|i| NewJob {
                        worker_name: "noop".into(),
                        args: json!({ "n": i }),
                        ctx: JobCtx::default(),
                        options: EnqueueOptions::default(),
                    })
                    .collect();
                n += batch.len() as u64;
                engine.enqueue_many(batch).await?;
            }
        }
        Feed::Producers(total) => {
            const PRODUCERS: u64 = 64;
            let mut handles = Vec::new();
            for p in 0..PRODUCERS {
                let engine = engine.clone();
                let mine = total / PRODUCERS + u64::from(p < total % PRODUCERS);
                handles.push(tokio::task::spawn_local(async move {
                    for i in 0..mine {
                        engine
                            .enqueue(
                                "noop",
                                json!({ "n": p * 1_000_000 + i }),
                                JobCtx::default(),
                                EnqueueOptions::default(),
                            )
                            .await?;
                    }
                    Ok::<(), troupe::EngineError>(())
                }));
            }
            for h in handles {
                h.await??;
            }
        }
    }
    Ok(())
}

/// In the child: one node works off `feed`; jobs/s from the first enqueue
/// to the last completion, and CPU.
async fn throughput(
    pg: &Pg,
    feed: Feed,
    schema: Option<&str>,
    via: Option<SocketAddr>,
) -> Result<Run, BoxError> {
    let (store, _dir) = open(pg, schema, APP, via).await?;
    let runs = Arc::new(AtomicU64::new(0));
    let noop = Noop {
        runs: runs.clone(),
        starts: None,
    };
    let engine = engine(store, Arc::new(noop), 1024)?;
    let sql = match schema {
        Some(schema) => Some(pg.sql_on(schema).await?),
        None => None,
    };
    let total = feed.total();
    let cpu0 = cpu();
    let t = Instant::now();
    enqueue_all(&engine, feed).await?;
    let polls = wait_completed(&engine, &runs, total, sql.as_ref()).await?;
    let rate = total as f64 / t.elapsed().as_secs_f64();
    let cpu = cpu_use(cpu0, cpu(), total);
    engine.shutdown().await?;
    Ok(Run { rate, cpu, polls })
}

/// In the parent: a throughput part on `backend`, and on PostgreSQL what
/// it cost the server (read once the child's sessions have ended).
async fn measure(
    pg: &Pg,
    url: &str,
    backend: Backend,
    feed: Feed,
) -> Result<(Run, Option<PgCost>), BoxError> {
    if backend == Backend::Sled {
        let part = Part::Throughput {
            feed,
            schema: None,
            via: None,
        };
        return Ok((run_part(url, &part).await?, None));
    }
    let schema = pg.scratch();
    let name = schema.config().schema.clone();
    let sql = pg.sql().await?;
    let before = server_stats(&sql).await?;
    let part = Part::Throughput {
        feed,
        schema: Some(name.clone()),
        via: None,
    };
    let run: Run = run_part(url, &part).await?;
    wait_sessions_gone(&sql, APP).await?;
    let after = server_stats(&sql).await?;
    let rows = row_stats(&sql, &name).await?;
    let per = |v: f64| v / feed.total() as f64;
    let cost = PgCost {
        // Less the completion wait's polls and the final counts.
        commits: per((after.commits - before.commits) as f64 - run.polls as f64 - 1.0),
        inserted: per(rows[0] as f64),
        updated: per(rows[1] as f64),
        hot: per(rows[2] as f64),
        deleted: per(rows[3] as f64),
        wal_bytes: per(after.wal_bytes - before.wal_bytes),
        wal_syncs: per((after.wal_syncs - before.wal_syncs) as f64),
    };
    Ok((run, Some(cost)))
}

/// In the parent: a PostgreSQL throughput part through the counting proxy;
/// the counts per kind of statement (its speed is the proxy's: not shown).
async fn wire_count(pg: &Pg, url: &str, feed: Feed) -> Result<BTreeMap<String, Tally>, BoxError> {
    let wire = Wire::start(pg.upstream()?)?;
    let schema = pg.scratch();
    let part = Part::Throughput {
        feed,
        schema: Some(schema.config().schema.clone()),
        via: Some(wire.addr),
    };
    let _: Run = run_part(url, &part).await?;
    let sql = pg.sql().await?;
    wait_sessions_gone(&sql, APP).await?;
    Ok(wire.take())
}

// ---------------------------------------------------------------- part 3

#[derive(Debug, Serialize, Deserialize)]
struct Latency {
    /// Enqueue call → acknowledged, sorted.
    ack: Vec<Duration>,
    /// Acknowledged → the worker started, sorted.
    start: Vec<Duration>,
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// In the child: one job at a time, each waited for until it starts.
async fn latency(pg: &Pg, samples: u64, schema: Option<&str>) -> Result<Latency, BoxError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (store, _dir) = open(pg, schema, APP, None).await?;
    let noop = Noop {
        runs: Arc::default(),
        starts: Some(tx),
    };
    let engine = engine(store, Arc::new(noop), 1024)?;
    // Node A: a store of its own on the same schema that only enqueues.
    let producer = match schema {
        Some(schema) => Some(pg.store(schema, None, APP).await?),
        None => None,
    };
    let mut ack = Vec::new();
    let mut start = Vec::new();
    for n in 0..WARMUP + samples {
        let t = Instant::now();
        match &producer {
            Some(store) => {
                store.insert(noop_job(n)?).await?;
            }
            None => {
                engine
                    .enqueue(
                        "noop",
                        json!({ "n": n }),
                        JobCtx::default(),
                        EnqueueOptions::default(),
                    )
                    .await?;
            }
        }
        let acked = Instant::now();
        let started = loop {
            match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
                Ok(Some((m, at))) if m == n => break at,
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return Err(format!("job {n} did not start").into()),
            }
        };
        if n >= WARMUP {
            ack.push(acked - t);
            start.push(started.saturating_duration_since(acked));
        }
    }
    engine.shutdown().await?;
    ack.sort();
    start.sort();
    Ok(Latency { ack, start })
}

// ---------------------------------------------------------------- part 5

#[derive(Debug, Serialize, Deserialize)]
struct Rescue {
    /// The victim's leases had this long left when it was killed.
    lease_left: Duration,
    /// Kill → the last of the jobs started again on node B.
    running: Duration,
    /// Kill → the last of them completed (its `updated_at`).
    completed: Duration,
    /// Writes to an already completed job.
    double: i64,
    /// Completions recorded, and distinct jobs among them.
    completions: i64,
    distinct: i64,
}

/// The victim (node A), in its own process: runs `nap` jobs (up to
/// [`RESCUED`] at once) on `schema`, prints its node id, and runs until
/// killed (or until its parent goes away and stdin closes).
fn victim(pg: &Pg, schema: &str) -> Result<(), BoxError> {
    let config =
        PostgresConfig::new(pg.conninfo(None, "troupe-bench-victim")).schema(schema.to_string());
    troupe_actors::run_system(async move {
        let store = PostgresStore::connect(config).await?;
        let node = store.node_id();
        let _engine = engine(Arc::new(store), Arc::new(Nap { starts: None }), RESCUED)?;
        println!("{node}");
        std::io::Write::flush(&mut std::io::stdout())?;
        support::until_stdin_closes().await;
        Ok(())
    })
}

/// The victim's process, SIGKILLed if still running when dropped.
struct VictimProcess(Child);

impl Drop for VictimProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Counts every completion, and every write to a job already completed
/// (a double completion), in `completions`.
async fn audit_completions(sql: &tokio_postgres::Client, schema: &str) -> Result<(), BoxError> {
    sql.batch_execute(&format!(
        "CREATE TABLE {schema}.completions (job_id uuid, attempt int, old_status text);
         CREATE FUNCTION {schema}.audit_completion() RETURNS trigger AS $$
         BEGIN
             INSERT INTO {schema}.completions VALUES (NEW.id, NEW.attempt, OLD.status);
             RETURN NEW;
         END $$ LANGUAGE plpgsql;
         CREATE TRIGGER audit AFTER UPDATE ON {schema}.jobs FOR EACH ROW
             WHEN (NEW.status = 'completed' OR OLD.status = 'completed')
             EXECUTE FUNCTION {schema}.audit_completion();"
    ))
    .await?;
    Ok(())
}

/// A random wait below `max` ms.
fn random_ms(max: u64) -> Duration {
    let r = u64::try_from(uuid::Uuid::new_v4().as_u128() % u128::from(max.max(1))).unwrap_or(0);
    Duration::from_millis(r)
}

async fn count(sql: &tokio_postgres::Client, query: &str) -> Result<i64, BoxError> {
    Ok(sql.query_one(query, &[]).await?.get(0))
}

/// In the child: the victim claims [`RESCUED`] jobs and is killed; node B
/// (this process) rescues and completes them. The producer's store is a
/// live node too, so two nodes run rescue passes (every heartbeat, 3 s).
async fn rescue(pg: &Pg, url: &str, schema: &str) -> Result<Rescue, BoxError> {
    let deadline = Duration::from_secs(120);
    // A node that only enqueues (it takes part in rescues, as any node).
    let producer = pg.store(schema, None, APP).await?;
    let sql = pg.sql_on(schema).await?;
    audit_completions(&sql, schema).await?;
    // Node B's store (its rescuer runs from now on), connected a random
    // part of a heartbeat period before the victim claims: the rescuers'
    // phase against the victim's lease is not the same every run.
    let store_b = pg.store(schema, None, APP).await?;
    tokio::time::sleep(random_ms(3000)).await;

    let victim_part = serde_json::to_string(&Part::Victim {
        schema: schema.to_string(),
    })?;
    let mut child = VictimProcess(
        Command::new(std::env::current_exe()?)
            .env(PART_VAR, victim_part)
            .env(URL_VAR, url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let stdout = child.0.stdout.take().ok_or("no victim stdout")?;
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    })
    .await??;
    let victim: uuid::Uuid = line
        .trim()
        .parse()
        .map_err(|e| format!("the victim said {line:?}: {e}"))?;

    let jobs: Vec<Job> = (0..RESCUED)
        .map(|_| {
            let options = EnqueueOptions::default();
            Job::new("nap", json!({}), JobCtx::default(), &options, Utc::now())
        })
        .collect::<Result<_, _>>()?;
    producer.insert_many(jobs).await?;
    let t = Instant::now();
    loop {
        let held: i64 = sql
            .query_one(
                "SELECT count(*) FROM jobs WHERE status = 'running' AND lease_node = $1",
                &[&victim],
            )
            .await?
            .get(0);
        if held >= RESCUED as i64 {
            break;
        }
        if t.elapsed() > deadline {
            return Err(format!("the victim runs only {held} jobs").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Node B's engine: up before the kill, as a live cluster's other node
    // would be (not before: it would claim jobs itself).
    let starts = Arc::new(Mutex::new(Vec::new()));
    let nap = Nap {
        starts: Some(starts.clone()),
    };
    let node_b = engine(Arc::new(store_b), Arc::new(nap), RESCUED)?;
    // Killed at a random point of the victim's heartbeat period: the lease
    // it has left is not the same every run.
    tokio::time::sleep(Duration::from_millis(500) + random_ms(3000)).await;

    let lease_end: Option<chrono::DateTime<Utc>> = sql
        .query_one(
            "SELECT max(lease_until) FROM jobs WHERE lease_node = $1",
            &[&victim],
        )
        .await?
        .get(0);
    let killed_wall = Utc::now();
    let killed = Instant::now();
    child.0.kill()?;
    child.0.wait()?;
    let lease_end = lease_end.unwrap_or(killed_wall);

    let last_start = || -> Result<Option<Duration>, BoxError> {
        let starts = starts.lock().map_err(|e| e.to_string())?;
        Ok((starts.len() >= RESCUED)
            .then(|| starts.iter().max().map(|at| *at - killed))
            .flatten())
    };
    let completed = loop {
        let done = count(&sql, "SELECT count(*) FROM jobs WHERE status = 'completed'").await?;
        if done >= RESCUED as i64 {
            let last: chrono::DateTime<Utc> = sql
                .query_one("SELECT max(updated_at) FROM jobs", &[])
                .await?
                .get(0);
            break (last - killed_wall).to_std().unwrap_or_default();
        }
        if killed.elapsed() > deadline {
            return Err(format!("only {done} of {RESCUED} rescued jobs completed").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let answer = Rescue {
        lease_left: (lease_end - killed_wall).to_std().unwrap_or_default(),
        running: last_start()?.ok_or("node B did not start every job")?,
        completed,
        double: count(
            &sql,
            "SELECT count(*) FROM completions WHERE old_status = 'completed'",
        )
        .await?,
        completions: count(&sql, "SELECT count(*) FROM completions").await?,
        distinct: count(&sql, "SELECT count(DISTINCT job_id) FROM completions").await?,
    };
    node_b.shutdown().await?;
    Ok(answer)
}

// ---------------------------------------------------------------- the report

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn print_wire(title: &str, jobs: u64, tallies: &BTreeMap<String, Tally>) {
    println!("\n{title}: per job, counted at the wire ({jobs} jobs)");
    println!(
        "  {:<42} {:>10} {:>11} {:>12} {:>12}",
        "statement", "executed", "round trips", "transactions", "rows written"
    );
    let per = |v: u64| v as f64 / jobs.max(1) as f64;
    // Rare statements (connecting, migrating, the engine's start) together.
    let mut rest = Tally::default();
    let mut shown: Vec<(&str, Tally)> = Vec::new();
    for (kind, t) in tallies {
        if kind.starts_with("counts") {
            // The benchmark's own polling, not the engine's.
            continue;
        }
        if kind.starts_with("other") && per(t.round_trips) < 0.01 {
            rest.statements += t.statements;
            rest.round_trips += t.round_trips;
            rest.transactions += t.transactions;
            rest.rows += t.rows;
        } else {
            shown.push((kind, *t));
        }
    }
    shown.push(("other (connect, migrate, engine start…)", rest));
    let mut total = Tally::default();
    for (kind, t) in shown {
        println!(
            "  {:<42} {:>10.4} {:>11.4} {:>12.4} {:>12.4}",
            kind,
            per(t.statements),
            per(t.round_trips),
            per(t.transactions),
            per(t.rows)
        );
        total.statements += t.statements;
        total.round_trips += t.round_trips;
        total.transactions += t.transactions;
        total.rows += t.rows;
    }
    println!(
        "  {:<42} {:>10.4} {:>11.4} {:>12.4} {:>12.4}",
        "total (without the benchmark's counts)",
        per(total.statements),
        per(total.round_trips),
        per(total.transactions),
        per(total.rows)
    );
    if let Some(beat) = tallies.get("heartbeat") {
        println!(
            "  (heartbeat: {} in the run; each also renews every running job's row, \
             which its command tag does not count)",
            beat.statements
        );
    }
}

fn main() -> Result<(), BoxError> {
    let url = std::env::var(URL_VAR)
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    let pg = Pg::new(&url)?;
    if let Ok(part) = std::env::var(PART_VAR) {
        return child(&pg, &url, serde_json::from_str(&part)?);
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let (bulk_n, prod_n, lat_n) = if quick {
        (2_000, 1_000, 50)
    } else {
        (20_000, 10_000, 500)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        use Backend::{Postgres, Sled};
        let step = |what: &str| eprintln!("… {what}");
        step("bulk, PostgreSQL");
        let (bulk_pg, bulk_cost) = measure(&pg, &url, Postgres, Feed::Bulk(bulk_n)).await?;
        step("bulk, sled");
        let (bulk_sled, _) = measure(&pg, &url, Sled, Feed::Bulk(bulk_n)).await?;
        step("64 producers, PostgreSQL");
        let (prod_pg, prod_cost) = measure(&pg, &url, Postgres, Feed::Producers(prod_n)).await?;
        step("64 producers, sled");
        let (prod_sled, _) = measure(&pg, &url, Sled, Feed::Producers(prod_n)).await?;
        step("enqueue → start, PostgreSQL across two nodes");
        let schema = pg.scratch();
        let lat_pg: Latency = run_part(
            &url,
            &Part::Latency {
                samples: lat_n,
                schema: Some(schema.config().schema.clone()),
            },
        )
        .await?;
        drop(schema);
        step("enqueue → start, sled");
        let lat_sled: Latency = run_part(
            &url,
            &Part::Latency {
                samples: lat_n,
                schema: None,
            },
        )
        .await?;
        step("counting at the wire: bulk, then 64 producers");
        let wire_bulk = wire_count(&pg, &url, Feed::Bulk(bulk_n)).await?;
        let wire_prod = wire_count(&pg, &url, Feed::Producers(prod_n)).await?;
        step("dead node rescue (15 s lease, 3 s heartbeat)");
        let schema = pg.scratch();
        let rescued: Rescue = run_part(
            &url,
            &Part::Rescue {
                schema: schema.config().schema.clone(),
            },
        )
        .await?;
        drop(schema);

        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!(
            "\nbench_cluster: PostgreSQL ({}) vs sled (temp dir), {cpus} CPUs",
            troupe::postgres::redact_url(&url)
        );
        println!(
            "{:<42} {:>20} {:>20}   target (PostgreSQL)",
            "", "PostgreSQL", "sled"
        );
        let row = |what: &str, a: String, b: String, target: &str| {
            println!("{what:<42} {a:>20} {b:>20}   {target}");
        };
        let na = || "n/a".to_string();
        row(
            &format!("bulk {bulk_n} → completed, jobs/s"),
            format!("{:.0}", bulk_pg.rate),
            format!("{:.0}", bulk_sled.rate),
            "≥ 7,000",
        );
        row(
            &format!("64 producers {prod_n} → completed, jobs/s"),
            format!("{:.0}", prod_pg.rate),
            format!("{:.0}", prod_sled.rate),
            "≥ 3,000",
        );
        for (name, q) in [("median", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
            row(
                &format!("enqueue ack → start, ms, {name}"),
                ms(pct(&lat_pg.start, q)),
                ms(pct(&lat_sled.start, q)),
                if name == "median" {
                    "≤ 5 (across nodes)"
                } else {
                    ""
                },
            );
        }
        row(
            "enqueue call → ack, ms, median",
            ms(pct(&lat_pg.ack, 0.5)),
            ms(pct(&lat_sled.ack, 0.5)),
            "",
        );
        row(
            &format!("rescue: kill → {RESCUED} running elsewhere, s"),
            format!("{:.1}", rescued.running.as_secs_f64()),
            na(),
            "≤ 20",
        );
        row(
            &format!("rescue: kill → {RESCUED} completed, s"),
            format!("{:.1}", rescued.completed.as_secs_f64()),
            na(),
            "",
        );
        row(
            "rescue: double completions",
            rescued.double.to_string(),
            na(),
            "0",
        );
        println!(
            "  (the victim's leases had {:.2} s left at the kill, rescued {:.2} s after they \
             ended; {} completions of {} jobs)",
            rescued.lease_left.as_secs_f64(),
            rescued.running.as_secs_f64() - rescued.lease_left.as_secs_f64(),
            rescued.completions,
            rescued.distinct
        );
        for (what, a, b) in [
            ("bulk", bulk_pg, bulk_sled),
            ("64 producers", prod_pg, prod_sled),
        ] {
            row(
                &format!("{what}: CPU µs/job, node + postgres"),
                format!("{:.0} + {:.0}", a.cpu.own_us, a.cpu.postgres_us),
                format!("{:.0} + {:.0}", b.cpu.own_us, b.cpu.postgres_us),
                "",
            );
            let cpus = |c: CpuUse| {
                format!(
                    "{:.2} {:.2} {:.2} {:.2}",
                    c.own_cpus, c.postgres_cpus, c.other_cpus, c.iowait_cpus
                )
            };
            row(
                &format!("{what}: CPUs node, pg, others, iowait"),
                cpus(a.cpu),
                cpus(b.cpu),
                "",
            );
        }
        if let (Some(b), Some(p)) = (bulk_cost, prod_cost) {
            println!(
                "\nPostgreSQL per job, from pg_stat_* (the timed runs)     bulk  64 producers"
            );
            let line = |what: &str, x: f64, y: f64| println!("  {what:<50} {x:>8.3} {y:>13.3}");
            line(
                "transactions (pg_stat_database.xact_commit)",
                b.commits,
                p.commits,
            );
            line(
                "rows inserted (the schema's tables)",
                b.inserted,
                p.inserted,
            );
            line("rows updated", b.updated, p.updated);
            line("  of which HOT (no index writes)", b.hot, p.hot);
            line("rows deleted", b.deleted, p.deleted);
            line("WAL bytes", b.wal_bytes, p.wal_bytes);
            line("WAL syncs (fsync)", b.wal_syncs, p.wal_syncs);
        }
        print_wire("bulk", bulk_n, &wire_bulk);
        print_wire("64 producers", prod_n, &wire_prod);
        Ok::<(), BoxError>(())
    })
}
