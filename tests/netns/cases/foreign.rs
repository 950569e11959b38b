//! Worlds whose answers come from software configured the way it ships, not the way our fakes
//! answer: unbound answering CNAMEs (as clouds alias API names to load balancers) without
//! chasing them, one of them to a name that does not exist; squid with its shipped `SSL_ports` (443 only), which
//! refuses `CONNECT api:6443` with its own 403 page, and squid wanting proxy credentials; an answer too big for UDP (TC set), which
//! needs the TCP fallback.

use kube_reach::catalogue::{CheckId, Reason};
use std::net::SocketAddr;

use super::{assert_ran, diagnose};
use crate::dns;
use crate::pki::LeafKind;
use crate::proxy;
use crate::reach;
use crate::site::{API_PORT, Site};
use crate::world::{Family, ip as ip_cmd, skip_without_netns};

/// The served direct world, and a kubeconfig for `https://<host>:6443` (see [`alias_kubeconfig`]).
fn by_alias(host: &str) -> (Site, std::path::PathBuf) {
    let site = super::served(Family::V4);
    let path = alias_kubeconfig(&site, host);
    (site, path)
}

/// A kubeconfig for `https://<host>:6443` that verifies the certificate as `api.k8s.test`
/// (the name it carries; `host` is what DNS is asked).
fn alias_kubeconfig(site: &Site, host: &str) -> std::path::PathBuf {
    let path = site.kubeconfig("alias", &format!("https://{host}:6443"), None);
    let yaml = std::fs::read_to_string(&path).expect("kubeconfig");
    let yaml = yaml.replacen(
        "    certificate-authority-data:",
        "    tls-server-name: api.k8s.test\n    certificate-authority-data:",
        1,
    );
    site.world.file("alias.kubeconfig", yaml)
}

/// The direct world with the server owning every address of [`dns::MANY`] and the fake API
/// listening on each.
fn many_addressed() -> Site {
    let mut site = Site::direct(Family::V4);
    let addrs: Vec<SocketAddr> = dns::many_addresses()
        .map(|ip| {
            let cidr = format!("{ip}/24");
            ip_cmd(&["-n", &site.server.name, "addr", "add", &cidr, "dev", "to-c"]);
            SocketAddr::new(ip.into(), API_PORT)
        })
        .collect();
    reach::demo_server_on(&mut site, &addrs, LeafKind::Good, &[]);
    site
}

/// unbound answers `many.k8s.test` over UDP with TC set (the 90 records do not fit); dig
/// without TCP sees the truncation, glibc asks again over TCP and gets every address.
#[test]
fn world_dns_truncated_answer() {
    if skip_without_netns() {
        return;
    }
    let site = many_addressed();
    let udp_only = site.dig(&["+ignore", "+bufsize=1232", dns::MANY, "A"]);
    assert_ran(&udp_only, 0, &["flags: qr aa tc"]);
    let over_tcp = site.dig(&[dns::MANY, "A"]);
    assert_ran(&over_tcp, 0, &["ANSWER: 90", "10.253.1.189"]);
    assert_ran(&site.getent(dns::MANY), 0, &["10.253.1.100"]);
}

/// A name whose answer needs the TCP fallback: healthy, as kubectl agrees, and the evidence
/// counts every address.
#[test]
fn dns_truncated_answer_falls_back_to_tcp_and_passes() {
    if skip_without_netns() {
        return;
    }
    let site = many_addressed();
    let kubeconfig = alias_kubeconfig(&site, dns::MANY);
    reach::diagnose(&site, "dns: answer truncated over UDP", &kubeconfig, &[])
        .expect_no_failure()
        .expect_pass(&[
            CheckId::DnsResolve,
            CheckId::TcpConnect,
            CheckId::AuthWhoami,
        ])
        .expect_evidence(CheckId::DnsResolve, &["10.253.1.100"]);
}

/// The world's unbound answers a CNAME and stops there: it does not chase the alias (its
/// iterator has no recursion to do), as a forwarder that only holds the alias record does.
/// The job's own resolvers (glibc's `getent`, Go's in kubectl) do not chase it either: for
/// them the name has no address.
#[test]
fn world_dns_cnames_answered_unchased() {
    if skip_without_netns() {
        return;
    }
    let site = super::served(Family::V4);
    let chain = site.dig(&["chain.k8s.test", "A"]);
    assert_ran(&chain, 0, &["NOERROR", "CNAME\talias.k8s.test."]);
    assert!(!chain.stdout.contains("10.253.1.2"), "{}", chain.text());
    assert_ran(&site.getent("chain.k8s.test"), 2, &[]);
    let dangling = site.dig(&["dangling.k8s.test", "A"]);
    assert_ran(&dangling, 0, &["CNAME\tgone.k8s.test."]);
}

/// `chain.k8s.test` answered with `CNAME alias.k8s.test` and no address. kubectl says
/// `lookup chain.k8s.test …: no such host`; kube-reach chases the chain itself (two more
/// queries, to `api.k8s.test`), passed, and its evidence said "search domain applied". The
/// job's tools cannot reach the server by this name, so the verdict is now a `dns.resolve`
/// failure naming the unchased CNAME's target.
#[test]
fn dns_cname_the_nameserver_did_not_chase_fails_as_kubectl_does() {
    if skip_without_netns() {
        return;
    }
    let (site, kubeconfig) = by_alias("chain.k8s.test");
    let report = reach::diagnose(
        &site,
        "dns: CNAME not chased by the nameserver",
        &kubeconfig,
        &[],
    );
    assert!(
        report
            .root_cause_text()
            .starts_with(CheckId::DnsResolve.as_str()),
        "root cause {}",
        report.root_cause_text()
    );
    report.expect_evidence(CheckId::DnsResolve, &["CNAME", "alias.k8s.test"]);
}

/// `dangling.k8s.test` is a CNAME to `gone.k8s.test`, which does not exist: kube-reach
/// follows it and says NXDOMAIN, as kubectl says `no such host`.
#[test]
fn dns_cname_to_a_missing_name_is_nxdomain() {
    if skip_without_netns() {
        return;
    }
    let (site, kubeconfig) = by_alias("dangling.k8s.test");
    reach::diagnose(&site, "dns: CNAME to a missing name", &kubeconfig, &[])
        .expect_root_cause(CheckId::DnsResolve, Reason::Nxdomain)
        .expect_evidence(CheckId::DnsResolve, &["dangling.k8s.test", "gone.k8s.test"]);
}

/// squid as Debian ships its ACLs (`acl SSL_ports port 443`, `http_access deny CONNECT
/// !SSL_ports`): `CONNECT api.k8s.test:6443` gets squid's 403 `ERR_ACCESS_DENIED` page. The
/// verdict is the tunnel's `forbidden`, with the 403 and the port in the evidence.
#[test]
fn proxy_tunnel_forbidden_by_squids_shipped_ssl_ports() {
    if skip_without_netns() {
        return;
    }
    let site = behind_squid(443, false);
    diagnose(
        &site,
        "proxy: squid's shipped SSL_ports refuse 6443",
        "https://api.k8s.test:6443",
        &[("HTTPS_PROXY", SQUID_URL)],
    )
    .expect_root_cause(CheckId::ProxyTunnel, Reason::Forbidden)
    .expect_evidence(CheckId::ProxyTunnel, &["403", "6443"]);
}

const SQUID_PORT: u16 = 3128;
const SQUID_URL: &str = "http://proxy.k8s.test:3128";

/// The proxied world behind squid ([`proxy::squid_with`]).
fn behind_squid(ssl_port: u16, auth: bool) -> Site {
    let mut site = Site::proxied();
    reach::demo_server(&mut site, LeafKind::Good, &[]);
    let (hop, listen) = (
        site.hop.clone().expect("proxy ns"),
        site.proxy_addr(SQUID_PORT),
    );
    proxy::squid_with(&mut site.world, &hop, listen, ssl_port, auth);
    site
}

/// squid wanting Basic proxy credentials: without them its 407 (`Proxy-Authenticate: Basic
/// realm="kube-reach-e2e"`) is `proxy.tunnel auth-required`; with them in `HTTPS_PROXY`
/// the run passes, and the password appears nowhere in what kube-reach prints.
#[test]
fn squid_wanting_credentials_is_auth_required_and_passes_with_them() {
    if skip_without_netns() {
        return;
    }
    let site = behind_squid(6443, true);
    let api = "https://api.k8s.test:6443";
    diagnose(
        &site,
        "proxy: squid wants credentials",
        api,
        &[("HTTPS_PROXY", SQUID_URL)],
    )
    .expect_root_cause(CheckId::ProxyTunnel, Reason::AuthRequired)
    .expect_evidence(CheckId::ProxyTunnel, &["407"]);
    let password = "squid-pass-7f3a";
    let with = format!("http://ciuser:{password}@proxy.k8s.test:3128");
    let report = diagnose(
        &site,
        "proxy: squid with credentials",
        api,
        &[("HTTPS_PROXY", &with)],
    );
    report
        .expect_no_failure()
        .expect_pass(&[CheckId::ProxyTunnel, CheckId::AuthWhoami]);
    // stdout holds the JSON report too.
    let printed = format!("{}{}", report.ran.stdout, report.ran.stderr);
    assert!(
        !printed.contains(password),
        "the proxy password was printed"
    );
}
