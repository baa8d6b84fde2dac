//! Troupe as a cluster: real `troupe run` processes sharing one PostgreSQL
//! schema, killed with SIGKILL and frozen with SIGSTOP, counted in the
//! database (a trigger records every write to a completed job), not in
//! logs. Skipped, saying so, without `$TROUPE_TEST_DATABASE_URL`.

mod common;

use std::time::{Duration, Instant};

use troupe::job::JobStatus;
use troupe::store::prelude::*;

use common::cluster::{
    audit_completions, count, database_url, signal, sleep_jobs, until, Cluster, CLUSTER_DEADLINE,
    FAST_LEASES,
};

/// Three nodes work off 10,000 jobs while one of them is SIGKILLed and
/// restarted each time another 350 jobs have completed, at least 20 times:
/// every job completes, exactly once, within its attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_jobs_survive_twenty_node_kills() {
    let Some(url) = database_url("ten_thousand_jobs_survive_twenty_node_kills") else {
        return;
    };
    const JOBS: usize = 10_000;
    const MAX_ATTEMPTS: u32 = 10;
    let mut cluster = Cluster::new(&url, FAST_LEASES, "");
    let store = cluster.store().await;
    let sql = cluster.sql().await;
    audit_completions(&sql, &cluster.schema.config().schema).await;
    let args = ["--concurrency", "16"];
    cluster.start(3, &args);
    for chunk in sleep_jobs(JOBS, 25, MAX_ATTEMPTS).chunks(1_000) {
        store.insert_many(chunk.to_vec()).await.unwrap();
    }

    let started = Instant::now();
    let mut kills = 0;
    let mut at_last_kill = 0;
    loop {
        let done = count(&sql, "SELECT count(*) FROM completions").await;
        if done >= JOBS as i64 {
            break;
        }
        if done - at_last_kill >= 350 {
            cluster.kill_and_restart(kills % 3, &args);
            kills += 1;
            at_last_kill = done;
        }
        assert!(
            started.elapsed() < CLUSTER_DEADLINE * 2,
            "only {done} of {JOBS} jobs completed after {kills} kills in {:?}\n{}",
            started.elapsed(),
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();

    let counts = store.counts().await.unwrap();
    assert_eq!(
        counts.status(JobStatus::Completed),
        JOBS as u64,
        "{counts:?}"
    );
    assert_eq!(
        count(&sql, "SELECT count(DISTINCT job_id) FROM completions").await,
        JOBS as i64,
        "every job completed"
    );
    assert_eq!(
        count(
            &sql,
            "SELECT count(*) FROM completions WHERE old_status = 'completed'"
        )
        .await,
        0,
        "no completed job was written again (a late node's result is fenced)"
    );
    assert_eq!(
        count(&sql, "SELECT count(*) FROM completions").await,
        JOBS as i64,
        "one completion per job"
    );
    let max_attempt = count(&sql, "SELECT max(attempt)::int8 FROM jobs").await;
    assert!(
        max_attempt <= i64::from(MAX_ATTEMPTS),
        "attempt {max_attempt}"
    );
    let interrupted = count(&sql, "SELECT count(*) FROM jobs WHERE attempt > 1").await;
    assert!(kills >= 20, "only {kills} kills");
    assert!(interrupted > 0, "the kills interrupted running jobs");
    eprintln!(
        "{JOBS} jobs, {kills} kills, {interrupted} jobs ran more than once, max attempt \
         {max_attempt}, {elapsed:?}"
    );
}

/// A node frozen (SIGSTOP) past its lease loses its job to another node;
/// when it thaws (SIGCONT) and finishes, its completion is fenced: the job
/// keeps the other node's result, and the frozen node says it was fenced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_node_finishing_late_is_fenced() {
    let Some(url) = database_url("a_frozen_node_finishing_late_is_fenced") else {
        return;
    };
    let mut cluster = Cluster::new(&url, FAST_LEASES, "");
    let store = cluster.store().await;
    let sql = cluster.sql().await;
    audit_completions(&sql, &cluster.schema.config().schema).await;
    cluster.start(1, &[]);
    // A job long enough to be frozen in the middle of.
    let job = sleep_jobs(1, 1_500, 3).remove(0);
    let id = job.id;
    store.insert(job).await.unwrap();
    until("the first node runs the job", CLUSTER_DEADLINE, || async {
        match store.get_job(id).await.unwrap() {
            Some(j) if j.status == JobStatus::Running => Ok(()),
            other => Err(format!("{:?}", other.map(|j| j.status))),
        }
    })
    .await;
    signal(&cluster.nodes[0].child, libc::SIGSTOP);
    // A second node: it rescues the job once the frozen node's lease ends,
    // and runs attempt 2 to the end.
    cluster.start(1, &[]);
    let done = until(
        "another node completes the job",
        CLUSTER_DEADLINE,
        || async {
            match store.get_job(id).await.unwrap() {
                Some(j) if j.status == JobStatus::Completed => Ok(j),
                other => Err(format!("{:?}", other.map(|j| (j.status, j.attempt)))),
            }
        },
    )
    .await;
    assert_eq!(done.attempt, 2, "the rescued attempt completed it");
    signal(&cluster.nodes[0].child, libc::SIGCONT);
    // The thawed node finishes attempt 1 and tries to complete it.
    let log = until(
        "the thawed node reports it was fenced",
        CLUSTER_DEADLINE,
        || async {
            let logs = cluster.logs();
            if logs.contains("fenced") {
                Ok(logs)
            } else {
                Err("no fenced line yet".to_string())
            }
        },
    )
    .await;
    assert!(
        log.contains(&id.to_string()),
        "the fenced line names the job"
    );
    let after = store.get_job(id).await.unwrap().unwrap();
    assert_eq!((after.status, after.attempt), (JobStatus::Completed, 2));
    assert_eq!(after.result, done.result);
    assert_eq!(
        count(&sql, "SELECT count(*) FROM completions").await,
        1,
        "completed once"
    );
}

/// A node frozen past its lease whose job another node requeues, and that
/// thaws and claims the same job again while its earlier attempt still
/// runs: the earlier attempt is stopped and the later one completes the
/// job (attempt 2, one interruption), instead of the earlier attempt's
/// answer taking the later one's place and the job waiting for a second
/// rescue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thawed_node_that_claims_its_lost_job_again_completes_it() {
    let Some(url) = database_url("a_thawed_node_that_claims_its_lost_job_again_completes_it")
    else {
        return;
    };
    let mut cluster = Cluster::new(&url, FAST_LEASES, "");
    let store = cluster.store().await;
    cluster.start(1, &[]);
    // Long enough that attempt 1 still sleeps when the thawed node claims
    // the job again (the freeze lasts about a lease).
    let job = sleep_jobs(1, 6_000, 3).remove(0);
    let id = job.id;
    store.insert(job).await.unwrap();
    until("the node runs the job", CLUSTER_DEADLINE, || async {
        match store.get_job(id).await.unwrap() {
            Some(j) if j.status == JobStatus::Running => Ok(()),
            other => Err(format!("{:?}", other.map(|j| j.status))),
        }
    })
    .await;
    signal(&cluster.nodes[0].child, libc::SIGSTOP);
    // A second node that runs no engine: it only rescues, so the job,
    // once requeued, can only go back to the frozen node.
    let mut config = cluster.schema.config().clone();
    config.node_id = Some(uuid::Uuid::now_v7());
    config.node = true;
    config.lease = Duration::from_secs(2);
    config.heartbeat = Duration::from_millis(500);
    let rescuer = troupe::postgres::PostgresStore::connect(config)
        .await
        .unwrap();
    let requeued = until("the job is rescued", CLUSTER_DEADLINE, || async {
        match store.get_job(id).await.unwrap() {
            Some(j) if j.status == JobStatus::Queued => Ok(j),
            other => Err(format!("{:?}", other.map(|j| (j.status, j.attempt)))),
        }
    })
    .await;
    assert_eq!((requeued.attempt, requeued.errors.len()), (1, 1));
    signal(&cluster.nodes[0].child, libc::SIGCONT);
    let done = until(
        "the thawed node completes the job",
        CLUSTER_DEADLINE,
        || async {
            match store.get_job(id).await.unwrap() {
                Some(j) if j.status.is_terminal() => Ok(j),
                other => Err(format!("{:?}", other.map(|j| (j.status, j.attempt)))),
            }
        },
    )
    .await;
    let logs = cluster.logs();
    assert_eq!(
        (done.status, done.attempt, done.errors.len()),
        (JobStatus::Completed, 2, 1),
        "attempt 2 completed the job, after the one interruption\n{logs}"
    );
    assert!(
        logs.contains("claimed again here while an earlier attempt still ran"),
        "the node said it stopped attempt 1\n{logs}"
    );
    drop(rescuer);
}
