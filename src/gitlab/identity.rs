//! Who the Kubernetes API server sees behind an agent, from the agent's `access_as`. (The RBAC
//! that grants it what the pipeline needs is written by `checks::rbac`, from the identity the
//! server itself reported.)

use crate::gitlab::agent_config::AccessAs;
use crate::gitlab::allowed_answer::AllowedAgents;
use crate::gitlab::ci::CiFacts;

/// The identity requests through an agent carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// `access_as: agent`: the agent's own service account, whose name the job cannot see.
    AgentServiceAccount { agent_name: Option<String> },
    /// `access_as: ci_job`: `gitlab:ci_job:<job id>` with the `gitlab:*` groups.
    CiJob {
        username: String,
        groups: Vec<String>,
        project_id: Option<i64>,
        complete: bool,
    },
    /// `access_as: impersonate`.
    Impersonate {
        username: String,
        groups: Vec<String>,
    },
    /// An `access_as` the agent server does not implement: requests fail.
    Unsupported { key: String },
}

impl Identity {
    /// One line for evidence.
    pub fn describe(&self) -> String {
        match self {
            Identity::AgentServiceAccount { agent_name } => format!(
                "the service account of agent {} (its name is not visible from the job; the default Helm install binds it to cluster-admin)",
                agent_name.as_deref().unwrap_or("(name unknown)")
            ),
            Identity::CiJob {
                username,
                groups,
                complete,
                ..
            } => format!(
                "user {username}, groups {}{}",
                groups.join(", "),
                if *complete {
                    ""
                } else {
                    " (plus gitlab:group:<id> per group above the project: ids not known without the allowed-agents answer)"
                }
            ),
            Identity::Impersonate { username, groups } if groups.is_empty() => {
                format!("user {username}")
            }
            Identity::Impersonate { username, groups } => {
                format!("user {username}, groups {}", groups.join(", "))
            }
            Identity::Unsupported { key } => {
                format!("none: `access_as: {key}` is not implemented by the agent server")
            }
        }
    }
}

/// Predicts the identity for an agent with this `access_as` (`None` = the default, agent).
/// Group ids and the environment come from the allowed-agents answer when given (that is what
/// the agent server uses); otherwise from the CI variables.
pub fn predict_identity(
    access_as: Option<&AccessAs>,
    ci: &CiFacts,
    allowed: Option<&AllowedAgents>,
    agent_name: Option<&str>,
) -> Identity {
    match access_as.unwrap_or(&AccessAs::Agent) {
        AccessAs::Agent => Identity::AgentServiceAccount {
            agent_name: agent_name.map(str::to_string),
        },
        AccessAs::CiJob => ci_job_identity(ci, allowed),
        AccessAs::Impersonate {
            username, groups, ..
        } => Identity::Impersonate {
            username: username.clone(),
            groups: groups.clone(),
        },
        AccessAs::Unknown(key) => Identity::Unsupported { key: key.clone() },
    }
}

/// The groups the agent server builds, in its order: `gitlab:ci_job`, per group
/// `gitlab:group:<id>` (+ `gitlab:group_env_tier:<id>:<tier>`), `gitlab:project:<id>`, then
/// `gitlab:project_env:<id>:<slug>` and `gitlab:project_env_tier:<id>:<tier>`.
fn ci_job_identity(ci: &CiFacts, allowed: Option<&AllowedAgents>) -> Identity {
    let job_id = allowed
        .and_then(|a| a.job.as_ref())
        .map(|j| j.id)
        .or(ci.job_id);
    let project_id = allowed
        .and_then(|a| a.project.as_ref())
        .map(|p| p.id)
        .or(ci.project_id);
    let group_ids: Option<Vec<i64>> = allowed
        .and_then(|a| a.project.as_ref())
        .map(|p| p.groups.iter().map(|g| g.id).collect());
    let env = match allowed {
        Some(a) => a
            .environment
            .as_ref()
            .map(|e| (e.slug.clone(), e.tier.clone())),
        None => ci.environment_slug.clone().zip(ci.environment_tier.clone()),
    };
    let project = project_id.map_or_else(|| "<CI_PROJECT_ID>".to_string(), |id| id.to_string());
    let mut groups = vec!["gitlab:ci_job".to_string()];
    for id in group_ids.iter().flatten() {
        groups.push(format!("gitlab:group:{id}"));
        if let Some((_, tier)) = &env {
            groups.push(format!("gitlab:group_env_tier:{id}:{tier}"));
        }
    }
    groups.push(format!("gitlab:project:{project}"));
    if let Some((slug, tier)) = &env {
        groups.push(format!("gitlab:project_env:{project}:{slug}"));
        groups.push(format!("gitlab:project_env_tier:{project}:{tier}"));
    }
    Identity::CiJob {
        username: format!(
            "gitlab:ci_job:{}",
            job_id.map_or_else(|| "<CI_JOB_ID>".to_string(), |id| id.to_string())
        ),
        groups,
        project_id,
        complete: group_ids.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitlab::allowed_answer::parse_allowed_agents;
    use crate::gitlab::ci::tests::{ci, facts, vars};

    /// The documented example: group1 (23) / group1-1 (25) / project1 (150), env prod/production.
    const ALLOWED: &str = r#"{"allowed_agents":[{"id":5,"config_project":{"id":12,"path_with_namespace":"group1/agents"},"configuration":{"access_as":{"ci_job":{}}}}],
        "job":{"id":3},"pipeline":{"id":6},"project":{"id":150,"groups":[{"id":23},{"id":25}]},
        "user":{"id":1,"username":"root","roles_in_project":["guest","reporter","developer","maintainer"]},
        "environment":{"tier":"production","slug":"prod"}}"#;

    #[test]
    fn ci_job_identity_matches_the_agent_servers_groups() {
        let allowed = parse_allowed_agents(ALLOWED.as_bytes()).expect("parses");
        let identity = predict_identity(Some(&AccessAs::CiJob), &ci(), Some(&allowed), None);
        let Identity::CiJob {
            username,
            groups,
            complete,
            ..
        } = &identity
        else {
            panic!("{identity:?}")
        };
        assert_eq!(username, "gitlab:ci_job:3");
        assert!(complete);
        assert_eq!(
            groups,
            &[
                "gitlab:ci_job",
                "gitlab:group:23",
                "gitlab:group_env_tier:23:production",
                "gitlab:group:25",
                "gitlab:group_env_tier:25:production",
                "gitlab:project:150",
                "gitlab:project_env:150:prod",
                "gitlab:project_env_tier:150:production",
            ]
        );
    }

    #[test]
    fn ci_job_identity_from_variables_alone() {
        let mut v = vars();
        v.insert("CI_ENVIRONMENT_SLUG", "prod".into());
        v.insert("CI_ENVIRONMENT_TIER", "production".into());
        let identity = predict_identity(Some(&AccessAs::CiJob), &facts(&v), None, None);
        assert!(identity.describe().starts_with("user gitlab:ci_job:4242, groups gitlab:ci_job, gitlab:project:150, gitlab:project_env:150:prod"));
        assert!(identity.describe().contains("ids not known"));
    }

    #[test]
    fn agent_and_impersonate_identities() {
        let agent = predict_identity(None, &ci(), None, Some("prod"));
        assert_eq!(
            agent,
            Identity::AgentServiceAccount {
                agent_name: Some("prod".into())
            }
        );
        assert!(agent.describe().contains("not visible"));
        let imp = AccessAs::Impersonate {
            username: "deployer".into(),
            uid: None,
            groups: vec!["ops".into()],
        };
        assert_eq!(
            predict_identity(Some(&imp), &ci(), None, None).describe(),
            "user deployer, groups ops"
        );
    }
}
