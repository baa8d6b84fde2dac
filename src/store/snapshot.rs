//! Snapshots: everything a store holds, record by record, as plain data,
//! so that one adapter's data can be copied whole into another (`troupe
//! migrate --from sled:DIR --to postgres://…`).
//!
//! - An adapter that can be **read whole** implements [`SnapshotExport`]:
//!   it hands every record to a [`SnapshotSink`] in [`SnapshotChunk`]s,
//!   kind by kind, as stored (every job status, archived memories, the
//!   idempotency keys of memories and messages, usage day totals kept
//!   apart from the calls …).
//! - An adapter that can be **written whole** implements [`SnapshotImport`]:
//!   it takes another's export and stores the records as they are (ids,
//!   statuses, attempts, timestamps, archived flags and keys preserved).
//!   Unlike [`super::JobStore::insert`] it does not ask a job to be new and
//!   queued; it still refuses what does not decode (the exporter decodes
//!   every record, and a record that does not fails the export naming it).
//!
//! # Memory
//!
//! Records travel in chunks of at most [`CHUNK_RECORDS`] records and about
//! [`CHUNK_BYTES`] bytes of encoded records ([`Batch`] cuts them), so an
//! export → import holds a few chunks at a time, not the store.
//! [`Snapshot`] (a `Vec` per kind) collects a whole store: for tests and
//! small stores only.
//!
//! # Counts
//!
//! [`SnapshotCounts`] counts records per [`SnapshotKind`]; it is itself a
//! sink, so reading a store back into one counts what is really there
//! rather than trusting an import's own tally ([`ImportReport::verify`]).

use std::fmt;

use async_trait::async_trait;
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;

use crate::job::schedule::Schedule;
use crate::job::{Job, JobId};

use super::{
    ChatMessage, Memory, MemoryId, MessageId, PauseTarget, StoreError, UsageRecord, UsageScope,
    UsageTotals,
};

/// Most records in one [`SnapshotChunk`] cut by a [`Batch`].
pub const CHUNK_RECORDS: usize = 500;
/// A [`Batch`] is cut once its records reach about this many bytes
/// (encoded), so chunks of large records (4 MiB steps) stay few per chunk.
pub const CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// The kinds of record a snapshot holds, in the order exports send them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SnapshotKind {
    /// Jobs, every status.
    Jobs,
    /// Recurring schedules.
    Schedules,
    /// Pause entries: everything, or one worker each.
    Pauses,
    /// Memories, archived ones included.
    Memories,
    /// The idempotency keys of `remember`.
    MemoryKeys,
    /// Conversation messages.
    Messages,
    /// The idempotency keys of `append`.
    MessageKeys,
    /// Agent steps.
    Steps,
    /// The idempotency registry (`claim_key`).
    IdempotencyKeys,
    /// Recorded model calls.
    UsageCalls,
    /// Usage day totals per agent and per provider.
    UsageTotals,
}

impl SnapshotKind {
    /// Every kind, in export order.
    pub const ALL: [SnapshotKind; 11] = [
        SnapshotKind::Jobs,
        SnapshotKind::Schedules,
        SnapshotKind::Pauses,
        SnapshotKind::Memories,
        SnapshotKind::MemoryKeys,
        SnapshotKind::Messages,
        SnapshotKind::MessageKeys,
        SnapshotKind::Steps,
        SnapshotKind::IdempotencyKeys,
        SnapshotKind::UsageCalls,
        SnapshotKind::UsageTotals,
    ];

    /// The name printed for it (`jobs`, `memory keys` …).
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Jobs => "jobs",
            SnapshotKind::Schedules => "schedules",
            SnapshotKind::Pauses => "pauses",
            SnapshotKind::Memories => "memories",
            SnapshotKind::MemoryKeys => "memory keys",
            SnapshotKind::Messages => "messages",
            SnapshotKind::MessageKeys => "message keys",
            SnapshotKind::Steps => "steps",
            SnapshotKind::IdempotencyKeys => "idempotency keys",
            SnapshotKind::UsageCalls => "usage calls",
            SnapshotKind::UsageTotals => "usage totals",
        }
    }

    /// Whether an import merges this kind into what the target holds
    /// instead of adding records beside it: schedules (the source's replace
    /// the target's of the same id: a node that started once has put its
    /// config's schedules) and pauses (a worker paused in either stays
    /// paused). These do not make a target "not empty" either.
    pub fn merged(self) -> bool {
        matches!(self, SnapshotKind::Schedules | SnapshotKind::Pauses)
    }
}

impl fmt::Display for SnapshotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An idempotency key of [`super::MemoryStore::remember`] and the memory it
/// stored (which may have been forgotten since: the key stays spent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryKey {
    /// The key.
    pub key: String,
    /// The memory it stored.
    pub memory_id: MemoryId,
}

/// An idempotency key of [`super::ConversationStore::append`] and the
/// message it stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageKey {
    /// The key.
    pub key: String,
    /// The conversation of the message.
    pub conversation_id: String,
    /// The message.
    pub message_id: MessageId,
}

/// One saved agent step, its JSON as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    /// The job (agent task) it belongs to.
    pub job_id: JobId,
    /// Its index, from 0.
    pub step_index: u32,
    /// The record, one JSON value as written.
    pub json: String,
}

impl StepRecord {
    /// Checks that `json` is one JSON value (not decoded into a tree),
    /// else [`StoreError::CorruptRecord`] naming the job and step. Unlike
    /// [`super::validate_step_json`] it does not hold a copied step to
    /// today's size limit: a step stored is copied as it is.
    pub fn check(&self) -> Result<(), StoreError> {
        serde_json::from_str::<serde::de::IgnoredAny>(&self.json)
            .map(|_| ())
            .map_err(|e| StoreError::CorruptRecord {
                what: "step",
                key: format!("job {} step {}", self.job_id, self.step_index),
                reason: format!("not one JSON value: {e}"),
            })
    }
}

/// A key of the idempotency registry and the value it was claimed with.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedKey {
    /// The key.
    pub key: String,
    /// The value it was claimed with.
    pub value: Value,
}

/// One stored day total of an agent or a provider. Copied as stored, not
/// recomputed from the calls: retention drops old calls and keeps totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayTotals {
    /// The UTC day.
    pub day: NaiveDate,
    /// The agent or provider.
    pub scope: UsageScope,
    /// The sums.
    pub totals: UsageTotals,
}

/// Records of one kind, as an export hands them over.
#[derive(Debug, Clone, PartialEq)]
pub enum SnapshotChunk {
    /// Jobs as stored.
    Jobs(Vec<Job>),
    /// Schedules as stored.
    Schedules(Vec<Schedule>),
    /// Pause entries.
    Pauses(Vec<PauseTarget>),
    /// Memories, archived ones included.
    Memories(Vec<Memory>),
    /// `remember`'s idempotency keys.
    MemoryKeys(Vec<MemoryKey>),
    /// Messages.
    Messages(Vec<ChatMessage>),
    /// `append`'s idempotency keys.
    MessageKeys(Vec<MessageKey>),
    /// Agent steps.
    Steps(Vec<StepRecord>),
    /// The idempotency registry.
    IdempotencyKeys(Vec<ClaimedKey>),
    /// Recorded model calls.
    UsageCalls(Vec<UsageRecord>),
    /// Usage day totals.
    UsageTotals(Vec<DayTotals>),
}

impl SnapshotChunk {
    /// The kind of its records.
    pub fn kind(&self) -> SnapshotKind {
        match self {
            SnapshotChunk::Jobs(_) => SnapshotKind::Jobs,
            SnapshotChunk::Schedules(_) => SnapshotKind::Schedules,
            SnapshotChunk::Pauses(_) => SnapshotKind::Pauses,
            SnapshotChunk::Memories(_) => SnapshotKind::Memories,
            SnapshotChunk::MemoryKeys(_) => SnapshotKind::MemoryKeys,
            SnapshotChunk::Messages(_) => SnapshotKind::Messages,
            SnapshotChunk::MessageKeys(_) => SnapshotKind::MessageKeys,
            SnapshotChunk::Steps(_) => SnapshotKind::Steps,
            SnapshotChunk::IdempotencyKeys(_) => SnapshotKind::IdempotencyKeys,
            SnapshotChunk::UsageCalls(_) => SnapshotKind::UsageCalls,
            SnapshotChunk::UsageTotals(_) => SnapshotKind::UsageTotals,
        }
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        match self {
            SnapshotChunk::Jobs(v) => v.len(),
            SnapshotChunk::Schedules(v) => v.len(),
            SnapshotChunk::Pauses(v) => v.len(),
            SnapshotChunk::Memories(v) => v.len(),
            SnapshotChunk::MemoryKeys(v) => v.len(),
            SnapshotChunk::Messages(v) => v.len(),
            SnapshotChunk::MessageKeys(v) => v.len(),
            SnapshotChunk::Steps(v) => v.len(),
            SnapshotChunk::IdempotencyKeys(v) => v.len(),
            SnapshotChunk::UsageCalls(v) => v.len(),
            SnapshotChunk::UsageTotals(v) => v.len(),
        }
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where an export hands its records.
#[async_trait]
pub trait SnapshotSink: Send {
    /// Takes one chunk; an error stops the export, which returns it.
    async fn write(&mut self, chunk: SnapshotChunk) -> Result<(), StoreError>;
}

/// A store that can be read whole.
#[async_trait]
pub trait SnapshotExport: Send + Sync {
    /// Hands every record the store holds to `sink`, kind by kind in the
    /// order of [`SnapshotKind::ALL`], in chunks (none empty); returns how
    /// many of each it handed over. A record that cannot be decoded fails
    /// the export with the error naming it. Changes nothing.
    async fn export(&self, sink: &mut dyn SnapshotSink) -> Result<SnapshotCounts, StoreError>;
}

/// How an import treats a target that holds records already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportOptions {
    /// Import into a target that holds data already. Without it, a target
    /// holding any record of a kind that is not [`SnapshotKind::merged`]
    /// is refused with [`StoreError::NotEmpty`]. With it, the records go
    /// in beside the target's, and one whose id (or key) is already there
    /// is refused with [`StoreError::AlreadyStored`]: nothing is ever
    /// overwritten, and a refusal writes nothing at all.
    pub force: bool,
}

/// What an import did, each figure counted by the import itself; check
/// the target by reading it back ([`ImportReport::verify`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportReport {
    /// What the source's export handed over.
    pub source: SnapshotCounts,
    /// What the target held before (counted in the import's transaction).
    pub before: SnapshotCounts,
    /// Records written (for a merged kind: written or already there).
    pub copied: SnapshotCounts,
}

/// One kind's figures, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindCheck {
    /// The kind.
    pub kind: SnapshotKind,
    /// In the source.
    pub source: u64,
    /// In the target before the import.
    pub before: u64,
    /// Written by the import.
    pub copied: u64,
    /// In the target after, as read back.
    pub target: u64,
    /// Whether they agree: every source record copied, and the target
    /// holding what it held plus the copies (for a merged kind, between
    /// the copies and that sum).
    pub ok: bool,
}

impl ImportReport {
    /// Checks the import against `target`, the target's records counted
    /// after it (by reading them back): one line per kind.
    pub fn verify(&self, target: &SnapshotCounts) -> Vec<KindCheck> {
        SnapshotKind::ALL
            .into_iter()
            .map(|kind| {
                let (source, before, copied) = (
                    self.source.get(kind),
                    self.before.get(kind),
                    self.copied.get(kind),
                );
                let now = target.get(kind);
                let sum = before.saturating_add(copied);
                let ok = source == copied
                    && if kind.merged() {
                        (copied..=sum).contains(&now)
                    } else {
                        now == sum
                    };
                KindCheck {
                    kind,
                    source,
                    before,
                    copied,
                    target: now,
                    ok,
                }
            })
            .collect()
    }
}

/// A store that can be written whole.
#[async_trait]
pub trait SnapshotImport: Send + Sync {
    /// Stores every record `source` exports, as it is, in the target's
    /// transaction(s) (the adapter says which); see [`ImportOptions`] for
    /// a target that is not empty. Refuses, writing nothing, a record that
    /// does not decode.
    async fn import(
        &self,
        source: &dyn SnapshotExport,
        options: ImportOptions,
    ) -> Result<ImportReport, StoreError>;
}

/// Records per [`SnapshotKind`]. A [`SnapshotSink`] that counts what it is
/// handed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SnapshotCounts {
    counts: [u64; SnapshotKind::ALL.len()],
}

impl SnapshotCounts {
    /// The count of `kind`.
    pub fn get(&self, kind: SnapshotKind) -> u64 {
        self.counts[kind as usize]
    }

    /// Sets the count of `kind`.
    pub fn set(&mut self, kind: SnapshotKind, n: u64) {
        self.counts[kind as usize] = n;
    }

    /// Adds `n` to the count of `kind`.
    pub fn add(&mut self, kind: SnapshotKind, n: u64) {
        let slot = &mut self.counts[kind as usize];
        *slot = slot.saturating_add(n);
    }

    /// Every kind with its count, in export order.
    pub fn iter(&self) -> impl Iterator<Item = (SnapshotKind, u64)> + '_ {
        SnapshotKind::ALL.into_iter().map(|k| (k, self.get(k)))
    }

    /// The kinds that are not [`SnapshotKind::merged`] and have records:
    /// what makes an import's target "not empty".
    pub fn data(&self) -> Vec<(SnapshotKind, u64)> {
        self.iter()
            .filter(|(kind, n)| !kind.merged() && *n > 0)
            .collect()
    }
}

impl fmt::Display for SnapshotCounts {
    /// `14 jobs, 2 schedules, …`, kinds with no record left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (kind, n) in self.iter().filter(|(_, n)| *n > 0) {
            if !first {
                f.write_str(", ")?;
            }
            write!(f, "{n} {kind}")?;
            first = false;
        }
        if first {
            f.write_str("nothing")?;
        }
        Ok(())
    }
}

#[async_trait]
impl SnapshotSink for SnapshotCounts {
    async fn write(&mut self, chunk: SnapshotChunk) -> Result<(), StoreError> {
        self.add(chunk.kind(), chunk.len() as u64);
        Ok(())
    }
}

/// Records gathered for one chunk: cut at [`CHUNK_RECORDS`] records or
/// [`CHUNK_BYTES`] bytes, whichever comes first. Exporters push each record
/// with its encoded size and write out what [`push`](Batch::push) returns.
#[derive(Debug)]
pub struct Batch<T> {
    items: Vec<T>,
    bytes: usize,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch {
            items: Vec::new(),
            bytes: 0,
        }
    }
}

impl<T> Batch<T> {
    /// Adds a record of about `bytes` bytes; the full batch when that
    /// filled it (to be written out), after which this one is empty.
    pub fn push(&mut self, item: T, bytes: usize) -> Option<Vec<T>> {
        self.items.push(item);
        self.bytes = self.bytes.saturating_add(bytes);
        if self.items.len() >= CHUNK_RECORDS || self.bytes >= CHUNK_BYTES {
            self.bytes = 0;
            Some(std::mem::take(&mut self.items))
        } else {
            None
        }
    }

    /// What is left, unless nothing is.
    pub fn finish(self) -> Option<Vec<T>> {
        (!self.items.is_empty()).then_some(self.items)
    }
}

/// A whole store in memory, a `Vec` per kind: a [`SnapshotSink`] that
/// collects, and a [`SnapshotExport`] that hands it on again. Holds
/// everything at once, so for tests and small stores; a migration streams
/// from one adapter to the other instead.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// Jobs.
    pub jobs: Vec<Job>,
    /// Schedules.
    pub schedules: Vec<Schedule>,
    /// Pause entries.
    pub pauses: Vec<PauseTarget>,
    /// Memories.
    pub memories: Vec<Memory>,
    /// `remember`'s keys.
    pub memory_keys: Vec<MemoryKey>,
    /// Messages.
    pub messages: Vec<ChatMessage>,
    /// `append`'s keys.
    pub message_keys: Vec<MessageKey>,
    /// Steps.
    pub steps: Vec<StepRecord>,
    /// The idempotency registry.
    pub idempotency_keys: Vec<ClaimedKey>,
    /// Model calls.
    pub usage_calls: Vec<UsageRecord>,
    /// Day totals.
    pub usage_totals: Vec<DayTotals>,
}

impl Snapshot {
    /// Puts every kind in one order that does not depend on the adapter
    /// (by id, key, or day and name), so two adapters' snapshots compare.
    pub fn sort(&mut self) {
        self.jobs.sort_by_key(|j| j.id);
        self.schedules.sort_by(|a, b| a.id.cmp(&b.id));
        self.pauses.sort_by_key(|p| match p {
            PauseTarget::All => (0, String::new()),
            PauseTarget::Worker(w) => (1, w.clone()),
        });
        self.memories.sort_by_key(|m| m.id);
        self.memory_keys.sort_by(|a, b| a.key.cmp(&b.key));
        self.messages
            .sort_by(|a, b| (&a.conversation_id, a.id).cmp(&(&b.conversation_id, b.id)));
        self.message_keys.sort_by(|a, b| a.key.cmp(&b.key));
        self.steps.sort_by_key(|s| (s.job_id, s.step_index));
        self.idempotency_keys.sort_by(|a, b| a.key.cmp(&b.key));
        self.usage_calls.sort_by_key(|c| (c.at, c.id));
        self.usage_totals.sort_by_key(|t| {
            let (kind, name) = match &t.scope {
                UsageScope::Agent(a) => (0, a.clone()),
                UsageScope::Provider(p) => (1, p.clone()),
            };
            (t.day, kind, name)
        });
    }

    /// How many records of each kind it holds.
    pub fn counts(&self) -> SnapshotCounts {
        let mut counts = SnapshotCounts::default();
        for (kind, n) in [
            (SnapshotKind::Jobs, self.jobs.len()),
            (SnapshotKind::Schedules, self.schedules.len()),
            (SnapshotKind::Pauses, self.pauses.len()),
            (SnapshotKind::Memories, self.memories.len()),
            (SnapshotKind::MemoryKeys, self.memory_keys.len()),
            (SnapshotKind::Messages, self.messages.len()),
            (SnapshotKind::MessageKeys, self.message_keys.len()),
            (SnapshotKind::Steps, self.steps.len()),
            (SnapshotKind::IdempotencyKeys, self.idempotency_keys.len()),
            (SnapshotKind::UsageCalls, self.usage_calls.len()),
            (SnapshotKind::UsageTotals, self.usage_totals.len()),
        ] {
            counts.set(kind, n as u64);
        }
        counts
    }
}

#[async_trait]
impl SnapshotSink for Snapshot {
    async fn write(&mut self, chunk: SnapshotChunk) -> Result<(), StoreError> {
        match chunk {
            SnapshotChunk::Jobs(v) => self.jobs.extend(v),
            SnapshotChunk::Schedules(v) => self.schedules.extend(v),
            SnapshotChunk::Pauses(v) => self.pauses.extend(v),
            SnapshotChunk::Memories(v) => self.memories.extend(v),
            SnapshotChunk::MemoryKeys(v) => self.memory_keys.extend(v),
            SnapshotChunk::Messages(v) => self.messages.extend(v),
            SnapshotChunk::MessageKeys(v) => self.message_keys.extend(v),
            SnapshotChunk::Steps(v) => self.steps.extend(v),
            SnapshotChunk::IdempotencyKeys(v) => self.idempotency_keys.extend(v),
            SnapshotChunk::UsageCalls(v) => self.usage_calls.extend(v),
            SnapshotChunk::UsageTotals(v) => self.usage_totals.extend(v),
        }
        Ok(())
    }
}

/// Hands `items` to `sink` in chunks of at most [`CHUNK_RECORDS`].
async fn send_all<T: Clone>(
    sink: &mut dyn SnapshotSink,
    items: &[T],
    wrap: fn(Vec<T>) -> SnapshotChunk,
) -> Result<(), StoreError> {
    for chunk in items.chunks(CHUNK_RECORDS) {
        sink.write(wrap(chunk.to_vec())).await?;
    }
    Ok(())
}

#[async_trait]
impl SnapshotExport for Snapshot {
    async fn export(&self, sink: &mut dyn SnapshotSink) -> Result<SnapshotCounts, StoreError> {
        send_all(sink, &self.jobs, SnapshotChunk::Jobs).await?;
        send_all(sink, &self.schedules, SnapshotChunk::Schedules).await?;
        send_all(sink, &self.pauses, SnapshotChunk::Pauses).await?;
        send_all(sink, &self.memories, SnapshotChunk::Memories).await?;
        send_all(sink, &self.memory_keys, SnapshotChunk::MemoryKeys).await?;
        send_all(sink, &self.messages, SnapshotChunk::Messages).await?;
        send_all(sink, &self.message_keys, SnapshotChunk::MessageKeys).await?;
        send_all(sink, &self.steps, SnapshotChunk::Steps).await?;
        send_all(sink, &self.idempotency_keys, SnapshotChunk::IdempotencyKeys).await?;
        send_all(sink, &self.usage_calls, SnapshotChunk::UsageCalls).await?;
        send_all(sink, &self.usage_totals, SnapshotChunk::UsageTotals).await?;
        Ok(self.counts())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(SnapshotKind, u64)]) -> SnapshotCounts {
        let mut c = SnapshotCounts::default();
        for (k, n) in pairs {
            c.set(*k, *n);
        }
        c
    }

    #[test]
    fn a_batch_is_cut_by_records_or_bytes() {
        let mut batch = Batch::default();
        for i in 0..CHUNK_RECORDS - 1 {
            assert!(batch.push(i, 1).is_none());
        }
        assert_eq!(batch.push(0, 1).map(|v| v.len()), Some(CHUNK_RECORDS));
        assert!(batch.push(1, CHUNK_BYTES / 2).is_none());
        assert_eq!(batch.push(2, CHUNK_BYTES / 2).map(|v| v.len()), Some(2));
        assert!(batch.push(3, 1).is_none());
        assert_eq!(batch.finish(), Some(vec![3]));
        assert_eq!(Batch::<u8>::default().finish(), None);
    }

    #[test]
    fn verify_wants_every_record_copied_and_found() {
        let source = counts(&[(SnapshotKind::Jobs, 3), (SnapshotKind::Schedules, 2)]);
        let report = ImportReport {
            source,
            before: counts(&[(SnapshotKind::Schedules, 1)]),
            copied: source,
        };
        // The target's schedule was replaced by the source's of the same id.
        let target = counts(&[(SnapshotKind::Jobs, 3), (SnapshotKind::Schedules, 2)]);
        assert!(report.verify(&target).iter().all(|c| c.ok));
        let short = counts(&[(SnapshotKind::Jobs, 2), (SnapshotKind::Schedules, 2)]);
        let bad: Vec<_> = report
            .verify(&short)
            .into_iter()
            .filter(|c| !c.ok)
            .map(|c| c.kind)
            .collect();
        assert_eq!(bad, vec![SnapshotKind::Jobs]);
    }

    #[test]
    fn a_step_must_be_one_json_value() {
        let step = |json: &str| StepRecord {
            job_id: uuid::Uuid::nil(),
            step_index: 3,
            json: json.into(),
        };
        assert!(step(r#"{"kind": "model"}"#).check().is_ok());
        for bad in ["", "{", r#"{"a": 1} {}"#] {
            let err = step(bad).check().unwrap_err().to_string();
            assert!(err.contains("step 3"), "{err}");
        }
    }

    #[test]
    fn counts_say_what_is_there() {
        let c = counts(&[(SnapshotKind::Jobs, 14), (SnapshotKind::MemoryKeys, 4)]);
        assert_eq!(c.to_string(), "14 jobs, 4 memory keys");
        assert_eq!(SnapshotCounts::default().to_string(), "nothing");
        let merged = counts(&[(SnapshotKind::Schedules, 2), (SnapshotKind::Pauses, 1)]);
        assert!(merged.data().is_empty());
        assert_eq!(c.data().len(), 2);
    }
}
