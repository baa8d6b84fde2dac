//! Jobs: enqueue, list, show, cancel.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::parse::{fields, Request};
use super::ControlError;
use crate::job::{EnqueueOptions, Job, JobCtx, JobId, JobStatus, DEFAULT_MAX_ATTEMPTS};
use crate::store::{CancelOutcome, InsertOutcome, ListQuery, Store};

/// Largest page of [`JobsQuery::limit`].
pub const MAX_PAGE: usize = 1000;

/// Page size when [`JobsQuery::limit`] is not given.
pub const DEFAULT_PAGE: usize = 50;

/// Largest JSON of one page's jobs, in bytes (4 MiB): a page that would
/// pass it ends early, and its `nextCursor` continues after its last job.
/// A single job larger than this still comes, alone on its page.
pub const MAX_PAGE_BYTES: usize = 4 << 20;

/// Jobs read from the store at a time while a page is gathered, so that a
/// page of large jobs never holds many more of them than it answers.
const READ_CHUNK: usize = 32;

/// `POST /v1/jobs`: the fields of `troupe enqueue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnqueueRequest {
    /// The worker to run the job.
    pub worker_name: String,
    /// The job's args (default `{}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// Who asked and from where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx: Option<JobCtx>,
    /// Start no earlier than this many milliseconds from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Start no earlier than this time (RFC 3339); exclusive with `delayMs`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "fields::rfc3339"
    )]
    pub run_at: Option<DateTime<Utc>>,
    /// Higher runs first among ready jobs (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Attempts before the job ends failed (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// While a job with this key is queued or running, answer it instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// Longest time one attempt may run, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl EnqueueRequest {
    /// A job for `worker` with every option at its default.
    pub fn new(worker: impl Into<String>) -> Self {
        EnqueueRequest {
            worker_name: worker.into(),
            args: None,
            ctx: None,
            delay_ms: None,
            run_at: None,
            priority: None,
            max_attempts: None,
            unique_key: None,
            timeout_ms: None,
        }
    }

    /// The args, `{}` when none were given.
    pub fn job_args(&self) -> Value {
        self.args
            .clone()
            .unwrap_or_else(|| Value::Object(Default::default()))
    }

    /// The engine's options for this request.
    pub fn options(&self) -> EnqueueOptions {
        let mut options = EnqueueOptions::default()
            .priority(self.priority.unwrap_or(0))
            .max_attempts(self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS));
        options.delay = self.delay_ms.map(Duration::from_millis);
        options.run_at = self.run_at;
        options.unique_key = self.unique_key.clone();
        options.timeout = self.timeout_ms.map(Duration::from_millis);
        options
    }
}

impl Request for EnqueueRequest {
    fn validate(&self) -> Result<(), ControlError> {
        if self.worker_name.trim().is_empty() {
            return Err(ControlError::field("workerName", "must not be empty"));
        }
        if self.max_attempts == Some(0) {
            return Err(ControlError::field("maxAttempts", "must be at least 1"));
        }
        if self.delay_ms.is_some() && self.run_at.is_some() {
            return Err(ControlError::Invalid(
                "give `delayMs` or `runAt`, not both".into(),
            ));
        }
        if self.unique_key.as_deref().is_some_and(str::is_empty) {
            return Err(ControlError::field("uniqueKey", "must not be empty"));
        }
        if self.timeout_ms == Some(0) {
            return Err(ControlError::field(
                "timeoutMs",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

/// What an enqueue did. On the wire the daemon answers the job alone, 201
/// when it is new and 200 when a job already held the unique key; `troupe
/// enqueue --json` prints this whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Enqueued {
    /// Whether the job was created (else it already held the unique key).
    pub new: bool,
    /// The job, durable.
    pub job: Job,
}

impl From<InsertOutcome> for Enqueued {
    fn from(outcome: InsertOutcome) -> Self {
        let new = outcome.is_new();
        Enqueued {
            new,
            job: outcome.into_job(),
        }
    }
}

/// A field of a job that lists leave out unless asked for: what a worker
/// was given and what it answered, the parts that can be large.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JobField {
    /// The job's `args`.
    Args,
    /// The job's `result`.
    Result,
}

impl JobField {
    /// Every field a list may leave out.
    pub const ALL: [JobField; 2] = [JobField::Args, JobField::Result];

    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            JobField::Args => "args",
            JobField::Result => "result",
        }
    }

    /// The field named `name` (`args`, `result`).
    pub fn parse(name: &str) -> Result<Self, String> {
        JobField::ALL
            .into_iter()
            .find(|f| f.as_str() == name)
            .ok_or_else(|| {
                format!("`{name}` is not a job field a list can add: expected `args` or `result`")
            })
    }

    /// Leaves this field out of `job` (empties it).
    fn leave_out(self, job: &mut Job) {
        match self {
            JobField::Args => job.args = Value::Null,
            JobField::Result => job.result = None,
        }
    }
}

/// `GET /v1/jobs?status=&worker=&limit=&cursor=&fields=`: a page of jobs,
/// newest first, without their `args` and `result` unless `fields` asks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobsQuery {
    /// Only jobs with this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
    /// Only jobs of this worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Page size, 1 to [`MAX_PAGE`] (default [`DEFAULT_PAGE`]); a page
    /// also ends before its jobs pass [`MAX_PAGE_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// The `nextCursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<JobId>,
    /// Fields to list too, left out otherwise: `fields=args,result`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "comma_list",
        deserialize_with = "from_comma_list"
    )]
    pub fields: Vec<JobField>,
}

impl JobsQuery {
    /// The store's query for this page.
    pub fn list_query(&self) -> ListQuery {
        ListQuery {
            status: self.status,
            worker: self.worker.clone(),
            limit: self.limit.unwrap_or(DEFAULT_PAGE),
            cursor: self.cursor,
        }
    }

    /// The fields a page for this query leaves out.
    pub fn omitted(&self) -> Vec<JobField> {
        JobField::ALL
            .into_iter()
            .filter(|f| !self.fields.contains(f))
            .collect()
    }

    /// Gathers the page this query asks for from `store`, [`READ_CHUNK`]
    /// jobs at a time, leaving out the fields not asked for, until it
    /// holds `limit` jobs or the next would take it past
    /// [`MAX_PAGE_BYTES`].
    pub(crate) async fn page(&self, store: &dyn Store) -> Result<JobsPage, ControlError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        let mut page = JobsPage {
            jobs: Vec::new(),
            next_cursor: None,
            omitted: self.omitted(),
        };
        let mut bytes = 0;
        let mut query = self.list_query();
        loop {
            query.limit = (limit - page.jobs.len()).min(READ_CHUNK);
            let chunk = store.list_jobs(&query).await?;
            for mut job in chunk.jobs {
                page.omitted.iter().for_each(|f| f.leave_out(&mut job));
                let size = json_len(&job);
                if !page.jobs.is_empty() && bytes + size > MAX_PAGE_BYTES {
                    page.next_cursor = page.jobs.last().map(|j| j.id);
                    return Ok(page);
                }
                bytes += size;
                page.jobs.push(job);
            }
            match chunk.next_cursor {
                Some(next) if page.jobs.len() < limit && query.cursor != Some(next) => {
                    query.cursor = Some(next);
                }
                next => {
                    page.next_cursor = next;
                    return Ok(page);
                }
            }
        }
    }
}

/// The length of `job`'s JSON, without writing it anywhere.
fn json_len(job: &Job) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, job);
    count.0
}

/// `fields` on the wire: `args,result`.
fn comma_list<S: Serializer>(fields: &[JobField], s: S) -> Result<S::Ok, S::Error> {
    let names: Vec<&str> = fields.iter().map(|f| f.as_str()).collect();
    s.serialize_str(&names.join(","))
}

/// `fields` off the wire: names separated by commas, blanks ignored.
fn from_comma_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<JobField>, D::Error> {
    let text = Option::<String>::deserialize(d)?.unwrap_or_default();
    let mut fields = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let field = JobField::parse(name).map_err(serde::de::Error::custom)?;
        if !fields.contains(&field) {
            fields.push(field);
        }
    }
    Ok(fields)
}

impl Request for JobsQuery {
    fn validate(&self) -> Result<(), ControlError> {
        match self.limit {
            Some(n) if !(1..=MAX_PAGE).contains(&n) => Err(ControlError::param(
                "limit",
                format!("expected 1 to {MAX_PAGE}, got `{n}`"),
            )),
            _ => Ok(()),
        }
    }
}

/// A page of jobs. On the wire its jobs lack the fields in `omitted`
/// (here they are empty: `args` null, no `result`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobsPage {
    /// Newest first.
    pub jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<JobId>,
    /// The fields left out of every job of this page (absent when none).
    #[serde(default)]
    pub omitted: Vec<JobField>,
}

impl JobsPage {
    /// The jobs as the wire shows them: without the omitted fields.
    pub fn listed(&self) -> ListedJobs<'_> {
        ListedJobs {
            jobs: &self.jobs,
            omitted: &self.omitted,
        }
    }
}

impl Serialize for JobsPage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            jobs: ListedJobs<'a>,
            next_cursor: &'a Option<JobId>,
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            omitted: &'a [JobField],
        }
        Wire {
            jobs: self.listed(),
            next_cursor: &self.next_cursor,
            omitted: &self.omitted,
        }
        .serialize(s)
    }
}

/// Jobs as a list shows them: a JSON array whose jobs lack the omitted
/// fields ([`JobsPage::listed`]).
#[derive(Debug, Clone, Copy)]
pub struct ListedJobs<'a> {
    jobs: &'a [Job],
    omitted: &'a [JobField],
}

impl Serialize for ListedJobs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = s.serialize_seq(Some(self.jobs.len()))?;
        for job in self.jobs {
            let mut value = serde_json::to_value(job).map_err(S::Error::custom)?;
            if let Value::Object(map) = &mut value {
                for field in self.omitted {
                    map.remove(field.as_str());
                }
            }
            seq.serialize_element(&value)?;
        }
        seq.end()
    }
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CancelKind {
    /// It was queued and is now cancelled.
    Cancelled,
    /// It is running; it ends cancelled when its run stops.
    Requested,
    /// It had already ended; nothing changed.
    AlreadyEnded,
}

/// `POST /v1/jobs/{id}/cancel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelAnswer {
    /// What the cancel did.
    pub outcome: CancelKind,
    /// The job after it.
    pub job: Job,
}

impl From<CancelOutcome> for CancelAnswer {
    fn from(outcome: CancelOutcome) -> Self {
        let (outcome, job) = match outcome {
            CancelOutcome::Cancelled(job) => (CancelKind::Cancelled, job),
            CancelOutcome::Requested(job) => (CancelKind::Requested, job),
            CancelOutcome::AlreadyEnded(job) => (CancelKind::AlreadyEnded, job),
        };
        CancelAnswer { outcome, job }
    }
}
