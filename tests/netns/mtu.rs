//! The MTU black hole: a router whose link toward the client is narrower (1280) than both ends
//! (1500), and whose "fragmentation needed" ICMP errors are dropped. Small packets pass (TCP and
//! TLS handshakes work); full-size segments from the server vanish, so a large response stalls.
//! Without the ICMP drop, path MTU discovery would heal the connection.

use crate::firewall;
use crate::world::{Ns, World, ip};

/// MTU of the router's interface toward the client.
pub const NARROW_MTU: u16 = 1280;

/// Narrows `router`'s interface `ifname` and drops the ICMP errors that would report it.
pub fn black_hole(world: &World, router: &Ns, ifname: &str) {
    let mtu = NARROW_MTU.to_string();
    ip(&["-n", &router.name, "link", "set", ifname, "mtu", &mtu]);
    firewall::load(
        world,
        router,
        "table inet kr {\n chain out {\n  type filter hook output priority 0; policy accept;\n  icmp type destination-unreachable icmp code frag-needed drop\n }\n}\n",
    );
}
