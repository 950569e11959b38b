//! `tcp.connect`: the server's nft firewall drops, resets or rejects with ICMP; the name points
//! where no route goes, or at an address on the link nobody owns; a dual-stack name whose IPv6
//! path is dropped; an IPv6-only world. Also the healthy world every other case breaks.

use super::{assert_ran, diagnose, one_timeout, served};
use crate::firewall::{self, Block};
use crate::pki::LeafKind;
use crate::site::{API_PORT, Site};
use crate::world::Family;
use crate::world::skip_without_netns;
use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::model::{Status, Verdict};

const API_URL: &str = "https://api.k8s.test:6443";
const VERSION_URL: &str = "https://api.k8s.test:6443/version";

/// The in-process server behind `block`, for the world proofs.
fn firewalled_fixture(block: Block) -> Site {
    let mut site = Site::direct(Family::Dual);
    site.fixture(LeafKind::Good);
    firewall::block(&site.world, &site.server, API_PORT, block);
    site
}

/// kube-reach's demo server behind `block`.
fn firewalled(block: Block) -> Site {
    let site = served(Family::Dual);
    firewall::block(&site.world, &site.server, API_PORT, block);
    site
}

#[test]
fn world_healthy() {
    if skip_without_netns() {
        return;
    }
    let mut site = Site::direct(Family::Dual);
    site.fixture(LeafKind::Good);
    assert_ran(
        &site.curl(&[VERSION_URL], &[]),
        0,
        &["gitVersion", "HTTP/1.1 200"],
    );
    let v6 = site.curl(&["https://api6.k8s.test:6443/version"], &[]);
    assert_ran(&v6, 0, &["gitVersion", "fd00:253:1::2"]);
}

#[test]
fn world_tcp_firewall() {
    if skip_without_netns() {
        return;
    }
    let drop = firewalled_fixture(Block::Drop).curl(&["--connect-timeout", "2", VERSION_URL], &[]);
    assert_ran(&drop, 28, &["Timeout was reached|Connection timeout after"]);
    let reset = firewalled_fixture(Block::Reset).curl(&[VERSION_URL], &[]);
    assert_ran(&reset, 7, &["Connection refused"]);
    let prohibited = firewalled_fixture(Block::AdminProhibited).curl(&[VERSION_URL], &[]);
    assert_ran(&prohibited, 7, &["No route to host"]);
}

#[test]
fn world_tcp_nobody_there() {
    if skip_without_netns() {
        return;
    }
    let site = Site::direct(Family::Dual);
    let unroutable = site.curl(&["https://unroutable.k8s.test:6443/"], &[]);
    assert_ran(&unroutable, 7, &["Network is unreachable"]);
    let unowned = site.curl(
        &["--connect-timeout", "5", "https://onlink.k8s.test:6443/"],
        &[],
    );
    assert_ran(&unowned, 7, &["No route to host"]);
}

#[test]
fn world_tcp_dual_stack() {
    if skip_without_netns() {
        return;
    }
    let site = firewalled_fixture(Block::DropV6);
    let dual = "https://dual.k8s.test:6443/version";
    assert_ran(&site.curl(&["-4", dual], &[]), 0, &["gitVersion"]);
    assert_ran(
        &site.curl(&["-6", "--connect-timeout", "2", dual], &[]),
        28,
        &[],
    );
    let mut v6_only = Site::direct(Family::V6);
    v6_only.fixture(LeafKind::Good);
    let ran = v6_only.curl(&["https://api6.k8s.test:6443/version"], &[]);
    assert_ran(&ran, 0, &["gitVersion"]);
}

#[test]
fn direct_path_passes_every_layer() {
    if skip_without_netns() {
        return;
    }
    let site = served(Family::Dual);
    diagnose(&site, "healthy world", API_URL, &[])
        .expect_no_failure()
        .expect_pass(&[
            CheckId::DnsResolve,
            CheckId::TcpConnect,
            CheckId::TlsHandshake,
            CheckId::TlsTrust,
            CheckId::TlsHostname,
            CheckId::TlsValidity,
            CheckId::HttpVersion,
            CheckId::AuthWhoami,
            CheckId::RbacCanI,
        ])
        .expect_evidence(CheckId::HttpVersion, &["v1."]);
}

#[test]
fn tcp_connect_timeout_when_dropped() {
    if skip_without_netns() {
        return;
    }
    let site = firewalled(Block::Drop);
    diagnose(&site, "tcp: firewall drops", API_URL, &[])
        .expect_root_cause(CheckId::TcpConnect, Reason::Timeout)
        .expect_evidence(
            CheckId::TcpConnect,
            &["10.253.1.2", "timed out|timeout|no answer"],
        )
        .expect_within(one_timeout());
}

#[test]
fn tcp_connect_refused_by_reset() {
    if skip_without_netns() {
        return;
    }
    let site = firewalled(Block::Reset);
    diagnose(&site, "tcp: firewall resets", API_URL, &[])
        .expect_root_cause(CheckId::TcpConnect, Reason::Refused)
        .expect_evidence(CheckId::TcpConnect, &["10.253.1.2", "refused"]);
}

#[test]
fn tcp_connect_host_unreachable_admin_prohibited() {
    if skip_without_netns() {
        return;
    }
    let site = firewalled(Block::AdminProhibited);
    diagnose(
        &site,
        "tcp: firewall rejects (admin-prohibited)",
        API_URL,
        &[],
    )
    .expect_root_cause(CheckId::TcpConnect, Reason::HostUnreachable)
    .expect_evidence(CheckId::TcpConnect, &["10.253.1.2", "unreachable|no route"]);
}

#[test]
fn tcp_connect_network_unreachable() {
    if skip_without_netns() {
        return;
    }
    let site = served(Family::Dual);
    diagnose(
        &site,
        "tcp: no route to the address",
        "https://unroutable.k8s.test:6443",
        &[],
    )
    .expect_root_cause(CheckId::TcpConnect, Reason::NetworkUnreachable)
    .expect_evidence(CheckId::TcpConnect, &["10.253.99.1", "unreachable"]);
}

#[test]
fn tcp_connect_unowned_address_on_link() {
    if skip_without_netns() {
        return;
    }
    let site = served(Family::Dual);
    let report = diagnose(
        &site,
        "tcp: nobody owns the address",
        "https://onlink.k8s.test:6443",
        &[],
    );
    let reason = report.root_reason();
    assert!(
        matches!(reason, Reason::HostUnreachable | Reason::Timeout),
        "unexpected reason {}",
        reason.as_str()
    );
    report
        .expect_root_cause(CheckId::TcpConnect, reason)
        .expect_evidence(CheckId::TcpConnect, &["10.253.1.77"])
        .expect_within(one_timeout());
}

#[test]
fn tcp_connect_ipv6_broken_ipv4_works() {
    if skip_without_netns() {
        return;
    }
    let site = firewalled(Block::DropV6);
    let report = diagnose(
        &site,
        "tcp: IPv6 dropped, IPv4 works",
        "https://dual.k8s.test:6443",
        &[],
    );
    report
        .expect_no_failure()
        // One result named by the configured host:port; each address's outcome in evidence.
        .expect_status(CheckId::TcpConnect, "dual.k8s.test:6443", Status::Warn)
        .expect_evidence(
            CheckId::TcpConnect,
            &[
                "10.253.1.2:6443: connected",
                "[fd00:253:1::2]:6443: no answer",
            ],
        )
        .expect_pass(&[CheckId::TlsTrust, CheckId::HttpVersion]);
    assert_eq!(
        report.verdict(),
        Verdict::Warn,
        "a broken address family is worth a warning"
    );
}

#[test]
fn tcp_connect_ipv6_only_world() {
    if skip_without_netns() {
        return;
    }
    let site = served(Family::V6);
    diagnose(
        &site,
        "tcp: IPv6-only world",
        "https://api6.k8s.test:6443",
        &[],
    )
    .expect_no_failure()
    .expect_status(CheckId::TcpConnect, "api6.k8s.test:6443", Status::Pass)
    .expect_evidence(CheckId::TcpConnect, &["[fd00:253:1::2]:6443: connected"])
    .expect_pass(&[CheckId::DnsResolve, CheckId::TlsTrust, CheckId::HttpVersion]);
}
