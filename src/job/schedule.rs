//! Recurring schedules: the durable record and the pure function that says
//! when a schedule fires.
//!
//! The firing rule is kept pure (no clock, no store) so it can be tested on
//! its own and shared by every store implementation.

use std::str::FromStr;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{EnqueueOptions, JobCtx, DEFAULT_MAX_ATTEMPTS};

/// Most firings one [`plan_firings`] call returns in catch-up mode, so a long
/// downtime cannot turn into one enormous burst; the rest follow on the next
/// call.
pub const MAX_CATCH_UP_PER_CALL: usize = 1_000;

/// When a schedule recurs. Times are UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ScheduleSpec {
    /// A cron expression: 5 fields (`min hour dom month dow`), or the `cron`
    /// crate's 6/7 fields with seconds first (and optional year), or
    /// `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
    Cron {
        /// The expression as the user wrote it.
        expression: String,
    },
    /// A fixed period, anchored at the first fire time.
    Interval {
        /// The period in milliseconds (> 0).
        #[serde(rename = "everyMs")]
        every_ms: u64,
    },
}

/// A schedule the engine cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("invalid cron expression {expression:?}: {reason}")]
    InvalidCron {
        /// The expression as given.
        expression: String,
        /// What the parser said.
        reason: String,
    },
    /// An interval of zero would fire forever.
    #[error("invalid interval: everyMs must be greater than 0")]
    ZeroInterval,
    /// The cron expression never fires again (e.g. a past year).
    #[error("cron expression {expression:?} has no fire time after {after}")]
    Exhausted {
        /// The expression as given.
        expression: String,
        /// The time after which nothing matched.
        after: DateTime<Utc>,
    },
    /// A time computation left chrono's range.
    #[error("schedule time out of range")]
    OutOfRange,
}

impl ScheduleSpec {
    /// A cron spec, checked now so a bad expression fails where it is given.
    pub fn cron(expression: impl Into<String>) -> Result<Self, ScheduleError> {
        let spec = ScheduleSpec::Cron {
            expression: expression.into(),
        };
        spec.validate()?;
        Ok(spec)
    }

    /// A fixed-interval spec.
    pub fn every(period: std::time::Duration) -> Result<Self, ScheduleError> {
        let every_ms = u64::try_from(period.as_millis()).map_err(|_| ScheduleError::OutOfRange)?;
        let spec = ScheduleSpec::Interval { every_ms };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the spec can produce fire times.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        match self {
            ScheduleSpec::Cron { expression } => parse_cron(expression).map(|_| ()),
            ScheduleSpec::Interval { every_ms: 0 } => Err(ScheduleError::ZeroInterval),
            ScheduleSpec::Interval { .. } => Ok(()),
        }
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Result<DateTime<Utc>, ScheduleError> {
        match self {
            ScheduleSpec::Cron { expression } => {
                let schedule = parse_cron(expression)?;
                let next = schedule.after(&after).next();
                next.ok_or_else(|| ScheduleError::Exhausted {
                    expression: expression.clone(),
                    after,
                })
            }
            ScheduleSpec::Interval { every_ms } => {
                let period = interval(*every_ms)?;
                after
                    .checked_add_signed(period)
                    .ok_or(ScheduleError::OutOfRange)
            }
        }
    }
}

fn interval(every_ms: u64) -> Result<ChronoDuration, ScheduleError> {
    if every_ms == 0 {
        return Err(ScheduleError::ZeroInterval);
    }
    let ms = i64::try_from(every_ms).map_err(|_| ScheduleError::OutOfRange)?;
    ChronoDuration::try_milliseconds(ms).ok_or(ScheduleError::OutOfRange)
}

/// Parses with the `cron` crate, accepting the common 5-field form by adding
/// a leading `0` seconds field (the crate itself wants seconds first).
fn parse_cron(expression: &str) -> Result<cron::Schedule, ScheduleError> {
    let trimmed = expression.trim();
    let fields = trimmed.split_whitespace().count();
    let normalised = if fields == 5 && !trimmed.starts_with('@') {
        format!("0 {trimmed}")
    } else {
        trimmed.to_owned()
    };
    cron::Schedule::from_str(&normalised).map_err(|e| ScheduleError::InvalidCron {
        expression: expression.to_owned(),
        reason: e.to_string(),
    })
}

/// What one evaluation of a schedule decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiringPlan {
    /// Fire times to enqueue now, oldest first (empty when not due).
    pub fire_times: Vec<DateTime<Utc>>,
    /// The schedule's next fire time after these firings.
    pub next_fire_at: DateTime<Utc>,
}

/// Decides which firings are due at `now` for a schedule whose next fire time
/// is `next_fire_at`.
///
/// - Not due (`now < next_fire_at`): nothing fires, `next_fire_at` is kept.
/// - Skip mode (`catch_up == false`, the default): missed firings collapse
///   into one — the latest fire time at or before `now` fires once, and the
///   next fire time is the first one strictly after `now`. After a day of
///   downtime an hourly schedule fires once, not 24 times.
/// - Catch-up mode: every missed fire time fires, oldest first, at most
///   [`MAX_CATCH_UP_PER_CALL`] per call; the next fire time is the first one
///   not yet fired (so the rest follow on the next call).
pub fn plan_firings(
    spec: &ScheduleSpec,
    next_fire_at: DateTime<Utc>,
    now: DateTime<Utc>,
    catch_up: bool,
) -> Result<FiringPlan, ScheduleError> {
    spec.validate()?;
    if now < next_fire_at {
        return Ok(FiringPlan {
            fire_times: Vec::new(),
            next_fire_at,
        });
    }
    if catch_up {
        let mut fire_times = Vec::new();
        let mut at = next_fire_at;
        while at <= now && fire_times.len() < MAX_CATCH_UP_PER_CALL {
            fire_times.push(at);
            at = spec.next_after(at)?;
        }
        return Ok(FiringPlan {
            fire_times,
            next_fire_at: at,
        });
    }
    let (latest, next) = match spec {
        ScheduleSpec::Interval { every_ms } => {
            let period = interval(*every_ms)?;
            let elapsed = now - next_fire_at;
            let period_ms = period.num_milliseconds();
            let steps = elapsed.num_milliseconds() / period_ms;
            let latest = next_fire_at
                .checked_add_signed(
                    ChronoDuration::try_milliseconds(steps.saturating_mul(period_ms))
                        .ok_or(ScheduleError::OutOfRange)?,
                )
                .ok_or(ScheduleError::OutOfRange)?;
            let next = latest
                .checked_add_signed(period)
                .ok_or(ScheduleError::OutOfRange)?;
            (latest, next)
        }
        ScheduleSpec::Cron { expression } => {
            let schedule = parse_cron(expression)?;
            let next = spec.next_after(now)?;
            // The occurrence just before `next` is the latest one at or
            // before `now`; a first fire time that is not itself an
            // occurrence still fires once.
            let previous = schedule.after(&next).next_back();
            let latest = match previous {
                Some(p) if p >= next_fire_at && p <= now => p,
                _ => next_fire_at,
            };
            (latest, next)
        }
    };
    Ok(FiringPlan {
        fire_times: vec![latest],
        next_fire_at: next,
    })
}

/// A durable recurring schedule: which worker to run with what input, and
/// when it fires next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// Caller-chosen id (unique among schedules).
    pub id: String,
    /// The worker each firing enqueues a job for.
    pub worker_name: String,
    /// The args of each job.
    #[serde(default)]
    pub args: Value,
    /// The ctx of each job (`source` is set to `schedule:<id>` when empty).
    #[serde(default)]
    pub ctx: JobCtx,
    /// When it recurs.
    pub spec: ScheduleSpec,
    /// The next time it fires.
    pub next_fire_at: DateTime<Utc>,
    /// The fire time of its last firing.
    #[serde(default)]
    pub last_fired_at: Option<DateTime<Utc>>,
    /// Fire every missed time after downtime instead of once.
    #[serde(default)]
    pub catch_up: bool,
    /// Priority of each job.
    #[serde(default)]
    pub priority: i32,
    /// Attempts of each job.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Timeout of each attempt, in milliseconds.
    #[serde(default, rename = "timeout")]
    pub timeout_ms: Option<u64>,
    /// When set, a firing while the previous job with this key is still
    /// queued or running enqueues nothing (no pile-up of slow jobs).
    #[serde(default)]
    pub unique_key: Option<String>,
}

fn default_max_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}

impl Schedule {
    /// A new schedule whose first firing is the spec's first fire time after
    /// `now`.
    pub fn new(
        id: impl Into<String>,
        worker_name: impl Into<String>,
        args: Value,
        spec: ScheduleSpec,
        now: DateTime<Utc>,
    ) -> Result<Schedule, ScheduleError> {
        let next_fire_at = spec.next_after(now)?;
        Ok(Schedule {
            id: id.into(),
            worker_name: worker_name.into(),
            args,
            ctx: JobCtx::default(),
            spec,
            next_fire_at,
            last_fired_at: None,
            catch_up: false,
            priority: 0,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            timeout_ms: None,
            unique_key: None,
        })
    }

    /// The enqueue options each firing uses.
    pub fn enqueue_options(&self, fire_at: DateTime<Utc>) -> EnqueueOptions {
        let mut options = EnqueueOptions::default()
            .run_at(fire_at)
            .priority(self.priority)
            .max_attempts(self.max_attempts.max(1));
        options.unique_key = self.unique_key.clone();
        options.timeout = self.timeout_ms.map(std::time::Duration::from_millis);
        options
    }
}
