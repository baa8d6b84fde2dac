//! The bearer token of the control API, and the file a daemon keeps it in.
//!
//! Every daemon has a token: one chosen by its operator
//! (`TROUPE_HTTP_TOKEN`, `[http] token`), or else one it generates at its
//! first start — 32 random bytes from the operating system, base64url — and
//! keeps in [`TOKEN_FILE`] in its data directory, readable by its owner
//! alone. The CLI reads the same file, so it needs no flag. The token is a
//! secret: it is never logged or shown in `Debug`.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use chacha20poly1305::aead::{rand_core::RngCore, OsRng};
use zeroize::Zeroizing;

/// The file, in the data directory, holding the token a daemon generated.
pub const TOKEN_FILE: &str = "http.token";

/// A bearer token. `Debug` prints no part of it; the memory holding it is
/// wiped when it is dropped.
#[derive(Clone)]
pub struct HttpToken(Zeroizing<String>);

impl HttpToken {
    /// Wraps `token`; `None` when it is empty or only blanks (an empty token
    /// would let anyone in).
    pub fn new(token: impl Into<String>) -> Option<Self> {
        let token = Zeroizing::new(token.into());
        let trimmed = token.trim();
        (!trimmed.is_empty()).then(|| HttpToken(Zeroizing::new(trimmed.to_string())))
    }

    /// A new random token: 32 bytes from the operating system's generator,
    /// base64url without padding (43 characters).
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut *bytes);
        HttpToken(Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(*bytes),
        ))
    }

    /// Whether `given` is this token, compared in time independent of where
    /// they first differ (length still shows).
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The token itself, to hand to a client. Never log it.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Where a daemon on `data_dir` keeps the token it generated.
    pub fn file(data_dir: &Path) -> PathBuf {
        data_dir.join(TOKEN_FILE)
    }

    /// The token kept in `data_dir`, if there is a readable, non-empty
    /// one.
    pub fn read(data_dir: &Path) -> Option<Self> {
        let text = Zeroizing::new(std::fs::read_to_string(Self::file(data_dir)).ok()?);
        Self::new(text.as_str())
    }

    /// The token kept in `data_dir`; at the first start (no file, or an
    /// empty one) a new one, written there readable by its owner alone.
    /// Refuses a file other users may read: the token may be known.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, TokenFileError> {
        let path = Self::file(data_dir);
        let error = |source| TokenFileError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::metadata(&path) {
            Ok(meta) => {
                check_owner_only(&path, &meta)?;
                if let Some(token) = Self::read(data_dir) {
                    return Ok(token);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(error(e)),
        }
        let token = Self::generate();
        // A node on a shared store (PostgreSQL) keeps nothing else in its
        // data directory, so nothing else has made it: made here, owner-only.
        if !data_dir.exists() {
            let mut dir = std::fs::DirBuilder::new();
            dir.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
            dir.create(data_dir).map_err(error)?;
        }
        write_owner_only(&path, token.secret()).map_err(error)?;
        Ok(token)
    }
}

impl std::fmt::Debug for HttpToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpToken(<redacted>)")
    }
}

/// The token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// Reading or writing it failed.
    #[error("cannot use the control API token file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Other users may read it.
    #[error("the control API token file {} is readable by other users (mode {mode:o}): the token may be known; delete the file (a new token is made at the next start) or `chmod 600` it", path.display())]
    Readable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// Writes `secret` to a new file beside `path` (owner-only from its
/// creation), then renames it over `path`: a crash leaves the old file or
/// the new one, never half of one.
fn write_owner_only(path: &Path, secret: &str) -> std::io::Result<()> {
    let temp = path.with_extension("token.new");
    let _ = std::fs::remove_file(&temp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temp)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&temp, path)
}

#[cfg(unix)]
fn check_owner_only(path: &Path, meta: &std::fs::Metadata) -> Result<(), TokenFileError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TokenFileError::Readable {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner_only(_: &Path, _: &std::fs::Metadata) -> Result<(), TokenFileError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly_and_never_print() {
        let t = HttpToken::new(" s3cret ").unwrap();
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches("s3creT"));
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(HttpToken::new("  ").is_none());
    }

    #[test]
    fn generated_tokens_are_long_random_and_url_safe() {
        let (a, b) = (HttpToken::generate(), HttpToken::generate());
        assert_eq!(a.secret().len(), 43);
        assert_ne!(a.secret(), b.secret());
        assert!(a
            .secret()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_made_once_owner_only_and_refused_when_wider() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        assert!(HttpToken::read(dir.path()).is_none());
        let made = HttpToken::load_or_create(dir.path()).unwrap();
        let path = HttpToken::file(dir.path());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = HttpToken::load_or_create(dir.path()).unwrap();
        assert_eq!(made.secret(), again.secret());
        assert_eq!(HttpToken::read(dir.path()).unwrap().secret(), made.secret());
        // An empty file (a crash before the first write) is replaced.
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let new = HttpToken::load_or_create(dir.path()).unwrap();
        assert_ne!(new.secret(), made.secret());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = HttpToken::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("644"), "{err}");
        assert!(!err.to_string().contains(new.secret()));
    }
}
