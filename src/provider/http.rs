//! The HTTP transport: one reqwest client per provider, raw in, raw out.
//!
//! Kept free of protocol knowledge so the encoders can be tested without a
//! network and the transport can be measured on its own.

use std::error::Error as _;
use std::time::Duration;

use reqwest::header::HeaderMap;

use super::error::ErrorKind;

/// A response as received: status, headers, body bytes.
#[derive(Debug, Clone)]
pub(crate) struct RawResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers (rate-limit and retry hints live here).
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
}

/// A failure before a complete response arrived, already classified.
#[derive(Debug, Clone)]
pub(crate) struct TransportError {
    /// `Timeout` or `Connection`.
    pub kind: ErrorKind,
    /// The transport's message with its causes (not yet scrubbed).
    pub message: String,
}

/// A pooled HTTPS client with a per-request timeout, that follows no
/// redirect and reads at most `max_body` bytes of a response.
#[derive(Debug, Clone)]
pub(crate) struct HttpTransport {
    client: reqwest::Client,
    max_body: usize,
}

impl HttpTransport {
    /// A client with rustls, connection pooling, `timeout` for each request
    /// and `headers` (auth, version, custom) sent with every request — set
    /// once here rather than copied per call. Secret values must be marked
    /// sensitive so `Debug` prints them as `Sensitive`.
    ///
    /// Redirects are not followed: the default headers carry the key, and a
    /// redirect to another host (or from https to http) would carry it
    /// there. A 3xx comes back as a response, which the classifier turns
    /// into a configuration error naming where it pointed.
    pub(crate) fn new(
        timeout: Duration,
        headers: HeaderMap,
        max_body: usize,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(HttpTransport { client, max_body })
    }

    /// POSTs `body` (already JSON) to `url` and reads the whole response.
    pub(crate) async fn post_json(
        &self,
        url: &reqwest::Url,
        body: bytes::Bytes,
    ) -> Result<RawResponse, TransportError> {
        let req = self.client.post(url.clone()).body(body);
        self.finish(req.send().await).await
    }

    /// GETs `url`; used by the health probe.
    pub(crate) async fn get(&self, url: &reqwest::Url) -> Result<RawResponse, TransportError> {
        let req = self.client.get(url.clone());
        self.finish(req.send().await).await
    }

    /// POSTs `body` and returns the response as soon as its head is in,
    /// for a streamed body read with [`chunk`](Self::chunk) (or whole with
    /// [`read`](Self::read)).
    pub(crate) async fn post_json_streaming(
        &self,
        url: &reqwest::Url,
        body: bytes::Bytes,
    ) -> Result<reqwest::Response, TransportError> {
        let req = self.client.post(url.clone()).body(body);
        req.send().await.map_err(transport_error)
    }

    /// The next piece of a streamed body (`None` at its end).
    pub(crate) async fn chunk(
        resp: &mut reqwest::Response,
    ) -> Result<Option<impl AsRef<[u8]>>, TransportError> {
        resp.chunk().await.map_err(transport_error)
    }

    /// The most bytes of a body read.
    pub(crate) fn max_body(&self) -> usize {
        self.max_body
    }

    async fn finish(
        &self,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<RawResponse, TransportError> {
        self.read(sent.map_err(transport_error)?).await
    }

    /// Reads a response whole, within the body limit.
    pub(crate) async fn read(
        &self,
        mut resp: reqwest::Response,
    ) -> Result<RawResponse, TransportError> {
        let status = resp.status().as_u16();
        let headers = std::mem::take(resp.headers_mut());
        let too_big = || {
            TransportError {
            kind: ErrorKind::MalformedResponse,
            message: format!(
                "the response body is over {} bytes (the provider's `maxResponseBytes`); not read further",
                self.max_body
            ),
        }
        };
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_body as u64)
        {
            return Err(too_big());
        }
        // Read chunk by chunk, so a body without a length (or lying about
        // it) stops at the limit instead of filling memory.
        let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0) as usize);
        while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > self.max_body {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }
}

fn transport_error(e: reqwest::Error) -> TransportError {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Connection
    };
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    TransportError { kind, message }
}
