//! The data directory is for its owner only: created 0700 with sled's files
//! 0600, also those sled creates long after the open (blob files here); an
//! existing directory open to others is warned about, naming the fix; files
//! left wider by an earlier version are narrowed at open.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde_json::json;
use troupe::job::{EnqueueOptions, Job, JobCtx};
use troupe::sled::{SledConfig, SledStore};
use troupe::store::prelude::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every entry under `dir`, recursively, with its mode.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push((path.clone(), mode(&path)));
        if path.is_dir() {
            out.extend(modes(&path));
        }
    }
    out
}

/// A job whose record is too large for sled's log: sled writes it to a
/// file of its own under `blobs/`, created when the job is stored.
fn large_job() -> Job {
    let args = json!({"pad": "x".repeat(200_000)});
    Job::new(
        "w",
        args,
        JobCtx::default(),
        &EnqueueOptions::default(),
        Utc::now(),
    )
    .unwrap()
}

fn store_some(store: &SledStore) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        store.insert(large_job()).await.unwrap();
        let small = Job::new(
            "w",
            json!({}),
            JobCtx::default(),
            &EnqueueOptions::default(),
            Utc::now(),
        )
        .unwrap();
        store.insert(small).await.unwrap();
    });
}

fn assert_owner_only(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "the data directory");
    let all = modes(dir);
    assert!(
        all.iter()
            .any(|(p, _)| p.parent().is_some_and(|d| d.ends_with("blobs"))),
        "a blob file was written: {all:?}"
    );
    for (path, mode) in all {
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{} is {mode:o}", path.display());
    }
}

#[test]
fn a_new_data_directory_and_every_file_sled_writes_in_it_are_owner_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested").join("data");
    let store = SledStore::open(SledConfig::new(&dir)).unwrap();
    store_some(&store);
    drop(store);
    assert_owner_only(&dir);
    let store = SledStore::open(SledConfig::new(&dir)).unwrap();
    store_some(&store);
    drop(store);
    assert_owner_only(&dir);
}

#[test]
fn files_left_readable_by_others_are_made_owner_only_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = SledStore::open(SledConfig::new(&dir)).unwrap();
    store_some(&store);
    drop(store);
    // As an earlier version left them.
    for (path, _) in modes(&dir) {
        let wide = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wide)).unwrap();
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let store = SledStore::open(SledConfig::new(&dir)).unwrap();
    drop(store);
    assert_owner_only(&dir);
}

/// Log lines written while `f` runs on this thread.
fn logs_of<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = Capture(Arc::clone(&buffer));
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned();
    (out, text)
}

#[test]
fn an_existing_data_directory_open_to_others_is_warned_about_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (store, logs) = logs_of(|| SledStore::open(SledConfig::new(&dir)).unwrap());
    let warning = logs
        .lines()
        .find(|l| l.contains("WARN") && l.contains("other users"))
        .unwrap_or_else(|| panic!("no warning about the directory in:\n{logs}"));
    assert!(warning.contains(&dir.display().to_string()), "{warning}");
    assert!(
        warning.contains(&format!("chmod 700 {}", dir.display())),
        "{warning}"
    );
    assert_eq!(
        mode(&dir),
        0o755,
        "the directory is left as its owner set it"
    );
    store_some(&store);
    drop(store);
    for (path, mode) in modes(&dir) {
        if !path.is_dir() {
            assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
        }
    }

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (_store, logs) = logs_of(|| SledStore::open(SledConfig::new(&dir)).unwrap());
    assert!(
        !logs.contains("other users"),
        "no warning once fixed:\n{logs}"
    );
}
