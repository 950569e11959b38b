//! The world's own DNS server: unbound in a namespace, the only resolver test names ever reach.
//!
//! One unbound answers every rcode the DNS cases need:
//! - `<name>.k8s.test`: the world's records and [`CNAMES`], NXDOMAIN for other names (`static`
//!   zone);
//! - `*.refused.test`: REFUSED (`always_refuse`);
//! - `*.dropped.test`: no answer at all, the client times out (`deny`);
//! - `*.servfail.test`: SERVFAIL, by forwarding the zone to unbound itself on 127.0.0.1, where
//!   `access-control` refuses it: a refused upstream is what unbound turns into SERVFAIL;
//! - `*.wild.test`: one A record for every name (a wildcard, as a `redirect` zone);
//! - anything else: NXDOMAIN (the root is `static`), so nothing is ever looked up outside.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::world::{Ns, World};

/// The name every kubeconfig uses unless a case says otherwise.
pub const API: &str = "api.k8s.test";
/// An EKS-style API endpoint name, served by the world's unbound with the server's private
/// address (as a private EKS endpoint's public record is): never looked up outside the world.
pub const EKS: &str = "kr.gr7.eu-west-1.eks.amazonaws.com";
/// A search domain whose wildcard answers every name under it with an address nobody routes
/// (`10.253.99.1`): unbound's `redirect` zone, the wildcard record of k3s#6561.
pub const WILDCARD_DOMAIN: &str = "wild.test";

/// CNAMEs every world's unbound serves, as clouds hand out API names (an alias of a load
/// balancer's name): a chain of two ending at [`API`], and one whose target does not exist.
pub const CNAMES: &[(&str, &str)] = &[
    ("alias.k8s.test", API),
    ("chain.k8s.test", "alias.k8s.test"),
    ("dangling.k8s.test", "gone.k8s.test"),
];

/// A name with [`MANY_COUNT`] A records, `10.253.1.100` up: more than a 1232-byte UDP answer
/// holds, so the nameserver sets TC and a client must ask again over TCP.
pub const MANY: &str = "many.k8s.test";
pub const MANY_COUNT: u8 = 90;

/// The addresses of [`MANY`].
pub fn many_addresses() -> impl Iterator<Item = std::net::Ipv4Addr> {
    (0..MANY_COUNT).map(|i| std::net::Ipv4Addr::new(10, 253, 1, 100 + i))
}

/// A name and one of its addresses; a name may appear twice (A and AAAA).
pub type Record<'a> = (&'a str, IpAddr);

/// Starts unbound in `ns`, listening on port 53 of `listen` (and 127.0.0.1 for the SERVFAIL
/// trick), serving `records` in the `k8s.test` zone.
pub fn start(world: &mut World, ns: &Ns, listen: &[IpAddr], records: &[Record]) {
    let conf = unbound_conf(world, listen, records);
    let path = world.file("unbound.conf", conf);
    let path = path.to_string_lossy().into_owned();
    world.spawn(ns, "unbound", &["unbound", "-d", "-c", &path]);
    world.wait_log("unbound", "start of service");
}

fn unbound_conf(world: &World, listen: &[IpAddr], records: &[Record]) -> String {
    let mut conf = String::from("server:\n");
    for ip in listen {
        writeln!(conf, "  interface: {ip}").unwrap();
    }
    conf += "  interface: 127.0.0.1\n";
    writeln!(conf, "  directory: \"{}\"", world.dir().display()).unwrap();
    conf += r#"  port: 53
  do-daemonize: no
  chroot: ""
  username: ""
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 1
  log-queries: yes
  access-control: 10.253.0.0/16 allow
  access-control: fd00:253::/32 allow
  access-control: 127.0.0.0/8 refuse
  do-not-query-localhost: no
  module-config: "iterator"
  local-zone: "." static
  local-zone: "k8s.test." static
  local-zone: "refused.test." always_refuse
  local-zone: "dropped.test." deny
  local-zone: "servfail.test." transparent
  local-zone: "wild.test." redirect
  local-data: "wild.test. 5 IN A 10.253.99.1"
"#;
    for (name, ip) in records {
        let kind = if ip.is_ipv4() { "A" } else { "AAAA" };
        writeln!(conf, "  local-data: \"{name}. 5 IN {kind} {ip}\"").unwrap();
    }
    for ip in many_addresses() {
        writeln!(conf, "  local-data: \"{MANY}. 5 IN A {ip}\"").unwrap();
    }
    for (alias, target) in CNAMES {
        writeln!(conf, "  local-data: \"{alias}. 5 IN CNAME {target}.\"").unwrap();
    }
    conf += "forward-zone:\n  name: \"servfail.test.\"\n  forward-addr: 127.0.0.1@53\n";
    conf += "remote-control:\n  control-enable: no\n";
    conf
}

/// A resolv.conf naming `nameserver`, with short timeouts so the DNS-timeout cases stay quick for
/// every client (glibc, Go and the tool all read `options`), plus `extra` lines.
pub fn resolv_conf(nameserver: IpAddr, extra: &str) -> String {
    format!("nameserver {nameserver}\noptions timeout:1 attempts:1\n{extra}")
}
