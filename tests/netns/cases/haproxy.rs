//! HAProxy (a real, independently written load balancer) in front of the fake API: TCP
//! passthrough, TLS termination offering HTTP/2 and HTTP/1.1 only, termination with
//! re-encryption, HAProxy's own 503 page (no server in the backend), and plain HTTP sent to
//! the TLS API server (re-encryption forgotten). The healthy shapes must pass every layer;
//! the 503 must be the HTTP layer's server error naming HAProxy's status and words, never a
//! proxy or the path.

use super::{assert_ran, diagnose, healthy};
use crate::haproxy::{self, Mode};
use crate::site::Site;
use crate::world::{Family, skip_without_netns};
use kube_reach::catalogue::{CheckId, Reason};

const API_URL: &str = "https://api.k8s.test:6443";
const VERSION_URL: &str = "https://api.k8s.test:6443/version";

fn behind_haproxy(mode: Mode) -> Site {
    let mut site = Site::direct(Family::V4);
    haproxy::front(&mut site, mode);
    site
}

#[test]
fn world_haproxy_fronts_the_api() {
    if skip_without_netns() {
        return;
    }
    // curl exits 0 on every shape: without `--fail` an HTTP error page is still an answer.
    for (mode, words) in [
        (Mode::Passthrough, "gitVersion"),
        (Mode::TerminateHttp2, "gitVersion"),
        (Mode::TerminateHttp1, "gitVersion"),
        (Mode::Reencrypt, "gitVersion"),
        (Mode::NoBackend, "503 Service Unavailable"),
        (
            Mode::PlainToTlsBackend,
            "Client sent an HTTP request to an HTTPS server",
        ),
    ] {
        let site = behind_haproxy(mode);
        let ran = site.curl(&[VERSION_URL], &[]);
        assert_ran(&ran, 0, &[words]);
    }
}

/// One healthy case per shape: kube-reach, then kubectl the same way (the comparison table).
fn passes(mode: Mode, case: &str) {
    if skip_without_netns() {
        return;
    }
    let site = behind_haproxy(mode);
    healthy(&diagnose(&site, case, API_URL, &[]));
}

#[test]
fn haproxy_tcp_passthrough_passes() {
    passes(Mode::Passthrough, "haproxy mode tcp (passthrough)");
}

#[test]
fn haproxy_terminating_http2_passes() {
    passes(
        Mode::TerminateHttp2,
        "haproxy terminating TLS, alpn h2,http/1.1",
    );
}

#[test]
fn haproxy_terminating_http1_only_passes() {
    passes(
        Mode::TerminateHttp1,
        "haproxy terminating TLS, alpn http/1.1",
    );
}

#[test]
fn haproxy_reencrypting_passes() {
    passes(Mode::Reencrypt, "haproxy terminating and re-encrypting TLS");
}

/// HAProxy's 503 page (`No server is available to handle this request.`): the load balancer
/// answers for an API server it has no backend for. The verdict is the HTTP layer's server
/// error, its evidence HAProxy's status and words; TLS and TCP passed.
#[test]
fn haproxy_without_a_backend_server_is_a_server_error() {
    if skip_without_netns() {
        return;
    }
    let site = behind_haproxy(Mode::NoBackend);
    diagnose(&site, "haproxy 503, no backend server", API_URL, &[])
        .expect_root_cause(CheckId::HttpVersion, Reason::ServerError)
        .expect_pass(&[
            CheckId::TcpConnect,
            CheckId::TlsHandshake,
            CheckId::TlsTrust,
        ])
        .expect_evidence(
            CheckId::HttpVersion,
            &["HTTP 503", "No server is available"],
        )
        .expect_fix(CheckId::HttpVersion, &["load balancer"]);
}

/// The load balancer terminates TLS and sends plain HTTP to the API server's HTTPS port
/// (re-encryption forgotten: HAProxy `server … ssl` or nginx `proxy_pass https://` missing).
/// The API server's answer says so in Go's words, `Client sent an HTTP request to an HTTPS
/// server.` The verdict was `http.version not-kubernetes`, "check the server URL's host, port
/// and path", although the URL is right and the API server did answer; it is now
/// `backend-not-tls`, whose fix makes the load balancer speak TLS to its backend.
#[test]
fn haproxy_sending_plain_http_to_the_tls_api_server_names_the_backend() {
    if skip_without_netns() {
        return;
    }
    let site = behind_haproxy(Mode::PlainToTlsBackend);
    let report = diagnose(
        &site,
        "haproxy, plain HTTP to the TLS API server",
        API_URL,
        &[],
    );
    report
        .expect_evidence(
            CheckId::HttpVersion,
            &["Client sent an HTTP request to an HTTPS server"],
        )
        .expect_fix(CheckId::HttpVersion, &["backend"]);
    assert_eq!(
        report.root_reason(),
        Reason::BackendNotTls,
        "{}",
        report.root_fix()
    );
    assert!(
        !report.root_fix().contains("server URL"),
        "{}",
        report.root_fix()
    );
}
