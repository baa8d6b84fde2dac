//! [`InMemoryHarness`]: how the store conformance suite gets in-memory
//! stores — a fresh [`InMemoryStore`] per case, a crash being a new handle
//! over the same data with its indexes rebuilt ([`InMemoryStore::reopen`]).

use async_trait::async_trait;

use super::InMemoryStore;
use crate::store::conformance::{Harness, HarnessError};

/// Runs the conformance suite on [`InMemoryStore`]:
/// `troupe::store_conformance!(troupe::in_memory::InMemoryHarness);`.
#[derive(Debug, Clone, Copy, Default)]
pub struct InMemoryHarness;

#[async_trait]
impl Harness for InMemoryHarness {
    type Store = InMemoryStore;
    /// A handle kept only to reach the data again after the crash.
    type Place = InMemoryStore;

    async fn open_fresh(&self) -> Result<(InMemoryStore, InMemoryStore), HarnessError> {
        let store = InMemoryStore::new();
        Ok((store.clone(), store))
    }

    async fn reopen(&self, data: &InMemoryStore) -> Result<InMemoryStore, HarnessError> {
        Ok(data.reopen())
    }

    async fn fail(&self, store: &InMemoryStore, reason: &str) -> Result<(), HarnessError> {
        store.mark_failed(reason);
        Ok(())
    }
}
