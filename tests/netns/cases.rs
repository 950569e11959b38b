//! The cases, one module per layer that breaks, and the helpers they share.

mod auth;
mod dns;
mod foreign;
mod haproxy;
mod http;
mod in_cluster;
mod kubectl_proxy;
mod lb;
mod proxy;
mod tcp;
mod tls;

use std::time::Duration;

use kube_reach::catalogue::CheckId;

use crate::pki::LeafKind;
use crate::reach::{self, Report, TIMEOUT};
use crate::site::Site;
use crate::world::{Family, Ran};

/// A direct world whose API server (kube-reach's demo server, good certificate) is up.
fn served(family: Family) -> Site {
    let mut site = Site::direct(family);
    reach::demo_server(&mut site, LeafKind::Good, &[]);
    site
}

/// kube-reach in the client against `server` (a URL), with `env` (proxy variables).
fn diagnose(site: &Site, case: &str, server: &str, env: &[(&str, &str)]) -> Report {
    let kubeconfig = site.kubeconfig("case", server, None);
    reach::diagnose(site, case, &kubeconfig, env)
}

/// The healthy path through a front (load balancer, other server) passes every layer.
fn healthy(report: &Report) {
    report.expect_no_failure().expect_pass(&[
        CheckId::DnsResolve,
        CheckId::TcpConnect,
        CheckId::TlsHandshake,
        CheckId::TlsTrust,
        CheckId::TlsHostname,
        CheckId::HttpVersion,
        CheckId::AuthWhoami,
        CheckId::RbacCanI,
    ]);
}

/// Bound on the time to verdict when one operation times out: the tool must give up after its
/// `--timeout`, not hang on to the `--deadline`.
fn one_timeout() -> Duration {
    TIMEOUT * 3
}

/// The client command ended with `status` and its output mentions every needle.
#[track_caller]
fn assert_ran(ran: &Ran, status: i32, needles: &[&str]) {
    let text = ran.text();
    assert_eq!(
        ran.status,
        Some(status),
        "exit status of the client:\n{text}"
    );
    // A needle may list alternatives, `"a|b"` (curl words one timeout two ways, by timing).
    for needle in needles {
        assert!(
            needle.split('|').any(|alt| text.contains(alt)),
            "client output lacks {needle:?}:\n{text}"
        );
    }
}
