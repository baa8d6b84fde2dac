//! [`UsageStore`] for [`SledStore`]: model-call usage on its own sled tree.
//!
//! Unlike job transitions, a usage record does not wait for its own flush:
//! it is accounting, written beside a model call that already took hundreds
//! of milliseconds, and it reaches the disk with the next group commit of any
//! writer or sled's own flush (every 500 ms). A killed process can lose the
//! usage of the calls of its last moments; budgets may then under-count by
//! those calls, which the budget check's in-flight overshoot allows anyway.
//!
//! Tree `usage` (written by the store's committer thread, one record write
//! plus one counter update per agent and provider for each batch of calls;
//! no sled batch or transaction, so nothing takes sled's batch lock):
//! - `c/<YYYY-MM-DD>/<16-byte UUID v7>` → the [`UsageRecord`]s of one
//!   written batch that day, as a JSON array, keyed by the oldest call's id
//!   (a single record as a JSON object is read too, as earlier versions
//!   wrote them);
//! - `a/<YYYY-MM-DD>/<agent>` → that agent's [`UsageTotals`] that day (JSON);
//! - `p/<YYYY-MM-DD>/<provider>` → that provider's totals that day (JSON).
//!
//! Counters are updated by compare-and-swap, so concurrent calls never lose
//! an update. The counters are written before the record; a crash between
//! the writes (before their shared flush) can leave a counter without its
//! record, never the reverse, so budgets never under-count a stored call.

use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, Utc};

use super::SledStore;
use crate::store::{DayUsage, StoreError, UsageRecord, UsageScope, UsageStore, UsageTotals};

/// The tree's name.
const USAGE: &str = "usage";
/// Call records removed per retention pass at most.
const PRUNE_CALLS_PER_PASS: usize = 10_000;

fn backend(
    operation: &'static str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::backend(operation, e)
}

fn corrupt(key: &[u8], reason: impl ToString) -> StoreError {
    StoreError::CorruptRecord {
        what: "usage",
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.to_string(),
    }
}

/// `<kind>/<YYYY-MM-DD>/`, with room for the name a scope key adds. Written
/// digit by digit rather than through chrono's `format`, which parses its
/// pattern at every call (the committer makes two keys per model call);
/// a year outside 0..=9999, which chrono writes with a sign, still goes
/// through chrono so every key stays what earlier versions wrote.
fn day_prefix(kind: u8, day: NaiveDate) -> Vec<u8> {
    let mut key = Vec::with_capacity(48);
    key.push(kind);
    key.push(b'/');
    let year = day.year();
    match u32::try_from(year) {
        Ok(year @ 0..=9999) => {
            push_digits(&mut key, year, 4);
            key.push(b'-');
            push_digits(&mut key, day.month(), 2);
            key.push(b'-');
            push_digits(&mut key, day.day(), 2);
        }
        _ => key.extend_from_slice(day.format("%Y-%m-%d").to_string().as_bytes()),
    }
    key.push(b'/');
    key
}

/// `value`'s last `width` decimal digits, zero-padded.
fn push_digits(key: &mut Vec<u8>, value: u32, width: u32) {
    for place in (0..width).rev() {
        // A digit: 0..=9, so the cast cannot truncate.
        key.push(b'0' + (value / 10u32.pow(place) % 10) as u8);
    }
}

fn scope_key(scope: &UsageScope, day: NaiveDate) -> Vec<u8> {
    match scope {
        UsageScope::Agent(a) => named_key(b'a', a, day),
        UsageScope::Provider(p) => named_key(b'p', p, day),
    }
}

/// [`scope_key`] from its parts, for the committer, which has the names
/// borrowed from the records it writes.
fn named_key(kind: u8, name: &str, day: NaiveDate) -> Vec<u8> {
    let mut key = day_prefix(kind, day);
    key.extend_from_slice(name.as_bytes());
    key
}

/// The day and scope of an `a/` or `p/` key (the inverse of
/// [`scope_key`]), or `None` when it is not one.
pub(super) fn decode_scope_key(key: &[u8]) -> Option<(NaiveDate, UsageScope)> {
    let text = std::str::from_utf8(key).ok()?;
    let (kind, rest) = text.split_at_checked(2)?;
    let (day, name) = rest.split_once('/')?;
    let day = NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    let scope = match kind {
        "a/" => UsageScope::Agent(name.to_owned()),
        "p/" => UsageScope::Provider(name.to_owned()),
        _ => return None,
    };
    Some((day, scope))
}

pub(super) fn decode_totals(key: &[u8], bytes: &[u8]) -> Result<UsageTotals, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(key, e))
}

/// Usage records not yet written to the `usage` tree. Recording a call only
/// appends here; the store's committer thread writes what is pending just
/// before each group-commit flush (and about every half second when idle),
/// folding the day totals of the whole batch into one update per key. So the
/// call's own path pays for a push, not for three sled writes with JSON
/// decoding, and the writes leave the thread that runs the actors. Reads
/// write what is pending first, so they see every recorded call.
pub(super) struct UsageBuffer {
    pending: std::sync::Mutex<Vec<UsageRecord>>,
    tree: sled::Tree,
}

impl UsageBuffer {
    pub(super) fn open(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(UsageBuffer {
            pending: std::sync::Mutex::new(Vec::new()),
            tree: db.open_tree(USAGE)?,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<UsageRecord>> {
        // Nothing panics while holding it; a list of records stays whole.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, record: UsageRecord) {
        self.lock().push(record);
    }

    /// Writes what is pending; whether there was anything.
    pub(super) fn apply(&self) -> Result<bool, StoreError> {
        let batch = {
            let mut pending = self.lock();
            if pending.is_empty() {
                return Ok(false);
            }
            // Model calls push here from the providers' thread.
            super::take_keeping_room(&mut pending)
        };
        let mut totals: std::collections::BTreeMap<Vec<u8>, UsageTotals> = Default::default();
        // The batch's calls of each day, in one record: one sled write per
        // flush instead of one per call.
        let mut by_day: std::collections::BTreeMap<NaiveDate, Vec<&UsageRecord>> =
            Default::default();
        for record in &batch {
            let day = record.day();
            if let Some(agent) = &record.agent {
                totals
                    .entry(named_key(b'a', agent, day))
                    .or_default()
                    .add(record);
            }
            totals
                .entry(named_key(b'p', &record.provider, day))
                .or_default()
                .add(record);
            by_day.entry(day).or_default().push(record);
        }
        // Counters before the calls (see the module docs).
        for (key, delta) in &totals {
            add_to(&self.tree, key, delta)?;
        }
        for (day, records) in by_day {
            write_calls(&self.tree, day, &records)?;
        }
        Ok(true)
    }

    /// [`apply`](Self::apply) for the committer thread: an error is logged,
    /// there being no caller to give it to (the records are accounting; the
    /// calls they describe have been answered).
    pub(super) fn apply_logged(&self) -> bool {
        match self.apply() {
            Ok(wrote) => wrote,
            Err(e) => {
                tracing::error!(error = %e, "could not write usage records");
                false
            }
        }
    }
}

/// Writes `records` (calls of `day`) as one batch record, keyed by the
/// oldest call's (time-ordered) id, so retention reaches the batch as soon
/// as any call in it is old enough.
fn write_calls(
    tree: &sled::Tree,
    day: NaiveDate,
    records: &[&UsageRecord],
) -> Result<(), StoreError> {
    let Some(oldest) = records.iter().map(|r| r.id).min() else {
        return Ok(());
    };
    let mut key = day_prefix(b'c', day);
    key.extend_from_slice(oldest.as_bytes());
    // A call's record is about 300 bytes of JSON: room for them up front.
    let mut value = Vec::with_capacity(records.len().saturating_mul(320));
    serde_json::to_writer(&mut value, records).map_err(|e| backend("record", e))?;
    tree.insert(key, value).map_err(|e| backend("record", e))?;
    Ok(())
}

/// The calls of one `c/` record: a batch (an array), or one call as earlier
/// versions wrote them.
pub(super) fn decode_calls(key: &[u8], value: &[u8]) -> Result<Vec<UsageRecord>, StoreError> {
    let corrupt = |e: serde_json::Error| corrupt(key, e);
    if value.first() == Some(&b'[') {
        serde_json::from_slice(value).map_err(corrupt)
    } else {
        Ok(vec![serde_json::from_slice(value).map_err(corrupt)?])
    }
}

/// When the call with time-ordered id `id` was made, in Unix milliseconds.
fn made_ms(id: &uuid::Uuid) -> Option<u64> {
    id.get_timestamp().map(|ts| {
        let (secs, nanos) = ts.to_unix();
        secs * 1000 + u64::from(nanos) / 1_000_000
    })
}

/// Adds `delta` to the totals under `key` (a compare-and-swap loop: a read
/// elsewhere may be applying another batch at the same time).
fn add_to(tree: &sled::Tree, key: &[u8], delta: &UsageTotals) -> Result<(), StoreError> {
    loop {
        let old = tree.get(key).map_err(|e| backend("record", e))?;
        let mut totals = match &old {
            Some(bytes) => decode_totals(key, bytes)?,
            None => UsageTotals::default(),
        };
        totals.merge(delta);
        let new = serde_json::to_vec(&totals).map_err(|e| backend("record", e))?;
        let swapped = tree
            .compare_and_swap(key, old, Some(new))
            .map_err(|e| backend("record", e))?;
        if swapped.is_ok() {
            return Ok(());
        }
    }
}

impl SledStore {
    /// The `usage` tree, with every pending record written to it (unless
    /// the store has failed: then it takes no writes, and reads see what was
    /// written before).
    pub(super) fn usage_tree(&self) -> Result<&sled::Tree, StoreError> {
        if self.writable().is_ok() {
            self.inner.usage.apply()?;
        }
        Ok(&self.inner.usage.tree)
    }

    /// Removes the per-call records made before `cutoff`; the day totals
    /// stay. Retention calls it with the jobs' `max_age`: a call's record
    /// lives as long as the job it served (whose result carries its usage),
    /// so a daemon's usage log does not grow without end. Batch keys sort by
    /// day and then by their oldest call's time-ordered (v7) id, so the scan
    /// stops at the first batch young enough to keep whole; a batch that is
    /// only partly old is written again with its young calls.
    /// A pass looks at about [`PRUNE_CALLS_PER_PASS`] calls at most (it
    /// ends after the batch that reaches it), so a first pass over a large
    /// backlog does not hold up the scheduler; the next pass goes on.
    pub(super) fn prune_usage_calls(&self, cutoff: DateTime<Utc>) -> Result<usize, StoreError> {
        let tree = self.usage_tree()?;
        let cutoff_ms = u64::try_from(cutoff.timestamp_millis()).unwrap_or(0);
        let is_young = |id: &uuid::Uuid| made_ms(id).is_some_and(|ms| ms >= cutoff_ms);
        let mut removed = 0;
        // Calls looked at (kept or removed): the bound on a pass's work.
        let mut seen = 0;
        for entry in tree.scan_prefix(b"c/") {
            if seen >= PRUNE_CALLS_PER_PASS {
                break;
            }
            let (key, value) = entry.map_err(|e| backend("prune calls", e))?;
            let oldest = key
                .len()
                .checked_sub(16)
                .and_then(|start| uuid::Uuid::from_slice(&key[start..]).ok());
            if oldest.as_ref().is_some_and(is_young) {
                break;
            }
            // Older, or a key whose time cannot be read (not ours to keep
            // either: no reader could decode it as calls); a record that
            // cannot be decoded counts as one call removed.
            let calls = decode_calls(&key, &value).unwrap_or_default();
            seen += calls.len().max(1);
            let young: Vec<&UsageRecord> = calls.iter().filter(|c| is_young(&c.id)).collect();
            // The young calls first, under their own (younger) key: a crash
            // between the two writes leaves them twice, which the next pass
            // repairs, never not at all.
            if let Some(first) = young.first() {
                write_calls(tree, first.day(), &young)?;
            }
            tree.remove(&key).map_err(|e| backend("prune calls", e))?;
            removed += calls.len().max(1) - young.len();
        }
        Ok(removed)
    }
}

#[async_trait]
impl UsageStore for SledStore {
    async fn record(&self, record: &UsageRecord) -> Result<(), StoreError> {
        self.writable()?;
        self.inner.usage.push(record.clone());
        Ok(())
    }

    async fn totals(&self, scope: &UsageScope, day: NaiveDate) -> Result<UsageTotals, StoreError> {
        let key = scope_key(scope, day);
        match self
            .usage_tree()?
            .get(&key)
            .map_err(|e| backend("totals", e))?
        {
            Some(bytes) => decode_totals(&key, &bytes),
            None => Ok(UsageTotals::default()),
        }
    }

    async fn day_usage(&self, day: NaiveDate) -> Result<DayUsage, StoreError> {
        let tree = self.usage_tree()?;
        let mut out = DayUsage {
            day: Some(day),
            ..DayUsage::default()
        };
        for kind in [b'a', b'p'] {
            let prefix = day_prefix(kind, day);
            for entry in tree.scan_prefix(&prefix) {
                let (key, value) = entry.map_err(|e| backend("day usage", e))?;
                let name = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                let totals = decode_totals(&key, &value)?;
                if kind == b'a' {
                    out.by_agent.insert(name, totals);
                } else {
                    out.by_provider.insert(name, totals);
                }
            }
        }
        Ok(out)
    }

    async fn calls(&self, day: NaiveDate) -> Result<Vec<UsageRecord>, StoreError> {
        let prefix = day_prefix(b'c', day);
        let mut calls = Vec::new();
        for entry in self.usage_tree()?.scan_prefix(&prefix) {
            let (key, value) = entry.map_err(|e| backend("calls", e))?;
            calls.extend(decode_calls(&key, &value)?);
        }
        Ok(calls)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Days, NaiveDate};

    use super::day_prefix;

    /// The digit-by-digit prefix is the one chrono's `format` wrote (keys
    /// stored by earlier versions are found), every day of 1999–2001 and
    /// at the ends of chrono's range, where the year has a sign or five
    /// digits.
    #[test]
    fn day_prefixes_are_what_chrono_formats() {
        let chrono_prefix =
            |kind: u8, day: NaiveDate| format!("{}/{}/", kind as char, day.format("%Y-%m-%d"));
        let mut days: Vec<NaiveDate> = Vec::new();
        let mut day = NaiveDate::from_ymd_opt(1999, 1, 1).expect("a date");
        let end = NaiveDate::from_ymd_opt(2002, 1, 1).expect("a date");
        while day < end {
            days.push(day);
            day = day.checked_add_days(Days::new(1)).expect("a date");
        }
        for (y, m, d) in [
            (0, 1, 1),
            (9999, 12, 31),
            (10000, 1, 1),
            (-1, 6, 30),
            (5, 3, 9),
        ] {
            days.push(NaiveDate::from_ymd_opt(y, m, d).expect("a date"));
        }
        days.push(NaiveDate::MIN);
        days.push(NaiveDate::MAX);
        for day in days {
            for kind in [b'a', b'p', b'c'] {
                assert_eq!(
                    String::from_utf8(day_prefix(kind, day)).expect("ASCII"),
                    chrono_prefix(kind, day),
                    "{day}"
                );
            }
        }
    }
}
