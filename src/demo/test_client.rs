//! A tiny HTTPS/HTTP client for the demo's unit tests: one connection, several requests, h1 or
//! h2 chosen by ALPN, so tests can check what went over one connection.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::pki::ring_provider;

pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
    pub version: hyper::Version,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

pub(crate) struct Client {
    sender: Sender,
    authority: String,
}

/// TLS options for [`Client::tls`].
pub(crate) struct TlsOptions {
    pub ca: CertificateDer<'static>,
    pub server_name: String,
    pub alpn: Vec<Vec<u8>>,
    pub client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl TlsOptions {
    pub fn new(ca: CertificateDer<'static>) -> Self {
        TlsOptions {
            ca,
            server_name: "127.0.0.1".into(),
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            client_cert: None,
        }
    }
}

impl Client {
    pub async fn tls(addr: SocketAddr, options: TlsOptions) -> Result<Client, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(options.ca).map_err(|e| e.to_string())?;
        let builder = rustls::ClientConfig::builder_with_provider(ring_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let mut config = match options.client_cert {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = options.alpn;
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = ServerName::try_from(options.server_name).map_err(|e| e.to_string())?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        Self::handshake(TokioIo::new(tls), h2, addr).await
    }

    pub async fn plain(addr: SocketAddr) -> Result<Client, String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        Self::handshake(TokioIo::new(tcp), false, addr).await
    }

    async fn handshake<I>(io: TokioIo<I>, h2: bool, addr: SocketAddr) -> Result<Client, String>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let sender = if h2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            Sender::H2(sender)
        } else {
            let (sender, conn) = http1::handshake(io).await.map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            Sender::H1(sender)
        };
        Ok(Client {
            sender,
            authority: addr.to_string(),
        })
    }

    pub async fn get(&mut self, path: &str, token: Option<&str>) -> Reply {
        self.send("GET", path, token, "").await
    }

    pub async fn post(&mut self, path: &str, token: Option<&str>, body: &str) -> Reply {
        self.send("POST", path, token, body).await
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> Reply {
        self.try_send(method, path, token, body).await.unwrap()
    }

    /// Like `send`, but a broken connection is an `Err` instead of a panic.
    pub async fn try_send(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> Result<Reply, String> {
        let content_type = (!body.is_empty()).then_some("application/json");
        let body = Bytes::from(body.to_string());
        self.try_send_as(method, path, token, content_type, body)
            .await
    }

    /// A POST of `body` with this `Content-Type` (e.g. protobuf, as kubectl ≥ 1.32 sends).
    pub async fn post_as(
        &mut self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let body = Bytes::from(body);
        self.try_send_as("POST", path, token, Some(content_type), body)
            .await
            .unwrap()
    }

    async fn try_send_as(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Reply, String> {
        let mut builder = Request::builder().method(method);
        builder = match self.sender {
            Sender::H1(_) => builder.uri(path).header("host", &self.authority),
            Sender::H2(_) => builder.uri(format!("https://{}{path}", self.authority)),
        };
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            builder = builder.header("content-type", content_type);
        }
        let request = builder.body(Full::new(body)).map_err(|e| e.to_string())?;
        let response = match &mut self.sender {
            Sender::H1(s) => s.send_request(request).await,
            Sender::H2(s) => s.send_request(request).await,
        }
        .map_err(|e| e.to_string())?;
        let status = response.status();
        let headers = response.headers().clone();
        let version = response.version();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            version,
        })
    }
}
