//! [`PostgresHarness`]: how the store conformance suite (and the other
//! PostgreSQL tests) get stores — each case in a schema of its own, made
//! for it and dropped after it, so cases run in parallel on one database; a
//! crash being the last handle dropped without a shutdown and the same
//! schema connected again by the same node (a restarted node that kept its
//! id).

use async_trait::async_trait;
use uuid::Uuid;

use super::{PostgresConfig, PostgresStore};
use crate::store::conformance::{Harness, HarnessError};

/// The variable the PostgreSQL tests read the database URL from.
pub const TEST_DATABASE_URL: &str = "TROUPE_TEST_DATABASE_URL";

/// Runs the conformance suite on [`PostgresStore`]; see
/// `tests/conformance_postgres.rs`.
#[derive(Debug, Clone)]
pub struct PostgresHarness {
    url: String,
}

impl PostgresHarness {
    /// A harness on the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresHarness { url: url.into() }
    }

    /// A harness on `$TROUPE_TEST_DATABASE_URL`, or `None` when it is not
    /// set (the caller skips, saying so).
    pub fn from_env() -> Option<Self> {
        std::env::var(TEST_DATABASE_URL)
            .ok()
            .filter(|url| !url.trim().is_empty())
            .map(PostgresHarness::new)
    }
}

/// A schema made for one test and dropped (with everything in it) when
/// this is dropped. Its config names the schema and pins a node id, so
/// "reopen" is the same node restarted.
#[derive(Debug)]
pub struct ScratchSchema {
    config: PostgresConfig,
}

impl ScratchSchema {
    /// A new, unused schema name on `url` (created by the first connect).
    pub fn new(url: &str) -> Self {
        let mut config = PostgresConfig::new(url).schema(format!("t_{}", Uuid::now_v7().simple()));
        config.node_id = Some(Uuid::now_v7());
        ScratchSchema { config }
    }

    /// The config of a store on this schema.
    pub fn config(&self) -> &PostgresConfig {
        &self.config
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        let config = self.config.clone();
        // On a thread of its own: a drop may run inside a runtime, which
        // must not block on another.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let client = super::cluster::connect_one(&config).await.ok()?;
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", config.schema))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop test schema {}", self.config.schema);
        }
    }
}

#[async_trait]
impl Harness for PostgresHarness {
    type Store = PostgresStore;
    type Place = ScratchSchema;

    async fn open_fresh(&self) -> Result<(PostgresStore, ScratchSchema), HarnessError> {
        let place = ScratchSchema::new(&self.url);
        let store = PostgresStore::connect(place.config().clone()).await?;
        Ok((store, place))
    }

    async fn reopen(&self, place: &ScratchSchema) -> Result<PostgresStore, HarnessError> {
        Ok(PostgresStore::connect(place.config().clone()).await?)
    }

    async fn fail(&self, store: &PostgresStore, reason: &str) -> Result<(), HarnessError> {
        store.mark_failed(reason);
        Ok(())
    }
}
