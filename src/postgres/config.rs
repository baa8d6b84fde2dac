//! [`PostgresConfig`]: where the database is and how this node holds its
//! leases. The URL may carry a password, so it is never printed whole:
//! `Debug` and every error show [`PostgresConfig::redacted_url`].

use std::fmt;
use std::time::Duration;

use uuid::Uuid;

use crate::store::StoreError;

/// The default schema the tables live in.
pub const DEFAULT_SCHEMA: &str = "troupe";

/// How to reach the database and how this node takes part in the cluster.
#[derive(Clone)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database` (or the key=value form).
    pub url: String,
    /// The schema the tables live in, created if missing. Lowercase letters,
    /// digits and `_`, starting with a letter or `_`, at most 56 bytes (its
    /// notification channel, `troupe_<schema>`, must fit PostgreSQL's 63).
    pub schema: String,
    /// Connections this node keeps at most.
    pub pool_size: usize,
    /// How long a claim holds a job without a heartbeat: a dead node's jobs
    /// run again elsewhere this long after its last heartbeat.
    pub lease: Duration,
    /// How often this node renews its leases (well under `lease`).
    pub heartbeat: Duration,
    /// How often a node looks for work without being told (a lost
    /// notification, a listener reconnecting).
    pub poll: Duration,
    /// This node's id. `None`: a new one per process. A node that keeps its
    /// id across restarts takes its own interrupted jobs back at once
    /// instead of after their leases end. Two live processes never share
    /// one: a process whose id a live node holds is refused at start
    /// (unless that node was this host's and its process is gone).
    pub node_id: Option<Uuid>,
    /// Apply missing migrations when the store opens (the default); when
    /// false an older schema is an error that says to run `troupe migrate`.
    pub migrate: bool,
    /// Whether this store takes part as a node (the default): it registers
    /// in `nodes`, renews its leases, rescues dead nodes' jobs and listens
    /// for the others. `false` for a client that only reads and tells (the
    /// CLI's commands, a program that enqueues): it never claims, so it has
    /// no leases, and it does not show among the nodes.
    pub node: bool,
}

impl PostgresConfig {
    /// The defaults for `url`: schema `troupe`, 16 connections, a 15 s lease
    /// renewed every 3 s, a poll every second, migrations applied.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            schema: DEFAULT_SCHEMA.to_string(),
            pool_size: 16,
            lease: Duration::from_secs(15),
            heartbeat: Duration::from_secs(3),
            poll: Duration::from_secs(1),
            node_id: None,
            migrate: true,
            node: true,
        }
    }

    /// Sets [`node`](Self::node): `false` for a client that never claims.
    pub fn as_node(mut self, node: bool) -> Self {
        self.node = node;
        self
    }

    /// Sets the schema.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The URL with any password replaced by `***`: what logs and errors show.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// Refuses settings that cannot work, naming the field.
    pub fn validate(&self) -> Result<(), StoreError> {
        validate_schema_name(&self.schema)?;
        if self.pool_size == 0 {
            return Err(invalid("poolSize", "must be at least 1".into()));
        }
        if self.heartbeat.is_zero() || self.heartbeat >= self.lease {
            return Err(invalid(
                "heartbeat",
                format!(
                    "must be above 0 and below the lease ({:?}), got {:?}",
                    self.lease, self.heartbeat
                ),
            ));
        }
        if self.poll.is_zero() {
            return Err(invalid("poll", "must be above 0".into()));
        }
        if self.url.trim().is_empty() {
            return Err(invalid("url", "must not be empty".into()));
        }
        Ok(())
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &self.redacted_url())
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("lease", &self.lease)
            .field("heartbeat", &self.heartbeat)
            .field("poll", &self.poll)
            .field("node_id", &self.node_id)
            .field("migrate", &self.migrate)
            .field("node", &self.node)
            .finish()
    }
}

fn invalid(field: &'static str, reason: String) -> StoreError {
    StoreError::InvalidInput { field, reason }
}

use crate::store::validate_schema_name;

/// `url` with the password of a `scheme://user:password@host` URL, or of a
/// `password=…` pair, replaced by `***`.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, tail) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let redacted_tail = redact_pairs(tail);
        return match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}{redacted_tail}"),
                None => format!("{scheme}://{userinfo}@{host}{redacted_tail}"),
            },
            None => format!("{scheme}://{authority}{redacted_tail}"),
        };
    }
    redact_pairs(url)
}

/// Replaces the value of `password=` in a key=value or query string.
fn redact_pairs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("password=") {
        let value_start = at + "password=".len();
        out.push_str(&rest[..value_start]);
        out.push_str("***");
        let tail = &rest[value_start..];
        let end = tail.find([' ', '&']).unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        for (url, want) in [
            (
                "postgres://troupe:s3cret@db:5432/app",
                "postgres://troupe:***@db:5432/app",
            ),
            ("postgres://db/app", "postgres://db/app"),
            (
                "postgres://u@db/app?password=s3cret&x=1",
                "postgres://u@db/app?password=***&x=1",
            ),
            (
                "host=db user=u password=s3cret dbname=app",
                "host=db user=u password=*** dbname=app",
            ),
            ("postgres://u:p@ss:w@rd@db/app", "postgres://u:***@db/app"),
        ] {
            assert_eq!(redact_url(url), want);
        }
        let config = PostgresConfig::new("postgres://u:s3cret@db/app");
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(validate_schema_name("troupe").is_ok());
        assert!(validate_schema_name("t_1").is_ok());
        for bad in ["", "1t", "Troupe", "t-1", "t;drop", &"x".repeat(57)] {
            assert!(validate_schema_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn heartbeats_must_fit_in_the_lease() {
        let mut config = PostgresConfig::new("postgres://db/app");
        config.heartbeat = config.lease;
        assert!(matches!(
            config.validate(),
            Err(StoreError::InvalidInput {
                field: "heartbeat",
                ..
            })
        ));
    }
}
