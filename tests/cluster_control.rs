//! Controlling a cluster: real `troupe run` processes on one PostgreSQL
//! schema, told things by another process — a cancel, a pause and a
//! resume, a schedule — and losing their database connections under load;
//! and the settings a node refuses at start. Counted in the database, not
//! in logs. Skipped, saying so, without `$TROUPE_TEST_DATABASE_URL`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use troupe::job::JobStatus;
use troupe::postgres::ScratchSchema;
use troupe::store::prelude::*;
use troupe::store::CancelOutcome;
use troupe::{Schedule, ScheduleSpec};
use uuid::Uuid;

use common::cli;
use common::cluster::{
    audit_claims, audit_completions, count, database_url, jobs, output_within, sleep_jobs, until,
    Cluster, FAST_LEASES,
};

/// How long one condition of these tests is waited for.
const DEADLINE: Duration = Duration::from_secs(30);

/// How long a node given bad settings may take to give up.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// The node (its index in `cluster.nodes`) whose process registered as
/// `node` in the `nodes` table, or `None` for another process's.
async fn node_index(cluster: &Cluster, sql: &tokio_postgres::Client, node: Uuid) -> Option<usize> {
    let pid: i32 = sql
        .query_one("SELECT pid FROM nodes WHERE id = $1", &[&node])
        .await
        .unwrap()
        .get(0);
    let pid = u32::try_from(pid).ok()?;
    cluster.nodes.iter().position(|n| n.child.id() == pid)
}

/// The distinct nodes the `claims` audit saw take jobs of `worker`.
async fn claiming_nodes(sql: &tokio_postgres::Client, worker: &str) -> Vec<Uuid> {
    sql.query(
        "SELECT DISTINCT node FROM claims WHERE worker = $1 ORDER BY 1",
        &[&worker],
    )
    .await
    .unwrap()
    .iter()
    .map(|row| row.get(0))
    .collect()
}

/// A job running on one node is cancelled through another process (a
/// store of its own, as the CLI or another node's API would be): the
/// cancel travels by notification to the node running it, which stops the
/// 60 s job and acknowledges — the job ends `cancelled` within seconds,
/// with the running node alive and no lease rescue involved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_reaches_the_node_running_the_job() {
    let Some(url) = database_url("a_cancel_reaches_the_node_running_the_job") else {
        return;
    };
    let mut cluster = Cluster::new(&url, FAST_LEASES, "");
    let store = cluster.store().await;
    let sql = cluster.sql().await;
    cluster.start(2, &[]);
    let job = sleep_jobs(1, 60_000, 1).remove(0);
    let id = job.id;
    store.insert(job).await.unwrap();
    let runner: Uuid = until("a node runs the job", DEADLINE, || async {
        let row = sql
            .query_one("SELECT status, lease_node FROM jobs WHERE id = $1", &[&id])
            .await
            .unwrap();
        match (row.get::<_, String>(0).as_str(), row.get(1)) {
            ("running", Some(node)) => Ok(node),
            (status, node) => Err(format!("{status} on {node:?}")),
        }
    })
    .await;
    let Some(index) = node_index(&cluster, &sql, runner).await else {
        panic!("the job runs on {runner}, which is not one of the cluster's nodes");
    };
    assert_ne!(
        runner,
        store.node_id(),
        "the cancelling store is another process"
    );

    let asked = Instant::now();
    match store.cancel(id).await.unwrap() {
        CancelOutcome::Requested(job) => assert_eq!(job.status, JobStatus::Running),
        other => panic!("a running job's cancel is a request, got {other:?}"),
    }
    let cancelled = until(
        "the running node stops the job",
        Duration::from_secs(20),
        || async {
            match store.get_job(id).await.unwrap() {
                Some(j) if j.status == JobStatus::Cancelled => Ok(j),
                other => Err(format!("{:?}", other.map(|j| j.status))),
            }
        },
    )
    .await;
    let took = asked.elapsed();
    assert_eq!(cancelled.attempt, 1, "the attempt it was running");
    assert!(cancelled.result.is_none(), "the sleep did not finish");
    assert!(
        !cancelled
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("stopped renewing"),
        "acknowledged by its node, not ended by a lease rescue: {:?}",
        cancelled.error
    );
    assert_eq!(
        count(
            &sql,
            &format!("SELECT count(*) FROM jobs WHERE id = '{id}' AND lease_node IS NULL")
        )
        .await,
        1,
        "the lease is gone with the attempt"
    );
    let alive = cluster.nodes[index].child.try_wait().unwrap().is_none();
    assert!(
        alive,
        "node {index} is still up: it stopped the job, it did not die\n{}",
        cluster.logs()
    );
    eprintln!("cancelled on node {index} {took:?} after the request");
}

/// A worker paused through the CLI (another process) is paused on every
/// node: while both nodes go on claiming `echo` jobs enqueued after the
/// paused worker's, none of the 50 `sleep` jobs is claimed; resumed through
/// the CLI, both nodes take them and all complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_are_seen_by_every_node() {
    let Some(url) = database_url("pause_and_resume_are_seen_by_every_node") else {
        return;
    };
    let mut cluster = Cluster::new(&url, FAST_LEASES, "");
    let store = cluster.store().await;
    let sql = cluster.sql().await;
    audit_claims(&sql, &cluster.schema.config().schema).await;
    cluster.start(2, &[]);

    let control = |verb: &str| {
        let mut command = cli::command();
        command
            .current_dir(cluster.dir.path())
            .arg("--config")
            .arg(&cluster.config_file)
            .args([verb, "--worker", "sleep"]);
        let out = output_within(command, START_DEADLINE);
        assert!(out.status.success(), "troupe {verb}: {}", cli::stderr(&out));
        cli::stdout(&out)
    };
    let said = control("pause");
    assert!(said.contains("sleep: paused"), "{said}");
    assert!(store.pause_state().await.unwrap().workers.contains("sleep"));

    store.insert_many(sleep_jobs(50, 300, 3)).await.unwrap();
    // Echo jobs after them, in rounds, until both nodes have claimed some:
    // each node claimed after the sleep jobs were ready, and left them.
    let mut rounds = 0;
    until("both nodes claim echo jobs", DEADLINE, || {
        rounds += 1;
        let (store, sql) = (&store, &sql);
        async move {
            let round = jobs("echo", &json!({ "round": rounds }), 10, 3);
            let ids: Vec<Uuid> = round.iter().map(|j| j.id).collect();
            store.insert_many(round).await.unwrap();
            until("a round of echo jobs completes", DEADLINE, || async {
                let done = count_ids(sql, &ids, "completed").await;
                if done == 10 {
                    Ok(())
                } else {
                    Err(format!("{done} of 10 completed"))
                }
            })
            .await;
            let nodes = claiming_nodes(sql, "echo").await;
            if nodes.len() >= 2 {
                Ok(())
            } else {
                Err(format!("echo claimed by {nodes:?}"))
            }
        }
    })
    .await;
    assert_eq!(
        count(&sql, "SELECT count(*) FROM claims WHERE worker = 'sleep'").await,
        0,
        "no node claimed a job of the paused worker"
    );
    assert_eq!(
        count(
            &sql,
            "SELECT count(*) FROM jobs WHERE worker = 'sleep' AND status = 'queued' AND attempt = 0"
        )
        .await,
        50,
        "every sleep job is still queued, never tried"
    );

    let resumed = Instant::now();
    let said = control("resume");
    assert!(said.contains("sleep: resumed"), "{said}");
    until("every sleep job completes", DEADLINE, || async {
        let done = count(
            &sql,
            "SELECT count(*) FROM jobs WHERE worker = 'sleep' AND status = 'completed'",
        )
        .await;
        if done == 50 {
            Ok(())
        } else {
            Err(format!("{done} of 50 completed"))
        }
    })
    .await;
    let nodes = claiming_nodes(&sql, "sleep").await;
    assert_eq!(
        nodes.len(),
        2,
        "both nodes took sleep jobs once resumed: {nodes:?}"
    );
    eprintln!(
        "{rounds} echo rounds while paused; 50 sleep jobs done {:?} after the resume",
        resumed.elapsed()
    );
}

/// How many of the jobs `ids` are at `status`.
async fn count_ids(sql: &tokio_postgres::Client, ids: &[Uuid], status: &str) -> i64 {
    sql.query_one(
        "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = $2",
        &[&ids, &status],
    )
    .await
    .unwrap()
    .get(0)
}

/// The fire times (`ctx.scheduledFor`) of the jobs `schedule` made, each
/// with how many jobs carry it.
async fn fire_times(sql: &tokio_postgres::Client, schedule: &str) -> BTreeMap<DateTime<Utc>, i64> {
    sql.query(
        "SELECT data->'ctx'->>'scheduledFor', count(*) FROM jobs \
         WHERE data->'ctx'->>'source' = $1 GROUP BY 1",
        &[&format!("schedule:{schedule}")],
    )
    .await
    .unwrap()
    .iter()
    .map(|row| {
        let at: String = row.get(0);
        let at = DateTime::parse_from_rfc3339(&at)
            .unwrap()
            .with_timezone(&Utc);
        (at, row.get(1))
    })
    .collect()
}

/// Checks that `times` are ticks of a `period` schedule, each fired once.
fn assert_one_job_per_tick(times: &BTreeMap<DateTime<Utc>, i64>, period: Duration) {
    let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "fire times with more than one job: {twice:?}"
    );
    let period = chrono::Duration::from_std(period).unwrap();
    let first = *times.keys().next().unwrap();
    for at in times.keys() {
        let since = *at - first;
        assert_eq!(
            since.num_milliseconds() % period.num_milliseconds(),
            0,
            "{at} is not a tick of the schedule (first {first})"
        );
    }
}

/// Three nodes share a schedule firing every second: each tick makes one
/// job — no `scheduledFor` twice in the database — however many nodes see
/// it due at the same moment. The schedule is stored before the nodes
/// start (one added while they run is not seen: see the ignored test
/// below).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_once_per_tick_with_three_nodes() {
    let Some(url) = database_url("a_schedule_fires_once_per_tick_with_three_nodes") else {
        return;
    };
    const FIRINGS: i64 = 8;
    let period = Duration::from_secs(1);
    let mut cluster = Cluster::new(&url, FAST_LEASES, "");
    let store = cluster.store().await;
    let sql = cluster.sql().await;
    let schedule = Schedule::new(
        "tick",
        "echo",
        json!({"tick": true}),
        ScheduleSpec::every(period).unwrap(),
        Utc::now(),
    )
    .unwrap();
    store.put_schedule(schedule).await.unwrap();
    cluster.start(3, &[]);
    let started = Instant::now();
    until("the schedule fires 8 times", DEADLINE, || async {
        let n = count(
            &sql,
            "SELECT count(*) FROM jobs WHERE data->'ctx'->>'source' = 'schedule:tick'",
        )
        .await;
        if n >= FIRINGS {
            Ok(())
        } else {
            Err(format!("{n} firings"))
        }
    })
    .await;
    let duplicates = sql
        .query(
            "SELECT data->'ctx'->>'scheduledFor', count(*) FROM jobs \
             GROUP BY 1 HAVING count(*) > 1",
            &[],
        )
        .await
        .unwrap();
    let duplicates: Vec<(Option<String>, i64)> =
        duplicates.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(
        duplicates.is_empty(),
        "fired twice: {duplicates:?}\n{}",
        cluster.logs()
    );
    let times = fire_times(&sql, "tick").await;
    assert_one_job_per_tick(&times, period);
    let stored = store.get_schedule("tick").await.unwrap().unwrap();
    let last = stored.last_fired_at.unwrap();
    assert!(
        times.keys().next_back().is_some_and(|t| *t <= last),
        "the schedule's last firing is at least the newest job's"
    );
    let logs = cluster.logs();
    let firing_nodes = cluster
        .nodes
        .iter()
        .filter(|n| {
            std::fs::read_to_string(&n.log)
                .unwrap_or_default()
                .contains("schedule fired")
        })
        .count();
    assert!(logs.contains("schedule fired"), "{logs}");
    eprintln!(
        "{} firings in {:?}, by {firing_nodes} of 3 nodes",
        times.len(),
        started.elapsed()
    );
}

/// A schedule put through another process while the nodes run (a program
/// on the store, or a node that put it and then stopped: the nodes that
/// were already running must take over) fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_added_while_nodes_run_fires() {
    let Some(url) = database_url("a_schedule_added_while_nodes_run_fires") else {
        return;
    };
    let period = Duration::from_secs(1);
    let mut cluster = Cluster::new(&url, FAST_LEASES, "");
    let store = cluster.store().await;
    let sql = cluster.sql().await;
    cluster.start(2, &[]);
    // The nodes are up: they ran a job.
    let warm = jobs("echo", &json!({}), 1, 3);
    let ids: Vec<Uuid> = warm.iter().map(|j| j.id).collect();
    store.insert_many(warm).await.unwrap();
    until("the nodes run a job", DEADLINE, || async {
        match count_ids(&sql, &ids, "completed").await {
            1 => Ok(()),
            n => Err(format!("{n} completed")),
        }
    })
    .await;
    let schedule = Schedule::new(
        "late",
        "echo",
        json!({}),
        ScheduleSpec::every(period).unwrap(),
        Utc::now(),
    )
    .unwrap();
    store.put_schedule(schedule).await.unwrap();
    until(
        "the new schedule fires twice",
        Duration::from_secs(15),
        || async {
            let n = count(
                &sql,
                "SELECT count(*) FROM jobs WHERE data->'ctx'->>'source' = 'schedule:late'",
            )
            .await;
            if n >= 2 {
                Ok(())
            } else {
                Err(format!("{n} firings"))
            }
        },
    )
    .await;
    assert_one_job_per_tick(&fire_times(&sql, "late").await, period);
}

/// Every connection of the nodes (and of the test's own store) is
/// terminated by the server five times while 3,000 short jobs run: every
/// job still completes, exactly once, and the store still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_their_database_connections_being_killed() {
    let Some(url) = database_url("jobs_survive_their_database_connections_being_killed") else {
        return;
    };
    const JOBS: i64 = 3_000;
    const KILLS: usize = 5;
    const EVERY: i64 = 300;
    let mut cluster = Cluster::new(&url, FAST_LEASES, "");
    let store = cluster.store().await;
    let sql = cluster.sql().await;
    audit_completions(&sql, &cluster.schema.config().schema).await;
    cluster.start(2, &[]);
    for chunk in sleep_jobs(JOBS as usize, 5, 10).chunks(1_000) {
        store.insert_many(chunk.to_vec()).await.unwrap();
    }

    let started = Instant::now();
    let deadline = Duration::from_secs(60);
    // (completed when killed, connections ended)
    let mut kills: Vec<(i64, i64)> = Vec::new();
    let mut at_last_kill = 0;
    let mut store_after_kills = None;
    let done = loop {
        let done = count(&sql, "SELECT count(DISTINCT job_id) FROM completions").await;
        if done >= JOBS && kills.len() == KILLS {
            break done;
        }
        if kills.len() < KILLS && done - at_last_kill >= EVERY {
            // The test's counting client has no application name: it
            // stays; the nodes' and the store's connections go.
            let killed = count(
                &sql,
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = 'troupe' AND pid <> pg_backend_pid() \
                 AND datname = current_database()) AS t",
            )
            .await;
            kills.push((done, killed));
            at_last_kill = done;
        }
        if kills.len() == KILLS && store_after_kills.is_none() {
            store_after_kills = Some(store.counts().await.map(|_| ()));
        }
        assert!(
            started.elapsed() < deadline,
            "only {done} of {JOBS} jobs completed after kills {kills:?} in {:?} \
             (the test's store after the kills: {store_after_kills:?}); by status: {:?}\n{}",
            started.elapsed(),
            sql.query("SELECT status, count(*) FROM jobs GROUP BY 1", &[])
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
                .collect::<Vec<_>>(),
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    assert_eq!(done, JOBS);
    assert!(
        kills.iter().all(|(_, killed)| *killed > 0),
        "each kill ended connections: {kills:?}"
    );
    assert_eq!(
        count(
            &sql,
            "SELECT count(*) FROM completions WHERE old_status = 'completed'"
        )
        .await,
        0,
        "no completed job was written again"
    );
    assert_eq!(
        count(&sql, "SELECT count(*) FROM completions").await,
        JOBS,
        "one completion per job"
    );
    assert_eq!(
        count(&sql, "SELECT count(*) FROM jobs").await,
        JOBS,
        "no job lost or added"
    );
    assert!(
        matches!(store_after_kills, Some(Ok(()))),
        "the test's store answered after its connections were killed: {store_after_kills:?}"
    );
    let counts = store.counts().await.unwrap();
    assert_eq!(
        counts.status(JobStatus::Completed),
        JOBS as u64,
        "{counts:?}"
    );
    let dead: Vec<usize> = cluster
        .nodes
        .iter_mut()
        .filter_map(|n| n.child.try_wait().unwrap().map(|_| n.index))
        .collect();
    assert!(dead.is_empty(), "nodes {dead:?} died\n{}", cluster.logs());
    let retried = count(&sql, "SELECT count(*) FROM jobs WHERE attempt > 1").await;
    eprintln!(
        "{JOBS} jobs, kills at/ended {kills:?}, {retried} jobs ran more than once, {elapsed:?}"
    );
}

/// Runs `troupe run` on `config` (a file in `dir`) and returns what it
/// printed, checking that it exited non-zero within [`START_DEADLINE`].
fn run_failing(dir: &Path, config: &Path) -> String {
    let out = run_node(dir, config);
    let stderr = cli::stderr(&out);
    assert!(!out.status.success(), "started with bad settings: {stderr}");
    stderr
}

fn run_node(dir: &Path, config: &Path) -> Output {
    let mut command = cli::command();
    command
        .current_dir(dir)
        .arg("run")
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--no-http")
        .env("RUST_LOG", "warn");
    output_within(command, START_DEADLINE)
}

/// `troupe run` with `[store]` holding `url` (and a fresh schema name).
fn run_with_url(dir: &Path, name: &str, url: &str) -> String {
    let config = dir.join(format!("{name}.toml"));
    let toml = format!(
        "[store]\ntype = \"postgres\"\nurl = \"{url}\"\nschema = \"t_{}\"\n",
        Uuid::now_v7().simple()
    );
    std::fs::write(&config, toml).unwrap();
    run_failing(dir, &config)
}

/// The test database's URL with another user, password, port or database.
fn url_with(url: &str, user: &str, port: u16, database: &str) -> String {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_string(),
    };
    format!("postgres://{user}@{host}:{port}/{database}")
}

fn assert_says(stderr: &str, what: &str) {
    assert!(stderr.contains(what), "expected {what:?} in:\n{stderr}");
}

/// Settings a node cannot work with stop it at start, non-zero, with an
/// error that names the problem (and never the password); an operator's
/// `troupe migrate` then lets a `migrate = false` node start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_fail_at_start_with_a_clear_error() {
    let Some(url) = database_url("bad_settings_fail_at_start_with_a_clear_error") else {
        return;
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let parsed: tokio_postgres::Config = url.parse().unwrap();
    let port = parsed.get_ports().first().copied().unwrap_or(5432);
    let database = parsed.get_dbname().unwrap_or("postgres").to_string();
    let user = parsed.get_user().unwrap_or("postgres").to_string();
    let blocking = |f: Box<dyn FnOnce() -> String + Send>| tokio::task::spawn_blocking(f);

    // Not a URL at all.
    let err = blocking(Box::new({
        let d = d.clone();
        move || run_with_url(&d, "nonsense", "nonsense://x")
    }))
    .await
    .unwrap();
    assert_says(&err, "not a valid PostgreSQL URL");

    // Nothing listens on the port.
    let refused = url_with(&url, &user, 5999, &database);
    let err = blocking(Box::new({
        let d = d.clone();
        move || run_with_url(&d, "refused", &refused)
    }))
    .await
    .unwrap();
    assert_says(&err, "Connection refused");
    assert_says(&err, ":5999");

    // A role the server does not know.
    let nobody = url_with(&url, "nobody", port, &database);
    let err = blocking(Box::new({
        let d = d.clone();
        move || run_with_url(&d, "nobody", &nobody)
    }))
    .await
    .unwrap();
    assert_says(&err, "role \"nobody\" does not exist");

    // A database the server does not have.
    let missing = url_with(&url, &user, port, "troupe_no_such_database");
    let err = blocking(Box::new({
        let d = d.clone();
        move || run_with_url(&d, "missing", &missing)
    }))
    .await
    .unwrap();
    assert_says(&err, "database \"troupe_no_such_database\" does not exist");

    // A password in the URL is never printed.
    let secret = url_with(&url, "nobody:s3cret", port, &database);
    let err = blocking(Box::new({
        let d = d.clone();
        move || run_with_url(&d, "secret", &secret)
    }))
    .await
    .unwrap();
    assert_says(&err, "role \"nobody\" does not exist");
    assert_says(&err, "nobody:***@");
    assert!(!err.contains("s3cret"), "the password was printed:\n{err}");

    // A schema at version 1 (the tables of troupe's first version), with
    // `migrate = false`: refused, saying to run `troupe migrate`...
    let cluster = Cluster::new(&url, "migrate = false", "");
    let schema = cluster.schema.config().schema.clone();
    let sql = cluster.sql().await;
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         SET search_path TO {schema};
         CREATE TABLE troupe_migrations (
             version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL);
         {}
         INSERT INTO troupe_migrations VALUES (1, 'jobs, schedules, pauses, nodes', now());",
        include_str!("../src/postgres/sql/0001_jobs.sql")
    ))
    .await
    .unwrap();
    let (cd, cf) = (
        cluster.dir.path().to_path_buf(),
        cluster.config_file.clone(),
    );
    let err = blocking(Box::new(move || run_failing(&cd, &cf)))
        .await
        .unwrap();
    assert_says(&err, "schema version 1");
    assert_says(&err, "troupe migrate");
    assert_eq!(
        count(&sql, "SELECT max(version)::int8 FROM troupe_migrations").await,
        1,
        "a migrate = false node changed nothing"
    );
    // ... and once an operator ran it, the same node starts and works.
    let mut command = cli::command();
    command
        .current_dir(cluster.dir.path())
        .args(["migrate", "--to", &url, "--schema", &schema]);
    let out = tokio::task::spawn_blocking(move || output_within(command, START_DEADLINE))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "troupe migrate: {}",
        cli::stderr(&out)
    );
    assert_says(&cli::stdout(&out), "version 1 -> 3");
    let mut cluster = cluster;
    cluster.start(1, &[]);
    let job = jobs("echo", &json!({"after": "migrate"}), 1, 3).remove(0);
    let id = job.id;
    {
        let mut config = cluster.schema.config().clone();
        config.node_id = None;
        config.migrate = false;
        let store = troupe::postgres::PostgresStore::connect(config)
            .await
            .unwrap();
        store.insert(job).await.unwrap();
        until("the migrate = false node runs a job", DEADLINE, || async {
            match store.get_job(id).await.unwrap() {
                Some(j) if j.status == JobStatus::Completed => Ok(()),
                other => Err(format!("{:?}\n{}", other.map(|j| j.status), cluster.logs())),
            }
        })
        .await;
    }
    drop(cluster);

    // A schema newer than this build.
    let newer = ScratchSchema::new(&url);
    let newer_name = newer.config().schema.clone();
    sql.batch_execute(&format!(
        "CREATE SCHEMA {newer_name};
         CREATE TABLE {newer_name}.troupe_migrations (
             version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL);
         INSERT INTO {newer_name}.troupe_migrations VALUES (99, 'from the future', now());"
    ))
    .await
    .unwrap();
    let err = blocking(Box::new({
        let (d, url, name) = (d.clone(), url.clone(), newer_name.clone());
        move || run_in_schema(&d, &url, &name)
    }))
    .await
    .unwrap();
    assert_says(&err, "schema version 99");
    assert_says(&err, "newer than this build");

    // A schema holding tables troupe did not make.
    let foreign = ScratchSchema::new(&url);
    let foreign_name = foreign.config().schema.clone();
    sql.batch_execute(&format!(
        "CREATE SCHEMA {foreign_name};
         CREATE TABLE {foreign_name}.invoices (id int PRIMARY KEY);"
    ))
    .await
    .unwrap();
    let err = blocking(Box::new({
        let (d, url, name) = (d.clone(), url.clone(), foreign_name.clone());
        move || run_in_schema(&d, &url, &name)
    }))
    .await
    .unwrap();
    assert_says(&err, "did not make");
    assert_eq!(
        count(
            &sql,
            &format!(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = '{foreign_name}' \
                 AND table_name <> 'troupe_migrations'"
            )
        )
        .await,
        1,
        "nothing was created beside the foreign table"
    );
    eprintln!("bad settings checked in {:?}", started.elapsed());
}

/// `troupe run` on `schema` of `url`, expected to fail.
fn run_in_schema(dir: &Path, url: &str, schema: &str) -> String {
    let config = dir.join(format!("{schema}.toml"));
    std::fs::write(
        &config,
        format!("[store]\ntype = \"postgres\"\nurl = \"{url}\"\nschema = \"{schema}\"\n"),
    )
    .unwrap();
    run_failing(dir, &config)
}

/// A node lacking a worker does not fail that worker's queued jobs on a
/// shared store: another node (another version, a rolling deploy) may run
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_leaves_alone_the_jobs_of_workers_it_does_not_have() {
    let Some(url) = database_url("a_node_leaves_alone_the_jobs_of_workers_it_does_not_have") else {
        return;
    };
    let mut cluster = Cluster::new(&url, FAST_LEASES, "");
    let store = cluster.store().await;
    let options = troupe::job::EnqueueOptions::default();
    let theirs = troupe::job::Job::new(
        "worker_of_another_node",
        json!({}),
        troupe::job::JobCtx::default(),
        &options,
        Utc::now(),
    )
    .unwrap();
    store.insert(theirs.clone()).await.unwrap();
    cluster.start(1, &[]);
    // The node has started (and passed its start-up checks) once it runs
    // a job of its own.
    let ours = sleep_jobs(1, 1, 3).remove(0);
    store.insert(ours.clone()).await.unwrap();
    until("the node runs a job of its own", DEADLINE, || async {
        match store.get_job(ours.id).await.unwrap() {
            Some(j) if j.status == JobStatus::Completed => Ok(()),
            other => Err(format!("{:?}", other.map(|j| j.status))),
        }
    })
    .await;
    let job = store.get_job(theirs.id).await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.error.as_deref()),
        (JobStatus::Queued, None),
        "another node's job is left queued"
    );
}
