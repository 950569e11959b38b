//! `tcp.connect`, `proxy.connect` and `proxy.tunnel`.

use crate::catalogue::{CheckId, Reason};
use crate::model::{CheckResult, Status};
use crate::net::connect::{Attempt, ConnectFailure};
use crate::net::proxy::{Tunnel, TunnelFailure};

/// One result per address. When at least one address connected, the others only warn: the
/// target works, but some of its addresses do not (a broken IPv6 path, say).
pub fn connect(id: CheckId, attempts: &[Attempt], via_proxy: Option<&str>) -> Vec<CheckResult> {
    let any_ok = attempts.iter().any(|a| a.outcome.is_ok());
    attempts
        .iter()
        .map(|a| {
            let subject = a.addr.to_string();
            let timing = format!("{} after {} ms", a.detail, a.elapsed.as_millis());
            match &a.outcome {
                Ok(_) => {
                    let what = match via_proxy {
                        Some(p) => format!("connected to proxy {p} at {subject}"),
                        None => format!("connected to {subject}"),
                    };
                    CheckResult::pass(id, subject.clone(), what)
                        .with_evidence(timing)
                        .with_duration(a.elapsed)
                }
                Err(failure) => {
                    let reason = match failure {
                        ConnectFailure::Refused => Reason::Refused,
                        ConnectFailure::Timeout => Reason::Timeout,
                        ConnectFailure::HostUnreachable => Reason::HostUnreachable,
                        ConnectFailure::NetworkUnreachable => Reason::NetworkUnreachable,
                        ConnectFailure::Reset => Reason::Reset,
                        ConnectFailure::Other(_) => Reason::ConnectFailed,
                    };
                    let mut r = CheckResult::finding(id, subject.clone(), reason)
                        .with_evidence(format!("{subject}: {timing}"))
                        .with_duration(a.elapsed);
                    if any_ok {
                        let summary = format!("{} (another address works)", r.summary);
                        r = r.with_status(Status::Warn).with_summary(summary);
                    }
                    r
                }
            }
        })
        .collect()
}

pub fn tunnel(proxy: &str, authority: &str, t: &Tunnel) -> CheckResult {
    let id = CheckId::ProxyTunnel;
    let line = if t.status_line.is_empty() {
        "(no status line)".to_string()
    } else {
        t.status_line.clone()
    };
    let evidence = format!(
        "CONNECT {authority} → {line} after {} ms",
        t.elapsed.as_millis()
    );
    match &t.outcome {
        Ok(_) => CheckResult::pass(id, proxy, format!("proxy tunnels to {authority}"))
            .with_evidence(evidence),
        Err(failure) => {
            let reason = match failure {
                TunnelFailure::Forbidden => Reason::Forbidden,
                TunnelFailure::AuthRequired => Reason::AuthRequired,
                TunnelFailure::UpstreamFailed => Reason::UpstreamFailed,
                TunnelFailure::Timeout => Reason::Timeout,
                TunnelFailure::NotAProxy | TunnelFailure::Closed | TunnelFailure::Refused => {
                    Reason::NotAProxy
                }
            };
            let mut r = CheckResult::finding(id, proxy, reason).with_evidence(evidence);
            if *failure == TunnelFailure::Refused {
                r = r.with_summary(format!("the proxy refused to tunnel: {line}"));
            }
            r.with_duration(t.elapsed)
        }
    }
}

/// A managed cluster's endpoint that does not answer: the fix names what that provider calls
/// the settings that decide who may connect (a private endpoint is reachable only inside its
/// network; a public one only from its authorized networks). `host` is the server's host as
/// written in the kubeconfig; results of other hosts, and other failures, pass unchanged.
pub fn explain_managed_endpoint(results: Vec<CheckResult>, host: &str) -> Vec<CheckResult> {
    let Some(provider) = crate::checks::cloud::Provider::of_host(host) else {
        return results;
    };
    results
        .into_iter()
        .map(|r| {
            let silent = matches!(r.reason, Some(Reason::Timeout | Reason::NetworkUnreachable));
            let private = r
                .subject
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|a| crate::checks::cloud::is_private(&a.ip()));
            match (silent, private) {
                (false, _) => r,
                (true, true) => r
                    .with_evidence(format!(
                        "{host} is {}, and this address is private",
                        provider.label()
                    ))
                    .with_fix_detail(provider.private_endpoint_fix()),
                (true, false) => r
                    .with_evidence(format!("{host} is {}", provider.label()))
                    .with_fix_detail(provider.authorized_networks_fix()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::connect::Attempt;
    use std::time::Duration;

    fn timed_out(addr: &str) -> Attempt {
        Attempt {
            addr: addr.parse().unwrap(),
            outcome: Err(ConnectFailure::Timeout),
            elapsed: Duration::from_secs(5),
            detail: "no answer".into(),
        }
    }

    #[test]
    fn a_managed_endpoints_timeout_names_its_network_rules() {
        let eks = "abc.gr7.eu-west-1.eks.amazonaws.com";
        let private = connect(CheckId::TcpConnect, &[timed_out("10.0.190.233:443")], None);
        let private = explain_managed_endpoint(private, eks);
        let fix = private[0].fix.clone().unwrap_or_default();
        assert!(fix.contains("inside the cluster's VPC"), "{fix}");
        assert!(fix.contains("publicAccessCidrs"), "{fix}");
        let public = connect(CheckId::TcpConnect, &[timed_out("35.202.107.4:443")], None);
        let fix = explain_managed_endpoint(public, "dns-1.hcp.westeurope.azmk8s.io")[0]
            .fix
            .clone()
            .unwrap_or_default();
        assert!(fix.contains("--api-server-authorized-ip-ranges"), "{fix}");
        let plain = connect(CheckId::TcpConnect, &[timed_out("10.0.0.1:443")], None);
        let before = plain[0].fix.clone();
        assert_eq!(
            explain_managed_endpoint(plain, "api.k8s.test")[0].fix,
            before
        );
    }
}
