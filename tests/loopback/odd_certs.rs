//! Server certificates and TLS servers in shapes we did not choose, made by the `openssl`
//! command-line tool: served by the fake API server over real TLS (a leaf with a CN and no
//! subjectAltName, which Go rejects; a wildcard SAN; a leaf with only an IP SAN reached by
//! name; a server URL with a trailing dot; an ECDSA P-384 chain), or by `openssl s_server`
//! itself (TLS 1.2 without ALPN; RSA key exchange only; TLS 1.1 only; an RSA-1024 leaf, which
//! rustls cannot even load). Each verdict is checked against what a platform engineer needs
//! to hear, and against the real kubectl where the world lets it run without name resolution
//! (`tls-server-name` over 127.0.0.1).

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::model::{Status, Verdict};

use crate::support::*;
use crate::trust::{Ca, Made, Openssl, kubectl_says_at, run_on, serve};

/// kubectl and kube-reach see the server at 127.0.0.1 and verify it as this name.
const SERVER_NAME: &str = "    tls-server-name: api.k8s.test\n";

/// A root and a leaf under it with the extfile lines `ext`, keys EC P-256 unless `rsa`.
fn world(ext: &str) -> (Openssl, Made, Made) {
    let ssl = Openssl::new();
    let root = ssl.root("root", "/O=Odd/CN=Odd Root CA", false);
    let leaf = ssl.issue("leaf", "/CN=api.k8s.test", &root, ext, false);
    (ssl, root, leaf)
}

fn server_auth(san: &str) -> String {
    format!(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n{san}"
    )
}

fn assert_healthy(t: &Target) {
    assert!(t.root_cause.is_none(), "root cause: {:#?}", t.checks);
    assert!(
        matches!(t.verdict, Verdict::Pass | Verdict::Warn),
        "{:#?}",
        t.checks
    );
    assert_has_status(t, CheckId::TlsTrust, Status::Pass);
    assert_has_status(t, CheckId::TlsHostname, Status::Pass);
}

/// A leaf whose name is only in its CN. Go's crypto/x509 (so kubectl) has ignored the CN
/// since Go 1.15 and says `certificate relies on legacy Common Name field`; the verdict is
/// the hostname check's `cn-only` (not "for another name"), whose evidence says there is no
/// subjectAltName and whose fix is to reissue the certificate with one.
#[tokio::test(flavor = "multi_thread")]
async fn a_leaf_with_only_a_common_name_is_cn_only() {
    let (_ssl, root, leaf) = world(&server_auth(""));
    let server = serve(&[&leaf]).await;
    let t = run_on(server.url(), SERVER_NAME, Ca::Right(&root)).await;
    assert_root_cause(&t, CheckId::TlsHostname, Reason::CnOnly);
    let evidence = evidence_of(&t, CheckId::TlsHostname);
    assert!(
        evidence.contains("no subjectAltName (CN api.k8s.test)"),
        "{evidence}"
    );
    let fix = result_of(&t, CheckId::TlsHostname)
        .fix
        .clone()
        .unwrap_or_default();
    assert!(fix.contains("subjectAltName"), "{fix}");
    if let Some((code, stderr)) = kubectl_says_at(server.url(), SERVER_NAME, Ca::Right(&root)).await
    {
        assert_ne!(code, Some(0), "kubectl connected: {stderr}");
        assert!(stderr.contains("legacy Common Name"), "kubectl: {stderr}");
    }
}

/// `*.k8s.test` covers `api.k8s.test`: healthy, as kubectl agrees.
#[tokio::test(flavor = "multi_thread")]
async fn a_wildcard_san_covering_the_name_is_healthy() {
    let (_ssl, root, leaf) = world(&server_auth("subjectAltName=DNS:*.k8s.test\n"));
    let server = serve(&[&leaf]).await;
    let t = run_on(server.url(), SERVER_NAME, Ca::Right(&root)).await;
    assert_healthy(&t);
    if let Some((code, stderr)) = kubectl_says_at(server.url(), SERVER_NAME, Ca::Right(&root)).await
    {
        assert_eq!(code, Some(0), "kubectl: {stderr}");
    }
}

/// A leaf with only `IP:127.0.0.1`: healthy at `https://127.0.0.1:…`, a hostname mismatch at
/// `https://api.k8s.test:…` whose evidence names the IP SAN it does have.
#[tokio::test(flavor = "multi_thread")]
async fn an_ip_only_leaf_passes_by_address_and_fails_by_name() {
    let (_ssl, root, leaf) = world(&server_auth("subjectAltName=IP:127.0.0.1\n"));
    let server = serve(&[&leaf]).await;
    assert_healthy(&run_on(server.url(), "", Ca::Right(&root)).await);
    let by_name = format!("https://api.k8s.test:{}", server.addr().port());
    let t = run_on(by_name, "", Ca::Right(&root)).await;
    assert_root_cause(&t, CheckId::TlsHostname, Reason::Mismatch);
    let evidence = evidence_of(&t, CheckId::TlsHostname);
    assert!(
        evidence.contains("127.0.0.1") && evidence.contains("api.k8s.test"),
        "{evidence}"
    );
    if let Some((code, stderr)) = kubectl_says_at(server.url(), SERVER_NAME, Ca::Right(&root)).await
    {
        assert_ne!(code, Some(0), "kubectl connected: {stderr}");
    }
}

/// `server: https://api.k8s.test.:PORT` (a fully qualified name, as some generators write
/// it): Go strips the dot for SNI and verification, so kubectl connects; this is healthy.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_name_with_a_trailing_dot_is_healthy() {
    let (_ssl, root, leaf) = world(&server_auth("subjectAltName=DNS:api.k8s.test\n"));
    let server = serve(&[&leaf]).await;
    let url = format!("https://api.k8s.test.:{}", server.addr().port());
    assert_healthy(&run_on(url, "", Ca::Right(&root)).await);
}

/// A CA and leaf on ECDSA P-384 (what some enterprise PKIs and cert-manager issuers use):
/// healthy, as with kubectl.
#[tokio::test(flavor = "multi_thread")]
async fn an_ecdsa_p384_chain_is_healthy() {
    let ssl = Openssl::new();
    let ec384 = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"];
    let root = ssl.self_signed_with(
        "r384",
        "/CN=P-384 Root",
        "3650",
        &[
            "basicConstraints=critical,CA:TRUE",
            "keyUsage=critical,keyCertSign",
        ],
        &ec384,
    );
    let leaf = ssl.issue_with(
        "l384",
        "/CN=api.k8s.test",
        &root,
        &server_auth("subjectAltName=DNS:api.k8s.test,IP:127.0.0.1\n"),
        &ec384,
        &["-sha384"],
    );
    let server = serve(&[&leaf]).await;
    assert_healthy(&run_on(server.url(), "", Ca::Right(&root)).await);
    if let Some((code, stderr)) = kubectl_says_at(server.url(), "", Ca::Right(&root)).await {
        assert_eq!(code, Some(0), "kubectl: {stderr}");
    }
}

/// `openssl s_server -WWW` on 127.0.0.1: an independently written TLS server with the
/// settings the tests choose, answering GET for the files in its directory (a `version` file
/// holding a Kubernetes /version body) with HTTP/1.0. Killed when dropped.
struct SServer {
    child: std::process::Child,
    port: u16,
}

impl SServer {
    /// Starts `openssl s_server` in `ssl`'s directory with `cert`, `key` and `extra` flags, and
    /// waits (at most 10 s) for its `ACCEPT 127.0.0.1:<port>` line.
    fn start(ssl: &Openssl, cert: &Made, key_of: &Made, extra: &[&str]) -> SServer {
        use std::io::BufRead as _;
        std::fs::write(
            ssl.path("version"),
            r#"{"major":"1","minor":"30","gitVersion":"v1.30.0","platform":"linux/amd64"}"#,
        )
        .expect("version file");
        let mut cmd = std::process::Command::new("timeout");
        cmd.args([
            "60",
            "openssl",
            "s_server",
            "-accept",
            "127.0.0.1:0",
            "-WWW",
        ])
        .arg("-cert")
        .arg(&cert.crt)
        .arg("-key")
        .arg(&key_of.key)
        .args(extra)
        .current_dir(ssl.path(""))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().expect("openssl s_server starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(port) = line.strip_prefix("ACCEPT 127.0.0.1:") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                }
            }
        });
        let port = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .ok()
            .flatten();
        let Some(port) = port else {
            let _ = child.kill();
            panic!("openssl s_server did not say where it listens");
        };
        SServer { child, port }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TLS 1.2-only server that offers no ALPN (old appliances, some load balancers): the
/// handshake passes as TLS 1.2 over HTTP/1.1, and /version is read over it.
#[tokio::test(flavor = "multi_thread")]
async fn a_tls12_only_server_without_alpn_is_read_over_http1() {
    let (ssl, root, leaf) = world(&server_auth(
        "subjectAltName=DNS:api.k8s.test,IP:127.0.0.1\n",
    ));
    let server = SServer::start(&ssl, &leaf, &leaf, &["-tls1_2"]);
    let t = run_on(server.url(), "", Ca::Right(&root)).await;
    let handshake = result_of(&t, CheckId::TlsHandshake);
    assert_eq!(handshake.status, Status::Pass, "{:#?}", t.checks);
    assert!(
        handshake.summary.contains("TLS 1.2") && !handshake.summary.contains("HTTP/2"),
        "{}",
        handshake.summary
    );
    assert_has_status(&t, CheckId::TlsTrust, Status::Pass);
    let version = result_of(&t, CheckId::HttpVersion);
    assert_eq!(version.status, Status::Pass, "{:#?}", t.checks);
}

/// An RSA leaf served by TLS 1.2 with RSA key exchange only (`AES128-SHA256`, no ECDHE), as
/// old appliances and hardened-by-checklist load balancers do. Neither rustls nor Go offers
/// such a suite, so kubectl fails too (`tls: handshake failure`); the verdict is the
/// handshake's `alert`, the server's handshake_failure in the evidence and "no cipher" in
/// the fix.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_with_rsa_key_exchange_only_is_a_handshake_alert() {
    let ssl = Openssl::new();
    let root = ssl.root("root", "/CN=Old Root", true);
    let leaf = ssl.issue(
        "old",
        "/CN=api.k8s.test",
        &root,
        &server_auth("subjectAltName=DNS:api.k8s.test,IP:127.0.0.1\n"),
        true,
    );
    let server = SServer::start(&ssl, &leaf, &leaf, &["-tls1_2", "-cipher", "AES128-SHA256"]);
    let t = run_on(server.url(), "", Ca::Right(&root)).await;
    assert_root_cause(&t, CheckId::TlsHandshake, Reason::Alert);
    let handshake = result_of(&t, CheckId::TlsHandshake);
    let fix = handshake.fix.clone().unwrap_or_default();
    assert!(fix.contains("cipher"), "{fix}");
    let evidence = handshake.evidence.join("\n").to_lowercase();
    assert!(
        evidence.contains("handshake") && evidence.contains("failure"),
        "{evidence}"
    );
    if let Some((code, stderr)) = kubectl_says_at(server.url(), "", Ca::Right(&root)).await {
        assert_ne!(code, Some(0), "kubectl connected: {stderr}");
    }
}

/// A server that speaks TLS 1.1 at most (OpenSSL at security level 0): below what rustls
/// and Go accept. The verdict is `no-common-version`, whose evidence says what was offered.
#[tokio::test(flavor = "multi_thread")]
async fn a_tls11_only_server_is_no_common_version() {
    let (ssl, root, leaf) = world(&server_auth(
        "subjectAltName=DNS:api.k8s.test,IP:127.0.0.1\n",
    ));
    let server = SServer::start(
        &ssl,
        &leaf,
        &leaf,
        &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
    );
    let t = run_on(server.url(), "", Ca::Right(&root)).await;
    assert_root_cause(&t, CheckId::TlsHandshake, Reason::NoCommonVersion);
    if let Some((code, stderr)) = kubectl_says_at(server.url(), "", Ca::Right(&root)).await {
        assert_ne!(code, Some(0), "kubectl connected: {stderr}");
    }
}

/// An RSA-1024 leaf under an RSA-2048 root (old appliances, hand-made lab clusters), served by
/// openssl at security level 0. Go accepts 1024-bit keys, so kubectl connects; rustls'
/// verifier refuses RSA keys under 2048 bits. Credentials never cross an unverified
/// handshake, so the run fails, but the verdict must not blame the CA or the name (both are
/// right): it must name the key size, so the owner knows to reissue with RSA-2048 or ECDSA.
#[tokio::test(flavor = "multi_thread")]
async fn an_rsa_1024_leaf_is_named_as_a_weak_key_not_a_wrong_ca() {
    let ssl = Openssl::new();
    let root = ssl.root("root", "/CN=Lab Root", true);
    std::fs::write(
        ssl.path("weak.ext"),
        server_auth("subjectAltName=DNS:api.k8s.test,IP:127.0.0.1\n"),
    )
    .expect("extfile");
    ssl.run(&[
        "req",
        "-new",
        "-nodes",
        "-newkey",
        "rsa:1024",
        "-keyout",
        "weak.key",
        "-out",
        "weak.csr",
        "-subj",
        "/CN=api.k8s.test",
    ]);
    ssl.sign("weak", &root, &[]);
    let leaf = Made {
        crt: ssl.path("weak.crt"),
        key: ssl.path("weak.key"),
    };
    let server = SServer::start(&ssl, &leaf, &leaf, &["-cipher", "DEFAULT:@SECLEVEL=0"]);
    let t = run_on(server.url(), "", Ca::Right(&root)).await;
    if let Some((code, stderr)) = kubectl_says_at(server.url(), "", Ca::Right(&root)).await {
        assert_eq!(code, Some(0), "kubectl: {stderr}");
    }
    let rc = t
        .root_cause
        .unwrap_or_else(|| panic!("no root cause: {:#?}", t.checks));
    assert!(
        !matches!(
            rc.reason,
            Reason::CaMismatch | Reason::UnknownAuthority | Reason::Mismatch
        ),
        "blames the CA or name for a 1024-bit key: {:#?}",
        t.checks
    );
    let said = evidence_of(&t, rc.check);
    assert!(said.contains("1024"), "key size not named:\n{said}");
}
