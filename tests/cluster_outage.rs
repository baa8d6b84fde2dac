//! A node that loses its database: a real `troupe run` reaches PostgreSQL
//! through a TCP proxy this test cuts (every connection dropped, new ones
//! refused) and restores. While cut, `/readyz` fails; once restored, the
//! same process (no restart) is ready again and works off what was queued
//! meanwhile. Skipped, saying so, without `$TROUPE_TEST_DATABASE_URL`.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use troupe::job::JobStatus;
use troupe::store::prelude::*;

use common::cluster::{database_url, sleep_jobs, until, Cluster, CLUSTER_DEADLINE};

/// A TCP proxy to `upstream` that can be cut and restored.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    _accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let (cut, links) = (cut.clone(), links.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        continue; // dropped: the connection is refused
                    }
                    let link = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    links.lock().unwrap().push(link);
                }
            }
        });
        Proxy {
            addr,
            cut,
            links,
            _accept: accept,
        }
    }

    /// Drops every connection and refuses new ones.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// The node's `/readyz` status code, or `None` when it does not answer.
async fn readyz(client: &reqwest::Client, base: &str) -> Option<u16> {
    client
        .get(format!("{base}/readyz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_loses_its_database_is_not_ready_and_resumes_when_it_is_back() {
    let Some(url) = database_url("a_node_that_loses_its_database") else {
        return;
    };
    // The node's URL goes through the proxy; the test's own store does not.
    let direct: tokio_postgres::Config = url.parse().unwrap();
    let port = direct.get_ports().first().copied().unwrap_or(5432);
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], port))).await;
    let mut cluster = Cluster::new(
        &url,
        "lease = \"2s\"\nheartbeat = \"500ms\"\npoll = \"250ms\"\npoolSize = 4",
        "",
    );
    let through_proxy = url.replacen(&format!(":{port}/"), &format!(":{}/", proxy.addr.port()), 1);
    assert_ne!(through_proxy, url, "the test URL names its port");
    let config = std::fs::read_to_string(&cluster.config_file).unwrap();
    std::fs::write(
        &cluster.config_file,
        config.replacen(&url, &through_proxy, 1),
    )
    .unwrap();
    let store = cluster.store().await;
    cluster.start(1, &["--http", "127.0.0.1:0"]);
    let daemon_file = cluster.dir.path().join("node0").join("daemon.json");
    let base = until("the node serves its API", CLUSTER_DEADLINE, || async {
        let text = std::fs::read_to_string(&daemon_file)
            .map_err(|e| format!("{e}\n{}", cluster.logs()))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        v["url"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| text.clone())
    })
    .await;
    let http = reqwest::Client::new();
    until("the node is ready", CLUSTER_DEADLINE, || async {
        match readyz(&http, &base).await {
            Some(200) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    proxy.cut();
    until(
        "the node says it is not ready",
        CLUSTER_DEADLINE,
        || async {
            match readyz(&http, &base).await {
                Some(503) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    // Work arrives while the node cannot see it.
    let jobs = sleep_jobs(50, 1, 3);
    let ids: Vec<_> = jobs.iter().map(|j| j.id).collect();
    store.insert_many(jobs).await.unwrap();
    let counts = store.counts().await.unwrap();
    assert_eq!(
        counts.status(JobStatus::Queued),
        50,
        "nothing ran while cut"
    );

    proxy.restore();
    until("the same node is ready again", CLUSTER_DEADLINE, || async {
        match readyz(&http, &base).await {
            Some(200) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    until(
        "the jobs queued meanwhile complete",
        CLUSTER_DEADLINE,
        || async {
            let done = store.counts().await.unwrap().status(JobStatus::Completed);
            if done == 50 {
                Ok(())
            } else {
                Err(format!("{done} of 50 completed"))
            }
        },
    )
    .await;
    for id in ids {
        let job = store.get_job(id).await.unwrap().unwrap();
        assert_eq!((job.status, job.attempt), (JobStatus::Completed, 1));
    }
    assert!(
        cluster.nodes[0].child.try_wait().unwrap().is_none(),
        "the node kept running: no restart was needed"
    );
    assert_eq!(cluster.nodes[0].starts, 1);
}
