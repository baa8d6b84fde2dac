//! Kill-and-restart rounds with real processes: a child process writes to the
//! store and reports each acknowledged (durable) write on stdout; the parent
//! kills it with SIGKILL at a different point each round, reopens the store
//! and checks that nothing acknowledged was lost and the store is intact.
//!
//! The child is this same test binary, re-executed with
//! `TROUPE_STORE_CRASH_CHILD` set to the data directory.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use chrono::Utc;
use serde_json::json;
use troupe::job::{EnqueueOptions, Job, JobCtx, JobId, JobStatus};
use troupe::sled::{SledConfig, SledStore};
use troupe::store::prelude::*;
use troupe::store::{ClaimRequest, FailAction, ListQuery};

const CHILD_ENV: &str = "TROUPE_STORE_CRASH_CHILD";

/// The child's work loop (a no-op when run as an ordinary test).
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = SledStore::open(SledConfig::new(&dir)).unwrap();
        store.recover(Utc::now()).await.unwrap();
        let mut round = 0u64;
        loop {
            round += 1;
            let jobs: Vec<Job> = (0..20)
                .map(|_| {
                    Job::new(
                        "w",
                        json!({"round": round}),
                        JobCtx::default(),
                        &EnqueueOptions::default(),
                        Utc::now(),
                    )
                    .unwrap()
                })
                .collect();
            for out in store.insert_many(jobs).await.unwrap() {
                println!("ENQ {}", out.job().id);
            }
            let single = Job::new(
                "w",
                json!(null),
                JobCtx::default(),
                &EnqueueOptions::default(),
                Utc::now(),
            )
            .unwrap();
            println!("ENQ {}", store.insert(single).await.unwrap().job().id);
            let claimed = store
                .claim(&ClaimRequest::any(Utc::now(), 15))
                .await
                .unwrap();
            for (i, job) in claimed.into_iter().enumerate() {
                if i % 5 == 4 {
                    let out = store
                        .fail(
                            job.id,
                            job.attempt,
                            "flaky".into(),
                            FailAction::RetryAt(Utc::now()),
                        )
                        .await
                        .unwrap();
                    if out.applied().is_some() {
                        println!("FAIL {} {}", job.id, job.attempt);
                    }
                } else if i % 7 == 6 {
                    // Leave it running: the crash interrupts it.
                } else {
                    let out = store
                        .complete(job.id, job.attempt, json!({"by": job.attempt}))
                        .await
                        .unwrap();
                    if out.applied().is_some() {
                        println!("DONE {} {}", job.id, job.attempt);
                    }
                }
            }
        }
    });
}

#[test]
fn acknowledged_writes_survive_repeated_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::TempDir::new().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut enqueued: BTreeSet<JobId> = BTreeSet::new();
    let mut done: BTreeMap<JobId, u32> = BTreeMap::new();
    let rounds = 25;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "crash_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Kill after a different number of acknowledged writes each round.
        let kill_after = 50 + (round * 137) % 900;
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some("ENQ"), Some(id), None) => {
                    enqueued.insert(id.parse().unwrap());
                }
                (Some("DONE"), Some(id), Some(attempt)) => {
                    done.insert(id.parse().unwrap(), attempt.parse().unwrap());
                }
                _ => continue,
            }
            seen += 1;
            if seen >= kill_after {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        // Reopen: the store must open, and everything acknowledged is there.
        let store = SledStore::open(SledConfig::new(dir.path()))
            .unwrap_or_else(|e| panic!("round {round}: store does not reopen after SIGKILL: {e}"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            for id in &enqueued {
                let job = store.get_job(*id).await.unwrap();
                assert!(job.is_some(), "round {round}: acknowledged job {id} lost");
            }
            for (id, attempt) in &done {
                let job = store.get_job(*id).await.unwrap().unwrap();
                assert_eq!(
                    job.status,
                    JobStatus::Completed,
                    "round {round}: completion of {id} lost"
                );
                assert_eq!(
                    job.result,
                    Some(json!({"by": attempt})),
                    "round {round}: {id} completed twice"
                );
            }
            // Integrity: the rebuilt indexes agree with a full listing.
            let counts = store.counts().await.unwrap();
            let mut listed = 0u64;
            let mut cursor = None;
            loop {
                let page = store
                    .list_jobs(&ListQuery {
                        limit: 500,
                        cursor,
                        ..ListQuery::default()
                    })
                    .await
                    .unwrap();
                for job in &page.jobs {
                    assert!(job.attempt <= job.max_attempts + rounds as u32, "{job:?}");
                    if job.status == JobStatus::Running {
                        assert!(job.attempt >= 1);
                    }
                }
                listed += page.jobs.len() as u64;
                cursor = page.next_cursor;
                if cursor.is_none() {
                    break;
                }
            }
            assert_eq!(
                listed,
                counts.by_status.values().sum::<u64>(),
                "round {round}"
            );
        });
    }
    assert!(
        enqueued.len() > 1000,
        "only {} jobs enqueued",
        enqueued.len()
    );
    assert!(!done.is_empty());
}
