//! nft rules inside a namespace. The table lives in the namespace and disappears with it; the
//! machine's own ruleset is never touched.

use std::time::Duration;

use crate::world::{Ns, World, require};

/// What the server's firewall does to new connections to the API port.
#[derive(Clone, Copy, Debug)]
pub enum Block {
    /// Silently drops them: the client times out.
    Drop,
    /// Answers with a TCP reset: "connection refused" at once.
    Reset,
    /// Answers ICMP administratively prohibited: "no route to host" at once.
    AdminProhibited,
    /// Drops IPv6 only: a dual-stack client must fall back to IPv4.
    DropV6,
}

impl Block {
    fn rule(self, port: u16) -> String {
        match self {
            Block::Drop => format!("tcp dport {port} drop"),
            Block::Reset => format!("tcp dport {port} reject with tcp reset"),
            Block::AdminProhibited => {
                format!("tcp dport {port} reject with icmpx type admin-prohibited")
            }
            Block::DropV6 => format!("meta nfproto ipv6 tcp dport {port} drop"),
        }
    }
}

/// Installs `block` for TCP port `port` on the input hook of `ns`.
pub fn block(world: &World, ns: &Ns, port: u16, block: Block) {
    let rule = block.rule(port);
    load(
        world,
        ns,
        &format!(
            "table inet kr {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  {rule}\n }}\n}}\n"
        ),
    );
}

/// Loads an nft ruleset into `ns`, failing the test with nft's message.
pub fn load(world: &World, ns: &Ns, ruleset: &str) {
    require(&["nft"]);
    let file = world.file(&format!("nft-{}.conf", ns.role), ruleset);
    let file = file.to_string_lossy().into_owned();
    let ran = world.run(ns, &["nft", "-f", &file], &[], Duration::from_secs(10));
    assert_eq!(ran.status, Some(0), "nft -f in {}: {}", ns.name, ran.text());
}
