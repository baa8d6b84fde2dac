//! Jobs ended per minute over the last hour: a ring of 60 one-minute
//! slots, so the Studio's overview can draw throughput and failures
//! without scanning the store (Prometheus counters say how many in all,
//! not when).

use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

/// Minutes kept.
pub(crate) const HISTORY_MINUTES: usize = 60;

/// One minute's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MinuteCounts {
    /// Minutes since the Unix epoch (UTC) this slot counts.
    pub minute: i64,
    /// Jobs that ended completed.
    pub completed: u64,
    /// Jobs that ended failed.
    pub failed: u64,
}

/// The ring: slot `minute % 60` holds that minute's counts, reset when a
/// later minute takes the slot over.
#[derive(Debug)]
pub(crate) struct MinuteHistory {
    slots: Mutex<[MinuteCounts; HISTORY_MINUTES]>,
}

impl Default for MinuteHistory {
    fn default() -> Self {
        MinuteHistory {
            slots: Mutex::new([MinuteCounts::default(); HISTORY_MINUTES]),
        }
    }
}

impl MinuteHistory {
    /// Counts one job ended at `at`, `failed` or completed.
    pub(crate) fn record(&self, at: DateTime<Utc>, failed: bool) {
        let minute = at.timestamp().div_euclid(60);
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut slots[minute.rem_euclid(HISTORY_MINUTES as i64) as usize];
        if slot.minute != minute {
            *slot = MinuteCounts {
                minute,
                ..MinuteCounts::default()
            };
        }
        if failed {
            slot.failed += 1;
        } else {
            slot.completed += 1;
        }
    }

    /// The last [`HISTORY_MINUTES`] minutes up to `now`'s, oldest first,
    /// zero where nothing ended.
    pub(crate) fn last_hour(&self, now: DateTime<Utc>) -> Vec<MinuteCounts> {
        let current = now.timestamp().div_euclid(60);
        let slots = *self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        (0..HISTORY_MINUTES as i64)
            .rev()
            .map(|back| {
                let minute = current - back;
                let slot = slots[minute.rem_euclid(HISTORY_MINUTES as i64) as usize];
                if slot.minute == minute {
                    slot
                } else {
                    MinuteCounts {
                        minute,
                        ..MinuteCounts::default()
                    }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn counts_by_minute_and_forgets_after_an_hour() {
        let h = MinuteHistory::default();
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 5).unwrap();
        h.record(t0, false);
        h.record(t0, true);
        h.record(t0 + chrono::Duration::seconds(61), false);
        let hour = h.last_hour(t0 + chrono::Duration::seconds(61));
        assert_eq!(hour.len(), HISTORY_MINUTES);
        assert_eq!((hour[58].completed, hour[58].failed), (1, 1));
        assert_eq!((hour[59].completed, hour[59].failed), (1, 0));
        // An hour later the slot of t0 is reused, not added to.
        let later = t0 + chrono::Duration::minutes(60);
        h.record(later, false);
        let hour = h.last_hour(later);
        assert_eq!((hour[59].completed, hour[59].failed), (1, 0));
        assert_eq!(hour.iter().map(|m| m.completed).sum::<u64>(), 2);
    }
}
