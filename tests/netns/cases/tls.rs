//! `tls.validity` and `tls.hostname`, reached by name through the world's DNS: the server's
//! certificate expired in 2021, or is valid only for `wrong.example`.

use super::{assert_ran, diagnose};
use crate::pki::LeafKind;
use crate::reach;
use crate::site::Site;
use crate::world::Family;
use crate::world::skip_without_netns;
use kube_reach::catalogue::{CheckId, Reason};

const API_URL: &str = "https://api.k8s.test:6443";
const VERSION_URL: &str = "https://api.k8s.test:6443/version";

fn served_with(kind: LeafKind) -> Site {
    let mut site = Site::direct(Family::Dual);
    reach::demo_server(&mut site, kind, &[]);
    site
}

#[test]
fn world_tls_bad_certificates() {
    if skip_without_netns() {
        return;
    }
    for (kind, complaint) in [
        (LeafKind::Expired, "certificate has expired"),
        (
            LeafKind::WrongSan,
            "no alternative certificate subject name matches",
        ),
    ] {
        let mut site = Site::direct(Family::Dual);
        site.fixture(kind);
        assert_ran(&site.curl(&[VERSION_URL], &[]), 60, &[complaint]);
    }
}

#[test]
fn tls_validity_expired() {
    if skip_without_netns() {
        return;
    }
    let site = served_with(LeafKind::Expired);
    diagnose(&site, "tls: certificate expired", API_URL, &[])
        .expect_root_cause(CheckId::TlsValidity, Reason::Expired)
        .expect_evidence(CheckId::TlsValidity, &["api.k8s.test", "2021"]);
}

#[test]
fn tls_hostname_mismatch() {
    if skip_without_netns() {
        return;
    }
    let site = served_with(LeafKind::WrongSan);
    diagnose(&site, "tls: certificate for another name", API_URL, &[])
        .expect_root_cause(CheckId::TlsHostname, Reason::Mismatch)
        .expect_evidence(CheckId::TlsHostname, &["wrong.example", "api.k8s.test"]);
}

/// The MTU world with a large certificate: the server's handshake flight needs full-size
/// segments, which the narrow link drops while the ICMP that would say so is dropped too.
fn narrow_with_large_chain() -> Site {
    let mut site = Site::narrow();
    reach::demo_server(&mut site, LeafKind::Large, &[]);
    site
}

#[test]
fn world_mtu_black_hole_at_the_handshake() {
    if skip_without_netns() {
        return;
    }
    let site = narrow_with_large_chain();
    // curl, like kubectl, waits for a flight that never comes.
    let hung = site.curl(&["--max-time", "3", VERSION_URL], &[]);
    assert_ran(&hung, 28, &["timed out"]);
    // Control: without the ICMP drop, path MTU discovery heals the same handshake.
    let ran = site.world.run(
        site.hop.as_ref().expect("router"),
        &["nft", "delete", "table", "inet", "kr"],
        &[],
        std::time::Duration::from_secs(10),
    );
    assert_ran(&ran, 0, &[]);
    assert_ran(&site.curl(&[VERSION_URL], &[]), 0, &["gitVersion"]);
}

#[test]
fn tls_handshake_mtu_blackhole() {
    if skip_without_netns() {
        return;
    }
    let site = narrow_with_large_chain();
    diagnose(&site, "tls: MTU black hole at the handshake", API_URL, &[])
        .expect_root_cause(CheckId::TlsHandshake, Reason::MtuBlackhole)
        .expect_pass(&[CheckId::TcpConnect])
        .expect_evidence(
            CheckId::TlsHandshake,
            &["no handshake within", "MSS 536", "handshake complete"],
        )
        .expect_fix(CheckId::TlsHandshake, &["--mtu", "fragmentation needed"]);
}

#[test]
fn tls_handshake_mtu_blackhole_between_the_job_and_its_proxy() {
    if skip_without_netns() {
        return;
    }
    let mut site = Site::narrow_proxied();
    reach::demo_server(&mut site, LeafKind::Large, &[]);
    super::proxy::start_tinyproxy(&mut site, crate::proxy::Tinyproxy::Open);
    diagnose(
        &site,
        "tls: MTU black hole between the job and its proxy",
        API_URL,
        &[("HTTPS_PROXY", "http://proxy.k8s.test:8888")],
    )
    .expect_root_cause(CheckId::TlsHandshake, Reason::MtuBlackhole)
    .expect_pass(&[CheckId::ProxyConnect, CheckId::ProxyTunnel])
    .expect_evidence(CheckId::TlsHandshake, &["MSS 536", "handshake complete"]);
}

/// The MTU black hole again, for a client-certificate user whose server's certificate does not
/// verify (here: for another name). The small-MSS retry gets the whole certificate through, and
/// kube-reach then ends that handshake itself before its client certificate goes out: the
/// black hole is still what the retry proved, not "no answer either".
#[test]
fn tls_handshake_mtu_blackhole_with_a_client_certificate_and_a_server_that_does_not_verify() {
    if skip_without_netns() {
        return;
    }
    let site = narrow_with_large_chain();
    // The user is a client certificate the server never gets to judge.
    let extra = "    tls-server-name: other.k8s.test\n";
    let kubeconfig = super::auth::client_cert_kubeconfig(&site, extra);
    reach::diagnose(
        &site,
        "tls: MTU black hole, client certificate, certificate for another name",
        &kubeconfig,
        &[],
    )
    .expect_root_cause(CheckId::TlsHandshake, Reason::MtuBlackhole)
    .expect_evidence(
        CheckId::TlsHandshake,
        &["MSS 536", "kube-reach ended the handshake"],
    );
}
