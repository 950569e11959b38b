//! A hostile review of fleets (issue 14): targets that share a lookup or a connection must
//! never lend each other credentials or verdicts, and a sharing that cannot finish must not
//! blame the wrong layer. Each test names the attack it makes.

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::demo::proxy::{self, ProxyMode};
use kube_reach::demo::rbac::deploy_rules;
use kube_reach::demo::{
    ApiServerHandle, ApiServerOptions, ClientAuth, Pki, TlsClass, Transport, User, apiserver,
};
use kube_reach::model::{Status, Verdict};

use crate::support::*;

/// A server with the good certificate that knows `tok-<name>` for each name.
async fn server(pki: &Pki, names: &[&str]) -> (ApiServerHandle, String) {
    let tokens = (names.iter())
        .map(|n| {
            let user = User::service_account("ci", n, &format!("uid-{n}"), deploy_rules());
            (format!("tok-{n}"), user)
        })
        .collect();
    let options = ApiServerOptions {
        tokens,
        ..ApiServerOptions::default()
    };
    let id = pki
        .server_identity(TlsClass::Good, kube_reach::demo::DEFAULT_SANS)
        .expect("identity");
    let config = id.server_config(&ClientAuth::None).expect("server config");
    let server = apiserver::start(localhost(), Transport::Tls(config), options)
        .await
        .expect("server");
    (server, id.kubeconfig_ca_pem.clone())
}

/// Whether any request reached `server` as `name`'s service account.
fn reached_as(server: &ApiServerHandle, name: &str) -> bool {
    let user = format!("system:serviceaccount:ci:{name}");
    (server.request_log().iter()).any(|r| r.user.as_deref() == Some(user.as_str()))
}

/// Attack: kubeconfig `proxy-url` is per cluster. Two clusters name one server through one
/// proxy, one with the proxy's password, one with a wrong one: the second must not ride the
/// first's authenticated tunnel (nor its token reach the server), and the right password is
/// printed nowhere.
#[tokio::test(flavor = "multi_thread")]
async fn a_clusters_proxy_password_is_not_lent_to_another_cluster_on_the_same_server() {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = server(&pki, &["right", "wrong"]).await;
    let mode = ProxyMode::AuthRequired {
        user: "ci".into(),
        password: "s3cret-proxy-pw".into(),
    };
    let proxy = proxy::start_proxy(localhost(), mode).await.expect("proxy");
    let url = format!("https://api.k8s.test:{}", server.addr().port());
    let right = format!(
        "    proxy-url: \"http://ci:s3cret-proxy-pw@{}\"\n",
        proxy.addr()
    );
    let wrong = format!("    proxy-url: \"http://ci:not-it@{}\"\n", proxy.addr());
    let kc = kubeconfig(
        &[
            Ctx {
                extra_cluster: &right,
                ..Ctx::new("right", url.clone(), &ca, "tok-right")
            },
            Ctx {
                extra_cluster: &wrong,
                ..Ctx::new("wrong", url.clone(), &ca, "tok-wrong")
            },
        ],
        None,
    );
    let outputs = World::new().run_outputs(&kc, &[], &[]).await;
    let report = Report::parse(&outputs.json);
    assert_eq!(target(&report, "right").verdict, Verdict::Pass);
    let wrong = target(&report, "wrong");
    let rc = wrong.root_cause.expect("root cause");
    assert_eq!(rc.check, CheckId::ProxyTunnel, "{:#?}", wrong.checks);
    assert!(
        !reached_as(&server, "wrong"),
        "the wrong password's token got through"
    );
    for output in [&outputs.json, &outputs.job_log, &outputs.junit] {
        assert!(
            !output.contains("s3cret-proxy-pw"),
            "the proxy password leaked"
        );
    }
}

/// Attack: one context skips verification (its token must never be sent), another on the same
/// server verifies with the CA: neither may take the other's connection.
#[tokio::test(flavor = "multi_thread")]
async fn an_insecure_context_and_a_verifying_one_on_one_server_share_no_connection() {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = server(&pki, &["careless", "careful"]).await;
    let url = server.url();
    let kc = kubeconfig(
        &[
            Ctx {
                ca_pem: None,
                extra_cluster: "    insecure-skip-tls-verify: true\n",
                ..Ctx::new("careless", url.clone(), "", "tok-careless")
            },
            Ctx::new("careful", url.clone(), &ca, "tok-careful"),
        ],
        None,
    );
    let report = World::new().run(&kc, &[], &[]).await;
    let careful = target(&report, "careful");
    assert_eq!(careful.verdict, Verdict::Pass, "{:#?}", careful.checks);
    assert!(reached_as(&server, "careful"));
    assert!(
        !reached_as(&server, "careless"),
        "a token went out over a connection its own settings did not verify"
    );
    let shared = (report.targets.iter())
        .flat_map(|t| t.checks.iter())
        .any(|c| c.evidence.iter().any(|e| e.contains("shared with target")));
    assert!(!shared, "{:#?}", report.targets);
}

/// Attack: the same server named in two cases. DNS is case-insensitive (kubectl resolves both
/// alike): one lookup may serve both, and each still verifies and authenticates itself.
#[tokio::test(flavor = "multi_thread")]
async fn names_differing_in_case_share_a_lookup_and_each_passes_on_its_own() {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = server(&pki, &["lower", "upper"]).await;
    let port = server.addr().port();
    let kc = kubeconfig(
        &[
            Ctx::new(
                "lower",
                format!("https://api.k8s.test:{port}"),
                &ca,
                "tok-lower",
            ),
            Ctx::new(
                "upper",
                format!("https://API.K8S.Test:{port}"),
                &ca,
                "tok-upper",
            ),
        ],
        None,
    );
    let report = World::new().run(&kc, &[], &[]).await;
    for name in ["lower", "upper"] {
        let t = target(&report, name);
        assert_eq!(t.verdict, Verdict::Pass, "{name}: {:#?}", t.checks);
        assert!(reached_as(&server, name), "{name}");
    }
    let shared_lookups = (report.targets.iter())
        .map(|t| evidence_of(t, CheckId::DnsResolve))
        .filter(|e| e.contains("one lookup"))
        .count();
    assert_eq!(shared_lookups, 1, "{:#?}", report.targets);
}

/// Attack: more contexts on one server than a run keeps. The run keeps [`MAX_TARGETS`], each
/// with its own token and every transport row, over a bounded number of handshakes.
#[tokio::test(flavor = "multi_thread")]
async fn more_contexts_than_a_run_keeps_on_one_server_each_report_every_row() {
    init();
    let pki = Pki::generate().expect("pki");
    let kept = kube_reach::plan::MAX_TARGETS;
    let names: Vec<String> = (0..kept + 20).map(|i| format!("c{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (server, ca) = server(&pki, &refs).await;
    let url = server.url();
    let tokens: Vec<String> = names.iter().map(|n| format!("tok-{n}")).collect();
    let contexts: Vec<Ctx> = (names.iter().zip(&tokens))
        .map(|(n, t)| Ctx::new(n, url.clone(), &ca, t))
        .collect();
    let report = World::new()
        .run(&kubeconfig(&contexts, None), &["--deadline", "120"], &[])
        .await;
    let diagnosed: Vec<_> = (report.targets.iter())
        .filter(|t| t.name.starts_with('c'))
        .collect();
    assert_eq!(diagnosed.len(), kept);
    for t in &diagnosed {
        assert_eq!(t.verdict, Verdict::Pass, "{}: {:#?}", t.name, t.checks);
        for id in [
            CheckId::TcpConnect,
            CheckId::TlsHandshake,
            CheckId::TlsTrust,
        ] {
            assert_has_status(t, id, Status::Pass);
        }
        assert!(reached_as(&server, &t.name), "{}", t.name);
    }
    let handshakes = server.stats().tls_handshakes as usize;
    let groups = kept.div_ceil(kube_reach::net::fleet::MAX_SHARERS);
    assert!(
        handshakes <= 2 * groups,
        "{handshakes} handshakes for {kept} targets"
    );
}

/// Attack: the run's deadline stops the target that opens a shared connection in its TLS
/// handshake. Every target waiting to join it must blame the handshake too: their TCP is the
/// opener's, which connected; blaming `tcp.connect` sends the user to the firewall.
#[tokio::test(flavor = "multi_thread")]
async fn the_deadline_during_a_shared_handshake_is_every_sharers_handshake() {
    init();
    let (task, addr) = silent_listener(16).await;
    let url = format!("https://{addr}");
    let kc = kubeconfig(
        &[
            Ctx::new("a", url.clone(), "", GOOD),
            Ctx::new("b", url.clone(), "", GOOD),
            Ctx::new("c", url, "", GOOD),
        ],
        None,
    );
    let report = World::new()
        .run(&kc, &["--timeout", "30", "--deadline", "1"], &[])
        .await;
    for name in ["a", "b", "c"] {
        let t = target(&report, name);
        let rc = t.root_cause.expect("root cause");
        assert_eq!(
            (rc.check, rc.reason),
            (CheckId::TlsHandshake, Reason::Deadline),
            "{name}: {:#?}",
            t.checks
        );
        assert_has_status(t, CheckId::TcpConnect, Status::Pass);
    }
    task.abort();
}

/// Attack: one context's token is expired (config.credentials withholds it), another on the
/// same server is fine: the expired one joins the fine one's connection, and its requests must
/// go without any token, neither its own nor the opener's.
#[tokio::test(flavor = "multi_thread")]
async fn withheld_credentials_stay_withheld_on_a_shared_connection() {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = server(&pki, &["fine"]).await;
    let expired = jwt_with_exp(1_600_000_000);
    let kc = kubeconfig(
        &[
            Ctx::new("fine", server.url(), &ca, "tok-fine"),
            Ctx::new("expired", server.url(), &ca, &expired),
        ],
        None,
    );
    let report = World::new().run(&kc, &[], &[]).await;
    assert_eq!(target(&report, "fine").verdict, Verdict::Pass);
    let t = target(&report, "expired");
    assert_root_cause(t, CheckId::ConfigCredentials, Reason::TokenExpired);
    let with_token = (server.request_log().iter()).filter(|r| r.bearer).count();
    let as_fine = (server.request_log().iter())
        .filter(|r| r.user.as_deref() == Some("system:serviceaccount:ci:fine"))
        .count();
    assert_eq!(with_token, as_fine, "{:?}", server.request_log());
    // One of the two opened the connection, the other joined it.
    let shared: usize = report.targets.iter().map(shared_transport_rows).sum();
    assert_eq!(shared, 2, "{:#?}", report.targets);
}

/// How many of `t`'s TCP and TLS rows say they were another target's.
fn shared_transport_rows(t: &Target) -> usize {
    (t.checks.iter())
        .filter(|c| [CheckId::TcpConnect, CheckId::TlsHandshake].contains(&c.id))
        .filter(|c| c.evidence.iter().any(|e| e.contains("shared with target")))
        .count()
}

/// Attack: credential plugins give each context its own token; the contexts share one
/// connection, and each token still speaks only for its own context.
#[tokio::test(flavor = "multi_thread")]
async fn exec_plugin_tokens_each_speak_for_their_own_context_on_a_shared_connection() {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = server(&pki, &["one", "two"]).await;
    let world = World::new();
    let stanzas: Vec<String> = ["one", "two"]
        .iter()
        .map(|name| {
            let script = world.write(
                &format!("plugin-{name}"),
                &format!(
                    "#!/bin/sh\necho '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\
                     \"kind\":\"ExecCredential\",\"status\":{{\"token\":\"tok-{name}\"}}}}'\n"
                ),
            );
            let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
            std::fs::set_permissions(&script, mode).expect("chmod");
            format!(
                "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      \
                 interactiveMode: Never\n      command: {}\n",
                script.display()
            )
        })
        .collect();
    let contexts: Vec<Ctx> = (["one", "two"].iter().zip(&stanzas))
        .map(|(name, exec)| Ctx {
            token: None,
            extra_user: exec,
            ..Ctx::new(name, server.url(), &ca, "")
        })
        .collect();
    let report = world.run(&kubeconfig(&contexts, None), &[], &[]).await;
    for name in ["one", "two"] {
        let t = target(&report, name);
        assert_eq!(t.verdict, Verdict::Pass, "{name}: {:#?}", t.checks);
        assert!(reached_as(&server, name), "{name}");
    }
    let shared: usize = report.targets.iter().map(shared_transport_rows).sum();
    assert_eq!(shared, 2, "{:#?}", report.targets);
}

/// A TLS server that completes every handshake and then never says a word.
async fn mute_tls_server(pki: &Pki) -> (tokio::task::JoinHandle<()>, std::net::SocketAddr, String) {
    let id = pki
        .server_identity(TlsClass::Good, kube_reach::demo::DEFAULT_SANS)
        .expect("identity");
    let acceptor =
        tokio_rustls::TlsAcceptor::from(id.server_config(&ClientAuth::None).expect("config"));
    let listener = tokio::net::TcpListener::bind(localhost())
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..64 {
            let Ok(Ok((stream, _))) =
                tokio::time::timeout(std::time::Duration::from_secs(30), listener.accept()).await
            else {
                break;
            };
            let acceptor = acceptor.clone();
            held.push(tokio::spawn(async move {
                let tls = acceptor.accept(stream).await;
                // Read nothing, answer nothing; hold the connection open for a while.
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                drop(tls);
            }));
        }
    });
    (task, addr, id.kubeconfig_ca_pem.clone())
}

/// Attack: a server that completes TLS and then never answers HTTP, for contexts sharing its
/// connection: each target's wait is bounded by its own timeout (no target is left to the
/// run's deadline), and every target reports every row with a finding of its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_mute_after_tls_leaves_every_sharer_a_bounded_finding_of_its_own() {
    init();
    let pki = Pki::generate().expect("pki");
    let (task, addr, ca) = mute_tls_server(&pki).await;
    let url = format!("https://{addr}");
    let names = ["m1", "m2", "m3"];
    let tokens: Vec<String> = names.iter().map(|n| format!("tok-{n}")).collect();
    let contexts: Vec<Ctx> = (names.iter().zip(&tokens))
        .map(|(n, t)| Ctx::new(n, url.clone(), &ca, t))
        .collect();
    let report = World::new()
        .run(
            &kubeconfig(&contexts, None),
            &["--timeout", "1", "--deadline", "60"],
            &[],
        )
        .await;
    for name in names {
        let t = target(&report, name);
        assert_has_status(t, CheckId::TlsHandshake, Status::Pass);
        let rc = t.root_cause.expect("root cause");
        assert_eq!(rc.check, CheckId::HttpVersion, "{name}: {:#?}", t.checks);
        assert_ne!(rc.reason, Reason::Deadline, "{name}: {:#?}", t.checks);
    }
    let shared: usize = report.targets.iter().map(shared_transport_rows).sum();
    assert_eq!(
        shared, 4,
        "two joined the first's connection: {:#?}",
        report.targets
    );
    task.abort();
}
