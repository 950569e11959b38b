//! `auth.whoami`: who the API server thinks the job is (SelfSubjectReview, kubectl auth whoami).

use crate::catalogue::{CheckId, Reason};
use crate::model::CheckResult;
use crate::net::http::{HttpFailure, Response};
use crate::plan::Credentials;

pub const WHOAMI_PATHS: &[(&str, &str)] = &[
    (
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        "authentication.k8s.io/v1",
    ),
    (
        "/apis/authentication.k8s.io/v1beta1/selfsubjectreviews",
        "authentication.k8s.io/v1beta1",
    ),
];

pub fn whoami_body(api_version: &str) -> Vec<u8> {
    serde_json::json!({"apiVersion": api_version, "kind": "SelfSubjectReview"})
        .to_string()
        .into_bytes()
}

/// The identity the server reported.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub username: String,
    pub groups: Vec<String>,
}

/// The SelfSubjectReview answer judged: `None` when this API version is not served (404),
/// so the caller tries the next one.
pub fn judge(
    subject: &str,
    outcome: &Result<Response, HttpFailure>,
    credentials: &Credentials,
) -> Option<(CheckResult, Identity)> {
    let id = CheckId::AuthWhoami;
    let r = match outcome {
        Err(HttpFailure::Stalled) => {
            return unidentified(
                CheckResult::finding(id, subject, Reason::Timeout)
                    .with_evidence("SelfSubjectReview: no answer"),
            );
        }
        Err(HttpFailure::Failed(e)) => {
            return unidentified(
                CheckResult::finding(id, subject, Reason::RequestFailed)
                    .with_summary("the SelfSubjectReview request failed")
                    .with_evidence(e.clone()),
            );
        }
        Ok(r) => r,
    };
    match r.status {
        200 | 201 => {
            let info = r
                .json()
                .and_then(|v| v.pointer("/status/userInfo").cloned())
                .unwrap_or_default();
            let identity = Identity {
                username: info
                    .get("username")
                    .and_then(|u| u.as_str())
                    .unwrap_or_default()
                    .to_string(),
                groups: info
                    .get("groups")
                    .and_then(|g| g.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|g| g.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            let evidence = format!("groups: {}", identity.groups.join(", "));
            let result = if identity.username == "system:anonymous" {
                CheckResult::finding(id, subject, Reason::Anonymous)
                    .with_evidence(format!("credentials: {}", credentials.describe()))
            } else {
                CheckResult::pass(
                    id,
                    subject,
                    format!("authenticated as {}", identity.username),
                )
            };
            Some((result.with_evidence(evidence), identity))
        }
        404 => None,
        401 => {
            let sub = if credentials.is_empty() {
                "no credentials were sent"
            } else if credentials.client_identity.is_some() {
                "the client certificate was not accepted (not signed by the cluster's client CA, or expired)"
            } else {
                "the token was rejected: unknown, expired or revoked"
            };
            unidentified(
                CheckResult::finding(id, subject, Reason::Unauthorized)
                    .with_evidence(format!("HTTP 401: {sub}"))
                    .with_evidence(format!("credentials: {}", credentials.describe()))
                    .with_evidence(format!("body: {}", r.excerpt(200))),
            )
        }
        // A 403 naming system:anonymous (or with nothing sent): the credentials never arrived.
        403 if credentials.is_empty() || r.excerpt(400).contains("system:anonymous") => {
            unidentified(
                CheckResult::finding(id, subject, Reason::Anonymous)
                    .with_evidence(format!("HTTP 403: {}", r.excerpt(200)))
                    .with_evidence(format!("credentials: {}", credentials.describe())),
            )
        }
        // Authenticated (a 403 means the server knew who asked) but not allowed to ask.
        403 => Some((
            CheckResult::pass(
                id,
                subject,
                "authenticated (SelfSubjectReview forbidden, identity not shown)",
            )
            .with_evidence(r.excerpt(200)),
            Identity::default(),
        )),
        status => unidentified(
            CheckResult::finding(id, subject, Reason::Unknown)
                .with_status(crate::model::Status::Warn)
                .with_summary(format!("SelfSubjectReview answered HTTP {status}"))
                .with_evidence(r.excerpt(200)),
        ),
    }
}

/// A judgement that names no identity.
fn unidentified(result: CheckResult) -> Option<(CheckResult, Identity)> {
    Some((result, Identity::default()))
}

pub fn unsupported(subject: &str) -> CheckResult {
    CheckResult::finding(CheckId::AuthWhoami, subject, Reason::Unsupported)
        .with_evidence("SelfSubjectReview v1 and v1beta1 both answered 404; the access reviews below still tell whether the credentials work")
}

/// Credentials the target has but that were not sent: over `http://` (never, like kubectl), or
/// because the server's TLS did not verify (the catalogue's text, about
/// `insecure-skip-tls-verify`).
pub fn credentials_withheld(subject: &str, plain_http: bool) -> CheckResult {
    let r = CheckResult::finding(CheckId::AuthWhoami, subject, Reason::CredentialsWithheld);
    if !plain_http {
        return r;
    }
    let mut r = r.with_summary("credentials withheld: the server URL is http://");
    r.fix = Some(HTTP_WITHHELD_FIX.into());
    r
}

/// Not a TLS matter: the catalogue's fix would mislead for an `http://` URL.
const HTTP_WITHHELD_FIX: &str = "Use the server's https:// URL (see config.server): like kubectl, kube-reach sends no credentials over http://.";
