//! [`PostgresStore`]: the PostgreSQL adapter of every storage port, for
//! several `troupe run` nodes sharing one queue. It imports nothing above
//! the ports (`crate::store`) and the job model and rules (`crate::job`),
//! and passes the same conformance suite as sled.
//!
//! # How it keeps the contract
//!
//! - **The database decides.** Every change is a transaction that commits
//!   before the call returns (so "durable" is the server's: `fsync` on,
//!   synchronous commit). Unique keys, idempotency keys and "claimed once"
//!   are the database's constraints and row locks, so they hold across
//!   nodes, not only within one process.
//! - **The rules are the job module's.** A transition locks the job's row,
//!   applies [`crate::job::rules`] to the job as stored, and writes the
//!   answer back; the columns beside `data` are only what SQL must search,
//!   order or lock by.
//! - **A claim is a lease.** Claimed jobs carry this node's id and a lease
//!   end; the node renews its leases every heartbeat, and any node requeues
//!   jobs whose lease ended (their node died or froze) — see `cluster.rs`.
//!   A late node's completion is fenced by the attempt (the rules' `Stale`),
//!   and its steps by the lease (`StoreError::Fenced`).
//! - **Its own runtime.** Connections and background tasks run on a small
//!   tokio runtime the store owns, so the store works the same from an
//!   actix arbiter, a `#[tokio::main]` service or a test's runtime, and
//!   stops with the last handle.
//!
//! | file | holds |
//! |---|---|
//! | `config.rs` | [`PostgresConfig`], URL redaction |
//! | `migrations.rs`, `sql/` | the schema's versions, applied at open |
//! | `jobs.rs` | jobs; the [`crate::store::JobStore`] port |
//! | `schedules.rs` | schedules and pauses; [`crate::store::ScheduleStore`] |
//! | `memories.rs` | [`crate::store::MemoryStore`] |
//! | `conversations.rs` | [`crate::store::ConversationStore`] |
//! | `steps.rs` | [`crate::store::StepStore`], [`crate::store::IdempotencyStore`] |
//! | `usage.rs` | [`crate::store::UsageStore`] |
//! | `cluster.rs` | the node record, heartbeats, the rescuer, notifications |
//! | `harness.rs` | [`PostgresHarness`], the conformance suite's way in |

mod approvals;
mod cluster;
mod config;
mod conversations;
mod harness;
mod import;
mod jobs;
mod memories;
mod migrations;
mod schedules;
mod steps;
mod transitions;
mod usage;

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::store::StoreError;

pub use config::{redact_url, PostgresConfig, DEFAULT_SCHEMA};
pub use harness::{PostgresHarness, ScratchSchema, TEST_DATABASE_URL};
pub use migrations::MigrationReport;

/// Every storage port on PostgreSQL. Cheap to clone (a shared handle); the
/// pool, the node's heartbeat and its listener stop with the last handle.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.inner.shared.config.redacted_url())
            .field("schema", &self.inner.shared.config.schema)
            .field("node", &self.inner.shared.node)
            .finish_non_exhaustive()
    }
}

/// What the handle and the background tasks share. The tasks hold this,
/// never [`Inner`], so they do not keep the store alive.
pub(crate) struct Shared {
    pool: Pool,
    config: PostgresConfig,
    /// This node's id: the owner of its leases.
    node: Uuid,
    /// Why the store failed, once told to ([`PostgresStore::mark_failed`]).
    failed: OnceLock<String>,
    /// Tells the engine of work, cancels and pauses from other nodes.
    events: tokio::sync::broadcast::Sender<crate::store::StoreEvent>,
    /// Where fenced transitions wait for their group (`transitions.rs`).
    transitions: tokio::sync::mpsc::UnboundedSender<transitions::Transition>,
    /// Asks for one more wake-up of the other nodes (`cluster.rs`, `waker`).
    wake: Arc<tokio::sync::Notify>,
    /// The jobs this node claimed and has not seen end or leave: the only
    /// leases its heartbeat renews. A job it lost track of (a claim whose
    /// answer never came back, an outcome it gave up writing) is not
    /// renewed, so its lease ends and another node rescues it.
    held: std::sync::Mutex<std::collections::HashSet<uuid::Uuid>>,
}

impl Shared {
    fn held(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<uuid::Uuid>> {
        // A poisoned set is still the right set: nothing panics while
        // holding it but an allocation failure.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claimed here: renewed by the heartbeat from now on.
    fn hold(&self, ids: impl IntoIterator<Item = uuid::Uuid>) {
        self.held().extend(ids);
    }

    /// No longer running here (ended, requeued, or another attempt's).
    fn release(&self, ids: impl IntoIterator<Item = uuid::Uuid>) {
        let mut held = self.held();
        for id in ids {
            held.remove(&id);
        }
    }

    /// Tells the other nodes, soon, that work may be ready. Call it after
    /// the commit that made the work.
    fn wake_others(&self) {
        self.wake.notify_one();
    }
}

struct Inner {
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
    /// Taken and shut down in the background on drop: a runtime dropped
    /// inside another runtime's task would panic.
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let runtime = match self.runtime.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(runtime) = runtime {
            runtime.shutdown_background();
        }
    }
}

impl PostgresStore {
    /// Connects, applies missing migrations (unless `config.migrate` is
    /// false: then an older schema is an error), registers this node and
    /// starts its heartbeat, rescuer and listener. Every failure names what
    /// was wrong: the URL, the credentials, an unreachable server, the
    /// schema's version.
    pub async fn connect(config: PostgresConfig) -> Result<Self, StoreError> {
        config.validate()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("troupe-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::backend("starting the PostgreSQL runtime", e))?;
        let handle = runtime.handle().clone();
        // Owned from here: dropped (in the background) on any early return.
        let inner_runtime = RuntimeGuard(Some(runtime));
        let setup = handle.spawn(async move { cluster::start(config).await });
        let shared = match setup.await {
            Ok(result) => result?,
            Err(e) => return Err(StoreError::backend("connecting to PostgreSQL", e)),
        };
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                shared,
                handle,
                runtime: Mutex::new(inner_runtime.take()),
            }),
        })
    }

    /// [`connect`](Self::connect) for code that is not async (the CLI
    /// before it starts its runtime). Blocks the calling thread.
    pub fn open(config: PostgresConfig) -> Result<Self, StoreError> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("troupe-pg-open".into())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| StoreError::backend("opening the PostgreSQL store", e))
                    .and_then(|rt| rt.block_on(PostgresStore::connect(config)));
                let _ = tx.send(result);
            })
            .map_err(|e| StoreError::backend("opening the PostgreSQL store", e))?;
        rx.recv()
            .map_err(|e| StoreError::backend("opening the PostgreSQL store", e))?
    }

    /// Applies the migrations this build has and returns what it did,
    /// without starting a node: what `troupe migrate` runs.
    pub async fn migrate(config: &PostgresConfig) -> Result<MigrationReport, StoreError> {
        config.validate()?;
        let config = config.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| StoreError::backend("starting the PostgreSQL runtime", e))?;
        let guard = RuntimeGuard(Some(runtime));
        let task = guard.handle().spawn(async move {
            let mut client = cluster::connect_one(&config).await?;
            migrations::migrate(&mut client, &config.schema, true).await
        });
        match task.await {
            Ok(result) => result,
            Err(e) => Err(StoreError::backend("migrating the PostgreSQL schema", e)),
        }
    }

    /// This node's id (the owner of its leases).
    pub fn node_id(&self) -> Uuid {
        self.inner.shared.node
    }

    /// The settings it was opened with.
    pub fn config(&self) -> &PostgresConfig {
        &self.inner.shared.config
    }

    /// Fails this handle (and its clones) as a failed write would: every
    /// later write is refused with [`StoreError::Failed`], reads go on.
    /// For the conformance suite's `failure` group and for an operator's
    /// "stop writing now"; only a new connect clears it.
    pub fn mark_failed(&self, reason: &str) {
        let _ = self.inner.shared.failed.set(reason.to_string());
    }

    /// Runs `work` with a pooled connection on the store's runtime. A write
    /// goes through [`write`](Self::write) instead.
    async fn run<T, F, Fut>(&self, op: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Object, Arc<Shared>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let shared = self.inner.shared.clone();
        let task = self.inner.handle.spawn(async move {
            let client = shared.pool.get().await.map_err(|e| pool_error(op, e))?;
            work(client, shared).await
        });
        match task.await {
            Ok(result) => result,
            Err(e) => Err(StoreError::backend(op, e)),
        }
    }

    /// [`run`](Self::run) for a call that changes state: refused at once
    /// when the store has failed.
    async fn write<T, F, Fut>(&self, op: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Object, Arc<Shared>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.writable()?;
        self.run(op, work).await
    }

    fn writable(&self) -> Result<(), StoreError> {
        match self.inner.shared.failed.get() {
            Some(reason) => Err(StoreError::Failed {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// A runtime that is shut down in the background when dropped.
struct RuntimeGuard(Option<tokio::runtime::Runtime>);

impl RuntimeGuard {
    fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(rt) => rt.handle().clone(),
            None => tokio::runtime::Handle::current(),
        }
    }

    fn take(mut self) -> Option<tokio::runtime::Runtime> {
        self.0.take()
    }
}

impl Drop for RuntimeGuard {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A database error as a store error naming the operation.
fn db(op: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::Backend {
        operation: op,
        source: describe(&e).into(),
    }
}

/// The server's message (with its detail) when there is one, else the
/// client's: tokio-postgres's `Display` of a server error is only "db error".
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_string(),
        },
        None => {
            // "error connecting to server" says little without its cause
            // ("Connection refused", "timed out").
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

pub(crate) fn pool_error(op: &'static str, e: deadpool_postgres::PoolError) -> StoreError {
    let reason = match &e {
        deadpool_postgres::PoolError::Backend(pg) => describe(pg),
        other => other.to_string(),
    };
    StoreError::Backend {
        operation: op,
        source: format!("no database connection: {reason}").into(),
    }
}

/// Builds the pool: connections that find the tables in the store's schema,
/// named `troupe` in `pg_stat_activity`, checked cheaply when reused.
fn pool(config: &PostgresConfig, pg: tokio_postgres::Config) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(30)))
        .create_timeout(Some(Duration::from_secs(10)))
        .build()
        .map_err(|e| StoreError::backend("building the connection pool", e))
}
