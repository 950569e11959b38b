//! HAProxy from Debian as the load balancer in front of the fake API, in the server namespace
//! on the API addresses (port 6443): an independently written proxy in the shapes clusters put
//! it in (kubeadm HA set-ups, Talos, on-premises load balancers).
//!
//! HAProxy runs in the foreground (`-db`) with its config in the world's temp dir, started
//! through [`World::spawn`] (bounded by `timeout`, killed when the world drops); it is ready
//! when its first API address accepts a connection, tried from inside the server namespace at
//! most the world's bound.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::nginx;
use crate::pki::LeafKind;
use crate::reach;
use crate::site::Site;
use crate::sys;
use crate::world::require;

/// Where the TLS fake API listens behind a passthrough or re-encrypting front.
pub const TLS_UPSTREAM: &str = "127.0.0.1:8443";

/// What HAProxy does with the job's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `mode tcp`: TLS passes through to the API server, which terminates it.
    Passthrough,
    /// `mode http`, TLS terminated with `alpn h2,http/1.1`, plain HTTP/1.1 to the API.
    TerminateHttp2,
    /// `mode http`, TLS terminated with `alpn http/1.1` only.
    TerminateHttp1,
    /// `mode http`, TLS terminated (`h2,http/1.1`) and opened again to the TLS API server,
    /// verified against the world's CA.
    Reencrypt,
    /// `mode http`, TLS terminated, and a backend with no server: HAProxy's own 503 page.
    NoBackend,
    /// `mode http`, TLS terminated, plain HTTP sent to the TLS API server (re-encryption
    /// forgotten): the API server answers `400 Client sent an HTTP request to an HTTPS server.`
    /// (Go's words, which the fake API says too) and HAProxy passes it on.
    PlainToTlsBackend,
}

/// Starts what `mode` needs behind HAProxy, then HAProxy on every API address of `site`.
pub fn front(site: &mut Site, mode: Mode) {
    require(&["haproxy"]);
    let upstream: SocketAddr = TLS_UPSTREAM.parse().expect("upstream address");
    match mode {
        Mode::TerminateHttp2 | Mode::TerminateHttp1 => nginx::upstream(site),
        Mode::Passthrough | Mode::Reencrypt | Mode::PlainToTlsBackend => {
            reach::demo_server_on(site, &[upstream], LeafKind::Good, &[])
        }
        Mode::NoBackend => {}
    }
    let conf = config(site, mode);
    let conf_path = site.world.file("haproxy.cfg", conf);
    let conf_arg = conf_path.to_string_lossy().into_owned();
    site.world.spawn(
        &site.server,
        "haproxy",
        &["haproxy", "-db", "-f", &conf_arg],
    );
    let (ns, first) = (site.server.name.clone(), site.api[0]);
    site.world
        .wait_ready("haproxy", move |_| accepts(&ns, first));
}

/// The whole `haproxy.cfg` for `mode`.
fn config(site: &Site, mode: Mode) -> String {
    let leaf = site.pki.leaf(&site.world, LeafKind::Good);
    // HAProxy wants the certificate chain and its key in one file.
    let chain = std::fs::read_to_string(&leaf.chain_path).expect("leaf chain");
    let key = std::fs::read_to_string(&leaf.key_path).expect("leaf key");
    let pem = site.world.file("haproxy.pem", format!("{chain}{key}"));
    let root = site.pki.root_path.display();
    let tls = |alpn: &str| format!(" ssl crt {} alpn {alpn}", pem.display());
    let (proto, bind_tls, server) = match mode {
        Mode::Passthrough => ("tcp", String::new(), format!("server api {TLS_UPSTREAM}")),
        Mode::TerminateHttp2 => (
            "http",
            tls("h2,http/1.1"),
            format!("server api {}", nginx::UPSTREAM),
        ),
        Mode::TerminateHttp1 => (
            "http",
            tls("http/1.1"),
            format!("server api {}", nginx::UPSTREAM),
        ),
        Mode::Reencrypt => (
            "http",
            tls("h2,http/1.1"),
            format!(
                "server api {TLS_UPSTREAM} ssl verify required ca-file {root} sni str(api.k8s.test) alpn h2,http/1.1"
            ),
        ),
        Mode::NoBackend => ("http", tls("h2,http/1.1"), String::new()),
        Mode::PlainToTlsBackend => (
            "http",
            tls("h2,http/1.1"),
            format!("server api {TLS_UPSTREAM}"),
        ),
    };
    let binds: String = site
        .api
        .iter()
        .map(|addr| format!("    bind {addr}{bind_tls}\n"))
        .collect();
    format!(
        "global\n    maxconn 256\n    log stderr format raw local0 info\n\
         defaults\n    mode {proto}\n    log global\n    option {proto}log\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\
         frontend api\n{binds}    default_backend api\n\
         backend api\n    {server}\n"
    )
}

/// Whether `addr` accepts a TCP connection from inside namespace `ns`.
pub fn accepts(ns: &str, addr: SocketAddr) -> bool {
    sys::run_in(ns, move || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200))
    })
    .is_ok()
}
