//! Why GitLab gave a job no agent: the rule that decided it when the job's facts prove one
//! ([`decided_rule`]), else a list of causes ordered by how likely each is for this particular
//! job (its project path, environment, protected ref and the agent it expects).

use crate::catalogue::{CheckId, Reason};
use crate::gitlab::allowed_answer::AllowedAgents;
use crate::gitlab::ci::CiFacts;
use crate::gitlab::text::{ancestor_groups, top_level};
use crate::model::CheckResult;

/// Causes, most likely first. `expected_config_projects` are the configuration projects of the
/// agents the job expects (from the kubeconfig's contexts or `KUBE_CONTEXT`).
pub(crate) fn likely_causes(
    ci: &CiFacts,
    allowed: Option<&AllowedAgents>,
    expected_config_projects: &[String],
    include_legacy: bool,
) -> Vec<String> {
    let project = ci.project_path.as_deref().unwrap_or("<CI_PROJECT_PATH>");
    let mut scored: Vec<(u8, String)> = Vec::new();
    scored.extend(top_level_cause(project, expected_config_projects));
    scored.push((60, not_listed_cause(project, expected_config_projects)));
    scored.push(environment_cause(ci, allowed));
    scored.extend(protected_cause(ci));
    scored.push((
        20,
        "The agent must be registered (Operate > Kubernetes clusters) and its `config.yaml` committed on the default branch of its configuration project: GitLab reads no other branch.".to_string(),
    ));
    scored.push((
        10,
        "If `ci_access` changed in the last minute or two, GitLab may not have applied it yet: retry the job.".to_string(),
    ));
    if include_legacy && ci.environment_name.is_none() {
        scored.push((
            5,
            "For a certificate-based cluster (deprecated): GitLab passes its KUBECONFIG and KUBE_* variables only to jobs that declare an `environment:`.".to_string(),
        ));
    }
    // Stable: equal scores keep the order above.
    scored.sort_by_key(|(score, _)| std::cmp::Reverse(*score));
    scored.into_iter().map(|(_, text)| text).collect()
}

fn top_level_cause(project: &str, expected: &[String]) -> Option<(u8, String)> {
    let root = top_level(project);
    if expected.is_empty() {
        return Some((
            25,
            format!(
                "The agent's configuration project must be in this project's top-level group `{root}`: GitLab drops `ci_access` entries for projects and groups in other top-level groups. (Set KUBE_CONTEXT to `<config project>:<agent>` so kube-reach can check.)"
            ),
        ));
    }
    let other = expected
        .iter()
        .find(|c| !top_level(c).eq_ignore_ascii_case(root))?;
    Some((
        100,
        format!(
            "The agent's configuration project `{other}` is in top-level group `{}`, this project (`{project}`) in `{root}`: GitLab drops `ci_access` entries outside the configuration project's top-level group, so no entry can authorize this project (on GitLab Self-Managed an administrator can lift this with `organization_cluster_agent_authorization_enabled`).",
            top_level(other)
        ),
    ))
}

fn not_listed_cause(project: &str, expected: &[String]) -> String {
    let groups = ancestor_groups(project);
    let groups = if groups.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = groups.iter().map(|g| format!("`{g}`")).collect();
        format!(
            ", or one of its groups ({}) under `groups:`",
            quoted.join(", ")
        )
    };
    let where_ = match expected.first() {
        Some(config) => format!("`{config}`"),
        None => "the agent's configuration project".to_string(),
    };
    format!(
        "The agent's `ci_access` does not list this project: add `- id: {project}` under `projects:`{groups}, in `.gitlab/agents/<agent>/config.yaml` of {where_}."
    )
}

fn environment_cause(ci: &CiFacts, allowed: Option<&AllowedAgents>) -> (u8, String) {
    match ci.environment_name.as_deref() {
        None => (
            50,
            "This job has no `environment:`: an agent entry with an `environments:` filter excludes every job without one. Give the job an `environment:` matching the filter, or remove the filter.".to_string(),
        ),
        Some(env) => {
            let persisted = allowed.is_none_or(|a| a.environment.is_some());
            let note = if persisted { "" } else { " (GitLab reports no environment for this job: it may not be created yet, e.g. `action: prepare`)" };
            (30, format!("An `environments:` filter must match this job's environment `{env}` (exactly, or a pattern with `*`){note}."))
        }
    }
}

fn protected_cause(ci: &CiFacts) -> Option<(u8, String)> {
    match ci.commit_ref_protected {
        Some(true) => None,
        Some(false) => Some((
            40,
            format!(
                "This job runs on `{}`, which is not protected: entries with `protected_branches_only: true` exclude it (GitLab 17.3+).",
                ci.commit_ref_name.as_deref().unwrap_or("its ref")
            ),
        )),
        None => Some((
            12,
            "Entries with `protected_branches_only: true` admit only jobs on protected branches."
                .to_string(),
        )),
    }
}

/// The job facts the causes were weighed with, for evidence.
pub(crate) fn job_facts(ci: &CiFacts) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(project) = &ci.project_path {
        let id = ci
            .project_id
            .map(|id| format!(" (id {id})"))
            .unwrap_or_default();
        lines.push(format!(
            "project: {project}{id}, top-level group {}",
            top_level(project)
        ));
    }
    lines.push(match (&ci.environment_name, &ci.environment_tier) {
        (Some(name), Some(tier)) => format!("environment: {name} (tier {tier})"),
        (Some(name), None) => format!("environment: {name}"),
        (None, _) => "environment: none (the job declares no `environment:`)".to_string(),
    });
    let git_ref = ci.commit_ref_name.as_deref().unwrap_or("(unknown ref)");
    lines.push(match ci.commit_ref_protected {
        Some(true) => format!("ref: {git_ref} (protected)"),
        Some(false) => format!("ref: {git_ref} (not protected)"),
        None => format!("ref: {git_ref}"),
    });
    if let Some(context) = &ci.kube_context {
        lines.push(format!("KUBE_CONTEXT: {context}"));
    }
    lines
}

/// `In order of likelihood for this job: 1. … 2. …`.
pub(crate) fn numbered(causes: &[String]) -> String {
    let items: Vec<String> = causes
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{}. {c}", i + 1))
        .collect();
    format!("In order of likelihood for this job: {}", items.join(" "))
}

/// An agent the job expects, and where that expectation comes from (for evidence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExpectedAgent {
    pub config_project: String,
    pub agent_name: String,
    /// `the kubeconfig's context` or `KUBE_CONTEXT`.
    pub from: &'static str,
}

impl ExpectedAgent {
    fn context(&self) -> String {
        format!("{}:{}", self.config_project, self.agent_name)
    }
}

/// A rule the job's own facts prove kept an expected agent from it: a reason of its own, with
/// evidence and a fix for this job. `None` when only likelihoods can be given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecidedRule {
    pub reason: Reason,
    pub summary: String,
    pub evidence: Vec<String>,
    pub fix: String,
}

/// The rule that excluded this job from an expected agent, when what the job can see decides
/// it:
/// - the agent's configuration project lies in another top-level group than this project
///   (from the two paths: GitLab drops such `ci_access` entries);
/// - this checkout holds the agent's configuration (this project is its configuration
///   project) and its entry for this project filters on environments the job does not have,
///   or admits protected refs only and this ref is not protected (`checkout` holds the
///   run-wide `gitlab.agent-config` results).
///
/// Without expected agents, a checkout entry that excludes this job still decides. A rule that
/// leaves another expected agent unexplained decides nothing.
pub(crate) fn decided_rule(
    ci: &CiFacts,
    expected: &[ExpectedAgent],
    checkout: &[CheckResult],
) -> Option<DecidedRule> {
    let project = ci.project_path.as_deref()?;
    // A rule decides only if it explains every expected agent.
    let foreign: Vec<&ExpectedAgent> = expected
        .iter()
        .filter(|e| !top_level(&e.config_project).eq_ignore_ascii_case(top_level(project)))
        .collect();
    if let [first, ..] = foreign.as_slice() {
        return (foreign.len() == expected.len()).then(|| other_top_level_group(project, first));
    }
    if expected.len() > 1 {
        return None;
    }
    let own = |r: &&CheckResult| {
        expected.is_empty()
            || expected.iter().any(|e| {
                e.config_project.eq_ignore_ascii_case(project)
                    && r.subject == format!(".gitlab/agents/{}/config.yaml", e.agent_name)
            })
    };
    checkout
        .iter()
        .filter(|r| r.id == CheckId::GitlabAgentConfig && r.status.is_failure())
        .filter(own)
        .find_map(|r| from_checkout(r, project))
}

fn other_top_level_group(project: &str, other: &ExpectedAgent) -> DecidedRule {
    let (theirs, ours) = (top_level(&other.config_project), top_level(project));
    DecidedRule {
        reason: Reason::OtherTopLevelGroup,
        summary: format!(
            "the agent `{}` is configured in top-level group `{theirs}`, this project in `{ours}`: GitLab drops `ci_access` entries across top-level groups",
            other.context()
        ),
        evidence: vec![format!(
            "expected agent: {} (from {}); this project: {project}",
            other.context(),
            other.from
        )],
        fix: format!(
            "Register an agent whose configuration project is in `{ours}` (one agent per top-level group) and authorize `{project}` in its `ci_access`; on GitLab Self-Managed an administrator can instead enable `organization_cluster_agent_authorization_enabled`."
        ),
    }
}

/// A `gitlab.agent-config` failure of this checkout that explains why GitLab left the agent
/// out: its `environments` filter or `protected_branches_only` exclude this job.
fn from_checkout(result: &CheckResult, project: &str) -> Option<DecidedRule> {
    let reason = result.reason?;
    let fix = match reason {
        Reason::EnvironmentExcludesJob => format!(
            "Give the deploy job an `environment:` that {}'s `environments` list matches (`environment: {{name: <name>}}` in .gitlab-ci.yml), or widen the list.",
            result.subject
        ),
        Reason::ProtectedBranchesOnly => format!(
            "Run the deploy job on a protected branch or tag (Settings > Repository > Protected branches), or drop `protected_branches_only` from the entry for `{project}` in {}.",
            result.subject
        ),
        _ => return None,
    };
    let mut evidence = vec![format!(
        "decided by {} in this checkout (this project is the agent's configuration project)",
        result.subject
    )];
    evidence.extend(result.evidence.iter().cloned());
    Some(DecidedRule {
        reason,
        summary: format!(
            "{}: GitLab gives this job no context for it",
            result.summary
        ),
        evidence,
        fix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitlab::ci::tests::ci;

    fn expected(context: &str) -> ExpectedAgent {
        let (config_project, agent_name) = context.split_once(':').expect("a context");
        ExpectedAgent {
            config_project: config_project.into(),
            agent_name: agent_name.into(),
            from: "KUBE_CONTEXT",
        }
    }

    #[test]
    fn a_rule_decides_only_if_it_explains_every_expected_agent() {
        let foreign = expected("partner/agents:edge");
        let rule = decided_rule(&ci(), std::slice::from_ref(&foreign), &[]).expect("decided");
        assert_eq!(rule.reason, Reason::OtherTopLevelGroup);
        // A second expected agent in this project's own top-level group stays unexplained.
        let ours = expected("acme/platform/agents:prod");
        assert_eq!(decided_rule(&ci(), &[foreign, ours.clone()], &[]), None);
        assert_eq!(decided_rule(&ci(), &[ours], &[]), None);
    }
}
