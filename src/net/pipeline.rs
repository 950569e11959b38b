//! HTTP/1.1 pipelining (RFC 9112 §9.3.2) on the first verified connection of an HTTP/1.1-only
//! server. A default run's eighteen questions leave at once on the connection the lower layers
//! verified, as they do over HTTP/2, and the answers come back in order one round trip later.
//! Without it each question past the first waited for a connection of its own: a TCP handshake,
//! a TLS handshake, then the request (two or three round trips where HTTP/2 takes one), and an
//! HTTP/1.1-only load balancer took eighteen connections per run.
//!
//! A pipe is only ever an answer, never a verdict of its own: it hands back a complete,
//! well-framed response or nothing. Nothing (the server closed, reset, sent a head or framing
//! it cannot read, or sent bytes nobody asked for) sends the request the old way, on a pooled
//! connection of its own (`net::http`), whose answer, success or failure, is then the verdict:
//! the pipe cannot make a verdict that the pool would not.
//!
//! A server answers pipelined requests one after another, so a slow one (a webhook
//! authorizer, a far backend) turns parallel work into a queue. [`Pipe::wait`] watches the
//! pipe's pace: a request whose answer is further away, at that pace, than a new connection's
//! answer would be, is asked on the pool too (a hedge), and so is every request once the pipe
//! made no progress for [`Link::stall`]; the first complete answer is the one.
//! Every request kube-reach sends is a read (a `GET`, or a `POST` of a review the server
//! computes and never stores), so a request asked again changes nothing on the server; that is
//! the "means to detect and recover from partial failure" RFC 9112 asks of a client that
//! pipelines after a `POST`.
//!
//! Written by hand because hyper's client sends one request at a time per connection (and
//! treats bytes that arrive between exchanges as an error); the response head is parsed by
//! httparse, hyper's own parser, and so are chunk sizes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use super::MAX_RESPONSE_BYTES;

/// Requests one pipe carries at once, unanswered; more wait for a place. A default run asks 18
/// (19 through the GitLab agent); a fleet of contexts with one user asks each question once.
pub const PIPE_DEPTH: usize = 32;
/// The most bytes of one response's head (status line, headers, a chunk's size line, trailers).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The least time a hedge must save ([`Link::hedge_beyond`]).
const HEDGE_FLOOR: Duration = Duration::from_millis(100);
/// The most headers one response may have (hyper's own bound).
const MAX_HEADERS: usize = 100;
/// The most informational (1xx) responses before a final one: more is a server that never
/// answers, and the loop reading them must end (the pool then waits out the timeout).
const MAX_INFORMATIONAL: usize = 8;
/// The most bytes of one body's chunk extensions, half hyper's bound (16 KiB): a body the pipe
/// takes, hyper would take.
const MAX_CHUNK_EXTENSION_BYTES: usize = 8 * 1024;
/// The most bytes and fields of a chunked body's trailer section, below hyper's bounds (16 KiB,
/// 100 fields): past them the pipe stops reading, so an endless trailer costs bounded memory.
const MAX_TRAILER_BYTES: usize = 8 * 1024;
const MAX_TRAILERS: usize = 64;

/// What the first handshake says of the link, the measure of every wait here.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// How long the first TLS handshake took: one or two round trips and the server's work.
    pub handshake: Duration,
}

impl Link {
    /// What a request asked on a new connection costs: a TCP handshake, a TLS handshake and
    /// the exchange, about three times a TLS 1.3 handshake (a resumed TLS 1.2 one is as fast).
    pub fn new_connection(&self) -> Duration {
        self.handshake.saturating_mul(3)
    }

    /// How far away a pipelined answer must be before a hedge asks it again: further than a new
    /// connection's answer, and more than [`HEDGE_FLOOR`] (a hedge is a second copy of the
    /// request for the server; on a fast link the pool would save too little to be worth it).
    pub fn hedge_beyond(&self) -> Duration {
        self.new_connection().max(HEDGE_FLOOR)
    }

    /// How long the pipe may make no progress (no answer at all) before every request on it is
    /// asked on the pool too: a floor for the server's own work plus four handshakes, so a
    /// healthy server's answers, one round trip after they were sent, always come first.
    pub fn stall(&self) -> Duration {
        Duration::from_millis(250) + self.handshake.saturating_mul(4)
    }
}

/// How many responses the pipe has read, and when the first and the latest came: the pace at
/// which the server answers it.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    answered: u64,
    first: Option<Instant>,
    latest: Option<Instant>,
}

impl Progress {
    fn read_one(&mut self, at: Instant) {
        self.answered += 1;
        self.first.get_or_insert(at);
        self.latest = Some(at);
    }

    /// The time between answers, once two came.
    fn pace(&self) -> Option<Duration> {
        let between = self.latest?.checked_duration_since(self.first?)?;
        let gaps = u32::try_from(self.answered.checked_sub(1)?).ok()?;
        (gaps > 0).then(|| between / gaps)
    }
}

/// What a request waiting on the pipe should do now.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// Wait, until the pipe makes progress or until this instant (a stall).
    WaitUntil(Instant),
    /// Ask on the pool too: at the pipe's pace, the answer is further away than a new
    /// connection's.
    Hedge,
}

/// The plan of request `seq` (the first request sent is 1) sent at `sent`, given the pipe's
/// progress.
fn plan(link: Link, progress: &Progress, seq: u64, sent: Instant) -> Plan {
    let ahead = seq.saturating_sub(progress.answered);
    let queued = progress
        .pace()
        .map(|pace| pace.saturating_mul(u32::try_from(ahead).unwrap_or(u32::MAX)));
    if queued.is_some_and(|queued| queued > link.hedge_beyond()) {
        return Plan::Hedge;
    }
    let since = progress.latest.map_or(sent, |latest| latest.max(sent));
    Plan::WaitUntil(since + link.stall())
}

/// How a request's wait on the pipe ended.
pub enum Waited {
    Answered(Answer),
    /// The pipe will not answer it: ask on the pool.
    Unanswered,
    /// Ask on the pool too; the pipe may still answer first.
    Hedge(Reply),
}

/// A request on the pipe: its place in the order and its reply.
pub struct Sent {
    reply: Reply,
    seq: u64,
    at: Instant,
}

/// A complete response read off the pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// Names in lower case, as hyper gives them.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// What a request sent on the pipe waits on: its answer, or `Err`/`None` when it has none (send
/// it another way).
pub type Reply = oneshot::Receiver<Option<Answer>>;

/// One HTTP/1.1 connection carrying up to [`PIPE_DEPTH`] requests at once: a writer task puts
/// them on the wire in the order they came, a reader task hands out the responses in that
/// same order.
pub struct Pipe {
    /// Requests to the writer, each with its sequence number; the lock keeps numbers and
    /// order the same.
    requests: std::sync::Mutex<(u64, mpsc::UnboundedSender<Queued>)>,
    state: Arc<State>,
    /// Wakes the reader to end the pipe.
    broken: Arc<Notify>,
    progress: watch::Receiver<Progress>,
    link: Link,
}

/// Whether a pipe takes requests, and its places.
struct State {
    /// False once the connection ended, broke, or was slow.
    open: AtomicBool,
    /// An answer was not its request's ([`Pipe::abandon`]): nothing more is handed out.
    abandoned: AtomicBool,
    /// [`PIPE_DEPTH`] places, one held by each request until its answer or its end; closed
    /// with the pipe, so whoever waits for a place goes elsewhere.
    places: Arc<Semaphore>,
}

impl State {
    fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }

    fn end(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.places.close();
    }
}

/// A place in a pipe, held while waiting to send.
pub struct Place {
    _held: OwnedSemaphorePermit,
}

/// A request on its way to the writer.
struct Queued {
    bytes: Vec<u8>,
    waiter: Waiter,
}

/// Where a request's response goes. Dropped unanswered, its request gets `None`, and a
/// dropped waiter always frees its place in the pipe.
struct Waiter {
    reply: oneshot::Sender<Option<Answer>>,
    /// The request was `HEAD`: its response has no body, whatever its headers say.
    head: bool,
    place: Place,
}

impl Waiter {
    /// Frees the place first, so whoever gets the answer finds it free.
    fn answer(self, answer: Answer) {
        let Waiter { reply, place, .. } = self;
        drop(place);
        let _ = reply.send(Some(answer));
    }
}

impl Pipe {
    /// A pipe over `io`, an HTTP/1.1 connection with no request sent yet; its tasks end when
    /// the pipe is dropped and the connection is idle, or when the connection ends.
    pub fn start<S>(io: S, link: Link) -> Pipe
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(io);
        let (requests, queued) = mpsc::unbounded_channel();
        let (waiting_tx, waiting_rx) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            open: AtomicBool::new(true),
            abandoned: AtomicBool::new(false),
            places: Arc::new(Semaphore::new(PIPE_DEPTH)),
        });
        let broken = Arc::new(Notify::new());
        tokio::spawn(write_loop(
            write,
            queued,
            waiting_tx,
            state.clone(),
            broken.clone(),
        ));
        let incoming = Incoming {
            io: read,
            buf: BytesMut::with_capacity(16 * 1024),
            broken: broken.clone(),
        };
        let (progress_tx, progress) = watch::channel(Progress::default());
        tokio::spawn(read_loop(incoming, waiting_rx, state.clone(), progress_tx));
        Pipe {
            requests: std::sync::Mutex::new((0, requests)),
            state,
            broken,
            progress,
            link,
        }
    }

    /// Waits for a place in the pipe; `None` once the pipe takes no more (ended or
    /// distrusted), also while waiting. The caller's timeout bounds the wait.
    pub async fn place(&self) -> Option<Place> {
        let permit = self.state.places.clone().acquire_owned().await.ok()?;
        self.state.is_open().then_some(Place { _held: permit })
    }

    /// Sends `request` (origin-form, with its `host` header) down the pipe in `place`; `None`
    /// when the pipe ended meanwhile.
    pub fn send(&self, place: Place, request: &http::Request<Bytes>) -> Option<Sent> {
        if !self.state.is_open() {
            return None;
        }
        let (reply, answered) = oneshot::channel();
        let waiter = Waiter {
            reply,
            head: request.method() == http::Method::HEAD,
            place,
        };
        let queued = Queued {
            bytes: serialise(request),
            waiter,
        };
        let mut requests = self.requests.lock().ok()?;
        // Refused only once the writer is gone: the waiter, dropped, frees its place.
        requests.1.send(queued).ok()?;
        requests.0 += 1;
        Some(Sent {
            reply: answered,
            seq: requests.0,
            at: Instant::now(),
        })
    }

    /// Waits for `sent`'s answer while the pipe keeps a pace at which it comes before a new
    /// connection's would, and makes progress. A stall (no answer for [`Link::stall`]) also
    /// distrusts the pipe: later requests go to the pool. Bounded: every turn follows an
    /// answer read off the pipe (at most [`PIPE_DEPTH`] before this one's), or ends the wait.
    pub async fn wait(&self, mut sent: Sent) -> Waited {
        let mut progress = self.progress.clone();
        let mut reader_gone = false;
        loop {
            let planned = plan(self.link, &progress.borrow_and_update(), sent.seq, sent.at);
            let until = match planned {
                Plan::Hedge => return Waited::Hedge(sent.reply),
                Plan::WaitUntil(until) => until,
            };
            tokio::select! {
                biased;
                answered = &mut sent.reply => return match answered {
                    Ok(Some(answer)) => Waited::Answered(answer),
                    _ => Waited::Unanswered,
                },
                changed = progress.changed(), if !reader_gone => reader_gone = changed.is_err(),
                _ = tokio::time::sleep_until(until.into()) => {
                    self.distrust();
                    return Waited::Hedge(sent.reply);
                }
            }
        }
    }

    /// Whether the pipe still takes requests.
    pub fn is_open(&self) -> bool {
        self.state.is_open()
    }

    /// Takes no more requests (the ones sent still get their answers): the server was too slow
    /// to be trusted with more.
    pub fn distrust(&self) {
        self.state.end();
    }

    /// Hands out no more answers: one was not its request's (a server that answered some
    /// request twice shifts every later answer by one), so the order is lost, and every
    /// request still waiting gets none (its caller asks it another way).
    pub fn abandon(&self) {
        self.state.abandoned.store(true, Ordering::SeqCst);
        self.state.end();
        self.broken.notify_one();
    }
}

/// The request as HTTP/1.1 bytes: request line, headers in order, `content-length` for a body
/// (and for an empty `POST`, `PUT` or `PATCH`, as hyper sends it), the body.
fn serialise(request: &http::Request<Bytes>) -> Vec<u8> {
    let body = request.body();
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(request.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in request.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let method = request.method();
    let with_body = matches!(
        *method,
        http::Method::POST | http::Method::PUT | http::Method::PATCH
    );
    if !body.is_empty() || with_body {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Puts each request on the wire after handing its waiter to the reader, so the reader always
/// knows of a request before its response can arrive. A failed write ends the pipe.
async fn write_loop<S: AsyncWrite>(
    mut io: WriteHalf<S>,
    mut queued: mpsc::UnboundedReceiver<Queued>,
    waiting: mpsc::UnboundedSender<Waiter>,
    state: Arc<State>,
    broken: Arc<Notify>,
) {
    while let Some(Queued { bytes, waiter }) = queued.recv().await {
        // Ended meanwhile: the waiter, dropped unanswered, sends its request another way.
        if !state.is_open() || waiting.send(waiter).is_err() {
            continue;
        }
        let written = async {
            io.write_all(&bytes).await?;
            io.flush().await
        };
        if written.await.is_err() {
            state.end();
            broken.notify_one();
        }
    }
}

/// The read side, with what it has read ahead.
struct Incoming<S> {
    io: ReadHalf<S>,
    buf: BytesMut,
    /// The writer failed: stop waiting for responses.
    broken: Arc<Notify>,
}

/// Why reading the pipe stopped: every case sends the remaining requests another way.
struct Ended;

impl<S: AsyncRead> Incoming<S> {
    /// Reads more; `Ok(false)` at the connection's end.
    async fn fill(&mut self) -> Result<bool, Ended> {
        tokio::select! {
            biased;
            _ = self.broken.notified() => Err(Ended),
            read = self.io.read_buf(&mut self.buf) => match read {
                Ok(0) => Ok(false),
                Ok(_) => Ok(true),
                Err(_) => Err(Ended),
            },
        }
    }

    /// Reads until at least `n` bytes are buffered.
    async fn want(&mut self, n: usize) -> Result<(), Ended> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Err(Ended);
            }
        }
        Ok(())
    }
}

/// Hands out responses in the order of the waiters. Stops (and every waiter still queued or
/// sent later gets no answer) at the connection's end, at anything it cannot read, at a
/// response that closes the connection, and at bytes that arrive while no request is
/// outstanding: they answer nothing anyone asked, so nothing after them can be trusted.
async fn read_loop<S: AsyncRead>(
    mut incoming: Incoming<S>,
    mut waiting: mpsc::UnboundedReceiver<Waiter>,
    state: Arc<State>,
    progress: watch::Sender<Progress>,
) {
    loop {
        let waiter = match waiting.try_recv() {
            Ok(waiter) => waiter,
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) if !incoming.buf.is_empty() => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                // The waiter is handed over before its request is written, so when both are
                // ready the waiter is taken first and a response is never read as unasked.
                tokio::select! {
                    biased;
                    waiter = waiting.recv() => match waiter {
                        Some(waiter) => waiter,
                        None => break,
                    },
                    _ = incoming.fill() => break,
                }
            }
        };
        match read_response(&mut incoming, waiter.head).await {
            Ok(_) if state.abandoned.load(Ordering::SeqCst) => break,
            Ok((answer, keep_alive)) => {
                progress.send_modify(|p| p.read_one(Instant::now()));
                waiter.answer(answer);
                if !keep_alive {
                    break;
                }
            }
            Err(Ended) => break,
        }
    }
    state.end();
    waiting.close();
    while waiting.try_recv().is_ok() {}
}

/// One response's head: status, headers, and whether the connection stays open after it.
struct Head {
    status: u16,
    /// HTTP/1.1, not 1.0.
    http11: bool,
    headers: Vec<(String, String)>,
    keep_alive: bool,
}

impl Head {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
    }
}

/// Reads the next final response (1xx informational ones skipped) and its body.
async fn read_response<S: AsyncRead>(
    incoming: &mut Incoming<S>,
    head_request: bool,
) -> Result<(Answer, bool), Ended> {
    let mut informational = 0;
    let head = loop {
        let head = read_head(incoming).await?;
        match head.status {
            101 => return Err(Ended),
            100..=199 if informational < MAX_INFORMATIONAL => informational += 1,
            100..=199 => return Err(Ended),
            _ => break head,
        }
    };
    // hyper refuses a `transfer-encoding` in an HTTP/1.0 response (RFC 9112 §6.1): so does
    // the pipe, for the pool to give hyper's verdict.
    if !head.http11 && head.values("transfer-encoding").next().is_some() {
        return Err(Ended);
    }
    let no_body = head_request || head.status == 204 || head.status == 304;
    let chunked = head.values("transfer-encoding").last();
    let (body, keep_alive) = match (no_body, chunked) {
        (true, _) => (Bytes::new(), head.keep_alive),
        (false, Some(coding)) if coding.eq_ignore_ascii_case("chunked") => {
            (read_chunked(incoming).await?, head.keep_alive)
        }
        // Another final coding: the body ends with the connection (RFC 9112 §6.3).
        (false, Some(_)) => (read_to_end(incoming).await?, false),
        (false, None) => match content_length(&head)? {
            Some(length) => (read_exactly(incoming, length).await?, head.keep_alive),
            None => (read_to_end(incoming).await?, false),
        },
    };
    let answer = Answer {
        status: head.status,
        headers: head.headers,
        body,
    };
    Ok((answer, keep_alive))
}

/// The status line and headers, parsed by httparse.
async fn read_head<S: AsyncRead>(incoming: &mut Incoming<S>) -> Result<Head, Ended> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&incoming.buf) {
            Ok(httparse::Status::Complete(length)) => {
                let head = owned_head(&response);
                incoming.buf.advance(length);
                return head;
            }
            Ok(httparse::Status::Partial) if incoming.buf.len() < MAX_HEAD_BYTES => {
                if !incoming.fill().await? {
                    return Err(Ended);
                }
            }
            Ok(httparse::Status::Partial) | Err(_) => return Err(Ended),
        }
    }
}

fn owned_head(response: &httparse::Response<'_, '_>) -> Result<Head, Ended> {
    // httparse reads any three digits; hyper's `StatusCode` refuses those below 100.
    let status = response.code.filter(|code| *code >= 100).ok_or(Ended)?;
    // A framing header hyper cannot read as text (`HeaderValue::to_str`) it reads as absent
    // or invalid, where a lossy string here could read `chunked` or a length: not the pipe's
    // to judge.
    let framing = ["content-length", "transfer-encoding", "connection"];
    let unreadable = (response.headers.iter())
        .filter(|h| framing.iter().any(|f| h.name.eq_ignore_ascii_case(f)))
        .any(|h| {
            !h.value
                .iter()
                .all(|b| *b == b'\t' || (0x20..0x7f).contains(b))
        });
    if unreadable {
        return Err(Ended);
    }
    let headers: Vec<(String, String)> = (response.headers.iter())
        .map(|h| {
            let value = String::from_utf8_lossy(h.value).into_owned();
            (h.name.to_ascii_lowercase(), value)
        })
        .collect();
    let connection = |token: &str| {
        (headers.iter())
            .filter(|(n, _)| n == "connection")
            .flat_map(|(_, v)| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(token))
    };
    let keep_alive = match response.version {
        Some(1) => !connection("close"),
        _ => connection("keep-alive") && !connection("close"),
    };
    Ok(Head {
        status,
        http11: response.version == Some(1),
        headers,
        keep_alive,
    })
}

/// `content-length`: every value the same whole number, or no value; anything else is a
/// framing nobody can trust. Digits only, as hyper reads it: Rust's `parse` also takes a
/// leading `+`, which hyper refuses (`+5` answered here would be a verdict hyper never gives).
fn content_length(head: &Head) -> Result<Option<usize>, Ended> {
    let mut length = None;
    for value in head.values("content-length") {
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Ended);
        }
        let n: usize = value.parse().map_err(|_| Ended)?;
        if length.is_some_and(|l| l != n) {
            return Err(Ended);
        }
        length = Some(n);
    }
    Ok(length)
}

async fn read_exactly<S: AsyncRead>(
    incoming: &mut Incoming<S>,
    length: usize,
) -> Result<Bytes, Ended> {
    if length > MAX_RESPONSE_BYTES {
        return Err(Ended);
    }
    incoming.want(length).await?;
    Ok(incoming.buf.split_to(length).freeze())
}

async fn read_to_end<S: AsyncRead>(incoming: &mut Incoming<S>) -> Result<Bytes, Ended> {
    while incoming.fill().await? {
        if incoming.buf.len() > MAX_RESPONSE_BYTES {
            return Err(Ended);
        }
    }
    Ok(incoming.buf.split().freeze())
}

/// A chunked body: each chunk-size line read as strictly as hyper's decoder reads it, or more
/// so ([`chunk_size_line`]), each chunk's CRLF checked, the trailer section checked and
/// skipped ([`skip_trailers`]). What hyper would refuse answers nothing here, so the pool gives
/// hyper's verdict; every read is bounded.
async fn read_chunked<S: AsyncRead>(incoming: &mut Incoming<S>) -> Result<Bytes, Ended> {
    let mut body = BytesMut::new();
    let mut extensions = 0;
    loop {
        let (line, size, extension) = match chunk_size_line(&incoming.buf)? {
            Some(parsed) => parsed,
            None => {
                incoming.want(incoming.buf.len() + 1).await?;
                continue;
            }
        };
        extensions += extension;
        if extensions > MAX_CHUNK_EXTENSION_BYTES {
            return Err(Ended);
        }
        incoming.buf.advance(line);
        if size == 0 {
            skip_trailers(incoming).await?;
            return Ok(body.freeze());
        }
        if body.len().saturating_add(size) > MAX_RESPONSE_BYTES {
            return Err(Ended);
        }
        incoming.want(size + 2).await?;
        body.extend_from_slice(&incoming.buf[..size]);
        if &incoming.buf[size..size + 2] != b"\r\n" {
            return Err(Ended);
        }
        incoming.buf.advance(size + 2);
    }
}

/// The chunk-size line at the start of `buf`: its length, the chunk's size and its extension's
/// length; `None` until its CRLF arrived. Only `HEXDIG{1,16} [";" ext] CRLF`, `ext` without CR
/// or LF: httparse's `parse_chunk_size` also takes an empty size (as the last chunk) and a bare
/// LF inside an extension, both of which hyper refuses.
fn chunk_size_line(buf: &[u8]) -> Result<Option<(usize, usize, usize)>, Ended> {
    let Some(lf) = buf.iter().position(|b| *b == b'\n') else {
        return match buf.len() < MAX_HEAD_BYTES {
            true => Ok(None),
            false => Err(Ended),
        };
    };
    let line = buf[..lf].strip_suffix(b"\r").ok_or(Ended)?;
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let (size, extension) = line.split_at(digits);
    if !(1..=16).contains(&digits)
        || !(extension.is_empty() || extension.first() == Some(&b';'))
        || extension.contains(&b'\r')
    {
        return Err(Ended);
    }
    let size = std::str::from_utf8(size).map_err(|_| Ended)?;
    let size = u64::from_str_radix(size, 16).map_err(|_| Ended)?;
    let size = usize::try_from(size).map_err(|_| Ended)?;
    Ok(Some((lf + 1, size, extension.len())))
}

/// The trailer section after the last chunk, up to its empty line: at most
/// [`MAX_TRAILER_BYTES`] (an endless one ends the pipe, not the memory), and only fields
/// httparse reads in full, each line ended by CRLF, as hyper checks them.
async fn skip_trailers<S: AsyncRead>(incoming: &mut Incoming<S>) -> Result<(), Ended> {
    loop {
        let buf = &incoming.buf[..];
        let end = match buf.starts_with(b"\r\n") {
            true => Some(2),
            false => (buf.windows(4).position(|w| w == b"\r\n\r\n")).map(|at| at + 4),
        };
        match end {
            Some(end) if end > MAX_TRAILER_BYTES => return Err(Ended),
            Some(end) => {
                let section = &buf[..end];
                let bare_lf = (section.iter().enumerate())
                    .any(|(i, b)| *b == b'\n' && (i == 0 || section[i - 1] != b'\r'));
                let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILERS];
                let parsed = httparse::parse_headers(section, &mut fields);
                if bare_lf || !matches!(parsed, Ok(httparse::Status::Complete((n, _))) if n == end)
                {
                    return Err(Ended);
                }
                incoming.buf.advance(end);
                return Ok(());
            }
            None if buf.len() >= MAX_TRAILER_BYTES => return Err(Ended),
            None => incoming.want(buf.len() + 1).await?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    fn get(path: &str) -> http::Request<Bytes> {
        http::Request::get(path)
            .header("host", "api.example:6443")
            .body(Bytes::new())
            .expect("request")
    }

    fn post(path: &str, body: &str) -> http::Request<Bytes> {
        http::Request::post(path)
            .header("host", "api.example:6443")
            .body(Bytes::from(body.to_string()))
            .expect("request")
    }

    /// Sends at once: a place is free.
    fn send(pipe: &Pipe, request: &http::Request<Bytes>) -> Option<Reply> {
        let place = pipe.state.places.clone().try_acquire_owned().ok()?;
        pipe.state.is_open().then_some(())?;
        pipe.send(Place { _held: place }, request)
            .map(|sent| sent.reply)
    }

    /// A pipe and the server's end of its connection.
    fn pipe() -> (Pipe, DuplexStream) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let link = Link {
            handshake: Duration::from_millis(10),
        };
        (Pipe::start(client, link), server)
    }

    /// Reads from the server's end until `n` requests' heads (and their bodies' sizes as
    /// declared) have arrived; bounded by a 5 s timeout.
    async fn requests(server: &mut DuplexStream, n: usize) -> String {
        let mut seen = Vec::new();
        let read = async {
            let mut buf = [0u8; 4096];
            while String::from_utf8_lossy(&seen)
                .matches(" HTTP/1.1\r\n")
                .count()
                < n
            {
                let got = server.read(&mut buf).await.expect("read");
                assert!(got > 0, "the client closed");
                seen.extend_from_slice(&buf[..got]);
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("requests arrive");
        String::from_utf8_lossy(&seen).into_owned()
    }

    async fn answer(reply: Reply) -> Option<Answer> {
        tokio::time::timeout(Duration::from_secs(5), reply)
            .await
            .expect("the pipe answers or gives up")
            .ok()
            .flatten()
    }

    #[test]
    fn a_request_is_written_as_http11_with_its_length() {
        let bytes = serialise(&post("/apis/x?dryRun=All", "{}"));
        assert_eq!(
            String::from_utf8(bytes).expect("utf-8"),
            "POST /apis/x?dryRun=All HTTP/1.1\r\nhost: api.example:6443\r\n\
             content-length: 2\r\n\r\n{}"
        );
        let bytes = serialise(&get("/version"));
        assert!(!String::from_utf8_lossy(&bytes).contains("content-length"));
    }

    #[tokio::test]
    async fn requests_leave_at_once_and_answers_come_back_in_their_order() {
        let (pipe, mut server) = pipe();
        let first = send(&pipe, &get("/version")).expect("taken");
        let second = send(&pipe, &post("/review", "{\"a\":1}")).expect("taken");
        let third = send(&pipe, &get("/readyz")).expect("taken");
        // All three are on the wire before any answer.
        let wire = requests(&mut server, 3).await;
        let at = |path: &str| wire.find(path).expect("sent");
        assert!(
            at("/version") < at("/review") && at("/review") < at("/readyz"),
            "{wire}"
        );
        server
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv1\
                  HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n\
                  3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nx-trailer: t\r\n\r\n\
                  HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            )
            .await
            .expect("write");
        let first = answer(first).await.expect("answered");
        assert_eq!((first.status, &first.body[..]), (200, &b"v1"[..]));
        assert_eq!(first.headers, vec![("content-length".into(), "2".into())]);
        let second = answer(second).await.expect("answered");
        assert_eq!((second.status, &second.body[..]), (201, &b"abcde"[..]));
        let third = answer(third).await.expect("answered");
        assert_eq!((third.status, &third.body[..]), (200, &b"ok"[..]));
        // Still open: a fourth request is taken.
        assert!(send(&pipe, &get("/healthz")).is_some());
    }

    #[tokio::test]
    async fn a_response_that_closes_answers_its_request_and_no_later_one() {
        let (pipe, mut server) = pipe();
        let first = send(&pipe, &get("/a")).expect("taken");
        let second = send(&pipe, &get("/b")).expect("taken");
        requests(&mut server, 2).await;
        server
            .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 1\r\n\r\nA")
            .await
            .expect("write");
        assert_eq!(answer(first).await.expect("answered").body, "A");
        assert_eq!(answer(second).await, None);
        assert!(
            send(&pipe, &get("/c")).is_none(),
            "an ended pipe takes more"
        );
    }

    #[tokio::test]
    async fn a_body_read_to_the_end_answers_the_last_request_only() {
        let (pipe, mut server) = pipe();
        let first = send(&pipe, &get("/a")).expect("taken");
        let second = send(&pipe, &get("/b")).expect("taken");
        requests(&mut server, 2).await;
        server
            .write_all(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
            .await
            .expect("write");
        drop(server);
        assert_eq!(answer(first).await.expect("answered").body, "until the end");
        assert_eq!(answer(second).await, None);
    }

    /// Every response the pipe cannot frame or trust answers nothing: the request and those
    /// after it are asked another way, where hyper judges the same bytes.
    #[tokio::test]
    async fn what_cannot_be_framed_answers_nothing() {
        let cases: &[&[u8]] = &[
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            b"NOT HTTP AT ALL\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999\r\n\r\n",
            // What httparse or `str::parse` take and hyper refuses: answered here, they were
            // verdicts the pool never gives.
            b"HTTP/1.1 200 OK\r\ncontent-length: +1\r\n\r\nA",
            b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nA\r\n0\r\n\r\n",
            b"HTTP/1.1 099 Odd\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1;a\nb\r\nA\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\nnot a field\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: x\xff, chunked\r\n\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\xff\r\n\r\nA",
            // An endless stream of informational responses: the loop reading them ends.
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n\
              HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n\
              HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n\
              HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n\
              HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
        ];
        for case in cases {
            let (pipe, mut server) = pipe();
            let first = send(&pipe, &get("/a")).expect("taken");
            let second = send(&pipe, &get("/b")).expect("taken");
            requests(&mut server, 2).await;
            server.write_all(case).await.expect("write");
            drop(server);
            let shown = String::from_utf8_lossy(case);
            assert_eq!(answer(first).await, None, "{shown}");
            assert_eq!(answer(second).await, None, "{shown}");
        }
    }

    /// A trailer section that never ends: the pipe stops reading it at its bound, gives the
    /// request no answer, and holds bounded memory (before, it read on as long as the server
    /// wrote, into one buffer searched in full on every read).
    #[tokio::test]
    async fn an_endless_trailer_section_ends_the_pipe_at_its_bound() {
        let (pipe, mut server) = pipe();
        let first = send(&pipe, &get("/a")).expect("taken");
        requests(&mut server, 1).await;
        let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let writer = tokio::spawn({
            let written = written.clone();
            async move {
                let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n";
                server.write_all(head).await.expect("write");
                // At most 64 MiB (the duplex holds 64 KiB unread): far past the bound.
                for _ in 0..64 * 1024 {
                    if server.write_all(&[b'x'; 1024]).await.is_err() {
                        break;
                    }
                    written.fetch_add(1024, Ordering::SeqCst);
                }
                server
            }
        });
        assert_eq!(answer(first).await, None);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let written = written.load(Ordering::SeqCst);
        assert!(written < 1024 * 1024, "{written} bytes of trailer read");
        writer.abort();
    }

    #[tokio::test]
    async fn bytes_nobody_asked_for_end_the_pipe() {
        let (pipe, mut server) = pipe();
        let first = send(&pipe, &get("/a")).expect("taken");
        requests(&mut server, 1).await;
        // One answer, then a second response no request is waiting for.
        server
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nA")
            .await
            .expect("write");
        assert_eq!(answer(first).await.expect("answered").body, "A");
        server
            .write_all(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")
            .await
            .expect("write");
        // The reader sees the unasked bytes and ends (bounded: 100 looks, 10 ms apart).
        for _ in 0..100 {
            if !pipe.is_open() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            send(&pipe, &get("/b")).is_none(),
            "taken after unasked bytes"
        );
    }

    #[tokio::test]
    async fn the_pipe_holds_at_most_its_depth_and_frees_places_as_answers_come() {
        let (pipe, mut server) = pipe();
        let pipe = Arc::new(pipe);
        let replies: Vec<Reply> = (0..PIPE_DEPTH)
            .map(|i| send(&pipe, &get(&format!("/{i}"))).expect("taken"))
            .collect();
        assert!(
            send(&pipe, &get("/over")).is_none(),
            "one more than the depth"
        );
        let waiting = tokio::spawn({
            let pipe = pipe.clone();
            async move { pipe.place().await.is_some() }
        });
        requests(&mut server, PIPE_DEPTH).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "a place while all are held");
        server
            .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await
            .expect("write");
        let mut replies = replies.into_iter();
        let first = replies.next().expect("one");
        assert_eq!(answer(first).await.expect("answered").status, 204);
        let placed = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(matches!(placed, Ok(Ok(true))), "the answered place is free");
        // Every place held again; one waits, and the pipe is distrusted: the wait ends empty.
        let _held = send(&pipe, &get("/again")).expect("taken");
        let waiting = tokio::spawn({
            let pipe = pipe.clone();
            async move { pipe.place().await.is_some() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        pipe.distrust();
        let placed = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(
            matches!(placed, Ok(Ok(false))),
            "a place in a distrusted pipe"
        );
        assert!(pipe.place().await.is_none());
    }

    const LINK: Link = Link {
        handshake: Duration::from_millis(50),
    };

    #[test]
    fn a_request_waits_while_the_pipe_answers_faster_than_a_new_connection() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Nothing answered yet: wait, until a stall from when it was sent.
        let none = Progress::default();
        assert_eq!(
            plan(LINK, &none, 18, t0),
            Plan::WaitUntil(t0 + LINK.stall())
        );
        // Answers 1 ms apart, 17 ahead: 17 ms, against 150 ms on a new connection.
        let fast = Progress {
            answered: 2,
            first: Some(t0 + ms(50)),
            latest: Some(t0 + ms(51)),
        };
        assert_eq!(
            plan(LINK, &fast, 19, t0),
            Plan::WaitUntil(t0 + ms(51) + LINK.stall())
        );
        // Answers 20 ms apart: 8 ahead is 160 ms, more than a new connection; 7 is not.
        let slow = Progress {
            answered: 3,
            first: Some(t0 + ms(50)),
            latest: Some(t0 + ms(90)),
        };
        assert_eq!(plan(LINK, &slow, 11, t0), Plan::Hedge);
        assert!(matches!(plan(LINK, &slow, 10, t0), Plan::WaitUntil(_)));
    }

    #[test]
    fn a_hedge_saves_at_least_its_floor() {
        let t0 = Instant::now();
        let fast_link = Link {
            handshake: Duration::from_millis(2),
        };
        // 5 ms apart, 17 ahead: 85 ms, slower than a new connection (6 ms) but below the floor.
        let progress = Progress {
            answered: 2,
            first: Some(t0),
            latest: Some(t0 + Duration::from_millis(5)),
        };
        assert!(matches!(
            plan(fast_link, &progress, 19, t0),
            Plan::WaitUntil(_)
        ));
        assert_eq!(plan(fast_link, &progress, 23, t0), Plan::Hedge);
    }

    #[test]
    fn a_slower_link_waits_longer_before_a_stall() {
        let near = Link {
            handshake: Duration::from_millis(1),
        };
        let far = Link {
            handshake: Duration::from_millis(200),
        };
        assert!(near.stall() >= Duration::from_millis(250));
        assert!(far.stall() > near.stall() + Duration::from_millis(700));
        assert!(far.new_connection() > near.new_connection());
    }

    /// Sends at once, keeping the [`Sent`].
    fn sent(pipe: &Pipe, request: &http::Request<Bytes>) -> Sent {
        let place = pipe
            .state
            .places
            .clone()
            .try_acquire_owned()
            .expect("place");
        pipe.send(Place { _held: place }, request).expect("taken")
    }

    #[tokio::test]
    async fn a_slow_pace_hedges_the_requests_far_back_and_a_stall_hedges_the_rest() {
        let (pipe, mut server) = pipe();
        let pipe = Arc::new(pipe);
        let waits: Vec<_> = (0..10)
            .map(|i| {
                let sent = sent(&pipe, &get(&format!("/{i}")));
                let pipe = pipe.clone();
                tokio::spawn(async move {
                    match pipe.wait(sent).await {
                        Waited::Answered(_) => "answered",
                        Waited::Unanswered => "unanswered",
                        Waited::Hedge(_) => "hedged",
                    }
                })
            })
            .collect();
        requests(&mut server, 10).await;
        // Two answers 20 ms apart: at that pace the requests six or more places back are
        // further away (120 ms or more) than the hedge's floor (100 ms; a new connection
        // would take 30 ms here).
        let response = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        server.write_all(response).await.expect("write");
        tokio::time::sleep(Duration::from_millis(20)).await;
        server.write_all(response).await.expect("write");
        let mut ended = Vec::new();
        for wait in waits {
            let end = tokio::time::timeout(Duration::from_secs(5), wait).await;
            ended.push(end.expect("bounded").expect("task"));
        }
        // The third to seventh are one to five places back: they wait until the stall (or
        // hedge at once, if the machine stretched the pace). The rest hedge at once.
        assert_eq!(ended[..2], ["answered", "answered"]);
        assert!(ended[2..].iter().all(|e| *e == "hedged"), "{ended:?}");
        assert!(!pipe.is_open(), "a stall distrusts the pipe");
    }
}
