//! End-to-end tests of the GitLab agent path: the real binary, run as a GitLab CI job would run
//! it, against a fake agent server (KAS `k8s-proxy`, real TLS) with the project's fake API
//! server behind it, and a fake GitLab API (`CI_SERVER_URL`, real TLS). One test per diagnosis:
//! the agent target's root cause `{check, reason}` in the JSON, the same check as a JUnit
//! `<failure>`, and a fix a user can act on. Every test also checks where the job token went
//! (the GitLab API's `JOB-TOKEN` header, and the kubeconfig's own `ci:137:<token>` bearer to the
//! agent server; nothing else) and that it appears in no output.
//!
//! Everything binds to 127.0.0.1; nothing resolves a name (IP literals, an empty resolv.conf);
//! every server stops when dropped; each run of the binary is bounded.

#[path = "gitlab_agent/access.rs"]
mod access;
#[path = "common/child.rs"]
mod child;
#[path = "gitlab_agent/gitlab_api.rs"]
mod gitlab_api;
#[path = "gitlab_agent/job.rs"]
mod job;
#[path = "gitlab_agent/kas.rs"]
mod kas;
#[path = "common/kubeconfig.rs"]
mod kubeconfig;
#[path = "gitlab_agent/legacy.rs"]
mod legacy;
#[path = "common/report.rs"]
mod report;
#[path = "gitlab_agent/server.rs"]
mod server;

use std::sync::Arc;

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::demo::{Protocols, TlsClass};
use kube_reach::model::{Status, TargetKind, Verdict};

use gitlab_api::ALLOWED_AGENTS;
use job::{AGENT_ID, Job, Outcome, PROJECT_PATH};
use kas::{KAS_SERVER, Kas, KasMode};
use server::{FakeServer, Handler, reply};

/// The agent server and GitLab of one test.
struct World {
    kas: Kas,
    gitlab: FakeServer,
    // Declared last: the fakes above run on its runtime.
    job: Job,
}

impl World {
    /// A KAS in `mode` with a good certificate, and GitLab accepting this job's token and
    /// allowing `agents`.
    fn new(mode: KasMode, agents: &[i64]) -> World {
        World::new_on(Protocols::Both, mode, agents)
    }

    /// The same with the agent server and GitLab speaking `protocols`.
    fn new_on(protocols: Protocols, mode: KasMode, agents: &[i64]) -> World {
        let job = Job::new();
        let kas_tls = job.tls_on(TlsClass::Good, protocols);
        let kas = Kas::start(&job.rt, mode, Some(kas_tls), AGENT_ID, &job.canary);
        let gitlab_tls = job.tls_on(TlsClass::Good, protocols);
        let gitlab = gitlab_api::start(&job.rt, gitlab_tls, &job.canary, true, agents);
        World { kas, gitlab, job }
    }

    fn with_kas_tls(
        job: Job,
        mode: KasMode,
        kas_tls: Option<Arc<rustls::ServerConfig>>,
        agents: &[i64],
    ) -> World {
        let kas = Kas::start(&job.rt, mode, kas_tls, AGENT_ID, &job.canary);
        let gitlab = gitlab_api::start(&job.rt, job.tls(TlsClass::Good), &job.canary, true, agents);
        World { kas, gitlab, job }
    }

    /// Runs the job with GitLab's kubeconfig for this KAS, holding `ci:137:<CI_JOB_TOKEN>`.
    fn run(&self) -> Outcome {
        let kubeconfig = self
            .job
            .agent_kubeconfig(&self.kas.k8s_proxy_url(), &self.job.agent_token());
        self.job.run(Some(&kubeconfig), &self.gitlab, None)
    }

    /// The job token went to GitLab only as `JOB-TOKEN` on the allowed-agents API (at most
    /// once), to the agent server only inside the kubeconfig's own bearer, and is in no output.
    fn assert_token_discipline(&self, out: &Outcome) {
        out.assert_no_leak(&self.job.canary);
        let bearer = format!("Bearer ci:{AGENT_ID}:<canary>");
        for seen in self.kas.server.seen() {
            assert!(
                seen.canary_in.iter().all(|w| w == "authorization"),
                "the agent server got the job token in {:?} of {} {}",
                seen.canary_in,
                seen.method,
                seen.path
            );
            if !seen.canary_in.is_empty() {
                assert_eq!(seen.authorization.as_deref(), Some(bearer.as_str()));
            }
            assert!(!seen.has_header("job-token"), "JOB-TOKEN sent to KAS");
        }
        let seen = self.gitlab.seen();
        for s in seen.iter().filter(|s| !s.canary_in.is_empty()) {
            assert_eq!(
                (s.canary_in.as_slice(), s.method.as_str(), s.path.as_str()),
                (&["job-token".to_string()][..], "GET", ALLOWED_AGENTS),
                "the job token went to GitLab elsewhere than JOB-TOKEN on the allowed-agents API"
            );
        }
        let with_token = seen.iter().filter(|s| s.has_header("job-token")).count();
        assert!(with_token <= 1, "{with_token} requests carried JOB-TOKEN");
    }

    /// GitLab was asked for the allowed agents once, with this job's token.
    fn assert_allowed_agents_asked(&self) {
        let asked: Vec<_> = self
            .gitlab
            .seen()
            .into_iter()
            .filter(|s| s.path == ALLOWED_AGENTS)
            .collect();
        assert_eq!(asked.len(), 1, "{asked:?}");
        assert!(asked[0].has_header("job-token"), "{asked:?}");
        assert_eq!(asked[0].status, 200, "{asked:?}");
    }
}

#[test]
fn healthy_agent_passes() {
    healthy_agent_passes_on(Protocols::Both);
}

/// The same with the agent server and GitLab speaking HTTP/1.1 only.
#[test]
fn healthy_agent_passes_h1() {
    healthy_agent_passes_on(Protocols::Http1Only);
}

fn healthy_agent_passes_on(protocols: Protocols) {
    let world = World::new_on(protocols, KasMode::Healthy, &[AGENT_ID]);
    let out = world.run();
    let agent = out.agent();
    assert_ne!(agent.verdict, Verdict::Fail, "{}", out.describe());
    assert!(agent.root_cause.is_none(), "{}", out.describe());
    assert_eq!(out.code, Some(0), "{}", out.describe());
    // The agent server's own fingerprint, then the cluster's answers through it.
    let kas = out.check(agent, CheckId::GitlabKas);
    assert_eq!(kas.status, Status::Pass, "{}", out.describe());
    assert!(
        kas.evidence.iter().any(|e| e.contains(KAS_SERVER)),
        "{kas:?}"
    );
    let whoami = out.check(agent, CheckId::AuthWhoami);
    assert_eq!(whoami.status, Status::Pass, "{}", out.describe());
    assert!(
        whoami.summary.contains("system:serviceaccount:ci:deployer"),
        "{whoami:?}"
    );
    let rbac: Vec<_> = agent
        .checks
        .iter()
        .filter(|c| c.id == CheckId::RbacCanI)
        .collect();
    assert!(!rbac.is_empty() && rbac.iter().all(|c| c.status == Status::Pass));
    let gitlab = out.target(TargetKind::Gitlab);
    let allowed = out.check(gitlab, CheckId::GitlabAllowedAgents);
    assert_eq!(allowed.status, Status::Pass, "{}", out.describe());
    assert!(allowed.summary.contains("137"), "{allowed:?}");
    // GitLab is asked without kubeconfig credentials: nothing to warn about.
    let credentials = out.check(gitlab, CheckId::ConfigCredentials);
    assert_eq!(credentials.status, Status::Skip, "{credentials:?}");
    world.assert_allowed_agents_asked();
    // The anonymous probe carried nothing; every other request the kubeconfig's bearer.
    let seen = world.kas.server.seen();
    assert!(
        seen.iter().any(|s| s.path == "/k8s-proxy/version"
            && s.authorization.is_none()
            && s.status == 401),
        "{seen:?}"
    );
    assert!(seen.iter().filter(|s| s.authorization.is_some()).count() >= 3);
    world.assert_token_discipline(&out);
}

#[test]
fn auth_whoami_agent_unauthorized() {
    auth_whoami_agent_unauthorized_on(Protocols::Both);
}

/// The same with the agent server and GitLab speaking HTTP/1.1 only.
#[test]
fn auth_whoami_agent_unauthorized_h1() {
    auth_whoami_agent_unauthorized_on(Protocols::Http1Only);
}

fn auth_whoami_agent_unauthorized_on(protocols: Protocols) {
    let world = World::new_on(protocols, KasMode::JobTokenRejected, &[AGENT_ID]);
    let out = world.run();
    let root = out.assert_agent_root_cause(
        CheckId::AuthWhoami,
        Reason::AgentUnauthorized,
        &["KUBECONFIG"],
    );
    assert!(
        root.evidence
            .iter()
            .any(|e| e.contains("GitLab Agent Server: Unauthorized: CI job token")),
        "{root:?}"
    );
    world.assert_allowed_agents_asked();
    world.assert_token_discipline(&out);
}

/// The kubeconfig was saved from another job (a CI/CD variable, a cache, an artifact): its
/// `ci:137:<token>` is not this job's token, so the agent server rejects it while GitLab
/// accepts this job's own token and allows agent 137.
#[test]
fn auth_whoami_agent_unauthorized_stale_token() {
    let world = World::new(KasMode::Healthy, &[AGENT_ID]);
    let stale = "64_StaleTokenFromAnotherJob9x";
    let kubeconfig = world.job.agent_kubeconfig(
        &world.kas.k8s_proxy_url(),
        &format!("ci:{AGENT_ID}:{stale}"),
    );
    let out = world.job.run(Some(&kubeconfig), &world.gitlab, None);
    out.assert_agent_root_cause(
        CheckId::AuthWhoami,
        Reason::AgentUnauthorized,
        &["does not carry this job's CI_JOB_TOKEN"],
    );
    out.assert_no_leak(stale);
    world.assert_token_discipline(&out);
}

/// Both refuse the token: GitLab's answer explains the agent server's 401.
#[test]
fn gitlab_allowed_agents_job_token_rejected() {
    let job = Job::new();
    let kas = Kas::start(
        &job.rt,
        KasMode::JobTokenRejected,
        Some(job.tls(TlsClass::Good)),
        AGENT_ID,
        &job.canary,
    );
    let gitlab = gitlab_api::start(&job.rt, job.tls(TlsClass::Good), &job.canary, false, &[]);
    let world = World { kas, gitlab, job };
    let out = world.run();
    out.assert_agent_root_cause(
        CheckId::GitlabAllowedAgents,
        Reason::JobTokenRejected,
        &["inside the job"],
    );
    let whoami = out.check(out.agent(), CheckId::AuthWhoami);
    assert_eq!(whoami.reason, Some(Reason::AgentUnauthorized));
    world.assert_token_discipline(&out);
}

#[test]
fn gitlab_allowed_agents_agent_not_allowed() {
    gitlab_allowed_agents_agent_not_allowed_on(Protocols::Both);
}

/// The same with the agent server and GitLab speaking HTTP/1.1 only.
#[test]
fn gitlab_allowed_agents_agent_not_allowed_h1() {
    gitlab_allowed_agents_agent_not_allowed_on(Protocols::Http1Only);
}

fn gitlab_allowed_agents_agent_not_allowed_on(protocols: Protocols) {
    let world = World::new_on(protocols, KasMode::AgentNotAllowed, &[5]);
    let out = world.run();
    let root = out.assert_agent_root_cause(
        CheckId::GitlabAllowedAgents,
        Reason::AgentNotAllowed,
        &[
            PROJECT_PATH,
            ".gitlab/agents/my-agent/config.yaml",
            "ci_access",
        ],
    );
    assert_eq!(root.subject, "agent:137");
    assert!(
        root.evidence
            .iter()
            .any(|e| e.contains("allowed agent ids: 5")),
        "{root:?}"
    );
    // The agent server's own refusal stays in the report, explained.
    let whoami = out.check(out.agent(), CheckId::AuthWhoami);
    assert_eq!(
        (whoami.status, whoami.reason),
        (Status::Fail, Some(Reason::AgentForbidden))
    );
    world.assert_allowed_agents_asked();
    world.assert_token_discipline(&out);
}

#[test]
fn gitlab_allowed_agents_no_agents() {
    let world = World::new(KasMode::AgentNotAllowed, &[]);
    let out = world.run();
    let root = out.assert_agent_root_cause(
        CheckId::GitlabAllowedAgents,
        Reason::NoAgents,
        &["ci_access", PROJECT_PATH],
    );
    assert!(
        root.evidence
            .iter()
            .any(|e| e.contains("allowed_agents: []")),
        "{root:?}"
    );
    world.assert_allowed_agents_asked();
    world.assert_token_discipline(&out);
}

#[test]
fn auth_whoami_agent_not_connected() {
    auth_whoami_agent_not_connected_on(Protocols::Both);
}

/// The same with the agent server and GitLab speaking HTTP/1.1 only.
#[test]
fn auth_whoami_agent_not_connected_h1() {
    auth_whoami_agent_not_connected_on(Protocols::Http1Only);
}

fn auth_whoami_agent_not_connected_on(protocols: Protocols) {
    let world = World::new_on(protocols, KasMode::AgentNotConnected, &[AGENT_ID]);
    let out = world.run();
    let root =
        out.assert_agent_root_cause(CheckId::AuthWhoami, Reason::AgentNotConnected, &["agentk"]);
    assert!(
        root.evidence
            .iter()
            .any(|e| e.contains("Agent connection not found")),
        "{root:?}"
    );
    assert!(
        !root.summary.contains("timeout") && !root.summary.contains("timed out"),
        "{root:?}"
    );
    // The agent server said so at once: the tool must not have waited for a timeout.
    assert!(
        out.report.duration_ms < 15_000,
        "took {} ms",
        out.report.duration_ms
    );
    world.assert_token_discipline(&out);
}

/// Issue 9: agent targets waited 25 s whatever `--timeout` said. Here the agent server keeps
/// the authenticated request waiting past a short `--deadline`: a tool that waits its own 25 s
/// runs into the deadline; one that honours `--timeout 2` reports well before it.
#[test]
fn explicit_timeout_bounds_the_agent_server_wait() {
    let world = World::new(KasMode::AgentNotConnectedSlowly, &[AGENT_ID]);
    let kubeconfig = world
        .job
        .agent_kubeconfig(&world.kas.k8s_proxy_url(), &world.job.agent_token());
    let out = world.job.run_limited(
        Some(&kubeconfig),
        &world.gitlab,
        None,
        &["--timeout", "2", "--deadline", "12"],
    );
    let agent = out.agent();
    assert!(
        agent
            .checks
            .iter()
            .all(|c| c.reason != Some(Reason::Deadline)),
        "--timeout must bound the wait, not --deadline\n{}",
        out.describe()
    );
    let root = out.assert_agent_root_cause(
        CheckId::HttpVersion,
        Reason::Stalled,
        &["without --timeout"],
    );
    assert!(
        root.evidence
            .iter()
            .any(|e| e.contains("shorter than the 20 s")),
        "{root:?}"
    );
    world.assert_token_discipline(&out);
}

#[test]
fn gitlab_kas_not_agent_server() {
    let world = World::new(KasMode::LoadBalancer, &[AGENT_ID]);
    let out = world.run();
    let root = out.assert_agent_root_cause(
        CheckId::GitlabKas,
        Reason::NotAgentServer,
        &["k8s-proxy URL"],
    );
    let evidence = root.evidence.join("\n");
    assert!(
        evidence.contains("Server: nginx/1.25.3")
            && evidence.contains("401 Authorization Required"),
        "{evidence}"
    );
    assert!(
        root.summary.contains("Gitlab-Unauthorized"),
        "{}",
        root.summary
    );
    world.assert_token_discipline(&out);
}

/// GitLab built an `http://` k8s-proxy URL (a `ws://` KAS external URL): kubectl would send no
/// credentials; neither does kube-reach.
#[test]
fn config_server_insecure_scheme() {
    let job = Job::new();
    let world = World::with_kas_tls(job, KasMode::Healthy, None, &[AGENT_ID]);
    let url = world.kas.k8s_proxy_url();
    assert!(url.starts_with("http://"), "{url}");
    let out = world.run();
    let https = url.replacen("http://", "https://", 1);
    out.assert_agent_root_cause(
        CheckId::ConfigServer,
        Reason::InsecureScheme,
        &["gitlab_kas_external_k8s_proxy_url", &https],
    );
    let whoami = out.check(out.agent(), CheckId::AuthWhoami);
    assert_eq!(
        (whoami.status, whoami.reason),
        (Status::Warn, Some(Reason::CredentialsWithheld)),
        "{}",
        out.describe()
    );
    assert!(
        whoami
            .fix
            .as_deref()
            .unwrap_or_default()
            .contains("https://")
    );
    let seen = world.kas.server.seen();
    // The agent server was asked (without credentials), so the loop below checks something.
    assert!(!seen.is_empty(), "the agent server got no request");
    for seen in seen {
        assert!(
            seen.authorization.is_none(),
            "a credential went over http: {} {}",
            seen.method,
            seen.path
        );
    }
    world.assert_token_discipline(&out);
}

/// The agent server's certificate comes from a CA the job does not trust (GitLab's kubeconfig
/// has no CA data): the fix must say how to make the job trust it.
#[test]
fn tls_trust_unknown_authority() {
    let job = Job::new();
    let rogue = job.tls(TlsClass::UnknownAuthority);
    let world = World::with_kas_tls(job, KasMode::Healthy, Some(rogue), &[AGENT_ID]);
    let out = world.run();
    let root = out.assert_agent_root_cause(CheckId::TlsTrust, Reason::UnknownAuthority, &[]);
    let fix = root.fix.as_deref().unwrap_or_default();
    assert!(
        fix.contains("SSL_CERT_FILE") || fix.contains("CI_SERVER_TLS_CA_FILE"),
        "{fix}"
    );
    assert!(
        world
            .kas
            .server
            .seen()
            .iter()
            .all(|s| s.authorization.is_none()),
        "a credential went to an unverified agent server"
    );
    // GitLab itself is trusted (SSL_CERT_FILE names its CA) and still answers.
    let allowed = out.check(out.target(TargetKind::Gitlab), CheckId::GitlabAllowedAgents);
    assert_eq!(allowed.status, Status::Pass, "{}", out.describe());
    world.assert_token_discipline(&out);
}

/// No agent authorizes the job: GitLab sets no KUBECONFIG at all.
#[test]
fn config_kubeconfig_not_set() {
    let world = World::new(KasMode::Healthy, &[]);
    let out = world.job.run(None, &world.gitlab, None);
    let not_set = out
        .report
        .checks
        .iter()
        .find(|c| c.id == CheckId::ConfigKubeconfig)
        .unwrap_or_else(|| panic!("no config.kubeconfig\n{}", out.describe()));
    assert_eq!(
        (not_set.status, not_set.reason),
        (Status::Fail, Some(Reason::NotSet)),
        "{}",
        out.describe()
    );
    let fix = not_set.fix.as_deref().unwrap_or_default();
    assert!(
        fix.contains("ci_access") && fix.contains(PROJECT_PATH),
        "{fix}"
    );
    assert!(
        out.report
            .targets
            .iter()
            .all(|t| t.kind != TargetKind::GitlabAgent),
        "{}",
        out.describe()
    );
    out.assert_junit_failure("kube-reach", "config.kubeconfig", "not-set");
    assert_eq!(out.code, Some(1));
    assert!(world.kas.server.seen().is_empty());
    world.assert_token_discipline(&out);
}

/// THE SAFETY TEST: `CI_API_V4_URL` points at another listener than `CI_SERVER_URL` (a project
/// variable overriding it, say). The job token must go nowhere: not there, not to GitLab, and to
/// the agent server only inside the kubeconfig's own `ci:137:<token>`.
#[test]
fn job_token_goes_only_to_the_gitlab_server() {
    job_token_goes_only_to_the_gitlab_server_on(Protocols::Both);
}

/// The same with the agent server and GitLab speaking HTTP/1.1 only.
#[test]
fn job_token_goes_only_to_the_gitlab_server_h1() {
    job_token_goes_only_to_the_gitlab_server_on(Protocols::Http1Only);
}

fn job_token_goes_only_to_the_gitlab_server_on(protocols: Protocols) {
    let world = World::new_on(protocols, KasMode::Healthy, &[AGENT_ID]);
    let decoy_handler: Handler =
        Arc::new(|_| Box::pin(async { reply(200, &[], r#"{"allowed_agents":[]}"#) }));
    let decoy = FakeServer::start(
        &world.job.rt,
        Some(world.job.tls(TlsClass::Good)),
        &world.job.canary,
        decoy_handler,
    );
    let kubeconfig = world
        .job
        .agent_kubeconfig(&world.kas.k8s_proxy_url(), &world.job.agent_token());
    let api = format!("{}/api/v4", decoy.url());
    let out = world.job.run(Some(&kubeconfig), &world.gitlab, Some(&api));

    assert_eq!(decoy.connections(), 0, "{:?}", decoy.seen());
    assert!(decoy.seen().is_empty());
    let allowed = out.check(out.target(TargetKind::Gitlab), CheckId::GitlabAllowedAgents);
    assert_eq!(
        (allowed.status, allowed.reason),
        (Status::Warn, Some(Reason::Unavailable)),
        "{}",
        out.describe()
    );
    assert!(
        allowed.summary.contains("CI_API_V4_URL") && allowed.summary.contains("not sent"),
        "{allowed:?}"
    );
    assert!(
        world
            .gitlab
            .seen()
            .iter()
            .all(|s| !s.has_header("job-token")),
        "{:?}",
        world.gitlab.seen()
    );
    // The agent itself still works: its token is the kubeconfig's, sent where it names.
    assert!(out.agent().root_cause.is_none(), "{}", out.describe());
    world.assert_token_discipline(&out);
}
