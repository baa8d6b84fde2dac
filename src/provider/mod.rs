//! LLM providers: one request model, OpenAI-compatible and Anthropic wire
//! formats, typed errors, retries, rate limiting, circuit breaking and
//! failover — as plain async Rust, plus the actors around it. The provider
//! actor ([`ProviderActor`]) is a thin shell around a [`Provider`] value: it
//! answers each [`Generate`] message with a reply future that checks the
//! key's expiry and the agent's budget, calls [`Provider::generate`] and
//! records usage ([`UsageMeter`]). [`ProviderSet`] builds one actor per
//! configured provider and fails over across them by [`ModelConfig`].
//!
//! One call: [`RateLimiter`] (wait for a slot, or fail fast if the wait is
//! over the in-line cap) → [`CircuitBreaker`] (refuse while open) → HTTP
//! ([`http`]) → decode ([`openai`] / [`anthropic`]) or classify
//! ([`classify`]) — all inside [`retry::run`], which asks the shared
//! [`RetryPolicy`] after each failed attempt. [`ProviderSet::generate`]
//! walks an agent's candidates (its model, then its fallbacks) on top;
//! [`failover`] decides which error a total failure returns.
//!
//! Decisions worth knowing:
//! - Tool-call arguments that are not valid JSON do not fail the call: the
//!   [`ToolCall`] carries `arguments_error` (raw text + parser message) and
//!   the agent answers with a tool error so the model can fix its call.
//! - Context too long and bad request stop failover (every provider would
//!   refuse the same input; the job should shrink it); everything about a
//!   provider's health or account (auth, quota, overload, open circuit,
//!   exhausted retries, rate limits) moves on.
//! - A retry waits the longer of the backoff and the provider's wait; a
//!   wait over `maxInlineWaitSecs` (60 s), and an open circuit, are not slept
//!   through: the error goes back with its [`ProviderError::retry_after`],
//!   and [`ProviderError::job_retry`] tells the job engine to run the job
//!   again after it instead of holding a worker (or to fail it, for what
//!   waiting cannot fix).
//! - OpenAI-protocol tool results have no error flag: `is_error` results are
//!   sent as `"Error: …"`. Anthropic temperatures are clamped to 0..=1.
//!   OpenAI gets `max_completion_tokens`, the others `max_tokens`.
//! - `baseUrl` includes the API version (`…/v1`) for every type, Anthropic
//!   included; `/chat/completions` or `/messages` is appended.
//! - Keys live in [`ApiKey`] (redacted `Debug`, zeroed on drop, no
//!   `Display`/`Serialize`); auth and custom header values are marked
//!   sensitive; anything a provider echoes back is scrubbed of the key.
//! - Time comes from a [`Clock`]; tests use `ManualClock` so waits are
//!   asserted exactly, never slept.

pub(crate) mod actor;
pub(crate) mod anthropic;
pub(crate) mod breaker;
pub(crate) mod classify;
pub(crate) mod client;
pub(crate) mod clock;
pub(crate) mod config;
mod credentials;
pub(crate) mod error;
pub(crate) mod failover;
pub(crate) mod headers;
pub(crate) mod http;
mod meter;
pub(crate) mod model;
pub(crate) mod openai;
mod price;
pub(crate) mod ratelimit;
pub(crate) mod retry;
pub(crate) mod route;
pub(crate) mod set;
mod stats;
pub(crate) mod stream;
mod tools_json;

pub(crate) use crate::secrets::ApiKey;
pub use actor::{Generate, Probe, ProviderActor};
pub use breaker::{BreakerConfig, BreakerState};
pub use client::Provider;
pub(crate) use clock::{Clock, SystemClock};
pub use config::{ProviderConfig, ProviderKind};
pub(crate) use credentials::Credentials;
pub use credentials::KeySource;
pub(crate) use error::JobRetry;
pub use error::{ErrorKind, ProviderError};
pub(crate) use meter::CallRecord;
pub use meter::{Budget, UsageMeter};
pub use model::{
    ArgumentsError, FinishReason, GenerateRequest, GenerateResponse, Message, ToolCall, ToolChoice,
    ToolDefinition, ToolResult, Usage,
};
pub(crate) use price::PriceTable;
pub use price::{Price, PricingConfig};
pub use ratelimit::RateLimitConfig;
pub use route::ModelRef;
pub use set::{ProviderSet, ProviderSetError};
pub(crate) use stats::CallStats;
pub use stream::TextSink;

#[cfg(test)]
mod tests;
