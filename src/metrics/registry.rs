//! The few metric types Troupe pushes to (everything else is read at scrape
//! time from state the runtime already keeps): counters keyed by labels and
//! fixed-bucket histograms of durations.
//!
//! Lock-free where it matters: a histogram observation is three relaxed
//! atomic adds; finding a labelled series takes a short mutex, once per job.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Bucket bounds in seconds for job waits and run times: 1 ms to 10 min.
pub(crate) const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 600.0,
];

/// A histogram of durations with fixed bucket bounds (seconds).
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative count per bucket; the last slot is `+Inf`.
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// What a histogram held when it was read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HistogramSnapshot {
    /// `(upper bound, cumulative count)`, ascending; `+Inf` is `count`.
    pub buckets: Vec<(f64, u64)>,
    /// Observations.
    pub count: u64,
    /// Sum of the observations, in seconds.
    pub sum: f64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending, in seconds).
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub(crate) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The cumulative buckets, count and sum now.
    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(self.buckets.iter())
            .map(|(&b, n)| {
                cumulative += n.load(Ordering::Relaxed);
                (b, cumulative)
            })
            .collect();
        let overflow = self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            // Read as the sum of the buckets so `+Inf` always equals the count.
            count: cumulative + overflow,
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// One [`Histogram`] per label value (e.g. per worker), created on first use.
#[derive(Debug)]
pub(crate) struct HistogramVec {
    bounds: &'static [f64],
    series: Mutex<BTreeMap<String, Arc<Histogram>>>,
}

impl HistogramVec {
    /// An empty family over `bounds`.
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        HistogramVec {
            bounds,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records `d` in the series of `label`.
    pub(crate) fn observe(&self, label: &str, d: Duration) {
        let histogram = {
            let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
            match series.get(label) {
                Some(h) => h.clone(),
                None => {
                    let h = Arc::new(Histogram::new(self.bounds));
                    series.insert(label.to_string(), h.clone());
                    h
                }
            }
        };
        histogram.observe(d);
    }

    /// Every series, by label value.
    pub(crate) fn snapshot(&self) -> Vec<(String, HistogramSnapshot)> {
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        series
            .iter()
            .map(|(k, h)| (k.clone(), h.snapshot()))
            .collect()
    }
}

/// Monotonic counters keyed by a label tuple `K`, created on first use.
#[derive(Debug)]
pub(crate) struct CounterVec<K: Ord> {
    series: Mutex<BTreeMap<K, u64>>,
}

impl<K: Ord> Default for CounterVec<K> {
    fn default() -> Self {
        CounterVec {
            series: Mutex::new(BTreeMap::new()),
        }
    }
}

impl<K: Ord + Clone> CounterVec<K> {
    /// Adds one to the series of `key`.
    pub(crate) fn inc(&self, key: K) {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        *series.entry(key).or_insert(0) += 1;
    }

    /// Every series and its value.
    pub(crate) fn snapshot(&self) -> Vec<(K, u64)> {
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        series.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inf_is_the_count() {
        let h = Histogram::new(&[0.01, 0.1, 1.0]);
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_secs(5));
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(0.01, 1), (0.1, 3), (1.0, 3)]);
        assert_eq!(s.count, 4);
        assert!((s.sum - 5.105).abs() < 1e-9);
    }

    #[test]
    fn labelled_series_are_kept_apart() {
        let v = HistogramVec::new(SECONDS_BUCKETS);
        v.observe("a", Duration::from_millis(1));
        v.observe("b", Duration::from_millis(1));
        v.observe("b", Duration::from_millis(1));
        let s = v.snapshot();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].1.count, 2);
        let c = CounterVec::default();
        c.inc(("w".to_string(), 1));
        c.inc(("w".to_string(), 1));
        assert_eq!(c.snapshot(), vec![(("w".to_string(), 1), 2)]);
    }
}
