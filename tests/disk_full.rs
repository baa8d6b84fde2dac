//! A full disk, for real: the data directory on a small tmpfs, filled with a
//! file until nothing is left, then freed. Writes must fail in bounded time
//! (never hang), the store must say it failed, `troupe run` must exit
//! non-zero so a service manager restarts it, and after the restart every
//! acknowledged job must be there.
//!
//! Mounting needs root (CAP_SYS_ADMIN). Where it is not allowed the tests
//! print why and pass, unless `TROUPE_DISK_TESTS=require` (set by `.ci/run`
//! when it runs as root), which makes a failed mount a failure.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long any one step may take before the test counts it as hung. Not a
/// timing target: the steps take milliseconds when they work.
const HUNG: Duration = Duration::from_secs(90);

/// The size of the filesystem the data directory lives on.
const FS_SIZE: &str = "6m";

/// The control API's token, given to the daemons these tests start.
const TOKEN: &str = "disk-full-test-token";

/// A client that sends [`TOKEN`].
fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {TOKEN}").parse().expect("a header value");
    headers.insert(reqwest::header::AUTHORIZATION, bearer);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("a client")
}

/// A tmpfs mounted on a fresh temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one, or says why it cannot and returns `None` (a failure
    /// instead when `TROUPE_DISK_TESTS=require`).
    fn mount(test: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("a mount point");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={FS_SIZE},mode=0755")])
            .arg("tmpfs")
            .arg(dir.path())
            .output();
        let why = match out {
            Ok(out) if out.status.success() => return Some(Tmpfs { dir }),
            Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
            Err(e) => format!("cannot run mount: {e}"),
        };
        let require = std::env::var("TROUPE_DISK_TESTS").is_ok_and(|v| v == "require");
        assert!(
            !require,
            "{test}: TROUPE_DISK_TESTS=require but mounting a tmpfs failed: {why}"
        );
        // Straight to stderr, past the test harness's capture, so the skip
        // shows in a normal `cargo test` run.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: mounting a tmpfs is not allowed here ({why}); run as root to test a full disk"
        );
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a process we failed to stop): detach it lazily.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Fills the filesystem of `dir` with one file until a write fails with
/// "no space left"; returns the file.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("fill");
    let mut file = std::fs::File::create(&path).expect("create the fill file");
    for chunk in [1 << 16, 4096, 1] {
        let bytes = vec![0u8; chunk];
        loop {
            match file.write_all(&bytes) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
    }
    let _ = file.sync_all();
    path
}

/// `troupe run` on a data directory; killed (SIGKILL) if the test ends
/// while it still runs. Its log lines are kept for failure messages.
struct Daemon {
    child: Option<Child>,
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(data: &Path) -> Daemon {
        let _ = std::fs::remove_file(data.join("daemon.json"));
        let mut child = common::cli::command()
            .args(["run", "--http", "127.0.0.1:0", "--drain-timeout", "5s"])
            .arg("--data-dir")
            .arg(data)
            .env("RUST_LOG", "info")
            .env("TROUPE_HTTP_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn troupe run");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = BufReader::new(child.stderr.take().expect("stderr"));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut daemon = Daemon {
            child: Some(child),
            url: String::new(),
            log,
        };
        let deadline = Instant::now() + HUNG;
        daemon.url = loop {
            let text = std::fs::read_to_string(data.join("daemon.json")).unwrap_or_default();
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                break v["url"].as_str().expect("url").to_string();
            }
            if let Some(status) = daemon.child().try_wait().unwrap() {
                panic!("the daemon exited at start ({status}):\n{}", daemon.log());
            }
            assert!(
                Instant::now() < deadline,
                "the daemon never announced its address:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        daemon
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("running")
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn sigterm(&mut self) {
        let pid = libc::pid_t::try_from(self.child().id()).unwrap();
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    }

    /// Waits for the daemon to exit on its own, failing after [`HUNG`].
    fn wait_exit(&mut self, why: &str) -> ExitStatus {
        let deadline = Instant::now() + HUNG;
        loop {
            if let Some(status) = self.child().try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit {why} within {HUNG:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What one `POST /v1/jobs` came back with.
#[derive(Debug)]
enum Posted {
    /// 201: acknowledged, with its id.
    Acked(String),
    /// Refused: the status and the body.
    Refused(u16, Value),
    /// The daemon is gone (it stops itself once its store has failed).
    Gone,
}

/// Enqueues an `echo` job with `pad` bytes of args; fails the test when the
/// daemon does not answer within [`HUNG`].
async fn post_job(client: &reqwest::Client, url: &str, pad: usize) -> Posted {
    // Due in an hour, so the engine runs none of them: the only writes that
    // can meet the full disk are these requests' own. An `echo` job
    // completing first would fail the store and stop the daemon before any
    // request was refused, and the refusal is what these tests are about.
    let body = json!({
        "workerName": "echo",
        "args": {"pad": "x".repeat(pad)},
        "delayMs": 3_600_000,
    });
    let sent = client
        .post(format!("{url}/v1/jobs"))
        .json(&body)
        .timeout(HUNG)
        .send()
        .await;
    let resp = match sent {
        Ok(resp) => resp,
        Err(e) if e.is_timeout() => panic!("POST /v1/jobs hung for {HUNG:?}"),
        // Refused, or reset in flight: the daemon stopped (it does once its
        // store has failed), with this request sent or half sent. What the
        // test checks after (its exit code, nothing acknowledged lost)
        // tells a stop from a crash.
        Err(e) if e.is_connect() || e.is_request() => return Posted::Gone,
        Err(e) => panic!("POST /v1/jobs: {e}"),
    };
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    match status {
        201 => Posted::Acked(body["id"].as_str().expect("id").to_string()),
        _ => Posted::Refused(status, body),
    }
}

/// Enqueues until the store refuses (`Some`: the status and body) or the
/// daemon is gone (`None`), adding the acknowledged ids to `acked`. Fails
/// the test if a request hangs or nothing is ever refused.
async fn post_until_refused(
    client: &reqwest::Client,
    url: &str,
    pad: usize,
    acked: &mut Vec<String>,
) -> Option<(u16, Value)> {
    for _ in 0..100_000 {
        match post_job(client, url, pad).await {
            Posted::Acked(id) => acked.push(id),
            Posted::Refused(status, body) => return Some((status, body)),
            Posted::Gone => return None,
        }
    }
    panic!("the store never refused a write on a full disk");
}

/// The ids among `acked` that the store does not have.
async fn lost(client: &reqwest::Client, url: &str, acked: &[String]) -> Vec<String> {
    let mut lost = Vec::new();
    for id in acked {
        let resp = client
            .get(format!("{url}/v1/jobs/{id}"))
            .timeout(HUNG)
            .send()
            .await
            .expect("GET /v1/jobs/{id}");
        if resp.status() != 200 {
            lost.push(id.clone());
        }
    }
    lost
}

/// The fill-and-free sequence against `troupe run`: fill the disk, write
/// until the store fails (503 naming why, in bounded time), free the space,
/// the daemon exits non-zero by itself; restarted, it has every
/// acknowledged job and takes writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_and_free_fails_writes_fast_the_daemon_exits_and_nothing_acknowledged_is_lost() {
    let Some(fs) = Tmpfs::mount("fill_and_free") else {
        return;
    };
    let data = fs.path().join("data");
    let client = client();
    let mut daemon = Daemon::start(&data);
    let mut acked = Vec::new();
    for _ in 0..20 {
        match post_job(&client, &daemon.url, 2_000).await {
            Posted::Acked(id) => acked.push(id),
            other => panic!("refused before the disk was full: {other:?}"),
        }
    }

    let filled = fill(fs.path());
    let full_at = Instant::now();
    let (status, body) = post_until_refused(&client, &daemon.url, 2_000, &mut acked)
        .await
        .expect("the first refusal is an answer");
    let time_to_fail = full_at.elapsed();
    let refused_at = Instant::now();
    assert_eq!(
        status,
        503,
        "a failed store is 503: {body}\n{}",
        daemon.log()
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("No space left") || message.contains("os error 28"),
        "the reason is named: {message}"
    );

    std::fs::remove_file(&filled).unwrap();
    let freed_at = Instant::now();
    let exit = daemon.wait_exit("after its store failed");
    let time_to_exit = refused_at.elapsed();
    assert!(
        !exit.success(),
        "a daemon whose store failed exits non-zero ({exit}):\n{}",
        daemon.log()
    );

    let mut daemon = Daemon::start(&data);
    let lost = lost(&client, &daemon.url, &acked).await;
    let writes_again = matches!(
        post_job(&client, &daemon.url, 2_000).await,
        Posted::Acked(_)
    );
    let time_to_recover = freed_at.elapsed();
    println!(
        "fill and free: time to fail {time_to_fail:?}, daemon exited within {time_to_exit:?} of the refusal, time to recover (free to a write acknowledged by the restarted daemon) {time_to_recover:?}, acknowledged {}, lost {}",
        acked.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged jobs lost: {lost:?}");
    assert!(
        writes_again,
        "the restarted daemon takes writes:\n{}",
        daemon.log()
    );
    daemon.sigterm();
    let exit = daemon.wait_exit("after SIGTERM");
    assert!(
        exit.success(),
        "a clean stop exits 0 ({exit}):\n{}",
        daemon.log()
    );
}

/// Jobs too large for sled's log go to its blob files; sled 0.34.7 leaves
/// its log waiting for ever when such a write meets a full disk, so flushes
/// never end. The writes must still be answered, and SIGTERM must still stop
/// the daemon; after a restart nothing acknowledged is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_writes_neither_hang_requests_nor_keep_the_daemon_from_stopping() {
    let Some(fs) = Tmpfs::mount("stuck_writes") else {
        return;
    };
    let data = fs.path().join("data");
    let client = client();
    let mut daemon = Daemon::start(&data);
    let mut acked = Vec::new();
    for _ in 0..3 {
        match post_job(&client, &daemon.url, 150_000).await {
            Posted::Acked(id) => acked.push(id),
            other => panic!("refused before the disk was full: {other:?}"),
        }
    }
    let filled = fill(fs.path());
    let full_at = Instant::now();
    // Several writers at once, as a busy daemon has them.
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            let url = daemon.url.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let refused = post_until_refused(&client, &url, 150_000, &mut acked).await;
                (acked, refused)
            })
        })
        .collect();
    let mut answered = 0;
    for writer in writers {
        let (more, refused) = writer.await.unwrap();
        acked.extend(more);
        if let Some((status, body)) = refused {
            assert_eq!(status, 503, "{body}");
            answered += 1;
        }
    }
    assert!(
        answered > 0,
        "a refusal is answered (503) before the daemon goes:\n{}",
        daemon.log()
    );
    let time_to_fail = full_at.elapsed();
    std::fs::remove_file(&filled).unwrap();
    daemon.sigterm();
    let exit = daemon.wait_exit("after SIGTERM with its writes stuck");
    assert!(!exit.success(), "its store failed: non-zero ({exit})");

    let time_to_exit = full_at.elapsed();
    let mut daemon = Daemon::start(&data);
    let lost = lost(&client, &daemon.url, &acked).await;
    println!(
        "stuck writes: every writer answered within {time_to_fail:?} of the disk filling, the daemon gone within {time_to_exit:?}, acknowledged {}, lost {}",
        acked.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged jobs lost: {lost:?}");
    daemon.sigterm();
    assert!(daemon.wait_exit("after SIGTERM").success());
}

/// In process, on the same kind of disk: once a write met the full disk,
/// `/readyz` fails and names the store, while reads go on (a daemon would
/// exit; this one is kept to ask it).
#[test]
fn readiness_fails_once_a_full_disk_has_failed_the_store() {
    let Some(fs) = Tmpfs::mount("readiness") else {
        return;
    };
    troupe_actors::run_system(async {
        let store =
            troupe::sled::SledStore::open(troupe::sled::SledConfig::new(fs.path().join("data")))
                .unwrap();
        let troupe = troupe::Troupe::builder(common::daemon::config())
            .store(store)
            .start()
            .await
            .unwrap();
        let server = troupe::http::ControlServer::start(
            troupe.clone(),
            troupe::http::HttpConfig {
                addr: "127.0.0.1:0".into(),
                token: troupe::http::HttpToken::new(TOKEN).expect("a token"),
                ..troupe::http::HttpConfig::default()
            },
        )
        .unwrap();
        let url = format!("http://{}", server.local_addr());
        let client = client();
        let ready = |client: reqwest::Client, url: String| async move {
            let resp = client.get(format!("{url}/readyz")).send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        };
        assert_eq!(ready(client.clone(), url.clone()).await.0, 200);
        let mut acked = Vec::new();
        let filled = fill(fs.path());
        let (status, body) = post_until_refused(&client, &url, 2_000, &mut acked)
            .await
            .expect("an answer");
        assert_eq!(status, 503, "{body}");
        let (status, body) = ready(client.clone(), url.clone()).await;
        assert_eq!(status, 503, "not ready: {body}");
        assert_eq!(body["store"]["ok"], false, "{body}");
        for id in &acked {
            let resp = client
                .get(format!("{url}/v1/jobs/{id}"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "reads go on");
        }
        std::fs::remove_file(filled).unwrap();
        server.stop().await;
        let _ = troupe.shutdown().await;
    });
}
