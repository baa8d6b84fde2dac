//! `troupe migrate`: brings the PostgreSQL schema to this build's version
//! without starting a node, for operators who migrate before they roll out
//! (with `migrate = false` in `[store]`, nodes then refuse an older schema).

use clap::Args;

use crate::config::StoreKind;
use crate::postgres::PostgresStore;

use super::{output, CliError, Global};

/// Where to migrate.
#[derive(Debug, Args)]
pub(super) struct MigrateArgs {
    /// The database (default: `url` in `[store]`, or `$TROUPE_DATABASE_URL`).
    /// Read from the environment or the config only when absent here.
    #[arg(long)]
    to: Option<String>,
    /// The schema (default: `schema` in `[store]`, or `troupe`).
    #[arg(long)]
    schema: Option<String>,
}

pub(super) fn migrate(global: &Global, args: MigrateArgs) -> Result<(), CliError> {
    let mut section = global.load_config()?.store;
    if args.to.is_some() || section.kind == StoreKind::Sled {
        section.kind = StoreKind::Postgres;
    }
    if let Some(url) = args.to {
        section.url = Some(url);
    }
    if let Some(schema) = args.schema {
        section.schema = Some(schema);
    }
    let config = crate::runtime::postgres_config(&section)?;
    let report = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                Ok::<_, CliError>(runtime.block_on(PostgresStore::migrate(&config))?)
            })
            .join()
            .map_err(|_| CliError::Usage("the migration thread panicked".into()))?
    })?;
    if global.json {
        return output::json(&serde_json::json!({
            "schema": config.schema,
            "from": report.from,
            "to": report.to,
            "applied": report.applied.iter().map(|(v, name)| serde_json::json!({"version": v, "name": name})).collect::<Vec<_>>(),
        }));
    }
    if report.applied.is_empty() {
        println!(
            "schema {} at {}: already at version {}",
            config.schema,
            config.redacted_url(),
            report.to
        );
    } else {
        println!(
            "schema {} at {}: version {} -> {}",
            config.schema,
            config.redacted_url(),
            report.from,
            report.to
        );
        for (version, name) in &report.applied {
            println!("  applied {version}: {name}");
        }
    }
    Ok(())
}
