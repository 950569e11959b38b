//! HTTP over the very connection the lower layers verified (HTTP/2 when the server offers it,
//! so independent requests share one connection in parallel). Credentials are attached only
//! by a [`HttpConnection`] built from a [`VerifiedTls`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Mutex;

use super::MAX_RESPONSE_BYTES;
use super::tls::VerifiedTls;
use crate::secret::{JobToken, Secret};

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[derive(Clone)]
enum Sender {
    H2(http2::SendRequest<Full<Bytes>>),
    H1(Arc<Mutex<http1::SendRequest<Full<Bytes>>>>),
}

#[derive(Clone)]
pub struct HttpConnection {
    sender: Sender,
    scheme: &'static str,
    authority: String,
    base_path: String,
    bearer: Option<Secret>,
    /// Built from a `VerifiedTls`: only then may any secret (token, job token) be sent.
    verified: bool,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub elapsed: Duration,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
    /// The first bytes of the body as text, for evidence. A cut body ends in `…`: the scrubber
    /// looks there for a secret cut in two (`secret::Scrubber`).
    pub fn excerpt(&self, max: usize) -> String {
        let text = String::from_utf8_lossy(&self.body[..self.body.len().min(max)]);
        let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if self.body.len() > max {
            line.push('…');
        }
        line
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpFailure {
    /// The request went out but no complete response came back in time.
    Stalled,
    Failed(String),
}

/// What users read in evidence: the failure itself, never Rust's `Debug` form.
impl std::fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpFailure::Stalled => f.write_str("no complete response before the timeout"),
            HttpFailure::Failed(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for HttpFailure {}

pub struct Endpoint<'a> {
    pub scheme: &'static str,
    pub authority: &'a str,
    pub base_path: &'a str,
}

impl HttpConnection {
    /// Over verified TLS: requests may carry the bearer token.
    pub async fn verified(
        tls: VerifiedTls,
        h2: bool,
        endpoint: Endpoint<'_>,
        bearer: Option<Secret>,
    ) -> Result<Self, HttpFailure> {
        Self::start(Box::new(tls.into_stream()), h2, endpoint, bearer, true).await
    }

    /// Over plain HTTP or unverified TLS: never carries credentials.
    pub async fn anonymous<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        stream: S,
        h2: bool,
        endpoint: Endpoint<'_>,
    ) -> Result<Self, HttpFailure> {
        Self::start(Box::new(stream), h2, endpoint, None, false).await
    }

    async fn start(
        io: Box<dyn Io>,
        h2: bool,
        endpoint: Endpoint<'_>,
        bearer: Option<Secret>,
        verified: bool,
    ) -> Result<Self, HttpFailure> {
        let io = TokioIo::new(io);
        let sender = if h2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| HttpFailure::Failed(e.to_string()))?;
            tokio::spawn(conn);
            Sender::H2(sender)
        } else {
            let (sender, conn) = http1::handshake(io)
                .await
                .map_err(|e| HttpFailure::Failed(e.to_string()))?;
            tokio::spawn(conn);
            Sender::H1(Arc::new(Mutex::new(sender)))
        };
        Ok(HttpConnection {
            sender,
            scheme: endpoint.scheme,
            authority: endpoint.authority.to_string(),
            base_path: endpoint.base_path.to_string(),
            bearer,
            verified,
        })
    }

    /// Whether the server's TLS verified (secrets may be sent).
    pub fn is_verified(&self) -> bool {
        self.verified
    }

    pub fn has_credentials(&self) -> bool {
        self.bearer.is_some()
    }

    /// Sends one request; `credentials` asks for the bearer token (if this connection may
    /// carry one).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        credentials: bool,
        timeout: Duration,
    ) -> Result<Response, HttpFailure> {
        self.send_with(method, path, body, credentials, &[], timeout)
            .await
    }

    /// Like [`HttpConnection::send`], with the job token in `extra_headers`: a [`JobToken`], not
    /// a bearer [`Secret`], so no cluster credential can travel this way; refused unless TLS
    /// verified.
    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        credentials: bool,
        extra_headers: &[(&str, &JobToken)],
        timeout: Duration,
    ) -> Result<Response, HttpFailure> {
        let started = Instant::now();
        if !extra_headers.is_empty() && !self.verified {
            return Err(HttpFailure::Failed(
                "refusing to send a secret header over a connection whose TLS did not verify"
                    .into(),
            ));
        }
        let request = self.build(method, path, body, credentials, extra_headers)?;
        let exchange = async {
            let response = match &self.sender {
                Sender::H2(s) => s.clone().send_request(request).await,
                Sender::H1(s) => s.lock().await.send_request(request).await,
            }
            .map_err(|e| HttpFailure::Failed(crate::error::with_sources(&e)))?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| HttpFailure::Failed(format!("reading the body: {e}")))?
                .to_bytes();
            Ok(Response {
                status,
                headers,
                body,
                elapsed: started.elapsed(),
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Err(HttpFailure::Stalled),
            Ok(result) => result,
        }
    }

    fn build(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        credentials: bool,
        extra_headers: &[(&str, &JobToken)],
    ) -> Result<hyper::Request<Full<Bytes>>, HttpFailure> {
        let full_path = format!("{}{}", self.base_path, path);
        let uri = match &self.sender {
            Sender::H2(_) => format!("{}://{}{}", self.scheme, self.authority, full_path),
            Sender::H1(_) => full_path,
        };
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header(
                "user-agent",
                concat!("kube-reach/", env!("CARGO_PKG_VERSION")),
            )
            .header("accept", "application/json");
        if let Sender::H1(_) = &self.sender {
            // HTTP/2 carries the host in :authority, taken from the absolute URI.
            builder = builder.header("host", &self.authority);
        }
        if credentials && let Some(token) = &self.bearer {
            builder = builder.header("authorization", format!("Bearer {}", token.expose()));
        }
        for (name, value) in extra_headers {
            builder = builder.header(*name, value.expose());
        }
        let body = match body {
            Some(bytes) => {
                builder = builder.header("content-type", "application/json");
                Full::new(Bytes::from(bytes))
            }
            None => Full::new(Bytes::new()),
        };
        builder
            .body(body)
            .map_err(|e| HttpFailure::Failed(e.to_string()))
    }
}
