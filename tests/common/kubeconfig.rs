//! The one kubeconfig writer of the test suites, and the test tokens. Kubeconfigs that test the
//! parser itself (odd YAML shapes, corrupted files) are written where they are tested; every
//! kubeconfig that only has to be right is written here.

// Each test binary uses the parts it needs.
#![allow(dead_code)]

use base64::Engine as _;

/// A token the fake API server accepts and allows everything for.
pub const GOOD: &str = kube_reach::demo::GOOD_TOKEN;
/// A token the fake API server accepts and denies everything to.
pub const FORBIDDEN: &str = kube_reach::demo::FORBIDDEN_TOKEN;

/// One kubeconfig cluster, user and context, all named `name` unless told otherwise.
pub struct Ctx<'a> {
    pub name: &'a str,
    pub server: String,
    /// `certificate-authority-data` (base64 of this PEM).
    pub ca_pem: Option<&'a str>,
    /// The user's `token`; a user with none of the credentials below is `{}`.
    pub token: Option<&'a str>,
    /// More YAML of the cluster, each line indented four spaces (`    proxy-url: …\n`).
    pub extra_cluster: &'a str,
    /// `client-certificate-data` and `client-key-data` (PEMs).
    pub client_cert: Option<(&'a str, &'a str)>,
    /// More YAML of the user, each line indented four spaces (an `exec:` stanza).
    pub extra_user: &'a str,
    /// The context's namespace (`None`: none).
    pub namespace: Option<&'a str>,
    /// The cluster's and the user's names when not `name` (GitLab's agent kubeconfig).
    pub cluster_name: Option<&'a str>,
    pub user_name: Option<&'a str>,
}

impl<'a> Ctx<'a> {
    /// A context on `server` trusting `ca_pem`, with `token`, in namespace `ci`.
    pub fn new(name: &'a str, server: String, ca_pem: &'a str, token: &'a str) -> Self {
        Ctx {
            ca_pem: Some(ca_pem),
            token: Some(token),
            ..Ctx::named(name, server)
        }
    }

    /// A context on `server` with no CA and no credentials, in namespace `ci`.
    pub fn named(name: &'a str, server: String) -> Self {
        Ctx {
            name,
            server,
            ca_pem: None,
            token: None,
            extra_cluster: "",
            client_cert: None,
            extra_user: "",
            namespace: Some("ci"),
            cluster_name: None,
            user_name: None,
        }
    }

    fn cluster(&self) -> String {
        let mut yaml = format!(
            "- name: {}\n  cluster:\n    server: \"{}\"\n",
            self.cluster_name.unwrap_or(self.name),
            self.server
        );
        if let Some(ca) = self.ca_pem {
            yaml.push_str(&format!("    certificate-authority-data: {}\n", b64(ca)));
        }
        yaml.push_str(self.extra_cluster);
        yaml
    }

    fn user(&self) -> String {
        let mut fields = String::new();
        if let Some(token) = self.token {
            fields.push_str(&format!("    token: \"{token}\"\n"));
        }
        if let Some((cert, key)) = self.client_cert {
            fields.push_str(&format!("    client-certificate-data: {}\n", b64(cert)));
            fields.push_str(&format!("    client-key-data: {}\n", b64(key)));
        }
        fields.push_str(self.extra_user);
        if fields.is_empty() {
            fields.push_str("    {}\n");
        }
        let name = self.user_name.unwrap_or(self.name);
        format!("- name: {name}\n  user:\n{fields}")
    }

    fn context(&self) -> String {
        let namespace = self
            .namespace
            .map(|ns| format!("    namespace: {ns}\n"))
            .unwrap_or_default();
        format!(
            "- name: {}\n  context:\n    cluster: {}\n    user: {}\n{namespace}",
            self.name,
            self.cluster_name.unwrap_or(self.name),
            self.user_name.unwrap_or(self.name)
        )
    }
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The kubeconfig of `contexts`, selecting `current` when given.
pub fn kubeconfig(contexts: &[Ctx<'_>], current: Option<&str>) -> String {
    let clusters: String = contexts.iter().map(Ctx::cluster).collect();
    let users: String = contexts.iter().map(Ctx::user).collect();
    let ctxs: String = contexts.iter().map(Ctx::context).collect();
    let current = current
        .map(|c| format!("current-context: {c}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n{clusters}users:\n{users}contexts:\n{ctxs}{current}"
    )
}
