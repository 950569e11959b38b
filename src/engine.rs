//! The engine: every target walked through the layers as straight-line async code, targets in
//! parallel, under `--timeout` per operation and `--deadline` for the run. Results are recorded
//! as they are made, so a deadline or a panic still leaves a complete report: the check in
//! progress becomes `error` with reason `deadline` or `internal`.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::catalogue::{CheckId, Reason};
use crate::checks::{auth, dns, http, rbac, runner, tcp, tls};
use crate::env::Env;
use crate::model::{CheckResult, RunReport, TargetReport};
use crate::net::http::{Endpoint as HttpEndpoint, HttpConnection, HttpFailure, Response};
use crate::net::{connect, proxy, resolve};
use crate::plan::{Host, Plan, Requirement, Route, Scheme, Target};
use crate::verdict;

/// At most this many addresses of one name are tried.
const MAX_ADDRESSES: usize = 8;

pub struct RunContext {
    pub dns: resolve::DnsSetup,
    pub timeout: Duration,
    pub expiry_warn: Duration,
    pub requirements: Vec<Requirement>,
    pub now: SystemTime,
}

/// Results of one target as they are made, shared with the engine's watchdog.
#[derive(Default)]
pub struct Recorder {
    results: Mutex<Vec<CheckResult>>,
    current: Mutex<Option<(CheckId, String)>>,
    dates: Mutex<Vec<SystemTime>>,
}

impl Recorder {
    fn start(&self, id: CheckId, subject: &str) {
        if let Ok(mut c) = self.current.lock() {
            *c = Some((id, subject.to_string()));
        }
    }
    fn push(&self, result: CheckResult) {
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
    fn date(&self, response: &Response) {
        if let Some(date) = response
            .header("date")
            .and_then(|d| httpdate::parse_http_date(d).ok())
            && let Ok(mut dates) = self.dates.lock()
        {
            dates.push(date);
        }
    }
    fn finish(&self, abort: Option<Reason>) -> (Vec<CheckResult>, Vec<SystemTime>) {
        let mut results = self.results.lock().map(|r| r.clone()).unwrap_or_default();
        if let Some(reason) = abort {
            let current = self.current.lock().ok().and_then(|c| c.clone());
            let (id, subject) = current.unwrap_or((CheckId::HttpVersion, String::new()));
            results.push(CheckResult::finding(id, subject, reason));
        }
        let dates = self.dates.lock().map(|d| d.clone()).unwrap_or_default();
        (results, dates)
    }
}

pub async fn run(plan: Plan, env: &Env) -> RunReport {
    let started = Instant::now();
    let started_at = crate::x509::format_time(env.now);
    let deadline = tokio::time::Instant::now() + plan.deadline;
    let dns = resolve::DnsSetup::load(&plan.resolv_conf_path, &plan.hosts_path);
    let environment = runner::facts(env, &dns);
    let mut checks = plan.checks.clone();
    checks.push(runner::environment(&environment));
    let ctx = Arc::new(RunContext {
        dns,
        timeout: plan.timeout,
        expiry_warn: plan.expiry_warn,
        requirements: plan.requirements.clone(),
        now: env.now,
    });
    let mut running = Vec::new();
    for target in plan.targets {
        let target = Arc::new(target);
        let recorder = Arc::new(Recorder::default());
        let handle = tokio::spawn(diagnose(target.clone(), ctx.clone(), recorder.clone()));
        running.push((target, recorder, handle));
    }
    let mut targets = Vec::new();
    let mut dates = Vec::new();
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
        dates.extend(target_dates.into_iter().map(|d| (target.name.clone(), d)));
        targets.push(TargetReport {
            name: target.name.clone(),
            kind: target.kind,
            server: target.server_display.clone(),
            verdict: verdict::verdict(&results),
            root_cause: verdict::root_cause(&results),
            checks: results,
        });
    }
    if let Some(clock) = runner::clock(SystemTime::now(), &dates) {
        checks.push(clock);
    }
    let mut all: Vec<CheckResult> = checks.clone();
    all.extend(targets.iter().flat_map(|t| t.checks.iter().cloned()));
    let mut report = RunReport {
        tool_version: env!("CARGO_PKG_VERSION"),
        started_at,
        duration: started.elapsed(),
        verdict: verdict::verdict(&all),
        checks,
        targets,
        environment,
    };
    plan.scrubber.scrub_report(&mut report);
    report
}

/// Marks the main checks of every layer after `blocker`'s as skipped, so the report (and the
/// JUnit test names) stay the same shape whatever fails.
fn block_rest(rec: &Recorder, blocker: &CheckResult, target: &Target, ctx: &RunContext) {
    let authority = target
        .endpoint
        .as_ref()
        .map(|e| e.authority())
        .unwrap_or_default();
    let mut downstream = vec![
        (
            CheckId::DnsResolve,
            target
                .endpoint
                .as_ref()
                .map(|e| e.host.to_string())
                .unwrap_or_default(),
        ),
        (CheckId::TcpConnect, authority.clone()),
        (CheckId::TlsHandshake, authority.clone()),
        (CheckId::HttpVersion, authority.clone()),
        (CheckId::AuthWhoami, authority.clone()),
    ];
    downstream.extend(
        ctx.requirements
            .iter()
            .map(|r| (CheckId::RbacCanI, r.subject(&target.namespace))),
    );
    let rank = blocker.layer().rank();
    for (id, subject) in downstream {
        if id.layer().rank() > rank {
            rec.push(CheckResult::blocked(id, subject, blocker));
        }
    }
}

async fn diagnose(target: Arc<Target>, ctx: Arc<RunContext>, rec: Arc<Recorder>) {
    rec.push_all(target.config_checks.iter().cloned());
    if let Some(blocker) = target
        .config_checks
        .iter()
        .find(|c| c.status.is_failure() && target.endpoint.is_none())
    {
        block_rest(&rec, blocker, &target, &ctx);
        return;
    }
    let Some(endpoint) = &target.endpoint else {
        return;
    };
    let (host, port, proxy) = match &target.route {
        Route::Direct => (&endpoint.host, endpoint.port, None),
        Route::Proxy(p) => (&p.host, p.port, Some(p)),
    };
    let Some(addresses) = resolve_host(host, &target, &ctx, &rec).await else {
        return;
    };
    let addrs: Vec<SocketAddr> = addresses
        .into_iter()
        .take(MAX_ADDRESSES)
        .map(|ip| SocketAddr::new(ip, port))
        .collect();
    let connect_id = if proxy.is_some() {
        CheckId::ProxyConnect
    } else {
        CheckId::TcpConnect
    };
    rec.start(connect_id, &format!("{host}:{port}"));
    let attempts = connect::connect_all(&addrs, ctx.timeout).await;
    let results = tcp::connect(connect_id, &attempts, proxy.map(|p| p.display.as_str()));
    let first_failure = results.iter().find(|r| r.status.is_failure()).cloned();
    rec.push_all(results);
    let Some((addr, mut stream)) = attempts
        .into_iter()
        .find_map(|a| a.outcome.ok().map(|s| (a.addr, s)))
    else {
        if let Some(blocker) = first_failure {
            block_rest(&rec, &blocker, &target, &ctx);
        }
        return;
    };
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
        rec.push(result.clone());
        match tunnel.outcome {
            Ok(s) => stream = s,
            Err(_) => return block_rest(&rec, &result, &target, &ctx),
        }
    }
    let authority = endpoint.authority();
    let http_endpoint = |scheme| HttpEndpoint {
        scheme,
        authority: &authority,
        base_path: &endpoint.base_path,
    };
    let connection = match endpoint.scheme {
        Scheme::Http => {
            rec.push(CheckResult::not_applicable(
                CheckId::TlsHandshake,
                &authority,
                "http:// URL: no TLS",
            ));
            HttpConnection::anonymous(stream, false, http_endpoint("http")).await
        }
        Scheme::Https => match secure(stream, addr, &target, &ctx, &rec).await {
            Some(Secured::Verified(tls, h2)) => {
                let bearer = target
                    .credentials
                    .usable
                    .then(|| target.credentials.bearer.clone())
                    .flatten();
                HttpConnection::verified(*tls, h2, http_endpoint("https"), bearer).await
            }
            Some(Secured::Unverified(tls, h2)) => {
                HttpConnection::anonymous(tls, h2, http_endpoint("https")).await
            }
            None => return,
        },
    };
    match connection {
        Ok(conn) => api_layers(&conn, &target, &ctx, &rec).await,
        Err(failure) => {
            let r = CheckResult::finding(CheckId::HttpVersion, &authority, Reason::RequestFailed)
                .with_evidence(format!("starting HTTP on the connection: {failure:?}"));
            rec.push(r.clone());
            block_rest(&rec, &r, &target, &ctx);
        }
    }
}

async fn resolve_host(
    host: &Host,
    target: &Target,
    ctx: &RunContext,
    rec: &Recorder,
) -> Option<Vec<IpAddr>> {
    let name = match host {
        Host::Ip(ip) => {
            rec.push(CheckResult::pass(
                CheckId::DnsResolve,
                ip.to_string(),
                "IP address: no lookup needed",
            ));
            return Some(vec![*ip]);
        }
        Host::Name(n) => n,
    };
    rec.start(CheckId::DnsResolve, name);
    let (outcome, elapsed) = resolve::resolve(&ctx.dns, name, ctx.timeout).await;
    let result = dns::resolve(name, &ctx.dns, &outcome).with_duration(elapsed);
    rec.push(result.clone());
    match outcome {
        Ok(resolved) => Some(resolved.addresses),
        Err(_) => {
            block_rest(rec, &result, target, ctx);
            None
        }
    }
}

enum Secured {
    Verified(Box<crate::net::tls::VerifiedTls>, bool),
    Unverified(
        Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
        bool,
    ),
}

/// The TLS layers: handshake, then trust, hostname and validity judged on the captured chain.
async fn secure(
    stream: tokio::net::TcpStream,
    addr: SocketAddr,
    target: &Target,
    ctx: &RunContext,
    rec: &Recorder,
) -> Option<Secured> {
    let endpoint = target.endpoint.as_ref()?;
    let settings = target.tls.as_ref()?;
    let authority = endpoint.authority();
    rec.start(CheckId::TlsHandshake, &authority);
    let client = if target.credentials.usable {
        target.credentials.client_identity.as_ref()
    } else {
        None
    };
    let hs = crate::net::tls::handshake(stream, &settings.server_name, client, ctx.timeout).await;
    let result = tls::handshake(&authority, &hs)
        .with_evidence(format!("address {addr}, SNI {}", settings.server_name));
    rec.push(result.clone());
    let Ok(stream) = hs.outcome else {
        block_rest(rec, &result, target, ctx);
        return None;
    };
    let verification = crate::net::tls::verify(&hs.chain, settings, ctx.now);
    let judged = tls::judge(
        &authority,
        &hs.chain,
        settings,
        &verification,
        ctx.now,
        ctx.expiry_warn,
    );
    let blocker = judged
        .results
        .iter()
        .find(|r| r.status.is_failure())
        .cloned();
    rec.push_all(judged.results);
    match crate::net::tls::seal(stream, &verification) {
        Ok(verified) => Some(Secured::Verified(Box::new(verified), hs.alpn_h2)),
        Err(stream) => match blocker {
            Some(b) => {
                block_rest(rec, &b, target, ctx);
                None
            }
            None => Some(Secured::Unverified(stream, hs.alpn_h2)),
        },
    }
}

/// HTTP, auth and RBAC: every independent question goes out at once over the one connection.
async fn api_layers(conn: &HttpConnection, target: &Target, ctx: &RunContext, rec: &Recorder) {
    let Some(endpoint) = target.endpoint.as_ref() else {
        return;
    };
    let authority = endpoint.authority();
    let creds = conn.has_credentials();
    let t = ctx.timeout;
    let ns = &target.namespace;
    rec.start(CheckId::HttpVersion, &authority);
    let (version, readyz, whoami, reviews) = tokio::join!(
        conn.send("GET", "/version", None, creds, t),
        conn.send("GET", "/readyz?verbose", None, creds, t),
        conn.send(
            "POST",
            auth::WHOAMI_PATHS[0].0,
            Some(auth::whoami_body(auth::WHOAMI_PATHS[0].1)),
            creds,
            t
        ),
        futures_util::future::join_all(ctx.requirements.iter().map(|r| {
            let namespace = r.namespace.clone().unwrap_or_else(|| ns.clone());
            conn.send(
                "POST",
                rbac::SSAR_PATH,
                Some(rbac::ssar_body(r, &namespace)),
                creds,
                t,
            )
        })),
    );
    if let Ok(r) = &version {
        rec.date(r);
    }
    let version_result = http::version(&authority, &version, creds);
    rec.push(version_result.clone());
    if version_result.status.is_failure() {
        return block_rest(rec, &version_result, target, ctx);
    }
    rec.push(http::health(&authority, &readyz));
    let username = match whoami_layer(conn, target, ctx, rec, whoami, &authority).await {
        Some(user) => user,
        None => return,
    };
    let mut judged: Vec<(Requirement, String, CheckResult)> = ctx
        .requirements
        .iter()
        .zip(reviews.iter())
        .map(|(req, outcome)| {
            let namespace = req.namespace.clone().unwrap_or_else(|| ns.clone());
            let result = rbac::judge(req, &namespace, outcome, &username);
            (req.clone(), namespace, result)
        })
        .collect();
    rbac::attach_fixes(&mut judged, &username);
    rec.push_all(judged.into_iter().map(|(_, _, r)| r));
}

/// `auth.whoami` with kubectl's fallbacks; returns the username, or `None` when RBAC cannot
/// be judged (the blocked rows are already recorded).
async fn whoami_layer(
    conn: &HttpConnection,
    target: &Target,
    ctx: &RunContext,
    rec: &Recorder,
    first: Result<Response, HttpFailure>,
    authority: &str,
) -> Option<String> {
    if !conn.has_credentials() && target.credentials.bearer.is_some() {
        let r = CheckResult::finding(CheckId::AuthWhoami, authority, Reason::CredentialsWithheld);
        rec.push(r.clone());
        for req in &ctx.requirements {
            rec.push(CheckResult::blocked(
                CheckId::RbacCanI,
                req.subject(&target.namespace),
                &r,
            ));
        }
        return None;
    }
    let credentials = target.credentials.description.as_str();
    let mut outcome = first;
    for (path, api) in auth::WHOAMI_PATHS
        .iter()
        .skip(1)
        .chain(std::iter::once(&("", "")))
    {
        match auth::judge(authority, &outcome, credentials) {
            auth::Whoami::Known(result, identity) => {
                let failed = result.status.is_failure();
                rec.push(result.clone());
                if failed {
                    block_rest(rec, &result, target, ctx);
                    return None;
                }
                return Some(identity.username);
            }
            auth::Whoami::Other(result) => {
                let failed = result.status.is_failure();
                rec.push(result.clone());
                if failed {
                    block_rest(rec, &result, target, ctx);
                    return None;
                }
                return Some(String::new());
            }
            auth::Whoami::NotServed if path.is_empty() => {
                rec.push(auth::unsupported(authority));
                return Some(String::new());
            }
            auth::Whoami::NotServed => {
                outcome = conn
                    .send(
                        "POST",
                        path,
                        Some(auth::whoami_body(api)),
                        conn.has_credentials(),
                        ctx.timeout,
                    )
                    .await;
            }
        }
    }
    Some(String::new())
}
