//! [`RemoteControl`]: the control API of a daemon, over HTTP.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::*;
use crate::job::ApprovalId;

/// How long one request may take: long, because a task waited for answers
/// only when the task ends.
const TIMEOUT: Duration = Duration::from_secs(3600);

/// A client of one daemon's control API. Errors the daemon answers come
/// back as the [`ControlError`] variant of their status, with the daemon's
/// message, so they read as they would in-process.
pub struct RemoteControl {
    base: Url,
    token: Option<String>,
    client: reqwest::Client,
}

/// One request: its method, route and the id in it, its query and body.
struct Call<'a, Q: Serialize, B: Serialize> {
    method: Method,
    route: &'a str,
    id: &'a str,
    query: Option<&'a Q>,
    body: Option<&'a B>,
}

impl<'a> Call<'a, (), ()> {
    fn get(route: &'a str) -> Self {
        Call {
            method: Method::GET,
            route,
            id: "",
            query: None,
            body: None,
        }
    }

    fn post(route: &'a str) -> Self {
        Call {
            method: Method::POST,
            ..Call::get(route)
        }
    }
}

impl<'a, Q: Serialize, B: Serialize> Call<'a, Q, B> {
    fn id(self, id: &'a str) -> Self {
        Call { id, ..self }
    }

    fn query<Q2: Serialize>(self, query: &'a Q2) -> Call<'a, Q2, B> {
        Call {
            method: self.method,
            route: self.route,
            id: self.id,
            query: Some(query),
            body: self.body,
        }
    }

    fn body<B2: Serialize>(self, body: &'a B2) -> Call<'a, Q, B2> {
        Call {
            method: self.method,
            route: self.route,
            id: self.id,
            query: self.query,
            body: Some(body),
        }
    }
}

impl RemoteControl {
    /// A client for the daemon at `url` (e.g. `http://127.0.0.1:7700`),
    /// sending `token` as a bearer token when given.
    pub fn new(url: &str, token: Option<String>) -> Result<Self, ControlError> {
        let bad = |why: String| {
            ControlError::BadRequest(format!("`{url}` is not a daemon address: {why}"))
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(bad("it must start with http:// or https://".into()));
        }
        let base = Url::parse(url.trim_end_matches('/')).map_err(|e| bad(e.to_string()))?;
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| ControlError::Internal(format!("cannot build an HTTP client: {e}")))?;
        Ok(RemoteControl {
            base,
            token,
            client,
        })
    }

    /// The daemon's address.
    pub fn url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    fn url_of(&self, route: &str, id: &str) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(routes::segments(route, id));
        }
        url
    }

    fn unreachable(&self, source: reqwest::Error) -> ControlError {
        ControlError::Unreachable {
            url: self.url().to_string(),
            source,
        }
    }

    /// Sends `call`; the response when its status is a success (or is one
    /// of `also`), else the daemon's error.
    async fn send<Q: Serialize, B: Serialize>(
        &self,
        call: Call<'_, Q, B>,
        also: &[StatusCode],
    ) -> Result<reqwest::Response, ControlError> {
        let mut request = self
            .client
            .request(call.method, self.url_of(call.route, call.id));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(query) = call.query {
            request = request.query(query);
        }
        if let Some(body) = call.body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if status.is_success() || also.contains(&status) {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => body.error.message,
            Err(_) => format!("HTTP {status} from the daemon at {}", self.url()),
        };
        Err(ControlError::from_status(status.as_u16(), message))
    }

    /// Sends `call` and reads a successful answer as `T`.
    async fn fetch<T: DeserializeOwned, Q: Serialize, B: Serialize>(
        &self,
        call: Call<'_, Q, B>,
    ) -> Result<T, ControlError> {
        let response = self.send(call, &[]).await?;
        self.read(response).await
    }

    async fn read<T: DeserializeOwned>(
        &self,
        response: reqwest::Response,
    ) -> Result<T, ControlError> {
        let bytes = response.bytes().await.map_err(|e| self.unreachable(e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ControlError::Internal(format!(
                "unexpected answer from the daemon at {}: {e}",
                self.url()
            ))
        })
    }
}

#[async_trait]
impl Control for RemoteControl {
    async fn enqueue(&self, request: EnqueueRequest) -> Result<Enqueued, ControlError> {
        let response = self
            .send(Call::post(routes::JOBS).body(&request), &[])
            .await?;
        // 201: created; 200: a job already held the unique key.
        let new = response.status() == StatusCode::CREATED;
        Ok(Enqueued {
            new,
            job: self.read(response).await?,
        })
    }

    async fn jobs(&self, query: JobsQuery) -> Result<JobsPage, ControlError> {
        self.fetch(Call::get(routes::JOBS).query(&query)).await
    }

    async fn job(&self, id: JobId) -> Result<Job, ControlError> {
        let id = id.to_string();
        self.fetch(Call::get(routes::JOB).id(&id)).await
    }

    async fn cancel(&self, id: JobId) -> Result<CancelAnswer, ControlError> {
        let id = id.to_string();
        let empty = serde_json::json!({});
        self.fetch(Call::post(routes::CANCEL).id(&id).body(&empty))
            .await
    }

    async fn approvals(&self) -> Result<ApprovalsAnswer, ControlError> {
        self.fetch(Call::get(routes::APPROVALS)).await
    }

    async fn approve(
        &self,
        id: ApprovalId,
        request: ApproveRequest,
    ) -> Result<DecidedAnswer, ControlError> {
        let id = id.to_string();
        self.fetch(Call::post(routes::APPROVE).id(&id).body(&request))
            .await
    }

    async fn deny(
        &self,
        id: ApprovalId,
        request: DenyRequest,
    ) -> Result<DecidedAnswer, ControlError> {
        let id = id.to_string();
        self.fetch(Call::post(routes::DENY).id(&id).body(&request))
            .await
    }

    async fn nodes(&self) -> Result<NodesAnswer, ControlError> {
        self.fetch(Call::get(routes::NODES)).await
    }

    async fn workers(&self) -> Result<WorkersAnswer, ControlError> {
        self.fetch(Call::get(routes::WORKERS)).await
    }

    async fn agents(&self) -> Result<AgentsAnswer, ControlError> {
        self.fetch(Call::get(routes::AGENTS)).await
    }

    async fn task(&self, agent: &str, request: TaskRequest) -> Result<TaskAnswer, ControlError> {
        let call = Call::post(routes::TASKS).id(agent).body(&request);
        let response = self.send(call, &[]).await?;
        // 201: queued, the job; 200: waited for, the result.
        Ok(if response.status() == StatusCode::CREATED {
            TaskAnswer::Queued(self.read(response).await?)
        } else {
            TaskAnswer::Finished(self.read(response).await?)
        })
    }

    async fn memories(
        &self,
        agent: &str,
        query: MemoriesQuery,
    ) -> Result<MemoriesAnswer, ControlError> {
        let call = Call::get(routes::MEMORIES).id(agent).query(&query);
        self.fetch(call).await
    }

    async fn messages(&self, conversation: &str) -> Result<MessagesAnswer, ControlError> {
        self.fetch(Call::get(routes::MESSAGES).id(conversation))
            .await
    }

    async fn pause(&self, request: PauseRequest) -> Result<PausedAnswer, ControlError> {
        self.fetch(Call::post(routes::PAUSE).body(&request)).await
    }

    async fn resume(&self, request: PauseRequest) -> Result<PausedAnswer, ControlError> {
        self.fetch(Call::post(routes::RESUME).body(&request)).await
    }

    async fn status(&self) -> Result<StatusScreen, ControlError> {
        let mut screen: StatusScreen = self.fetch(Call::get(routes::STATUS)).await?;
        screen.daemon = Some(self.url().to_string());
        Ok(screen)
    }

    async fn steps(&self, id: JobId) -> Result<StepsAnswer, ControlError> {
        let id = id.to_string();
        self.fetch(Call::get(routes::STEPS).id(&id)).await
    }

    async fn stats(&self) -> Result<StatsAnswer, ControlError> {
        self.fetch(Call::get(routes::STATS)).await
    }

    async fn agent(&self, agent: &str) -> Result<AgentDetail, ControlError> {
        self.fetch(Call::get(routes::AGENT).id(agent)).await
    }

    async fn recall(&self, agent: &str, query: RecallQuery) -> Result<RecallAnswer, ControlError> {
        self.fetch(Call::get(routes::RECALL).id(agent).query(&query))
            .await
    }

    async fn health(&self) -> Result<Health, ControlError> {
        self.fetch(Call::get(routes::HEALTHZ)).await
    }

    async fn readiness(&self) -> Result<Readiness, ControlError> {
        // Not ready is 503 with the same body: an answer, not an error.
        let response = self
            .send(
                Call::get(routes::READYZ),
                &[StatusCode::SERVICE_UNAVAILABLE],
            )
            .await?;
        self.read(response).await
    }

    async fn metrics(&self) -> Result<String, ControlError> {
        let response = self.send(Call::get(routes::METRICS), &[]).await?;
        response.text().await.map_err(|e| self.unreachable(e))
    }

    async fn events(&self, id: JobId, after: u64) -> Result<EventsStream, ControlError> {
        let mut request = self
            .client
            .get(self.url_of(routes::EVENTS, &id.to_string()))
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if after > 0 {
            request = request.header(LAST_EVENT_ID, after.to_string());
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let message = match serde_json::from_str::<ErrorBody>(&text) {
                Ok(body) => body.error.message,
                Err(_) => format!("HTTP {status} from the daemon at {}", self.url()),
            };
            return Err(ControlError::from_status(status.as_u16(), message));
        }
        Ok(events::read_sse(response, self.url().to_string(), after))
    }
}
