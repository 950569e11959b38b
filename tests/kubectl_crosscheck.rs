//! Cross-checks the project's fake kube-apiserver (`kube_reach::demo`) against the real kubectl:
//! if kubectl accepts the fake's answers and rejects its broken certificates with Go's own
//! errors, then the fake is a faithful stand-in for the tests and the demo.
//!
//! Runs only when `kubectl` is on PATH (the build machine has the Google Cloud SDK dispatcher,
//! which picks its bundled client by the server's minor version: the fake says 1.31). Without
//! kubectl the test prints that it was skipped and returns, that is the only early return; with
//! `KUBE_REACH_REQUIRE_KUBECTL=1` (set by `.ci/run`) it fails instead.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[path = "common/child.rs"]
mod child;
#[path = "common/kubeconfig.rs"]
mod common_kubeconfig;
#[path = "common/kubectl.rs"]
mod kubectl;

use child::run_bounded;
use common_kubeconfig::{Ctx, FORBIDDEN, GOOD, kubeconfig};
use kube_reach::demo::apiserver::{self, DEMO_GIT_VERSION};
use kube_reach::demo::proxy::start_proxy;
use kube_reach::demo::{
    ApiServerHandle, ApiServerOptions, ClientAuth, DEFAULT_SANS, Demo, DemoKind, Pki, ProxyMode,
    TlsClass, Transport,
};

/// Hard limit for one kubectl run (its own `--request-timeout` is 10 s).
const CHILD_TIMEOUT: Duration = Duration::from_secs(40);

/// Every test's start: kubectl's path with the crypto provider installed, or `None` after
/// saying that the test is skipped (a failure under `KUBE_REACH_REQUIRE_KUBECTL=1`).
fn kubectl_or_skip() -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let bin = kubectl::kubectl_or_skip(&path, "kubectl cross-check")?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    Some(bin)
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs kubectl with a fresh HOME and cache dir, no proxy variables, and a hard timeout.
fn run_kubectl(kubectl: &Path, home: &Path, kubeconfig: &Path, args: &[&str]) -> Outcome {
    let cache = home.join("cache");
    let mut cmd = Command::new(kubectl);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--cache-dir={}", cache.display()))
        .arg("--request-timeout=10s")
        .args(args);
    let (code, stdout, stderr) = run_bounded(cmd, CHILD_TIMEOUT);
    Outcome {
        code,
        stdout,
        stderr,
    }
}

/// kubectl in a blocking thread, so the in-process server keeps serving.
async fn kubectl(bin: &Path, kubeconfig: &Path, args: &[&str]) -> Outcome {
    let home = tempfile::tempdir().unwrap();
    let (bin, kubeconfig) = (bin.to_path_buf(), kubeconfig.to_path_buf());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let outcome = run_kubectl(&bin, home.path(), &kubeconfig, &args);
        eprintln!("$ kubectl {}\n{outcome:?}", args.join(" "));
        outcome
    })
    .await
    .unwrap()
}

/// A one-context kubeconfig. `tls_server_name` lets kubectl verify a name while dialling the IP
/// (no DNS lookup of test names).
fn write_kubeconfig(
    dir: &Path,
    name: &str,
    server: &str,
    ca_pem: &str,
    token: &str,
    tls_server_name: Option<&str>,
) -> PathBuf {
    let sni = tls_server_name
        .map(|n| format!("    tls-server-name: {n}\n"))
        .unwrap_or_default();
    let ctx = Ctx {
        extra_cluster: &sni,
        user_name: Some("ci"),
        ..Ctx::new("fake", server.to_string(), ca_pem, token)
    };
    let path = dir.join(name);
    std::fs::write(&path, kubeconfig(&[ctx], Some("fake"))).unwrap();
    path
}

/// Starts a TLS server for `class`; returns it with the CA PEM its kubeconfig should name.
async fn start_tls(pki: &Pki, class: TlsClass) -> (ApiServerHandle, String) {
    start_tls_with(pki, class, ApiServerOptions::default()).await
}

/// [`start_tls`] with the fake's `options`.
async fn start_tls_with(
    pki: &Pki,
    class: TlsClass,
    options: ApiServerOptions,
) -> (ApiServerHandle, String) {
    let identity = pki.server_identity(class, DEFAULT_SANS).unwrap();
    let config = identity.server_config(&ClientAuth::None).unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = apiserver::start(addr, Transport::Tls(config), options)
        .await
        .unwrap();
    (server, identity.kubeconfig_ca_pem)
}

fn json(outcome: &Outcome) -> serde_json::Value {
    serde_json::from_str(&outcome.stdout)
        .unwrap_or_else(|e| panic!("kubectl printed no JSON ({e}): {outcome:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_accepts_the_fake_api_server() {
    let Some(bin) = kubectl_or_skip() else {
        return;
    };
    let pki = Pki::generate().unwrap();
    let (server, _) = start_tls(&pki, TlsClass::Good).await;
    let dir = tempfile::tempdir().unwrap();
    let good = write_kubeconfig(
        dir.path(),
        "good",
        &server.url(),
        &pki.root_ca_pem(),
        GOOD,
        None,
    );
    let forbidden = write_kubeconfig(
        dir.path(),
        "forbidden",
        &server.url(),
        &pki.root_ca_pem(),
        FORBIDDEN,
        None,
    );
    let revoked = write_kubeconfig(
        dir.path(),
        "revoked",
        &server.url(),
        &pki.root_ca_pem(),
        "revoked-token",
        None,
    );

    let version = kubectl(&bin, &good, &["version", "-o", "json"]).await;
    assert_eq!(version.code, Some(0), "{version:?}");
    assert_eq!(
        json(&version)["serverVersion"]["gitVersion"],
        DEMO_GIT_VERSION
    );
    assert_eq!(json(&version)["serverVersion"]["minor"], "31");

    let whoami = kubectl(&bin, &good, &["auth", "whoami", "-o", "json"]).await;
    assert_eq!(whoami.code, Some(0), "{whoami:?}");
    assert_eq!(
        json(&whoami)["status"]["userInfo"]["username"],
        "system:serviceaccount:ci:deployer"
    );

    let can = kubectl(
        &bin,
        &good,
        &["auth", "can-i", "create", "deployments.apps", "-n", "prod"],
    )
    .await;
    assert_eq!((can.code, can.stdout.trim()), (Some(0), "yes"), "{can:?}");

    let cannot = kubectl(
        &bin,
        &forbidden,
        &["auth", "can-i", "create", "deployments.apps", "-n", "prod"],
    )
    .await;
    assert_eq!(
        (cannot.code, cannot.stdout.trim()),
        (Some(1), "no"),
        "{cannot:?}"
    );

    let list = kubectl(&bin, &good, &["get", "networkpolicies", "-A"]).await;
    assert_eq!(list.code, Some(0), "{list:?}");
    let denied = kubectl(&bin, &forbidden, &["get", "networkpolicies", "-n", "ci"]).await;
    assert_eq!(denied.code, Some(1), "{denied:?}");
    assert!(
        denied.stderr.contains(
            r#"Error from server (Forbidden): networkpolicies.networking.k8s.io is forbidden: User "system:serviceaccount:ci:nobody" cannot list resource "networkpolicies" in API group "networking.k8s.io" in the namespace "ci""#
        ),
        "{denied:?}"
    );

    let unauthorized = kubectl(&bin, &revoked, &["auth", "whoami"]).await;
    assert_eq!(unauthorized.code, Some(1), "{unauthorized:?}");
    assert!(
        unauthorized
            .stderr
            .contains("You must be logged in to the server (Unauthorized)"),
        "{unauthorized:?}"
    );

    let log = server.request_log();
    assert!(log.iter().any(|r| {
        r.path
            .starts_with("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
    }));
    assert!(
        log.iter().all(|r| r.http_version == "HTTP/2.0"),
        "kubectl negotiates h2 via ALPN"
    );
    assert!(
        !format!("{log:?}").contains(GOOD),
        "tokens are never recorded"
    );
}

/// Go's verifier must reject each broken certificate class with the error the research table
/// (test-harness.md §0) recorded for openssl-made certificates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_rejects_each_broken_certificate_class() {
    let Some(bin) = kubectl_or_skip() else {
        return;
    };
    let pki = Pki::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let unknown = "x509: certificate signed by unknown authority";
    let cases = [
        (
            TlsClass::Expired,
            "x509: certificate has expired or is not yet valid: current time",
        ),
        (TlsClass::NotYetValid, "is before 2099-01-01T00:00:00Z"),
        // Checked by name (tls-server-name), as in the research table; by IP it is the no-IP-SANs error.
        (
            TlsClass::WrongSan,
            "x509: certificate is valid for wrong.example, not api.k8s.test",
        ),
        (
            TlsClass::IpNotInSan,
            "x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs",
        ),
        (TlsClass::UnknownAuthority, unknown),
        (TlsClass::MissingIntermediate, unknown),
        (TlsClass::SelfSigned, unknown),
        (TlsClass::CaMismatch, unknown),
    ];
    for (class, expected) in cases {
        let (server, ca) = start_tls(&pki, class).await;
        let sni = (class == TlsClass::WrongSan).then_some("api.k8s.test");
        let config = write_kubeconfig(dir.path(), class.name(), &server.url(), &ca, GOOD, sni);
        let outcome = kubectl(&bin, &config, &["get", "--raw", "/version"]).await;
        assert_eq!(outcome.code, Some(1), "{class:?}: {outcome:?}");
        assert!(
            outcome.stderr.contains(expected),
            "{class:?}: expected {expected:?} in {outcome:?}"
        );
        assert_eq!(
            server.requests(),
            0,
            "{class:?}: no request may pass a failed verification"
        );
    }
}

/// The demo kubeconfig is valid for kubectl, and each context fails the way its name says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_reads_the_demo_kubeconfig() {
    let Some(bin) = kubectl_or_skip() else {
        return;
    };
    let demo = Demo::start(DemoKind::All).await.unwrap();
    let kubeconfig = demo.kubeconfig_path();
    let contexts = kubectl(&bin, kubeconfig, &["config", "get-contexts", "-o", "name"]).await;
    let names: Vec<&str> = contexts.stdout.lines().collect();
    assert_eq!(names.len(), 6, "{contexts:?}");
    assert!(names.contains(&"demo-rbac-denied"));
    let current = kubectl(&bin, kubeconfig, &["config", "current-context"]).await;
    assert_ne!(current.code, Some(0), "no current-context: {current:?}");

    let can = |context: &'static str| {
        let bin = bin.clone();
        async move {
            let args = [
                "--context",
                context,
                "auth",
                "can-i",
                "create",
                "deployments.apps",
            ];
            kubectl(&bin, kubeconfig, &args).await
        }
    };
    let healthy = can("demo-healthy").await;
    assert_eq!(
        (healthy.code, healthy.stdout.trim()),
        (Some(0), "yes"),
        "{healthy:?}"
    );
    let denied = can("demo-rbac-denied").await;
    assert_eq!(
        (denied.code, denied.stdout.trim()),
        (Some(1), "no"),
        "{denied:?}"
    );
    let bad = kubectl(
        &bin,
        kubeconfig,
        &["--context", "demo-bad-token", "auth", "whoami"],
    )
    .await;
    assert!(bad.stderr.contains("(Unauthorized)"), "{bad:?}");
    let expired = kubectl(
        &bin,
        kubeconfig,
        &["--context", "demo-expired-cert", "get", "--raw", "/version"],
    )
    .await;
    assert!(
        expired.stderr.contains("x509: certificate has expired"),
        "{expired:?}"
    );
    let missing = kubectl(
        &bin,
        kubeconfig,
        &[
            "--context",
            "demo-missing-intermediate",
            "get",
            "--raw",
            "/version",
        ],
    )
    .await;
    assert!(
        missing
            .stderr
            .contains("x509: certificate signed by unknown authority"),
        "{missing:?}"
    );
    let refused = kubectl(
        &bin,
        kubeconfig,
        &["--context", "demo-refused", "get", "--raw", "/version"],
    )
    .await;
    assert!(
        refused.stderr.contains("connection refused") || refused.stderr.contains("was refused"),
        "{refused:?}"
    );
}

/// kubectl through the demo proxy (kubeconfig `proxy-url`): the proxy sees `CONNECT
/// api.k8s.test:PORT` (kubectl never resolves the name; the proxy maps it to 127.0.0.1), and its
/// refusals reach kubectl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_goes_through_the_demo_proxy() {
    let Some(bin) = kubectl_or_skip() else {
        return;
    };
    let pki = Pki::generate().unwrap();
    let (server, ca) = start_tls(&pki, TlsClass::Good).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("https://api.k8s.test:{}", server.addr().port());
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let modes = [
        (ProxyMode::Allow, None),
        (ProxyMode::Forbidden, Some("Forbidden")),
        (
            ProxyMode::AuthRequired {
                user: "ci".into(),
                password: "s3cret".into(),
            },
            Some("Proxy Authentication Required"),
        ),
        (ProxyMode::BadGateway, Some("Bad Gateway")),
    ];
    for (mode, failure) in modes {
        let proxy = start_proxy(loopback, mode.clone()).await.unwrap();
        let path = write_kubeconfig(dir.path(), "proxied", &url, &ca, GOOD, None);
        let yaml = std::fs::read_to_string(&path).unwrap();
        let yaml = yaml.replace(
            "    certificate-authority-data:",
            &format!(
                "    proxy-url: {}\n    certificate-authority-data:",
                proxy.url()
            ),
        );
        std::fs::write(&path, yaml).unwrap();
        let outcome = kubectl(&bin, &path, &["get", "--raw", "/version"]).await;
        let connect = format!("CONNECT api.k8s.test:{} HTTP/1.1", server.addr().port());
        assert!(
            proxy.request_lines().contains(&connect),
            "{mode:?}: {:?}",
            proxy.request_lines()
        );
        match failure {
            None => {
                assert_eq!(outcome.code, Some(0), "{outcome:?}");
                assert!(outcome.stdout.contains(DEMO_GIT_VERSION));
            }
            Some(text) => {
                assert_eq!(outcome.code, Some(1), "{mode:?}: {outcome:?}");
                assert!(outcome.stderr.contains(text), "{mode:?}: {outcome:?}");
            }
        }
    }
}

/// The HTTP/1.1-only mode of the fake (h2 not offered, bodies a little after their heads) is
/// still a server kubectl accepts, and kubectl really speaks HTTP/1.1 to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_accepts_the_http1_only_fake() {
    let Some(bin) = kubectl_or_skip() else {
        return;
    };
    let pki = Pki::generate().unwrap();
    let options = ApiServerOptions {
        protocols: kube_reach::demo::Protocols::Http1Only,
        body_delay: Some(Duration::from_millis(20)),
        ..ApiServerOptions::default()
    };
    let (server, _) = start_tls_with(&pki, TlsClass::Good, options).await;
    let dir = tempfile::tempdir().unwrap();
    let good = write_kubeconfig(
        dir.path(),
        "good",
        &server.url(),
        &pki.root_ca_pem(),
        GOOD,
        None,
    );
    let whoami = kubectl(&bin, &good, &["auth", "whoami", "-o", "json"]).await;
    assert_eq!(whoami.code, Some(0), "{whoami:?}");
    assert_eq!(
        json(&whoami)["status"]["userInfo"]["username"],
        "system:serviceaccount:ci:deployer"
    );
    let can = kubectl(&bin, &good, &["auth", "can-i", "get", "pods", "-n", "ci"]).await;
    assert_eq!((can.code, can.stdout.trim()), (Some(0), "yes"), "{can:?}");
    let log = server.request_log();
    assert!(
        !log.is_empty() && log.iter().all(|r| r.http_version == "HTTP/1.1"),
        "{log:?}"
    );
}

/// The fake's emulation of an agent that may not impersonate (`rbac.can-i impersonation-denied`)
/// reads to the real kubectl as the error users report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_reports_the_fakes_impersonation_denial() {
    let Some(bin) = kubectl_or_skip() else {
        return;
    };
    let pki = Pki::generate().unwrap();
    let options = ApiServerOptions {
        impersonation_denied: Some((
            "gitlab:ci_job:42".into(),
            "system:serviceaccount:gitlab-agent:gitlab-agent".into(),
        )),
        ..ApiServerOptions::default()
    };
    let (server, ca_pem) = start_tls_with(&pki, TlsClass::Good, options).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = write_kubeconfig(dir.path(), "kc", &server.url(), &ca_pem, GOOD, None);
    let out = kubectl(&bin, &kc, &["auth", "can-i", "create", "deployments.apps"]).await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("cannot impersonate resource \"users\""),
        "{out:?}"
    );
}

/// The fake's impersonation filter reads to the real kubectl as kube-apiserver's:
/// `--as deployer --as-group ops` with a user that may impersonate is `deployer` in `ops` and
/// `system:authenticated`, with deployer's rights (which the base user lacks); a user that may
/// not impersonate gets the 403 users report. The fake saw kubectl's `Impersonate-*` headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_impersonates_through_the_fake() {
    let Some(bin) = kubectl_or_skip() else {
        return;
    };
    let pki = Pki::generate().unwrap();
    let options = ApiServerOptions {
        tokens: apiserver::impersonation_tokens(),
        ..ApiServerOptions::default()
    };
    let (server, ca_pem) = start_tls_with(&pki, TlsClass::Good, options).await;
    let dir = tempfile::tempdir().unwrap();
    let base = apiserver::IMPERSONATOR_TOKEN;
    let kc = write_kubeconfig(dir.path(), "base", &server.url(), &ca_pem, base, None);
    let good = write_kubeconfig(dir.path(), "good", &server.url(), &ca_pem, GOOD, None);
    let as_deployer = ["--as", "deployer", "--as-group", "ops"];

    let whoami = kubectl(
        &bin,
        &kc,
        &[&as_deployer[..], &["auth", "whoami", "-o", "json"]].concat(),
    )
    .await;
    assert_eq!(whoami.code, Some(0), "{whoami:?}");
    let info = &json(&whoami)["status"]["userInfo"];
    assert_eq!(info["username"], "deployer", "{whoami:?}");
    assert_eq!(
        info["groups"],
        serde_json::json!(["ops", "system:authenticated"]),
        "{whoami:?}"
    );

    let can_i = ["auth", "can-i", "create", "deployments.apps", "-n", "ci"];
    let as_it = kubectl(&bin, &kc, &[&as_deployer[..], &can_i[..]].concat()).await;
    assert_eq!(
        (as_it.code, as_it.stdout.trim()),
        (Some(0), "yes"),
        "{as_it:?}"
    );
    let itself = kubectl(&bin, &kc, &can_i).await;
    assert_eq!(itself.stdout.trim(), "no", "{itself:?}");

    // (kubectl's `auth whoami` words every 403 as "not enabled": can-i prints the server's.)
    let refused = kubectl(&bin, &good, &[&as_deployer[..], &can_i[..]].concat()).await;
    assert_ne!(refused.code, Some(0), "{refused:?}");
    assert!(
        refused.stderr.contains(
            "users \"deployer\" is forbidden: User \"system:serviceaccount:ci:deployer\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        ),
        "{refused:?}"
    );

    let log = server.request_log();
    assert!(
        log.iter().any(|r| r.path.contains("selfsubjectreviews")
            && r.user.as_deref() == Some("ci-base")
            && r.impersonated.as_deref() == Some("deployer")),
        "{log:#?}"
    );
}

/// The in-cluster fixtures (the runner pod, NetworkPolicies, `default/kubernetes` and its
/// EndpointSlices) as kubectl reads them with the pod's service-account token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_reads_the_in_cluster_fixtures() {
    let Some(bin) = kubectl_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let fixture = dir.path().join("in-cluster.json");
    std::fs::write(
        &fixture,
        serde_json::json!({
            "token": "sa-token", "namespace": "gitlab", "serviceAccount": "runner",
            "networkPolicies": [{"metadata": {"name": "default-deny-egress", "namespace": "gitlab"},
                                 "spec": {"podSelector": {}, "policyTypes": ["Egress"]}}],
            "pods": [{"metadata": {"name": "runner-pod", "namespace": "gitlab", "labels": {"app": "job"}},
                      "spec": {"nodeName": "node-1", "containers": [{"name": "build"}]}}],
            "services": [{"metadata": {"name": "kubernetes", "namespace": "default"},
                          "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]}}],
            "endpointSlices": [{"metadata": {"name": "kubernetes", "namespace": "default",
                                             "labels": {"kubernetes.io/service-name": "kubernetes"}},
                                "addressType": "IPv4", "endpoints": [{"addresses": ["172.18.0.2"]}],
                                "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}],
        })
        .to_string(),
    )
    .unwrap();
    let mut options = ApiServerOptions::default();
    kube_reach::demo::in_cluster::InClusterFixture::read(&fixture)
        .unwrap()
        .apply(&mut options);
    let pki = Pki::generate().unwrap();
    let (server, _) = start_tls_with(&pki, TlsClass::Good, options).await;
    let kubeconfig = write_kubeconfig(
        dir.path(),
        "pod",
        &server.url(),
        &pki.root_ca_pem(),
        "sa-token",
        None,
    );
    let pod = kubectl(
        &bin,
        &kubeconfig,
        &["get", "pod", "runner-pod", "-n", "gitlab", "-o", "json"],
    )
    .await;
    assert_eq!(pod.code, Some(0), "{pod:?}");
    assert_eq!(json(&pod)["spec"]["nodeName"], "node-1");
    assert_eq!(json(&pod)["metadata"]["labels"]["app"], "job");
    let policies = kubectl(
        &bin,
        &kubeconfig,
        &["get", "networkpolicies", "-n", "gitlab", "-o", "json"],
    )
    .await;
    assert_eq!(policies.code, Some(0), "{policies:?}");
    assert_eq!(
        json(&policies)["items"][0]["metadata"]["name"],
        "default-deny-egress"
    );
    let service = kubectl(
        &bin,
        &kubeconfig,
        &[
            "get",
            "service",
            "kubernetes",
            "-n",
            "default",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(service.code, Some(0), "{service:?}");
    assert_eq!(json(&service)["spec"]["clusterIP"], "10.96.0.1");
    let slices = kubectl(
        &bin,
        &kubeconfig,
        &[
            "get",
            "endpointslices",
            "-n",
            "default",
            "-l",
            "kubernetes.io/service-name=kubernetes",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(slices.code, Some(0), "{slices:?}");
    assert_eq!(
        json(&slices)["items"][0]["endpoints"][0]["addresses"][0],
        "172.18.0.2"
    );
    assert_eq!(json(&slices)["items"][0]["ports"][0]["port"], 6443);
    // RBAC as the fixture grants it: the pod in its own namespace only.
    let elsewhere = kubectl(
        &bin,
        &kubeconfig,
        &["get", "pod", "runner-pod", "-n", "prod", "-o", "json"],
    )
    .await;
    assert_eq!(elsewhere.code, Some(1), "{elsewhere:?}");
    assert!(elsewhere.stderr.contains("forbidden"), "{elsewhere:?}");
}

/// A base64-encoded kubeconfig: what real kubectl prints is what the catalogue's `why` for
/// `config.kubeconfig base64-encoded` quotes (it used to quote YAML errors kubectl never says).
#[tokio::test(flavor = "multi_thread")]
async fn real_kubectl_on_a_base64_kubeconfig_says_what_the_catalogue_quotes() {
    let Some(bin) = kubectl_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let yaml = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {}\n";
    let path = dir.path().join("kubeconfig.b64");
    std::fs::write(
        &path,
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, yaml),
    )
    .unwrap();
    let out = kubectl(&bin, &path, &["get", "--raw", "/version"]).await;
    assert_ne!(out.code, Some(0), "{out:?}");
    use kube_reach::catalogue::{CheckId, Reason, entry};
    let why = entry(CheckId::ConfigKubeconfig, Reason::Base64Encoded).why;
    for quoted in [
        "error loading config file",
        "couldn't get version/kind; json parse error",
    ] {
        assert!(
            out.stderr.contains(quoted),
            "kubectl no longer says {quoted:?}: {out:?}"
        );
        assert!(
            why.contains(quoted),
            "the catalogue does not quote {quoted:?}: {why}"
        );
    }
}
