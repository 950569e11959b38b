//! Certificate facts for evidence and judgement, read with x509-parser. Parsing only: whether a
//! chain is trusted is decided by webpki in `net::tls`; these facts (names, key identifiers,
//! AIA, basicConstraints, and whether one certificate's key signed another) let `checks::tls`
//! say *why* it is not. Nothing here fetches anything: an AIA URL is only read, never followed.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{OID_DOMAIN_COMPONENT, OID_PKIX_ACCESS_DESCRIPTOR_CA_ISSUERS};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

#[derive(Debug, Clone, PartialEq)]
pub struct CertFacts {
    pub subject: String,
    pub issuer: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub has_san: bool,
    pub common_name: Option<String>,
    /// The issuer's CN: cluster CAs are recognisable by it (`kubernetes`, `k3s-server-ca@…`).
    pub issuer_common_name: Option<String>,
    pub is_ca: bool,
    /// Subject equals issuer (a root, or a self-signed leaf).
    pub self_issued: bool,
    /// DER of the subject and issuer names: what webpki compares to link a chain.
    pub subject_der: Vec<u8>,
    pub issuer_der: Vec<u8>,
    /// The subject's `O=` values and its whole `DC=` path (see `organisations`), and the
    /// issuer's: an organisation's root and its issuing intermediates usually share them.
    pub subject_orgs: Vec<String>,
    pub issuer_orgs: Vec<String>,
    /// subjectKeyIdentifier, and the authorityKeyIdentifier's keyIdentifier: which key this
    /// certificate has, and which key signed it.
    pub subject_key_id: Option<Vec<u8>>,
    pub authority_key_id: Option<Vec<u8>>,
    /// Authority Information Access `caIssuers` URLs: where the issuer's certificate is
    /// published (public and enterprise CAs set it; cluster CAs do not).
    pub ca_issuers: Vec<String>,
}

impl CertFacts {
    pub fn parse(der: &CertificateDer<'_>) -> Option<CertFacts> {
        parse(der).map(|cert| CertFacts::of(&cert))
    }

    /// The facts of an already parsed certificate (parse once, judge many times).
    pub fn of(cert: &X509Certificate<'_>) -> CertFacts {
        let mut facts = CertFacts {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: to_system_time(cert.validity().not_before.timestamp()),
            not_after: to_system_time(cert.validity().not_after.timestamp()),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            has_san: false,
            common_name: common_name(cert.subject()),
            issuer_common_name: common_name(cert.issuer()),
            is_ca: cert.is_ca(),
            self_issued: cert.subject().as_raw() == cert.issuer().as_raw(),
            subject_der: cert.subject().as_raw().to_vec(),
            issuer_der: cert.issuer().as_raw().to_vec(),
            subject_orgs: organisations(cert.subject()),
            issuer_orgs: organisations(cert.issuer()),
            subject_key_id: None,
            authority_key_id: None,
            ca_issuers: Vec::new(),
        };
        facts.read_key_ids_and_aia(cert);
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            facts.has_san = true;
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => facts.dns_names.push(d.to_string()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            facts.ip_addresses.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        facts
    }

    fn read_key_ids_and_aia(&mut self, cert: &X509Certificate<'_>) {
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => {
                    self.subject_key_id = Some(id.0.to_vec());
                }
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    self.authority_key_id = aki.key_identifier.as_ref().map(|id| id.0.to_vec());
                }
                ParsedExtension::AuthorityInfoAccess(aia) => {
                    self.ca_issuers.extend(
                        aia.accessdescs
                            .iter()
                            .filter(|d| d.access_method == OID_PKIX_ACCESS_DESCRIPTOR_CA_ISSUERS)
                            .filter_map(|d| match &d.access_location {
                                GeneralName::URI(uri) => Some(uri.to_string()),
                                _ => None,
                            }),
                    );
                }
                _ => {}
            }
        }
    }

    /// Whether `issuer` is named as this certificate's issuer (the comparison webpki makes).
    pub fn named_issuer_is(&self, issuer: &CertFacts) -> bool {
        self.issuer_der == issuer.subject_der
    }

    /// "DNS:a, DNS:b, IP:1.2.3.4" for evidence.
    pub fn names(&self) -> String {
        let mut names: Vec<String> = self.dns_names.iter().map(|d| format!("DNS:{d}")).collect();
        names.extend(self.ip_addresses.iter().map(|ip| format!("IP:{ip}")));
        if names.is_empty() {
            format!(
                "no subjectAltName (CN {})",
                self.common_name.as_deref().unwrap_or("none")
            )
        } else {
            names.join(", ")
        }
    }

    /// One evidence line: subject, issuer and dates.
    pub fn describe(&self) -> String {
        format!(
            "{} issued by {}, valid {} to {}",
            self.subject,
            self.issuer,
            format_time(self.not_before),
            format_time(self.not_after)
        )
    }
}

/// A DER certificate parsed with x509-parser; `None` when it is not X.509.
pub fn parse<'a>(der: &'a CertificateDer<'_>) -> Option<X509Certificate<'a>> {
    X509Certificate::from_der(der.as_ref())
        .ok()
        .map(|(_, cert)| cert)
}

/// Whether `issuer`'s public key verifies `cert`'s signature. `None` when the algorithm is one
/// ring does not support: then nothing is known.
pub fn signed_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> Option<bool> {
    match cert.verify_signature(Some(issuer.public_key())) {
        Ok(()) => Some(true),
        Err(x509_parser::error::X509Error::SignatureVerificationError) => Some(false),
        Err(_) => None,
    }
}

/// The retired hash `cert` is signed with (SHA-1, MD5 or MD2, any key type), which webpki and
/// Go's crypto/x509 both refuse; `None` for current algorithms.
pub fn weak_signature_hash(cert: &X509Certificate<'_>) -> Option<&'static str> {
    match cert.signature_algorithm.algorithm.to_id_string().as_str() {
        // sha1WithRSAEncryption, ecdsa-with-SHA1, dsa-with-sha1, the OIW sha1WithRSA
        "1.2.840.113549.1.1.5" | "1.2.840.10045.4.1" | "1.2.840.10040.4.3" | "1.3.14.3.2.29" => {
            Some("SHA-1")
        }
        // md5WithRSAEncryption
        "1.2.840.113549.1.1.4" => Some("MD5"),
        // md2WithRSAEncryption
        "1.2.840.113549.1.1.2" => Some("MD2"),
        _ => None,
    }
}

/// A key identifier as colon-separated hex, as openssl prints it.
pub fn key_id_hex(id: &[u8]) -> String {
    id.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn common_name(name: &X509Name<'_>) -> Option<String> {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
}

/// The name's `O=` values, and its `DC=` components as one dotted path (`DC=corp, DC=example,
/// DC=com` is `corp.example.com`): two names share a domain
/// only when the whole path is equal, never because both end in `DC=com`. A path of one label
/// (`DC=com`, `DC=local`) is a top-level or single-label name that unrelated CAs share, so it
/// names no organisation.
fn organisations(name: &X509Name<'_>) -> Vec<String> {
    let mut out: Vec<String> = name
        .iter_organization()
        .filter_map(|attr| attr.as_str().ok())
        .map(str::to_string)
        .collect();
    // Most significant first in the certificate (`DC=com` before `DC=example`): reversed, the
    // path reads as the domain.
    let mut path: Vec<&str> = name
        .iter_by_oid(&OID_DOMAIN_COMPONENT)
        .filter_map(|attr| attr.as_str().ok())
        .collect();
    path.reverse();
    if path.len() > 1 {
        out.push(format!("DC={}", path.join(".")));
    }
    out
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn to_system_time(unix: i64) -> SystemTime {
    if unix >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs())
    }
}

/// RFC 3339 in UTC, second precision.
pub fn format_time(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|dt| {
            dt.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{secs}"))
}

/// "3 days", "5 hours", "12 minutes".
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s} seconds"),
        120..=7199 => format!("{} minutes", s / 60),
        7200..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}
