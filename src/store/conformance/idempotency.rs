//! The idempotency registry: a key is claimed once, ever; every later
//! claim, racing or after a crash, gets the winner's value; bad keys and
//! values are refused.

use serde_json::{json, Value};

use super::support::refused;
use super::{ConformanceError, Context, Fixture, Harness};
use crate::store::prelude::*;
use crate::store::{Claim, MAX_KEY_BYTES, MAX_KEY_VALUE_BYTES};

/// The first claim wins; a later one (also after a crash) answers
/// `Existing` with the winner's value and stores nothing; `get_key` reads it.
pub async fn a_key_is_claimed_once_across_a_crash<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let key = "job-1/step-4/call-2";
    let value = json!({"jobId": uuid::Uuid::now_v7().to_string()});
    ensure_eq!(
        f.store()
            .get_key(key)
            .await
            .context("get an unclaimed key")?,
        None,
        "an unclaimed key"
    );
    ensure_eq!(
        f.store()
            .claim_key(key, value.clone())
            .await
            .context("claim")?,
        Claim::Claimed,
        "the first claim"
    );
    ensure_eq!(
        f.store()
            .claim_key(key, json!({"jobId": "other"}))
            .await
            .context("claim again")?,
        Claim::Existing(value.clone()),
        "a second claim"
    );
    let f = f.crash().await?;
    ensure_eq!(
        f.store()
            .claim_key(key, json!({"jobId": "late"}))
            .await
            .context("claim after a crash")?,
        Claim::Existing(value.clone()),
        "a claim after a crash"
    );
    ensure_eq!(
        f.store().get_key(key).await.context("get")?,
        Some(value),
        "the winner's value is kept"
    );
    Ok(())
}

/// Of sixteen claims racing for one key exactly one wins, and every other
/// answers with the winner's value.
pub async fn one_of_many_concurrent_claims_wins<H: Harness>(h: &H) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = f.shared();
        tasks.push(tokio::spawn(async move {
            store.claim_key("race", json!(i)).await.map(|c| (i, c))
        }));
    }
    let mut winners = Vec::new();
    let mut seen = Vec::new();
    for task in tasks {
        match task.await.context("join")?.context("claim in a race")? {
            (i, Claim::Claimed) => winners.push(json!(i)),
            (_, Claim::Existing(v)) => seen.push(v),
        }
    }
    ensure_eq!(winners.len(), 1, "winners");
    ensure!(
        seen.iter().all(|v| *v == winners[0]),
        "every loser sees the winner's value {}, got {seen:?}",
        winners[0]
    );
    ensure_eq!(
        f.store().get_key("race").await.context("get")?,
        Some(winners[0].clone()),
        "the stored value is the winner's"
    );
    Ok(())
}

/// An empty or oversize key (`key`) and an oversize value (`value`) are
/// refused and claim nothing; the limits themselves are accepted.
pub async fn bad_keys_are_refused_naming_the_field<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    refused(
        store.claim_key("", json!(1)).await,
        "key",
        "claim an empty key",
    )?;
    refused(
        store
            .claim_key(&"k".repeat(MAX_KEY_BYTES + 1), json!(1))
            .await,
        "key",
        "claim an oversize key",
    )?;
    refused(
        store
            .claim_key("k", Value::String("v".repeat(MAX_KEY_VALUE_BYTES)))
            .await,
        "value",
        "claim with an oversize value",
    )?;
    ensure_eq!(
        store.get_key("k").await.context("get")?,
        None,
        "a refused claim claims nothing"
    );
    refused(store.get_key("").await, "key", "get an empty key")?;
    let longest = "k".repeat(MAX_KEY_BYTES);
    let largest = Value::String("v".repeat(MAX_KEY_VALUE_BYTES - 2));
    ensure_eq!(
        store
            .claim_key(&longest, largest)
            .await
            .context("claim at the limits")?,
        Claim::Claimed,
        "the longest key with the largest value"
    );
    Ok(())
}
