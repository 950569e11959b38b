//! `tls.validity` and `tls.hostname`, reached by name through the world's DNS: the server's
//! certificate expired in 2021, or is valid only for `wrong.example`.

use super::{assert_ran, diagnose};
use crate::pki::LeafKind;
use crate::reach;
use crate::site::Site;
use crate::world::Family;
use crate::world::skip_without_netns;

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
        .expect_root_cause("tls.validity", "expired")
        .expect_evidence("tls.validity", &["api.k8s.test", "2021"]);
}

#[test]
fn tls_hostname_mismatch() {
    if skip_without_netns() {
        return;
    }
    let site = served_with(LeafKind::WrongSan);
    diagnose(&site, "tls: certificate for another name", API_URL, &[])
        .expect_root_cause("tls.hostname", "mismatch")
        .expect_evidence("tls.hostname", &["wrong.example", "api.k8s.test"]);
}
