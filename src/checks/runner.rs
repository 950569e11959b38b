//! `runner.environment` and `runner.clock`: facts about where the job runs.

use std::time::{Duration, SystemTime};

use crate::catalogue::{CheckId, Reason};
use crate::env::Env;
use crate::model::CheckResult;
use crate::net::resolve::DnsSetup;
use crate::secret::redact_url_password;
use crate::x509::format_time;

const PROXY_VARS: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
];
const RUNNER_VARS: &[&str] = &[
    "CI_SERVER_URL",
    "CI_SERVER_VERSION",
    "CI_RUNNER_DESCRIPTION",
    "CI_RUNNER_TAGS",
    "CI_RUNNER_VERSION",
    "CI_RUNNER_EXECUTABLE_ARCH",
    "CI_JOB_IMAGE",
    "CI_PROJECT_PATH",
    "CI_ENVIRONMENT_NAME",
];

/// Key/value facts for the report's `environment` and the check's evidence.
pub fn facts(env: &Env, dns: &DnsSetup) -> Vec<(String, String)> {
    let mut out = vec![("resolv_conf".to_string(), dns.describe())];
    if let Some(problem) = &dns.hosts_problem {
        out.push(("hosts_file".to_string(), format!("{problem} (not used)")));
    }
    for name in PROXY_VARS {
        if let Some(v) = env.var(name) {
            out.push((name.to_string(), redact_url_password(v)));
        }
    }
    let in_cluster = env.var("KUBERNETES_SERVICE_HOST").is_some();
    out.push(("in_cluster".into(), in_cluster.to_string()));
    out.push(("gitlab_ci".into(), env.in_gitlab_ci().to_string()));
    for name in RUNNER_VARS {
        if let Some(v) = env.var(name) {
            out.push((name.to_string(), v.to_string()));
        }
    }
    if in_cluster {
        out.extend(pod_facts(env));
    }
    if let Some(mtus) = interface_mtus() {
        out.push(("interfaces".into(), mtus));
    }
    out
}

/// What the Kubernetes executor exposes: the runner's `CI_RUNNER_*` and the pod's
/// `KUBERNETES_*` variables, and who the pod is. Names that could hold a credential (GitLab sets
/// `CI_RUNNER_SHORT_TOKEN`) are left out whatever their value.
fn pod_facts(env: &Env) -> Vec<(String, String)> {
    let identity = crate::targets::in_cluster::PodIdentity::read(env);
    let mut out = Vec::new();
    let named = [
        ("pod", identity.pod.clone()),
        ("pod_namespace", identity.namespace.clone()),
        ("pod_service_account", identity.username.clone()),
    ];
    out.extend(
        named
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?))),
    );
    let secret_like = |name: &str| {
        ["TOKEN", "PASSWORD", "SECRET", "KEY"]
            .iter()
            .any(|w| name.contains(w))
    };
    out.extend(
        env.vars
            .iter()
            .filter(|(k, v)| {
                (k.starts_with("CI_RUNNER_") || k.starts_with("KUBERNETES_"))
                    && !secret_like(k)
                    && !RUNNER_VARS.contains(&k.as_str())
                    && !v.is_empty()
            })
            .take(64)
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    out
}

fn interface_mtus() -> Option<String> {
    let entries = std::fs::read_dir("/sys/class/net").ok()?;
    let mut list: Vec<String> = entries
        .filter_map(|e| e.ok())
        .take(64)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let mtu = crate::env::read_file(&e.path().join("mtu"), 64).ok()?;
            Some(format!(
                "{name} mtu {}",
                String::from_utf8_lossy(&mtu).trim()
            ))
        })
        .collect();
    list.sort();
    Some(list.join(", "))
}

pub fn environment(facts: &[(String, String)]) -> CheckResult {
    CheckResult::pass(CheckId::RunnerEnvironment, "", "where this job runs")
        .with_evidence_lines(facts.iter().map(|(k, v)| format!("{k}: {v}")))
}

/// Compares the local clock with the `Date` headers servers sent.
pub fn clock(now: SystemTime, server_dates: &[(String, SystemTime)]) -> Option<CheckResult> {
    let id = CheckId::RunnerClock;
    let (worst_name, worst_date) = server_dates.iter().max_by_key(|(_, d)| skew(now, *d))?;
    let worst = skew(now, *worst_date);
    let evidence = format!(
        "local {} vs {} from {worst_name}",
        format_time(now),
        format_time(*worst_date)
    );
    if worst > Duration::from_secs(120) {
        Some(
            CheckResult::finding(id, "", Reason::Skew)
                .with_summary(format!(
                    "the runner's clock is {} s off {worst_name}'s",
                    worst.as_secs()
                ))
                .with_evidence(evidence),
        )
    } else {
        Some(
            CheckResult::pass(
                id,
                "",
                format!("clock within {} s of the servers", worst.as_secs()),
            )
            .with_evidence(evidence),
        )
    }
}

fn skew(a: SystemTime, b: SystemTime) -> Duration {
    a.duration_since(b)
        .or_else(|_| b.duration_since(a))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_facts_name_the_pod_and_leave_out_token_variables() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("namespace"), "gitlab").expect("namespace");
        let vars = [
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("HOSTNAME", "runner-abc-project-1-concurrent-0"),
            ("CI_RUNNER_ID", "42"),
            ("CI_RUNNER_VERSION", "18.0.0"),
            ("CI_RUNNER_SHORT_TOKEN", "glrt-SECRET"),
        ];
        let env = Env {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            now: SystemTime::now(),
            resolv_conf_path: dir.path().join("resolv.conf"),
            hosts_path: dir.path().join("hosts"),
            service_account_dir: dir.path().to_path_buf(),
        };
        let dns = DnsSetup::load(&env.resolv_conf_path, &env.hosts_path);
        let facts = facts(&env, &dns);
        let get = |k: &str| facts.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("in_cluster"), Some("true"));
        assert_eq!(get("pod"), Some("runner-abc-project-1-concurrent-0"));
        assert_eq!(get("pod_namespace"), Some("gitlab"));
        assert_eq!(get("CI_RUNNER_ID"), Some("42"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(
            facts
                .iter()
                .filter(|(n, _)| n == "CI_RUNNER_VERSION")
                .count(),
            1
        );
        assert!(
            facts
                .iter()
                .all(|(n, v)| !n.contains("TOKEN") && !v.contains("SECRET")),
            "{facts:?}"
        );
    }
}
