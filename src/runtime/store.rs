//! The store `[store]` names, opened: sled on the data directory (the
//! embedded default), or PostgreSQL at its URL for several nodes.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{parse_duration, StoreKind, StoreSection};
use crate::postgres::{PostgresConfig, PostgresStore};
use crate::sled::{SledConfig, SledStore};
use crate::store::{Store, StoreError};

/// Where the database URL comes from when `[store]` has no `url`.
pub(crate) const DATABASE_URL_VAR: &str = "TROUPE_DATABASE_URL";

/// The PostgreSQL settings of `section`: its `url` (or
/// `$TROUPE_DATABASE_URL`), schema, pool, lease timing and node id, the
/// defaults of [`PostgresConfig::new`] for what it leaves out.
pub(crate) fn postgres_config(section: &StoreSection) -> Result<PostgresConfig, StoreError> {
    let url = match &section.url {
        Some(url) => url.clone(),
        None => std::env::var(DATABASE_URL_VAR).map_err(|_| StoreError::InvalidInput {
            field: "store.url",
            reason: format!(
                "type = \"postgres\" needs a database: set url in [store] or ${DATABASE_URL_VAR}"
            ),
        })?,
    };
    let mut config = PostgresConfig::new(url);
    if let Some(schema) = &section.schema {
        config.schema = schema.clone();
    }
    if let Some(size) = section.pool_size {
        config.pool_size = size;
    }
    let duration = |field: &'static str, value: &Option<String>, default: Duration| match value {
        None => Ok(default),
        Some(text) => {
            parse_duration(text).map_err(|reason| StoreError::InvalidInput { field, reason })
        }
    };
    config.lease = duration("store.lease", &section.lease, config.lease)?;
    config.heartbeat = duration("store.heartbeat", &section.heartbeat, config.heartbeat)?;
    config.poll = duration("store.poll", &section.poll, config.poll)?;
    config.node_id = section.node_id;
    config.migrate = section.migrate;
    config.validate()?;
    Ok(config)
}

/// Opens the store `section` names, blocking the calling thread (the CLI,
/// before its runtime starts).
pub(crate) fn open_store(section: &StoreSection) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match section.kind {
        StoreKind::Sled => Arc::new(SledStore::open(SledConfig::new(&section.data_dir))?),
        StoreKind::Postgres => Arc::new(PostgresStore::open(postgres_config(section)?)?),
    })
}

/// [`open_store`] from async code: for a runtime (`node`: the builder's
/// default store, `task --wait`), or for a client that only reads and tells
/// (the CLI's other commands), which does not take part in a cluster as a
/// node.
pub(crate) async fn connect_store(
    section: &StoreSection,
    node: bool,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match section.kind {
        StoreKind::Sled => Arc::new(SledStore::open(SledConfig::new(&section.data_dir))?),
        StoreKind::Postgres => {
            let config = postgres_config(section)?.as_node(node);
            Arc::new(PostgresStore::connect(config).await?)
        }
    })
}
