//! The `tools` array of a request body, encoded once per agent: an agent's
//! tool definitions are the same `Arc<[ToolDefinition]>` in every request
//! it makes (made once per agent worker), and their JSON Schemas are most
//! of a first request's bytes, so each provider keeps the encoded array
//! for each definitions list it has seen, while that list lives, and
//! splices it into the body.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::model::ToolDefinition;

/// A request's tools as its body carries them: encoded now, or spliced in
/// as they were encoded for an earlier request.
pub(super) enum WireTools<'a, T> {
    /// Encoded with the rest of the body.
    Built(Vec<T>),
    /// Encoded before, as the array's JSON.
    Encoded(&'a RawValue),
}

impl<'a, T> WireTools<'a, T> {
    /// The body's tools: `encoded` when given (and there are tools), else
    /// each definition made into the protocol's shape by `out`.
    pub(super) fn new(
        tools: &'a [ToolDefinition],
        encoded: Option<&'a RawValue>,
        out: fn(&'a ToolDefinition) -> T,
    ) -> Self {
        match encoded {
            Some(raw) if !tools.is_empty() => WireTools::Encoded(raw),
            _ => WireTools::Built(tools.iter().map(out).collect()),
        }
    }

    /// Whether the body leaves `tools` out.
    pub(super) fn is_empty(&self) -> bool {
        match self {
            WireTools::Built(tools) => tools.is_empty(),
            // Only a non-empty list is encoded.
            WireTools::Encoded(_) => false,
        }
    }
}

impl<T: Serialize> Serialize for WireTools<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            WireTools::Built(tools) => tools.serialize(serializer),
            WireTools::Encoded(raw) => raw.serialize(serializer),
        }
    }
}

/// The `tools` array of a body on its own, each definition made into the
/// protocol's shape by `out` (what [`ToolsCache::get`] keeps).
pub(super) fn encode<'a, T: Serialize>(
    tools: &'a [ToolDefinition],
    out: fn(&'a ToolDefinition) -> T,
) -> serde_json::Result<Box<RawValue>> {
    serde_json::value::to_raw_value(&tools.iter().map(out).collect::<Vec<T>>())
}

/// A definitions list (held weakly: the agent owns it) and its encoding.
type Entry = (Weak<[ToolDefinition]>, Arc<RawValue>);

/// Each definitions list a provider has encoded, while it lives.
#[derive(Default)]
pub(super) struct ToolsCache {
    entries: Mutex<Vec<Entry>>,
}

impl std::fmt::Debug for ToolsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lists = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("ToolsCache").field("lists", &lists).finish()
    }
}

impl ToolsCache {
    /// The encoded array of `tools` (`encode` makes it the first time); `None`
    /// for no tools, or when encoding fails (the body then encodes them
    /// itself and reports the error).
    pub(super) fn get(
        &self,
        tools: &Arc<[ToolDefinition]>,
        encode: impl FnOnce(&[ToolDefinition]) -> serde_json::Result<Box<RawValue>>,
    ) -> Option<Arc<RawValue>> {
        if tools.is_empty() {
            return None;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, raw)) = entries
            .iter()
            .find(|(list, _)| list.upgrade().is_some_and(|l| Arc::ptr_eq(&l, tools)))
        {
            return Some(raw.clone());
        }
        let raw: Arc<RawValue> = Arc::from(encode(tools).ok()?);
        // Lists no agent holds any more (a restarted agent made a new one).
        entries.retain(|(list, _)| list.strong_count() > 0);
        entries.push((Arc::downgrade(tools), raw.clone()));
        Some(raw)
    }

    /// How many lists are kept (for tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use serde_json::json;

    use super::*;
    use crate::provider::config::ProviderKind;
    use crate::provider::model::{GenerateRequest, Message};
    use crate::provider::{anthropic, openai};

    fn tools() -> Arc<[ToolDefinition]> {
        vec![
            ToolDefinition {
                name: "noop".into(),
                description: "Does nothing.".into(),
                parameters: json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}}),
            },
            ToolDefinition {
                name: "say".into(),
                description: "Says \"it\".".into(),
                parameters: json!({"type": "object", "required": ["text"]}),
            },
        ]
        .into()
    }

    /// A body with the tools spliced in is the body encoded whole, byte
    /// for byte, for every protocol.
    #[test]
    fn spliced_tools_make_the_same_body() {
        let req = GenerateRequest {
            model: "m".into(),
            system: Some("s".into()),
            messages: vec![Message::user("hi")],
            tools: tools(),
            ..Default::default()
        };
        for kind in [
            ProviderKind::Openai,
            ProviderKind::Mistral,
            ProviderKind::Deepseek,
        ] {
            let raw = openai::encode_tools(&req.tools).unwrap();
            assert_eq!(
                openai::encode_body(&req, kind, Some(&raw)).unwrap(),
                openai::encode_body(&req, kind, None).unwrap(),
                "{kind:?}"
            );
        }
        let raw = anthropic::encode_tools(&req.tools).unwrap();
        assert_eq!(
            anthropic::encode_body(&req, Some(&raw)).unwrap(),
            anthropic::encode_body(&req, None).unwrap()
        );
        let bare = GenerateRequest {
            model: "m".into(),
            ..Default::default()
        };
        let body: serde_json::Value = serde_json::from_slice(
            &openai::encode_body(&bare, ProviderKind::Openai, None).unwrap(),
        )
        .unwrap();
        assert!(body.get("tools").is_none() && body.get("tool_choice").is_none());
    }

    /// One encoding per list while it lives; a list no one holds is let go.
    #[test]
    fn each_list_is_encoded_once_while_it_lives() {
        let cache = ToolsCache::default();
        let encodings = Cell::new(0);
        let encode = |defs: &[ToolDefinition]| {
            encodings.set(encodings.get() + 1);
            openai::encode_tools(defs)
        };
        let first = tools();
        let a = cache.get(&first, encode).unwrap();
        let b = cache.get(&first, encode).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(encodings.get(), 1);
        assert!(
            cache.get(&Arc::from(Vec::new()), encode).is_none(),
            "no tools"
        );
        let second = tools();
        cache.get(&second, encode).unwrap();
        assert_eq!((encodings.get(), cache.len()), (2, 2));
        drop(first);
        let third = tools();
        cache.get(&third, encode).unwrap();
        assert_eq!(cache.len(), 2, "the dropped list's entry went");
        drop((second, third));
    }
}
