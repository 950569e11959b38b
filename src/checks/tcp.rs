//! `tcp.connect`, `proxy.connect` and `proxy.tunnel`.

use crate::catalogue::{CheckId, Reason};
use crate::model::{CheckResult, Status};
use crate::net::connect::{Attempt, ConnectFailure};
use crate::net::proxy::{Tunnel, TunnelFailure};

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
