//! Hostile servers on loopback: a TLS API server (real TLS, certificates made here, HTTP/2 and
//! HTTP/1.1-only by the pad's parity) that echoes the `Authorization` header it receives into the place evidence is
//! taken from, and a CONNECT proxy that echoes `Proxy-Authorization` into its status line. The
//! echo is placed after `pad` filler bytes so that, over a range of pads, it straddles every
//! offset around the excerpt limit (200 bytes): whole, cut in the middle, or cut to a prefix.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kube_reach::demo::{ClientAuth, Pki, TlsClass};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::outputs::assert_report_clean;
use super::support::{World, init};

/// Where the server puts the credential it received.
#[derive(Clone, Copy, Debug)]
pub enum Echo {
    /// `/version` answers 200 with a text body (not Kubernetes): `pad` bytes, then the value.
    VersionBody,
    /// `/version` answers 404 with the value in its `Server` header.
    ServerHeader,
    /// `/version` answers 302 to a login page whose URL carries the value.
    Redirect,
    /// `/readyz` answers 500 listing a failing check whose message ends in the value.
    ReadyzLine,
    /// The whoami review answers with the value as the username.
    WhoamiUsername,
    /// The whoami review answers 401 with a `Status` whose message carries the value.
    StatusMessage,
    /// Every access review answers with an evaluation error carrying the value.
    RbacEvaluationError,
    /// `/version` answers 200 with a text body quoting the value JSON-escaped the way PHP and
    /// some Java encoders write it (`/` as `\/`, `"` as `\"`).
    EscapedBody,
    /// `/version` answers 302 to a login page whose `rd=` parameter carries the value
    /// percent-encoded (`/` as `%2F`, `+` as `%2B`).
    EncodedRedirect,
    /// `/version` answers 200 with a text body quoting `user:` and the value base64-encoded
    /// (a debug page showing the `Basic` credential it decoded, re-encoded).
    Base64Body,
    /// `/version` answers 302 to a login page whose `rd=` parameter carries the value
    /// percent-encoded with lowercase hex digits (`%2f`).
    LowerEncodedRedirect,
    /// Every path answers 400 with Go's `Client sent an HTTP request to an HTTPS server.` and
    /// the value (a load balancer speaking plain HTTP to the API server's TLS port, then
    /// adding what it forwarded).
    PlainToTls,
    /// `/version` answers 403 with an HTML sign-in page quoting the value the way Go's
    /// `html/template` escapes it (`+` as `&#43;`), as `oauth2-proxy` in front of a cluster does.
    HtmlPage,
    /// The whoami review answers with the value as the username and every access review is
    /// denied, so the RBAC fix's YAML names the value as its subject.
    DeniedUsername,
}

pub const ALL_ECHOES: [Echo; 7] = [
    Echo::VersionBody,
    Echo::ServerHeader,
    Echo::Redirect,
    Echo::ReadyzLine,
    Echo::WhoamiUsername,
    Echo::StatusMessage,
    Echo::RbacEvaluationError,
];

#[derive(Clone, Copy)]
struct Behaviour {
    echo: Echo,
    pad: usize,
    /// Echo the whole header value (`Bearer …`) or only the token after it.
    whole_header: bool,
}

const VERSION_JSON: &str =
    r#"{"major":"1","minor":"31","gitVersion":"v1.31.0","platform":"linux/amd64"}"#;

fn answer(b: Behaviour, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let auth = req
        .headers()
        .get("authorization")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let value = if b.whole_header {
        auth.clone()
    } else {
        auth.strip_prefix("Bearer ").unwrap_or(&auth).to_string()
    };
    let pad = "x".repeat(b.pad);
    let padded = format!("{pad}{value}");
    let path = req.uri().path();
    let typed = |status: u16, content_type: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("response")
    };
    let json = |status, body| typed(status, "application/json", body);
    let text = |body| typed(200, "text/plain", body);
    let redirect = |location: String| {
        Response::builder()
            .status(302)
            .header("location", location)
            .body(Full::new(Bytes::new()))
            .expect("response")
    };
    let status_json = |code: u16, message: &str| {
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": message, "reason": "Unauthorized", "code": code})
        .to_string()
    };
    match (b.echo, path) {
        (Echo::VersionBody, "/version") => text(padded),
        (Echo::ServerHeader, "/version") => Response::builder()
            .status(404)
            .header("server", value.as_str())
            .body(Full::new(Bytes::from("not found")))
            .expect("response"),
        (Echo::Redirect, "/version") => redirect(format!("https://login.example/{padded}")),
        (Echo::EscapedBody, "/version") => text(format!("{pad}{}", json_escaped(&value))),
        (Echo::EncodedRedirect, "/version") => redirect(format!(
            "https://login.example/?{pad}rd={}",
            percent_encoded(&value)
        )),
        (Echo::Base64Body, "/version") => text(format!(
            "{pad}{}",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("user:{value}")
            )
        )),
        (Echo::LowerEncodedRedirect, "/version") => redirect(format!(
            "https://login.example/?{pad}rd={}",
            lower_hex(&percent_encoded(&value))
        )),
        (Echo::HtmlPage, "/version") => typed(
            403,
            "text/html; charset=utf-8",
            format!(
                "<!DOCTYPE html><html><body>{pad}<p>Signed in as {}</p></body></html>",
                go_html_escaped(&value)
            ),
        ),
        (Echo::PlainToTls, _) => Response::builder()
            .status(400)
            .body(Full::new(Bytes::from(format!(
                "Client sent an HTTP request to an HTTPS server.\n{padded}"
            ))))
            .expect("response"),
        (_, "/version") => json(200, VERSION_JSON.into()),
        (Echo::ReadyzLine, "/readyz") => Response::builder()
            .status(500)
            .body(Full::new(Bytes::from(format!(
                "[+]ping ok\n[-]etcd failed: {padded}\nreadyz check failed\n"
            ))))
            .expect("response"),
        (_, "/readyz") => Response::new(Full::new(Bytes::from("ok"))),
        (Echo::WhoamiUsername, p) if p.ends_with("/selfsubjectreviews") => json(
            201,
            serde_json::json!({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                "status": {"userInfo": {"username": padded, "groups": [value]}}})
            .to_string(),
        ),
        (Echo::DeniedUsername, p) if p.ends_with("/selfsubjectreviews") => json(
            201,
            serde_json::json!({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                "status": {"userInfo": {"username": value}}})
            .to_string(),
        ),
        (Echo::DeniedUsername, p) if p.ends_with("reviews") => json(
            201,
            serde_json::json!({"kind": "SelfSubjectAccessReview", "status": {"allowed": false}})
                .to_string(),
        ),
        (Echo::StatusMessage, p) if p.ends_with("/selfsubjectreviews") => {
            json(401, status_json(401, &padded))
        }
        (_, p) if p.ends_with("/selfsubjectreviews") => json(
            201,
            serde_json::json!({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                "status": {"userInfo": {"username": "system:serviceaccount:ci:deployer"}}})
            .to_string(),
        ),
        (Echo::RbacEvaluationError, p) if p.ends_with("reviews") => json(
            201,
            serde_json::json!({"kind": "SelfSubjectAccessReview", "status": {"allowed": false,
                "evaluationError": padded, "incomplete": true,
                "resourceRules": [], "nonResourceRules": []}})
            .to_string(),
        ),
        (_, p) if p.ends_with("selfsubjectaccessreviews") => json(
            201,
            serde_json::json!({"kind": "SelfSubjectAccessReview", "status": {"allowed": true}})
                .to_string(),
        ),
        _ => json(404, status_json(404, "not found")),
    }
}

/// `value` as a JSON string's content with `/` escaped too (PHP's `json_encode`).
pub fn json_escaped(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('/', "\\/")
}

/// `value` with every byte outside RFC 3986's unreserved set percent-encoded.
pub fn percent_encoded(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `value` as Go's `html/template` writes text: `&`, `<`, `>`, `"`, `'` and `+` as entities.
pub fn go_html_escaped(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
        .replace('+', "&#43;")
}

/// `encoded` (percent-encoded) with the two hex digits after every `%` in lowercase.
pub fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut hex_left = 0;
    for c in encoded.chars() {
        if hex_left > 0 {
            out.push(c.to_ascii_lowercase());
            hex_left -= 1;
        } else {
            hex_left = if c == '%' { 2 } else { 0 };
            out.push(c);
        }
    }
    out
}

/// A hostile TLS API server on 127.0.0.1 (see [`Echo`]); returns its URL and the CA to trust.
pub async fn start_hostile(
    echo: Echo,
    pad: usize,
    whole_header: bool,
    pki: &Pki,
) -> (String, String) {
    let b = Behaviour {
        echo,
        pad,
        whole_header,
    };
    start(b, pki).await
}

/// A hostile TLS API server on 127.0.0.1; returns its URL and the CA to trust. It serves until
/// the runtime ends.
async fn start(b: Behaviour, pki: &Pki) -> (String, String) {
    let id = pki
        .server_identity(TlsClass::Good, kube_reach::demo::DEFAULT_SANS)
        .expect("identity");
    let config = id.server_config(&ClientAuth::None).expect("server config");
    // Odd pads offer HTTP/1.1 only (a load balancer without h2), even pads h2 and HTTP/1.1, so
    // every echo is met over both protocols.
    let config = if b.pad % 2 == 1 {
        let mut h1 = (*config).clone();
        h1.alpn_protocols = vec![b"http/1.1".to_vec()];
        std::sync::Arc::new(h1)
    } else {
        config
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        // Bounded: a run makes a handful of connections.
        for _ in 0..64 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| async move {
                    Ok::<_, Infallible>(answer(b, &req))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (
        format!("https://127.0.0.1:{}", addr.port()),
        id.kubeconfig_ca_pem.clone(),
    )
}

/// A CONNECT proxy on 127.0.0.1 that refuses every tunnel with a status line quoting the
/// `Proxy-Authorization` value it received (as some appliances do).
pub async fn echoing_proxy(pad: usize) -> SocketAddr {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        for _ in 0..16 {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                match tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let text = String::from_utf8_lossy(&head);
            let auth = text
                .lines()
                .find_map(|l| l.strip_prefix("Proxy-Authorization: "))
                .unwrap_or("none")
                .to_string();
            let reply = format!(
                "HTTP/1.1 407 {}{auth} rejected\r\nProxy-Authenticate: Basic realm=\"x\"\r\ncontent-length: 0\r\n\r\n",
                "y".repeat(pad)
            );
            let _ = tcp.write_all(reply.as_bytes()).await;
            let _ = tcp.shutdown().await;
        }
    });
    addr
}

/// The canary token of one hostile run, unique per echo and pad.
pub fn canary(tag: &str) -> String {
    format!("Zq7Kx{tag}CanaryTok9f3e7a1b5c")
}

/// An in-process run of `--server url --token-file --ca-file` with `token` and `ca` written
/// into the world, on the given runtime.
pub fn run_with_token_file(
    rt: &tokio::runtime::Runtime,
    world: &World,
    url: String,
    ca: &str,
    token: &str,
) -> kube_reach::in_process::Outputs {
    let token_file = world.write("token", &format!("{token}\n"));
    let ca_file = world.write("ca.pem", ca);
    let mut args = world.base_args();
    args.extend([
        "--server".into(),
        url,
        "--token-file".into(),
        token_file.display().to_string(),
        "--ca-file".into(),
        ca_file.display().to_string(),
    ]);
    rt.block_on(world.run_args_outputs(&args, &[]))
}

/// One run against a hostile server: `--server` with the token in a `--token-file` (the
/// source that was never registered), outputs rendered and checked.
pub fn run_once(echo: Echo, pad: usize, whole_header: bool) -> Vec<(&'static str, String)> {
    init();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let world = World::new();
    let pki = Pki::generate().expect("pki");
    let (url, ca) = rt.block_on(start_hostile(echo, pad, whole_header, &pki));
    let token = canary(&format!("{pad}{}", whole_header as u8));
    let report = run_with_token_file(&rt, &world, url, &ca, &token);
    assert_report_clean(&report, &[&token])
}

/// Pads that put the echo at every offset around the 200-byte excerpt limit, and a few far
/// from it.
pub fn pads() -> Vec<usize> {
    let mut pads = vec![0, 100];
    pads.extend((160..=200).step_by(3));
    pads.push(240);
    pads
}

#[test]
fn hostile_servers_echoing_authorization_never_get_the_token_printed() {
    for echo in ALL_ECHOES {
        for (i, pad) in pads().into_iter().enumerate() {
            // Alternate between echoing `Bearer <token>` and the bare token.
            run_once(echo, pad, i % 2 == 0);
        }
    }
}

#[test]
fn the_echo_really_reaches_the_evidence() {
    // Guard against a suite that passes because nothing is echoed: the marker the server puts
    // before the value is in the evidence.
    let outputs = run_once(Echo::ReadyzLine, 3, false);
    let json = &outputs[1].1;
    assert!(json.contains("etcd failed: xxx"), "{json}");
    let outputs = run_once(Echo::WhoamiUsername, 0, true);
    assert!(outputs[1].1.contains("[REDACTED]"), "{}", outputs[1].1);
}

#[test]
fn a_proxy_status_line_echoing_proxy_authorization_never_prints_it() {
    init();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let world = World::new();
    let password = "pr0xyCanaryPassw0rd77";
    for pad in [0usize, 150, 180, 190, 195, 200] {
        let proxy = rt.block_on(echoing_proxy(pad));
        let mut args = world.base_args();
        args.extend(["--server".into(), "https://api.k8s.test:6443".into()]);
        let proxy_url = format!("http://ci:{password}@127.0.0.1:{}", proxy.port());
        let report = rt.block_on(world.run_args_outputs(&args, &[("HTTPS_PROXY", &proxy_url)]));
        let basic = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("ci:{password}"),
        );
        let outputs = assert_report_clean(&report, &[password, &basic]);
        assert!(outputs[1].1.contains("407"), "{}", outputs[1].1);
    }
}

#[test]
fn re_encoded_echoes_of_the_token_never_print_it() {
    // A base64-style static token with a `/` or `+` every few characters: escaped or
    // percent-encoded, no 12-byte piece of it survives verbatim, so matching the value as
    // written misses the whole token.
    init();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pki = Pki::generate().expect("pki");
    for echo in [Echo::EscapedBody, Echo::EncodedRedirect] {
        for pad in [0usize, 3, 150, 185, 190, 199] {
            let world = World::new();
            let token = format!("Zq7K/x{pad}+Cana/ryTo+k9f3/e7a1=b5c/Esc\\ap\"e");
            let (url, ca) = rt.block_on(start_hostile(echo, pad, false, &pki));
            let report = run_with_token_file(&rt, &world, url, &ca, &token);
            let escaped = json_escaped(&token);
            let encoded = percent_encoded(&token);
            let outputs = assert_report_clean(&report, &[&token, &escaped, &encoded]);
            let json = &outputs[1].1;
            // The echo's own evidence line, from where it starts: for pad 0 too (where the pad
            // alone is the empty string, found in any text).
            let place = match echo {
                Echo::EscapedBody => "body: ",
                _ => "location: https://login.example/?",
            };
            let start = format!("{place}{}", "x".repeat(pad.min(40)));
            assert!(json.contains(&start), "{echo:?} {pad}: {json}");
        }
    }
}
