//! `rbac.can-i`: one SelfSubjectAccessReview per requirement, as `kubectl auth can-i` does; and
//! the crate's one writer of RBAC YAML: the Role and RoleBinding a denial needs, bound to a
//! subject that lasts for the identity the API server reported ([`binding_for`]), and the
//! ClusterRole an agent that lost `impersonate` needs, both serialized from the Kubernetes
//! types so that no name can break the YAML.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_saphyr::FlowSeq;

use crate::catalogue::{CheckId, Reason};
use crate::checks::auth::Identity;
use crate::model::{CheckResult, Status};
use crate::net::http::{HttpFailure, Response};
use crate::plan::Requirement;
use crate::secret::{QUOTE_CHARS, quote};

pub const SSAR_PATH: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

/// The review `kubectl auth can-i` sends, from the Kubernetes types: the field names and the
/// group/version/kind are the compiler's to check, not a string's.
pub fn ssar_body(req: &Requirement, namespace: &str) -> Vec<u8> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(req.verb.clone()),
                group: Some(req.group.clone()),
                resource: Some(req.resource.clone()),
                subresource: req.subresource.clone(),
                namespace: Some(namespace.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    // Strings only: serializing cannot fail (an empty body would be the server's 400).
    serde_json::to_vec(&review).unwrap_or_default()
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
            let message = r
                .json()
                .and_then(|v| v.get("message")?.as_str().map(str::to_string));
            impersonation_denied(subject, message.as_deref().unwrap_or_default())
                .with_evidence(format!("HTTP 403: {}", r.excerpt(300)))
        }
        (code, _) => CheckResult::finding(id, subject, Reason::Unknown)
            .with_status(Status::Warn)
            .with_evidence(format!("HTTP {code}: {}", r.excerpt(200))),
    }
}

/// `impersonation-denied`, with the ClusterRole and ClusterRoleBinding that give the agent's
/// service account (the user the 403 names: `User "system:serviceaccount:<ns>:<name>" cannot
/// impersonate …`) the `impersonate` verb back.
fn impersonation_denied(subject: String, message: &str) -> CheckResult {
    let result = CheckResult::finding(CheckId::RbacCanI, subject, Reason::ImpersonationDenied);
    let Some(agent) = impersonating_user(message) else {
        return result;
    };
    let binding = binding_for(agent, &[]);
    match impersonation_yaml(&binding.subject) {
        Ok(yaml) => CheckResult {
            fix: Some(format!(
                "Give the agent's service account ({agent}) the `impersonate` verb back with this ClusterRole and ClusterRoleBinding (`kubectl apply -f -`; the agent's Helm chart makes an equivalent with `rbac.create=true`), or set `access_as` to `agent: {{}}` in the agent's configuration:\n{yaml}"
            )),
            ..result
        },
        Err(_) => result,
    }
}

/// `auth.whoami impersonation-denied` (judged by `auth::judge`) with its fix: the kubeconfig
/// user (the base identity the 403 names: `User "<base>" cannot impersonate …`) may not act
/// as its `as`/`as-groups`/`as-uid`/`as-user-extra`. The fix carries a ClusterRole and
/// ClusterRoleBinding granting exactly what kube-apiserver checks for those headers, when
/// every name in it is fit to print. Any other result is returned as it is.
pub fn user_impersonation_fix(
    result: CheckResult,
    outcome: &Result<Response, HttpFailure>,
    impersonation: Option<&crate::targets::Impersonation>,
) -> CheckResult {
    let denied =
        (result.id, result.reason) == (CheckId::AuthWhoami, Some(Reason::ImpersonationDenied));
    let (Some(impersonation), Ok(response), true) = (impersonation, outcome, denied) else {
        return result;
    };
    let message = (response.json())
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_default();
    let Some(base) = impersonating_user(&message) else {
        return result;
    };
    let printable = |name: &str| !crate::secret::looks_like_credential(name);
    let names = (impersonation.user.iter())
        .chain(&impersonation.uid)
        .chain(&impersonation.groups)
        .all(|n| printable(n))
        && printable(base);
    let who = crate::secret::quoted(base, crate::secret::NAME_CHARS);
    let result = result.with_evidence(format!("authenticated as {who}"));
    let binding = binding_for(base, &[]);
    match user_impersonation_yaml(&binding.subject, impersonation) {
        Ok(yaml) if names => CheckResult {
            fix: Some(format!(
                "Grant {who} the `impersonate` verb on what the kubeconfig names, with this ClusterRole and ClusterRoleBinding (`kubectl apply -f -`), or drop `as`/`as-groups`/`as-uid`/`as-user-extra` from the kubeconfig user:\n{yaml}"
            )),
            ..result
        },
        _ => result,
    }
}

/// What kube-apiserver checks before it acts as the kubeconfig's `as*` identity, for `base`
/// cluster-wide: `impersonate` on `users` (that name), `groups` (those names), `uids` (that
/// uid) and `userextras/<key>` for each extra key (any value: values are never printed).
pub fn user_impersonation_yaml(
    base: &Subject,
    impersonation: &crate::targets::Impersonation,
) -> Result<String, String> {
    const NAME: &str = "kube-reach-impersonate";
    let rule = |group: &str, resource: String, names: Vec<String>| PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(vec![resource]),
        resource_names: (!names.is_empty()).then_some(names),
        verbs: vec!["impersonate".into()],
        ..PolicyRule::default()
    };
    // Only the names the kubeconfig uses: never `impersonate` on every user (groups alone,
    // without a user, kube-apiserver refuses whatever the rights).
    let mut rules: Vec<PolicyRule> = (impersonation.user.iter())
        .map(|user| rule("", "users".into(), vec![user.clone()]))
        .collect();
    if !impersonation.groups.is_empty() {
        rules.push(rule("", "groups".into(), impersonation.groups.clone()));
    }
    if let Some(uid) = &impersonation.uid {
        rules.push(rule(
            "authentication.k8s.io",
            "uids".into(),
            vec![uid.clone()],
        ));
    }
    for (key, _) in &impersonation.extra {
        let resource = format!("userextras/{key}");
        rules.push(rule("authentication.k8s.io", resource, Vec::new()));
    }
    let metadata = ObjectMeta {
        name: Some(NAME.into()),
        ..ObjectMeta::default()
    };
    let binding = ClusterRoleBinding {
        metadata: metadata.clone(),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: NAME.into(),
        },
        subjects: Some(vec![base.clone()]),
    };
    yaml_documents(&Written::new("ClusterRole", &metadata, &rules), &binding)
}

/// The user a `cannot impersonate` 403 names: `… forbidden: User "<name>" cannot impersonate …`.
fn impersonating_user(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once("User \"")?;
    let end = rest.find('"')?;
    let user = &rest[..end];
    rest[end..]
        .contains("cannot impersonate")
        .then_some(user)
        .filter(|u| !u.is_empty())
}

/// The `extra` keys the agent server sends for `access_as: ci_job` (KAS `impCiJobExtra`); each
/// is its own `userextras/<key>` resource to RBAC, which has no wildcard for them.
const CI_JOB_EXTRAS: &[&str] = &[
    "agent.gitlab.com/id",
    "agent.gitlab.com/config_project_id",
    "agent.gitlab.com/project_id",
    "agent.gitlab.com/ci_pipeline_id",
    "agent.gitlab.com/ci_job_id",
    "agent.gitlab.com/username",
    "agent.gitlab.com/environment_slug",
    "agent.gitlab.com/environment_tier",
];

/// What kube-apiserver checks before it acts as another identity: `impersonate` on `users`,
/// `groups` and `serviceaccounts`, on `uids`, and on `userextras/<key>` for each extra the
/// agent sends, for the agent's service account cluster-wide.
pub fn impersonation_yaml(agent: &Subject) -> Result<String, String> {
    const NAME: &str = "gitlab-agent-impersonate";
    let impersonate = |group: &str, resources: &[String]| PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(resources.to_vec()),
        verbs: vec!["impersonate".into()],
        ..PolicyRule::default()
    };
    let metadata = ObjectMeta {
        name: Some(NAME.into()),
        ..ObjectMeta::default()
    };
    let role = ClusterRole {
        metadata: metadata.clone(),
        rules: Some(vec![
            impersonate(
                "",
                &["users".into(), "groups".into(), "serviceaccounts".into()],
            ),
            impersonate(
                "authentication.k8s.io",
                &CI_JOB_EXTRAS
                    .iter()
                    .map(|key| format!("userextras/{key}"))
                    .chain(["uids".to_string()])
                    .collect::<Vec<_>>(),
            ),
        ]),
        ..ClusterRole::default()
    };
    let binding = ClusterRoleBinding {
        metadata,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: NAME.into(),
        },
        subjects: Some(vec![agent.clone()]),
    };
    let rules = role.rules.as_deref().unwrap_or_default();
    yaml_documents(
        &Written::new("ClusterRole", &role.metadata, rules),
        &binding,
    )
}

/// Gives every denied requirement one shared fix: the first denied check carries a Role and
/// RoleBinding granting all of them in its namespace, the others point to it.
pub fn attach_fixes(results: &mut [(Requirement, String, CheckResult)], identity: &Identity) {
    let mut namespaces: Vec<String> = Vec::new();
    for (_, ns, r) in results.iter() {
        if r.reason == Some(Reason::Denied) && !namespaces.contains(ns) {
            namespaces.push(ns.clone());
        }
    }
    let binding = binding_of(identity);
    for ns in namespaces {
        let denied: Vec<&Requirement> = results
            .iter()
            .filter(|(_, n, r)| *n == ns && r.reason == Some(Reason::Denied))
            .map(|(req, _, _)| req)
            .collect();
        let grant = match role_binding_yaml(&denied, &ns, &binding.subject) {
            Ok(yaml) => format!(
                "Grant it with this Role and RoleBinding (`kubectl apply -f -`), which covers every denied action in {ns}{}:\n{yaml}",
                binding
                    .note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ),
            Err(why) => format!(
                "Bind a Role granting every denied action in {ns} to {}: {why}",
                binding.describe()
            ),
        };
        let mut first: Option<String> = None;
        for (_, n, r) in results.iter_mut() {
            if *n != ns || r.reason != Some(Reason::Denied) {
                continue;
            }
            r.fix = Some(match &first {
                None => grant.clone(),
                Some(key) => format!(
                    "Apply the Role and RoleBinding shown under `{key}`: it grants this too."
                ),
            });
            first.get_or_insert_with(|| r.key());
        }
    }
}

/// Whom a RoleBinding names for the identity the API server saw, and why, when that is not
/// the user it named.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub subject: Subject,
    /// Said beside the YAML when the subject is not the username itself.
    pub note: Option<String>,
}

impl Binding {
    fn describe(&self) -> String {
        format!("{} {}", self.subject.kind, self.subject.name)
    }
}

/// [`binding_for`] the identity `auth.whoami` reported, whose `extra` also tells an EKS user
/// named after its session (`{{SessionName}}` in aws-auth) from a stable one.
pub fn binding_of(identity: &Identity) -> Binding {
    eks_templated_session_binding(identity)
        .unwrap_or_else(|| binding_for(&identity.username, &identity.groups))
}

/// The subject that grants the identity (`username`, `groups` as `auth.whoami` saw them) what
/// it lacks, and keeps granting it next time:
/// - behind a GitLab agent with `access_as: ci_job` the user `gitlab:ci_job:<job id>` is new in
///   every job: bind the project's group `gitlab:project:<id>` (every job of the project), as
///   GitLab's documentation does;
/// - an EKS IAM role arrives as `arn:aws:sts::<account>:assumed-role/<role>/<session>`, whose
///   session part changes with every login: bind the group the role is mapped to (its access
///   entry's `kubernetes-groups`, or `groups:` in aws-auth), or one to map it to;
/// - `system:serviceaccount:<ns>:<name>` is a ServiceAccount subject.
pub fn binding_for(username: &str, groups: &[String]) -> Binding {
    if let Some(binding) = gitlab_ci_job_binding(username, groups) {
        return binding;
    }
    if let Some(binding) = eks_assumed_role_binding(username, groups) {
        return binding;
    }
    if let Some((namespace, name)) = username
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
    {
        return Binding {
            subject: Subject {
                kind: "ServiceAccount".into(),
                name: name.into(),
                namespace: Some(namespace.into()),
                api_group: None,
            },
            note: None,
        };
    }
    match username {
        "" => Binding {
            subject: rbac_subject("User", "<the job's user>"),
            note: Some("the server did not say who the job is (it has no SelfSubjectReview): put the user kubectl authenticates as in `subjects`".into()),
        },
        user => Binding {
            subject: rbac_subject("User", user),
            note: None,
        },
    }
}

fn gitlab_ci_job_binding(username: &str, groups: &[String]) -> Option<Binding> {
    username.strip_prefix("gitlab:ci_job:")?;
    let project = groups.iter().find(|g| g.starts_with("gitlab:project:"))?;
    let narrower: Vec<&str> = groups
        .iter()
        .filter(|g| g.starts_with("gitlab:project_env"))
        .map(String::as_str)
        .collect();
    let narrower = match narrower.as_slice() {
        [] => String::new(),
        list => format!(
            "; to allow this environment only, bind {} instead",
            list.join(" or ")
        ),
    };
    Some(Binding {
        subject: rbac_subject("Group", project),
        note: Some(format!(
            "bound to the group {project}, every CI job of the project: the user gitlab:ci_job:<job id> is new in every job{narrower}; the agent's own service account also needs the `impersonate` verb"
        )),
    })
}

/// `arn:<partition>:sts::<account>:assumed-role/<role>/<session>` (partition `aws`, `aws-cn`,
/// `aws-us-gov`…): the partition, the account and the role.
fn eks_assumed_role(username: &str) -> Option<(&str, &str, &str)> {
    let rest = username.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(":sts::")?;
    if !partition.starts_with("aws") || partition.contains(':') {
        return None;
    }
    let (account, rest) = rest.split_once(":assumed-role/")?;
    let (role, _session) = rest.split_once('/')?;
    (!role.is_empty()).then_some((partition, account, role))
}

fn eks_assumed_role_binding(username: &str, groups: &[String]) -> Option<Binding> {
    let session = eks_assumed_role(username)?;
    let why = format!(
        "the user {username} is EKS's name for one session of the IAM role {}",
        session.2
    );
    Some(eks_session_binding(username, session, &why, groups))
}

/// An EKS user named after its session by the aws-auth template `{{SessionName}}` (a
/// `mapRoles` entry's `username: ci-{{SessionName}}`): the server's `extra` says which role
/// (`arn`, the assumed-role ARN) and which session (`sessionName`), and the username carries
/// that session. It changes with every login just the same.
fn eks_templated_session_binding(identity: &Identity) -> Option<Binding> {
    let first = |key: &str| {
        identity
            .extra
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
    };
    let username = identity.username.as_str();
    let session = first("sessionName").filter(|s| !s.is_empty() && username.contains(*s))?;
    let assumed = eks_assumed_role(first("arn")?)?;
    if username.starts_with("arn:") {
        return None;
    }
    let why = format!(
        "the user {username} is made from the session name {session} of the IAM role {} (`{{{{SessionName}}}}` in the `username:` of its aws-auth mapRoles entry) and changes with every login",
        assumed.2
    );
    Some(eks_session_binding(
        username,
        assumed,
        &why,
        &identity.groups,
    ))
}

fn eks_session_binding(
    username: &str,
    (partition, account, role): (&str, &str, &str),
    why: &str,
    groups: &[String],
) -> Binding {
    let principal = format!("arn:{partition}:iam::{account}:role/{role}");
    // A double-quoted YAML scalar (JSON's string syntax is YAML's): a role name may hold `,`,
    // which would split an unquoted flow list, or start with `@`, which YAML reserves.
    let quoted = |group: &str| serde_json::to_string(group).unwrap_or_default();
    let mapped = groups.iter().find(|g| !g.starts_with("system:"));
    let (group, note) = match mapped {
        Some(group) => (
            group.clone(),
            format!(
                "bound to the group {group} that the IAM role {role} is mapped to, not to the user {username}, which names one session and changes with every login"
            ),
        ),
        None => {
            // IAM role names may hold `+=,.@`: kept to letters, digits, `.`, `_` and `-`, the
            // proposed group reads the same in YAML, RBAC and the CLI's list arguments (where
            // `,` separates values).
            let safe: String = role
                .chars()
                .map(|c| match c {
                    'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
                    _ => '-',
                })
                .collect();
            let group = format!("{safe}-deployers");
            (
                group.clone(),
                format!(
                    "{why}, so the binding names the group {group}: map the role to it with `aws eks update-access-entry --cluster-name <cluster> --principal-arn {principal} --kubernetes-groups {group}` (or `groups: [{}]` in its aws-auth mapRoles entry); an EKS access policy is the other way (`aws eks associate-access-policy --cluster-name <cluster> --principal-arn {principal} --policy-arn arn:{partition}:eks::aws:cluster-access-policy/AmazonEKSEditPolicy --access-scope type=namespace,namespaces=<namespace>`)",
                    quoted(&group)
                ),
            )
        }
    };
    Binding {
        subject: rbac_subject("Group", &group),
        note: Some(note),
    }
}

/// A User or Group subject (both in the RBAC API group).
fn rbac_subject(kind: &str, name: &str) -> Subject {
    Subject {
        kind: kind.into(),
        name: name.into(),
        api_group: Some("rbac.authorization.k8s.io".into()),
        namespace: None,
    }
}

/// The name of the Role and RoleBinding kube-reach proposes.
const ROLE_NAME: &str = "kube-reach-deployer";

/// A Role granting `requirements` in `namespace` and a RoleBinding giving it to `subject`, as
/// two YAML documents. Written by the YAML serializer from the Kubernetes types, so a user-
/// or server-derived name (`gitlab:project:1`, an ARN, a name with `: ` or `#`) is quoted
/// wherever YAML needs it.
pub fn role_binding_yaml(
    requirements: &[&Requirement],
    namespace: &str,
    subject: &Subject,
) -> Result<String, String> {
    let mut rules: Vec<PolicyRule> = Vec::new();
    for req in requirements {
        let resource = match &req.subresource {
            Some(sub) => format!("{}/{}", req.resource, sub),
            None => req.resource.clone(),
        };
        let same = |rule: &&mut PolicyRule| {
            rule.api_groups.as_deref() == Some(std::slice::from_ref(&req.group))
                && rule.resources.as_deref() == Some(std::slice::from_ref(&resource))
        };
        match rules.iter_mut().find(same) {
            Some(rule) if !rule.verbs.contains(&req.verb) => rule.verbs.push(req.verb.clone()),
            Some(_) => {}
            None => rules.push(PolicyRule {
                api_groups: Some(vec![req.group.clone()]),
                resources: Some(vec![resource]),
                verbs: vec![req.verb.clone()],
                ..PolicyRule::default()
            }),
        }
    }
    let metadata = ObjectMeta {
        name: Some(ROLE_NAME.into()),
        namespace: Some(namespace.into()),
        ..ObjectMeta::default()
    };
    let role = Role {
        metadata: metadata.clone(),
        rules: Some(rules),
    };
    let binding = RoleBinding {
        metadata,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: ROLE_NAME.into(),
        },
        subjects: Some(vec![subject.clone()]),
    };
    let rules = role.rules.as_deref().unwrap_or_default();
    yaml_documents(&Written::new("Role", &role.metadata, rules), &binding)
}

/// A Role or ClusterRole as it is written: the Kubernetes object, with each rule's lists in
/// flow style (`verbs: [get, list, watch]`), which keeps a fix a third as long in the job log.
/// Built from the k8s-openapi object, so it holds nothing the typed object does not.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Written<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: &'a ObjectMeta,
    rules: Vec<WrittenRule<'a>>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct WrittenRule<'a> {
    api_groups: FlowSeq<&'a [String]>,
    resources: FlowSeq<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_names: Option<FlowSeq<&'a [String]>>,
    verbs: FlowSeq<&'a [String]>,
}

impl<'a> Written<'a> {
    fn new(kind: &'static str, metadata: &'a ObjectMeta, rules: &'a [PolicyRule]) -> Self {
        Written {
            api_version: "rbac.authorization.k8s.io/v1",
            kind,
            metadata,
            rules: rules
                .iter()
                .map(|r| WrittenRule {
                    api_groups: FlowSeq(r.api_groups.as_deref().unwrap_or_default()),
                    resources: FlowSeq(r.resources.as_deref().unwrap_or_default()),
                    resource_names: r.resource_names.as_deref().map(FlowSeq),
                    verbs: FlowSeq(&r.verbs),
                })
                .collect(),
        }
    }
}

/// Two objects as one YAML stream (`---` between them).
fn yaml_documents(
    first: &impl serde::Serialize,
    second: &impl serde::Serialize,
) -> Result<String, String> {
    let problem = |e: serde_saphyr::SerializeError| format!("the YAML could not be written: {e}");
    let first = serde_saphyr::to_string(first).map_err(problem)?;
    let second = serde_saphyr::to_string(second).map_err(problem)?;
    Ok(format!("{first}---\n{second}"))
}

#[cfg(test)]
mod impersonation_tests {
    use super::*;

    fn answer(status: u16, message: &str) -> Result<Response, HttpFailure> {
        let body = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": message, "reason": "Forbidden", "code": status,
        });
        Ok(Response::of_json(status, &body))
    }

    /// The typed review is what `kubectl auth can-i` sends (and what the hand-built JSON was).
    #[test]
    fn the_review_body_is_kubectls() {
        let req = &crate::plan::parse_requirement("get pods/log -n ci").expect("valid")[0];
        let body: serde_json::Value = serde_json::from_slice(&ssar_body(req, "ci")).expect("JSON");
        assert_eq!(
            body,
            serde_json::json!({
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "metadata": {},
                "spec": {"resourceAttributes": {
                    "verb": "get", "group": "", "resource": "pods",
                    "subresource": "log", "namespace": "ci",
                }},
            })
        );
        let all = &crate::plan::parse_requirement("list deployments.apps -A").expect("valid")[0];
        let body: serde_json::Value = serde_json::from_slice(&ssar_body(all, "")).expect("JSON");
        let attributes = &body["spec"]["resourceAttributes"];
        assert_eq!(attributes["namespace"], "");
        assert_eq!(attributes["group"], "apps");
        assert!(attributes.get("subresource").is_none(), "{attributes}");
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
        // The fix gives the service account the 403 names its verb back, as YAML that parses.
        let fix = r.fix.clone().unwrap_or_default();
        let (_, yaml) = fix.split_once(":\n").expect("YAML in the fix");
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(yaml).expect("YAML");
        let binding: ClusterRoleBinding =
            serde_json::from_value(docs[1].clone()).expect("a ClusterRoleBinding");
        let sa = &binding.subjects.unwrap_or_default()[0];
        assert_eq!(
            (sa.kind.as_str(), sa.name.as_str(), sa.namespace.as_deref()),
            ("ServiceAccount", "gitlab-agent", Some("gitlab-agent"))
        );
        let role: ClusterRole = serde_json::from_value(docs[0].clone()).expect("a ClusterRole");
        assert!(
            role.rules
                .unwrap_or_default()
                .iter()
                .all(|r| r.verbs == ["impersonate"])
        );
        let other = answer(
            403,
            "selfsubjectaccessreviews.authorization.k8s.io is forbidden",
        );
        assert_eq!(judge(req, "prod", &other, "").reason, Some(Reason::Unknown));
    }
}

#[cfg(test)]
mod fix_tests {
    use super::*;

    fn subject_of(username: &str, groups: &[&str]) -> Binding {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        binding_for(username, &groups)
    }

    #[test]
    fn every_name_comes_back_from_the_yaml_exactly() {
        let req = &crate::plan::parse_requirement("create deployments.apps").expect("valid")[0];
        for name in [
            "gitlab:project:150",
            "a: b",
            "#x",
            "- y",
            "yes",
            "null",
            "~",
            "'q'",
            "\"dq\"",
            "line\nbreak",
            " lead",
            "@at",
            "*star",
            "&anchor",
            "{x}",
            "[y]",
            "x # y",
            "1e3",
            "0o17",
            ">fold",
            "ümlaut",
        ] {
            let yaml =
                role_binding_yaml(&[req], "prod", &rbac_subject("User", name)).expect("written");
            let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&yaml)
                .unwrap_or_else(|e| panic!("{name:?}: not YAML ({e}):\n{yaml}"));
            let binding: RoleBinding =
                serde_json::from_value(docs[1].clone()).expect("a RoleBinding");
            assert_eq!(binding.subjects.unwrap_or_default()[0].name, name, "{yaml}");
            let role: Role = serde_json::from_value(docs[0].clone()).expect("a Role");
            assert_eq!(
                role.rules.unwrap_or_default()[0].api_groups,
                Some(vec!["apps".into()])
            );
        }
    }

    /// The rules' lists are written in flow style, where `,`, `[`, `]`, `{`, `}` also need
    /// quoting: every verb, resource and group comes back exactly.
    #[test]
    fn every_rule_value_comes_back_from_the_flow_lists() {
        for value in [
            "a,b", "[x]", "{y}", "a: b", "#c", "", "*", "x]y", "'q", "\"d", "-", "?", "yes",
        ] {
            let req = Requirement {
                verb: value.into(),
                resource: value.into(),
                subresource: None,
                group: value.into(),
                namespace: Default::default(),
            };
            let yaml =
                role_binding_yaml(&[&req], "prod", &rbac_subject("User", "u")).expect("written");
            let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&yaml)
                .unwrap_or_else(|e| panic!("{value:?}: not YAML ({e}):\n{yaml}"));
            let role: Role = serde_json::from_value(docs[0].clone()).expect("a Role");
            let rule = &role.rules.unwrap_or_default()[0];
            assert_eq!(rule.verbs, [value], "{yaml}");
            assert_eq!(
                rule.resources.as_deref(),
                Some(&[value.to_string()][..]),
                "{yaml}"
            );
            assert_eq!(
                rule.api_groups.as_deref(),
                Some(&[value.to_string()][..]),
                "{yaml}"
            );
        }
    }

    #[test]
    fn a_ci_job_is_bound_through_its_project_group() {
        let b = subject_of("gitlab:ci_job:3", &["gitlab:ci_job", "gitlab:project:150"]);
        assert_eq!(
            (b.subject.kind.as_str(), b.subject.name.as_str()),
            ("Group", "gitlab:project:150")
        );
        assert!(b.note.unwrap_or_default().contains("new in every job"));
    }

    /// The aws-auth snippet in the note (`groups: [...]`) is YAML a person pastes: an IAM role
    /// name, and so the group named after it, may hold `,` `@` `=` `+`; each comes back exactly.
    #[test]
    fn the_aws_auth_groups_snippet_is_yaml_that_reads_back_the_group() {
        let groups: Vec<&str> = Vec::new();
        for username in [
            "arn:aws:sts::111122223333:assumed-role/Deploy,Prod/ci-9",
            "arn:aws:sts::111122223333:assumed-role/@ci+deploy=x/ci-9",
            "arn:aws:sts::111122223333:assumed-role/x.y=z/ci-9",
        ] {
            let b = subject_of(username, &groups);
            let note = b.note.unwrap_or_default();
            let start = note.find("groups: [").expect("a groups snippet");
            let snippet = &note[start..];
            let snippet = &snippet[..snippet.find('`').expect("the snippet's closing backtick")];
            let parsed: std::collections::BTreeMap<String, Vec<String>> =
                serde_saphyr::from_str(snippet)
                    .unwrap_or_else(|e| panic!("{snippet:?}: not YAML ({e})"));
            assert_eq!(
                parsed["groups"],
                std::slice::from_ref(&b.subject.name),
                "{snippet}"
            );
            // The same group in the RBAC subject, the snippet and the CLI's list argument.
            assert!(
                note.contains(&format!("--kubernetes-groups {}`", b.subject.name)),
                "{note}"
            );
            assert!(!b.subject.name.contains([',', '@', '=', '+']), "{note}");
        }
    }

    /// aws-auth's `username: ci-{{SessionName}}` names the user after the session: the server's
    /// `extra` (`arn`, `sessionName`) tells, and the binding names a group, never that user.
    #[test]
    fn an_eks_user_templated_from_its_session_name_is_never_the_subject() {
        let extra = |arn: &str, session: &str| {
            std::collections::BTreeMap::from([
                ("arn".to_string(), vec![arn.to_string()]),
                ("sessionName".to_string(), vec![session.to_string()]),
            ])
        };
        let arn = "arn:aws:sts::111122223333:assumed-role/Deploy/gitlab-4711";
        let identity = Identity {
            username: "ci-gitlab-4711".into(),
            groups: vec!["system:authenticated".into()],
            extra: extra(arn, "gitlab-4711"),
        };
        let b = binding_of(&identity);
        assert_eq!(
            (b.subject.kind.as_str(), b.subject.name.as_str()),
            ("Group", "Deploy-deployers")
        );
        let note = b.note.unwrap_or_default();
        assert!(note.contains("{{SessionName}}"), "{note}");
        assert!(
            note.contains("arn:aws:iam::111122223333:role/Deploy"),
            "{note}"
        );
        // A fixed aws-auth username (no session in it) is stable: bound as the user.
        let fixed = Identity {
            username: "ci-deployer".into(),
            ..identity.clone()
        };
        assert_eq!(binding_of(&fixed).subject.name, "ci-deployer");
        // No extra (not EKS, or an older server): the user.
        let plain = Identity {
            extra: Default::default(),
            ..identity
        };
        assert_eq!(binding_of(&plain).subject.kind, "User");
    }

    /// China and GovCloud sessions (`arn:aws-cn:sts::`, `arn:aws-us-gov:sts::`) change with
    /// every login too: the group, never the session user, and the role ARN in its partition.
    #[test]
    fn an_eks_session_in_any_partition_is_never_the_subject() {
        for partition in ["aws-cn", "aws-us-gov"] {
            let arn = format!("arn:{partition}:sts::111122223333:assumed-role/Deploy/ci-9");
            let b = subject_of(&arn, &["system:authenticated"]);
            assert_eq!(
                (b.subject.kind.as_str(), b.subject.name.as_str()),
                ("Group", "Deploy-deployers"),
                "{partition}"
            );
            let note = b.note.unwrap_or_default();
            assert!(
                note.contains(&format!("arn:{partition}:iam::111122223333:role/Deploy")),
                "{note}"
            );
            assert!(
                note.contains(&format!("arn:{partition}:eks::aws:cluster-access-policy/")),
                "{note}"
            );
        }
    }

    #[test]
    fn an_eks_session_is_never_the_subject() {
        let arn = "arn:aws:sts::111122223333:assumed-role/Deploy/ci-9";
        let b = subject_of(arn, &["system:authenticated"]);
        assert_eq!(
            (b.subject.kind.as_str(), b.subject.name.as_str()),
            ("Group", "Deploy-deployers")
        );
        let note = b.note.unwrap_or_default();
        assert!(
            note.contains("arn:aws:iam::111122223333:role/Deploy"),
            "{note}"
        );
        let mapped = subject_of(arn, &["ops", "system:authenticated"]);
        assert_eq!(mapped.subject.name, "ops");
        // Not an assumed role: the user itself.
        let user = subject_of("arn:aws:iam::111122223333:user/alice", &[]);
        assert_eq!((user.subject.kind.as_str(), user.note), ("User", None));
        let sa = subject_of("system:serviceaccount:ci:deployer", &[]);
        assert_eq!(
            (
                sa.subject.kind.as_str(),
                sa.subject.name.as_str(),
                sa.subject.namespace.as_deref()
            ),
            ("ServiceAccount", "deployer", Some("ci"))
        );
    }
}
