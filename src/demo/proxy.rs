//! A minimal HTTP CONNECT forward proxy on loopback, with the failure modes a CI job meets
//! behind a corporate proxy: refused by policy (403), credentials required (407), upstream
//! unreachable (502), and (with [`super::dead_address`]) no proxy listening at all.
//!
//! Network safety: the proxy connects upstream only to loopback addresses. Host names are never
//! looked up through the system resolver; they are mapped by [`ProxyOptions::hosts`] (the
//! proxy's own `/etc/hosts`), and anything not ending on loopback is refused with 403.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::DemoError;
use super::apiserver::stopped;

/// Longest CONNECT request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// How long a client may take to send its request head, and the proxy to reach upstream.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// CONNECT request lines kept.
const LOG_LIMIT: usize = 10_000;

/// What the proxy does with a CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// `200 Connection established`, then bytes spliced both ways.
    Allow,
    /// `403 Forbidden` (a policy refuses the destination).
    Forbidden,
    /// `407` with `Proxy-Authenticate: Basic realm="demo"` unless the request carries
    /// `Proxy-Authorization: Basic base64(user:password)`; then like `Allow`.
    AuthRequired {
        /// Expected user.
        user: String,
        /// Expected password.
        password: String,
    },
    /// `502 Bad Gateway`: the proxy cannot reach the upstream.
    BadGateway,
}

/// Proxy configuration.
#[derive(Clone, Debug)]
pub struct ProxyOptions {
    /// Behaviour for every CONNECT.
    pub mode: ProxyMode,
    /// Host name → address, used instead of DNS. Only loopback addresses are ever dialled;
    /// `localhost` maps to 127.0.0.1 unless listed.
    pub hosts: Vec<(String, IpAddr)>,
}

impl ProxyOptions {
    /// `mode` with `api.k8s.test` → 127.0.0.1, so clients can use the demo certificates' name.
    pub fn new(mode: ProxyMode) -> Self {
        ProxyOptions {
            mode,
            hosts: vec![("api.k8s.test".into(), IpAddr::V4(Ipv4Addr::LOCALHOST))],
        }
    }
}

struct ProxyShared {
    options: ProxyOptions,
    requests: Mutex<VecDeque<String>>,
    tunnels: AtomicU64,
}

/// A running proxy. Dropping it stops the accept loop and every tunnel.
pub struct ProxyHandle {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("addr", &self.addr)
            .field("mode", &self.shared.options.mode)
            .finish_non_exhaustive()
    }
}

impl ProxyHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, for `HTTPS_PROXY` or a kubeconfig `proxy-url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Request lines received, e.g. `CONNECT api.k8s.test:6443 HTTP/1.1` (headers, and so any
    /// `Proxy-Authorization`, are never kept).
    pub fn request_lines(&self) -> Vec<String> {
        self.shared
            .requests
            .lock()
            .map(|lines| lines.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Tunnels established (200 sent and upstream connected).
    pub fn tunnels(&self) -> u64 {
        self.shared.tunnels.load(Ordering::Relaxed)
    }

    /// Stops the proxy and waits until the accept loop has ended.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts a proxy in `mode` on `addr` (use `127.0.0.1:0`), mapping `api.k8s.test` to 127.0.0.1.
pub async fn start_proxy(addr: SocketAddr, mode: ProxyMode) -> Result<ProxyHandle, DemoError> {
    start_proxy_with(addr, ProxyOptions::new(mode)).await
}

/// Starts a proxy with full options. Refuses to listen on a non-loopback address.
pub async fn start_proxy_with(
    addr: SocketAddr,
    options: ProxyOptions,
) -> Result<ProxyHandle, DemoError> {
    if !addr.ip().is_loopback() {
        return Err(DemoError::Config(format!(
            "the demo proxy listens on loopback only, not {addr}"
        )));
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| DemoError::io(format!("binding the demo proxy to {addr}"), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| DemoError::io("reading the demo proxy's address", e))?;
    let shared = Arc::new(ProxyShared {
        options,
        requests: Mutex::new(VecDeque::new()),
        tunnels: AtomicU64::new(0),
    });
    let (shutdown, stop) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, shared.clone(), stop));
    Ok(ProxyHandle {
        addr,
        shared,
        shutdown,
        task: Some(task),
    })
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<ProxyShared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, _)) => {
                let shared = shared.clone();
                let mut stop = stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = stopped(&mut stop) => {}
                        _ = proxy_connection(client, shared) => {}
                    }
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A parsed request head plus any bytes the client sent after it.
struct Head {
    request_line: String,
    headers: Vec<(String, String)>,
    rest: Vec<u8>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn proxy_connection(mut client: TcpStream, shared: Arc<ProxyShared>) {
    let head = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut client)).await {
        Ok(Some(head)) => head,
        _ => return,
    };
    if let Ok(mut lines) = shared.requests.lock() {
        if lines.len() >= LOG_LIMIT {
            lines.pop_front();
        }
        lines.push_back(head.request_line.clone());
    }
    let mut words = head.request_line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    if method != "CONNECT" {
        return reply(
            &mut client,
            "405 Method Not Allowed",
            &[("Allow", "CONNECT")],
            "only CONNECT is supported",
        )
        .await;
    }
    match &shared.options.mode {
        ProxyMode::Forbidden => {
            reply(
                &mut client,
                "403 Forbidden",
                &[],
                "CONNECT refused by proxy policy",
            )
            .await
        }
        ProxyMode::BadGateway => {
            reply(
                &mut client,
                "502 Bad Gateway",
                &[],
                "the proxy could not reach the upstream",
            )
            .await
        }
        ProxyMode::AuthRequired { user, password } if !authorized(&head, user, password) => {
            let challenge = [("Proxy-Authenticate", "Basic realm=\"demo\"")];
            reply(
                &mut client,
                "407 Proxy Authentication Required",
                &challenge,
                "proxy authentication required",
            )
            .await
        }
        _ => tunnel(client, target, head.rest, &shared).await,
    }
}

/// Reads up to the blank line ending the request head. None on EOF, error or oversize.
async fn read_head(client: &mut TcpStream) -> Option<Head> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Head {
        request_line,
        headers,
        rest: buf[end + 4..].to_vec(),
    })
}

fn authorized(head: &Head, user: &str, password: &str) -> bool {
    let Some((scheme, value)) = head
        .header("Proxy-Authorization")
        .and_then(|v| v.split_once(' '))
    else {
        return false;
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(value.trim());
    scheme.eq_ignore_ascii_case("basic")
        && decoded.is_ok_and(|d| d == format!("{user}:{password}").as_bytes())
}

async fn reply(client: &mut TcpStream, status: &str, headers: &[(&str, &str)], body: &str) {
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len() + 1
    );
    for (name, value) in headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str(&format!("\r\n{body}\n"));
    let _ = client.write_all(response.as_bytes()).await;
    let _ = client.shutdown().await;
}

/// `host:port` or `[v6]:port` → a loopback socket address, without DNS.
fn upstream_address(target: &str, hosts: &[(String, IpAddr)]) -> Option<SocketAddr> {
    let (host, port) = target.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => hosts
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(host))
            .map(|(_, ip)| *ip)
            .or_else(|| {
                host.eq_ignore_ascii_case("localhost")
                    .then_some(IpAddr::V4(Ipv4Addr::LOCALHOST))
            })?,
    };
    ip.is_loopback().then_some(SocketAddr::new(ip, port))
}

async fn tunnel(mut client: TcpStream, target: &str, early: Vec<u8>, shared: &ProxyShared) {
    let Some(upstream_addr) = upstream_address(target, &shared.options.hosts) else {
        return reply(
            &mut client,
            "403 Forbidden",
            &[],
            "the demo proxy only connects to loopback addresses",
        )
        .await;
    };
    let mut upstream =
        match tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(upstream_addr)).await {
            Ok(Ok(upstream)) => upstream,
            _ => {
                return reply(
                    &mut client,
                    "502 Bad Gateway",
                    &[],
                    "the proxy could not connect to the upstream",
                )
                .await;
            }
        };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
        || upstream.write_all(&early).await.is_err()
    {
        return;
    }
    shared.tunnels.fetch_add(1, Ordering::Relaxed);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn connect(proxy: &ProxyHandle, target: &str, extra: &str) -> (String, TcpStream) {
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{extra}\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 512];
        let n = stream.read(&mut buf).await.unwrap();
        (String::from_utf8_lossy(&buf[..n]).into_owned(), stream)
    }

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    /// An upstream that answers `pong` to whatever it reads.
    async fn echo_upstream() -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind(loopback()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).await.is_ok() {
                    let _ = s.write_all(b"pong").await;
                }
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn allow_mode_splices_bytes_and_records_the_request_line() {
        let (upstream, _task) = echo_upstream().await;
        let proxy = start_proxy(loopback(), ProxyMode::Allow).await.unwrap();
        let target = format!("api.k8s.test:{}", upstream.port());
        let (head, mut stream) = connect(&proxy, &target, "").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        stream.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        assert_eq!(
            proxy.request_lines(),
            [format!("CONNECT {target} HTTP/1.1")]
        );
        assert_eq!(proxy.tunnels(), 1);
    }

    #[tokio::test]
    async fn refusal_modes_answer_with_their_status() {
        for (mode, expected) in [
            (ProxyMode::Forbidden, "403"),
            (ProxyMode::BadGateway, "502"),
        ] {
            let proxy = start_proxy(loopback(), mode).await.unwrap();
            let (head, _) = connect(&proxy, "127.0.0.1:6443", "").await;
            assert!(head.starts_with(&format!("HTTP/1.1 {expected}")), "{head}");
            assert_eq!(proxy.tunnels(), 0);
        }
    }

    #[tokio::test]
    async fn auth_required_challenges_then_accepts_credentials() {
        let (upstream, _task) = echo_upstream().await;
        let mode = ProxyMode::AuthRequired {
            user: "ci".into(),
            password: "s3cret".into(),
        };
        let proxy = start_proxy(loopback(), mode).await.unwrap();
        let target = format!("127.0.0.1:{}", upstream.port());
        let (head, _) = connect(&proxy, &target, "").await;
        assert!(head.starts_with("HTTP/1.1 407"), "{head}");
        assert!(head.contains("Proxy-Authenticate: Basic realm=\"demo\""));
        let (head, _) = connect(
            &proxy,
            &target,
            "Proxy-Authorization: Basic Y2k6d3Jvbmc=\r\n",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 407"), "wrong password: {head}");
        let (head, _) = connect(
            &proxy,
            &target,
            "Proxy-Authorization: Basic Y2k6czNjcmV0\r\n",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(proxy.request_lines().iter().all(|l| !l.contains("Y2k6")));
    }

    #[tokio::test]
    async fn only_loopback_upstreams_are_dialled() {
        let proxy = start_proxy(loopback(), ProxyMode::Allow).await.unwrap();
        for target in [
            "10.0.0.1:443",
            "example.com:443",
            "[2001:db8::1]:443",
            "no-port",
        ] {
            let (head, _) = connect(&proxy, target, "").await;
            assert!(head.starts_with("HTTP/1.1 403"), "{target}: {head}");
        }
        let dead = crate::demo::dead_address().unwrap();
        let (head, _) = connect(&proxy, &dead.to_string(), "").await;
        assert!(head.starts_with("HTTP/1.1 502"), "refused upstream: {head}");
        assert!(
            start_proxy("0.0.0.0:0".parse().unwrap(), ProxyMode::Allow)
                .await
                .is_err()
        );
    }

    #[test]
    fn upstream_address_parsing() {
        let hosts = vec![("api.k8s.test".to_string(), "127.0.0.2".parse().unwrap())];
        assert_eq!(
            upstream_address("API.k8s.test:6443", &hosts),
            Some("127.0.0.2:6443".parse().unwrap())
        );
        assert_eq!(
            upstream_address("[::1]:6443", &hosts),
            Some("[::1]:6443".parse().unwrap())
        );
        assert_eq!(
            upstream_address("localhost:1", &hosts),
            Some("127.0.0.1:1".parse().unwrap())
        );
        assert_eq!(upstream_address("192.168.1.1:6443", &hosts), None);
        assert_eq!(upstream_address("api.k8s.test:x", &hosts), None);
    }

    #[tokio::test]
    async fn shutdown_closes_the_port() {
        let proxy = start_proxy(loopback(), ProxyMode::Allow).await.unwrap();
        let addr = proxy.addr();
        proxy.shutdown().await;
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
