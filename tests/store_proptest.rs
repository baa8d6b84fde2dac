//! A proptest of every store adapter (sled, in-memory) against a model of
//! the job state machine: random sequences of enqueue, claim, complete,
//! fail, cancel, discard, pause and crash-and-recover; after every step the
//! store's answers and every job's state must equal the model's. The
//! adapters are reached through their conformance harnesses, so a crash is
//! what the conformance suite means by one.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use serde_json::json;
use troupe::in_memory::InMemoryHarness;
use troupe::job::{EnqueueOptions, Job, JobCtx, JobId, JobStatus};
use troupe::sled::SledHarness;
use troupe::store::conformance::{Fixture, Harness};
use troupe::store::prelude::*;
use troupe::store::{CancelOutcome, ClaimRequest, FailAction, Outcome, PauseTarget};

const WORKERS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        worker: usize,
        priority: i32,
        delay: i64,
        unique: Option<u8>,
        max_attempts: u32,
    },
    Claim {
        limit: usize,
        only: Option<usize>,
    },
    Complete {
        pick: usize,
        wrong_attempt: bool,
    },
    Fail {
        pick: usize,
        retry_in: Option<i64>,
    },
    Cancel {
        pick: usize,
    },
    AckCancel {
        pick: usize,
    },
    Discard {
        pick: usize,
    },
    Pause {
        worker: Option<usize>,
        paused: bool,
    },
    Advance {
        secs: i64,
    },
    CrashAndRecover,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, -1..3i32, prop_oneof![3 => Just(0i64), 1 => 1..4i64], proptest::option::weighted(0.3, 0..3u8), 1..4u32)
            .prop_map(|(worker, priority, delay, unique, max_attempts)| Op::Enqueue { worker, priority, delay, unique, max_attempts }),
        3 => (1..4usize, proptest::option::weighted(0.3, 0..3usize)).prop_map(|(limit, only)| Op::Claim { limit, only }),
        2 => (any::<usize>(), proptest::bool::weighted(0.2)).prop_map(|(pick, wrong_attempt)| Op::Complete { pick, wrong_attempt }),
        2 => (any::<usize>(), proptest::option::weighted(0.7, 0..3i64)).prop_map(|(pick, retry_in)| Op::Fail { pick, retry_in }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => any::<usize>().prop_map(|pick| Op::AckCancel { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Discard { pick }),
        1 => (proptest::option::weighted(0.7, 0..3usize), any::<bool>()).prop_map(|(worker, paused)| Op::Pause { worker, paused }),
        2 => (0..3i64).prop_map(|secs| Op::Advance { secs }),
        1 => Just(Op::CrashAndRecover),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct MJob {
    worker: String,
    status: JobStatus,
    attempt: u32,
    max_attempts: u32,
    priority: i32,
    run_at: DateTime<Utc>,
    unique: Option<String>,
    cancel_requested: bool,
    errors: usize,
}

#[derive(Default)]
struct Model {
    jobs: BTreeMap<JobId, MJob>,
    order: Vec<JobId>,
    paused_all: bool,
    paused: BTreeSet<String>,
}

impl Model {
    fn pick(&self, pick: usize) -> Option<JobId> {
        (!self.order.is_empty()).then(|| self.order[pick % self.order.len()])
    }

    fn is_paused(&self, w: &str) -> bool {
        self.paused_all || self.paused.contains(w)
    }

    fn claimable(&self, now: DateTime<Utc>, limit: usize, only: Option<&str>) -> Vec<JobId> {
        let mut ready: Vec<(i64, DateTime<Utc>, JobId)> = self
            .jobs
            .iter()
            .filter(|(_, j)| {
                j.status == JobStatus::Queued && j.run_at <= now && !self.is_paused(&j.worker)
            })
            .filter(|(_, j)| only.is_none() || only == Some(j.worker.as_str()))
            .map(|(id, j)| (-i64::from(j.priority), j.run_at, *id))
            .collect();
        ready.sort();
        ready.into_iter().take(limit).map(|(_, _, id)| id).collect()
    }

    fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.jobs
            .values()
            .filter(|j| j.status == JobStatus::Queued && !self.is_paused(&j.worker))
            .map(|j| j.run_at)
            .min()
    }

    fn stale(&self, id: JobId) -> Outcome {
        let j = &self.jobs[&id];
        Outcome::Stale {
            status: j.status,
            attempt: j.attempt,
        }
    }
}

fn status_of(out: &Outcome) -> Option<(JobStatus, u32)> {
    out.applied().map(|j| (j.status, j.attempt))
}

async fn run<H: Harness>(harness: &H, ops: Vec<Op>) {
    let mut f = Fixture::open(harness).await.unwrap();
    let mut model = Model::default();
    let mut now = Utc::now() - Duration::hours(1);

    for op in ops {
        match op.clone() {
            Op::Enqueue {
                worker,
                priority,
                delay,
                unique,
                max_attempts,
            } => {
                let mut opts = EnqueueOptions::default()
                    .priority(priority)
                    .max_attempts(max_attempts)
                    .run_at(now + Duration::seconds(delay));
                opts.unique_key = unique.map(|u| format!("u{u}"));
                let job =
                    Job::new(WORKERS[worker], json!(null), JobCtx::default(), &opts, now).unwrap();
                let out = f.store().insert(job.clone()).await.unwrap();
                let holder = opts.unique_key.as_ref().and_then(|k| {
                    model
                        .jobs
                        .iter()
                        .find(|(_, j)| j.status.is_active() && j.unique.as_ref() == Some(k))
                        .map(|(id, _)| *id)
                });
                match holder {
                    Some(existing) => {
                        assert!(!out.is_new(), "{op:?}");
                        assert_eq!(out.job().id, existing);
                    }
                    None => {
                        assert!(out.is_new(), "{op:?}");
                        model.order.push(job.id);
                        model.jobs.insert(
                            job.id,
                            MJob {
                                worker: WORKERS[worker].into(),
                                status: JobStatus::Queued,
                                attempt: 0,
                                max_attempts,
                                priority,
                                run_at: job.run_at,
                                unique: opts.unique_key.clone(),
                                cancel_requested: false,
                                errors: 0,
                            },
                        );
                    }
                }
            }
            Op::Claim { limit, only } => {
                let only = only.map(|w| WORKERS[w]);
                let expected = model.claimable(now, limit, only);
                let request = ClaimRequest {
                    now,
                    limit,
                    per_worker: only.map(|w| BTreeMap::from([(w.to_string(), limit)])),
                };
                let got: Vec<JobId> = f
                    .store()
                    .claim(&request)
                    .await
                    .unwrap()
                    .iter()
                    .map(|j| j.id)
                    .collect();
                assert_eq!(got, expected, "{op:?}");
                for id in got {
                    let j = model.jobs.get_mut(&id).unwrap();
                    j.status = JobStatus::Running;
                    j.attempt += 1;
                }
            }
            Op::Complete {
                pick,
                wrong_attempt,
            } => {
                let Some(id) = model.pick(pick) else { continue };
                let attempt = model.jobs[&id].attempt + u32::from(wrong_attempt);
                let out = f
                    .store()
                    .complete(id, attempt, json!(attempt))
                    .await
                    .unwrap();
                let j = &model.jobs[&id];
                if j.status == JobStatus::Running && j.attempt == attempt {
                    assert_eq!(
                        status_of(&out),
                        Some((JobStatus::Completed, attempt)),
                        "{op:?}"
                    );
                    model.jobs.get_mut(&id).unwrap().status = JobStatus::Completed;
                } else {
                    assert_eq!(out, model.stale(id), "{op:?}");
                }
            }
            Op::Fail { pick, retry_in } => {
                let Some(id) = model.pick(pick) else { continue };
                let attempt = model.jobs[&id].attempt;
                let action = match retry_in {
                    Some(s) => FailAction::RetryAt(now + Duration::seconds(s)),
                    None => FailAction::Final,
                };
                let out = f
                    .store()
                    .fail(id, attempt, format!("e{attempt}"), action)
                    .await
                    .unwrap();
                let j = model.jobs.get_mut(&id).unwrap();
                if j.status == JobStatus::Running {
                    j.errors += 1;
                    j.status = if j.cancel_requested {
                        JobStatus::Cancelled
                    } else if retry_in.is_some() && j.attempt < j.max_attempts {
                        j.run_at = now + Duration::seconds(retry_in.unwrap_or(0));
                        JobStatus::Queued
                    } else {
                        JobStatus::Failed
                    };
                    assert_eq!(status_of(&out), Some((j.status, attempt)), "{op:?}");
                } else {
                    assert_eq!(
                        out,
                        Outcome::Stale {
                            status: j.status,
                            attempt: j.attempt
                        },
                        "{op:?}"
                    );
                }
            }
            Op::Cancel { pick } => {
                let Some(id) = model.pick(pick) else { continue };
                let out = f.store().cancel(id).await.unwrap();
                let j = model.jobs.get_mut(&id).unwrap();
                match j.status {
                    JobStatus::Queued => {
                        assert!(matches!(out, CancelOutcome::Cancelled(_)), "{op:?}");
                        j.status = JobStatus::Cancelled;
                    }
                    JobStatus::Running => {
                        assert!(matches!(out, CancelOutcome::Requested(_)), "{op:?}");
                        j.cancel_requested = true;
                    }
                    _ => assert!(matches!(out, CancelOutcome::AlreadyEnded(_)), "{op:?}"),
                }
            }
            Op::AckCancel { pick } => {
                let Some(id) = model.pick(pick) else { continue };
                let attempt = model.jobs[&id].attempt;
                let out = f.store().ack_cancel(id, attempt).await.unwrap();
                if model.jobs[&id].status == JobStatus::Running {
                    assert_eq!(
                        status_of(&out),
                        Some((JobStatus::Cancelled, attempt)),
                        "{op:?}"
                    );
                    model.jobs.get_mut(&id).unwrap().status = JobStatus::Cancelled;
                } else {
                    assert_eq!(out, model.stale(id), "{op:?}");
                }
            }
            Op::Discard { pick } => {
                let Some(id) = model.pick(pick) else { continue };
                let out = f
                    .store()
                    .discard(id, "unknown worker".into())
                    .await
                    .unwrap();
                let j = model.jobs.get_mut(&id).unwrap();
                if j.status == JobStatus::Queued {
                    j.status = JobStatus::Failed;
                    j.errors += 1;
                    assert_eq!(
                        status_of(&out),
                        Some((JobStatus::Failed, j.attempt)),
                        "{op:?}"
                    );
                } else {
                    assert_eq!(
                        out,
                        Outcome::Stale {
                            status: j.status,
                            attempt: j.attempt
                        },
                        "{op:?}"
                    );
                }
            }
            Op::Pause { worker, paused } => {
                let target = match worker {
                    Some(w) => PauseTarget::Worker(WORKERS[w].into()),
                    None => PauseTarget::All,
                };
                let state = f.store().set_paused(target, paused).await.unwrap();
                match worker {
                    Some(w) if paused => {
                        model.paused.insert(WORKERS[w].into());
                    }
                    Some(w) => {
                        model.paused.remove(WORKERS[w]);
                    }
                    None => model.paused_all = paused,
                }
                assert_eq!(state.all, model.paused_all);
                assert_eq!(state.workers, model.paused);
            }
            Op::Advance { secs } => now += Duration::seconds(secs),
            Op::CrashAndRecover => {
                f = f.crash().await.unwrap();
                let rec = f.store().recover(now).await.unwrap();
                let mut requeued = Vec::new();
                let mut cancelled = Vec::new();
                for (id, j) in model.jobs.iter_mut() {
                    if j.status == JobStatus::Running {
                        j.errors += 1;
                        if j.cancel_requested {
                            j.status = JobStatus::Cancelled;
                            cancelled.push(*id);
                        } else {
                            j.status = JobStatus::Queued;
                            j.run_at = now;
                            requeued.push(*id);
                        }
                    }
                }
                assert_eq!(rec.requeued, requeued);
                assert_eq!(rec.cancelled, cancelled);
            }
        }

        // After every step: every job, the counts and the wake-up time agree.
        for (id, m) in &model.jobs {
            let j = f.store().get_job(*id).await.unwrap().unwrap();
            assert_eq!(
                (
                    j.status,
                    j.attempt,
                    j.run_at,
                    j.priority,
                    j.cancel_requested,
                    j.errors.len()
                ),
                (
                    m.status,
                    m.attempt,
                    m.run_at,
                    m.priority,
                    m.cancel_requested,
                    m.errors
                ),
                "job {id} after {op:?}"
            );
            assert_eq!(j.worker_name, m.worker);
        }
        let counts = f.store().counts().await.unwrap();
        for st in JobStatus::ALL {
            let expected = model.jobs.values().filter(|j| j.status == st).count() as u64;
            assert_eq!(counts.status(st), expected, "{st} after {op:?}");
            for w in WORKERS {
                let expected = model
                    .jobs
                    .values()
                    .filter(|j| j.status == st && j.worker == w)
                    .count() as u64;
                assert_eq!(counts.worker(w, st), expected, "{w}/{st} after {op:?}");
            }
        }
        assert_eq!(
            f.store().next_wake(None).await.unwrap(),
            model.next_wake(),
            "wake after {op:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn sled_matches_the_state_machine_model(ops in proptest::collection::vec(op(), 1..60)) {
        block_on(run(&SledHarness::default(), ops));
    }

    #[test]
    fn in_memory_matches_the_state_machine_model(ops in proptest::collection::vec(op(), 1..60)) {
        block_on(run(&InMemoryHarness, ops));
    }
}

fn block_on(run: impl std::future::Future<Output = ()>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run);
}
