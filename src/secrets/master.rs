//! The master key that encrypts stored provider keys.
//!
//! Where it comes from, first match wins:
//! 1. `TROUPE_MASTER_KEY`: 32 random bytes written as 64 hex digits or as
//!    standard base64 (44 characters with padding). Generate one with
//!    `openssl rand -hex 32`.
//! 2. `TROUPE_MASTER_KEY_FILE`: a file holding the same text.
//! 3. The default key file, `$XDG_CONFIG_HOME/troupe/master.key` (or
//!    `~/.config/troupe/master.key`), if it exists. `troupe secrets set`
//!    creates it (mode 600) when no key is configured anywhere.
//!
//! A key file must be readable only by its owner: a file with any group or
//! other permission bits is refused, naming the file and the fix. The key
//! is kept apart from the data directory on purpose: a copy of the data
//! directory alone does not reveal the provider keys.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use zeroize::{Zeroize, Zeroizing};

use super::SecretError;

/// Environment variable holding the master key itself.
pub const MASTER_KEY_ENV: &str = "TROUPE_MASTER_KEY";
/// Environment variable naming a file that holds the master key.
pub const MASTER_KEY_FILE_ENV: &str = "TROUPE_MASTER_KEY_FILE";

/// A 256-bit key for the secrets file. Redacted in `Debug`, zeroed on drop.
pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
    source: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("source", &self.source)
            .field("bytes", &"[REDACTED]")
            .finish()
    }
}

impl MasterKey {
    /// Parses 64 hex digits or base64 of 32 bytes; `source` names where the
    /// text came from, for errors (the text itself is never printed).
    pub fn parse(text: &str, source: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let bad = |reason: String| SecretError::BadMasterKey {
            origin: source.to_string(),
            reason,
        };
        let mut decoded = Zeroizing::new(
            if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                decode_hex(text)
            } else {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|_| {
                        bad("expected 32 bytes written as 64 hex digits or as base64".into())
                    })?
            },
        );
        if decoded.len() != 32 {
            let n = decoded.len();
            decoded.zeroize();
            return Err(bad(format!("expected 32 bytes, got {n}")));
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&decoded);
        Ok(MasterKey {
            bytes,
            source: source.to_string(),
        })
    }

    /// Reads a key file, refusing one that group or others may access.
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let io = |e: std::io::Error| SecretError::Io {
            what: format!("master key file {}", path.display()),
            source: e,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_file() {
            return Err(SecretError::BadMasterKey {
                origin: format!("key file {}", path.display()),
                reason: "not a regular file".into(),
            });
        }
        check_owner_only(path, &meta)?;
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        Self::parse(&text, &format!("key file {}", path.display()))
    }

    /// The key from the environment (see the module docs), or `None` when no
    /// key is configured and the default key file does not exist.
    pub fn from_env() -> Result<Option<Self>, SecretError> {
        if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
            let text = Zeroizing::new(text);
            if !text.trim().is_empty() {
                return Self::parse(&text, MASTER_KEY_ENV).map(Some);
            }
        }
        if let Some(path) = std::env::var_os(MASTER_KEY_FILE_ENV) {
            return Self::from_file(Path::new(&path)).map(Some);
        }
        match Self::default_file() {
            Some(path) if path.exists() => Self::from_file(&path).map(Some),
            _ => Ok(None),
        }
    }

    /// Where a new key file goes: `TROUPE_MASTER_KEY_FILE` if set, else the
    /// default location.
    pub fn file_for_new_key() -> Option<PathBuf> {
        std::env::var_os(MASTER_KEY_FILE_ENV)
            .map(PathBuf::from)
            .or_else(Self::default_file)
    }

    /// `$XDG_CONFIG_HOME/troupe/master.key`, else `~/.config/troupe/master.key`.
    pub fn default_file() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("troupe").join("master.key"))
    }

    /// Makes a random key and writes it (hex) to a new file at `path`,
    /// readable only by its owner. Refuses to overwrite an existing file.
    pub fn generate_file(path: &Path) -> Result<Self, SecretError> {
        use chacha20poly1305::aead::{rand_core::RngCore, OsRng};
        let io = |e: std::io::Error| SecretError::Io {
            what: format!("new master key file {}", path.display()),
            source: e,
        };
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut *bytes);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io)?;
        let hex = Zeroizing::new(encode_hex(&*bytes));
        file.write_all(hex.as_bytes()).map_err(io)?;
        file.write_all(b"\n").map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(MasterKey {
            bytes,
            source: format!("key file {}", path.display()),
        })
    }

    /// Where the key came from (`TROUPE_MASTER_KEY`, `key file …`).
    pub fn source(&self) -> &str {
        &self.source
    }

    pub(super) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

#[cfg(unix)]
fn check_owner_only(path: &Path, meta: &std::fs::Metadata) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::KeyFilePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner_only(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), SecretError> {
    Ok(())
}

fn decode_hex(text: &str) -> Vec<u8> {
    let nibble = |b: u8| match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b.to_ascii_lowercase().wrapping_sub(b'a').wrapping_add(10),
    };
    text.as_bytes()
        .chunks_exact(2)
        .map(|p| (nibble(p[0]) << 4) | nibble(p[1]))
        .collect()
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base64_agree() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let a = MasterKey::parse(hex, "t").unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(a.bytes());
        let b = MasterKey::parse(&b64, "t").unwrap();
        assert_eq!(a.bytes(), b.bytes());
        assert_eq!(encode_hex(a.bytes()), hex.to_ascii_lowercase());
    }

    #[test]
    fn wrong_length_is_refused_without_echo() {
        let e = MasterKey::parse("c2hvcnQ=", "TROUPE_MASTER_KEY").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("TROUPE_MASTER_KEY"), "{text}");
        assert!(text.contains("got 5"), "{text}");
        assert!(!text.contains("c2hvcnQ"), "{text}");
    }
}
