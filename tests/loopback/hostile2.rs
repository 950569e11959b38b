//! A second hostile review of fleets: the run-wide answer memo (`AnswerMemo`) and the TLS
//! session resumption of a target's pool. Each test names the attack it makes.

use std::net::SocketAddr;
use std::time::Duration;

use kube_reach::catalogue::CheckId;
use kube_reach::demo::{
    ApiServerHandle, ApiServerOptions, Pki, ServerVersion, TlsClass, Transport, apiserver,
};
use kube_reach::model::Status;
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// A TCP relay (a load balancer): its first connection goes to `first`, every later one to
/// `rest`, `late` after it came in.
async fn switching_relay(first: SocketAddr, rest: SocketAddr, late: Duration) -> SocketAddr {
    let listener = TcpListener::bind(localhost()).await.expect("bind relay");
    let addr = listener.local_addr().expect("relay address");
    tokio::spawn(async move {
        let mut accepted = 0usize;
        while let Ok((mut inbound, _)) = listener.accept().await {
            let backend = if accepted == 0 { first } else { rest };
            accepted += 1;
            tokio::spawn(async move {
                if backend == rest {
                    tokio::time::sleep(late).await;
                }
                if let Ok(mut outbound) = TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    addr
}

async fn tls_server_asking_client_certs(
    pki: &Pki,
    class: TlsClass,
    git_version: &str,
) -> (ApiServerHandle, String) {
    let id = pki
        .server_identity(class, kube_reach::demo::DEFAULT_SANS)
        .expect("identity");
    let config = id
        .server_config(&pki.optional_client_auth())
        .expect("server config");
    let options = ApiServerOptions {
        version: ServerVersion {
            git_version: git_version.into(),
            ..ServerVersion::default()
        },
        ..ApiServerOptions::default()
    };
    let server = apiserver::start(localhost(), Transport::Tls(config), options)
        .await
        .expect("server");
    (server, id.kubeconfig_ca_pem.clone())
}

/// Whether this target's TLS did not verify (insecure-skip-tls-verify let it go on).
fn unverified(t: &Target) -> bool {
    result_of(t, CheckId::TlsTrust).status != Status::Pass
}

/// Attack: six contexts of one user (a client certificate) with one CA and
/// insecure-skip-tls-verify, behind a load balancer whose first backend has the good
/// certificate and whose others an attacker's. Six contexts, each in its own namespace (so each
/// asks reviews of its own and counts as a sharer): five share the verified connection; the
/// sixth opens its own (`MAX_SHARERS`), lands on the attacker, and probes anonymously. Both
/// connections have one link key: the memo must not hand the attacker's anonymous answers to
/// the verified targets, nor the verified, authenticated answers to the unverified one.
#[tokio::test(flavor = "multi_thread")]
async fn a_verified_and_an_unverified_connection_of_one_link_key_share_no_answer() {
    init();
    let pki = Pki::generate().expect("pki");
    let alice = pki
        .client_identity("alice", &["devs"])
        .expect("client cert");
    let (good, ca) =
        tls_server_asking_client_certs(&pki, TlsClass::Good, "v1.31.0-the-real-one").await;
    let (rogue, _) =
        tls_server_asking_client_certs(&pki, TlsClass::UnknownAuthority, "v1.31.0-the-rogue").await;
    let relay = switching_relay(good.addr(), rogue.addr(), Duration::ZERO).await;
    let url = format!("https://{relay}");
    let names = ["c0", "c1", "c2", "c3", "c4", "c5"];
    let contexts: Vec<Ctx> = (names.iter())
        .map(|name| Ctx {
            ca_pem: Some(&ca),
            client_cert: Some((&alice.cert_pem, alice.key_pem())),
            extra_cluster: "    insecure-skip-tls-verify: true\n",
            namespace: Some(name),
            ..Ctx::named(name, url.clone())
        })
        .collect();
    let report = World::new()
        .run(&kubeconfig(&contexts, None), &[], &[])
        .await;
    let (mut verified, mut not) = (0, 0);
    for name in names {
        let t = target(&report, name);
        let json = format!("{:?}", t.checks);
        if unverified(t) {
            not += 1;
            assert!(
                !json.contains("the-real-one"),
                "{name} went to the rogue backend but reports the real server's answers: {json}"
            );
            assert_ne!(
                result_of(t, CheckId::AuthWhoami).status,
                Status::Pass,
                "{json}"
            );
        } else {
            verified += 1;
            assert!(
                !json.contains("the-rogue"),
                "{name} verified the real server but reports the rogue's answers: {json}"
            );
            let whoami = result_of(t, CheckId::AuthWhoami);
            assert_eq!(whoami.status, Status::Pass, "{name}: {json}");
        }
    }
    assert_eq!((verified, not), (5, 1), "{:#?}", report.targets);
}

/// Attack: one more backend behind the balancer, with the good certificate, that sends no
/// response body within the timeout (a stuck backend). Five contexts of one user, each in its
/// own namespace (so each counts as a sharer), share the first connection, which lands on it; the sixth opens its own to the healthy backend. Its
/// identical requests must not be failed with the stuck connection's timeouts: a failure is
/// its connection's, not the question's.
#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_connections_timeouts_are_not_handed_to_a_target_on_a_healthy_one() {
    init();
    let pki = Pki::generate().expect("pki");
    let start = |body_delay| {
        let options = ApiServerOptions {
            body_delay,
            ..ApiServerOptions::default()
        };
        tls_server(&pki, TlsClass::Good, options)
    };
    let (stuck, ca) = start(Some(Duration::from_secs(8))).await;
    let (healthy, _) = start(None).await;
    // The healthy backend answers later: the stuck connection's requests are the first asked.
    let late = Duration::from_millis(300);
    let relay = switching_relay(stuck.addr(), healthy.addr(), late).await;
    let url = format!("https://{relay}");
    let names = ["c0", "c1", "c2", "c3", "c4", "c5"];
    let contexts: Vec<Ctx> = (names.iter())
        .map(|name| Ctx {
            namespace: Some(name),
            ..Ctx::new(name, url.clone(), &ca, GOOD)
        })
        .collect();
    let report = World::new()
        .run(&kubeconfig(&contexts, None), &[], &[])
        .await;
    assert!(
        healthy.requests() > 0,
        "nothing reached the healthy backend"
    );
    let passed: Vec<&str> = (names.iter().copied())
        .filter(|n| result_of(target(&report, n), CheckId::HttpVersion).status == Status::Pass)
        .collect();
    // One group of targets (five, or the sixth alone) is on each backend.
    assert!(
        [1, 5].contains(&passed.len()),
        "the targets on the healthy backend must pass on their own answers: {passed:?} {:#?}",
        report.targets
    );
    for name in passed {
        let t = target(&report, name);
        assert_eq!(
            result_of(t, CheckId::AuthWhoami).status,
            Status::Pass,
            "{t:#?}"
        );
    }
}

/// Attack: a balancer whose first backend is the API server itself (it asks for client
/// certificates) and whose others terminate TLS with a certificate of the same CA and never
/// ask for one. Six contexts of one client-certificate user, each in its own namespace (so
/// each counts as a sharer and the sixth opens a second connection): the connection that never sent the
/// certificate must not take the answers of the one that did (alice's identity and
/// permissions), nor give it its 401s: both verified, under one link key.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_that_never_sent_its_client_certificate_takes_no_authenticated_answer() {
    init();
    let pki = Pki::generate().expect("pki");
    let alice = pki
        .client_identity("alice", &["devs"])
        .expect("client cert");
    let start = |sans: &'static [&'static str], auth| {
        let id = pki.server_identity(TlsClass::Good, sans).expect("identity");
        let config = id.server_config(&auth).expect("server config");
        let options = ApiServerOptions {
            anonymous: kube_reach::demo::Anonymous::Disabled,
            ..ApiServerOptions::default()
        };
        async move {
            let server = apiserver::start(localhost(), Transport::Tls(config), options)
                .await
                .expect("server");
            (server, id.kubeconfig_ca_pem.clone())
        }
    };
    let (asks, ca) = start(kube_reach::demo::DEFAULT_SANS, pki.optional_client_auth()).await;
    let front_sans: &'static [&'static str] = &["127.0.0.1", "tls-front.test"];
    let (front, _) = start(front_sans, kube_reach::demo::ClientAuth::None).await;
    let relay = switching_relay(asks.addr(), front.addr(), Duration::ZERO).await;
    let url = format!("https://{relay}");
    let names = ["c0", "c1", "c2", "c3", "c4", "c5"];
    let contexts: Vec<Ctx> = (names.iter())
        .map(|name| Ctx {
            ca_pem: Some(&ca),
            client_cert: Some((&alice.cert_pem, alice.key_pem())),
            namespace: Some(name),
            ..Ctx::named(name, url.clone())
        })
        .collect();
    let report = World::new()
        .run(&kubeconfig(&contexts, None), &[], &[])
        .await;
    let mut fronted = 0;
    for name in names {
        let t = target(&report, name);
        let whoami = result_of(t, CheckId::AuthWhoami);
        if evidence_of(t, CheckId::TlsHostname).contains("tls-front.test") {
            fronted += 1;
            assert_ne!(
                whoami.status,
                Status::Pass,
                "{name} never sent its certificate, yet passed as alice: {whoami:#?}"
            );
        } else {
            assert_eq!(whoami.status, Status::Pass, "{name}: {whoami:#?}");
        }
    }
    assert!(
        [1, 5].contains(&fronted),
        "{fronted}: {:#?}",
        report.targets
    );
}

/// Attack: one context alone, whose `--require` lines ask the same question twice (once in
/// the context's namespace, once naming it). Both rows are this target's own answer: neither
/// may say another target's identical request answered it.
#[tokio::test(flavor = "multi_thread")]
async fn a_lone_targets_repeated_question_is_not_reported_as_another_targets_answer() {
    let extra = ["--require", "get pods", "--require", "get pods -n ci"];
    let (report, _server) =
        run_on_good_server(ApiServerOptions::default(), Some(GOOD), true, &extra).await;
    let t = target(&report, "c");
    let rbac: Vec<_> = (t.checks.iter())
        .filter(|c| c.id == CheckId::RbacCanI)
        .collect();
    assert_eq!(rbac.len(), 2, "{:#?}", t.checks);
    for c in &t.checks {
        assert!(
            !c.evidence.iter().any(|e| e.starts_with("answered once")),
            "a lone target's row says it borrowed an answer: {c:#?}"
        );
    }
}

/// Attack: the run's deadline strikes while one target makes an answer three contexts of one
/// user wait for (a backend with no body before the timeout). The run must end at its
/// deadline, each target stopped at its own `http.version` with reason `deadline`.
#[tokio::test(flavor = "multi_thread")]
async fn the_deadline_while_a_shared_answer_is_made_stops_every_waiter_in_time() {
    init();
    let pki = Pki::generate().expect("pki");
    let options = ApiServerOptions {
        body_delay: Some(Duration::from_secs(30)),
        ..ApiServerOptions::default()
    };
    let (server, ca) = tls_server(&pki, TlsClass::Good, options).await;
    let names = ["w0", "w1", "w2"];
    let contexts: Vec<Ctx> = (names.iter())
        .map(|name| Ctx::new(name, server.url(), &ca, GOOD))
        .collect();
    let started = std::time::Instant::now();
    let report = World::new()
        .run(
            &kubeconfig(&contexts, None),
            &["--timeout", "20", "--deadline", "2"],
            &[],
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    for name in names {
        let t = target(&report, name);
        let rc = t.root_cause.expect("root cause");
        assert_eq!(rc.check, CheckId::HttpVersion, "{name}: {:#?}", t.checks);
        assert_eq!(rc.reason, kube_reach::catalogue::Reason::Deadline, "{name}");
    }
}

/// Attack: an HTTP/1.1-only server whose certificate does not verify (a rogue CA), for three
/// contexts with tokens and insecure-skip-tls-verify, slow enough that a pool would grow. The
/// first connection did not verify: no pooled or resumed connection may follow it, and no
/// token may reach the server on any connection.
#[tokio::test(flavor = "multi_thread")]
async fn an_unverified_first_connection_grows_no_pool_and_sends_no_token() {
    init();
    let pki = Pki::generate().expect("pki");
    let options = ApiServerOptions {
        protocols: kube_reach::demo::Protocols::Http1Only,
        body_delay: Some(Duration::from_millis(20)),
        ..ApiServerOptions::default()
    };
    let (server, _) = tls_server(&pki, TlsClass::UnknownAuthority, options).await;
    let names = ["u0", "u1", "u2"];
    let contexts: Vec<Ctx> = (names.iter())
        .map(|name| Ctx {
            ca_pem: None,
            extra_cluster: "    insecure-skip-tls-verify: true\n",
            ..Ctx::new(name, server.url(), "", GOOD)
        })
        .collect();
    let report = World::new()
        .run(&kubeconfig(&contexts, None), &[], &[])
        .await;
    assert_eq!(report.targets.len(), 3);
    let log = server.request_log();
    assert!(!log.is_empty(), "nothing was asked");
    assert!(
        log.iter().all(|r| !r.bearer),
        "a token went over a connection that did not verify: {log:#?}"
    );
    // One connection for the three (one link key), none pooled.
    assert_eq!(server.connections(), 1, "{:?}", server.stats());
}
