//! Why GitLab gave a job no agent, as a list of causes ordered by how likely each is for this
//! particular job (its project path, environment, protected ref and the agent it expects).

use crate::gitlab::allowed::AllowedAgents;
use crate::gitlab::ci::CiFacts;
use crate::gitlab::text::{ancestor_groups, top_level};

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
