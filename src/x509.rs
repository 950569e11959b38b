//! Certificate facts for evidence and judgement, read with x509-parser. Parsing only: whether a
//! chain is trusted is decided by webpki in `checks::tls`.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

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
    pub is_ca: bool,
    /// Subject equals issuer (a root, or a self-signed leaf).
    pub self_issued: bool,
}

impl CertFacts {
    pub fn parse(der: &CertificateDer<'_>) -> Option<CertFacts> {
        let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
        let mut facts = CertFacts {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: to_system_time(cert.validity().not_before.timestamp()),
            not_after: to_system_time(cert.validity().not_after.timestamp()),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            has_san: false,
            common_name: cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_string),
            is_ca: cert.is_ca(),
            self_issued: cert.subject().as_raw() == cert.issuer().as_raw(),
        };
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
        Some(facts)
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
