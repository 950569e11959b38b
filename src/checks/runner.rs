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
    if let Some(mtus) = interface_mtus() {
        out.push(("interfaces".into(), mtus));
    }
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
