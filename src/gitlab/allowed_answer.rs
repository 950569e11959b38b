//! The answer of `GET $CI_API_V4_URL/job/allowed_agents` as values: the agents GitLab allows
//! this job, and the job, project and environment GitLab sees. A leaf: the judging
//! (`allowed`), the likely causes (`likely`) and the identity prediction (`identity`) all read
//! these types, and this module reads none of them.

use serde::Deserialize;

use crate::gitlab::agent_config::CiAccessEntry;
use crate::gitlab::text::{MAX_JSON_BYTES, printable};

/// The answer of `/job/allowed_agents` (GitLab's `Ci::Jobs` API, fields the checks use).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AllowedAgents {
    pub allowed_agents: Vec<AllowedAgent>,
    pub job: Option<IdOnly>,
    pub pipeline: Option<IdOnly>,
    pub project: Option<JobProject>,
    /// Omitted when the job has no (persisted) environment.
    pub environment: Option<JobEnvironment>,
}

impl AllowedAgents {
    pub fn ids(&self) -> Vec<i64> {
        self.allowed_agents.iter().map(|a| a.id).collect()
    }

    /// `job 3, pipeline 6, project 150 in groups 23, 25, environment prod (tier production)`.
    pub fn describe_job(&self) -> String {
        let mut parts = Vec::new();
        if let Some(job) = &self.job {
            parts.push(format!("job {}", job.id));
        }
        if let Some(pipeline) = &self.pipeline {
            parts.push(format!("pipeline {}", pipeline.id));
        }
        if let Some(project) = &self.project {
            let groups: Vec<String> = project.groups.iter().map(|g| g.id.to_string()).collect();
            parts.push(format!(
                "project {} in groups [{}]",
                project.id,
                groups.join(", ")
            ));
        }
        parts.push(match &self.environment {
            Some(env) => format!("environment {} (tier {})", env.slug, env.tier),
            None => "no environment".to_string(),
        });
        format!("GitLab sees: {}", parts.join(", "))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AllowedAgent {
    /// The agent id (the `<id>` of `agent:<id>` and `ci:<id>:…`).
    pub id: i64,
    pub config_project: Option<ConfigProject>,
    /// The `ci_access` entry that authorizes the job (empty for the implicit authorization).
    pub configuration: Option<CiAccessEntry>,
}

impl AllowedAgent {
    pub(crate) fn describe(&self, name_from_kubeconfig: Option<&str>) -> String {
        let project = self
            .config_project
            .as_ref()
            .map(ConfigProject::describe)
            .unwrap_or_else(|| "unknown".into());
        let name = name_from_kubeconfig
            .map(|n| format!(" `{n}`"))
            .unwrap_or_default();
        let entry = self.configuration.clone().unwrap_or_default();
        format!(
            "agent {}{name}: config project {project}, {}",
            self.id,
            entry.describe()
        )
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ConfigProject {
    pub id: Option<i64>,
    pub name: Option<String>,
    pub path: Option<String>,
    pub path_with_namespace: Option<String>,
}

impl ConfigProject {
    fn describe(&self) -> String {
        let path = self
            .path_with_namespace
            .as_deref()
            .or(self.path.as_deref())
            .unwrap_or("(no path)");
        match self.id {
            Some(id) => format!("{path} (id {id})"),
            None => path.to_string(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IdOnly {
    pub id: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct JobProject {
    pub id: i64,
    /// The project's group and its ancestors.
    pub groups: Vec<IdOnly>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct JobEnvironment {
    pub tier: String,
    pub slug: String,
}

/// Parses the allowed-agents JSON (bounded).
pub fn parse_allowed_agents(body: &[u8]) -> Result<AllowedAgents, String> {
    if body.len() > MAX_JSON_BYTES {
        return Err(format!("answer larger than {MAX_JSON_BYTES} bytes"));
    }
    serde_json::from_slice(body).map_err(|e| printable(&e.to_string(), 200))
}
