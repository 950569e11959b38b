use std::net::SocketAddr;

use hyper::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::demo::pki::{ClientAuth, DEFAULT_SANS, Pki, TlsClass};
use crate::demo::test_client::{Client, TlsOptions};

const UNAUTHORIZED_BODY: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn tls_server(
    pki: &Pki,
    class: TlsClass,
    auth: &ClientAuth,
    options: ApiServerOptions,
) -> ApiServerHandle {
    let config = pki
        .server_identity(class, DEFAULT_SANS)
        .unwrap()
        .server_config(auth)
        .unwrap();
    start(loopback(), Transport::Tls(config), options)
        .await
        .unwrap()
}

async fn healthy(options: ApiServerOptions) -> (Pki, ApiServerHandle) {
    let pki = Pki::generate().unwrap();
    let server = tls_server(&pki, TlsClass::Good, &ClientAuth::None, options).await;
    (pki, server)
}

async fn client(pki: &Pki, server: &ApiServerHandle) -> Client {
    Client::tls(server.addr(), TlsOptions::new(pki.root_ca_der()))
        .await
        .unwrap()
}

/// Polls `condition` for up to a second (server-side counters update asynchronously).
async fn eventually(condition: impl Fn() -> bool) -> bool {
    for _ in 0..100 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

fn ssar(verb: &str, group: &str, resource: &str, namespace: &str) -> String {
    json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": {"resourceAttributes": {"namespace": namespace, "verb": verb, "group": group, "resource": resource}},
        "status": {"allowed": false},
    })
    .to_string()
}

#[tokio::test]
async fn public_routes_over_h2_share_one_connection() {
    let (pki, server) = healthy(ApiServerOptions::default()).await;
    let mut c = client(&pki, &server).await;
    let version = c.get("/version", None).await;
    assert_eq!(version.status, StatusCode::OK);
    assert_eq!(version.version, hyper::Version::HTTP_2);
    assert_eq!(version.json()["gitVersion"], DEMO_GIT_VERSION);
    assert_eq!(version.json()["minor"], "31");
    assert_eq!(version.json()["platform"], "linux/amd64");
    assert_eq!(version.headers.get_all("date").iter().count(), 1);
    assert!(version.headers.get("server").is_none());
    assert!(version.headers.get("audit-id").is_some());
    for path in ["/readyz", "/livez", "/healthz", "/readyz/"] {
        let reply = c.get(path, None).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (StatusCode::OK, "ok"),
            "{path}"
        );
    }
    let verbose = c.get("/readyz?verbose", None).await;
    assert!(verbose.body.contains("[+]etcd ok\n"), "{}", verbose.body);
    assert!(verbose.body.ends_with("readyz check passed\n"));
    assert_eq!(server.stats().connections, 1);
    assert_eq!(server.requests(), 6);
    assert_eq!(server.stats().tls_handshakes, 1);
}

#[tokio::test]
async fn discovery_documents_list_the_groups_kubectl_needs() {
    let (pki, server) = healthy(ApiServerOptions::default()).await;
    let mut c = client(&pki, &server).await;
    let api = c.get("/api", Some(GOOD_TOKEN)).await.json();
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"], json!(["v1"]));
    let apis = c.get("/apis", Some(GOOD_TOKEN)).await.json();
    let groups: Vec<&str> = apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        [
            "apps",
            "networking.k8s.io",
            "discovery.k8s.io",
            "authentication.k8s.io",
            "authorization.k8s.io"
        ]
    );
    let core = c.get("/api/v1", Some(GOOD_TOKEN)).await.json();
    assert_eq!(core["groupVersion"], "v1");
    assert!(
        core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "pods" && r["namespaced"] == true)
    );
    let apps = c.get("/apis/apps/v1", Some(GOOD_TOKEN)).await.json();
    assert_eq!(apps["groupVersion"], "apps/v1");
    assert!(
        apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "Deployment")
    );
    for missing in ["/apis/apps/v2", "/apis/example.com/v1", "/nope"] {
        let reply = c.get(missing, Some(GOOD_TOKEN)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(reply.json()["reason"], "NotFound");
    }
}

#[tokio::test]
async fn reviews_answer_per_user() {
    let (pki, server) = healthy(ApiServerOptions::default()).await;
    let mut c = client(&pki, &server).await;
    let whoami = c
        .post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            Some(GOOD_TOKEN),
            "{}",
        )
        .await;
    assert_eq!(whoami.status, StatusCode::CREATED);
    let info = &whoami.json()["status"]["userInfo"];
    assert_eq!(info["username"], "system:serviceaccount:ci:deployer");
    assert!(
        info["groups"]
            .as_array()
            .unwrap()
            .contains(&json!("system:authenticated"))
    );

    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let allowed = c
        .post(
            path,
            Some(GOOD_TOKEN),
            &ssar("create", "apps", "deployments", "prod"),
        )
        .await;
    assert_eq!(allowed.status, StatusCode::CREATED);
    assert_eq!(allowed.json()["status"]["allowed"], true);
    assert_eq!(
        allowed.json()["spec"]["resourceAttributes"]["namespace"],
        "prod",
        "spec echoed"
    );
    let denied = c
        .post(
            path,
            Some(GOOD_TOKEN),
            &ssar("delete", "apps", "deployments", "prod"),
        )
        .await;
    assert_eq!(denied.json()["status"]["allowed"], false);
    let nobody = c
        .post(path, Some(FORBIDDEN_TOKEN), &ssar("get", "", "pods", "ci"))
        .await;
    assert_eq!(nobody.json()["status"]["allowed"], false);
    let invalid = c.post(path, Some(GOOD_TOKEN), r#"{"spec":{}}"#).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    let garbage = c.post(path, Some(GOOD_TOKEN), "not json").await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);

    let rules = c
        .post(
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            Some(GOOD_TOKEN),
            r#"{"spec":{"namespace":"ci"}}"#,
        )
        .await;
    assert_eq!(rules.status, StatusCode::CREATED);
    let status = &rules.json()["status"];
    assert_eq!(status["incomplete"], false);
    assert!(
        status["resourceRules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resources"] == json!(["deployments"]))
    );
    let wrong_method = c.get(path, Some(GOOD_TOKEN)).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
}

/// kubectl ≥ 1.32 sends the self-reviews as protobuf: the fake reads them as a real server does
/// (old main answered 400 "not a JSON object"), and answers a media type it does not read with
/// a real server's 415 `UnsupportedMediaType` Status, never as if it had read it.
#[tokio::test]
async fn reviews_read_protobuf_and_refuse_unknown_media_types() {
    use super::body::{PROTOBUF, wire};
    let (pki, server) = healthy(ApiServerOptions::default()).await;
    let mut c = client(&pki, &server).await;
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let allowed = wire::access_review("create", "apps", "deployments", "prod");
    let allowed = c.post_as(path, Some(GOOD_TOKEN), PROTOBUF, allowed).await;
    assert_eq!(allowed.status, StatusCode::CREATED, "{}", allowed.body);
    assert_eq!(allowed.json()["status"]["allowed"], true);
    assert_eq!(
        allowed.json()["spec"]["resourceAttributes"]["namespace"],
        "prod"
    );
    let denied = wire::access_review("delete", "apps", "deployments", "prod");
    let denied = c.post_as(path, Some(GOOD_TOKEN), PROTOBUF, denied).await;
    assert_eq!(denied.json()["status"]["allowed"], false);

    let whoami = c
        .post_as(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            Some(GOOD_TOKEN),
            PROTOBUF,
            wire::self_subject_review(),
        )
        .await;
    assert_eq!(whoami.status, StatusCode::CREATED, "{}", whoami.body);
    assert_eq!(
        whoami.json()["status"]["userInfo"]["username"],
        "system:serviceaccount:ci:deployer"
    );

    let cbor = c
        .post_as(path, Some(GOOD_TOKEN), "application/cbor", vec![0xa0])
        .await;
    assert_eq!(cbor.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(cbor.json()["reason"], "UnsupportedMediaType");
    assert_eq!(cbor.json()["code"], 415);
    let message = cbor.json()["message"].as_str().unwrap_or("").to_string();
    assert!(
        message.starts_with("the body of the request was in an unknown format - accepted media types include: application/json"),
        "{message}"
    );
}

#[tokio::test]
async fn network_policies_list_or_forbid() {
    let mut policy = NetworkPolicy::default();
    policy.metadata.name = Some("deny-egress".into());
    policy.metadata.namespace = Some("ci".into());
    let options = ApiServerOptions {
        network_policies: vec![policy],
        ..ApiServerOptions::default()
    };
    let (pki, server) = healthy(options).await;
    let mut c = client(&pki, &server).await;
    let all = c
        .get(
            "/apis/networking.k8s.io/v1/networkpolicies?limit=500",
            Some(GOOD_TOKEN),
        )
        .await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.json()["kind"], "NetworkPolicyList");
    assert_eq!(all.json()["items"][0]["metadata"]["name"], "deny-egress");
    let ci = c
        .get(
            "/apis/networking.k8s.io/v1/namespaces/ci/networkpolicies",
            Some(GOOD_TOKEN),
        )
        .await;
    assert_eq!(ci.json()["items"].as_array().unwrap().len(), 1);
    let prod = c
        .get(
            "/apis/networking.k8s.io/v1/namespaces/prod/networkpolicies",
            Some(GOOD_TOKEN),
        )
        .await;
    assert_eq!(prod.json()["items"].as_array().unwrap().len(), 0);

    let denied = c
        .get(
            "/apis/networking.k8s.io/v1/namespaces/ci/networkpolicies",
            Some(FORBIDDEN_TOKEN),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(
        denied.body,
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"networkpolicies.networking.k8s.io is forbidden: User \"system:serviceaccount:ci:nobody\" cannot list resource \"networkpolicies\" in API group \"networking.k8s.io\" in the namespace \"ci\"","reason":"Forbidden","details":{"group":"networking.k8s.io","kind":"networkpolicies"},"code":403}"#
    );
    let cluster = c
        .get(
            "/apis/networking.k8s.io/v1/networkpolicies",
            Some(FORBIDDEN_TOKEN),
        )
        .await;
    assert!(
        cluster.json()["message"]
            .as_str()
            .unwrap()
            .ends_with("at the cluster scope")
    );
}

#[tokio::test]
async fn unknown_or_missing_credentials_are_401_with_a_status_body() {
    let (pki, server) = healthy(ApiServerOptions::default()).await;
    let mut c = client(&pki, &server).await;
    for (path, token) in [
        ("/api", None),
        ("/apis", Some("wrong")),
        ("/version", Some("wrong")),
        ("/readyz", Some("wrong")),
    ] {
        let reply = c.get(path, token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(reply.body, UNAUTHORIZED_BODY);
        assert_eq!(
            reply.headers.get("content-type").unwrap(),
            "application/json"
        );
    }
    let whoami = c
        .post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            None,
            "{}",
        )
        .await;
    assert_eq!(whoami.status, StatusCode::UNAUTHORIZED);
    let log = server.request_log();
    assert_eq!(log.len(), 5);
    assert!(log[1].bearer && log[1].user.is_none() && log[1].status == 401);
    assert!(
        !format!("{log:?}").contains("wrong"),
        "tokens are never recorded"
    );
}

#[tokio::test]
async fn anonymous_modes() {
    let disabled = ApiServerOptions {
        anonymous: Anonymous::Disabled,
        ..ApiServerOptions::default()
    };
    let (pki, server) = healthy(disabled).await;
    let mut c = client(&pki, &server).await;
    for path in ["/version", "/readyz", "/livez", "/healthz"] {
        let reply = c.get(path, None).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (StatusCode::UNAUTHORIZED, UNAUTHORIZED_BODY),
            "{path}"
        );
    }
    assert_eq!(
        c.get("/version", Some(GOOD_TOKEN)).await.status,
        StatusCode::OK
    );

    let system = ApiServerOptions {
        anonymous: Anonymous::SystemAnonymous,
        ..ApiServerOptions::default()
    };
    let (pki, server) = healthy(system).await;
    let mut c = client(&pki, &server).await;
    assert_eq!(c.get("/version", None).await.status, StatusCode::OK);
    let api = c.get("/api", None).await;
    assert_eq!(api.status, StatusCode::FORBIDDEN);
    assert_eq!(
        api.json()["message"],
        r#"forbidden: User "system:anonymous" cannot get path "/api""#
    );
    let whoami = c
        .post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            None,
            "{}",
        )
        .await;
    assert_eq!(whoami.status, StatusCode::FORBIDDEN);
    assert!(whoami.json()["message"].as_str().unwrap().starts_with(
        r#"selfsubjectreviews.authentication.k8s.io is forbidden: User "system:anonymous" cannot create resource"#
    ));
}

#[tokio::test]
async fn not_ready_server_lists_failing_checks() {
    let (pki, server) = healthy(ApiServerOptions {
        ready: false,
        ..ApiServerOptions::default()
    })
    .await;
    let mut c = client(&pki, &server).await;
    let readyz = c.get("/readyz", None).await;
    assert_eq!(readyz.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        readyz.body.contains("[-]etcd failed: reason withheld\n"),
        "{}",
        readyz.body
    );
    assert!(readyz.body.contains("[+]ping ok\n"));
    assert!(readyz.body.ends_with("readyz check failed\n"));
    assert_eq!(
        c.get("/healthz", None).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(c.get("/livez", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn version_padding_makes_only_version_large() {
    let options = ApiServerOptions {
        version_padding_bytes: 200_000,
        ..ApiServerOptions::default()
    };
    let (pki, server) = healthy(options).await;
    let mut c = client(&pki, &server).await;
    let version = c.get("/version", None).await;
    assert!(version.body.len() > 200_000);
    assert_eq!(version.json()["gitVersion"], DEMO_GIT_VERSION);
    assert_eq!(c.get("/readyz", None).await.body, "ok");
}

#[tokio::test]
async fn html_front_answers_every_path_with_a_login_page() {
    let options = ApiServerOptions {
        html_front: true,
        server_header: Some("nginx/1.25.3".into()),
        ..ApiServerOptions::default()
    };
    let (pki, server) = healthy(options).await;
    let mut c = client(&pki, &server).await;
    for path in ["/version", "/api", "/anything"] {
        let reply = c.get(path, Some(GOOD_TOKEN)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.headers.get("content-type").unwrap(),
            "text/html; charset=utf-8"
        );
        assert_eq!(reply.headers.get("server").unwrap(), "nginx/1.25.3");
        assert!(reply.headers.get("date").is_some());
        assert!(reply.body.starts_with("<!DOCTYPE html>"));
    }
}

#[tokio::test]
async fn plain_http_mode_and_http1() {
    let server = start(
        loopback(),
        Transport::PlainHttp,
        ApiServerOptions::default(),
    )
    .await
    .unwrap();
    assert!(server.url().starts_with("http://127.0.0.1:"));
    let mut c = Client::plain(server.addr()).await.unwrap();
    let version = c.get("/version", None).await;
    assert_eq!(version.version, hyper::Version::HTTP_11);
    assert_eq!(version.json()["gitVersion"], DEMO_GIT_VERSION);
    let pki = Pki::generate().unwrap();
    let err = Client::tls(server.addr(), TlsOptions::new(pki.root_ca_der()))
        .await
        .err();
    assert!(err.is_some(), "a TLS client cannot talk to the plain port");
}

#[tokio::test]
async fn http1_over_tls_when_alpn_says_so() {
    let (pki, server) = healthy(ApiServerOptions::default()).await;
    let mut options = TlsOptions::new(pki.root_ca_der());
    options.alpn = vec![b"http/1.1".to_vec()];
    let mut c = Client::tls(server.addr(), options).await.unwrap();
    let reply = c.get("/version", None).await;
    assert_eq!(reply.version, hyper::Version::HTTP_11);
    assert_eq!(reply.headers.get_all("date").iter().count(), 1);
    c.get("/livez", None).await;
    assert_eq!(server.connections(), 1, "keep-alive reuses the connection");
}

#[tokio::test]
async fn plain_http_on_the_tls_port_gets_gos_answer() {
    let (_pki, server) = healthy(ApiServerOptions::default()).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stream
        .write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert_eq!(
        answer,
        "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
    );
    assert_eq!(server.stats().plain_http_on_tls, 1);
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn broken_certificates_stop_the_client_before_any_request() {
    let pki = Pki::generate().unwrap();
    for (class, expected) in [
        (TlsClass::Expired, "expired"),
        (TlsClass::NotYetValid, "not valid yet"),
        (TlsClass::MissingIntermediate, "UnknownIssuer"),
        (TlsClass::WrongSan, "not valid for name"),
    ] {
        let server = tls_server(&pki, class, &ClientAuth::None, ApiServerOptions::default()).await;
        let err = Client::tls(server.addr(), TlsOptions::new(pki.root_ca_der()))
            .await
            .err()
            .unwrap();
        assert!(
            err.to_lowercase().contains(&expected.to_lowercase()),
            "{class:?}: {err}"
        );
        // The server notices the alert asynchronously.
        assert!(
            eventually(|| server.stats().tls_failures == 1).await,
            "{class:?}"
        );
        assert_eq!(server.requests(), 0);
    }
}

#[tokio::test]
async fn client_certificates_authenticate_as_cn_and_o() {
    let pki = Pki::generate().unwrap();
    let server = tls_server(
        &pki,
        TlsClass::Good,
        &pki.optional_client_auth(),
        ApiServerOptions::default(),
    )
    .await;
    let id = pki.client_identity("jane", &["devs"]).unwrap();
    let mut options = TlsOptions::new(pki.root_ca_der());
    options.client_cert = Some((vec![id.cert_der.clone()], id.key_der()));
    let mut c = Client::tls(server.addr(), options).await.unwrap();
    let whoami = c
        .post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            None,
            "{}",
        )
        .await;
    assert_eq!(whoami.status, StatusCode::CREATED);
    assert_eq!(whoami.json()["status"]["userInfo"]["username"], "jane");
    assert_eq!(
        whoami.json()["status"]["userInfo"]["groups"],
        json!(["devs", "system:authenticated"])
    );
    assert!(whoami.json()["status"]["userInfo"].get("uid").is_none());
    let log = server.request_log();
    assert!(log[0].client_cert && !log[0].bearer);
    // Optional: a client without a certificate still gets in with a token.
    let mut c = client(&pki, &server).await;
    assert_eq!(c.get("/api", Some(GOOD_TOKEN)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn required_client_certificate_fails_the_handshake_without_one() {
    let pki = Pki::generate().unwrap();
    let required = ClientAuth::Required(vec![pki.root_ca_der()]);
    let server = tls_server(&pki, TlsClass::Good, &required, ApiServerOptions::default()).await;
    // With TLS 1.3 the client learns of the rejection only when it reads.
    let attempt = async {
        let mut c = Client::tls(server.addr(), TlsOptions::new(pki.root_ca_der())).await?;
        c.try_send("GET", "/version", None, "").await
    };
    let outcome = tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .unwrap();
    assert!(
        outcome.is_err(),
        "a request without a client certificate must fail"
    );
    assert!(eventually(|| server.stats().tls_failures == 1).await);
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn shutdown_and_drop_close_the_port() {
    let (_pki, server) = healthy(ApiServerOptions::default()).await;
    let addr = server.addr();
    server.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());

    let (_pki, server) = healthy(ApiServerOptions::default()).await;
    let addr = server.addr();
    drop(server);
    let mut closed = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(closed, "dropping the handle closes the listener");
}

#[tokio::test]
async fn shutdown_ends_open_connections() {
    let (pki, server) = healthy(ApiServerOptions::default()).await;
    let addr = server.addr();
    let mut options = TlsOptions::new(pki.root_ca_der());
    options.alpn = vec![b"http/1.1".to_vec()];
    let mut c = Client::tls(addr, options).await.unwrap();
    c.get("/version", None).await;
    server.shutdown().await;
    let second = c.try_send("GET", "/version", None, "");
    let outcome = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .unwrap();
    assert!(
        outcome.is_err(),
        "the kept-alive connection was closed by shutdown"
    );
}

#[tokio::test]
async fn ipv6_loopback_when_available() {
    let pki = Pki::generate().unwrap();
    let config = pki
        .server_identity(TlsClass::Good, DEFAULT_SANS)
        .unwrap()
        .server_config(&ClientAuth::None)
        .unwrap();
    let Ok(server) = start(
        "[::1]:0".parse().unwrap(),
        Transport::Tls(config),
        ApiServerOptions::default(),
    )
    .await
    else {
        eprintln!("skipping: ::1 cannot be bound here");
        return;
    };
    assert!(server.url().starts_with("https://[::1]:"));
    let mut options = TlsOptions::new(pki.root_ca_der());
    options.server_name = "::1".into();
    let mut c = Client::tls(server.addr(), options).await.unwrap();
    assert_eq!(c.get("/version", None).await.status, StatusCode::OK);
}
