//! [`SnapshotExport`] for [`SledStore`]: every record of every tree, read
//! in key order and decoded with the same functions the store reads them
//! with, handed over in chunks ([`Batch`]): the store is read, never
//! written (a tree that was never created is skipped rather than opened,
//! which would create it).
//!
//! What is copied, tree by tree (see each file for the encodings):
//! `jobs` (checked to be stored under their own id), `schedules`, `pause`,
//! `memories`, `memory_keys`, `messages`, `message_keys` (the message's
//! full key, split back into conversation and message id), `checkpoints`
//! (the step JSON as stored, checked to be one JSON value), `idempotency`,
//! and `usage` (the calls of every batch, and the agent and provider day
//! totals as stored, since retention drops calls and keeps totals).
//! Derived trees are not: `memory_scopes` and `idempotency_jobs` are
//! indexes of the records above, and `quarantine` holds job records that
//! could not be decoded, which are not part of the store.
//!
//! The directory must not be in use: [`SledStore::open`] takes its lock,
//! so a running daemon is refused with [`StoreError::Locked`].

use async_trait::async_trait;

use super::{conversation, keys, memory, open, steps, usage, SledStore};
use crate::store::{
    Batch, ClaimedKey, DayTotals, MemoryKey, MessageKey, PauseTarget, SnapshotChunk,
    SnapshotCounts, SnapshotExport, SnapshotSink, StepRecord, StoreError,
};

/// One tree's records handed to a sink in chunks, and counted.
struct Exporter<'a> {
    sink: &'a mut dyn SnapshotSink,
    counts: SnapshotCounts,
}

impl Exporter<'_> {
    /// Decodes every entry of `entries` (each into zero or more records)
    /// and hands them over, wrapped as `wrap` says.
    async fn tree<T: Send>(
        &mut self,
        operation: &'static str,
        entries: sled::Iter,
        decode: impl Fn(&[u8], &[u8]) -> Result<Vec<T>, StoreError> + Send + Sync,
        wrap: fn(Vec<T>) -> SnapshotChunk,
    ) -> Result<(), StoreError> {
        let mut batch = Batch::default();
        for entry in entries {
            let (key, value) = entry.map_err(|e| StoreError::backend(operation, e))?;
            let records = decode(&key, &value)?;
            let size = (key.len() + value.len()) / records.len().max(1);
            for record in records {
                if let Some(full) = batch.push(record, size) {
                    self.send(wrap(full)).await?;
                }
            }
        }
        if let Some(rest) = batch.finish() {
            self.send(wrap(rest)).await?;
        }
        Ok(())
    }

    async fn send(&mut self, chunk: SnapshotChunk) -> Result<(), StoreError> {
        self.counts.add(chunk.kind(), chunk.len() as u64);
        self.sink.write(chunk).await
    }
}

/// A key that must be UTF-8 text, or a corrupt-record error naming it.
fn text_key(what: &'static str, key: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(key.to_vec()).map_err(|_| StoreError::CorruptRecord {
        what,
        key: String::from_utf8_lossy(key).into_owned(),
        reason: "the key is not UTF-8".into(),
    })
}

impl SledStore {
    /// The tree `name` when it exists (an old directory may lack a kind).
    fn existing_tree(&self, name: &str) -> Result<Option<sled::Tree>, StoreError> {
        let exists = self
            .inner
            .db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == name.as_bytes());
        if !exists {
            return Ok(None);
        }
        self.inner
            .db
            .open_tree(name)
            .map(Some)
            .map_err(|e| StoreError::backend("export", e))
    }

    /// Every entry of tree `name`, or none when it does not exist.
    fn entries(&self, name: &str) -> Result<Option<sled::Iter>, StoreError> {
        Ok(self.existing_tree(name)?.map(|tree| tree.iter()))
    }
}

#[async_trait]
impl SnapshotExport for SledStore {
    async fn export(&self, sink: &mut dyn SnapshotSink) -> Result<SnapshotCounts, StoreError> {
        let mut out = Exporter {
            sink,
            counts: SnapshotCounts::default(),
        };
        let inner = &self.inner;
        out.tree(
            "export jobs",
            inner.jobs.iter(),
            |k, v| open::decode_record(k, v).map(|job| vec![job]),
            SnapshotChunk::Jobs,
        )
        .await?;
        out.tree(
            "export schedules",
            inner.schedules_tree.iter(),
            |k, v| keys::decode_schedule(k, v).map(|s| vec![s]),
            SnapshotChunk::Schedules,
        )
        .await?;
        out.tree(
            "export pauses",
            inner.pause.iter(),
            |k, _| {
                Ok(vec![match keys::decode_pause_key(k)? {
                    None => PauseTarget::All,
                    Some(worker) => PauseTarget::Worker(worker),
                }])
            },
            SnapshotChunk::Pauses,
        )
        .await?;
        if let Some(entries) = self.entries(memory::MEMORIES)? {
            out.tree(
                "export memories",
                entries,
                |k, v| {
                    let m = memory::decode(k, v)?;
                    if m.id.as_bytes() != k {
                        return Err(StoreError::CorruptRecord {
                            what: "memory",
                            key: m.id.to_string(),
                            reason: "stored under another id".into(),
                        });
                    }
                    Ok(vec![m])
                },
                SnapshotChunk::Memories,
            )
            .await?;
        }
        if let Some(entries) = self.entries(memory::MEMORY_KEYS)? {
            out.tree(
                "export memory keys",
                entries,
                |k, v| {
                    let key = text_key("memory idempotency key", k)?;
                    let memory_id = memory::decode_key_id(&key, v)?;
                    Ok(vec![MemoryKey { key, memory_id }])
                },
                SnapshotChunk::MemoryKeys,
            )
            .await?;
        }
        if let Some(entries) = self.entries(conversation::MESSAGES)? {
            out.tree(
                "export messages",
                entries,
                |k, v| conversation::decode(k, v).map(|m| vec![m]),
                SnapshotChunk::Messages,
            )
            .await?;
        }
        if let Some(entries) = self.entries(conversation::MESSAGE_KEYS)? {
            out.tree(
                "export message keys",
                entries,
                |k, v| {
                    let key = text_key("message idempotency key", k)?;
                    let (conversation_id, message_id) = conversation::decode_message_key(v)
                        .ok_or_else(|| StoreError::CorruptRecord {
                            what: "message idempotency key",
                            key: key.clone(),
                            reason: "its value is not a message key".into(),
                        })?;
                    Ok(vec![MessageKey {
                        key,
                        conversation_id,
                        message_id,
                    }])
                },
                SnapshotChunk::MessageKeys,
            )
            .await?;
        }
        if let Some(entries) = self.entries(steps::CHECKPOINTS)? {
            out.tree(
                "export steps",
                entries,
                |k, v| {
                    let bad = |reason: &str| {
                        steps::corrupt("checkpoint", String::from_utf8_lossy(k).into(), reason)
                    };
                    let job_id = k
                        .get(..16)
                        .and_then(|id| uuid::Uuid::from_slice(id).ok())
                        .ok_or_else(|| bad("the key is not a job id and step index"))?;
                    let step_index = steps::step_of(k)
                        .ok_or_else(|| bad("the key is not a job id and step index"))?;
                    let json = String::from_utf8(v.to_vec()).map_err(|e| {
                        steps::corrupt("checkpoint", format!("job {job_id} step {step_index}"), e)
                    })?;
                    let step = StepRecord {
                        job_id,
                        step_index,
                        json,
                    };
                    step.check()?;
                    Ok(vec![step])
                },
                SnapshotChunk::Steps,
            )
            .await?;
        }
        if let Some(entries) = self.entries(steps::IDEMPOTENCY)? {
            out.tree(
                "export idempotency keys",
                entries,
                |k, v| {
                    let key = text_key("idempotency", k)?;
                    let value = serde_json::from_slice(v)
                        .map_err(|e| steps::corrupt("idempotency", key.clone(), e))?;
                    Ok(vec![ClaimedKey { key, value }])
                },
                SnapshotChunk::IdempotencyKeys,
            )
            .await?;
        }
        let usage = self.usage_tree()?;
        out.tree(
            "export usage calls",
            usage.scan_prefix(b"c/"),
            usage::decode_calls,
            SnapshotChunk::UsageCalls,
        )
        .await?;
        for prefix in [&b"a/"[..], &b"p/"[..]] {
            out.tree(
                "export usage totals",
                usage.scan_prefix(prefix),
                |k, v| {
                    let (day, scope) =
                        usage::decode_scope_key(k).ok_or_else(|| StoreError::CorruptRecord {
                            what: "usage",
                            key: String::from_utf8_lossy(k).into_owned(),
                            reason: "not a day total's key".into(),
                        })?;
                    let totals = usage::decode_totals(k, v)?;
                    Ok(vec![DayTotals { day, scope, totals }])
                },
                SnapshotChunk::UsageTotals,
            )
            .await?;
        }
        Ok(out.counts)
    }
}
