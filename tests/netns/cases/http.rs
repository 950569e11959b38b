//! `http.version` stalled: TCP and TLS work through the MTU black hole, but the padded `/version`
//! answer needs full-size packets, which vanish.

use super::{assert_ran, diagnose};
use crate::pki::LeafKind;
use crate::world::skip_without_netns;
use kube_reach::catalogue::{CheckId, Reason};
use std::time::Duration;

use crate::reach;
use crate::site::Site;

const VERSION_URL: &str = "https://api.k8s.test:6443/version";

#[test]
fn world_mtu_black_hole() {
    if skip_without_netns() {
        return;
    }
    let mut site = Site::narrow();
    site.fixture(LeafKind::Good);
    assert_ran(&site.curl(&[VERSION_URL], &[]), 0, &["gitVersion"]);
    let big = site.curl(&["--max-time", "3", "https://api.k8s.test:6443/big"], &[]);
    assert_ran(&big, 28, &["Operation timed out"]);
    // Control: without the ICMP drop, path MTU discovery heals the same transfer.
    let router = site.hop.clone().expect("router ns");
    let ran = site.world.run(
        &router,
        &["nft", "delete", "table", "inet", "kr"],
        &[],
        Duration::from_secs(10),
    );
    assert_ran(&ran, 0, &[]);
    assert_ran(
        &site.curl(&["https://api.k8s.test:6443/big", "-o", "/dev/null"], &[]),
        0,
        &[],
    );
}

#[test]
fn http_version_stalled_by_mtu_black_hole() {
    if skip_without_netns() {
        return;
    }
    let mut site = Site::narrow();
    reach::demo_server(&mut site, LeafKind::Good, &["--version-padding", "200000"]);
    diagnose(
        &site,
        "http: MTU black hole",
        "https://api.k8s.test:6443",
        &[],
    )
    .expect_root_cause(CheckId::HttpVersion, Reason::Stalled)
    .expect_pass(&[CheckId::TcpConnect, CheckId::TlsHandshake])
    .expect_fix(CheckId::HttpVersion, &["mtu"]);
}
