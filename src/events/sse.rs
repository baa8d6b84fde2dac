//! Server-Sent Events on the wire, both ways: frames written for a
//! follower (`GET /v1/jobs/{id}/events`) and read back incrementally, from
//! a daemon's event stream or a streaming model provider.
//!
//! The reader follows the `text/event-stream` rules that matter here:
//! lines end with `\n` (a `\r` before it is dropped), a line starting
//! with `:` is a comment, `field: value` (one space after the colon
//! dropped), `data` lines of one event are joined with `\n`, an empty line
//! ends the event. A lone `\r` as a line end is not recognised (neither the
//! daemon nor the providers send it).

use super::event::TaskEvent;

/// The comment a follower is sent when nothing happened for a while, so
/// proxies and clients see the connection alive.
pub(crate) const KEEP_ALIVE: &str = ": keep-alive\n\n";

/// One event read off a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// Its `id:` field, if it had one.
    pub(crate) id: Option<String>,
    /// Its `event:` field (the type), if it had one.
    pub(crate) event: Option<String>,
    /// Its `data:` lines, joined with `\n`.
    pub(crate) data: String,
}

/// A line longer than the reader's limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a line of the event stream is longer than {limit} bytes")]
pub(crate) struct LineTooLong {
    /// The limit.
    pub(crate) limit: usize,
}

/// Reads events from a byte stream as it arrives, in chunks cut anywhere.
#[derive(Debug)]
pub(crate) struct SseReader {
    buf: Vec<u8>,
    current: SseEvent,
    has_data: bool,
    max_line: usize,
}

impl SseReader {
    /// A reader refusing lines longer than `max_line` bytes.
    pub(crate) fn new(max_line: usize) -> Self {
        SseReader {
            buf: Vec::new(),
            current: SseEvent::default(),
            has_data: false,
            max_line,
        }
    }

    /// Takes in `chunk`; the events it completed, in order.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, LineTooLong> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(end) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let mut line = &self.buf[start..start + end];
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            let line = String::from_utf8_lossy(line).into_owned();
            start += end + 1;
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        self.buf.drain(..start);
        if self.buf.len() > self.max_line {
            return Err(LineTooLong {
                limit: self.max_line,
            });
        }
        Ok(events)
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.current);
            let had = std::mem::take(&mut self.has_data);
            return (had || event.id.is_some() || event.event.is_some()).then_some(event);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            "id" => self.current.id = Some(value.to_string()),
            "event" => self.current.event = Some(value.to_string()),
            _ => {}
        }
        None
    }
}

/// The frame of one task event: `id: <seq>`, `event: <type>`, `data:
/// <the event's JSON>` (one line: JSON strings escape their newlines),
/// written in one buffer.
pub(crate) fn frame(event: &TaskEvent) -> String {
    use std::io::Write;
    let mut out = Vec::with_capacity(256);
    // Writing to a Vec fails only where serializing does.
    let written = write!(
        out,
        "id: {}\nevent: {}\ndata: ",
        event.seq,
        event.kind.name()
    )
    .map_err(serde_json::Error::io)
    .and_then(|()| serde_json::to_writer(&mut out, event));
    if let Err(e) = written {
        // A TaskEvent always serializes (string keys, no floats that
        // could be NaN); kept total anyway.
        return format!(
            "id: {}\nevent: {}\ndata: {{\"seq\":{},\"type\":\"error\",\"error\":{:?}}}\n\n",
            event.seq,
            event.kind.name(),
            event.seq,
            e.to_string()
        );
    }
    out.extend_from_slice(b"\n\n");
    // serde_json and the format above write UTF-8 only.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::TaskEventKind;

    #[test]
    fn events_cut_anywhere_read_back_whole() {
        let event = TaskEvent {
            seq: 7,
            at: chrono::Utc::now(),
            job_id: uuid::Uuid::now_v7(),
            kind: TaskEventKind::Text {
                step: 0,
                text: "two\nlines".into(),
            },
        };
        let wire = format!("{KEEP_ALIVE}{}data: a\r\ndata: b\r\n\r\n", frame(&event));
        for cut in 0..wire.len() {
            let mut reader = SseReader::new(1 << 20);
            let mut got = reader.feed(&wire.as_bytes()[..cut]).unwrap();
            got.extend(reader.feed(&wire.as_bytes()[cut..]).unwrap());
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(got[0].id.as_deref(), Some("7"));
            assert_eq!(got[0].event.as_deref(), Some("text"));
            let back: TaskEvent = serde_json::from_str(&got[0].data).unwrap();
            assert_eq!(back, event);
            assert_eq!(got[1].data, "a\nb");
        }
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut reader = SseReader::new(8);
        assert!(reader.feed(b"data: 0123456789").is_err());
    }
}
