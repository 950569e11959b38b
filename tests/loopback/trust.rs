//! `tls.trust` against TLS worlds made by the `openssl` command-line tool, in the shapes real
//! clusters have (spec §2, "Telling trust failures apart"): kubeadm, a rebuilt kubeadm, k3s,
//! an enterprise root with an issuing intermediate, a public-CA-style leaf with AIA, a
//! self-signed leaf. Each is served over real TLS by the fake API server and judged with the
//! right CA, no CA and a wrong CA in the kubeconfig, asserting reason, fix and evidence.
//!
//! openssl runs as a bounded child process in a temp dir; keys are EC P-256 (kubeadm's RSA
//! 2048 for the kubeadm worlds) so the worlds are quick to make.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::demo::{ApiServerHandle, ApiServerOptions, ProxyMode, Transport, apiserver, proxy};
use kube_reach::model::{Status, Verdict};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::support::*;

/// A temp dir where openssl makes keys and certificates.
pub(crate) struct Openssl {
    dir: tempfile::TempDir,
}

/// One certificate made here: its files.
#[derive(Clone)]
pub(crate) struct Made {
    pub(crate) crt: PathBuf,
    pub(crate) key: PathBuf,
}

impl Made {
    fn pem(&self) -> String {
        std::fs::read_to_string(&self.crt).expect("certificate PEM")
    }
}

/// An ECDSA P-521 key (ring cannot verify its signatures; Go can).
const P521: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"];

const LEAF_SANS: &str = "DNS:api.k8s.test,DNS:localhost,IP:127.0.0.1";

impl Openssl {
    pub(crate) fn new() -> Openssl {
        Openssl {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `openssl args…` in the temp dir, at most 60 s; panics with its stderr on failure.
    pub(crate) fn run(&self, args: &[&str]) {
        let mut cmd = Command::new("openssl");
        cmd.args(args).current_dir(self.dir.path());
        let (code, _, stderr) = crate::child::run_bounded(cmd, Duration::from_secs(60));
        assert_eq!(code, Some(0), "openssl {args:?} failed: {stderr}");
    }

    /// The key: RSA 2048 or ECDSA P-256.
    fn key_args(rsa: bool) -> &'static [&'static str] {
        if rsa {
            &["-newkey", "rsa:2048"]
        } else {
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        }
    }

    /// A self-signed certificate (`req -x509`, which adds subject and authority key
    /// identifiers) with the `-addext` extensions `exts`.
    fn self_signed(&self, name: &str, subject: &str, days: &str, exts: &[&str], rsa: bool) -> Made {
        self.self_signed_with(name, subject, days, exts, Self::key_args(rsa))
    }

    /// [`Self::self_signed`] with `req_args` for the key (`-newkey …`, another curve) and any
    /// other `req` option (`-sha1`).
    pub(crate) fn self_signed_with(
        &self,
        name: &str,
        subject: &str,
        days: &str,
        exts: &[&str],
        req_args: &[&str],
    ) -> Made {
        let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
        let mut args = vec!["req", "-x509", "-nodes"];
        args.extend(req_args);
        args.extend([
            "-keyout", &key, "-out", &crt, "-subj", subject, "-days", days,
        ]);
        for ext in exts {
            args.extend(["-addext", ext]);
        }
        self.run(&args);
        Made {
            crt: self.path(&crt),
            key: self.path(&key),
        }
    }

    /// A root CA.
    pub(crate) fn root(&self, name: &str, subject: &str, rsa: bool) -> Made {
        let exts = [
            "basicConstraints=critical,CA:TRUE",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        ];
        self.self_signed(name, subject, "3650", &exts, rsa)
    }

    /// A certificate for `subject` issued by `issuer` with the extensions `ext` (extfile lines).
    pub(crate) fn issue(
        &self,
        name: &str,
        subject: &str,
        issuer: &Made,
        ext: &str,
        rsa: bool,
    ) -> Made {
        self.issue_with(name, subject, issuer, ext, Self::key_args(rsa), &[])
    }

    /// [`Self::issue`] with `req_args` for the key (`-newkey …`) and `sign_args` for
    /// `openssl x509 -req` (`-sha384`).
    pub(crate) fn issue_with(
        &self,
        name: &str,
        subject: &str,
        issuer: &Made,
        ext: &str,
        req_args: &[&str],
        sign_args: &[&str],
    ) -> Made {
        let (crt, key, csr, extfile) = (
            format!("{name}.crt"),
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.ext"),
        );
        std::fs::write(self.path(&extfile), ext).expect("extfile");
        let mut req = vec!["req", "-new", "-nodes"];
        req.extend(req_args);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", subject]);
        self.run(&req);
        self.sign(name, issuer, sign_args);
        Made {
            crt: self.path(&crt),
            key: self.path(&key),
        }
    }

    /// Signs `name.csr` with `issuer` into `name.crt` (extensions from `name.ext`), with
    /// `extra` arguments of `openssl x509 -req` (`-sha1`).
    pub(crate) fn sign(&self, name: &str, issuer: &Made, extra: &[&str]) {
        let (crt, csr, extfile) = (
            format!("{name}.crt"),
            format!("{name}.csr"),
            format!("{name}.ext"),
        );
        let (ca, ca_key) = (
            issuer.crt.display().to_string(),
            issuer.key.display().to_string(),
        );
        let serial = serial(&format!("{name}{}", extra.join("")));
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-set_serial",
            &serial,
            "-days",
            "365",
            "-out",
            &crt,
            "-extfile",
            &extfile,
        ];
        args.extend(extra);
        self.run(&args);
    }

    /// An issuing intermediate CA under `issuer`.
    fn intermediate(&self, name: &str, subject: &str, issuer: &Made) -> Made {
        self.issue(
            name,
            subject,
            issuer,
            "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
            false,
        )
    }

    /// A server leaf for the loopback names, with `extra` extfile lines (AIA).
    fn leaf(&self, name: &str, subject: &str, issuer: &Made, extra: &str, rsa: bool) -> Made {
        let ext = format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName={LEAF_SANS}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n{extra}"
        );
        self.issue(name, subject, issuer, &ext, rsa)
    }

    /// A self-signed server certificate that is not a CA.
    fn self_signed_leaf(&self, name: &str, subject: &str) -> Made {
        let san = format!("subjectAltName={LEAF_SANS}");
        let exts = [
            "basicConstraints=critical,CA:FALSE",
            "extendedKeyUsage=serverAuth",
            san.as_str(),
        ];
        self.self_signed(name, subject, "365", &exts, false)
    }
}

/// A distinct serial per certificate name, as `-set_serial` wants.
fn serial(name: &str) -> String {
    let sum: u64 = name.bytes().fold(1469598103934665603, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    });
    format!("0x{:x}", sum >> 1)
}

/// Serves `chain` (leaf first) with the leaf's key from the fake API server on 127.0.0.1.
pub(crate) async fn serve(chain: &[&Made]) -> ApiServerHandle {
    let certs: Vec<CertificateDer<'static>> = chain
        .iter()
        .flat_map(|m| {
            CertificateDer::pem_file_iter(&m.crt)
                .expect("certificate file")
                .map(|c| c.expect("certificate"))
                .collect::<Vec<_>>()
        })
        .collect();
    serve_der(certs, &chain[0].key).await
}

async fn serve_der(certs: Vec<CertificateDer<'static>>, key: &Path) -> ApiServerHandle {
    let key = PrivateKeyDer::from_pem_file(key).expect("key file");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    apiserver::start(
        localhost(),
        Transport::Tls(Arc::new(config)),
        ApiServerOptions::default(),
    )
    .await
    .expect("server")
}

/// The kubeconfig's CA for one run.
pub(crate) enum Ca<'a> {
    Right(&'a Made),
    None,
    Wrong(&'a Made),
}

async fn run(server: &ApiServerHandle, ca: Ca<'_>) -> Target {
    run_on(server.url(), "", ca).await
}

/// Like [`run`], with the cluster's `proxy-url` set to a CONNECT proxy started here.
async fn run_via_proxy(server: &ApiServerHandle, ca: Ca<'_>) -> Target {
    init();
    let proxy = proxy::start_proxy(localhost(), ProxyMode::Allow)
        .await
        .expect("proxy");
    let url = format!("https://api.k8s.test:{}", server.addr().port());
    let t = run_on(url, &format!("    proxy-url: \"{}\"\n", proxy.url()), ca).await;
    assert_has_status(&t, CheckId::ProxyTunnel, Status::Pass);
    t
}

pub(crate) async fn run_on(url: String, extra_cluster: &str, ca: Ca<'_>) -> Target {
    init();
    let world = World::new();
    let report = world
        .run(&kubeconfig_for(url, extra_cluster, ca), &[], &[])
        .await;
    report.targets.into_iter().next().expect("one target")
}

fn kubeconfig_for(url: String, extra_cluster: &str, ca: Ca<'_>) -> String {
    let pem = match ca {
        Ca::Right(m) | Ca::Wrong(m) => Some(m.pem()),
        Ca::None => None,
    };
    let mut ctx = Ctx::new("c", url, "", GOOD);
    ctx.ca_pem = pem.as_deref();
    ctx.extra_cluster = extra_cluster;
    kubeconfig(&[ctx], Some("c"))
}

/// `kubectl get --raw /version` on the same kubeconfig, when kubectl is on PATH (always under
/// `KUBE_REACH_REQUIRE_KUBECTL=1`): exit code and stderr. A fresh HOME and cache, no proxy
/// variables, a hard time limit.
async fn kubectl_says(server: &ApiServerHandle, ca: Ca<'_>) -> Option<(Option<i32>, String)> {
    kubectl_says_at(server.url(), "", ca).await
}

/// [`kubectl_says`] for the server at `url`, with `extra_cluster` lines in the kubeconfig's
/// cluster (`tls-server-name`).
pub(crate) async fn kubectl_says_at(
    url: String,
    extra_cluster: &str,
    ca: Ca<'_>,
) -> Option<(Option<i32>, String)> {
    let path = std::env::var("PATH").unwrap_or_default();
    let bin = crate::kubectl::kubectl_or_skip(&path, "kubectl comparison")?;
    let world = World::new();
    let config = world.write("kubeconfig", &kubeconfig_for(url, extra_cluster, ca));
    let home = world.path("home");
    let ran = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .env("PATH", path)
            .env("HOME", &home)
            .arg(format!("--kubeconfig={}", config.display()))
            .arg(format!("--cache-dir={}", home.join("cache").display()))
            .args(["--request-timeout=10s", "get", "--raw", "/version"]);
        let (code, _, stderr) = crate::child::run_bounded(cmd, Duration::from_secs(40));
        (code, stderr)
    })
    .await
    .expect("kubectl thread");
    Some(ran)
}

fn trust_of(t: &Target) -> &Check {
    t.checks
        .iter()
        .find(|c| c.id == CheckId::TlsTrust)
        .unwrap_or_else(|| panic!("no tls.trust: {:#?}", t.checks))
}

/// Root cause `tls.trust reason`, a fix containing every `fix_has` and none of `fix_lacks`,
/// evidence containing every `evidence_has`.
fn assert_trust(t: &Target, reason: Reason, fix_has: &[&str], evidence_has: &[&str]) {
    assert_root_cause(t, CheckId::TlsTrust, reason);
    let r = trust_of(t);
    let fix = r.fix.as_deref().unwrap_or_default();
    for want in fix_has {
        assert!(fix.contains(want), "fix lacks {want:?}: {fix}");
    }
    let evidence = r.evidence.join("\n");
    for want in evidence_has {
        assert!(
            evidence.contains(want),
            "evidence lacks {want:?}:\n{evidence}"
        );
    }
}

fn assert_passes(t: &Target) {
    assert_eq!(trust_of(t).status, Status::Pass, "{:#?}", t.checks);
    assert_eq!(t.verdict, Verdict::Pass, "{:#?}", t.checks);
}

/// Never "send the full chain" when the chain is not the problem.
const SEND_CHAIN: &str = "send the full chain";

fn assert_fix_lacks(t: &Target, words: &str) {
    let fix = trust_of(t).fix.as_deref().unwrap_or_default();
    assert!(!fix.contains(words), "fix says {words:?}: {fix}");
}

/// kubeadm: the `CN=kubernetes` root signs the API server's leaf directly; kube-apiserver
/// sends the leaf alone.
struct Kubeadm {
    ssl: Openssl,
    ca: Made,
    leaf: Made,
}

fn kubeadm() -> Kubeadm {
    let ssl = Openssl::new();
    let ca = ssl.root("ca", "/CN=kubernetes", true);
    let leaf = ssl.leaf("apiserver", "/CN=kube-apiserver", &ca, "", true);
    Kubeadm { ssl, ca, leaf }
}

/// An unrelated enterprise root: the "wrong CA" of a kubeconfig.
fn corp_root(ssl: &Openssl) -> Made {
    ssl.root("corp", "/DC=com/DC=corp/O=Corp Inc/CN=Corp Root CA", false)
}

#[tokio::test(flavor = "multi_thread")]
async fn kubeadm_with_its_ca_passes() {
    let w = kubeadm();
    let server = serve(&[&w.leaf]).await;
    assert_passes(&run(&server, Ca::Right(&w.ca)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn kubeadm_without_a_ca_is_unknown_authority_with_the_ca_fix() {
    let w = kubeadm();
    let server = serve(&[&w.leaf]).await;
    let t = run(&server, Ca::None).await;
    assert_trust(
        &t,
        Reason::UnknownAuthority,
        &[
            "certificate-authority-data",
            "/etc/kubernetes/pki/ca.crt",
            "KUBE_CA_PEM",
        ],
        &["CN=kubernetes", "a private CA", "system roots"],
    );
    assert_fix_lacks(&t, SEND_CHAIN);
}

#[tokio::test(flavor = "multi_thread")]
async fn kubeadm_with_an_unrelated_ca_is_ca_mismatch() {
    let w = kubeadm();
    let wrong = corp_root(&w.ssl);
    let server = serve(&[&w.leaf]).await;
    let t = run(&server, Ca::Wrong(&wrong)).await;
    assert_trust(
        &t,
        Reason::CaMismatch,
        &["certificate-authority-data", "/etc/kubernetes/pki/ca.crt"],
        &["CN=Corp Root CA", "kubeadm cluster CA"],
    );
    assert_fix_lacks(&t, SEND_CHAIN);
}

#[tokio::test(flavor = "multi_thread")]
async fn kubeadm_rebuilt_with_a_new_ca_of_the_same_name_is_ca_mismatch() {
    let old = kubeadm();
    let rebuilt = kubeadm();
    let server = serve(&[&rebuilt.leaf]).await;
    let t = run(&server, Ca::Wrong(&old.ca)).await;
    assert_trust(
        &t,
        Reason::CaMismatch,
        &["regenerated", "/etc/kubernetes/pki/ca.crt"],
        &[
            "both named CN=kubernetes",
            "authorityKeyIdentifier",
            "subjectKeyIdentifier",
        ],
    );
    assert_fix_lacks(&t, SEND_CHAIN);
    // The rebuilt cluster with its own new CA is fine.
    assert_passes(&run(&server, Ca::Right(&rebuilt.ca)).await);
}

/// k3s: a `k3s-server-ca@<unix time>` root; the serving chain is leaf + CA.
fn k3s(ssl: &Openssl, name: &str, stamp: &str) -> (Made, Made) {
    let ca = ssl.root(
        &format!("{name}-ca"),
        &format!("/CN=k3s-server-ca@{stamp}"),
        false,
    );
    let leaf = ssl.leaf(&format!("{name}-leaf"), "/O=k3s/CN=k3s", &ca, "", false);
    (ca, leaf)
}

#[tokio::test(flavor = "multi_thread")]
async fn k3s_against_right_none_and_wrong_ca() {
    let ssl = Openssl::new();
    let (ca, leaf) = k3s(&ssl, "k3s", "1735689600");
    let (other_ca, _) = k3s(&ssl, "other", "1767225600");
    let server = serve(&[&leaf, &ca]).await;
    assert_passes(&run(&server, Ca::Right(&ca)).await);

    let t = run(&server, Ca::None).await;
    assert_trust(
        &t,
        Reason::UnknownAuthority,
        &[
            "/var/lib/rancher/k3s/server/tls/server-ca.crt",
            "certificate-authority-data",
        ],
        &["complete chain up to the root CN=k3s-server-ca@1735689600"],
    );
    assert_fix_lacks(&t, SEND_CHAIN);

    let t = run(&server, Ca::Wrong(&other_ca)).await;
    assert_trust(
        &t,
        Reason::CaMismatch,
        &["certificate-authority-data"],
        &[
            "root CN=k3s-server-ca@1735689600",
            "configured CA (CN=k3s-server-ca@1767225600)",
        ],
    );
    assert_fix_lacks(&t, SEND_CHAIN);
}

/// An enterprise PKI: `Example Corp Root CA` signs `Example Corp Issuing CA 1`, which signs
/// the API server's leaf.
struct Enterprise {
    ssl: Openssl,
    root: Made,
    issuing: Made,
    leaf: Made,
}

fn enterprise() -> Enterprise {
    let ssl = Openssl::new();
    let root = ssl.root(
        "root",
        "/DC=com/DC=example/O=Example Corp/CN=Example Corp Root CA",
        false,
    );
    let issuing = ssl.intermediate(
        "issuing",
        "/DC=com/DC=example/O=Example Corp/CN=Example Corp Issuing CA 1",
        &root,
    );
    let leaf = ssl.leaf(
        "leaf",
        "/O=Example Corp/CN=api.k8s.test",
        &issuing,
        "",
        false,
    );
    Enterprise {
        ssl,
        root,
        issuing,
        leaf,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn enterprise_chain_sent_in_full_passes_with_the_root() {
    let w = enterprise();
    let server = serve(&[&w.leaf, &w.issuing]).await;
    assert_passes(&run(&server, Ca::Right(&w.root)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn enterprise_intermediate_not_sent_is_missing_intermediate() {
    let w = enterprise();
    let server = serve(&[&w.leaf]).await;
    let t = run(&server, Ca::Right(&w.root)).await;
    assert_trust(
        &t,
        Reason::MissingIntermediate,
        &[
            "Example Corp Issuing CA 1 to the server's certificate file, after the leaf",
            "full chain",
        ],
        &[
            "Example Corp Issuing CA 1 was not sent",
            "same organisation",
            "other reading: ca-mismatch",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn enterprise_without_a_ca_or_with_a_wrong_one() {
    let w = enterprise();
    let wrong = corp_root(&w.ssl);
    let server = serve(&[&w.leaf, &w.issuing]).await;
    let t = run(&server, Ca::None).await;
    assert_trust(
        &t,
        Reason::UnknownAuthority,
        &["Example Corp Root CA", "certificate-authority-data"],
        &["CN=Example Corp Issuing CA 1 was issued by", "a private CA"],
    );
    assert_fix_lacks(&t, SEND_CHAIN);

    let t = run(&server, Ca::Wrong(&wrong)).await;
    assert_trust(
        &t,
        Reason::CaMismatch,
        &["certificate-authority-data"],
        &["CN=Corp Root CA", "no tie to it"],
    );
    assert_fix_lacks(&t, SEND_CHAIN);
}

/// A public-CA-style leaf: AIA caIssuers names where its issuer is published. The URL points
/// at a listener here, which must never see a connection (AIA is never fetched).
#[tokio::test(flavor = "multi_thread")]
async fn public_ca_style_leaf_with_aia_is_missing_intermediate_and_aia_is_not_fetched() {
    let aia = TcpListener::bind("127.0.0.1:0").expect("AIA listener");
    aia.set_nonblocking(true).expect("nonblocking");
    let url = format!(
        "http://127.0.0.1:{}/public-tls-ca-1.crt",
        aia.local_addr().expect("addr").port()
    );
    let ssl = Openssl::new();
    let root = ssl.root(
        "public-root",
        "/C=US/O=Public Trust Services/CN=Public Trust Root R1",
        false,
    );
    let issuing = ssl.intermediate(
        "public-issuing",
        "/C=US/O=Public Trust Services/CN=Public Trust TLS CA 1",
        &root,
    );
    let leaf = ssl.leaf(
        "public-leaf",
        "/CN=api.k8s.test",
        &issuing,
        &format!("authorityInfoAccess=caIssuers;URI:{url}\n"),
        false,
    );
    let wrong = corp_root(&ssl);
    let server = serve(&[&leaf]).await;
    for ca in [Ca::None, Ca::Right(&root), Ca::Wrong(&wrong)] {
        let t = run(&server, ca).await;
        assert_trust(
            &t,
            Reason::MissingIntermediate,
            &[&url, "after the leaf", "full chain"],
            &[&url, "not fetched", "CN=Public Trust TLS CA 1"],
        );
    }
    assert!(
        aia.accept().is_err(),
        "the AIA URL was fetched: kube-reach must never follow it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn self_signed_leaf_against_right_none_and_wrong_ca() {
    let ssl = Openssl::new();
    let leaf = ssl.self_signed_leaf("self", "/CN=api.k8s.test");
    let wrong = corp_root(&ssl);
    let server = serve(&[&leaf]).await;
    assert_passes(&run(&server, Ca::Right(&leaf)).await);
    for ca in [Ca::None, Ca::Wrong(&wrong)] {
        let t = run(&server, ca).await;
        assert_trust(
            &t,
            Reason::SelfSigned,
            &["certificate-authority-data"],
            &["CN=api.k8s.test is its own issuer"],
        );
    }
}

/// A TLS-inspecting proxy's chain: its own CA signs a leaf minted for the API server's name.
fn inspection_chain(ssl: &Openssl, subject: &str) -> (Made, Made) {
    let ca = ssl.root("inspect-ca", subject, false);
    let leaf = ssl.leaf("inspect-leaf", "/CN=api.k8s.test", &ca, "", false);
    (ca, leaf)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unrelated_chain_through_a_proxy_is_intercepted_and_direct_is_ca_mismatch() {
    let w = kubeadm();
    let (inspect_ca, inspect_leaf) =
        inspection_chain(&w.ssl, "/O=Acme Corp/CN=Acme Web Security CA");
    let server = serve(&[&inspect_leaf, &inspect_ca]).await;
    let t = run_via_proxy(&server, Ca::Right(&w.ca)).await;
    assert_trust(
        &t,
        Reason::Intercepted,
        &["TLS inspection", "NO_PROXY"],
        &[
            "through the proxy http://127.0.0.1:",
            "CN=Acme Web Security CA",
            "other reading: ca-mismatch",
        ],
    );
    // Without the proxy the same chain is just another CA's.
    let t = run(&server, Ca::Right(&w.ca)).await;
    assert_trust(&t, Reason::CaMismatch, &[], &["CN=Acme Web Security CA"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rebuilt_cluster_through_a_proxy_stays_ca_mismatch() {
    let old = kubeadm();
    let rebuilt = kubeadm();
    let server = serve(&[&rebuilt.leaf]).await;
    let t = run_via_proxy(&server, Ca::Wrong(&old.ca)).await;
    assert_trust(
        &t,
        Reason::CaMismatch,
        &["regenerated"],
        &["both named CN=kubernetes", "passed TLS through"],
    );
    assert_passes(&run_via_proxy(&server, Ca::Right(&rebuilt.ca)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inspection_product_issuer_is_intercepted_without_a_proxy() {
    let w = kubeadm();
    let (zscaler_ca, zscaler_leaf) = inspection_chain(
        &w.ssl,
        "/O=Zscaler Inc./OU=Zscaler Inc./CN=Zscaler Intermediate Root CA (zscaler.net)",
    );
    let server = serve(&[&zscaler_leaf, &zscaler_ca]).await;
    for ca in [Ca::Right(&w.ca), Ca::None] {
        let t = run(&server, ca).await;
        assert_trust(
            &t,
            Reason::Intercepted,
            &["exempt the API server"],
            &["a Zscaler TLS-inspection CA"],
        );
        assert_fix_lacks(&t, SEND_CHAIN);
    }
}

/// The worlds are real to kubectl too: it accepts the right CA and says `x509: certificate
/// signed by unknown authority` for every case kube-reach tells apart.
#[tokio::test(flavor = "multi_thread")]
async fn real_kubectl_says_unknown_authority_where_kube_reach_tells_the_cases_apart() {
    let old = kubeadm();
    let w = kubeadm();
    let wrong = corp_root(&w.ssl);
    let e = enterprise();
    let kubeadm_server = serve(&[&w.leaf]).await;
    let enterprise_server = serve(&[&e.leaf]).await;
    let unknown = "x509: certificate signed by unknown authority";
    let cases = [
        ("kubeadm, right CA", &kubeadm_server, Ca::Right(&w.ca), None),
        ("kubeadm, no CA", &kubeadm_server, Ca::None, Some(unknown)),
        (
            "kubeadm, wrong CA",
            &kubeadm_server,
            Ca::Wrong(&wrong),
            Some(unknown),
        ),
        (
            "kubeadm, rebuilt",
            &kubeadm_server,
            Ca::Wrong(&old.ca),
            Some(unknown),
        ),
        (
            "enterprise, no intermediate",
            &enterprise_server,
            Ca::Right(&e.root),
            Some(unknown),
        ),
    ];
    for (case, server, ca, expected) in cases {
        // Without kubectl, kubectl_says has said the comparison is skipped.
        let Some((code, stderr)) = kubectl_says(server, ca).await else {
            return;
        };
        match expected {
            None => assert_eq!(code, Some(0), "{case}: kubectl failed: {stderr}"),
            Some(words) => {
                assert_ne!(code, Some(0), "{case}: kubectl succeeded");
                assert!(stderr.contains(words), "{case}: kubectl said: {stderr}");
            }
        }
    }
}

/// A certificate message over 64 KiB (the chain padded with 200 copies of its CA) is not
/// "plain HTTP on the TLS port".
#[tokio::test(flavor = "multi_thread")]
async fn tls_handshake_oversized_certificate_message() {
    let ssl = Openssl::new();
    let ca = ssl.root("big-ca", "/O=Big/CN=Big Chain CA", false);
    let leaf = ssl.leaf("big-leaf", "/CN=api.k8s.test", &ca, "", false);
    let ca_der = CertificateDer::from_pem_file(&ca.crt).expect("ca");
    let mut chain = vec![CertificateDer::from_pem_file(&leaf.crt).expect("leaf")];
    chain.extend(std::iter::repeat_n(ca_der, 200));
    assert!(chain.iter().map(|c| c.len()).sum::<usize>() > 65_536);
    let server = serve_der(chain, &leaf.key).await;
    let t = run(&server, Ca::Right(&ca)).await;
    assert_root_cause(&t, CheckId::TlsHandshake, Reason::OversizedCertificate);
    let handshake = t
        .checks
        .iter()
        .find(|c| c.id == CheckId::TlsHandshake)
        .expect("handshake");
    assert!(
        handshake
            .fix
            .as_deref()
            .unwrap_or_default()
            .contains("shorter chain"),
        "{handshake:?}"
    );
}

/// An issuing CA that expired in 2021 (dates set by `openssl ca`, as a CA that was never
/// renewed has them) under the configured root, and a current leaf under it. kubectl says
/// `certificate has expired or is not yet valid`; the old reading was `unknown-authority`
/// with "put the CA in the kubeconfig" although the kubeconfig has the right one.
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_intermediate_under_the_configured_ca_is_issuer_expired() {
    let Enterprise {
        ssl,
        root,
        issuing,
        leaf,
    } = enterprise();
    std::fs::create_dir(ssl.path("db")).expect("ca db");
    std::fs::write(ssl.path("db/index"), "").expect("ca index");
    std::fs::write(ssl.path("db/serial"), "01\n").expect("ca serial");
    std::fs::write(
        ssl.path("ca.cnf"),
        "[ca]\ndefault_ca=c\n[c]\ndatabase=db/index\nserial=db/serial\nnew_certs_dir=db\ndefault_md=sha256\npolicy=p\nunique_subject=no\n[p]\ndomainComponent=optional\norganizationName=optional\ncommonName=supplied\n",
    )
    .expect("ca config");
    let (ca, ca_key) = (
        root.crt.display().to_string(),
        root.key.display().to_string(),
    );
    // The same key and name, dates in the past: the leaf under it stays correctly signed.
    ssl.run(&[
        "ca",
        "-batch",
        "-notext",
        "-config",
        "ca.cnf",
        "-cert",
        &ca,
        "-keyfile",
        &ca_key,
        "-in",
        "issuing.csr",
        "-out",
        "issuing.crt",
        "-extfile",
        "issuing.ext",
        "-startdate",
        "20200101000000Z",
        "-enddate",
        "20210101000000Z",
    ]);
    let server = serve(&[&leaf, &issuing]).await;
    let t = run(&server, Ca::Right(&root)).await;
    assert_trust(
        &t,
        Reason::IssuerExpired,
        &["Renew the intermediate"],
        &["O=Example Corp, CN=Example Corp Issuing CA 1, which expired 2021-01-01"],
    );
    if let Some((code, stderr)) = kubectl_says(&server, Ca::Right(&root)).await {
        assert_ne!(code, Some(0), "kubectl connected: {stderr}");
        assert!(stderr.contains("expired"), "kubectl: {stderr}");
    }
}

/// An intermediate signed with SHA-1 by the configured root: webpki and Go's crypto/x509 both
/// refuse it. The old reading blamed a missing CA (`unknown-authority`) and printed the
/// verifier's algorithm list as decimal byte arrays.
#[tokio::test(flavor = "multi_thread")]
async fn a_sha1_signed_intermediate_under_the_configured_ca_is_weak_signature() {
    let ssl = Openssl::new();
    let root = ssl.root("root", "/CN=Example Root", true);
    let issuing = ssl.intermediate("issuing", "/CN=Example Issuing CA", &root);
    ssl.sign("issuing", &root, &["-sha1"]);
    let leaf = ssl.leaf("leaf", "/CN=api.k8s.test", &issuing, "", false);
    let server = serve(&[&leaf, &issuing]).await;
    let t = run(&server, Ca::Right(&root)).await;
    assert_trust(
        &t,
        Reason::WeakSignature,
        &["SHA-256"],
        &["CN=Example Issuing CA is signed with SHA-1"],
    );
    let evidence = trust_of(&t).evidence.join("\n");
    assert!(!evidence.contains("[6, 9, 42"), "byte arrays: {evidence}");
    if let Some((code, stderr)) = kubectl_says(&server, Ca::Right(&root)).await {
        assert_ne!(code, Some(0), "kubectl connected: {stderr}");
        assert!(stderr.contains("SHA1"), "kubectl: {stderr}");
    }
}

/// The kubeconfig's CA is the API server's own leaf (copied from `openssl s_client`), not its
/// CA. kubectl connects: Go's crypto/x509 trusts a certificate found among the roots as it
/// is. kube-reach used to call this `ca-mismatch` and fail a kubeconfig that works.
#[tokio::test(flavor = "multi_thread")]
async fn the_servers_own_leaf_as_the_configured_ca_passes_as_with_kubectl() {
    let w = kubeadm();
    let server = serve(&[&w.leaf]).await;
    assert_passes(&run(&server, Ca::Right(&w.leaf)).await);
    if let Some((code, stderr)) = kubectl_says(&server, Ca::Right(&w.leaf)).await {
        assert_eq!(code, Some(0), "kubectl: {stderr}");
    }
}

/// A CA with an ECDSA P-521 key, which ring cannot verify and Go's crypto/x509 can: kubectl
/// connects. Credentials never travel over an unverified chain, so the run stops at TLS, but
/// the reading says it is this tool's limit, not a wrong CA (it was `ca-mismatch`, telling the
/// user to replace a CA that is right).
#[tokio::test(flavor = "multi_thread")]
async fn a_p521_ca_is_unsupported_algorithm_not_a_wrong_ca() {
    let ssl = Openssl::new();
    let root = ssl.self_signed_with(
        "p521",
        "/CN=P-521 Root",
        "3650",
        &[
            "basicConstraints=critical,CA:TRUE",
            "keyUsage=critical,keyCertSign",
        ],
        P521,
    );
    let leaf = ssl.leaf("leaf", "/CN=api.k8s.test", &root, "", false);
    let server = serve(&[&leaf]).await;
    let t = run(&server, Ca::Right(&root)).await;
    assert_trust(
        &t,
        Reason::UnsupportedAlgorithm,
        &["kubectl get --raw /version"],
        &["P-521"],
    );
    assert_fix_lacks(&t, "Replace the kubeconfig");
}

/// The serving certificate's extendedKeyUsage allows clientAuth only (a client certificate
/// installed as the server's). kubectl says `incompatible key usage`; the reading was
/// `unknown-authority`, "put the CA in the kubeconfig", though the kubeconfig has it.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_only_serving_certificate_is_wrong_purpose() {
    let w = kubeadm();
    let ext = format!(
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\nsubjectAltName={LEAF_SANS}\n"
    );
    let leaf = w
        .ssl
        .issue("client", "/CN=kube-apiserver", &w.ca, &ext, true);
    let server = serve(&[&leaf]).await;
    let t = run(&server, Ca::Right(&w.ca)).await;
    assert_trust(
        &t,
        Reason::WrongPurpose,
        &["serverAuth"],
        &["without serverAuth"],
    );
    if let Some((code, stderr)) = kubectl_says(&server, Ca::Right(&w.ca)).await {
        assert_ne!(code, Some(0), "kubectl connected: {stderr}");
        assert!(stderr.contains("key usage"), "kubectl: {stderr}");
    }
}

/// A root whose name constraints permit only `.other.test`, configured as the CA, and a leaf
/// for `api.k8s.test` it issued. Name constraints are enforced by webpki and Go alike, so the
/// chain fails; but the CA is the right one. `sent` says whether the server sends the root too.
async fn name_constrained(send_root: bool) -> (Target, ApiServerHandle, Openssl, Made) {
    let ssl = Openssl::new();
    let exts = [
        "basicConstraints=critical,CA:TRUE",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        "nameConstraints=critical,permitted;DNS:.other.test",
    ];
    let root = ssl.self_signed("root", "/CN=Constrained Root", "3650", &exts, false);
    let leaf = ssl.leaf("leaf", "/CN=api.k8s.test", &root, "", false);
    let server = if send_root {
        serve(&[&leaf, &root]).await
    } else {
        serve(&[&leaf]).await
    };
    let t = run(&server, Ca::Right(&root)).await;
    (t, server, ssl, root)
}

/// The chain goes up to a root byte-identical to the configured one, and the verifier refuses
/// it for a name constraint: no CA mismatch (that was the reading: "replace the CA" with the
/// CA it already has). Nor, without the root sent, `unknown-authority`.
#[tokio::test(flavor = "multi_thread")]
async fn the_configured_root_refused_for_a_name_constraint_is_chain_rejected() {
    for send_root in [true, false] {
        let (t, server, _ssl, root) = name_constrained(send_root).await;
        assert_trust(
            &t,
            Reason::ChainRejected,
            &["name constraint"],
            &["CN=Constrained Root", "the verifier refused the chain"],
        );
        assert_fix_lacks(&t, "Replace the kubeconfig");
        if let Some((code, stderr)) = kubectl_says(&server, Ca::Right(&root)).await {
            assert_ne!(code, Some(0), "kubectl connected: {stderr}");
            assert!(
                stderr.contains("not authorized to sign"),
                "kubectl: {stderr}"
            );
        }
    }
}

/// The configured root signs itself with SHA-1 (nobody checks a root's self-signature), and
/// the real problem is a P-521 intermediate the verifier cannot check. The old reading blamed
/// the root's SHA-1 (`weak-signature`: "reissue the root"), which kubectl accepts.
#[tokio::test(flavor = "multi_thread")]
async fn a_sha1_self_signed_root_is_not_blamed_as_weak_signature() {
    let ssl = Openssl::new();
    let root = ssl.self_signed_with(
        "root",
        "/CN=SHA1 Root",
        "3650",
        &[
            "basicConstraints=critical,CA:TRUE",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        &["-sha1", "-newkey", "rsa:2048"],
    );
    let issuing = ssl.issue_with(
        "p521",
        "/CN=P-521 Issuing",
        &root,
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n",
        P521,
        &[],
    );
    let leaf = ssl.leaf("leaf", "/CN=api.k8s.test", &issuing, "", false);
    let server = serve(&[&leaf, &issuing]).await;
    let t = run(&server, Ca::Right(&root)).await;
    assert_trust(&t, Reason::UnsupportedAlgorithm, &[], &[]);
    let evidence = trust_of(&t).evidence.join("\n");
    assert!(!evidence.contains("SHA1 Root is signed"), "{evidence}");
}

/// Active Directory CAs are named by `DC=` components. The configured root is
/// `corp.example.com`'s; the leaf's issuer (not sent) belongs to `other.com`. Sharing `DC=com`
/// made them one organisation (`missing-intermediate`: "send the intermediate"); only the
/// whole path does, and this is another CA.
#[tokio::test(flavor = "multi_thread")]
async fn only_the_whole_dc_path_makes_one_organisation() {
    let ssl = Openssl::new();
    let root = ssl.root("root", "/DC=com/DC=example/DC=corp/CN=Corp Root", true);
    // Another domain that shares only `DC=com` with the configured root: another CA.
    let other_root = ssl.root("oroot", "/DC=com/DC=other/CN=Other Root", true);
    let other = ssl.intermediate("oissuing", "/DC=com/DC=other/CN=Other Issuing", &other_root);
    let other_leaf = ssl.leaf("oleaf", "/CN=api.k8s.test", &other, "", false);
    let server = serve(&[&other_leaf]).await;
    let t = run(&server, Ca::Right(&root)).await;
    assert_trust(&t, Reason::CaMismatch, &[], &[]);
    // The same whole path: one organisation, its intermediate not sent.
    let issuing = ssl.intermediate(
        "issuing",
        "/DC=com/DC=example/DC=corp/CN=Corp Issuing",
        &root,
    );
    let leaf = ssl.leaf("leaf", "/CN=api.k8s.test", &issuing, "", false);
    let server = serve(&[&leaf]).await;
    let t = run(&server, Ca::Right(&root)).await;
    assert_trust(
        &t,
        Reason::MissingIntermediate,
        &[],
        &["DC=corp.example.com"],
    );
}
