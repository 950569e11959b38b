//! The HTTP-reaching worlds under both protocols: the fake API server speaking HTTP/2 (ALPN
//! `h2`, `http/1.1`) and HTTP/1.1 only (no `h2` offered), as many load balancers and auth
//! proxies do. `both_protocols!` makes one test per protocol, named `<name>_h2` / `<name>_h1`.
//! Also the transport's safety rules: every pooled HTTP/1.1 connection verified like the
//! first, and no client certificate for a server whose certificate did not verify.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::demo::{
    ApiServerOptions, Pki, Protocols, ProxyMode, TlsClass, Transport, apiserver, proxy,
};
use kube_reach::model::{Status, Verdict};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// `both_protocols!(name, |protocols| async { … })`: the body runs once per protocol.
macro_rules! both_protocols {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread")]
            async fn h2() {
                ($body)(Protocols::Both).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn h1() {
                ($body)(Protocols::Http1Only).await
            }
        }
    };
}

/// The fake for `protocols`. Over HTTP/1.1 its bodies come a few milliseconds after their heads,
/// as behind a load balancer: a client that reuses a connection before the body ends breaks.
fn options(protocols: Protocols) -> ApiServerOptions {
    ApiServerOptions {
        protocols,
        body_delay: (protocols == Protocols::Http1Only).then_some(Duration::from_millis(5)),
        ..ApiServerOptions::default()
    }
}

/// The HTTP version the server logs for `protocols`.
fn wire_version(protocols: Protocols) -> &'static str {
    match protocols {
        Protocols::Both => "HTTP/2.0",
        Protocols::Http1Only => "HTTP/1.1",
    }
}

async fn healthy_run(options: ApiServerOptions, extra: &[&str]) -> (Report, ServerSaw) {
    let (report, server) = run_on_good_server(options, Some(GOOD), true, extra).await;
    let log = ServerSaw {
        versions: server
            .request_log()
            .iter()
            .map(|r| r.http_version.clone())
            .collect(),
        all_bearer: server.request_log().iter().all(|r| r.bearer),
        connections: server.connections(),
    };
    (report, log)
}

/// What the server saw of a run.
struct ServerSaw {
    versions: Vec<String>,
    all_bearer: bool,
    connections: u64,
}

fn assert_healthy(t: &Target) {
    assert_eq!(t.verdict, Verdict::Pass, "{:#?}", t.checks);
    assert!(
        t.checks.iter().any(|c| c.id == CheckId::AuthWhoami
            && c.status == Status::Pass
            && c.summary.contains("system:serviceaccount:ci:deployer")),
        "{:#?}",
        t.checks
    );
    assert_eq!(
        t.checks
            .iter()
            .filter(|c| c.id == CheckId::RbacCanI && c.status == Status::Pass)
            .count(),
        15,
        "{:#?}",
        t.checks
    );
}

both_protocols!(healthy_cluster_passes, |p| async move {
    let (report, log) = healthy_run(options(p), &[]).await;
    assert_healthy(target(&report, "c"));
    assert!(
        log.versions.iter().all(|v| v == wire_version(p)),
        "{:?}",
        log.versions
    );
    assert!(
        log.all_bearer,
        "every request over verified TLS carries the token"
    );
    match p {
        Protocols::Both => assert_eq!(log.connections, 1),
        // The pipe, and the pool for what the pipe's pace (5 ms a body here, one body at a
        // time) sends there too: never more than the bound.
        Protocols::Http1Only => assert!(
            (1..=kube_reach::net::http::H1_POOL_SIZE as u64).contains(&log.connections),
            "{} connections",
            log.connections
        ),
    }
});

/// An HTTP/1.1-only server that answers at once: the whole run is pipelined on the one
/// connection the lower layers verified, as over HTTP/2 (before, 18 questions took up to 18
/// connections, each a TCP and a TLS handshake before its request).
#[tokio::test(flavor = "multi_thread")]
async fn a_prompt_http1_server_answers_every_question_on_one_connection() {
    init();
    let options = ApiServerOptions {
        protocols: Protocols::Http1Only,
        ..ApiServerOptions::default()
    };
    let (report, log) = healthy_run(options, &[]).await;
    assert_healthy(target(&report, "c"));
    assert!(
        log.versions.iter().all(|v| v == "HTTP/1.1"),
        "{:?}",
        log.versions
    );
    assert_eq!(log.versions.len(), 18, "{:?}", log.versions);
    assert!(log.all_bearer);
    assert_eq!(log.connections, 1);
}

both_protocols!(
    healthy_when_bodies_arrive_after_their_heads,
    |p| async move {
        let options = ApiServerOptions {
            body_delay: Some(Duration::from_millis(30)),
            ..options(p)
        };
        let (report, log) = healthy_run(options, &[]).await;
        assert_healthy(target(&report, "c"));
        // Over HTTP/1.1 the server answers the pipe one body at a time, 30 ms each: at that
        // pace the requests far back in the pipe are asked on pooled connections too, which
        // answer sooner on this link (a loopback handshake takes a few ms).
        if p == Protocols::Http1Only {
            assert!(log.connections >= 2, "{} connections", log.connections);
        }
    }
);

both_protocols!(
    healthy_after_a_response_that_closes_its_connection,
    |p| async move {
        // A load balancer's `connection: close` on one answer (HTTP/2 ignores the header).
        let options = ApiServerOptions {
            extra_headers: vec![("/version".into(), "connection".into(), "close".into())],
            ..options(p)
        };
        let (report, _) = healthy_run(options, &[]).await;
        assert_healthy(target(&report, "c"));
    }
);

both_protocols!(healthy_with_one_requirement, |p| async move {
    let (report, _) = healthy_run(options(p), &["--require", "get pods"]).await;
    let t = target(&report, "c");
    assert_eq!(t.verdict, Verdict::Pass, "{:#?}", t.checks);
    assert_eq!(
        t.checks
            .iter()
            .filter(|c| c.id == CheckId::RbacCanI)
            .count(),
        1
    );
});

both_protocols!(rbac_denied, |p| async move {
    let require = ["--require", "create deployments.apps -n prod"];
    let (report, _) = run_on_good_server(options(p), Some(FORBIDDEN), false, &require).await;
    assert_root_cause(target(&report, "c"), CheckId::RbacCanI, Reason::Denied);
});

both_protocols!(whoami_unauthorized_token, |p| async move {
    let (report, _) = run_on_good_server(options(p), Some("wrong-token"), false, &[]).await;
    let t = target(&report, "c");
    let rc = t.root_cause.expect("root cause");
    assert!(
        rc.check == CheckId::HttpVersion || rc.check == CheckId::AuthWhoami,
        "{rc:?}: {:#?}",
        t.checks
    );
    assert!(rc.reason == Reason::Unauthorized, "{rc:?}: {:#?}", t.checks);
});

both_protocols!(healthy_through_a_connect_proxy, |p| async move {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = tls_server(&pki, TlsClass::Good, options(p)).await;
    let proxy = proxy::start_proxy(localhost(), ProxyMode::Allow)
        .await
        .expect("proxy");
    let world = World::new();
    let mut ctx = Ctx::new(
        "c",
        format!("https://api.k8s.test:{}", server.addr().port()),
        &ca,
        GOOD,
    );
    let extra = format!("    proxy-url: \"http://{}\"\n", proxy.addr());
    ctx.extra_cluster = &extra;
    let report = world.run(&kubeconfig(&[ctx], None), &[], &[]).await;
    assert_healthy(target(&report, "c"));
    assert!(
        server
            .request_log()
            .iter()
            .all(|r| r.http_version == wire_version(p)),
        "{:?}",
        server.request_log()
    );
});

/// Forwards the first connection to `first` and every later one to `later`: one address whose
/// server presents another certificate from the second connection on.
async fn switching_front(first: SocketAddr, later: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(localhost()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        // Bounded: the pool opens at most 32 connections over a target's life.
        for _ in 0..64 {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let n = count.fetch_add(1, Ordering::SeqCst);
            let to = if n == 0 { first } else { later };
            tokio::spawn(async move {
                if let Ok(mut server) = TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test(flavor = "multi_thread")]
async fn pooled_connections_that_present_another_certificate_get_no_credentials() {
    init();
    let pki = Pki::generate().expect("pki");
    // The first server closes its connection after `/version`: what was pipelined behind it
    // must be asked on pooled connections, and the address's later connections reach `b`.
    let closing = ApiServerOptions {
        extra_headers: vec![("/version".into(), "connection".into(), "close".into())],
        ..options(Protocols::Http1Only)
    };
    // Two servers with leaves from the same CA, both valid for the name: only the leaf differs.
    let (a, ca) = tls_server(&pki, TlsClass::Good, closing).await;
    let (b, _) = tls_server(&pki, TlsClass::Good, options(Protocols::Http1Only)).await;
    let (front, accepted) = switching_front(a.addr(), b.addr()).await;
    let world = World::new();
    let report = world
        .run(
            &kubeconfig(
                &[Ctx::new("c", format!("https://{front}"), &ca, GOOD)],
                None,
            ),
            &[],
            &[],
        )
        .await;
    let t = target(&report, "c");
    // The version came over the first connection; what the pool could not ask fails.
    assert_ne!(t.verdict, Verdict::Pass, "{:#?}", t.checks);
    let version = t.checks.iter().find(|c| c.id == CheckId::HttpVersion);
    assert_eq!(
        version.map(|c| c.status),
        Some(Status::Pass),
        "{:#?}",
        t.checks
    );
    let tried = accepted.load(Ordering::SeqCst);
    assert!(tried >= 2, "the pool never tried a second connection");
    // Once refused, the pool stops trying: at most one wave of extra connections.
    assert!(
        tried <= kube_reach::net::http::H1_POOL_SIZE,
        "{tried} connections tried"
    );
    assert_eq!(a.connections(), 1);
    assert!(b.connections() >= 1);
    // The other server never completed a handshake, so got no request, token or certificate.
    let stats = settled(&b).await;
    assert_eq!(stats.tls_handshakes, 0, "{stats:?}");
    assert_eq!(b.requests(), 0, "{:?}", b.request_log());
}

/// An HTTP/2 server that ends each connection with GOAWAY before taking any stream, as a load
/// balancer draining does: every request sent on it is refused unprocessed. Bounded: a few
/// connections, each driven at most 10 s.
async fn goaway_server(config: Arc<rustls::ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind(localhost()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        for _ in 0..4 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut conn) = h2::server::handshake(tls).await else {
                    return;
                };
                conn.abrupt_shutdown(h2::Reason::NO_ERROR);
                let drive = async { while conn.accept().await.is_some() {} };
                let _ = tokio::time::timeout(Duration::from_secs(10), drive).await;
                // The socket stays open a moment (only its write side ended), so requests the
                // client wrote meanwhile meet the GOAWAY, not a reset.
                tokio::time::sleep(Duration::from_secs(3)).await;
                drop(conn);
            });
        }
    });
    addr
}

/// The HTTP/2 server ends the connection by GOAWAY and the address then presents another
/// certificate: the one replacement refused, no refused request dials again on its own (once
/// every one of the run's parallel requests did, one after another).
#[tokio::test(flavor = "multi_thread")]
async fn after_goaway_a_replacement_that_did_not_verify_is_not_dialed_again() {
    init();
    let pki = Pki::generate().expect("pki");
    let id = pki
        .server_identity(TlsClass::Good, kube_reach::demo::DEFAULT_SANS)
        .expect("identity");
    let config = id
        .server_config(&kube_reach::demo::ClientAuth::None)
        .expect("server config");
    let draining = goaway_server(config).await;
    let (other, _) = tls_server(&pki, TlsClass::Good, options(Protocols::Both)).await;
    let (front, accepted) = switching_front(draining, other.addr()).await;
    let world = World::new();
    let report = world
        .run(
            &kubeconfig(
                &[Ctx::new(
                    "c",
                    format!("https://{front}"),
                    &id.kubeconfig_ca_pem,
                    GOOD,
                )],
                None,
            ),
            &[],
            &[],
        )
        .await;
    let t = target(&report, "c");
    assert_eq!(
        t.root_cause.map(|r| r.check),
        Some(CheckId::HttpVersion),
        "{:#?}",
        t.checks
    );
    // The first connection and one replacement, refused before any credential went out.
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "{:#?}", t.checks);
    let stats = settled(&other).await;
    assert_eq!(stats.tls_handshakes, 0, "{stats:?}");
}

/// Waits (bounded) until the server has finished every handshake it accepted, so its counters
/// tell what the client did.
async fn settled(server: &apiserver::ApiServerHandle) -> kube_reach::demo::ServerStats {
    for _ in 0..100 {
        let s = server.stats();
        if s.tls_handshakes + s.tls_failures + s.plain_http_on_tls >= s.connections {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stats()
}

/// A kubeconfig user authenticating by client certificate.
fn client_cert_kubeconfig(pki: &Pki, url: &str, ca: Option<&str>, cluster_extra: &str) -> String {
    let client = pki
        .client_identity("alice", &["devs"])
        .expect("client cert");
    let ctx = Ctx {
        ca_pem: ca,
        extra_cluster: cluster_extra,
        client_cert: Some((&client.cert_pem, client.key_pem())),
        user_name: Some("alice"),
        ..Ctx::named("c", url.to_string())
    };
    kubeconfig(&[ctx], Some("c"))
}

/// A server asking for (optional) client certificates, presenting a chain of `class`.
async fn cert_asking_server(
    pki: &Pki,
    class: TlsClass,
    p: Protocols,
) -> (apiserver::ApiServerHandle, String) {
    let id = pki
        .server_identity(class, kube_reach::demo::DEFAULT_SANS)
        .expect("identity");
    let config = id
        .server_config(&pki.optional_client_auth())
        .expect("server config");
    let server = apiserver::start(localhost(), Transport::Tls(config), options(p))
        .await
        .expect("server");
    (server, id.kubeconfig_ca_pem.clone())
}

both_protocols!(
    an_untrusted_server_never_receives_the_client_certificate,
    |p| async move {
        init();
        let pki = Pki::generate().expect("pki");
        let (server, _) = cert_asking_server(&pki, TlsClass::UnknownAuthority, p).await;
        let world = World::new();
        let kc = client_cert_kubeconfig(&pki, &server.url(), Some(&pki.root_ca_pem()), "");
        let report = world.run(&kc, &[], &[]).await;
        let t = target(&report, "c");
        // Judged from the chain captured before the handshake was ended.
        let rc = t.root_cause.expect("root cause");
        assert_eq!(
            rc.check.layer(),
            CheckId::TlsTrust.layer(),
            "{:#?}",
            t.checks
        );
        assert_has_status(t, CheckId::TlsHandshake, Status::Pass);
        // Server side: no handshake completed, so no client certificate arrived.
        let stats = settled(&server).await;
        assert!(
            stats.connections >= 1 && stats.tls_handshakes == 0,
            "{stats:?}"
        );
        // And that is because the client ended the handshake it began on seeing the chain,
        // not because it never tried one.
        assert!(stats.tls_failures >= 1, "{stats:?}");
    }
);

both_protocols!(
    insecure_skip_verify_sends_no_client_certificate_and_says_so,
    |p| async move {
        init();
        let pki = Pki::generate().expect("pki");
        let (server, _) = cert_asking_server(&pki, TlsClass::SelfSigned, p).await;
        let world = World::new();
        let kc = client_cert_kubeconfig(
            &pki,
            &server.url(),
            None,
            "    insecure-skip-tls-verify: true\n",
        );
        let report = world.run(&kc, &[], &[]).await;
        let t = target(&report, "c");
        // The anonymous probe still answered…
        assert_has_status(t, CheckId::HttpVersion, Status::Pass);
        // …and what the report says agrees with what went out: nothing.
        assert!(
            t.checks
                .iter()
                .any(|c| c.id == CheckId::AuthWhoami
                    && c.reason == Some(Reason::CredentialsWithheld)),
            "{:#?}",
            t.checks
        );
        assert!(!server.request_log().is_empty());
        assert!(
            server
                .request_log()
                .iter()
                .all(|r| !r.client_cert && r.user.as_deref() != Some("alice")),
            "{:?}",
            server.request_log()
        );
    }
);

both_protocols!(client_certificate_authentication_works, |p| async move {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = cert_asking_server(&pki, TlsClass::Good, p).await;
    let world = World::new();
    let kc = client_cert_kubeconfig(&pki, &server.url(), Some(&ca), "");
    let report = world.run(&kc, &["--require", "get pods"], &[]).await;
    let t = target(&report, "c");
    assert!(
        t.checks.iter().any(|c| c.id == CheckId::AuthWhoami
            && c.status == Status::Pass
            && c.summary.contains("alice")),
        "{:#?}",
        t.checks
    );
    assert!(server.request_log().iter().all(|r| r.client_cert));
});

/// One target `c` with `token` against a Good server with `options`; its report.
async fn run_against(options: ApiServerOptions, token: Option<&str>) -> Target {
    let (report, _) = run_on_good_server(options, token, false, &[]).await;
    report.targets.into_iter().next().expect("one target")
}

both_protocols!(anonymous_credentials_are_named, |p| async move {
    let options = ApiServerOptions {
        anonymous: kube_reach::demo::Anonymous::SystemAnonymous,
        ..options(p)
    };
    let t = run_against(options, None).await;
    assert_root_cause(&t, CheckId::AuthWhoami, Reason::Anonymous);
});

both_protocols!(
    http_version_not_kubernetes_behind_an_html_front,
    |p| async move {
        let options = ApiServerOptions {
            html_front: true,
            ..options(p)
        };
        let t = run_against(options, Some(GOOD)).await;
        assert_root_cause(&t, CheckId::HttpVersion, Reason::NotKubernetes);
    }
);

both_protocols!(http_health_not_ready, |p| async move {
    let options = ApiServerOptions {
        ready: false,
        ..options(p)
    };
    let t = run_against(options, Some(GOOD)).await;
    // (Its severity is the report's business; the transport's is that the answer arrived.)
    assert_has_reason(&t, CheckId::HttpHealth, Reason::NotReady);
});

both_protocols!(whoami_falls_back_on_a_server_before_1_28, |p| async move {
    // The fallbacks go one after another over whatever connection is free.
    let options = ApiServerOptions {
        self_subject_review: false,
        ..options(p)
    };
    let t = run_against(options, Some(GOOD)).await;
    assert_has_reason(&t, CheckId::AuthWhoami, Reason::Unsupported);
    assert_has_status(&t, CheckId::HttpVersion, Status::Pass);
});
