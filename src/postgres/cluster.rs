//! How a node takes part in the cluster: its record in `nodes`, the
//! heartbeat that renews its leases, the rescuer that requeues the jobs of
//! nodes that stopped renewing theirs, and the listener that turns other
//! nodes' notifications into [`StoreEvent`]s (with a poll besides, for a
//! notification lost while the listener reconnects).
//!
//! Nodes never talk to each other: everything goes through the database.
//! Notifications go out on one channel per schema, `troupe_<schema>`, with
//! payloads `w:<node>` (work may be ready) and `c:<node>:<job>` (cancel
//! requested); a node ignores its own.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Transaction;
use futures::StreamExt;
use tokio_postgres::{AsyncMessage, Client, NoTls};
use uuid::Uuid;

use super::{db, describe, jobs, migrations, PostgresConfig, Shared};
use crate::store::{StoreError, StoreEvent};

/// The client configuration for `config`: the schema on the search path,
/// `troupe` as the application name, a connect timeout unless the URL
/// sets one.
fn client_config(config: &PostgresConfig) -> Result<tokio_postgres::Config, StoreError> {
    let mut pg: tokio_postgres::Config =
        config
            .url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::Connect {
                target: config.redacted_url(),
                reason: format!("not a valid PostgreSQL URL: {e}"),
            })?;
    // A node frozen in the middle of a transaction (SIGSTOP, a VM pause)
    // must not hold its row locks past its lease: the server ends such a
    // session, and the node's late writes are fenced anyway.
    pg.options(format!(
        "-c search_path={} -c idle_in_transaction_session_timeout={}",
        config.schema,
        config.lease.as_millis()
    ));
    if pg.get_application_name().is_none() {
        pg.application_name("troupe");
    }
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(Duration::from_secs(5));
    }
    Ok(pg)
}

/// One connection outside the pool (migrations, the listener), its driver
/// spawned on the current runtime.
pub(super) async fn connect_one(config: &PostgresConfig) -> Result<Client, StoreError> {
    let pg = client_config(config)?;
    let (client, connection) = pg.connect(NoTls).await.map_err(|e| StoreError::Connect {
        target: config.redacted_url(),
        reason: describe(&e),
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %describe(&e), "a PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// Connects, migrates, registers the node and starts its background tasks.
pub(super) async fn start(config: PostgresConfig) -> Result<Arc<Shared>, StoreError> {
    let pg = client_config(&config)?;
    let mut first = connect_one(&config).await?;
    migrations::migrate(&mut first, &config.schema, config.migrate).await?;
    let pool = super::pool(&config, pg)?;
    let node = config.node_id.unwrap_or_else(Uuid::now_v7);
    let (events, _) = tokio::sync::broadcast::channel(1024);
    let as_node = config.node;
    if as_node {
        register(&mut first, node, config.lease).await?;
    }
    drop(first);
    let wake = Arc::new(tokio::sync::Notify::new());
    let shared = Arc::new_cyclic(|me| Shared {
        pool,
        config,
        node,
        failed: OnceLock::new(),
        events,
        transitions: super::transitions::start(me.clone()),
        wake: wake.clone(),
        held: std::sync::Mutex::default(),
    });
    tokio::spawn(waker(Arc::downgrade(&shared), wake));
    if as_node {
        tokio::spawn(heartbeat(Arc::downgrade(&shared)));
        tokio::spawn(rescuer(Arc::downgrade(&shared)));
        tokio::spawn(listener(Arc::downgrade(&shared)));
    }
    Ok(shared)
}

/// Adds (or, for a node id kept across restarts, renews) the node's record.
///
/// Refuses an id a live node holds: two processes under one id would renew
/// each other's leases and recover each other's jobs as their own. A record
/// whose heartbeat is within the lease is live unless it was this host's
/// and its process is gone (a node restarted with its kept id right after
/// it died, which must take its jobs back at once, not a lease later). The
/// check and the write are one transaction under a lock on the id, so two
/// processes starting together cannot both pass.
async fn register(client: &mut Client, node: Uuid, lease: Duration) -> Result<(), StoreError> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let pid = i32::try_from(std::process::id()).unwrap_or(0);
    let err = db("registering the node");
    let tx = client.transaction().await.map_err(err)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&format!("troupe-node:{node}")],
    )
    .await
    .map_err(db("registering the node"))?;
    let live = tx
        .query_opt(
            "SELECT host, pid, extract(epoch FROM now() - heartbeat)::float8 FROM nodes \
             WHERE id = $1 AND heartbeat > now() - make_interval(secs => $2)",
            &[&node, &lease.as_secs_f64()],
        )
        .await
        .map_err(db("registering the node"))?;
    if let Some(row) = live {
        let (their_host, their_pid, ago): (String, i32, f64) = (row.get(0), row.get(1), row.get(2));
        let gone = their_host == host
            && (their_pid == pid || !std::path::Path::new(&format!("/proc/{their_pid}")).exists());
        if !gone {
            return Err(StoreError::InvalidInput {
                field: "store.nodeId",
                reason: format!(
                    "node {node} is live (host {their_host}, pid {their_pid}, last heartbeat \
                     {ago:.1} s ago): two processes must not share a node id; give this one \
                     another, or leave nodeId out for a new id per process"
                ),
            });
        }
    }
    tx.execute(
        "INSERT INTO nodes (id, host, pid, version, started_at, heartbeat, running) \
         VALUES ($1, $2, $3, $4, now(), now(), 0) \
         ON CONFLICT (id) DO UPDATE SET host = $2, pid = $3, version = $4, \
             started_at = now(), heartbeat = now(), running = 0",
        &[&node, &host, &pid, &env!("CARGO_PKG_VERSION")],
    )
    .await
    .map_err(db("registering the node"))?;
    tx.commit().await.map_err(db("registering the node"))?;
    Ok(())
}

/// The nodes, most recently started first, each alive when its last
/// heartbeat is within the lease (by the database's clock). Nodes not
/// seen for a day are removed here, so the table does not grow with every
/// restart of every node.
pub(super) async fn nodes(
    client: &tokio_postgres::Client,
    shared: &Shared,
) -> Result<Vec<crate::store::NodeInfo>, StoreError> {
    if shared.failed.get().is_none() {
        client
            .execute(
                "DELETE FROM nodes WHERE heartbeat < now() - interval '1 day'",
                &[],
            )
            .await
            .map_err(db("nodes"))?;
    }
    let lease = shared.config.lease.as_secs_f64();
    let rows = client
        .query(
            "SELECT id, host, pid, version, started_at, heartbeat, running, \
                    heartbeat > now() - make_interval(secs => $1) \
             FROM nodes ORDER BY started_at DESC, id",
            &[&lease],
        )
        .await
        .map_err(db("nodes"))?;
    Ok(rows
        .iter()
        .map(|r| crate::store::NodeInfo {
            id: r.get(0),
            host: r.get(1),
            pid: u32::try_from(r.get::<_, i32>(2)).unwrap_or(0),
            version: r.get(3),
            started_at: r.get(4),
            last_heartbeat: r.get(5),
            running: u64::try_from(r.get::<_, i32>(6)).unwrap_or(0),
            alive: r.get(7),
        })
        .collect())
}

/// The notification channel of `config`'s schema.
fn channel(config: &PostgresConfig) -> String {
    format!("troupe_{}", config.schema)
}

async fn notify(tx: &Transaction<'_>, shared: &Shared, payload: String) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached("SELECT pg_notify($1, $2)")
        .await
        .map_err(db("notify"))?;
    tx.execute(&stmt, &[&channel(&shared.config), &payload])
        .await
        .map_err(db("notify"))?;
    Ok(())
}

/// Tells the other nodes that work may be ready, for as long as the store
/// lives: each [`Shared::wake_others`] since the last notification makes
/// one more, so a burst of enqueues costs one `NOTIFY` while one is in
/// flight, not one per enqueue. Sent after the commit that made the work,
/// outside it: a notifying commit takes PostgreSQL's one notification
/// lock until its WAL is flushed, so every enqueue notifying in its own
/// transaction would queue behind every other. A wake lost (the process
/// dies between the commit and the notification) costs the others one
/// poll period.
async fn waker(shared: std::sync::Weak<Shared>, wake: Arc<tokio::sync::Notify>) {
    loop {
        wake.notified().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let sent = async {
            let client = shared
                .pool
                .get()
                .await
                .map_err(|e| super::pool_error("notify", e))?;
            let stmt = client
                .prepare_cached("SELECT pg_notify($1, $2)")
                .await
                .map_err(db("notify"))?;
            client
                .execute(
                    &stmt,
                    &[&channel(&shared.config), &format!("w:{}", shared.node)],
                )
                .await
                .map_err(db("notify"))?;
            Ok::<(), StoreError>(())
        };
        if let Err(e) = sent.await {
            tracing::debug!(error = %e, "could not wake the other nodes; they will poll");
        }
    }
}

/// Tells the node running `job` to stop it, when `tx` commits.
pub(super) async fn notify_cancel(
    tx: &Transaction<'_>,
    shared: &Shared,
    job: Uuid,
) -> Result<(), StoreError> {
    notify(tx, shared, format!("c:{}:{job}", shared.node)).await
}

/// What a payload asks of this node; `None` for its own and for payloads
/// it does not know (a newer node's).
fn event_of(payload: &str, me: Uuid) -> Option<StoreEvent> {
    let mut parts = payload.splitn(3, ':');
    let kind = parts.next()?;
    let from: Uuid = parts.next()?.parse().ok()?;
    if from == me {
        return None;
    }
    match kind {
        "w" => Some(StoreEvent::Wake),
        "c" => parts.next()?.parse().ok().map(StoreEvent::CancelRequested),
        _ => None,
    }
}

/// Renews this node's leases and its record every heartbeat, until the
/// store is dropped. A failed beat is logged and tried again next beat;
/// if the database stays away past the lease, other nodes rescue the jobs
/// and this node's late results are fenced.
///
/// The beat has a connection of its own, outside the pool: with every
/// pooled connection busy (long transitions, a slow database), waiting for
/// one could outlast the lease, and the node's running jobs would be
/// rescued from under it. A connection that fails is made again at the
/// next beat.
async fn heartbeat(shared: std::sync::Weak<Shared>) {
    let period = match shared.upgrade() {
        Some(s) => s.config.heartbeat,
        None => return,
    };
    // The first beat one period after the start: the node was registered
    // just now, and its leases are new.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut own: Option<Client> = None;
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        // A failed store writes nothing more, leases included: its jobs
        // go to the other nodes once their leases end.
        if shared.failed.get().is_some() {
            continue;
        }
        if let Err(e) = beat(&shared, &mut own).await {
            own = None;
            tracing::warn!(node = %shared.node, error = %e, "heartbeat failed; retrying next beat");
        }
    }
}

async fn beat(shared: &Shared, own: &mut Option<Client>) -> Result<(), StoreError> {
    let held: Vec<Uuid> = shared.held().iter().copied().collect();
    let client = match own {
        Some(client) if !client.is_closed() => client,
        _ => own.insert(connect_one(&shared.config).await?),
    };
    let lease = shared.config.lease.as_secs_f64();
    // Rows locked in id order, as transitions and rescues lock them, so a
    // beat never deadlocks with them. The running jobs with a cancel
    // requested come back: a cancel's notification may have been lost (a
    // listener reconnecting), and this is its retry.
    let stmt = client
        .prepare(
            "WITH renewed AS ( \
                 UPDATE jobs SET lease_until = now() + make_interval(secs => $2) \
                 WHERE id IN (SELECT id FROM jobs \
                              WHERE id = ANY($3) AND status = 'running' AND lease_node = $1 \
                              ORDER BY id FOR UPDATE) \
                 RETURNING id, data->>'cancelRequested' AS cancel), \
             node AS ( \
                 UPDATE nodes SET heartbeat = now(), running = (SELECT count(*) FROM renewed) \
                 WHERE id = $1) \
             SELECT id FROM renewed WHERE cancel = 'true'",
        )
        .await
        .map_err(db("heartbeat"))?;
    let cancelled = client
        .query(&stmt, &[&shared.node, &lease, &held])
        .await
        .map_err(db("heartbeat"))?;
    for row in cancelled {
        if let Ok(id) = row.try_get::<_, Uuid>(0) {
            let _ = shared.events.send(StoreEvent::CancelRequested(id));
        }
    }
    Ok(())
}

/// Every heartbeat, on whichever node gets the rescue lock: requeues the
/// running jobs whose lease ended (their node died, froze or lost the
/// database), counting the attempt, and wakes the cluster.
async fn rescuer(shared: std::sync::Weak<Shared>) {
    let period = match shared.upgrade() {
        Some(s) => s.config.heartbeat,
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.failed.get().is_some() {
            continue;
        }
        match rescue(&shared).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(node = %shared.node, jobs = n, "rescued jobs whose node stopped renewing its lease")
            }
            Err(e) => {
                tracing::warn!(node = %shared.node, error = %e, "rescue pass failed; retrying next beat")
            }
        }
    }
}

/// One rescue pass; how many jobs it requeued (or cancelled).
pub(super) async fn rescue(shared: &Shared) -> Result<usize, StoreError> {
    let mut client = shared
        .pool
        .get()
        .await
        .map_err(|e| super::pool_error("rescue", e))?;
    let tx = client.transaction().await.map_err(db("rescue"))?;
    let key = format!("troupe-rescue:{}", shared.config.schema);
    let locked: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock(hashtext($1))", &[&key])
        .await
        .map_err(db("rescue"))?
        .get(0);
    if !locked {
        return Ok(0);
    }
    let found = jobs::requeue(
        &tx,
        // A running job with no lease at all (copied in by `troupe
        // migrate --from`) is no one's: rescued too.
        "(lease_until IS NULL OR lease_until < now()) AND lease_node IS DISTINCT FROM $1",
        &[&shared.node],
        Some("its node stopped renewing the lease"),
        Utc::now(),
    )
    .await?;
    let n = found.requeued.len() + found.cancelled.len();
    tx.commit().await.map_err(db("rescue"))?;
    if !found.requeued.is_empty() {
        shared.wake_others();
        // Woken here too: the notification is ignored by the node that sent it.
        let _ = shared.events.send(StoreEvent::Wake);
    }
    Ok(n)
}

/// Listens for other nodes' notifications until the store is dropped,
/// reconnecting with a growing pause (up to the poll period × 10) when
/// the connection drops; polls besides, so a lost notification delays
/// work by at most one poll period.
async fn listener(shared: std::sync::Weak<Shared>) {
    let (config, node) = match shared.upgrade() {
        Some(s) => (s.config.clone(), s.node),
        None => return,
    };
    let mut pause = Duration::from_millis(100);
    loop {
        match listen_once(&shared, &config, node).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(node = %node, error = %e, "lost the notification listener; reconnecting");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(config.poll * 10);
            }
        }
        if shared.strong_count() == 0 {
            return;
        }
    }
}

/// One listening connection: `Ok` when the store was dropped, `Err` when
/// the connection failed.
async fn listen_once(
    shared: &std::sync::Weak<Shared>,
    config: &PostgresConfig,
    node: Uuid,
) -> Result<(), StoreError> {
    let pg = client_config(config)?;
    let (client, mut connection) = pg.connect(NoTls).await.map_err(|e| StoreError::Connect {
        target: config.redacted_url(),
        reason: describe(&e),
    })?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_string()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %describe(&e), "the listener's connection failed");
                    return;
                }
            }
        }
    });
    let listen = client
        .batch_execute(&format!("LISTEN {}", channel(config)))
        .await
        .map_err(db("listen"));
    if let Err(e) = listen {
        driver.abort();
        return Err(e);
    }
    // Anything enqueued while no one listened.
    if let Some(s) = shared.upgrade() {
        let _ = s.events.send(StoreEvent::Wake);
    }
    let mut poll = tokio::time::interval(config.poll);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            payload = rx.recv() => match payload {
                Some(payload) => {
                    let Some(s) = shared.upgrade() else { break };
                    if let Some(event) = event_of(&payload, node) {
                        let _ = s.events.send(event);
                    }
                }
                None => {
                    return Err(StoreError::Backend {
                        operation: "listen",
                        source: "the listening connection ended".into(),
                    });
                }
            },
            _ = poll.tick() => {
                let Some(s) = shared.upgrade() else { break };
                let _ = s.events.send(StoreEvent::Wake);
            }
        }
    }
    driver.abort();
    drop(client);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_from_others_become_events() {
        let me = Uuid::now_v7();
        let other = Uuid::now_v7();
        let job = Uuid::now_v7();
        assert_eq!(event_of(&format!("w:{other}"), me), Some(StoreEvent::Wake));
        assert_eq!(event_of(&format!("w:{me}"), me), None);
        assert_eq!(
            event_of(&format!("c:{other}:{job}"), me),
            Some(StoreEvent::CancelRequested(job))
        );
        assert_eq!(event_of(&format!("c:{other}:nope"), me), None);
        assert_eq!(event_of("x:y", me), None);
        assert_eq!(event_of("", me), None);
    }
}
