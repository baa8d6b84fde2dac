//! A cluster on the test database: `troupe run` nodes as real processes on
//! one schema of their own, a client that counts in the database, and the
//! store a test enqueues through.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};
use troupe::job::{EnqueueOptions, Job, JobCtx};
use troupe::postgres::{PostgresStore, ScratchSchema, TEST_DATABASE_URL};

use super::cli;

/// How long a cluster condition is waited for before the test fails.
pub const CLUSTER_DEADLINE: Duration = Duration::from_secs(120);

/// Short leases, so rescues happen within a test's patience.
/// A small pool too: tests run side by side on one server, whose default
/// `max_connections` is 100.
pub const FAST_LEASES: &str =
    "lease = \"2s\"\nheartbeat = \"500ms\"\npoll = \"250ms\"\npoolSize = 4";

/// The test database's URL, or `None` (the test prints that it skipped).
pub fn database_url(test: &str) -> Option<String> {
    match std::env::var(TEST_DATABASE_URL) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("{test}: skipped: {TEST_DATABASE_URL} is not set (no PostgreSQL)");
            None
        }
    }
}

/// One schema, its config file, and the nodes running on it.
pub struct Cluster {
    pub schema: ScratchSchema,
    pub dir: tempfile::TempDir,
    pub config_file: PathBuf,
    pub nodes: Vec<Node>,
}

/// A `troupe run` process.
pub struct Node {
    pub index: usize,
    pub child: Child,
    pub log: PathBuf,
    /// How many times it was started.
    pub starts: usize,
}

impl Cluster {
    /// A fresh schema and a config for it: `extra` is appended to the
    /// `[store]` section (lease timing), `rest` after it (agents, engine).
    pub fn new(url: &str, store_extra: &str, rest: &str) -> Cluster {
        let schema = ScratchSchema::new(url);
        let dir = tempfile::tempdir().unwrap();
        let config_file = dir.path().join("troupe.toml");
        let config = schema.config();
        let toml = format!(
            "[store]\ntype = \"postgres\"\nurl = \"{}\"\nschema = \"{}\"\n{store_extra}\n{rest}\n",
            config.url, config.schema
        );
        std::fs::write(&config_file, toml).unwrap();
        Cluster {
            schema,
            dir,
            config_file,
            nodes: Vec::new(),
        }
    }

    /// A client store on the cluster's schema (not a node: it never claims).
    pub async fn store(&self) -> PostgresStore {
        let mut config = self.schema.config().clone();
        config.node_id = None;
        config.pool_size = 4;
        config.node = false;
        match PostgresStore::connect(config).await {
            Ok(store) => store,
            Err(e) => panic!("a store on the cluster's schema: {e}"),
        }
    }

    /// A client for counting.
    pub async fn sql(&self) -> tokio_postgres::Client {
        schema_client(self.schema.config()).await
    }

    /// Starts `n` nodes.
    pub fn start(&mut self, n: usize, args: &[&str]) {
        for _ in 0..n {
            let index = self.nodes.len();
            let node = self.spawn(index, 1, args);
            self.nodes.push(node);
        }
    }

    fn spawn(&self, index: usize, starts: usize, args: &[&str]) -> Node {
        let data = self.dir.path().join(format!("node{index}"));
        let log = self.dir.path().join(format!("node{index}-{starts}.log"));
        let child = start_node(&self.config_file, &data, &log, args);
        Node {
            index,
            child,
            log,
            starts,
        }
    }

    /// SIGKILLs node `index` and starts it again (a new process, so a new
    /// node id: its jobs are rescued by lease, not by its own recovery).
    pub fn kill_and_restart(&mut self, index: usize, args: &[&str]) {
        let node = &mut self.nodes[index];
        signal(&node.child, libc::SIGKILL);
        let _ = node.child.wait();
        let starts = node.starts + 1;
        let fresh = self.spawn(index, starts, args);
        self.nodes[index] = fresh;
    }

    /// Every node's log, concatenated (for failure messages and counts).
    pub fn logs(&self) -> String {
        let mut all = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect();
            paths.sort();
            for p in paths {
                all.push_str(&format!("==== {}\n", p.display()));
                all.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
        all
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            signal(&node.child, libc::SIGKILL);
            let _ = node.child.wait();
        }
    }
}

/// Sends `sig` to `child`.
pub fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a pid this test started; no memory is shared.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn start_node(config: &Path, data: &Path, log: &Path, args: &[&str]) -> Child {
    let log_file = std::fs::File::create(log).unwrap();
    let mut command = cli::command();
    command
        .arg("run")
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("RUST_LOG", "warn,troupe=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    if !args.contains(&"--http") {
        command.arg("--no-http");
    }
    command.spawn().unwrap()
}

/// Polls `check` until it answers `Some`, failing after `deadline` with
/// `what` and the last state it saw.
pub async fn until<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(value) => return value,
            Err(state) if start.elapsed() > deadline => {
                panic!("{what}: not reached within {deadline:?}; last seen: {state}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Records every completion, and every write to a job already completed
/// (a double completion), in `completions`.
pub async fn audit_completions(sql: &tokio_postgres::Client, schema: &str) {
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
    .await
    .unwrap();
}

/// Records every claim (a queued job becoming running) in `claims`, with
/// the worker and the node that took it.
pub async fn audit_claims(sql: &tokio_postgres::Client, schema: &str) {
    sql.batch_execute(&format!(
        "CREATE TABLE {schema}.claims (job_id uuid, worker text, node uuid, attempt int);
         CREATE FUNCTION {schema}.audit_claim() RETURNS trigger AS $$
         BEGIN
             INSERT INTO {schema}.claims VALUES (NEW.id, NEW.worker, NEW.lease_node, NEW.attempt);
             RETURN NEW;
         END $$ LANGUAGE plpgsql;
         CREATE TRIGGER audit_claim AFTER UPDATE ON {schema}.jobs FOR EACH ROW
             WHEN (OLD.status = 'queued' AND NEW.status = 'running')
             EXECUTE FUNCTION {schema}.audit_claim();"
    ))
    .await
    .unwrap();
}

/// `n` new jobs for `worker` with `args`, at most `max_attempts` each.
pub fn jobs(worker: &str, args: &Value, n: usize, max_attempts: u32) -> Vec<Job> {
    let options = EnqueueOptions {
        max_attempts,
        ..EnqueueOptions::default()
    };
    (0..n)
        .map(|_| {
            Job::new(
                worker,
                args.clone(),
                JobCtx::default(),
                &options,
                Utc::now(),
            )
            .unwrap()
        })
        .collect()
}

/// `n` jobs for the built-in `sleep` worker, `{"ms": ms}` each.
pub fn sleep_jobs(n: usize, ms: u64, max_attempts: u32) -> Vec<Job> {
    jobs("sleep", &json!({ "ms": ms }), n, max_attempts)
}

/// The single number `query` answers.
pub async fn count(sql: &tokio_postgres::Client, query: &str) -> i64 {
    sql.query_one(query, &[]).await.unwrap().get(0)
}

/// Runs `command` to its end, its output captured, failing the test (after
/// SIGKILLing it) when it has not exited within `deadline`.
pub fn output_within(mut command: Command, deadline: Duration) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) with a pid this test started; no memory is shared.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            let output = rx.recv().unwrap().unwrap();
            panic!(
                "{command:?} did not exit within {deadline:?}; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        }
    }
}

/// A scratch schema and a node config on it with 1 s leases renewed every
/// 200 ms and a pool of `pool` (for tests of one store's leases).
pub fn quick_node(url: &str, pool: usize) -> (ScratchSchema, troupe::postgres::PostgresConfig) {
    let schema = ScratchSchema::new(url);
    let mut config = schema.config().clone();
    config.lease = Duration::from_secs(1);
    config.heartbeat = Duration::from_millis(200);
    config.pool_size = pool;
    (schema, config)
}

/// A plain client on `config`'s database with its schema first on the
/// search path (for writing rows the store would not).
pub async fn schema_client(config: &troupe::postgres::PostgresConfig) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&config.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("SET search_path TO {}", config.schema))
        .await
        .unwrap();
    client
}
