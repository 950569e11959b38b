//! A small HTTP server for the fakes: hyper 1 behind tokio-rustls (or plain HTTP), bound to
//! 127.0.0.1 on a free port, one handler for every request. Every request is recorded without
//! secret values: header names, and where (if anywhere) the test's canary job token appeared.
//! Dropping the server stops its accept loop and every connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AUTHORIZATION, HeaderMap};
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use kube_reach::demo::apiserver::Delayed;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Largest request body read.
const MAX_BODY: usize = 1 << 20;
/// How much later than its head an HTTP/1.1-only fake sends a body.
const H1_BODY_DELAY: Duration = Duration::from_millis(20);
/// How long a client may take for its TLS handshake or request headers.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// One request as the handler sees it.
pub struct Req {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub type Handler = Arc<dyn Fn(Req) -> BoxFuture<'static, Response<Full<Bytes>>> + Send + Sync>;

/// One answered request, as recorded: never a secret value.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query, with the canary (if it was there) replaced by `<canary>`.
    pub path: String,
    /// Header names, lower-case, in arrival order.
    pub header_names: Vec<String>,
    /// The `Authorization` value with the canary replaced by `<canary>`.
    pub authorization: Option<String>,
    /// Where the canary appeared: header names, `path`, `body`.
    pub canary_in: Vec<String>,
    pub status: u16,
}

impl Seen {
    pub fn has_header(&self, name: &str) -> bool {
        self.header_names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// A running fake server.
pub struct FakeServer {
    addr: SocketAddr,
    tls: bool,
    log: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl FakeServer {
    /// Binds 127.0.0.1 on a free port and serves `handler` on `rt`; TLS when `tls` is given.
    /// `canary` is the secret whose every appearance in a request is recorded.
    pub fn start(
        rt: &Runtime,
        tls: Option<Arc<rustls::ServerConfig>>,
        canary: &str,
        handler: Handler,
    ) -> FakeServer {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("local address");
        let listener = {
            let _guard = rt.enter();
            TcpListener::from_std(listener).expect("tokio listener")
        };
        let (stop, stopped) = watch::channel(false);
        let server = FakeServer {
            addr,
            tls: tls.is_some(),
            log: Arc::default(),
            connections: Arc::default(),
            stop,
        };
        let shared = Arc::new(Shared {
            canary: canary.to_string(),
            handler,
            log: server.log.clone(),
        });
        rt.spawn(accept_loop(
            listener,
            tls.map(TlsAcceptor::from),
            shared,
            server.connections.clone(),
            stopped,
        ));
        server
    }

    /// `https://127.0.0.1:PORT` (or `http://`).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The requests answered so far, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

struct Shared {
    canary: String,
    handler: Handler,
    log: Arc<Mutex<Vec<Seen>>>,
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    connections: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        connections.fetch_add(1, Ordering::SeqCst);
        let (tls, shared, mut stop) = (tls.clone(), shared.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = stopped(&mut stop) => {}
                _ = connection(stream, tls, shared) => {}
            }
        });
    }
}

async fn connection(stream: TcpStream, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => serve(stream, shared, false).await,
        Some(acceptor) => {
            if let Ok(Ok(tls)) = tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(stream)).await
            {
                // A TLS config that does not offer h2 makes an HTTP/1.1-only server.
                let h1_only = tls.get_ref().1.alpn_protocol() != Some(b"h2".as_slice());
                serve(tls, shared, h1_only).await;
            }
        }
    }
}

async fn serve<I>(io: I, shared: Arc<Shared>, http1_only: bool)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // An HTTP/1.1-only fake sends each body a little after its head, as a load balancer in
    // front of a slow backend does: a client reusing the connection too early breaks.
    let delay = http1_only.then_some(H1_BODY_DELAY);
    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        async move {
            let response = answer(request, &shared).await;
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
        .header_read_timeout(CLIENT_TIMEOUT);
    let _ = builder.serve_connection(TokioIo::new(io), service).await;
}

async fn answer(request: Request<hyper::body::Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    let canary = shared.canary.as_str();
    let mask = |text: &str| text.replace(canary, "<canary>");
    let mut canary_in = Vec::new();
    if path.contains(canary) {
        canary_in.push("path".to_string());
    }
    for (name, value) in &parts.headers {
        if String::from_utf8_lossy(value.as_bytes()).contains(canary) {
            canary_in.push(name.as_str().to_string());
        }
    }
    if String::from_utf8_lossy(&body).contains(canary) {
        canary_in.push("body".to_string());
    }
    let mut seen = Seen {
        method: parts.method.to_string(),
        path: mask(&path),
        header_names: parts
            .headers
            .keys()
            .map(|n| n.as_str().to_string())
            .collect(),
        authorization: parts
            .headers
            .get(AUTHORIZATION)
            .map(|v| mask(&String::from_utf8_lossy(v.as_bytes()))),
        canary_in,
        status: 0,
    };
    let response = (shared.handler)(Req {
        method: parts.method,
        path,
        headers: parts.headers,
        body,
    })
    .await;
    seen.status = response.status().as_u16();
    if let Ok(mut log) = shared.log.lock() {
        log.push(seen);
    }
    response
}

/// A response with a status, headers and body.
pub fn reply(
    status: u16,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(body.into()))
        .expect("a valid fake response")
}
