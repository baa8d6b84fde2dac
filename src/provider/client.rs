//! [`Provider`]: one configured provider, ready to answer [`GenerateRequest`]s.
//!
//! This is the value a provider actor wraps: the actor forwards `Generate`
//! messages to [`Provider::generate`]. Each call goes rate limiter → circuit
//! breaker → HTTP → decode or classify, inside the retry policy. `Provider`
//! is cheap to clone (shared state behind an `Arc`), so an actor can hand a
//! clone to each in-flight future.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use super::anthropic;
use super::breaker::{BreakerState, CircuitBreaker};
use super::classify::{classify, CallContext};
use super::clock::{Clock, SystemClock};
use super::config::{ProviderConfig, ProviderKind};
use super::error::{ErrorKind, ProviderError};
use super::headers;
use super::http::{HttpTransport, RawResponse, TransportError};
use super::model::{GenerateRequest, GenerateResponse};
use super::openai;
use super::ratelimit::RateLimiter;
use super::retry::{self, RetryPolicy};
use super::stream::{self, Accumulator, TextSink};
use super::tools_json::ToolsCache;
use crate::events::sse::SseReader;
use crate::secrets::ApiKey;

/// A provider client: protocol, credentials, limiter, breaker and retries.
#[derive(Debug, Clone)]
pub struct Provider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    kind: ProviderKind,
    generate_url: reqwest::Url,
    models_url: reqwest::Url,
    key: Option<ApiKey>,
    http: HttpTransport,
    limiter: RateLimiter,
    breaker: CircuitBreaker,
    retry: RetryPolicy,
    clock: Arc<dyn Clock>,
    /// Each agent's tools array, encoded once (see `tools_json.rs`).
    tools: ToolsCache,
}

impl Provider {
    /// Builds a provider on real time.
    pub fn new(config: ProviderConfig) -> Result<Self, ProviderError> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// Builds a provider whose waits use `clock` (tests use a manual clock).
    pub(crate) fn with_clock(
        config: ProviderConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ProviderError> {
        let base = config.resolved_base_url()?;
        let key = config.resolved_api_key()?;
        let cfg_err =
            |msg: String| ProviderError::new(ErrorKind::InvalidConfig, &config.name, "-", msg);
        let headers = build_headers(&config, key.as_ref()).map_err(cfg_err)?;
        let http = HttpTransport::new(config.timeout(), headers, config.max_response_bytes())
            .map_err(cfg_err)?;
        let path = if config.kind.is_openai_protocol() {
            openai::PATH
        } else {
            anthropic::PATH
        };
        // Parsed once: URL parsing is a visible share of a loopback call's CPU.
        let parse = |u: String| {
            reqwest::Url::parse(&u).map_err(|e| cfg_err(format!("invalid baseUrl {base:?}: {e}")))
        };
        let generate_url = parse(format!("{base}{path}"))?;
        let models_url = parse(format!("{base}/models"))?;
        Ok(Provider {
            inner: Arc::new(Inner {
                generate_url,
                models_url,
                name: config.name.clone(),
                kind: config.kind,
                key,
                http,
                limiter: RateLimiter::new(config.rate_limit, clock.clone()),
                breaker: CircuitBreaker::new(config.breaker, clock.clone()),
                retry: config.retry.clone(),
                clock,
                tools: ToolsCache::default(),
            }),
        })
    }

    /// The configured name agents refer to.
    pub(crate) fn name(&self) -> &str {
        &self.inner.name
    }

    /// The protocol family.
    pub(crate) fn kind(&self) -> ProviderKind {
        self.inner.kind
    }

    /// Circuit state, for status output and failover decisions.
    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    /// Limits in force, for status output.
    #[cfg(test)]
    pub(crate) fn limiter_snapshot(&self) -> super::ratelimit::LimiterSnapshot {
        self.inner.limiter.snapshot()
    }

    /// The JSON body this provider would send for `req`; for tests and debugging.
    pub fn encode(&self, req: &GenerateRequest) -> serde_json::Value {
        if self.inner.kind.is_openai_protocol() {
            openai::encode(req, self.inner.kind)
        } else {
            anthropic::encode(req)
        }
    }

    /// Sends `req` (with retries) and returns the model's answer.
    pub async fn generate(&self, req: GenerateRequest) -> Result<GenerateResponse, ProviderError> {
        self.generate_with(req, None).await
    }

    /// Sends `req` as a streaming request (with retries): the reply's text
    /// goes to `text` as it arrives, and the answer is the one
    /// [`generate`](Self::generate) gives (see `stream.rs`). A stream cut
    /// short is a connection error, retried like one; the text of a retried
    /// call arrives again.
    pub async fn generate_streaming(
        &self,
        req: GenerateRequest,
        text: TextSink,
    ) -> Result<GenerateResponse, ProviderError> {
        self.generate_with(req, Some(text)).await
    }

    async fn generate_with(
        &self,
        req: GenerateRequest,
        text: Option<TextSink>,
    ) -> Result<GenerateResponse, ProviderError> {
        let ctx = self.ctx(&req.model);
        let openai = self.inner.kind.is_openai_protocol();
        let tools = self.inner.tools.get(&req.tools, |defs| {
            if openai {
                openai::encode_tools(defs)
            } else {
                anthropic::encode_tools(defs)
            }
        });
        let encoded = if openai {
            openai::encode_body(&req, self.inner.kind, tools.as_deref())
        } else {
            anthropic::encode_body(&req, tools.as_deref())
        };
        let mut body = encoded.map_err(|e| {
            ctx.error(
                ErrorKind::BadRequest,
                &format!("cannot encode request: {e}"),
            )
        })?;
        if text.is_some() {
            body = stream::streaming_body(body, self.stream_fields()).map_err(|e| {
                ctx.error(
                    ErrorKind::BadRequest,
                    &format!("cannot encode request: {e}"),
                )
            })?;
        }
        // Bytes/4 approximates input tokens; TPM limits also count max output.
        let estimate = body.len() as u64 / 4 + u64::from(req.max_tokens.unwrap_or(0));
        // From here on only the model's name is needed. The rest (the
        // messages: a copy of the task's conversation) goes now rather than
        // when the reply is in, hundreds of milliseconds later: at 2,000
        // calls in flight those copies were some 15 MB.
        let GenerateRequest { model, .. } = req;
        // One buffer for every attempt: a retry shares it, and the first
        // attempt does not copy it.
        let body = bytes::Bytes::from(body);
        let inner = &self.inner;
        retry::run(&inner.retry, &*inner.clock, |_| {
            self.attempt(&model, body.clone(), estimate, text.as_ref())
        })
        .await
    }

    /// The fields a streaming request adds to the body.
    fn stream_fields(&self) -> &'static str {
        match self.inner.kind {
            ProviderKind::Anthropic | ProviderKind::Mistral => r#""stream":true"#,
            _ => r#""stream":true,"stream_options":{"include_usage":true}"#,
        }
    }

    /// The response to `body`: read whole, or streamed with its text handed
    /// to `text` as it arrives and put back together into the body an
    /// unstreamed call answers. An error status is read whole either way.
    async fn post(
        &self,
        body: bytes::Bytes,
        text: Option<&TextSink>,
    ) -> Result<RawResponse, TransportError> {
        let http = &self.inner.http;
        let url = &self.inner.generate_url;
        let Some(sink) = text else {
            return http.post_json(url, body).await;
        };
        let mut resp = http.post_json_streaming(url, body).await?;
        if !resp.status().is_success() {
            return http.read(resp).await;
        }
        let status = resp.status().as_u16();
        let headers = std::mem::take(resp.headers_mut());
        let max = http.max_body();
        let mut reader = SseReader::new(max);
        let mut acc = Accumulator::new(self.inner.kind.is_openai_protocol());
        let mut read = 0usize;
        let failed = |(kind, message): stream::StreamError| TransportError { kind, message };
        while let Some(chunk) = HttpTransport::chunk(&mut resp).await? {
            let chunk = chunk.as_ref();
            read += chunk.len();
            if read > max {
                return Err(failed((
                    ErrorKind::MalformedResponse,
                    format!("the response stream is over {max} bytes (the provider's `maxResponseBytes`); not read further"),
                )));
            }
            let events = reader
                .feed(chunk)
                .map_err(|e| failed((ErrorKind::MalformedResponse, e.to_string())))?;
            for event in events {
                acc.take(&event.data, sink).map_err(failed)?;
            }
            if acc.is_done() {
                break;
            }
        }
        let body = acc.finish().map_err(failed)?;
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    fn ctx<'a>(&'a self, model: &'a str) -> CallContext<'a> {
        CallContext {
            provider: &self.inner.name,
            model,
            key: self.inner.key.as_ref(),
        }
    }

    async fn attempt(
        &self,
        model: &str,
        body: bytes::Bytes,
        estimate: u64,
        text: Option<&TextSink>,
    ) -> Result<GenerateResponse, ProviderError> {
        let inner = &self.inner;
        let ctx = self.ctx(model);
        let max_wait = inner.retry.max_wait.unwrap_or(Duration::MAX);
        if let Err(wait) = inner.limiter.acquire(estimate, max_wait).await {
            let mut e = ctx.error(
                ErrorKind::RateLimited,
                &format!(
                    "client-side rate limit: next slot in {} ms",
                    wait.as_millis()
                ),
            );
            e.retry_after = Some(wait);
            return Err(e);
        }
        let permit = inner.breaker.acquire().map_err(|r| {
            let mut e = ctx.error(
                ErrorKind::CircuitOpen,
                "circuit breaker is open; call not sent",
            );
            e.retry_after = Some(r.retry_in);
            e
        })?;
        let started = Instant::now();
        let raw = match self.post(body, text).await {
            Ok(raw) => raw,
            Err(t) => {
                permit.failure();
                return Err(ctx.error(t.kind, &t.message));
            }
        };
        let latency = started.elapsed();
        inner
            .limiter
            .observe(&headers::rate_limits(&raw.headers, inner.clock.wall()));
        if (200..300).contains(&raw.status) {
            let decoded = if inner.kind.is_openai_protocol() {
                openai::decode(&raw.body, &inner.name, model)
            } else {
                anthropic::decode(&raw.body, &inner.name, model)
            };
            return match decoded {
                Ok(mut r) => {
                    permit.success();
                    inner.limiter.settle(estimate, r.usage.total());
                    r.latency = latency;
                    Ok(r)
                }
                Err(mut e) => {
                    permit.failure();
                    e.message = ctx.scrub(&e.message);
                    e.status = Some(raw.status);
                    Err(e)
                }
            };
        }
        let err = classify(raw.status, &raw.headers, &raw.body, ctx, inner.clock.wall());
        if err.kind.counts_against_breaker() {
            permit.failure();
        } else {
            drop(permit);
        }
        if err.kind == ErrorKind::RateLimited {
            if let Some(w) = err.retry_after {
                inner.limiter.block_for(w);
            }
        }
        tracing::debug!(provider = %err.provider, model = %err.model, kind = %err.kind,
            status = raw.status, "provider call failed");
        Err(err)
    }

    /// Health probe: lists the provider's models (no tokens spent). Returns
    /// the round-trip time, or the classified error.
    pub(crate) async fn probe(&self) -> Result<Duration, ProviderError> {
        let inner = &self.inner;
        let ctx = self.ctx("-");
        let started = Instant::now();
        let raw = inner
            .http
            .get(&inner.models_url)
            .await
            .map_err(|t| ctx.error(t.kind, &t.message))?;
        if (200..300).contains(&raw.status) {
            Ok(started.elapsed())
        } else {
            Err(classify(
                raw.status,
                &raw.headers,
                &raw.body,
                ctx,
                inner.clock.wall(),
            ))
        }
    }
}

fn build_headers(config: &ProviderConfig, key: Option<&ApiKey>) -> Result<HeaderMap, String> {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let secret = |v: String| -> Result<HeaderValue, String> {
        let mut hv = HeaderValue::from_str(&v)
            .map_err(|_| "API key contains characters not allowed in a header".to_string())?;
        hv.set_sensitive(true);
        Ok(hv)
    };
    if config.kind == ProviderKind::Anthropic {
        h.insert(
            "anthropic-version",
            HeaderValue::from_static(anthropic::API_VERSION),
        );
        if let Some(k) = key {
            h.insert("x-api-key", secret(k.expose().to_string())?);
        }
    } else if let Some(k) = key {
        h.insert(
            reqwest::header::AUTHORIZATION,
            secret(format!("Bearer {}", k.expose()))?,
        );
    }
    for (name, value) in &config.headers {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        // The value may itself be a secret; never echo it.
        let mut v = HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value for header {name:?}"))?;
        v.set_sensitive(true);
        h.insert(n, v);
    }
    Ok(h)
}
