//! Hand-built `RunReport`s for the reporters' unit tests. Test-only; no I/O.

use std::time::Duration;

use crate::catalogue::{CheckId, Reason};
use crate::model::{CheckResult, RootCause, RunReport, Status, TargetKind, TargetReport, Verdict};
use crate::secret::Scrubber;

pub(crate) const TOKEN: &str = "canary-bearer-5e1f0a7b";
pub(crate) const JOB_TOKEN: &str = "canary-jobtoken-c0ffee42";
pub(crate) const PROXY_PASSWORD: &str = "canary-proxypw-81d2";
pub(crate) const CANARIES: [&str; 3] = [TOKEN, JOB_TOKEN, PROXY_PASSWORD];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A failing `prod` target (tls.trust missing-intermediate, later layers blocked), a passing
/// `staging` agent target with one warning, and two global checks.
pub(crate) fn sample_report() -> RunReport {
    RunReport {
        tool_version: "0.1.0",
        started_at: "2025-06-01T12:00:00Z".to_string(),
        duration: ms(1234),
        verdict: Verdict::Fail,
        checks: global_checks(),
        root_cause: None,
        targets: vec![prod_target(), staging_target()],
        environment: vec![
            (
                "resolv.conf nameservers".to_string(),
                "10.96.0.10".to_string(),
            ),
            (
                "HTTPS_PROXY".to_string(),
                "http://proxy.internal:3128".to_string(),
            ),
        ],
    }
}

fn global_checks() -> Vec<CheckResult> {
    vec![
        CheckResult::finding(CheckId::ConfigKubeconfig, "", Reason::NoCurrentContext)
            .with_evidence("KUBECONFIG=/builds/tmp/KUBECONFIG"),
        CheckResult::pass(CheckId::RunnerEnvironment, "", "job environment recorded")
            .with_duration(ms(2)),
    ]
}

fn prod_target() -> TargetReport {
    let trust = CheckResult::finding(
        CheckId::TlsTrust,
        "api.prod.example.com",
        Reason::MissingIntermediate,
    )
    .with_evidence("chain sent: CN=api.prod.example.com (issuer CN=Example Intermediate CA)")
    .with_evidence("trusted roots: kubeconfig certificate-authority-data (CN=Example Root CA)")
    .with_duration(ms(41));
    let version = CheckResult::blocked(CheckId::HttpVersion, "api.prod.example.com", &trust);
    let whoami = CheckResult::blocked(CheckId::AuthWhoami, "api.prod.example.com", &trust);
    TargetReport {
        name: "prod".to_string(),
        kind: TargetKind::Direct,
        server: "https://api.prod.example.com:6443".to_string(),
        verdict: Verdict::Fail,
        root_cause: Some(RootCause {
            check: CheckId::TlsTrust,
            reason: Reason::MissingIntermediate,
        }),
        checks: vec![
            CheckResult::pass(
                CheckId::ConfigServer,
                "https://api.prod.example.com:6443",
                "server URL is usable",
            ),
            CheckResult::pass(
                CheckId::DnsResolve,
                "api.prod.example.com",
                "resolved to 203.0.113.10",
            )
            .with_evidence("A 203.0.113.10 from 10.96.0.10 in 3 ms")
            .with_duration(ms(3)),
            CheckResult::pass(
                CheckId::TcpConnect,
                "203.0.113.10:6443",
                "connected in 12 ms",
            )
            .with_duration(ms(12)),
            CheckResult::finding(
                CheckId::TcpConnect,
                "[2001:db8::10]:6443",
                Reason::NetworkUnreachable,
            )
            .with_status(Status::Warn),
            CheckResult::pass(
                CheckId::TlsHandshake,
                "203.0.113.10:6443",
                "TLS 1.3 handshake completed",
            ),
            trust,
            version,
            whoami,
        ],
    }
}

fn staging_target() -> TargetReport {
    TargetReport {
        name: "group/agents:staging".to_string(),
        kind: TargetKind::GitlabAgent,
        server: "https://kas.gitlab.example.com/k8s-proxy/".to_string(),
        verdict: Verdict::Warn,
        root_cause: None,
        checks: vec![
            CheckResult::pass(
                CheckId::DnsResolve,
                "kas.gitlab.example.com",
                "resolved to 198.51.100.7",
            ),
            CheckResult::finding(
                CheckId::TlsValidity,
                "kas.gitlab.example.com",
                Reason::ExpiringSoon,
            )
            .with_evidence("notAfter 2025-06-20T00:00:00Z (19 days)"),
            CheckResult::pass(
                CheckId::AuthWhoami,
                "kas.gitlab.example.com",
                "authenticated as gitlab:ci_job:1",
            )
            .with_evidence("groups: gitlab:ci_job, system:authenticated"),
            CheckResult::not_applicable(CheckId::NetpolEgress, "", "not running in a cluster"),
        ],
    }
}

/// A report whose every kind of string carries a canary secret, and a scrubber that knows them.
pub(crate) fn canary_report() -> (RunReport, Scrubber) {
    let mut report = sample_report();
    let leak = |c: &mut CheckResult, secret: &str| {
        c.subject = format!("{} {secret}", c.subject);
        c.summary = format!("{} (token {secret})", c.summary);
        c.evidence.push(format!("Authorization: Bearer {secret}"));
        c.fix = Some(format!("set the token to something other than {secret}"));
        c.why = Some(format!("because {secret}"));
    };
    report.checks.iter_mut().for_each(|c| leak(c, TOKEN));
    let prod = &mut report.targets[0];
    prod.name = format!("prod-{JOB_TOKEN}");
    prod.server = format!("https://ci:1:{JOB_TOKEN}@api.prod.example.com:6443");
    prod.checks.iter_mut().for_each(|c| leak(c, JOB_TOKEN));
    prod.checks[6].blocked_by = Some(format!("tls.trust {JOB_TOKEN}"));
    report.targets[1]
        .checks
        .iter_mut()
        .for_each(|c| leak(c, TOKEN));
    report.environment.push((
        "HTTP_PROXY".to_string(),
        format!("http://bob:{PROXY_PASSWORD}@proxy:3128"),
    ));
    report
        .environment
        .push((format!("X_{TOKEN}"), TOKEN.to_string()));

    let mut scrubber = Scrubber::new();
    for secret in CANARIES {
        scrubber.add(secret);
    }
    (report, scrubber)
}

/// Every status, for exhaustive-mapping tests.
pub(crate) fn one_of_each_status() -> Vec<CheckResult> {
    let failing = CheckResult::finding(CheckId::DnsResolve, "a.example", Reason::Nxdomain);
    vec![
        CheckResult::pass(CheckId::ConfigServer, "https://a.example", "ok"),
        CheckResult::finding(CheckId::ConfigTls, "", Reason::InsecureSkipVerify),
        failing.clone(),
        CheckResult::finding(CheckId::HttpVersion, "a.example", Reason::Deadline),
        CheckResult::blocked(CheckId::TcpConnect, "a.example:443", &failing),
    ]
}
