//! The agents' limits and grants as the tools enforce them: the config's
//! [`AgentLimits`] and [`AgentGrants`] of every agent, made once at start
//! into the tools' [`Policies`].

use std::sync::Arc;

use crate::config::{AgentConfig, AgentGrants, AgentLimits};
use crate::tools::{Grant, Policies, ToolPolicy};

/// The tool policy of every agent of `agents`, the defaults for any other
/// caller.
pub(crate) fn tool_policies(agents: &[AgentConfig]) -> Arc<Policies> {
    let by_agent = agents
        .iter()
        .map(|a| (a.id.clone(), policy_of(&a.limits, &a.grants)))
        .collect();
    let default = policy_of(&AgentLimits::default(), &AgentGrants::default());
    Arc::new(Policies::new(by_agent, default))
}

fn policy_of(limits: &AgentLimits, grants: &AgentGrants) -> ToolPolicy {
    ToolPolicy {
        conversations: Grant::from_list(&grants.conversations),
        users: Grant::from_list(&grants.users),
        shared_memory: grants.shared_memory,
        read_hidden_files: grants.read_hidden_files,
        max_task_depth: limits.max_task_depth,
        max_queued_tasks: limits.max_queued_tasks,
    }
}
