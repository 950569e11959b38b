//! `rbac.can-i impersonation-denied`: the fake API server answers as kube-apiserver does behind
//! a GitLab agent with `access_as: ci_job` whose own service account lost the `impersonate`
//! verb: 403 `cannot impersonate resource "users"` for every authenticated request.

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::demo::ApiServerOptions;
use kube_reach::model::Status;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn rbac_can_i_impersonation_denied() {
    let options = ApiServerOptions {
        impersonation_denied: Some((
            "gitlab:ci_job:42".into(),
            "system:serviceaccount:gitlab-agent:gitlab-agent".into(),
        )),
        ..ApiServerOptions::default()
    };
    let (report, _) = run_on_good_server(options, Some(GOOD), true, &[]).await;
    let t = target(&report, "c");
    assert_root_cause(t, CheckId::RbacCanI, Reason::ImpersonationDenied);
    let denied: Vec<_> = t
        .checks
        .iter()
        .filter(|c| c.id == CheckId::RbacCanI && c.status == Status::Fail)
        .collect();
    assert!(
        denied
            .iter()
            .all(|c| c.reason == Some(Reason::ImpersonationDenied))
    );
    let evidence = evidence_of(t, CheckId::RbacCanI);
    assert!(
        evidence.contains("system:serviceaccount:gitlab-agent:gitlab-agent"),
        "{evidence}"
    );
    let fix = result_of(t, CheckId::RbacCanI)
        .fix
        .clone()
        .unwrap_or_default();
    assert!(
        fix.contains("impersonate") && fix.contains("access_as"),
        "{fix}"
    );
    // The ClusterRole and binding for the service account the 403 names, as kubectl reads it.
    let yaml = yaml_of(&fix);
    if let Some(names) = kubectl_decodes(yaml).expect("kubectl decodes the fix") {
        assert_eq!(
            names,
            "clusterrole.rbac.authorization.k8s.io/gitlab-agent-impersonate\nclusterrolebinding.rbac.authorization.k8s.io/gitlab-agent-impersonate\n"
        );
    }
    assert!(
        yaml.contains("name: gitlab-agent\n  namespace: gitlab-agent"),
        "{yaml}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rbac_can_i_denied_for_a_ci_job_identity_binds_the_project_group() {
    // What the API server sees behind an agent with `access_as: ci_job`.
    let job = kube_reach::demo::User {
        username: "gitlab:ci_job:42".into(),
        uid: String::new(),
        groups: vec![
            "gitlab:ci_job".into(),
            "gitlab:project:7".into(),
            "system:authenticated".into(),
        ],
        rules: Vec::new(),
    };
    let options = ApiServerOptions {
        tokens: vec![("job-token".into(), job)],
        ..ApiServerOptions::default()
    };
    let (report, _) = run_on_good_server(options, Some("job-token"), true, &[]).await;
    let t = target(&report, "c");
    assert_root_cause(t, CheckId::RbacCanI, Reason::Denied);
    let fix = result_of(t, CheckId::RbacCanI)
        .fix
        .clone()
        .unwrap_or_default();
    assert!(
        fix.contains("kind: Group") && fix.contains("gitlab:project:7"),
        "the binding goes to every job of the project, not to one job: {fix}"
    );
    assert!(!fix.contains("gitlab:ci_job:42"), "{fix}");
}

/// The fake API server's answer for a token that is `username` in `groups` with no rules: every
/// access review is denied, so `rbac.can-i` carries the Role and RoleBinding. Returns that fix.
async fn denied_fix_for(username: &str, groups: &[&str]) -> String {
    let user = kube_reach::demo::User {
        username: username.into(),
        uid: String::new(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        rules: Vec::new(),
    };
    let options = ApiServerOptions {
        tokens: vec![("user-token".into(), user)],
        ..ApiServerOptions::default()
    };
    let (report, _) = run_on_good_server(options, Some("user-token"), true, &[]).await;
    let t = target(&report, "c");
    assert_root_cause(t, CheckId::RbacCanI, Reason::Denied);
    result_of(t, CheckId::RbacCanI)
        .fix
        .clone()
        .unwrap_or_default()
}

/// The YAML of a fix: everything after its first line (`Grant it with … :`).
fn yaml_of(fix: &str) -> &str {
    fix.split_once(":\n")
        .map(|(_, yaml)| yaml)
        .unwrap_or_else(|| panic!("no YAML in the fix: {fix}"))
}

/// The two documents parse as YAML, as a typed Role and RoleBinding (k8s-openapi checks
/// `apiVersion` and `kind`), and the real kubectl decodes them; returns the binding's subjects.
fn assert_kubernetes_accepts(yaml: &str) -> Vec<k8s_openapi::api::rbac::v1::Subject> {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(yaml).unwrap_or_else(|e| panic!("not YAML ({e}):\n{yaml}"));
    assert_eq!(docs.len(), 2, "{yaml}");
    let role: Role = serde_json::from_value(docs[0].clone())
        .unwrap_or_else(|e| panic!("not a Role ({e}):\n{yaml}"));
    let binding: RoleBinding = serde_json::from_value(docs[1].clone())
        .unwrap_or_else(|e| panic!("not a RoleBinding ({e}):\n{yaml}"));
    assert_eq!(
        binding.role_ref.name,
        role.metadata.name.unwrap_or_default()
    );
    if let Some(names) = kubectl_decodes(yaml).expect("kubectl decodes the fix") {
        assert_eq!(
            names,
            "role.rbac.authorization.k8s.io/kube-reach-deployer\nrolebinding.rbac.authorization.k8s.io/kube-reach-deployer\n"
        );
    }
    binding.subjects.unwrap_or_default()
}

/// `kubectl annotate --local -f FILE -o name`: kubectl's own YAML decoding of every document,
/// offline (a client-side `create --dry-run` needs the server's discovery, `apply
/// --validate=false` too): the names it read, or `Err` with its complaint. `None` (said)
/// without kubectl on PATH, the serde checks still running; a failure instead under
/// `KUBE_REACH_REQUIRE_KUBECTL=1`.
fn kubectl_decodes(yaml: &str) -> Result<Option<String>, String> {
    let Some(kubectl) = kubectl_on_path("kubectl decoding") else {
        return Ok(None);
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("fix.yaml");
    std::fs::write(&file, yaml).expect("fix.yaml");
    let config = dir.path().join("kubeconfig");
    std::fs::write(
        &config,
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
    )
    .expect("kubeconfig");
    let mut cmd = std::process::Command::new(kubectl);
    cmd.args(["annotate", "--local", "-o", "name", "-f"])
        .arg(&file)
        .arg("kube-reach/checked=true")
        .env_clear()
        .env("KUBECONFIG", &config)
        .env("HOME", dir.path());
    let (code, out, err) = crate::child::run_bounded(cmd, std::time::Duration::from_secs(30));
    match code {
        Some(0) => Ok(Some(out)),
        _ => Err(err),
    }
}

/// kubectl on PATH, or `None` after saying `what` is skipped (the shared rule of
/// `tests/common/kubectl.rs`: a failure under `KUBE_REACH_REQUIRE_KUBECTL=1`).
fn kubectl_on_path(what: &str) -> Option<std::path::PathBuf> {
    crate::kubectl::kubectl_or_skip(&std::env::var("PATH").unwrap_or_default(), what)
}

/// The check above can fail: kubectl refuses what the old hand-written YAML made of a name
/// with a quote in it.
#[test]
fn kubectl_refuses_a_binding_whose_name_broke_the_yaml() {
    if kubectl_on_path("kubectl refusing broken YAML").is_none() {
        return;
    }
    let broken = "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: x\n  namespace: ci\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: x\nsubjects:\n  - kind: User\n    name: \"ci \"deployer\": #1\"\n    apiGroup: rbac.authorization.k8s.io";
    assert!(kubectl_decodes(broken).is_err());
}

/// A user name with YAML's own characters (`"`, `: `, ` #`) comes back exactly from the
/// printed YAML (the old generator wrote it between quotes unescaped: invalid YAML).
#[tokio::test(flavor = "multi_thread")]
async fn rbac_fix_yaml_quotes_a_hostile_user_name() {
    let name = "ci \"deployer\": #1 - [x]";
    let fix = denied_fix_for(name, &["system:authenticated"]).await;
    let subjects = assert_kubernetes_accepts(yaml_of(&fix));
    assert_eq!(subjects.len(), 1, "{fix}");
    assert_eq!(
        (subjects[0].kind.as_str(), subjects[0].name.as_str()),
        ("User", name)
    );
}

/// Behind `access_as: ci_job` the printed binding goes to `gitlab:project:<id>` and kubectl
/// takes it as it is printed.
#[tokio::test(flavor = "multi_thread")]
async fn rbac_fix_yaml_for_a_ci_job_is_accepted_by_kubectl() {
    let fix = denied_fix_for(
        "gitlab:ci_job:42",
        &[
            "gitlab:ci_job",
            "gitlab:project:7",
            "gitlab:project_env:7:prod",
            "system:authenticated",
        ],
    )
    .await;
    let subjects = assert_kubernetes_accepts(yaml_of(&fix));
    assert_eq!(
        (subjects[0].kind.as_str(), subjects[0].name.as_str()),
        ("Group", "gitlab:project:7"),
        "{fix}"
    );
    assert!(
        fix.contains("gitlab:project_env:7:prod"),
        "the narrower group is named: {fix}"
    );
}

/// An EKS IAM role arrives as `arn:aws:sts::<account>:assumed-role/<role>/<session>`: a binding
/// to that user would hold for one session only. The fix binds a group, says how to map the
/// role to it, and never names the per-session user as the subject.
#[tokio::test(flavor = "multi_thread")]
async fn rbac_fix_for_an_eks_assumed_role_binds_a_group_not_the_session() {
    let session = "arn:aws:sts::111122223333:assumed-role/GitLabDeployer/gitlab-ci-4242";
    let fix = denied_fix_for(session, &["system:authenticated"]).await;
    let subjects = assert_kubernetes_accepts(yaml_of(&fix));
    assert_eq!(
        (subjects[0].kind.as_str(), subjects[0].name.as_str()),
        ("Group", "GitLabDeployer-deployers"),
        "{fix}"
    );
    assert!(
        fix.contains("--principal-arn arn:aws:iam::111122223333:role/GitLabDeployer")
            && fix.contains("--kubernetes-groups GitLabDeployer-deployers"),
        "{fix}"
    );
    // A role already mapped to a group (access entry `kubernetes-groups`): that group.
    let fix = denied_fix_for(session, &["deployers", "system:authenticated"]).await;
    let subjects = assert_kubernetes_accepts(yaml_of(&fix));
    assert_eq!(
        (subjects[0].kind.as_str(), subjects[0].name.as_str()),
        ("Group", "deployers"),
        "{fix}"
    );
}

use kube_reach::demo::apiserver::IMPERSONATOR_TOKEN as IMPERSONATOR;

/// The fake with `ci-base` ([`IMPERSONATOR`], may impersonate) and a configured user
/// `deployer` (the deploy rules, reachable by no token of the kubeconfig): only impersonation
/// makes a job `deployer`.
fn impersonating_server() -> ApiServerOptions {
    ApiServerOptions {
        tokens: kube_reach::demo::apiserver::impersonation_tokens(),
        ..ApiServerOptions::default()
    }
}

/// [`a_users_impersonation_is_sent_and_judged`] over HTTP/1.1 only: every pooled connection's
/// requests carry the headers too.
#[tokio::test(flavor = "multi_thread")]
async fn a_users_impersonation_is_sent_and_judged_over_http1() {
    impersonation_is_sent_and_judged(kube_reach::demo::Protocols::Http1Only).await;
}

/// A kubeconfig user with `as`/`as-groups`/`as-user-extra` whose own user may impersonate:
/// every request carries the `Impersonate-*` headers, as kubectl's do, so auth.whoami names
/// the impersonated user and RBAC is judged for it (its deploy rules pass, where the base
/// user's own rights would fail every requirement). config.credentials names the identity,
/// never the extra values; the server saw the impersonation on the whoami request.
#[tokio::test(flavor = "multi_thread")]
async fn a_users_impersonation_is_sent_and_judged() {
    impersonation_is_sent_and_judged(kube_reach::demo::Protocols::Both).await;
}

async fn impersonation_is_sent_and_judged(protocols: kube_reach::demo::Protocols) {
    init();
    let pki = kube_reach::demo::Pki::generate().expect("pki");
    let options = ApiServerOptions {
        protocols,
        ..impersonating_server()
    };
    let (server, ca) = tls_server(&pki, kube_reach::demo::TlsClass::Good, options).await;
    let extra = "    as: deployer\n    as-groups: [ops]\n    as-user-extra:\n      reason: [extra-value-canary]\n";
    let ctx = Ctx {
        extra_user: extra,
        ..Ctx::new("c", server.url(), &ca, IMPERSONATOR)
    };
    let report = World::new()
        .run(&kubeconfig(&[ctx], Some("c")), &[], &[])
        .await;
    let t = target(&report, "c");
    let creds = result_of(t, CheckId::ConfigCredentials);
    assert_eq!(creds.status, Status::Pass, "{creds:#?}");
    let evidence = creds.evidence.join("\n");
    for named in ["'deployer'", "'ops'", "'reason'", "Impersonate-*"] {
        assert!(evidence.contains(named), "{named}: {evidence}");
    }
    assert!(!format!("{report:?}").contains("extra-value-canary"));
    let whoami = result_of(t, CheckId::AuthWhoami);
    assert_eq!(whoami.status, Status::Pass, "{whoami:#?}");
    assert!(whoami.summary.contains("deployer"), "{whoami:#?}");
    assert!(evidence_of(t, CheckId::AuthWhoami).contains("ops"));
    let can_i: Vec<_> = (t.checks.iter())
        .filter(|c| c.id == CheckId::RbacCanI)
        .collect();
    assert!(!can_i.is_empty());
    assert!(can_i.iter().all(|c| c.status == Status::Pass), "{can_i:#?}");
    let log = server.request_log();
    let reviews: Vec<_> = (log.iter())
        .filter(|r| r.path.contains("selfsubjectreviews"))
        .collect();
    // Every authenticated request, on every connection, carried the impersonation.
    assert!(
        (log.iter())
            .filter(|r| r.bearer)
            .all(|r| r.impersonated.as_deref() == Some("deployer")),
        "{log:#?}"
    );
    assert!(
        !reviews.is_empty()
            && reviews.iter().all(|r| {
                r.user.as_deref() == Some("ci-base")
                    && r.impersonated.as_deref() == Some("deployer")
            }),
        "{log:#?}"
    );
}

/// The base user may not impersonate: kube-apiserver's 403 `cannot impersonate` for every
/// request is auth.whoami's root cause, and the fix grants the authenticated user (the
/// service account the 403 names) `impersonate` on what the kubeconfig names.
#[tokio::test(flavor = "multi_thread")]
async fn auth_whoami_impersonation_denied() {
    init();
    let pki = kube_reach::demo::Pki::generate().expect("pki");
    let (server, ca) = tls_server(
        &pki,
        kube_reach::demo::TlsClass::Good,
        impersonating_server(),
    )
    .await;
    let ctx = Ctx {
        extra_user: "    as: deployer\n    as-groups: [ops]\n",
        ..Ctx::new("c", server.url(), &ca, GOOD)
    };
    let report = World::new()
        .run(&kubeconfig(&[ctx], Some("c")), &[], &[])
        .await;
    let t = target(&report, "c");
    assert_root_cause(t, CheckId::AuthWhoami, Reason::ImpersonationDenied);
    let evidence = evidence_of(t, CheckId::AuthWhoami);
    assert!(
        evidence.contains("system:serviceaccount:ci:deployer") && evidence.contains("'deployer'"),
        "{evidence}"
    );
    let fix = result_of(t, CheckId::AuthWhoami)
        .fix
        .clone()
        .unwrap_or_default();
    assert!(fix.contains("impersonate"), "{fix}");
    let yaml = yaml_of(&fix);
    for line in [
        "resources: [users]",
        "resourceNames: [deployer]",
        "resources: [groups]",
        "resourceNames: [ops]",
        "verbs: [impersonate]",
        "name: deployer\n  namespace: ci",
    ] {
        assert!(yaml.contains(line), "{line}: {yaml}");
    }
    if let Some(names) = kubectl_decodes(yaml).expect("kubectl decodes the fix") {
        assert_eq!(
            names,
            "clusterrole.rbac.authorization.k8s.io/kube-reach-impersonate\nclusterrolebinding.rbac.authorization.k8s.io/kube-reach-impersonate\n"
        );
    }
    // No requirement is judged on an identity the server refused to take.
    assert!(
        (t.checks.iter())
            .filter(|c| c.id == CheckId::RbacCanI)
            .all(|c| c.status != Status::Pass),
        "{:#?}",
        t.checks
    );
    assert!(
        (server.request_log().iter()).all(|r| r.impersonated.is_none()),
        "the fake never acted as deployer"
    );
}

/// kube-apiserver's impersonation filter runs before any handler: a server before 1.28 (no
/// SelfSubjectReview, whose 404 would make auth.whoami "unsupported" and leave the 403 to the
/// access reviews) still answers the whoami request itself with the 403, so the root cause is
/// auth.whoami impersonation-denied there too.
#[tokio::test(flavor = "multi_thread")]
async fn auth_whoami_impersonation_denied_before_self_subject_review() {
    init();
    let pki = kube_reach::demo::Pki::generate().expect("pki");
    let options = ApiServerOptions {
        self_subject_review: false,
        ..impersonating_server()
    };
    let (server, ca) = tls_server(&pki, kube_reach::demo::TlsClass::Good, options).await;
    let ctx = Ctx {
        extra_user: "    as: deployer\n",
        ..Ctx::new("c", server.url(), &ca, GOOD)
    };
    let report = World::new()
        .run(&kubeconfig(&[ctx], Some("c")), &[], &[])
        .await;
    let t = target(&report, "c");
    assert_root_cause(t, CheckId::AuthWhoami, Reason::ImpersonationDenied);
    let log = server.request_log();
    assert!(
        (log.iter())
            .filter(|r| r.path.contains("selfsubjectreviews"))
            .all(|r| r.status == 403),
        "{log:#?}"
    );
}

/// Two contexts with the same token on one server, one with `as: deployer` and one without:
/// the run-wide answer memo keys on the `Impersonate-*` headers, so each gets its own
/// answers (the impersonated one passes its requirements, the base user fails them), not the
/// other's.
#[tokio::test(flavor = "multi_thread")]
async fn the_same_token_with_and_without_as_gets_its_own_answers() {
    init();
    let pki = kube_reach::demo::Pki::generate().expect("pki");
    let (server, ca) = tls_server(
        &pki,
        kube_reach::demo::TlsClass::Good,
        impersonating_server(),
    )
    .await;
    let plain = Ctx::new("plain", server.url(), &ca, IMPERSONATOR);
    let acting = Ctx {
        extra_user: "    as: deployer\n",
        ..Ctx::new("acting", server.url(), &ca, IMPERSONATOR)
    };
    let report = World::new()
        .run(&kubeconfig(&[plain, acting], None), &[], &[])
        .await;
    let can_i = |name: &str| -> Vec<Status> {
        (target(&report, name).checks.iter())
            .filter(|c| c.id == CheckId::RbacCanI)
            .map(|c| c.status)
            .collect()
    };
    let whoami = |name: &str| {
        result_of(target(&report, name), CheckId::AuthWhoami)
            .summary
            .clone()
    };
    assert!(whoami("plain").contains("ci-base"), "{}", whoami("plain"));
    assert!(
        whoami("acting").contains("deployer"),
        "{}",
        whoami("acting")
    );
    assert!(!can_i("acting").is_empty() && can_i("acting").iter().all(|s| *s == Status::Pass));
    assert!(
        !can_i("plain").is_empty() && can_i("plain").iter().all(|s| *s == Status::Fail),
        "{:?}",
        can_i("plain")
    );
    let log = server.request_log();
    let reviews = |impersonated: Option<&str>| {
        (log.iter())
            .filter(|r| {
                r.path.contains("selfsubjectreviews") && r.impersonated.as_deref() == impersonated
            })
            .count()
    };
    assert!(
        reviews(None) >= 1 && reviews(Some("deployer")) >= 1,
        "{log:#?}"
    );
}
