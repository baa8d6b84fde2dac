//! [`EventStream`]: one job's events as a [`Stream`], for the library's
//! users and the control API's SSE route.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use crate::events::{Logged, Subscription, TaskEvent};
use crate::job::Job;

use super::error::EngineError;
use super::shared::terminal_event;

/// The events of one job: those still held from the cursor on, then the
/// live ones, ending after the terminal event (`completed`, `failed`,
/// `cancelled`) or when the engine stops. Made by
/// [`WorkerEngine::events`](super::WorkerEngine::events).
pub struct EventStream {
    inner: Pin<Box<dyn Stream<Item = std::sync::Arc<Logged>> + Send>>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

/// What the stream reads from: the job's log, and the job's end as the
/// engine hears of it (`None` once heard).
struct Follow {
    sub: Subscription,
    end: Option<JobEnd>,
}

/// The job's end as the engine hears of it.
pub(super) type JobEnd = Pin<Box<dyn Future<Output = Result<Job, EngineError>> + Send>>;

impl EventStream {
    /// Reads `sub`; `end`, when given, is how the job's end is heard when
    /// its terminal event will not come to this log (a store shared with
    /// other nodes).
    pub(super) fn new(sub: Subscription, end: Option<JobEnd>) -> Self {
        let state = Follow { sub, end };
        let inner = futures::stream::unfold(state, |mut state| async move {
            let event = next(&mut state).await?;
            Some((event, state))
        });
        EventStream {
            inner: Box::pin(inner),
        }
    }
}

impl EventStream {
    /// The events as the log holds them, each with its SSE frame written
    /// once for all followers (the SSE route's read: no copy per follower).
    pub(crate) fn into_logged(self) -> Pin<Box<dyn Stream<Item = std::sync::Arc<Logged>> + Send>> {
        self.inner
    }
}

/// The next event; the job's end, heard before its terminal event came
/// (it ended elsewhere), puts that event in the log from the job record.
async fn next(state: &mut Follow) -> Option<std::sync::Arc<Logged>> {
    loop {
        let Some(end) = state.end.as_mut() else {
            return state.sub.next().await;
        };
        tokio::select! {
            biased;
            event = state.sub.next() => return event,
            ended = end => {
                state.end = None;
                if let Ok(job) = ended {
                    state.sub.emit_end(&job, terminal_event(&job));
                }
            }
        }
    }
}

impl Stream for EventStream {
    type Item = TaskEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<TaskEvent>> {
        self.inner
            .as_mut()
            .poll_next(cx)
            .map(|e| e.map(|logged| logged.event.clone()))
    }
}
