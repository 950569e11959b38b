use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper::StatusCode;

use super::test_client::{Client, TlsOptions};
use super::*;

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("https://")
        .trim_start_matches("http://")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn demo_all_writes_a_kubeconfig_with_every_scenario() {
    let demo = Demo::start(DemoKind::All).await.unwrap();
    let names: Vec<&str> = demo
        .scenarios()
        .iter()
        .map(|s| s.context.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "demo-healthy",
            "demo-expired-cert",
            "demo-missing-intermediate",
            "demo-refused",
            "demo-bad-token",
            "demo-rbac-denied"
        ]
    );
    let config = kube::config::Kubeconfig::read_from(demo.kubeconfig_path()).unwrap();
    assert_eq!(
        config.current_context, None,
        "no current-context: every context is checked"
    );
    assert_eq!(config.contexts.len(), 6);
    assert_eq!(config.clusters.len(), 6);
    for scenario in demo.scenarios() {
        let cluster = config
            .clusters
            .iter()
            .find(|c| c.name == scenario.context)
            .unwrap();
        let cluster = cluster.cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some(scenario.server.as_str()));
        assert!(scenario.server.starts_with("https://127.0.0.1:"));
        let ca = cluster.certificate_authority_data.as_deref().unwrap();
        let pem = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(ca)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(pem, demo.pki().root_ca_pem());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(demo.kubeconfig_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let expected: Vec<Option<(&str, &str)>> = demo
        .scenarios()
        .iter()
        .map(|s| s.expected.map(|e| (e.check, e.reason)))
        .collect();
    assert_eq!(expected[0], None);
    assert_eq!(expected[1], Some(("tls.validity", "expired")));
    assert_eq!(expected[3], Some(("tcp.connect", "refused")));
}

/// Each scenario breaks exactly where its name says.
#[tokio::test]
async fn demo_scenarios_fail_at_their_layer() {
    let demo = Demo::start(DemoKind::All).await.unwrap();
    let ca = demo.pki().root_ca_der();
    let url = |context: &str| {
        demo.scenarios()
            .iter()
            .find(|s| s.context == context)
            .unwrap()
            .server
            .clone()
    };

    let mut healthy = Client::tls(addr_of(&url("demo-healthy")), TlsOptions::new(ca.clone()))
        .await
        .unwrap();
    assert_eq!(
        healthy.get("/api", Some(GOOD_TOKEN)).await.status,
        StatusCode::OK
    );

    for broken in ["demo-expired-cert", "demo-missing-intermediate"] {
        assert!(
            Client::tls(addr_of(&url(broken)), TlsOptions::new(ca.clone()))
                .await
                .is_err(),
            "{broken}"
        );
        assert_eq!(demo.server(broken).unwrap().requests(), 0);
    }
    assert!(
        tokio::net::TcpStream::connect(addr_of(&url("demo-refused")))
            .await
            .is_err()
    );
    assert!(demo.server("demo-refused").is_none());

    let mut bad = Client::tls(addr_of(&url("demo-bad-token")), TlsOptions::new(ca.clone()))
        .await
        .unwrap();
    let whoami = bad
        .post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            Some(REVOKED_TOKEN),
            "{}",
        )
        .await;
    assert_eq!(whoami.status, StatusCode::UNAUTHORIZED);

    let mut rbac = Client::tls(addr_of(&url("demo-rbac-denied")), TlsOptions::new(ca))
        .await
        .unwrap();
    let review = r#"{"spec":{"resourceAttributes":{"namespace":"demo","verb":"create","group":"apps","resource":"deployments"}}}"#;
    let reply = rbac
        .post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            Some(FORBIDDEN_TOKEN),
            review,
        )
        .await;
    assert_eq!(reply.json()["status"]["allowed"], false);
}

#[tokio::test]
async fn demo_healthy_has_one_context_and_cleans_up_on_drop() {
    let demo = Demo::start(DemoKind::Healthy).await.unwrap();
    assert_eq!(demo.scenarios().len(), 1);
    let path = demo.kubeconfig_path().to_path_buf();
    let addr = demo.server("demo-healthy").unwrap().addr();
    assert!(path.exists());
    drop(demo);
    assert!(!path.exists(), "the temporary directory is removed");
    let deadline = Instant::now() + Duration::from_secs(2);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the server stops when the demo is dropped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn serve_reads_pem_files_writes_the_ready_file_and_exits_by_itself() {
    let pki = Pki::generate().unwrap();
    let identity = pki.server_identity(TlsClass::Good, DEFAULT_SANS).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("chain.pem");
    let key = dir.path().join("key.pem");
    let client_ca = dir.path().join("client-ca.pem");
    let ready = dir.path().join("ready");
    std::fs::write(&chain, &identity.chain_pem).unwrap();
    std::fs::write(&key, identity.key_pem()).unwrap();
    std::fs::write(&client_ca, pki.root_ca_pem()).unwrap();
    let options = ServeOptions {
        listen: vec![
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        ],
        tls: ServeTls::Files {
            chain_pem: chain,
            key_pem: key,
            client_ca_pem: Some(client_ca),
        },
        api: ApiServerOptions {
            version_padding_bytes: 5000,
            ..ApiServerOptions::default()
        },
        max_lifetime: Duration::from_secs(2),
        ready_file: Some(ready.clone()),
    };
    let started = Instant::now();
    let serving = tokio::spawn(serve(options));
    while !ready.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "ready file never appeared"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let text = std::fs::read_to_string(&ready).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], std::process::id().to_string());
    assert_eq!(lines.len(), 3);
    for url in &lines[1..] {
        let mut c = Client::tls(addr_of(url), TlsOptions::new(pki.root_ca_der()))
            .await
            .unwrap();
        let version = c.get("/version", None).await;
        assert!(version.body.len() > 5000);
    }
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(
        tokio::net::TcpStream::connect(addr_of(lines[1]))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn serve_rejects_bad_input() {
    let none = ServeOptions {
        listen: vec![],
        tls: ServeTls::Plain,
        api: ApiServerOptions::default(),
        max_lifetime: Duration::from_secs(1),
        ready_file: None,
    };
    assert!(matches!(serve(none).await, Err(DemoError::Config(_))));
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let bad = ServeOptions {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        tls: ServeTls::Files {
            chain_pem: empty.clone(),
            key_pem: empty,
            client_ca_pem: None,
        },
        api: ApiServerOptions::default(),
        max_lifetime: Duration::from_secs(1),
        ready_file: None,
    };
    let err = serve(bad).await.unwrap_err();
    assert!(matches!(err, DemoError::Pem { .. }), "{err}");
}

#[test]
fn dead_address_is_loopback_and_refuses() {
    let addr = dead_address().unwrap();
    assert!(addr.ip().is_loopback());
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}
