//! `proxy.connect` and `proxy.tunnel`: the client reaches the API server only through a proxy in
//! the middle namespace, which tunnels, forbids (403), wants credentials (407), cannot resolve or
//! reach the server (500 from tinyproxy, 503 from squid), or is not there; `NO_PROXY` and the
//! kubeconfig's `proxy-url` change the route.

use super::{assert_ran, diagnose};
use crate::dns::API;
use crate::pki::LeafKind;
use crate::proxy::{self, Tinyproxy};
use crate::reach::{self, Report};
use crate::site::{DEAD_PROXY_PORT, PROXY_PORT, Site};
use crate::world::skip_without_netns;
use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::model::Status;

const API_URL: &str = "https://api.k8s.test:6443";
const VERSION_URL: &str = "https://api.k8s.test:6443/version";
const PROXY_URL: &str = "http://proxy.k8s.test:8888";
const DEAD_PROXY_URL: &str = "http://proxy.k8s.test:3999";
const SQUID_PORT: u16 = 3128;

/// A proxied world with kube-reach's demo server up behind a tinyproxy of `kind`.
fn behind_tinyproxy(kind: Tinyproxy) -> Site {
    let mut site = Site::proxied();
    reach::demo_server(&mut site, LeafKind::Good, &[]);
    start_tinyproxy(&mut site, kind);
    site
}

pub(super) fn start_tinyproxy(site: &mut Site, kind: Tinyproxy) {
    let (addr, hop) = (
        site.proxy_addr(PROXY_PORT),
        site.hop.clone().expect("proxy ns"),
    );
    proxy::tinyproxy(&mut site.world, &hop, addr, kind);
}

fn start_squid(site: &mut Site) {
    let (addr, hop) = (
        site.proxy_addr(SQUID_PORT),
        site.hop.clone().expect("proxy ns"),
    );
    proxy::squid(&mut site.world, &hop, addr);
}

/// kube-reach with `HTTPS_PROXY=proxy_url`.
fn via(site: &Site, case: &str, server: &str, proxy_url: &str) -> Report {
    diagnose(site, case, server, &[("HTTPS_PROXY", proxy_url)])
}

#[test]
fn world_proxy_answers() {
    if skip_without_netns() {
        return;
    }
    let mut site = Site::proxied();
    site.fixture(LeafKind::Good);
    start_tinyproxy(&mut site, Tinyproxy::Open);
    let tunnel = site.curl(&["--proxy", PROXY_URL, VERSION_URL], &[]);
    assert_ran(&tunnel, 0, &["200 Connection established", "gitVersion"]);
    let direct = site.curl(&[VERSION_URL], &[]);
    assert_ran(&direct, 7, &["Network is unreachable"]);
    let ghost = site.curl(&["--proxy", PROXY_URL, "https://ghost.k8s.test:6443/"], &[]);
    assert_ran(&ghost, 56, &["HTTP/1.1 500"]);
    let dead = site.curl(&[VERSION_URL], &[("https_proxy", DEAD_PROXY_URL)]);
    assert_ran(&dead, 7, &["Connection refused"]);
}

#[test]
fn world_proxy_refusals() {
    if skip_without_netns() {
        return;
    }
    for (kind, status) in [
        (Tinyproxy::Forbidding, "HTTP/1.1 403"),
        (Tinyproxy::Authenticating, "HTTP/1.0 407"),
    ] {
        let mut site = Site::proxied();
        site.fixture(LeafKind::Good);
        start_tinyproxy(&mut site, kind);
        let ran = site.curl(&[VERSION_URL], &[("https_proxy", PROXY_URL)]);
        assert_ran(&ran, 56, &[status]);
    }
}

#[test]
fn world_proxy_squid_and_bypass() {
    if skip_without_netns() {
        return;
    }
    let mut site = Site::proxied();
    start_squid(&mut site);
    let squid_url = format!("http://proxy.k8s.test:{SQUID_PORT}");
    let down = site.curl(&["--proxy", &squid_url, VERSION_URL], &[]);
    assert_ran(&down, 56, &["HTTP/1.1 503"]);
    site.fixture(LeafKind::Good);
    let up = site.curl(&["--proxy", &squid_url, VERSION_URL], &[]);
    assert_ran(&up, 0, &["200 Connection established", "gitVersion"]);
    site.route_around_proxy();
    let env = [("https_proxy", DEAD_PROXY_URL), ("no_proxy", API)];
    assert_ran(&site.curl(&[VERSION_URL], &env), 0, &["gitVersion"]);
}

#[test]
fn proxy_tunnel_passes() {
    if skip_without_netns() {
        return;
    }
    let site = behind_tinyproxy(Tinyproxy::Open);
    via(&site, "proxy: tinyproxy tunnels", API_URL, PROXY_URL)
        .expect_no_failure()
        .expect_pass(&[
            CheckId::ProxyConnect,
            CheckId::ProxyTunnel,
            CheckId::TlsTrust,
            CheckId::HttpVersion,
            CheckId::AuthWhoami,
        ])
        .expect_evidence(CheckId::ProxyTunnel, &["200"]);
}

#[test]
fn proxy_tunnel_passes_through_squid() {
    if skip_without_netns() {
        return;
    }
    let mut site = Site::proxied();
    reach::demo_server(&mut site, LeafKind::Good, &[]);
    start_squid(&mut site);
    let squid_url = format!("http://proxy.k8s.test:{SQUID_PORT}");
    via(&site, "proxy: squid tunnels", API_URL, &squid_url)
        .expect_no_failure()
        .expect_pass(&[
            CheckId::ProxyConnect,
            CheckId::ProxyTunnel,
            CheckId::HttpVersion,
        ]);
}

#[test]
fn proxy_tunnel_forbidden() {
    if skip_without_netns() {
        return;
    }
    let site = behind_tinyproxy(Tinyproxy::Forbidding);
    via(&site, "proxy: CONNECT answered 403", API_URL, PROXY_URL)
        .expect_root_cause(CheckId::ProxyTunnel, Reason::Forbidden)
        .expect_evidence(CheckId::ProxyTunnel, &["403"]);
}

#[test]
fn proxy_tunnel_auth_required() {
    if skip_without_netns() {
        return;
    }
    let site = behind_tinyproxy(Tinyproxy::Authenticating);
    via(&site, "proxy: CONNECT answered 407", API_URL, PROXY_URL)
        .expect_root_cause(CheckId::ProxyTunnel, Reason::AuthRequired)
        .expect_evidence(CheckId::ProxyTunnel, &["407"]);
}

#[test]
fn proxy_tunnel_upstream_failed_unresolvable() {
    if skip_without_netns() {
        return;
    }
    let site = behind_tinyproxy(Tinyproxy::Open);
    via(
        &site,
        "proxy: cannot resolve the server (500)",
        "https://ghost.k8s.test:6443",
        PROXY_URL,
    )
    .expect_root_cause(CheckId::ProxyTunnel, Reason::UpstreamFailed)
    .expect_evidence(CheckId::ProxyTunnel, &["500"]);
}

#[test]
fn proxy_tunnel_upstream_failed_server_down() {
    if skip_without_netns() {
        return;
    }
    let mut site = Site::proxied();
    start_squid(&mut site);
    let squid_url = format!("http://proxy.k8s.test:{SQUID_PORT}");
    via(
        &site,
        "proxy: server down behind squid (503)",
        API_URL,
        &squid_url,
    )
    .expect_root_cause(CheckId::ProxyTunnel, Reason::UpstreamFailed)
    .expect_evidence(CheckId::ProxyTunnel, &["503"]);
}

#[test]
fn proxy_connect_refused() {
    if skip_without_netns() {
        return;
    }
    let site = behind_tinyproxy(Tinyproxy::Open);
    via(
        &site,
        "proxy: nothing listens on the proxy port",
        API_URL,
        DEAD_PROXY_URL,
    )
    .expect_root_cause(CheckId::ProxyConnect, Reason::Refused)
    .expect_evidence(
        CheckId::ProxyConnect,
        &[&DEAD_PROXY_PORT.to_string(), "refused"],
    );
}

#[test]
fn no_proxy_bypasses_dead_proxy() {
    if skip_without_netns() {
        return;
    }
    let site = behind_tinyproxy(Tinyproxy::Open);
    site.route_around_proxy();
    let env = [("HTTPS_PROXY", DEAD_PROXY_URL), ("NO_PROXY", API)];
    diagnose(
        &site,
        "proxy: NO_PROXY matches, dead proxy bypassed",
        API_URL,
        &env,
    )
    .expect_no_failure()
    .expect_pass(&[CheckId::TcpConnect, CheckId::HttpVersion])
    .expect_summary(CheckId::ConfigProxy, &["no_proxy"]);
}

#[test]
fn kubeconfig_proxy_url_overrides_env() {
    if skip_without_netns() {
        return;
    }
    let site = behind_tinyproxy(Tinyproxy::Open);
    let kubeconfig = site.kubeconfig("proxied", API_URL, Some(PROXY_URL));
    let env = [("HTTPS_PROXY", DEAD_PROXY_URL)];
    reach::diagnose(
        &site,
        "proxy: kubeconfig proxy-url beats HTTPS_PROXY",
        &kubeconfig,
        &env,
    )
    .expect_no_failure()
    .expect_pass(&[
        CheckId::ProxyConnect,
        CheckId::ProxyTunnel,
        CheckId::HttpVersion,
    ])
    .expect_summary(CheckId::ConfigProxy, &["proxy-url"]);
}

#[test]
fn config_proxy_no_proxy_ignored() {
    if skip_without_netns() {
        return;
    }
    let site = behind_tinyproxy(Tinyproxy::Open);
    site.route_around_proxy();
    // Meant to bypass the proxy for the API server's subnet; client-go never resolves the
    // name to compare, so kubectl (and kube-reach) still go through the proxy.
    let env = [
        ("HTTPS_PROXY", PROXY_URL),
        ("NO_PROXY", "10.253.2.0/24,10.253.2.*"),
    ];
    diagnose(
        &site,
        "proxy: CIDR NO_PROXY entry against a host name",
        API_URL,
        &env,
    )
    .expect_no_failure()
    .expect_finding(CheckId::ConfigProxy, Status::Warn, Reason::NoProxyIgnored)
    .expect_evidence(
        CheckId::ConfigProxy,
        &["10.253.2.0/24", "10.253.2.*", "not the name api.k8s.test"],
    )
    .expect_pass(&[CheckId::ProxyTunnel]);
}

#[test]
fn proxy_connect_not_tls() {
    if skip_without_netns() {
        return;
    }
    let site = behind_tinyproxy(Tinyproxy::Open);
    // tinyproxy is a plain HTTP proxy: it says nothing to a ClientHello.
    via(
        &site,
        "proxy: https:// URL to a plain proxy",
        API_URL,
        "https://proxy.k8s.test:8888",
    )
    .expect_root_cause(CheckId::ProxyConnect, Reason::NotTls)
    .expect_evidence(
        CheckId::ProxyConnect,
        &["ClientHello", "plain CONNECT", "HTTP/1."],
    )
    .expect_fix(CheckId::ProxyConnect, &["http://"]);
}

/// A corporate `NO_PROXY` as the field writes it: `localhost`, loopback and the cloud metadata
/// address, cluster-internal suffixes. None of it is meant for the API server (a name behind
/// the proxy), so none of it is an ignored entry for it. Before, `127.0.0.1` and
/// `169.254.169.254` were each a `no-proxy-ignored` warning on a healthy proxied setup.
#[test]
fn config_proxy_no_proxy_for_other_hosts_is_no_warning() {
    if skip_without_netns() {
        return;
    }
    let site = behind_tinyproxy(Tinyproxy::Open);
    let env = [
        ("HTTPS_PROXY", PROXY_URL),
        (
            "NO_PROXY",
            "localhost,127.0.0.1,::1,169.254.169.254,.svc,.cluster.local",
        ),
    ];
    diagnose(&site, "proxy: NO_PROXY for other hosts", API_URL, &env)
        .expect_no_failure()
        .expect_pass(&[CheckId::ConfigProxy, CheckId::ProxyTunnel]);
}

/// The same with a private range the API server is not in (it is at 10.253.2.x): the entry
/// cannot change this server's route, yet it is a warning. Deciding it needs the server's
/// addresses, which only `dns.resolve` has.
#[test]
fn config_proxy_cidr_the_server_is_not_in_is_no_warning() {
    if skip_without_netns() {
        return;
    }
    let site = behind_tinyproxy(Tinyproxy::Open);
    let env = [("HTTPS_PROXY", PROXY_URL), ("NO_PROXY", "192.168.0.0/16")];
    diagnose(&site, "proxy: NO_PROXY CIDR elsewhere", API_URL, &env)
        .expect_no_failure()
        .expect_pass(&[CheckId::ConfigProxy]);
}

/// A CIDR entry alone that the server's name resolves into (10.253.2.x): meant for this server,
/// and client-go ignores it (it matches CIDRs only against a server written as an IP), so it is
/// the warning, decided on the name's DNS answer.
#[test]
fn config_proxy_cidr_the_server_is_in_is_a_warning() {
    if skip_without_netns() {
        return;
    }
    let site = behind_tinyproxy(Tinyproxy::Open);
    let env = [("HTTPS_PROXY", PROXY_URL), ("NO_PROXY", "10.253.2.0/24")];
    diagnose(
        &site,
        "proxy: NO_PROXY CIDR the server is in",
        API_URL,
        &env,
    )
    .expect_no_failure()
    .expect_finding(CheckId::ConfigProxy, Status::Warn, Reason::NoProxyIgnored)
    .expect_evidence(
        CheckId::ConfigProxy,
        &[
            "10.253.2.0/24",
            "resolves into it",
            "not the name api.k8s.test",
        ],
    )
    .expect_pass(&[CheckId::ProxyTunnel]);
}
