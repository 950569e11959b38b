//! The project's own fake Kubernetes world: a PKI ([`pki`]), a fake kube-apiserver
//! ([`apiserver`]), an HTTP CONNECT proxy ([`proxy`]) and a [`Demo`] that wires them into a
//! kubeconfig with one healthy and several broken contexts.
//!
//! Why it lives in the crate and not under `tests/`: the tool's embedded demo (`kube-reach`
//! run against a world it starts itself, so a user can see every diagnosis without a cluster)
//! and the test suite must exercise the *same* fake. A second copy for tests would drift, and
//! then the demo would show diagnoses the tests no longer prove. There is no real
//! kube-apiserver on the build machines (see `research/test-harness.md` §4); this fake is
//! cross-checked against the real kubectl in `tests/kubectl_crosscheck.rs` instead.
//!
//! Safety: everything binds to loopback in tests and in the demo, never resolves a name through
//! the system resolver (certificates carry `IP:127.0.0.1`), stops when its handle is dropped,
//! and never logs a token.

pub mod apiserver;
pub mod in_cluster;
pub mod pki;
pub mod proxy;
pub mod rbac;
#[cfg(test)]
mod test_client;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use apiserver::routes::{ObjectKind, Objects};
pub use apiserver::{
    Anonymous, ApiServerHandle, ApiServerOptions, FORBIDDEN_TOKEN, GOOD_TOKEN, Protocols,
    RequestRecord, ServerStats, ServerVersion, Transport,
};
pub use pki::{ClientAuth, DEFAULT_SANS, Pki, ServerIdentity, TlsClass};
pub use proxy::{ProxyHandle, ProxyMode, ProxyOptions};
pub use rbac::{Rule, User};

/// Why the demo (or one of its servers) could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// rcgen refused to make a certificate.
    #[error("generating a demo certificate failed: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused a certificate, key or configuration.
    #[error("demo TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built (e.g. no CA).
    #[error("demo client-certificate verifier: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    /// A socket or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file could not be read or held no usable item.
    #[error("reading PEM from {path}: {message}")]
    Pem {
        /// The file.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// The options asked for something the demo does not do.
    #[error("invalid demo configuration: {0}")]
    Config(String),
}

impl DemoError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DemoError::Io {
            context: context.into(),
            source,
        }
    }
}

/// A loopback address where nothing listens (bound, then released): a refused API server port
/// or a dead proxy. Another process could take the port in between; tests accept that tiny race.
pub fn dead_address() -> Result<SocketAddr, DemoError> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| DemoError::io("binding a throw-away loopback port", e))?;
    listener
        .local_addr()
        .map_err(|e| DemoError::io("reading a throw-away loopback port", e))
}

/// Which demo world to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DemoKind {
    /// One healthy server and one context for it.
    Healthy,
    /// The healthy server plus the broken scenarios (expired certificate, missing
    /// intermediate, refused port, rejected token, RBAC denial).
    All,
}

/// The diagnosis the tool should give a scenario (its root cause, spec §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    /// Check id, e.g. `tls.validity`.
    pub check: &'static str,
    /// Reason code, e.g. `expired`.
    pub reason: &'static str,
}

/// One context of the demo kubeconfig.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoScenario {
    /// Context (and cluster) name, e.g. `demo-expired-cert`.
    pub context: String,
    /// The cluster's `server` URL.
    pub server: String,
    /// The expected root cause; `None` for the healthy context.
    pub expected: Option<Expected>,
}

/// A running demo: servers on 127.0.0.1 and a kubeconfig naming them. Everything stops, and the
/// kubeconfig's temporary directory is removed, when it is dropped.
pub struct Demo {
    kubeconfig: PathBuf,
    scenarios: Vec<DemoScenario>,
    servers: Vec<(String, ApiServerHandle)>,
    pki: Pki,
    // Declared last: dropped after the servers.
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("kubeconfig", &self.kubeconfig)
            .field("scenarios", &self.scenarios)
            .finish_non_exhaustive()
    }
}

/// What a scenario's server (if any) and user look like.
struct Plan {
    context: &'static str,
    server: Option<TlsClass>,
    token: &'static str,
    expected: Option<Expected>,
}

/// A token no demo server knows (revoked, or from another cluster).
pub const REVOKED_TOKEN: &str = "revoked-token";

/// Namespace every demo context points at.
pub const DEMO_NAMESPACE: &str = "demo";

fn plans(kind: DemoKind) -> Vec<Plan> {
    let expect = |check, reason| Some(Expected { check, reason });
    let mut plans = vec![Plan {
        context: "demo-healthy",
        server: Some(TlsClass::Good),
        token: GOOD_TOKEN,
        expected: None,
    }];
    if kind == DemoKind::All {
        plans.extend([
            Plan {
                context: "demo-expired-cert",
                server: Some(TlsClass::Expired),
                token: GOOD_TOKEN,
                expected: expect("tls.validity", "expired"),
            },
            Plan {
                context: "demo-missing-intermediate",
                server: Some(TlsClass::MissingIntermediate),
                token: GOOD_TOKEN,
                expected: expect("tls.trust", "missing-intermediate"),
            },
            Plan {
                context: "demo-refused",
                server: None,
                token: GOOD_TOKEN,
                expected: expect("tcp.connect", "refused"),
            },
            Plan {
                context: "demo-bad-token",
                server: Some(TlsClass::Good),
                token: REVOKED_TOKEN,
                expected: expect("auth.whoami", "unauthorized"),
            },
            Plan {
                context: "demo-rbac-denied",
                server: Some(TlsClass::Good),
                token: FORBIDDEN_TOKEN,
                expected: expect("rbac.can-i", "denied"),
            },
        ]);
    }
    plans
}

impl Demo {
    /// Starts the demo servers on 127.0.0.1 (ports picked by the OS) and writes the kubeconfig.
    /// Must run inside a tokio runtime; the servers live until the `Demo` is dropped.
    pub async fn start(kind: DemoKind) -> Result<Demo, DemoError> {
        let pki = Pki::generate()?;
        let mut scenarios = Vec::new();
        let mut servers = Vec::new();
        for plan in plans(kind) {
            let server = match plan.server {
                Some(class) => {
                    let handle = start_tls_server(&pki, class).await?;
                    let url = handle.url();
                    servers.push((plan.context.to_string(), handle));
                    url
                }
                None => format!("https://{}", dead_address()?),
            };
            scenarios.push(DemoScenario {
                context: plan.context.to_string(),
                server,
                expected: plan.expected,
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("kube-reach-demo-")
            .tempdir()
            .map_err(|e| DemoError::io("creating the demo directory", e))?;
        let kubeconfig = dir.path().join("kubeconfig");
        let yaml = kubeconfig_yaml(&scenarios, &plans(kind), &pki.root_ca_pem());
        write_private(&kubeconfig, &yaml)?;
        Ok(Demo {
            kubeconfig,
            scenarios,
            servers,
            pki,
            _dir: dir,
        })
    }

    /// Path of the generated kubeconfig (no `current-context`: every context is checked).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The contexts, in kubeconfig order, with their expected root causes.
    pub fn scenarios(&self) -> &[DemoScenario] {
        &self.scenarios
    }

    /// The server behind `context` (None for `demo-refused` or an unknown name), e.g. to count
    /// its requests.
    pub fn server(&self, context: &str) -> Option<&ApiServerHandle> {
        self.servers
            .iter()
            .find(|(name, _)| name == context)
            .map(|(_, handle)| handle)
    }

    /// The PKI the servers' certificates come from.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }
}

async fn start_tls_server(pki: &Pki, class: TlsClass) -> Result<ApiServerHandle, DemoError> {
    let identity = pki.server_identity(class, DEFAULT_SANS)?;
    let config = identity.server_config(&pki.optional_client_auth())?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    apiserver::start(addr, Transport::Tls(config), ApiServerOptions::default()).await
}

/// The kubeconfig YAML: one cluster, user and context per scenario, no current-context.
fn kubeconfig_yaml(scenarios: &[DemoScenario], plans: &[Plan], root_ca_pem: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(root_ca_pem);
    let mut clusters = String::new();
    let mut users = String::new();
    let mut contexts = String::new();
    for (scenario, plan) in scenarios.iter().zip(plans) {
        let name = &scenario.context;
        clusters.push_str(&format!(
            "- name: {name}\n  cluster:\n    server: \"{}\"\n    certificate-authority-data: {ca}\n",
            scenario.server
        ));
        users.push_str(&format!(
            "- name: {name}\n  user:\n    token: {}\n",
            plan.token
        ));
        contexts.push_str(&format!(
            "- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n    namespace: {DEMO_NAMESPACE}\n"
        ));
    }
    format!(
        "# Written by kube-reach's demo. Every server runs on 127.0.0.1 and stops with the demo.\n\
         apiVersion: v1\nkind: Config\npreferences: {{}}\nclusters:\n{clusters}users:\n{users}contexts:\n{contexts}"
    )
}

/// Writes a file readable by its owner only (it holds tokens).
fn write_private(path: &Path, contents: &str) -> Result<(), DemoError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let context = || format!("writing {}", path.display());
    let mut file = options
        .open(path)
        .map_err(|e| DemoError::io(context(), e))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| DemoError::io(context(), e))
}

/// How `serve` secures its listeners.
#[derive(Clone, Debug)]
pub enum ServeTls {
    /// Plain HTTP.
    Plain,
    /// TLS from PEM files.
    Files {
        /// Leaf first, then intermediates.
        chain_pem: PathBuf,
        /// The leaf's private key (PKCS#8, SEC1 or PKCS#1).
        key_pem: PathBuf,
        /// When set, client certificates from this CA are requested (optional) and accepted.
        client_ca_pem: Option<PathBuf>,
    },
}

/// Options of [`serve`], the entry point behind a hidden CLI subcommand used by the
/// network-namespace tests (the fake runs inside a namespace as its own process).
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Addresses to listen on (one server each, sharing the options).
    pub listen: Vec<SocketAddr>,
    /// TLS or plain HTTP.
    pub tls: ServeTls,
    /// Server behaviour, including `version_padding_bytes` for the MTU black-hole test.
    pub api: ApiServerOptions,
    /// Exit by itself after this long, so a forgotten process cannot outlive its test.
    pub max_lifetime: Duration,
    /// Written once every listener is bound: the PID on the first line, then one URL per line.
    pub ready_file: Option<PathBuf>,
}

impl ServeOptions {
    /// `listen` and `tls` with a default (healthy) server, a ten-minute lifetime and no ready
    /// file.
    pub fn new(listen: Vec<SocketAddr>, tls: ServeTls) -> Self {
        ServeOptions {
            listen,
            tls,
            api: ApiServerOptions::default(),
            max_lifetime: Duration::from_secs(600),
            ready_file: None,
        }
    }
}

/// Serves until `max_lifetime` has passed. Binds every listener before writing the ready file,
/// so a test that sees the file can connect at once.
pub async fn serve(options: ServeOptions) -> Result<(), DemoError> {
    if options.listen.is_empty() {
        return Err(DemoError::Config(
            "serve needs at least one listen address".into(),
        ));
    }
    let transport = serve_transport(&options.tls)?;
    let mut handles = Vec::new();
    for addr in &options.listen {
        handles.push(apiserver::start(*addr, transport.clone(), options.api.clone()).await?);
    }
    if let Some(path) = &options.ready_file {
        let mut text = format!("{}\n", std::process::id());
        for handle in &handles {
            text.push_str(&format!("{}\n", handle.url()));
        }
        write_atomically(path, &text)?;
    }
    tokio::time::sleep(options.max_lifetime).await;
    for handle in handles {
        handle.shutdown().await;
    }
    Ok(())
}

fn serve_transport(tls: &ServeTls) -> Result<Transport, DemoError> {
    let ServeTls::Files {
        chain_pem,
        key_pem,
        client_ca_pem,
    } = tls
    else {
        return Ok(Transport::PlainHttp);
    };
    let chain = read_certificates(chain_pem)?;
    let key = PrivateKeyDer::from_pem_file(key_pem).map_err(|e| pem_error(key_pem, e))?;
    let client_auth = match client_ca_pem {
        Some(path) => ClientAuth::Optional(read_certificates(path)?),
        None => ClientAuth::None,
    };
    Ok(Transport::Tls(pki::server_config(
        chain,
        key,
        &client_auth,
    )?))
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, DemoError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(DemoError::Pem {
            path: path.display().to_string(),
            message: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

fn pem_error(path: &Path, error: rustls_pki_types::pem::Error) -> DemoError {
    DemoError::Pem {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

/// Write to a sibling temporary file, then rename: a reader never sees half a file.
fn write_atomically(path: &Path, contents: &str) -> Result<(), DemoError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)
        .map_err(|e| DemoError::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| DemoError::io(format!("renaming {} into place", tmp.display()), e))
}

#[cfg(test)]
mod tests;
