//! The engine: every target walked through its kind's pipeline (`pipeline`), targets in
//! parallel, under `--timeout` per operation and `--deadline` for the run. The connection steps
//! run in `connect` (each hands the next what it reached: addresses, a stream, a TLS
//! connection), the server steps in `steps`, each judged by its check; `share` lets targets
//! share a lookup or a connection. Results are
//! recorded as they are made, so a deadline or a panic still leaves a complete report: the check
//! in progress becomes `error` with reason `deadline` or `internal`, and the rows not reached
//! become skips (`shape`). The engine judges nothing itself.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::catalogue::{CheckId, Reason};
use crate::checks::{gitlab_server, netpol, runner, tools};
use crate::env::Env;
use crate::gitlab;
use crate::model::{CheckResult, RunReport, Status, TargetReport};
use crate::net::connect::Attempt;
use crate::net::http::Response;
use crate::net::resolve;
use crate::plan::{Plan, Requirement, Target};
use crate::secret::ScrubbedReport;

mod connect;
mod pipeline;
mod shape;
mod share;
mod steps;

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
    fn tried(&self, target: &str, attempts: &[Attempt], via_proxy: bool) {
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
    let read_configs = plan.options.read_checkout_agent_configs();
    let agent_configs = match ci.project_dir.as_ref().filter(|_| read_configs) {
        Some(dir) => gitlab::check_agent_configs(dir, &ci),
        None => Vec::new(),
    };
    checks.extend(agent_configs.iter().cloned());
    let agent_of = gitlab_server::agents_of(&plan.targets);
    let agents = agent_of.iter().map(|(_, a)| a.clone()).collect();
    let tools = plan
        .options
        .probe_client_tools()
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
    if target.endpoint.is_none() {
        return;
    }
    let Some(addresses) = connect::resolve(&target, &ctx, &rec).await else {
        return;
    };
    // Targets with this one's route, TLS settings and client identity share one connection.
    let open_link = || connect::link(&target, &addresses, &ctx, &rec);
    if let Some(conn) = share::connection(&target, &addresses, &ctx, &rec, open_link).await {
        steps::run(&conn, &target, &ctx, &rec).await;
    }
}
