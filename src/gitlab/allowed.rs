//! `GET $CI_API_V4_URL/job/allowed_agents`: which agents GitLab lets this job use, judged
//! against the agents in the kubeconfig; and the explanation when `KUBECONFIG` is missing.

use crate::catalogue::{CheckId, Reason};
use crate::gitlab::agent::{AgentIdentity, TokenType};
use crate::gitlab::allowed_answer::{AllowedAgents, parse_allowed_agents};
use crate::gitlab::ci::{CiFacts, JOB_SUBJECT};
use crate::gitlab::identity::predict_identity;
use crate::gitlab::likely::{
    DecidedRule, ExpectedAgent, decided_rule, job_facts, likely_causes, numbered,
};
use crate::gitlab::text::excerpt_masking;
use crate::model::{CheckResult, TargetKind};

/// Whether this job needs an agent, which decides what an empty allowed-agents list means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentExpectation {
    /// An agent target exists, or nothing else gives the job a cluster: no agent is a failure.
    Expected,
    /// Other targets give the job its cluster (named here: the legacy `KUBE_URL` integration, a
    /// kubeconfig of its own): no agent is only a fact.
    NotNeeded(String),
}

impl AgentExpectation {
    /// From the kinds of the run's targets. Neither the GitLab server nor the runner pod's own
    /// service account (a fallback kubectl would use, spec §6 `in-cluster-fallback`) count as
    /// the job's cluster.
    pub fn from_targets<'a>(targets: impl IntoIterator<Item = (&'a str, TargetKind)>) -> Self {
        let clusters: Vec<(&str, TargetKind)> = targets
            .into_iter()
            .filter(|(_, kind)| !matches!(kind, TargetKind::Gitlab | TargetKind::InCluster))
            .collect();
        if clusters.is_empty() || clusters.iter().any(|(_, k)| *k == TargetKind::GitlabAgent) {
            return AgentExpectation::Expected;
        }
        let names: Vec<String> = clusters
            .iter()
            .map(|(name, kind)| format!("{name} ({})", kind.as_str()))
            .collect();
        AgentExpectation::NotNeeded(names.join(", "))
    }
}

/// Judges the allowed-agents answer against the agent ids in the kubeconfig (ids of `ci:`
/// tokens; `pat:` tokens are a user's access and are not in the job's list).
pub fn judge_allowed_agents(
    status: u16,
    body: &[u8],
    kubeconfig_agent_ids: &[i64],
    ci: &CiFacts,
) -> Vec<CheckResult> {
    let agents: Vec<AgentIdentity> = kubeconfig_agent_ids
        .iter()
        .map(|&agent_id| AgentIdentity {
            agent_id,
            token_type: TokenType::Ci,
            config_project: None,
            agent_name: None,
        })
        .collect();
    judge_allowed_agents_for(status, body, &agents, ci, &AgentExpectation::Expected, &[])
}

/// Like [`judge_allowed_agents`], with the kubeconfig's agents as parsed (context names give
/// agent names and configuration projects for the evidence and the top-level-group rule), and
/// the run-wide `gitlab.agent-config` results of this checkout (`checkout`), which can decide
/// which rule left an agent out.
pub fn judge_allowed_agents_for(
    status: u16,
    body: &[u8],
    agents: &[AgentIdentity],
    ci: &CiFacts,
    expectation: &AgentExpectation,
    checkout: &[CheckResult],
) -> Vec<CheckResult> {
    let answer = format!(
        "HTTP {status}: {}",
        excerpt_masking(body, ci.token_secret())
    );
    match status {
        401 | 403 => vec![job_token_rejected(status, answer)],
        200 => match parse_allowed_agents(body) {
            Ok(allowed) if allowed.allowed_agents.is_empty() => match expectation {
                AgentExpectation::Expected => vec![no_agents(&allowed, agents, ci, checkout)],
                AgentExpectation::NotNeeded(others) => vec![none_needed(&allowed, others)],
            },
            Ok(allowed) => judge_list(&allowed, agents, ci, checkout),
            Err(why) => vec![unavailable(
                format!("the answer is not the expected JSON: {why}"),
                answer,
            )],
        },
        404 => vec![unavailable(
            "GitLab has no allowed-agents endpoint at this URL (404)".into(),
            answer,
        )],
        _ => vec![unavailable(
            format!("GitLab answered HTTP {status}"),
            answer,
        )],
    }
}

fn job_token_rejected(status: u16, answer: String) -> CheckResult {
    let result = CheckResult::finding(
        CheckId::GitlabAllowedAgents,
        JOB_SUBJECT,
        Reason::JobTokenRejected,
    )
    .with_evidence(answer);
    if status == 403 {
        result.with_summary("GitLab refused the job token for the allowed-agents API (403)")
    } else {
        result
    }
}

fn unavailable(summary: String, answer: String) -> CheckResult {
    CheckResult::finding(
        CheckId::GitlabAllowedAgents,
        JOB_SUBJECT,
        Reason::Unavailable,
    )
    .with_summary(format!(
        "the allowed-agents API could not be used: {summary}"
    ))
    .with_evidence(answer)
}

fn no_agents(
    allowed: &AllowedAgents,
    agents: &[AgentIdentity],
    ci: &CiFacts,
    checkout: &[CheckResult],
) -> CheckResult {
    let expected = expected_agents(agents, ci);
    let kubeconfig_line = (!agents.is_empty()).then(|| {
        let list: Vec<String> = agents.iter().map(AgentIdentity::describe).collect();
        format!("the kubeconfig names {}, yet GitLab now allows none (authorization changed during the job?)", list.join(", "))
    });
    let rule = decided_rule(ci, &expected, checkout);
    // A rule that decides excludes the kubeconfig's agent for good: no "changed during the job".
    let kubeconfig_line = kubeconfig_line.filter(|_| rule.is_none());
    let result = match rule {
        Some(rule) => decided(JOB_SUBJECT, "GitLab allows no agent for this job", rule),
        None => {
            let causes = likely_causes(ci, Some(allowed), &config_projects(&expected), false);
            CheckResult::finding(CheckId::GitlabAllowedAgents, JOB_SUBJECT, Reason::NoAgents)
                .with_fix_detail(numbered(&causes))
        }
    };
    result
        .with_evidence("allowed_agents: [] (no agent)")
        .with_evidence(allowed.describe_job())
        .with_evidence_lines(job_facts(ci))
        .with_evidence_lines(kubeconfig_line)
}

/// The `gitlab.allowed-agents` finding for a rule the job's facts decided; the summary is
/// `<lead>: <the rule>`, the fix the rule's own for this job (in place of the catalogue's).
fn decided(subject: impl Into<String>, lead: &str, rule: DecidedRule) -> CheckResult {
    let mut result = CheckResult::finding(CheckId::GitlabAllowedAgents, subject, rule.reason)
        .with_summary(format!("{lead}: {}", rule.summary))
        .with_evidence_lines(rule.evidence);
    result.fix = Some(rule.fix);
    result
}

/// No agent, and none needed: the job reaches its cluster another way.
fn none_needed(allowed: &AllowedAgents, others: &str) -> CheckResult {
    CheckResult::pass(
        CheckId::GitlabAllowedAgents,
        JOB_SUBJECT,
        "GitLab allows no agent for this job; none is needed: the job's cluster comes from elsewhere",
    )
    .with_evidence("allowed_agents: [] (no agent)")
    .with_evidence(format!("the job's cluster: {others}"))
    .with_evidence(allowed.describe_job())
}

fn judge_list(
    allowed: &AllowedAgents,
    agents: &[AgentIdentity],
    ci: &CiFacts,
    checkout: &[CheckResult],
) -> Vec<CheckResult> {
    let name_of = |id: i64| {
        agents
            .iter()
            .find(|a| a.agent_id == id)
            .and_then(|a| a.agent_name.as_deref())
    };
    let ids: Vec<String> = allowed
        .allowed_agents
        .iter()
        .map(|a| a.id.to_string())
        .collect();
    let mut pass = CheckResult::pass(
        CheckId::GitlabAllowedAgents,
        JOB_SUBJECT,
        format!(
            "GitLab allows {} agent(s) for this job: {}",
            ids.len(),
            ids.join(", ")
        ),
    )
    .with_evidence(allowed.describe_job());
    for agent in &allowed.allowed_agents {
        let access_as = agent
            .configuration
            .as_ref()
            .and_then(|c| c.access_as.as_ref());
        let identity = predict_identity(access_as, ci, Some(allowed), name_of(agent.id));
        pass = pass
            .with_evidence(agent.describe(name_of(agent.id)))
            .with_evidence(format!(
                "agent {}: Kubernetes sees {}",
                agent.id,
                identity.describe()
            ));
    }
    let mut results = vec![pass];
    let mut seen = Vec::new();
    // Only `ci:` tokens go through the job's allowed agents; a `pat:` token is a user's access.
    let judged = agents.iter().filter(|a| a.token_type == TokenType::Ci);
    for agent in judged.filter(|a| !allowed.ids().contains(&a.agent_id)) {
        if !seen.contains(&agent.agent_id) {
            seen.push(agent.agent_id);
            results.push(not_allowed(agent, &ids, ci, checkout));
        }
    }
    results.extend(kube_context_not_allowed(allowed, agents, ci, checkout));
    results
}

/// `KUBE_CONTEXT` names an agent (`<config project>:<agent>`) that is not among the
/// kubeconfig's targets and whose configuration project no allowed agent has: GitLab gave the
/// job other agents, not the one it expects. (An allowed agent of the same configuration
/// project may be it: the answer names no agents, so nothing is said then.)
fn kube_context_not_allowed(
    allowed: &AllowedAgents,
    agents: &[AgentIdentity],
    ci: &CiFacts,
    checkout: &[CheckResult],
) -> Option<CheckResult> {
    let wanted = ci.kube_context.as_deref()?;
    let (config_project, agent_name) = crate::gitlab::agent::parse_agent_context(wanted)?;
    let in_kubeconfig = agents.iter().any(|a| {
        a.config_project.as_deref() == Some(config_project.as_str())
            && a.agent_name.as_deref() == Some(agent_name.as_str())
    });
    let same_project = allowed.allowed_agents.iter().any(|a| {
        a.config_project
            .as_ref()
            .and_then(|p| p.path_with_namespace.as_deref())
            .is_some_and(|p| p.eq_ignore_ascii_case(&config_project))
    });
    if in_kubeconfig || same_project {
        return None;
    }
    let expected = [ExpectedAgent {
        config_project: config_project.clone(),
        agent_name,
        from: "KUBE_CONTEXT",
    }];
    let subject = format!("KUBE_CONTEXT {wanted}");
    let lead = format!("KUBE_CONTEXT names agent `{wanted}`, which GitLab does not allow this job");
    let listed: Vec<String> = allowed
        .allowed_agents
        .iter()
        .map(|a| a.describe(None))
        .collect();
    let result = match decided_rule(ci, &expected, checkout) {
        Some(rule) => decided(subject, &lead, rule),
        None => {
            let causes = likely_causes(ci, Some(allowed), &[config_project], false);
            CheckResult::finding(
                CheckId::GitlabAllowedAgents,
                subject,
                Reason::KubeContextAgentNotAllowed,
            )
            .with_summary(lead)
            .with_fix_detail(numbered(&causes))
        }
    };
    Some(
        result
            .with_evidence(format!("GitLab allows: {}", listed.join("; ")))
            .with_evidence_lines(job_facts(ci)),
    )
}

fn not_allowed(
    agent: &AgentIdentity,
    allowed_ids: &[String],
    ci: &CiFacts,
    checkout: &[CheckResult],
) -> CheckResult {
    let subject = format!("agent:{}", agent.agent_id);
    let ids = format!("allowed agent ids: {}", allowed_ids.join(", "));
    let in_kubeconfig = format!(
        "{} is in the kubeconfig but not allowed for this job",
        agent.describe()
    );
    if let Some(rule) = decided_rule(
        ci,
        &expected_agents(std::slice::from_ref(agent), ci),
        checkout,
    ) {
        return decided(subject, &in_kubeconfig, rule).with_evidence(ids);
    }
    let result = CheckResult::finding(
        CheckId::GitlabAllowedAgents,
        subject,
        Reason::AgentNotAllowed,
    )
    .with_summary(in_kubeconfig)
    .with_evidence(ids);
    let project = ci.project_path.as_deref().unwrap_or_default();
    match agent.config_project.as_deref() {
        Some(config) => result.with_fix_detail(format!(
            "Authorize `{project}` in `{config}`'s `.gitlab/agents/{}/config.yaml` (`ci_access`), or use one of the allowed agents' contexts.",
            agent.agent_name.as_deref().unwrap_or("<agent>")
        )),
        None => result,
    }
}

/// The agents the job expects: the kubeconfig's agent contexts, else the one `KUBE_CONTEXT`
/// names.
fn expected_agents(agents: &[AgentIdentity], ci: &CiFacts) -> Vec<ExpectedAgent> {
    let mut expected: Vec<ExpectedAgent> = agents
        .iter()
        .filter_map(|a| {
            Some(ExpectedAgent {
                config_project: a.config_project.clone()?,
                agent_name: a.agent_name.clone()?,
                from: "the kubeconfig's context",
            })
        })
        .collect();
    if expected.is_empty()
        && let Some((config_project, agent_name)) = ci
            .kube_context
            .as_deref()
            .and_then(crate::gitlab::agent::parse_agent_context)
    {
        expected.push(ExpectedAgent {
            config_project,
            agent_name,
            from: "KUBE_CONTEXT",
        });
    }
    expected.dedup();
    expected
}

/// The expected agents' configuration projects, once each.
fn config_projects(expected: &[ExpectedAgent]) -> Vec<String> {
    let mut projects: Vec<String> = expected.iter().map(|e| e.config_project.clone()).collect();
    projects.dedup();
    projects
}

/// `config.kubeconfig not-set`, explained for a GitLab CI job: in order of likelihood, why
/// GitLab gave this job no agent, backed by the allowed-agents answer when there is one.
///
/// `checkout` holds this checkout's `gitlab.agent-config` results: an agent configuration here
/// that excludes this job decides the first cause.
pub fn explain_not_set(
    ci: &CiFacts,
    allowed: Option<&AllowedAgents>,
    checkout: &[CheckResult],
) -> CheckResult {
    let result = CheckResult::finding(CheckId::ConfigKubeconfig, "", Reason::NotSet);
    if !ci.in_gitlab_ci() {
        return result;
    }
    if let Some(allowed) = allowed.filter(|a| !a.allowed_agents.is_empty()) {
        let ids: Vec<String> = allowed.ids().iter().map(i64::to_string).collect();
        return result
            .with_summary(format!(
                "KUBECONFIG is not set, yet GitLab allows {} agent(s) for this job: something overrides or unsets it",
                ids.len()
            ))
            .with_evidence(format!("allowed agent ids: {}", ids.join(", ")))
            .with_fix_detail("GitLab injects KUBECONFIG as a file variable; a project, group or instance CI/CD variable named KUBECONFIG, or a `variables: KUBECONFIG:` entry in .gitlab-ci.yml (even an empty one), replaces it, and `unset KUBECONFIG` in a script removes it. Remove the override.");
    }
    let expected = expected_agents(&[], ci);
    let mut causes = likely_causes(ci, allowed, &config_projects(&expected), true);
    if let Some(rule) = decided_rule(ci, &expected, checkout) {
        causes.insert(0, format!("{}. {}", capitalized(&rule.summary), rule.fix));
    }
    let (summary, backing) = match allowed {
        Some(_) => (
            "KUBECONFIG is not set: GitLab authorizes no agent for this job (the allowed-agents API lists none)",
            "allowed_agents: [] (confirmed by GitLab)",
        ),
        None => (
            "KUBECONFIG is not set: GitLab authorized no agent for this job",
            "allowed-agents API not consulted: the causes below are inferred from the job's variables",
        ),
    };
    result
        .with_summary(summary)
        .with_evidence(backing)
        .with_evidence_lines(allowed.map(AllowedAgents::describe_job))
        .with_evidence_lines(job_facts(ci))
        .with_fix_detail(numbered(&causes))
}

/// `the agent …` → `The agent …`.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitlab::ci::tests::{CANARY, ci, facts, vars};
    use crate::model::Status;

    /// The shape of GitLab's `lib/api/ci/jobs.rb` + `Entities::Clusters::Agents::Authorizations::CiAccess`.
    const TWO_AGENTS: &str = r#"{
      "allowed_agents": [
        {"id": 137, "config_project": {"id": 12, "description": null, "name": "agents", "name_with_namespace": "acme / platform / agents",
          "path": "agents", "path_with_namespace": "acme/platform/agents", "created_at": "2024-01-01T00:00:00.000Z"},
         "configuration": {"default_namespace": "shop", "access_as": {"ci_job": {}}, "environments": ["production"]}},
        {"id": 5, "config_project": {"id": 150, "name": "shop", "path": "shop", "path_with_namespace": "acme/web/shop"},
         "configuration": {}}
      ],
      "job": {"id": 4242}, "pipeline": {"id": 6},
      "project": {"id": 150, "groups": [{"id": 23}, {"id": 25}]},
      "user": {"id": 1, "username": "root", "roles_in_project": ["guest", "reporter", "developer", "maintainer"]},
      "environment": {"tier": "production", "slug": "prod"}
    }"#;

    const NONE: &str = r#"{"allowed_agents": [], "job": {"id": 4242}, "pipeline": {"id": 6},
      "project": {"id": 150, "groups": [{"id": 23}, {"id": 25}]},
      "user": {"id": 1, "username": "root", "roles_in_project": ["guest"]}}"#;

    fn all_text(results: &[CheckResult]) -> String {
        results
            .iter()
            .map(|r| {
                format!(
                    "{} {} {:?} {:?} {:?}",
                    r.subject, r.summary, r.evidence, r.fix, r.why
                )
            })
            .collect()
    }

    #[test]
    fn gitlab_allowed_agents_pass_lists_ids_names_and_config_projects() {
        let agents = vec![
            AgentIdentity {
                agent_id: 137,
                token_type: TokenType::Ci,
                config_project: None,
                agent_name: None,
            }
            .with_context("acme/platform/agents:prod"),
        ];
        let results = judge_allowed_agents_for(
            200,
            TWO_AGENTS.as_bytes(),
            &agents,
            &ci(),
            &AgentExpectation::Expected,
            &[],
        );
        assert_eq!(results.len(), 1, "{results:?}");
        let r = &results[0];
        assert_eq!(r.status, Status::Pass);
        assert!(r.summary.contains("137, 5"));
        let evidence = r.evidence.join("\n");
        assert!(
            evidence.contains(
                "agent 137 `prod`: config project acme/platform/agents (id 12), access as ci_job"
            ),
            "{evidence}"
        );
        assert!(evidence.contains("environments [production]"), "{evidence}");
        assert!(
            evidence.contains("Kubernetes sees user gitlab:ci_job:4242"),
            "{evidence}"
        );
        assert!(
            evidence.contains("agent 5: config project acme/web/shop (id 150), access as agent"),
            "{evidence}"
        );
    }

    #[test]
    fn gitlab_allowed_agents_agent_not_allowed() {
        let foreign = AgentIdentity {
            agent_id: 9,
            token_type: TokenType::Ci,
            config_project: None,
            agent_name: None,
        }
        .with_context("partner/infra:edge");
        let results = judge_allowed_agents_for(
            200,
            TWO_AGENTS.as_bytes(),
            &[foreign.clone(), foreign],
            &ci(),
            &AgentExpectation::Expected,
            &[],
        );
        assert_eq!(results.len(), 2, "one finding per agent: {results:?}");
        let r = &results[1];
        // Its context names a configuration project in another top-level group: that rule.
        assert_eq!(
            (r.status, r.reason),
            (Status::Fail, Some(Reason::OtherTopLevelGroup))
        );
        assert_eq!(r.subject, "agent:9");
        assert!(
            r.summary.contains("top-level group `partner`"),
            "{}",
            r.summary
        );
        assert!(
            r.fix.as_deref().unwrap_or_default().contains("`acme`"),
            "{r:?}"
        );
        let pat = AgentIdentity {
            agent_id: 77,
            token_type: TokenType::Pat,
            config_project: None,
            agent_name: None,
        };
        let results = judge_allowed_agents_for(
            200,
            TWO_AGENTS.as_bytes(),
            &[pat],
            &ci(),
            &AgentExpectation::Expected,
            &[],
        );
        assert_eq!(
            results.len(),
            1,
            "a pat: token is not judged against the job's agents"
        );
        let by_id = judge_allowed_agents(200, TWO_AGENTS.as_bytes(), &[137, 77], &ci());
        assert_eq!(
            by_id
                .iter()
                .filter(|r| r.reason == Some(Reason::AgentNotAllowed))
                .count(),
            1
        );
    }

    #[test]
    fn gitlab_allowed_agents_job_token_rejected() {
        for status in [401, 403] {
            let results =
                judge_allowed_agents(status, br#"{"message":"401 Unauthorized"}"#, &[], &ci());
            assert_eq!(
                results[0].reason,
                Some(Reason::JobTokenRejected),
                "{status}"
            );
            assert!(results[0].evidence[0].contains(r#"{"message":"401 Unauthorized"}"#));
        }
    }

    #[test]
    fn gitlab_allowed_agents_unavailable() {
        for (status, body) in [
            (500, &b"<html>502 Bad Gateway</html>"[..]),
            (200, b"not json"),
            (404, br#"{"message":"404 Not Found"}"#),
        ] {
            let results = judge_allowed_agents(status, body, &[], &ci());
            assert_eq!(
                (results[0].status, results[0].reason),
                (Status::Warn, Some(Reason::Unavailable)),
                "{status}"
            );
        }
    }

    #[test]
    fn gitlab_allowed_agents_other_top_level_group_decided_by_kube_context() {
        let mut v = vars();
        v.insert("KUBE_CONTEXT", "platform-team/agents:prod".into());
        let results = judge_allowed_agents(200, NONE.as_bytes(), &[], &facts(&v));
        let r = &results[0];
        assert_eq!(
            (r.status, r.reason),
            (Status::Fail, Some(Reason::OtherTopLevelGroup))
        );
        assert!(
            r.summary.contains("top-level group `platform-team`"),
            "{}",
            r.summary
        );
        assert!(
            r.evidence.iter().any(
                |e| e.contains("expected agent: platform-team/agents:prod (from KUBE_CONTEXT)")
            ),
            "{r:?}"
        );
        // The same for `config.kubeconfig not-set`: the decided rule comes first.
        let not_set = explain_not_set(&facts(&v), None, &[]);
        let fix = not_set.fix.unwrap_or_default();
        assert!(
            fix.starts_with(
                "In order of likelihood for this job: 1. The agent `platform-team/agents:prod`"
            ),
            "{fix}"
        );
    }

    /// The checkout holds the agent's configuration (this project is its configuration
    /// project): its `environments` filter or `protected_branches_only` decide.
    #[test]
    fn gitlab_allowed_agents_rule_decided_by_the_checkout() {
        let config = "ci_access:\n  projects:\n    - id: acme/web/shop\n      environments: [production]\n      protected_branches_only: true\n";
        let mut v = vars();
        v.insert("KUBE_CONTEXT", "acme/web/shop:prod".into());
        let label = ".gitlab/agents/prod/config.yaml";
        let checkout = [crate::gitlab::agent_config::judge_agent_config(
            label,
            config,
            "acme/web/shop",
            &facts(&v),
        )];
        let judged = |v: &std::collections::HashMap<&'static str, String>,
                      checkout: &[CheckResult]| {
            judge_allowed_agents_for(
                200,
                NONE.as_bytes(),
                &[],
                &facts(v),
                &AgentExpectation::Expected,
                checkout,
            )
            .remove(0)
        };
        let r = judged(&v, &checkout);
        assert_eq!(r.reason, Some(Reason::EnvironmentExcludesJob), "{r:?}");
        assert!(
            r.evidence
                .iter()
                .any(|e| e.contains("decided by .gitlab/agents/prod/config.yaml")),
            "{r:?}"
        );
        assert!(
            r.fix
                .as_deref()
                .unwrap_or_default()
                .contains("`environment:`"),
            "{r:?}"
        );

        v.insert("CI_ENVIRONMENT_NAME", "production".into());
        v.insert("CI_COMMIT_REF_PROTECTED", "false".into());
        let checkout = [crate::gitlab::agent_config::judge_agent_config(
            label,
            config,
            "acme/web/shop",
            &facts(&v),
        )];
        let r = judged(&v, &checkout);
        assert_eq!(r.reason, Some(Reason::ProtectedBranchesOnly), "{r:?}");
        // Another agent's file says nothing about the one KUBE_CONTEXT names.
        v.insert("KUBE_CONTEXT", "acme/web/shop:staging".into());
        assert_eq!(judged(&v, &checkout).reason, Some(Reason::NoAgents));
    }

    /// GitLab allows agents, but not the one KUBE_CONTEXT names.
    #[test]
    fn gitlab_allowed_agents_kube_context_agent_not_allowed() {
        let mut v = vars();
        v.insert("KUBE_CONTEXT", "acme/ops/agents:prod".into());
        let results = judge_allowed_agents(200, TWO_AGENTS.as_bytes(), &[], &facts(&v));
        let r = results
            .iter()
            .find(|r| r.status == Status::Fail)
            .unwrap_or_else(|| panic!("{results:?}"));
        assert_eq!(r.reason, Some(Reason::KubeContextAgentNotAllowed));
        assert_eq!(r.subject, "KUBE_CONTEXT acme/ops/agents:prod");
        assert!(
            r.evidence
                .iter()
                .any(|e| e.contains("acme/platform/agents")),
            "{r:?}"
        );
        // An allowed agent of the same configuration project may be it: nothing said.
        v.insert("KUBE_CONTEXT", "acme/platform/agents:other".into());
        let results = judge_allowed_agents(200, TWO_AGENTS.as_bytes(), &[], &facts(&v));
        assert!(
            results.iter().all(|r| r.status == Status::Pass),
            "{results:?}"
        );
    }

    #[test]
    fn gitlab_allowed_agents_no_agents_explained_for_this_job() {
        // No environment, unprotected ref, an agent of this top-level group whose file is not
        // here: only likelihoods.
        let mut v = vars();
        v.insert("CI_COMMIT_REF_PROTECTED", "false".into());
        v.insert("CI_COMMIT_REF_NAME", "feature/x".into());
        v.insert("KUBE_CONTEXT", "acme/platform/agents:prod".into());
        let results = judge_allowed_agents(200, NONE.as_bytes(), &[], &facts(&v));
        let r = &results[0];
        assert_eq!((r.status, r.reason), (Status::Fail, Some(Reason::NoAgents)));
        let fix = r.fix.clone().unwrap_or_default();
        let pos = |needle: &str| {
            fix.find(needle)
                .unwrap_or_else(|| panic!("{needle} missing from {fix}"))
        };
        assert!(pos("1. ") < pos("does not list"));
        assert!(pos("does not list") < pos("no `environment:`"));
        assert!(pos("no `environment:`") < pos("protected_branches_only"));
        assert!(pos("protected_branches_only") < pos("minute or two"));
        assert!(
            r.evidence
                .iter()
                .any(|e| e.contains("GitLab sees: job 4242"))
        );

        // Protected ref, environment set, same top-level group: those causes drop out or soften.
        let mut v = vars();
        v.insert("CI_ENVIRONMENT_NAME", "production".into());
        v.insert("KUBE_CONTEXT", "acme/platform/agents:prod".into());
        let fix = judge_allowed_agents(200, NONE.as_bytes(), &[], &facts(&v))[0]
            .fix
            .clone()
            .unwrap_or_default();
        assert!(!fix.contains("top-level group `acme` is not"), "{fix}");
        assert!(
            !fix.contains("`protected_branches_only: true` exclude"),
            "{fix}"
        );
        assert!(fix.contains("`production`"), "{fix}");
    }

    #[test]
    fn no_agents_is_a_fact_when_another_target_gives_the_job_its_cluster() {
        let legacy = AgentExpectation::from_targets([
            ("gitlab-deploy", TargetKind::LegacyCertificate),
            ("gitlab", TargetKind::Gitlab),
        ]);
        let results =
            judge_allowed_agents_for(200, NONE.as_bytes(), &[], &facts(&vars()), &legacy, &[]);
        assert_eq!((results[0].status, results[0].reason), (Status::Pass, None));
        assert!(all_text(&results).contains("gitlab-deploy (legacy-certificate)"));
        // An agent target, or nothing but GitLab and the runner's own pod: an agent is expected.
        for kinds in [
            vec![("a", TargetKind::GitlabAgent), ("d", TargetKind::Direct)],
            vec![
                ("gitlab", TargetKind::Gitlab),
                ("in-cluster", TargetKind::InCluster),
            ],
        ] {
            let expectation = AgentExpectation::from_targets(kinds);
            assert_eq!(expectation, AgentExpectation::Expected);
        }
    }

    #[test]
    fn config_kubeconfig_not_set_explained() {
        let allowed = parse_allowed_agents(NONE.as_bytes()).expect("parses");
        let r = explain_not_set(&ci(), Some(&allowed), &[]);
        assert_eq!(r.reason, Some(Reason::NotSet));
        assert!(
            r.summary.contains("allowed-agents API lists none"),
            "{}",
            r.summary
        );
        assert!(r.fix.as_deref().unwrap_or_default().contains("1. "));
        assert!(
            r.fix
                .as_deref()
                .unwrap_or_default()
                .contains("certificate-based"),
            "legacy hint for a job without environment"
        );

        let inferred = explain_not_set(&ci(), None, &[]);
        assert!(inferred.evidence[0].contains("inferred"));

        let some = parse_allowed_agents(TWO_AGENTS.as_bytes()).expect("parses");
        let overridden = explain_not_set(&ci(), Some(&some), &[]);
        assert!(
            overridden
                .summary
                .contains("something overrides or unsets it"),
            "{}",
            overridden.summary
        );

        let outside = explain_not_set(&CiFacts::default(), None, &[]);
        assert_eq!(
            outside.summary,
            crate::catalogue::entry(CheckId::ConfigKubeconfig, Reason::NotSet).summary
        );
    }

    #[test]
    fn job_token_canary_never_appears() {
        let echo = format!(r#"{{"message":"token {CANARY} rejected","hint":"ci:137:{CANARY}"}}"#);
        let mut results = judge_allowed_agents(401, echo.as_bytes(), &[137], &ci());
        results.extend(judge_allowed_agents(500, echo.as_bytes(), &[137], &ci()));
        results.extend(judge_allowed_agents(200, echo.as_bytes(), &[137], &ci()));
        results.extend(judge_allowed_agents(
            200,
            TWO_AGENTS.as_bytes(),
            &[137, 9],
            &ci(),
        ));
        results.extend(judge_allowed_agents(200, NONE.as_bytes(), &[137], &ci()));
        results.push(explain_not_set(&ci(), None, &[]));
        if let Err(refused) = crate::gitlab::ci::plan_allowed_agents(&{
            let mut v = vars();
            v.insert("CI_API_V4_URL", "https://evil.example.net/api/v4".into());
            facts(&v)
        }) {
            results.push(*refused);
        }
        let text = all_text(&results);
        assert!(text.contains("[REDACTED]"), "the echo was seen and masked");
        assert!(!text.contains(CANARY), "{text}");
    }
}
