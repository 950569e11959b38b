//! `http.version` and `http.health`: is it Kubernetes that answers, and is it ready?

use crate::catalogue::{CheckId, Reason};
use crate::model::{CheckResult, TargetKind};
use crate::net::http::{HttpFailure, Response};
use crate::secret::{QUOTE_CHARS, quote};

/// Who answered, from the response's own signature.
pub fn answered_by(r: &Response) -> &'static str {
    let server = r.header("server").unwrap_or_default().to_ascii_lowercase();
    let via = r.header("via").unwrap_or_default().to_ascii_lowercase();
    if server.contains("gitlab-kas") || via.contains("gitlab-kas") {
        "gitlab-agent-server"
    } else {
        "kube-apiserver"
    }
}

fn looks_like_proxy(r: &Response) -> bool {
    let server = r.header("server").unwrap_or_default().to_ascii_lowercase();
    r.status == 407
        || r.header("x-squid-error").is_some()
        || ["squid", "tinyproxy", "zscaler", "bluecoat"]
            .iter()
            .any(|p| server.contains(p))
}

/// Go's `net/http` answers a plain-HTTP request on its TLS port with this body (a 400): behind
/// a TLS-terminating load balancer that means the balancer forgot to re-encrypt, not that the
/// URL is wrong.
fn is_plain_http_to_tls(r: &Response) -> bool {
    String::from_utf8_lossy(&r.body).contains("Client sent an HTTP request to an HTTPS server")
}

fn is_status_object(r: &Response) -> bool {
    r.json()
        .is_some_and(|v| v.get("kind").and_then(|k| k.as_str()) == Some("Status"))
}

/// How much of a response body the evidence quotes, in characters.
const BODY_CHARS: usize = 200;

fn describe(r: &Response) -> Vec<String> {
    let mut lines = vec![format!("HTTP {} in {} ms", r.status, r.elapsed.as_millis())];
    for h in ["server", "via", "content-type", "location"] {
        if let Some(v) = r.header(h) {
            lines.push(format!("{h}: {}", quote(v, QUOTE_CHARS)));
        }
    }
    if !r.body.is_empty() {
        // Read well past the cut, so the cut falls after redaction.
        lines.push(format!(
            "body: {}",
            quote(&r.excerpt(4 * BODY_CHARS), BODY_CHARS)
        ));
    }
    lines
}

/// HTTP could not even start on the connection (the HTTP/2 handshake failed, say): the first
/// HTTP row of the target's kind carries it (`gitlab.server` for GitLab, else `http.version`).
pub fn start_failed(kind: TargetKind, subject: &str, failure: &HttpFailure) -> CheckResult {
    let evidence = format!("starting HTTP on the connection: {failure}");
    match kind {
        TargetKind::Gitlab => {
            CheckResult::finding(CheckId::GitlabServer, subject, Reason::Unreachable)
                .with_evidence(evidence)
        }
        _ => CheckResult::finding(CheckId::HttpVersion, subject, Reason::RequestFailed)
            .with_evidence(evidence),
    }
}

/// `gitlab.server`: GitLab's API answers `GET /api/v4/version` with JSON (200, or 401 when the
/// instance wants a token even for that).
pub fn gitlab_server(subject: &str, outcome: &Result<Response, HttpFailure>) -> CheckResult {
    let id = CheckId::GitlabServer;
    match outcome {
        Ok(r) if (r.status == 200 || r.status == 401) && r.json().is_some() => {
            CheckResult::pass(id, subject, format!("GitLab answered (HTTP {})", r.status))
        }
        Ok(r) => CheckResult::finding(id, subject, Reason::Unreachable)
            .with_summary("something other than the GitLab API answers at CI_SERVER_URL")
            .with_evidence(format!(
                "GET /api/v4/version: HTTP {}: {}",
                r.status,
                quote(&r.excerpt(4 * BODY_CHARS), BODY_CHARS)
            )),
        Err(e) => CheckResult::finding(id, subject, Reason::Unreachable)
            .with_evidence(format!("GET /api/v4/version: {e}")),
    }
}

pub fn version(
    subject: &str,
    outcome: &Result<Response, HttpFailure>,
    sent_credentials: bool,
) -> CheckResult {
    let id = CheckId::HttpVersion;
    let r = match outcome {
        Err(HttpFailure::Stalled) => {
            return CheckResult::finding(id, subject, Reason::Stalled).with_evidence(
                "GET /version: connection and TLS fine, no complete response before the timeout",
            );
        }
        Err(HttpFailure::Failed(e)) => {
            return CheckResult::finding(id, subject, Reason::RequestFailed)
                .with_evidence(format!("GET /version: {e}"));
        }
        Ok(r) => r,
    };
    let evidence = describe(r);
    if r.status == 200
        && let Some(v) = r.json()
        && let Some(git) = v.get("gitVersion").and_then(|g| g.as_str())
    {
        let platform = v.get("platform").and_then(|p| p.as_str()).unwrap_or("?");
        return CheckResult::pass(
            id,
            subject,
            format!("Kubernetes {git} ({}) answered", answered_by(r)),
        )
        .with_evidence(format!("gitVersion {git}, platform {platform}"))
        .with_evidence_lines(evidence);
    }
    if looks_like_proxy(r) {
        return CheckResult::finding(id, subject, Reason::ProxyError).with_evidence_lines(evidence);
    }
    if (r.status == 401 || r.status == 403) && is_status_object(r) {
        if sent_credentials {
            return CheckResult::pass(
                id,
                subject,
                format!(
                    "Kubernetes ({}) answered with HTTP {}",
                    answered_by(r),
                    r.status
                ),
            )
            .with_evidence_lines(evidence);
        }
        return CheckResult::finding(id, subject, Reason::UnauthorizedAnonymous)
            .with_evidence_lines(evidence);
    }
    let reason = match r.status {
        400 if is_plain_http_to_tls(r) => Reason::BackendNotTls,
        300..=399 => Reason::Redirect,
        500..=599 => Reason::ServerError,
        _ => Reason::NotKubernetes,
    };
    CheckResult::finding(id, subject, reason).with_evidence_lines(evidence)
}

pub fn health(subject: &str, outcome: &Result<Response, HttpFailure>) -> CheckResult {
    let id = CheckId::HttpHealth;
    match outcome {
        Err(HttpFailure::Stalled) => {
            CheckResult::pass(id, subject, "/readyz did not answer in time (not judged)")
        }
        Err(HttpFailure::Failed(e)) => {
            CheckResult::pass(id, subject, "/readyz not judged").with_evidence(e.clone())
        }
        Ok(r) if r.status == 200 => CheckResult::pass(id, subject, "ready (/readyz 200)"),
        Ok(r) if r.status == 401 || r.status == 403 => {
            CheckResult::finding(id, subject, Reason::Forbidden)
                .with_evidence(format!("/readyz: HTTP {}", r.status))
        }
        Ok(r) if r.status >= 500 => {
            let failing: Vec<String> = String::from_utf8_lossy(&r.body)
                .lines()
                .filter(|l| l.starts_with("[-]"))
                .map(str::to_string)
                .take(20)
                .collect();
            CheckResult::finding(id, subject, Reason::NotReady)
                .with_evidence(format!("/readyz: HTTP {}", r.status))
                .with_evidence_lines(failing)
        }
        Ok(r) => CheckResult::pass(
            id,
            subject,
            format!("/readyz answered HTTP {} (not judged)", r.status),
        ),
    }
}
