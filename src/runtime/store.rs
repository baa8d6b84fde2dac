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

/// The sled settings of `section`: its data directory, durability, commit
/// window and cache (a `cacheMib` the config check let through fits in
/// bytes, and its `commitWindow` parses; a section built in code that
/// somehow breaks either is left at the defaults rather than wrapped).
pub(crate) fn sled_config(section: &StoreSection) -> SledConfig {
    let mut config =
        SledConfig::new(&section.data_dir).durability(section.durability.unwrap_or_default());
    if let Some(window) = section
        .commit_window
        .as_deref()
        .and_then(|text| parse_duration(text).ok())
    {
        config.commit_window = window;
    }
    match section
        .cache_mib
        .and_then(|mib| mib.checked_mul(1024 * 1024))
    {
        Some(bytes) => config.cache_capacity(bytes),
        None => config,
    }
}

/// Opens the store `section` names, blocking the calling thread (the CLI,
/// before its runtime starts).
pub(crate) fn open_store(section: &StoreSection) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match section.kind {
        StoreKind::Sled => Arc::new(SledStore::open(sled_config(section))?),
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
        StoreKind::Sled => Arc::new(SledStore::open(sled_config(section))?),
        StoreKind::Postgres => {
            let config = postgres_config(section)?.as_node(node);
            Arc::new(PostgresStore::connect(config).await?)
        }
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{ConfigError, TroupeConfig};

    fn parse_config(text: &str) -> Result<TroupeConfig, ConfigError> {
        TroupeConfig::parse(text, Path::new("troupe.toml"))
    }

    #[test]
    fn sled_durability_defaults_to_power_loss_and_can_be_lowered() {
        use crate::store::Durability;
        let default = parse_config("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(default.store.durability, None);
        assert_eq!(
            sled_config(&default.store).durability,
            Durability::PowerLoss
        );
        for (text, level) in [
            ("power-loss", Durability::PowerLoss),
            ("process", Durability::Process),
        ] {
            let config = parse_config(&format!("[store]\ndurability = \"{text}\"\n"))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(sled_config(&config.store).durability, level);
        }
        let err = parse_config("[store]\ndurability = \"fsync\"\n")
            .map(|_| ())
            .expect_err("an unknown level")
            .to_string();
        assert!(
            err.contains("durability") && err.contains("power-loss"),
            "{err}"
        );
        let err = parse_config(
            "[store]\ntype = \"postgres\"\nurl = \"postgres://db/app\"\ndurability = \"process\"\n",
        )
        .map(|_| ())
        .expect_err("durability with postgres")
        .to_string();
        assert!(
            err.contains("`store.durability`: applies only with type = \"sled\""),
            "{err}"
        );
    }

    /// Each config text is refused with an error containing its message.
    fn assert_refused(cases: &[(&str, &str)]) {
        for (text, expected) in cases {
            let err = parse_config(text).map(|_| ()).expect_err(text).to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn sled_commit_window_defaults_to_2_ms_and_is_checked() {
        use crate::sled::DEFAULT_COMMIT_WINDOW;
        let default = parse_config("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            sled_config(&default.store).commit_window,
            DEFAULT_COMMIT_WINDOW
        );
        assert_eq!(DEFAULT_COMMIT_WINDOW, Duration::from_millis(2));
        for (text, expected) in [
            (
                "[store]\ncommitWindow = \"5ms\"\n",
                Duration::from_millis(5),
            ),
            ("[store]\ncommitWindow = \"0ms\"\n", Duration::ZERO),
            ("[store]\ncommitWindow = \"1s\"\n", Duration::from_secs(1)),
        ] {
            let config = parse_config(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(sled_config(&config.store).commit_window, expected, "{text}");
        }
        let postgres =
            "[store]\ntype = \"postgres\"\nurl = \"postgres://db/app\"\ncommitWindow = \"2ms\"\n";
        assert_refused(&[
            (
                "[store]\ncommitWindow = \"2s\"\n",
                "`store.commitWindow`: must be at most 1s",
            ),
            (
                "[store]\ncommitWindow = \"2\"\n",
                "`store.commitWindow`: `2` has no unit",
            ),
            (
                "[store]\ncommitWindow = \"2us\"\n",
                "`store.commitWindow`: unknown unit `us`",
            ),
            ("[store]\ncommitWindow = 2\n", "commitWindow"),
            (
                postgres,
                "`store.commitWindow`: applies only with type = \"sled\"",
            ),
        ]);
    }

    #[test]
    fn sled_cache_defaults_to_32_mib_and_is_checked() {
        use crate::sled::DEFAULT_CACHE_CAPACITY;
        let default = parse_config("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            sled_config(&default.store).cache_capacity,
            Some(DEFAULT_CACHE_CAPACITY)
        );
        assert_eq!(DEFAULT_CACHE_CAPACITY, 32 * 1024 * 1024);
        let config = parse_config("[store]\ncacheMib = 256\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            sled_config(&config.store).cache_capacity,
            Some(256 * 1024 * 1024)
        );
        let postgres = "[store]\ntype = \"postgres\"\nurl = \"postgres://db/app\"\ncacheMib = 64\n";
        assert_refused(&[
            (
                "[store]\ncacheMib = 0\n",
                "`store.cacheMib`: must be at least 1",
            ),
            (
                "[store]\ncacheMib = 1048577\n",
                "`store.cacheMib`: must be at most 1048576",
            ),
            ("[store]\ncacheMib = -3\n", "cacheMib"),
            ("[store]\ncacheMib = \"big\"\n", "cacheMib"),
            (
                postgres,
                "`store.cacheMib`: applies only with type = \"sled\"",
            ),
        ]);
    }

    #[test]
    fn a_sled_cache_below_the_minimum_is_refused_at_open_not_a_panic() {
        use crate::sled::{SledConfig, SledStore, MIN_CACHE_CAPACITY};
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // sled itself asserts at least 256 bytes: 100 would panic inside it.
        for bytes in [0, 100, MIN_CACHE_CAPACITY - 1] {
            let err = SledStore::open(SledConfig::new(dir.path()).cache_capacity(bytes))
                .map(|_| ())
                .expect_err("a cache below the minimum")
                .to_string();
            assert!(
                err.contains(&format!(
                    "cache capacity {bytes} bytes is below the minimum"
                )),
                "{err}"
            );
        }
        let store = SledStore::open(SledConfig::new(dir.path()).cache_capacity(MIN_CACHE_CAPACITY));
        assert!(store.is_ok(), "the minimum itself opens");
    }
}
