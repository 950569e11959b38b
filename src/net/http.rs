//! HTTP over the very connection the lower layers verified. HTTP/2 when the server offers it,
//! so independent requests share one connection in parallel; over HTTP/1.1 the first verified
//! connection pipelines them ([`super::pipeline`]), and a small bounded pool of connections,
//! each opened and verified exactly like the first (see [`VerifiedDial`]), one request at a
//! time on each, asks whatever the pipe does not answer. Credentials are attached only by a
//! [`HttpConnection`] built from a [`VerifiedTls`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::{http1, http2};
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Mutex, mpsc};

use super::MAX_RESPONSE_BYTES;
use super::fleet::{Key, KeyBuilder, Shared};
use super::pipeline::{self, Link, Pipe, Reply, Waited};
use super::tls::VerifiedTls;
use crate::secret::{JobToken, Secret};

/// HTTP/1.1 connections open at once to one target (the first included): enough that the
/// 18 parallel questions of a default run (19 through the GitLab agent) go out in one wave,
/// as over HTTP/2, instead of one at a time; few enough that one run is no burden to a
/// server or load balancer; also the bound of a pool several targets share (`net::fleet`).
pub const H1_POOL_SIZE: usize = 20;
/// Connections one target may open over its life, the first included, over either protocol
/// (HTTP/1.1's pool and its replacements for connections the server closed, HTTP/2's
/// replacements after GOAWAY), so a server that closes after every response cannot make us loop.
const MAX_DIALS: usize = 32;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A TLS stream whose peer may close without `close_notify`. A body delimited by the
/// connection's end (HTTP/1.0, or `Connection: close` without a length: valid HTTP/1.x) from a
/// server that just closes the socket reads as rustls' `UnexpectedEof`, and hyper then fails
/// the response although all of it arrived; Go's client (kubectl) takes it as the end. Read
/// as the end here too: a body with a length or chunks that stops short is still caught by
/// hyper as an incomplete message.
struct EndWithoutNotify<S>(S);

impl<S: AsyncRead + Unpin> AsyncRead for EndWithoutNotify<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            Poll::Ready(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for EndWithoutNotify<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Opens one more connection like the first: same address and route, same TLS settings and
/// server name, same client identity, and a server that verified and presented the same leaf
/// certificate as on the first connection. `None` when any of that fails: the pool then just
/// stays smaller.
pub type VerifiedDial = Arc<dyn Fn() -> BoxFuture<'static, Option<VerifiedTls>> + Send + Sync>;

type Dial = Arc<dyn Fn() -> BoxFuture<'static, Option<Box<dyn Io>>> + Send + Sync>;
type H1Sender = http1::SendRequest<Full<Bytes>>;

type H2Sender = http2::SendRequest<Full<Bytes>>;

/// An HTTP/1.1 connection over `io`, its connection task running.
async fn h1(io: Box<dyn Io>) -> Result<H1Sender, hyper::Error> {
    let (sender, conn) = http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// An HTTP/2 connection over `io`, its connection task running.
async fn h2(io: Box<dyn Io>) -> Result<H2Sender, hyper::Error> {
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// How one target opens connections after its first, whichever the protocol: through the
/// verified dial, within one budget of [`MAX_DIALS`], and never again once one could not be
/// opened or did not verify like the first (the server or the route will not give us another
/// good one).
struct Redial {
    dial: Option<Dial>,
    /// Connections opened or tried, the first included.
    dials: AtomicUsize,
    /// How many may be: [`MAX_DIALS`] per target sharing the connection.
    budget: AtomicUsize,
    failed: AtomicBool,
}

impl Redial {
    fn new(dial: Option<Dial>) -> Redial {
        Redial {
            dial,
            dials: AtomicUsize::new(1),
            budget: AtomicUsize::new(MAX_DIALS),
            failed: AtomicBool::new(false),
        }
    }

    /// One more target shares these connections: one more target's budget.
    fn widen(&self) {
        self.budget.fetch_add(MAX_DIALS, Ordering::SeqCst);
    }

    /// Whether another connection may still be opened.
    fn possible(&self) -> bool {
        self.dial.is_some()
            && !self.failed.load(Ordering::SeqCst)
            && self.dials.load(Ordering::SeqCst) < self.budget.load(Ordering::SeqCst)
    }

    /// One more connection with `handshake` (HTTP/1.1 or HTTP/2) made over it; `None` when
    /// none may be opened, or opening or its handshake failed.
    async fn open<S, F: Future<Output = Result<S, hyper::Error>>>(
        &self,
        handshake: impl FnOnce(Box<dyn Io>) -> F,
    ) -> Option<S> {
        let dial = self.dial.as_ref().filter(|_| self.possible())?;
        let budget = self.budget.load(Ordering::SeqCst);
        let below = |n: usize| (n < budget).then_some(n + 1);
        (self.dials)
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, below)
            .ok()?;
        let opened = match dial().await {
            Some(io) => handshake(io).await.ok(),
            None => None,
        };
        if opened.is_none() {
            self.failed.store(true, Ordering::SeqCst);
        }
        opened
    }
}

#[derive(Clone)]
enum Sender {
    H2(Arc<H2Conn>),
    H1(Arc<H1Pool>),
}

/// The HTTP/2 connection of one target, replaced when the server ends it. A load balancer
/// that closes after N requests (nginx `keepalive_requests`, `keepalive_timeout 0`) or shuts
/// down gracefully sends GOAWAY: the requests it did not take are refused, unprocessed, and
/// Go's client (kubectl) sends them again on a new connection. So do we, on a connection
/// opened and verified exactly like the first (see [`Redial`]).
struct H2Conn {
    /// The connection in use and its generation (how many replaced it before).
    current: Mutex<(u64, H2Sender)>,
    redial: Redial,
}

impl H2Conn {
    async fn get(&self) -> (u64, H2Sender) {
        let current = self.current.lock().await;
        (current.0, current.1.clone())
    }

    /// The connection of generation `generation` refused a request: replace it (once, when
    /// no other request did already). Whether there is a connection to try again on.
    async fn replace(&self, generation: u64) -> bool {
        let mut current = self.current.lock().await;
        if current.0 != generation {
            return true;
        }
        let Some(sender) = self.redial.open(h2).await else {
            return false;
        };
        *current = (generation + 1, sender);
        true
    }

    /// One exchange, sent again on a new connection while the server refuses it unprocessed.
    /// Bounded: each retry follows a replacement, and replacements by the [`Redial`] budget.
    async fn exchange(
        &self,
        build: impl Fn() -> Result<http::Request<Bytes>, HttpFailure>,
        started: Instant,
    ) -> Result<Response, HttpFailure> {
        loop {
            let (generation, mut sender) = self.get().await;
            let sent = match sender.ready().await {
                Ok(()) => sender.send_request(build()?.map(Full::new)).await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(response) => return read(response, started).await,
                Err(e) if unprocessed(&e, &sender) && self.replace(generation).await => continue,
                Err(e) => return Err(failed(e)),
            }
        }
    }
}

/// Whether the server did not take the request at all (so sending it again is safe): the
/// connection was already closed, the request was still queued for a stream when it closed
/// (hyper's "dispatch task is gone", a user-kind error on a closed sender), or the server
/// refused it by GOAWAY or `REFUSED_STREAM`.
fn unprocessed(e: &hyper::Error, sender: &H2Sender) -> bool {
    if e.is_canceled() || e.is_closed() || (e.is_user() && sender.is_closed()) {
        return true;
    }
    let h2 = std::error::Error::source(e).and_then(|s| s.downcast_ref::<h2::Error>());
    h2.is_some_and(|h2| {
        (h2.is_go_away() && h2.is_remote()) || h2.reason() == Some(h2::Reason::REFUSED_STREAM)
    })
}

/// What the idle queue of an HTTP/1.1 pool carries.
enum Slot {
    /// A connection with no request in flight.
    Ready(H1Sender),
    /// Every connection is gone and no more may be opened: the waiters give up.
    Closed,
}

/// HTTP/1.1 connections of one target: the first verified one as a [`Pipe`], and a pool of
/// connections for what the pipe does not answer. A pooled connection carries one exchange at
/// a time: it is leased for a request and comes back only once the response body has been
/// read in full and hyper says it is `ready` again (sending earlier is what failed with
/// "connection was not ready" against HTTP/1.1-only servers).
struct H1Pool {
    /// The first connection, pipelining, when it verified and more like it can be opened
    /// (every request the pipe cannot answer needs a pooled connection to be asked on).
    pipe: Option<Pipe>,
    idle_tx: mpsc::UnboundedSender<Slot>,
    idle_rx: Mutex<mpsc::UnboundedReceiver<Slot>>,
    /// Connections in the idle queue.
    idle: AtomicUsize,
    /// Connections open or being opened.
    live: AtomicUsize,
    redial: Redial,
}

/// How an HTTP/1.1 target's first connection is used.
enum First {
    /// One exchange at a time, in the pool (plain HTTP, unverified TLS, or no way to open
    /// another connection to fall back on).
    Pooled(H1Sender),
    Pipe(Pipe),
}

impl H1Pool {
    fn new(first: First, dial: Option<Dial>) -> Arc<Self> {
        let (idle_tx, idle_rx) = mpsc::unbounded_channel();
        let (pipe, pooled) = match first {
            First::Pooled(sender) => {
                let _ = idle_tx.send(Slot::Ready(sender));
                (None, 1)
            }
            First::Pipe(pipe) => (Some(pipe), 0),
        };
        Arc::new(H1Pool {
            pipe,
            idle_tx,
            idle_rx: Mutex::new(idle_rx),
            idle: AtomicUsize::new(pooled),
            live: AtomicUsize::new(pooled),
            redial: Redial::new(dial),
        })
    }

    /// One exchange: down the pipe when it takes the request, else (or when the pipe gives no
    /// answer) on a pooled connection. A pipelined request the pipe's pace or a stall says to
    /// hedge ([`Pipe::wait`]) is asked on the pool too, and the first complete answer is the
    /// one: a slow server, or one that reads only one request at a time, costs time, never a
    /// verdict (see [`super::pipeline`]).
    async fn exchange(
        self: &Arc<Self>,
        build: impl Fn() -> Result<http::Request<Bytes>, HttpFailure>,
        started: Instant,
    ) -> Result<Response, HttpFailure> {
        let Some(pipe) = &self.pipe else {
            return self.pooled(&build, started).await;
        };
        let Some(place) = pipe.place().await else {
            return self.pooled(&build, started).await;
        };
        let request = build()?;
        let Some(sent) = pipe.send(place, &request) else {
            return self.pooled(&build, started).await;
        };
        let pooled = || self.pooled(&build, started);
        match pipe.wait(sent).await {
            Waited::Answered(answer) => match echoes(pipe, &request, &answer) {
                true => Ok(piped(answer, started)),
                false => pooled().await,
            },
            Waited::Unanswered => pooled().await,
            Waited::Hedge(reply) => first_complete(reply, pipe, &request, pooled(), started).await,
        }
    }

    /// One exchange on a pooled connection.
    async fn pooled(
        self: &Arc<Self>,
        build: impl Fn() -> Result<http::Request<Bytes>, HttpFailure>,
        started: Instant,
    ) -> Result<Response, HttpFailure> {
        let mut lease = self.lease().await?;
        // Built once a connection is free: the requests queued for one hold only their
        // parts (a fleet's queue is hundreds long). Not sent: the connection goes back.
        let request = build().inspect_err(|_| lease.done = true)?;
        let response = lease
            .sender()?
            .send_request(request.map(Full::new))
            .await
            .map_err(failed)?;
        // The connection stays leased until its body is read in full.
        let response = read(response, started).await;
        lease.done = response.is_ok();
        response
    }

    fn put(&self, sender: H1Sender) {
        self.idle.fetch_add(1, Ordering::SeqCst);
        let _ = self.idle_tx.send(Slot::Ready(sender));
    }

    /// Opens one more connection in the background when none is idle and the bounds allow.
    fn grow(self: &Arc<Self>) {
        if self.idle.load(Ordering::SeqCst) > 0 || !self.redial.possible() {
            return;
        }
        // The pipe is one of the target's connections.
        let bound = H1_POOL_SIZE - usize::from(self.pipe.is_some());
        let below = |n: usize| (n < bound).then_some(n + 1);
        if self
            .live
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, below)
            .is_err()
        {
            return;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            match pool.redial.open(h1).await {
                Some(sender) => pool.put(sender),
                // Not opened, or not verified like the first: the pool stays smaller.
                None => pool.lost(),
            }
        });
    }

    /// A connection is gone (closed by the server, or its exchange abandoned).
    fn lost(self: &Arc<Self>) {
        if self.live.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        if self.redial.possible() {
            self.grow();
        } else {
            let _ = self.idle_tx.send(Slot::Closed);
        }
    }

    /// Waits for an idle connection that is ready for a request. Bounded: every turn of the
    /// loop consumes a connection, and connections are bounded by [`MAX_DIALS`]; the caller's
    /// timeout bounds the waiting.
    async fn lease(self: &Arc<Self>) -> Result<Lease, HttpFailure> {
        loop {
            self.grow();
            if self.live.load(Ordering::SeqCst) == 0 {
                // None open, none being opened, and none may be.
                return Err(HttpFailure::Failed(
                    "the server closed every HTTP/1.1 connection".into(),
                ));
            }
            let slot = self.idle_rx.lock().await.recv().await;
            let sender = match slot {
                Some(Slot::Ready(sender)) => sender,
                Some(Slot::Closed) | None => {
                    let _ = self.idle_tx.send(Slot::Closed);
                    return Err(HttpFailure::Failed(
                        "the server closed every HTTP/1.1 connection".into(),
                    ));
                }
            };
            self.idle.fetch_sub(1, Ordering::SeqCst);
            let mut lease = Lease {
                sender: Some(sender),
                pool: self.clone(),
                done: false,
            };
            if lease.ready().await {
                return Ok(lease);
            }
        }
    }
}

/// The pipe's answer, when it is a complete response, else the pool's.
async fn first_complete(
    mut reply: Reply,
    pipe: &Pipe,
    request: &http::Request<Bytes>,
    pooled: impl Future<Output = Result<Response, HttpFailure>>,
    started: Instant,
) -> Result<Response, HttpFailure> {
    tokio::pin!(pooled);
    tokio::select! {
        biased;
        Ok(Some(answer)) = &mut reply => match echoes(pipe, request, &answer) {
            true => Ok(piped(answer, started)),
            false => pooled.await,
        },
        result = &mut pooled => result,
    }
}

/// Whether a pipelined answer can be its request's ([`super::echo`]). One that answers
/// another request says the pipe's order is lost (a server that answered some request
/// twice): the pipe is abandoned, and this request and every one still waiting on it are
/// asked on the pool.
fn echoes(pipe: &Pipe, request: &http::Request<Bytes>, answer: &pipeline::Answer) -> bool {
    let fits = super::echo::may_answer(request, answer.status, &answer.body);
    if !fits {
        pipe.abandon();
    }
    fits
}

fn piped(answer: pipeline::Answer, started: Instant) -> Response {
    Response {
        status: answer.status,
        headers: answer.headers,
        body: answer.body,
        elapsed: started.elapsed(),
        shared: false,
    }
}

/// One connection taken from the pool for one exchange. It goes back when the exchange
/// completed; dropped half-way (a timeout), it is closed instead, since its connection may
/// still be busy with the abandoned response.
struct Lease {
    sender: Option<H1Sender>,
    pool: Arc<H1Pool>,
    done: bool,
}

impl Lease {
    /// Whether the connection can take a request; a closed one is dropped (and counted lost).
    async fn ready(&mut self) -> bool {
        let ok = match self.sender.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !ok {
            self.sender = None;
        }
        ok
    }

    fn sender(&mut self) -> Result<&mut H1Sender, HttpFailure> {
        self.sender
            .as_mut()
            .ok_or_else(|| HttpFailure::Failed("connection lost".into()))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        match self.sender.take() {
            Some(sender) if self.done => self.pool.put(sender),
            _ => self.pool.lost(),
        }
    }
}

#[derive(Clone)]
pub struct HttpConnection {
    sender: Sender,
    scheme: &'static str,
    authority: String,
    base_path: String,
    bearer: Option<Secret>,
    /// This target's `Impersonate-*` headers: sent with its credentials, like the bearer.
    impersonation: Option<Impersonation>,
    /// Built from a `VerifiedTls`: only then may any secret (token, job token) be sent.
    verified: bool,
    /// Where this target's requests find the answers of identical requests another target of
    /// the run made (`answering_once`).
    asking: Option<Asking>,
    /// Which connection this is (the same for every target sharing it): a failure is its
    /// connection's, never handed to a target on another ([`AnswerMemo`]).
    id: u64,
}

/// A target's first connection as [`HttpConnection::start`] takes it.
enum Opened {
    Io(Box<dyn Io>),
    /// HTTP/1.1 over verified TLS, pipelining.
    Pipe(Pipe),
}

/// The next [`HttpConnection`]'s id.
static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The answers of a run's requests, by everything a request's answer depends on: the
/// connection's [`Key`] (server, route, TLS settings, client identity), the method, path and
/// body, the timeout, and the bearer token (as a digest: no secret is kept in a key). Fifty
/// contexts with one user on one server ask each question once, not fifty times; a target
/// with another token, identity or route never meets another's answer. Only requests over
/// verified TLS go through it. Each answer says which connection got it: a failure (a stuck
/// backend's timeout, a closed connection) goes only to targets on that same connection.
pub type AnswerMemo = Shared<Key, Answered>;

/// An answer in the [`AnswerMemo`], with who got it.
#[derive(Clone)]
pub struct Answered {
    answer: Result<Response, HttpFailure>,
    /// The [`HttpConnection`] it came over.
    conn: u64,
    /// The target that asked ([`Asking`]): its own repeated question is not another's answer.
    asker: u64,
}

#[derive(Clone)]
struct Asking {
    memo: Arc<AnswerMemo>,
    link: Key,
    /// Which target asks (one per `answering_once`).
    asker: u64,
}

/// The next [`Asking`]'s asker.
static ASKERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub elapsed: Duration,
    /// Another target of the run asked the identical request and this is its answer
    /// ([`AnswerMemo`]).
    pub shared: bool,
}

impl Response {
    /// A JSON answer, as the checks' unit tests feed their judges.
    #[cfg(test)]
    pub fn of_json(status: u16, body: &serde_json::Value) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into(),
            elapsed: Duration::ZERO,
            shared: false,
        }
    }

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
    /// Over verified TLS: requests may carry the bearer token. HTTP/2 when the server chose
    /// it by ALPN. `more` opens further connections (HTTP/1.1's pool, HTTP/2's replacement after
    /// GOAWAY), each verified like the first.
    pub async fn verified(
        tls: VerifiedTls,
        endpoint: Endpoint<'_>,
        bearer: Option<Secret>,
        impersonation: Option<Impersonation>,
        more: Option<VerifiedDial>,
    ) -> Result<Self, HttpFailure> {
        let h2 = tls.speaks_h2();
        let link = Link {
            handshake: tls.handshake_time(),
        };
        let dial = more.map(|more| -> Dial {
            Arc::new(move || {
                let opened = more();
                Box::pin(async move {
                    let tls = opened.await?;
                    // A replacement must speak the protocol the first one did.
                    (tls.speaks_h2() == h2)
                        .then(|| Box::new(EndWithoutNotify(tls.into_stream())) as _)
                })
            })
        });
        let io: Box<dyn Io> = Box::new(EndWithoutNotify(tls.into_stream()));
        // Pipelined only where a pooled connection can ask what the pipe does not answer.
        let first = match (h2, &dial) {
            (false, Some(_)) => Opened::Pipe(Pipe::start(io, link)),
            _ => Opened::Io(io),
        };
        Self::start(first, h2, endpoint, (bearer, impersonation), true, dial).await
    }

    /// Over plain HTTP or unverified TLS: never carries credentials, one connection.
    pub async fn anonymous<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        stream: S,
        h2: bool,
        endpoint: Endpoint<'_>,
    ) -> Result<Self, HttpFailure> {
        let io = Opened::Io(Box::new(EndWithoutNotify(stream)));
        Self::start(io, h2, endpoint, (None, None), false, None).await
    }

    async fn start(
        first: Opened,
        h2: bool,
        endpoint: Endpoint<'_>,
        (bearer, impersonation): (Option<Secret>, Option<Impersonation>),
        verified: bool,
        dial: Option<Dial>,
    ) -> Result<Self, HttpFailure> {
        let sender = match first {
            Opened::Pipe(pipe) => Sender::H1(H1Pool::new(First::Pipe(pipe), dial)),
            Opened::Io(io) if h2 => Sender::H2(Arc::new(H2Conn {
                current: Mutex::new((0, self::h2(io).await.map_err(failed)?)),
                redial: Redial::new(dial),
            })),
            Opened::Io(io) => {
                let first = First::Pooled(h1(io).await.map_err(failed)?);
                Sender::H1(H1Pool::new(first, dial))
            }
        };
        Ok(HttpConnection {
            sender,
            scheme: endpoint.scheme,
            authority: endpoint.authority.to_string(),
            base_path: endpoint.base_path.to_string(),
            bearer: bearer.filter(|_| verified),
            impersonation: impersonation.filter(|_| verified),
            verified,
            asking: None,
            id: CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// This connection, answering a request from `memo` when another target of the run whose
    /// connection has the same `link` key made the identical request (same method, path, body,
    /// timeout and bearer token): the answer is the one this target's own request would get.
    /// Requests with the job token never go through the memo.
    pub fn answering_once(self, memo: Arc<AnswerMemo>, link: Key) -> HttpConnection {
        HttpConnection {
            asking: Some(Asking {
                memo,
                link,
                asker: ASKERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            }),
            ..self
        }
    }

    /// This connection for another target whose route, TLS settings and client identity are
    /// exactly this one's (`net::fleet` decides that): its requests carry `bearer`, that
    /// target's own token, and `impersonation`, its own `Impersonate-*` headers, and only when
    /// this connection's TLS verified. The redial budget
    /// grows by one target's (each target's requests may meet closed connections); HTTP/1.1's
    /// pool keeps one target's bound, so a fleet's connections (and memory: about 25 KB each)
    /// grow with its distinct servers, not its contexts. Measured at 50 contexts on one
    /// server (`scripts/bench.sh`): a pool grown by one target's bound per target opened
    /// ~900 connections, took 41 MB and more time than one shared bound (CPU of the handshakes).
    pub fn shared_with(
        &self,
        bearer: Option<Secret>,
        impersonation: Option<Impersonation>,
    ) -> HttpConnection {
        match &self.sender {
            Sender::H2(conn) => conn.redial.widen(),
            Sender::H1(pool) => pool.redial.widen(),
        }
        HttpConnection {
            bearer: bearer.filter(|_| self.verified),
            impersonation: impersonation.filter(|_| self.verified),
            ..self.clone()
        }
    }

    /// This connection without any credential: what a fleet keeps for later targets.
    pub fn without_credentials(&self) -> HttpConnection {
        HttpConnection {
            bearer: None,
            impersonation: None,
            ..self.clone()
        }
    }

    /// Whether the server's TLS verified (secrets may be sent).
    pub fn is_verified(&self) -> bool {
        self.verified
    }

    pub fn has_credentials(&self) -> bool {
        self.bearer.is_some()
    }

    /// The `Impersonate-*` headers a request carries: this target's, over verified TLS, with
    /// its credentials (the bearer token when it has one, else the client certificate the
    /// verified handshake presented), as kubectl's impersonating round tripper adds them to
    /// every request it authenticates. Never on a request asked without credentials.
    fn impersonating(&self, credentials: bool) -> Option<&Impersonation> {
        let with_credentials = credentials || self.bearer.is_none();
        (self.impersonation.as_ref()).filter(|_| self.verified && with_credentials)
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
        // Only over verified TLS: two connections of one link key may reach different servers
        // (a load balancer's backends), and only a verified one proved which server it is. An
        // unverified connection's answer is its own server's, handed to no other target, and
        // takes none of a verified one's.
        let asking = self.asking.as_ref().filter(|_| self.verified);
        let Some(asking) = asking else {
            return (self.send_with(method, path, body, credentials, &[], timeout)).await;
        };
        let bearer = self.bearer.as_ref().filter(|_| credentials);
        let key = KeyBuilder::default()
            .part(asking.link.as_bytes())
            .part(method)
            .part(path)
            .optional(body.as_ref())
            .part(timeout.as_nanos().to_be_bytes())
            .optional(bearer.map(|b| b.expose()));
        let key = match self.impersonating(credentials) {
            Some(impersonation) => impersonation.key_parts(key.part([1])),
            None => key.part([0]),
        }
        .finish();
        let ask = || self.send_with(method, path, body.clone(), credentials, &[], timeout);
        let made = || async {
            Answered {
                answer: ask().await,
                conn: self.id,
                asker: asking.asker,
            }
        };
        let (answered, _) = asking.memo.get(key, made).await;
        match answered.answer {
            Ok(response) if answered.asker != asking.asker => Ok(Response {
                shared: true,
                ..response
            }),
            // Another connection's failure says nothing of this one's: asked here, then.
            Err(_) if answered.conn != self.id => ask().await,
            answer => answer,
        }
    }

    /// Like [`HttpConnection::send`], with the job token in `extra_headers`: a [`JobToken`], not
    /// a bearer [`Secret`], so no cluster credential can travel this way; refused unless TLS
    /// verified. Only [`GitlabConnection`] calls it with a token.
    async fn send_with(
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
        let bearer = self.bearer.as_ref().filter(|_| credentials);
        let impersonation = self.impersonating(credentials);
        let path = format!("{}{}", self.base_path, path);
        let head = Head {
            h2: matches!(self.sender, Sender::H2(_)),
            scheme: self.scheme,
            authority: &self.authority,
            path: &path,
            method,
        };
        let build = || head.build(body.clone(), bearer, impersonation, extra_headers);
        let exchange = async {
            match &self.sender {
                Sender::H2(conn) => conn.exchange(build, started).await,
                Sender::H1(pool) => pool.exchange(build, started).await,
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Err(HttpFailure::Stalled),
            Ok(result) => result,
        }
    }
}

/// The GitLab server's connection, verified: the one type whose requests carry the job token.
/// The engine makes it only for the `gitlab` target (`CI_SERVER_URL`), whose allowed-agents
/// URL the planner checked to be on that same server.
pub struct GitlabConnection<'a> {
    conn: &'a HttpConnection,
}

impl<'a> GitlabConnection<'a> {
    /// `conn` as the GitLab server's; refused (the failure says why) unless its TLS verified.
    pub fn verified(conn: &'a HttpConnection) -> Result<Self, HttpFailure> {
        match conn.verified {
            true => Ok(GitlabConnection { conn }),
            false => Err(HttpFailure::Failed(
                "refusing to send a secret header over a connection whose TLS did not verify"
                    .into(),
            )),
        }
    }

    /// `GET path` with `header: <job token>`, and no cluster credential.
    pub async fn get_with_job_token(
        &self,
        path: &str,
        header: &str,
        token: &JobToken,
        timeout: Duration,
    ) -> Result<Response, HttpFailure> {
        let headers = [(header, token)];
        self.conn
            .send_with("GET", path, None, false, &headers, timeout)
            .await
    }
}

fn failed(e: hyper::Error) -> HttpFailure {
    HttpFailure::Failed(crate::error::with_sources(&e))
}

/// Reads a response in full (size-bounded).
async fn read(
    response: hyper::Response<hyper::body::Incoming>,
    started: Instant,
) -> Result<Response, HttpFailure> {
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
        shared: false,
    })
}

/// A request's line and where it goes.
struct Head<'a> {
    h2: bool,
    scheme: &'a str,
    authority: &'a str,
    /// Base path and path.
    path: &'a str,
    method: &'a str,
}

impl Head<'_> {
    fn build(
        &self,
        body: Option<Vec<u8>>,
        bearer: Option<&Secret>,
        impersonation: Option<&Impersonation>,
        extra_headers: &[(&str, &JobToken)],
    ) -> Result<http::Request<Bytes>, HttpFailure> {
        let uri = match self.h2 {
            true => format!("{}://{}{}", self.scheme, self.authority, self.path),
            false => self.path.to_string(),
        };
        let mut builder = hyper::Request::builder()
            .method(self.method)
            .uri(uri)
            .header(
                "user-agent",
                concat!("kube-reach/", env!("CARGO_PKG_VERSION")),
            )
            .header("accept", "application/json");
        if !self.h2 {
            // HTTP/2 carries the host in :authority, taken from the absolute URI.
            builder = builder.header("host", self.authority);
        }
        if let Some(token) = bearer {
            builder = builder.header("authorization", secret_value("Bearer ", token.expose())?);
        }
        if let Some(impersonation) = impersonation {
            for (name, value) in impersonation.headers()? {
                builder = builder.header(name, value);
            }
        }
        for (name, value) in extra_headers {
            builder = builder.header(*name, secret_value("", value.expose())?);
        }
        let body = match body {
            Some(bytes) => {
                builder = builder.header("content-type", "application/json");
                Bytes::from(bytes)
            }
            None => Bytes::new(),
        };
        builder
            .body(body)
            .map_err(|e| HttpFailure::Failed(e.to_string()))
    }
}

/// A target's `Impersonate-*` headers, in the order client-go's impersonating round tripper
/// adds them: `Impersonate-User` (always, as client-go sets it), `Impersonate-Uid` when set,
/// one `Impersonate-Group` per group, and one `Impersonate-Extra-<key>` per extra value, the
/// key percent-encoded as client-go's `headerKeyEscape` does. Built once per target; a value
/// that cannot be a header fails every request that would carry it, naming no value.
#[derive(Clone)]
pub struct Impersonation(Arc<Result<Vec<(HeaderName, HeaderValue)>, ()>>);

impl std::fmt::Debug for Impersonation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Impersonation([REDACTED])")
    }
}

impl Impersonation {
    pub fn new(of: &crate::targets::Impersonation) -> Impersonation {
        let header = |name: &str, value: &str| -> Result<(HeaderName, HeaderValue), ()> {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| ())?;
            let mut value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| ())?;
            // Extra values may be anything (a session, a scope): kept out of HPACK's table.
            value.set_sensitive(true);
            Ok((name, value))
        };
        let mut headers = Vec::new();
        let built = (|| {
            headers.push(header(
                "impersonate-user",
                of.user.as_deref().unwrap_or(""),
            )?);
            if let Some(uid) = of.uid.as_deref().filter(|u| !u.is_empty()) {
                headers.push(header("impersonate-uid", uid)?);
            }
            for group in &of.groups {
                headers.push(header("impersonate-group", group)?);
            }
            for (key, values) in &of.extra {
                let name = format!("impersonate-extra-{}", header_key_escape(key));
                for value in values {
                    headers.push(header(&name, value.expose())?);
                }
            }
            Ok(())
        })();
        Impersonation(Arc::new(built.map(|()| headers)))
    }

    fn headers(&self) -> Result<&[(HeaderName, HeaderValue)], HttpFailure> {
        match self.0.as_ref() {
            Ok(headers) => Ok(headers),
            Err(()) => Err(HttpFailure::Failed(
                "the user's impersonation (as, as-uid, as-groups, as-user-extra) holds characters not allowed in an HTTP header".into(),
            )),
        }
    }

    /// Everything the headers say, as parts of the [`AnswerMemo`]'s key.
    pub fn key_parts(&self, key: KeyBuilder) -> KeyBuilder {
        match self.0.as_ref() {
            Err(()) => key.part([0]),
            Ok(headers) => (headers.iter()).fold(key.part([1]), |key, (name, value)| {
                key.part(name.as_str()).part(value.as_bytes())
            }),
        }
    }
}

/// client-go's `headerKeyEscape`: every byte that is not an HTTP token character, and `%`,
/// as `%XX` (kube-apiserver unescapes the key with `url.PathUnescape`).
fn header_key_escape(key: &str) -> String {
    percent_encoding::utf8_percent_encode(key, HEADER_KEY_ESCAPED).to_string()
}

/// What `headerKeyEscape` escapes: every byte but letters, digits and the other HTTP token
/// characters (`%` included, so the key reads back unambiguously).
const HEADER_KEY_ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'*')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// A header value holding a secret, marked sensitive so HPACK never puts it in the dynamic
/// table (where a later compression oracle could recover it). The error names no value.
fn secret_value(prefix: &str, secret: &str) -> Result<HeaderValue, HttpFailure> {
    let mut value = HeaderValue::from_str(&format!("{prefix}{secret}")).map_err(|_| {
        HttpFailure::Failed("a credential holds characters not allowed in an HTTP header".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(h2: bool) -> Head<'static> {
        Head {
            h2,
            scheme: "https",
            authority: "api.k8s.test:6443",
            path: "/version",
            method: "GET",
        }
    }

    #[test]
    fn bearer_and_secret_headers_are_sensitive() {
        let token = Secret::new("t0ken");
        let job = JobToken::new("job-token");
        for h2 in [true, false] {
            let request = head(h2)
                .build(None, Some(&token), None, &[("job-token", &job)])
                .expect("request");
            let auth = &request.headers()["authorization"];
            assert!(auth.is_sensitive(), "authorization not sensitive (h2 {h2})");
            assert_eq!(auth.as_bytes(), b"Bearer t0ken");
            assert!(request.headers()["job-token"].is_sensitive());
            assert!(!request.headers()["accept"].is_sensitive());
        }
    }

    #[tokio::test]
    async fn a_shared_unverified_connection_carries_no_ones_credentials() {
        let (client, _server) = tokio::io::duplex(1024);
        let endpoint = Endpoint {
            scheme: "https",
            authority: "api.k8s.test:6443",
            base_path: "",
        };
        let conn = HttpConnection::anonymous(client, false, endpoint)
            .await
            .expect("connection");
        let joined = conn.shared_with(Some(Secret::new("t0ken")), Some(deployer()));
        assert!(!joined.has_credentials() && !joined.is_verified());
        assert!(
            joined.impersonating(true).is_none(),
            "no Impersonate-* unverified"
        );
    }

    fn deployer() -> Impersonation {
        Impersonation::new(&crate::targets::Impersonation {
            user: Some("deployer".into()),
            uid: Some("u-1".into()),
            groups: vec!["ops".into(), "devs".into()],
            extra: vec![(
                "example.com/Scope 100%".into(),
                vec![Secret::new("a"), Secret::new("b")],
            )],
        })
    }

    /// As client-go's impersonating round tripper: user, uid, one header per group and per
    /// extra value, the extra key escaped like `headerKeyEscape` (kube-apiserver lowercases
    /// the header name and `url.PathUnescape`s it back to the key).
    #[test]
    fn impersonation_headers_are_client_gos() {
        let request = head(true)
            .build(None, None, Some(&deployer()), &[])
            .expect("request");
        let all = |name: &str| -> Vec<&[u8]> {
            (request.headers().get_all(name).iter())
                .map(|v| v.as_bytes())
                .collect()
        };
        assert_eq!(all("impersonate-user"), [b"deployer"]);
        assert_eq!(all("impersonate-uid"), [b"u-1"]);
        assert_eq!(all("impersonate-group"), [&b"ops"[..], b"devs"]);
        assert_eq!(
            all("impersonate-extra-example.com%2FScope%20100%25"),
            [b"a", b"b"]
        );
        assert!(request.headers()["impersonate-user"].is_sensitive());
        // Groups only: client-go still sets the (empty) user header.
        let groups = Impersonation::new(&crate::targets::Impersonation {
            groups: vec!["ops".into()],
            ..Default::default()
        });
        let request = head(false).build(None, None, Some(&groups), &[]).unwrap();
        assert_eq!(request.headers()["impersonate-user"], "");
        assert!(request.headers().get("impersonate-uid").is_none());
        // A name no header can carry fails the request without quoting it.
        let bad = Impersonation::new(&crate::targets::Impersonation {
            user: Some("bad\nname".into()),
            ..Default::default()
        });
        let e = head(true).build(None, None, Some(&bad), &[]).unwrap_err();
        assert!(!e.to_string().contains("bad"), "{e}");
        let key = |i: &Impersonation| i.key_parts(KeyBuilder::default()).finish();
        assert!(key(&deployer()) != key(&groups));
    }

    #[test]
    fn a_credential_that_is_no_header_value_is_refused_without_quoting_it() {
        let token = Secret::new("bad\ntoken");
        let e = head(true).build(None, Some(&token), None, &[]).unwrap_err();
        assert!(!e.to_string().contains("bad"), "{e}");
    }

    /// A connection whose TLS did not verify never becomes the GitLab connection, so the job
    /// token has no way onto it: nothing reaches the server side.
    #[tokio::test]
    async fn only_a_verified_connection_takes_the_job_token() {
        let (client, mut server) = tokio::io::duplex(4096);
        let endpoint = Endpoint {
            scheme: "https",
            authority: "gitlab.example.test:443",
            base_path: "",
        };
        let conn = HttpConnection::anonymous(client, false, endpoint)
            .await
            .expect("an HTTP/1.1 client over the pipe");
        let refused = GitlabConnection::verified(&conn).err();
        assert!(
            refused.is_some_and(|e| e.to_string().contains("did not verify")),
            "an unverified connection is refused"
        );
        drop(conn);
        let mut wire = Vec::new();
        // Bounded: the pipe ends when the client's connection task drops it.
        let read = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::io::AsyncReadExt::read_to_end(&mut server, &mut wire),
        )
        .await;
        assert!(matches!(read, Ok(Ok(0))), "sent: {wire:?}");
    }
}
