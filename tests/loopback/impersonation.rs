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
