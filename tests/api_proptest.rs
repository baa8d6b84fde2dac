//! Property: whatever arrives as a request body or query string, parsing it
//! into a request type never panics, and either succeeds or refuses with
//! a 4xx whose message names what was wrong: a field or parameter the
//! input had (or a required one it lacked), or that the body is not a
//! JSON object.

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
