//! Kubeconfig files for a world: one cluster, one token user, one context, the world's root CA
//! inline as `certificate-authority-data` (as GitLab's injected kubeconfigs carry it), written
//! by the suites' one kubeconfig writer (`tests/common/kubeconfig.rs`).

use std::path::PathBuf;

use crate::common_kubeconfig::{Ctx, GOOD, kubeconfig};
use crate::world::World;

/// The context every kubeconfig defines and selects.
pub const CONTEXT: &str = "e2e";

/// What goes into one kubeconfig.
pub struct Kubeconfig<'a> {
    pub server: &'a str,
    pub ca_pem: &'a str,
    pub proxy_url: Option<&'a str>,
}

impl Kubeconfig<'_> {
    /// Writes it to `<name>.kubeconfig` in the world's dir.
    pub fn write(&self, world: &World, name: &str) -> PathBuf {
        let proxy = self
            .proxy_url
            .map(|url| format!("    proxy-url: {url}\n"))
            .unwrap_or_default();
        let ctx = Ctx {
            extra_cluster: &proxy,
            user_name: Some("ci"),
            namespace: Some("default"),
            ..Ctx::new(CONTEXT, self.server.to_string(), self.ca_pem, GOOD)
        };
        world.file(
            &format!("{name}.kubeconfig"),
            kubeconfig(&[ctx], Some(CONTEXT)),
        )
    }
}
