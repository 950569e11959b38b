//! One case per target kind × the layer where the run stopped (a failure or the deadline):
//! the rows of the report are the same set in every case.

use super::*;
use crate::catalogue::Reason;
use crate::model::Status;
use crate::model::TargetKind;
use crate::plan::Route;
use crate::plan::{Credentials, Endpoint, Host, ProxyEndpoint, Scheme};

const KINDS: [TargetKind; 5] = [
    TargetKind::Direct,
    TargetKind::LegacyCertificate,
    TargetKind::InCluster,
    TargetKind::GitlabAgent,
    TargetKind::Gitlab,
];

fn requirements() -> Vec<Requirement> {
    ["get", "create"]
        .iter()
        .map(|verb| Requirement {
            verb: verb.to_string(),
            resource: "pods".into(),
            subresource: None,
            group: String::new(),
            namespace: Default::default(),
        })
        .collect()
}

fn target(kind: TargetKind, route: Route) -> Target {
    Target {
        name: "t".into(),
        kind,
        server_display: "https://api.example.test:6443".into(),
        endpoint: Some(Endpoint {
            scheme: Scheme::Https,
            host: Host::Name("api.example.test".into()),
            port: 6443,
            base_path: String::new(),
        }),
        tls: None,
        credentials: Credentials::default(),
        route,
        namespace: "ci".into(),
        config_checks: Vec::new(),
        agent: None,
        no_proxy_nets: Vec::new(),
    }
}

fn proxy() -> Route {
    Route::Proxy(ProxyEndpoint {
        host: Host::Name("proxy.example.test".into()),
        port: 3128,
        display: "http://proxy.example.test:3128".into(),
        authorization: None,
        tls: false,
    })
}

/// What the engine records when it stops at row `stop`: the rows before it pass, `stop` fails
/// (or is the check the deadline interrupted), nothing after it is recorded.
fn stopped_at(rows: &[Row], stop: usize, deadline: bool) -> Vec<CheckResult> {
    let mut results: Vec<CheckResult> = rows[..stop]
        .iter()
        .map(|r| CheckResult::pass(r.id, r.subject.clone(), "ok"))
        .collect();
    let row = &rows[stop];
    let reason = if deadline {
        Reason::Deadline
    } else {
        Reason::Timeout
    };
    results.push(
        CheckResult::finding(row.id, row.subject.clone(), reason).with_status(if deadline {
            Status::Error
        } else {
            Status::Fail
        }),
    );
    results
}

fn keys(results: &[CheckResult]) -> Vec<String> {
    let mut keys: Vec<String> = results.iter().map(CheckResult::key).collect();
    keys.sort();
    keys
}

#[test]
fn every_kind_keeps_its_rows_wherever_the_run_stops() {
    let reqs = requirements();
    for kind in KINDS {
        for route in [Route::Direct, proxy()] {
            let t = target(kind, route);
            let rows = rows(&t, &reqs);
            let expected: Vec<String> = {
                let mut k: Vec<String> = rows
                    .iter()
                    .map(|r| CheckResult::pass(r.id, r.subject.clone(), "").key())
                    .collect();
                k.sort();
                k
            };
            // http.health never stops the steps (a server that is not ready still answers).
            let stops = (0..rows.len()).filter(|&i| rows[i].id != CheckId::HttpHealth);
            for stop in stops {
                for deadline in [false, true] {
                    let mut results = stopped_at(&rows, stop, deadline);
                    fill(&rows, &mut results);
                    assert_eq!(
                        keys(&results),
                        expected,
                        "{kind:?} stopped at {} (deadline {deadline})",
                        rows[stop].id.as_str()
                    );
                    for r in &results[stop + 1..] {
                        assert_eq!(r.status, Status::Skip, "{}", r.key());
                        let blocker =
                            CheckResult::pass(rows[stop].id, rows[stop].subject.clone(), "");
                        assert_eq!(r.blocked_by, Some(blocker.key()), "{}", r.key());
                    }
                }
            }
        }
    }
}

#[test]
fn the_gitlab_server_has_gitlab_rows_and_no_kubernetes_ones() {
    let rows = rows(&target(TargetKind::Gitlab, Route::Direct), &requirements());
    let ids: Vec<CheckId> = rows.iter().map(|r| r.id).collect();
    assert!(ids.contains(&CheckId::GitlabServer));
    assert!(ids.contains(&CheckId::GitlabAllowedAgents));
    for kubernetes in [CheckId::AuthWhoami, CheckId::RbacCanI, CheckId::HttpVersion] {
        assert!(!ids.contains(&kubernetes), "{}", kubernetes.as_str());
    }
    let agent = rows_of(TargetKind::GitlabAgent);
    assert!(agent.contains(&CheckId::GitlabKas) && agent.contains(&CheckId::RbacCanI));
    assert!(!rows_of(TargetKind::Direct).contains(&CheckId::GitlabKas));
}

fn rows_of(kind: TargetKind) -> Vec<CheckId> {
    rows(&target(kind, Route::Direct), &requirements())
        .iter()
        .map(|r| r.id)
        .collect()
}

#[test]
fn a_config_failure_without_an_endpoint_blocks_every_row() {
    let mut t = target(TargetKind::Direct, Route::Direct);
    t.endpoint = None;
    let rows = rows(&t, &requirements());
    let mut results = vec![CheckResult::finding(
        CheckId::ConfigServer,
        "",
        Reason::Missing,
    )];
    fill(&rows, &mut results);
    assert_eq!(results.len(), 1 + rows.len());
    assert!(
        results[1..]
            .iter()
            .all(|r| r.blocked_by.as_deref() == Some("config.server")),
        "{results:?}"
    );
}

#[test]
fn the_nearest_failure_blocks_and_a_warning_blocks_when_nothing_failed() {
    let t = target(TargetKind::Direct, Route::Direct);
    let rows = rows(&t, &requirements());
    // Unusable credentials (config) and then a failed http.version: auth is blocked by HTTP.
    let mut results = vec![
        CheckResult::finding(CheckId::ConfigCredentials, "t", Reason::TokenExpired),
        CheckResult::pass(CheckId::DnsResolve, "api.example.test", "ok"),
        CheckResult::pass(CheckId::TcpConnect, "10.0.0.1:6443", "ok"),
        CheckResult::pass(CheckId::TlsHandshake, "api.example.test:6443", "ok"),
        CheckResult::finding(
            CheckId::HttpVersion,
            "api.example.test:6443",
            Reason::NotKubernetes,
        ),
    ];
    fill(&rows, &mut results);
    let whoami = results
        .iter()
        .find(|r| r.id == CheckId::AuthWhoami)
        .expect("whoami row");
    assert_eq!(
        whoami.blocked_by.as_deref(),
        Some("http.version api.example.test:6443")
    );
    // Withheld credentials (a warning) stop RBAC without a failure.
    let mut results: Vec<CheckResult> = rows[..5]
        .iter()
        .map(|r| CheckResult::pass(r.id, r.subject.clone(), "ok"))
        .collect();
    results.push(CheckResult::finding(
        CheckId::AuthWhoami,
        "api.example.test:6443",
        Reason::CredentialsWithheld,
    ));
    fill(&rows, &mut results);
    assert!(
        results
            .iter()
            .filter(|r| r.id == CheckId::RbacCanI)
            .all(|r| r.blocked_by.as_deref() == Some("auth.whoami api.example.test:6443"))
    );
}

#[test]
fn a_server_that_is_not_ready_blocks_nothing() {
    let t = target(TargetKind::Direct, Route::Direct);
    let rows = rows(&t, &requirements());
    let authority = "api.example.test:6443";
    let mut results = vec![CheckResult::finding(
        CheckId::ConfigCredentials,
        "t",
        Reason::TokenExpired,
    )];
    results.extend(
        rows.iter()
            .take_while(|r| r.id != CheckId::HttpHealth)
            .map(|r| CheckResult::pass(r.id, r.subject.clone(), "ok")),
    );
    results.push(CheckResult::finding(
        CheckId::HttpHealth,
        authority,
        Reason::NotReady,
    ));
    fill(&rows, &mut results);
    let whoami = results
        .iter()
        .find(|r| r.id == CheckId::AuthWhoami)
        .expect("whoami row");
    assert_eq!(whoami.blocked_by.as_deref(), Some("config.credentials t"));
}

/// Each kind's rows, pinned: the pipeline declares them, and the report has exactly these.
#[test]
fn each_kinds_rows_are_its_pipeline() {
    let connection = "dns.resolve tcp.connect tls.handshake tls.trust tls.hostname tls.validity";
    let kubernetes = "http.version http.health auth.whoami rbac.can-i rbac.can-i";
    for (kind, server) in [
        (TargetKind::Direct, kubernetes.to_string()),
        (TargetKind::LegacyCertificate, kubernetes.to_string()),
        (TargetKind::GitlabAgent, format!("gitlab.kas {kubernetes}")),
        (TargetKind::InCluster, format!("{kubernetes} netpol.egress")),
        (
            TargetKind::Gitlab,
            "gitlab.server gitlab.allowed-agents".to_string(),
        ),
    ] {
        let ids: Vec<&str> = rows_of(kind).iter().map(|id| id.as_str()).collect();
        assert_eq!(ids.join(" "), format!("{connection} {server}"), "{kind:?}");
    }
    // A proxied route has the proxy's rows in place of tcp.connect; http:// has no certificate.
    let proxied = rows(&target(TargetKind::Direct, proxy()), &requirements());
    let ids: Vec<&str> = proxied.iter().take(4).map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "dns.resolve",
            "proxy.connect",
            "proxy.tunnel",
            "tls.handshake"
        ]
    );
    let mut plain = target(TargetKind::Direct, Route::Direct);
    if let Some(e) = plain.endpoint.as_mut() {
        e.scheme = Scheme::Http;
    }
    let ids: Vec<CheckId> = rows(&plain, &requirements()).iter().map(|r| r.id).collect();
    assert!(!ids.contains(&CheckId::TlsTrust) && ids.contains(&CheckId::TlsHandshake));
}
