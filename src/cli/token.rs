//! The control API's bearer token, as `troupe run` serves it and as the
//! CLI sends it. Never on the command line (process listings show it): the
//! environment, the config, or the file the daemon keeps in its data
//! directory.

use reqwest::Url;

use crate::config::TroupeConfig;
use crate::http::{HttpToken, TOKEN_FILE};

use super::{CliError, Global};

/// The environment variable that sets the token, for the daemon and the
/// CLI alike.
pub(super) const TOKEN_ENV: &str = "TROUPE_HTTP_TOKEN";

/// What `--token` is told.
pub(super) fn flag_refused() -> String {
    format!(
        "`--token` is not taken: a token on the command line shows in every process listing. \
         Set {TOKEN_ENV}, or `[http] token` in the config; with neither, the CLI reads the \
         daemon's own token from `{TOKEN_FILE}` in its data directory"
    )
}

/// The daemon's token: `env` (`TROUPE_HTTP_TOKEN`), else `[http] token`,
/// else the one kept in the data directory, made at the first start.
pub(super) fn for_daemon(env: Option<&str>, config: &TroupeConfig) -> Result<HttpToken, CliError> {
    if let Some(given) = env.or(config.http.token.as_deref()) {
        return HttpToken::new(given).ok_or_else(|| {
            CliError::Usage(format!(
                "the control API token (`[http] token` or {TOKEN_ENV}) is empty"
            ))
        });
    }
    HttpToken::load_or_create(&config.store.data_dir).map_err(|e| CliError::Usage(e.to_string()))
}

/// The token the CLI sends to the daemon at `url`: `TROUPE_HTTP_TOKEN`,
/// else `[http] token`, else — to a daemon on this machine only — the one
/// kept in the data directory.
pub(super) fn for_client(global: &Global, config: &TroupeConfig, url: &str) -> Option<String> {
    let env = std::env::var(TOKEN_ENV).ok();
    if let Some(token) = env
        .as_deref()
        .or(config.http.token.as_deref())
        .and_then(HttpToken::new)
    {
        return Some(token.secret().to_string());
    }
    let local = Url::parse(url)
        .ok()
        .is_some_and(|u| matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")));
    local
        .then(|| HttpToken::read(&global.data_dir_for(config)))
        .flatten()
        .map(|t| t.secret().to_string())
}
