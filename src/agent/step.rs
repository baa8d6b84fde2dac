//! The task loop's checkpoint records: one [`Step`] per record, written and
//! read back with serde.
//!
//! ```text
//! {"kind":"model","response":{…},"context"?:{"system","messages"}}   a model reply (the first with its context)
//! {"kind":"tools","results":[{"callId","tool","parameters","result","content","isError"}…]}
//! {"kind":"correction","message"}                                     an answer sent back: it does not match the outputSchema
//! {"kind":"context","system","messages"}                              written by earlier versions; still read
//! ```
//!
//! A record is written from borrowed parts ([`Cow::Borrowed`]: the reply,
//! the results and the context stay with the loop, nothing is cloned and no
//! `Value` tree is built) and read back owned. The format is the one
//! checkpoints have always had, so a task stopped by an earlier version
//! resumes here (`tests/upgrade.rs`). Fields a record leaves out read as
//! empty, as the hand-written reader of earlier versions took them.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::provider::{GenerateResponse, Message};

/// One checkpoint record of an agent task.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Step<'a> {
    /// A model reply that the loop acts on; the task's first also carries
    /// the context it was asked with.
    Model {
        /// The reply as the provider gave it.
        response: Cow<'a, GenerateResponse>,
        /// The context of the first model call (first step only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<StepContext<'a>>,
    },
    /// One round of tool results, in the order of the reply's calls.
    Tools {
        /// Each call's outcome.
        #[serde(default)]
        results: Cow<'a, [ToolOutcome]>,
    },
    /// The context as a record of its own, as earlier versions wrote it
    /// before the first model call; read, never written.
    Context(StepContext<'a>),
    /// The message that sent an answer not matching the task's
    /// `outputSchema` back to the model, with what was wrong.
    Correction {
        /// The message, as the model is sent it.
        message: Cow<'a, str>,
    },
}

/// The system prompt and messages a task's first model call was built from.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StepContext<'a> {
    /// The system prompt.
    #[serde(default)]
    pub(crate) system: Cow<'a, str>,
    /// The messages, oldest first.
    pub(crate) messages: Cow<'a, [Message]>,
}

/// One tool call's outcome, as a tools step holds it: what the model is
/// sent back (`content`, `isError`) and what the task's result records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ToolOutcome {
    /// The model's id of the call.
    pub(crate) call_id: String,
    /// The tool called.
    pub(crate) tool: String,
    /// The arguments the model gave.
    pub(crate) parameters: Value,
    /// The tool's answer, or its error as a result value.
    pub(crate) result: Value,
    /// The text the model is sent.
    pub(crate) content: String,
    /// Whether the call failed.
    pub(crate) is_error: bool,
}

impl<'a> Step<'a> {
    /// A model step, borrowing the reply and, for the first, the context.
    pub(crate) fn model(response: &'a GenerateResponse, context: Option<StepContext<'a>>) -> Self {
        Step::Model {
            response: Cow::Borrowed(response),
            context,
        }
    }

    /// A tools step, borrowing the round's outcomes.
    pub(crate) fn tools(results: &'a [ToolOutcome]) -> Self {
        Step::Tools {
            results: Cow::Borrowed(results),
        }
    }

    /// A correction step, borrowing its message.
    pub(crate) fn correction(message: &'a str) -> Self {
        Step::Correction {
            message: Cow::Borrowed(message),
        }
    }

    /// The record as stored: JSON written straight from the borrowed parts.
    pub(crate) fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Reads a stored record back.
    pub(crate) fn from_record(record: &Value) -> Result<Step<'static>, serde_json::Error> {
        Step::deserialize(record)
    }
}

impl<'a> StepContext<'a> {
    /// The context in the loop's state, borrowed.
    pub(crate) fn borrowed(system: &'a str, messages: &'a [Message]) -> Self {
        StepContext {
            system: Cow::Borrowed(system),
            messages: Cow::Borrowed(messages),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::provider::{FinishReason, ToolCall, Usage};

    fn reply() -> GenerateResponse {
        GenerateResponse {
            text: String::new(),
            tool_calls: vec![ToolCall::new("call1", "recall", json!({"query": "x"}))],
            finish_reason: FinishReason::ToolCalls,
            usage: Usage {
                input_tokens: 10,
                output_tokens: 3,
                cached_input_tokens: 0,
            },
            provider: "offline".into(),
            model: "m".into(),
            latency: Duration::from_micros(67),
        }
    }

    fn outcome() -> ToolOutcome {
        ToolOutcome {
            call_id: "call1".into(),
            tool: "recall".into(),
            parameters: json!({"query": "x"}),
            result: json!({"ok": true, "data": []}),
            content: r#"{"data":[],"ok":true}"#.into(),
            is_error: false,
        }
    }

    /// The records as the code before the `Step` enum wrote them, from
    /// structs of their own: the enum must write the same bytes.
    mod as_written_before {
        use super::*;

        #[derive(Serialize)]
        pub(super) struct ModelStep<'a> {
            pub(super) kind: &'static str,
            pub(super) response: &'a GenerateResponse,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub(super) context: Option<ContextRecord<'a>>,
        }

        #[derive(Serialize)]
        pub(super) struct ContextRecord<'a> {
            pub(super) system: &'a str,
            pub(super) messages: &'a [Message],
        }

        #[derive(Serialize)]
        pub(super) struct ToolsStep<'a> {
            pub(super) kind: &'static str,
            pub(super) results: &'a [ToolOutcome],
        }
    }

    #[test]
    fn records_are_written_byte_for_byte_as_before() {
        use as_written_before::*;
        let response = reply();
        let messages = vec![Message::user("Task: x")];
        let first = Step::model(&response, Some(StepContext::borrowed("sys", &messages)));
        let before = serde_json::to_vec(&ModelStep {
            kind: "model",
            response: &response,
            context: Some(ContextRecord {
                system: "sys",
                messages: &messages,
            }),
        })
        .unwrap();
        assert_eq!(first.to_json().unwrap(), before);

        let later = serde_json::to_vec(&ModelStep {
            kind: "model",
            response: &response,
            context: None,
        })
        .unwrap();
        assert_eq!(Step::model(&response, None).to_json().unwrap(), later);

        let results = [outcome()];
        let tools = serde_json::to_vec(&ToolsStep {
            kind: "tools",
            results: &results,
        })
        .unwrap();
        assert_eq!(Step::tools(&results).to_json().unwrap(), tools);
    }

    #[test]
    fn every_kind_reads_back_typed() {
        let response = reply();
        let messages = vec![Message::user("Task: x")];
        let json = Step::model(&response, Some(StepContext::borrowed("sys", &messages)))
            .to_json()
            .unwrap();
        let record: Value = serde_json::from_slice(&json).unwrap();
        let Step::Model {
            response: back,
            context: Some(context),
        } = Step::from_record(&record).unwrap()
        else {
            panic!("not a model step with context");
        };
        assert_eq!(*back, response);
        assert_eq!(
            (&*context.system, &*context.messages),
            ("sys", &messages[..])
        );

        let results = [outcome()];
        let record: Value =
            serde_json::from_slice(&Step::tools(&results).to_json().unwrap()).unwrap();
        let Step::Tools { results: back } = Step::from_record(&record).unwrap() else {
            panic!("not a tools step");
        };
        assert_eq!(&*back, &results);

        let legacy = json!({"kind": "context", "system": "s", "messages": [{"role": "user", "content": "hi"}]});
        let Step::Context(context) = Step::from_record(&legacy).unwrap() else {
            panic!("not a context step");
        };
        assert_eq!(context.system, "s");
        assert_eq!(&*context.messages, &[Message::user("hi")]);
    }

    #[test]
    fn left_out_fields_read_as_empty_and_unknown_kinds_are_refused() {
        let record = json!({"kind": "tools", "results": [{"callId": "c", "tool": "t"}]});
        let Step::Tools { results } = Step::from_record(&record).unwrap() else {
            panic!("not a tools step");
        };
        assert_eq!(results[0].content, "");
        assert_eq!(results[0].parameters, Value::Null);
        assert!(!results[0].is_error);
        let record = json!({"kind": "tools"});
        assert!(
            matches!(Step::from_record(&record), Ok(Step::Tools { results }) if results.is_empty())
        );

        for bad in [
            json!({"kind": "dream"}),
            json!({"response": {}}),
            json!({"kind": "model"}),
        ] {
            assert!(Step::from_record(&bad).is_err(), "{bad}");
        }
    }

    /// Every checkpoint of the upgrade fixture (written by an earlier
    /// version, a task stopped mid tool round among them) reads back as a
    /// `Step` and writes back the same JSON.
    #[test]
    fn the_upgrade_fixtures_checkpoints_read_and_write_back_unchanged() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/upgrade-0.1/expected.json"
        );
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let jobs = expected["checkpoints"].as_object().unwrap();
        let mut kinds = std::collections::BTreeSet::new();
        for records in jobs.values() {
            for record in records.as_array().unwrap() {
                let step = Step::from_record(record).unwrap();
                kinds.insert(record["kind"].as_str().unwrap().to_string());
                let written: Value = serde_json::from_slice(&step.to_json().unwrap()).unwrap();
                assert_eq!(&written, record);
            }
        }
        assert_eq!(kinds, ["model", "tools"].map(String::from).into());
    }

    #[test]
    fn a_correction_reads_back_as_written() {
        let record = Step::correction("fix /age").to_json().unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&record).unwrap(),
            json!({"kind": "correction", "message": "fix /age"})
        );
        let read = Step::from_record(&serde_json::from_slice(&record).unwrap()).unwrap();
        assert!(matches!(read, Step::Correction { message } if message == "fix /age"));
    }
}
