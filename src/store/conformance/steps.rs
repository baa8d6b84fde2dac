//! Agent steps: saved contiguously from 0 (an existing index is replaced),
//! loaded in step order, cleared; oversize records and bytes that are not
//! one JSON value are refused.

use serde_json::{json, Value};

use super::support::refused;
use super::{ConformanceError, Context, Fixture, Harness};
use crate::store::prelude::*;
use crate::store::MAX_STEP_BYTES;

/// Steps load in numeric order (more than 256, so not by a low byte),
/// per job; saving an existing index replaces it; clearing says how many
/// there were and lets the job start at 0 again; all of it across a crash.
pub async fn steps_are_saved_loaded_replaced_and_cleared<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let job = uuid::Uuid::now_v7();
    let other = uuid::Uuid::now_v7();
    ensure!(
        f.store().load_steps(job).await.context("load")?.is_empty(),
        "a job without steps"
    );
    for i in 0..300u32 {
        f.store()
            .save_step(job, i, json!({"step": i, "kind": "model"}))
            .await
            .context(format!("save step {i}"))?;
    }
    f.store()
        .save_step(other, 0, json!({"other": true}))
        .await
        .context("save another job's step")?;
    f.store()
        .save_step(job, 1, json!({"step": 1, "kind": "tool"}))
        .await
        .context("replace step 1")?;
    f.store()
        .save_step_json(job, 300, br#"{"step":300,"kind":"raw"}"#.to_vec())
        .await
        .context("save a step written as JSON")?;
    let f = f.crash().await?;
    let store = f.store();
    let steps = store.load_steps(job).await.context("load")?;
    ensure_eq!(steps.len(), 301, "steps after a crash");
    for (i, step) in steps.iter().enumerate() {
        ensure_eq!(step["step"], json!(i), "step {i} in its place");
    }
    ensure_eq!(steps[1]["kind"], json!("tool"), "the replaced step");
    ensure_eq!(
        steps[300],
        json!({"step": 300, "kind": "raw"}),
        "the step saved as JSON"
    );
    ensure_eq!(
        store.load_steps(other).await.context("load other")?,
        vec![json!({"other": true})],
        "another job's steps"
    );
    ensure_eq!(
        store.clear_steps(job).await.context("clear")?,
        301,
        "clear says how many"
    );
    ensure_eq!(
        store.clear_steps(job).await.context("clear again")?,
        0,
        "nothing left to clear"
    );
    let f = f.crash().await?;
    let store = f.store();
    ensure!(
        store.load_steps(job).await.context("load")?.is_empty(),
        "cleared for good"
    );
    ensure_eq!(
        store.load_steps(other).await.context("load other")?.len(),
        1,
        "another job's steps are not cleared"
    );
    store
        .save_step(job, 0, json!("again"))
        .await
        .context("save step 0 after a clear")?;
    ensure_eq!(
        store.load_steps(job).await.context("load")?,
        vec![json!("again")],
        "a cleared job starts at 0"
    );
    Ok(())
}

/// A step beyond the next index (`stepIndex`), an oversize record or bytes
/// that are not one JSON value (`record`) are refused naming the job and
/// change nothing.
pub async fn bad_steps_are_refused_naming_the_field<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let job = uuid::Uuid::now_v7();
    let err = refused(
        store.save_step(job, 1, json!({})).await,
        "stepIndex",
        "save step 1 of a job without steps",
    )?;
    ensure!(
        err.to_string().contains(&job.to_string()),
        "the refusal names the job, got {err}"
    );
    store
        .save_step(job, 0, json!({}))
        .await
        .context("save step 0")?;
    refused(
        store.save_step(job, 5, json!({})).await,
        "stepIndex",
        "save step 5 after step 0",
    )?;
    let huge = Value::String("x".repeat(MAX_STEP_BYTES));
    refused(
        store.save_step(job, 1, huge).await,
        "record",
        "save an oversize step",
    )?;
    refused(
        store
            .save_step_json(job, 1, vec![b' '; MAX_STEP_BYTES + 1])
            .await,
        "record",
        "save oversize bytes",
    )?;
    for bad in [&b"{\"kind\":"[..], b"not json", b"{} {}", b""] {
        let err = refused(
            store.save_step_json(job, 1, bad.to_vec()).await,
            "record",
            &format!("save {:?}", String::from_utf8_lossy(bad)),
        )?;
        ensure!(
            err.to_string().contains("not one JSON value"),
            "the refusal says why, got {err}"
        );
    }
    ensure_eq!(
        store.load_steps(job).await.context("load")?,
        vec![json!({})],
        "refused steps changed nothing"
    );
    Ok(())
}
