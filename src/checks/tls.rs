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
                HandshakeFailure::Stalled => Reason::Stalled,
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

/// Words in issuer names of common TLS-inspection products.
const INTERCEPTORS: &[&str] = &[
    "zscaler",
    "fortinet",
    "fortigate",
    "palo alto",
    "netskope",
    "blue coat",
    "bluecoat",
    "forcepoint",
    "websense",
    "sophos",
    "mitmproxy",
    "umbrella",
    "checkpoint",
    "check point",
    "cisco",
    "barracuda",
];

pub fn judge(
    subject: &str,
    chain: &[CertificateDer<'static>],
    settings: &TlsSettings,
    verification: &Verification,
    now: SystemTime,
    expiry_warn: Duration,
) -> Vec<CheckResult> {
    let facts: Vec<CertFacts> = chain.iter().filter_map(CertFacts::parse).collect();
    let mut results = vec![
        trust(subject, &facts, settings, verification),
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

fn chain_evidence(facts: &[CertFacts]) -> Vec<String> {
    facts
        .iter()
        .enumerate()
        .map(|(i, f)| format!("presented #{i}: {}", f.describe()))
        .collect()
}

fn trust(
    subject: &str,
    facts: &[CertFacts],
    settings: &TlsSettings,
    v: &Verification,
) -> CheckResult {
    let id = CheckId::TlsTrust;
    let mut evidence = chain_evidence(facts);
    evidence.push(format!("trust anchors: {}", v.anchors));
    let error = match v.trust() {
        Ok(()) => {
            return CheckResult::pass(id, subject, format!("chain verified against {}", v.anchors))
                .with_evidence_lines(evidence);
        }
        Err(e) => e,
    };
    evidence.push(format!("verifier: {error}"));
    let reason = classify_trust(error, facts, settings);
    CheckResult::finding(id, subject, reason).with_evidence_lines(evidence)
}

/// webpki's error plus the presented chain → the one reason a person can act on.
fn classify_trust(error: &rustls::Error, facts: &[CertFacts], settings: &TlsSettings) -> Reason {
    let pinned_ca = !settings.ca_certs.is_empty() && settings.ca_replaces_system_roots;
    match error {
        rustls::Error::InvalidCertificate(CertificateError::BadSignature) => {
            return Reason::BadSignature;
        }
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {}
        other => {
            let text = format!("{other:?}");
            if text.contains("UsedAsCa") || text.contains("UsedAsEndEntity") {
                return Reason::NotACa;
            }
        }
    }
    let Some(leaf) = facts.first() else {
        return Reason::UnknownAuthority;
    };
    let names = facts
        .iter()
        .map(|f| format!("{} {}", f.issuer, f.subject).to_lowercase())
        .collect::<String>();
    if INTERCEPTORS.iter().any(|w| names.contains(w)) {
        return Reason::Intercepted;
    }
    if leaf.self_issued && facts.len() == 1 {
        return Reason::SelfSigned;
    }
    let top = facts.last().unwrap_or(leaf);
    let pinned_subjects: Vec<String> = settings
        .ca_certs
        .iter()
        .filter_map(CertFacts::parse)
        .map(|f| f.subject)
        .collect();
    // A CA of the same name but another key: the cluster was rebuilt (kubeadm names every CA
    // "kubernetes"), the most common way a pinned CA stops matching.
    if pinned_ca && pinned_subjects.contains(&top.issuer) {
        return Reason::CaMismatch;
    }
    if !top.self_issued && facts.len() == 1 {
        // The leaf's issuer was neither sent nor trusted.
        return Reason::MissingIntermediate;
    }
    if pinned_ca && !top.self_issued {
        // A complete chain from some other PKI than the pinned CA.
        return Reason::CaMismatch;
    }
    Reason::UnknownAuthority
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
