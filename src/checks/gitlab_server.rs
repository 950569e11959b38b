//! The GitLab server target's steps (`gitlab.server`, `gitlab.allowed-agents`), and what
//! GitLab's answer explains about the agent targets after every target ran.

use super::{Context, Findings};
use crate::catalogue::{CheckId, Reason, situational};
use crate::gitlab::{self, AgentIdentity, JobToken};
use crate::model::{CheckResult, TargetKind, TargetReport};
use crate::net::http::{HttpFailure, Response};
use crate::plan::Target;

/// The subject of the job-wide `gitlab.allowed-agents` rows.
const JOB: &str = "job";

/// `gitlab.server`: does GitLab's API answer `GET /api/v4/version`?
pub fn server(cx: &Context, outcome: &Result<Response, HttpFailure>) -> Findings {
    Findings::judged(vec![super::http::gitlab_server(cx.authority, outcome)])
}

/// The one request that carries the job token: its path on this connection, the header and
/// the token.
pub struct AllowedAgentsAsk<'a> {
    pub path: String,
    pub header: &'static str,
    pub token: &'a JobToken,
}

/// Whether and how GitLab may be asked which agents it allows this job; the finding that says
/// why not otherwise. The job token goes only to the host of `CI_SERVER_URL`
/// (`gitlab::plan_allowed_agents` refuses any other).
pub fn allowed_agents_ask<'a>(cx: &Context<'a>) -> Result<AllowedAgentsAsk<'a>, Box<CheckResult>> {
    let not_asked = |why| {
        Box::new(CheckResult::not_applicable(
            CheckId::GitlabAllowedAgents,
            JOB,
            why,
        ))
    };
    let request = gitlab::plan_allowed_agents(cx.ci)?;
    // The planner already refuses a job without a token; this is where the token is taken.
    let Some(token) = cx.ci.job_token() else {
        return Err(not_asked(situational::ALLOWED_AGENTS_NO_JOB_TOKEN));
    };
    let base = cx.target.endpoint.as_ref().map(|e| e.base_path.as_str());
    let Some(path) = request.path_below(base.unwrap_or_default()) else {
        return Err(not_asked(situational::ALLOWED_AGENTS_NO_PATH));
    };
    Ok(AllowedAgentsAsk {
        path,
        header: request.header_name,
        token,
    })
}

/// `gitlab.allowed-agents`: GitLab's answer judged against the kubeconfig's agents.
pub fn allowed_agents(
    cx: &Context,
    path: &str,
    answer: &Result<Response, HttpFailure>,
) -> Findings {
    Findings::judged(match answer {
        Ok(r) => gitlab::judge_allowed_agents_for(
            r.status,
            &r.body,
            cx.agents,
            cx.ci,
            cx.agent_expectation,
            cx.agent_configs,
        ),
        Err(e) => vec![
            CheckResult::finding(CheckId::GitlabAllowedAgents, JOB, Reason::Unavailable)
                .with_evidence(format!("GET {path}: {e}")),
        ],
    })
}

/// Which GitLab agent each agent target uses, by target name: for the allowed-agents
/// cross-check, and to match GitLab's per-agent findings to their target afterwards.
pub fn agents_of(targets: &[Target]) -> Vec<(String, AgentIdentity)> {
    targets
        .iter()
        .filter_map(|t| {
            let agent = t.agent.as_ref()?.identity.clone()?;
            Some((t.name.clone(), agent))
        })
        .collect()
}

/// When an agent target's auth failed and GitLab's allowed-agents answer explains why, that
/// answer joins the agent target's results, and so becomes its root cause (spec §2: the gitlab
/// checks explain a gitlab-agent target's auth failures).
pub fn explain_agent_failures(targets: &mut [TargetReport], agents: &[(String, AgentIdentity)]) {
    let agent_of: Vec<(&str, String)> = agents
        .iter()
        .map(|(name, a)| (name.as_str(), format!("agent:{}", a.agent_id)))
        .collect();
    explain_by_subject(targets, &agent_of);
}

/// [`explain_agent_failures`] with each agent target's `agent:<id>` subject.
fn explain_by_subject(targets: &mut [TargetReport], agent_of: &[(&str, String)]) {
    let explanations: Vec<CheckResult> = targets
        .iter()
        .filter(|t| t.kind == TargetKind::Gitlab)
        .flat_map(|t| t.checks.iter())
        .filter(|c| c.id == CheckId::GitlabAllowedAgents && c.status.is_failure())
        .cloned()
        .collect();
    for t in targets
        .iter_mut()
        .filter(|t| t.kind == TargetKind::GitlabAgent)
    {
        let auth_failed = t
            .checks
            .iter()
            .any(|c| c.id == CheckId::AuthWhoami && c.status.is_failure());
        if !auth_failed {
            continue;
        }
        let agent = agent_of
            .iter()
            .find(|(name, _)| *name == t.name)
            .map(|(_, a)| a);
        // The job-wide findings (subject `job`) apply to every agent target; one about an agent
        // (subject `agent:<id>`: `agent-not-allowed`, or the rule that left it out) only to the
        // target using it; one about the agent KUBE_CONTEXT names, which is no target, to none.
        let relevant: Vec<CheckResult> = explanations
            .iter()
            .filter(|e| e.subject == crate::gitlab::JOB_SUBJECT || Some(&e.subject) == agent)
            .map(|e| {
                e.clone()
                    .with_evidence("found by the gitlab target's GET /api/v4/job/allowed_agents")
            })
            .collect();
        if !relevant.is_empty() {
            t.add(relevant);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str, kind: TargetKind, checks: Vec<CheckResult>) -> TargetReport {
        TargetReport::new(name, kind, "", checks)
    }

    #[test]
    fn gitlab_explains_only_the_agent_targets_it_is_about() {
        let refused = || CheckResult::finding(CheckId::AuthWhoami, "kas", Reason::AgentForbidden);
        let mut targets = vec![
            target(
                "gitlab",
                TargetKind::Gitlab,
                vec![CheckResult::finding(
                    CheckId::GitlabAllowedAgents,
                    "agent:5",
                    Reason::AgentNotAllowed,
                )],
            ),
            target("a5", TargetKind::GitlabAgent, vec![refused()]),
            target("a7", TargetKind::GitlabAgent, vec![refused()]),
            target("d", TargetKind::Direct, vec![refused()]),
        ];
        let agent_of = [("a5", "agent:5".to_string()), ("a7", "agent:7".to_string())];
        explain_by_subject(&mut targets, &agent_of);
        let rc = |i: usize| targets[i].root_cause.map(|r| (r.check, r.reason));
        assert_eq!(
            rc(1),
            Some((CheckId::GitlabAllowedAgents, Reason::AgentNotAllowed))
        );
        assert_eq!(rc(2), Some((CheckId::AuthWhoami, Reason::AgentForbidden)));
        assert_eq!(rc(3), Some((CheckId::AuthWhoami, Reason::AgentForbidden)));
    }
}

#[cfg(test)]
mod ask_tests {
    use super::*;
    use crate::checks::fixture;
    use crate::plan::Scheme;

    const SERVER: (&str, &str) = ("CI_SERVER_URL", "https://gitlab.example.test");

    #[test]
    fn the_job_token_is_asked_for_only_on_the_gitlab_servers_own_url() {
        let target = fixture::target(TargetKind::Gitlab, Scheme::Https);
        let expectation = fixture::expectation();
        let ask = |vars: &[(&str, &str)]| {
            let ci = fixture::ci(vars);
            let cx = fixture::context(&target, &ci, &expectation);
            allowed_agents_ask(&cx).map(|a| (a.path, a.header))
        };
        let api = ("CI_API_V4_URL", "https://gitlab.example.test/api/v4");
        let token = ("CI_JOB_TOKEN", "job-token-value");
        assert_eq!(
            ask(&[SERVER, api, token]).map_err(|r| r.reason),
            Ok(("/api/v4/job/allowed_agents".to_string(), "JOB-TOKEN"))
        );
        let no_token = ask(&[SERVER, api]).expect_err("no token, no request");
        assert_eq!(no_token.reason, Some(Reason::NotApplicable));
        let elsewhere = ("CI_API_V4_URL", "https://elsewhere.example.test/api/v4");
        let refused = ask(&[SERVER, elsewhere, token]).expect_err("another host");
        assert_eq!(refused.reason, Some(Reason::Unavailable));
    }

    #[test]
    fn a_failed_request_is_unavailable_with_what_failed() {
        let target = fixture::target(TargetKind::Gitlab, Scheme::Https);
        let (ci, expectation) = (fixture::ci(&[SERVER]), fixture::expectation());
        let cx = fixture::context(&target, &ci, &expectation);
        let failed = Err(HttpFailure::Failed("connection reset".into()));
        let found = allowed_agents(&cx, "/api/v4/job/allowed_agents", &failed);
        assert_eq!(found.results[0].reason, Some(Reason::Unavailable));
        assert_eq!(
            found.results[0].evidence,
            ["GET /api/v4/job/allowed_agents: connection reset"]
        );
    }
}
