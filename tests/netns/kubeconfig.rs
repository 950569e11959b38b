//! Kubeconfig files for a world: one cluster, one token user, one context, the world's root CA
//! inline as `certificate-authority-data` (as GitLab's injected kubeconfigs carry it).

use std::path::PathBuf;

use base64::Engine as _;

use crate::world::World;

/// The context every kubeconfig defines and selects.
pub const CONTEXT: &str = "e2e";
/// A token the demo server accepts and allows everything for.
pub const GOOD_TOKEN: &str = "good-token";

/// What goes into one kubeconfig.
pub struct Kubeconfig<'a> {
    pub server: &'a str,
    pub ca_pem: &'a str,
    pub proxy_url: Option<&'a str>,
}

impl Kubeconfig<'_> {
    /// Writes it to `<name>.kubeconfig` in the world's dir.
    pub fn write(&self, world: &World, name: &str) -> PathBuf {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem);
        let proxy = self
            .proxy_url
            .map(|url| format!("\n    proxy-url: {url}"))
            .unwrap_or_default();
        let yaml = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: {server}
    certificate-authority-data: {ca}{proxy}
users:
- name: ci
  user:
    token: {GOOD_TOKEN}
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: ci
    namespace: default
current-context: {CONTEXT}
",
            server = self.server
        );
        world.file(&format!("{name}.kubeconfig"), yaml)
    }
}
