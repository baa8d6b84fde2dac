//! The idempotency port: a registry of keys, each claimed once, so a
//! side-effecting tool whose step is replayed after a crash does its
//! effect at most once.
//!
//! A side-effecting tool (`create_task`, `scheduler`) derives a key from the
//! job, step and call ids and calls [`IdempotencyStore::claim_key`] with a
//! value naming its effect *before* doing it (e.g. `{"jobId": <a fresh id>}`).
//! The guarantee:
//! - **one winner**: of all calls with the same key, ever, in any process
//!   using the store, exactly one gets [`Claim::Claimed`]; every other gets
//!   [`Claim::Existing`] with the winner's value (a compare-and-swap on the
//!   key);
//! - **durable first**: either answer is returned only once the claim is
//!   durable, so no effect is started on a claim a crash could take back;
//! - **not atomic with the effect**: a crash after the claim and before the
//!   effect leaves the key claimed and the effect undone. So the value must
//!   carry the effect's identity, and a caller that gets `Existing` must
//!   check the effect and redo it *with that identity* if it is missing
//!   (insert the job with the recorded id, which the job store refuses to
//!   store twice). Claim-then-effect-with-recorded-id makes the effect
//!   happen at most once per key and, with the check, at least once.
//!
//! A key that names its job as the agents' tool calls do (`tool:<job id>:…`,
//! whatever comes before it; see [`job_of_key`]) lives as long as that job:
//! when retention prunes the ended job, which can never run again, its keys
//! go with it, so a daemon's registry does not grow without end. Other keys
//! never expire; they are small (key plus a short JSON value).
//!
//! The memory and conversation ports take idempotency keys too; they follow
//! the same rules ([`validate_key`]).

use async_trait::async_trait;
use serde_json::Value;

use crate::job::JobId;

use super::StoreError;

/// Largest accepted idempotency key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest accepted idempotency value, in bytes of JSON: it names an effect,
/// it does not hold one.
pub const MAX_KEY_VALUE_BYTES: usize = 64 * 1024;

/// The answer to [`IdempotencyStore::claim_key`].
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This call claimed the key (its value is stored): do the effect.
    Claimed,
    /// The key was claimed before, with this value: do not do the effect
    /// again (but see the module documentation on checking it happened).
    Existing(Value),
}

/// The idempotency registry. Object safe and free of backend types; a claim
/// is durable before the method returns.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for `value`, or returns the value it was claimed with.
    /// See the module documentation for the exact guarantee. Fails with
    /// [`StoreError::InvalidInput`] (`key`, `value`) for an empty or
    /// oversize key or an oversize value.
    async fn claim_key(&self, key: &str, value: Value) -> Result<Claim, StoreError>;

    /// The value `key` was claimed with, if it was.
    async fn get_key(&self, key: &str) -> Result<Option<Value>, StoreError>;
}

/// The job an idempotency key belongs to: the first UUID that follows a
/// `tool:` in it (the form agents' tool calls make, `tool:<job>:<step>:<call>`,
/// whatever a tool puts in front, even a name ending in `tool`).
pub fn job_of_key(key: &str) -> Option<JobId> {
    key.match_indices("tool:").find_map(|(at, found)| {
        let start = at + found.len();
        key.get(start..start + 36)?.parse().ok()
    })
}

/// Checks an idempotency key (shared by every backend and by the memory and
/// conversation stores, whose idempotency keys follow the same rules).
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::InvalidInput {
            field: "key",
            reason: "an idempotency key must not be empty".into(),
        });
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(StoreError::InvalidInput {
            field: "key",
            reason: format!(
                "is {} bytes, more than the limit of {MAX_KEY_BYTES}",
                key.len()
            ),
        });
    }
    Ok(())
}

/// A claim's value as the JSON an adapter stores, refused with
/// [`StoreError::InvalidInput`] `value` when larger than
/// [`MAX_KEY_VALUE_BYTES`] (a value names an effect, it does not hold one).
pub fn encode_key_value(value: &Value) -> Result<Vec<u8>, StoreError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| StoreError::backend("encode idempotency value", e))?;
    if bytes.len() > MAX_KEY_VALUE_BYTES {
        return Err(StoreError::InvalidInput {
            field: "value",
            reason: format!(
                "is {} bytes of JSON, more than the limit of {MAX_KEY_VALUE_BYTES}",
                bytes.len()
            ),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::job_of_key;

    #[test]
    fn the_job_of_a_key_is_found_after_any_prefix() {
        let job = uuid::Uuid::now_v7();
        let key = |prefix: &str| format!("{prefix}tool:{job}:2:call_1");
        assert_eq!(job_of_key(&key("")), Some(job));
        assert_eq!(job_of_key(&key("create_task:")), Some(job));
        assert_eq!(job_of_key(&key("http_tool:")), Some(job));
        assert_eq!(
            job_of_key(&format!("{}#done", key("scheduler:"))),
            Some(job)
        );
        assert_eq!(job_of_key("race"), None);
        assert_eq!(job_of_key("tool:not-a-uuid:1:2"), None);
        assert_eq!(job_of_key("tool:"), None);
    }
}
