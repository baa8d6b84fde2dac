//! The job engine end to end on a real sled store: every transition,
//! retries with backoff, permanent errors, timeouts, unknown and orphaned
//! workers, delays, schedules, pause and resume, drain, unique keys, cancel,
//! and a worker that panics.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};
use troupe::job::schedule::{Schedule, ScheduleSpec};
use troupe::job::{EnqueueOptions, Job, JobCtx, JobStatus};
use troupe::sled::{SledConfig, SledStore};
use troupe::store::prelude::*;
use troupe::store::{CancelOutcome, ListQuery, PauseTarget};
use troupe::{
    EngineConfig, EngineError, JobContext, Registration, Worker, WorkerCategory, WorkerEngine,
    WorkerError,
};
use troupe_actors::{run_system, BackoffPolicy};

fn quick_config() -> EngineConfig {
    EngineConfig {
        retry: BackoffPolicy {
            initial: Duration::from_millis(30),
            max: Duration::from_secs(1),
            multiplier: 2.0,
            jitter: 0.0,
            immediate_first: false,
            reset_after: Duration::ZERO,
        },
        drain_timeout: Duration::from_secs(5),
        ..EngineConfig::default()
    }
}

fn open(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(SledStore::open(SledConfig::new(dir)).unwrap())
}

async fn wait_status(engine: &WorkerEngine, id: uuid::Uuid, status: JobStatus) -> Job {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let job = engine.get_job(id).await.unwrap();
        if job.status == status {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job never reached {status}: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Records when each attempt started; fails the first `fail_first` attempts.
struct Recorder {
    name: &'static str,
    started: Arc<Mutex<Vec<Instant>>>,
    fail_first: u32,
    panic_first: bool,
}

#[async_trait]
impl Worker for Recorder {
    fn name(&self) -> &str {
        self.name
    }
    fn description(&self) -> &str {
        "test recorder"
    }
    fn category(&self) -> WorkerCategory {
        WorkerCategory::Other("test".into())
    }
    async fn run(&self, args: Value, ctx: JobContext) -> Result<Value, WorkerError> {
        self.started.lock().unwrap().push(Instant::now());
        if ctx.attempt == 1 && self.panic_first {
            panic!("recorder panics on its first attempt");
        }
        if ctx.attempt <= self.fail_first {
            return Err(WorkerError::retryable(format!(
                "attempt {} fails",
                ctx.attempt
            )));
        }
        Ok(json!({ "args": args, "attempt": ctx.attempt }))
    }
}

fn recorder(name: &'static str, fail_first: u32) -> (Recorder, Arc<Mutex<Vec<Instant>>>) {
    let started = Arc::new(Mutex::new(Vec::new()));
    (
        Recorder {
            name,
            started: started.clone(),
            fail_first,
            panic_first: false,
        },
        started,
    )
}

/// Runs until dropped; counts drops, so a test can see the work really stop.
struct Forever {
    dropped: Arc<AtomicUsize>,
    started: Arc<AtomicUsize>,
}

struct DropFlag(Arc<AtomicUsize>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Worker for Forever {
    fn name(&self) -> &str {
        "forever"
    }
    fn description(&self) -> &str {
        "never finishes"
    }
    fn category(&self) -> WorkerCategory {
        WorkerCategory::Diagnostic
    }
    async fn run(&self, _: Value, _: JobContext) -> Result<Value, WorkerError> {
        let _flag = DropFlag(self.dropped.clone());
        self.started.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
        Ok(Value::Null)
    }
}

fn forever() -> (Forever, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let dropped = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    (
        Forever {
            dropped: dropped.clone(),
            started: started.clone(),
        },
        started,
        dropped,
    )
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[test]
fn echo_job_goes_queued_running_completed() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let engine = WorkerEngine::builder(open(dir.path()))
            .diagnostics()
            .start()
            .unwrap();
        let ctx = JobCtx {
            user_id: Some("u1".into()),
            ..JobCtx::default()
        };
        let job = engine
            .enqueue(
                "echo",
                json!({"hello": "world"}),
                ctx,
                EnqueueOptions::default(),
            )
            .await
            .unwrap()
            .into_job();
        assert_eq!(job.status, JobStatus::Queued);
        assert_eq!(job.attempt, 0);
        let done = engine.wait_for(job.id).await.unwrap();
        assert_eq!(done.status, JobStatus::Completed);
        assert_eq!(done.result, Some(json!({"hello": "world"})));
        assert_eq!(done.attempt, 1);
        assert_eq!(done.ctx.user_id.as_deref(), Some("u1"));
        assert!(done.error.is_none());
        let workers: Vec<_> = engine.list_workers().into_iter().map(|w| w.name).collect();
        assert_eq!(workers, ["echo", "sleep"]);
        let listed = engine.list_jobs(&ListQuery::default()).await.unwrap();
        assert_eq!(listed.jobs.len(), 1);
        engine.shutdown().await.unwrap();
    });
}

#[test]
fn retryable_failures_retry_with_backoff_then_fail_with_the_last_error() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let (worker, started) = recorder("flaky", u32::MAX);
        let engine = WorkerEngine::builder(open(dir.path()))
            .config(quick_config())
            .worker(worker)
            .start()
            .unwrap();
        let opts = EnqueueOptions::default().max_attempts(3);
        let job = engine
            .enqueue("flaky", json!({}), JobCtx::default(), opts)
            .await
            .unwrap()
            .into_job();
        let done = engine.wait_for(job.id).await.unwrap();
        assert_eq!(done.status, JobStatus::Failed);
        assert_eq!(done.attempt, 3);
        assert_eq!(done.error.as_deref(), Some("attempt 3 fails"));
        assert_eq!(done.errors.len(), 3);
        let times = started.lock().unwrap().clone();
        assert_eq!(times.len(), 3);
        // Backoff: 30 ms before the second attempt, 60 ms before the third.
        assert!(
            times[1] - times[0] >= Duration::from_millis(30),
            "{:?}",
            times[1] - times[0]
        );
        assert!(
            times[2] - times[1] >= Duration::from_millis(60),
            "{:?}",
            times[2] - times[1]
        );
        engine.shutdown().await.unwrap();
    });
}

#[test]
fn a_retry_that_succeeds_completes_the_job() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let (worker, _) = recorder("flaky", 1);
        let engine = WorkerEngine::builder(open(dir.path()))
            .config(quick_config())
            .worker(worker)
            .start()
            .unwrap();
        let job = engine
            .enqueue(
                "flaky",
                json!(1),
                JobCtx::default(),
                EnqueueOptions::default(),
            )
            .await
            .unwrap()
            .into_job();
        let done = engine.wait_for(job.id).await.unwrap();
        assert_eq!(done.status, JobStatus::Completed);
        assert_eq!(done.attempt, 2);
        assert_eq!(done.errors.len(), 1);
        assert_eq!(done.errors[0].message, "attempt 1 fails");
    });
}

#[test]
fn permanent_errors_fail_at_once() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let engine = WorkerEngine::builder(open(dir.path()))
            .config(quick_config())
            .diagnostics()
            .start()
            .unwrap();
        let opts = EnqueueOptions::default().max_attempts(5);
        let job = engine
            .enqueue(
                "sleep",
                json!({"fail": "permanent"}),
                JobCtx::default(),
                opts.clone(),
            )
            .await
            .unwrap()
            .into_job();
        let done = engine.wait_for(job.id).await.unwrap();
        assert_eq!(done.status, JobStatus::Failed);
        assert_eq!(done.attempt, 1);
        // Bad args are permanent too, and name the field.
        let job = engine
            .enqueue("sleep", json!({"ms": "soon"}), JobCtx::default(), opts)
            .await
            .unwrap()
            .into_job();
        let done = engine.wait_for(job.id).await.unwrap();
        assert_eq!(done.status, JobStatus::Failed);
        assert!(done.error.unwrap().contains("`ms` must be a whole number"));
    });
}

#[test]
fn a_timed_out_attempt_is_really_stopped_and_counts_as_failed() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let (worker, started, dropped) = forever();
        let engine = WorkerEngine::builder(open(dir.path()))
            .config(quick_config())
            .worker(worker)
            .start()
            .unwrap();
        let opts = EnqueueOptions::default()
            .max_attempts(2)
            .timeout(Duration::from_millis(40));
        let job = engine
            .enqueue("forever", json!({}), JobCtx::default(), opts)
            .await
            .unwrap()
            .into_job();
        let done = engine.wait_for(job.id).await.unwrap();
        assert_eq!(done.status, JobStatus::Failed);
        assert_eq!(done.attempt, 2);
        assert!(done.error.unwrap().contains("timed out after 40 ms"));
        // Both attempts' futures were dropped, not left running.
        eventually("both attempts dropped", || {
            dropped.load(Ordering::SeqCst) == 2
        })
        .await;
        assert_eq!(started.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn unknown_workers_are_refused_and_orphaned_jobs_fail_naming_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    run_system(async {
        // A job for a worker that a later config no longer has.
        let orphan = Job::new(
            "retired",
            json!({}),
            JobCtx::default(),
            &EnqueueOptions::default(),
            chrono::Utc::now(),
        )
        .unwrap();
        store.insert(orphan.clone()).await.unwrap();

        let engine = WorkerEngine::builder(store.clone())
            .diagnostics()
            .start()
            .unwrap();
        let err = engine
            .enqueue(
                "nope",
                json!({}),
                JobCtx::default(),
                EnqueueOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::UnknownWorker { ref name, .. } if name == "nope"));
        assert!(err.to_string().contains("registered: echo, sleep"), "{err}");

        let failed = engine.wait_for(orphan.id).await.unwrap();
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(
            failed.error.as_deref(),
            Some("worker `retired` is not registered")
        );
    });
}

#[test]
fn delayed_jobs_do_not_start_early() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let (worker, started) = recorder("rec", 0);
        let engine = WorkerEngine::builder(open(dir.path()))
            .worker(worker)
            .start()
            .unwrap();
        let t0 = Instant::now();
        let opts = EnqueueOptions::default().delay(Duration::from_millis(150));
        let job = engine
            .enqueue("rec", json!({}), JobCtx::default(), opts)
            .await
            .unwrap()
            .into_job();
        let done = engine.wait_for(job.id).await.unwrap();
        assert_eq!(done.status, JobStatus::Completed);
        let at = started.lock().unwrap()[0];
        assert!(
            at - t0 >= Duration::from_millis(150),
            "started after {:?}",
            at - t0
        );
    });
}

#[test]
fn unique_keys_return_the_active_job() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let engine = WorkerEngine::builder(open(dir.path()))
            .diagnostics()
            .start()
            .unwrap();
        engine
            .pause(PauseTarget::Worker("echo".into()))
            .await
            .unwrap();
        let opts = EnqueueOptions::default().unique_key("report-42");
        let first = engine
            .enqueue("echo", json!(1), JobCtx::default(), opts.clone())
            .await
            .unwrap();
        let second = engine
            .enqueue("echo", json!(2), JobCtx::default(), opts.clone())
            .await
            .unwrap();
        assert!(first.is_new());
        assert!(!second.is_new());
        assert_eq!(first.job().id, second.job().id);
        engine
            .resume(PauseTarget::Worker("echo".into()))
            .await
            .unwrap();
        let done = engine.wait_for(first.job().id).await.unwrap();
        assert_eq!(done.result, Some(json!(1)));
        // Once ended, the key is free again.
        let third = engine
            .enqueue("echo", json!(3), JobCtx::default(), opts)
            .await
            .unwrap();
        assert!(third.is_new());
    });
}

#[test]
fn pause_holds_a_worker_while_others_run_and_resume_releases_it() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let engine = WorkerEngine::builder(open(dir.path()))
            .diagnostics()
            .start()
            .unwrap();
        engine
            .pause(PauseTarget::Worker("echo".into()))
            .await
            .unwrap();
        let held = engine
            .enqueue(
                "echo",
                json!("held"),
                JobCtx::default(),
                EnqueueOptions::default(),
            )
            .await
            .unwrap()
            .into_job();
        let other = engine
            .enqueue(
                "sleep",
                json!({}),
                JobCtx::default(),
                EnqueueOptions::default(),
            )
            .await
            .unwrap()
            .into_job();
        assert_eq!(
            engine.wait_for(other.id).await.unwrap().status,
            JobStatus::Completed
        );
        assert_eq!(
            engine.get_job(held.id).await.unwrap().status,
            JobStatus::Queued
        );
        let state = engine
            .resume(PauseTarget::Worker("echo".into()))
            .await
            .unwrap();
        assert!(!state.is_paused("echo"));
        assert_eq!(
            engine.wait_for(held.id).await.unwrap().status,
            JobStatus::Completed
        );

        engine.pause(PauseTarget::All).await.unwrap();
        let held = engine
            .enqueue(
                "sleep",
                json!({}),
                JobCtx::default(),
                EnqueueOptions::default(),
            )
            .await
            .unwrap()
            .into_job();
        assert_eq!(
            engine.get_job(held.id).await.unwrap().status,
            JobStatus::Queued
        );
        engine.resume(PauseTarget::All).await.unwrap();
        assert_eq!(
            engine.wait_for(held.id).await.unwrap().status,
            JobStatus::Completed
        );
    });
}

#[test]
fn cancel_ends_a_queued_job_and_stops_a_running_one() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let (worker, started, dropped) = forever();
        let engine = WorkerEngine::builder(open(dir.path()))
            .worker(worker)
            .diagnostics()
            .start()
            .unwrap();
        let running = engine
            .enqueue(
                "forever",
                json!({}),
                JobCtx::default(),
                EnqueueOptions::default(),
            )
            .await
            .unwrap()
            .into_job();
        eventually("running", || started.load(Ordering::SeqCst) == 1).await;
        let out = engine.cancel_job(running.id).await.unwrap();
        assert!(matches!(out, CancelOutcome::Requested(_)));
        let ended = engine.wait_for(running.id).await.unwrap();
        assert_eq!(ended.status, JobStatus::Cancelled);
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            1,
            "the work itself was stopped"
        );

        engine
            .pause(PauseTarget::Worker("echo".into()))
            .await
            .unwrap();
        let queued = engine
            .enqueue(
                "echo",
                json!({}),
                JobCtx::default(),
                EnqueueOptions::default(),
            )
            .await
            .unwrap()
            .into_job();
        assert!(matches!(
            engine.cancel_job(queued.id).await.unwrap(),
            CancelOutcome::Cancelled(_)
        ));
        assert_eq!(
            engine.get_job(queued.id).await.unwrap().status,
            JobStatus::Cancelled
        );
        assert!(matches!(
            engine.cancel_job(queued.id).await.unwrap(),
            CancelOutcome::AlreadyEnded(_)
        ));

        let missing = engine.get_job(uuid::Uuid::now_v7()).await.unwrap_err();
        assert!(matches!(missing, EngineError::JobNotFound { .. }));
    });
}

#[test]
fn a_panicking_worker_fails_the_attempt_and_the_retry_runs_on_a_fresh_actor() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let started = Arc::new(Mutex::new(Vec::new()));
        let worker = Recorder {
            name: "panicky",
            started: started.clone(),
            fail_first: 0,
            panic_first: true,
        };
        let engine = WorkerEngine::builder(open(dir.path()))
            .config(quick_config())
            .worker(worker)
            .start()
            .unwrap();
        let job = engine
            .enqueue(
                "panicky",
                json!({}),
                JobCtx::default(),
                EnqueueOptions::default(),
            )
            .await
            .unwrap()
            .into_job();
        let done = engine.wait_for(job.id).await.unwrap();
        assert_eq!(done.status, JobStatus::Completed);
        assert_eq!(done.attempt, 2);
        assert!(
            done.errors[0].message.contains("worker `panicky` crashed"),
            "{:?}",
            done.errors
        );
    });
}

#[test]
fn drain_lets_running_jobs_finish_and_requeues_what_overruns() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    run_system(async {
        let engine = WorkerEngine::builder(store.clone())
            .diagnostics()
            .start()
            .unwrap();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let job = engine
                .enqueue(
                    "sleep",
                    json!({"ms": 100}),
                    JobCtx::default(),
                    EnqueueOptions::default(),
                )
                .await
                .unwrap()
                .into_job();
            ids.push(job.id);
        }
        for id in &ids {
            wait_status(&engine, *id, JobStatus::Running).await;
        }
        let report = engine
            .shutdown_within(Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(report.running, 3);
        assert_eq!(report.requeued, 0);
        for id in &ids {
            assert_eq!(
                store.get_job(*id).await.unwrap().unwrap().status,
                JobStatus::Completed
            );
        }
    });
    let (worker, started, dropped) = forever();
    run_system(async {
        let engine = WorkerEngine::builder(store.clone())
            .worker(worker)
            .start()
            .unwrap();
        let job = engine
            .enqueue(
                "forever",
                json!({}),
                JobCtx::default(),
                EnqueueOptions::default(),
            )
            .await
            .unwrap()
            .into_job();
        eventually("running", || started.load(Ordering::SeqCst) == 1).await;
        let report = engine
            .shutdown_within(Duration::from_millis(50))
            .await
            .unwrap();
        assert_eq!(report.requeued, 1);
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        let job = store.get_job(job.id).await.unwrap().unwrap();
        assert_eq!(
            job.status,
            JobStatus::Queued,
            "back in the queue for the next run"
        );
        assert_eq!(job.attempt, 1);
    });
}

#[test]
fn interval_schedules_fire_and_jobs_complete() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let engine = WorkerEngine::builder(open(dir.path()))
            .diagnostics()
            .start()
            .unwrap();
        let spec = ScheduleSpec::every(Duration::from_millis(100)).unwrap();
        let schedule = Schedule::new(
            "tick",
            "echo",
            json!({"tick": true}),
            spec,
            chrono::Utc::now(),
        )
        .unwrap();
        engine.put_schedule(schedule).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let page = engine
                .list_jobs(&ListQuery {
                    status: Some(JobStatus::Completed),
                    ..ListQuery::default()
                })
                .await
                .unwrap();
            if page.jobs.len() >= 2 {
                assert!(page
                    .jobs
                    .iter()
                    .all(|j| j.worker_name == "echo" && j.result == Some(json!({"tick": true}))));
                break;
            }
            assert!(Instant::now() < deadline, "the schedule did not fire twice");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let schedules = engine.list_schedules().await.unwrap();
        assert!(schedules[0].last_fired_at.is_some());
        assert!(engine.delete_schedule("tick").await.unwrap());
        let bad = Schedule::new(
            "x",
            "nobody",
            json!({}),
            ScheduleSpec::every(Duration::from_secs(1)).unwrap(),
            chrono::Utc::now(),
        )
        .unwrap();
        assert!(matches!(
            engine.put_schedule(bad).await,
            Err(EngineError::UnknownWorker { .. })
        ));
    });
}

#[test]
fn bad_worker_registrations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let err = WorkerEngine::builder(open(dir.path()))
            .register(Registration::new(Arc::new(common::Echo), 0))
            .start()
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("worker `echo`: invalid concurrency"),
            "{err}"
        );
    });
    run_system(async {
        let err = WorkerEngine::builder(open(dir.path()))
            .diagnostics()
            .worker(common::Echo)
            .start()
            .unwrap_err();
        assert!(matches!(err, EngineError::DuplicateWorker { .. }), "{err}");
    });
}

async fn completed_count(engine: &WorkerEngine) -> usize {
    let query = ListQuery {
        status: Some(JobStatus::Completed),
        limit: 1000,
        ..ListQuery::default()
    };
    engine.list_jobs(&query).await.unwrap().jobs.len()
}

#[test]
fn cron_schedules_fire_each_second() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let engine = WorkerEngine::builder(open(dir.path()))
            .diagnostics()
            .start()
            .unwrap();
        let spec = ScheduleSpec::cron("* * * * * *").unwrap();
        let schedule = Schedule::new(
            "every-second",
            "echo",
            json!("tick"),
            spec,
            chrono::Utc::now(),
        )
        .unwrap();
        engine.put_schedule(schedule).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while completed_count(&engine).await < 2 {
            assert!(Instant::now() < deadline, "cron did not fire twice");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let bad = ScheduleSpec::cron("every tuesday").unwrap_err();
        assert!(bad.to_string().contains("invalid cron expression"), "{bad}");
    });
}

#[test]
fn missed_firings_are_skipped_after_downtime_unless_catch_up_is_set() {
    for (catch_up, expected) in [(false, 1), (true, 10)] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        run_system(async {
            // A schedule last due ten periods ago, as after ten minutes down.
            let now = chrono::Utc::now();
            let spec = ScheduleSpec::every(Duration::from_secs(60)).unwrap();
            let mut schedule = Schedule::new("minutely", "echo", json!({}), spec, now).unwrap();
            schedule.next_fire_at = now - chrono::Duration::seconds(60 * 9 + 30);
            schedule.catch_up = catch_up;
            store.put_schedule(schedule).await.unwrap();

            let engine = WorkerEngine::builder(store.clone())
                .diagnostics()
                .start()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while completed_count(&engine).await < expected {
                assert!(
                    Instant::now() < deadline,
                    "catch_up={catch_up}: fewer than {expected} firings"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let schedule = store.get_schedule("minutely").await.unwrap().unwrap();
            assert!(schedule.next_fire_at > now, "advanced past now");
            engine.shutdown().await.unwrap();
            let all = store.list_jobs(&ListQuery::default()).await.unwrap().jobs;
            assert_eq!(all.len(), expected, "catch_up={catch_up}");
        });
    }
}

#[test]
fn retention_prunes_ended_jobs_beyond_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let config = EngineConfig {
            retention: troupe::store::Retention {
                max_age: None,
                max_count: Some(2),
            },
            prune_every: Duration::from_millis(20),
            ..quick_config()
        };
        let engine = WorkerEngine::builder(open(dir.path()))
            .config(config)
            .diagnostics()
            .start()
            .unwrap();
        let mut last = None;
        for i in 0..5 {
            let job = engine
                .enqueue(
                    "echo",
                    json!(i),
                    JobCtx::default(),
                    EnqueueOptions::default(),
                )
                .await
                .unwrap()
                .into_job();
            last = Some(engine.wait_for(job.id).await.unwrap());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let jobs = engine.list_jobs(&ListQuery::default()).await.unwrap().jobs;
            if jobs.len() == 2 {
                assert_eq!(jobs[0].id, last.as_ref().unwrap().id, "the newest are kept");
                break;
            }
            assert!(Instant::now() < deadline, "not pruned: {} jobs", jobs.len());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
}

async fn worker_restarts(engine: &WorkerEngine, worker: &str) -> u64 {
    let workers = engine.tree().supervisor("workers").unwrap();
    let children = workers.children().await.unwrap();
    children
        .iter()
        .find(|c| c.id == format!("worker:{worker}"))
        .map(|c| c.restarts)
        .unwrap_or(0)
}

#[test]
fn a_worker_can_be_recycled_between_jobs() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let registration = Registration::new(Arc::new(common::Echo), 4).recycle_after(2);
        let engine = WorkerEngine::builder(open(dir.path()))
            .register(registration)
            .start()
            .unwrap();
        for i in 0..5 {
            let job = engine
                .enqueue(
                    "echo",
                    json!(i),
                    JobCtx::default(),
                    EnqueueOptions::default(),
                )
                .await
                .unwrap()
                .into_job();
            assert_eq!(
                engine.wait_for(job.id).await.unwrap().status,
                JobStatus::Completed
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while worker_restarts(&engine, "echo").await < 2 {
            assert!(
                Instant::now() < deadline,
                "the worker was not recycled after every 2 jobs"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        engine.shutdown().await.unwrap();
    });
}

/// Each instance numbers its jobs; a job sleeps `args.ms` (the work it
/// stands for), so a long one keeps the worker busy while short ones pass.
struct Numbering {
    instance: usize,
    ran: AtomicUsize,
}

#[async_trait]
impl Worker for Numbering {
    fn name(&self) -> &str {
        "numbering"
    }
    fn description(&self) -> &str {
        "numbers its jobs per instance"
    }
    fn category(&self) -> WorkerCategory {
        WorkerCategory::Diagnostic
    }
    async fn run(&self, args: Value, _: JobContext) -> Result<Value, WorkerError> {
        let nth = self.ran.fetch_add(1, Ordering::SeqCst) + 1;
        let ms = args["ms"].as_u64().unwrap_or(5);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(json!({"instance": self.instance, "nth": nth}))
    }
}

/// A worker that is never idle (a long job in one slot, a stream of short
/// ones in the other) is still recycled: once recycling is due it takes no new jobs, lets the running
/// ones finish, and restarts. So every instance runs exactly its 2 jobs.
#[test]
fn a_busy_worker_is_recycled_by_taking_no_new_jobs_until_its_jobs_end() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let built = Arc::new(AtomicUsize::new(0));
        let counter = built.clone();
        let registration = Registration::with_factory(
            move || {
                let instance = counter.fetch_add(1, Ordering::SeqCst);
                Arc::new(Numbering {
                    instance,
                    ran: AtomicUsize::new(0),
                }) as Arc<dyn Worker>
            },
            2,
        )
        .recycle_after(2);
        let engine = WorkerEngine::builder(open(dir.path()))
            .register(registration)
            .start()
            .unwrap();
        let mut ids = Vec::new();
        for i in 0..12 {
            // The first job is long: while it runs, the short ones would
            // keep the other slot busy, so the worker is never idle.
            let ms = if i == 0 { 200 } else { 5 };
            let job = engine
                .enqueue(
                    "numbering",
                    json!({ "ms": ms }),
                    JobCtx::default(),
                    EnqueueOptions::default(),
                )
                .await
                .unwrap()
                .into_job();
            ids.push(job.id);
        }
        let mut per_instance: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
        for id in ids {
            let job = engine.wait_for(id).await.unwrap();
            assert_eq!(job.status, JobStatus::Completed, "{job:?}");
            let result = job.result.unwrap();
            per_instance
                .entry(result["instance"].as_u64().unwrap())
                .or_default()
                .push(result["nth"].as_u64().unwrap());
        }
        for (instance, nths) in &per_instance {
            assert!(
                nths.iter().all(|n| *n <= 2),
                "instance {instance} ran more than 2 jobs: {nths:?}"
            );
        }
        assert!(
            per_instance.len() >= 6,
            "12 jobs, 2 per instance, need 6 instances: {per_instance:?}"
        );
        engine.shutdown().await.unwrap();
    });
}

/// Blocks its thread: no timeout inside the actor can fire.
struct Blocker;

#[async_trait]
impl Worker for Blocker {
    fn name(&self) -> &str {
        "blocker"
    }
    fn description(&self) -> &str {
        "blocks its thread"
    }
    fn category(&self) -> WorkerCategory {
        WorkerCategory::Diagnostic
    }
    async fn run(&self, _: Value, _: JobContext) -> Result<Value, WorkerError> {
        std::thread::sleep(Duration::from_millis(1500));
        Ok(Value::Null)
    }
}

#[test]
fn the_watchdog_fails_a_job_whose_worker_stops_answering_and_restarts_it() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let registration = Registration::new(Arc::new(Blocker), 1).on_own_thread();
        let engine = WorkerEngine::builder(open(dir.path()))
            .config(quick_config())
            .register(registration)
            .diagnostics()
            .start()
            .unwrap();
        let opts = EnqueueOptions::default()
            .max_attempts(1)
            .timeout(Duration::from_millis(50));
        let job = engine
            .enqueue("blocker", json!({}), JobCtx::default(), opts)
            .await
            .unwrap()
            .into_job();
        // Other workers keep going meanwhile: the blocker has its own thread.
        let echo = engine
            .enqueue(
                "echo",
                json!(1),
                JobCtx::default(),
                EnqueueOptions::default(),
            )
            .await
            .unwrap()
            .into_job();
        assert_eq!(
            engine.wait_for(echo.id).await.unwrap().status,
            JobStatus::Completed
        );
        let failed = engine.wait_for(job.id).await.unwrap();
        assert_eq!(failed.status, JobStatus::Failed);
        let error = failed.error.unwrap();
        assert!(
            error.contains("worker `blocker` stopped answering"),
            "{error}"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while worker_restarts(&engine, "blocker").await < 1 {
            assert!(
                Instant::now() < deadline,
                "the blocked worker was not restarted"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        engine.shutdown().await.unwrap();
    });
}

/// Fails its first `fail_first` attempts with a retryable error that asks
/// for `wait` before the next attempt, with a typed cause.
struct AsksToWait {
    wait: Duration,
    fail_first: u32,
    started: Arc<Mutex<Vec<Instant>>>,
}

#[async_trait]
impl Worker for AsksToWait {
    fn name(&self) -> &str {
        "asks_to_wait"
    }
    fn description(&self) -> &str {
        "fails asking for a wait"
    }
    fn category(&self) -> WorkerCategory {
        WorkerCategory::Other("test".into())
    }
    async fn run(&self, _: Value, ctx: JobContext) -> Result<Value, WorkerError> {
        self.started.lock().unwrap().push(Instant::now());
        if ctx.attempt > self.fail_first {
            return Ok(json!({"attempt": ctx.attempt}));
        }
        let cause = std::io::Error::new(std::io::ErrorKind::WouldBlock, "cooling down");
        Err(WorkerError::retryable("the service asked us to wait")
            .retry_after(self.wait)
            .with_source(cause))
    }
}

fn asks_to_wait(wait: Duration, fail_first: u32) -> (AsksToWait, Arc<Mutex<Vec<Instant>>>) {
    let started = Arc::new(Mutex::new(Vec::new()));
    let worker = AsksToWait {
        wait,
        fail_first,
        started: started.clone(),
    };
    (worker, started)
}

#[test]
fn a_retry_after_puts_the_next_attempt_no_earlier_than_it_and_counts_one_attempt() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let (worker, started) = asks_to_wait(Duration::from_secs(120), u32::MAX);
        let engine = WorkerEngine::builder(open(dir.path()))
            .config(quick_config())
            .worker(worker)
            .diagnostics()
            .start()
            .unwrap();
        let before = chrono::Utc::now();
        let job = engine
            .enqueue(
                "asks_to_wait",
                json!({}),
                JobCtx::default(),
                EnqueueOptions::default().max_attempts(5),
            )
            .await
            .unwrap()
            .into_job();
        let deadline = Instant::now() + Duration::from_secs(10);
        let job = loop {
            let job = engine.get_job(job.id).await.unwrap();
            if job.status == JobStatus::Queued && job.attempt == 1 {
                break job;
            }
            assert!(Instant::now() < deadline, "never queued again: {job:?}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let after = chrono::Utc::now();
        let wait = chrono::Duration::seconds(120);
        // The backoff (30 ms) is shorter: the worker's wait sets the time.
        assert!(
            job.run_at >= before + wait,
            "{} < {}",
            job.run_at,
            before + wait
        );
        assert!(
            job.run_at <= after + wait,
            "{} > {}",
            job.run_at,
            after + wait
        );
        assert_eq!(job.errors.len(), 1);
        assert_eq!(job.errors[0].attempt, 1);
        assert_eq!(job.error.as_deref(), Some("the service asked us to wait"));
        // Other work goes on meanwhile, and the job is not claimed early.
        let echo = engine
            .enqueue(
                "echo",
                json!(1),
                JobCtx::default(),
                EnqueueOptions::default(),
            )
            .await
            .unwrap()
            .into_job();
        engine.wait_for(echo.id).await.unwrap();
        let job = engine.get_job(job.id).await.unwrap();
        assert_eq!((job.status, job.attempt), (JobStatus::Queued, 1));
        assert_eq!(started.lock().unwrap().len(), 1);
        engine.shutdown().await.unwrap();
    });
}

#[test]
fn a_short_retry_after_is_waited_out_then_the_job_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let wait = Duration::from_millis(300);
        let (worker, started) = asks_to_wait(wait, 1);
        let engine = WorkerEngine::builder(open(dir.path()))
            .config(quick_config())
            .worker(worker)
            .start()
            .unwrap();
        let job = engine
            .enqueue(
                "asks_to_wait",
                json!({}),
                JobCtx::default(),
                EnqueueOptions::default(),
            )
            .await
            .unwrap()
            .into_job();
        let done = engine.wait_for(job.id).await.unwrap();
        assert_eq!(done.status, JobStatus::Completed);
        assert_eq!(done.attempt, 2);
        let times = started.lock().unwrap().clone();
        assert!(times[1] - times[0] >= wait, "{:?}", times[1] - times[0]);
        engine.shutdown().await.unwrap();
    });
}

#[test]
fn a_retry_after_does_not_outlast_the_attempts() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let (worker, _) = asks_to_wait(Duration::from_secs(120), u32::MAX);
        let engine = WorkerEngine::builder(open(dir.path()))
            .config(quick_config())
            .worker(worker)
            .start()
            .unwrap();
        let job = engine
            .enqueue(
                "asks_to_wait",
                json!({}),
                JobCtx::default(),
                EnqueueOptions::default().max_attempts(1),
            )
            .await
            .unwrap()
            .into_job();
        let done = engine.wait_for(job.id).await.unwrap();
        assert_eq!(done.status, JobStatus::Failed);
        assert_eq!(done.attempt, 1);
        assert_eq!(done.error.as_deref(), Some("the service asked us to wait"));
        engine.shutdown().await.unwrap();
    });
}

/// Its first `outages` attempts find a dependency out (an open circuit, an
/// overload): it says so with [`WorkerError::outage`].
struct DependsOnAnOutage {
    outages: u32,
}

#[async_trait]
impl Worker for DependsOnAnOutage {
    fn name(&self) -> &str {
        "depends"
    }
    fn description(&self) -> &str {
        "waits out its dependency's outage"
    }
    fn category(&self) -> WorkerCategory {
        WorkerCategory::Other("test".into())
    }
    async fn run(&self, _: Value, ctx: JobContext) -> Result<Value, WorkerError> {
        if ctx.attempt > self.outages {
            return Ok(json!({"attempt": ctx.attempt}));
        }
        Err(WorkerError::outage("the model's circuit is open")
            .retry_after(Duration::from_millis(5)))
    }
}

async fn run_through_outages(dir: &std::path::Path, outages: u32, allowance: u32) -> Job {
    let engine = WorkerEngine::builder(open(dir))
        .config(EngineConfig {
            outage_allowance: allowance,
            ..quick_config()
        })
        .worker(DependsOnAnOutage { outages })
        .start()
        .unwrap();
    let job = engine
        .enqueue(
            "depends",
            json!({}),
            JobCtx::default(),
            EnqueueOptions::default().max_attempts(2),
        )
        .await
        .unwrap()
        .into_job();
    let done = engine.wait_for(job.id).await.unwrap();
    engine.shutdown().await.unwrap();
    done
}

#[test]
fn outages_are_waited_out_without_spending_the_jobs_attempts() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        // Five outages, two attempts allowed: before outages were told
        // apart, the job failed on its second attempt.
        let done = run_through_outages(dir.path(), 5, 20).await;
        assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
        assert_eq!((done.attempt, done.outages), (6, 5));
        assert_eq!(done.errors.len(), 5, "every wait is in the history");
    });
}

#[test]
fn past_the_outage_allowance_the_waits_spend_attempts() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let done = run_through_outages(dir.path(), 10, 3).await;
        assert_eq!(done.status, JobStatus::Failed);
        assert_eq!(
            (done.attempt, done.outages),
            (5, 3),
            "3 waits, then 2 attempts"
        );
        assert_eq!(done.error.as_deref(), Some("the model's circuit is open"));
    });
}

/// A large `enqueue_many` is stored in growing durable writes (256, 512,
/// then 1,024 jobs each), so its first jobs can be claimed while the rest
/// are still being written; the outcomes stay in input order, the unique
/// key rule holds between jobs of different writes, and a batch with one
/// bad job stores nothing.
#[test]
fn a_large_bulk_enqueue_is_stored_in_growing_writes_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    run_system(async {
        let sled = SledStore::open(SledConfig::new(dir.path())).unwrap();
        let store: Arc<dyn Store> = Arc::new(sled.clone());
        let engine = WorkerEngine::builder(store).diagnostics().start().unwrap();
        // Held, so the first job still holds its unique key when the
        // last write comes.
        engine
            .pause(PauseTarget::Worker("echo".into()))
            .await
            .unwrap();
        let job = |n: usize, worker: &str| troupe::NewJob {
            worker_name: worker.into(),
            args: json!({ "n": n }),
            ctx: JobCtx::default(),
            options: if n == 0 || n == 2_999 {
                EnqueueOptions::default().unique_key("one-of-them")
            } else {
                EnqueueOptions::default()
            },
        };
        let inserts = |sled: &SledStore| {
            sled.writes_by_operation()
                .into_iter()
                .find(|(op, _)| *op == "insert_many")
                .map_or(0, |(_, n)| n)
        };

        // One unknown worker at the end: refused before anything is stored.
        let mut bad: Vec<_> = (0..2_999).map(|n| job(n, "echo")).collect();
        bad.push(job(2_999, "no-such-worker"));
        let refused = engine.enqueue_many(bad).await.unwrap_err();
        assert!(
            matches!(refused, EngineError::UnknownWorker { ref name, .. } if name == "no-such-worker"),
            "{refused}"
        );
        let counts = engine.counts().await.unwrap();
        assert_eq!(counts.status(JobStatus::Queued), 0, "{counts:?}");
        assert_eq!(inserts(&sled), 0);

        let outcomes = engine
            .enqueue_many((0..3_000).map(|n| job(n, "echo")).collect())
            .await
            .unwrap();
        // 256 + 512 + 1,024 + 1,024 + 184.
        assert_eq!(inserts(&sled), 5);
        assert_eq!(outcomes.len(), 3_000);
        for (n, outcome) in outcomes.iter().enumerate().take(2_999) {
            assert!(outcome.is_new(), "job {n}");
            assert_eq!(outcome.job().args, json!({ "n": n }), "job {n}");
        }
        // The last one's key is held by the first, stored four writes before.
        assert!(!outcomes[2_999].is_new());
        assert_eq!(outcomes[2_999].job().id, outcomes[0].job().id);
        let counts = engine.counts().await.unwrap();
        assert_eq!(counts.status(JobStatus::Queued), 2_999, "{counts:?}");
        engine.shutdown().await.unwrap();
    });
}
