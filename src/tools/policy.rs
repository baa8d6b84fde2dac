//! What each agent's tools may do: how far beyond the task's own user and
//! conversation they may reach (the grants), the limits the tools enforce
//! themselves (`maxTaskDepth`, `maxQueuedTasks`), and the count of every
//! refusal by a limit or for want of a grant.
//!
//! By default a tool acts only on the task's own user and conversation
//! (from its [`ToolContext`]); an agent's config may grant more, and each
//! refusal is a tool error naming the key that would have to grant it. The
//! policies are built once from the config, at start; a tool looks its
//! caller's up by agent id (one map lookup, no store read).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use crate::names::{
    GRANT_ANY, GRANT_CONVERSATIONS, GRANT_READ_HIDDEN_FILES, GRANT_SHARED_MEMORY, GRANT_USERS,
};

use super::error::ToolError;
use super::tool::ToolContext;

/// Names a config list grants: none, some, or every one (`"*"`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Grant {
    /// None beyond the task's own.
    #[default]
    Nothing,
    /// These.
    Some(BTreeSet<String>),
    /// Any.
    Any,
}

impl Grant {
    /// The grant of a config list (`["*"]`, or the names).
    pub(crate) fn from_list(list: &[String]) -> Self {
        if list.iter().any(|n| n == GRANT_ANY) {
            Grant::Any
        } else if list.is_empty() {
            Grant::Nothing
        } else {
            Grant::Some(list.iter().cloned().collect())
        }
    }

    /// Whether `name` is granted.
    pub(crate) fn allows(&self, name: &str) -> bool {
        match self {
            Grant::Nothing => false,
            Grant::Some(names) => names.contains(name),
            Grant::Any => true,
        }
    }
}

/// One agent's tool policy: its grants, and the limits its tools enforce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ToolPolicy {
    /// Conversations beyond the task's own (`conversations`).
    pub conversations: Grant,
    /// Users beyond the task's own (`users`).
    pub users: Grant,
    /// Agent-wide memories from a task done for a user (`sharedMemory`).
    pub shared_memory: bool,
    /// Hidden files and directories for `analyze_code` (`readHiddenFiles`).
    pub read_hidden_files: bool,
    /// How deep a chain of tasks creating tasks may go (`maxTaskDepth`).
    pub max_task_depth: u32,
    /// Queued tasks of this agent past which `create_task` for it is
    /// refused (`maxQueuedTasks`).
    pub max_queued_tasks: u64,
}

impl ToolPolicy {
    /// Whether a task done for `own` may see the data of `other` (a job's
    /// user; `None`: no user): its own always, others as granted.
    pub(crate) fn sees_user(&self, own: Option<&str>, other: Option<&str>) -> bool {
        own == other
            || match other {
                Some(user) => self.users.allows(user),
                None => self.users == Grant::Any,
            }
    }
}

/// Every agent's [`ToolPolicy`], the policy of a caller not configured (the
/// defaults), and the refusals counted.
#[derive(Debug)]
pub(crate) struct Policies {
    agents: BTreeMap<String, ToolPolicy>,
    default: ToolPolicy,
    refusals: Refusals,
}

impl Policies {
    /// The policies of `agents` (by id); `default` for any other caller.
    pub(crate) fn new(agents: BTreeMap<String, ToolPolicy>, default: ToolPolicy) -> Self {
        Policies {
            agents,
            default,
            refusals: Refusals::default(),
        }
    }

    /// The policy of agent `agent`.
    pub(crate) fn of(&self, agent: &str) -> &ToolPolicy {
        self.agents.get(agent).unwrap_or(&self.default)
    }

    /// The refusals counted so far.
    pub(crate) fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    /// Counts `error` (a [`ToolError::LimitReached`] or
    /// [`ToolError::NotGranted`]) against `agent`, and returns it.
    pub(crate) fn refuse(&self, agent: &str, error: ToolError) -> ToolError {
        match &error {
            ToolError::LimitReached { limit: key, .. }
            | ToolError::NotGranted { grant: key, .. } => self.refusals.count(agent, key),
            _ => {}
        }
        error
    }

    /// Refuses, unless `ctx`'s agent may act in `conversation`: the task's
    /// own, or one its config grants. `what` says what was asked ("post to").
    pub(crate) fn check_conversation(
        &self,
        ctx: &ToolContext,
        conversation: &str,
        what: &str,
    ) -> Result<(), ToolError> {
        let own = ctx.conversation_id.as_deref();
        if own == Some(conversation) || self.of(&ctx.agent_id).conversations.allows(conversation) {
            return Ok(());
        }
        let whose = match own {
            Some(own) => format!("this task's conversation is `{own}`"),
            None => "this task has no conversation".to_string(),
        };
        let message = format!(
            "to {what} conversation `{conversation}` ({whose}), agent `{}`'s config must grant it: \
             {GRANT_CONVERSATIONS} = [\"{conversation}\"] (or [\"{GRANT_ANY}\"]).",
            ctx.agent_id
        );
        Err(self.refuse(
            &ctx.agent_id,
            ToolError::not_granted(GRANT_CONVERSATIONS, message),
        ))
    }

    /// Refuses, unless `ctx`'s agent may act for `user`: the task's own
    /// user, or one its config grants. `what` says what was asked.
    pub(crate) fn check_user(
        &self,
        ctx: &ToolContext,
        user: &str,
        what: &str,
    ) -> Result<(), ToolError> {
        let own = ctx.user_id.as_deref();
        if own == Some(user) || self.of(&ctx.agent_id).users.allows(user) {
            return Ok(());
        }
        let whose = match own {
            Some(own) => format!("this task is done for `{own}`"),
            None => "this task is done for no user".to_string(),
        };
        let message = format!(
            "to {what} user `{user}` ({whose}), agent `{}`'s config must grant it: \
             {GRANT_USERS} = [\"{user}\"] (or [\"{GRANT_ANY}\"]).",
            ctx.agent_id
        );
        Err(self.refuse(&ctx.agent_id, ToolError::not_granted(GRANT_USERS, message)))
    }

    /// Refuses an agent-wide memory written from a task done for a user,
    /// unless the agent's config has `sharedMemory = true`.
    pub(crate) fn check_shared_memory(&self, ctx: &ToolContext) -> Result<(), ToolError> {
        let Some(user) = &ctx.user_id else {
            // Without a user, the agent's scope is the task's own.
            return Ok(());
        };
        if self.of(&ctx.agent_id).shared_memory {
            return Ok(());
        }
        let message = format!(
            "agent-wide memories reach every user's tasks; to write one from a task done for \
             `{user}`, agent `{}`'s config must have {GRANT_SHARED_MEMORY} = true. Use scope \
             \"user\" for what concerns this user.",
            ctx.agent_id
        );
        Err(self.refuse(
            &ctx.agent_id,
            ToolError::not_granted(GRANT_SHARED_MEMORY, message),
        ))
    }

    /// Refuses the hidden file or directory `path` (a path under the
    /// project root), unless the agent's config has `readHiddenFiles = true`.
    pub(crate) fn check_hidden(&self, ctx: &ToolContext, path: &str) -> Result<(), ToolError> {
        if self.of(&ctx.agent_id).read_hidden_files {
            return Ok(());
        }
        let message = format!(
            "`{path}` is or lies in a hidden file or directory (a name starting with `.`, such \
             as `.env` or `.git`); to read those, agent `{}`'s config must have \
             {GRANT_READ_HIDDEN_FILES} = true.",
            ctx.agent_id
        );
        Err(self.refuse(
            &ctx.agent_id,
            ToolError::not_granted(GRANT_READ_HIDDEN_FILES, message),
        ))
    }
}

/// Refusals by a limit or for want of a grant, by agent and config key:
/// `troupe_limit_refusals_total{agent,limit}`. Counted only when something
/// is refused, so it costs nothing on calls that go through.
#[derive(Debug, Default)]
pub(crate) struct Refusals(Mutex<BTreeMap<(String, String), u64>>);

impl Refusals {
    /// Counts one refusal of `agent` by `key`.
    pub(crate) fn count(&self, agent: &str, key: &str) {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *counts
            .entry((agent.to_string(), key.to_string()))
            .or_default() += 1;
        tracing::debug!(
            agent,
            limit = key,
            "refused by a limit or for want of a grant"
        );
    }

    /// `(agent, key, refusals)`, by agent then key.
    pub(crate) fn snapshot(&self) -> Vec<(String, String, u64)> {
        let counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        counts
            .iter()
            .map(|((agent, key), n)| (agent.clone(), key.clone(), *n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_grants_every_name_and_an_empty_list_none() {
        let names = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Grant::from_list(&[]), Grant::Nothing);
        assert!(!Grant::from_list(&[]).allows("c"));
        assert!(Grant::from_list(&names(&["a", "*"])).allows("anything"));
        let some = Grant::from_list(&names(&["a", "b"]));
        assert!(some.allows("b") && !some.allows("c"));
    }
}
