//! The real `kubectl proxy` in front of the fake API: in the server namespace it listens on
//! plain HTTP at the API address (port 6443) and adds its own kubeconfig's token to every
//! request it forwards over TLS to the API server. The job's kubeconfig names
//! `http://api.k8s.test:6443` and holds no credentials, as set-ups that hide the cluster's
//! credentials behind a sidecar proxy do. Plain HTTP to a proxy that authenticates for the job
//! is healthy: every request is the proxy's user, and kube-reach must not fail it.

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::model::Status;
use std::net::SocketAddr;

use base64::Engine as _;

use crate::haproxy::{TLS_UPSTREAM, accepts};
use crate::pki::LeafKind;
use crate::reach;
use crate::site::{API_PORT, Site};
use crate::sys;
use crate::world::{Family, skip_without_netns};

/// Whether this test cannot run here: kubectl is optional in this suite, as in the
/// cross-check (`kubectl.rs`), so a machine without it skips, saying so (and fails instead
/// under `KUBE_REACH_REQUIRE_KUBECTL=1`).
fn skip() -> bool {
    if skip_without_netns() {
        return true;
    }
    crate::common_kubectl::kubectl_or_skip(&sys::search_path(), "kubectl proxy").is_none()
}

/// The fake API on the server's loopback, and `kubectl proxy` on the API address in front.
fn behind_kubectl_proxy() -> Site {
    let mut site = Site::direct(Family::V4);
    let upstream: SocketAddr = TLS_UPSTREAM.parse().expect("upstream address");
    reach::demo_server_on(&mut site, &[upstream], LeafKind::Good, &[]);
    let ca = base64::engine::general_purpose::STANDARD.encode(&site.pki.root_pem);
    let upstream_config = site.world.file(
        "kubectl-proxy.kubeconfig",
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: up\n  cluster:\n    server: https://{TLS_UPSTREAM}\n    tls-server-name: api.k8s.test\n    certificate-authority-data: {ca}\nusers:\n- name: ci\n  user:\n    token: {}\ncontexts:\n- name: up\n  context: {{cluster: up, user: ci}}\ncurrent-context: up\n",
            crate::common_kubeconfig::GOOD
        ),
    );
    let listen = site.api[0];
    let (config, address, port) = (
        format!("--kubeconfig={}", upstream_config.display()),
        format!("--address={}", listen.ip()),
        format!("--port={API_PORT}"),
    );
    let cache = format!(
        "--cache-dir={}",
        site.world.dir().join("home/cache").display()
    );
    site.world.spawn(
        &site.server,
        "kubectl-proxy",
        &[
            "kubectl",
            &config,
            &cache,
            "proxy",
            &address,
            &port,
            "--accept-hosts=^api\\.k8s\\.test$",
        ],
    );
    let ns = site.server.name.clone();
    site.world
        .wait_ready("kubectl-proxy", move |_| accepts(&ns, listen));
    site
}

/// A kubeconfig naming the proxy's plain-HTTP address, whose user is `user` (YAML: `{}` for
/// none).
fn job_kubeconfig(site: &Site, user: &str) -> std::path::PathBuf {
    site.world.file(
        "job.kubeconfig",
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: http://api.k8s.test:{API_PORT}\nusers:\n- name: ci\n  user: {user}\ncontexts:\n- name: e2e\n  context: {{cluster: e2e, user: ci, namespace: default}}\ncurrent-context: e2e\n"
        ),
    )
}

#[test]
fn world_kubectl_proxy_fronts_the_api() {
    if skip() {
        return;
    }
    let site = behind_kubectl_proxy();
    let ran = site.curl(&[&format!("http://api.k8s.test:{API_PORT}/version")], &[]);
    super::assert_ran(&ran, 0, &["gitVersion"]);
}

/// Healthy: every layer that applies passes or warns honestly (`config.server plain-http`:
/// unencrypted, no credentials to lose), the exit status is 0, and the real kubectl agrees
/// (`auth whoami` through the same kubeconfig). The verdict was `config.server
/// insecure-scheme`, a failure saying kubectl would send no credentials, for a kubeconfig
/// that has none to send.
#[test]
fn kubectl_proxy_over_plain_http_passes() {
    if skip() {
        return;
    }
    let site = behind_kubectl_proxy();
    let kubeconfig = job_kubeconfig(&site, "{}");
    reach::diagnose_auth(
        &site,
        "kubectl proxy, plain http, no credentials",
        &kubeconfig,
    )
    .expect_no_failure()
    .expect_pass(&[
        CheckId::DnsResolve,
        CheckId::TcpConnect,
        CheckId::HttpVersion,
        CheckId::RbacCanI,
    ]);
}

/// The same proxy, with a token left in the job's kubeconfig. client-go drops it on http://
/// and kubectl proxy adds its own, so `kubectl auth whoami` works. The verdict was `config.server
/// insecure-scheme`, a failure before any traffic. Now: a warning that the token is withheld
/// over http://, and the later layers judge what the listener does without it: the proxy's own
/// user. kubectl proxy forwards a client's `Authorization` header as it is, so had the token
/// been sent the API server would have seen it and refused it (401): whoami passing as the
/// proxy's user shows the API server never saw it.
#[test]
fn kubectl_proxy_with_a_token_in_the_kubeconfig_is_judged_by_what_answers() {
    if skip() {
        return;
    }
    let site = behind_kubectl_proxy();
    let kubeconfig = job_kubeconfig(&site, "{token: ignored-over-http}");
    reach::diagnose_auth(
        &site,
        "kubectl proxy, plain http, a token to drop",
        &kubeconfig,
    )
    .expect_no_failure()
    .expect_finding(
        CheckId::ConfigServer,
        Status::Warn,
        Reason::CredentialsWithheld,
    )
    .expect_fix(CheckId::ConfigServer, &["kubectl proxy"])
    .expect_pass(&[CheckId::HttpVersion, CheckId::AuthWhoami, CheckId::RbacCanI])
    .expect_summary(CheckId::AuthWhoami, &["system:serviceaccount:ci:deployer"])
    .expect_evidence(CheckId::AuthWhoami, &["withheld over http://"]);
}
