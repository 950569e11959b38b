//! Fleets (issue 14): contexts that name one server with the same route, TLS settings and
//! client identity share one lookup and one verified connection, each context's requests
//! carrying its own credentials and each report still holding every layer; contexts whose
//! TLS settings or identity differ share nothing, and never lend each other credentials.

use std::collections::BTreeMap;
use std::time::Duration;

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::demo::rbac::deploy_rules;
use kube_reach::demo::{
    ApiServerHandle, ApiServerOptions, ClientAuth, Pki, Protocols, TlsClass, Transport, User,
    apiserver,
};
use kube_reach::model::{Status, Verdict};

use crate::support::*;

/// The layers every target reports itself, shared or not.
const TRANSPORT_ROWS: [CheckId; 3] = [
    CheckId::DnsResolve,
    CheckId::TcpConnect,
    CheckId::TlsHandshake,
];

/// `tok-<name>` → `system:serviceaccount:ci:<name>` (may deploy) for each name, and `forbidden`
/// → `...:forbidden` with no rules.
fn tokens(names: &[&str]) -> Vec<(String, User)> {
    let mut tokens: Vec<_> = names
        .iter()
        .map(|n| {
            let user = User::service_account("ci", n, &format!("uid-{n}"), deploy_rules());
            (format!("tok-{n}"), user)
        })
        .collect();
    let nobody = User::service_account("ci", "forbidden", "uid-forbidden", Vec::new());
    tokens.push(("tok-forbidden".into(), nobody));
    tokens
}

async fn server(
    pki: &Pki,
    auth: &ClientAuth,
    options: ApiServerOptions,
) -> (ApiServerHandle, String) {
    let id = pki
        .server_identity(TlsClass::Good, kube_reach::demo::DEFAULT_SANS)
        .expect("identity");
    let config = id.server_config(auth).expect("server config");
    let server = apiserver::start(localhost(), Transport::Tls(config), options)
        .await
        .expect("server");
    (server, id.kubeconfig_ca_pem.clone())
}

/// Requests the server answered per authenticated user.
fn requests_per_user(server: &ApiServerHandle) -> BTreeMap<String, usize> {
    let mut per_user = BTreeMap::new();
    for r in server.request_log() {
        *per_user.entry(r.user.unwrap_or_default()).or_default() += 1;
    }
    per_user
}

fn whoami_names(t: &Target, user: &str) -> bool {
    let whoami = result_of(t, CheckId::AuthWhoami);
    whoami.status == Status::Pass && whoami.summary.contains(user)
}

/// How many of the targets' transport rows say they were shared.
fn shared_rows(report: &Report) -> usize {
    (report.targets.iter())
        .flat_map(|t| t.checks.iter())
        .filter(|c| TRANSPORT_ROWS.contains(&c.id))
        .filter(|c| {
            (c.evidence.iter())
                .any(|e| e.contains("shared with target") || e.contains("one lookup"))
        })
        .count()
}

fn three_contexts(url: &str, ca: &str) -> String {
    let ctx = |name| Ctx {
        token: None,
        ..Ctx::new(name, url.to_string(), ca, "")
    };
    let mut contexts = [ctx("a"), ctx("b"), ctx("c")];
    for (c, token) in contexts.iter_mut().zip(["tok-a", "tok-b", "tok-c"]) {
        c.token = Some(token);
    }
    kubeconfig(&contexts, None)
}

#[tokio::test(flavor = "multi_thread")]
async fn three_contexts_on_one_server_share_one_handshake_each_with_its_own_token() {
    init();
    let pki = Pki::generate().expect("pki");
    let options = ApiServerOptions {
        tokens: tokens(&["a", "b", "c"]),
        ..ApiServerOptions::default()
    };
    let (server, ca) = server(&pki, &ClientAuth::None, options).await;
    // By name (the world's hosts file): the lookup is shared too.
    let url = format!("https://api.k8s.test:{}", server.addr().port());
    let report = World::new().run(&three_contexts(&url, &ca), &[], &[]).await;

    let stats = server.stats();
    assert_eq!(
        (stats.connections, stats.tls_handshakes),
        (1, 1),
        "{stats:?}"
    );
    let per_user = requests_per_user(&server);
    for name in ["a", "b", "c"] {
        let t = target(&report, name);
        assert_eq!(t.verdict, Verdict::Pass, "{name}: {:#?}", t.checks);
        let user = format!("system:serviceaccount:ci:{name}");
        assert!(whoami_names(t, &user), "{name}: {:#?}", t.checks);
        // version, readyz, whoami and the 15 access reviews, each with this context's token.
        assert_eq!(per_user.get(&user), Some(&18), "{per_user:?}");
        for id in TRANSPORT_ROWS {
            assert_has_status(t, id, Status::Pass);
        }
    }
    // Two of the three used the first one's lookup and joined its connection (tcp and tls).
    assert_eq!(shared_rows(&report), 6, "{:#?}", report.targets);
}

/// Targets that ask the very same questions (one user, one namespace) are answered once and
/// add no stream to a connection, so any number share one; targets with questions of their
/// own share one connection per `MAX_SHARERS`, so that no server's stream limit makes them
/// queue in waves.
#[tokio::test(flavor = "multi_thread")]
async fn contexts_of_one_user_share_one_connection_and_users_one_per_five() {
    init();
    let pki = Pki::generate().expect("pki");
    let names: Vec<String> = (0..12).map(|n| format!("u{n}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let options = ApiServerOptions {
        tokens: tokens(&names),
        ..ApiServerOptions::default()
    };
    let (server, ca) = server(&pki, &ClientAuth::None, options).await;
    let url = format!("https://api.k8s.test:{}", server.addr().port());
    let tokens: Vec<String> = names.iter().map(|n| format!("tok-{n}")).collect();
    let contexts = |token_of: &dyn Fn(usize) -> usize| -> Vec<Ctx> {
        (names.iter().enumerate())
            .map(|(i, name)| Ctx::new(name, url.clone(), &ca, &tokens[token_of(i)]))
            .collect()
    };

    let one_user = World::new()
        .run(&kubeconfig(&contexts(&|_| 0), None), &[], &[])
        .await;
    assert_eq!(server.stats().tls_handshakes, 1, "{:?}", server.stats());
    for t in &one_user.targets {
        assert_eq!(t.verdict, Verdict::Pass, "{}: {:#?}", t.name, t.checks);
    }
    let per_user = requests_per_user(&server);
    assert_eq!(per_user.get("system:serviceaccount:ci:u0"), Some(&18));

    let twelve_users = World::new()
        .run(&kubeconfig(&contexts(&|i| i), None), &[], &[])
        .await;
    let handshakes = server.stats().tls_handshakes - 1;
    assert_eq!(handshakes, 3, "twelve users: {:?}", server.stats());
    for t in &twelve_users.targets {
        assert_eq!(t.verdict, Verdict::Pass, "{}: {:#?}", t.name, t.checks);
        let user = format!("system:serviceaccount:ci:{}", t.name);
        assert!(whoami_names(t, &user), "{}: {:#?}", t.name, t.checks);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn over_http1_the_shared_pool_carries_each_contexts_own_token() {
    init();
    let pki = Pki::generate().expect("pki");
    let options = ApiServerOptions {
        tokens: tokens(&["a", "b", "c"]),
        protocols: Protocols::Http1Only,
        body_delay: Some(Duration::from_millis(5)),
        ..ApiServerOptions::default()
    };
    let (server, ca) = server(&pki, &ClientAuth::None, options).await;
    let report = World::new()
        .run(&three_contexts(&server.url(), &ca), &[], &[])
        .await;
    let per_user = requests_per_user(&server);
    for name in ["a", "b", "c"] {
        let t = target(&report, name);
        assert_eq!(t.verdict, Verdict::Pass, "{name}: {:#?}", t.checks);
        let user = format!("system:serviceaccount:ci:{name}");
        assert!(whoami_names(t, &user), "{name}: {:#?}", t.checks);
        // Each of its 18 questions with its own token; at most once more, when the pipe's
        // pace (5 ms a body, one body at a time) sent a question to the pool too.
        let asked = per_user.get(&user).copied().unwrap_or(0);
        assert!((18..=36).contains(&asked), "{per_user:?}");
    }
    // The pipe and one pool, with one target's bound.
    let bound = kube_reach::net::http::H1_POOL_SIZE as u64;
    let connections = server.connections();
    assert!(
        (1..=bound).contains(&connections),
        "{connections} connections"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn contexts_whose_server_name_identity_or_ca_differ_share_nothing() {
    init();
    let pki = Pki::generate().expect("pki");
    let other = Pki::generate().expect("other pki");
    let alice = pki
        .client_identity("alice", &["devs"])
        .expect("client cert");
    let options = ApiServerOptions {
        tokens: tokens(&["plain", "named", "stranger"]),
        ..ApiServerOptions::default()
    };
    let (server, ca) = server(&pki, &pki.optional_client_auth(), options).await;
    let other_ca = unused_ca(&other);
    let url = server.url();
    let kc = kubeconfig(
        &[
            Ctx::new("plain", url.clone(), &ca, "tok-plain"),
            Ctx {
                extra_cluster: "    tls-server-name: localhost\n",
                ..Ctx::new("named", url.clone(), &ca, "tok-named")
            },
            Ctx {
                token: None,
                client_cert: Some((&alice.cert_pem, alice.key_pem())),
                ..Ctx::new("alice", url.clone(), &ca, "")
            },
            // Another CA: the server's certificate does not verify under it.
            Ctx::new("stranger", url.clone(), &other_ca, "tok-stranger"),
        ],
        None,
    );
    let report = World::new().run(&kc, &[], &[]).await;

    for (name, user) in [
        ("plain", "system:serviceaccount:ci:plain"),
        ("named", "system:serviceaccount:ci:named"),
        ("alice", "alice"),
    ] {
        let t = target(&report, name);
        assert_eq!(t.verdict, Verdict::Pass, "{name}: {:#?}", t.checks);
        assert!(whoami_names(t, user), "{name}: {:#?}", t.checks);
    }
    let stranger = target(&report, "stranger");
    assert_eq!(stranger.verdict, Verdict::Fail, "{:#?}", stranger.checks);
    let trust = result_of(stranger, CheckId::TlsTrust);
    assert!(trust.status.is_failure(), "{trust:#?}");
    // Nothing shared: one handshake per context (the stranger's completes, its chain is
    // judged after it), and no request on the stranger's: its token never reached the server.
    assert_eq!(shared_rows(&report), 0, "{:#?}", report.targets);
    let stats = server.stats();
    assert_eq!(
        (stats.tls_handshakes, stats.requests),
        (4, 3 * 18),
        "{stats:?}"
    );
    let per_user = requests_per_user(&server);
    assert!(
        !per_user.contains_key("system:serviceaccount:ci:stranger"),
        "{per_user:?}"
    );
    assert!(
        server
            .request_log()
            .iter()
            .filter(|r| r.client_cert)
            .all(|r| r.user.as_deref() == Some("alice")),
        "only alice's connection presents her certificate"
    );
}

/// The CA of `pki`, which the server's certificate does not verify under.
fn unused_ca(pki: &Pki) -> String {
    let id = pki
        .server_identity(TlsClass::Good, kube_reach::demo::DEFAULT_SANS)
        .expect("identity");
    id.kubeconfig_ca_pem.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shared_pool_whose_connections_close_mid_run_leaves_each_verdict_its_own() {
    init();
    let pki = Pki::generate().expect("pki");
    // Every access review's response closes its HTTP/1.1 connection, as a load balancer
    // draining connections does: the shared pool loses connections while all three targets
    // are still asking.
    let review = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let options = ApiServerOptions {
        tokens: tokens(&["a", "c"]),
        protocols: Protocols::Http1Only,
        extra_headers: vec![(review.into(), "connection".into(), "close".into())],
        ..ApiServerOptions::default()
    };
    let (server, ca) = server(&pki, &ClientAuth::None, options).await;
    let kc = kubeconfig(
        &[
            Ctx::new("a", server.url(), &ca, "tok-a"),
            Ctx::new("b", server.url(), &ca, "tok-forbidden"),
            Ctx::new("c", server.url(), &ca, "tok-c"),
        ],
        None,
    );
    let report = World::new().run(&kc, &[], &[]).await;
    for name in ["a", "c"] {
        let t = target(&report, name);
        assert_eq!(t.verdict, Verdict::Pass, "{name}: {:#?}", t.checks);
    }
    let b = target(&report, "b");
    assert!(
        whoami_names(b, "system:serviceaccount:ci:forbidden"),
        "{:#?}",
        b.checks
    );
    let denied = (b.checks.iter())
        .filter(|c| c.id == CheckId::RbacCanI && c.reason == Some(Reason::Denied))
        .count();
    assert_eq!(denied, 15, "{:#?}", b.checks);
    assert!(
        server.connections() > 1,
        "the closed connections were replaced"
    );
}

/// Contexts with one user, one namespace and one server (a fleet's commonest shape: a context
/// per environment, all with the deploy token) ask each question once between them; each still
/// reports every row, and those that took another's answer say so. A context with another
/// token asks every question itself, and its rows never borrow.
async fn one_user_asks_each_question_once(protocols: Protocols) {
    init();
    let pki = Pki::generate().expect("pki");
    let options = ApiServerOptions {
        tokens: tokens(&["a", "b"]),
        protocols,
        ..ApiServerOptions::default()
    };
    let (server, ca) = server(&pki, &ClientAuth::None, options).await;
    let url = server.url();
    let kc = kubeconfig(
        &[
            Ctx::new("one", url.clone(), &ca, "tok-a"),
            Ctx::new("two", url.clone(), &ca, "tok-a"),
            Ctx::new("three", url.clone(), &ca, "tok-a"),
            Ctx::new("other", url.clone(), &ca, "tok-b"),
        ],
        None,
    );
    let report = World::new().run(&kc, &[], &[]).await;

    let per_user = requests_per_user(&server);
    for user in ["a", "b"] {
        let user = format!("system:serviceaccount:ci:{user}");
        // version, readyz, whoami and the 15 access reviews, once per user.
        assert_eq!(per_user.get(&user), Some(&18), "{per_user:?}");
    }
    let same_user = ["one", "two", "three"].map(|name| target(&report, name));
    for t in same_user {
        assert_eq!(t.verdict, Verdict::Pass, "{}: {:#?}", t.name, t.checks);
        assert!(whoami_names(t, "system:serviceaccount:ci:a"), "{}", t.name);
    }
    // Each question was asked by one of the three and borrowed by the two others; which one
    // asked is a race between them (the opener and the joiners ask at once), question by
    // question.
    let borrowed = |id: CheckId| {
        (same_user.iter().flat_map(|t| t.checks.iter()))
            .filter(|c| c.id == id && c.evidence.iter().any(|e| e.starts_with("answered once")))
            .count()
    };
    assert_eq!(borrowed(CheckId::HttpVersion), 2, "{:#?}", report.targets);
    assert_eq!(borrowed(CheckId::AuthWhoami), 2, "{:#?}", report.targets);
    assert_eq!(borrowed(CheckId::RbacCanI), 2 * 15, "{:#?}", report.targets);
    let other = target(&report, "other");
    assert_eq!(other.verdict, Verdict::Pass, "{:#?}", other.checks);
    assert!(whoami_names(other, "system:serviceaccount:ci:b"));
    assert!(
        (other.checks.iter()).all(|c| !c.evidence.iter().any(|e| e.starts_with("answered once"))),
        "{:#?}",
        other.checks
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_user_asks_each_question_once_h2() {
    one_user_asks_each_question_once(Protocols::Both).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_user_asks_each_question_once_h1() {
    one_user_asks_each_question_once(Protocols::Http1Only).await;
}
