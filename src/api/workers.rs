//! Workers, and pausing and resuming them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::parse::Request;
use super::ControlError;
use crate::engine::WorkerInfo;
use crate::job::JobStatus;
use crate::store::{JobCounts, PauseState};

/// A registered worker as `GET /v1/workers` shows it: what it is, whether
/// it is paused, and its waiting and running jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerState {
    /// Name, description, category, concurrency.
    #[serde(flatten)]
    pub info: WorkerInfo,
    /// Whether its jobs are not claimed now.
    pub paused: bool,
    /// Jobs waiting.
    pub queued: u64,
    /// Jobs running.
    pub running: u64,
    /// Jobs failed (still kept).
    #[serde(default)]
    pub failed: u64,
}

impl WorkerState {
    /// `info` with its pause state and job counts.
    pub fn new(info: WorkerInfo, counts: &JobCounts, pause: &PauseState) -> Self {
        WorkerState {
            paused: pause.is_paused(&info.name),
            queued: counts.worker(&info.name, JobStatus::Queued),
            running: counts.worker(&info.name, JobStatus::Running),
            failed: counts.worker(&info.name, JobStatus::Failed),
            info,
        }
    }
}

/// `GET /v1/workers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkersAnswer {
    /// Agents among them: an agent is the worker of its tasks.
    pub workers: Vec<WorkerState>,
    /// Whether everything is paused.
    pub paused_all: bool,
}

/// `GET /v1/nodes`: the nodes sharing the store (a cluster); empty for a
/// store one process holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodesAnswer {
    /// Most recently started first.
    pub nodes: Vec<crate::store::NodeInfo>,
}

/// `POST /v1/pause` and `POST /v1/resume`: `{}` for everything, or one
/// worker, or one agent's tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PauseRequest {
    /// One worker by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// One agent's tasks (the jobs of the worker named after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

impl PauseRequest {
    /// Everything.
    pub fn all() -> Self {
        PauseRequest::default()
    }

    /// One worker.
    pub fn worker(name: impl Into<String>) -> Self {
        PauseRequest {
            worker: Some(name.into()),
            agent: None,
        }
    }

    /// One agent's tasks.
    pub fn agent(id: impl Into<String>) -> Self {
        PauseRequest {
            worker: None,
            agent: Some(id.into()),
        }
    }
}

impl Request for PauseRequest {
    fn validate(&self) -> Result<(), ControlError> {
        if self.worker.is_some() && self.agent.is_some() {
            return Err(ControlError::Invalid(
                "give `worker` or `agent`, not both".into(),
            ));
        }
        for (name, value) in [("worker", &self.worker), ("agent", &self.agent)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(ControlError::field(name, "must not be empty"));
            }
        }
        Ok(())
    }
}

/// What is paused, after a pause or resume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PauseView {
    /// Everything is paused.
    pub all: bool,
    /// These workers are paused.
    pub workers: BTreeSet<String>,
}

impl From<PauseState> for PauseView {
    fn from(state: PauseState) -> Self {
        PauseView {
            all: state.all,
            workers: state.workers,
        }
    }
}

/// The answer of `POST /v1/pause` and `POST /v1/resume`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PausedAnswer {
    /// What is paused now.
    pub paused: PauseView,
}
