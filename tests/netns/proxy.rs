//! HTTP CONNECT proxies in a namespace: tinyproxy (the 200/403/407/500 answers) and squid (a
//! second implementation, and its 503 when the API server is down). Both resolve the API server's
//! name themselves, through `/etc/netns/<ns>/resolv.conf`, i.e. the world's unbound.

use std::net::SocketAddr;

use crate::world::{Ns, World, require};

/// The credentials the 407 proxy wants.
pub const USER: &str = "ciuser";
pub const PASSWORD: &str = "s3cret";

/// How a tinyproxy treats `CONNECT api.k8s.test:6443`.
#[derive(Clone, Copy, Debug)]
pub enum Tinyproxy {
    /// Tunnels it (or answers 500 when it cannot resolve or reach the target).
    Open,
    /// Allows CONNECT to port 443 only: 403.
    Forbidding,
    /// Wants basic credentials: 407 without them.
    Authenticating,
}

/// Starts a tinyproxy of `kind` on `listen` in `ns`.
pub fn tinyproxy(world: &mut World, ns: &Ns, listen: SocketAddr, kind: Tinyproxy) {
    require(&["tinyproxy"]);
    let connect_port = match kind {
        Tinyproxy::Forbidding => 443,
        Tinyproxy::Open | Tinyproxy::Authenticating => 6443,
    };
    let mut conf = format!(
        "Port {}\nListen {}\nTimeout 10\nMaxClients 20\nAllow 10.253.0.0/16\nConnectPort {connect_port}\nLogLevel Info\n",
        listen.port(),
        listen.ip()
    );
    if let Tinyproxy::Authenticating = kind {
        conf += &format!("BasicAuth {USER} {PASSWORD}\n");
    }
    let path = world.file("tinyproxy.conf", conf);
    let path = path.to_string_lossy().into_owned();
    world.spawn(ns, "tinyproxy", &["tinyproxy", "-d", "-c", &path]);
    world.wait_log("tinyproxy", "Accepting connections");
}

/// Starts squid on `listen` in `ns`, allowing CONNECT to port 6443 from the test subnets. Squid
/// drops root for user `proxy`, which cannot open files in the world's private temp dir, so it
/// keeps no logs but its stderr.
pub fn squid(world: &mut World, ns: &Ns, listen: SocketAddr) {
    squid_with(world, ns, listen, 6443, false);
}

/// [`squid`] allowing CONNECT to `ssl_port` only (squid's shipped default is 443, which
/// refuses the API server's 6443 with its own 403 page), and when `auth`, only to clients
/// that send Basic proxy credentials (any: squid's `basic_fake_auth` helper accepts every
/// pair, so no password file has to be readable by user `proxy`).
pub fn squid_with(world: &mut World, ns: &Ns, listen: SocketAddr, ssl_port: u16, auth: bool) {
    require(&["squid"]);
    let (auth_conf, authed) = if auth {
        (
            "auth_param basic program /usr/lib/squid/basic_fake_auth\n\
             auth_param basic realm kube-reach-e2e\nacl authed proxy_auth REQUIRED\n",
            " authed",
        )
    } else {
        ("", "")
    };
    let conf = format!(
        "http_port {listen}
pid_filename none
access_log none
cache_log stdio:/dev/stderr
cache deny all
cache_mem 8 MB
shutdown_lifetime 1 second
pinger_enable off
{auth_conf}acl SSL_ports port {ssl_port}
acl CONNECT method CONNECT
acl clients src 10.253.0.0/16
http_access deny CONNECT !SSL_ports
http_access allow clients{authed}
http_access deny all
"
    );
    let path = world.file("squid.conf", conf);
    let path = path.to_string_lossy().into_owned();
    world.spawn(ns, "squid", &["squid", "-N", "-f", &path]);
    world.wait_log("squid", "Accepting HTTP Socket connections");
}
