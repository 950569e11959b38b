//! `config.kubeconfig content-not-path` and `base64-encoded`: the real binary run as a GitLab job
//! whose KUBECONFIG is a variable of type Variable (the YAML itself), or holds base64 of the
//! kubeconfig, or names a file holding base64. The kubeconfig carries a canary token that must
//! appear in no output.

use base64::Engine as _;
use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::model::Status;

use crate::support::*;

const CANARY: &str = "canary-token-5f1e0c9a7b3d";

fn kubeconfig_text() -> String {
    kubeconfig(
        &[Ctx::new("c", "https://127.0.0.1:1".into(), "", CANARY)],
        Some("c"),
    )
}

/// Runs the binary with `KUBECONFIG=value` and returns the reason of the failing run-wide
/// `config.kubeconfig` result, after checking that the canary appears nowhere.
fn run_with_kubeconfig_var(world: &World, value: &str) -> Reason {
    let json = world.path("r.json");
    let out = world.run_binary(
        None,
        &["--json", &json.display().to_string()],
        &[("HOME", "/nonexistent"), ("KUBECONFIG", value)],
    );
    assert_eq!(
        out.code,
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&json).expect("json written");
    for output in [&text, &String::from_utf8_lossy(&out.stdout).into_owned()] {
        assert!(!output.contains(CANARY), "the kubeconfig's token leaked");
    }
    let report = Report::parse(&text);
    let failed = report
        .checks
        .iter()
        .find(|c| c.id == CheckId::ConfigKubeconfig && c.status == Status::Fail);
    let failed = failed.unwrap_or_else(|| panic!("no failing config.kubeconfig: {report:#?}"));
    assert!(
        failed.fix.as_deref().is_some_and(|f| !f.is_empty()),
        "{failed:#?}"
    );
    failed.reason.expect("a failure has a reason")
}

#[test]
fn config_kubeconfig_content_not_path() {
    let world = World::new();
    let reason = run_with_kubeconfig_var(&world, &kubeconfig_text());
    assert_eq!(reason, Reason::ContentNotPath);
}

#[test]
fn config_kubeconfig_base64_encoded() {
    let world = World::new();
    let encoded = base64::engine::general_purpose::STANDARD.encode(kubeconfig_text());
    assert_eq!(
        run_with_kubeconfig_var(&world, &encoded),
        Reason::Base64Encoded
    );
    // The same base64 in the file that KUBECONFIG names (a File variable).
    let path = world.write("kubeconfig.b64", &format!("{encoded}\n"));
    assert_eq!(
        run_with_kubeconfig_var(&world, &path.display().to_string()),
        Reason::Base64Encoded
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn config_kubeconfig_legacy_context_selected() {
    init();
    // GitLab's kubeconfig when both a certificate-based cluster and an agent apply.
    let kc = "apiVersion: v1\nkind: Config\nclusters:\n- name: gitlab\n  cluster: {server: 'https://127.0.0.1:1/k8s-proxy'}\n- name: gitlab-deploy\n  cluster: {server: 'https://127.0.0.1:2'}\nusers:\n- name: agent:1\n  user: {token: 'ci:1:job-token'}\n- name: gitlab-deploy\n  user: {token: legacy}\ncontexts:\n- name: group/agents:prod\n  context: {cluster: gitlab, user: 'agent:1'}\n- name: gitlab-deploy\n  context: {cluster: gitlab-deploy, user: gitlab-deploy}\ncurrent-context: gitlab-deploy\n";
    let report = World::new().run(kc, &[], &[]).await;
    let warning = run_wide(
        &report,
        kube_reach::catalogue::Reason::LegacyContextSelected,
    );
    assert_eq!(warning.status, kube_reach::model::Status::Warn);
    assert!(warning.evidence.join("\n").contains("group/agents:prod"));
    // Only the current context is checked, as kubectl would use only it.
    assert_eq!(report.targets.len(), 1);
    assert_eq!(report.targets[0].name, "gitlab-deploy");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_kubeconfig_kube_context_not_current() {
    init();
    let contexts = [
        Ctx::new("current", "https://127.0.0.1:1".into(), "", GOOD),
        Ctx::new("wanted", "https://127.0.0.1:2".into(), "", GOOD),
    ];
    let kc = kubeconfig(&contexts, Some("current"));
    let report = World::new()
        .run(&kc, &[], &[("KUBE_CONTEXT", "wanted")])
        .await;
    let warning = run_wide(
        &report,
        kube_reach::catalogue::Reason::KubeContextNotCurrent,
    );
    assert_eq!(warning.status, kube_reach::model::Status::Warn);
    assert!(
        warning
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("use-context wanted"))
    );
    assert_eq!(report.targets.len(), 1);
    assert_eq!(report.targets[0].name, "wanted");
}

/// The run-wide result with `reason`, failing the test when there is none.
fn run_wide(
    report: &crate::report::Report,
    reason: kube_reach::catalogue::Reason,
) -> &crate::report::Check {
    report
        .checks
        .iter()
        .find(|c| c.reason == Some(reason))
        .unwrap_or_else(|| panic!("no {}: {:#?}", reason.as_str(), report.checks))
}
