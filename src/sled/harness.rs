//! [`SledHarness`]: how the store conformance suite gets sled stores —
//! each case in a fresh temporary directory, a crash being the last handle
//! dropped without a shutdown and the directory opened again.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{SledConfig, SledStore};
use crate::store::conformance::{Harness, HarnessError};

/// Runs the conformance suite on [`SledStore`]:
/// `troupe::store_conformance!(troupe::sled::SledHarness::default());`.
#[derive(Debug, Clone, Default)]
pub struct SledHarness {
    /// Applied to each store's [`SledConfig`] (a durability level, a commit
    /// window), so the suite can run under every setting that matters.
    pub configure: Option<fn(SledConfig) -> SledConfig>,
}

/// A temporary data directory, removed when the case ends. Kept out of the
/// `tempfile` crate so the library needs no test-only dependency.
#[derive(Debug)]
pub struct TempDataDir {
    path: PathBuf,
}

impl TempDataDir {
    /// A new, empty directory under the system's temporary directory,
    /// owner-only (0700) as the store makes its own.
    pub fn new() -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!("troupe-store-{}", uuid::Uuid::now_v7()));
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path)?;
        Ok(TempDataDir { path })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDataDir {
    fn drop(&mut self) {
        // Nothing to report to: a leftover directory in the system's
        // temporary directory is harmless.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

impl SledHarness {
    fn config(&self, dir: &Path) -> SledConfig {
        let config = SledConfig::new(dir);
        match self.configure {
            Some(configure) => configure(config),
            None => config,
        }
    }
}

#[async_trait]
impl Harness for SledHarness {
    type Store = SledStore;
    type Place = TempDataDir;

    async fn open_fresh(&self) -> Result<(SledStore, TempDataDir), HarnessError> {
        let dir = TempDataDir::new()?;
        let store = SledStore::open(self.config(dir.path()))?;
        Ok((store, dir))
    }

    async fn reopen(&self, dir: &TempDataDir) -> Result<SledStore, HarnessError> {
        Ok(SledStore::open(self.config(dir.path()))?)
    }

    async fn fail(&self, store: &SledStore, reason: &str) -> Result<(), HarnessError> {
        store.mark_failed(reason);
        Ok(())
    }
}
