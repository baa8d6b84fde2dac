//! A redacting API-key type.
//!
//! Keys must never reach logs, `Debug` output or error messages. This type has
//! no `Display`, no `Serialize`, a `Debug` that prints `[REDACTED]`, and wipes
//! its memory on drop. The only way to the bytes is [`ApiKey::expose`], which
//! makes every use easy to find in review.

use std::fmt;

use zeroize::Zeroize;

/// An API key held in memory, redacted everywhere it could be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key read from the environment or the secrets store.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself, for building the auth header and for scrubbing.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of this key in `text` with `[REDACTED]`.
    ///
    /// Providers sometimes echo the key in error bodies; anything from the
    /// network passes through here before it is stored in an error.
    pub fn scrub(&self, text: &str) -> String {
        if self.0.len() < 4 {
            // A very short "key" (e.g. "x" for a local server) would mangle
            // ordinary text; it is not a secret worth hiding.
            return text.to_string();
        }
        text.replace(&self.0, "[REDACTED]")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([REDACTED])")
    }
}

impl Drop for ApiKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}
