//! Provider credentials at rest.
//!
//! A provider's key comes from, in order: a key set by code
//! (`ProviderConfig::api_key`), the environment variable its config names
//! (`apiKeyEnv`), or the encrypted secrets file in the data directory
//! (`troupe secrets set PROVIDER`).
//!
//! The secrets file, `<data-dir>/secrets.json`, holds one entry per provider
//! name: its ciphertext, nonce and optional expiry date. Values are sealed
//! with XChaCha20-Poly1305 (RustCrypto `chacha20poly1305`) under a 256-bit
//! master key ([`MasterKey`]) that is never stored in the data directory.
//! The provider name and expiry date are bound to each ciphertext as
//! associated data, so an entry cannot be moved to another provider or have
//! its expiry edited without the decryption failing. The file is kept out of
//! sled on purpose: `troupe secrets set` must work while a daemon holds the
//! sled store. Writes are atomic (temp file, fsync, rename, directory fsync)
//! and serialized by a lock file (`secrets.json.lock`).
//!
//! Keys are held as [`ApiKey`]: redacted in `Debug`
//! and logs, zeroed on drop. A key past its expiry date is refused before any
//! call ([`StoredKey::check_expiry`]).

mod file;
mod key;
mod master;

use std::path::PathBuf;

use chrono::NaiveDate;
use serde::Serialize;

pub use file::{SecretStore, SECRETS_FILE};
pub use key::ApiKey;
pub use master::{MasterKey, MASTER_KEY_ENV, MASTER_KEY_FILE_ENV};

/// A stored key, decrypted, with its expiry date.
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// Provider the key is for.
    pub provider: String,
    /// The key (redacted in `Debug`).
    pub key: ApiKey,
    /// First UTC day on which the key is refused, if it expires.
    pub expires: Option<NaiveDate>,
}

impl StoredKey {
    /// Refuses the key from its expiry date on (`today` is a UTC day).
    pub fn check_expiry(&self, today: NaiveDate) -> Result<(), SecretError> {
        check_expiry(&self.provider, self.expires, today)
    }
}

/// Refuses a key for `provider` from its expiry date on.
pub fn check_expiry(
    provider: &str,
    expires: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<(), SecretError> {
    match expires {
        Some(date) if today >= date => Err(SecretError::Expired {
            provider: provider.to_string(),
            expires: date,
        }),
        _ => Ok(()),
    }
}

/// What `troupe secrets list` shows: never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretInfo {
    /// Provider name.
    pub provider: String,
    /// Expiry date, if any.
    pub expires: Option<NaiveDate>,
    /// Whether the key is past its expiry today.
    pub expired: bool,
    /// When the key was stored (RFC 3339).
    pub updated_at: String,
}

/// Something went wrong with stored credentials. Messages name the provider,
/// file or variable involved, never a key.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The master key text is not 32 bytes in hex or base64.
    #[error("{origin} is not a valid master key: {reason}")]
    BadMasterKey {
        /// Where the text came from (`TROUPE_MASTER_KEY`, `key file …`).
        origin: String,
        /// What is wrong, without the text itself.
        reason: String,
    },
    /// A key file others may read.
    #[error("master key file {} is accessible by group or others (mode {mode:03o}); it must be readable only by its owner: run `chmod 600 {}`", path.display(), path.display())]
    KeyFilePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// No master key is configured but one is needed.
    #[error("no master key for stored secrets{}: set TROUPE_MASTER_KEY (32 bytes as 64 hex digits or base64) or TROUPE_MASTER_KEY_FILE", for_provider(provider.as_deref()))]
    NoMasterKey {
        /// The provider whose stored key was needed, if any.
        provider: Option<String>,
    },
    /// Decryption failed: another master key was used to store it, or the
    /// file was edited.
    #[error("cannot decrypt the stored key for provider `{provider}` in {}: wrong master key (using {master}), or the entry was altered", path.display())]
    WrongMasterKey {
        /// The provider.
        provider: String,
        /// The secrets file.
        path: PathBuf,
        /// Where the master key in use came from.
        master: String,
    },
    /// The stored key is past its expiry date.
    #[error("the API key for provider `{provider}` expired on {expires} (UTC); store a new one with `troupe secrets set {provider}`")]
    Expired {
        /// The provider.
        provider: String,
        /// Its expiry date.
        expires: NaiveDate,
    },
    /// A provider has no key anywhere.
    #[error("no API key for provider `{provider}`: set `apiKeyEnv` in its config, or run `troupe secrets set {provider}`")]
    Missing {
        /// The provider.
        provider: String,
    },
    /// The environment variable the config names is not set.
    #[error("provider `{provider}`: environment variable {var} (its `apiKeyEnv`) is not set")]
    EnvMissing {
        /// The provider.
        provider: String,
        /// The variable.
        var: String,
    },
    /// A provider name that cannot be stored.
    #[error("invalid provider name {name:?}: {reason}")]
    BadName {
        /// The name given.
        name: String,
        /// Why not.
        reason: &'static str,
    },
    /// The key given to store is unusable.
    #[error("the key for provider `{provider}` is unusable: {reason}")]
    BadKey {
        /// The provider.
        provider: String,
        /// Why (never the key).
        reason: &'static str,
    },
    /// The secrets file is not what this version writes.
    #[error("secrets file {} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read or written.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn for_provider(p: Option<&str>) -> String {
    p.map(|p| format!(" (provider `{p}` has a stored key)"))
        .unwrap_or_default()
}
