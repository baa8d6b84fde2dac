//! Property: whatever arrives as a request body or query string, parsing it
//! into a request type never panics, and either succeeds or refuses with
//! a 4xx whose message names what was wrong: a field or parameter the
//! input had (or a required one it lacked), or that the body is not a
//! JSON object.
//!
//! And whatever `Host`, `Origin` and `Content-Type` a request carries, a
//! real server answers it with the first check it fails, in order — a host
//! not its own (421), an origin not its own (403), a body not JSON (415) —
//! and only a request passing all three reaches the route.

use std::fmt::Debug;

use proptest::prelude::*;
use serde_json::{Map, Value};
use troupe::api::{
    parse_body, parse_query, ControlError, EnqueueRequest, JobsQuery, MemoriesQuery, PauseRequest,
    Request, TaskRequest,
};

/// Field names of every request type, and some that are none.
const KEYS: &[&str] = &[
    "workerName",
    "args",
    "ctx",
    "delayMs",
    "runAt",
    "priority",
    "maxAttempts",
    "uniqueKey",
    "timeoutMs",
    "prompt",
    "conversationId",
    "userId",
    "wait",
    "worker",
    "agent",
    "status",
    "limit",
    "cursor",
    "archived",
    "fields",
    "colour",
    "",
];

/// Fields a request type cannot do without.
const REQUIRED: &[&str] = &["workerName", "prompt"];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (0u64..5).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        Just(Value::String(String::new())),
        Just(Value::String("2999-01-01T00:00:00Z".into())),
        Just(Value::String("echo".into())),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON object whose keys are mostly real field names.
fn object() -> impl Strategy<Value = Map<String, Value>> {
    let key = prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_string),
        1 => "[a-zA-Z]{1,10}",
    ];
    prop::collection::btree_map(key, json(), 0..6).prop_map(|m| m.into_iter().collect())
}

/// `e` is a 4xx that names something the input had, or a required field.
fn names_the_problem(e: &ControlError, keys: &[String], body_is_object: bool) -> bool {
    let message = e.to_string();
    if !(400..500).contains(&e.status()) {
        return false;
    }
    if !body_is_object {
        return message.contains("JSON");
    }
    keys.iter()
        .map(String::as_str)
        .chain(REQUIRED.iter().copied())
        .any(|k| message.contains(&format!("`{k}`")))
}

fn check_body<T: Request + Debug>(body: &[u8], keys: &[String], is_object: bool) {
    if let Err(e) = parse_body::<T>(body) {
        assert!(
            names_the_problem(&e, keys, is_object),
            "{} → {} {e}",
            String::from_utf8_lossy(body),
            e.status()
        );
    }
}

fn check_all_bodies(body: &[u8], keys: &[String], is_object: bool) {
    check_body::<EnqueueRequest>(body, keys, is_object);
    check_body::<TaskRequest>(body, keys, is_object);
    check_body::<PauseRequest>(body, keys, is_object);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn objects_parse_or_name_the_field(map in object()) {
        let keys: Vec<String> = map.keys().cloned().collect();
        let body = serde_json::to_vec(&Value::Object(map)).unwrap();
        check_all_bodies(&body, &keys, true);
    }

    #[test]
    fn any_json_parses_or_is_refused(value in json()) {
        let body = serde_json::to_vec(&value).unwrap();
        let keys: Vec<String> = match &value {
            Value::Object(m) => m.keys().cloned().collect(),
            _ => Vec::new(),
        };
        check_all_bodies(&body, &keys, value.is_object());
    }

    #[test]
    fn any_bytes_parse_or_are_refused(body in prop::collection::vec(any::<u8>(), 0..64)) {
        // Not JSON is 400 "not valid JSON"; JSON is handled as above.
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => {
                let keys: Vec<String> = m.keys().cloned().collect();
                check_all_bodies(&body, &keys, true);
            }
            _ => check_all_bodies(&body, &[], body.iter().all(u8::is_ascii_whitespace)),
        }
    }

    #[test]
    fn query_strings_parse_or_name_the_parameter(
        pairs in prop::collection::vec(
            (prop::sample::select(KEYS), "\\PC{0,10}"),
            0..5,
        )
    ) {
        let query = serde_urlencoded::to_string(&pairs).unwrap();
        let keys: Vec<String> = pairs.iter().map(|(k, _)| k.to_string()).collect();
        let errors = [
            parse_query::<JobsQuery>(&query).err(),
            parse_query::<MemoriesQuery>(&query).err(),
        ];
        for e in errors.into_iter().flatten() {
            let message = e.to_string();
            prop_assert_eq!(e.status(), 400, "{} → {}", query, message);
            prop_assert!(
                keys.iter().any(|k| message.contains(&format!("`{k}`"))),
                "{} → {}", query, message
            );
        }
    }
}

/// A control API on its own thread (an actix System of its own), over an
/// in-memory store: its address and token.
fn server() -> &'static (std::net::SocketAddr, String) {
    use std::sync::{Arc, OnceLock};
    static SERVER: OnceLock<(std::net::SocketAddr, String)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            troupe_actors::run_system(async move {
                let store = Arc::new(troupe::in_memory::InMemoryStore::new());
                let control = troupe::api::StoreControl::new(store, Default::default());
                let http = troupe::http::HttpConfig {
                    addr: "127.0.0.1:0".into(),
                    ..Default::default()
                };
                let token = http.token.secret().to_string();
                let server = troupe::http::ControlServer::serve(Arc::new(control), http).unwrap();
                tx.send((server.local_addr(), token)).unwrap();
                std::future::pending::<()>().await
            })
        });
        rx.recv().unwrap()
    })
}

/// `POST /v1/jobs` with `{}` and these headers (`None`: not sent); the
/// status of the answer, and whether its body is the error shape.
fn post_with(host: Option<&str>, origin: Option<&str>, content_type: Option<&str>) -> (u16, bool) {
    use std::io::{Read, Write};
    let (addr, token) = server();
    let mut head = format!("POST /v1/jobs HTTP/1.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\nContent-Length: 2\r\n");
    for (name, value) in [
        ("Host", host),
        ("Origin", origin),
        ("Content-Type", content_type),
    ] {
        if let Some(value) = value {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    conn.write_all(format!("{head}\r\n{{}}").as_bytes())
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let shaped = serde_json::from_str::<Value>(body)
        .is_ok_and(|v| v["error"]["status"] == status && v["error"]["message"].is_string());
    (status, shaped)
}

/// A header value: near misses of the real ones (`{port}` stands for the
/// server's), or any printable text.
fn header(near: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        4 => prop::sample::select(near).prop_map(|s| Some(s.to_string())),
        2 => "[ -~]{0,24}".prop_map(Some),
    ]
}

const HOSTS: &[&str] = &[
    "127.0.0.1:{port}",
    "localhost:{port}",
    "LocalHost:{port}",
    "[::1]:{port}",
    "localhost",
    "localhost:{port}0",
    "evil.example:{port}",
    "127.0.0.2:{port}",
    "0.0.0.0:{port}",
    "localhost.:{port}",
    " 127.0.0.1:{port} ",
    "127.0.0.1:{port}/",
    "",
    "[::1]",
];
const ORIGINS: &[&str] = &[
    "http://127.0.0.1:{port}",
    "HTTP://127.0.0.1:{port}",
    "https://127.0.0.1:{port}",
    "http://localhost:{port}",
    "http://127.0.0.1:{port}/",
    "http://evil.example",
    "null",
    "http://127.0.0.1",
    "file://",
    "",
];
const TYPES: &[&str] = &[
    "application/json",
    "Application/JSON",
    "application/json; charset=utf-8",
    "application/json;charset=\"UTF-8\"",
    "application/json; charset=latin1",
    "application/json; boundary=x",
    "text/plain",
    "text/plain; charset=utf-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonx",
    "application/json-seq",
    "",
    " application/json ",
];

/// What the server must answer: the first check the headers fail, else
/// the route's own 422 (`{}` has no `workerName`). Written from the rules,
/// apart from the server's code. (An HTTP/1.1 request with no `Host` is
/// refused by the HTTP parser itself: 400.)
fn expected(
    port: u16,
    host: Option<&str>,
    origin: Option<&str>,
    content_type: Option<&str>,
) -> u16 {
    if host.is_none() {
        return 400;
    }
    let own = |h: &str| {
        ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .any(|n| h.trim().eq_ignore_ascii_case(&format!("{n}:{port}")))
    };
    if !host.is_some_and(own) {
        return 421;
    }
    let host = host.unwrap().trim().to_ascii_lowercase();
    if let Some(origin) = origin {
        let origin = origin.trim().to_ascii_lowercase();
        if origin != format!("http://{host}") && origin != format!("https://{host}") {
            return 403;
        }
    }
    let json = content_type.is_some_and(|ct| {
        let mut parts = ct.split(';');
        parts
            .next()
            .unwrap()
            .trim()
            .eq_ignore_ascii_case("application/json")
            && parts.all(|p| match p.split_once('=') {
                Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
                    v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
                }
                _ => true,
            })
    });
    if json {
        422
    } else {
        415
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn headers_are_refused_by_the_first_check_they_fail(
        host in header(HOSTS),
        origin in header(ORIGINS),
        content_type in header(TYPES),
    ) {
        let port = server().0.port();
        let fill = |v: &Option<String>| v.as_ref().map(|v| v.replace("{port}", &port.to_string()));
        let (host, origin, content_type) = (fill(&host), fill(&origin), fill(&content_type));
        let (host, origin, content_type) = (host.as_deref(), origin.as_deref(), content_type.as_deref());
        let (status, shaped) = post_with(host, origin, content_type);
        prop_assert_eq!(
            status,
            expected(port, host, origin, content_type),
            "Host {:?}, Origin {:?}, Content-Type {:?}", host, origin, content_type
        );
        prop_assert!(shaped || host.is_none(), "the answer is not the error shape");
    }
}
