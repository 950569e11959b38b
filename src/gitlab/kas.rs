//! Reading the agent server's (KAS) answers at the k8s-proxy URL.
//!
//! Two probes: an anonymous request must come back `401` with `Gitlab-Unauthorized: true`,
//! which only the agent server sets (so a proxy or load balancer answering instead shows up);
//! then the authenticated request, whose KAS-made errors are Kubernetes `Status` objects with
//! the message `GitLab Agent Server: <what>[. Trace ID: <id>]`, and whose proxied answers carry
//! `Via: gRPC/1.0 gitlab-kas/…` and are the cluster's, passed on untouched.

use std::time::Duration;

use crate::catalogue::{CheckId, Reason};
use crate::gitlab::text::{clean_header, excerpt, header, k8s_status, printable, redact};
use crate::model::{CheckResult, Status};

/// The subject of `gitlab.kas` results.
pub const KAS_SUBJECT: &str = "agent server";

/// How long the agent server waits for a tunnel from the agent before failing the request.
pub const AGENT_TUNNEL_WAIT: Duration = Duration::from_secs(20);

/// The timeout the authenticated probe needs to see the agent server's own verdict rather than
/// a client-side timeout (the default per-operation timeout of 5 s cuts it short).
pub const AUTHENTICATED_PROBE_TIMEOUT: Duration = Duration::from_secs(25);

/// A failure this late is the agent server giving up on the tunnel.
const TUNNEL_GAVE_UP: Duration = Duration::from_secs(19);

const KAS_PREFIX: &str = "GitLab Agent Server:";

/// How much of a `Status` message the evidence keeps: the agent server's messages run to about
/// 220 characters, and the words that tell the cause come last (`… desc = Agent connection not
/// found. Is agent up to date and connected?. Trace ID: …`).
const MESSAGE_CHARS: usize = 400;

/// One HTTP answer, with what the classifiers look at.
struct Answer<'a> {
    status: u16,
    headers: &'a [(String, String)],
    body: &'a [u8],
    /// The `Status` object's message, when the body is one.
    message: Option<String>,
}

impl<'a> Answer<'a> {
    fn new(status: u16, headers: &'a [(String, String)], body: &'a [u8]) -> Self {
        let message = k8s_status(body).and_then(|s| s.message);
        Answer {
            status,
            headers,
            body,
            message,
        }
    }

    fn header(&self, name: &str) -> Option<&'a str> {
        header(self.headers, name)
    }

    fn gitlab_unauthorized(&self) -> bool {
        self.header("Gitlab-Unauthorized")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// The body says it comes from the agent server.
    fn kas_body(&self) -> bool {
        self.message
            .as_deref()
            .is_some_and(|m| m.starts_with(KAS_PREFIX))
    }

    /// Anything marking the answer as the agent server's own.
    fn is_kas(&self) -> bool {
        self.kas_body()
            || self.gitlab_unauthorized()
            || self
                .header("Server")
                .is_some_and(|s| s.starts_with("gitlab-kas"))
    }

    /// Proxied through the agent: the cluster's own answer.
    fn is_proxied(&self) -> bool {
        self.header("Via").is_some_and(|v| v.contains("gitlab-kas"))
    }

    /// The message, or the body when it is not a `Status`, for substring tests.
    fn text(&self) -> String {
        self.message
            .clone()
            .unwrap_or_else(|| String::from_utf8_lossy(self.body).into_owned())
    }

    fn message_has(&self, needle: &str) -> bool {
        self.message.as_deref().is_some_and(|m| m.contains(needle))
    }

    fn evidence(&self) -> Vec<String> {
        let mut lines = vec![format!("HTTP {}", self.status)];
        for name in ["Server", "Via", "Gitlab-Unauthorized", "Content-Type"] {
            if let Some(value) = self.header(name) {
                lines.push(format!("{name}: {}", clean_header(value)));
            }
        }
        if let Some(location) = self.header("Location") {
            let without_query = location.split(['?', '#']).next().unwrap_or_default();
            lines.push(format!("Location: {}", clean_header(without_query)));
        }
        match &self.message {
            Some(message) => lines.push(format!(
                "message: {}",
                printable(&redact(message), MESSAGE_CHARS)
            )),
            None => lines.push(format!("body: {}", excerpt(self.body))),
        }
        lines
    }
}

/// The anonymous probe: `pass` when the agent server itself answered (401 with
/// `Gitlab-Unauthorized: true`), otherwise `not-agent-server` (or `wrong-path`) with evidence.
pub fn classify_kas_anonymous(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> CheckResult {
    let answer = Answer::new(status, headers, body);
    if status == 401 && answer.gitlab_unauthorized() {
        let server = answer
            .header("Server")
            .map(clean_header)
            .unwrap_or_else(|| "(no Server header)".into());
        return CheckResult::pass(
            CheckId::GitlabKas,
            KAS_SUBJECT,
            "the GitLab agent server answered (401 with `Gitlab-Unauthorized: true`)",
        )
        .with_evidence(format!("Server: {server}"));
    }
    if let Some(result) = wrong_path(&answer) {
        return result;
    }
    let result = CheckResult::finding(CheckId::GitlabKas, KAS_SUBJECT, Reason::NotAgentServer)
        .with_evidence_lines(answer.evidence());
    if answer.kas_body() {
        return result.with_status(Status::Warn).with_summary(
            "the agent server's own error came back, but without its `Gitlab-Unauthorized: true` header: something in front of it rewrites its answers",
        );
    }
    result.with_summary(not_kas_summary(&answer))
}

/// `400 Bad request: URL does not start with expected prefix`: the agent server, wrong path.
fn wrong_path(answer: &Answer) -> Option<CheckResult> {
    (answer.status == 400 && answer.message_has("URL does not start with expected prefix")).then(
        || {
            CheckResult::finding(CheckId::GitlabKas, KAS_SUBJECT, Reason::WrongPath)
                .with_evidence_lines(answer.evidence())
        },
    )
}

fn not_kas_summary(answer: &Answer) -> String {
    let who = answer
        .header("Server")
        .map(|s| format!(" ({})", clean_header(s)))
        .unwrap_or_default();
    match answer.status {
        401 => format!(
            "a 401 without `Gitlab-Unauthorized: true`: something other than the agent server answers{who}"
        ),
        200..=299 if answer.text().contains("gitVersion") => {
            format!(
                "a Kubernetes API server answered without credentials: this URL does not go through the agent server{who}"
            )
        }
        200..=299 => format!(
            "answered without asking for credentials: not the agent server, which always does{who}"
        ),
        300..=399 => format!("redirects instead of answering (a login page or a proxy){who}"),
        404 => format!(
            "nothing at this path: the k8s-proxy path is wrong, or the proxy in front does not route it to the agent server{who}"
        ),
        500..=599 => format!(
            "HTTP {} from whatever is in front of the agent server: it may be down or not routed{who}",
            answer.status
        ),
        other => format!("HTTP {other} instead of the agent server's 401{who}"),
    }
}

/// The authenticated request through the agent server. `Some` when the agent server itself
/// refused or failed it (`auth.whoami` `agent-unauthorized` / `agent-forbidden` /
/// `agent-not-connected` / `agent-server-error`, or `gitlab.kas` `wrong-path`); `None` when the
/// answer is the cluster's, to judge as any Kubernetes answer. Subjects of `auth.whoami`
/// results are left empty for the engine to set.
pub fn classify_kas_authenticated(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    elapsed: Duration,
) -> Option<CheckResult> {
    let answer = Answer::new(status, headers, body);
    if answer.is_proxied() && !answer.kas_body() {
        return None;
    }
    let text = answer.text();
    if text.contains("Agent connection not found") || text.contains("DeadlineExceeded") {
        return Some(not_connected(&answer, elapsed));
    }
    match status {
        400 => wrong_path(&answer),
        401 if answer.is_kas() => Some(unauthorized(&answer)),
        403 if answer.message_has("agentId is not allowed") => Some(forbidden(&answer)),
        403 | 404 if answer.message_has("CI job token") => Some(unauthorized(&answer)),
        500 if answer.message_has("Failed to get allowed agents") => Some(server_error(&answer)),
        502..=504 if answer.is_kas() => Some(not_connected(&answer, elapsed)),
        500..=599 if elapsed >= TUNNEL_GAVE_UP => Some(not_connected(&answer, elapsed)),
        500..=599 if answer.is_kas() => Some(server_error(&answer)),
        _ => None,
    }
}

/// An authenticated request that got no HTTP answer at all. `Some(agent-not-connected)` when
/// it failed after the agent server's 20 s tunnel wait (or said why); `None` otherwise, for
/// the engine's usual timeout or connection error.
pub fn classify_kas_no_response(elapsed: Duration, error: &str) -> Option<CheckResult> {
    let said_so = error.contains("Agent connection not found");
    (said_so || elapsed >= TUNNEL_GAVE_UP).then(|| {
        CheckResult::finding(CheckId::AuthWhoami, "", Reason::AgentNotConnected)
            .with_evidence(format!(
                "no answer; the request failed after {:.1} s: {}",
                elapsed.as_secs_f64(),
                clean_header(error)
            ))
            .with_evidence(waited_line())
    })
}

/// A request through the agent server that stalled under a `--timeout` shorter than the agent
/// server's own tunnel wait: the agent may just not be connected, which only a longer wait
/// tells. Other results pass through unchanged.
pub fn explain_short_agent_wait(result: CheckResult, waited: Duration) -> CheckResult {
    if result.reason != Some(Reason::Stalled) || waited >= AGENT_TUNNEL_WAIT {
        return result;
    }
    result
        .with_evidence(format!(
            "--timeout {:.1} s is shorter than the {} s the agent server waits for a tunnel from the agent",
            waited.as_secs_f64(),
            AGENT_TUNNEL_WAIT.as_secs()
        ))
        .with_fix_detail(format!(
            "Rerun without --timeout (requests through the agent server then wait {} s) to tell an agent that is not connected from a stalled path.",
            AUTHENTICATED_PROBE_TIMEOUT.as_secs()
        ))
}

fn waited_line() -> String {
    format!(
        "the agent server waits {} s for a tunnel from the agent in the cluster, then gives up",
        AGENT_TUNNEL_WAIT.as_secs()
    )
}

fn kubectl_line(answer: &Answer) -> Option<String> {
    let message = redact(answer.message.as_deref()?);
    Some(match answer.status {
        401 => format!("kubectl prints: error: You must be logged in to the server ({message})"),
        403 => format!("kubectl prints: Error from server (Forbidden): {message}"),
        _ => return None,
    })
}

fn with_answer(result: CheckResult, answer: &Answer) -> CheckResult {
    let kubectl = kubectl_line(answer);
    result
        .with_evidence_lines(answer.evidence())
        .with_evidence_lines(kubectl)
}

fn unauthorized(answer: &Answer) -> CheckResult {
    let result = CheckResult::finding(CheckId::AuthWhoami, "", Reason::AgentUnauthorized);
    let result = if answer.message_has("no valid credentials provided") {
        result
            .with_summary("the agent server received no credentials: the Authorization header was lost on the way")
            .with_fix_detail("A proxy between the job and the agent server strips the `Authorization` header; let it through, or bypass the proxy with NO_PROXY.")
    } else if answer.message_has("Authorization header") {
        result
            .with_summary("the agent server could not read the token: it must be `ci:<agent id>:<job token>`")
            .with_fix_detail("Set the kubeconfig user's token to exactly `ci:<agent id>:$CI_JOB_TOKEN` (or `pat:<agent id>:<token>`), sent as one `Authorization: Bearer` header.")
    } else if answer.status == 404 {
        result
            .with_summary("GitLab accepted the credential, but it is not a CI job token (404 agents for CI job token)")
            .with_fix_detail("A `ci:` agent token must carry `$CI_JOB_TOKEN`; a personal access token belongs in a `pat:<agent id>:<token>` token.")
    } else if answer.status == 403 {
        result.with_summary("GitLab refused the CI job token (403)")
    } else {
        result
    };
    with_answer(result, answer)
}

fn forbidden(answer: &Answer) -> CheckResult {
    with_answer(
        CheckResult::finding(CheckId::AuthWhoami, "", Reason::AgentForbidden),
        answer,
    )
}

fn server_error(answer: &Answer) -> CheckResult {
    with_answer(
        CheckResult::finding(CheckId::AuthWhoami, "", Reason::AgentServerError),
        answer,
    )
}

fn not_connected(answer: &Answer, elapsed: Duration) -> CheckResult {
    CheckResult::finding(CheckId::AuthWhoami, "", Reason::AgentNotConnected)
        .with_evidence_lines(answer.evidence())
        .with_evidence(format!("answered after {:.1} s", elapsed.as_secs_f64()))
        .with_evidence(waited_line())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitlab::ci::tests::CANARY;

    const KAS_SERVER: &str = "gitlab-kas/v16.5.0/8daa08cc";

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// A Kubernetes `Status` as the agent server writes it.
    fn kas_status(code: u16, reason: &str, msg: &str) -> Vec<u8> {
        serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("GitLab Agent Server: {msg}. Trace ID: 4bf92f3577b34da6a3ce929d0e0e4736"),
            "reason": reason, "code": code,
        })
        .to_string()
        .into_bytes()
    }

    fn kas_headers(unauthorized: bool) -> Vec<(String, String)> {
        let mut h = headers(&[("Server", KAS_SERVER), ("Content-Type", "application/json")]);
        if unauthorized {
            h.push(("Gitlab-Unauthorized".into(), "true".into()));
        }
        h
    }

    fn all_text(r: &CheckResult) -> String {
        format!(
            "{} {} {:?} {:?} {:?}",
            r.subject, r.summary, r.evidence, r.fix, r.why
        )
    }

    #[test]
    fn gitlab_kas_pass_on_401_with_gitlab_unauthorized() {
        let body = kas_status(
            401,
            "Unauthorized",
            "Unauthorized: no valid credentials provided",
        );
        let r = classify_kas_anonymous(401, &kas_headers(true), &body);
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert_eq!(r.id, CheckId::GitlabKas);
        assert!(r.evidence.iter().any(|e| e.contains(KAS_SERVER)));
        let lowercase = headers(&[("gitlab-unauthorized", "True")]);
        assert_eq!(
            classify_kas_anonymous(401, &lowercase, b"").status,
            Status::Pass
        );
    }

    #[test]
    fn gitlab_kas_not_agent_server_on_401_without_the_header() {
        let h = headers(&[
            ("Server", "nginx/1.25.3"),
            ("WWW-Authenticate", "Basic realm=\"corp\""),
        ]);
        let r = classify_kas_anonymous(
            401,
            &h,
            b"<html><body>401 Authorization Required</body></html>",
        );
        assert_eq!(
            (r.status, r.reason),
            (Status::Fail, Some(Reason::NotAgentServer))
        );
        assert!(r.summary.contains("Gitlab-Unauthorized"), "{}", r.summary);
        assert!(r.evidence.contains(&"HTTP 401".to_string()));
        assert!(r.evidence.iter().any(|e| e == "Server: nginx/1.25.3"));
        assert!(
            r.evidence
                .iter()
                .any(|e| e.starts_with("body: <html><body>401"))
        );
    }

    #[test]
    fn gitlab_kas_not_agent_server_names_what_answered() {
        let k8s = br#"{"major":"1","minor":"30","gitVersion":"v1.30.2"}"#;
        let r = classify_kas_anonymous(200, &[], k8s);
        assert_eq!(r.reason, Some(Reason::NotAgentServer));
        assert!(r.summary.contains("Kubernetes API server"), "{}", r.summary);
        let redirect = headers(&[("Location", "https://sso.example.com/login?state=secret")]);
        let r = classify_kas_anonymous(302, &redirect, b"");
        assert!(
            r.evidence
                .iter()
                .any(|e| e == "Location: https://sso.example.com/login")
        );
        let r = classify_kas_anonymous(503, &headers(&[("Server", "awselb/2.0")]), b"");
        assert!(
            r.summary.contains("503") && r.summary.contains("awselb"),
            "{}",
            r.summary
        );
        // The agent server's body without its header: something rewrites the answer.
        let body = kas_status(
            401,
            "Unauthorized",
            "Unauthorized: no valid credentials provided",
        );
        assert_eq!(classify_kas_anonymous(401, &[], &body).status, Status::Warn);
    }

    #[test]
    fn gitlab_kas_wrong_path() {
        let body = kas_status(
            400,
            "BadRequest",
            "Bad request: URL does not start with expected prefix",
        );
        let r = classify_kas_anonymous(400, &kas_headers(false), &body);
        assert_eq!(r.reason, Some(Reason::WrongPath));
    }

    #[test]
    fn auth_whoami_agent_unauthorized() {
        let body = kas_status(
            401,
            "Unauthorized",
            "Unauthorized: CI job token: HTTP status code: 401 for path /api/v4/job/allowed_agents",
        );
        let r =
            classify_kas_authenticated(401, &kas_headers(true), &body, Duration::from_millis(80))
                .expect("KAS");
        assert_eq!(
            (r.id, r.reason),
            (CheckId::AuthWhoami, Some(Reason::AgentUnauthorized))
        );
        assert!(r.evidence.iter().any(|e| e.starts_with(
            "kubectl prints: error: You must be logged in to the server (GitLab Agent Server: Unauthorized: CI job token"
        )));
        let no_creds = kas_status(
            401,
            "Unauthorized",
            "Unauthorized: no valid credentials provided",
        );
        let r = classify_kas_authenticated(401, &kas_headers(true), &no_creds, Duration::ZERO)
            .expect("KAS");
        assert!(r.summary.contains("no credentials"), "{}", r.summary);
        let forbidden_token = kas_status(
            403,
            "Forbidden",
            "Forbidden: CI job token: HTTP status code: 403",
        );
        let r =
            classify_kas_authenticated(403, &kas_headers(false), &forbidden_token, Duration::ZERO)
                .expect("KAS");
        assert_eq!(r.reason, Some(Reason::AgentUnauthorized));
        let not_found = kas_status(
            404,
            "NotFound",
            "Not found: agents for CI job token: HTTP status code: 404",
        );
        let r = classify_kas_authenticated(404, &kas_headers(false), &not_found, Duration::ZERO)
            .expect("KAS");
        assert!(r.summary.contains("not a CI job token"), "{}", r.summary);
    }

    #[test]
    fn auth_whoami_agent_forbidden() {
        let body = kas_status(403, "Forbidden", "Forbidden: agentId is not allowed");
        let r =
            classify_kas_authenticated(403, &kas_headers(false), &body, Duration::from_millis(50))
                .expect("KAS");
        assert_eq!(r.reason, Some(Reason::AgentForbidden));
        assert!(r.evidence.iter().any(|e| e.contains("Error from server (Forbidden): GitLab Agent Server: Forbidden: agentId is not allowed. Trace ID")));
    }

    #[test]
    fn auth_whoami_agent_server_error() {
        let body = kas_status(
            500,
            "InternalError",
            "Failed to get allowed agents for CI job token: Get \"https://gitlab.example.com/api/v4/job/allowed_agents\": dial tcp 10.0.0.3:443: connect: connection refused",
        );
        let r =
            classify_kas_authenticated(500, &kas_headers(false), &body, Duration::from_millis(30))
                .expect("KAS");
        assert_eq!(r.reason, Some(Reason::AgentServerError));
    }

    #[test]
    fn auth_whoami_agent_not_connected_says_so_not_timeout() {
        let grpc = kas_status(
            502,
            "InternalError",
            "HTTP->gRPC: failed to read gRPC response: rpc error: code = DeadlineExceeded desc = Agent connection not found. Is agent up to date and connected?",
        );
        let r =
            classify_kas_authenticated(502, &kas_headers(false), &grpc, Duration::from_secs(20))
                .expect("KAS");
        assert_eq!(r.reason, Some(Reason::AgentNotConnected));
        assert!(
            r.summary.contains("not connected") && !r.summary.contains("timeout"),
            "{}",
            r.summary
        );
        // The words that tell the cause come last in the message: the evidence keeps them.
        assert!(
            r.evidence.iter().any(|e| e.contains(
                "Agent connection not found. Is agent up to date and connected?. Trace ID: 4bf92f3577b34da6a3ce929d0e0e4736"
            )),
            "{:?}",
            r.evidence
        );
        // A bare 502 from the agent server, fast.
        let r =
            classify_kas_authenticated(502, &kas_headers(false), b"", Duration::from_millis(10))
                .expect("KAS");
        assert_eq!(r.reason, Some(Reason::AgentNotConnected));
        // A front proxy's 504 after the agent server's 20 s wait.
        let r = classify_kas_authenticated(
            504,
            &headers(&[("Server", "nginx")]),
            b"<html>504</html>",
            Duration::from_millis(20_050),
        );
        assert_eq!(r.and_then(|r| r.reason), Some(Reason::AgentNotConnected));
        // No answer at all after ~20 s.
        let r = classify_kas_no_response(
            Duration::from_millis(20_010),
            "connection closed before message completed",
        );
        assert_eq!(r.and_then(|r| r.reason), Some(Reason::AgentNotConnected));
        assert!(classify_kas_no_response(Duration::from_secs(5), "operation timed out").is_none());
    }

    #[test]
    fn cluster_answers_are_passed_on() {
        let via = headers(&[
            ("Via", "gRPC/1.0 gitlab-kas/v16.5.0/8daa08cc"),
            ("Content-Type", "application/json"),
        ]);
        let k8s_forbidden = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods is forbidden: User \"gitlab:ci_job:4242\" cannot list resource \"pods\"","reason":"Forbidden","code":403}"#;
        assert!(classify_kas_authenticated(403, &via, k8s_forbidden, Duration::ZERO).is_none());
        assert!(classify_kas_authenticated(201, &via, b"{}", Duration::ZERO).is_none());
        assert!(
            classify_kas_authenticated(200, &[], br#"{"gitVersion":"v1.30.2"}"#, Duration::ZERO)
                .is_none()
        );
    }

    #[test]
    fn echoed_credentials_never_reach_the_result() {
        let echo = kas_status(
            401,
            "Unauthorized",
            &format!("Unauthorized: CI job token: bad token ci:137:{CANARY}"),
        );
        let r = classify_kas_authenticated(401, &kas_headers(true), &echo, Duration::ZERO)
            .expect("KAS");
        assert!(!all_text(&r).contains(CANARY), "{r:?}");
        let html = format!("<p>Authorization: Bearer ci:137:{CANARY}</p>");
        let r = classify_kas_anonymous(401, &[], html.as_bytes());
        assert!(!all_text(&r).contains(CANARY), "{r:?}");
    }
}
