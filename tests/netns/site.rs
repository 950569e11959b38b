//! The three world shapes the cases use, each a [`Site`]: a client namespace `c` with no default
//! route, a server namespace `s` where the API server listens on port 6443, the world's unbound,
//! and, for two shapes, a namespace in between.
//!
//! - [`Site::direct`]: `c —10.253.1.0/24— s`, and `c —10.253.3.0/24— d` where unbound runs.
//! - [`Site::proxied`]: `c —10.253.1.0/24— p —10.253.2.0/24— s`; unbound and the proxy run in `p`,
//!   which does not forward, so `c` reaches `s` only through the proxy (until [`Site::route_around_proxy`]).
//! - [`Site::narrow`]: `c —10.253.1.0/24— r —10.253.2.0/24— s`; `r` routes, its link toward `c`
//!   has MTU 1280 and the ICMP that would say so is dropped; unbound runs in `r`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::dns::{self, API, EKS, Record};
use crate::fixture;
use crate::kubeconfig::Kubeconfig;
use crate::mtu;
use crate::pki::{LeafKind, Pki};
use crate::world::{Family, Link, Ns, Ran, World, require};

pub const API_PORT: u16 = 6443;
/// An address no route leads to: the client has no default route.
pub const UNROUTABLE: Ipv4Addr = Ipv4Addr::new(10, 253, 99, 1);
/// An address on the client's link that nobody owns: ARP gets no answer.
pub const UNOWNED: Ipv4Addr = Ipv4Addr::new(10, 253, 1, 77);
/// Port of the proxy in the proxied world, and one where nothing listens.
pub const PROXY_PORT: u16 = 8888;
pub const DEAD_PROXY_PORT: u16 = 3999;

/// A built world of one of the three shapes; see the module doc.
pub struct Site {
    pub world: World,
    pub client: Ns,
    pub server: Ns,
    /// The proxy or router namespace, when the shape has one.
    pub hop: Option<Ns>,
    pub pki: Pki,
    /// Where the API server listens: the server's addresses toward the client.
    pub api: Vec<SocketAddr>,
    /// The world's nameserver, as the client's resolv.conf names it.
    pub nameserver: IpAddr,
}

impl Site {
    /// `c — s`, with `family` on the link, and the nameserver on a link of its own (`c — d`, net
    /// 3), so a report naming the nameserver is never mistaken for one naming the API server.
    /// DNS: `api.k8s.test` (A), `api6.k8s.test` (AAAA), `dual.k8s.test` (both),
    /// `unroutable.k8s.test` and `onlink.k8s.test` (A, nobody there), [`EKS`] (A, the server).
    pub fn direct(family: Family) -> Site {
        let mut world = World::new(&["unbound"]);
        let client = world.ns("c");
        let server = world.ns("s");
        let dns_ns = world.ns("d");
        let link = world.link(&client, &server, 1, family);
        let dns_link = world.link(&client, &dns_ns, 3, family);
        let server_ips = addresses(family, &link);
        let mut records: Vec<Record> = vec![
            ("unroutable.k8s.test", UNROUTABLE.into()),
            ("onlink.k8s.test", UNOWNED.into()),
        ];
        if family != Family::V6 {
            records.extend([
                (API, link.b4.into()),
                ("dual.k8s.test", link.b4.into()),
                (EKS, link.b4.into()),
            ]);
        }
        if family != Family::V4 {
            records.extend([
                ("api6.k8s.test", link.b6.into()),
                ("dual.k8s.test", link.b6.into()),
            ]);
        }
        let dns_ips = addresses(family, &dns_link);
        let nameserver = dns_ips[0];
        dns::start(&mut world, &dns_ns, &dns_ips, &records);
        world.etc(&client, "resolv.conf", &dns::resolv_conf(nameserver, ""));
        let api = server_ips
            .iter()
            .map(|ip| SocketAddr::new(*ip, API_PORT))
            .collect();
        let pki = Pki::new(&world);
        Site {
            world,
            client,
            server,
            hop: None,
            pki,
            api,
            nameserver,
        }
    }

    /// `c — p — s` without forwarding in `p`. DNS: `api.k8s.test` (the server, behind the proxy),
    /// `proxy.k8s.test` (the proxy); `p` resolves through the same unbound.
    pub fn proxied() -> Site {
        let (world, client, proxy, server, near, far) = three_namespaces("p");
        behind_proxy(world, client, proxy, server, near.b4.into(), far.b4.into())
    }

    /// `c — r — s`, `r` forwarding through the MTU black hole. DNS: `api.k8s.test` (the server).
    pub fn narrow() -> Site {
        let (mut world, client, router, server, near, far) = three_namespaces("r");
        world.route(&client, "10.253.2.0/24", near.b4.into());
        world.route(&server, "10.253.1.0/24", far.a4.into());
        world.sysctl(&router, "net.ipv4.ip_forward", "1");
        mtu::black_hole(&world, &router, "to-c");
        dns::start(
            &mut world,
            &router,
            &[near.b4.into()],
            &[(API, far.b4.into())],
        );
        world.etc(
            &client,
            "resolv.conf",
            &dns::resolv_conf(near.b4.into(), ""),
        );
        let pki = Pki::new(&world);
        let api = vec![SocketAddr::new(far.b4.into(), API_PORT)];
        Site {
            world,
            client,
            server,
            hop: Some(router),
            pki,
            api,
            nameserver: near.b4.into(),
        }
    }

    /// `c — r — p — s`: the proxied world with the MTU black hole between the job and its
    /// proxy (Docker-in-Docker's bridge, a VPN), where the small-MSS retry can help. `r` routes
    /// with the black hole toward `c`; `p` runs unbound and (once started) the proxy and does not
    /// forward, so `c` reaches `s` (net 4) only through it. DNS: `api.k8s.test` (the server),
    /// `proxy.k8s.test` (the proxy).
    pub fn narrow_proxied() -> Site {
        let mut world = World::new(&["unbound"]);
        let client = world.ns("c");
        let router = world.ns("r");
        let proxy = world.ns("p");
        let server = world.ns("s");
        let near = world.link(&client, &router, 1, Family::V4);
        let middle = world.link(&router, &proxy, 2, Family::V4);
        let far = world.link(&proxy, &server, 4, Family::V4);
        world.route(&client, "10.253.2.0/24", near.b4.into());
        world.route(&proxy, "10.253.1.0/24", middle.a4.into());
        world.sysctl(&router, "net.ipv4.ip_forward", "1");
        mtu::black_hole(&world, &router, "to-c");
        behind_proxy(
            world,
            client,
            proxy,
            server,
            middle.b4.into(),
            far.b4.into(),
        )
    }

    /// The proxy's address in the proxied world (`proxy.k8s.test`).
    pub fn proxy_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.nameserver, port)
    }

    /// Lets `c` reach `s` directly through `p` (for the proxy-bypass cases).
    pub fn route_around_proxy(&self) {
        let hop = self.hop.as_ref().expect("proxied world");
        self.world
            .route(&self.client, "10.253.2.0/24", self.nameserver);
        self.world
            .route(&self.server, "10.253.1.0/24", "10.253.2.1".parse().unwrap());
        self.world.sysctl(hop, "net.ipv4.ip_forward", "1");
    }

    /// Writes a kubeconfig for `server` (a URL) trusting the world's root CA.
    pub fn kubeconfig(&self, name: &str, server: &str, proxy_url: Option<&str>) -> PathBuf {
        let ca_pem = &self.pki.root_pem;
        Kubeconfig {
            server,
            ca_pem,
            proxy_url,
        }
        .write(&self.world, name)
    }

    /// Starts the in-process HTTPS server with a `kind` leaf on every API address.
    pub fn fixture(&mut self, kind: LeafKind) {
        let leaf = self.pki.leaf(&self.world, kind);
        for addr in self.api.clone() {
            fixture::serve(&mut self.world, &self.server, addr, Some(&leaf));
        }
    }

    /// curl inside the client, verbose (the connect errno and the proxy's status line are in
    /// stderr), trusting the world's CA, at most 5 s.
    pub fn curl(&self, args: &[&str], env: &[(&str, &str)]) -> Ran {
        require(&["curl"]);
        let ca = self.pki.root_path.to_string_lossy().into_owned();
        let mut argv = vec!["curl", "-sS", "-v", "--max-time", "5", "--cacert", &ca];
        argv.extend(args);
        self.world
            .run(&self.client, &argv, env, Duration::from_secs(10))
    }

    /// dig inside the client, through its resolv.conf.
    pub fn dig(&self, args: &[&str]) -> Ran {
        require(&["dig"]);
        let mut argv = vec!["dig", "+time=1", "+tries=1"];
        argv.extend(args);
        self.world
            .run(&self.client, &argv, &[], Duration::from_secs(10))
    }

    /// glibc's view of a name inside the client: hosts file, search list and ndots included.
    pub fn getent(&self, name: &str) -> Ran {
        require(&["getent"]);
        let argv = ["getent", "ahosts", name];
        self.world
            .run(&self.client, &argv, &[], Duration::from_secs(10))
    }
}

/// The `b` side's addresses of `link` in `family`, IPv4 first.
fn addresses(family: Family, link: &Link) -> Vec<IpAddr> {
    let v4 = (family != Family::V6).then_some(IpAddr::from(link.b4));
    let v6 = (family != Family::V4).then_some(IpAddr::from(link.b6));
    v4.into_iter().chain(v6).collect()
}

/// The rest of a world whose client reaches `server_ip` only through the proxy namespace at
/// `proxy_ip`, where unbound runs: its records, both resolv.confs, the PKI.
fn behind_proxy(
    mut world: World,
    client: Ns,
    proxy: Ns,
    server: Ns,
    proxy_ip: IpAddr,
    server_ip: IpAddr,
) -> Site {
    let records = [(API, server_ip), ("proxy.k8s.test", proxy_ip)];
    dns::start(&mut world, &proxy, &[proxy_ip], &records);
    let resolv = dns::resolv_conf(proxy_ip, "");
    world.etc(&client, "resolv.conf", &resolv);
    world.etc(&proxy, "resolv.conf", &resolv);
    let pki = Pki::new(&world);
    Site {
        world,
        client,
        server,
        hop: Some(proxy),
        pki,
        api: vec![SocketAddr::new(server_ip, API_PORT)],
        nameserver: proxy_ip,
    }
}

/// `c — <hop> — s` on 10.253.1.0/24 and 10.253.2.0/24, IPv4 only, no routes across `hop` yet.
fn three_namespaces(hop: &str) -> (World, Ns, Ns, Ns, Link, Link) {
    let mut world = World::new(&["unbound"]);
    let client = world.ns("c");
    let middle = world.ns(hop);
    let server = world.ns("s");
    let near = world.link(&client, &middle, 1, Family::V4);
    let far = world.link(&middle, &server, 2, Family::V4);
    (world, client, middle, server, near, far)
}
