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
//! | `GET /v1/jobs?status=&worker=&limit=&cursor=` | a page of jobs, newest first |
//! | `GET /v1/jobs/{id}`, `POST /v1/jobs/{id}/cancel` | one job; cancel it |
//! | `GET /v1/workers`, `GET /v1/agents` | registered workers; configured agents |
//! | `POST /v1/agents/{id}/tasks` | a task (`prompt`, `conversationId`, `userId`, `wait`) → job, or with `wait` its ProcessingResult |
//! | `GET /v1/agents/{id}/memories?userId=&archived=` | an agent's memories |
//! | `GET /v1/conversations/{id}/messages` | a conversation, oldest first |
//! | `POST /v1/pause`, `POST /v1/resume` | `{}` all, `{"worker":…}` or `{"agent":…}` (durable) |
//! | `GET /v1/status` | the one-screen status of `troupe status` |
//!
//! The handlers only translate: each reads its typed request
//! ([`crate::api`]), calls the [`Control`](crate::api::Control) the server
//! was given and writes the answer; the wire format is those types.
//!
//! Errors are `{"error":{"status":…,"message":…}}`
//! ([`ControlError`](crate::api::ControlError)); bodies
//! are limited ([`HttpConfig::body_limit`], 413 beyond). With a token
//! configured, `/v1` and `/metrics` need `Authorization: Bearer <token>`
//! (401 otherwise); binding beyond loopback without one is refused.

mod auth;
mod body;
mod errors;
mod handlers;
mod server;

pub use auth::HttpToken;
pub use server::{ControlServer, HttpConfig, HttpError, DEFAULT_ADDR, DEFAULT_BODY_LIMIT};
