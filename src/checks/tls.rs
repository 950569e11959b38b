//! `tls.handshake`, `tls.trust`, `tls.hostname`, `tls.validity`: the chain is captured once and
//! judged three ways, so an expired certificate on the wrong name reports both problems.

use std::time::{Duration, SystemTime};

use rustls::CertificateError;
use rustls::pki_types::CertificateDer;

use crate::catalogue::{CheckId, Reason};
use crate::model::{CheckResult, Status};
use crate::net::tls::{Handshake, HandshakeFailure, Verification};
use crate::plan::TlsSettings;
use crate::x509::{CertFacts, format_time, human_duration};

pub fn handshake(subject: &str, hs: &Handshake) -> CheckResult {
    let id = CheckId::TlsHandshake;
    match &hs.outcome {
        Ok(_) => CheckResult::pass(
            id,
            subject,
            format!(
                "{} handshake, {} certificate(s) presented{}",
                hs.version.as_deref().unwrap_or("TLS"),
                hs.chain.len(),
                if hs.alpn_h2 { ", HTTP/2" } else { "" }
            ),
        )
        .with_duration(hs.elapsed),
        Err(failure) => {
            let reason = match failure {
                HandshakeFailure::NotTls => Reason::NotTls,
                HandshakeFailure::Alert(_) => Reason::Alert,
                HandshakeFailure::NoCommonVersion => Reason::NoCommonVersion,
                HandshakeFailure::Closed => Reason::Closed,
                HandshakeFailure::ClientCertRequired => Reason::ClientCertRequired,
                // Spec wave 2: no answer to the ClientHello is `timeout`; the small-MSS retry
                // (`after_small_mss_retry`) turns it into `mtu-blackhole` when that completes.
                HandshakeFailure::Stalled => Reason::Timeout,
                HandshakeFailure::Oversized => Reason::OversizedCertificate,
                HandshakeFailure::Other(_) => Reason::HandshakeFailed,
            };
            let mut r = CheckResult::finding(id, subject, reason)
                .with_evidence(format!(
                    "{subject}: {} after {} ms",
                    hs.detail,
                    hs.elapsed.as_millis()
                ))
                .with_duration(hs.elapsed);
            if let HandshakeFailure::Alert(alert) = failure {
                r = r.with_summary(format!(
                    "the server aborted the TLS handshake with alert {alert}"
                ));
            }
            r
        }
    }
}

/// A handshake that got no answer, judged again after one retry over a connection announcing a
/// small MSS: if that one completes, full-size segments are what vanish on the path (an MTU
/// black hole: a smaller MTU on the way and its ICMP "fragmentation needed" dropped), so the fix
/// is the MTU, not the server. `retry` is the retry's handshake, or why it could not be made.
pub fn after_small_mss_retry(
    first: CheckResult,
    retry: &Result<Handshake, String>,
    mss: u32,
) -> CheckResult {
    match retry {
        Ok(hs) if hs.outcome.is_ok() => {
            let evidence = first.evidence.clone();
            CheckResult::finding(first.id, first.subject, Reason::MtuBlackhole)
                .with_evidence_lines(evidence)
                .with_evidence(format!(
                    "retry over a new connection announcing MSS {mss}: handshake complete after {} ms, {} certificate(s)",
                    hs.elapsed.as_millis(),
                    hs.chain.len()
                ))
                .with_duration(first.duration)
        }
        Ok(hs) => first
            .with_evidence(format!(
                "retry announcing MSS {mss}: {} after {} ms (not an MTU problem, or not only)",
                hs.detail,
                hs.elapsed.as_millis()
            ))
            .with_fix_detail(
                "A retry with small packets got no answer either, so packet size is not the cause.",
            ),
        Err(e) => first.with_evidence(format!("retry announcing MSS {mss}: {e}")),
    }
}

mod trust;

/// How many presented certificates the trust reading looks at. Real chains have two to four;
/// the cap bounds the signature checks a hostile server can make us do (each link tries every
/// same-named certificate).
const MAX_JUDGED_CHAIN: usize = 16;

use trust::{Cert, GITLAB_CA, KUBECONFIG_CA, TrustInput};

/// Judges the captured chain three ways. `via_proxy` names the proxy the connection went
/// through, if any: a chain that came through one may be the proxy's own.
pub fn judge(
    subject: &str,
    chain: &[CertificateDer<'static>],
    settings: &TlsSettings,
    verification: &Verification,
    via_proxy: Option<&str>,
    now: SystemTime,
    expiry_warn: Duration,
) -> Vec<CheckResult> {
    let facts: Vec<CertFacts> = chain.iter().filter_map(CertFacts::parse).collect();
    let mut results = vec![
        trust(subject, chain, settings, verification, via_proxy, now),
        hostname(subject, facts.first(), settings, verification),
        validity(subject, facts.first(), now, expiry_warn),
    ];
    if settings.insecure_skip_verify {
        for r in &mut results {
            if r.status == Status::Fail {
                r.status = Status::Warn;
                r.summary = format!("{} (ignored: insecure-skip-tls-verify)", r.summary);
            }
        }
    }
    results
}

fn chain_evidence(chain: &[CertificateDer<'static>]) -> Vec<String> {
    let mut lines: Vec<String> = chain
        .iter()
        .take(MAX_JUDGED_CHAIN)
        .enumerate()
        .map(|(i, der)| match CertFacts::parse(der) {
            Some(f) => format!("presented #{i}: {}", f.describe()),
            None => format!("presented #{i}: not a readable X.509 certificate"),
        })
        .collect();
    if chain.len() > MAX_JUDGED_CHAIN {
        lines.push(format!(
            "{} more certificates presented (not judged: real chains have two to four)",
            chain.len() - MAX_JUDGED_CHAIN
        ));
    }
    lines
}

fn trust(
    subject: &str,
    chain: &[CertificateDer<'static>],
    settings: &TlsSettings,
    v: &Verification,
    via_proxy: Option<&str>,
    now: SystemTime,
) -> CheckResult {
    let id = CheckId::TlsTrust;
    let mut evidence = chain_evidence(chain);
    evidence.push(format!("trust anchors: {}", v.anchors));
    let error = match v.trust() {
        Ok(()) => {
            return CheckResult::pass(id, subject, format!("chain verified against {}", v.anchors))
                .with_evidence_lines(evidence);
        }
        Err(e) => e,
    };
    evidence.push(format!("verifier: {}", verifier_text(error)));
    let input = TrustInput {
        chain: chain
            .iter()
            .take(MAX_JUDGED_CHAIN)
            .filter_map(Cert::parse)
            .collect(),
        anchors: settings.ca_certs.iter().filter_map(Cert::parse).collect(),
        via_proxy,
        bad_signature: matches!(
            error,
            rustls::Error::InvalidCertificate(CertificateError::BadSignature)
        ),
        out_of_date: matches!(
            error,
            rustls::Error::InvalidCertificate(
                CertificateError::Expired
                    | CertificateError::ExpiredContext { .. }
                    | CertificateError::NotValidYet
                    | CertificateError::NotValidYetContext { .. }
            )
        ),
        unsupported_algorithm: matches!(
            error,
            rustls::Error::InvalidCertificate(
                CertificateError::UnsupportedSignatureAlgorithmContext { .. }
                    | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. }
            )
        ),
        wrong_purpose: matches!(
            error,
            rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }
            )
        ),
        now,
        // Only the GitLab server's CA is added to the system roots rather than replacing them.
        ca_setting: if settings.ca_replaces_system_roots {
            KUBECONFIG_CA
        } else {
            GITLAB_CA
        },
    };
    let reading = trust::read(&input);
    let mut r = CheckResult::finding(id, subject, reading.reason)
        .with_evidence_lines(reading.evidence)
        .with_evidence_lines(evidence);
    if let Some(detail) = reading.fix_detail {
        r = r.with_fix_detail(detail);
    }
    r
}

/// The verifier's complaint for evidence. rustls prints the algorithm variants' context as
/// decimal byte arrays, which nobody can read; the reading names the certificate instead.
fn verifier_text(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(
            CertificateError::UnsupportedSignatureAlgorithmContext { .. }
            | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. },
        ) => "invalid peer certificate: unsupported signature algorithm".to_string(),
        other => other.to_string(),
    }
}

fn hostname(
    subject: &str,
    leaf: Option<&CertFacts>,
    settings: &TlsSettings,
    v: &Verification,
) -> CheckResult {
    let id = CheckId::TlsHostname;
    let name = &settings.server_name;
    let Some(leaf) = leaf else {
        return CheckResult::finding(id, subject, Reason::Mismatch)
            .with_evidence("no certificate to check");
    };
    let evidence = format!("certificate names: {}", leaf.names());
    if v.name().is_ok() {
        return CheckResult::pass(id, subject, format!("certificate is valid for {name}"))
            .with_evidence(evidence);
    }
    let is_ip = name.parse::<std::net::IpAddr>().is_ok();
    let reason = if !leaf.has_san && leaf.common_name.as_deref() == Some(name.as_str()) {
        Reason::CnOnly
    } else if is_ip {
        Reason::IpNotInSan
    } else {
        Reason::Mismatch
    };
    let mut r = CheckResult::finding(id, subject, reason)
        .with_summary(format!("the certificate is not valid for {name}"))
        .with_evidence(format!("verified name: {name}"))
        .with_evidence(evidence);
    if let Some(good) = leaf.dns_names.iter().find(|d| !d.starts_with('*')) {
        r.fix = Some(format!(
            "The certificate is valid for {good}: use it in `server:`, or keep the address and set `tls-server-name: {good}` in the kubeconfig cluster."
        ));
    }
    r
}

fn validity(
    subject: &str,
    leaf: Option<&CertFacts>,
    now: SystemTime,
    expiry_warn: Duration,
) -> CheckResult {
    let id = CheckId::TlsValidity;
    let Some(leaf) = leaf else {
        return CheckResult::finding(id, subject, Reason::Expired)
            .with_evidence("no certificate to check");
    };
    let evidence = vec![
        leaf.describe(),
        format!("local clock: {}", format_time(now)),
    ];
    if leaf.not_after < now {
        let ago = now.duration_since(leaf.not_after).unwrap_or_default();
        return CheckResult::finding(id, subject, Reason::Expired)
            .with_summary(format!(
                "the server certificate expired {} ago ({})",
                human_duration(ago),
                format_time(leaf.not_after)
            ))
            .with_evidence_lines(evidence);
    }
    if leaf.not_before > now {
        let until = leaf.not_before.duration_since(now).unwrap_or_default();
        return CheckResult::finding(id, subject, Reason::NotYetValid)
            .with_summary(format!(
                "the server certificate is valid only from {} (in {})",
                format_time(leaf.not_before),
                human_duration(until)
            ))
            .with_evidence_lines(evidence);
    }
    let left = leaf.not_after.duration_since(now).unwrap_or_default();
    if left < expiry_warn {
        return CheckResult::finding(id, subject, Reason::ExpiringSoon)
            .with_summary(format!(
                "the server certificate expires in {}",
                human_duration(left)
            ))
            .with_evidence_lines(evidence);
    }
    CheckResult::pass(
        id,
        subject,
        format!(
            "valid until {} ({} left)",
            format_time(leaf.not_after),
            human_duration(left)
        ),
    )
    .with_evidence_lines(evidence)
}
