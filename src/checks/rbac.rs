//! `rbac.can-i`: one SelfSubjectAccessReview per requirement, as `kubectl auth can-i` does.

use crate::catalogue::{CheckId, Reason};
use crate::model::{CheckResult, Status};
use crate::net::http::{HttpFailure, Response};
use crate::plan::Requirement;
use crate::secret::{QUOTE_CHARS, quote};

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
                .with_evidence(format!("access review not answered: {e}"));
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
                    .with_evidence(format!("evaluationError: {}", quote(err, QUOTE_CHARS)));
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
        }
        // The impersonation filter runs before any authorization of the request itself: an
        // agent (`access_as: ci_job`/`impersonate`) whose own service account may not
        // impersonate gets this 403 for every request, so every deploy step fails.
        (403, _) if r.excerpt(2000).contains("cannot impersonate") => {
            CheckResult::finding(id, subject, Reason::ImpersonationDenied)
                .with_evidence(format!("HTTP 403: {}", r.excerpt(300)))
        }
        (code, _) => CheckResult::finding(id, subject, Reason::Unknown)
            .with_status(Status::Warn)
            .with_evidence(format!("HTTP {code}: {}", r.excerpt(200))),
    }
}

/// Gives every denied requirement one shared fix: the first denied check carries a Role and
/// RoleBinding granting all of them in its namespace, the others point to it.
pub fn attach_fixes(
    results: &mut [(Requirement, String, CheckResult)],
    username: &str,
    groups: &[String],
) {
    let mut namespaces: Vec<String> = Vec::new();
    for (_, ns, r) in results.iter() {
        if r.reason == Some(Reason::Denied) && !namespaces.contains(ns) {
            namespaces.push(ns.clone());
        }
    }
    for ns in namespaces {
        let denied: Vec<&Requirement> = results
            .iter()
            .filter(|(_, n, r)| *n == ns && r.reason == Some(Reason::Denied))
            .map(|(req, _, _)| req)
            .collect();
        let yaml = role_binding_yaml(&denied, &ns, &binding_subject(username, groups));
        let mut first: Option<String> = None;
        for (_, n, r) in results.iter_mut() {
            if *n != ns || r.reason != Some(Reason::Denied) {
                continue;
            }
            r.fix = Some(match &first {
                None => format!(
                    "Grant it with this Role and RoleBinding (`kubectl apply -f -`), which covers every denied action in {ns}:\n{yaml}"
                ),
                Some(key) => format!(
                    "Apply the Role and RoleBinding shown under `{key}`: it grants this too."
                ),
            });
            first.get_or_insert_with(|| r.key());
        }
    }
}

/// The RoleBinding subject for the identity the API server saw. Behind a GitLab agent with
/// `access_as: ci_job` the user is `gitlab:ci_job:<job id>`, new in every job, so the binding
/// goes to the project's group `gitlab:project:<id>` (every job of the project), as GitLab's
/// documentation does.
pub fn binding_subject(username: &str, groups: &[String]) -> String {
    let group = |name: &str| {
        format!("  - kind: Group\n    name: \"{name}\"\n    apiGroup: rbac.authorization.k8s.io")
    };
    if username.starts_with("gitlab:ci_job:")
        && let Some(project) = groups.iter().find(|g| g.starts_with("gitlab:project:"))
    {
        return group(project);
    }
    match username
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
    {
        Some((ns, sa)) => format!("  - kind: ServiceAccount\n    name: {sa}\n    namespace: {ns}"),
        None => {
            let name = if username.is_empty() {
                "<the job's user>"
            } else {
                username
            };
            format!("  - kind: User\n    name: \"{name}\"\n    apiGroup: rbac.authorization.k8s.io")
        }
    }
}

/// A Role granting `requirements` in `namespace`, and a RoleBinding giving it to `subject` (a
/// YAML list item, from [`binding_subject`]).
pub fn role_binding_yaml(requirements: &[&Requirement], namespace: &str, subject: &str) -> String {
    let mut rules: Vec<(String, String, Vec<String>)> = Vec::new();
    for req in requirements {
        let resource = match &req.subresource {
            Some(sub) => format!("{}/{}", req.resource, sub),
            None => req.resource.clone(),
        };
        match rules
            .iter_mut()
            .find(|(g, r, _)| *g == req.group && *r == resource)
        {
            Some((_, _, verbs)) if !verbs.contains(&req.verb) => verbs.push(req.verb.clone()),
            Some(_) => {}
            None => rules.push((req.group.clone(), resource, vec![req.verb.clone()])),
        }
    }
    let rules: String = rules
        .iter()
        .map(|(g, r, v)| {
            format!(
                "  - apiGroups: [\"{g}\"]\n    resources: [\"{r}\"]\n    verbs: [\"{}\"]\n",
                v.join("\", \"")
            )
        })
        .collect();
    let role = "kube-reach-deployer";
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {role}\n  namespace: {namespace}\nrules:\n{rules}---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {role}\n  namespace: {namespace}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: {role}\nsubjects:\n{subject}"
    )
}

#[cfg(test)]
mod impersonation_tests {
    use super::*;
    use std::time::Duration;

    fn answer(status: u16, message: &str) -> Result<Response, HttpFailure> {
        let body = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": message, "reason": "Forbidden", "code": status,
        });
        Ok(Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into(),
            elapsed: Duration::ZERO,
        })
    }

    #[test]
    fn a_403_for_impersonation_is_impersonation_denied() {
        let req = &crate::plan::parse_requirement("create deployments.apps").expect("valid")[0];
        let denied = answer(
            403,
            "users \"gitlab:ci_job:42\" is forbidden: User \"system:serviceaccount:gitlab-agent:gitlab-agent\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
        );
        let r = judge(req, "prod", &denied, "");
        assert_eq!(r.reason, Some(Reason::ImpersonationDenied));
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.evidence
                .join(" ")
                .contains("system:serviceaccount:gitlab-agent")
        );
        let other = answer(
            403,
            "selfsubjectaccessreviews.authorization.k8s.io is forbidden",
        );
        assert_eq!(judge(req, "prod", &other, "").reason, Some(Reason::Unknown));
    }
}
