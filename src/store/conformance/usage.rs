//! Usage: recorded calls, totals per agent, provider and day, the day's
//! report, and the calls of a day in the order they were recorded.

use chrono::{DateTime, Utc};

use super::{ConformanceError, Context, Fixture, Harness};
use crate::store::prelude::*;
use crate::store::{UsageRecord, UsageScope, UsageTotals};

/// A call answered at `at` for `agent` by `provider`, with a UUID v7 of
/// that time as the meter makes them (10 tokens in, 5 out, 7 nano-dollars).
pub(super) fn call_at(at: DateTime<Utc>, agent: &str, provider: &str) -> UsageRecord {
    let seconds = u64::try_from(at.timestamp()).unwrap_or(0);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, seconds, at.timestamp_subsec_nanos());
    UsageRecord {
        id: uuid::Uuid::new_v7(ts),
        at,
        provider: provider.into(),
        model: "gpt-4.1-nano".into(),
        agent: (!agent.is_empty()).then(|| agent.to_owned()),
        job: None,
        input_tokens: 10,
        output_tokens: 5,
        cached_input_tokens: 0,
        latency_ms: 3,
        cost_nanos: 7,
        priced: true,
    }
}

fn totals(calls: u64) -> UsageTotals {
    UsageTotals {
        calls,
        input_tokens: 10 * calls,
        output_tokens: 5 * calls,
        cost_nanos: 7 * calls,
    }
}

/// Totals per agent and per provider and day, the day's report (calls
/// without an agent count for their provider only), nothing on other days.
pub async fn usage_is_totalled_per_agent_provider_and_day<H: Harness>(
    h: &H,
) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let now = Utc::now();
    let yesterday = now - chrono::Duration::days(1);
    let calls = [
        call_at(now, "sarah", "openai"),
        call_at(now, "sarah", "openai"),
        call_at(now, "sarah", "anthropic"),
        call_at(now, "bob", "openai"),
        call_at(now, "", "openai"),
        call_at(yesterday, "sarah", "openai"),
    ];
    for call in &calls {
        store.record(call).await.context("record")?;
    }
    let day = now.date_naive();
    let agent = |a: &str| UsageScope::Agent(a.into());
    let provider = |p: &str| UsageScope::Provider(p.into());
    for (scope, expected) in [
        (agent("sarah"), totals(3)),
        (agent("bob"), totals(1)),
        (agent("nobody"), totals(0)),
        (provider("openai"), totals(3 + 1)),
        (provider("anthropic"), totals(1)),
    ] {
        ensure_eq!(
            store.totals(&scope, day).await.context("totals")?,
            expected,
            "today's totals of {scope:?}"
        );
    }
    ensure_eq!(
        store
            .totals(&agent("sarah"), yesterday.date_naive())
            .await
            .context("totals")?,
        totals(1),
        "yesterday's totals"
    );
    let report = store.day_usage(day).await.context("day usage")?;
    ensure_eq!(report.day, Some(day), "the report's day");
    ensure_eq!(
        report.by_agent,
        [
            ("bob".to_string(), totals(1)),
            ("sarah".to_string(), totals(3))
        ]
        .into(),
        "by agent (calls without an agent are not listed)"
    );
    ensure_eq!(
        report.by_provider,
        [
            ("anthropic".to_string(), totals(1)),
            ("openai".to_string(), totals(4)),
        ]
        .into(),
        "by provider"
    );
    let empty = store
        .day_usage(day - chrono::Duration::days(30))
        .await
        .context("day usage of a quiet day")?;
    ensure!(
        empty.by_agent.is_empty() && empty.by_provider.is_empty(),
        "a day without calls, got {empty:?}"
    );
    ensure_eq!(
        store.calls(day).await.context("calls")?,
        calls[..5].to_vec(),
        "today's calls, as recorded"
    );
    Ok(())
}

/// The calls of a day come back in recording order, also for calls made in
/// the same millisecond (whose ids are random within it).
pub async fn calls_come_back_in_recording_order<H: Harness>(h: &H) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let store = f.store();
    let base = Utc::now();
    let mut recorded = Vec::new();
    for i in 0..40 {
        // Four calls per millisecond.
        let at = base + chrono::Duration::milliseconds(i / 4);
        let call = call_at(at, &format!("agent-{}", i % 3), "openai");
        store.record(&call).await.context("record")?;
        recorded.push(call.id);
    }
    let mut days = vec![base.date_naive()];
    let last = (base + chrono::Duration::milliseconds(10)).date_naive();
    if last != days[0] {
        days.push(last);
    }
    let mut got = Vec::new();
    for day in days {
        got.extend(
            store
                .calls(day)
                .await
                .context("calls")?
                .into_iter()
                .map(|c| c.id),
        );
    }
    ensure_eq!(got, recorded, "calls in recording order");
    Ok(())
}

/// Recorded usage (totals and calls) is there after a crash.
pub async fn usage_survives_a_crash<H: Harness>(h: &H) -> Result<(), ConformanceError> {
    let f = Fixture::open(h).await?;
    let now = Utc::now();
    let calls = [
        call_at(now, "sarah", "openai"),
        call_at(now, "sarah", "openai"),
    ];
    for call in &calls {
        f.store().record(call).await.context("record")?;
    }
    let f = f.crash().await?;
    let day = now.date_naive();
    ensure_eq!(
        f.store()
            .totals(&UsageScope::Agent("sarah".into()), day)
            .await
            .context("totals")?,
        totals(2),
        "totals after a crash"
    );
    ensure_eq!(
        f.store().calls(day).await.context("calls")?,
        calls.to_vec(),
        "calls after a crash"
    );
    Ok(())
}
