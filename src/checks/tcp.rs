//! `tcp.connect`, `proxy.connect` and `proxy.tunnel`.

use crate::catalogue::{CheckId, Reason};
use crate::model::{CheckResult, Status};
use crate::net::connect::{Attempt, ConnectFailure};
use crate::net::proxy::{Tunnel, TunnelFailure};
use crate::net::tls::Handshake;
use crate::secret::{QUOTE_CHARS, quote};

/// One result for the configured `subject` (`host:port` of the API server, or of the proxy),
/// with one evidence line per resolved address. The subject is what the user wrote, never an
/// address: addresses change (a load balancer moves) and the JUnit test name, built from the
/// subject, must not. The layer passes if any address connects; the others then only warn (a
/// broken IPv6 path, say). When none connects, the reason is the first address's (the one a
/// client tries first); the evidence has every address's own outcome.
pub fn connect(
    id: CheckId,
    subject: &str,
    attempts: &[Attempt],
    via_proxy: Option<&str>,
) -> CheckResult {
    let evidence: Vec<String> = attempts.iter().map(attempt_line).collect();
    let elapsed = attempts.iter().map(|a| a.elapsed).max().unwrap_or_default();
    let connected = attempts.iter().find(|a| a.outcome.is_ok());
    let failures: Vec<&ConnectFailure> = attempts
        .iter()
        .filter_map(|a| a.outcome.as_ref().err())
        .collect();
    let result = match (connected, failures.first()) {
        (Some(ok), None) => {
            let at = ok.addr.to_string();
            let what = match via_proxy {
                Some(p) => format!("connected to proxy {p} at {at}"),
                None if at == subject => format!("connected to {subject}"),
                None => format!("connected to {subject} at {at}"),
            };
            CheckResult::pass(id, subject, what)
        }
        (Some(_), Some(first)) => {
            let r = CheckResult::finding(id, subject, reason_of(first));
            let summary = format!(
                "{} ({} of {} addresses; another address works)",
                r.summary,
                failures.len(),
                attempts.len()
            );
            r.with_status(Status::Warn).with_summary(summary)
        }
        (None, Some(first)) => CheckResult::finding(id, subject, reason_of(first)),
        (None, None) => CheckResult::finding(id, subject, Reason::ConnectFailed)
            .with_summary(format!("no address to connect to for {subject}")),
    };
    result.with_evidence_lines(evidence).with_duration(elapsed)
}

/// `10.0.0.5:6443: Connection refused (os error 111) after 0 ms`.
fn attempt_line(a: &Attempt) -> String {
    format!(
        "{}: {} after {} ms",
        a.addr,
        a.detail,
        a.elapsed.as_millis()
    )
}

fn reason_of(failure: &ConnectFailure) -> Reason {
    match failure {
        ConnectFailure::Refused => Reason::Refused,
        ConnectFailure::Timeout => Reason::Timeout,
        ConnectFailure::HostUnreachable => Reason::HostUnreachable,
        ConnectFailure::NetworkUnreachable => Reason::NetworkUnreachable,
        ConnectFailure::Reset => Reason::Reset,
        ConnectFailure::Other(_) => Reason::ConnectFailed,
    }
}

pub fn tunnel(proxy: &str, authority: &str, t: &Tunnel) -> CheckResult {
    let id = CheckId::ProxyTunnel;
    let line = if t.status_line.is_empty() {
        "(no status line)".to_string()
    } else {
        quote(&t.status_line, QUOTE_CHARS)
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
                TunnelFailure::Refused => Reason::UnexpectedStatus,
                TunnelFailure::NotAProxy
                | TunnelFailure::Closed
                | TunnelFailure::UnterminatedHead => Reason::NotAProxy,
            };
            let mut r = CheckResult::finding(id, proxy, reason).with_evidence(evidence);
            match failure {
                TunnelFailure::Refused => {
                    r = r.with_summary(format!(
                        "the proxy answered CONNECT with an unexpected HTTP status: {line}"
                    ));
                }
                TunnelFailure::UnterminatedHead => {
                    r = r.with_summary(
                        "the proxy's answer to CONNECT never ended its header block: no tunnel was opened",
                    );
                }
                _ => {}
            }
            r.with_duration(t.elapsed)
        }
    }
}

/// An `https://` proxy judged by what it answered: a TLS handshake (tunnelling through a TLS
/// proxy is not checked yet: `unsupported`), an HTTP answer to a plain `CONNECT` after the
/// ClientHello failed (`not-tls`), or neither (`handshake-failed`). `connected` is the passing
/// `proxy.connect` result this replaces.
pub fn tls_proxy(connected: CheckResult, hs: &Handshake, plain: Option<&Tunnel>) -> CheckResult {
    let (id, subject) = (connected.id, connected.subject.clone());
    let connected_line = connected.evidence.join("; ");
    let hello = format!(
        "TLS ClientHello to the proxy: {} after {} ms",
        hs.detail,
        hs.elapsed.as_millis()
    );
    let http_answer = plain
        .filter(|t| t.status_line.starts_with("HTTP/"))
        .map(|t| quote(&t.status_line, QUOTE_CHARS));
    let r = match (&hs.outcome, http_answer) {
        (Ok(_), _) => {
            CheckResult::finding(id, &subject, Reason::Unsupported).with_evidence(format!(
                "TLS handshake with the proxy complete ({})",
                hs.version().unwrap_or("TLS")
            ))
        }
        (Err(_), Some(line)) => CheckResult::finding(id, &subject, Reason::NotTls)
            .with_evidence(hello)
            .with_evidence(format!(
                "plain CONNECT on a new connection (no credentials): {line}"
            )),
        (Err(_), None) => {
            CheckResult::finding(id, &subject, Reason::HandshakeFailed).with_evidence(hello)
        }
    };
    r.with_evidence(connected_line).with_duration(hs.elapsed)
}

/// A managed cluster's endpoint that does not answer: the fix names what that provider calls
/// the settings that decide who may connect (a private endpoint is reachable only inside its
/// network; a public one only from its authorized networks). `host` is the server's host as
/// written in the kubeconfig; other hosts, and other failures, pass unchanged.
pub fn explain_managed_endpoint(
    result: CheckResult,
    host: &str,
    attempts: &[Attempt],
) -> CheckResult {
    let Some(provider) = crate::checks::cloud::Provider::of_host(host) else {
        return result;
    };
    let silent = matches!(
        result.reason,
        Some(Reason::Timeout | Reason::NetworkUnreachable)
    );
    if !silent || !result.status.is_failure() {
        return result;
    }
    let private: Vec<String> = attempts
        .iter()
        .filter(|a| crate::checks::cloud::is_private(&a.addr.ip()))
        .map(|a| a.addr.ip().to_string())
        .collect();
    if private.is_empty() {
        let result = result.with_evidence(format!("{host} is {}", provider.label()));
        provider.fix(result, provider.authorized_networks_fix())
    } else {
        let result = result.with_evidence(format!(
            "{host} is {}, and answered private addresses [{}]",
            provider.label(),
            private.join(", ")
        ));
        provider.fix(result, provider.private_endpoint_fix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn timed_out(addr: &str) -> Attempt {
        Attempt {
            addr: addr.parse().unwrap(),
            outcome: Err(ConnectFailure::Timeout),
            elapsed: Duration::from_secs(5),
            detail: "no answer".into(),
        }
    }

    fn fix_for(host: &str, addr: &str) -> String {
        let attempts = [timed_out(addr)];
        let subject = format!("{host}:443");
        let r = connect(CheckId::TcpConnect, &subject, &attempts, None);
        explain_managed_endpoint(r, host, &attempts)
            .fix
            .unwrap_or_default()
    }

    /// A proxy's status line may be 16 KiB of anything: quoted redacted, then cut with a marker.
    #[test]
    fn a_hostile_proxy_status_line_is_redacted_and_cut() {
        let token = "glpat-AbCdEf0123456789xyzw";
        let line = format!(
            "HTTP/1.1 403 {} {token} {}",
            "f".repeat(280),
            "z".repeat(16_000)
        );
        let t = Tunnel {
            outcome: Err(TunnelFailure::Forbidden),
            status_line: line,
            elapsed: Duration::ZERO,
        };
        let r = tunnel("proxy:3128", "api:443", &t);
        let text = format!("{} {}", r.summary, r.evidence.join(" "));
        assert!(text.len() < 1_000, "{}", text.len());
        assert!(text.contains("more characters)"), "{text}");
        assert!(!text.contains("AbCdEf"), "{text}");
    }

    #[test]
    fn a_managed_endpoints_timeout_names_its_network_rules() {
        let fix = fix_for("abc.gr7.eu-west-1.eks.amazonaws.com", "10.0.190.233:443");
        assert!(fix.contains("inside the cluster's VPC"), "{fix}");
        assert!(fix.contains("publicAccessCidrs"), "{fix}");
        let fix = fix_for("dns-1.hcp.westeurope.azmk8s.io", "35.202.107.4:443");
        assert!(fix.contains("--api-server-authorized-ip-ranges"), "{fix}");
        assert!(!fix.contains("virtual network"), "{fix}");
        // GKE's DNS-based endpoint is IAM-gated: authorized networks are not its fix.
        let fix = fix_for("gke-0a1b-proj.europe-west1.gke.goog", "35.202.107.4:443");
        assert!(fix.contains("container.clusters.connect"), "{fix}");
        // ...and never told to use them: the generic "authorized networks" advice is not kept,
        // and a silent drop there is the runner's own egress, not IAM (which answers 403).
        assert!(
            !fix.contains("the API server's authorized networks"),
            "{fix}"
        );
        assert!(!fix.contains("security group"), "{fix}");
        assert!(fix.contains("403") && fix.contains("egress"), "{fix}");
        let plain = fix_for("api.k8s.test", "10.0.0.1:443");
        assert!(!plain.contains("VPC"), "{plain}");
    }
}
