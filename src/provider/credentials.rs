//! [`Credentials`]: finds each provider's key (code, environment, secrets file).

use std::path::Path;

use chrono::NaiveDate;

use super::{ApiKey, ProviderConfig};
use crate::secrets::{MasterKey, SecretError, SecretStore};

/// Where a provider's key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Set by code on the config.
    Code,
    /// The environment variable named by `apiKeyEnv`.
    Env(String),
    /// The encrypted secrets file.
    Stored,
    /// No key (a local OpenAI-compatible server that needs none).
    None,
}

/// A provider's key, ready to build its client.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedKey {
    /// The key (redacted in `Debug`).
    pub key: Option<ApiKey>,
    /// First UTC day the key is refused on (stored keys only).
    pub expires: Option<NaiveDate>,
    /// Where it came from.
    pub source: KeySource,
}

/// The key sources of one data directory.
#[derive(Debug, Default)]
pub(crate) struct Credentials {
    store: Option<SecretStore>,
    master: Option<MasterKey>,
}

impl Credentials {
    /// Keys from code and environment variables only.
    #[cfg(test)]
    pub(crate) fn env_only() -> Self {
        Credentials::default()
    }

    /// Keys from code, environment, and `store` decrypted with `master`.
    pub(crate) fn new(store: SecretStore, master: Option<MasterKey>) -> Self {
        Credentials {
            store: Some(store),
            master,
        }
    }

    /// The secrets file of `data_dir` with the master key from the
    /// environment ([`MasterKey::from_env`]). A configured but unusable
    /// master key (bad text, key file readable by others) is an error now,
    /// not at the first call.
    pub(crate) fn from_env(data_dir: &Path) -> Result<Self, SecretError> {
        Ok(Credentials::new(
            SecretStore::new(data_dir),
            MasterKey::from_env()?,
        ))
    }

    /// The key for `config`'s provider: the one set by code, else its
    /// `apiKeyEnv` variable, else its stored secret. An expired stored key is
    /// returned with its date; the provider actor refuses it at each call,
    /// so the other providers keep working.
    pub(crate) fn resolve(&self, config: &ProviderConfig) -> Result<ResolvedKey, SecretError> {
        let provider = &config.name;
        if let Some(key) = &config.api_key {
            return Ok(ResolvedKey {
                key: Some(key.clone()),
                expires: None,
                source: KeySource::Code,
            });
        }
        if let Some(var) = &config.api_key_env {
            return match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(ResolvedKey {
                    key: Some(ApiKey::new(v)),
                    expires: None,
                    source: KeySource::Env(var.clone()),
                }),
                _ => Err(SecretError::EnvMissing {
                    provider: provider.clone(),
                    var: var.clone(),
                }),
            };
        }
        if let Some(store) = &self.store {
            if store.contains(provider)? {
                let master = self
                    .master
                    .as_ref()
                    .ok_or_else(|| SecretError::NoMasterKey {
                        provider: Some(provider.clone()),
                    })?;
                if let Some(stored) = store.get(master, provider)? {
                    return Ok(ResolvedKey {
                        key: Some(stored.key),
                        expires: stored.expires,
                        source: KeySource::Stored,
                    });
                }
            }
        }
        if config.kind.needs_key() {
            return Err(SecretError::Missing {
                provider: provider.clone(),
            });
        }
        Ok(ResolvedKey {
            key: None,
            expires: None,
            source: KeySource::None,
        })
    }
}
