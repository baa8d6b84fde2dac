//! A follower of a job's events over HTTP (`GET /v1/jobs/{id}/events`),
//! for the tests of live events: frames read off one SSE response as they
//! come, each `id:` checked against the event's `seq`.

use serde_json::Value;

/// A follower over HTTP: reads frames off one SSE response as they come.
pub struct Follower {
    response: reqwest::Response,
    buf: String,
}

impl Follower {
    /// Opens `job`'s events on the daemon at `base`, after `last` if
    /// given (`Last-Event-ID`); the answer must be a 200 event stream.
    pub async fn open(base: &str, token: &str, job: &str, last: Option<u64>) -> Follower {
        let mut req = reqwest::Client::new()
            .get(format!("{base}/v1/jobs/{job}/events"))
            .bearer_auth(token);
        if let Some(last) = last {
            req = req.header("Last-Event-ID", last.to_string());
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let ct = response.headers()["content-type"].to_str().unwrap();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        Follower {
            response,
            buf: String::new(),
        }
    }

    /// The next event (its `id:` checked against its `seq`); `None` when
    /// the response ended.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                if frame.starts_with(':') {
                    continue; // keep-alive
                }
                let mut id = None;
                let mut data = None;
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.parse::<u64>().unwrap());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str::<Value>(v).unwrap());
                    }
                }
                let data = data.unwrap();
                assert_eq!(Some(data["seq"].as_u64().unwrap()), id, "{frame}");
                return Some(data);
            }
            match self.response.chunk().await.unwrap() {
                Some(chunk) => self.buf.push_str(std::str::from_utf8(&chunk).unwrap()),
                None => {
                    assert!(self.buf.is_empty(), "a cut frame: {:?}", self.buf);
                    return None;
                }
            }
        }
    }

    /// Events until one of `type` (included).
    pub async fn until(&mut self, kind: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let event = self.next().await.expect("the stream ended early");
            let done = event["type"] == kind;
            seen.push(event);
            if done {
                return seen;
            }
        }
    }

    /// Every event to the end of the response.
    pub async fn rest(&mut self) -> Vec<Value> {
        let mut seen = Vec::new();
        while let Some(e) = self.next().await {
            seen.push(e);
        }
        seen
    }
}
