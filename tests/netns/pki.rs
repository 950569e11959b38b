//! Certificates for a world, made with rcgen: one root CA (trusted by the kubeconfig) and server
//! leaves signed directly by it. Leaves are ECDSA P-256 and the chain file holds the leaf alone,
//! so the server's whole TLS handshake flight fits in one 1280-byte packet: the MTU world must
//! black-hole the HTTP response, not the handshake.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use rustls_pki_types::CertificateDer;

use crate::world::World;

/// Every name a world's servers answer for; the good leaf carries them all so one certificate
/// serves every by-name case (`api` is the short name the search-domain cases resolve).
pub const SERVER_NAMES: &[&str] = &[
    "api.k8s.test",
    "api",
    "api6.k8s.test",
    "dual.k8s.test",
    "pinned.k8s.test",
    // The in-cluster world's `kubernetes` service address, as a real API server's certificate
    // carries its service ClusterIP (an IP SAN).
    "10.253.96.1",
];

/// What is wrong with a leaf, if anything.
#[derive(Clone, Copy, Debug)]
pub enum LeafKind {
    /// Valid now, for [`SERVER_NAMES`].
    Good,
    /// For [`SERVER_NAMES`], but valid only during 2020.
    Expired,
    /// Valid now, but only for `wrong.example`.
    WrongSan,
    /// Valid now for [`SERVER_NAMES`] plus [`LARGE_PADDING_NAMES`] more names: a certificate of
    /// about 4 KiB, so the server's handshake flight needs full-size segments (the MTU world).
    Large,
}

/// Extra subjectAltNames of a [`LeafKind::Large`] certificate.
pub const LARGE_PADDING_NAMES: usize = 160;

/// A server certificate and key, as files (for the demo server) and as DER (for in-process servers).
pub struct Leaf {
    pub chain_path: PathBuf,
    pub key_path: PathBuf,
    pub cert_der: CertificateDer<'static>,
    pub key_der: Vec<u8>,
}

/// A world's certificate authority.
pub struct Pki {
    pub root_pem: String,
    pub root_path: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    /// A fresh root CA, written to `root.pem` in the world's dir.
    pub fn new(world: &World) -> Pki {
        let mut params = CertificateParams::new(Vec::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-reach e2e root CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let root_pem = params.self_signed(&key).expect("CA certificate").pem();
        let root_path = world.file("root.pem", &root_pem);
        Pki {
            root_pem,
            root_path,
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf of `kind`, written to `<kind>.pem` and `<kind>.key`.
    pub fn leaf(&self, world: &World, kind: LeafKind) -> Leaf {
        let names: Vec<String> = match kind {
            LeafKind::Good | LeafKind::Expired => {
                SERVER_NAMES.iter().map(|n| n.to_string()).collect()
            }
            LeafKind::WrongSan => vec!["wrong.example".into()],
            LeafKind::Large => SERVER_NAMES
                .iter()
                .map(|n| n.to_string())
                .chain((0..LARGE_PADDING_NAMES).map(|i| format!("padding-{i:03}.k8s.test")))
                .collect(),
        };
        let mut params = CertificateParams::new(names.clone()).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, &names[0]);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        if let LeafKind::Expired = kind {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        let stem = format!("{kind:?}").to_lowercase();
        Leaf {
            chain_path: world.file(&format!("{stem}.pem"), cert.pem()),
            key_path: world.file(&format!("{stem}.key"), key.serialize_pem()),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}
