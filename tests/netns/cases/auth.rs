//! `auth.whoami client-cert-not-requested`: nginx terminates TLS in front of the API server and
//! asks for no client certificate, so a kubeconfig that authenticates with one reaches the API
//! server anonymous, and gets 401.

use kube_reach::catalogue::{CheckId, Reason};

use super::assert_ran;
use crate::common_kubeconfig::{Ctx, kubeconfig};
use crate::nginx::{self, Front};
use crate::reach;
use crate::site::{API_PORT, Site};
use crate::world::{Family, skip_without_netns};

const VERSION_URL: &str = "https://api.k8s.test:6443/version";

/// nginx terminating TLS in front of the API server (the transport suite's load balancer), as
/// a cloud load balancer in TLS-termination mode does: it asks for no client certificate.
fn behind_tls_terminating_nginx() -> Site {
    let mut site = Site::direct(Family::V4);
    nginx::front(&mut site, Front::Http2);
    site
}

/// A kubeconfig whose only credential is a client certificate (self-signed: the front never
/// asks for it, so whom it would convince does not matter). `cluster_extra` adds lines to the
/// cluster (`    tls-server-name: …\n`).
pub(super) fn client_cert_kubeconfig(site: &Site, cluster_extra: &str) -> std::path::PathBuf {
    let key = rcgen::KeyPair::generate().expect("client key");
    let mut params = rcgen::CertificateParams::new(Vec::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "deployer");
    let cert = params.self_signed(&key).expect("client cert");
    let (cert, key) = (cert.pem(), key.serialize_pem());
    let ctx = Ctx {
        ca_pem: Some(&site.pki.root_pem),
        extra_cluster: cluster_extra,
        client_cert: Some((&cert, &key)),
        user_name: Some("cert"),
        namespace: None,
        ..Ctx::named("e2e", format!("https://api.k8s.test:{API_PORT}"))
    };
    let yaml = kubeconfig(&[ctx], Some("e2e"));
    site.world.file("client-cert.kubeconfig", yaml)
}

#[test]
fn world_tls_terminating_front() {
    if skip_without_netns() {
        return;
    }
    let site = behind_tls_terminating_nginx();
    let ran = site.curl(&[VERSION_URL], &[]);
    assert_ran(&ran, 0, &["gitVersion"]);
    // The front's handshake has no CertificateRequest (curl would log it).
    assert!(!ran.stderr.contains("Request CERT"), "{}", ran.text());
}

#[test]
fn auth_whoami_client_cert_not_requested() {
    if skip_without_netns() {
        return;
    }
    let site = behind_tls_terminating_nginx();
    let kubeconfig = client_cert_kubeconfig(&site, "");
    reach::diagnose_auth(
        &site,
        "auth: TLS-terminating front, client certificate",
        &kubeconfig,
    )
    .expect_root_cause(CheckId::AuthWhoami, Reason::ClientCertNotRequested)
    .expect_evidence(CheckId::AuthWhoami, &["no CertificateRequest", "HTTP 401"])
    .expect_fix(CheckId::AuthWhoami, &["passthrough"]);
}
