//! A node id kept across restarts (`[store] nodeId`): refused while a
//! live node holds it, taken back at once by a restart on the same host.
//! Real `troupe run` processes on PostgreSQL; a file of its own so that no
//! test here terminates its connections. Skipped, saying so, without
//! `$TROUPE_TEST_DATABASE_URL`.

mod common;

use std::time::{Duration, Instant};

use troupe::job::JobStatus;
use troupe::store::prelude::*;
use uuid::Uuid;

use common::cluster::{database_url, sleep_jobs, until, Cluster, CLUSTER_DEADLINE};

/// Two live processes cannot share a node id: a second `troupe run` with
/// the id of a live node fails at start, naming the id and the live node,
/// and the first goes on working. The same id right after its process was
/// SIGKILLed starts at once (a dead earlier run on this host) and takes
/// its running job back without waiting for the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_id_held_by_a_live_node_is_refused() {
    let Some(url) = database_url("a_node_id_held_by_a_live_node_is_refused") else {
        return;
    };
    let id = Uuid::now_v7();
    // A long lease: a restart that had to wait for it would be seen.
    let mut cluster = Cluster::new(
        &url,
        &format!("lease = \"60s\"\nheartbeat = \"500ms\"\npoll = \"250ms\"\nnodeId = \"{id}\""),
        "",
    );
    let store = cluster.store().await;
    cluster.start(1, &[]);
    until("the first node registers", CLUSTER_DEADLINE, || async {
        let nodes = store.nodes().await.map_err(|e| e.to_string())?;
        if nodes.iter().any(|n| n.id == id && n.alive) {
            Ok(())
        } else {
            Err(format!("{nodes:?}"))
        }
    })
    .await;

    cluster.start(1, &[]);
    let deadline = Instant::now() + CLUSTER_DEADLINE;
    let status = loop {
        if let Some(status) = cluster.nodes[1].child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the second node did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success(), "the second node is refused");
    let log = std::fs::read_to_string(&cluster.nodes[1].log).unwrap();
    assert!(
        log.contains("store.nodeId") && log.contains(&id.to_string()) && log.contains("live"),
        "{log}"
    );
    assert!(
        cluster.nodes[0].child.try_wait().unwrap().is_none(),
        "the first node goes on"
    );

    // A long job on the first node, which then dies and comes back under
    // the same id: it starts, and takes the job back at once.
    let job = sleep_jobs(1, 300, 3).remove(0);
    let job_id = job.id;
    store.insert(job.clone()).await.unwrap();
    until("the first node runs the job", CLUSTER_DEADLINE, || async {
        match store.get_job(job_id).await.unwrap() {
            Some(j) if j.status == JobStatus::Running => Ok(()),
            other => Err(format!("{:?}", other.map(|j| j.status))),
        }
    })
    .await;
    let killed = Instant::now();
    cluster.kill_and_restart(0, &[]);
    let done = until(
        "the restarted node completes the job",
        CLUSTER_DEADLINE,
        || async {
            match store.get_job(job_id).await.unwrap() {
                Some(j) if j.status == JobStatus::Completed => Ok(j),
                other => Err(format!("{:?}", other.map(|j| (j.status, j.attempt)))),
            }
        },
    )
    .await;
    assert_eq!(done.attempt, 2, "the interrupted attempt counted");
    assert!(
        killed.elapsed() < Duration::from_secs(60),
        "taken back before the 60 s lease ended: {:?}",
        killed.elapsed()
    );
    assert!(
        cluster.nodes[0].child.try_wait().unwrap().is_none(),
        "the restarted node runs"
    );
}
