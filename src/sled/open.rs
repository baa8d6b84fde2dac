//! Opening a [`SledStore`]: the data directory and its permissions, sled
//! itself, the job index, pauses and schedules rebuilt from the records,
//! and the committer.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::group_commit::{CommitSettings, GroupCommit};
use super::index::Index;
use super::power_sync::PowerSync;
use super::{files, keys, usage, Inner, Release, SledConfig, SledStore};
use crate::job::schedule::Schedule;
use crate::job::Job;
use crate::store::{Durability, StoreError};

/// [`StoreError::Open`] for `dir`.
fn open_error(dir: &Path, source: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Open {
        dir: dir.to_path_buf(),
        source: Box::new(source),
    }
}

impl SledStore {
    /// Opens (or creates) the store in `config.dir` and rebuilds the indexes
    /// from the records. Fails with [`StoreError::Locked`] when another
    /// process holds the directory, and with [`StoreError::CorruptJob`]
    /// naming the job when a record cannot be decoded (unless
    /// `quarantine_corrupt`). A new directory is made owner-only (0700,
    /// sled's files 0600); an existing one open to other users is warned
    /// about (see ARCHITECTURE.md, "Store layout").
    ///
    /// Blocking (file I/O and a full scan); call it before starting actors or
    /// from `spawn_blocking`.
    pub fn open(config: SledConfig) -> Result<SledStore, StoreError> {
        let dir = &config.dir;
        files::prepare_dir(dir).map_err(|e| open_error(dir, e))?;
        let db = open_db(&config)?;
        files::restrict_sled_files(dir).map_err(|e| open_error(dir, e))?;
        let open_err = |e: sled::Error| open_error(dir, e);
        let jobs = db.open_tree(keys::JOBS).map_err(open_err)?;
        let pause = db.open_tree(keys::PAUSE).map_err(open_err)?;
        let schedules_tree = db.open_tree(keys::SCHEDULES).map_err(open_err)?;
        let (mut index, quarantined) = load_jobs(&db, &jobs, &config)?;
        load_pauses(dir, &pause, &mut index)?;
        let schedules = load_schedules(dir, &schedules_tree)?;

        let usage = Arc::new(usage::UsageBuffer::open(&db).map_err(open_err)?);
        let buffered = Arc::clone(&usage);
        let commit = GroupCommit::start(CommitSettings {
            db: db.clone(),
            power_sync: power_sync(&config)?,
            window: config.commit_window,
            flush_timeout: config.flush_timeout,
            before_flush: Box::new(move || buffered.apply_logged()),
        })
        .map_err(|e| open_error(dir, e))?;
        let fate = commit.fate();
        let store = SledStore {
            inner: Arc::new(Inner {
                dir: dir.clone(),
                commit,
                usage,
                jobs,
                pause,
                schedules_tree,
                index: Mutex::new(index),
                schedules: Mutex::new(schedules),
                _release: Release {
                    db: Some(db.clone()),
                    db_file: dir.join("db"),
                    fate,
                },
                db,
            }),
        };
        if quarantined > 0 {
            store.inner.db.flush().map_err(open_err)?;
        }
        Ok(store)
    }
}

/// sled on `config.dir`; [`StoreError::Locked`] when another process has it.
fn open_db(config: &SledConfig) -> Result<sled::Db, StoreError> {
    let mut sled_config = sled::Config::new().path(&config.dir);
    if let Some(bytes) = config.cache_capacity {
        if bytes < super::MIN_CACHE_CAPACITY {
            let reason = format!(
                "cache capacity {bytes} bytes is below the minimum of {} bytes (1 MiB)",
                super::MIN_CACHE_CAPACITY
            );
            return Err(StoreError::Open {
                dir: config.dir.clone(),
                source: reason.into(),
            });
        }
        sled_config = sled_config.cache_capacity(bytes);
    }
    sled_config.open().map_err(|e| match e {
        sled::Error::Io(ref io) if io.to_string().contains("could not acquire lock") => {
            StoreError::Locked {
                dir: config.dir.clone(),
            }
        }
        other => open_error(&config.dir, other),
    })
}

/// The job index rebuilt from every record, and how many undecodable
/// records were moved to the `quarantine` tree (only with
/// `quarantine_corrupt`; otherwise the first one fails the open).
fn load_jobs(
    db: &sled::Db,
    jobs: &sled::Tree,
    config: &SledConfig,
) -> Result<(Index, usize), StoreError> {
    let open_err = |e: sled::Error| open_error(&config.dir, e);
    let mut index = Index::default();
    let mut quarantined = 0usize;
    for entry in jobs.iter() {
        let (key, value) = entry.map_err(open_err)?;
        match decode_record(&key, &value) {
            Ok(job) => index.add(&job),
            Err(e) if config.quarantine_corrupt => {
                tracing::error!(error = %e, "moving corrupt job record to quarantine");
                let quarantine = db.open_tree(keys::QUARANTINE).map_err(open_err)?;
                quarantine.insert(&key, value).map_err(open_err)?;
                jobs.remove(&key).map_err(open_err)?;
                quarantined += 1;
            }
            Err(e) => return Err(e),
        }
    }
    Ok((index, quarantined))
}

/// One job record, checked to be stored under its own id.
pub(super) fn decode_record(key: &[u8], value: &[u8]) -> Result<Job, StoreError> {
    let id = keys::decode_job_key(key).map_err(|hex| StoreError::CorruptJob {
        id: hex,
        reason: "key is not a 16-byte job id".into(),
    })?;
    let job = keys::decode_job(&id.to_string(), value)?;
    if job.id != id {
        return Err(StoreError::CorruptJob {
            id: id.to_string(),
            reason: format!("record holds id {}", job.id),
        });
    }
    Ok(job)
}

/// The pause flags, into the index.
fn load_pauses(dir: &Path, pause: &sled::Tree, index: &mut Index) -> Result<(), StoreError> {
    for entry in pause.iter() {
        let (key, _) = entry.map_err(|e| open_error(dir, e))?;
        match keys::decode_pause_key(&key)? {
            None => index.paused.all = true,
            Some(worker) => {
                index.paused.workers.insert(worker);
            }
        }
    }
    Ok(())
}

/// Every stored schedule, by id.
fn load_schedules(dir: &Path, tree: &sled::Tree) -> Result<BTreeMap<String, Schedule>, StoreError> {
    let mut schedules = BTreeMap::new();
    for entry in tree.iter() {
        let (key, value) = entry.map_err(|e| open_error(dir, e))?;
        let schedule = keys::decode_schedule(&key, &value)?;
        schedules.insert(schedule.id.clone(), schedule);
    }
    Ok(schedules)
}

/// What to `fdatasync` after each flush under [`Durability::PowerLoss`]
/// (see `power_sync.rs`).
fn power_sync(config: &SledConfig) -> Result<Option<PowerSync>, StoreError> {
    match config.durability {
        Durability::Process => Ok(None),
        Durability::PowerLoss => PowerSync::open(&config.dir)
            .map(Some)
            .map_err(|e| open_error(&config.dir, e)),
    }
}
