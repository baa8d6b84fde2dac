//! The upgrade fixture, `tests/fixtures/upgrade-0.1`: a data directory
//! written by an earlier version of Troupe (by
//! `examples/make_upgrade_fixture.rs`, see the fixture's README). This
//! version must open it, read back exactly what `expected.json` records, and
//! its daemon must finish the jobs that were left queued or running.
//!
//! The checked-in directory is never opened in place (opening a store writes
//! to it): each test works on a copy in a temporary directory.

#[path = "upgrade/dump.rs"]
mod dump;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use troupe::job::schedule::Schedule;
use troupe::job::{Job, JobId, JobStatus};
use troupe::secrets::MasterKey;
use troupe::sled::{SledConfig, SledStore};
use troupe::ProcessingResult;

use dump::Manifest;

/// The fixture, as checked in.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade-0.1")
}

/// How long the daemon may take. Its first retention pass runs 60 s after
/// it starts, with the default retention of `troupe run` (ended jobs older
/// than 7 days, which every job of the fixture soon is): the daemon must be
/// stopped before then, or the comparison below would meet pruned jobs.
const DAEMON_DEADLINE: Duration = Duration::from_secs(45);
const FIRST_PRUNE: Duration = Duration::from_secs(60);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixture().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A copy of the fixture: `data/`, `troupe.toml` and `master.key`, the key
/// made private to its owner again (git does not keep file modes).
fn copy_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    dump::copy_dir(&fixture().join("data"), &dir.path().join("data")).unwrap();
    for file in ["troupe.toml", "master.key"] {
        std::fs::copy(fixture().join(file), dir.path().join(file)).unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(dir.path().join("master.key"), private).unwrap();
    }
    dir
}

fn dump_copy(dir: &Path, manifest: &Manifest) -> Value {
    let master = MasterKey::from_file(&dir.join("master.key")).unwrap();
    runtime().block_on(async {
        let store = SledStore::open(SledConfig::new(dir.join("data"))).unwrap();
        dump::dump(&store, &master, manifest).await.unwrap()
    })
}

/// The first place where `got` differs from `want`, as a readable line;
/// `None` when they are equal.
fn first_difference(path: &str, want: &Value, got: &Value) -> Option<String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let keys: BTreeSet<&String> = w.keys().chain(g.keys()).collect();
            keys.into_iter().find_map(|k| {
                let at = format!("{path}.{k}");
                match (w.get(k), g.get(k)) {
                    (Some(a), Some(b)) => first_difference(&at, a, b),
                    (Some(a), None) => Some(format!("{at}: missing (expected {a})")),
                    (None, Some(b)) => Some(format!("{at}: unexpected {b}")),
                    (None, None) => None,
                }
            })
        }
        (Value::Array(w), Value::Array(g)) => w
            .iter()
            .zip(g)
            .enumerate()
            .find_map(|(i, (a, b))| first_difference(&format!("{path}[{i}]"), a, b))
            .or_else(|| {
                (w.len() != g.len())
                    .then(|| format!("{path}: {} entries expected, {} found", w.len(), g.len()))
            }),
        (a, b) if a == b => None,
        (a, b) => Some(format!("{path}: expected {a}, found {b}")),
    }
}

#[track_caller]
fn assert_same(what: &str, want: &Value, got: &Value) {
    if let Some(difference) = first_difference(what, want, got) {
        panic!("{difference}");
    }
}

#[track_caller]
fn assert_prefix(what: &str, want: &Value, got: &Value) {
    let (w, g) = (want.as_array().unwrap(), got.as_array().unwrap());
    assert!(
        g.len() >= w.len(),
        "{what}: {} entries expected at least, {} found",
        w.len(),
        g.len()
    );
    assert_same(what, want, &Value::Array(g[..w.len()].to_vec()));
}

#[test]
fn the_fixture_reads_back_exactly() {
    let dir = copy_fixture();
    let expected = expected();
    let manifest = Manifest::from_dump(&expected).unwrap();
    let got = dump_copy(dir.path(), &manifest);
    if let Some(difference) = first_difference("expected.json", &expected, &got) {
        panic!("the fixture does not read back as recorded; first difference:\n  {difference}");
    }
}

/// `troupe run` on the copy; killed (SIGKILL) if the test ends without
/// stopping it.
struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn start(dir: &Path) -> Daemon {
        let log = dir.join("daemon.log");
        let child = Command::new(env!("CARGO_BIN_EXE_troupe"))
            .args(["run", "--http", "127.0.0.1:0", "--config"])
            .arg(dir.join("troupe.toml"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("TROUPE_MASTER_KEY_FILE", dir.join("master.key"))
            .env("RUST_LOG", "info")
            .env_remove("TROUPE_MASTER_KEY")
            .env_remove("TROUPE_DATA_DIR")
            .env_remove("TROUPE_CONFIG")
            .env_remove("TROUPE_SERVER")
            .env_remove("TROUPE_HTTP_TOKEN")
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics (with the daemon's log) if it has exited.
    fn check_alive(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the daemon exited ({status}):\n{}", self.log());
            }
        }
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success());
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "the daemon did not exit cleanly after SIGTERM ({status}):\n{}",
            self.log()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every job, through the daemon's control API (the CLI finds it by the
/// data directory's `daemon.json`).
fn daemon_jobs(dir: &Path) -> Result<Vec<Job>, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(["jobs", "--json", "--limit", "1000", "--config"])
        .arg(dir.join("troupe.toml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env_remove("TROUPE_DATA_DIR")
        .env_remove("TROUPE_CONFIG")
        .env_remove("TROUPE_SERVER")
        .env_remove("TROUPE_HTTP_TOKEN")
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// The fields a job keeps for life.
fn identity(job: &Job) -> Value {
    serde_json::json!({
        "id": job.id,
        "workerName": job.worker_name,
        "maxAttempts": job.max_attempts,
        "priority": job.priority,
        "uniqueKey": job.unique_key,
        "timeout": job.timeout_ms,
        "args": job.args,
        "ctx": job.ctx,
        "createdAt": job.created_at,
    })
}

#[test]
fn the_daemon_finishes_the_queued_jobs() {
    let dir = copy_fixture();
    let expected = expected();
    let manifest = Manifest::from_dump(&expected).unwrap();
    let before: Vec<Job> = serde_json::from_value(expected["jobs"].clone()).unwrap();
    let schedules: Vec<Schedule> = serde_json::from_value(expected["schedules"].clone()).unwrap();
    let paused: BTreeSet<String> =
        serde_json::from_value(expected["pause"]["workers"].clone()).unwrap();
    assert_eq!(expected["pause"]["all"], false);

    let start = Utc::now();
    // Queued jobs that must stay queued: a paused worker's, and one not due
    // before 2100. Every other queued or running job must end.
    let stays: BTreeSet<JobId> = before
        .iter()
        .filter(|j| {
            j.status == JobStatus::Queued && (paused.contains(&j.worker_name) || j.run_at > start)
        })
        .map(|j| j.id)
        .collect();
    let must_end: BTreeSet<JobId> = before
        .iter()
        .filter(|j| j.status.is_active() && !stays.contains(&j.id))
        .map(|j| j.id)
        .collect();
    // Schedules that are due fire once each when the daemon starts.
    let due: BTreeSet<&str> = schedules
        .iter()
        .filter(|s| s.next_fire_at <= start)
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(
        (stays.len(), must_end.len(), due.len()),
        (2, 7, 2),
        "the fixture is not the one this test was written for (see its README)"
    );

    let started = Instant::now();
    let mut daemon = Daemon::start(dir.path());
    let deadline = started + DAEMON_DEADLINE;
    while !dir.path().join("data/daemon.json").exists() {
        daemon.check_alive();
        assert!(
            Instant::now() < deadline,
            "the daemon never announced its address:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    loop {
        daemon.check_alive();
        let jobs = daemon_jobs(dir.path());
        if let Ok(jobs) = &jobs {
            let ended = |id: &JobId| jobs.iter().any(|j| j.id == *id && j.status.is_terminal());
            let fired: Vec<&Job> = jobs
                .iter()
                .filter(|j| !before.iter().any(|b| b.id == j.id))
                .collect();
            if must_end.iter().all(ended)
                && fired.len() >= due.len()
                && fired.iter().all(|j| j.status.is_terminal())
            {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the jobs did not end within {DAEMON_DEADLINE:?}; jobs now: {jobs:#?}\ndaemon log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon.stop();
    assert!(
        started.elapsed() < FIRST_PRUNE,
        "the daemon ran {:?}: its first retention pass may have pruned the fixture's ended jobs",
        started.elapsed()
    );

    let after = dump_copy(dir.path(), &manifest);
    let after_jobs: Vec<Job> = serde_json::from_value(after["jobs"].clone()).unwrap();
    let mut by_id: HashMap<JobId, Job> = after_jobs.into_iter().map(|j| (j.id, j)).collect();

    // Jobs: what was queued or running has ended as it should; the rest
    // is exactly as it was.
    for want in &before {
        let got = by_id
            .remove(&want.id)
            .unwrap_or_else(|| panic!("job {} is gone", want.id));
        let what = format!("job {} ({})", want.id, want.worker_name);
        if !must_end.contains(&want.id) {
            assert_same(
                &what,
                &serde_json::to_value(want).unwrap(),
                &serde_json::to_value(&got).unwrap(),
            );
            continue;
        }
        assert_same(&what, &identity(want), &identity(&got));
        assert_prefix(
            &format!("{what} errors"),
            &serde_json::to_value(&want.errors).unwrap(),
            &serde_json::to_value(&got.errors).unwrap(),
        );
        if want.status == JobStatus::Running {
            // Recovered: the interrupted attempt is on record.
            let last = got
                .errors
                .last()
                .unwrap_or_else(|| panic!("{what}: {got:?}"));
            assert!(last.message.contains("interrupted"), "{what}: {last:?}");
            assert_eq!(last.attempt, want.attempt, "{what}");
        }
        if want.cancel_requested {
            assert_eq!(got.status, JobStatus::Cancelled, "{what}: {got:?}");
            assert_eq!(got.result, None, "{what}");
            continue;
        }
        assert_eq!(got.status, JobStatus::Completed, "{what}: {got:?}");
        assert_eq!(got.attempt, want.attempt + 1, "{what}: one more attempt");
        let result = got.result.clone().unwrap();
        match want.worker_name.as_str() {
            "echo" => assert_eq!(result, want.args, "{what}"),
            "sleep" => assert_eq!(result["sleptMs"], want.args["ms"], "{what}"),
            agent => {
                let result: ProcessingResult = serde_json::from_value(result).unwrap();
                assert!(result.success, "{what} ({agent}): {result:?}");
                assert!(result.response.is_some_and(|r| !r.is_empty()), "{what}");
                // A task resumed from its checkpoint: the memory its tool
                // round had stored before the crash is found by its key,
                // not stored again.
                let key = format!("remember:tool:{}:0:call1", want.id);
                if let Some(memory) = expected["memoryKeys"].get(&key) {
                    let call = result
                        .tool_calls
                        .iter()
                        .find(|c| c.tool == "remember")
                        .unwrap_or_else(|| panic!("{what}: no remember call"));
                    assert_eq!(call.result["data"]["created"], false, "{what}");
                    assert_eq!(&call.result["data"]["memoryId"], memory, "{what}");
                    assert!(
                        result.tool_calls.iter().any(
                            |c| c.tool == "send_message" && c.result["data"]["created"] == true
                        ),
                        "{what}: the message its round had not posted yet"
                    );
                }
            }
        }
    }
    // New jobs: one per due schedule, completed.
    let mut fired: BTreeMap<String, usize> = BTreeMap::new();
    for job in by_id.values() {
        let source = job.ctx.source.clone().unwrap_or_default();
        let schedule = source
            .strip_prefix("schedule:")
            .unwrap_or_else(|| panic!("an unexpected new job: {job:?}"));
        assert_eq!(job.status, JobStatus::Completed, "{job:?}");
        *fired.entry(schedule.to_string()).or_default() += 1;
    }
    let want_fired: BTreeMap<String, usize> = due.iter().map(|s| (s.to_string(), 1)).collect();
    assert_eq!(fired, want_fired, "jobs fired by schedules");

    // Schedules: the due ones advanced, the rest as they were.
    let after_schedules: Vec<Schedule> =
        serde_json::from_value(after["schedules"].clone()).unwrap();
    assert_eq!(after_schedules.len(), schedules.len());
    for (want, got) in schedules.iter().zip(&after_schedules) {
        let mut moved = want.clone();
        if due.contains(want.id.as_str()) {
            let last: DateTime<Utc> = got.last_fired_at.expect("fired");
            assert!(last >= want.next_fire_at && last <= Utc::now(), "{got:?}");
            assert!(got.next_fire_at > start, "{got:?}");
            moved.next_fire_at = got.next_fire_at;
            moved.last_fired_at = got.last_fired_at;
        }
        assert_same(
            &format!("schedule {}", want.id),
            &serde_json::to_value(&moved).unwrap(),
            &serde_json::to_value(got).unwrap(),
        );
    }
    assert_same("pause", &expected["pause"], &after["pause"]);

    // Memories: all there, none added (the resumed task's `remember` found
    // its key); recalls may have touched them (lastAccessedAt only moves on).
    for scope in &manifest.memory_scopes {
        let name = dump::scope_name(scope);
        let want = expected["memories"][&name].as_array().unwrap();
        let got = after["memories"][&name].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "memories of {name}");
        for (w, g) in want.iter().zip(got) {
            let (mut w, mut g) = (w.clone(), g.clone());
            let (touched, was) = (g["lastAccessedAt"].take(), w["lastAccessedAt"].take());
            let touched: DateTime<Utc> = serde_json::from_value(touched).unwrap();
            let was: DateTime<Utc> = serde_json::from_value(was).unwrap();
            assert!(touched >= was, "{name}: {g}");
            assert_same(&format!("memories of {name}"), &w, &g);
        }
    }
    assert_same("memoryKeys", &expected["memoryKeys"], &after["memoryKeys"]);

    // Conversations, steps: the fixture's are still there, first; new ones follow.
    for conversation in &manifest.conversations {
        assert_prefix(
            &format!("conversation {conversation}"),
            &expected["conversations"][conversation],
            &after["conversations"][conversation],
        );
    }
    assert_same(
        "messageKeys",
        &expected["messageKeys"],
        &after["messageKeys"],
    );
    for (job, steps) in expected["checkpoints"].as_object().unwrap() {
        assert_prefix(
            &format!("checkpoints of {job}"),
            steps,
            &after["checkpoints"][job],
        );
    }
    assert_same(
        "idempotencyKeys",
        &expected["idempotencyKeys"],
        &after["idempotencyKeys"],
    );

    // Usage (the offline model records none) and secrets: as they were.
    assert_same("usage", &expected["usage"], &after["usage"]);
    assert_same("secrets", &expected["secrets"], &after["secrets"]);
}
