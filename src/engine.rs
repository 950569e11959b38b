//! The engine: every target walked through its kind's pipeline (`pipeline`), targets in
//! parallel, under `--timeout` per operation and `--deadline` for the run. The connection steps
//! are straight-line async code here (each hands the next what it needs: addresses, a stream, a
//! TLS connection); the server steps run in `steps`, each judged by its check. Results are
//! recorded as they are made, so a deadline or a panic still leaves a complete report: the check
//! in progress becomes `error` with reason `deadline` or `internal`, and the rows not reached
//! become skips (`shape`). The engine judges nothing itself.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::catalogue::{CheckId, Reason};
use crate::checks::{config, dns, gitlab_server, http, netpol, runner, tcp, tls, tools};
use crate::env::Env;
use crate::gitlab;
use crate::model::{CheckResult, RunReport, Status, TargetReport};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::net::http::{
    Endpoint as HttpEndpoint, HttpConnection, HttpFailure, Response, VerifiedDial,
};
use crate::net::tls::{self as net_tls, HandshakeFailure, VerifiedTls};
use crate::net::{connect, proxy, resolve};
use crate::plan::{ClientIdentity, Host, Plan, Requirement, Route, Scheme, Target};
use crate::secret::ScrubbedReport;

mod pipeline;
mod shape;
mod share;
mod steps;

/// At most this many addresses of one name are tried.
const MAX_ADDRESSES: usize = 8;

/// When the process started (see [`mark_process_start`]).
static PROCESS_START: OnceLock<Instant> = OnceLock::new();

/// Called first thing in `main`: the report's duration then counts from the process start,
/// planning included (reading kubeconfigs and token files can take a while), not only the
/// checks. In-process runs (tests) that never call it count from the start of [`run`].
pub fn mark_process_start() {
    let _ = PROCESS_START.set(Instant::now());
}

/// The time since the process started, or since `fallback` when it was never marked.
pub fn elapsed_since_start(fallback: Instant) -> Duration {
    PROCESS_START.get().copied().unwrap_or(fallback).elapsed()
}

pub struct RunContext {
    pub dns: resolve::DnsSetup,
    /// GitLab CI facts (job token kept wrapped), for the agent and GitLab-server layers.
    pub ci: gitlab::CiFacts,
    /// The GitLab agents the kubeconfig targets use, for the allowed-agents cross-check.
    pub agents: Vec<gitlab::AgentIdentity>,
    /// Whether an empty allowed-agents list is a finding (see `gitlab::AgentExpectation`).
    pub agent_expectation: gitlab::AgentExpectation,
    /// This checkout's `gitlab.agent-config` results: they can decide which rule left an agent
    /// out of the job's allowed agents.
    pub agent_configs: Vec<CheckResult>,
    pub timeout: Duration,
    /// Requests through the GitLab agent server (`Plan::agent_timeout`).
    pub agent_timeout: Duration,
    pub expiry_warn: Duration,
    pub requirements: Vec<Requirement>,
    pub now: SystemTime,
    /// The runner pod's name, when the job runs in one (for the in-cluster target's reads).
    pub pod_name: Option<String>,
    /// `system:serviceaccount:<ns>:<name>` from the mounted token's claims, when there is one.
    pub service_account: Option<String>,
    /// Lookups and connections the targets share (`share`).
    pub fleet: share::Fleet,
}

/// Results of one target as they are made, shared with the engine's watchdog.
pub struct Recorder {
    /// The rows the target's report has whatever happens (its shape).
    rows: Vec<shape::Row>,
    results: Mutex<Vec<CheckResult>>,
    current: Mutex<Option<(CheckId, String)>>,
    dates: Mutex<Vec<SystemTime>>,
    /// When the last step began or ended: a result that ran but carries no duration of its own
    /// took the time since then (JUnit `time`, JSON `duration_ms`).
    last_event: Mutex<Option<Instant>>,
    /// Whether the verified handshake saw a CertificateRequest (`None`: no handshake yet).
    client_cert_requested: Mutex<Option<bool>>,
    /// Every address this target tried, for the NetworkPolicy evaluation after the run.
    paths: Mutex<Vec<netpol::Attempted>>,
    /// What the in-cluster target read about its pod and namespace.
    cluster: Mutex<Option<netpol::ClusterView>>,
    /// The shared connection this target waits to join (`share`).
    joining: Mutex<Option<Arc<share::Opening>>>,
}

impl Recorder {
    fn new(rows: Vec<shape::Row>) -> Recorder {
        Recorder {
            rows,
            results: Mutex::default(),
            current: Mutex::default(),
            dates: Mutex::default(),
            last_event: Mutex::default(),
            client_cert_requested: Mutex::default(),
            paths: Mutex::default(),
            cluster: Mutex::default(),
            joining: Mutex::default(),
        }
    }
    fn start(&self, id: CheckId, subject: &str) {
        if let Ok(mut c) = self.current.lock() {
            *c = Some((id, subject.to_string()));
        }
        self.mark();
    }
    fn mark(&self) {
        if let Ok(mut last) = self.last_event.lock() {
            *last = Some(Instant::now());
        }
    }
    /// `result` with the time since the last event when it ran and has no duration yet.
    fn timed(&self, mut result: CheckResult) -> CheckResult {
        if result.duration.is_zero()
            && result.status != Status::Skip
            && let Some(since) = self.last_event.lock().ok().and_then(|l| *l)
        {
            result.duration = since.elapsed();
        }
        result
    }
    fn push(&self, result: CheckResult) {
        let result = self.timed(result);
        self.mark();
        if let Ok(mut r) = self.results.lock() {
            r.push(result);
        }
        if let Ok(mut c) = self.current.lock() {
            *c = None;
        }
    }
    fn push_all(&self, results: impl IntoIterator<Item = CheckResult>) {
        for r in results {
            self.push(r);
        }
    }
    fn note_client_cert_requested(&self, requested: bool) {
        if let Ok(mut r) = self.client_cert_requested.lock() {
            *r = Some(requested);
        }
    }
    fn client_cert_requested(&self) -> Option<bool> {
        self.client_cert_requested.lock().ok().and_then(|r| *r)
    }
    fn date(&self, response: &Response) {
        if let Some(date) = response
            .header("date")
            .and_then(|d| httpdate::parse_http_date(d).ok())
            && let Ok(mut dates) = self.dates.lock()
        {
            dates.push(date);
        }
    }
    fn tried(&self, target: &str, attempts: &[connect::Attempt], via_proxy: bool) {
        if let Ok(mut paths) = self.paths.lock() {
            paths.extend(attempts.iter().map(|a| netpol::Attempted {
                target: target.to_string(),
                addr: a.addr,
                connected: a.outcome.is_ok(),
                via_proxy,
            }));
        }
    }
    /// Re-judges the recorded result of `id` with what a later step learned.
    fn revise(&self, id: CheckId, judge: impl FnOnce(CheckResult) -> CheckResult) {
        if let Ok(mut results) = self.results.lock()
            && let Some(slot) = results.iter_mut().rev().find(|r| r.id == id)
        {
            *slot = judge(slot.clone());
        }
    }
    /// Keeps the view for after the run; the reads are done, so no check is in progress.
    fn cluster(&self, view: netpol::ClusterView) {
        if let Ok(mut c) = self.cluster.lock() {
            *c = Some(view);
        }
        if let Ok(mut c) = self.current.lock() {
            *c = None;
        }
        self.mark();
    }
    /// The paths tried and the cluster view, for [`netpol::apply`].
    fn surroundings(&self) -> (Vec<netpol::Attempted>, Option<netpol::ClusterView>) {
        let paths = self.paths.lock().map(|p| p.clone()).unwrap_or_default();
        let view = self.cluster.lock().ok().and_then(|c| c.clone());
        (paths, view)
    }
    /// The target's finished results: the check in progress at an abort becomes its error,
    /// and every row of the shape not reached becomes a skip naming what stopped it.
    fn finish(&self, abort: Option<Reason>) -> (Vec<CheckResult>, Vec<SystemTime>) {
        let mut results = self.results.lock().map(|r| r.clone()).unwrap_or_default();
        if let Some(reason) = abort {
            // Every await that can take long is preceded by `start`, so a check is normally in
            // progress; if not, the run stopped between checks: at the first row not reached.
            let current = self.current.lock().ok().and_then(|c| c.clone());
            let current = current.or_else(|| self.stopped_while_joining(&mut results));
            let (id, subject) = current
                .or_else(|| {
                    shape::first_missing(&self.rows, &results).map(|r| (r.id, r.subject.clone()))
                })
                .unwrap_or((CheckId::HttpVersion, String::new()));
            results.push(self.timed(CheckResult::finding(id, subject, reason)));
        }
        shape::fill(&self.rows, &mut results);
        let dates = self.dates.lock().map(|d| d.clone()).unwrap_or_default();
        (results, dates)
    }
}

pub async fn run(plan: Plan, env: &Env) -> ScrubbedReport {
    let started = Instant::now();
    let started_at = crate::x509::format_time(env.now);
    let deadline = tokio::time::Instant::now() + plan.deadline;
    let dns = resolve::DnsSetup::load(&plan.resolv_conf_path, &plan.hosts_path);
    let environment = runner::facts(env, &dns);
    let mut checks = plan.checks.clone();
    checks.push(runner::environment(&environment));
    let ci = plan.ci;
    let read_configs = plan.options.read_checkout_agent_configs;
    let agent_configs = match ci.project_dir.as_ref().filter(|_| read_configs) {
        Some(dir) => gitlab::check_agent_configs(dir, &ci),
        None => Vec::new(),
    };
    checks.extend(agent_configs.iter().cloned());
    let agent_of = gitlab_server::agents_of(&plan.targets);
    let agents = agent_of.iter().map(|(_, a)| a.clone()).collect();
    let tools = plan
        .options
        .probe_client_tools
        .then(|| start_tool_probe(env, plan.timeout));
    let pod = crate::targets::in_cluster::PodIdentity::read(env);
    let agent_expectation = gitlab::AgentExpectation::from_targets(
        plan.targets.iter().map(|t| (t.name.as_str(), t.kind)),
    );
    let ctx = Arc::new(RunContext {
        dns,
        ci,
        agents,
        agent_expectation,
        agent_configs,
        timeout: plan.timeout,
        agent_timeout: plan.agent_timeout,
        expiry_warn: plan.expiry_warn,
        requirements: plan.requirements.clone(),
        now: env.now,
        pod_name: pod.pod,
        service_account: pod.username,
        fleet: share::Fleet::default(),
    });
    let mut running = Vec::new();
    for target in plan.targets {
        let recorder = Arc::new(Recorder::new(shape::rows(&target, &ctx.requirements)));
        let target = Arc::new(target);
        let handle = tokio::spawn(diagnose(target.clone(), ctx.clone(), recorder.clone()));
        running.push((target, recorder, handle));
    }
    let mut targets = Vec::new();
    let mut dates = Vec::new();
    let (mut paths, mut cluster) = (Vec::new(), None);
    for (target, recorder, mut handle) in running {
        let abort = match tokio::time::timeout_at(deadline, &mut handle).await {
            Ok(Ok(())) => None,
            Ok(Err(_panic)) => Some(Reason::Internal),
            Err(_) => {
                handle.abort();
                Some(Reason::Deadline)
            }
        };
        let (results, target_dates) = recorder.finish(abort);
        let (tried, view) = recorder.surroundings();
        paths.extend(tried);
        cluster = cluster.or(view);
        dates.extend(target_dates.into_iter().map(|d| (target.name.clone(), d)));
        targets.push(TargetReport::new(
            &target.name,
            target.kind,
            &target.server_display,
            results,
        ));
    }
    gitlab_server::explain_agent_failures(&mut targets, &agent_of);
    checks.extend(finish_tool_probe(tools, deadline, &targets).await);
    if let Some(view) = &cluster {
        netpol::apply(&mut targets, view, &paths, &ctx.dns.nameservers);
    }
    if let Some(clock) = runner::clock(SystemTime::now(), &dates) {
        checks.push(clock);
    }
    let duration = elapsed_since_start(started);
    let report = RunReport::new(started_at, duration, checks, targets, environment);
    plan.scrubber.scrub_report(report)
}

/// Asks the job's `kubectl` and `helm` their versions on a blocking thread while the targets
/// are diagnosed (`runner.tools`), when `RunOptions::probe_client_tools` says so.
fn start_tool_probe(env: &Env, timeout: Duration) -> tokio::task::JoinHandle<Vec<tools::Probe>> {
    let vars: Vec<(String, String)> = env.vars.clone().into_iter().collect();
    tokio::task::spawn_blocking(move || tools::probe(&vars, timeout))
}

/// The `runner.tools` results, judged against the servers' versions the targets found.
async fn finish_tool_probe(
    probe: Option<tokio::task::JoinHandle<Vec<tools::Probe>>>,
    deadline: tokio::time::Instant,
    targets: &[TargetReport],
) -> Vec<CheckResult> {
    let Some(probe) = probe else {
        return Vec::new();
    };
    match tokio::time::timeout_at(deadline, probe).await {
        Ok(Ok(probes)) => tools::judge(&probes, targets),
        Ok(Err(_panic)) => vec![CheckResult::finding(
            CheckId::RunnerTools,
            "PATH",
            Reason::Internal,
        )],
        Err(_) => vec![CheckResult::finding(
            CheckId::RunnerTools,
            "PATH",
            Reason::Deadline,
        )],
    }
}

async fn diagnose(target: Arc<Target>, ctx: Arc<RunContext>, rec: Arc<Recorder>) {
    rec.push_all(target.config_checks.iter().cloned());
    // No endpoint: the config layer found nothing to connect to (its failure says why, and
    // blocks every row of the shape).
    let Some(endpoint) = &target.endpoint else {
        return;
    };
    revise_no_proxy(&target, &endpoint.host, &ctx, &rec).await;
    let host = match &target.route {
        Route::Direct => &endpoint.host,
        Route::Proxy(p) => &p.host,
    };
    let Some(addresses) = resolve_host(host, &ctx, &rec).await else {
        return;
    };
    // Targets with this one's route, TLS settings and client identity share one connection.
    if let Some(conn) = share::connection(&target, &addresses, &ctx, &rec).await {
        steps::run(&conn, &target, &ctx, &rec).await;
    }
}

/// TCP, proxy and TLS: the connection the API layers use, or `None` when a layer failed (its
/// result says why).
async fn connect_layers(
    target: &Arc<Target>,
    addresses: &[IpAddr],
    ctx: &RunContext,
    rec: &Recorder,
) -> Option<HttpConnection> {
    let endpoint = target.endpoint.as_ref()?;
    let (host, port, proxy) = match &target.route {
        Route::Direct => (&endpoint.host, endpoint.port, None),
        Route::Proxy(p) => (&p.host, p.port, Some(p)),
    };
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
    let tried: Vec<(IpAddr, bool)> = attempts
        .iter()
        .map(|a| (a.addr.ip(), a.outcome.is_ok()))
        .collect();
    rec.revise(CheckId::DnsResolve, |r| {
        dns::judge_private_answer(r, &tried)
    });
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
    let Some((addr, mut stream)) = attempts
        .into_iter()
        .find_map(|a| a.outcome.ok().map(|s| (a.addr, s)))
    else {
        rec.push(result);
        return None;
    };
    if let Some(p) = proxy.filter(|p| p.tls) {
        let judged = probe_tls_proxy(stream, addr, p, &endpoint.authority(), result, ctx).await;
        rec.push(judged);
        return None;
    }
    rec.push(result);
    if let Some(p) = proxy {
        rec.start(CheckId::ProxyTunnel, &p.display);
        let tunnel = proxy::connect_tunnel(
            stream,
            &endpoint.authority(),
            p.authorization.as_ref(),
            ctx.timeout,
        )
        .await;
        let result = tcp::tunnel(&p.display, &endpoint.authority(), &tunnel);
        rec.push(result);
        match tunnel.outcome {
            Ok(s) => stream = s,
            Err(_) => return None,
        }
    }
    let authority = endpoint.authority();
    let http_endpoint = |scheme| HttpEndpoint {
        scheme,
        authority: &authority,
        base_path: &endpoint.base_path,
    };
    let dialer = Dialer {
        target: target.clone(),
        addr,
        timeout: ctx.timeout,
        now: ctx.now,
    };
    let connection = match endpoint.scheme {
        Scheme::Http => {
            rec.push(tls::plain_http(&authority));
            rec.start(CheckId::HttpVersion, &authority);
            HttpConnection::anonymous(stream, false, http_endpoint("http")).await
        }
        Scheme::Https => match secure(stream, &dialer, target, ctx, rec).await {
            Some(Secured::Verified(tls)) => {
                let bearer = share::own_bearer(target);
                // More connections like this one: HTTP/1.1's pool, or HTTP/2's replacement
                // after the server's GOAWAY.
                let more = dialer.pool_dial(&tls);
                rec.start(CheckId::HttpVersion, &authority);
                HttpConnection::verified(*tls, http_endpoint("https"), bearer, more).await
            }
            Some(Secured::Unverified(tls)) => {
                rec.start(CheckId::HttpVersion, &authority);
                let h2 = net_tls::speaks_h2(&tls);
                HttpConnection::anonymous(tls, h2, http_endpoint("https")).await
            }
            None => return None,
        },
    };
    match connection {
        Ok(conn) => Some(conn),
        Err(failure) => {
            rec.push(http::start_failed(target.kind, &authority, &failure));
            None
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

/// A TLS connection to the target (each knows by ALPN whether it speaks HTTP/2).
enum Secured {
    Verified(Box<VerifiedTls>),
    Unverified(Box<TlsStream<TcpStream>>),
}

/// Opens connections to one target exactly like its first: the same address, the same route
/// (proxy tunnel included), the same TLS settings, server name and client identity.
#[derive(Clone)]
struct Dialer {
    target: Arc<Target>,
    addr: SocketAddr,
    timeout: Duration,
    now: SystemTime,
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
        self.handshake(stream, client, expect)
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

    async fn handshake(
        &self,
        stream: TcpStream,
        client: Option<&ClientIdentity>,
        expect: Option<net_tls::Expect>,
    ) -> Option<net_tls::Handshake> {
        let name = &self.target.tls.as_ref()?.server_name;
        Some(net_tls::handshake(stream, name, client, expect, self.timeout).await)
    }

    /// One more connection for the HTTP/1.1 pool: verified like the first, presenting the same
    /// leaf, with the same client identity; `None` otherwise (the pool stays smaller).
    async fn verified(self, leaf: CertificateDer<'static>) -> Option<VerifiedTls> {
        let stream = self.stream(None).await.ok()?;
        let expect = self.expect(Some(leaf));
        let hs = self.handshake(stream, self.client(), expect).await?;
        net_tls::seal(hs.outcome.ok()?, self.target.tls.as_ref()?, self.now).ok()
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
            .handshake(stream, None, None)
            .await
            .ok_or("no TLS settings")?;
        hs.outcome.map_err(|_| hs.detail)
    }
}

/// The TLS layers: handshake, then trust, hostname and validity judged on the captured chain.
async fn secure(
    stream: TcpStream,
    dialer: &Dialer,
    target: &Target,
    ctx: &RunContext,
    rec: &Recorder,
) -> Option<Secured> {
    let endpoint = target.endpoint.as_ref()?;
    let settings = target.tls.as_ref()?;
    // A tls-server-name no certificate can match allows no handshake at all: that is the
    // config.tls finding, not a second one (the TLS rows' skips name it).
    if failed_config(target, CheckId::ConfigTls)
        .is_some_and(|c| c.reason == Some(Reason::InvalidServerName))
    {
        return None;
    }
    let authority = endpoint.authority();
    rec.start(CheckId::TlsHandshake, &authority);
    let client = dialer.client();
    // With a client certificate, the verifier gives the real verdict: an unverified server
    // never receives the certificate.
    let expect = client.and_then(|_| dialer.expect(None));
    let hs = dialer.handshake(stream, client, expect.clone()).await?;
    let mut result = tls::handshake(&authority, &hs).with_evidence(format!(
        "address {}, SNI {}",
        dialer.addr, settings.server_name
    ));
    // No answer at all: once more with small packets, to tell an MTU black hole apart. Through
    // a proxy only the runner's own link is narrowed (the proxy picks the MSS of its connection
    // to the server), which is where the commonest black hole is: Docker-in-Docker's bridge.
    if matches!(hs.outcome, Err(HandshakeFailure::Stalled)) {
        let (full, small) = tokio::join!(
            dialer.retry_handshake(None, client, expect.clone()),
            dialer.retry_handshake(Some(connect::SMALL_MSS), client, expect),
        );
        result = tls::after_mss_retries(result, &full, &small, connect::SMALL_MSS);
    }
    rec.push(result);
    // A key the verifier refuses: tls.trust names it (the handshake row passed).
    let weak_key = tls::weak_key(&authority, &hs);
    let stream = match hs.outcome {
        Ok(stream) => Some(stream),
        // Ended by us after the chain arrived: judged below all the same.
        Err(HandshakeFailure::Refused(_)) => None,
        Err(_) => {
            rec.push_all(weak_key);
            return None;
        }
    };
    rec.note_client_cert_requested(hs.client_cert_requested);
    // A CA the kubeconfig names but that cannot be used makes trust unjudgeable: that is the
    // config.tls finding, not a second one (the TLS rows' skips name it).
    if failed_config(target, CheckId::ConfigTls).is_some() {
        return None;
    }
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
    let results = tls::judge(&authority, &hs.chain, settings, &verification, seen);
    let failed = results.iter().any(|r| r.status.is_failure());
    rec.push_all(results);
    if failed && !verification.passed() {
        return None;
    }
    let Some(stream) = stream else {
        // insecure-skip-tls-verify with a client certificate: probe without it.
        return match dialer.anonymous().await {
            Ok(stream) => Some(Secured::Unverified(Box::new(stream))),
            Err(detail) => {
                let failure =
                    HttpFailure::Failed(format!("opening an anonymous probe connection: {detail}"));
                rec.push(http::start_failed(target.kind, &authority, &failure));
                None
            }
        };
    };
    match net_tls::seal(stream, settings, ctx.now) {
        Ok(verified) => Some(Secured::Verified(Box::new(verified))),
        Err(stream) => Some(Secured::Unverified(stream)),
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
