//! One test per decision rule of `read`, on chains made here with rcgen (the loopback suite's
//! `trust` module does the same with `openssl`-made worlds over real TLS).

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DistinguishedName,
    DnType, IsCa, KeyPair,
};
use rustls::pki_types::CertificateDer;

use super::*;
use crate::model::TargetKind;

struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn der(&self) -> CertificateDer<'static> {
        self.0.der().clone()
    }
}

fn name(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca(cn: &str, org: Option<&str>, parent: Option<&Ca>) -> Ca {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(cn, org);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.use_authority_key_identifier_extension = parent.is_some();
    let key = KeyPair::generate().expect("key");
    Ca(match parent {
        None => CertifiedIssuer::self_signed(params, key).expect("root"),
        Some(p) => CertifiedIssuer::signed_by(params, key, &p.0).expect("intermediate"),
    })
}

/// AIA with one caIssuers URL, DER-encoded by hand (rcgen has no builder for it).
fn aia(url: &str) -> CustomExtension {
    let oid = [0x06, 0x08, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02];
    let mut location = vec![0x86, url.len() as u8];
    location.extend(url.as_bytes());
    let mut desc = vec![0x30, (oid.len() + location.len()) as u8];
    desc.extend(oid);
    desc.extend(location);
    let mut seq = vec![0x30, desc.len() as u8];
    seq.extend(desc);
    CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], seq)
}

fn leaf(cn: &str, issuer: &Ca, aia_url: Option<&str>) -> CertificateDer<'static> {
    let mut params = CertificateParams::new(vec!["api.k8s.test".to_string()]).expect("params");
    params.distinguished_name = name(cn, None);
    params.use_authority_key_identifier_extension = true;
    if let Some(url) = aia_url {
        params.custom_extensions.push(aia(url));
    }
    let key = KeyPair::generate().expect("key");
    params
        .signed_by(&key, &issuer.0)
        .expect("leaf")
        .der()
        .clone()
}

fn self_signed_leaf(cn: &str) -> CertificateDer<'static> {
    let mut params = CertificateParams::new(vec!["api.k8s.test".to_string()]).expect("params");
    params.distinguished_name = name(cn, None);
    let key = KeyPair::generate().expect("key");
    params.self_signed(&key).expect("self-signed").der().clone()
}

fn read_with(
    chain: &[CertificateDer<'static>],
    anchors: &[CertificateDer<'static>],
    via_proxy: Option<&str>,
) -> Reading {
    let input = TrustInput {
        chain: chain.iter().filter_map(Cert::parse).collect(),
        anchors: anchors.iter().filter_map(Cert::parse).collect(),
        via_proxy,
        bad_signature: false,
        out_of_date: false,
        unsupported_algorithm: false,
        wrong_purpose: false,
        now: std::time::SystemTime::now(),
        verifier: String::new(),
        ca_setting: crate::catalogue::ca_setting(TargetKind::Direct),
    };
    read(&input)
}

fn has(r: &Reading, words: &str) -> bool {
    r.evidence.iter().any(|e| e.contains(words))
}

#[test]
fn no_ca_and_a_private_cluster_ca_is_unknown_authority_with_the_ca_fix() {
    let cluster = ca("kubernetes", None, None);
    let r = read_with(&[leaf("kube-apiserver", &cluster, None)], &[], None);
    assert_eq!(r.reason, Reason::UnknownAuthority, "{r:?}");
    let fix = r.fix_detail.unwrap_or_default();
    assert!(
        fix.contains("/etc/kubernetes/pki/ca.crt") && fix.contains("certificate-authority-data"),
        "{fix}"
    );
    assert!(!fix.contains("chain"), "never 'send the full chain': {fix}");
}

#[test]
fn the_gitlab_server_gets_its_own_ca_setting_in_the_fix() {
    let corp = ca("Corp Root", Some("Corp"), None);
    let chain = [leaf("gitlab", &corp, None)];
    let input = TrustInput {
        chain: chain.iter().filter_map(Cert::parse).collect(),
        anchors: Vec::new(),
        via_proxy: None,
        bad_signature: false,
        out_of_date: false,
        unsupported_algorithm: false,
        wrong_purpose: false,
        now: std::time::SystemTime::now(),
        verifier: String::new(),
        ca_setting: crate::catalogue::ca_setting(TargetKind::Gitlab),
    };
    let r = read(&input);
    assert_eq!(r.reason, Reason::UnknownAuthority, "{r:?}");
    let fix = r.fix_detail.unwrap_or_default();
    assert!(
        fix.contains("CI_SERVER_TLS_CA_FILE") && !fix.contains("kubeconfig"),
        "{fix}"
    );
}

#[test]
fn no_ca_and_a_complete_private_chain_is_unknown_authority() {
    let root = ca("Corp Root", Some("Corp"), None);
    let r = read_with(&[leaf("api", &root, None), root.der()], &[], None);
    assert_eq!(r.reason, Reason::UnknownAuthority, "{r:?}");
    assert!(
        has(&r, "complete chain up to the root") && has(&r, "CN=Corp Root"),
        "{r:?}"
    );
}

#[test]
fn no_ca_and_aia_is_missing_intermediate() {
    let root = ca("Public Root", Some("Public CA Inc"), None);
    let issuing = ca("Public Issuing CA 1", Some("Public CA Inc"), Some(&root));
    let url = "http://ca.example/issuing1.crt";
    let r = read_with(&[leaf("api", &issuing, Some(url))], &[], None);
    assert_eq!(r.reason, Reason::MissingIntermediate, "{r:?}");
    assert!(has(&r, url) && has(&r, "not fetched"), "{r:?}");
}

#[test]
fn same_ca_name_with_another_key_is_ca_mismatch() {
    let old = ca("kubernetes", None, None);
    let rebuilt = ca("kubernetes", None, None);
    let r = read_with(
        &[leaf("kube-apiserver", &rebuilt, None)],
        &[old.der()],
        None,
    );
    assert_eq!(r.reason, Reason::CaMismatch, "{r:?}");
    assert!(has(&r, "both named CN=kubernetes"), "{r:?}");
    assert!(has(&r, "authorityKeyIdentifier"), "{r:?}");
}

#[test]
fn a_complete_chain_to_another_root_is_ca_mismatch() {
    let configured = ca("Corp Root", Some("Corp"), None);
    let other = ca("Other Root", Some("Other"), None);
    let r = read_with(
        &[leaf("api", &other, None), other.der()],
        &[configured.der()],
        None,
    );
    assert_eq!(r.reason, Reason::CaMismatch, "{r:?}");
}

#[test]
fn a_leaf_from_another_cluster_ca_is_ca_mismatch_without_a_second_reading() {
    let configured = ca("k3s-server-ca@1700000000", None, None);
    let other = ca("k3s-server-ca@1800000000", None, None);
    let r = read_with(&[leaf("k3s", &other, None)], &[configured.der()], None);
    assert_eq!(r.reason, Reason::CaMismatch, "{r:?}");
    assert!(!has(&r, "other reading"), "{r:?}");
    assert!(
        r.fix_detail
            .unwrap_or_default()
            .contains("/var/lib/rancher/k3s")
    );
}

#[test]
fn an_unrelated_non_cluster_issuer_is_ca_mismatch_naming_the_other_reading() {
    let configured = ca("Corp Root", Some("Corp"), None);
    let stranger = ca("Stranger CA", Some("Stranger"), None);
    let r = read_with(&[leaf("api", &stranger, None)], &[configured.der()], None);
    assert_eq!(r.reason, Reason::CaMismatch, "{r:?}");
    assert!(has(&r, "other reading: missing-intermediate"), "{r:?}");
}

#[test]
fn a_root_of_the_same_organisation_is_missing_intermediate() {
    let root = ca("Corp Root CA", Some("Corp"), None);
    let issuing = ca("Corp Issuing CA", Some("Corp"), Some(&root));
    let r = read_with(&[leaf("api", &issuing, None)], &[root.der()], None);
    assert_eq!(r.reason, Reason::MissingIntermediate, "{r:?}");
    assert!(has(&r, "same organisation (Corp)"), "{r:?}");
    assert!(has(&r, "other reading: ca-mismatch"), "{r:?}");
}

#[test]
fn a_sent_certificate_signed_by_the_anchor_is_missing_intermediate() {
    let root = ca("Root", None, None);
    let policy = ca("Policy CA", None, Some(&root));
    let issuing = ca("Issuing CA", None, Some(&policy));
    // The server sends the policy CA but not the issuing CA between it and the leaf.
    let r = read_with(
        &[leaf("api", &issuing, None), policy.der()],
        &[root.der()],
        None,
    );
    assert_eq!(r.reason, Reason::MissingIntermediate, "{r:?}");
    assert!(has(&r, "CN=Policy CA"), "{r:?}");
}

#[test]
fn a_self_signed_leaf_is_self_signed() {
    let r = read_with(&[self_signed_leaf("api")], &[], None);
    assert_eq!(r.reason, Reason::SelfSigned, "{r:?}");
}

#[test]
fn an_inspection_product_name_is_intercepted() {
    let zscaler = ca("Zscaler Intermediate Root CA", Some("Zscaler Inc."), None);
    let configured = ca("kubernetes", None, None);
    let r = read_with(
        &[leaf("api.k8s.test", &zscaler, None)],
        &[configured.der()],
        None,
    );
    assert_eq!(r.reason, Reason::Intercepted, "{r:?}");
    assert!(has(&r, "Zscaler TLS-inspection CA"), "{r:?}");
}

#[test]
fn a_leaf_named_after_an_inspection_vendor_is_not_intercepted() {
    let cluster = ca("kubernetes", None, None);
    let r = read_with(&[leaf("api.k8s.sophos.example", &cluster, None)], &[], None);
    assert_eq!(r.reason, Reason::UnknownAuthority, "{r:?}");
}

#[test]
fn an_unrelated_chain_through_a_proxy_is_intercepted_naming_the_other_reading() {
    let configured = ca("kubernetes", None, None);
    let corp = ca("Corp Web Security CA", Some("Corp"), None);
    let r = read_with(
        &[leaf("api.k8s.test", &corp, None)],
        &[configured.der()],
        Some("proxy.corp:3128"),
    );
    assert_eq!(r.reason, Reason::Intercepted, "{r:?}");
    assert!(has(&r, "other reading: ca-mismatch"), "{r:?}");
}

#[test]
fn a_cluster_chain_through_a_proxy_keeps_its_reading() {
    let old = ca("kubernetes", None, None);
    let rebuilt = ca("kubernetes", None, None);
    let r = read_with(
        &[leaf("kube-apiserver", &rebuilt, None)],
        &[old.der()],
        Some("proxy.corp:3128"),
    );
    assert_eq!(r.reason, Reason::CaMismatch, "{r:?}");
    assert!(has(&r, "passed TLS through"), "{r:?}");
}

#[test]
fn a_stale_intermediate_is_bad_signature() {
    let root = ca("Corp Root", Some("Corp"), None);
    let current = ca("Corp Issuing CA", Some("Corp"), Some(&root));
    let stale = ca("Corp Issuing CA", Some("Corp"), Some(&root));
    let r = read_with(
        &[leaf("api", &current, None), stale.der()],
        &[root.der()],
        None,
    );
    assert_eq!(r.reason, Reason::BadSignature, "{r:?}");
}

#[test]
fn a_non_ca_issuer_is_not_a_ca() {
    let root = ca("Root", None, None);
    let mut params = CertificateParams::default();
    params.distinguished_name = name("Not A CA", None);
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    let issuer = Ca(
        CertifiedIssuer::signed_by(params, KeyPair::generate().expect("key"), &root.0)
            .expect("issuer"),
    );
    let r = read_with(
        &[leaf("api", &issuer, None), issuer.der()],
        &[root.der()],
        None,
    );
    assert_eq!(r.reason, Reason::NotACa, "{r:?}");
}

/// The configured CA did sign the leaf (its key is right), yet the chain fails: say what the
/// verifier said, never `unknown-authority` ("configure a CA": one is configured).
#[test]
fn a_leaf_signed_by_the_configured_ca_is_chain_rejected_with_the_verifiers_words() {
    let root = ca("Root", None, None);
    let chain = [leaf("api", &root, None)];
    let anchors = [root.der()];
    let mut input = TrustInput {
        chain: chain.iter().filter_map(Cert::parse).collect(),
        anchors: anchors.iter().filter_map(Cert::parse).collect(),
        via_proxy: None,
        bad_signature: false,
        out_of_date: false,
        unsupported_algorithm: false,
        wrong_purpose: false,
        now: std::time::SystemTime::now(),
        verifier: "invalid peer certificate: Other(NameConstraintViolation)".into(),
        ca_setting: crate::catalogue::ca_setting(TargetKind::Direct),
    };
    let r = read(&input);
    assert_eq!(r.reason, Reason::ChainRejected, "{r:?}");
    assert!(has(&r, "NameConstraintViolation"), "{r:?}");
    input.bad_signature = true;
    assert_eq!(read(&input).reason, Reason::BadSignature);
}

/// A CA named `DC=<dc>, CN=<cn>` (rcgen keeps one value per attribute type, so one `DC=`:
/// the loopback suite's `only_the_whole_dc_path_makes_one_organisation` builds longer paths
/// with openssl), signed by `parent` or self-signed.
fn dc_ca(cn: &str, dc: &str, parent: Option<&Ca>) -> Ca {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 25]),
        rcgen::DnValue::Ia5String(dc.try_into().expect("ia5")),
    );
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.use_authority_key_identifier_extension = parent.is_some();
    let key = KeyPair::generate().expect("key");
    Ca(match parent {
        None => CertifiedIssuer::self_signed(params, key).expect("root"),
        Some(p) => CertifiedIssuer::signed_by(params, key, &p.0).expect("intermediate"),
    })
}

/// A `DC=` path of one label (`DC=com`, `DC=local`) is a top-level or single-label name that
/// any number of unrelated CAs share: it makes no organisation, so another CA under it stays
/// `ca-mismatch` (it was `missing-intermediate`, "same organisation (DC=com)").
#[test]
fn a_single_dc_label_is_no_organisation() {
    let root = dc_ca("Corp Root", "com", None);
    let other_root = dc_ca("Other Root", "com", None);
    let other = dc_ca("Other Issuing", "com", Some(&other_root));
    let r = read_with(&[leaf("api", &other, None)], &[root.der()], None);
    assert_eq!(r.reason, Reason::CaMismatch, "{r:?}");
    assert!(!has(&r, "same organisation"), "{r:?}");
    // The one-label path is not kept as an organisation at all.
    assert_eq!(
        crate::x509::CertFacts::parse(&root.der())
            .expect("parses")
            .subject_orgs,
        Vec::<String>::new()
    );
}

/// `CN=Unrelated SHA1 Issuing`, a CA certificate signed with sha1WithRSAEncryption by
/// `CN=Old Root` (`openssl x509 -req -sha1`; rcgen signs no SHA-1).
const UNRELATED_SHA1_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIDJzCCAg+gAwIBAgIUcdW8xdrAWPgPIUprufuHa+OvmowwDQYJKoZIhvcNAQEF\nBQAwEzERMA8GA1UEAwwIT2xkIFJvb3QwIBcNMjYxMjAzMDcwMTMzWhgPMjEyNjEx\nMDkwNzAxMzNaMCExHzAdBgNVBAMMFlVucmVsYXRlZCBTSEExIElzc3VpbmcwggEi\nMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQCyhrxnCHVja+7khxZz+Jr0Eo8E\nYwHOPCqTIEDdets5e25CNLU2ft6/9s9oq0ZcJDlzaxOlfDHcERwpgMuuZ2nLZMUJ\nbrdMYH6Gi64aZ1bBMpV80AZb5d5uJ6Y0JaNpNWjp0g33UaSF4OpFUfoFKTtuR5tE\n/3BeHNV1qOjGaBDesthDPD84aAkolLYn2BqCCQTiflYc0d8xMRadxKecEmEu6Nyd\nl1baQfTZMZwnHAQvZM4OkQCxxvwvmpLu8hoLKOayNfkmUvm2VBWp6Iw4qY2C94Xg\n1kIwHfdUdezTEOuA5+R0nv27+ive9YfsiI+lBcb0inbxITXvw+ceXAdRUG57AgMB\nAAGjYzBhMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgIEMB0GA1UdDgQW\nBBSEF38XukK+TcZcKNYs0J1SrMedKTAfBgNVHSMEGDAWgBQSUuWM9A8mEILOYp1U\nPf2y75MSbzANBgkqhkiG9w0BAQUFAAOCAQEAFaLnqpAMA2MT1SpWQLthOkC7pk9s\nXjNimGmVVN9qh8xL0kizde7sg9rze1AHObgjLw18Y0SLV/zszpV4KBstAiL+utgs\nRsMzBqxwfAvu8eVRgRUZWvrpMZG/6NV7K9vbsBK1X3UV/VnF0tVT+030gOkLJmni\ntvGR2fq7217qgaeAn9NVh+4AXhR2Yi2mW3L8720wzAJ5NPPjolFIRyhh8yxmUZcB\n0qLRBbqiNToX7rpA1VC2dwbQhy3jXWih7rEk5zcWuVHK912QMUNOf6pK/dZ2JM01\nmKZpAzdU+tU8QDbfdzJYXlFBVzhUh3oHuK7r7ncKrztGt6Uf+FS7o7lZAA==\n-----END CERTIFICATE-----";

/// webpki refused an algorithm, and the server also sent an unrelated SHA-1 certificate that
/// no path from the leaf goes through (its name is nobody's issuer): webpki never checked its
/// signature, so it is not what to reissue; the reading stays `unsupported-algorithm`. A
/// SHA-1 certificate on the leaf's path is still named.
#[test]
fn a_sha1_certificate_off_the_leafs_path_is_not_blamed() {
    use rustls::pki_types::pem::PemObject;
    let unrelated = CertificateDer::from_pem_slice(UNRELATED_SHA1_PEM.as_bytes()).expect("pem");
    let root = ca("Lab Root", None, None);
    let leaf_der = leaf("api.k8s.test", &root, None);
    let judge = |chain: &[CertificateDer<'static>]| {
        read(&TrustInput {
            chain: chain.iter().filter_map(Cert::parse).collect(),
            anchors: [root.der()].iter().filter_map(Cert::parse).collect(),
            via_proxy: None,
            bad_signature: false,
            out_of_date: false,
            unsupported_algorithm: true,
            wrong_purpose: false,
            now: std::time::SystemTime::now(),
            verifier: String::new(),
            ca_setting: crate::catalogue::ca_setting(TargetKind::Direct),
        })
    };
    let r = judge(&[leaf_der.clone(), unrelated.clone()]);
    assert_eq!(r.reason, Reason::UnsupportedAlgorithm, "{r:?}");
    assert!(!has(&r, "Unrelated SHA1 Issuing"), "{r:?}");
    // The same certificate as the leaf's issuer (a leaf naming it): on the path, named.
    let below = {
        let mut params = CertificateParams::new(vec!["api.k8s.test".to_string()]).expect("params");
        params.distinguished_name = name("api.k8s.test", None);
        let mut issuer_dn = DistinguishedName::new();
        issuer_dn.push(DnType::CommonName, "Unrelated SHA1 Issuing");
        // Signed by a throwaway key under that name: the names make the path webpki walks.
        let key = KeyPair::generate().expect("key");
        let mut issuer_params = CertificateParams::default();
        issuer_params.distinguished_name = issuer_dn;
        issuer_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(issuer_params, KeyPair::generate().expect("k"))
            .expect("issuer");
        params.signed_by(&key, &issuer).expect("leaf").der().clone()
    };
    let r = judge(&[below, unrelated]);
    assert_eq!(r.reason, Reason::WeakSignature, "{r:?}");
    assert!(
        has(&r, "Unrelated SHA1 Issuing is signed with SHA-1"),
        "{r:?}"
    );
}
