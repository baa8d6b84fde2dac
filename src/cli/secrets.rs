//! `troupe secrets`: provider keys stored encrypted in the data directory.
//!
//! `set` reads the key from stdin (never from the command line, where it
//! would land in shell history and `ps`); `list` shows names and expiry
//! dates, never values, and needs no master key; `delete` removes one.
//! The file is `<data-dir>/secrets.json`, outside sled, so these commands
//! work while a daemon holds the store.

use std::io::{BufRead, IsTerminal, Read, Write};

use chrono::NaiveDate;
use clap::{Args, Subcommand};
use zeroize::Zeroizing;

use crate::provider::ApiKey;
use crate::secrets::{MasterKey, SecretError, SecretStore, MASTER_KEY_ENV};

use super::output;
use super::{CliError, Global};

/// `troupe secrets`.
#[derive(Debug, Args)]
pub(super) struct SecretsArgs {
    #[command(subcommand)]
    command: SecretsCommand,
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Store PROVIDER's API key, read from stdin, encrypted with the master
    /// key (TROUPE_MASTER_KEY: 32 bytes as 64 hex digits or base64; or
    /// TROUPE_MASTER_KEY_FILE; or ~/.config/troupe/master.key, created if
    /// no key is configured).
    Set {
        /// Provider name, as in `[[providers]] name`.
        provider: String,
        /// First day (UTC) the key is refused on, YYYY-MM-DD.
        #[arg(long, value_parser = parse_date)]
        expires: Option<NaiveDate>,
    },
    /// List stored keys: provider names and expiry dates, never values.
    List,
    /// Delete PROVIDER's stored key.
    Delete {
        /// Provider name.
        provider: String,
    },
}

fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("`{text}` is not a date; use YYYY-MM-DD"))
}

fn secret_err(e: SecretError) -> CliError {
    CliError::Usage(e.to_string())
}

pub(super) fn run(global: &Global, args: SecretsArgs) -> Result<(), CliError> {
    let store = SecretStore::new(&global.data_dir);
    match args.command {
        SecretsCommand::Set { provider, expires } => set(global, &store, &provider, expires),
        SecretsCommand::List => list(global, &store),
        SecretsCommand::Delete { provider } => delete(global, &store, &provider),
    }
}

fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

fn read_key(provider: &str) -> Result<ApiKey, CliError> {
    let stdin = std::io::stdin();
    let mut text = Zeroizing::new(String::new());
    if stdin.is_terminal() {
        eprint!("API key for provider `{provider}` (then Enter): ");
        std::io::stderr().flush()?;
        stdin.lock().read_line(&mut text)?;
    } else {
        stdin.lock().read_to_string(&mut text)?;
    }
    let key = text.trim();
    if key.is_empty() {
        return Err(CliError::Usage(format!(
            "no key on stdin for provider `{provider}`; pipe it in, e.g. `troupe secrets set {provider} < key.txt`"
        )));
    }
    Ok(ApiKey::new(key))
}

fn master_key() -> Result<MasterKey, CliError> {
    let env_key = std::env::var(MASTER_KEY_ENV).is_ok_and(|v| !v.trim().is_empty());
    if !env_key {
        // No key in the environment and no key file yet: make the file.
        if let Some(path) = MasterKey::file_for_new_key().filter(|p| !p.exists()) {
            let key = MasterKey::generate_file(&path).map_err(secret_err)?;
            eprintln!(
                "created master key file {} (mode 600); keep it safe: without it the stored keys cannot be read",
                path.display()
            );
            return Ok(key);
        }
    }
    MasterKey::from_env()
        .map_err(secret_err)?
        .ok_or_else(|| secret_err(SecretError::NoMasterKey { provider: None }))
}

fn set(
    global: &Global,
    store: &SecretStore,
    provider: &str,
    expires: Option<NaiveDate>,
) -> Result<(), CliError> {
    if let Some(date) = expires {
        if date <= today() {
            return Err(CliError::Usage(format!(
                "--expires {date} is not in the future (UTC); the key would be refused at once"
            )));
        }
    }
    let master = master_key()?;
    let key = read_key(provider)?;
    store
        .set(&master, provider, &key, expires)
        .map_err(secret_err)?;
    if global.json {
        output::json(
            &serde_json::json!({ "provider": provider, "stored": true, "expires": expires }),
        )
    } else {
        eprintln!(
            "stored the key for provider `{provider}` in {}",
            store.path().display()
        );
        Ok(())
    }
}

fn list(global: &Global, store: &SecretStore) -> Result<(), CliError> {
    let infos = store.list(today()).map_err(secret_err)?;
    if global.json {
        return output::json(&infos);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<24} {:<12} {:<8} updated",
        "provider", "expires", "status"
    )?;
    for i in &infos {
        writeln!(
            out,
            "{:<24} {:<12} {:<8} {}",
            i.provider,
            i.expires
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            if i.expired { "EXPIRED" } else { "ok" },
            i.updated_at
        )?;
    }
    Ok(())
}

fn delete(global: &Global, store: &SecretStore, provider: &str) -> Result<(), CliError> {
    if !store.delete(provider).map_err(secret_err)? {
        return Err(CliError::Usage(format!(
            "no stored key for provider `{provider}`"
        )));
    }
    if global.json {
        output::json(&serde_json::json!({ "provider": provider, "deleted": true }))
    } else {
        eprintln!("deleted the stored key for provider `{provider}`");
        Ok(())
    }
}
