//! Credential plugins run for real: shell scripts in the kubeconfig's `exec:` stanza that
//! succeed, fail, prompt for a device login and hang, answer the wrong apiVersion, or return a
//! token the cluster does not map (`aws eks get-token`), run by the engine the way client-go
//! runs them, against the fake API server.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::demo::{ApiServerOptions, Pki, TlsClass};
use kube_reach::model::Status;

use crate::support::*;

const V1: &str = "client.authentication.k8s.io/v1";

fn plugin(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write plugin");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A script body printing an ExecCredential of `api_version` with `token`.
fn credential(api_version: &str, token: &str) -> String {
    format!(
        "echo '{{\"apiVersion\":\"{api_version}\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{token}\"}}}}'"
    )
}

/// A kubeconfig whose user runs `command`; `interactiveMode: IfAvailable` (what generated
/// kubeconfigs write, and what `v1` requires) unless `extra` says something of `interactiveMode`.
fn exec_kubeconfig(url: &str, ca: &str, command: &str, api_version: &str, extra: &str) -> String {
    let mode = if extra.contains("interactiveMode") {
        ""
    } else {
        "      interactiveMode: IfAvailable\n"
    };
    let exec = format!(
        "    exec:\n      apiVersion: {api_version}\n      command: {command}\n      args: [eks, get-token]\n{mode}{extra}"
    );
    let ctx = Ctx {
        ca_pem: Some(ca),
        extra_user: &exec,
        user_name: Some("u"),
        namespace: None,
        ..Ctx::named("c", url.to_string())
    };
    kubeconfig(&[ctx], Some("c"))
}

struct Case {
    world: World,
    /// Extra flags: `--timeout 2` only where the plugin is meant to hang (elsewhere 10 s, so a
    /// loaded machine never turns a slow start into a failure).
    flags: Vec<&'static str>,
    bin: tempfile::TempDir,
    url: String,
    ca: String,
    _server: kube_reach::demo::ApiServerHandle,
}

async fn case() -> Case {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = tls_server(&pki, TlsClass::Good, ApiServerOptions::default()).await;
    Case {
        world: World::new(),
        flags: vec!["--timeout", "10"],
        bin: tempfile::tempdir().expect("bin dir"),
        url: server.url(),
        ca,
        _server: server,
    }
}

impl Case {
    /// Runs the engine with the plugin; `--timeout 2` only where the plugin is meant to hang
    /// (elsewhere the default, so a loaded machine does not turn a slow start into a failure).
    async fn run(&self, command: &str, api_version: &str, extra: &str) -> (Target, String) {
        let kc = exec_kubeconfig(&self.url, &self.ca, command, api_version, extra);
        let path = self.bin.path().display().to_string();
        let report = self.world.run(&kc, &self.flags, &[("PATH", &path)]).await;
        let dump = format!("{report:?}");
        (target(&report, "c").clone(), dump)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_plugin_token_is_used_and_never_shown() {
    let c = case().await;
    // Fails unless run as client-go does: KUBERNETES_EXEC_INFO set, stdin closed.
    plugin(
        c.bin.path(),
        "aws",
        &format!(
            "case \"$KUBERNETES_EXEC_INFO\" in *'\"interactive\":false'*) ;; *) exit 9;; esac\nif read line; then exit 8; fi\n{}",
            credential(V1, GOOD)
        ),
    );
    let (t, dump) = c.run("aws", V1, "").await;
    assert!(t.root_cause.is_none(), "{:#?}", t.checks);
    let whoami = result_of(&t, CheckId::AuthWhoami);
    assert_eq!(whoami.status, Status::Pass, "{whoami:#?}");
    assert!(
        result_of(&t, CheckId::ConfigCredentials)
            .summary
            .contains("exec plugin aws returned a token")
    );
    assert!(
        !dump.contains(GOOD),
        "the plugin's token leaked into the report"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn config_credentials_exec_plugin_failed() {
    let c = case().await;
    plugin(
        c.bin.path(),
        "aws",
        "echo 'Unable to locate credentials. You can configure credentials by running \"aws configure\".' >&2\nexit 255",
    );
    let (t, _) = c.run("aws", V1, "").await;
    assert_root_cause(&t, CheckId::ConfigCredentials, Reason::ExecPluginFailed);
    let evidence = evidence_of(&t, CheckId::ConfigCredentials);
    assert!(evidence.contains("exit code 255"), "{evidence}");
    assert!(
        evidence.contains("stderr: Unable to locate credentials"),
        "{evidence}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn config_credentials_exec_plugin_interactive() {
    let mut c = case().await;
    c.flags = vec!["--timeout", "2"];
    plugin(
        c.bin.path(),
        "kubelogin",
        "echo 'To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD1234 to authenticate.' >&2\nexec /bin/sleep 30",
    );
    let (t, _) = c.run("kubelogin", V1, "").await;
    assert_root_cause(
        &t,
        CheckId::ConfigCredentials,
        Reason::ExecPluginInteractive,
    );
    assert!(evidence_of(&t, CheckId::ConfigCredentials).contains("devicelogin"));
    // interactiveMode: Always is refused before anything runs.
    plugin(c.bin.path(), "kubelogin", "exit 7");
    let (t, _) = c
        .run("kubelogin", V1, "      interactiveMode: Always\n")
        .await;
    assert_root_cause(
        &t,
        CheckId::ConfigCredentials,
        Reason::ExecPluginInteractive,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn config_credentials_exec_apiversion_mismatch_and_unsupported() {
    let c = case().await;
    plugin(
        c.bin.path(),
        "aws",
        &credential("client.authentication.k8s.io/v1beta1", GOOD),
    );
    let (t, _) = c.run("aws", V1, "").await;
    assert_root_cause(
        &t,
        CheckId::ConfigCredentials,
        Reason::ExecApiversionMismatch,
    );
    let (t, _) = c
        .run("aws", "client.authentication.k8s.io/v1alpha1", "")
        .await;
    assert_root_cause(
        &t,
        CheckId::ConfigCredentials,
        Reason::ExecApiversionUnsupported,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_whoami_unauthorized_cloud_identity_not_mapped() {
    let c = case().await;
    plugin(
        c.bin.path(),
        "aws",
        &credential(V1, "k8s-aws-v1.not-mapped"),
    );
    let (t, dump) = c.run("aws", V1, "").await;
    assert_root_cause(&t, CheckId::AuthWhoami, Reason::Unauthorized);
    let whoami = result_of(&t, CheckId::AuthWhoami);
    let fix = whoami.fix.clone().unwrap_or_default();
    assert!(
        fix.contains("aws-auth") && fix.contains("access entry"),
        "{fix}"
    );
    assert!(whoami.summary.contains("AWS IAM"), "{whoami:#?}");
    assert!(!dump.contains("k8s-aws-v1.not-mapped"), "token leaked");
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_plugin_client_certificate_is_used() {
    init();
    let pki = Pki::generate().expect("pki");
    let alice = pki
        .client_identity("alice", &["devs"])
        .expect("client cert");
    let id = pki
        .server_identity(TlsClass::Good, kube_reach::demo::DEFAULT_SANS)
        .expect("identity");
    let config = id
        .server_config(&pki.optional_client_auth())
        .expect("server config");
    let server = kube_reach::demo::apiserver::start(
        localhost(),
        kube_reach::demo::Transport::Tls(config),
        ApiServerOptions::default(),
    )
    .await
    .expect("server");
    let world = World::new();
    let bin = tempfile::tempdir().expect("bin dir");
    let credential = serde_json::json!({
        "apiVersion": V1, "kind": "ExecCredential",
        "status": {"clientCertificateData": alice.cert_pem, "clientKeyData": alice.key_pem()},
    });
    let file = world.write("credential.json", &credential.to_string());
    plugin(
        bin.path(),
        "cert-plugin",
        &format!("exec /bin/cat {}", file.display()),
    );
    let kc = exec_kubeconfig(&server.url(), &id.kubeconfig_ca_pem, "cert-plugin", V1, "");
    let path = bin.path().display().to_string();
    let report = world.run(&kc, &[], &[("PATH", &path)]).await;
    let t = target(&report, "c");
    let whoami = result_of(t, CheckId::AuthWhoami);
    assert_eq!(whoami.status, Status::Pass, "{:#?}", t.checks);
    assert!(whoami.summary.contains("alice"), "{whoami:#?}");
    let key_line = alice.key_pem().lines().nth(1).unwrap_or("MISSING");
    assert!(
        !format!("{report:?}").contains(key_line),
        "key material leaked"
    );
}

/// A plugin named by a relative path runs from the kubeconfig's folder, as kubectl runs it
/// (client-go resolves it there), wherever the job's working directory is. Before, it was
/// looked for in the working directory and called missing.
#[tokio::test(flavor = "multi_thread")]
async fn a_relative_plugin_path_is_found_beside_the_kubeconfig() {
    let c = case().await;
    let beside = c.world.dir.path().join("bin");
    std::fs::create_dir(&beside).expect("bin beside the kubeconfig");
    plugin(&beside, "get-token", &credential(V1, GOOD));
    assert!(
        !Path::new("./bin/get-token").exists(),
        "not in the working directory"
    );
    let (t, dump) = c.run("./bin/get-token", V1, "").await;
    assert!(t.root_cause.is_none(), "{:#?}", t.checks);
    assert!(
        result_of(&t, CheckId::ConfigCredentials)
            .summary
            .contains("returned a token")
    );
    assert!(!dump.contains(GOOD), "the plugin's token leaked");
}

/// A file of the plugin's name on PATH without the execute bit is no plugin to kubectl (Go's
/// `exec.LookPath` skips it): `exec-plugin-missing`, not a start that fails.
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_file_without_the_execute_bit_is_missing() {
    let c = case().await;
    std::fs::write(c.bin.path().join("aws"), credential(V1, GOOD)).expect("not executable");
    let (t, _) = c.run("aws", V1, "").await;
    assert_root_cause(&t, CheckId::ConfigCredentials, Reason::ExecPluginMissing);
}

/// client-go runs no plugin for a user that also has a token (or a certificate): kubectl
/// authenticates with the token. A plugin that would fail must neither run nor withhold it.
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_beside_a_static_token_is_not_run() {
    let c = case().await;
    let ran = c.bin.path().join("ran");
    plugin(
        c.bin.path(),
        "aws",
        &format!("touch {}\nexit 1", ran.display()),
    );
    let (t, dump) = c.run("aws", V1, &format!("    token: {GOOD}\n")).await;
    assert!(t.root_cause.is_none(), "{:#?}", t.checks);
    assert_eq!(result_of(&t, CheckId::AuthWhoami).status, Status::Pass);
    assert!(!ran.exists(), "the plugin ran");
    assert!(
        evidence_of(&t, CheckId::ConfigCredentials).contains("exec plugin 'aws' not run"),
        "{:#?}",
        t.checks
    );
    assert!(!dump.contains(GOOD), "the token leaked");
    // Nor is a plugin that is not installed a reason to withhold the token.
    let (t, _) = c
        .run("not-installed", V1, &format!("    token: {GOOD}\n"))
        .await;
    assert!(t.root_cause.is_none(), "{:#?}", t.checks);
}

// Hostile-user attacks on issue 12 item 2 (credential plugins): what a real CI plugin does.

/// A wrapper script traced with `set -x` (common in CI) prints the credential it echoes to
/// stderr as well, then fails: the failure's stderr evidence must not carry the token, which
/// is short and shapeless (no redaction pattern knows it). Before, it was quoted as printed.
#[tokio::test(flavor = "multi_thread")]
async fn a_traced_plugin_that_fails_keeps_its_printed_token_out_of_the_report() {
    const TRACED: &str = "tok-ci-42-x";
    let c = case().await;
    plugin(
        c.bin.path(),
        "aws",
        &format!("set -x\n{}\nexit 1", credential(V1, TRACED)),
    );
    let (t, dump) = c.run("aws", V1, "").await;
    assert_root_cause(&t, CheckId::ConfigCredentials, Reason::ExecPluginFailed);
    let evidence = evidence_of(&t, CheckId::ConfigCredentials);
    assert!(
        evidence.contains("stderr: + echo"),
        "the trace is evidence: {evidence}"
    );
    assert!(
        !dump.contains(TRACED),
        "the traced token leaked: {evidence}"
    );
}

/// Device-login prompts as RFC 8628 clients print them: the user code after `code:`, and the
/// `verification_uri_complete` that carries it as `user_code=`. Both are a person's login
/// to finish; the job log must not let a reader finish it. Before, the code after `code:` was
/// shown, and the URL-only prompt was not seen as interactive at all (a generic failure
/// quoting the URL with its code).
#[tokio::test(flavor = "multi_thread")]
async fn device_codes_after_a_colon_or_in_the_url_are_masked() {
    let mut c = case().await;
    c.flags = vec!["--timeout", "2"];
    let prompts = [
        (
            "QX7RT2KPM",
            "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code: QX7RT2KPM to authenticate.",
        ),
        (
            "WXYZ-9876",
            "Open https://login.example.test/device?user_code=WXYZ-9876 in a browser to continue.",
        ),
    ];
    for (code, prompt) in prompts {
        plugin(
            c.bin.path(),
            "kubelogin",
            &format!("echo '{prompt}' >&2\nexec /bin/sleep 30"),
        );
        let (t, dump) = c.run("kubelogin", V1, "").await;
        assert_root_cause(
            &t,
            CheckId::ConfigCredentials,
            Reason::ExecPluginInteractive,
        );
        let evidence = evidence_of(&t, CheckId::ConfigCredentials);
        assert!(
            !dump.contains(code),
            "the device code {code} leaked: {evidence}"
        );
    }
}

/// A healthy plugin as the field has them: `interactiveMode: IfAvailable`, a warning and 100 MB
/// of noise on stderr, a helper child in its group and a daemon in a session of its own that
/// both keep stdout open after it exits. kubectl uses its token; so must we: no finding, no
/// hang (the daemon's pipe is read until the timeout, then the answer is taken).
#[tokio::test(flavor = "multi_thread")]
async fn a_noisy_plugin_that_leaves_children_behind_is_healthy() {
    let c = case().await;
    plugin(
        c.bin.path(),
        "gke-gcloud-auth-plugin",
        &format!(
            "echo 'WARNING: the gcp auth plugin is deprecated in v1.22+, unavailable in v1.26+' >&2\nhead -c 100000000 /dev/zero >&2\n/bin/sleep 30 &\nsetsid /bin/sleep 5 &\n{}",
            credential(V1, GOOD)
        ),
    );
    let (t, dump) = c
        .run(
            "gke-gcloud-auth-plugin",
            V1,
            "      interactiveMode: IfAvailable\n",
        )
        .await;
    assert!(t.root_cause.is_none(), "{:#?}", t.checks);
    assert_eq!(result_of(&t, CheckId::AuthWhoami).status, Status::Pass);
    assert!(!dump.contains(GOOD), "the token leaked");
}

/// `provideClusterInfo: true`: client-go gives the plugin the cluster as the kubeconfig has
/// it, its CA included (`certificate-authority-data`, base64 as in the kubeconfig); plugins
/// such as Pinniped's read the CA from there. Before, only the server was given, so a plugin
/// that works under kubectl failed under us.
#[tokio::test(flavor = "multi_thread")]
async fn provide_cluster_info_gives_the_plugin_the_cluster_ca() {
    let c = case().await;
    let ca_base64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &c.ca);
    plugin(
        c.bin.path(),
        "pinniped",
        &format!(
            "case \"$KUBERNETES_EXEC_INFO\" in *'\"certificate-authority-data\":\"{ca_base64}\"'*) ;; *) echo \"no CA in KUBERNETES_EXEC_INFO\" >&2; exit 3;; esac\ncase \"$KUBERNETES_EXEC_INFO\" in *'\"server\":\"{}\"'*) ;; *) echo no server >&2; exit 4;; esac\n{}",
            c.url,
            credential(V1, GOOD)
        ),
    );
    let (t, _) = c
        .run("pinniped", V1, "      provideClusterInfo: true\n")
        .await;
    assert!(t.root_cause.is_none(), "{:#?}", t.checks);
    assert_eq!(result_of(&t, CheckId::AuthWhoami).status, Status::Pass);
}

/// A plugin that fails quoting the cloud credential the job gave it (Entra ID's
/// `AADSTS7000215: Invalid client secret provided`): the job's `AZURE_CLIENT_SECRET` is short
/// and broken by `~` into words no shape-based redaction knows. Before, it was quoted.
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_quoting_the_jobs_cloud_secret_does_not_leak_it() {
    const CLIENT_SECRET: &str = "q8Q~sh0rt.Secret";
    let c = case().await;
    plugin(
        c.bin.path(),
        "kubelogin",
        "echo \"AADSTS7000215: Invalid client secret provided: $AZURE_CLIENT_SECRET\" >&2\nexit 1",
    );
    let kc = exec_kubeconfig(&c.url, &c.ca, "kubelogin", V1, "");
    let path = c.bin.path().display().to_string();
    let report = c
        .world
        .run(
            &kc,
            &c.flags,
            &[("PATH", &path), ("AZURE_CLIENT_SECRET", CLIENT_SECRET)],
        )
        .await;
    let t = target(&report, "c");
    assert_root_cause(t, CheckId::ConfigCredentials, Reason::ExecPluginFailed);
    let evidence = evidence_of(t, CheckId::ConfigCredentials);
    assert!(evidence.contains("AADSTS7000215"), "{evidence}");
    assert!(
        !format!("{report:?}").contains(CLIENT_SECRET),
        "the job's client secret leaked: {evidence}"
    );
}

/// `client.authentication.k8s.io/v1` without `interactiveMode`: kubectl refuses the kubeconfig
/// (`interactiveMode must be specified for u to use exec authentication plugin`, checked with
/// the real kubectl) before running a plugin that would have worked. Before, kube-reach ran it
/// and called the target healthy.
#[tokio::test(flavor = "multi_thread")]
async fn config_credentials_exec_interactive_mode_missing() {
    let c = case().await;
    let ran = c.bin.path().join("ran");
    plugin(
        c.bin.path(),
        "aws",
        &format!("touch {}\n{}", ran.display(), credential(V1, GOOD)),
    );
    let (t, _) = c.run("aws", V1, "      # no interactiveMode\n").await;
    assert_root_cause(
        &t,
        CheckId::ConfigCredentials,
        Reason::ExecInteractiveModeMissing,
    );
    assert!(!ran.exists(), "kubectl runs no plugin it refuses");
    let fix = result_of(&t, CheckId::ConfigCredentials)
        .fix
        .clone()
        .unwrap_or_default();
    assert!(fix.contains("interactiveMode: Never"), "{fix}");
    // v1beta1 defaults to IfAvailable: the same stanza is healthy.
    let beta = "client.authentication.k8s.io/v1beta1";
    plugin(c.bin.path(), "aws", &credential(beta, GOOD));
    let (t, _) = c.run("aws", beta, "      # no interactiveMode\n").await;
    assert!(t.root_cause.is_none(), "{:#?}", t.checks);
}

/// `provideClusterInfo` with a CA bundle of 300 certificates (a corporate bundle): the
/// `KUBERNETES_EXEC_INFO` that carries it is over Linux's 128 KiB limit for one variable, so
/// the plugin cannot be started, by kubectl either. A clear failure naming the variable and
/// its size, no panic, no hang.
#[tokio::test(flavor = "multi_thread")]
async fn an_exec_info_over_the_kernels_limit_is_named() {
    let c = case().await;
    plugin(c.bin.path(), "pinniped", &credential(V1, GOOD));
    let bundle = c.ca.repeat(300);
    let kc = exec_kubeconfig(
        &c.url,
        &bundle,
        "pinniped",
        V1,
        "      provideClusterInfo: true\n",
    );
    let path = c.bin.path().display().to_string();
    let report = c.world.run(&kc, &c.flags, &[("PATH", &path)]).await;
    let t = target(&report, "c");
    assert_root_cause(t, CheckId::ConfigCredentials, Reason::ExecPluginFailed);
    let evidence = evidence_of(t, CheckId::ConfigCredentials);
    assert!(
        evidence.contains("KUBERNETES_EXEC_INFO is") && evidence.contains("131072"),
        "{evidence}"
    );
}
