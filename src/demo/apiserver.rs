//! A fake kube-apiserver: hyper 1 behind tokio-rustls (ALPN `h2`, `http/1.1`) or plain HTTP.
//!
//! It answers what kubectl and the tool ask (see `research/test-harness.md` §4): `/version`,
//! health endpoints, legacy discovery, the self-reviews and a NetworkPolicy list, with the
//! status codes and `Status` bodies a real server sends. The Kubernetes behaviour lives in
//! its child module `routes`; this file owns sockets, TLS, connection accounting and shutdown.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

mod body;
pub(super) mod routes;

use super::DemoError;
use super::rbac::{Rule, User, deploy_rules};

/// gitVersion of the demo server. The minor (31) matters: the preinstalled Google Cloud SDK
/// kubectl dispatcher picks its bundled client by the server's minor version.
pub const DEMO_GIT_VERSION: &str = "v1.31.0-kube-reach-demo";

/// Token of the demo deployer (allowed what a deploy job needs).
pub const GOOD_TOKEN: &str = "good-token";
/// Token of an authenticated user that RBAC denies everything.
pub const FORBIDDEN_TOKEN: &str = "forbidden-token";

/// How long a client may take to complete the TLS handshake or send its first bytes.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Request-log entries kept (oldest dropped first), so a long-lived `serve` stays bounded.
const REQUEST_LOG_LIMIT: usize = 10_000;

/// What the listener speaks.
#[derive(Clone, Debug)]
pub enum Transport {
    /// TLS with this config (see [`super::pki::ServerIdentity::server_config`]).
    Tls(Arc<rustls::ServerConfig>),
    /// Plain HTTP (h1 or h2 prior knowledge): reproduces "plain HTTP on the TLS port".
    PlainHttp,
}

/// How requests without credentials are treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Anonymous {
    /// Public paths (`/version`, `/readyz`, `/livez`, `/healthz`) answer; anything else is 401.
    #[default]
    PublicOnly,
    /// Requests become `system:anonymous`: public paths answer, anything else is 403 (a real
    /// kube-apiserver with default flags).
    SystemAnonymous,
    /// `--anonymous-auth=false`: every request without credentials is 401, public paths too.
    Disabled,
}

/// The `/version` document.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerVersion {
    /// e.g. `"1"`.
    pub major: String,
    /// e.g. `"31"`.
    pub minor: String,
    /// e.g. [`DEMO_GIT_VERSION`].
    pub git_version: String,
    /// Commit hash.
    pub git_commit: String,
    /// `clean`.
    pub git_tree_state: String,
    /// RFC 3339.
    pub build_date: String,
    /// e.g. `go1.22.5`.
    pub go_version: String,
    /// `gc`.
    pub compiler: String,
    /// e.g. `linux/amd64`.
    pub platform: String,
}

impl Default for ServerVersion {
    fn default() -> Self {
        ServerVersion {
            major: "1".into(),
            minor: "31".into(),
            git_version: DEMO_GIT_VERSION.into(),
            git_commit: "0000000000000000000000000000000000000000".into(),
            git_tree_state: "clean".into(),
            build_date: "2026-01-01T00:00:00Z".into(),
            go_version: "go1.22.5".into(),
            compiler: "gc".into(),
            platform: "linux/amd64".into(),
        }
    }
}

/// Behaviour of one fake server. `Default` is a healthy 1.31 server with the demo tokens.
#[derive(Clone, Debug)]
pub struct ApiServerOptions {
    /// The `/version` document.
    pub version: ServerVersion,
    /// Bearer token → user. Any other token is 401 on every path, public ones included: as in
    /// kube-apiserver, authentication runs before authorization, and only a request without
    /// credentials is anonymous.
    pub tokens: Vec<(String, User)>,
    /// Rules for users authenticated by client certificate (CN = user, O = groups).
    pub client_cert_rules: Vec<Rule>,
    /// Treatment of requests without credentials.
    pub anonymous: Anonymous,
    /// `false`: `/readyz` and `/healthz` answer 500 with `[-]etcd failed: reason withheld`.
    pub ready: bool,
    /// Spaces added inside the `/version` JSON, to make only that response large (an MTU black
    /// hole stalls large responses while small ones pass).
    pub version_padding_bytes: usize,
    /// Answer every path with a 200 `text/html` login page: a load balancer or SSO front, not
    /// Kubernetes.
    pub html_front: bool,
    /// `Server` header value; kube-apiserver sends none.
    pub server_header: Option<String>,
    /// `false` emulates a server before 1.28: `selfsubjectreviews` is 404 and not in discovery.
    pub self_subject_review: bool,
    /// NetworkPolicies returned by the list endpoints (filtered by namespace).
    pub network_policies: Vec<NetworkPolicy>,
    /// Emulates a GitLab agent with `access_as: ci_job` whose own service account (`.1`) may
    /// not impersonate the job's identity (`.0`): kube-apiserver's impersonation filter then
    /// answers every authenticated request with 403 `cannot impersonate resource "users"`.
    pub impersonation_denied: Option<(String, String)>,
    /// Pods, Services and EndpointSlices (in that order of kinds), served at their GET and
    /// list paths: the runner pod and `default/kubernetes` of an in-cluster world.
    pub objects: routes::Objects,
    /// Which HTTP versions the server speaks (and offers in ALPN).
    pub protocols: Protocols,
    /// Each response body is sent this long after its head (a slow backend behind a load
    /// balancer): a client that reuses the connection before the body ends breaks.
    pub body_delay: Option<Duration>,
    /// `(path, header, value)`: headers added to the responses of that path, e.g. a
    /// `connection: close` a load balancer adds.
    pub extra_headers: Vec<(String, String, String)>,
}

/// The HTTP versions a fake server speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocols {
    /// ALPN `h2` then `http/1.1`, like kube-apiserver.
    #[default]
    Both,
    /// HTTP/1.1 only, `h2` not offered: many load balancers and auth proxies.
    Http1Only,
}

impl Default for ApiServerOptions {
    fn default() -> Self {
        ApiServerOptions {
            version: ServerVersion::default(),
            tokens: default_tokens(),
            client_cert_rules: deploy_rules(),
            anonymous: Anonymous::default(),
            ready: true,
            version_padding_bytes: 0,
            html_front: false,
            server_header: None,
            self_subject_review: true,
            network_policies: Vec::new(),
            impersonation_denied: None,
            objects: routes::Objects::default(),
            protocols: Protocols::default(),
            body_delay: None,
            extra_headers: Vec::new(),
        }
    }
}

/// `good-token` → `system:serviceaccount:ci:deployer` with [`deploy_rules`];
/// `forbidden-token` → `system:serviceaccount:ci:nobody`, no rules.
pub fn default_tokens() -> Vec<(String, User)> {
    vec![
        (
            GOOD_TOKEN.into(),
            User::service_account(
                "ci",
                "deployer",
                "7d3c5e0a-0001-4c1e-9d1a-6b6f6b2d0001",
                deploy_rules(),
            ),
        ),
        (
            FORBIDDEN_TOKEN.into(),
            User::service_account(
                "ci",
                "nobody",
                "7d3c5e0a-0002-4c1e-9d1a-6b6f6b2d0002",
                Vec::new(),
            ),
        ),
    ]
}

/// A token of `ci-base`, a user that may impersonate users, groups and the `reason` user extra
/// (and has no other right: no deploy step passes as itself).
pub const IMPERSONATOR_TOKEN: &str = "s3cr3t-7a1b-4c2d";

/// [`default_tokens`], [`IMPERSONATOR_TOKEN`], and a configured user `deployer` with
/// [`deploy_rules`] whose token no kubeconfig holds: only impersonation acts as it.
pub fn impersonation_tokens() -> Vec<(String, User)> {
    let user = |name: &str, rules| User {
        username: name.into(),
        uid: String::new(),
        groups: vec!["system:authenticated".into()],
        rules,
    };
    let may_impersonate = vec![
        Rule::new(&["impersonate"], &[""], &["users", "groups"]),
        Rule::new(
            &["impersonate"],
            &["authentication.k8s.io"],
            &["userextras/reason"],
        ),
    ];
    let mut tokens = default_tokens();
    tokens.push((IMPERSONATOR_TOKEN.into(), user("ci-base", may_impersonate)));
    tokens.push((
        "deployer-only-by-impersonation".into(),
        user("deployer", deploy_rules()),
    ));
    tokens
}

/// Counters a test can assert on (e.g. "every request shared one connection", or "no request
/// reached the server because TLS verification failed first").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// TCP connections accepted.
    pub connections: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// TLS handshakes that failed or timed out (e.g. the client rejected the certificate).
    pub tls_failures: u64,
    /// Plain-HTTP requests that arrived on the TLS port (answered 400 like Go's net/http).
    pub plain_http_on_tls: u64,
    /// HTTP requests answered.
    pub requests: u64,
}

/// One answered request, without credentials: only whether a token or client certificate came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path and query, e.g. `/readyz?verbose`.
    pub path: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub http_version: String,
    /// Whether an `Authorization: Bearer` header was present (the token itself is never kept).
    pub bearer: bool,
    /// Whether the TLS client presented a certificate.
    pub client_cert: bool,
    /// Username the request was authenticated as, if any.
    pub user: Option<String>,
    /// The user it impersonated (`Impersonate-User`), once the impersonation was allowed.
    pub impersonated: Option<String>,
    /// Response status code.
    pub status: u16,
}

#[derive(Default)]
pub(crate) struct Counters {
    connections: AtomicU64,
    tls_handshakes: AtomicU64,
    tls_failures: AtomicU64,
    plain_http_on_tls: AtomicU64,
    requests: AtomicU64,
    audit_ids: AtomicU64,
}

/// Shared state of one server, visible to every connection.
pub(crate) struct Shared {
    pub(crate) options: ApiServerOptions,
    pub(crate) addr: SocketAddr,
    counters: Counters,
    log: Mutex<VecDeque<RequestRecord>>,
}

impl Shared {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts and logs a request (called once per response).
    pub(crate) fn record(&self, record: RequestRecord) {
        Self::bump(&self.counters.requests);
        if let Ok(mut log) = self.log.lock() {
            if log.len() >= REQUEST_LOG_LIMIT {
                log.pop_front();
            }
            log.push_back(record);
        }
    }

    /// Audit-ID-like value unique per request on this server.
    pub(crate) fn next_audit_id(&self) -> String {
        let n = self.counters.audit_ids.fetch_add(1, Ordering::Relaxed) + 1;
        format!("6b2d5e0a-{:04x}-4000-8000-{:012x}", self.addr.port(), n)
    }
}

/// A running fake API server. Dropping it stops the accept loop and every connection.
pub struct ApiServerHandle {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ApiServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServerHandle")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl ApiServerHandle {
    /// The bound address (the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://ADDR` or `http://ADDR` (IPv6 in brackets).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ServerStats {
        let c = &self.shared.counters;
        ServerStats {
            connections: c.connections.load(Ordering::Relaxed),
            tls_handshakes: c.tls_handshakes.load(Ordering::Relaxed),
            tls_failures: c.tls_failures.load(Ordering::Relaxed),
            plain_http_on_tls: c.plain_http_on_tls.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
        }
    }

    /// HTTP requests answered so far.
    pub fn requests(&self) -> u64 {
        self.stats().requests
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.stats().connections
    }

    /// The requests answered so far (oldest first, at most the last 10 000).
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.shared
            .log
            .lock()
            .map(|log| log.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Stops the server and waits until the accept loop has ended (the port is closed when this
    /// returns; `drop` only signals).
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ApiServerHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Binds `addr` (port 0 picks a free port) and starts serving. Must run inside a tokio runtime.
pub async fn start(
    addr: SocketAddr,
    transport: Transport,
    options: ApiServerOptions,
) -> Result<ApiServerHandle, DemoError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| DemoError::io(format!("binding the fake API server to {addr}"), e))?;
    start_on(listener, transport, options)
}

/// Starts serving on an already bound listener.
pub fn start_on(
    listener: TcpListener,
    transport: Transport,
    options: ApiServerOptions,
) -> Result<ApiServerHandle, DemoError> {
    let addr = listener
        .local_addr()
        .map_err(|e| DemoError::io("reading the fake API server's address", e))?;
    let shared = Arc::new(Shared {
        options,
        addr,
        counters: Counters::default(),
        log: Mutex::new(VecDeque::new()),
    });
    let (shutdown, stop) = watch::channel(false);
    let tls = matches!(transport, Transport::Tls(_));
    let transport = match (transport, shared.options.protocols) {
        (Transport::Tls(config), Protocols::Http1Only) => {
            // An HTTP/1.1-only server must not offer h2.
            let mut config = (*config).clone();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Transport::Tls(Arc::new(config))
        }
        (transport, _) => transport,
    };
    let task = tokio::spawn(accept_loop(listener, transport, shared.clone(), stop));
    Ok(ApiServerHandle {
        addr,
        tls,
        shared,
        shutdown,
        task: Some(task),
    })
}

/// Resolves once the server is told to stop (or its handle is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn accept_loop(
    listener: TcpListener,
    transport: Transport,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                Shared::bump(&shared.counters.connections);
                let conn = connection(stream, transport.clone(), shared.clone());
                let mut stop = stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = stopped(&mut stop) => {}
                        _ = conn => {}
                    }
                });
            }
            // Out of file descriptors and the like: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn connection(stream: TcpStream, transport: Transport, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    match transport {
        Transport::PlainHttp => serve_http(stream, shared, None).await,
        Transport::Tls(config) => serve_tls(stream, config, shared).await,
    }
}

async fn serve_tls(stream: TcpStream, config: Arc<rustls::ServerConfig>, shared: Arc<Shared>) {
    match first_byte(&stream).await {
        None => return,
        Some(b) if b.is_ascii_uppercase() => {
            Shared::bump(&shared.counters.plain_http_on_tls);
            return reject_plain_http(stream).await;
        }
        Some(_) => {}
    }
    let accepted =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(stream)).await;
    let tls = match accepted {
        Ok(Ok(tls)) => tls,
        _ => return Shared::bump(&shared.counters.tls_failures),
    };
    Shared::bump(&shared.counters.tls_handshakes);
    let cert_user = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| user_from_certificate(leaf, &shared.options.client_cert_rules));
    serve_http(tls, shared, cert_user).await
}

/// Peeks at the first byte the client sends (None: closed, error or silent too long).
async fn first_byte(stream: &TcpStream) -> Option<u8> {
    let mut buf = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut buf)).await {
        Ok(Ok(1)) => Some(buf[0]),
        _ => None,
    }
}

/// What Go's net/http (and so kube-apiserver) answers to plain HTTP on a TLS port.
async fn reject_plain_http(mut stream: TcpStream) {
    let _ = stream
        .write_all(
            b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
        )
        .await;
    let _ = stream.shutdown().await;
}

/// CN → username, O → groups (plus `system:authenticated`), as kube-apiserver maps client
/// certificates.
fn user_from_certificate(leaf: &[u8], rules: &[Rule]) -> Option<User> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let username = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let mut groups: Vec<String> = cert
        .subject()
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    groups.push("system:authenticated".into());
    Some(User {
        username,
        uid: String::new(),
        groups,
        rules: rules.to_vec(),
    })
}

async fn serve_http<I>(io: I, shared: Arc<Shared>, cert_user: Option<User>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cert_user = Arc::new(cert_user);
    let http1_only = shared.options.protocols == Protocols::Http1Only;
    let service = service_fn(move |request: Request<Incoming>| {
        let shared = shared.clone();
        let cert_user = cert_user.clone();
        async move {
            let path = request.uri().path().to_string();
            let mut response = routes::handle(request, &shared, cert_user.as_ref().as_ref()).await;
            add_headers(&mut response, &path, &shared.options.extra_headers);
            let delay = shared.options.body_delay;
            Ok::<_, Infallible>(response.map(|body| Delayed::new(body, delay)))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if http1_only {
        builder = builder.http1_only();
    }
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let _ = builder.serve_connection(TokioIo::new(io), service).await;
}

fn add_headers(
    response: &mut Response<Full<Bytes>>,
    path: &str,
    extra: &[(String, String, String)],
) {
    for (_, name, value) in extra.iter().filter(|(at, _, _)| at == path) {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
}

/// A body whose bytes come `delay` after the head was sent (also for the tests' other fakes).
pub struct Delayed {
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    inner: Full<Bytes>,
}

impl Delayed {
    /// `inner`, held back `delay` (none: at once).
    pub fn new(inner: Full<Bytes>, delay: Option<Duration>) -> Self {
        Delayed {
            sleep: delay.map(|d| Box::pin(tokio::time::sleep(d))),
            inner,
        }
    }
}

impl hyper::body::Body for Delayed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        if let Some(sleep) = self.sleep.as_mut() {
            std::task::ready!(sleep.as_mut().poll(cx));
            self.sleep = None;
        }
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.sleep.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
