//! A hostile review of HTTP/1.1 pipelining (`net::pipeline`): HTTP/1.1-only TLS fronts before
//! the fake API server that mishandle pipelined requests, answer out of framing, or never end a
//! response. The contract under attack: the pipe never makes a verdict the pool of one-request
//! connections would not, never hangs a run past its timeout, and carries credentials only
//! over the connection whose TLS verified. Each test names the attack it makes.
//!
//! A front (`Front`) terminates TLS with a certificate of the test PKI (ALPN `http/1.1` only),
//! reads requests with httparse, asks each of them of a plain-HTTP fake API server on a
//! connection of its own, and writes the answer back with a `content-length`, or misbehaves as
//! its [`Hostile`] says. Everything is on 127.0.0.1, bounded in connections and in time.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use kube_reach::catalogue::CheckId;
use kube_reach::demo::{
    ApiServerHandle, ApiServerOptions, ClientAuth, Pki, Protocols, TlsClass, Transport, apiserver,
};
use kube_reach::model::{Status, Verdict};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// The most connections a front accepts, and how long any of them lives.
const FRONT_CONNECTIONS: usize = 64;
const FRONT_LIFETIME: Duration = Duration::from_secs(20);
/// How long a front waits, after reading a request, for more that came right behind it
/// (pipelined): a one-request-at-a-time client sends nothing more until it has the answer.
const PIPELINED_WITHIN: Duration = Duration::from_millis(30);

/// How a front misbehaves.
#[derive(Clone, Debug)]
enum Hostile {
    /// Answers every request it reads, like a proxy that does not pipeline but queues.
    Honest,
    /// Answers the request it read and throws away what came with it (the pipelined ones),
    /// then serves the next request it reads normally.
    DropsPipelined,
    /// Answers the first request of a connection with `connection: close` and closes without
    /// reading what else came (a reset, with unread data).
    ClosesAfterFirst,
    /// Never answers a request that came while another was unanswered, and never closes (the
    /// connection is held until the front's lifetime ends).
    SilentOnPipelined,
    /// The first connection answers its first request and then nothing, held open; every later
    /// connection is accepted and never gets a TLS handshake.
    OnlyFirstAnswer,
    /// The answer to `path` is these raw bytes (status line, head and body as written) on
    /// every connection; then the front writes `endless` forever (bounded by its lifetime and
    /// by `cap` bytes) and closes.
    Raw {
        path: &'static str,
        head: Vec<u8>,
        endless: Option<Vec<u8>>,
    },
    /// On the first connection, the second request's answer is written twice.
    AnswersTwice,
}

/// What a front saw.
#[derive(Debug, Default)]
struct Saw {
    connections: usize,
    /// (connection, path, had a bearer token).
    requests: Vec<(usize, String, bool)>,
    /// Bytes written of endless answers.
    endless_bytes: usize,
}

struct Front {
    addr: SocketAddr,
    ca: String,
    saw: Arc<Mutex<Saw>>,
    _backend: ApiServerHandle,
}

impl Front {
    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn saw<T>(&self, f: impl FnOnce(&Saw) -> T) -> T {
        f(&self.saw.lock().expect("front log"))
    }
}

async fn front(pki: &Pki, hostile: Hostile) -> Front {
    init();
    let backend = apiserver::start(
        localhost(),
        Transport::PlainHttp,
        ApiServerOptions {
            protocols: Protocols::Http1Only,
            ..ApiServerOptions::default()
        },
    )
    .await
    .expect("backend");
    let id =
        (pki.server_identity(TlsClass::Good, kube_reach::demo::DEFAULT_SANS)).expect("identity");
    let config = id.server_config(&ClientAuth::None).expect("server config");
    let mut config = (*config).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(localhost()).await.expect("bind front");
    let addr = listener.local_addr().expect("front address");
    let saw = Arc::new(Mutex::new(Saw::default()));
    let backend_addr = backend.addr();
    tokio::spawn({
        let saw = saw.clone();
        async move {
            let accepting = async {
                for conn in 0..FRONT_CONNECTIONS {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    saw.lock().expect("front log").connections += 1;
                    let (acceptor, hostile, saw) = (acceptor.clone(), hostile.clone(), saw.clone());
                    tokio::spawn(async move {
                        let serving = async {
                            if matches!(hostile, Hostile::OnlyFirstAnswer) && conn > 0 {
                                // Held, never a handshake, until the lifetime ends.
                                let _held = tcp;
                                return std::future::pending::<()>().await;
                            }
                            let Ok(tls) = acceptor.accept(tcp).await else {
                                return;
                            };
                            serve(tls, conn, &hostile, backend_addr, &saw).await;
                        };
                        let _ = tokio::time::timeout(FRONT_LIFETIME, serving).await;
                    });
                }
            };
            let _ = tokio::time::timeout(FRONT_LIFETIME, accepting).await;
        }
    });
    Front {
        addr,
        ca: id.kubeconfig_ca_pem.clone(),
        saw,
        _backend: backend,
    }
}

/// One request as the front read it.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// The next complete request in `buf`, reading more as needed; `None` at the end.
async fn next_request<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>) -> Option<Request> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(len)) = parsed.parse(buf) {
            let length: usize = (parsed.headers.iter())
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= len + length {
                let request = Request {
                    method: parsed.method.unwrap_or("GET").to_string(),
                    path: parsed.path.unwrap_or("/").to_string(),
                    headers: (parsed.headers.iter())
                        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                        .collect(),
                    body: buf[len..len + length].to_vec(),
                };
                buf.drain(..len + length);
                return Some(request);
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads whatever arrives within `within` into `buf`; whether `buf` then holds anything.
async fn more_within<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut Vec<u8>,
    within: Duration,
) -> bool {
    let until = tokio::time::Instant::now() + within;
    let mut chunk = [0u8; 16 * 1024];
    while let Ok(Ok(n)) = tokio::time::timeout_at(until, io.read(&mut chunk)).await {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    !buf.is_empty()
}

/// The backend's answer to `request`, as HTTP/1.1 bytes with a `content-length` (and `extra`
/// headers).
async fn ask_backend(backend: SocketAddr, request: &Request, extra: &str) -> Vec<u8> {
    let asked = async {
        let tcp = TcpStream::connect(backend).await.ok()?;
        let io = hyper_util::rt::TokioIo::new(tcp);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.ok()?;
        tokio::spawn(conn);
        let mut builder = hyper::Request::builder()
            .method(request.method.as_str())
            .uri(request.path.as_str());
        for (name, value) in &request.headers {
            if name != "connection" {
                builder = builder.header(name.as_str(), value.as_slice());
            }
        }
        let outgoing = builder
            .body(Full::new(Bytes::from(request.body.clone())))
            .ok()?;
        let response = sender.send_request(outgoing).await.ok()?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        let mut out = format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("X")
        );
        for (name, value) in &headers {
            if !matches!(
                name.as_str(),
                "content-length" | "transfer-encoding" | "connection"
            ) {
                out.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
            }
        }
        out.push_str(&format!("content-length: {}\r\n{extra}\r\n", body.len()));
        let mut out = out.into_bytes();
        out.extend_from_slice(&body);
        Some(out)
    };
    match asked.await {
        Some(bytes) => bytes,
        None => b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n".to_vec(),
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    conn: usize,
    hostile: &Hostile,
    backend: SocketAddr,
    saw: &Mutex<Saw>,
) {
    let mut buf = Vec::new();
    let mut nth = 0usize;
    while let Some(request) = next_request(&mut io, &mut buf).await {
        nth += 1;
        let bearer = (request.headers.iter())
            .any(|(n, v)| n == "authorization" && v.starts_with(b"Bearer "));
        (saw.lock().expect("front log").requests).push((conn, request.path.clone(), bearer));
        match hostile {
            Hostile::Honest => {}
            Hostile::DropsPipelined => {
                if more_within(&mut io, &mut buf, PIPELINED_WITHIN).await {
                    buf.clear();
                }
            }
            Hostile::ClosesAfterFirst => {
                // What was pipelined behind it arrives, unread.
                tokio::time::sleep(PIPELINED_WITHIN).await;
                let answer = ask_backend(backend, &request, "connection: close\r\n").await;
                let _ = io.write_all(&answer).await;
                let _ = io.flush().await;
                return;
            }
            Hostile::SilentOnPipelined | Hostile::OnlyFirstAnswer => {
                let pipelined = more_within(&mut io, &mut buf, PIPELINED_WITHIN).await;
                if pipelined || (matches!(hostile, Hostile::OnlyFirstAnswer) && nth > 1) {
                    // Held, read and thrown away, until the client closes or the lifetime ends.
                    let mut sink = [0u8; 16 * 1024];
                    while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {}
                    return;
                }
            }
            Hostile::Raw {
                path,
                head,
                endless,
            } => {
                if request.path.starts_with(path) {
                    if io.write_all(head).await.is_err() {
                        return;
                    }
                    if let Some(endless) = endless {
                        let cap = 256 * 1024 * 1024;
                        loop {
                            if io.write_all(endless).await.is_err() {
                                return;
                            }
                            let mut saw = saw.lock().expect("front log");
                            saw.endless_bytes += endless.len();
                            if saw.endless_bytes > cap {
                                return;
                            }
                        }
                    }
                    let _ = io.flush().await;
                    continue;
                }
            }
            Hostile::AnswersTwice => {
                if conn == 0 && nth == 2 {
                    let answer = ask_backend(backend, &request, "").await;
                    let _ = io.write_all(&answer).await;
                    let _ = io.write_all(&answer).await;
                    let _ = io.flush().await;
                    continue;
                }
            }
        }
        let answer = ask_backend(backend, &request, "").await;
        if io.write_all(&answer).await.is_err() || io.flush().await.is_err() {
            return;
        }
    }
}

/// One context `c` with the deployer's token on the front; the run's report and how long it
/// took.
async fn run_on(front: &Front, extra: &[&str]) -> (Report, Duration) {
    let ctx = Ctx::new("c", front.url(), &front.ca, GOOD);
    let kc = kubeconfig(&[ctx], Some("c"));
    let started = Instant::now();
    let report = World::new().run(&kc, extra, &[]).await;
    (report, started.elapsed())
}

/// The same context reaching the front over TLS that is not verified (no pipe, no token, one
/// connection): the old path, hyper's judgement of the same bytes.
async fn run_unverified(front: &Front) -> Report {
    let ctx = Ctx {
        ca_pem: None,
        extra_cluster: "    insecure-skip-tls-verify: true\n",
        ..Ctx::new("c", front.url(), "", GOOD)
    };
    World::new()
        .run(&kubeconfig(&[ctx], Some("c")), &[], &[])
        .await
}

fn assert_healthy(t: &Target) {
    assert_eq!(t.verdict, Verdict::Pass, "{:#?}", t.checks);
    let can_i = (t.checks.iter())
        .filter(|c| c.id == CheckId::RbacCanI && c.status == Status::Pass)
        .count();
    assert_eq!(can_i, 15, "{:#?}", t.checks);
}

/// How many requests the first connection carried.
fn on_first(front: &Front) -> usize {
    front.saw(|s| s.requests.iter().filter(|(c, _, _)| *c == 0).count())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_honest_http1_front_is_answered_on_its_first_connection() {
    let pki = Pki::generate().expect("pki");
    let front = front(&pki, Hostile::Honest).await;
    let (report, _) = run_on(&front, &[]).await;
    assert_healthy(target(&report, "c"));
    assert!(
        on_first(&front) > 1,
        "{:?}",
        front.saw(|s| s.requests.clone())
    );
}

/// Attack 1: the pipelined requests are read and thrown away; the stall hedge asks them on the
/// pool, well before the timeout (2 s).
#[tokio::test(flavor = "multi_thread")]
async fn a_front_that_drops_pipelined_requests_costs_a_stall_not_a_verdict() {
    let pki = Pki::generate().expect("pki");
    let front = front(&pki, Hostile::DropsPipelined).await;
    let (report, took) = run_on(&front, &[]).await;
    assert_healthy(target(&report, "c"));
    assert!(took < Duration::from_millis(1800), "took {took:?}");
}

/// Attack 2: `connection: close` on the first answer and a close with the rest unread (the
/// kernel resets): every other request is asked on the pool.
#[tokio::test(flavor = "multi_thread")]
async fn a_front_that_closes_after_one_answer_with_requests_unread_is_healthy_via_the_pool() {
    let pki = Pki::generate().expect("pki");
    let front = front(&pki, Hostile::ClosesAfterFirst).await;
    let (report, took) = run_on(&front, &[]).await;
    assert_healthy(target(&report, "c"));
    assert!(took < Duration::from_millis(1800), "took {took:?}");
    // One request per connection.
    let (connections, requests) = front.saw(|s| (s.connections, s.requests.len()));
    assert!(connections >= 2, "{connections} connections");
    assert!(requests >= connections, "{requests} requests");
}

/// Attack 5a: pipelined requests are never answered and the connection is never closed; the
/// pool answers them, and the run does not wait for its timeout.
#[tokio::test(flavor = "multi_thread")]
async fn a_front_silent_on_pipelined_requests_is_healthy_via_the_pool() {
    let pki = Pki::generate().expect("pki");
    let front = front(&pki, Hostile::SilentOnPipelined).await;
    let (report, took) = run_on(&front, &[]).await;
    assert_healthy(target(&report, "c"));
    assert!(took < Duration::from_millis(1800), "took {took:?}");
}

/// Attack 5b: the first connection answers once and then nothing, never closing; every new
/// connection stalls in its handshake. Each request ends by its own timeout (2 s): the hedge
/// adds no second timeout, and the verdicts name the timeout.
#[tokio::test(flavor = "multi_thread")]
async fn a_front_that_answers_once_and_then_nothing_ends_by_the_timeout() {
    let pki = Pki::generate().expect("pki");
    let front = front(&pki, Hostile::OnlyFirstAnswer).await;
    let (report, took) = run_on(&front, &[]).await;
    let t = target(&report, "c");
    assert_ne!(t.verdict, Verdict::Pass, "{:#?}", t.checks);
    let failed: Vec<_> = (t.checks.iter())
        .filter(|c| matches!(c.status, Status::Fail | Status::Warn))
        .collect();
    assert!(!failed.is_empty(), "{:#?}", t.checks);
    assert!(
        failed.iter().all(|c| {
            let text = format!("{} {}", c.summary, c.evidence.join(" ")).to_lowercase();
            text.contains("timeout")
                || text.contains("timed out")
                || text.contains("no complete response")
        }),
        "{failed:#?}"
    );
    // Each request ends by its own timeout; the run's phases each wait at most that long.
    assert!(took < Duration::from_secs(7), "took {took:?}");
}

/// Attack 3: one answer written twice on the pipe, so every later pipelined request reads the
/// answer of the one before it. HTTP/1.1 has no way to tell which request a response answers;
/// Kubernetes' created objects do (`net::echo`): the first review answered with another
/// review's spec, or whoami with another kind, abandons the pipe, and what waited on it is
/// asked on the pool, where hyper (one request per connection) drops the copy. Without that
/// check a review's answer became another review's (a `Denied` for a verb the job may use).
#[tokio::test(flavor = "multi_thread")]
async fn a_front_that_answers_one_request_twice_makes_no_wrong_verdict() {
    let pki = Pki::generate().expect("pki");
    let front = front(&pki, Hostile::AnswersTwice).await;
    let (report, _) = run_on(&front, &[]).await;
    assert_healthy(target(&report, "c"));
}

/// Compares the `/version` check of the pipelined run and the unverified one (hyper).
async fn same_version_verdict_as_hyper(head: &[u8], endless: Option<&[u8]>) {
    let pki = Pki::generate().expect("pki");
    let hostile = Hostile::Raw {
        path: "/version",
        head: head.to_vec(),
        endless: endless.map(<[u8]>::to_vec),
    };
    let front = front(&pki, hostile).await;
    let (piped, took) = run_on(&front, &[]).await;
    assert!(took < Duration::from_secs(6), "took {took:?}");
    let pooled = run_unverified(&front).await;
    let version = |r: &Report| {
        (target(r, "c").checks.iter())
            .find(|c| c.id == CheckId::HttpVersion)
            .cloned()
            .unwrap_or_else(|| panic!("no version check: {:#?}", target(r, "c").checks))
    };
    let (a, b) = (version(&piped), version(&pooled));
    assert_eq!(
        (a.status, a.reason),
        (b.status, b.reason),
        "pipe: {a:#?}\nhyper: {b:#?}"
    );
}

/// Attack 4: an endless chunked body: over the size bound on both paths, the same verdict,
/// and reading stops.
#[tokio::test(flavor = "multi_thread")]
async fn an_endless_chunked_version_gets_hypers_verdict() {
    let chunk = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
    let head =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    same_version_verdict_as_hyper(head, Some(chunk.as_bytes())).await;
}

/// Attack 4: a head that never ends (past the pipe's 64 KiB and hyper's bound).
#[tokio::test(flavor = "multi_thread")]
async fn endless_response_headers_get_hypers_verdict() {
    let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n";
    let pad = b"x-pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    same_version_verdict_as_hyper(head, Some(pad)).await;
}

/// Attack 4: a trailer section that never ends (the pipe read it without bound before).
#[tokio::test(flavor = "multi_thread")]
async fn endless_trailers_get_hypers_verdict() {
    let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n";
    same_version_verdict_as_hyper(head, Some(&[b'x'; 4096])).await;
}

/// `content-length: +N`: `str::parse` takes it, hyper refuses it. Before the fix the pipe
/// passed `/version` where hyper fails the request.
#[tokio::test(flavor = "multi_thread")]
async fn a_signed_content_length_gets_hypers_verdict() {
    let version = r#"{"major":"1","minor":"31","gitVersion":"v1.31.0"}"#;
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: +{}\r\n\r\n{version}",
        version.len()
    );
    same_version_verdict_as_hyper(head.as_bytes(), None).await;
}

/// Attack 6: every request with a token went over a verified connection (all of the front's
/// are), and reached over unverified TLS the front gets no token at all and one connection.
#[tokio::test(flavor = "multi_thread")]
async fn unverified_tls_to_an_http1_front_gets_no_pipe_and_no_token() {
    let pki = Pki::generate().expect("pki");
    let front = front(&pki, Hostile::Honest).await;
    let report = run_unverified(&front).await;
    assert_eq!(report.targets.len(), 1);
    let (connections, requests) = front.saw(|s| (s.connections, s.requests.clone()));
    assert!(!requests.is_empty());
    assert!(
        requests.iter().all(|(_, _, bearer)| !bearer),
        "{requests:?}"
    );
    assert_eq!(connections, 1);
}
