//! The canonical dump of a Troupe data directory, read back through the
//! store APIs of this version (`Store`, `MemoryStore`, `ConversationStore`,
//! `CheckpointStore`, `UsageStore`, `SecretStore`).
//!
//! Shared by `examples/make_upgrade_fixture.rs` (which writes the fixture's
//! `expected.json` with it) and `tests/upgrade.rs` (which dumps a copy of the
//! fixture and compares). Some things cannot be enumerated through the APIs
//! (memory scopes, conversation ids, idempotency keys, usage days): the
//! [`Manifest`] names them, and is stored in `expected.json` beside the dump.
//!
//! Two lookups go through a write, there being no read for them: a memory or
//! message idempotency key is looked up by `remember`/`append` with that key,
//! which returns the stored record (`created: false`) and writes nothing.
//! When the key is missing they do store a probe record, and the dump says
//! `"MISSING"`, so a lost key shows as a difference. Dump only a copy.

use std::error::Error;
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use troupe::job::Job;
use troupe::secrets::{MasterKey, SecretStore};
use troupe::sled::SledStore;
use troupe::store::prelude::*;
use troupe::store::ListQuery;
use troupe::{MemoryScope, NewMemory};
use troupe::{NewMessage, Role};

/// What the dump says it is.
pub const FORMAT: &str = "troupe-upgrade-fixture-dump/1";

/// The fake provider key stored (encrypted) in the fixture's `secrets.json`.
/// Not a real key; the dump records only whether it decrypts to this.
pub const FIXTURE_API_KEY: &str = "sk-test-upgrade-fixture-0001";

/// What the dump looks up that the APIs cannot list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Memory scopes to list (archived memories included).
    pub memory_scopes: Vec<MemoryScope>,
    /// Idempotency keys of memories (`remember`).
    pub memory_keys: Vec<String>,
    /// Conversations to list.
    pub conversations: Vec<String>,
    /// Idempotency keys of messages (`append`).
    pub message_keys: Vec<String>,
    /// Keys of the idempotency registry (`claim_key`).
    pub idempotency_keys: Vec<String>,
    /// UTC days with usage.
    pub usage_days: Vec<NaiveDate>,
    /// Providers with a stored secret.
    pub secret_providers: Vec<String>,
}

impl Manifest {
    /// The manifest stored in a dump.
    pub fn from_dump(dump: &Value) -> Result<Manifest, Box<dyn Error>> {
        Ok(serde_json::from_value(dump["manifest"].clone())?)
    }
}

/// How a scope is named in the dump: `agent` or `agent/user`.
pub fn scope_name(scope: &MemoryScope) -> String {
    match &scope.user_id {
        Some(user) => format!("{}/{}", scope.agent_id, user),
        None => scope.agent_id.clone(),
    }
}

/// Every job, oldest first (by id).
pub async fn all_jobs(store: &SledStore) -> Result<Vec<Job>, Box<dyn Error>> {
    let mut jobs = Vec::new();
    let mut cursor = None;
    loop {
        let query = ListQuery {
            limit: 100,
            cursor,
            ..ListQuery::default()
        };
        let page = store.list_jobs(&query).await?;
        jobs.extend(page.jobs);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    jobs.sort_by_key(|j| j.id);
    Ok(jobs)
}

/// The whole dump of `store` (and the `secrets.json` of its directory),
/// in canonical form (object keys sorted).
pub async fn dump(
    store: &SledStore,
    master: &MasterKey,
    manifest: &Manifest,
) -> Result<Value, Box<dyn Error>> {
    let mut out = Map::new();
    out.insert("format".into(), json!(FORMAT));
    out.insert("manifest".into(), serde_json::to_value(manifest)?);

    // Jobs and what the engine derives from them at open.
    let jobs = all_jobs(store).await?;
    let mut steps = Map::new();
    for job in &jobs {
        let saved = store.load_steps(job.id).await?;
        if !saved.is_empty() {
            steps.insert(job.id.to_string(), Value::Array(saved));
        }
    }
    out.insert("jobs".into(), serde_json::to_value(&jobs)?);
    out.insert("checkpoints".into(), Value::Object(steps));
    let counts = store.counts().await?;
    // A status newer than the fixture (`waiting`) is counted 0 there: left
    // out while 0, so the fixture's record still reads back exactly.
    let by_status: Map<String, Value> = counts
        .by_status
        .iter()
        .filter(|(s, n)| !(**s == troupe::job::JobStatus::Waiting && **n == 0))
        .map(|(s, n)| (s.as_str().to_string(), json!(n)))
        .collect();
    let by_worker: Map<String, Value> = counts
        .by_worker
        .iter()
        .map(|(w, m)| {
            let m: Map<String, Value> = m
                .iter()
                .map(|(s, n)| (s.as_str().to_string(), json!(n)))
                .collect();
            (w.clone(), Value::Object(m))
        })
        .collect();
    out.insert(
        "jobCounts".into(),
        json!({ "byStatus": by_status, "byWorker": by_worker }),
    );
    out.insert("nextWake".into(), json!(store.next_wake(None).await?));

    // Schedules and pause state.
    out.insert(
        "schedules".into(),
        serde_json::to_value(store.list_schedules().await?)?,
    );
    out.insert(
        "nextScheduleFire".into(),
        json!(store.next_schedule_fire().await?),
    );
    let pause = store.pause_state().await?;
    out.insert(
        "pause".into(),
        json!({ "all": pause.all, "workers": pause.workers }),
    );

    // Memories, per scope, archived ones included.
    let mut memories = Map::new();
    for scope in &manifest.memory_scopes {
        let listed = store.list_memories(scope, true).await?;
        memories.insert(scope_name(scope), serde_json::to_value(listed)?);
    }
    out.insert("memories".into(), Value::Object(memories));
    let mut memory_keys = Map::new();
    for key in &manifest.memory_keys {
        let probe = NewMemory::new(
            &MemoryScope::agent("upgrade-probe"),
            "fact",
            "probe: this key was missing",
            1,
        );
        let found = store.remember(probe, Some(key.clone())).await?;
        let value = if found.created {
            json!("MISSING")
        } else {
            json!(found.memory.id)
        };
        memory_keys.insert(key.clone(), value);
    }
    out.insert("memoryKeys".into(), Value::Object(memory_keys));

    // Conversations.
    let mut conversations = Map::new();
    for id in &manifest.conversations {
        let messages = store.list_messages(id).await?;
        conversations.insert(id.clone(), serde_json::to_value(messages)?);
    }
    out.insert("conversations".into(), Value::Object(conversations));
    let mut message_keys = Map::new();
    for key in &manifest.message_keys {
        let probe = NewMessage::new(
            "upgrade-probe",
            Role::System,
            "upgrade-probe",
            "probe: this key was missing",
        );
        let found = store.append(probe, Some(key.clone())).await?;
        let value = if found.created {
            json!("MISSING")
        } else {
            json!(found.message.id)
        };
        message_keys.insert(key.clone(), value);
    }
    out.insert("messageKeys".into(), Value::Object(message_keys));

    // The idempotency registry.
    let mut claimed = Map::new();
    for key in &manifest.idempotency_keys {
        claimed.insert(key.clone(), json!(store.get_key(key).await?));
    }
    out.insert("idempotencyKeys".into(), Value::Object(claimed));

    // Usage: the calls of each day, and its totals per agent and provider.
    let mut usage = Map::new();
    for day in &manifest.usage_days {
        let calls = store.calls(*day).await?;
        let totals = store.day_usage(*day).await?;
        usage.insert(day.to_string(), json!({ "calls": calls, "totals": totals }));
    }
    out.insert("usage".into(), Value::Object(usage));

    // Stored provider keys (`secrets.json` beside the sled files).
    let secrets = SecretStore::new(store.dir());
    let today = chrono::Utc::now().date_naive();
    let listed = secrets.list(today)?;
    let mut entries = Vec::new();
    for provider in &manifest.secret_providers {
        let info = listed.iter().find(|s| &s.provider == provider);
        let key = secrets.get(master, provider)?;
        entries.push(json!({
            "provider": provider,
            "listed": info.is_some(),
            "expires": info.and_then(|i| i.expires),
            "expired": info.map(|i| i.expired),
            "updatedAt": info.map(|i| i.updated_at.clone()),
            "decryptsToFixtureKey": key.as_ref().map(|k| k.key.expose() == FIXTURE_API_KEY),
            "decryptedExpires": key.and_then(|k| k.expires),
        }));
    }
    out.insert(
        "storedProviders".into(),
        json!(listed
            .iter()
            .map(|s| s.provider.clone())
            .collect::<Vec<_>>()),
    );
    out.insert("secrets".into(), Value::Array(entries));

    Ok(canonical(Value::Object(out)))
}

/// `value` with every object's keys in sorted order (whatever serde_json's
/// map type), so the written file is byte-for-byte stable.
pub fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// Copies a directory tree (files keep their permissions).
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
