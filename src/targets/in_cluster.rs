//! The runner pod's own service account (GitLab's Kubernetes executor runs each job in a pod):
//! `KUBERNETES_SERVICE_HOST`/`_PORT` and the files the kubelet mounts at
//! `/var/run/secrets/kubernetes.io/serviceaccount/` (`token`, `ca.crt`, `namespace`), read the way
//! client-go's `rest.InClusterConfig` reads them
//! (<https://github.com/kubernetes/client-go/blob/master/rest/config.go>). The token is read
//! only for its claims (who it names, when it expires); it is never printed.

use std::path::Path;

use super::TargetSpec;
use crate::catalogue::{CheckId, Reason};
use crate::env::{Env, read_bounded};
use crate::model::{CheckResult, TargetKind};
use crate::secret::Secret;

/// What the mounted service account says about the pod, without the token itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodIdentity {
    /// The `namespace` file: the pod's namespace.
    pub namespace: Option<String>,
    /// `system:serviceaccount:<namespace>:<name>`, from the token's `sub` claim.
    pub username: Option<String>,
    /// The pod's name: the `kubernetes.io` claim of a projected token, else `HOSTNAME` (the
    /// kubelet sets a pod's hostname to its name).
    pub pod: Option<String>,
}

impl PodIdentity {
    pub fn read(env: &Env) -> PodIdentity {
        let dir = &env.service_account_dir;
        let namespace = read_text(&dir.join("namespace"));
        let claims = read_text(&dir.join("token"))
            .map(Secret::new)
            .and_then(|t| crate::checks::config::jwt_claims(t.expose()));
        let claim = |path: &[&str]| {
            let mut value = claims.as_ref()?;
            for key in path {
                value = value.get(key)?;
            }
            value.as_str().map(str::to_string)
        };
        let username = claim(&["sub"]).filter(|s| s.starts_with("system:serviceaccount:"));
        let pod = claim(&["kubernetes.io", "pod", "name"])
            .or_else(|| env.var("HOSTNAME").map(str::to_string));
        PodIdentity {
            namespace,
            username,
            pod,
        }
    }

    /// The service account's name: the last part of `system:serviceaccount:<ns>:<name>`.
    pub fn service_account(&self) -> Option<&str> {
        self.username.as_deref()?.rsplit(':').next()
    }
}

fn read_text(path: &Path) -> Option<String> {
    let bytes = read_bounded(path).ok()?;
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// The in-cluster target. client-go requires both variables, so do we.
pub fn in_cluster(env: &Env) -> Option<TargetSpec> {
    let host = env.var("KUBERNETES_SERVICE_HOST")?;
    let port = env.var("KUBERNETES_SERVICE_PORT")?;
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let dir = &env.service_account_dir;
    let identity = PodIdentity::read(env);
    Some(TargetSpec {
        name: "in-cluster".into(),
        kind: Some(TargetKind::InCluster),
        source: format!("KUBERNETES_SERVICE_HOST/PORT and {}", dir.display()),
        server: Some(format!("https://{host}:{port}")),
        ca_file: Some(dir.join("ca.crt")),
        token_file: Some(dir.join("token")),
        user_name: identity.username,
        namespace: identity.namespace,
        ..TargetSpec::default()
    })
}

/// `config.kubeconfig in-cluster-fallback`: no kubeconfig and no `KUBE_*`, so kubectl in this
/// job silently uses the pod's service account on the runner's own cluster.
pub fn fallback_warning(env: &Env, spec: &TargetSpec) -> CheckResult {
    let identity = PodIdentity::read(env);
    let who = identity
        .username
        .clone()
        .unwrap_or_else(|| "the pod's service account".into());
    let mut result = CheckResult::finding(CheckId::ConfigKubeconfig, "", Reason::InClusterFallback)
        .with_summary(format!(
            "no kubeconfig and no KUBE_* variables: kubectl will act as {who} on the runner's own cluster ({})",
            spec.server.as_deref().unwrap_or("?")
        ))
        .with_evidence("KUBECONFIG is not set, ~/.kube/config does not exist, KUBE_URL is not set")
        .with_evidence(format!(
            "in a pod: KUBERNETES_SERVICE_HOST={}, service account mounted at {}",
            env.var("KUBERNETES_SERVICE_HOST").unwrap_or("?"),
            env.service_account_dir.display()
        ));
    if let Some(pod) = &identity.pod {
        result = result.with_evidence(format!(
            "pod {pod} in namespace {}",
            identity.namespace.as_deref().unwrap_or("?")
        ));
    }
    result
}

/// Whether kubectl, finding no kubeconfig, would use the pod's service account: client-go's
/// `InClusterConfig().Possible()` wants both variables and the token file (a pod with
/// `automountServiceAccountToken: false` has the variables but no token).
pub fn kubectl_falls_back(env: &Env) -> bool {
    in_cluster(env).is_some() && env.service_account_dir.join("token").is_file()
}

/// `not-set` in a pod without a mounted token: kubectl has no configuration at all there, and
/// the evidence says why the pod's service account does not count.
pub fn without_token(env: &Env, not_set: CheckResult) -> CheckResult {
    if in_cluster(env).is_none() {
        return not_set;
    }
    not_set.with_evidence(format!(
        "in a pod (KUBERNETES_SERVICE_HOST is set), but no service-account token at {}: kubectl does not fall back to the pod's service account",
        env.service_account_dir.join("token").display()
    ))
}

/// `config.kubeconfig not-in-cluster`: `--in-cluster` outside a pod.
pub fn not_in_a_pod(env: &Env) -> CheckResult {
    let shown = |name: &str| match env.var(name) {
        Some(_) => format!("{name} is set"),
        None => format!("{name} is not set"),
    };
    CheckResult::finding(CheckId::ConfigKubeconfig, "", Reason::NotInCluster).with_evidence(
        format!(
            "--in-cluster: {}, {}",
            shown("KUBERNETES_SERVICE_HOST"),
            shown("KUBERNETES_SERVICE_PORT")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    pub(crate) fn projected_token(sub: &str, pod: &str, exp: u64) -> String {
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.c2lnbmF0dXJl",
            b64(serde_json::json!({"alg": "RS256"})),
            b64(serde_json::json!({"sub": sub, "exp": exp,
                "kubernetes.io": {"namespace": "gitlab", "pod": {"name": pod}, "serviceaccount": {"name": "default"}}}))
        )
    }

    fn env_with(dir: &Path, vars: &[(&str, &str)]) -> Env {
        Env {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            now: std::time::SystemTime::now(),
            resolv_conf_path: dir.join("resolv.conf"),
            hosts_path: dir.join("hosts"),
            service_account_dir: dir.to_path_buf(),
        }
    }

    #[test]
    fn without_a_mounted_token_kubectl_does_not_fall_back_and_nothing_warns_of_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = env_with(
            dir.path(),
            &[
                ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
                ("KUBERNETES_SERVICE_PORT", "443"),
            ],
        );
        let found = crate::targets::discover(&crate::targets::DiscoveryOptions::default(), &env);
        let reasons: Vec<_> = found.checks.iter().map(|c| c.reason).collect();
        assert!(
            !reasons.contains(&Some(Reason::InClusterFallback)),
            "{reasons:?}"
        );
        let not_set = found
            .checks
            .iter()
            .find(|c| c.reason == Some(Reason::NotSet))
            .expect("not-set");
        assert!(
            not_set
                .evidence
                .join(" ")
                .contains("no service-account token"),
            "{:?}",
            not_set.evidence
        );
        std::fs::write(dir.path().join("token"), "t").expect("token");
        let found = crate::targets::discover(&crate::targets::DiscoveryOptions::default(), &env);
        assert!(
            found
                .checks
                .iter()
                .any(|c| c.reason == Some(Reason::InClusterFallback))
        );
    }

    #[test]
    fn the_pod_identity_comes_from_the_mounted_files_and_the_token_claims() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = projected_token(
            "system:serviceaccount:gitlab:default",
            "runner-abc-1",
            4_000_000_000,
        );
        std::fs::write(dir.path().join("token"), &token).expect("token");
        std::fs::write(dir.path().join("namespace"), "gitlab\n").expect("namespace");
        let env = env_with(
            dir.path(),
            &[
                ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
                ("KUBERNETES_SERVICE_PORT", "443"),
                ("HOSTNAME", "other"),
            ],
        );
        let id = PodIdentity::read(&env);
        assert_eq!(
            id.username.as_deref(),
            Some("system:serviceaccount:gitlab:default")
        );
        assert_eq!(id.namespace.as_deref(), Some("gitlab"));
        assert_eq!(id.pod.as_deref(), Some("runner-abc-1"));
        assert_eq!(id.service_account(), Some("default"));
        let spec = in_cluster(&env).expect("in a pod");
        assert_eq!(spec.server.as_deref(), Some("https://10.96.0.1:443"));
        assert_eq!(spec.token_file, Some(dir.path().join("token")));
        let warning = fallback_warning(&env, &spec);
        assert_eq!(warning.reason, Some(Reason::InClusterFallback));
        assert!(
            warning
                .summary
                .contains("system:serviceaccount:gitlab:default"),
            "{}",
            warning.summary
        );
        let text = format!(
            "{} {:?} {:?}",
            warning.summary, warning.evidence, warning.fix
        );
        assert!(!text.contains(&token), "the token must never be printed");
    }

    #[test]
    fn a_legacy_token_without_claims_still_gives_a_target_and_hostname_names_the_pod() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("token"), "not-a-jwt").expect("token");
        let env = env_with(
            dir.path(),
            &[
                ("KUBERNETES_SERVICE_HOST", "fd00::1"),
                ("KUBERNETES_SERVICE_PORT", "443"),
                ("HOSTNAME", "runner-xyz"),
            ],
        );
        let id = PodIdentity::read(&env);
        assert_eq!((id.username, id.namespace), (None, None));
        assert_eq!(id.pod.as_deref(), Some("runner-xyz"));
        let spec = in_cluster(&env).expect("in a pod");
        assert_eq!(spec.server.as_deref(), Some("https://[fd00::1]:443"));
        // client-go needs both variables.
        let half = env_with(dir.path(), &[("KUBERNETES_SERVICE_HOST", "10.96.0.1")]);
        assert!(in_cluster(&half).is_none());
    }
}
