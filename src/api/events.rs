//! Following a job's events through the control API: the stream type the
//! [`Control`](super::Control) hands out, and `Last-Event-ID` read off a
//! request.

use std::pin::Pin;

use futures::Stream;

use super::ControlError;
use crate::events::sse::SseReader;
use crate::events::TaskEvent;

/// The longest line a daemon's event stream may send (one event's JSON).
const MAX_LINE: usize = 16 * 1024 * 1024;

/// One job's events as a control hands them out: history from the cursor
/// on, then live, ending after the terminal event. A remote control's
/// stream that breaks off before the end yields an error last.
pub type EventsStream = Pin<Box<dyn Stream<Item = Result<TaskEvent, ControlError>> + Send>>;

/// One job's events as Server-Sent Events frames (`id:`, `event:`, `data:`
/// and the blank line), in the order of [`EventsStream`]. A frame is
/// shared, not copied: a runtime writes each event's once for all its
/// followers.
pub type FramesStream =
    Pin<Box<dyn Stream<Item = Result<std::sync::Arc<str>, ControlError>> + Send>>;

/// The header a follower resumes with: the `seq` it saw last.
pub const LAST_EVENT_ID: &str = "Last-Event-ID";

/// The `seq` a `Last-Event-ID` value names (absent: 0, from the start).
pub fn parse_last_event_id(value: Option<&str>) -> Result<u64, ControlError> {
    match value.map(str::trim) {
        None | Some("") => Ok(0),
        Some(v) => v.parse().map_err(|_| {
            ControlError::BadRequest(format!(
                "{LAST_EVENT_ID} must be the `seq` (a whole number) of the last event seen, not `{v}`"
            ))
        }),
    }
}

/// A daemon's answer to `GET /v1/jobs/{id}/events`, read as it arrives.
/// It ends after the terminal event; a body that ends before it (the
/// daemon stopped, the connection broke), or that is not an event stream,
/// yields an error last, naming the last `seq` read (resume with it).
pub(crate) fn read_sse(response: reqwest::Response, url: String, after: u64) -> EventsStream {
    struct Reading {
        response: reqwest::Response,
        reader: SseReader,
        ready: std::collections::VecDeque<TaskEvent>,
        last: u64,
        done: bool,
        url: String,
    }
    let state = Reading {
        response,
        reader: SseReader::new(MAX_LINE),
        ready: Default::default(),
        last: after,
        done: false,
        url,
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(event) = s.ready.pop_front() {
                s.last = event.seq;
                s.done = event.is_terminal();
                return Some((Ok(event), s));
            }
            if s.done {
                return None;
            }
            let broke = |s: &Reading, why: String| {
                ControlError::Unavailable(format!(
                    "the event stream of the daemon at {} broke off after event {}: {why} \
                     (resume after it with {LAST_EVENT_ID})",
                    s.url, s.last
                ))
            };
            let chunk = match s.response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    let e = broke(&s, "it ended before the job did".into());
                    s.done = true;
                    return Some((Err(e), s));
                }
                Err(e) => {
                    let e = broke(&s, e.to_string());
                    s.done = true;
                    return Some((Err(e), s));
                }
            };
            let read = s
                .reader
                .feed(&chunk)
                .map_err(|e| e.to_string())
                .and_then(|events| {
                    events
                        .into_iter()
                        .filter(|e| !e.data.is_empty())
                        .map(|e| {
                            serde_json::from_str::<TaskEvent>(&e.data).map_err(|e| e.to_string())
                        })
                        .collect::<Result<Vec<_>, _>>()
                });
            match read {
                Ok(events) => s.ready.extend(events),
                Err(why) => {
                    let e = broke(&s, format!("not an event: {why}"));
                    s.done = true;
                    return Some((Err(e), s));
                }
            }
        }
    });
    Box::pin(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_id_is_a_seq() {
        assert_eq!(parse_last_event_id(None).unwrap(), 0);
        assert_eq!(parse_last_event_id(Some(" 12 ")).unwrap(), 12);
        let e = parse_last_event_id(Some("x")).unwrap_err();
        assert!(e.to_string().contains("Last-Event-ID"), "{e}");
    }
}
