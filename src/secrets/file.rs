//! [`SecretStore`]: the encrypted secrets file, `<data-dir>/secrets.json`.
//!
//! ```json
//! { "version": 1, "cipher": "xchacha20poly1305",
//!   "secrets": { "openai": { "nonce": "<base64, 24 bytes>",
//!                            "ciphertext": "<base64>",
//!                            "expires": "2026-01-01",
//!                            "updatedAt": "2025-06-01T12:00:00Z" } } }
//! ```

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::NaiveDate;
use fs2::FileExt;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::ApiKey;
use super::{check_expiry, MasterKey, SecretError, SecretInfo, StoredKey};

/// The secrets file's name inside the data directory.
pub const SECRETS_FILE: &str = "secrets.json";
/// How the temporary files written before the rename begin (then the
/// writer's pid).
const TEMP_PREFIX: &str = ".secrets.json.tmp-";
const VERSION: u32 = 1;
const CIPHER: &str = "xchacha20poly1305";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileFormat {
    version: u32,
    cipher: String,
    secrets: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    nonce: String,
    ciphertext: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<NaiveDate>,
    updated_at: String,
}

/// The encrypted secrets of one data directory. Holds no key in memory;
/// each operation reads the file.
#[derive(Debug, Clone)]
pub struct SecretStore {
    path: PathBuf,
}

/// Binds the entry's name and expiry to its ciphertext.
fn aad(provider: &str, expires: Option<NaiveDate>) -> Vec<u8> {
    let expires = expires.map(|d| d.to_string()).unwrap_or_default();
    format!("troupe-secret-v1\0{provider}\0{expires}").into_bytes()
}

fn check_name(name: &str) -> Result<(), SecretError> {
    let bad = |reason| SecretError::BadName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() || name.len() > 128 {
        return Err(bad("must be 1 to 128 characters"));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("must not contain spaces or control characters"));
    }
    Ok(())
}

impl SecretStore {
    /// The secrets of `data_dir` (the file need not exist yet).
    pub fn new(data_dir: &Path) -> Self {
        SecretStore {
            path: data_dir.join(SECRETS_FILE),
        }
    }

    /// The secrets file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, what: &str, source: std::io::Error) -> SecretError {
        SecretError::Io {
            what: format!("{what} {}", self.path.display()),
            source,
        }
    }

    fn corrupt(&self, reason: impl Into<String>) -> SecretError {
        SecretError::Corrupt {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn read(&self) -> Result<FileFormat, SecretError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FileFormat {
                    version: VERSION,
                    cipher: CIPHER.into(),
                    secrets: BTreeMap::new(),
                })
            }
            Err(e) => return Err(self.io("cannot read", e)),
        };
        let file: FileFormat =
            serde_json::from_slice(&bytes).map_err(|e| self.corrupt(e.to_string()))?;
        if file.version != VERSION || file.cipher != CIPHER {
            return Err(self.corrupt(format!(
                "version {} / cipher {:?}; this troupe reads version {VERSION} / {CIPHER:?}",
                file.version, file.cipher
            )));
        }
        Ok(file)
    }

    /// Runs `change` on the file's contents under the lock file and writes
    /// the result atomically.
    fn update<R>(
        &self,
        change: impl FnOnce(&mut FileFormat) -> Result<R, SecretError>,
    ) -> Result<R, SecretError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir).map_err(|e| self.io("cannot create the directory of", e))?;
        let lock_path = self.path.with_extension("json.lock");
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let lock = options
            .open(&lock_path)
            .map_err(|e| self.io("cannot open the lock file of", e))?;
        lock.lock_exclusive()
            .map_err(|e| self.io("cannot lock", e))?;
        let mut file = self.read()?;
        let answer = change(&mut file)?;
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| self.corrupt(e.to_string()))?;
        self.write_atomic(dir, &bytes)?;
        let _ = FileExt::unlock(&lock);
        Ok(answer)
    }

    /// Temp file in the same directory, fsync, rename over the old file,
    /// fsync the directory: a crash leaves the old or the new file. Called
    /// under the lock file, so any temp file already there was left by a
    /// writer that crashed: those are removed first.
    fn write_atomic(&self, dir: &Path, bytes: &[u8]) -> Result<(), SecretError> {
        remove_stale_temps(dir);
        let tmp = dir.join(format!("{TEMP_PREFIX}{}", std::process::id()));
        let mut f =
            create_temp(&tmp).map_err(|e| self.io("cannot write a temporary file for", e))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| self.io("cannot write a temporary file for", e))?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io("cannot replace", e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io("cannot sync the directory of", e))?;
        Ok(())
    }

    /// Encrypts and stores `key` for `provider`, replacing any previous one.
    /// Refused when other stored keys do not decrypt with `master` (one
    /// master key per file).
    pub fn set(
        &self,
        master: &MasterKey,
        provider: &str,
        key: &ApiKey,
        expires: Option<NaiveDate>,
    ) -> Result<(), SecretError> {
        check_name(provider)?;
        let bad_key = |reason| SecretError::BadKey {
            provider: provider.to_string(),
            reason,
        };
        if key.expose().trim().is_empty() {
            return Err(bad_key("it is empty"));
        }
        if key.expose().chars().any(char::is_control) {
            return Err(bad_key("it contains control characters (a line break?)"));
        }
        // One master key per file: refuse to mix in a key sealed under another.
        let other = self.read()?.secrets.into_keys().find(|p| p != provider);
        if let Some(other) = other {
            self.get(master, &other)?;
        }
        let cipher = XChaCha20Poly1305::new(master.bytes().into());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: key.expose().as_bytes(),
                    aad: &aad(provider, expires),
                },
            )
            .map_err(|_| bad_key("encryption failed"))?;
        let entry = Entry {
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(ciphertext),
            expires,
            updated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        self.update(|file| {
            file.secrets.insert(provider.to_string(), entry);
            Ok(())
        })
    }

    /// Removes `provider`'s key; `false` when there was none.
    pub fn delete(&self, provider: &str) -> Result<bool, SecretError> {
        if !self.path.exists() {
            return Ok(false);
        }
        self.update(|file| Ok(file.secrets.remove(provider).is_some()))
    }

    /// Names, expiry dates and times of the stored keys; needs no master key
    /// and decrypts nothing. `today` decides `expired`.
    pub fn list(&self, today: NaiveDate) -> Result<Vec<SecretInfo>, SecretError> {
        Ok(self
            .read()?
            .secrets
            .into_iter()
            .map(|(provider, e)| SecretInfo {
                expired: e.expires.is_some_and(|d| today >= d),
                provider,
                expires: e.expires,
                updated_at: e.updated_at,
            })
            .collect())
    }

    /// Whether a key is stored for `provider`.
    pub fn contains(&self, provider: &str) -> Result<bool, SecretError> {
        Ok(self.read()?.secrets.contains_key(provider))
    }

    /// Decrypts `provider`'s key, if one is stored. Does not check expiry
    /// (see [`SecretStore::get_valid`]).
    pub fn get(
        &self,
        master: &MasterKey,
        provider: &str,
    ) -> Result<Option<StoredKey>, SecretError> {
        let Some(entry) = self.read()?.secrets.remove(provider) else {
            return Ok(None);
        };
        let nonce = B64
            .decode(&entry.nonce)
            .ok()
            .filter(|n| n.len() == 24)
            .ok_or_else(|| self.corrupt(format!("entry `{provider}`: bad nonce")))?;
        let ciphertext = B64
            .decode(&entry.ciphertext)
            .map_err(|_| self.corrupt(format!("entry `{provider}`: bad ciphertext encoding")))?;
        let cipher = XChaCha20Poly1305::new(master.bytes().into());
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: &ciphertext,
                        aad: &aad(provider, entry.expires),
                    },
                )
                .map_err(|_| SecretError::WrongMasterKey {
                    provider: provider.to_string(),
                    path: self.path.clone(),
                    master: master.source().to_string(),
                })?,
        );
        let text = std::str::from_utf8(&plain)
            .map_err(|_| self.corrupt(format!("entry `{provider}`: key is not UTF-8")))?;
        Ok(Some(StoredKey {
            provider: provider.to_string(),
            key: ApiKey::new(text),
            expires: entry.expires,
        }))
    }

    /// Like [`get`](Self::get), refusing a key past its expiry on `today`.
    pub fn get_valid(
        &self,
        master: &MasterKey,
        provider: &str,
        today: NaiveDate,
    ) -> Result<Option<StoredKey>, SecretError> {
        let key = self.get(master, provider)?;
        if let Some(k) = &key {
            check_expiry(provider, k.expires, today)?;
        }
        Ok(key)
    }
}

/// Creates the temporary file exclusively (`O_EXCL`: never an existing file,
/// nor what a link at its name points to) and 0600 from the start. Should the
/// name still be taken (a stale file of a crashed writer with this pid, or
/// something planted), the name itself is removed (a link, not its target)
/// and the file created afresh, once.
fn create_temp(tmp: &Path) -> std::io::Result<File> {
    let create = || {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(tmp)
    };
    match create() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(tmp)?;
            create()
        }
        other => other,
    }
}

/// Removes the temporary files crashed writers left in `dir` (best effort:
/// one that stays is replaced by [`create_temp`] if its name comes up).
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Creates `dir` when missing, owner-only (0700) as the store creates the
/// data directory; missing parents with the usual mode.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}
