//! Jobs that reach their cluster without an agent (issue 8.4).

use crate::kubeconfig::GOOD;
use kube_reach::catalogue::CheckId;
use kube_reach::demo::{ApiServerOptions, TlsClass, Transport, apiserver};
use kube_reach::model::{Status, TargetKind};

use crate::gitlab_api;
use crate::job::Job;

/// The legacy certificate-based integration (`KUBE_URL`, `KUBE_TOKEN`, `KUBE_CA_PEM`) on a
/// healthy cluster, and GitLab allowing no agent: the job is fine, and says why.
#[test]
fn a_legacy_kube_url_job_without_agents_passes() {
    let job = Job::new();
    let gitlab = gitlab_api::start(&job.rt, job.tls(TlsClass::Good), &job.canary, true, &[]);
    let server = job
        .rt
        .block_on(apiserver::start(
            "127.0.0.1:0".parse().expect("address"),
            Transport::Tls(job.tls(TlsClass::Good)),
            ApiServerOptions::default(),
        ))
        .expect("API server");
    let url = server.url();
    let ca = job.pki.root_ca_pem();
    let vars = [
        ("KUBE_URL", url.as_str()),
        ("KUBE_TOKEN", GOOD),
        ("KUBE_CA_PEM", ca.as_str()),
        ("KUBE_NAMESPACE", "ci"),
    ];
    let out = job.run_with(None, &gitlab, None, &vars);
    let legacy = out.target(TargetKind::LegacyCertificate);
    assert!(legacy.root_cause.is_none(), "{}", out.describe());
    let allowed = out.check(out.target(TargetKind::Gitlab), CheckId::GitlabAllowedAgents);
    assert_eq!(allowed.status, Status::Pass, "{}", out.describe());
    assert!(
        allowed
            .evidence
            .iter()
            .any(|e| e.contains("legacy-certificate")),
        "{allowed:?}"
    );
    assert_eq!(out.code, Some(0), "{}", out.describe());
    out.assert_no_leak(&job.canary);
    job.rt.block_on(server.shutdown());
}
