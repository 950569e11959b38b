//! The legacy certificate-based integration (deprecated in 14.5, off by default since 17.0):
//! its `gitlab-deploy` context and `KUBE_*` variables, which GitLab passes only to jobs that
//! declare an `environment:`.

use crate::gitlab::ci::CiFacts;

/// The context (and cluster and user) name of the certificate-based integration's kubeconfig.
pub const LEGACY_CONTEXT: &str = "gitlab-deploy";

const NOTE: &str = "GitLab passes the certificate-based cluster's KUBECONFIG (context `gitlab-deploy`) and its KUBE_URL, KUBE_TOKEN, KUBE_NAMESPACE and KUBE_CA_PEM_FILE variables only to jobs that declare an `environment:` whose scope matches the cluster; the integration is deprecated (GitLab 14.5) and disabled by default since GitLab 17.0 (feature flag `certificate_based_clusters`): move to the GitLab agent.";

pub fn is_legacy_context(context_name: &str) -> bool {
    context_name == LEGACY_CONTEXT
}

/// What points at the legacy integration in this job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegacySignals {
    pub gitlab_deploy_context: bool,
    /// Names of the `KUBE_*` variables that are set.
    pub variables: Vec<&'static str>,
    /// `CI_KUBERNETES_ACTIVE=true`.
    pub kubernetes_active: bool,
}

impl LegacySignals {
    pub fn any(&self) -> bool {
        self.gitlab_deploy_context || !self.variables.is_empty() || self.kubernetes_active
    }
}

pub fn detect_legacy(context_names: &[&str], ci: &CiFacts) -> LegacySignals {
    LegacySignals {
        gitlab_deploy_context: context_names.iter().any(|c| is_legacy_context(c)),
        variables: ci.legacy_variables.clone(),
        kubernetes_active: ci.kubernetes_active,
    }
}

/// The note for legacy targets and missing-kubeconfig explanations, sharpened when this job
/// has no environment.
pub fn legacy_note(ci: &CiFacts) -> String {
    match ci.environment_name.as_deref() {
        None => format!("{NOTE} This job declares no `environment:`, so it gets none of them."),
        Some(env) => format!("{NOTE} This job's environment is `{env}`."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitlab::ci::tests::{ci, facts, vars};

    #[test]
    fn detects_the_context_and_variables() {
        let mut v = vars();
        v.insert("KUBE_URL", "https://10.0.0.1:6443".into());
        v.insert("KUBE_TOKEN", "secret-token-value".into());
        v.insert("CI_KUBERNETES_ACTIVE", "true".into());
        let signals = detect_legacy(&["gitlab-deploy", "acme/agents:prod"], &facts(&v));
        assert!(signals.any() && signals.gitlab_deploy_context && signals.kubernetes_active);
        assert_eq!(signals.variables, vec!["KUBE_URL", "KUBE_TOKEN"]);
        assert!(!format!("{signals:?}").contains("secret-token-value"));
        assert!(!detect_legacy(&["acme/agents:prod"], &ci()).any());
    }

    #[test]
    fn note_says_environment_only() {
        let note = legacy_note(&ci());
        assert!(note.contains("only to jobs that declare an `environment:`"));
        assert!(note.ends_with("so it gets none of them."));
    }
}
