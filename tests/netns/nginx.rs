//! nginx from Debian (`nginx-light`) as a TLS-terminating load balancer in the server namespace:
//! it listens on the API addresses (port 6443) with the world's certificate and proxies to
//! `kube-reach demo-server --plain-http` on the namespace's own loopback. An independently
//! written HTTP server between the tool and the fake API, once offering HTTP/2 and once
//! HTTP/1.1 only (what AWS Classic ELBs and many nginx/HAProxy set-ups do).
//!
//! nginx runs in the foreground as one process (`master_process off`) with every path (pid,
//! logs, temp directories) under the world's temp dir, started through [`World::spawn`] (so
//! bounded by `timeout` and killed when the world drops), and is ready when its pid file
//! appears (written after the listeners are bound), waited for at most the world's bound.

use std::fs;

use crate::pki::LeafKind;
use crate::reach;
use crate::site::Site;
use crate::world::{DAEMON_LIFETIME_SECS, require};

/// Where the plain-HTTP fake API listens inside the server namespace.
pub const UPSTREAM: &str = "127.0.0.1:8080";

/// What the load balancer offers its clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Front {
    /// `listen … ssl http2` (nginx 1.22 in Debian bookworm predates the `http2 on;` directive).
    Http2,
    /// `listen … ssl`: ALPN offers only `http/1.1`.
    Http1,
    /// HTTP/1.1 only over TLS 1.2 only (`ssl_protocols TLSv1.2`, as many load balancers still
    /// are): its handshakes take two round trips, and its abbreviated (resumed) ones one.
    Http1Tls12,
    /// HTTP/2 with `keepalive_requests 1`: nginx sends GOAWAY after each request, refusing
    /// the streams it did not take (as load balancers draining connections do).
    Http2OneRequestEach,
}

/// Starts the plain-HTTP fake API and nginx in front of it on every API address of `site`.
pub fn front(site: &mut Site, front: Front) {
    require(&["nginx"]);
    upstream(site);
    let leaf = site.pki.leaf(&site.world, LeafKind::Good);
    let dir = site.world.dir().join("nginx");
    for sub in ["", "body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        fs::create_dir_all(dir.join(sub)).expect("nginx temp dir");
    }
    let (http2, per_server) = match front {
        Front::Http2 => (" http2", ""),
        Front::Http1 => ("", ""),
        Front::Http1Tls12 => ("", "        ssl_protocols TLSv1.2;\n"),
        Front::Http2OneRequestEach => (" http2", "        keepalive_requests 1;\n"),
    };
    let listen: String = site
        .api
        .iter()
        .map(|addr| format!("        listen {addr} ssl{http2};\n"))
        .collect();
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\nevents {{ worker_connections 256; }}\n\
         http {{\n    log_format tls '$remote_addr - [$time_local] \"$request\" $status \
         $body_bytes_sent $ssl_protocol reused=$ssl_session_reused';\n\
         access_log {d}/access.log tls;\n\
         client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n\
         upstream api {{ server {UPSTREAM}; keepalive 8; }}\n\
         server {{\n{listen}{per_server}\
         ssl_certificate {chain};\n        ssl_certificate_key {key};\n\
         location / {{\n            proxy_pass http://api;\n            proxy_http_version 1.1;\n\
         proxy_set_header Connection \"\";\n            proxy_buffering off;\n        }}\n    }}\n}}\n",
        chain = leaf.chain_path.display(),
        key = leaf.key_path.display(),
    );
    let conf_path = site.world.file("nginx.conf", conf);
    let conf_arg = conf_path.to_string_lossy().into_owned();
    let prefix = format!("{d}/");
    let error_log = format!("{d}/error.log");
    let argv = ["nginx", "-c", &conf_arg, "-p", &prefix, "-e", &error_log];
    site.world.spawn(&site.server, "nginx", &argv);
    let pid = dir.join("nginx.pid");
    site.world.wait_ready("nginx", |_| pid.exists());
}

/// `kube-reach demo-server --plain-http` on the server namespace's loopback.
pub fn upstream(site: &mut Site) {
    let ready = site.world.dir().join("upstream.ready");
    let ready_arg = ready.to_string_lossy().into_owned();
    let lifetime = DAEMON_LIFETIME_SECS.to_string();
    let argv = [
        reach::bin(),
        "demo-server",
        "--plain-http",
        "--listen",
        UPSTREAM,
        "--ready-file",
        &ready_arg,
        "--max-lifetime",
        &lifetime,
        // Bodies a little after their heads, which nginx (unbuffered) passes on as it gets
        // them: a client that reuses a connection before the body ends breaks here.
        "--body-delay-ms",
        "20",
    ];
    site.world.spawn(&site.server, "demo-server", &argv);
    site.world.wait_ready("demo-server", |_| ready.exists());
}

/// nginx's access log so far: one line per request, with the protocol the client spoke, then
/// its TLS version and `reused=r` when the connection resumed an earlier TLS session
/// (`reused=.` otherwise).
pub fn access_log(site: &Site) -> String {
    fs::read_to_string(site.world.dir().join("nginx/access.log")).unwrap_or_default()
}
