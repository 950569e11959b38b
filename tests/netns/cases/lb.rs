//! HTTP/1.1 and HTTP/2 on the healthy path: the demo server speaking HTTP/1.1 only, and nginx
//! (a real, independently written server) as a TLS-terminating load balancer in front of the
//! fake API, once offering HTTP/2 and once HTTP/1.1 only. Before kube-reach held each HTTP/1.1
//! connection until its response body was read, every healthy run through an HTTP/1.1-only
//! front failed `auth.whoami` with "connection was not ready".

use super::{assert_ran, diagnose, healthy};
use crate::nginx::{self, Front};
use crate::pki::LeafKind;
use crate::reach;
use crate::site::Site;
use crate::world::{Family, skip_without_netns};
use kube_reach::catalogue::CheckId;

const API_URL: &str = "https://api.k8s.test:6443";
const VERSION_URL: &str = "https://api.k8s.test:6443/version";

fn behind_nginx(front: Front) -> Site {
    let mut site = Site::direct(Family::V4);
    nginx::front(&mut site, front);
    site
}

#[test]
fn world_nginx_fronts_the_api() {
    if skip_without_netns() {
        return;
    }
    for (front, curl_flag, spoken) in [
        (Front::Http2, "--http2", "2"),
        (Front::Http1, "--http2", "1.1"),
    ] {
        let site = behind_nginx(front);
        // curl asks for h2 both times; only the HTTP/2 front grants it.
        let ran = site.curl(
            &[curl_flag, "-w", "\nversion=%{http_version}\n", VERSION_URL],
            &[],
        );
        assert_ran(&ran, 0, &["gitVersion", &format!("version={spoken}\n")]);
    }
}

#[test]
fn nginx_http2_front_passes() {
    if skip_without_netns() {
        return;
    }
    let site = behind_nginx(Front::Http2);
    let report = diagnose(&site, "nginx in front, HTTP/2", API_URL, &[]);
    healthy(&report);
    report.expect_summary(CheckId::TlsHandshake, &["HTTP/2"]);
    let log = nginx::access_log(&site);
    assert!(
        log.contains("HTTP/2.0") && !log.contains("HTTP/1.1"),
        "{log}"
    );
}

#[test]
fn nginx_http1_only_front_passes() {
    if skip_without_netns() {
        return;
    }
    let site = behind_nginx(Front::Http1);
    let report = diagnose(&site, "nginx in front, HTTP/1.1 only", API_URL, &[]);
    healthy(&report);
    // Every review answered: pipelined, and hedged on the pool where the backend's 20 ms
    // bodies, one after another, made the pipe slower than a new connection.
    every_review_spoke(&site, "HTTP/1.1", "HTTP/2.0");
}

/// Over TLS 1.2 a new connection's full handshake takes two round trips, a resumed one one:
/// the HTTP/1.1 pool's connections resume the first connection's session (issue 14), and
/// nginx itself says so (`$ssl_session_reused`). The pool opens here because the backend's
/// bodies come 20 ms after their heads and nginx answers the pipe one at a time: at that pace
/// the requests far back in the pipe are hedged on pooled connections. Every answered request
/// still came over TLS 1.2 and the run is healthy.
#[test]
fn nginx_http1_tls12_pool_resumes_the_first_session() {
    if skip_without_netns() {
        return;
    }
    let site = behind_nginx(Front::Http1Tls12);
    let report = diagnose(&site, "nginx in front, HTTP/1.1 over TLS 1.2", API_URL, &[]);
    healthy(&report);
    every_review_spoke(&site, "HTTP/1.1", "HTTP/2.0");
    let log = nginx::access_log(&site);
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.iter().all(|l| l.contains("TLSv1.2")), "{log}");
    let resumed = lines.iter().filter(|l| l.ends_with("reused=r")).count();
    // The first connection's requests cannot be on a resumed session; most of the pool's are.
    assert!(
        resumed >= 1 && resumed < lines.len(),
        "{resumed} resumed: {log}"
    );
}

/// nginx's log shows every one of the 15 default reviews answered (2xx), all in `spoken`, none
/// in `not`. A stream nginx refused before answering (its GOAWAY after `keepalive_requests`)
/// may be logged too and is sent again on a new connection, so only answered reviews count.
fn every_review_spoke(site: &Site, spoken: &str, not: &str) {
    let log = nginx::access_log(site);
    assert!(log.contains(spoken) && !log.contains(not), "{log}");
    let answered = log
        .lines()
        .filter(|line| line.contains("selfsubjectaccessreviews"))
        .filter(|line| answered_with_success(line))
        .count();
    assert!(answered >= 15, "{answered} reviews answered: {log}");
}

/// Whether an access-log line (nginx's `combined` format: `"METHOD PATH PROTO" STATUS …`)
/// records a 2xx answer.
fn answered_with_success(line: &str) -> bool {
    line.split("\" ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .is_some_and(|status| status.len() == 3 && status.starts_with('2'))
}

/// nginx offering HTTP/2 that ends each connection after one request (GOAWAY, the other
/// streams refused unprocessed). kubectl sends the refused requests again on a new
/// connection; kube-reach used to fail `auth.whoami` with "http2 error: connection error
/// received: not a result of an error" on a healthy cluster.
#[test]
fn nginx_http2_front_closing_after_each_request_passes() {
    if skip_without_netns() {
        return;
    }
    let site = behind_nginx(Front::Http2OneRequestEach);
    let report = diagnose(
        &site,
        "nginx in front, HTTP/2, one request per connection",
        API_URL,
        &[],
    );
    healthy(&report);
    every_review_spoke(&site, "HTTP/2.0", "HTTP/1.1");
}

#[test]
fn http1_only_demo_server_passes() {
    if skip_without_netns() {
        return;
    }
    let mut site = Site::direct(Family::Dual);
    reach::demo_server(
        &mut site,
        LeafKind::Good,
        &["--http1-only", "--body-delay-ms", "20"],
    );
    let report = diagnose(&site, "healthy world, HTTP/1.1 only", API_URL, &[]);
    healthy(&report);
}
