//! What planning produces, as plain values: a target's endpoint, route, TLS settings and
//! credentials, the RBAC requirements, and the run's limits. The planner (`plan`) builds
//! them; `net`, `checks` and `targets` read them without depending on the planner.

use std::net::IpAddr;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::model::{CheckResult, TargetKind};
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Https,
    Http,
}

/// Where the API server is: a parsed server URL.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub scheme: Scheme,
    pub host: Host,
    pub port: u16,
    /// Path prefix without a trailing slash (`/k8s-proxy` for the GitLab agent).
    pub base_path: String,
}

impl Endpoint {
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// How traffic reaches the endpoint, decided like client-go does.
#[derive(Debug, Clone)]
pub enum Route {
    Direct,
    Proxy(ProxyEndpoint),
}

#[derive(Debug, Clone)]
pub struct ProxyEndpoint {
    pub host: Host,
    pub port: u16,
    /// Password-free URL for evidence.
    pub display: String,
    /// `Basic …` value for `Proxy-Authorization`, when the URL had credentials.
    pub authorization: Option<Secret>,
    /// An `https://` proxy URL: the job speaks TLS to the proxy itself.
    pub tls: bool,
}

/// What to trust when judging the server's certificate.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// CA certificates from the kubeconfig (or --ca-file, KUBE_CA_PEM…), DER.
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// Where the CA came from, for evidence.
    pub ca_source: Option<String>,
    /// Whether `ca_certs` replace the system roots (kubeconfig CA, as client-go does) or are
    /// added to them (CI_SERVER_TLS_CA_FILE for the GitLab server).
    pub ca_replaces_system_roots: bool,
    pub insecure_skip_verify: bool,
    /// Name to verify the certificate against and to send as SNI.
    pub server_name: String,
}

/// What a target authenticates with, by kind (behind [`Credentials`]' accessors, so a token and a
/// certificate are set and read one way).
#[derive(Debug, Default)]
enum Credential {
    #[default]
    None,
    Token(Secret),
    Certificate(ClientIdentity),
    /// Both: kubectl presents the certificate and sends the token.
    TokenAndCertificate(Secret, ClientIdentity),
}

/// Credentials, kept wrapped until a request header is built over verified TLS.
#[derive(Debug, Default)]
pub struct Credentials {
    credential: Credential,
    /// config.credentials found them unusable: then nothing is sent (ask [`Credentials::sendable`]).
    withheld: bool,
    /// The credential plugin's command when the token came from one (`aws`,
    /// `gke-gcloud-auth-plugin`, `kubelogin`…): a 401 then means the cloud identity is not
    /// mapped, and the fix is the provider's.
    pub exec_plugin: Option<String>,
    /// The user's `as`, `as-uid`, `as-groups` and `as-user-extra`: sent as `Impersonate-*`
    /// headers with the credentials, as kubectl does (never once they are withheld).
    pub impersonation: Option<crate::targets::Impersonation>,
}

impl Credentials {
    /// config.credentials found them unusable: none of them is ever sent.
    pub fn withhold(&mut self) {
        self.withheld = true;
    }

    /// The one answer to "may these be sent?" (over verified TLS, the connection's rule): the
    /// credentials, unless config.credentials withheld them.
    pub fn sendable(&self) -> Option<&Credentials> {
        (!self.withheld).then_some(self)
    }

    pub fn bearer(&self) -> Option<&Secret> {
        match &self.credential {
            Credential::Token(t) | Credential::TokenAndCertificate(t, _) => Some(t),
            Credential::None | Credential::Certificate(_) => None,
        }
    }

    pub fn client_identity(&self) -> Option<&ClientIdentity> {
        match &self.credential {
            Credential::Certificate(c) | Credential::TokenAndCertificate(_, c) => Some(c),
            Credential::None | Credential::Token(_) => None,
        }
    }

    /// The target's token (the one it had, if any, gives way).
    pub fn set_token(&mut self, token: Secret) {
        self.credential = match std::mem::take(&mut self.credential) {
            Credential::None | Credential::Token(_) => Credential::Token(token),
            Credential::Certificate(c) | Credential::TokenAndCertificate(_, c) => {
                Credential::TokenAndCertificate(token, c)
            }
        };
    }

    /// The target's client certificate (the one it had, if any, gives way).
    pub fn set_certificate(&mut self, identity: ClientIdentity) {
        self.credential = match std::mem::take(&mut self.credential) {
            Credential::None | Credential::Certificate(_) => Credential::Certificate(identity),
            Credential::Token(t) | Credential::TokenAndCertificate(t, _) => {
                Credential::TokenAndCertificate(t, identity)
            }
        };
    }

    /// What the target presents, for evidence (never the secret itself).
    pub fn describe(&self) -> String {
        match &self.credential {
            Credential::Certificate(id) | Credential::TokenAndCertificate(_, id) => {
                format!("client certificate {}", id.subject)
            }
            Credential::Token(_) => "bearer token".into(),
            Credential::None => "none".into(),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self.credential, Credential::None)
    }

    /// What the user has besides a credential plugin, named for evidence: with one of these
    /// client-go never runs the plugin.
    pub fn static_credential(&self) -> Option<&'static str> {
        match &self.credential {
            Credential::Token(_) | Credential::TokenAndCertificate(..) => Some("bearer token"),
            Credential::Certificate(_) => Some("client certificate"),
            Credential::None => None,
        }
    }
}

pub struct ClientIdentity {
    /// The certificate's subject, for evidence.
    pub subject: String,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientIdentity([REDACTED])")
    }
}

#[derive(Debug)]
pub struct Target {
    pub name: String,
    pub kind: TargetKind,
    pub server_display: String,
    pub endpoint: Option<Endpoint>,
    pub tls: Option<TlsSettings>,
    pub credentials: Credentials,
    pub route: Route,
    pub namespace: String,
    pub config_checks: Vec<CheckResult>,
    /// A `gitlab-agent` target's agent, read once in planning (`None` for other kinds).
    pub agent: Option<crate::gitlab::AgentTarget>,
    /// IP and CIDR `NO_PROXY` entries this proxied server's name may resolve into: judged
    /// after DNS (`checks::config::after_server_lookup`).
    pub no_proxy_nets: Vec<NoProxyNet>,
}

/// One IP or CIDR `NO_PROXY` entry, as the user wrote it (`NO_PROXY entry "10.0.0.0/8"`).
#[derive(Debug, Clone)]
pub struct NoProxyNet {
    pub entry: String,
    pub net: ipnet::IpNet,
}

/// One RBAC question: `verb resource[.group][/subresource] [-n ns]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub verb: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub group: String,
    pub namespace: RequirementNamespace,
}

/// Where a requirement is asked: parsed once from `--require`'s `-n`/`-A`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RequirementNamespace {
    /// No `-n`: the target's namespace.
    #[default]
    Target,
    /// `-A`: every namespace (the access review's empty namespace).
    All,
    /// `-n NAMESPACE`.
    Named(String),
}

impl RequirementNamespace {
    /// The namespace the access review names: `target_ns`, `""` for all, or the named one.
    pub fn resolve(&self, target_ns: &str) -> String {
        match self {
            RequirementNamespace::Target => target_ns.to_string(),
            RequirementNamespace::All => String::new(),
            RequirementNamespace::Named(ns) => ns.clone(),
        }
    }
}

impl Requirement {
    /// The subject line used in reports: `create deployments.apps -n prod`.
    pub fn subject(&self, default_ns: &str) -> String {
        let mut resource = self.resource.clone();
        if !self.group.is_empty() {
            resource = format!("{resource}.{}", self.group);
        }
        if let Some(sub) = &self.subresource {
            resource = format!("{resource}/{sub}");
        }
        format!(
            "{} {} -n {}",
            self.verb,
            resource,
            self.namespace.resolve(default_ns)
        )
    }
}

/// At most this many targets are checked in one run (the GitLab server and in-cluster targets
/// come on top). Every target gets its own connections and report rows, and every requirement
/// is asked on every target: with [`MAX_REQUIREMENTS`] that bounds one run to 10,000 access
/// reviews and its JSON to a few megabytes, where an uncapped 20,000-context kubeconfig took
/// 1 GB of memory and wrote 205 MB. A real job has one context per authorized agent plus
/// perhaps a certificate-based one: a handful, far below the cap.
pub const MAX_TARGETS: usize = 100;

/// At most this many requirements (one per verb) are asked per target: the default set is 13,
/// a real deploy job's list a few dozen.
pub const MAX_REQUIREMENTS: usize = 100;
