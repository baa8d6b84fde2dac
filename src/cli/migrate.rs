//! `troupe migrate`: brings the PostgreSQL schema to this build's version
//! without starting a node, for operators who migrate before they roll out
//! (with `migrate = false` in `[store]`, nodes then refuse an older schema).
//!
//! With `--from sled:DIR` it also moves a store up from one machine: it
//! copies the sled data directory `DIR` (jobs in every status, schedules,
//! pauses, memories, conversations, steps, idempotency keys, usage) into
//! the schema, in one transaction, then reads the schema back and checks
//! the counts per kind (exit 1 if any differs). A schema that already
//! holds data is refused unless `--force`, and even then nothing in it is
//! overwritten (see [`ImportOptions`]). The daemon using `DIR` must be
//! stopped (its lock is taken); `DIR` is read, not changed.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::config::StoreKind;
use crate::postgres::{PostgresConfig, PostgresStore};
use crate::sled::{SledConfig, SledStore};
use crate::store::{
    ImportOptions, ImportReport, KindCheck, SnapshotCounts, SnapshotExport, SnapshotImport,
    StoreError,
};

use super::{output, CliError, Global};

/// Where to migrate, and what to copy there.
#[derive(Debug, Args)]
pub(super) struct MigrateArgs {
    /// The database (default: `url` in `[store]`, or `$TROUPE_DATABASE_URL`).
    /// Read from the environment or the config only when absent here.
    #[arg(long)]
    to: Option<String>,
    /// The schema (default: `schema` in `[store]`, or `troupe`).
    #[arg(long)]
    schema: Option<String>,
    /// Copy this store into the schema: `sled:DIR`, the data directory of
    /// a sled store whose daemon is stopped. Checks the counts after.
    #[arg(long, value_name = "sled:DIR")]
    from: Option<String>,
    /// With --from: copy into a schema that already holds data. A record
    /// whose id is there already is refused, and then nothing is copied.
    #[arg(long, requires = "from")]
    force: bool,
}

pub(super) fn migrate(global: &Global, args: MigrateArgs) -> Result<(), CliError> {
    let from = args.from.as_deref().map(sled_dir).transpose()?;
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
    let mut config = crate::runtime::postgres_config(&section)?;
    if let Some((text, dir)) = from {
        // Migrating is what this command is for, whatever `migrate` says.
        config.migrate = true;
        return copy(global, &text, dir, config, args.force);
    }
    let report = on_a_thread(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(runtime.block_on(PostgresStore::migrate(&config))?)
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

/// Runs `work` on a thread of its own (the PostgreSQL client needs a
/// runtime, which must not be started inside another).
fn on_a_thread<T: Send>(work: impl FnOnce() -> Result<T, CliError> + Send) -> Result<T, CliError> {
    std::thread::scope(|scope| {
        scope
            .spawn(work)
            .join()
            .map_err(|_| CliError::Usage("the migration thread panicked".into()))?
    })
}

/// The directory `--from` names: `sled:DIR`, an existing sled store.
/// Nothing else is accepted, a bare directory included, so a later kind of
/// source cannot be mistaken for a path.
fn sled_dir(from: &str) -> Result<(String, PathBuf), CliError> {
    let usage = |why: String| CliError::Usage(format!("--from {from:?}: {why}"));
    let Some((scheme, rest)) = from.split_once(':') else {
        return Err(usage(format!(
            "say what kind of store it is: --from sled:{from} for a sled data directory"
        )));
    };
    if scheme != "sled" {
        return Err(usage(format!(
            "unknown kind of store {scheme:?}: only sled:DIR (a sled data directory) can be copied"
        )));
    }
    if rest.is_empty() {
        return Err(usage("no directory after sled: (write sled:DIR)".into()));
    }
    let dir = PathBuf::from(rest);
    if !dir.is_dir() {
        return Err(usage(format!("there is no directory {}", dir.display())));
    }
    // Opening an empty directory would make a new, empty store in it.
    if !dir.join("db").is_file() {
        return Err(usage(format!(
            "{} holds no sled store (it has no `db` file)",
            dir.display()
        )));
    }
    Ok((from.to_owned(), dir))
}

/// Copies the sled store in `dir` into the schema `config` names, checks
/// the counts and prints them.
fn copy(
    global: &Global,
    from: &str,
    dir: PathBuf,
    config: PostgresConfig,
    force: bool,
) -> Result<(), CliError> {
    let target_name = format!("schema {:?} at {}", config.schema, config.redacted_url());
    let (report, target) = on_a_thread(|| {
        let source = SledStore::open(SledConfig::new(&dir))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let store = PostgresStore::connect(config.clone().as_node(false)).await?;
            let report = store
                .import(&source, ImportOptions { force })
                .await
                .map_err(import_error)?;
            // Counted in the target, not taken from the import's tally.
            let mut target = SnapshotCounts::default();
            store.export(&mut target).await?;
            Ok((report, target))
        })
    })?;
    let checks = report.verify(&target);
    let ok = checks.iter().all(|c| c.ok);
    if global.json {
        output::json(&serde_json::json!({
            "from": from,
            "to": config.redacted_url(),
            "schema": config.schema,
            "force": force,
            "ok": ok,
            "kinds": checks,
        }))?;
    } else {
        print_checks(from, &target_name, &report, &checks)?;
    }
    if ok {
        return Ok(());
    }
    let differ: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| {
            format!(
                "{} (source {}, copied {}, target {})",
                c.kind, c.source, c.copied, c.target
            )
        })
        .collect();
    Err(CliError::Migrate(format!(
        "the copy into {target_name} does not match its source: {}",
        differ.join(", ")
    )))
}

/// An import's refusal, said with what to do about it. The import is one
/// transaction: whatever refused it, nothing was copied.
fn import_error(e: StoreError) -> CliError {
    match e {
        StoreError::NotEmpty { .. } => CliError::Migrate(format!(
            "{e}; nothing was copied. Pass --force to copy into it anyway \
             (a record whose id is there already is refused, and nothing is copied then either)"
        )),
        other => CliError::Migrate(format!("nothing was copied: {other}")),
    }
}

fn print_checks(
    from: &str,
    target: &str,
    report: &ImportReport,
    checks: &[KindCheck],
) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "copied {from} into {target}")?;
    let with_before = checks.iter().any(|c| c.before > 0);
    if with_before {
        writeln!(
            out,
            "{:<18} {:>8} {:>8} {:>8} {:>8}",
            "kind", "source", "before", "copied", "target"
        )?;
    } else {
        writeln!(
            out,
            "{:<18} {:>8} {:>8} {:>8}",
            "kind", "source", "copied", "target"
        )?;
    }
    for c in checks {
        let mark = if c.ok { "" } else { "  DIFFERS" };
        if with_before {
            writeln!(
                out,
                "{:<18} {:>8} {:>8} {:>8} {:>8}{mark}",
                c.kind.as_str(),
                c.source,
                c.before,
                c.copied,
                c.target
            )?;
        } else {
            writeln!(
                out,
                "{:<18} {:>8} {:>8} {:>8}{mark}",
                c.kind.as_str(),
                c.source,
                c.copied,
                c.target
            )?;
        }
    }
    if checks.iter().all(|c| c.ok) {
        writeln!(
            out,
            "every count matches ({} records)",
            report.source.iter().map(|(_, n)| n).sum::<u64>()
        )?;
    }
    Ok(())
}
