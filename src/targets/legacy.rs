//! Targets that do not come from a kubeconfig: `--server` flags, the certificate-based
//! integration's `KUBE_*` variables, and the GitLab server.

use std::path::PathBuf;

use super::{DiscoveryOptions, TargetSpec};
use crate::env::Env;
use crate::gitlab::CiFacts;
use crate::model::TargetKind;
use crate::secret::Secret;

pub fn from_flags(server: &str, opts: &DiscoveryOptions) -> TargetSpec {
    TargetSpec {
        // The name is printed everywhere (JUnit test names included): never the password.
        name: super::url::display_raw(server),
        kind: Some(super::detect_kind("", Some(server), None, None)),
        source: "--server".into(),
        server: Some(server.to_string()),
        ca_file: opts.ca_file.clone(),
        tls_server_name: opts.tls_server_name.clone(),
        token_file: opts.token_file.clone(),
        ..TargetSpec::default()
    }
}

/// The deprecated certificate-based integration. GitLab passes these variables only to jobs
/// that declare an `environment:`.
pub fn from_kube_vars(env: &Env) -> Option<TargetSpec> {
    let url = env.var("KUBE_URL")?;
    Some(TargetSpec {
        name: "KUBE_URL".into(),
        kind: Some(TargetKind::LegacyCertificate),
        source: "KUBE_URL/KUBE_TOKEN/KUBE_CA_PEM_FILE variables (certificate-based integration)"
            .into(),
        server: Some(url.to_string()),
        ca_file: env.var("KUBE_CA_PEM_FILE").map(PathBuf::from),
        ca_pem: env.var("KUBE_CA_PEM").map(str::to_string),
        token: env.var("KUBE_TOKEN").map(Secret::new),
        namespace: env.var("KUBE_NAMESPACE").map(str::to_string),
        ..TargetSpec::default()
    })
}

/// The GitLab server, checked whenever the job runs in GitLab CI or an agent target exists
/// (unless the run leaves it out: `DiscoveryOptions::without_gitlab_server`).
pub fn gitlab_server(env: &Env, ci: &CiFacts, specs: &[TargetSpec]) -> Option<TargetSpec> {
    let has_agent = specs
        .iter()
        .any(|s| s.kind == Some(TargetKind::GitlabAgent));
    if !env.in_gitlab_ci() && !has_agent {
        return None;
    }
    // An invalid CI_SERVER_URL is kept as it is: config.server then names it (invalid-url)
    // instead of the GitLab target vanishing without a word.
    let url = match crate::gitlab::gitlab_server_target(ci) {
        Some(server) => server.url,
        None => ci.server_url.clone()?,
    };
    Some(TargetSpec {
        name: "gitlab".into(),
        kind: Some(TargetKind::Gitlab),
        source: "CI_SERVER_URL".into(),
        server: Some(url),
        ca_file: ci.server_tls_ca_file.clone(),
        ..TargetSpec::default()
    })
}
