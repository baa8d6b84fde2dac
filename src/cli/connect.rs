//! Choosing the way to the data: the one place the CLI tells a running
//! daemon from a data directory it may open itself.
//!
//! A daemon holds the sled store alone, so while it runs the CLI's job,
//! task, memory, pause and status commands go through its control API: to
//! the `--server URL` given, or, when the data directory is held, to the
//! address the daemon wrote into `daemon.json` beside its store. With no
//! daemon the CLI opens the store itself, and starts the runtime on it only
//! for what needs one (`task --wait`).

use std::path::{Path, PathBuf};

use crate::api::{Control, ControlError, LocalControl, RemoteControl, StoreControl};
use crate::config::TroupeConfig;
use crate::runtime::Troupe;
use crate::store::StoreError;

use super::{CliError, Global};

/// The file, in the data directory, where a running daemon says where its
/// control API listens. Removed when it stops; a stale one (after a kill) is
/// harmless: the store is no longer held, so it is not read.
pub(super) const DAEMON_FILE: &str = "daemon.json";

/// Where a daemon's file for `data_dir` lives.
pub(super) fn daemon_file(data_dir: &Path) -> PathBuf {
    data_dir.join(DAEMON_FILE)
}

/// Writes the daemon file (best effort: without it, `--server` still works).
/// A daemon bound to every address (`0.0.0.0`, `[::]`) is written as
/// reachable on loopback, a name it answers to.
///
/// Written beside it and renamed into place, so the file is whole whenever
/// it exists: a CLI command run while the daemon starts would otherwise
/// find it empty, take the daemon for absent, and fail on the held store.
pub(super) fn write_daemon_file(data_dir: &Path, url: &str) {
    let url = on_loopback(url);
    let body = serde_json::json!({ "url": url, "pid": std::process::id() });
    let file = daemon_file(data_dir);
    // One name, not one per process: only the daemon holding the store
    // writes here, and a file a kill left half made is simply written over.
    let partial = data_dir.join(format!("{DAEMON_FILE}.partial"));
    let written =
        std::fs::write(&partial, body.to_string()).and_then(|()| std::fs::rename(&partial, &file));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        tracing::warn!(error = %e, "could not write daemon.json; use --server to reach this daemon");
    }
}

/// `url` with an unspecified address (`0.0.0.0`, `[::]`) replaced by the
/// loopback one.
fn on_loopback(url: &str) -> String {
    use std::net::{Ipv4Addr, Ipv6Addr};
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return url.to_string();
    };
    let host = parsed.host_str().unwrap_or("");
    let loopback: std::net::IpAddr = match host.trim_matches(['[', ']']).parse() {
        Ok(std::net::IpAddr::V4(ip)) if ip.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        Ok(std::net::IpAddr::V6(ip)) if ip.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        _ => return url.to_string(),
    };
    let _ = parsed.set_ip_host(loopback);
    parsed.as_str().trim_end_matches('/').to_string()
}

/// Removes the daemon file at shutdown.
pub(super) fn remove_daemon_file(data_dir: &Path) {
    let _ = std::fs::remove_file(daemon_file(data_dir));
}

/// The address a running daemon wrote for `data_dir`, if any.
fn daemon_url(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(daemon_file(data_dir)).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["url"].as_str().map(str::to_string)
}

/// What a command needs when no daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// Reading and queueing: the store is enough.
    Store,
    /// Running work here (`task --wait`): the runtime, started on the store.
    Runtime,
}

/// The control API that reaches the data: a daemon's (`--server`, or the
/// one holding the data directory), else the data directory itself, with
/// the runtime started on it when `need` says so.
pub(super) async fn connect(
    global: &Global,
    config: &TroupeConfig,
    need: Need,
) -> Result<Box<dyn Control>, CliError> {
    let remote = |url: &str| -> Result<Box<dyn Control>, CliError> {
        let token = super::token::for_client(global, config, url);
        Ok(Box::new(RemoteControl::new(url, token)?))
    };
    if let Some(url) = &global.server {
        return remote(url);
    }
    let dir = global.data_dir_for(config);
    let mut section = config.store.clone();
    section.data_dir = dir.clone();
    // A runtime started here takes part in a cluster as a node; a command
    // that only reads and tells is a client of it.
    let store = match crate::runtime::connect_store(&section, matches!(need, Need::Runtime)).await {
        Ok(store) => store,
        Err(locked @ StoreError::Locked { .. }) => {
            return match daemon_url(&dir) {
                Some(url) => remote(&url),
                None => Err(locked.into()),
            }
        }
        Err(e) => return Err(e.into()),
    };
    Ok(match need {
        Need::Store => Box::new(StoreControl::new(store, config.clone())),
        Need::Runtime => {
            let troupe = Troupe::builder(config.clone())
                .store_arc(store)
                .start()
                .await?;
            Box::new(LocalControl::owning(troupe).source("cli"))
        }
    })
}

/// Runs `op` against the control API that reaches the data, then lets
/// that go (a runtime started for it is drained and stopped, also when
/// `op` failed).
pub(super) fn call<T>(
    global: &Global,
    config: &TroupeConfig,
    need: Need,
    op: impl AsyncFnOnce(&dyn Control) -> Result<T, ControlError>,
) -> Result<T, CliError> {
    troupe_actors::run_system(async move {
        let control = connect(global, config, need).await?;
        let result = op(control.as_ref()).await;
        control.close().await?;
        Ok(result?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader never finds the file empty or half written, however often
    /// the daemon writes it: what a CLI command run while the daemon starts
    /// (or `troupe run` announcing a new address) would otherwise meet.
    #[test]
    fn the_daemon_file_is_whole_whenever_it_exists() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        write_daemon_file(&data, "http://127.0.0.1:1");
        let (done, reads) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let reader = {
            let (data, done, reads) = (data.clone(), done.clone(), reads.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    let text = std::fs::read_to_string(daemon_file(&data)).unwrap();
                    let read: Result<serde_json::Value, _> = serde_json::from_str(&text);
                    assert!(
                        read.is_ok(),
                        "read a daemon file that is not whole: {text:?}"
                    );
                    reads.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        // At least 3,000 writes, and on until the reader has read often
        // enough to have met a half-written file if there were one (or
        // has stopped: it met one).
        let mut port = 2u32;
        while (port < 3_000 || reads.load(Ordering::SeqCst) < 1_000) && !reader.is_finished() {
            write_daemon_file(&data, &format!("http://127.0.0.1:{port}"));
            port += 1;
        }
        done.store(true, Ordering::SeqCst);
        reader.join().unwrap();
        let last = format!("http://127.0.0.1:{}", port - 1);
        assert_eq!(daemon_url(&data), Some(last));
        let left: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [DAEMON_FILE], "no partial file is left behind");
    }
}
