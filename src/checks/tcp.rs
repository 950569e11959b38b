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
