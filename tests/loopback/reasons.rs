//! One test per `{check, reason}` root cause reachable on loopback.

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::demo::{ApiServerOptions, Pki, ProxyMode, TlsClass, Transport, apiserver, proxy};
use kube_reach::model::{Status, Verdict};

use crate::support::*;

async fn tls_case(class: TlsClass, server_name: Option<&str>) -> crate::report::Target {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = tls_server(&pki, class, ApiServerOptions::default()).await;
    let world = World::new();
    let url = match server_name {
        Some(name) => format!("https://{name}:{}", server.addr().port()),
        None => server.url(),
    };
    one_target(&world, url, &ca).await
}

/// The report of the one target `c` at `url`, trusting `ca`.
async fn one_target(world: &World, url: String, ca: &str) -> crate::report::Target {
    let report = world
        .run(
            &kubeconfig(&[Ctx::new("c", url, ca, GOOD)], Some("c")),
            &[],
            &[],
        )
        .await;
    report.targets.into_iter().next().expect("one target")
}

#[tokio::test(flavor = "multi_thread")]
async fn healthy_cluster_passes_over_one_connection() {
    let (report, server) =
        run_on_good_server(ApiServerOptions::default(), Some(GOOD), true, &[]).await;
    let t = target(&report, "c");
    assert_eq!(t.verdict, Verdict::Pass, "{:#?}", t.checks);
    assert!(t.root_cause.is_none());
    assert!(
        t.checks.iter().any(|c| c.id == CheckId::AuthWhoami
            && c.summary.contains("system:serviceaccount:ci:deployer"))
    );
    assert_eq!(
        t.checks
            .iter()
            .filter(|c| c.id == CheckId::RbacCanI && c.status == Status::Pass)
            .count(),
        15
    );
    // The TLS check's own connection carried every API request (HTTP/2).
    assert_eq!(
        server.connections(),
        1,
        "requests: {:?}",
        server.request_log()
    );
    let log = server.request_log();
    assert!(log.iter().all(|r| r.http_version.contains('2')), "{log:?}");
    assert!(
        log.iter().all(|r| r.bearer),
        "every request after verified TLS carries the token"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_validity_expired() {
    let t = tls_case(TlsClass::Expired, None).await;
    assert_root_cause(&t, CheckId::TlsValidity, Reason::Expired);
    let ev = evidence_of(&t, CheckId::TlsValidity);
    assert!(
        ev.contains("2021-01-01T00:00:00Z") && ev.contains("CN="),
        "{ev}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_validity_not_yet_valid() {
    let t = tls_case(TlsClass::NotYetValid, None).await;
    assert_root_cause(&t, CheckId::TlsValidity, Reason::NotYetValid);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_hostname_mismatch_by_name() {
    // api.k8s.test comes from the world's hosts file; the certificate is for wrong.example.
    let t = tls_case(TlsClass::WrongSan, Some("api.k8s.test")).await;
    assert_root_cause(&t, CheckId::TlsHostname, Reason::Mismatch);
    let hostname = t
        .checks
        .iter()
        .find(|c| c.id == CheckId::TlsHostname)
        .expect("hostname");
    assert!(
        hostname.evidence.join(" ").contains("DNS:wrong.example"),
        "{:?}",
        hostname.evidence
    );
    assert!(
        hostname
            .fix
            .as_deref()
            .unwrap_or_default()
            .contains("tls-server-name: wrong.example")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_hostname_ip_not_in_san() {
    let t = tls_case(TlsClass::IpNotInSan, None).await;
    assert_root_cause(&t, CheckId::TlsHostname, Reason::IpNotInSan);
}

/// The rogue chain (leaf + rogue root) with no CA in the kubeconfig: a private CA, unknown.
#[tokio::test(flavor = "multi_thread")]
async fn tls_trust_unknown_authority() {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, _) = tls_server(
        &pki,
        TlsClass::UnknownAuthority,
        ApiServerOptions::default(),
    )
    .await;
    let mut ctx = Ctx::new("c", server.url(), "", GOOD);
    ctx.ca_pem = None;
    let report = World::new()
        .run(&kubeconfig(&[ctx], Some("c")), &[], &[])
        .await;
    assert_root_cause(
        target(&report, "c"),
        CheckId::TlsTrust,
        Reason::UnknownAuthority,
    );
}

/// The same chain against the kubeconfig's demo root: a complete chain up to a different root
/// is `ca-mismatch` (spec §2), not `unknown-authority` as it was reported before.
#[tokio::test(flavor = "multi_thread")]
async fn tls_trust_complete_chain_to_another_root_is_ca_mismatch() {
    let t = tls_case(TlsClass::UnknownAuthority, None).await;
    assert_root_cause(&t, CheckId::TlsTrust, Reason::CaMismatch);
    assert!(
        evidence_of(&t, CheckId::TlsTrust).contains("complete chain up to the root"),
        "{}",
        evidence_of(&t, CheckId::TlsTrust)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_trust_ca_mismatch() {
    let t = tls_case(TlsClass::CaMismatch, None).await;
    assert_root_cause(&t, CheckId::TlsTrust, Reason::CaMismatch);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_trust_missing_intermediate() {
    let t = tls_case(TlsClass::MissingIntermediate, None).await;
    assert_root_cause(&t, CheckId::TlsTrust, Reason::MissingIntermediate);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_trust_self_signed() {
    let t = tls_case(TlsClass::SelfSigned, None).await;
    assert_root_cause(&t, CheckId::TlsTrust, Reason::SelfSigned);
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_never_reach_an_unverified_server() {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = tls_server(
        &pki,
        TlsClass::UnknownAuthority,
        ApiServerOptions::default(),
    )
    .await;
    let world = World::new();
    let _ = world
        .run(
            &kubeconfig(&[Ctx::new("c", server.url(), &ca, GOOD)], None),
            &[],
            &[],
        )
        .await;
    assert!(
        server.request_log().iter().all(|r| !r.bearer),
        "a token went to an unverified server"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_handshake_not_tls_on_a_plain_http_port() {
    init();
    let server = apiserver::start(
        localhost(),
        Transport::PlainHttp,
        ApiServerOptions::default(),
    )
    .await
    .expect("server");
    let world = World::new();
    let url = format!("https://127.0.0.1:{}", server.addr().port());
    let pki = Pki::generate().expect("pki");
    let report = world
        .run(
            &kubeconfig(&[Ctx::new("c", url, &pki.root_ca_pem(), GOOD)], None),
            &[],
            &[],
        )
        .await;
    let t = target(&report, "c");
    assert_root_cause(t, CheckId::TlsHandshake, Reason::NotTls);
    // In words, not rustls' `Debug` ("of type InvalidContentType").
    let evidence = evidence_of(t, CheckId::TlsHandshake);
    assert!(evidence.contains("no TLS record type"), "{evidence}");
}

/// A TCP server that answers each ClientHello with `reply` (raw bytes, not made by a TLS
/// library) and then holds the connection a moment. Bounded: a few connections, 5 s each.
async fn raw_tls_front(reply: &'static [u8]) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(localhost())
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        for _ in 0..4 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut hello = [0u8; 4096];
                let _ = stream.read(&mut hello).await;
                let _ = stream.write_all(reply).await;
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            });
        }
    });
    addr
}

async fn run_against_raw_front(reply: &'static [u8]) -> crate::report::Target {
    init();
    let addr = raw_tls_front(reply).await;
    let pki = Pki::generate().expect("pki");
    one_target(&World::new(), format!("https://{addr}"), &pki.root_ca_pem()).await
}

/// A record header announcing 65535 bytes: longer than any TLS record may be, so no TLS server
/// sent it. It is not "a certificate over 64 KiB" (that arrives in records of a legal size).
#[tokio::test(flavor = "multi_thread")]
async fn tls_handshake_not_tls_when_a_record_is_longer_than_tls_allows() {
    let t = run_against_raw_front(b"\x16\x03\x03\xff\xffnot a handshake").await;
    assert_root_cause(&t, CheckId::TlsHandshake, Reason::NotTls);
    let evidence = evidence_of(&t, CheckId::TlsHandshake);
    assert!(evidence.contains("longer than TLS allows"), "{evidence}");
    assert!(!evidence.contains("MessageTooLarge"), "{evidence}");
}

/// A fatal `handshake_failure` alert in answer to the ClientHello: named as the TLS RFCs name
/// it, never by rustls' `Debug` (`HandshakeFailure`).
#[tokio::test(flavor = "multi_thread")]
async fn tls_handshake_alert_is_named_as_the_rfcs_name_it() {
    let t = run_against_raw_front(b"\x15\x03\x03\x00\x02\x02\x28").await;
    assert_root_cause(&t, CheckId::TlsHandshake, Reason::Alert);
    let r = result_of(&t, CheckId::TlsHandshake);
    let text = format!("{} {}", r.summary, r.evidence.join(" "));
    assert!(text.contains("handshake_failure (40)"), "{text}");
    assert!(!text.contains("HandshakeFailure"), "{text}");
}

/// The handshake's evidence says "TLS 1.3", not rustls' `Debug` (`TLSv1_3`).
#[tokio::test(flavor = "multi_thread")]
async fn tls_handshake_names_the_version_as_people_write_it() {
    let t = tls_case(TlsClass::Good, None).await;
    let r = result_of(&t, CheckId::TlsHandshake);
    assert_eq!(r.status, Status::Pass, "{r:?}");
    assert!(r.summary.starts_with("TLS 1.3 handshake"), "{}", r.summary);
}

/// A `tls-server-name` no certificate can match is config.tls's finding, and no handshake is
/// tried with it: the TLS rows are skips that name config.tls, not a second failure with an
/// empty evidence line.
#[tokio::test(flavor = "multi_thread")]
async fn an_unusable_tls_server_name_is_config_tls_and_no_handshake_is_tried() {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = tls_server(&pki, TlsClass::Good, ApiServerOptions::default()).await;
    let world = World::new();
    let mut ctx = Ctx::new("c", server.url(), &ca, GOOD);
    ctx.extra_cluster = "    tls-server-name: \"bad name\"\n";
    let report = world.run(&kubeconfig(&[ctx], None), &[], &[]).await;
    let t = target(&report, "c");
    assert_root_cause(t, CheckId::ConfigTls, Reason::InvalidServerName);
    let handshake = result_of(t, CheckId::TlsHandshake);
    assert_eq!(handshake.status, Status::Skip, "{handshake:?}");
    assert!(
        handshake
            .blocked_by
            .as_deref()
            .unwrap_or_default()
            .contains("config.tls"),
        "{handshake:?}"
    );
    assert_eq!(server.stats().tls_handshakes, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_connect_refused() {
    init();
    let dead = kube_reach::demo::dead_address().expect("dead address");
    let world = World::new();
    let report = world
        .run(
            &kubeconfig(&[Ctx::new("c", format!("https://{dead}"), "", GOOD)], None),
            &[],
            &[],
        )
        .await;
    let t = target(&report, "c");
    assert_root_cause(t, CheckId::TcpConnect, Reason::Refused);
    assert!(evidence_of(t, CheckId::TcpConnect).contains(&dead.to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_whoami_unauthorized_token() {
    let options = ApiServerOptions::default();
    let (report, _) = run_on_good_server(options, Some("revoked-token"), false, &[]).await;
    assert_root_cause(
        target(&report, "c"),
        CheckId::AuthWhoami,
        Reason::Unauthorized,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rbac_can_i_denied_with_a_role_binding_fix() {
    let options = ApiServerOptions::default();
    let require = ["--require", "create deployments.apps -n prod"];
    let (report, _) = run_on_good_server(options, Some(FORBIDDEN), false, &require).await;
    let t = target(&report, "c");
    assert_root_cause(t, CheckId::RbacCanI, Reason::Denied);
    let denied = t
        .checks
        .iter()
        .find(|c| c.id == CheckId::RbacCanI)
        .expect("rbac");
    assert_eq!(denied.subject, "create deployments.apps -n prod");
    let fix = denied.fix.as_deref().unwrap_or_default();
    assert!(
        fix.contains("kind: RoleBinding")
            && fix.contains("name: nobody")
            && fix.contains("namespace: prod"),
        "{fix}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_credentials_are_named() {
    let options = ApiServerOptions {
        anonymous: kube_reach::demo::Anonymous::SystemAnonymous,
        ..Default::default()
    };
    let (report, _) = run_on_good_server(options, None, false, &[]).await;
    let t = target(&report, "c");
    assert_has_reason(t, CheckId::ConfigCredentials, Reason::None);
    assert_root_cause(t, CheckId::AuthWhoami, Reason::Anonymous);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_version_not_kubernetes_behind_an_html_front() {
    let options = ApiServerOptions {
        html_front: true,
        ..Default::default()
    };
    let (report, _) = run_on_good_server(options, Some(GOOD), false, &[]).await;
    assert_root_cause(
        target(&report, "c"),
        CheckId::HttpVersion,
        Reason::NotKubernetes,
    );
}

async fn proxy_case(mode: ProxyMode, proxy_userinfo: &str) -> crate::report::Target {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = tls_server(&pki, TlsClass::Good, ApiServerOptions::default()).await;
    let proxy = proxy::start_proxy(localhost(), mode).await.expect("proxy");
    let world = World::new();
    let mut ctx = Ctx::new(
        "c",
        format!("https://api.k8s.test:{}", server.addr().port()),
        &ca,
        GOOD,
    );
    let extra = format!(
        "    proxy-url: \"http://{proxy_userinfo}{}\"\n",
        proxy.addr()
    );
    ctx.extra_cluster = &extra;
    let report = world.run(&kubeconfig(&[ctx], None), &[], &[]).await;
    let t = report.targets.into_iter().next().expect("target");
    drop(proxy);
    t
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_tunnel_ok_passes() {
    let t = proxy_case(ProxyMode::Allow, "").await;
    assert_eq!(t.verdict, Verdict::Pass, "{:#?}", t.checks);
    assert_has_status(&t, CheckId::ProxyTunnel, Status::Pass);
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_tunnel_forbidden() {
    let t = proxy_case(ProxyMode::Forbidden, "").await;
    assert_root_cause(&t, CheckId::ProxyTunnel, Reason::Forbidden);
    assert!(evidence_of(&t, CheckId::ProxyTunnel).contains("403"));
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_tunnel_auth_required() {
    let mode = ProxyMode::AuthRequired {
        user: "ci".into(),
        password: "proxy-canary-pw".into(),
    };
    let t = proxy_case(mode, "").await;
    assert_root_cause(&t, CheckId::ProxyTunnel, Reason::AuthRequired);
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_credentials_from_the_url_are_used() {
    let mode = ProxyMode::AuthRequired {
        user: "ci".into(),
        password: "proxy-canary-pw".into(),
    };
    let t = proxy_case(mode, "ci:proxy-canary-pw@").await;
    assert_eq!(t.verdict, Verdict::Pass, "{:#?}", t.checks);
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_tunnel_upstream_failed() {
    let t = proxy_case(ProxyMode::BadGateway, "").await;
    assert_root_cause(&t, CheckId::ProxyTunnel, Reason::UpstreamFailed);
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_connect_refused_names_the_proxy_not_the_cluster() {
    init();
    let dead = kube_reach::demo::dead_address().expect("dead");
    let world = World::new();
    let mut ctx = Ctx::new("c", "https://api.k8s.test:6443".into(), "", GOOD);
    ctx.ca_pem = None;
    let extra = format!("    proxy-url: \"http://{dead}\"\n");
    ctx.extra_cluster = &extra;
    let report = world.run(&kubeconfig(&[ctx], None), &[], &[]).await;
    let t = target(&report, "c");
    assert_root_cause(t, CheckId::ProxyConnect, Reason::Refused);
    assert!(
        t.checks
            .iter()
            .any(|c| c.id == CheckId::ConfigProxy && c.summary.contains("proxy-url"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn env_proxy_is_bypassed_by_no_proxy() {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = tls_server(&pki, TlsClass::Good, ApiServerOptions::default()).await;
    let dead = kube_reach::demo::dead_address().expect("dead");
    let world = World::new();
    let ctx = Ctx::new(
        "c",
        format!("https://api.k8s.test:{}", server.addr().port()),
        &ca,
        GOOD,
    );
    let proxy_url = format!("http://{dead}");
    let report = world
        .run(
            &kubeconfig(&[ctx], None),
            &[],
            &[("HTTPS_PROXY", &proxy_url), ("NO_PROXY", ".k8s.test")],
        )
        .await;
    let t = target(&report, "c");
    assert_eq!(t.verdict, Verdict::Pass, "{:#?}", t.checks);
    let proxy = t
        .checks
        .iter()
        .find(|c| c.id == CheckId::ConfigProxy)
        .expect("config.proxy");
    assert!(
        proxy.summary.contains("direct") && proxy.summary.contains(".k8s.test"),
        "{}",
        proxy.summary
    );
    // Without NO_PROXY the same run goes to the (dead) proxy.
    let ctx = Ctx::new(
        "c",
        format!("https://api.k8s.test:{}", server.addr().port()),
        &ca,
        GOOD,
    );
    let report = world
        .run(
            &kubeconfig(&[ctx], None),
            &[],
            &[("HTTPS_PROXY", &proxy_url)],
        )
        .await;
    assert_root_cause(target(&report, "c"), CheckId::ProxyConnect, Reason::Refused);
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_file_answers_before_dns() {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = tls_server(&pki, TlsClass::Good, ApiServerOptions::default()).await;
    let world = World::new();
    let ctx = Ctx::new(
        "c",
        format!("https://api.k8s.test:{}", server.addr().port()),
        &ca,
        GOOD,
    );
    let report = world.run(&kubeconfig(&[ctx], None), &[], &[]).await;
    let t = target(&report, "c");
    assert_eq!(t.verdict, Verdict::Pass, "{:#?}", t.checks);
    assert!(evidence_of(t, CheckId::DnsResolve).contains("hosts"));
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_no_nameservers_with_an_empty_resolv_conf() {
    init();
    let world = World::new();
    let ctx = Ctx::new("c", "https://missing.k8s.test:6443".into(), "", GOOD);
    let report = world.run(&kubeconfig(&[ctx], None), &[], &[]).await;
    assert_root_cause(
        target(&report, "c"),
        CheckId::DnsResolve,
        Reason::NoNameservers,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn config_server_insecure_scheme() {
    init();
    let server = apiserver::start(
        localhost(),
        Transport::PlainHttp,
        ApiServerOptions::default(),
    )
    .await
    .expect("server");
    let world = World::new();
    let mut ctx = Ctx::new(
        "c",
        format!("http://127.0.0.1:{}", server.addr().port()),
        "",
        GOOD,
    );
    ctx.ca_pem = None;
    let report = world.run(&kubeconfig(&[ctx], None), &[], &[]).await;
    let t = target(&report, "c");
    let server_check = t
        .checks
        .iter()
        .find(|c| c.id == CheckId::ConfigServer)
        .expect("config.server");
    assert_eq!(
        (server_check.status, server_check.reason),
        (Status::Warn, Some(Reason::CredentialsWithheld)),
        "{:#?}",
        t.checks
    );
    // The server refuses the anonymous request: the fix is the https:// URL, not a new token.
    assert_root_cause(t, CheckId::AuthWhoami, Reason::Unauthorized);
    let whoami = t
        .checks
        .iter()
        .find(|c| c.id == CheckId::AuthWhoami)
        .expect("auth.whoami");
    let fix = whoami.fix.as_deref().unwrap_or_default();
    assert!(fix.contains("https://") && !fix.contains("Renew"), "{fix}");
    let log = server.request_log();
    assert!(!log.is_empty(), "the later layers asked the server");
    assert!(
        log.iter().all(|r| !r.bearer),
        "a token went over plain http"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn config_server_loopback_warns_only_in_gitlab_ci() {
    init();
    let world = World::new();
    let dead = kube_reach::demo::dead_address().expect("dead");
    let kc = kubeconfig(&[Ctx::new("c", format!("https://{dead}"), "", GOOD)], None);
    let in_ci = world.run(&kc, &[], &[("GITLAB_CI", "true")]).await;
    let server_check = |r: &crate::report::Report| {
        target(r, "c")
            .checks
            .iter()
            .find(|c| c.id == CheckId::ConfigServer)
            .expect("config.server")
            .clone()
    };
    assert_eq!(server_check(&in_ci).reason, Some(Reason::Loopback));
    assert_eq!(server_check(&in_ci).status, Status::Warn);
    let outside = world.run(&kc, &[], &[]).await;
    assert_eq!(server_check(&outside).status, Status::Pass);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_handshake_timeout_when_the_server_never_answers() {
    init();
    let (task, addr) = silent_listener(8).await;
    let world = World::new();
    let report = world
        .run(
            &kubeconfig(&[Ctx::new("c", format!("https://{addr}"), "", GOOD)], None),
            &["--timeout", "1"],
            &[],
        )
        .await;
    let t = target(&report, "c");
    assert_root_cause(t, CheckId::TlsHandshake, Reason::Timeout);
    // The small-MSS retry was made and got no answer either: not an MTU black hole.
    let evidence = evidence_of(t, CheckId::TlsHandshake);
    assert!(evidence.contains("retry announcing MSS 536"), "{evidence}");
    task.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deadline_turns_the_running_check_into_an_error_and_the_report_is_complete() {
    init();
    let (task, addr) = silent_listener(8).await;
    let world = World::new();
    let started = std::time::Instant::now();
    let report = world
        .run(
            &kubeconfig(&[Ctx::new("c", format!("https://{addr}"), "", GOOD)], None),
            &["--timeout", "30", "--deadline", "1"],
            &[],
        )
        .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the deadline did not stop the run"
    );
    let t = target(&report, "c");
    let rc = t.root_cause.expect("root cause");
    assert_eq!(
        (rc.check, rc.reason),
        (CheckId::TlsHandshake, Reason::Deadline),
        "{:#?}",
        t.checks
    );
    assert_eq!(t.verdict, Verdict::Fail);
    // What ran before the deadline is still reported.
    assert_has_status(t, CheckId::TcpConnect, Status::Pass);
    task.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn config_credentials_token_expired_without_printing_the_token() {
    let token = jwt_with_exp(1_600_000_000);
    let options = ApiServerOptions::default();
    let (report, server) = run_on_good_server(options, Some(&token), false, &[]).await;
    let t = target(&report, "c");
    assert_root_cause(t, CheckId::ConfigCredentials, Reason::TokenExpired);
    let all = format!("{:?}", t.checks);
    assert!(!all.contains(&token), "the token leaked into a result");
    // Known-bad credentials are not sent.
    assert!(server.request_log().iter().all(|r| !r.bearer));
}

#[tokio::test(flavor = "multi_thread")]
async fn config_credentials_exec_plugin_missing_and_auth_provider_removed() {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = tls_server(&pki, TlsClass::Good, ApiServerOptions::default()).await;
    let world = World::new();
    let kc = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"SERVER\", certificate-authority-data: CA}\nusers:\n- name: exec\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: gke-gcloud-auth-plugin-not-installed\n- name: gcp\n  user:\n    auth-provider:\n      name: gcp\ncontexts:\n- name: exec\n  context: {cluster: c, user: exec}\n- name: gcp\n  context: {cluster: c, user: gcp}\n";
    let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
    let kc = kc.replace("SERVER", &server.url()).replace("CA", &b64(&ca));
    let report = world.run(&kc, &[], &[("PATH", "/usr/bin:/bin")]).await;
    assert_root_cause(
        target(&report, "exec"),
        CheckId::ConfigCredentials,
        Reason::ExecPluginMissing,
    );
    assert_root_cause(
        target(&report, "gcp"),
        CheckId::ConfigCredentials,
        Reason::AuthProviderRemoved,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn config_tls_invalid_ca_and_insecure_skip_verify_withholds_credentials() {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, _ca) = tls_server(&pki, TlsClass::SelfSigned, ApiServerOptions::default()).await;
    let world = World::new();
    let bad_ca = Ctx::new(
        "bad-ca",
        server.url(),
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        GOOD,
    );
    let mut insecure = Ctx::new("insecure", server.url(), "", GOOD);
    insecure.ca_pem = None;
    insecure.extra_cluster = "    insecure-skip-tls-verify: true\n";
    let report = world
        .run(&kubeconfig(&[bad_ca, insecure], None), &[], &[])
        .await;
    assert_root_cause(
        target(&report, "bad-ca"),
        CheckId::ConfigTls,
        Reason::CaInvalid,
    );
    let t = target(&report, "insecure");
    assert_eq!(t.verdict, Verdict::Warn, "{:#?}", t.checks);
    assert_has_reason(t, CheckId::AuthWhoami, Reason::CredentialsWithheld);
    assert!(
        server.request_log().iter().all(|r| !r.bearer),
        "a token went to an unverified server"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificate_authentication_works_and_a_wrong_key_is_named() {
    init();
    let pki = Pki::generate().expect("pki");
    let client = pki
        .client_identity("alice", &["devs"])
        .expect("client cert");
    let other = pki.client_identity("bob", &["devs"]).expect("other cert");
    let (server, ca) = tls_server(&pki, TlsClass::Good, ApiServerOptions::default()).await;
    let world = World::new();
    let ctx = Ctx {
        ca_pem: Some(&ca),
        client_cert: Some((&client.cert_pem, other.key_pem())),
        namespace: None,
        cluster_name: Some("c"),
        ..Ctx::named("mismatched", server.url())
    };
    let kc = kubeconfig(&[ctx], None);
    let report = world.run(&kc, &[], &[]).await;
    assert_root_cause(
        target(&report, "mismatched"),
        CheckId::ConfigCredentials,
        Reason::ClientKeyMismatch,
    );
    let dump = format!("{report:?}");
    assert!(
        !dump.contains(other.key_pem().lines().nth(1).unwrap_or("MISSING")),
        "key material leaked"
    );
}
