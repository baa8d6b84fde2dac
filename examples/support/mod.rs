//! What the benchmarks share: process figures from /proc, and a model server
//! in a child process (so that its CPU is not counted with ours).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The whole number in environment variable `name`, if it is set; a value
/// that is not one (`what` says what it counts) is an error naming it, not
/// a silent default.
pub fn env_number(name: &str, what: &str) -> Result<Option<u64>, String> {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}={text}: not a whole number of {what}")),
        Err(_) => Ok(None),
    }
}

/// CPU time of this process, all threads, live or exited.
pub fn cpu_time() -> Duration {
    // The process clock counts threads that have exited too (a stopped
    // runtime's threads), unlike a sum over `/proc/self/task`.
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } == 0;
    if !ok {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// On-CPU time per thread name (threads of one name summed), for seeing
/// where a benchmark's CPU goes.
pub fn cpu_by_thread() -> std::collections::BTreeMap<String, Duration> {
    let mut by_name = std::collections::BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            let mut name = std::fs::read_to_string(t.path().join("comm"))
                .unwrap_or_default()
                .trim()
                .to_string();
            // actix names every arbiter thread alike; tell them apart.
            if name.starts_with("actix-rt") {
                name = format!("actix-rt/{}", t.file_name().to_string_lossy());
            }
            let ns: u64 = std::fs::read_to_string(t.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
                .unwrap_or(0);
            *by_name.entry(name).or_insert(Duration::ZERO) += Duration::from_nanos(ns);
        }
    }
    by_name
}

/// What each thread name spent between two [`cpu_by_thread`] readings,
/// divided by `n`, largest first.
pub fn cpu_split(
    before: &std::collections::BTreeMap<String, Duration>,
    after: &std::collections::BTreeMap<String, Duration>,
    n: u32,
) -> Vec<(String, Duration)> {
    let mut split: Vec<(String, Duration)> = after
        .iter()
        .map(|(name, t)| {
            let b = before.get(name).copied().unwrap_or(Duration::ZERO);
            (name.clone(), t.saturating_sub(b) / n.max(1))
        })
        .filter(|(_, d)| !d.is_zero())
        .collect();
    split.sort_by_key(|s| std::cmp::Reverse(s.1));
    split
}

/// Bytes this process has handed to `write`-like calls so far (`wchar`).
pub fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Resident memory now, in MiB.
pub fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

/// Resident anonymous memory (heap and stacks) now, in MiB: what a leak
/// would grow, without the executable's pages (`RssFile`), which only grow
/// as code runs for the first time.
pub fn rss_anon_mib() -> f64 {
    status_mib("RssAnon:")
}

/// Resident file-backed memory (mostly the executable's code) now, in MiB.
pub fn rss_file_mib() -> f64 {
    status_mib("RssFile:")
}

/// Heap bytes in use as glibc's allocator counts them (`mallinfo2`:
/// `uordblks + hblkhd`), in MiB: what the program holds, apart from what
/// the allocator keeps for reuse. RSS can creep while this stays flat
/// (fragmentation, arenas kept per thread); a leak grows both.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn heap_in_use_mib() -> f64 {
    #[repr(C)]
    struct Mallinfo2 {
        arena: usize,
        ordblks: usize,
        smblks: usize,
        hblks: usize,
        hblkhd: usize,
        usmblks: usize,
        fsmblks: usize,
        uordblks: usize,
        fordblks: usize,
        keepcost: usize,
    }
    extern "C" {
        fn mallinfo2() -> Mallinfo2;
    }
    // SAFETY: glibc's `mallinfo2` takes nothing and returns a plain struct
    // of this layout (glibc ≥ 2.33).
    let info = unsafe { mallinfo2() };
    (info.uordblks + info.hblkhd) as f64 / (1024.0 * 1024.0)
}

/// Not measured off glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap_in_use_mib() -> f64 {
    0.0
}

/// Peak resident memory, in MiB.
pub fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

/// Starts a new peak for [`peak_rss_mib`] from the current RSS (Linux:
/// `5` to `/proc/self/clear_refs`), so one part of a benchmark can report
/// its own peak. Whether it worked.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Open file descriptors of this process.
pub fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// This same executable started with `args` as a server: it prints its URI
/// on one line and runs until its stdin closes (on drop).
pub struct ChildServer {
    child: Child,
    /// Where it listens.
    pub uri: String,
}

impl ChildServer {
    /// Starts `current_exe args…` and reads the URI it prints.
    pub fn start(args: &[&str]) -> Result<Self, Box<dyn std::error::Error>> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("no child stdout")?).read_line(&mut line)?;
        Ok(ChildServer {
            child,
            uri: line.trim().to_string(),
        })
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// In the child: blocks until the parent closes stdin.
pub async fn until_stdin_closes() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await;
}

/// The mean of the histogram `family` of the `bench` worker in the
/// Prometheus text `metrics`, in milliseconds (0 when it has none).
pub fn mean_ms(metrics: &str, family: &str) -> f64 {
    let sample = |suffix: &str| {
        let name = format!("{family}_{suffix}{{worker=\"bench\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name.as_str()))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    1e3 * sample("sum") / sample("count").max(1.0)
}
