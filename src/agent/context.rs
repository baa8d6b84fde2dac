//! Building a task's context within a token budget.
//!
//! The rule, in order:
//! 1. The system prompt and the task are always included whole.
//! 2. Memories, most useful first (as ranked by recall), take at most half of
//!    what remains.
//! 3. Conversation history takes what is left, newest first (shown oldest
//!    first); a message that does not fit ends the history.
//! 4. Project context from the job's `ctx` gets whatever remains, cut to fit.
//!
//! Tokens are estimated as characters / 4, which over-counts English slightly
//! and is the same for every provider, so a context that fits here fits there.

use crate::provider::Message;

/// A memory as the prompt shows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ContextMemory {
    /// learning, fact, preference, summary, …
    pub kind: String,
    /// The text.
    pub content: String,
    /// 1–10.
    pub importance: u8,
}

/// A past conversation message as the prompt shows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ContextMessage {
    /// `user` or `assistant` (others are shown as user text).
    pub role: String,
    /// Who wrote it.
    pub author: String,
    /// The text.
    pub content: String,
}

/// What goes into a task's first model call.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContextInput {
    /// The agent's system prompt.
    pub system_prompt: String,
    /// The task.
    pub task: String,
    /// Ranked memories, most useful first.
    pub memories: Vec<ContextMemory>,
    /// Recent conversation, oldest first.
    pub history: Vec<ContextMessage>,
    /// Project context (from the job's ctx), if any.
    pub project: Option<String>,
    /// The token budget for all of the above.
    pub budget: usize,
}

/// The built context.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BuiltContext {
    /// The system prompt with memories and project context.
    pub system: String,
    /// History turns, then the task.
    pub messages: Vec<Message>,
    /// Estimated tokens used.
    pub tokens: usize,
    /// Memories included.
    pub memories_used: usize,
    /// History messages included.
    pub history_used: usize,
}

/// Estimated tokens of a text.
pub(crate) fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

/// Builds the context by the rule in the module documentation.
pub(crate) fn build(input: &ContextInput) -> BuiltContext {
    let task = format!("Task: {}", input.task);
    let mut used = estimate_tokens(&input.system_prompt) + estimate_tokens(&task);
    let remaining = input.budget.saturating_sub(used);

    let mut memory_lines = Vec::new();
    let memory_budget = remaining / 2;
    let mut memory_used = 0;
    for m in &input.memories {
        let line = format!("- [{} {}/10] {}", m.kind, m.importance, m.content);
        let cost = estimate_tokens(&line) + 1;
        if memory_used + cost > memory_budget {
            break;
        }
        memory_used += cost;
        memory_lines.push(line);
    }
    used += memory_used;

    let mut history = Vec::new();
    for m in input.history.iter().rev() {
        let text = format!("{}: {}", m.author, m.content);
        let cost = estimate_tokens(&text) + 1;
        if used + cost > input.budget {
            break;
        }
        used += cost;
        history.push(match m.role.as_str() {
            "assistant" => Message::assistant(text),
            _ => Message::user(text),
        });
    }
    history.reverse();

    let mut system = input.system_prompt.clone();
    if !memory_lines.is_empty() {
        system.push_str("\n\nWhat you remember (most useful first):\n");
        system.push_str(&memory_lines.join("\n"));
    }
    if let Some(project) = &input.project {
        let room_chars = input.budget.saturating_sub(used).saturating_mul(4);
        if room_chars > 40 {
            let cut: String = project.chars().take(room_chars - 20).collect();
            used += estimate_tokens(&cut) + 5;
            system.push_str("\n\nProject context:\n");
            system.push_str(&cut);
        }
    }
    let history_used = history.len();
    let mut messages = history;
    messages.push(Message::user(task));
    BuiltContext {
        system,
        messages,
        tokens: used,
        memories_used: memory_lines.len(),
        history_used,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(i: usize) -> ContextMemory {
        ContextMemory {
            kind: "fact".into(),
            content: format!("memory number {i} with some words in it"),
            importance: 5,
        }
    }

    fn message(i: usize) -> ContextMessage {
        ContextMessage {
            role: if i % 2 == 0 { "user" } else { "assistant" }.into(),
            author: "alice".into(),
            content: format!("message {i} of the conversation"),
        }
    }

    #[test]
    fn everything_fits_in_a_large_budget() {
        let input = ContextInput {
            system_prompt: "You are Sarah.".into(),
            task: "Review the code".into(),
            memories: (0..3).map(memory).collect(),
            history: (0..4).map(message).collect(),
            project: Some("A React app".into()),
            budget: 10_000,
        };
        let built = build(&input);
        assert_eq!(built.memories_used, 3);
        assert_eq!(built.history_used, 4);
        assert!(built.system.contains("memory number 0"));
        assert!(built.system.contains("A React app"));
        assert_eq!(
            built.messages.last(),
            Some(&Message::user("Task: Review the code"))
        );
        assert!(
            matches!(&built.messages[0], Message::User { content } if content.contains("message 0"))
        );
    }

    #[test]
    fn a_small_budget_keeps_the_best_memories_and_the_newest_history() {
        let input = ContextInput {
            system_prompt: "S".into(),
            task: "T".into(),
            memories: (0..50).map(memory).collect(),
            history: (0..50).map(message).collect(),
            project: None,
            budget: 200,
        };
        let built = build(&input);
        assert!(built.tokens <= 200, "{}", built.tokens);
        assert!(built.memories_used > 0 && built.memories_used < 50);
        assert!(built.system.contains("memory number 0"), "best first");
        assert!(built.history_used > 0 && built.history_used < 50);
        let first_history = &built.messages[0];
        let newest_kept = 50 - built.history_used;
        assert!(
            matches!(first_history, Message::User { content } | Message::Assistant { text: content, .. } if content.contains(&format!("message {newest_kept} ")))
        );
    }

    #[test]
    fn system_prompt_and_task_survive_a_zero_budget() {
        let input = ContextInput {
            system_prompt: "S".into(),
            task: "T".into(),
            memories: vec![memory(1)],
            history: vec![message(1)],
            project: Some("P".repeat(1000)),
            budget: 0,
        };
        let built = build(&input);
        assert_eq!(built.system, "S");
        assert_eq!(built.messages, vec![Message::user("Task: T")]);
    }
}
