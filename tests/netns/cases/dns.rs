//! `dns.resolve`: the world's unbound answers NXDOMAIN, SERVFAIL, REFUSED or nothing; the client's
//! resolv.conf is empty, or its search list does or does not complete a short name; /etc/hosts
//! answers a name DNS does not know; a name has only an AAAA record.

use super::{assert_ran, diagnose, one_timeout, served};
use crate::dns::{self, API};
use crate::site::Site;
use crate::world::Family;
use crate::world::skip_without_netns;
use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::model::Status;

/// Search list and ndots that turn `api` into `api.k8s.test` (after `api.svc.k8s.test` misses).
const SEARCH_ANSWERS: &str = "search svc.k8s.test k8s.test\noptions ndots:2\n";
/// Search list under which `api` never becomes a name the zone has.
const SEARCH_MISSES: &str = "search svc.k8s.test\noptions ndots:2\n";
/// A hosts file giving a name DNS does not have.
const HOSTS: &str = "127.0.0.1 localhost\n::1 localhost\n10.253.1.2 pinned.k8s.test\n";

fn set_resolv(site: &Site, extra: &str) {
    let conf = dns::resolv_conf(site.nameserver, extra);
    site.world.etc(&site.client, "resolv.conf", &conf);
}

#[test]
fn world_dns_answers_every_rcode() {
    if skip_without_netns() {
        return;
    }
    let site = Site::direct(Family::Dual);
    assert_ran(&site.dig(&[API]), 0, &["status: NOERROR", "10.253.1.2"]);
    for (name, rcode) in [
        ("missing.k8s.test", "NXDOMAIN"),
        ("api.servfail.test", "SERVFAIL"),
        ("api.refused.test", "REFUSED"),
    ] {
        assert_ran(&site.dig(&[name]), 0, &[&format!("status: {rcode}")]);
    }
    assert_ran(&site.dig(&["api.dropped.test"]), 9, &["timed out"]);
    assert_ran(&site.dig(&["api6.k8s.test", "AAAA"]), 0, &["fd00:253:1::2"]);
    assert_ran(
        &site.dig(&["api6.k8s.test", "A"]),
        0,
        &["status: NOERROR", "ANSWER: 0"],
    );
}

#[test]
fn world_dns_search_list() {
    if skip_without_netns() {
        return;
    }
    let site = Site::direct(Family::Dual);
    set_resolv(&site, SEARCH_ANSWERS);
    assert_ran(&site.getent("api"), 0, &["10.253.1.2", "api.k8s.test"]);
    set_resolv(&site, SEARCH_MISSES);
    assert_ran(&site.getent("api"), 2, &[]);
}

#[test]
fn world_dns_hosts_file_and_empty_resolv_conf() {
    if skip_without_netns() {
        return;
    }
    let site = Site::direct(Family::Dual);
    site.world.etc(&site.client, "hosts", HOSTS);
    assert_ran(&site.getent("pinned.k8s.test"), 0, &["10.253.1.2"]);
    assert_ran(&site.dig(&["pinned.k8s.test"]), 0, &["status: NXDOMAIN"]);
    site.world.etc(&site.client, "resolv.conf", "");
    assert_ran(&site.getent(API), 2, &[]);
}

#[test]
fn dns_resolve_nxdomain() {
    if skip_without_netns() {
        return;
    }
    let site = served(Family::Dual);
    diagnose(&site, "dns: NXDOMAIN", "https://missing.k8s.test:6443", &[])
        .expect_root_cause(CheckId::DnsResolve, Reason::Nxdomain)
        .expect_evidence(
            CheckId::DnsResolve,
            &[&site.nameserver.to_string(), "nxdomain"],
        );
}

#[test]
fn dns_resolve_servfail() {
    if skip_without_netns() {
        return;
    }
    let site = served(Family::Dual);
    diagnose(
        &site,
        "dns: SERVFAIL",
        "https://api.servfail.test:6443",
        &[],
    )
    .expect_root_cause(CheckId::DnsResolve, Reason::Servfail)
    .expect_evidence(
        CheckId::DnsResolve,
        &[&site.nameserver.to_string(), "servfail"],
    );
}

#[test]
fn dns_resolve_refused() {
    if skip_without_netns() {
        return;
    }
    let site = served(Family::Dual);
    diagnose(&site, "dns: REFUSED", "https://api.refused.test:6443", &[])
        .expect_root_cause(CheckId::DnsResolve, Reason::Refused)
        .expect_evidence(
            CheckId::DnsResolve,
            &[&site.nameserver.to_string(), "refused"],
        );
}

#[test]
fn dns_resolve_timeout() {
    if skip_without_netns() {
        return;
    }
    let site = served(Family::Dual);
    diagnose(
        &site,
        "dns: no answer",
        "https://api.dropped.test:6443",
        &[],
    )
    .expect_root_cause(CheckId::DnsResolve, Reason::Timeout)
    .expect_evidence(
        CheckId::DnsResolve,
        &[&site.nameserver.to_string(), "timed out|timeout"],
    )
    .expect_within(one_timeout());
}

#[test]
fn dns_resolve_no_nameservers() {
    if skip_without_netns() {
        return;
    }
    let site = served(Family::Dual);
    site.world.etc(&site.client, "resolv.conf", "");
    diagnose(
        &site,
        "dns: empty resolv.conf",
        "https://api.k8s.test:6443",
        &[],
    )
    .expect_root_cause(CheckId::DnsResolve, Reason::NoNameservers)
    .expect_evidence(CheckId::DnsResolve, &["resolv.conf"]);
}

#[test]
fn dns_resolve_search_domain_answers() {
    if skip_without_netns() {
        return;
    }
    let site = served(Family::Dual);
    set_resolv(&site, SEARCH_ANSWERS);
    diagnose(
        &site,
        "dns: short name, search list completes it",
        "https://api:6443",
        &[],
    )
    .expect_no_failure()
    .expect_pass(&[CheckId::DnsResolve])
    .expect_evidence(CheckId::DnsResolve, &["api.k8s.test", "10.253.1.2"]);
}

#[test]
fn dns_resolve_search_domain_misses() {
    if skip_without_netns() {
        return;
    }
    let site = served(Family::Dual);
    set_resolv(&site, SEARCH_MISSES);
    diagnose(
        &site,
        "dns: short name, search list misses",
        "https://api:6443",
        &[],
    )
    .expect_root_cause(CheckId::DnsResolve, Reason::Nxdomain)
    .expect_evidence(CheckId::DnsResolve, &["svc.k8s.test"]);
}

#[test]
fn dns_resolve_hosts_file() {
    if skip_without_netns() {
        return;
    }
    let site = served(Family::Dual);
    site.world.etc(&site.client, "hosts", HOSTS);
    diagnose(
        &site,
        "dns: only /etc/hosts knows the name",
        "https://pinned.k8s.test:6443",
        &[],
    )
    .expect_no_failure()
    .expect_pass(&[CheckId::DnsResolve])
    .expect_evidence(CheckId::DnsResolve, &["/etc/hosts", "10.253.1.2"]);
}

#[test]
fn dns_resolve_aaaa_only() {
    if skip_without_netns() {
        return;
    }
    let site = served(Family::Dual);
    diagnose(
        &site,
        "dns: AAAA record only",
        "https://api6.k8s.test:6443",
        &[],
    )
    .expect_no_failure()
    .expect_pass(&[CheckId::DnsResolve])
    .expect_evidence(CheckId::DnsResolve, &["fd00:253:1::2"])
    .expect_status(CheckId::TcpConnect, "api6.k8s.test:6443", Status::Pass)
    .expect_evidence(CheckId::TcpConnect, &["fd00:253:1::2"]);
}

#[test]
fn world_dns_cloud_name_and_wildcard_search_domain() {
    if skip_without_netns() {
        return;
    }
    let site = Site::direct(Family::Dual);
    assert_ran(
        &site.dig(&[dns::EKS]),
        0,
        &["status: NOERROR", "10.253.1.2"],
    );
    let any = format!("{API}.{}", dns::WILDCARD_DOMAIN);
    assert_ran(&site.dig(&[&any]), 0, &["status: NOERROR", "10.253.99.1"]);
    set_resolv(&site, WILDCARD_SEARCH);
    // glibc tries the search domain first (2 dots < ndots 5) and the wildcard answers.
    assert_ran(&site.getent(API), 0, &["10.253.99.1"]);
}

/// The Kubernetes pod default (`ndots:5`) with a search domain holding a wildcard record.
const WILDCARD_SEARCH: &str = "search wild.test\noptions ndots:5\n";

#[test]
fn dns_resolve_private_answer() {
    if skip_without_netns() {
        return;
    }
    let site = served(Family::Dual);
    crate::firewall::block(
        &site.world,
        &site.server,
        crate::site::API_PORT,
        crate::firewall::Block::Drop,
    );
    let server = format!("https://{}:6443", dns::EKS);
    diagnose(&site, "dns: EKS name, private answer", &server, &[])
        .expect_finding(CheckId::DnsResolve, Status::Warn, Reason::PrivateAnswer)
        .expect_summary(CheckId::DnsResolve, &["Amazon EKS", "private address"])
        .expect_evidence(CheckId::DnsResolve, &["10.253.1.2"])
        .expect_fix(CheckId::DnsResolve, &["inside the cluster's VPC"])
        .expect_root_cause(CheckId::TcpConnect, Reason::Timeout)
        .expect_fix(
            CheckId::TcpConnect,
            &["inside the cluster's VPC", "publicAccessCidrs"],
        )
        .expect_evidence(CheckId::TcpConnect, &["Amazon EKS"]);
}

/// The healthy in-VPC run: the same private answer, and the address connects. A private
/// endpoint reached from inside its network is no warning, only a note in the evidence.
/// Hostile-user attack (issue 12 item 5): a warning that it is "reachable only inside its
/// network" on every run of a working setup is a false positive (the job is inside).
#[test]
fn dns_resolve_private_answer_that_connects_passes() {
    if skip_without_netns() {
        return;
    }
    let site = served(Family::Dual);
    let server = format!("https://{}:6443", dns::EKS);
    diagnose(
        &site,
        "dns: EKS name, private answer, reachable",
        &server,
        &[],
    )
    .expect_pass(&[CheckId::DnsResolve, CheckId::TcpConnect])
    .expect_evidence(CheckId::DnsResolve, &["private endpoint", "10.253.1.2"]);
}

#[test]
fn dns_resolve_search_expanded() {
    if skip_without_netns() {
        return;
    }
    let site = served(Family::Dual);
    set_resolv(&site, WILDCARD_SEARCH);
    let answered = format!("{API}.{}", dns::WILDCARD_DOMAIN);
    diagnose(
        &site,
        "dns: search-list wildcard catches the name",
        "https://api.k8s.test:6443",
        &[],
    )
    .expect_finding(CheckId::DnsResolve, Status::Warn, Reason::SearchExpanded)
    .expect_summary(CheckId::DnsResolve, &[&answered])
    .expect_evidence(CheckId::DnsResolve, &["10.253.99.1", "10.253.1.2"])
    .expect_fix(CheckId::DnsResolve, &["ndots"])
    .expect_root_cause(CheckId::TcpConnect, Reason::NetworkUnreachable);
}
