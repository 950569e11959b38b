//! Root cause and verdicts: pure functions over finished results. The layer order lives in
//! `Layer::rank`; the first `fail` or `error` in that order (ties broken by the order checks
//! ran) is the root cause, because everything after it is a consequence. Across targets, GitLab's
//! allowed-agents answer explains an agent target's auth failure (spec §2).

use crate::catalogue::{CheckId, Reason};
use crate::model::{CheckResult, RootCause, Status, TargetKind, TargetReport, Verdict};

pub fn root_cause(checks: &[CheckResult]) -> Option<RootCause> {
    checks
        .iter()
        .enumerate()
        .filter(|(_, c)| c.status.is_failure())
        .min_by_key(|(i, c)| (c.layer().rank(), *i))
        .map(|(_, c)| RootCause {
            check: c.id,
            reason: c.reason.unwrap_or(Reason::Internal),
        })
}

pub fn verdict(checks: &[CheckResult]) -> Verdict {
    let worst = checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Pass);
    match worst {
        Status::Fail | Status::Error => Verdict::Fail,
        Status::Warn => Verdict::Warn,
        Status::Pass | Status::Skip => Verdict::Pass,
    }
}

/// When an agent target's auth failed and GitLab's allowed-agents answer explains why, that
/// answer becomes the agent target's root cause (spec §2: the gitlab checks explain a
/// gitlab-agent target's auth failures).
pub fn explain_agent_failures(targets: &mut [TargetReport], agent_of: &[(String, String)]) {
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
            .map(|(_, a)| a.as_str());
        // The job-wide findings (subject `job`) apply to every agent target; one about an agent
        // (subject `agent:<id>`: `agent-not-allowed`, or the rule that left it out) only to the
        // target using it; one about the agent KUBE_CONTEXT names, which is no target, to none.
        let relevant: Vec<CheckResult> = explanations
            .iter()
            .filter(|e| {
                e.subject == crate::gitlab::JOB_SUBJECT || Some(e.subject.as_str()) == agent
            })
            .map(|e| {
                e.clone()
                    .with_evidence("found by the gitlab target's GET /api/v4/job/allowed_agents")
            })
            .collect();
        if !relevant.is_empty() {
            t.checks.extend(relevant);
            t.verdict = verdict(&t.checks);
            t.root_cause = root_cause(&t.checks);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_layer_failure_is_the_root_cause_whatever_the_order() {
        let checks = vec![
            CheckResult::finding(CheckId::AuthWhoami, "x", Reason::Unauthorized),
            CheckResult::pass(CheckId::DnsResolve, "x", "ok"),
            CheckResult::finding(CheckId::TlsTrust, "x", Reason::UnknownAuthority),
            CheckResult::finding(CheckId::TcpConnect, "a", Reason::Timeout)
                .with_status(Status::Warn),
        ];
        let rc = root_cause(&checks).expect("a failure");
        assert_eq!(
            (rc.check, rc.reason),
            (CheckId::TlsTrust, Reason::UnknownAuthority)
        );
        assert_eq!(verdict(&checks), Verdict::Fail);
        assert_eq!(verdict(&checks[1..2]), Verdict::Pass);
        assert_eq!(verdict(&checks[3..]), Verdict::Warn);
    }

    fn target(name: &str, kind: TargetKind, checks: Vec<CheckResult>) -> TargetReport {
        TargetReport {
            name: name.into(),
            kind,
            server: String::new(),
            verdict: verdict(&checks),
            root_cause: root_cause(&checks),
            checks,
        }
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
        let agent_of = vec![
            ("a5".to_string(), "agent:5".to_string()),
            ("a7".to_string(), "agent:7".to_string()),
        ];
        explain_agent_failures(&mut targets, &agent_of);
        let rc = |i: usize| targets[i].root_cause.map(|r| (r.check, r.reason));
        assert_eq!(
            rc(1),
            Some((CheckId::GitlabAllowedAgents, Reason::AgentNotAllowed))
        );
        assert_eq!(rc(2), Some((CheckId::AuthWhoami, Reason::AgentForbidden)));
        assert_eq!(rc(3), Some((CheckId::AuthWhoami, Reason::AgentForbidden)));
    }
}
