//! Building a configuration in code, as a service that embeds Troupe does
//! instead of writing `troupe.toml`: constructors with the file's defaults
//! and chained setters. What the file leaves out, these leave out too.

use std::path::PathBuf;

use crate::names::OFFLINE_PROVIDER;
use crate::provider::{Budget, ProviderConfig};

use super::{
    AgentApprovals, AgentConfig, AgentGrants, AgentLimits, ModelConfig, ScheduleConfig,
    TroupeConfig,
};

impl TroupeConfig {
    /// Adds an agent.
    pub fn agent(mut self, agent: AgentConfig) -> Self {
        self.agents.push(agent);
        self
    }

    /// Adds a provider agents can name.
    pub fn provider(mut self, provider: ProviderConfig) -> Self {
        self.providers.push(provider);
        self
    }

    /// Adds an MCP server whose tools agents may be given.
    pub fn mcp_server(mut self, server: super::McpServerConfig) -> Self {
        self.mcp_servers.push(server);
        self
    }

    /// Adds a recurring job.
    pub fn schedule(mut self, schedule: ScheduleConfig) -> Self {
        self.schedules.push(schedule);
        self
    }

    /// Where the sled store and the local files live.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.store.data_dir = dir.into();
        self
    }
}

impl AgentConfig {
    /// An agent with the file's defaults: no tools, concurrency 4, at most
    /// 8 model calls per task, no reflection, no budget, never recycled,
    /// the default [`AgentLimits`] and no [`AgentGrants`].
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        system_prompt: impl Into<String>,
        model: ModelConfig,
    ) -> Self {
        AgentConfig {
            id: id.into(),
            name: name.into(),
            system_prompt: system_prompt.into(),
            tools: Vec::new(),
            model_config: model,
            concurrency: super::model::default_agent_concurrency(),
            max_steps: super::model::default_max_steps(),
            reflect: false,
            budget: None,
            restart_after_tasks: None,
            restart_above_memory_mib: None,
            limits: AgentLimits::default(),
            grants: AgentGrants::default(),
            approvals: AgentApprovals::default(),
        }
    }

    /// The tools whose calls wait for a person's approval, and how long
    /// before such a call is denied by itself (`None`: no deadline).
    pub fn approval<I, S>(mut self, tools: I, timeout: Option<std::time::Duration>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.approvals = AgentApprovals {
            tools: tools.into_iter().map(Into::into).collect(),
            timeout,
        };
        self
    }

    /// The tools it may use (built-in names, or tools added to the builder).
    pub fn tools<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tools = tools.into_iter().map(Into::into).collect();
        self
    }

    /// How many of its tasks may run at once.
    pub fn concurrency(mut self, tasks: usize) -> Self {
        self.concurrency = tasks;
        self
    }

    /// Model calls per task before it fails.
    pub fn max_steps(mut self, steps: u32) -> Self {
        self.max_steps = steps;
        self
    }

    /// After each task, ask the model what it learned and remember it.
    pub fn reflect(mut self, on: bool) -> Self {
        self.reflect = on;
        self
    }

    /// A daily token and/or cost limit.
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Restart its actor after this many tasks, between tasks.
    pub fn restart_after_tasks(mut self, tasks: u64) -> Self {
        self.restart_after_tasks = Some(tasks);
        self
    }

    /// How much work its tasks may start.
    pub fn limits(mut self, limits: AgentLimits) -> Self {
        self.limits = limits;
        self
    }

    /// What its tools may touch beyond the task's own user and conversation.
    pub fn grants(mut self, grants: AgentGrants) -> Self {
        self.grants = grants;
        self
    }
}

impl Default for AgentConfig {
    /// An agent called `agent` on the deterministic offline model: runs
    /// anywhere, needs no key.
    fn default() -> Self {
        AgentConfig::new(
            "agent",
            "Agent",
            "You are a helpful assistant.",
            ModelConfig::new(OFFLINE_PROVIDER, OFFLINE_PROVIDER),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_built_in_code_equals_the_same_file() {
        let file: TroupeConfig = toml::from_str(
            r#"
            [store]
            dataDir = "/tmp/x"
            [[agents]]
            id = "ed"
            name = "Ed"
            systemPrompt = "You edit."
            tools = ["remember"]
            [agents.modelConfig]
            provider = "offline"
            model = "offline"
            "#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let built = TroupeConfig::default().data_dir("/tmp/x").agent(
            AgentConfig::new(
                "ed",
                "Ed",
                "You edit.",
                ModelConfig::new("offline", "offline"),
            )
            .tools(["remember"]),
        );
        assert_eq!(format!("{file:?}"), format!("{built:?}"));
        let here = std::path::Path::new("built in code");
        assert!(built.validate(here).is_ok());
        let offline = TroupeConfig::default().agent(AgentConfig::default());
        assert!(offline.validate(here).is_ok());
    }
}
