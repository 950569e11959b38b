//! `tls.handshake`, `tls.trust`, `tls.hostname`, `tls.validity`: the chain is captured once and
//! judged three ways, so an expired certificate on the wrong name reports both problems.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use rustls::CertificateError;
use rustls::pki_types::CertificateDer;

use crate::catalogue::{self, CheckId, Reason};
use crate::model::{CheckResult, Status, TargetKind};
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
                hs.version().unwrap_or("TLS"),
                hs.chain.len(),
                if hs.alpn_h2() { ", HTTP/2" } else { "" }
            ),
        )
        .with_duration(hs.elapsed),
        // The server's part went well; whether its certificate verifies is tls.trust's.
        Err(HandshakeFailure::Refused(_)) => {
            CheckResult::pass(id, subject, &hs.detail).with_duration(hs.elapsed)
        }
        // The server signed with a key this tool's verifier refuses: tls.trust's `weak-key`.
        Err(_) if weak_key_bits(hs).is_some() => CheckResult::pass(
            id,
            subject,
            "handshake made, but the server's signature uses a key kube-reach cannot verify (see tls.trust)",
        )
        .with_evidence(format!("{subject}: {}", hs.detail))
        .with_duration(hs.elapsed),
        Err(failure) => {
            let reason = match failure {
                HandshakeFailure::NotTls => Reason::NotTls,
                HandshakeFailure::Alert(_) => Reason::Alert,
                HandshakeFailure::NoCommonVersion => Reason::NoCommonVersion,
                HandshakeFailure::Closed => Reason::Closed,
                HandshakeFailure::ClientCertRequired => Reason::ClientCertRequired,
                // Spec wave 2: no answer to the ClientHello is `timeout`; the small-MSS retry
                // (`after_mss_retries`) makes it `mtu-blackhole` when only the small one completes.
                HandshakeFailure::Stalled => Reason::Timeout,
                HandshakeFailure::Oversized => Reason::OversizedCertificate,
                HandshakeFailure::Other(_) | HandshakeFailure::Refused(_) => {
                    Reason::HandshakeFailed
                }
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

/// The smallest RSA key rustls' verifier (webpki with ring) accepts; Go's crypto/x509, so
/// kubectl, accepts 1024-bit keys still.
const MIN_RSA_BITS: usize = 2048;

/// The leaf's RSA key size, when the handshake failed on the server's signature
/// (`BadSignature`) and that key is under [`MIN_RSA_BITS`]: the signature may be right, the
/// verifier refuses the key.
fn weak_key_bits(hs: &Handshake) -> Option<usize> {
    let Err(HandshakeFailure::Other(error)) = &hs.outcome else {
        return None;
    };
    if !error.contains("BadSignature") {
        return None;
    }
    let (_, leaf) = x509_parser::parse_x509_certificate(hs.chain.first()?.as_ref()).ok()?;
    match leaf.public_key().parsed().ok()? {
        x509_parser::public_key::PublicKey::RSA(rsa) if rsa.key_size() < MIN_RSA_BITS => {
            Some(rsa.key_size())
        }
        _ => None,
    }
}

/// `tls.handshake` with where it went: the address and the server name sent (SNI).
pub fn handshake_at(subject: &str, hs: &Handshake, addr: SocketAddr, sni: &str) -> CheckResult {
    handshake(subject, hs).with_evidence(format!("address {addr}, SNI {sni}"))
}

/// Whether the handshake's failure stops the connection steps. One kube-reach ended itself
/// after the chain arrived (`Refused`) is judged by the certificate's checks all the same.
pub fn stops_at_handshake(hs: &Handshake) -> bool {
    !matches!(hs.outcome, Ok(_) | Err(HandshakeFailure::Refused(_)))
}

/// `tls.trust weak-key` for a handshake [`weak_key_bits`] explains: this tool's limit, named
/// with the key size, not a wrong CA or name (kubectl would connect).
pub fn weak_key(subject: &str, hs: &Handshake, kind: TargetKind) -> Option<CheckResult> {
    let bits = weak_key_bits(hs)?;
    Some(
        CheckResult::finding_for(CheckId::TlsTrust, subject, Reason::WeakKey, kind)
            .with_summary(format!(
                "the server's certificate has a {bits}-bit RSA key, which kube-reach's verifier refuses (kubectl would connect)"
            ))
            .with_evidence(format!("leaf key: RSA {bits} bits (at least {MIN_RSA_BITS} needed here)"))
            .with_evidence(format!("verifier: {}", hs.detail))
            .with_evidence_lines(chain_evidence(&presented(&hs.chain), hs.chain.len())),
    )
}

/// The presented chain parsed once, positions kept: a certificate that does not parse is
/// `None`, never replaced by the next one.
fn presented<'a>(chain: &'a [CertificateDer<'static>]) -> Vec<Option<Cert<'a>>> {
    chain
        .iter()
        .take(MAX_JUDGED_CHAIN)
        .map(Cert::parse)
        .collect()
}

/// A handshake that got no answer, judged again after one retry over a connection announcing a
/// small MSS: if that one completes, full-size segments are what vanish on the path (an MTU
/// black hole: a smaller MTU on the way and its ICMP "fragmentation needed" dropped), so the fix
/// is the MTU, not the server. `retry` is the retry's handshake, or why it could not be made.
/// The server's flight arriving is what counts, so a retry that kube-reach itself ended after
/// judging the certificate (a client identity, a server that did not verify) counts too.
///
/// The small retry proves packet size only against a full-size retry made alongside it
/// (`full`): when that one completes too, the first stall was the server's or its load
/// balancer's (one dead backend), not the path's, and the finding stays `timeout`.
pub fn after_mss_retries(
    first: CheckResult,
    full: &Result<Handshake, String>,
    small: &Result<Handshake, String>,
    mss: u32,
) -> CheckResult {
    match full {
        Ok(hs) if hs.flight_arrived() => first
            .with_evidence(format!(
                "retry over a new connection at the normal MSS: {} after {} ms, {} certificate(s) (the stall was not packet size)",
                hs.detail,
                hs.elapsed.as_millis(),
                hs.chain.len()
            ))
            .with_fix_detail(
                "A plain retry completed, so the server answers only now and then: look for a dead or overloaded backend behind the API server's load balancer (its health checks).",
            ),
        _ => after_small_mss_retry(first, small, mss),
    }
}

fn after_small_mss_retry(
    first: CheckResult,
    retry: &Result<Handshake, String>,
    mss: u32,
) -> CheckResult {
    match retry {
        Ok(hs) if hs.flight_arrived() => {
            let evidence = first.evidence.clone();
            CheckResult::finding(first.id, first.subject, Reason::MtuBlackhole)
                .with_evidence_lines(evidence)
                .with_evidence(format!(
                    "retry over a new connection announcing MSS {mss}: {} after {} ms, {} certificate(s)",
                    hs.detail,
                    hs.elapsed.as_millis(),
                    hs.chain.len()
                ))
                .with_duration(first.duration)
        }
        Ok(hs) => {
            let first = first.with_evidence(format!(
                "retry announcing MSS {mss}: {} after {} ms (not an MTU problem, or not only)",
                hs.detail,
                hs.elapsed.as_millis()
            ));
            match hs.outcome {
                Err(HandshakeFailure::Stalled) => first.with_fix_detail(
                    "A retry with small packets got no answer either, so packet size is not the cause.",
                ),
                _ => first,
            }
        }
        Err(e) => first.with_evidence(format!("retry announcing MSS {mss}: {e}")),
    }
}

mod trust;

/// How many presented certificates the trust reading looks at. Real chains have two to four;
/// the cap bounds the signature checks a hostile server can make us do (each link tries every
/// same-named certificate).
const MAX_JUDGED_CHAIN: usize = 16;

use trust::{Cert, TrustInput};

/// What the TLS judgement needs to know about the target and the moment besides the chain.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// The target's kind: the fixes name where that kind takes its CA and server URL from.
    pub kind: TargetKind,
    /// The proxy the connection went through, if any: a chain that came through one may be
    /// the proxy's own.
    pub via_proxy: Option<&'a str>,
    pub now: SystemTime,
    pub expiry_warn: Duration,
}

/// Judges the captured chain three ways.
pub fn judge(
    subject: &str,
    chain: &[CertificateDer<'static>],
    settings: &TlsSettings,
    verification: &Verification,
    seen: Seen<'_>,
) -> Vec<CheckResult> {
    let Seen {
        kind,
        now,
        expiry_warn,
        ..
    } = seen;
    // Parsed once, positions kept: a leaf that does not parse is `None`, never replaced by
    // the next certificate (the intermediate's names and dates are not the server's).
    let presented = presented(chain);
    let leaf = presented.first().and_then(Option::as_ref).map(|c| &c.facts);
    let (name_result, date_result) = (
        hostname(subject, leaf, settings, verification, kind),
        validity(subject, leaf, now, expiry_warn, kind),
    );
    let mut results = vec![
        trust(
            subject,
            chain.len(),
            presented,
            settings,
            verification,
            seen,
        ),
        name_result,
        date_result,
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

/// One line per presented certificate (`presented`: the first [`MAX_JUDGED_CHAIN`] of
/// `sent`), in the order sent.
fn chain_evidence(presented: &[Option<Cert<'_>>], sent: usize) -> Vec<String> {
    let mut lines: Vec<String> = presented
        .iter()
        .enumerate()
        .map(|(i, cert)| match cert {
            Some(c) => format!("presented #{i}: {}", c.facts.describe()),
            None => format!("presented #{i}: not a readable X.509 certificate"),
        })
        .collect();
    if sent > MAX_JUDGED_CHAIN {
        lines.push(format!(
            "{} more certificates presented (not judged: real chains have two to four)",
            sent - MAX_JUDGED_CHAIN
        ));
    }
    lines
}

fn trust(
    subject: &str,
    sent: usize,
    presented: Vec<Option<Cert<'_>>>,
    settings: &TlsSettings,
    v: &Verification,
    seen: Seen<'_>,
) -> CheckResult {
    let id = CheckId::TlsTrust;
    let mut evidence = chain_evidence(&presented, sent);
    evidence.push(format!("trust anchors: {}", v.anchors));
    let error = match v.trust() {
        Ok(()) => {
            return CheckResult::pass(id, subject, format!("chain verified against {}", v.anchors))
                .with_evidence_lines(evidence);
        }
        Err(e) => e,
    };
    evidence.push(format!("verifier: {}", verifier_text(error)));
    let leaf_readable = presented.first().is_some_and(Option::is_some);
    let input = TrustInput {
        chain: if leaf_readable {
            presented.into_iter().flatten().collect()
        } else {
            Vec::new()
        },
        anchors: settings.ca_certs.iter().filter_map(Cert::parse).collect(),
        via_proxy: seen.via_proxy,
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
        now: seen.now,
        verifier: verifier_text(error),
        ca_setting: catalogue::ca_setting(seen.kind),
    };
    let reading = trust::read(&input);
    let mut r = CheckResult::finding_for(id, subject, reading.reason, seen.kind)
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
    kind: TargetKind,
) -> CheckResult {
    let id = CheckId::TlsHostname;
    let name = &settings.server_name;
    let Some(leaf) = leaf else {
        return CheckResult::finding_for(id, subject, Reason::Mismatch, kind)
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
    let mut r = CheckResult::finding_for(id, subject, reason, kind)
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
    kind: TargetKind,
) -> CheckResult {
    let id = CheckId::TlsValidity;
    let Some(leaf) = leaf else {
        return CheckResult::finding_for(id, subject, Reason::Expired, kind)
            .with_evidence("no certificate to check");
    };
    let evidence = vec![
        leaf.describe(),
        format!("local clock: {}", format_time(now)),
    ];
    if leaf.not_after < now {
        let ago = now.duration_since(leaf.not_after).unwrap_or_default();
        return CheckResult::finding_for(id, subject, Reason::Expired, kind)
            .with_summary(format!(
                "the server certificate expired {} ago ({})",
                human_duration(ago),
                format_time(leaf.not_after)
            ))
            .with_evidence_lines(evidence);
    }
    if leaf.not_before > now {
        let until = leaf.not_before.duration_since(now).unwrap_or_default();
        return CheckResult::finding_for(id, subject, Reason::NotYetValid, kind)
            .with_summary(format!(
                "the server certificate is valid only from {} (in {})",
                format_time(leaf.not_before),
                human_duration(until)
            ))
            .with_evidence_lines(evidence);
    }
    let left = leaf.not_after.duration_since(now).unwrap_or_default();
    if left < expiry_warn {
        return CheckResult::finding_for(id, subject, Reason::ExpiringSoon, kind)
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

/// `tls.handshake` for an `http://` URL: there is no TLS to judge.
pub fn plain_http(subject: &str) -> CheckResult {
    CheckResult::not_applicable(CheckId::TlsHandshake, subject, "http:// URL: no TLS")
}

#[cfg(test)]
mod mss_retry_tests {
    use super::*;

    fn stalled_first() -> CheckResult {
        CheckResult::finding(CheckId::TlsHandshake, "api:6443", Reason::Timeout)
            .with_evidence("api:6443: no handshake within 2000 ms after 2000 ms")
    }

    fn silent_retry() -> Handshake {
        retry(HandshakeFailure::Stalled, 0, "no handshake within 2000 ms")
    }

    /// A full-size retry that completes beside the small one: the stall was not packet size.
    #[test]
    fn a_full_size_retry_that_completes_is_not_an_mtu_black_hole() {
        let refused = || {
            retry(
                HandshakeFailure::Refused("the server's certificate did not verify"),
                1,
                "kube-reach ended the handshake",
            )
        };
        let r = after_mss_retries(stalled_first(), &Ok(refused()), &Ok(refused()), 536);
        assert_eq!(r.reason, Some(Reason::Timeout), "{r:?}");
        assert!(
            r.fix
                .as_deref()
                .unwrap_or_default()
                .contains("load balancer"),
            "{r:?}"
        );
        assert!(r.evidence.iter().any(|e| e.contains("normal MSS")), "{r:?}");
    }

    /// A handshake we ended after the chain arrived goes on to the certificate's checks; any
    /// other failure stops at `tls.handshake`.
    #[test]
    fn only_a_handshake_we_refused_goes_on_to_the_certificate() {
        let refused = retry(HandshakeFailure::Refused("no"), 1, "ended by kube-reach");
        assert!(!stops_at_handshake(&refused));
        for failure in [HandshakeFailure::Stalled, HandshakeFailure::NotTls] {
            assert!(stops_at_handshake(&retry(failure, 0, "x")));
        }
    }

    /// The handshake row says which address and server name it tried.
    #[test]
    fn the_handshake_row_names_the_address_and_sni() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 6443));
        let r = handshake_at("api:6443", &silent_retry(), addr, "api.example");
        let want = "address 127.0.0.1:6443, SNI api.example";
        assert!(r.evidence.iter().any(|e| e == want), "{r:?}");
    }

    fn retry(outcome: HandshakeFailure, chain: usize, detail: &str) -> Handshake {
        Handshake {
            outcome: Err(outcome),
            client_cert_requested: false,
            chain: vec![CertificateDer::from(vec![0u8; 4]); chain],
            elapsed: Duration::from_millis(40),
            detail: detail.into(),
        }
    }

    /// With a client identity and a server that does not verify, kube-reach ends the retry's
    /// handshake itself, after the server's whole flight (its certificate) arrived over small
    /// packets: that is the MTU black hole, not "no answer either".
    #[test]
    fn a_retry_we_ended_after_the_certificate_arrived_is_an_mtu_black_hole() {
        let hs = retry(
            HandshakeFailure::Refused("the server's certificate did not verify"),
            1,
            "the server's certificate did not verify: kube-reach ended the handshake",
        );
        let r = after_mss_retries(stalled_first(), &Ok(silent_retry()), &Ok(hs), 536);
        assert_eq!(r.reason, Some(Reason::MtuBlackhole), "{r:?}");
        assert!(r.evidence.iter().any(|e| e.contains("MSS 536")), "{r:?}");
    }

    /// "No answer either" is said only of a retry that got no answer.
    #[test]
    fn a_retry_that_failed_otherwise_is_not_said_to_have_got_no_answer() {
        let answered = retry(HandshakeFailure::Closed, 0, "connection reset");
        let r = after_small_mss_retry(stalled_first(), &Ok(answered), 536);
        assert_eq!(r.reason, Some(Reason::Timeout));
        assert!(
            !r.fix
                .as_deref()
                .unwrap_or_default()
                .contains("no answer either"),
            "{r:?}"
        );
        let silent = retry(HandshakeFailure::Stalled, 0, "no handshake within 2000 ms");
        let r = after_small_mss_retry(stalled_first(), &Ok(silent), 536);
        assert!(
            r.fix
                .as_deref()
                .unwrap_or_default()
                .contains("no answer either"),
            "{r:?}"
        );
    }
}

#[cfg(test)]
mod judge_tests {
    use super::*;

    /// A leaf that does not parse keeps its place: the next certificate's names and dates are
    /// not the server's (the judge used to filter unparseable ones out, and judged the
    /// intermediate's validity as the leaf's).
    #[test]
    fn an_unreadable_leaf_is_not_replaced_by_the_next_certificate() {
        let params =
            rcgen::CertificateParams::new(vec!["api.k8s.test".to_string()]).expect("params");
        let key = rcgen::KeyPair::generate().expect("key");
        let good = params.self_signed(&key).expect("cert").der().clone();
        let chain = vec![
            CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]),
            good,
        ];
        let settings = TlsSettings {
            ca_certs: Vec::new(),
            ca_source: None,
            ca_replaces_system_roots: true,
            insecure_skip_verify: false,
            server_name: "api.k8s.test".into(),
        };
        let now = SystemTime::now();
        let verification = crate::net::tls::verify(&chain, &settings, now);
        let seen = Seen {
            kind: TargetKind::Direct,
            via_proxy: None,
            now,
            expiry_warn: Duration::ZERO,
        };
        let results = judge("api:443", &chain, &settings, &verification, seen);
        let validity = results
            .iter()
            .find(|r| r.id == CheckId::TlsValidity)
            .expect("validity");
        assert_ne!(validity.status, Status::Pass, "{:?}", validity.summary);
        assert!(
            validity.evidence.join(" ").contains("no certificate"),
            "{:?}",
            validity.evidence
        );
        let trust = results
            .iter()
            .find(|r| r.id == CheckId::TlsTrust)
            .expect("trust");
        let evidence = trust.evidence.join("\n");
        assert!(
            evidence.contains("presented #0: not a readable"),
            "{evidence}"
        );
        assert!(
            evidence.contains("first presented) is not a readable"),
            "{evidence}"
        );
    }

    /// A private CA's leaf and no CA configured, judged for each kind of target: the fix names
    /// where that kind takes its CA from, never another kind's setting.
    #[test]
    fn each_kind_of_target_gets_the_fix_for_its_own_ca_source() {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::default();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Private Root");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
        let params = rcgen::CertificateParams::new(vec!["api.k8s.test".to_string()]).expect("p");
        let key = rcgen::KeyPair::generate().expect("key");
        let now = SystemTime::now();
        let past = now - Duration::from_secs(86_400);
        let mut expired = params.clone();
        expired.not_before = (past - Duration::from_secs(86_400)).into();
        expired.not_after = past.into();
        let leaf = params.signed_by(&key, &ca).expect("leaf").der().clone();
        let old_leaf = expired.signed_by(&key, &ca).expect("leaf").der().clone();
        let settings = TlsSettings {
            ca_certs: Vec::new(),
            ca_source: None,
            ca_replaces_system_roots: true,
            insecure_skip_verify: false,
            server_name: "api.k8s.test".into(),
        };
        let fixes = |kind, chain: &[CertificateDer<'static>]| {
            let verification = crate::net::tls::verify(chain, &settings, now);
            let seen = Seen {
                kind,
                via_proxy: None,
                now,
                expiry_warn: Duration::ZERO,
            };
            judge("api:443", chain, &settings, &verification, seen)
                .into_iter()
                .map(|r| (r.id, r.reason, r.fix.unwrap_or_default()))
                .collect::<Vec<_>>()
        };
        let trust_fix = |kind| {
            let all = fixes(kind, std::slice::from_ref(&leaf));
            let (_, reason, fix) = all
                .into_iter()
                .find(|(id, _, _)| *id == CheckId::TlsTrust)
                .expect("trust");
            assert_eq!(reason, Some(Reason::UnknownAuthority));
            fix
        };
        let direct = trust_fix(TargetKind::Direct);
        assert!(direct.contains("certificate-authority-data"), "{direct}");
        for (kind, must) in [
            (TargetKind::LegacyCertificate, "KUBE_CA_PEM"),
            (TargetKind::InCluster, "serviceaccount/ca.crt"),
            (TargetKind::Gitlab, "tls-ca-file"),
        ] {
            let fix = trust_fix(kind);
            assert!(fix.contains(must), "{kind:?}: {fix}");
            assert!(
                !fix.contains("certificate-authority-data"),
                "{kind:?}: {fix}"
            );
            assert!(
                !fix.contains("kubectl config set-cluster"),
                "{kind:?}: {fix}"
            );
        }
        let agent = trust_fix(TargetKind::GitlabAgent);
        assert!(agent.contains("SSL_CERT_FILE"), "{agent}");
        // An expired GitLab certificate is renewed the GitLab way, never with kubeadm.
        let validity = |kind| {
            fixes(kind, std::slice::from_ref(&old_leaf))
                .into_iter()
                .find(|(id, _, _)| *id == CheckId::TlsValidity)
                .map(|(_, _, fix)| fix)
                .expect("validity")
        };
        assert!(validity(TargetKind::Direct).contains("kubeadm"));
        let gitlab = validity(TargetKind::Gitlab);
        assert!(
            !gitlab.contains("kubeadm") && gitlab.contains("letsencrypt"),
            "{gitlab}"
        );
    }

    /// A 1024-bit RSA certificate made by `openssl req -x509 -newkey rsa:1024` (rcgen makes no
    /// RSA keys): GitLab's own certificate on an old appliance.
    const RSA_1024_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIICGDCCAYGgAwIBAgIUFO0+LuBm+yxU10B4D6zrzOEaiNgwDQYJKoZIhvcNAQEL\nBQAwHTEbMBkGA1UEAwwSZ2l0bGFiLmV4YW1wbGUuY29tMCAXDTI2MTIwMzA3MDAz\nN1oYDzIxMjYxMTA5MDcwMDM3WjAdMRswGQYDVQQDDBJnaXRsYWIuZXhhbXBsZS5j\nb20wgZ8wDQYJKoZIhvcNAQEBBQADgY0AMIGJAoGBANwBQStznbCKaVLW+GT0laHM\nywHhuelU8aDPUCtH1kg44Q7b9zwBs5p20/ur1gRYttSLdHEg9vkFG25MTWQfkQ3Z\nS6wx7Uus0GCn2Buio+lbeyribWzNUg/3QHjuwXhMRBpAp8ylvlZLPw6I5mtRXTqq\n4hm0Kh86f8JLe2i9Lf0nAgMBAAGjUzBRMB0GA1UdDgQWBBQ391v8WbJWNUfR4XsJ\n1y8K0OFX+zAfBgNVHSMEGDAWgBQ391v8WbJWNUfR4XsJ1y8K0OFX+zAPBgNVHRMB\nAf8EBTADAQH/MA0GCSqGSIb3DQEBCwUAA4GBACDGnVB+/tqBqFy/d3feVCl8Ds+L\n1fQV/VRXmi7GTYj2zVR8sQDp7mCrsIopoYJaJBY+u7UgCNSCVJD9AymjU5fYM4gN\ny+R/CztpG5D+Yqp+2mFWS4amXJnRT1esCerz6/Dii2o73tDowN8AM3vNt7rWvm7H\nva/aC3bQ1RhSBfBb\n-----END CERTIFICATE-----";

    /// `weak-key` on the GitLab server or the agent server names that server's certificate,
    /// never the API server's `kubeadm certs renew` (it said so for every kind).
    #[test]
    fn a_weak_key_gets_the_fix_for_its_own_kind_of_server() {
        use rustls_pki_types::pem::PemObject;
        let leaf = CertificateDer::from_pem_slice(RSA_1024_PEM.as_bytes()).expect("pem");
        let hs = Handshake {
            outcome: Err(HandshakeFailure::Other(
                "invalid peer certificate: BadSignature".into(),
            )),
            client_cert_requested: false,
            chain: vec![leaf],
            elapsed: Duration::ZERO,
            detail: "invalid peer certificate: BadSignature".into(),
        };
        let fix = |kind| {
            let r = weak_key("gitlab.example.com:443", &hs, kind).expect("a weak key");
            assert_eq!(r.reason, Some(Reason::WeakKey));
            r.fix.unwrap_or_default()
        };
        assert!(fix(TargetKind::Direct).contains("kubeadm"));
        for kind in [TargetKind::Gitlab, TargetKind::GitlabAgent] {
            let fix = fix(kind);
            assert!(!fix.contains("kubeadm"), "{kind:?}: {fix}");
            assert!(!fix.contains("API server"), "{kind:?}: {fix}");
            assert!(fix.contains("nginx['ssl_certificate']"), "{kind:?}: {fix}");
        }
    }
}
