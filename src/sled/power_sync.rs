//! What [`Durability::PowerLoss`](crate::store::Durability::PowerLoss)
//! syncs after each group flush: sled's log (`<dir>/db`), and the blob
//! files sled wrote since the last flush, with the `blobs/` directory so
//! their names survive too.
//!
//! sled 0.34.7 writes a log entry larger than about 128 KiB (a job with
//! huge args or result, a large node page) to a file of its own,
//! `blobs/<lsn>`, with plain writes and no sync of its own, while the log
//! entry that points to it is in `db`: a power cut after an `fdatasync` of
//! `db` alone could keep the pointer and lose the blob. Looking for new
//! blobs costs one `stat` of the directory per flush; the directory is read
//! only when it changed lately.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A directory changed less than this before we last looked may have
/// changed again within the same timestamp tick (file systems keep coarse
/// clocks), so it is read again.
const CLOCK_SLACK: Duration = Duration::from_secs(2);

/// The files to sync, and what was synced of the blobs.
pub(crate) struct PowerSync {
    log: File,
    blobs: PathBuf,
    /// When the last look at `blobs/` began (`None`: never looked).
    looked: Option<SystemTime>,
    /// The directory's modification time then.
    seen: Option<SystemTime>,
    /// Each blob synced, with its length then: a blob sled was still
    /// writing when it was synced has grown since, and is synced again.
    synced: HashMap<OsString, u64>,
}

impl PowerSync {
    /// Makes the directory entries of sled's files durable once, and syncs
    /// any blob an earlier run may have left unsynced (it may have run with
    /// [`Durability::Process`](crate::store::Durability::Process)).
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        File::open(dir)?.sync_all()?;
        let mut sync = PowerSync {
            log: File::open(dir.join("db"))?,
            blobs: dir.join("blobs"),
            looked: None,
            seen: None,
            synced: HashMap::new(),
        };
        sync.sync_blobs()?;
        Ok(sync)
    }

    /// After a flush: the log's data, then new blobs (see the module
    /// documentation).
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.log.sync_data()?;
        self.sync_blobs().map(|_| ())
    }

    /// Syncs the blobs not synced yet at their present length; how many.
    fn sync_blobs(&mut self) -> io::Result<usize> {
        let modified = match std::fs::metadata(&self.blobs) {
            Ok(meta) => meta.modified().ok(),
            // sled makes `blobs/` at open; gone means no blobs to lose.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let settled = match (self.looked, self.seen, modified) {
            (Some(looked), Some(seen), Some(now)) => {
                now == seen && looked.duration_since(now).is_ok_and(|d| d >= CLOCK_SLACK)
            }
            _ => false,
        };
        if settled {
            return Ok(0);
        }
        let looking = SystemTime::now();
        let mut present = HashMap::with_capacity(self.synced.len());
        let mut synced = 0;
        for entry in std::fs::read_dir(&self.blobs)? {
            let entry = entry?;
            // sled removes a blob it no longer needs at any time.
            let len = match entry.metadata() {
                Ok(meta) => meta.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let name = entry.file_name();
            if self.synced.get(&name) != Some(&len) {
                match File::open(entry.path()) {
                    Ok(file) => file.sync_data()?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                synced += 1;
            }
            present.insert(name, len);
        }
        if synced > 0 {
            File::open(&self.blobs)?.sync_all()?;
        }
        self.synced = present;
        self.looked = Some(looking);
        self.seen = modified;
        Ok(synced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(dir: &Path, name: &str, bytes: usize) {
        std::fs::write(dir.join("blobs").join(name), vec![7u8; bytes]).unwrap();
    }

    /// Blobs are synced once at their length, again when they grew, and
    /// not at all while the directory has been still for a while.
    #[test]
    fn syncs_each_blob_once_at_its_length() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), b"log").unwrap();
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        blob(dir.path(), "17", 10);
        blob(dir.path(), "18", 10);
        let mut sync = PowerSync::open(dir.path()).unwrap();
        assert_eq!(sync.synced.len(), 2, "the blobs found at open are synced");
        assert_eq!(sync.sync_blobs().unwrap(), 0, "nothing new");
        blob(dir.path(), "19", 10);
        blob(dir.path(), "18", 20);
        assert_eq!(
            sync.sync_blobs().unwrap(),
            2,
            "the new blob and the grown one"
        );
        std::fs::remove_file(dir.path().join("blobs").join("17")).unwrap();
        assert_eq!(sync.sync_blobs().unwrap(), 0);
        assert_eq!(sync.synced.len(), 2, "a removed blob is forgotten");
        // A directory unchanged since well before the last look is not read.
        let modified = std::fs::metadata(dir.path().join("blobs"))
            .unwrap()
            .modified()
            .unwrap();
        sync.seen = Some(modified);
        sync.looked = Some(modified + CLOCK_SLACK);
        blob(dir.path(), "18", 30);
        assert_eq!(
            sync.sync_blobs().unwrap(),
            0,
            "a still directory is not read (blobs only grow while sled creates them)"
        );
        sync.sync().unwrap();
    }
}
