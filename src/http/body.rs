//! Request bodies and query strings off the wire: a body arrives within the
//! read deadline and the size limit, then both are parsed into their typed
//! request by [`crate::api`], which names the field at fault.
//!
//! Every request's body is read through [`bounded_body`]: it must arrive
//! within [`HttpConfig::read_timeout`](super::HttpConfig::read_timeout) of
//! the request's head, and a body left unread (a refused request, one cut
//! off) ends its connection rather than being drained. actix-web drains a
//! dropped chunked body with no timer, so a client trickling one could hold
//! a connection for ever; here the body is kept until the answer is sent,
//! and actix closes the connection after it instead.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{web, HttpMessage, HttpRequest};
use futures::{Stream, StreamExt};

use super::server::ApiState;
use crate::api::{parse_body, parse_query, ControlError, Request};

/// The request's own body, shared by the stream the handler reads and the
/// answer that keeps it until it is sent.
type Shared = Rc<RefCell<Payload>>;

/// An answer's body, holding the request's body until it has been sent:
/// so actix sees the request body unread (not dropped) when the answer is
/// done, and closes the connection instead of draining it.
struct Keeping {
    answer: BoxBody,
    _request: Shared,
}

impl MessageBody for Keeping {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.answer.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().answer).poll_next(cx)
    }
}

/// The request body as the handlers read it: the real one, until the
/// deadline; then an error saying so.
struct Deadline {
    body: Shared,
    timer: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(item) = self.body.borrow_mut().poll_next_unpin(cx) {
            return Poll::Ready(item);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            let message = format!(
                "the request body did not arrive within {} ms",
                self.timeout.as_millis()
            );
            let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, message);
            return Poll::Ready(Some(Err(PayloadError::Io(timed_out))));
        }
        Poll::Pending
    }
}

/// Middleware on every route: the body is read within the deadline, and
/// kept until the answer is sent (see the module docs).
pub(crate) async fn bounded_body(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let timeout = req
        .app_data::<web::Data<ApiState>>()
        .map_or(super::DEFAULT_READ_TIMEOUT, |s| s.read_timeout);
    let body: Shared = Rc::new(RefCell::new(req.take_payload()));
    let stream = Deadline {
        body: body.clone(),
        timer: Box::pin(tokio::time::sleep(timeout)),
        timeout,
    };
    let stream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(stream);
    req.set_payload(Payload::from(stream));
    let response = next.call(req).await?;
    Ok(response.map_body(|_, answer| Keeping {
        answer: answer.boxed(),
        _request: body,
    }))
}

/// Reads the body (at most `limit` bytes, else 413; within the deadline,
/// else 408) and parses it as `T`.
pub(crate) async fn read_body<T: Request>(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<T, ControlError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ControlError::too_large(limit));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                ControlError::Timeout(format!("{io} ({} bytes came)", body.len()))
            }
            e => ControlError::BadRequest(format!("cannot read the body: {e}")),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ControlError::too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    parse_body(&body)
}

/// Parses the query string as `T`.
pub(crate) fn read_query<T: Request>(req: &HttpRequest) -> Result<T, ControlError> {
    parse_query(req.query_string())
}
