//! `rbac.can-i`: one SelfSubjectAccessReview per requirement, as `kubectl auth can-i` does.

use crate::catalogue::{CheckId, Reason};
use crate::model::{CheckResult, Status};
use crate::net::http::{HttpFailure, Response};
use crate::plan::Requirement;

pub const SSAR_PATH: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

pub fn ssar_body(req: &Requirement, namespace: &str) -> Vec<u8> {
    let mut attrs = serde_json::json!({
        "verb": req.verb,
        "group": req.group,
        "resource": req.resource,
        "namespace": namespace,
    });
    if let Some(sub) = &req.subresource {
        attrs["subresource"] = serde_json::Value::String(sub.clone());
    }
    serde_json::json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attrs},
    })
    .to_string()
    .into_bytes()
}

pub fn judge(
    req: &Requirement,
    namespace: &str,
    outcome: &Result<Response, HttpFailure>,
    username: &str,
) -> CheckResult {
    let id = CheckId::RbacCanI;
    let subject = req.subject(namespace);
    let r = match outcome {
        Err(e) => {
            return CheckResult::finding(id, subject, Reason::Unknown)
                .with_evidence(format!("access review not answered: {e:?}"));
        }
        Ok(r) => r,
    };
    let status = r.json().and_then(|v| v.get("status").cloned());
    match (r.status, status) {
        (200 | 201, Some(s)) if s.get("allowed").and_then(|a| a.as_bool()) == Some(true) => {
            CheckResult::pass(id, subject.clone(), format!("allowed: {subject}"))
        }
        (200 | 201, Some(s)) => {
            if let Some(err) = s
                .get("evaluationError")
                .and_then(|e| e.as_str())
                .filter(|e| !e.is_empty())
            {
                return CheckResult::finding(id, subject, Reason::Unknown)
                    .with_evidence(format!("evaluationError: {err}"));
            }
            let why = s
                .get("reason")
                .and_then(|e| e.as_str())
                .unwrap_or("no RBAC rule allows it");
            let who = if username.is_empty() {
                "the job's identity"
            } else {
                username
            };
            CheckResult::finding(id, subject.clone(), Reason::Denied)
                .with_summary(format!("{who} may not {subject}"))
                .with_evidence(format!("identity: {who}"))
                .with_evidence(format!("server: {why}"))
                .with_fix_detail(format!(
                    "Apply:\n{}",
                    role_binding_yaml(req, namespace, username)
                ))
        }
        (code, _) => CheckResult::finding(id, subject, Reason::Unknown)
            .with_status(Status::Warn)
            .with_evidence(format!("HTTP {code}: {}", r.excerpt(200))),
    }
}

/// A Role and RoleBinding that would grant exactly this requirement to `username`.
pub fn role_binding_yaml(req: &Requirement, namespace: &str, username: &str) -> String {
    let (kind, name, sa_ns) = match username
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
    {
        Some((ns, sa)) => ("ServiceAccount", sa.to_string(), Some(ns.to_string())),
        None if username.is_empty() => ("User", "<the job's user>".to_string(), None),
        None => ("User", username.to_string(), None),
    };
    let resource = match &req.subresource {
        Some(sub) => format!("{}/{}", req.resource, sub),
        None => req.resource.clone(),
    };
    let role = format!("kube-reach-{}-{}", req.verb, req.resource).replace(['*', '.'], "-");
    let subject = match sa_ns {
        Some(ns) => format!("  - kind: ServiceAccount\n    name: {name}\n    namespace: {ns}"),
        None => format!(
            "  - kind: {kind}\n    name: \"{name}\"\n    apiGroup: rbac.authorization.k8s.io"
        ),
    };
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {role}\n  namespace: {namespace}\nrules:\n  - apiGroups: [\"{}\"]\n    resources: [\"{resource}\"]\n    verbs: [\"{}\"]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {role}\n  namespace: {namespace}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: {role}\nsubjects:\n{subject}",
        req.group, req.verb
    )
}
