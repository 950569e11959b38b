//! TLS: one handshake that records the chain the server presents even when it would not
//! verify, then a separate verification of trust, name and time against the target's CA.
//!
//! Danger by name: [`RecordingVerifier`] records the chain so the evidence can be captured, and
//! accepts any chain only when nothing secret rides on the handshake: given an [`Expect`] (a
//! client identity is configured, or the connection joins a pool) it returns the real verdict,
//! so an unverified handshake ends before the client certificate is sent. It always checks the
//! handshake signatures, so the peer proved it holds the leaf's key. A connection becomes a
//! [`VerifiedTls`], the only thing credentials may travel over, only through [`seal`], which
//! demands a passing [`Verification`] that only this module builds.
//!
//! Without a client identity an unverified server is still probed anonymously on the same
//! handshake (so its `/version` can tell "the wrong server" from "the right server, wrong
//! CA"); with one, the engine opens a separate anonymous probe when it needs one.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{AlertDescription, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::plan::target::{ClientIdentity, TlsSettings};
use crate::x509::CertFacts;

/// The TLS sessions of one target's connections (its HTTP/1.1 pool, its HTTP/2 replacements),
/// so that each connection after the first resumes a session the first opened: over TLS 1.2 an
/// abbreviated handshake of one round trip instead of two, and no certificate sent again. A
/// resumed session is one a handshake of this pool verified (the pool exists only once the
/// first connection's chain verified, and its later handshakes verify like the first), and
/// its server proves it holds that session's secret; rustls keeps the session's chain, so
/// [`handshake_verified`] still compares the leaf. Made per target pool, never shared between
/// targets whose settings differ; retries and anonymous probes use none.
#[derive(Clone)]
pub struct Sessions(Arc<SessionsInner>);

struct SessionsInner {
    cache: Arc<rustls::client::ClientSessionMemoryCache>,
    /// The first handshake's verifier and client-certificate resolver: rustls resumes a
    /// session only under the very verifier and resolver that made it, so the pool's
    /// handshakes use these two (the verifier then holds them to the pool's [`Expect`]).
    parties: Mutex<Option<Parties>>,
}

type Parties = (Arc<RecordingVerifier>, Arc<NotingResolver>);

impl Sessions {
    /// Room for a few sessions of one server name (rustls keeps several TLS 1.3 tickets).
    pub fn new() -> Sessions {
        Sessions(Arc::new(SessionsInner {
            cache: Arc::new(rustls::client::ClientSessionMemoryCache::new(4)),
            parties: Mutex::new(None),
        }))
    }

    /// The verifier and resolver of this pool's handshakes: the first handshake's, now held
    /// to `expect`; or new ones (kept for the next handshake) when this is the first.
    fn parties(
        &self,
        expect: Option<Expect>,
        client: Option<&ClientIdentity>,
    ) -> Result<Parties, rustls::Error> {
        let mut parties = self.0.parties.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((verifier, resolver)) = parties.as_ref() {
            // Only ever stricter: the pool's handshakes all expect the first one's leaf.
            if let Some(expect) = expect {
                verifier.hold_to(expect);
            }
            return Ok((verifier.clone(), resolver.clone()));
        }
        let made = (
            RecordingVerifier::new(expect),
            Arc::new(NotingResolver::new(client)?),
        );
        *parties = Some(made.clone());
        Ok(made)
    }
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What a handshake must prove before it may complete: the chain verifies against these
/// settings (trust, name, time) and, for a pooled connection, its leaf is this certificate.
#[derive(Debug, Clone)]
pub struct Expect {
    pub settings: TlsSettings,
    pub now: SystemTime,
    /// The leaf the first connection presented and verified.
    pub leaf: Option<CertificateDer<'static>>,
}

impl Expect {
    /// Why `chain` does not meet this expectation, if it does not. A pooled connection's
    /// server must present the very leaf the first connection verified under these same
    /// settings at this same time: that leaf's verdict is already known (and the handshake's
    /// signature, checked apart, proves the server holds its key), so it is not judged again
    /// on each of the pool's handshakes.
    fn refusal(&self, chain: &[CertificateDer<'static>]) -> Option<&'static str> {
        if let Some(leaf) = &self.leaf {
            return (chain.first() != Some(leaf)).then_some(
                "the server presented another certificate than on the first connection",
            );
        }
        if !verify(chain, &self.settings, self.now).passed() {
            return Some("the server's certificate did not verify");
        }
        None
    }
}

/// Records the certificate chain; with an [`Expect`], refuses one that does not meet it (so no
/// client certificate follows); checks handshake signatures for real.
#[derive(Debug)]
struct RecordingVerifier {
    chain: Mutex<Vec<CertificateDer<'static>>>,
    /// A lock only so that a pool's handshakes (one verifier, see [`Sessions`]) can hold it to
    /// the first connection's leaf once that one verified.
    expect: Mutex<Option<Expect>>,
    /// Set when `expect` refused the chain.
    refused: Mutex<Option<&'static str>>,
    provider: Arc<CryptoProvider>,
}

impl RecordingVerifier {
    fn new(expect: Option<Expect>) -> Arc<RecordingVerifier> {
        Arc::new(RecordingVerifier {
            chain: Mutex::new(Vec::new()),
            expect: Mutex::new(expect),
            refused: Mutex::new(None),
            provider: provider(),
        })
    }

    fn hold_to(&self, expect: Expect) {
        let mut held = self.expect.lock().unwrap_or_else(|p| p.into_inner());
        *held = Some(expect);
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        let refusal = match self.expect.lock() {
            Ok(expect) => expect.as_ref().and_then(|e| e.refusal(&chain)),
            // A verifier whose lock a panic poisoned accepts nothing.
            Err(_) => Some("the server's certificate did not verify"),
        };
        if let Ok(mut recorded) = self.chain.lock() {
            *recorded = chain;
        }
        match refusal {
            None => Ok(ServerCertVerified::assertion()),
            Some(why) => {
                if let Ok(mut refused) = self.refused.lock() {
                    *refused = Some(why);
                }
                Err(rustls::Error::General(format!(
                    "{why}: handshake stopped before any client certificate was sent"
                )))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeFailure {
    NotTls,
    Alert(String),
    NoCommonVersion,
    Closed,
    ClientCertRequired,
    Stalled,
    /// A handshake message over the 64 KiB every TLS client allows (a huge certificate
    /// chain): the server does speak TLS, so this is not `NotTls`.
    Oversized,
    /// kube-reach ended the handshake itself: the [`Expect`] was not met (why), so no client
    /// certificate went out. The server's certificate did arrive.
    Refused(&'static str),
    Other(String),
}

pub struct Handshake {
    pub outcome: Result<TlsStream<TcpStream>, HandshakeFailure>,
    /// The server sent a CertificateRequest. A server that never asks cannot authenticate a
    /// client certificate: something terminates TLS in front of the API server.
    pub client_cert_requested: bool,
    /// The chain as presented: leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    pub elapsed: Duration,
    pub detail: String,
}

impl Handshake {
    /// The protocol version agreed, for evidence ("TLS 1.3"); `None` when it failed.
    pub fn version(&self) -> Option<&'static str> {
        let (_, conn) = self.outcome.as_ref().ok()?.get_ref();
        conn.protocol_version().map(version_name)
    }

    /// Whether the server chose HTTP/2 (ALPN `h2`).
    pub fn alpn_h2(&self) -> bool {
        self.outcome.as_ref().is_ok_and(speaks_h2)
    }

    /// Whether the server's whole handshake flight arrived: the handshake completed, or
    /// kube-reach ended it after judging the certificate.
    pub fn flight_arrived(&self) -> bool {
        matches!(self.outcome, Ok(_) | Err(HandshakeFailure::Refused(_)))
    }
}

/// Whether the server of this connection chose HTTP/2 by ALPN.
pub fn speaks_h2(stream: &TlsStream<TcpStream>) -> bool {
    stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice())
}

/// "TLS 1.3", as people write it (rustls' `Debug` says `TLSv1_3`).
fn version_name(version: rustls::ProtocolVersion) -> &'static str {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLS 1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2",
        _ => "TLS",
    }
}

/// An alert as the TLS RFCs name it, with its number: `handshake_failure (40)` (rustls names
/// it `HandshakeFailure` in its `Debug`, which is also what its `Display` prints).
fn alert_name(alert: AlertDescription) -> String {
    let code = u8::from(alert);
    let Some(camel) = alert.as_str() else {
        return format!("unknown alert {code}");
    };
    let chars: Vec<char> = camel.chars().collect();
    let mut name = String::new();
    for (i, c) in chars.iter().enumerate() {
        // A word starts at a capital after a small letter (BadCertificate), or at the last
        // capital of a run followed by a small letter (UnknownPSKIdentity: psk_identity).
        let after_small = i > 0 && chars[i - 1].is_lowercase();
        let ends_run = i > 0 && chars.get(i + 1).is_some_and(|n| n.is_lowercase());
        if c.is_uppercase() && (after_small || (ends_run && chars[i - 1].is_uppercase())) {
            name.push('_');
        }
        name.extend(c.to_lowercase());
    }
    format!("{name} ({code})")
}

/// One TLS handshake. `expect` makes the verifier return the real verdict (required whenever
/// `client` is given, see the module doc); without it any chain is accepted and recorded.
pub async fn handshake(
    stream: TcpStream,
    server_name: &str,
    client: Option<&ClientIdentity>,
    expect: Option<Expect>,
    timeout: Duration,
) -> Handshake {
    handshake_in(stream, server_name, client, expect, timeout, None).await
}

/// [`handshake`], storing its session in `sessions` and resuming one from there when the
/// server agrees (see [`Sessions`]).
pub async fn handshake_in(
    stream: TcpStream,
    server_name: &str,
    client: Option<&ClientIdentity>,
    expect: Option<Expect>,
    timeout: Duration,
    sessions: Option<&Sessions>,
) -> Handshake {
    let started = Instant::now();
    let failed = |failure: HandshakeFailure,
                  detail: String,
                  chain: Vec<CertificateDer<'static>>| Handshake {
        outcome: Err(failure),
        client_cert_requested: false,
        chain,
        elapsed: started.elapsed(),
        detail,
    };
    if client.is_some() && expect.is_none() {
        // The client certificate may only follow a chain that verified.
        let why = "a client identity needs the server's certificate verified first";
        return failed(HandshakeFailure::Other(why.into()), why.into(), Vec::new());
    }
    let parties = match sessions {
        Some(sessions) => sessions.parties(expect, client),
        None => NotingResolver::new(client).map(|r| (RecordingVerifier::new(expect), Arc::new(r))),
    };
    let (verifier, resolver) = match parties {
        Ok(parties) => parties,
        Err(e) => {
            return failed(
                HandshakeFailure::Other(e.to_string()),
                e.to_string(),
                Vec::new(),
            );
        }
    };
    let config = match client_config(verifier.clone(), resolver.clone(), sessions) {
        Ok(c) => c,
        Err(e) => {
            return failed(
                HandshakeFailure::Other(e.to_string()),
                e.to_string(),
                Vec::new(),
            );
        }
    };
    let name = match ServerName::try_from(server_name.to_string()) {
        Ok(n) => n,
        Err(e) => {
            // Kubeconfig text: through the one redaction point, escaped and bounded.
            let quoted = crate::secret::quote(&server_name.escape_default().to_string(), 120);
            let why = format!("server name \"{quoted}\": {e}");
            return failed(HandshakeFailure::Other(why.clone()), why, Vec::new());
        }
    };
    let result = tokio::time::timeout(
        timeout,
        TlsConnector::from(Arc::new(config)).connect(name, stream),
    )
    .await;
    let chain = verifier.chain.lock().map(|c| c.clone()).unwrap_or_default();
    let refused = verifier.refused.lock().ok().and_then(|r| *r);
    match result {
        Err(_) => failed(
            HandshakeFailure::Stalled,
            format!("no handshake within {} ms", timeout.as_millis()),
            chain,
        ),
        Ok(Err(e)) => {
            // Our own verifier's refusal, in our words rather than rustls' wrapping of them.
            let (failure, detail) = match refused {
                Some(why) => (
                    HandshakeFailure::Refused(why),
                    format!(
                        "{why}: kube-reach ended the handshake before sending its client certificate"
                    ),
                ),
                None => classify(&e),
            };
            failed(failure, detail, chain)
        }
        Ok(Ok(tls)) => Handshake {
            outcome: Ok(tls),
            client_cert_requested: resolver.asked(),
            chain,
            elapsed: started.elapsed(),
            detail: "handshake complete".into(),
        },
    }
}

fn client_config(
    verifier: Arc<RecordingVerifier>,
    resolver: Arc<NotingResolver>,
    sessions: Option<&Sessions>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.resumption = match sessions {
        Some(sessions) => rustls::client::Resumption::store(sessions.0.cache.clone()),
        None => rustls::client::Resumption::disabled(),
    };
    Ok(config)
}

/// Offers the target's client certificate (if any) and notes whether the server asked for one:
/// rustls calls `resolve` only when a CertificateRequest arrived (TLS 1.2 and 1.3 alike).
#[derive(Debug)]
struct NotingResolver {
    key: Option<Arc<rustls::sign::CertifiedKey>>,
    asked: std::sync::atomic::AtomicBool,
}

impl NotingResolver {
    fn new(client: Option<&ClientIdentity>) -> Result<NotingResolver, rustls::Error> {
        let key = client
            .map(|id| {
                rustls::sign::CertifiedKey::from_der(
                    id.chain.clone(),
                    id.key.clone_key(),
                    &provider(),
                )
            })
            .transpose()?
            .map(Arc::new);
        Ok(NotingResolver {
            key,
            asked: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn asked(&self) -> bool {
        self.asked.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl rustls::client::ResolvesClientCert for NotingResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.asked.store(true, std::sync::atomic::Ordering::SeqCst);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

/// rustls/io error → failure, in one place.
fn classify(error: &std::io::Error) -> (HandshakeFailure, String) {
    let Some(tls) = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        let detail = error.to_string();
        return match error.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => (HandshakeFailure::Closed, detail),
            _ => (HandshakeFailure::Other(detail.clone()), detail),
        };
    };
    let failure = match tls {
        // A handshake message over 64 KiB, in records of a legal size. (`MessageTooLarge` is
        // one record longer than TLS allows, which no TLS server sends: not TLS.)
        rustls::Error::InvalidMessage(rustls::InvalidMessage::HandshakePayloadTooLarge) => {
            HandshakeFailure::Oversized
        }
        rustls::Error::InvalidMessage(what) => {
            return (HandshakeFailure::NotTls, not_tls_detail(what));
        }
        rustls::Error::AlertReceived(alert) => {
            // rustls' own text would name the alert by its `Debug` form.
            let detail = format!("the server sent the fatal alert {}", alert_name(*alert));
            let failure = match alert {
                AlertDescription::ProtocolVersion => HandshakeFailure::NoCommonVersion,
                AlertDescription::CertificateRequired => HandshakeFailure::ClientCertRequired,
                other => HandshakeFailure::Alert(alert_name(*other)),
            };
            return (failure, detail);
        }
        rustls::Error::PeerIncompatible(_) => HandshakeFailure::NoCommonVersion,
        other => HandshakeFailure::Other(other.to_string()),
    };
    (failure, error.to_string())
}

/// What was wrong with an answer that is not TLS, in words (rustls' own text names the
/// problem by its `Debug` form: "received corrupt message of type InvalidContentType").
fn not_tls_detail(what: &rustls::InvalidMessage) -> String {
    use rustls::InvalidMessage as M;
    let why = match what {
        M::InvalidContentType => "its first byte is no TLS record type",
        M::UnknownProtocolVersion => "its record names no TLS version",
        M::MessageTooLarge => "its record is longer than TLS allows",
        M::InvalidEmptyPayload => "its record is empty",
        _ => "a malformed TLS handshake message",
    };
    format!("the answer is not TLS: {why}")
}

/// The three judgements webpki makes, kept apart so each gets its own check.
#[derive(Debug)]
pub struct Verification {
    trust: Result<(), rustls::Error>,
    name: Result<(), rustls::Error>,
    time_ok: bool,
    /// The trust anchors used, for evidence.
    pub anchors: String,
}

impl Verification {
    pub fn trust(&self) -> &Result<(), rustls::Error> {
        &self.trust
    }
    pub fn name(&self) -> &Result<(), rustls::Error> {
        &self.name
    }
    pub fn passed(&self) -> bool {
        self.trust.is_ok() && self.name.is_ok() && self.time_ok
    }
}

/// The system's roots, loaded and parsed into trust anchors once per process (every
/// verification, pooled connections' included, starts from a copy), and how many parsed.
fn system_roots() -> &'static (RootCertStore, usize) {
    static ROOTS: OnceLock<(RootCertStore, usize)> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut store = RootCertStore::empty();
        let certs = rustls_native_certs::load_native_certs().certs;
        let (added, _) = store.add_parsable_certificates(certs);
        (store, added)
    })
}

fn root_store(settings: &TlsSettings) -> (RootCertStore, String) {
    let use_system = settings.ca_certs.is_empty() || !settings.ca_replaces_system_roots;
    let mut parts = Vec::new();
    let mut store = if use_system {
        let (store, added) = system_roots();
        parts.push(format!("{added} system roots"));
        store.clone()
    } else {
        RootCertStore::empty()
    };
    if !settings.ca_certs.is_empty() {
        let (added, _) = store.add_parsable_certificates(settings.ca_certs.iter().cloned());
        parts.push(format!(
            "{added} CA(s) from {}",
            settings.ca_source.as_deref().unwrap_or("the kubeconfig")
        ));
    }
    (store, parts.join(" + "))
}

/// Judges a presented chain. Trust is checked at a moment inside the leaf's validity so an
/// expired certificate is reported as expired, not also as untrusted.
pub fn verify(
    chain: &[CertificateDer<'static>],
    settings: &TlsSettings,
    now: SystemTime,
) -> Verification {
    let (roots, anchors) = root_store(settings);
    let no_chain = || rustls::Error::General("the server presented no certificate".into());
    let Some(leaf) = chain.first() else {
        return Verification {
            trust: Err(no_chain()),
            name: Err(no_chain()),
            time_ok: false,
            anchors,
        };
    };
    let facts = CertFacts::parse(leaf);
    let time_ok = facts
        .as_ref()
        .is_some_and(|f| f.not_before <= now && now <= f.not_after);
    let parsed = rustls::server::ParsedCertificate::try_from(leaf);
    let (trust, name) = match parsed {
        Err(e) => (Err(e.clone()), Err(e)),
        Ok(parsed) => {
            let at = |t: SystemTime| {
                let unix =
                    UnixTime::since_unix_epoch(t.duration_since(UNIX_EPOCH).unwrap_or_default());
                let algs = provider().signature_verification_algorithms.all;
                rustls::client::verify_server_cert_signed_by_trust_anchor(
                    &parsed,
                    &roots,
                    &chain[1..],
                    unix,
                    algs,
                )
            };
            let mut trust = at(now);
            // The leaf's dates are tls.validity's business: when only time is wrong, judge the
            // chain again inside the leaf's validity, and count a chain that fails there only
            // on time (an old leaf under a newer intermediate) as trusted.
            if !time_ok && is_time_error(&trust) {
                if let Some(f) = &facts {
                    trust = at(f.not_before
                        + f.not_after.duration_since(f.not_before).unwrap_or_default() / 2);
                }
                if is_time_error(&trust) {
                    trust = Ok(());
                }
            }
            // The configured CA is the server's own certificate (a pinned leaf, copied from
            // `openssl s_client`): Go's crypto/x509, so kubectl, trusts a leaf found among the
            // roots as it is, and webpki does not. Same verdict as kubectl.
            if trust.is_err() && settings.ca_certs.iter().any(|ca| ca == leaf) {
                trust = Ok(());
            }
            let name = match ServerName::try_from(settings.server_name.clone()) {
                Ok(sn) => rustls::client::verify_server_name(&parsed, &sn),
                Err(e) => Err(rustls::Error::General(format!("server name: {e}"))),
            };
            (trust, name)
        }
    };
    Verification {
        trust,
        name,
        time_ok,
        anchors,
    }
}

fn is_time_error(result: &Result<(), rustls::Error>) -> bool {
    use rustls::CertificateError as E;
    matches!(
        result,
        Err(rustls::Error::InvalidCertificate(
            E::Expired | E::ExpiredContext { .. } | E::NotValidYet | E::NotValidYetContext { .. }
        ))
    )
}

/// A TLS connection whose server passed trust, name and time checks: the only carrier of
/// credentials.
pub struct VerifiedTls {
    stream: TlsStream<TcpStream>,
    /// How long its handshake took: one or two round trips and the server's work, the measure
    /// of this link an HTTP/1.1 pipe waits by (`net::pipeline::hedge_after`).
    handshake: Duration,
}

impl VerifiedTls {
    pub fn into_stream(self) -> TlsStream<TcpStream> {
        self.stream
    }
    /// How long this connection's handshake took.
    pub fn handshake_time(&self) -> Duration {
        self.handshake
    }
    /// Whether the server chose HTTP/2 on this connection.
    pub fn speaks_h2(&self) -> bool {
        speaks_h2(&self.stream)
    }
    /// The leaf certificate this connection's server presented (and that verified).
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        let (_, conn) = self.stream.get_ref();
        conn.peer_certificates()
            .and_then(|chain| chain.first())
            .map(|c| c.clone().into_owned())
    }
}

/// A handshake that must meet `expect` (see [`handshake`]), as a verified connection: its
/// verifier already judged this stream's chain against `expect`'s settings and refused any
/// other, so a completed handshake is sealed without judging the chain a second time (the
/// HTTP/1.1 pool opens these on its hot path). `None` when the handshake did not complete.
///
/// A resumed session (`sessions`) skips the verifier: its chain is the verified one rustls
/// kept with the session, and its leaf is still held to `expect`'s here.
pub async fn handshake_verified(
    stream: TcpStream,
    server_name: &str,
    client: Option<&ClientIdentity>,
    expect: Expect,
    timeout: Duration,
    sessions: Option<&Sessions>,
) -> Option<VerifiedTls> {
    let leaf = expect.leaf.clone();
    let hs = handshake_in(stream, server_name, client, Some(expect), timeout, sessions).await;
    let verified = VerifiedTls {
        stream: hs.outcome.ok()?,
        handshake: hs.elapsed,
    };
    match leaf {
        Some(leaf) if verified.leaf().as_ref() != Some(&leaf) => None,
        _ => Some(verified),
    }
}

/// The verified connection, from this stream's own certificate chain judged against
/// `settings`: a verification of some other chain can never seal it. The stream comes back when
/// its server did not verify (it may then carry only anonymous requests).
/// `handshake` is how long the stream's handshake took.
pub fn seal(
    stream: TlsStream<TcpStream>,
    settings: &TlsSettings,
    now: SystemTime,
    handshake: Duration,
) -> Result<VerifiedTls, Box<TlsStream<TcpStream>>> {
    let (_, conn) = stream.get_ref();
    let chain: Vec<CertificateDer<'static>> = conn
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect();
    if verify(&chain, settings, now).passed() {
        Ok(VerifiedTls { stream, handshake })
    } else {
        Err(Box::new(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_are_named_as_the_rfcs_name_them() {
        for (alert, name) in [
            (AlertDescription::HandshakeFailure, "handshake_failure (40)"),
            (AlertDescription::UnknownCA, "unknown_ca (48)"),
            (
                AlertDescription::UnknownPSKIdentity,
                "unknown_psk_identity (115)",
            ),
            (AlertDescription::Unknown(200), "unknown alert 200"),
        ] {
            assert_eq!(alert_name(alert), name);
        }
    }

    fn tls_error(e: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn only_a_handshake_message_over_64_kib_is_oversized() {
        use rustls::InvalidMessage as M;
        let oversized = classify(&tls_error(M::HandshakePayloadTooLarge.into()));
        assert_eq!(oversized.0, HandshakeFailure::Oversized);
        // One record longer than TLS allows: bytes no TLS server sends.
        let record = classify(&tls_error(M::MessageTooLarge.into()));
        assert_eq!(record.0, HandshakeFailure::NotTls);
        assert_eq!(
            record.1,
            "the answer is not TLS: its record is longer than TLS allows"
        );
    }

    #[test]
    fn an_alert_is_told_in_words_without_rustls_debug() {
        let (failure, detail) = classify(&tls_error(rustls::Error::AlertReceived(
            AlertDescription::BadCertificate,
        )));
        assert_eq!(
            failure,
            HandshakeFailure::Alert("bad_certificate (42)".into())
        );
        assert_eq!(
            detail,
            "the server sent the fatal alert bad_certificate (42)"
        );
        let (failure, _) = classify(&tls_error(rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired,
        )));
        assert_eq!(failure, HandshakeFailure::ClientCertRequired);
    }

    /// A loopback TLS server presenting `class`'s chain for one handshake; its address.
    async fn serve_once(
        pki: &crate::demo::pki::Pki,
        class: crate::demo::pki::TlsClass,
    ) -> std::net::SocketAddr {
        serve_config_once(config_of(pki, class)).await
    }

    fn config_of(
        pki: &crate::demo::pki::Pki,
        class: crate::demo::pki::TlsClass,
    ) -> Arc<rustls::ServerConfig> {
        let identity = pki
            .server_identity(class, crate::demo::pki::DEFAULT_SANS)
            .expect("server identity");
        identity
            .server_config(&crate::demo::pki::ClientAuth::None)
            .expect("server config")
    }

    /// A loopback TLS server with this config for one handshake; its address.
    async fn serve_config_once(config: Arc<rustls::ServerConfig>) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            if let Ok((stream, _)) = listener.accept().await {
                let accepted = tokio_rustls::TlsAcceptor::from(config).accept(stream).await;
                // Held open until the client is done with it.
                if let Ok(mut tls) = accepted {
                    let mut buf = [0u8; 1];
                    let _ = tokio::io::AsyncReadExt::read(&mut tls, &mut buf).await;
                }
            }
        });
        addr
    }

    async fn stream_from(addr: std::net::SocketAddr) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.expect("connect loopback");
        let hs = handshake(tcp, "localhost", None, None, Duration::from_secs(10)).await;
        hs.outcome.expect("handshake")
    }

    /// A pooled connection is verified by its own handshake: one whose server presents the
    /// expected leaf completes as a verified connection, a rogue one does not.
    #[tokio::test]
    async fn handshake_verified_holds_the_server_to_the_expected_leaf() {
        use crate::demo::pki::{Pki, TlsClass};
        let pki = Pki::generate().expect("pki");
        let settings = TlsSettings {
            ca_certs: vec![pki.root_ca_der()],
            ca_source: Some("test CA".into()),
            ca_replaces_system_roots: true,
            insecure_skip_verify: false,
            server_name: "localhost".into(),
        };
        let now = SystemTime::now();
        let server = config_of(&pki, TlsClass::Good);
        let first = stream_from(serve_config_once(server.clone()).await).await;
        let leaf = seal(first, &settings, now, Duration::ZERO)
            .expect("first verifies")
            .leaf();
        let expect = Expect {
            settings: settings.clone(),
            now,
            leaf,
        };
        let again = |config| {
            let expect = expect.clone();
            async move {
                let tcp = TcpStream::connect(serve_config_once(config).await)
                    .await
                    .expect("connect loopback");
                handshake_verified(
                    tcp,
                    "localhost",
                    None,
                    expect,
                    Duration::from_secs(10),
                    None,
                )
                .await
            }
        };
        assert!(again(server).await.is_some(), "the same server again");
        let other = config_of(&pki, TlsClass::Good);
        assert!(again(other).await.is_none(), "another good leaf");
        let rogue = config_of(&pki, TlsClass::UnknownAuthority);
        assert!(again(rogue).await.is_none(), "rogue");
    }

    /// `seal` judges the chain of the stream it is given: the rogue server's stream stays
    /// unverified even though a connection to the good server, with the same settings, verified
    /// a moment before (the old `seal(stream, &Verification)` took any verification).
    #[tokio::test]
    async fn seal_judges_the_streams_own_chain() {
        use crate::demo::pki::{Pki, TlsClass};
        let pki = Pki::generate().expect("pki");
        let settings = TlsSettings {
            ca_certs: vec![pki.root_ca_der()],
            ca_source: Some("test CA".into()),
            ca_replaces_system_roots: true,
            insecure_skip_verify: false,
            server_name: "localhost".into(),
        };
        let now = SystemTime::now();
        let good = stream_from(serve_once(&pki, TlsClass::Good).await).await;
        let rogue = stream_from(serve_once(&pki, TlsClass::UnknownAuthority).await).await;
        assert!(
            seal(good, &settings, now, Duration::ZERO).is_ok(),
            "the good server verifies"
        );
        assert!(
            seal(rogue, &settings, now, Duration::ZERO).is_err(),
            "the rogue server's stream is not sealed"
        );
    }
}
