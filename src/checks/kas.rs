//! `gitlab.kas` and the agent server's answers to the authenticated probe: the GitLab agent
//! server's own fingerprints, judged from the two `GET /version` outcomes of an agent target.

use std::time::Duration;

use super::{Context, Findings};
use crate::catalogue::{CheckId, Reason};
use crate::gitlab;
use crate::model::{CheckResult, TargetKind};
use crate::net::http::{HttpFailure, Response};

/// The agent server's step: `gitlab.kas` from the anonymous `GET /version`, then, when the
/// credentials went out, the authenticated one's answer if it tells an agent failure apart (as
/// the target's `auth.whoami`, which ends the pipeline: the Kubernetes steps would only repeat
/// it). Credentials withheld (an `http://` URL): the "authenticated" request went out anonymous,
/// so its 401 says nothing about the token; `auth.whoami` reports the withholding.
pub fn agent_server(
    cx: &Context,
    anonymous: &Result<Response, HttpFailure>,
    version: &Result<Response, HttpFailure>,
) -> Findings {
    let kas = Findings::judged(vec![self::anonymous(anonymous)]);
    if !kas.go_on || !cx.credentials_sent {
        return kas;
    }
    let carries_job_token = cx.target.agent.as_ref().and_then(|a| a.carries_job_token);
    match authenticated(cx.authority, version, carries_job_token, cx.agent_timeout) {
        Some(result) => kas.then(Findings::last(vec![result])),
        None => kas,
    }
}

/// `http.version` through the agent server names a `--timeout` shorter than its tunnel wait.
pub fn version(cx: &Context, result: CheckResult) -> CheckResult {
    match cx.target.kind {
        TargetKind::GitlabAgent => gitlab::explain_short_agent_wait(result, cx.agent_timeout),
        _ => result,
    }
}

/// `gitlab.kas`: an anonymous request must get the agent server's 401 with
/// `Gitlab-Unauthorized: true`; anything else (or nothing) is not the agent server.
pub fn anonymous(outcome: &Result<Response, HttpFailure>) -> CheckResult {
    match outcome {
        Ok(r) => gitlab::classify_kas_anonymous(r.status, &r.headers, &r.body),
        Err(e) => {
            CheckResult::finding(CheckId::GitlabKas, gitlab::KAS_SUBJECT, Reason::Unreachable)
                .with_evidence(format!("anonymous GET /version: {e}"))
        }
    }
}

/// The authenticated request's answer when it tells an agent failure apart (agent not
/// connected, token rejected, agent not allowed…), as the target's `auth.whoami`; `None` when
/// the Kubernetes layers should judge it. `carries_job_token` (the target's
/// [`gitlab::AgentTarget`]) tells a token saved from another job; `waited` is how long the request was given (a stall is that).
pub fn authenticated(
    subject: &str,
    outcome: &Result<Response, HttpFailure>,
    carries_job_token: Option<bool>,
    waited: Duration,
) -> Option<CheckResult> {
    let mut result = match outcome {
        Ok(r) => gitlab::classify_kas_authenticated(r.status, &r.headers, &r.body, r.elapsed),
        Err(HttpFailure::Stalled) => gitlab::classify_kas_no_response(waited, "no answer"),
        Err(HttpFailure::Failed(e)) => gitlab::classify_kas_no_response(Duration::ZERO, e),
    }?;
    result.subject = subject.to_string();
    // A rejected token that is not this job's: the kubeconfig was saved from another job.
    if result.reason == Some(Reason::AgentUnauthorized) && carries_job_token == Some(false) {
        result = result.with_fix_detail(gitlab::STALE_TOKEN_DETAIL);
    }
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_agent_server_is_told_in_words() {
        let failed = Err(HttpFailure::Failed("connection reset by peer".into()));
        let r = anonymous(&failed);
        assert_eq!(r.reason, Some(Reason::Unreachable));
        assert_eq!(
            r.evidence,
            ["anonymous GET /version: connection reset by peer"]
        );
    }

    use crate::checks::fixture;
    use crate::plan::Scheme;
    use bytes::Bytes;

    fn answer(status: u16, headers: &[(&str, &str)]) -> Result<Response, HttpFailure> {
        Ok(Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Bytes::from_static(b"{}"),
            elapsed: Duration::ZERO,
            shared: false,
        })
    }

    #[test]
    fn the_agent_server_step_stops_where_it_explains() {
        let target = fixture::target(TargetKind::GitlabAgent, Scheme::Https);
        let (ci, expectation) = (fixture::ci(&[]), fixture::expectation());
        let mut cx = fixture::context(&target, &ci, &expectation);
        let kas = answer(401, &[("Gitlab-Unauthorized", "true")]);
        let not_kas = answer(404, &[]);
        // Not the agent server: gitlab.kas fails and nothing after it runs.
        let found = agent_server(&cx, &not_kas, &not_kas);
        assert!(!found.go_on);
        assert_eq!(found.results.len(), 1);
        assert_eq!(found.results[0].id, CheckId::GitlabKas);
        // The agent server, and an authenticated answer Kubernetes judges: the steps go on.
        let version = answer(200, &[]);
        let found = agent_server(&cx, &kas, &version);
        assert!(found.go_on, "{:?}", found.results);
        assert_eq!(found.results.len(), 1);
        // Credentials withheld: the authenticated answer is not judged at all.
        cx.credentials_sent = false;
        let found = agent_server(&cx, &kas, &kas);
        assert!(found.go_on);
        assert_eq!(found.results.len(), 1);
    }
}
