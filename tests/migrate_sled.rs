//! `troupe migrate --from sled:DIR --to postgres://…`: the upgrade fixture
//! (`tests/fixtures/upgrade-0.1`, a sled directory an older version wrote,
//! with jobs in every status, archived memories, conversations, steps and
//! usage) copied into a schema of its own by the real binary, then read
//! back through the ports and compared record by record with the sled
//! store; a second copy refused without changing anything; sources that
//! cannot be copied refused with what is wrong.
//!
//! The copies need `$TROUPE_TEST_DATABASE_URL`; without it they say they
//! were skipped and pass. The refusals that come before any connection run
//! everywhere.

mod common;

use std::path::Path;
use std::process::Output;

use async_trait::async_trait;
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use serde_json::{json, Value};
use troupe::job::schedule::{Schedule, ScheduleSpec};
use troupe::job::{EnqueueOptions, Job, JobCtx, JobStatus};
use troupe::postgres::{PostgresStore, ScratchSchema, TEST_DATABASE_URL};
use troupe::sled::{SledConfig, SledStore};
use troupe::store::prelude::*;
use troupe::store::{
    ChatMessage, ClaimedKey, DayTotals, ImportOptions, ListQuery, Memory, MemoryKey, MessageKey,
    PauseTarget, Role, Snapshot, SnapshotCounts, SnapshotExport, SnapshotImport, SnapshotKind,
    SnapshotSink, StepRecord, StoreError, UsageRecord, UsageScope, UsageTotals,
};
use troupe::MemoryScope;

use common::cli::{command, stderr, stdout};

/// The fixture, as checked in.
fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade-0.1")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of the fixture's data directory (opening a store writes to it,
/// so the checked-in one is never opened).
fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture().join("data"), &dir.path().join("data"));
    dir
}

/// What the fixture's dump looks up that no port lists.
fn manifest() -> Value {
    let text = std::fs::read_to_string(fixture().join("expected.json")).unwrap();
    let expected: Value = serde_json::from_str(&text).unwrap();
    expected["manifest"].clone()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn database() -> Option<String> {
    let url = std::env::var(TEST_DATABASE_URL)
        .ok()
        .filter(|u| !u.trim().is_empty());
    if url.is_none() {
        eprintln!("skipped: {TEST_DATABASE_URL} is not set (no PostgreSQL to copy into)");
    }
    url
}

/// `url` with a password in it, when it names a user without one (the
/// test database trusts its users, so any password connects).
fn with_password(url: &str, password: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let (user, host) = rest.split_once('@')?;
    (!user.contains(':')).then(|| format!("{scheme}://{user}:{password}@{host}"))
}

fn migrate(from: &str, url: &str, schema: &str, extra: &[&str]) -> Output {
    command()
        .args([
            "--json", "migrate", "--from", from, "--to", url, "--schema", schema,
        ])
        .args(extra)
        .output()
        .unwrap()
}

/// Every job, oldest first.
async fn all_jobs(store: &dyn Store) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_jobs(&ListQuery {
                limit: 5,
                cursor,
                ..ListQuery::default()
            })
            .await
            .unwrap();
        jobs.extend(page.jobs);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    jobs.sort_by_key(|j| j.id);
    jobs
}

async fn snapshot(store: &dyn SnapshotExport) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let counts = store.export(&mut snapshot).await.unwrap();
    assert_eq!(counts, snapshot.counts());
    snapshot.sort();
    snapshot
}

/// Compares, through the ports, everything the fixture holds.
async fn assert_same_records(sled: &SledStore, pg: &PostgresStore, manifest: &Value) {
    let jobs = all_jobs(sled).await;
    assert_eq!(jobs.len(), 14);
    assert_eq!(all_jobs(pg).await, jobs, "jobs");
    assert_eq!(pg.counts().await.unwrap(), sled.counts().await.unwrap());
    for job in &jobs {
        assert_eq!(
            pg.load_steps(job.id).await.unwrap(),
            sled.load_steps(job.id).await.unwrap(),
            "steps of job {}",
            job.id
        );
    }
    assert_eq!(
        pg.list_schedules().await.unwrap(),
        sled.list_schedules().await.unwrap()
    );
    assert_eq!(
        pg.pause_state().await.unwrap(),
        sled.pause_state().await.unwrap()
    );
    let scopes: Vec<MemoryScope> =
        serde_json::from_value(manifest["memoryScopes"].clone()).unwrap();
    let mut memories = 0;
    for scope in &scopes {
        let want = sled.list_memories(scope, true).await.unwrap();
        memories += want.len();
        assert_eq!(
            pg.list_memories(scope, true).await.unwrap(),
            want,
            "{scope}"
        );
        assert_eq!(
            pg.list_memories(scope, false).await.unwrap(),
            sled.list_memories(scope, false).await.unwrap(),
            "{scope} without the archived"
        );
    }
    assert_eq!(memories, 7);
    let mut messages = 0;
    for conversation in manifest["conversations"].as_array().unwrap() {
        let id = conversation.as_str().unwrap();
        let want = sled.list_messages(id).await.unwrap();
        messages += want.len();
        assert_eq!(
            pg.list_messages(id).await.unwrap(),
            want,
            "conversation {id}"
        );
    }
    assert_eq!(messages, 9);
    for key in manifest["idempotencyKeys"].as_array().unwrap() {
        let key = key.as_str().unwrap();
        let want = sled.get_key(key).await.unwrap();
        assert!(want.is_some(), "{key}");
        assert_eq!(pg.get_key(key).await.unwrap(), want, "key {key}");
    }
    for day in manifest["usageDays"].as_array().unwrap() {
        let day: NaiveDate = day.as_str().unwrap().parse().unwrap();
        let calls = sled.calls(day).await.unwrap();
        assert!(!calls.is_empty());
        assert_eq!(pg.calls(day).await.unwrap(), calls, "calls of {day}");
        assert_eq!(
            pg.day_usage(day).await.unwrap(),
            sled.day_usage(day).await.unwrap(),
            "totals of {day}"
        );
    }
    // What no port lists (the keys of memories and messages) compares in
    // the snapshots, with everything else once more.
    assert_eq!(snapshot(pg).await, snapshot(sled).await, "snapshots");
}

#[test]
fn the_fixture_is_copied_exactly_and_a_second_copy_is_refused() {
    let Some(url) = database() else {
        return;
    };
    let dir = fixture_copy();
    let data = dir.path().join("data");
    let from = format!("sled:{}", data.display());
    let scratch = ScratchSchema::new(&url);
    let schema = scratch.config().schema.clone();

    let out = migrate(&from, &url, &schema, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    let mut counts = std::collections::BTreeMap::new();
    for kind in report["kinds"].as_array().unwrap() {
        let name = kind["kind"].as_str().unwrap().to_owned();
        assert_eq!(kind["source"], kind["copied"], "{name}");
        assert_eq!(kind["source"], kind["target"], "{name}");
        assert_eq!(kind["before"], 0, "{name}");
        counts.insert(name, kind["source"].as_u64().unwrap());
    }
    let want: std::collections::BTreeMap<String, u64> = [
        ("jobs", 14),
        ("schedules", 2),
        ("pauses", 1),
        ("memories", 7),
        ("memoryKeys", 4),
        ("messages", 9),
        ("messageKeys", 5),
        ("steps", 4),
        ("idempotencyKeys", 3),
        ("usageCalls", 7),
        ("usageTotals", 8),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_owned(), n))
    .collect();
    assert_eq!(counts, want);

    let manifest = manifest();
    let rt = runtime();
    let before = rt.block_on(async {
        let pg = PostgresStore::connect(scratch.config().clone().as_node(false))
            .await
            .unwrap();
        let sled = SledStore::open(SledConfig::new(&data)).unwrap();
        assert_same_records(&sled, &pg, &manifest).await;
        snapshot(&pg).await
    });

    // Again, into the schema that now holds it all: refused, naming it,
    // and the password of the URL is never shown.
    let secret_url = with_password(&url, "not-shown-anywhere");
    let again = migrate(&from, secret_url.as_deref().unwrap_or(&url), &schema, &[]);
    assert!(!again.status.success());
    let said = stderr(&again);
    assert!(said.contains("is not empty"), "{said}");
    assert!(said.contains(&schema), "{said}");
    assert!(said.contains("14 jobs"), "{said}");
    assert!(said.contains("--force"), "{said}");
    assert!(!said.contains("not-shown-anywhere"), "{said}");
    assert!(!stdout(&again).contains("not-shown-anywhere"));

    // With --force: every record is there already, so the first is refused.
    let forced = migrate(&from, &url, &schema, &["--force"]);
    assert!(!forced.status.success());
    let said = stderr(&forced);
    assert!(said.contains("already stored in the target"), "{said}");
    assert!(said.contains("nothing was copied"), "{said}");

    let after = rt.block_on(async {
        let pg = PostgresStore::connect(scratch.config().clone().as_node(false))
            .await
            .unwrap();
        snapshot(&pg).await
    });
    assert_eq!(after, before, "a refused copy changed the target");
}

#[test]
fn what_cannot_be_copied_is_refused() {
    // None of these reach the database: this one is never contacted.
    let url = "postgres://nobody@127.0.0.1:1/none";
    let dir = fixture_copy();
    let data = dir.path().join("data");

    let bare = migrate(&data.display().to_string(), url, "troupe", &[]);
    assert!(!bare.status.success());
    assert!(
        stderr(&bare).contains(&format!("--from sled:{}", data.display())),
        "{}",
        stderr(&bare)
    );

    let unknown = migrate("mysql://db/x", url, "troupe", &[]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("unknown kind of store \"mysql\""),
        "{}",
        stderr(&unknown)
    );

    let missing = dir.path().join("missing");
    let out = migrate(&format!("sled:{}", missing.display()), url, "troupe", &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("there is no directory"),
        "{}",
        stderr(&out)
    );
    assert!(!missing.exists(), "a missing source was created");

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = migrate(&format!("sled:{}", empty.display()), url, "troupe", &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("holds no sled store"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);

    // A directory a daemon (here: this process) holds.
    let held = SledStore::open(SledConfig::new(&data)).unwrap();
    let out = migrate(&format!("sled:{}", data.display()), url, "troupe", &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is already in use by another process"),
        "{}",
        stderr(&out)
    );
    drop(held);
}

/// A store of every kind, with more records of some kinds than one chunk
/// (or one fetch) holds, jobs in every status, and a schedule and pauses
/// that the target holds too.
fn large_snapshot() -> Snapshot {
    let now = Utc::now();
    let mut snap = Snapshot::default();
    for i in 0..1001u32 {
        let mut job = Job::new(
            format!("w{}", i % 3),
            json!({ "i": i }),
            JobCtx::default(),
            &EnqueueOptions::default(),
            now,
        )
        .unwrap();
        job.status = JobStatus::ALL[i as usize % JobStatus::ALL.len()];
        job.attempt = i % 4;
        if job.status == JobStatus::Completed {
            job.result = Some(json!({ "done": i }));
        }
        snap.jobs.push(job);
    }
    let task = snap.jobs[0].id;
    let mut schedule = Schedule::new(
        "nightly",
        "w0",
        json!({}),
        ScheduleSpec::cron("0 3 * * *").unwrap(),
        now,
    )
    .unwrap();
    schedule.last_fired_at = Some(now - Duration::days(1));
    snap.schedules.push(schedule);
    snap.pauses = vec![PauseTarget::All, PauseTarget::Worker("w1".into())];
    for i in 0..3u8 {
        let id = uuid::Uuid::now_v7();
        snap.memories.push(Memory {
            id,
            agent_id: "sarah".into(),
            user_id: (i > 0).then(|| "ana".into()),
            kind: "fact".into(),
            content: format!("memory {i}"),
            importance: 5,
            created_at: now,
            last_accessed_at: now,
            source: Some(task),
            archived: i == 1,
            archived_into: (i == 1).then_some(id),
        });
        snap.memory_keys.push(MemoryKey {
            key: format!("remember:{i}"),
            memory_id: id,
        });
        let message = ChatMessage {
            id: uuid::Uuid::now_v7(),
            conversation_id: format!("c{i}"),
            role: Role::User,
            author: "ana".into(),
            content: format!("hello {i}"),
            created_at: now,
        };
        snap.message_keys.push(MessageKey {
            key: format!("append:{i}"),
            conversation_id: message.conversation_id.clone(),
            message_id: message.id,
        });
        snap.messages.push(message);
    }
    for i in 0..501u32 {
        snap.steps.push(StepRecord {
            job_id: task,
            step_index: i,
            json: format!("{{\"step\": {i}, \"text\": \"kept as written\"}}"),
        });
    }
    for i in 0..1001 {
        let key = if i % 2 == 0 {
            format!("create_task:tool:{task}:{i}:call")
        } else {
            format!("plain:{i}")
        };
        snap.idempotency_keys.push(ClaimedKey {
            key,
            value: json!({ "jobId": i }),
        });
    }
    let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    let start = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap());
    let mut totals = UsageTotals::default();
    for i in 0..600u32 {
        let call = UsageRecord {
            id: uuid::Uuid::now_v7(),
            at: start + Duration::milliseconds(i64::from(i / 2)),
            provider: "openai".into(),
            model: "gpt".into(),
            agent: Some("sarah".into()),
            job: Some(task),
            input_tokens: u64::from(i),
            output_tokens: 1,
            cached_input_tokens: 0,
            latency_ms: 3,
            cost_nanos: 7,
            priced: true,
        };
        totals.add(&call);
        snap.usage_calls.push(call);
    }
    snap.usage_totals = vec![
        DayTotals {
            day,
            scope: UsageScope::Agent("sarah".into()),
            totals,
        },
        DayTotals {
            day,
            scope: UsageScope::Provider("openai".into()),
            totals,
        },
    ];
    snap.sort();
    snap
}

/// Hands a whole snapshot over, then fails as a corrupt record would.
struct FailsAtTheEnd(Snapshot);

#[async_trait]
impl SnapshotExport for FailsAtTheEnd {
    async fn export(&self, sink: &mut dyn SnapshotSink) -> Result<SnapshotCounts, StoreError> {
        self.0.export(sink).await?;
        Err(StoreError::CorruptRecord {
            what: "job",
            key: "the last".into(),
            reason: "made up by the test".into(),
        })
    }
}

#[test]
fn a_large_store_goes_in_and_out_whole_or_not_at_all() {
    let Some(url) = database() else {
        return;
    };
    let scratch = ScratchSchema::new(&url);
    let source = large_snapshot();
    runtime().block_on(async {
        let pg = PostgresStore::connect(scratch.config().clone().as_node(false))
            .await
            .unwrap();
        // What a node that started once leaves: its config's schedule, and
        // a pause. Neither makes the target "not empty".
        let mut theirs = source.schedules[0].clone();
        theirs.last_fired_at = None;
        pg.put_schedule(theirs.clone()).await.unwrap();
        pg.set_paused(PauseTarget::Worker("w1".into()), true)
            .await
            .unwrap();

        let failed = pg
            .import(&FailsAtTheEnd(source.clone()), ImportOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(failed, StoreError::CorruptRecord { .. }),
            "{failed}"
        );
        let untouched = snapshot(&pg).await;
        assert!(
            untouched.counts().data().is_empty(),
            "{:?}",
            untouched.counts()
        );
        assert_eq!(untouched.schedules, vec![theirs]);

        let report = pg.import(&source, ImportOptions::default()).await.unwrap();
        assert_eq!(report.source, source.counts());
        assert_eq!(report.copied, source.counts());
        assert_eq!(report.before.get(SnapshotKind::Schedules), 1);
        assert_eq!(report.before.get(SnapshotKind::Pauses), 1);
        let mut after = SnapshotCounts::default();
        pg.export(&mut after).await.unwrap();
        let checks = report.verify(&after);
        assert!(checks.iter().all(|c| c.ok), "{checks:?}");
        // The source's schedule replaced the target's; the pauses merged.
        assert_eq!(snapshot(&pg).await, source);
        assert_eq!(pg.load_steps(source.jobs[0].id).await.unwrap().len(), 501);

        // A second time, forced: the first job is there already.
        let again = pg
            .import(&source, ImportOptions { force: true })
            .await
            .unwrap_err();
        assert!(
            matches!(again, StoreError::AlreadyStored { what: "job", .. }),
            "{again}"
        );
        assert_eq!(snapshot(&pg).await, source);
    });
}
