//! `auth.whoami`: who the API server thinks the job is (SelfSubjectReview, kubectl auth whoami).

use super::Context;
use crate::catalogue::{CheckId, Reason, situational};
use crate::model::{CheckResult, TargetKind};
use crate::net::http::{HttpFailure, Response};
use crate::plan::{Credentials, Scheme};
use crate::secret::{QUOTE_CHARS, quote};

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
    /// `userInfo.extra`, string values only (EKS: `arn`, `canonicalArn`, `sessionName`…).
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
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
                extra: info
                    .get("extra")
                    .and_then(|e| e.as_object())
                    .map(|o| {
                        o.iter()
                            .filter_map(|(k, v)| {
                                let values = v
                                    .as_array()?
                                    .iter()
                                    .filter_map(|s| s.as_str().map(str::to_string))
                                    .collect();
                                Some((k.clone(), values))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            let evidence = format!(
                "groups: {}",
                quote(&identity.groups.join(", "), 4 * QUOTE_CHARS)
            );
            let result = if identity.username == "system:anonymous" {
                CheckResult::finding(id, subject, Reason::Anonymous)
                    .with_evidence(format!("credentials: {}", credentials.describe()))
            } else {
                CheckResult::pass(
                    id,
                    subject,
                    format!(
                        "authenticated as {}",
                        quote(&identity.username, QUOTE_CHARS)
                    ),
                )
            };
            Some((result.with_evidence(evidence), identity))
        }
        404 => None,
        401 => {
            let sub = if credentials.is_empty() {
                "no credentials were sent"
            } else if credentials.client_identity().is_some() {
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
        // The kubeconfig's `as*` headers went with the credentials, and the user may not
        // impersonate that identity: kube-apiserver's impersonation filter refuses every request.
        403 if let Some(impersonation) = &credentials.impersonation
            && r.excerpt(2000).contains("cannot impersonate") =>
        {
            let named = crate::checks::config::impersonation_named(impersonation);
            // The engine adds the fix with the ClusterRole (`rbac::user_impersonation_fix`).
            unidentified(
                CheckResult::finding(id, subject, Reason::ImpersonationDenied)
                    .with_evidence(format!("the kubeconfig user impersonates {named}"))
                    .with_evidence(format!("HTTP 403: {}", r.excerpt(300))),
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

/// A 401 for a client certificate the server never asked for: the handshake had no
/// CertificateRequest, so the certificate was never sent and cannot be what was rejected.
/// Something terminates TLS in front of the API server (a load balancer, an ingress, a proxy)
/// and forwards the request without the client's identity. `requested` is what the handshake
/// recorded (`None`: unknown, the result stays as it is).
pub fn client_cert_not_requested(
    result: CheckResult,
    credentials: &Credentials,
    requested: Option<bool>,
) -> CheckResult {
    let sendable = credentials.sendable();
    let configured = sendable.is_some_and(|c| c.client_identity().is_some());
    if result.reason != Some(Reason::Unauthorized) || !configured || requested != Some(false) {
        return result;
    }
    // With a token beside the certificate, client-go sent the token: it is what was rejected,
    // so the token's reason and fix stand, with the unrequested certificate as evidence.
    if sendable.is_some_and(|c| c.bearer().is_some()) {
        return result.with_evidence(
            "the TLS handshake had no CertificateRequest: the client certificate was never sent, so the token alone was rejected",
        );
    }
    let evidence = result.evidence.clone();
    CheckResult::finding(result.id, result.subject, Reason::ClientCertNotRequested)
        .with_evidence(
            "the TLS handshake had no CertificateRequest: the client certificate was never sent",
        )
        .with_evidence_lines(evidence)
        .with_duration(result.duration)
}

/// A 401 for a token a cloud's credential plugin made: the cloud accepted the job's identity
/// (the plugin succeeded), but the cluster does not map that identity to a Kubernetes user.
/// The fix is the provider's mapping mechanism, not a new token.
pub fn cloud_identity_not_mapped(result: CheckResult, credentials: &Credentials) -> CheckResult {
    if result.reason != Some(Reason::Unauthorized) {
        return result;
    }
    let Some(command) = credentials.exec_plugin.as_deref() else {
        return result;
    };
    let Some((cloud, fix)) = cloud_mapping_fix(command) else {
        return result;
    };
    result
        .with_summary(format!(
            "401 for the {cloud} identity from `{command}`: the cluster does not map it to a Kubernetes user"
        ))
        .with_evidence(format!(
            "the token came from the {cloud} credential plugin `{command}`, which succeeded: the cloud knows the identity, the cluster does not"
        ))
        .with_fix_detail(fix)
}

/// The provider whose credential plugin `command` is, and how that provider maps a cloud
/// identity to a Kubernetes user.
fn cloud_mapping_fix(command: &str) -> Option<(&'static str, &'static str)> {
    let name = command.rsplit('/').next().unwrap_or(command);
    match name {
        "aws" | "aws-iam-authenticator" => Some((
            "AWS IAM",
            "Map the job's IAM role to a Kubernetes identity: an EKS access entry (`aws eks create-access-entry --cluster-name <cluster> --principal-arn <role arn>` plus `aws eks associate-access-policy`), or a `mapRoles` entry in the `aws-auth` ConfigMap in `kube-system`; the role ARN must be the role itself, not the assumed-role session ARN (`aws sts get-caller-identity` in the job shows it).",
        )),
        "gke-gcloud-auth-plugin" => Some((
            "Google Cloud IAM",
            "Give the job's Google identity access to the cluster: an IAM role on the project (`roles/container.developer`, or `roles/container.clusterViewer` plus Kubernetes RBAC for that identity's email), and check which identity the job uses (`gcloud auth list`): a workload identity federation principal needs its own binding.",
        )),
        "kubelogin" => Some((
            "Microsoft Entra ID",
            "Grant the job's Entra identity (service principal, managed identity or workload identity) access to the AKS cluster: an Azure RBAC role such as `Azure Kubernetes Service RBAC Writer` on the cluster, or, with Kubernetes RBAC, a RoleBinding for its object ID or an Entra group it is in; check the `--server-id`/login mode in the kubeconfig's kubelogin args too.",
        )),
        _ => None,
    }
}

/// Credentials the target has but that were not sent: over `http://` (never, like kubectl), or
/// because the server's TLS did not verify (the catalogue's text, about
/// `insecure-skip-tls-verify`).
pub fn credentials_withheld(subject: &str, plain_http: bool) -> CheckResult {
    let r = CheckResult::finding(CheckId::AuthWhoami, subject, Reason::CredentialsWithheld);
    if !plain_http {
        return r;
    }
    let mut r = r.with_summary(situational::CREDENTIALS_WITHHELD_HTTP_SUMMARY);
    r.fix = Some(situational::CREDENTIALS_WITHHELD_HTTP_FIX.into());
    r
}

/// `auth.whoami credentials-withheld` when the connection does not carry credentials the target
/// has: a token without verified TLS, or a client certificate the handshake never offered. RBAC's
/// skip rows name this warning: nothing failed, yet nothing can be judged.
pub fn withheld(cx: &Context) -> Option<CheckResult> {
    if judged_anonymously(cx) {
        return None;
    }
    let creds = &cx.target.credentials;
    let bearer_withheld = !cx.credentials_sent && creds.bearer().is_some();
    let cert_withheld = !cx.verified && creds.client_identity().is_some();
    if !(bearer_withheld || cert_withheld) {
        return None;
    }
    let endpoint = cx.target.endpoint.as_ref();
    let plain_http = endpoint.is_some_and(|e| e.scheme == Scheme::Http);
    Some(credentials_withheld(cx.authority, plain_http))
}

/// Over `http://` the kubeconfig's credentials are never sent (config.server warns so), yet the
/// listener may authenticate the job itself (`kubectl proxy`, a sidecar): its answer to the
/// anonymous request is what kubectl would get, so it is judged. The GitLab agent server
/// never authenticates for the job: there the withheld credential stays the finding.
fn judged_anonymously(cx: &Context) -> bool {
    let endpoint = cx.target.endpoint.as_ref();
    endpoint.is_some_and(|e| e.scheme == Scheme::Http) && cx.target.kind != TargetKind::GitlabAgent
}

/// The answer to the anonymous request over `http://`, judged as one that carried nothing; a
/// 401 then means the listener wants the credentials kube-reach (like kubectl) never sends
/// over http://, so its fix is the https:// URL, not a new token.
fn judge_anonymous(
    subject: &str,
    outcome: &Result<Response, HttpFailure>,
) -> Option<(CheckResult, Identity)> {
    let (result, identity) = judge(subject, outcome, &Credentials::default())?;
    let mut result = result.with_evidence(
        "the kubeconfig's credentials were withheld over http://: this is the listener's answer to an anonymous request",
    );
    if result.reason == Some(Reason::Unauthorized) {
        result = result.with_summary(situational::ANONYMOUS_OVER_HTTP_UNAUTHORIZED_SUMMARY);
        result.fix = Some(situational::CREDENTIALS_WITHHELD_HTTP_FIX.into());
    }
    Some((result, identity))
}

/// The identity RBAC is judged for: a server before 1.28 names nobody, and the in-cluster
/// token names its service account.
pub fn rbac_identity(cx: &Context, mut identity: Identity) -> Identity {
    if identity.username.is_empty() && cx.target.kind == TargetKind::InCluster {
        identity.username = cx.service_account.unwrap_or_default().to_string();
    }
    identity
}

/// The whoami answer judged with what the handshake and the credentials tell: a certificate the
/// server never asked for, a cloud identity the cluster does not map. `None`: this API version
/// is not served (404), ask the next one.
pub fn judge_answer(
    cx: &Context,
    outcome: &Result<Response, HttpFailure>,
    client_cert_requested: Option<bool>,
) -> Option<(CheckResult, Identity)> {
    if judged_anonymously(cx) {
        return judge_anonymous(cx.authority, outcome);
    }
    let creds = &cx.target.credentials;
    let (result, identity) = judge(cx.authority, outcome, creds)?;
    let result = client_cert_not_requested(result, creds, client_cert_requested);
    Some((cloud_identity_not_mapped(result, creds), identity))
}

#[cfg(test)]
mod cloud_identity_tests {
    use super::*;

    fn creds(plugin: Option<&str>) -> Credentials {
        let mut creds = Credentials::default();
        creds.set_token(crate::secret::Secret::new("t"));
        creds.exec_plugin = plugin.map(str::to_string);
        creds
    }

    /// A server may say any name: quoted redacted, then cut, never whole pages of it.
    #[test]
    fn a_hostile_username_and_groups_are_redacted_and_cut() {
        let token = "glpat-Zz9Yy8Xx7Ww6Vv5Uu4Tt";
        let name = format!("{} {token} {}", "u".repeat(295), "v".repeat(50_000));
        let groups: Vec<String> = (0..5_000).map(|i| format!("group-{i}")).collect();
        let body =
            serde_json::json!({"status": {"userInfo": {"username": name, "groups": groups}}});
        let answer = Ok(Response::of_json(200, &body));
        let (r, _) = judge("api:443", &answer, &creds(None)).expect("judged");
        let text = format!("{} {}", r.summary, r.evidence.join(" "));
        assert!(text.len() < 3_000, "{}", text.len());
        assert!(!text.contains("Zz9Yy8"), "{text}");
        assert_eq!(text.matches("more characters)").count(), 2, "{text}");
    }

    /// EKS's `extra` (which role, which session) is kept for the RBAC fix's subject.
    #[test]
    fn the_servers_extra_is_kept_in_the_identity() {
        let body = serde_json::json!({"status": {"userInfo": {
            "username": "ci-gitlab-4711",
            "groups": ["system:authenticated"],
            "extra": {
                "sessionName": ["gitlab-4711"],
                "arn": ["arn:aws:sts::111122223333:assumed-role/Deploy/gitlab-4711"],
                "odd": "not a list",
            },
        }}});
        let answer = Ok(Response::of_json(200, &body));
        let (_, identity) = judge("api:443", &answer, &creds(None)).expect("judged");
        assert_eq!(identity.extra["sessionName"], ["gitlab-4711"]);
        assert!(!identity.extra.contains_key("odd"));
        let binding = crate::checks::rbac::binding_of(&identity);
        assert_eq!(binding.subject.name, "Deploy-deployers");
    }

    #[test]
    fn each_clouds_plugin_gets_its_mapping_fix() {
        let unauthorized =
            || CheckResult::finding(CheckId::AuthWhoami, "api:443", Reason::Unauthorized);
        for (plugin, needle) in [
            ("aws", "aws-auth"),
            ("/usr/local/bin/aws-iam-authenticator", "access entry"),
            ("gke-gcloud-auth-plugin", "roles/container.developer"),
            ("kubelogin", "Entra"),
        ] {
            let r = cloud_identity_not_mapped(unauthorized(), &creds(Some(plugin)));
            let fix = r.fix.unwrap_or_default();
            assert!(fix.contains(needle), "{plugin}: {fix}");
            assert_eq!(r.reason, Some(Reason::Unauthorized));
        }
        let plain = cloud_identity_not_mapped(unauthorized(), &creds(None));
        assert_eq!(plain.fix, unauthorized().fix);
        let other = cloud_identity_not_mapped(unauthorized(), &creds(Some("my-plugin")));
        assert_eq!(other.fix, unauthorized().fix);
    }
}

#[cfg(test)]
mod client_cert_tests {
    use super::*;
    use crate::plan::ClientIdentity;
    use rustls_pki_types::PrivateKeyDer;

    fn with_cert() -> Credentials {
        let mut creds = Credentials::default();
        creds.set_certificate(ClientIdentity {
            subject: "CN=alice".into(),
            chain: Vec::new(),
            key: PrivateKeyDer::Pkcs8(Vec::new().into()),
        });
        creds
    }

    fn unauthorized() -> CheckResult {
        CheckResult::finding(CheckId::AuthWhoami, "api:6443", Reason::Unauthorized)
    }

    #[test]
    fn only_an_unrequested_configured_certificate_changes_the_reason() {
        let creds = with_cert();
        let r = client_cert_not_requested(unauthorized(), &creds, Some(false));
        assert_eq!(r.reason, Some(Reason::ClientCertNotRequested));
        for requested in [Some(true), None] {
            let r = client_cert_not_requested(unauthorized(), &creds, requested);
            assert_eq!(r.reason, Some(Reason::Unauthorized), "{requested:?}");
        }
        let mut token_only = Credentials::default();
        token_only.set_token(crate::secret::Secret::new("t"));
        let r = client_cert_not_requested(unauthorized(), &token_only, Some(false));
        assert_eq!(r.reason, Some(Reason::Unauthorized));
        // Certificate and token: the token was sent and rejected, so the token's reason stands.
        let mut both = with_cert();
        both.set_token(crate::secret::Secret::new("t0ken-beside-cert"));
        let r = client_cert_not_requested(unauthorized(), &both, Some(false));
        assert_eq!(r.reason, Some(Reason::Unauthorized));
        assert!(
            r.evidence
                .iter()
                .any(|e| e.contains("token alone was rejected"))
        );
        let mut unusable = with_cert();
        unusable.withhold();
        let r = client_cert_not_requested(unauthorized(), &unusable, Some(false));
        assert_eq!(r.reason, Some(Reason::Unauthorized));
    }
}
#[cfg(test)]
mod withheld_tests {
    use super::*;
    use crate::checks::fixture;
    use crate::secret::Secret;

    #[test]
    fn a_token_not_sent_is_withheld_and_an_http_url_gets_its_own_fix() {
        let (ci, expectation) = (fixture::ci(&[]), fixture::expectation());
        for (kind, scheme) in [
            (TargetKind::Direct, Scheme::Https),
            (TargetKind::GitlabAgent, Scheme::Http),
        ] {
            let mut target = fixture::target(kind, scheme);
            target.credentials.set_token(Secret::new("t"));
            let mut cx = fixture::context(&target, &ci, &expectation);
            assert!(withheld(&cx).is_none(), "sent over verified TLS");
            cx.credentials_sent = false;
            let r = withheld(&cx).expect("withheld");
            assert_eq!(r.reason, Some(Reason::CredentialsWithheld));
            let http_fix = Some(situational::CREDENTIALS_WITHHELD_HTTP_FIX.to_string());
            assert_eq!(r.fix == http_fix, scheme == Scheme::Http);
        }
        // A direct http:// target: not withheld as a finding, the listener's answer is judged.
        let mut direct_http = fixture::target(TargetKind::Direct, Scheme::Http);
        direct_http.credentials.set_token(Secret::new("t"));
        let mut cx = fixture::context(&direct_http, &ci, &expectation);
        cx.credentials_sent = false;
        assert!(withheld(&cx).is_none(), "judged by what answers");
        let nothing = fixture::target(TargetKind::Direct, Scheme::Https);
        let mut cx = fixture::context(&nothing, &ci, &expectation);
        cx.credentials_sent = false;
        assert!(withheld(&cx).is_none(), "nothing to withhold");
    }

    fn answer(status: u16, body: serde_json::Value) -> Result<Response, HttpFailure> {
        Ok(Response::of_json(status, &body))
    }

    /// Over http:// the answer to the anonymous request decides: the listener's own user
    /// passes; a 401 asks for the https:// URL, never for a new token.
    #[test]
    fn over_http_the_anonymous_answer_is_judged() {
        let (ci, expectation) = (fixture::ci(&[]), fixture::expectation());
        let mut target = fixture::target(TargetKind::Direct, Scheme::Http);
        target.credentials.set_token(Secret::new("t"));
        let mut cx = fixture::context(&target, &ci, &expectation);
        cx.credentials_sent = false;
        let user = serde_json::json!({"status": {"userInfo": {"username": "ci-proxy", "groups": ["system:authenticated"]}}});
        let (passed, identity) = judge_answer(&cx, &answer(201, user), None).expect("judged");
        assert_eq!(passed.status, crate::model::Status::Pass);
        assert_eq!(identity.username, "ci-proxy");
        assert!(
            passed
                .evidence
                .iter()
                .any(|e| e.contains("withheld over http://"))
        );
        let refused = serde_json::json!({"kind": "Status", "code": 401});
        let (failed, _) = judge_answer(&cx, &answer(401, refused), None).expect("judged");
        assert_eq!(failed.reason, Some(Reason::Unauthorized));
        let fix = failed.fix.unwrap_or_default();
        assert!(fix.contains("https://") && !fix.contains("Renew"), "{fix}");
    }

    #[test]
    fn only_the_in_cluster_target_is_named_by_its_service_account() {
        let (ci, expectation) = (fixture::ci(&[]), fixture::expectation());
        for (kind, expected) in [
            (TargetKind::InCluster, "system:serviceaccount:ci:runner"),
            (TargetKind::Direct, ""),
        ] {
            let target = fixture::target(kind, Scheme::Https);
            let cx = fixture::context(&target, &ci, &expectation);
            let named = rbac_identity(&cx, Identity::default());
            assert_eq!(named.username, expected, "{kind:?}");
        }
    }
}
