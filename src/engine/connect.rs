//! The connection steps of a target's pipeline: `dns.resolve`, then `tcp.connect` (or
//! `proxy.connect` and `proxy.tunnel`), `tls.handshake` and the certificate's checks. Each is
//! one function that takes what the step before it reached ([`Reached`]: addresses, a stream,
//! a handshake, a TLS connection) and hands on what it reached, or `None` when its result stops
//! the pipeline (the rows after it become skips, `shape::fill`). Each judges through its check
//! in `checks/*`; the steps run in the order [`pipeline::LINK`] declares, and the HTTP
//! connection the server steps use is opened from the last state.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::pipeline::{self, Step};
use super::{Recorder, RunContext, share};
use crate::catalogue::{CheckId, Reason};
use crate::checks::{config, dns, http, tcp, tls};
use crate::model::CheckResult;
use crate::net::http::{Endpoint as HttpEndpoint, HttpConnection, HttpFailure, VerifiedDial};
use crate::net::tls::{self as net_tls, HandshakeFailure, VerifiedTls};
use crate::net::{connect, proxy};
use crate::plan::{ClientIdentity, Endpoint, Host, ProxyEndpoint, Route, Scheme, Target};

/// At most this many addresses of one name are tried.
const MAX_ADDRESSES: usize = 8;

/// What the connection steps reached so far; each step takes the state the one before left.
enum Reached {
    /// `dns.resolve`'s addresses (where a shared connection begins: `share::connection`).
    Addresses(Vec<IpAddr>),
    /// A TCP stream to the server, or to the proxy (tunnelled once `proxy.tunnel` passed).
    Stream { addr: SocketAddr, stream: TcpStream },
    /// An `http://` server's stream: no TLS.
    Plain(TcpStream),
    /// An `https://` server's handshake, for the certificate's checks.
    Handshaken(Box<Handshaken>),
    /// A TLS connection whose certificate verified, and the way to open more like it.
    Verified {
        tls: Box<VerifiedTls>,
        dialer: Dialer,
    },
    /// A TLS connection whose certificate did not verify (nothing secret travels over it).
    Unverified(Box<TlsStream<TcpStream>>),
}

/// What `tls.handshake` hands the certificate's checks.
struct Handshaken {
    dialer: Dialer,
    /// The TLS stream, when the handshake completed (`None`: ended by us after the chain came).
    stream: Option<TlsStream<TcpStream>>,
    chain: Vec<CertificateDer<'static>>,
    /// How long the handshake took.
    elapsed: Duration,
}

/// The `dns.resolve` step: the addresses of the server's name, or of the proxy's on a proxied
/// route, or `None` when the lookup failed (its result says why). It also re-judges
/// `config.proxy` when `NO_PROXY` has IP or CIDR entries the server's name may resolve into.
pub(super) async fn resolve(
    target: &Target,
    ctx: &RunContext,
    rec: &Recorder,
) -> Option<Vec<IpAddr>> {
    let endpoint = target.endpoint.as_ref()?;
    revise_no_proxy(target, &endpoint.host, ctx, rec).await;
    let host = match &target.route {
        Route::Direct => &endpoint.host,
        Route::Proxy(p) => &p.host,
    };
    resolve_host(host, ctx, rec).await
}

/// The link steps after `dns.resolve` ([`pipeline::LINK`]: TCP, proxy and TLS) over
/// `addresses`, then the HTTP connection the server steps use; `None` when a step failed (its
/// result says why).
pub(super) async fn link(
    target: &Arc<Target>,
    addresses: &[IpAddr],
    ctx: &RunContext,
    rec: &Recorder,
) -> Option<HttpConnection> {
    let endpoint = target.endpoint.as_ref()?;
    let steps = Steps {
        target,
        endpoint,
        authority: endpoint.authority(),
        ctx,
        rec,
    };
    let mut reached = Reached::Addresses(addresses.to_vec());
    for step in pipeline::LINK {
        reached = steps.step(*step, reached).await?;
    }
    steps.open_http(reached).await
}

/// One target's link steps: what each needs besides the state the step before reached.
struct Steps<'a> {
    target: &'a Arc<Target>,
    endpoint: &'a Endpoint,
    /// `host:port` of the server: the subject of the TLS rows.
    authority: String,
    ctx: &'a RunContext,
    rec: &'a Recorder,
}

impl Steps<'_> {
    /// Runs `step` on what the steps before reached. A state a step does not take (an
    /// `http://` server's stream at the certificate's checks) passes on unchanged.
    async fn step(&self, step: Step, reached: Reached) -> Option<Reached> {
        match (step, reached) {
            (Step::Connect, Reached::Addresses(addresses)) => self.connect(&addresses).await,
            (Step::Tunnel, Reached::Stream { addr, stream }) => self.tunnel(addr, stream).await,
            (Step::Handshake, Reached::Stream { addr, stream }) => {
                self.handshake(addr, stream).await
            }
            (Step::Certificate, Reached::Handshaken(hs)) => self.certificate(*hs).await,
            (_, reached) => Some(reached),
        }
    }

    /// The first hop: the server's host and port, or the proxy's (and the proxy).
    fn first_hop(&self) -> (&Host, u16, Option<&ProxyEndpoint>) {
        match &self.target.route {
            Route::Direct => (&self.endpoint.host, self.endpoint.port, None),
            Route::Proxy(p) => (&p.host, p.port, Some(p)),
        }
    }

    /// `tcp.connect`, or `proxy.connect` on a proxied route (with the TLS probe of an
    /// `https://` proxy); `dns.resolve` is re-judged with which addresses connected.
    async fn connect(&self, addresses: &[IpAddr]) -> Option<Reached> {
        let (target, ctx, rec) = (self.target, self.ctx, self.rec);
        let (host, port, proxy) = self.first_hop();
        let addrs: Vec<SocketAddr> = addresses
            .iter()
            .take(MAX_ADDRESSES)
            .map(|ip| SocketAddr::new(*ip, port))
            .collect();
        let connect_id = if proxy.is_some() {
            CheckId::ProxyConnect
        } else {
            CheckId::TcpConnect
        };
        let connect_subject = format!("{host}:{port}");
        rec.start(connect_id, &connect_subject);
        let attempts = connect::connect_all(&addrs, ctx.timeout).await;
        rec.tried(&target.name, &attempts, proxy.is_some());
        rec.revise(CheckId::DnsResolve, |r| dns::after_connect(r, &attempts));
        let result = tcp::connect(
            connect_id,
            &connect_subject,
            &attempts,
            proxy.map(|p| p.display.as_str()),
        );
        let result = match (proxy, host) {
            (None, Host::Name(name)) => tcp::explain_managed_endpoint(result, name, &attempts),
            _ => result,
        };
        let Some((addr, stream)) = attempts
            .into_iter()
            .find_map(|a| a.outcome.ok().map(|s| (a.addr, s)))
        else {
            rec.push(result);
            return None;
        };
        if let Some(p) = proxy.filter(|p| p.tls) {
            let judged = probe_tls_proxy(stream, addr, p, &self.authority, result, ctx).await;
            rec.push(judged);
            return None;
        }
        rec.push(result);
        Some(Reached::Stream { addr, stream })
    }

    /// `proxy.tunnel` on a proxied route: `CONNECT` to the server; a direct stream passes on.
    async fn tunnel(&self, addr: SocketAddr, stream: TcpStream) -> Option<Reached> {
        let Route::Proxy(p) = &self.target.route else {
            return Some(Reached::Stream { addr, stream });
        };
        let (ctx, rec) = (self.ctx, self.rec);
        rec.start(CheckId::ProxyTunnel, &p.display);
        let tunnel = proxy::connect_tunnel(
            stream,
            &self.authority,
            p.authorization.as_ref(),
            ctx.timeout,
        )
        .await;
        rec.push(tcp::tunnel(&p.display, &self.authority, &tunnel));
        let stream = tunnel.outcome.ok()?;
        Some(Reached::Stream { addr, stream })
    }

    /// `tls.handshake` (with the small/normal MSS retries of a stalled one), or its
    /// not-applicable row for an `http://` URL.
    async fn handshake(&self, addr: SocketAddr, stream: TcpStream) -> Option<Reached> {
        let (target, ctx, rec) = (self.target, self.ctx, self.rec);
        let authority = &self.authority;
        if self.endpoint.scheme == Scheme::Http {
            rec.push(tls::plain_http(authority));
            return Some(Reached::Plain(stream));
        }
        let settings = target.tls.as_ref()?;
        // A tls-server-name no certificate can match allows no handshake at all: that is the
        // config.tls finding, not a second one (the TLS rows' skips name it).
        if failed_config(target, CheckId::ConfigTls)
            .is_some_and(|c| c.reason == Some(Reason::InvalidServerName))
        {
            return None;
        }
        let dialer = Dialer {
            target: target.clone(),
            addr,
            timeout: ctx.timeout,
            now: ctx.now,
            sessions: net_tls::Sessions::new(),
        };
        rec.start(CheckId::TlsHandshake, authority);
        let client = dialer.client();
        // With a client certificate, the verifier gives the real verdict: an unverified server
        // never receives the certificate.
        let expect = client.and_then(|_| dialer.expect(None));
        let sessions = Some(&dialer.sessions);
        let hs = (dialer.handshake(stream, client, expect.clone(), sessions)).await?;
        let mut result = tls::handshake_at(authority, &hs, addr, &settings.server_name);
        // No answer at all: once more with small packets, to tell an MTU black hole apart.
        // Through a proxy only the runner's own link is narrowed (the proxy picks the MSS of
        // its connection to the server), which is where the commonest black hole is:
        // Docker-in-Docker's bridge.
        if matches!(hs.outcome, Err(HandshakeFailure::Stalled)) {
            let (full, small) = tokio::join!(
                dialer.retry_handshake(None, client, expect.clone()),
                dialer.retry_handshake(Some(connect::SMALL_MSS), client, expect),
            );
            result = tls::after_mss_retries(result, &full, &small, connect::SMALL_MSS);
        }
        rec.push(result);
        if tls::stops_at_handshake(&hs) {
            // A key the verifier refuses: tls.trust names it (the handshake row passed).
            rec.push_all(tls::weak_key(authority, &hs, target.kind));
            return None;
        }
        rec.note_client_cert_requested(hs.client_cert_requested);
        Some(Reached::Handshaken(Box::new(Handshaken {
            dialer,
            stream: hs.outcome.ok(),
            chain: hs.chain,
            elapsed: hs.elapsed,
        })))
    }

    /// `tls.trust`, `tls.hostname`, `tls.validity` judged on the captured chain; the TLS
    /// connection the server steps may use (an anonymous probe when ours was refused).
    async fn certificate(&self, hs: Handshaken) -> Option<Reached> {
        let (target, ctx, rec) = (self.target, self.ctx, self.rec);
        let authority = &self.authority;
        // A CA the kubeconfig names but that cannot be used makes trust unjudgeable: that is
        // the config.tls finding, not a second one (the TLS rows' skips name it).
        if failed_config(target, CheckId::ConfigTls).is_some() {
            return None;
        }
        let settings = target.tls.as_ref()?;
        let verification = net_tls::verify(&hs.chain, settings, ctx.now);
        let via_proxy = match &target.route {
            Route::Proxy(p) => Some(p.display.as_str()),
            Route::Direct => None,
        };
        let seen = tls::Seen {
            kind: target.kind,
            via_proxy,
            now: ctx.now,
            expiry_warn: ctx.expiry_warn,
        };
        let results = tls::judge(authority, &hs.chain, settings, &verification, seen);
        let failed = results.iter().any(|r| r.status.is_failure());
        rec.push_all(results);
        if failed && !verification.passed() {
            return None;
        }
        let Some(stream) = hs.stream else {
            // insecure-skip-tls-verify with a client certificate: probe without it.
            return match hs.dialer.anonymous().await {
                Ok(stream) => Some(Reached::Unverified(Box::new(stream))),
                Err(detail) => {
                    let failure = HttpFailure::Failed(format!(
                        "opening an anonymous probe connection: {detail}"
                    ));
                    rec.push(http::start_failed(target.kind, authority, &failure));
                    None
                }
            };
        };
        match net_tls::seal(stream, settings, ctx.now, hs.elapsed) {
            Ok(verified) => Some(Reached::Verified {
                tls: Box::new(verified),
                dialer: hs.dialer,
            }),
            Err(stream) => Some(Reached::Unverified(stream)),
        }
    }

    /// The HTTP connection over what the link steps reached (each TLS connection knows by
    /// ALPN whether it speaks HTTP/2).
    async fn open_http(&self, reached: Reached) -> Option<HttpConnection> {
        let (target, rec) = (self.target, self.rec);
        let authority = &self.authority;
        let http_endpoint = |scheme| HttpEndpoint {
            scheme,
            authority,
            base_path: &self.endpoint.base_path,
        };
        let connection = match reached {
            Reached::Plain(stream) => {
                rec.start(CheckId::HttpVersion, authority);
                HttpConnection::anonymous(stream, false, http_endpoint("http")).await
            }
            Reached::Verified { tls, dialer } => {
                let bearer = share::own_bearer(target);
                // More connections like this one: HTTP/1.1's pool, or HTTP/2's replacement
                // after the server's GOAWAY.
                let more = dialer.pool_dial(&tls);
                rec.start(CheckId::HttpVersion, authority);
                let impersonation = share::own_impersonation(target);
                let endpoint = http_endpoint("https");
                HttpConnection::verified(*tls, endpoint, bearer, impersonation, more).await
            }
            Reached::Unverified(tls) => {
                rec.start(CheckId::HttpVersion, authority);
                let h2 = net_tls::speaks_h2(&tls);
                HttpConnection::anonymous(tls, h2, http_endpoint("https")).await
            }
            // The link steps end in one of the above or stop.
            Reached::Addresses(_) | Reached::Stream { .. } | Reached::Handshaken(_) => {
                return None;
            }
        };
        match connection {
            Ok(conn) => Some(conn),
            Err(failure) => {
                rec.push(http::start_failed(target.kind, authority, &failure));
                None
            }
        }
    }
}

/// `config.proxy` judged again once the proxied server's name is resolved here, when
/// `NO_PROXY` has IP or CIDR entries it may resolve into (the proxy, not the job, resolves it
/// for the connection; this lookup only tells whether such an entry was meant for it).
async fn revise_no_proxy(target: &Target, host: &Host, ctx: &RunContext, rec: &Recorder) {
    let Host::Name(name) = host else {
        return;
    };
    if target.no_proxy_nets.is_empty() {
        return;
    }
    let (lookup, _) = share::resolve(name, ctx).await;
    let addresses = lookup.0.as_ref().ok().map(|r| r.addresses.as_slice());
    rec.revise(CheckId::ConfigProxy, |result| {
        config::after_server_lookup(result, &target.no_proxy_nets, name, addresses)
    });
}

async fn resolve_host(host: &Host, ctx: &RunContext, rec: &Recorder) -> Option<Vec<IpAddr>> {
    let name = match host {
        Host::Ip(ip) => {
            rec.push(dns::ip_address(&host.to_string()));
            return Some(vec![*ip]);
        }
        Host::Name(n) => n,
    };
    rec.start(CheckId::DnsResolve, name);
    let (lookup, shared) = share::resolve(name, ctx).await;
    let (outcome, elapsed) = &*lookup;
    let mut result = dns::resolve(name, &ctx.dns, outcome).with_duration(*elapsed);
    if shared {
        result = result.with_evidence(share::shared_lookup_note(name));
    }
    rec.push(result);
    outcome
        .as_ref()
        .ok()
        .map(|resolved| resolved.addresses.clone())
}

/// The target's failed `config.*` result of this id, if any.
fn failed_config(target: &Target, id: CheckId) -> Option<&CheckResult> {
    target
        .config_checks
        .iter()
        .find(|c| c.id == id && c.status.is_failure())
}

/// Opens connections to one target exactly like its first: the same address, the same route
/// (proxy tunnel included), the same TLS settings, server name and client identity.
#[derive(Clone)]
struct Dialer {
    target: Arc<Target>,
    addr: SocketAddr,
    timeout: Duration,
    now: SystemTime,
    /// The first connection's TLS session, which the pool's connections resume.
    sessions: net_tls::Sessions,
}

impl Dialer {
    /// TCP to the same address, through the same proxy tunnel; announcing a small MSS when
    /// `mss` is given (`connect_with_mss`). The error says what failed, for evidence.
    async fn stream(&self, mss: Option<u32>) -> Result<TcpStream, String> {
        let attempt = match mss {
            None => connect::connect(self.addr, self.timeout).await,
            Some(mss) => connect::connect_with_mss(self.addr, mss, self.timeout).await,
        };
        let stream = attempt
            .outcome
            .map_err(|_| format!("connect: {}", attempt.detail))?;
        let Route::Proxy(p) = &self.target.route else {
            return Ok(stream);
        };
        let authority = self.target.endpoint.as_ref().map(|e| e.authority());
        let authority = authority.unwrap_or_default();
        let tunnel =
            proxy::connect_tunnel(stream, &authority, p.authorization.as_ref(), self.timeout).await;
        let status = tunnel.status_line;
        tunnel
            .outcome
            .map_err(|_| format!("CONNECT through the proxy: {status}"))
    }

    /// One more handshake like the first, over a new connection announcing `mss` when given.
    async fn retry_handshake(
        &self,
        mss: Option<u32>,
        client: Option<&ClientIdentity>,
        expect: Option<net_tls::Expect>,
    ) -> Result<net_tls::Handshake, String> {
        let stream = self.stream(mss).await?;
        self.handshake(stream, client, expect, None)
            .await
            .ok_or_else(|| "no TLS settings".to_string())
    }

    /// The client identity to present, when the credentials may be sent.
    fn client(&self) -> Option<&ClientIdentity> {
        let sendable = self.target.credentials.sendable();
        sendable.and_then(|c| c.client_identity())
    }

    /// What a handshake presenting a client certificate (or joining a pool) must prove.
    fn expect(&self, leaf: Option<CertificateDer<'static>>) -> Option<net_tls::Expect> {
        Some(net_tls::Expect {
            settings: self.target.tls.clone()?,
            now: self.now,
            leaf,
        })
    }

    /// A handshake to the dialer's address; `sessions` only for the target's first (whose
    /// session the pool's connections resume: the pool exists only if its chain verifies).
    async fn handshake(
        &self,
        stream: TcpStream,
        client: Option<&ClientIdentity>,
        expect: Option<net_tls::Expect>,
        sessions: Option<&net_tls::Sessions>,
    ) -> Option<net_tls::Handshake> {
        let name = &self.target.tls.as_ref()?.server_name;
        Some(net_tls::handshake_in(stream, name, client, expect, self.timeout, sessions).await)
    }

    /// One more connection for the HTTP/1.1 pool: verified like the first, presenting the same
    /// leaf, with the same client identity; `None` otherwise (the pool stays smaller).
    async fn verified(self, leaf: CertificateDer<'static>) -> Option<VerifiedTls> {
        let stream = self.stream(None).await.ok()?;
        let expect = self.expect(Some(leaf))?;
        let name = expect.settings.server_name.clone();
        let sessions = Some(&self.sessions);
        net_tls::handshake_verified(stream, &name, self.client(), expect, self.timeout, sessions)
            .await
    }

    /// The pool's way to open more connections like `first`.
    fn pool_dial(&self, first: &VerifiedTls) -> Option<VerifiedDial> {
        let leaf = first.leaf()?;
        let dialer = self.clone();
        Some(Arc::new(move || {
            Box::pin(dialer.clone().verified(leaf.clone()))
        }))
    }

    /// An anonymous probe of a server whose certificate did not verify: no client identity,
    /// any chain accepted (nothing secret will travel over it).
    async fn anonymous(&self) -> Result<TlsStream<TcpStream>, String> {
        let stream = self.stream(None).await?;
        let hs = self
            .handshake(stream, None, None, None)
            .await
            .ok_or("no TLS settings")?;
        hs.outcome.map_err(|_| hs.detail)
    }
}

/// An `https://` proxy: does it speak TLS? A TLS ClientHello on the connection made, and when
/// that fails, a plain `CONNECT` (never with the proxy credentials) on a new one: an HTTP
/// answer there means the proxy is a plain HTTP proxy behind an `https://` URL.
async fn probe_tls_proxy(
    stream: tokio::net::TcpStream,
    addr: SocketAddr,
    p: &crate::plan::ProxyEndpoint,
    authority: &str,
    connected: CheckResult,
    ctx: &RunContext,
) -> CheckResult {
    let hs = net_tls::handshake(stream, &p.host.to_string(), None, None, ctx.timeout).await;
    let plain = match &hs.outcome {
        Ok(_) => None,
        Err(_) => match connect::connect(addr, ctx.timeout).await.outcome {
            Ok(s) => Some(proxy::connect_tunnel(s, authority, None, ctx.timeout).await),
            Err(_) => None,
        },
    };
    tcp::tls_proxy(connected, &hs, plain.as_ref())
}
