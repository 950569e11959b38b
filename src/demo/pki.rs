//! A throw-away PKI for the fake API server: one root CA, one intermediate CA, one unrelated
//! "rogue" root, and a server leaf for every TLS failure class the tool must tell apart.
//!
//! Each class is built the way the broken cluster it imitates is built (see
//! `research/test-harness.md` §5), so the bytes on the wire are what a real client would see:
//! the class decides both the leaf and the chain the server sends. All keys are ECDSA P-256 to
//! keep handshakes small (an MTU black hole should only stall the large responses we choose).

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use super::DemoError;

/// Names and addresses a good demo leaf is valid for. IP SANs let clients connect to
/// `https://127.0.0.1:PORT` without a `tls-server-name` and without any DNS lookup.
pub const DEFAULT_SANS: &[&str] = &["api.k8s.test", "localhost", "127.0.0.1", "::1"];

/// The only name a [`TlsClass::WrongSan`] leaf is valid for.
pub const WRONG_SAN: &str = "wrong.example";

/// One TLS situation a server can present. The variant decides the leaf certificate, the chain
/// the server sends, and which CA a kubeconfig for that server names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsClass {
    /// Leaf signed by the intermediate; the server sends leaf + intermediate. Trusted via the root.
    Good,
    /// Like `Good` but valid only 2020-01-01 .. 2021-01-01.
    Expired,
    /// Like `Good` but valid only 2099-01-01 .. 2100-01-01.
    NotYetValid,
    /// Valid only for `DNS:wrong.example`.
    WrongSan,
    /// Only the DNS names of the SAN list: fails when the client connects by IP address.
    IpNotInSan,
    /// Leaf signed by the rogue root; the server sends leaf + rogue root.
    UnknownAuthority,
    /// Good leaf, but the server sends the leaf alone (the intermediate is missing).
    MissingIntermediate,
    /// A self-signed leaf (not a CA).
    SelfSigned,
    /// A good server judged against the rogue root: the kubeconfig names the wrong CA.
    CaMismatch,
}

impl TlsClass {
    /// Every class, in a stable order (tests iterate over it).
    pub const ALL: [TlsClass; 9] = [
        TlsClass::Good,
        TlsClass::Expired,
        TlsClass::NotYetValid,
        TlsClass::WrongSan,
        TlsClass::IpNotInSan,
        TlsClass::UnknownAuthority,
        TlsClass::MissingIntermediate,
        TlsClass::SelfSigned,
        TlsClass::CaMismatch,
    ];

    /// Kebab-case name, used as the leaf's common name and in scenario names.
    pub fn name(self) -> &'static str {
        match self {
            TlsClass::Good => "good",
            TlsClass::Expired => "expired",
            TlsClass::NotYetValid => "not-yet-valid",
            TlsClass::WrongSan => "wrong-san",
            TlsClass::IpNotInSan => "ip-not-in-san",
            TlsClass::UnknownAuthority => "unknown-authority",
            TlsClass::MissingIntermediate => "missing-intermediate",
            TlsClass::SelfSigned => "self-signed",
            TlsClass::CaMismatch => "ca-mismatch",
        }
    }
}

/// Whether (and how strictly) a server asks for client certificates.
#[derive(Clone, Debug, Default)]
pub enum ClientAuth {
    /// No CertificateRequest: only bearer tokens authenticate.
    #[default]
    None,
    /// Ask for a certificate signed by these CAs, but let clients without one continue (the
    /// kube-apiserver default when `--client-ca-file` is set).
    Optional(Vec<CertificateDer<'static>>),
    /// Refuse the handshake without a valid client certificate (a mTLS-only front end).
    Required(Vec<CertificateDer<'static>>),
}

/// The demo PKI. Generated fresh for every run; nothing is persisted unless a caller writes the
/// PEM strings somewhere.
pub struct Pki {
    root: CertifiedIssuer<'static, KeyPair>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
    rogue: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

/// A server certificate chain and key for one [`TlsClass`].
#[derive(Debug)]
pub struct ServerIdentity {
    /// The class this identity was made for.
    pub class: TlsClass,
    /// The chain the server sends, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The same chain as concatenated PEM (for `ServeOptions` files or openssl).
    pub chain_pem: String,
    /// The PEM of the CA a kubeconfig for this server names (`certificate-authority-data`):
    /// the demo root, except for [`TlsClass::CaMismatch`] where it is the rogue root.
    pub kubeconfig_ca_pem: String,
    key_pkcs8: Vec<u8>,
    key_pem: String,
}

/// A client certificate (CN = user, O = groups) signed by the root, for mTLS logins.
pub struct ClientIdentity {
    /// Certificate PEM (kubeconfig `client-certificate-data`).
    pub cert_pem: String,
    /// Certificate DER.
    pub cert_der: CertificateDer<'static>,
    key_pkcs8: Vec<u8>,
    key_pem: String,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Generates the three CAs. CAs are valid from yesterday for ten years, so every leaf's
    /// failure comes from the leaf or the chain, never from an expired CA.
    pub fn generate() -> Result<Self, DemoError> {
        let root = ca("kube-reach demo root CA", None)?;
        let intermediate = ca("kube-reach demo intermediate CA", Some(&root))?;
        let rogue = ca("kube-reach demo rogue CA", None)?;
        Ok(Pki {
            root,
            intermediate,
            rogue,
        })
    }

    /// The root CA certificate as PEM: what a kubeconfig's `certificate-authority-data` holds.
    pub fn root_ca_pem(&self) -> String {
        self.root.pem()
    }

    /// The root CA certificate as DER (a trust anchor for rustls clients in tests).
    pub fn root_ca_der(&self) -> CertificateDer<'static> {
        self.root.der().clone()
    }

    /// The intermediate CA certificate as PEM.
    pub fn intermediate_ca_pem(&self) -> String {
        self.intermediate.pem()
    }

    /// The rogue root CA certificate as PEM (the "wrong CA" of a kubeconfig, or the issuer of an
    /// unknown-authority leaf).
    pub fn rogue_ca_pem(&self) -> String {
        self.rogue.pem()
    }

    /// The rogue root CA certificate as DER.
    pub fn rogue_ca_der(&self) -> CertificateDer<'static> {
        self.rogue.der().clone()
    }

    /// Makes the leaf and chain for `class`. `sans` entries that parse as IP addresses become IP
    /// SANs, the rest DNS SANs (see [`DEFAULT_SANS`]); `WrongSan` ignores them.
    pub fn server_identity(
        &self,
        class: TlsClass,
        sans: &[&str],
    ) -> Result<ServerIdentity, DemoError> {
        let key = KeyPair::generate()?;
        let params = leaf_params(class, sans)?;
        let leaf = match class {
            TlsClass::UnknownAuthority => params.signed_by(&key, &self.rogue)?,
            TlsClass::SelfSigned => params.self_signed(&key)?,
            _ => params.signed_by(&key, &self.intermediate)?,
        };
        let mut chain = vec![(leaf.der().clone(), leaf.pem())];
        match class {
            TlsClass::UnknownAuthority => chain.push((self.rogue.der().clone(), self.rogue.pem())),
            TlsClass::MissingIntermediate | TlsClass::SelfSigned => {}
            _ => chain.push((self.intermediate.der().clone(), self.intermediate.pem())),
        }
        let kubeconfig_ca_pem = match class {
            TlsClass::CaMismatch => self.rogue.pem(),
            _ => self.root.pem(),
        };
        Ok(ServerIdentity {
            class,
            chain_pem: chain.iter().map(|(_, pem)| pem.as_str()).collect(),
            chain: chain.into_iter().map(|(der, _)| der).collect(),
            kubeconfig_ca_pem,
            key_pkcs8: key.serialize_der(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A client certificate for `user` in `groups`, signed by the root, valid now. rcgen keeps a
    /// subject as a map, so at most two groups fit (two `O` attributes); more is an error.
    pub fn client_identity(
        &self,
        user: &str,
        groups: &[&str],
    ) -> Result<ClientIdentity, DemoError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = client_subject(user, groups)?;
        params.not_before = OffsetDateTime::now_utc() - Duration::days(1);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(365);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.root)?;
        Ok(ClientIdentity {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pkcs8: key.serialize_der(),
            key_pem: key.serialize_pem(),
        })
    }

    /// [`ClientAuth::Optional`] trusting the demo root: what a kube-apiserver with
    /// `--client-ca-file` does.
    pub fn optional_client_auth(&self) -> ClientAuth {
        ClientAuth::Optional(vec![self.root_ca_der()])
    }
}

impl ServerIdentity {
    /// The leaf certificate (first in the chain).
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// The private key as PKCS#8 PEM (for files handed to `serve` or openssl).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A rustls server configuration presenting this chain, offering ALPN `h2` then
    /// `http/1.1` like kube-apiserver, with the ring provider chosen explicitly so it works
    /// whether or not a process-wide provider is installed.
    pub fn server_config(
        &self,
        client_auth: &ClientAuth,
    ) -> Result<Arc<rustls::ServerConfig>, DemoError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()));
        server_config(self.chain.clone(), key, client_auth)
    }
}

impl ClientIdentity {
    /// The private key as PKCS#8 PEM (kubeconfig `client-key-data`).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The private key for a rustls client configuration.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }
}

/// The ring provider, shared by every config this module builds.
pub(crate) fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds a rustls server config from a chain and key (also used by `serve`, which reads them
/// from PEM files).
pub(crate) fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_auth: &ClientAuth,
) -> Result<Arc<rustls::ServerConfig>, DemoError> {
    let provider = ring_provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional(cas) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots(cas)?, provider)
                .allow_unauthenticated()
                .build()?,
        ),
        ClientAuth::Required(cas) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots(cas)?, provider).build()?,
        ),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn roots(cas: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, DemoError> {
    let mut store = RootCertStore::empty();
    for ca in cas {
        store.add(ca.clone())?;
    }
    Ok(Arc::new(store))
}

/// A CA valid from yesterday for ten years; `parent` None makes a root, Some an intermediate
/// with `pathlen:0`.
fn ca(
    common_name: &str,
    parent: Option<&CertifiedIssuer<'static, KeyPair>>,
) -> Result<CertifiedIssuer<'static, KeyPair>, DemoError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "kube-reach demo");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.not_before = OffsetDateTime::now_utc() - Duration::days(1);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate()?;
    Ok(match parent {
        None => {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            CertifiedIssuer::self_signed(params, key)?
        }
        Some(parent) => {
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.use_authority_key_identifier_extension = true;
            CertifiedIssuer::signed_by(params, key, parent)?
        }
    })
}

/// Subject, SANs and validity of a server leaf for `class`.
fn leaf_params(class: TlsClass, sans: &[&str]) -> Result<CertificateParams, DemoError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("kube-reach demo {}", class.name()),
    );
    params.subject_alt_names = leaf_sans(class, sans)?;
    let (not_before, not_after) = leaf_validity(class);
    params.not_before = not_before;
    params.not_after = not_after;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // A self-signed leaf has no issuer key to point at.
    params.use_authority_key_identifier_extension = class != TlsClass::SelfSigned;
    Ok(params)
}

fn leaf_validity(class: TlsClass) -> (OffsetDateTime, OffsetDateTime) {
    match class {
        TlsClass::Expired => (
            rcgen::date_time_ymd(2020, 1, 1),
            rcgen::date_time_ymd(2021, 1, 1),
        ),
        TlsClass::NotYetValid => (
            rcgen::date_time_ymd(2099, 1, 1),
            rcgen::date_time_ymd(2100, 1, 1),
        ),
        _ => (
            OffsetDateTime::now_utc() - Duration::days(1),
            OffsetDateTime::now_utc() + Duration::days(365),
        ),
    }
}

fn leaf_sans(class: TlsClass, sans: &[&str]) -> Result<Vec<SanType>, DemoError> {
    let parsed = parse_sans(sans)?;
    Ok(match class {
        TlsClass::WrongSan => vec![dns_san(WRONG_SAN)?],
        TlsClass::IpNotInSan => {
            let dns: Vec<SanType> = parsed
                .into_iter()
                .filter(|san| matches!(san, SanType::DnsName(_)))
                .collect();
            if dns.is_empty() {
                vec![dns_san("api.k8s.test")?]
            } else {
                dns
            }
        }
        _ => parsed,
    })
}

/// IP literals become IP SANs, everything else a DNS SAN.
fn parse_sans(sans: &[&str]) -> Result<Vec<SanType>, DemoError> {
    sans.iter()
        .map(|san| match san.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => dns_san(san),
        })
        .collect()
}

fn dns_san(name: &str) -> Result<SanType, DemoError> {
    Ok(SanType::DnsName(name.try_into()?))
}

/// CN = user, O = group(s): how kube-apiserver maps a client certificate to a user.
fn client_subject(user: &str, groups: &[&str]) -> Result<DistinguishedName, DemoError> {
    let mut dn = DistinguishedName::new();
    match groups {
        [] => {}
        [one] => dn.push(DnType::OrganizationName, *one),
        [first, second] => {
            dn.push(DnType::OrganizationName, *first);
            // A second `O` attribute under the same OID: rcgen keys its map by DnType.
            dn.push(DnType::CustomDnType(vec![2, 5, 4, 10]), *second);
        }
        _ => {
            return Err(DemoError::Config(
                "a demo client certificate holds at most two groups".into(),
            ));
        }
    }
    dn.push(DnType::CommonName, user);
    Ok(dn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};
    use x509_parser::prelude::*;

    fn names(der: &CertificateDer<'_>) -> (Vec<String>, Vec<IpAddr>) {
        let (_, cert) = parse_x509_certificate(der).unwrap();
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => dns.push(d.to_string()),
                    GeneralName::IPAddress(b) if b.len() == 4 => {
                        ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()))
                    }
                    GeneralName::IPAddress(b) => {
                        ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()))
                    }
                    _ => {}
                }
            }
        }
        (dns, ips)
    }

    fn years(der: &CertificateDer<'_>) -> (i32, i32) {
        let (_, cert) = parse_x509_certificate(der).unwrap();
        (
            cert.validity().not_before.to_datetime().year(),
            cert.validity().not_after.to_datetime().year(),
        )
    }

    fn issuer_cn(der: &CertificateDer<'_>) -> String {
        let (_, cert) = parse_x509_certificate(der).unwrap();
        cert.issuer().to_string()
    }

    /// Verifies `identity` the way a rustls client trusting `ca` would, at `host`.
    fn verify(
        identity: &ServerIdentity,
        ca: CertificateDer<'static>,
        host: &str,
    ) -> Result<(), rustls::Error> {
        let mut roots = RootCertStore::empty();
        roots.add(ca).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            ring_provider(),
        )
        .build()
        .unwrap();
        verifier
            .verify_server_cert(
                &identity.chain[0],
                &identity.chain[1..],
                &ServerName::try_from(host.to_string()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    }

    fn kubeconfig_ca(identity: &ServerIdentity) -> CertificateDer<'static> {
        use rustls_pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(identity.kubeconfig_ca_pem.as_bytes()).unwrap()
    }

    #[test]
    fn good_leaf_is_signed_by_intermediate_and_verifies_by_name_and_ip() {
        let pki = Pki::generate().unwrap();
        let id = pki.server_identity(TlsClass::Good, DEFAULT_SANS).unwrap();
        assert_eq!(id.chain.len(), 2);
        assert!(issuer_cn(id.leaf()).contains("intermediate"));
        let (dns, ips) = names(id.leaf());
        assert_eq!(dns, ["api.k8s.test", "localhost"]);
        assert_eq!(
            ips,
            [
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        for host in ["api.k8s.test", "localhost", "127.0.0.1", "::1"] {
            verify(&id, kubeconfig_ca(&id), host).unwrap();
        }
        assert!(id.chain_pem.matches("BEGIN CERTIFICATE").count() == 2);
        assert!(id.key_pem().contains("BEGIN PRIVATE KEY"));
    }

    #[test]
    fn each_class_has_the_expected_x509_facts_and_verifier_error() {
        use rustls::CertificateError as E;
        let pki = Pki::generate().unwrap();
        for class in TlsClass::ALL {
            let id = pki.server_identity(class, DEFAULT_SANS).unwrap();
            let result = verify(&id, kubeconfig_ca(&id), "127.0.0.1");
            let cert_err = match &result {
                Err(rustls::Error::InvalidCertificate(e)) => Some(e.clone()),
                Ok(()) => None,
                Err(other) => panic!("{class:?}: unexpected {other:?}"),
            };
            match class {
                TlsClass::Good => assert!(cert_err.is_none()),
                TlsClass::Expired => {
                    assert_eq!(years(id.leaf()), (2020, 2021));
                    assert!(matches!(
                        cert_err,
                        Some(E::ExpiredContext { .. } | E::Expired)
                    ));
                }
                TlsClass::NotYetValid => {
                    assert_eq!(years(id.leaf()), (2099, 2100));
                    assert!(matches!(
                        cert_err,
                        Some(E::NotValidYetContext { .. } | E::NotValidYet)
                    ));
                }
                TlsClass::WrongSan => {
                    assert_eq!(names(id.leaf()), (vec![WRONG_SAN.to_string()], vec![]));
                    assert!(matches!(
                        cert_err,
                        Some(E::NotValidForNameContext { .. } | E::NotValidForName)
                    ));
                }
                TlsClass::IpNotInSan => {
                    assert_eq!(
                        names(id.leaf()),
                        (vec!["api.k8s.test".into(), "localhost".into()], vec![])
                    );
                    assert!(matches!(
                        cert_err,
                        Some(E::NotValidForNameContext { .. } | E::NotValidForName)
                    ));
                    verify(&id, kubeconfig_ca(&id), "api.k8s.test").unwrap();
                }
                TlsClass::UnknownAuthority => {
                    assert_eq!(id.chain.len(), 2);
                    assert_eq!(id.chain[1], pki.rogue_ca_der());
                    assert!(issuer_cn(id.leaf()).contains("rogue"));
                    assert_eq!(cert_err, Some(E::UnknownIssuer));
                }
                TlsClass::MissingIntermediate => {
                    assert_eq!(id.chain.len(), 1);
                    assert!(issuer_cn(id.leaf()).contains("intermediate"));
                    assert_eq!(cert_err, Some(E::UnknownIssuer));
                }
                TlsClass::SelfSigned => {
                    assert_eq!(id.chain.len(), 1);
                    let (_, cert) = parse_x509_certificate(id.leaf()).unwrap();
                    assert_eq!(cert.subject(), cert.issuer());
                    assert!(!cert.is_ca());
                    assert_eq!(cert_err, Some(E::UnknownIssuer));
                }
                TlsClass::CaMismatch => {
                    assert_eq!(id.kubeconfig_ca_pem, pki.rogue_ca_pem());
                    assert_eq!(cert_err, Some(E::UnknownIssuer));
                    verify(&id, pki.root_ca_der(), "127.0.0.1").unwrap();
                }
            }
            id.server_config(&ClientAuth::None).unwrap();
        }
    }

    #[test]
    fn cas_have_the_right_basic_constraints() {
        let pki = Pki::generate().unwrap();
        for (pem, pathlen) in [
            (pki.root_ca_pem(), None),
            (pki.intermediate_ca_pem(), Some(0)),
            (pki.rogue_ca_pem(), None),
        ] {
            let (_, p) = parse_x509_pem(pem.as_bytes()).unwrap();
            let cert = p.parse_x509().unwrap();
            let bc = cert.basic_constraints().unwrap().unwrap().value;
            assert!(bc.ca);
            assert_eq!(bc.path_len_constraint, pathlen);
        }
    }

    #[test]
    fn client_certificate_carries_user_and_groups() {
        let pki = Pki::generate().unwrap();
        let id = pki
            .client_identity("jane", &["system:masters", "devs"])
            .unwrap();
        let (_, cert) = parse_x509_certificate(&id.cert_der).unwrap();
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        let o: Vec<_> = cert
            .subject()
            .iter_organization()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["jane"]);
        assert_eq!(o, ["system:masters", "devs"]);
        assert!(issuer_cn(&id.cert_der).contains("root"));
        assert!(id.key_pem().contains("PRIVATE KEY"));
        assert!(pki.client_identity("x", &["a", "b", "c"]).is_err());
        assert!(!format!("{id:?}").contains("PRIVATE"));
    }
}
