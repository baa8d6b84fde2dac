//! The control API of a running Troupe, over HTTP (actix-web, on the same
//! actix System as the actors): health, readiness, Prometheus metrics, and a
//! JSON API under `/v1` to enqueue and inspect jobs, run agent tasks, read
//! memories and conversations, and pause or resume work.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | alive |
//! | `GET /readyz` | store answers, supervision trees up, providers' circuits; 503 when not ready |
//! | `GET /metrics` | Prometheus text, series `troupe_*` ([`Troupe::metrics`](crate::Troupe::metrics)) |
//! | `POST /v1/jobs` | enqueue (`workerName`, `args`, `ctx`, `delayMs` or `runAt`, `priority`, `maxAttempts`, `uniqueKey`, `timeoutMs`) → 201 + job |
//! | `GET /v1/jobs?status=&worker=&limit=&cursor=&fields=` | a page of jobs, newest first, without `args` and `result` unless `fields=args,result` |
//! | `GET /v1/jobs/{id}`, `POST /v1/jobs/{id}/cancel` | one job, whole; cancel it |
//! | `GET /v1/approvals`, `POST /v1/approvals/{id}/approve`, `POST /v1/approvals/{id}/deny` | tool calls waiting for a person; decide one (409 when already decided) |
//! | `GET /v1/workers`, `GET /v1/agents` | registered workers; configured agents |
//! | `POST /v1/agents/{id}/tasks` | a task (`prompt`, `conversationId`, `userId`, `wait`) → job, or with `wait` its ProcessingResult |
//! | `GET /v1/agents/{id}/memories?userId=&archived=` | an agent's memories |
//! | `GET /v1/conversations/{id}/messages` | a conversation, oldest first |
//! | `POST /v1/pause`, `POST /v1/resume` | `{}` all, `{"worker":…}` or `{"agent":…}` (durable) |
//! | `GET /v1/status` | the one-screen status of `troupe status` |
//! | `GET /v1/jobs/{id}/steps` | an agent task's checkpoint records (the Studio's transcript) |
//! | `GET /v1/stats` | jobs ended per minute over the last hour, provider calls, errors and latency, spend against budgets |
//! | `GET /v1/agents/{id}`, `GET /v1/agents/{id}/recall?q=&userId=&limit=` | one agent's settings; its memories ranked for a query, with scores |
//! | `GET /`, `GET /studio/*` | the Studio: a web page over these routes (`studio.rs`), open, static |
//!
//! The handlers only translate: each reads its typed request
//! ([`crate::api`]), calls the [`Control`](crate::api::Control) the server
//! was given and writes the answer; the wire format is those types.
//!
//! Errors are `{"error":{"status":…,"message":…}}`
//! ([`ControlError`](crate::api::ControlError)).
//!
//! Loopback is not trust (a web page in a browser on the same machine can
//! send requests to 127.0.0.1), so `/v1` and `/metrics` take a request
//! only if its `Host` is the daemon's own (421 otherwise), it has no
//! foreign `Origin` (403), it carries the token as `Authorization: Bearer
//! <token>` (401) and any body it sends is `Content-Type:
//! application/json` (415); see `guard.rs`. `/healthz` and `/readyz` stay
//! open for probes. The token is [`HttpConfig::token`]: `troupe run` keeps
//! it in [`TOKEN_FILE`] in its data directory unless one is configured.
//!
//! No client can hold the server up: a request's head and then its body
//! must arrive within [`HttpConfig::read_timeout`] (408, and the connection
//! closes), a body is at most [`HttpConfig::body_limit`] (413), at most
//! [`HttpConfig::max_connections`] are open at once, and job lists are
//! paged by count and by size ([`crate::api::MAX_PAGE_BYTES`]). Binding
//! beyond loopback needs [`HttpConfig::allowed_hosts`].

mod body;
mod errors;
mod guard;
mod handlers;
mod server;
mod studio;
mod token;

pub use server::{
    ControlServer, HttpConfig, HttpError, DEFAULT_ADDR, DEFAULT_BACKLOG, DEFAULT_BODY_LIMIT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_READ_TIMEOUT,
};
pub use token::{HttpToken, TokenFileError, TOKEN_FILE};
