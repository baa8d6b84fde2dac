//! The job model without a store: the state machine, the JSON shape, the
//! enqueue options and the schedule firing rule.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use troupe::job::schedule::{
    plan_firings, Schedule, ScheduleError, ScheduleSpec, MAX_CATCH_UP_PER_CALL,
};
use troupe::job::{EnqueueOptions, Job, JobCtx, JobError, JobStatus, TransitionError};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn every_status_pair_is_legal_or_a_typed_error() {
    use JobStatus::*;
    let legal = [
        (Queued, Running),
        (Queued, Cancelled),
        (Queued, Failed),
        (Running, Completed),
        (Running, Failed),
        (Running, Queued),
        (Running, Cancelled),
        (Running, Waiting),
        (Waiting, Queued),
        (Waiting, Cancelled),
    ];
    for from in JobStatus::ALL {
        for to in JobStatus::ALL {
            let expected = legal.contains(&(from, to));
            assert_eq!(from.can_transition_to(to), expected, "{from} -> {to}");
            match from.transition(to) {
                Ok(s) => {
                    assert!(expected);
                    assert_eq!(s, to);
                }
                Err(e) => {
                    assert!(!expected);
                    assert_eq!(e, TransitionError { from, to });
                    assert_eq!(
                        e.to_string(),
                        format!("illegal job status transition {from} -> {to}")
                    );
                }
            }
        }
    }
    for s in [Completed, Failed, Cancelled] {
        assert!(s.is_terminal());
    }
    assert!(Queued.is_active() && Running.is_active() && Waiting.is_active());
}

#[test]
fn status_names_round_trip_and_bad_names_are_rejected() {
    for s in JobStatus::ALL {
        assert_eq!(JobStatus::from_str(s.as_str()).unwrap(), s);
        assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
    }
    let err = JobStatus::from_str("done").unwrap_err();
    assert!(err.to_string().contains("\"done\""));
}

#[test]
fn job_json_is_camel_case_with_rfc3339_times_and_flattened_ctx() {
    let now = t("2025-03-01T10:00:00Z");
    let mut ctx = JobCtx {
        user_id: Some("u1".into()),
        conversation_id: Some("c1".into()),
        source: Some("cli".into()),
        ..JobCtx::default()
    };
    ctx.extra.insert("tenant".into(), json!("acme"));
    let opts = EnqueueOptions::default()
        .delay(Duration::from_secs(5))
        .priority(7)
        .max_attempts(4)
        .unique_key("k")
        .timeout(Duration::from_millis(1500));
    let job = Job::new("echo", json!({"x": 1}), ctx, &opts, now).unwrap();
    let v = serde_json::to_value(&job).unwrap();
    assert_eq!(v["workerName"], "echo");
    assert_eq!(v["status"], "queued");
    assert_eq!(v["attempt"], 0);
    assert_eq!(v["maxAttempts"], 4);
    assert_eq!(v["priority"], 7);
    assert_eq!(v["runAt"], "2025-03-01T10:00:05Z");
    assert_eq!(v["uniqueKey"], "k");
    assert_eq!(v["timeout"], 1500);
    assert_eq!(v["args"], json!({"x": 1}));
    assert_eq!(
        v["ctx"],
        json!({"userId": "u1", "conversationId": "c1", "source": "cli", "tenant": "acme"})
    );
    assert_eq!(v["result"], json!(null));
    assert_eq!(v["error"], json!(null));
    assert_eq!(v["errors"], json!([]));
    assert_eq!(v["createdAt"], "2025-03-01T10:00:00Z");
    assert_eq!(v["updatedAt"], "2025-03-01T10:00:00Z");
    assert_eq!(job.id.get_version_num(), 7);
    let back: Job = serde_json::from_value(v).unwrap();
    assert_eq!(back, job);
}

#[test]
fn ids_are_time_ordered() {
    let now = Utc::now();
    let a = Job::new(
        "w",
        json!(null),
        JobCtx::default(),
        &EnqueueOptions::default(),
        now,
    )
    .unwrap();
    let b = Job::new(
        "w",
        json!(null),
        JobCtx::default(),
        &EnqueueOptions::default(),
        now,
    )
    .unwrap();
    assert!(b.id > a.id);
}

#[test]
fn bad_enqueue_options_name_the_field() {
    let now = Utc::now();
    let cases: Vec<(EnqueueOptions, &str)> = vec![
        (EnqueueOptions::default().max_attempts(0), "maxAttempts"),
        (EnqueueOptions::default().unique_key(""), "uniqueKey"),
        (EnqueueOptions::default().timeout(Duration::ZERO), "timeout"),
        (
            EnqueueOptions::default()
                .delay(Duration::from_secs(1))
                .run_at(now),
            "runAt",
        ),
        (
            EnqueueOptions::default().delay(Duration::from_secs(u64::MAX)),
            "delay",
        ),
    ];
    for (opts, field) in cases {
        match Job::new("w", json!(null), JobCtx::default(), &opts, now) {
            Err(JobError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected invalid {field}, got {other:?}"),
        }
    }
    let err = Job::new(
        " ",
        json!(null),
        JobCtx::default(),
        &EnqueueOptions::default(),
        now,
    )
    .unwrap_err();
    assert!(err.to_string().contains("workerName"));
    let at = t("2030-01-01T00:00:00Z");
    let job = Job::new(
        "w",
        json!(null),
        JobCtx::default(),
        &EnqueueOptions::default().run_at(at),
        now,
    )
    .unwrap();
    assert_eq!(job.run_at, at);
}

#[test]
fn cron_next_fire_accepts_five_and_six_fields_and_shorthands() {
    let at = t("2025-03-01T10:07:30Z");
    let five = ScheduleSpec::cron("*/15 * * * *").unwrap();
    assert_eq!(five.next_after(at).unwrap(), t("2025-03-01T10:15:00Z"));
    let six = ScheduleSpec::cron("30 */15 * * * *").unwrap();
    assert_eq!(six.next_after(at).unwrap(), t("2025-03-01T10:15:30Z"));
    let hourly = ScheduleSpec::cron("@hourly").unwrap();
    assert_eq!(hourly.next_after(at).unwrap(), t("2025-03-01T11:00:00Z"));
    // Strictly after: a fire time is not its own successor.
    assert_eq!(
        five.next_after(t("2025-03-01T10:15:00Z")).unwrap(),
        t("2025-03-01T10:30:00Z")
    );
    let every = ScheduleSpec::every(Duration::from_secs(90)).unwrap();
    assert_eq!(every.next_after(at).unwrap(), t("2025-03-01T10:09:00Z"));
}

#[test]
fn invalid_schedules_are_clear_errors() {
    let err = ScheduleSpec::cron("61 * * * *").unwrap_err();
    assert!(matches!(err, ScheduleError::InvalidCron { .. }));
    assert!(err.to_string().contains("\"61 * * * *\""), "{err}");
    assert!(ScheduleSpec::cron("not a cron").is_err());
    assert_eq!(
        ScheduleSpec::every(Duration::ZERO).unwrap_err(),
        ScheduleError::ZeroInterval
    );
    let bad = ScheduleSpec::Cron {
        expression: "* *".into(),
    };
    assert!(plan_firings(&bad, Utc::now(), Utc::now(), false).is_err());
}

#[test]
fn not_due_fires_nothing() {
    let spec = ScheduleSpec::cron("0 * * * *").unwrap();
    let next = t("2025-03-01T11:00:00Z");
    let plan = plan_firings(&spec, next, t("2025-03-01T10:59:59Z"), false).unwrap();
    assert!(plan.fire_times.is_empty());
    assert_eq!(plan.next_fire_at, next);
}

#[test]
fn on_time_firing_fires_once_and_moves_to_the_next_period() {
    let spec = ScheduleSpec::cron("0 * * * *").unwrap();
    let next = t("2025-03-01T11:00:00Z");
    let plan = plan_firings(&spec, next, t("2025-03-01T11:00:00.200Z"), false).unwrap();
    assert_eq!(plan.fire_times, vec![next]);
    assert_eq!(plan.next_fire_at, t("2025-03-01T12:00:00Z"));
}

#[test]
fn downtime_skips_missed_firings_by_default() {
    let spec = ScheduleSpec::cron("0 * * * *").unwrap();
    // Down from before 11:00 until 16:20: five hourly firings were missed.
    let plan = plan_firings(
        &spec,
        t("2025-03-01T11:00:00Z"),
        t("2025-03-01T16:20:00Z"),
        false,
    )
    .unwrap();
    assert_eq!(plan.fire_times, vec![t("2025-03-01T16:00:00Z")]);
    assert_eq!(plan.next_fire_at, t("2025-03-01T17:00:00Z"));

    let every = ScheduleSpec::every(Duration::from_secs(600)).unwrap();
    let plan = plan_firings(
        &every,
        t("2025-03-01T11:00:00Z"),
        t("2025-03-01T11:35:00Z"),
        false,
    )
    .unwrap();
    assert_eq!(plan.fire_times, vec![t("2025-03-01T11:30:00Z")]);
    assert_eq!(plan.next_fire_at, t("2025-03-01T11:40:00Z"));
}

#[test]
fn catch_up_fires_every_missed_time_in_bounded_chunks() {
    let spec = ScheduleSpec::cron("0 * * * *").unwrap();
    let plan = plan_firings(
        &spec,
        t("2025-03-01T11:00:00Z"),
        t("2025-03-01T16:20:00Z"),
        true,
    )
    .unwrap();
    assert_eq!(
        plan.fire_times,
        (11..=16)
            .map(|h| t(&format!("2025-03-01T{h}:00:00Z")))
            .collect::<Vec<_>>()
    );
    assert_eq!(plan.next_fire_at, t("2025-03-01T17:00:00Z"));

    let every_second = ScheduleSpec::every(Duration::from_secs(1)).unwrap();
    let start = t("2025-03-01T00:00:00Z");
    let plan = plan_firings(&every_second, start, t("2025-03-02T00:00:00Z"), true).unwrap();
    assert_eq!(plan.fire_times.len(), MAX_CATCH_UP_PER_CALL);
    assert_eq!(
        plan.next_fire_at,
        start + chrono::Duration::seconds(MAX_CATCH_UP_PER_CALL as i64)
    );
}

#[test]
fn a_first_fire_time_off_the_grid_still_fires_once() {
    let spec = ScheduleSpec::cron("0 0 * * *").unwrap();
    let first = t("2025-03-01T10:17:00Z");
    let plan = plan_firings(&spec, first, t("2025-03-01T10:20:00Z"), false).unwrap();
    assert_eq!(plan.fire_times, vec![first]);
    assert_eq!(plan.next_fire_at, t("2025-03-02T00:00:00Z"));
}

#[test]
fn schedule_new_starts_at_the_next_fire_time() {
    let now = Utc.with_ymd_and_hms(2025, 3, 1, 10, 7, 0).unwrap();
    let s = Schedule::new(
        "s1",
        "echo",
        json!({}),
        ScheduleSpec::cron("*/5 * * * *").unwrap(),
        now,
    )
    .unwrap();
    assert_eq!(s.next_fire_at, t("2025-03-01T10:10:00Z"));
    assert!(!s.catch_up);
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(
        v["spec"],
        json!({"kind": "cron", "expression": "*/5 * * * *"})
    );
    assert_eq!(v["nextFireAt"], "2025-03-01T10:10:00Z");
    let back: Schedule = serde_json::from_value(v).unwrap();
    assert_eq!(back, s);
}
