//! The GitLab CI job around the real binary: its variables, the kubeconfig GitLab injects, the
//! trust store (`SSL_CERT_FILE`), and the reports it writes, parsed.
//!
//! The binary, not the engine in-process: system roots are read once per process (a
//! `OnceLock` in `net/tls.rs`), so each run needs its own process and its own `SSL_CERT_FILE`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::demo::{ClientAuth, DEFAULT_SANS, Pki, Protocols, TlsClass};
use kube_reach::model::{Layer, Status, TargetKind, Verdict};
use quick_junit::{NonSuccessKind, TestCaseStatus};
use tokio::runtime::Runtime;

use crate::child::run_bounded;
use crate::kubeconfig::{Ctx, kubeconfig};
use crate::report::{Check, Report, Target};
use crate::server::FakeServer;

pub const AGENT_ID: i64 = 137;
/// `<agent config project full path>:<agent name>`.
pub const CONTEXT: &str = "group/agent-config:my-agent";
pub const PROJECT_PATH: &str = "group/app";
pub const PROJECT_ID: i64 = 150;
pub const JOB_ID: i64 = 4242;

/// The JUnit report's file name.
const JUNIT_FILE: &str = "junit.xml";

/// Hard limit for one run of the binary (its own deadline is 40 s).
const CHILD_TIMEOUT: Duration = Duration::from_secs(90);

/// The `--timeout`/`--deadline` of a job run unless a test sets its own.
const LIMITS: &[&str] = &["--timeout", "3", "--deadline", "40"];

/// One job: a temp dir, a canary job token, the demo PKI, and the runtime the fakes run on.
pub struct Job {
    pub canary: String,
    pub pki: Pki,
    pub dir: tempfile::TempDir,
    /// Declared last: dropped after anything above that uses it.
    pub rt: Runtime,
}

impl Job {
    pub fn new() -> Job {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["home", "project"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        std::fs::write(dir.path().join("resolv.conf"), "").expect("resolv.conf");
        std::fs::write(dir.path().join("hosts"), "127.0.0.1 localhost\n").expect("hosts");
        let pki = Pki::generate().expect("pki");
        std::fs::write(dir.path().join("ca.pem"), pki.root_ca_pem()).expect("ca.pem");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        Job {
            canary: canary(),
            pki,
            dir,
            rt,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The demo root CA as a PEM file, for `SSL_CERT_FILE`.
    pub fn ca_file(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// A server TLS config of `class` for 127.0.0.1 (the demo's default SANs).
    pub fn tls(&self, class: TlsClass) -> Arc<rustls::ServerConfig> {
        self.tls_on(class, Protocols::Both)
    }

    /// The same, offering only `http/1.1` in ALPN for [`Protocols::Http1Only`] (the fake
    /// server then speaks HTTP/1.1 only).
    pub fn tls_on(&self, class: TlsClass, protocols: Protocols) -> Arc<rustls::ServerConfig> {
        let config = self
            .pki
            .server_identity(class, DEFAULT_SANS)
            .expect("identity")
            .server_config(&ClientAuth::None)
            .expect("server config");
        match protocols {
            Protocols::Both => config,
            Protocols::Http1Only => {
                let mut config = (*config).clone();
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Arc::new(config)
            }
        }
    }

    /// The kubeconfig as `Ci::GenerateKubeconfigService` writes it for one agent with
    /// `default_namespace: ci`: cluster `gitlab`, user `agent:<id>`, no CA data, no
    /// current-context.
    pub fn agent_kubeconfig(&self, server: &str, token: &str) -> PathBuf {
        let user = format!("agent:{AGENT_ID}");
        let ctx = Ctx {
            token: Some(token),
            cluster_name: Some("gitlab"),
            user_name: Some(&user),
            ..Ctx::named(CONTEXT, server.to_string())
        };
        let path = self.path("kubeconfig");
        std::fs::write(&path, kubeconfig(&[ctx], None)).expect("kubeconfig");
        path
    }

    /// The token GitLab puts in the kubeconfig: `ci:<agent id>:<CI_JOB_TOKEN>`.
    pub fn agent_token(&self) -> String {
        format!("ci:{AGENT_ID}:{}", self.canary)
    }

    /// Runs kube-reach as the job would: only the variables GitLab sets, `--json -`, `--junit`.
    /// `api_v4_url` defaults to `$CI_SERVER_URL/api/v4`.
    pub fn run(
        &self,
        kubeconfig: Option<&Path>,
        gitlab: &FakeServer,
        api_v4_url: Option<&str>,
    ) -> Outcome {
        self.run_with(kubeconfig, gitlab, api_v4_url, &[])
    }

    /// Like [`Job::run`], with more job variables (the legacy `KUBE_*`, say).
    pub fn run_with(
        &self,
        kubeconfig: Option<&Path>,
        gitlab: &FakeServer,
        api_v4_url: Option<&str>,
        vars: &[(&str, &str)],
    ) -> Outcome {
        self.run_full(kubeconfig, gitlab, api_v4_url, LIMITS, vars)
    }

    /// [`Job::run`] with the given `--timeout`/`--deadline` flags (none: the tool's defaults).
    pub fn run_limited(
        &self,
        kubeconfig: Option<&Path>,
        gitlab: &FakeServer,
        api_v4_url: Option<&str>,
        limits: &[&str],
    ) -> Outcome {
        self.run_full(kubeconfig, gitlab, api_v4_url, limits, &[])
    }

    fn run_full(
        &self,
        kubeconfig: Option<&Path>,
        gitlab: &FakeServer,
        api_v4_url: Option<&str>,
        limits: &[&str],
        vars: &[(&str, &str)],
    ) -> Outcome {
        let junit = self.path(JUNIT_FILE);
        let server_url = gitlab.url();
        let api = api_v4_url
            .map(str::to_string)
            .unwrap_or_else(|| format!("{server_url}/api/v4"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kube-reach"));
        cmd.args(["--json", "-", "--junit"])
            .arg(&junit)
            .arg("--no-in-cluster")
            .arg("--resolv-conf")
            .arg(self.path("resolv.conf"))
            .arg("--hosts-file")
            .arg(self.path("hosts"))
            .args(limits)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SSL_CERT_FILE", self.ca_file())
            .env("GITLAB_CI", "true")
            .env("CI_SERVER_URL", &server_url)
            .env("CI_API_V4_URL", &api)
            .env("CI_JOB_TOKEN", &self.canary)
            .env("CI_PROJECT_PATH", PROJECT_PATH)
            .env("CI_PROJECT_ID", PROJECT_ID.to_string())
            .env("CI_JOB_ID", JOB_ID.to_string())
            .env("CI_PROJECT_DIR", self.path("project"))
            .env("HOME", self.path("home"));
        if let Some(k) = kubeconfig {
            cmd.env("KUBECONFIG", k);
        }
        cmd.envs(vars.iter().copied());
        let (code, stdout, stderr) = run_bounded(cmd, CHILD_TIMEOUT);
        let junit_xml = std::fs::read_to_string(&junit)
            .unwrap_or_else(|e| panic!("no JUnit report ({e}); exit {code:?}; stderr:\n{stderr}"));
        if serde_json::from_str::<serde_json::Value>(&stdout).is_err() {
            panic!("stdout is not JSON; exit {code:?}; stderr:\n{stderr}\nstdout:\n{stdout}");
        }
        let report = Report::parse(&stdout);
        let junit = quick_junit::Report::deserialize_from_str(&junit_xml)
            .unwrap_or_else(|e| panic!("the JUnit report does not parse: {e}\n{junit_xml}"));
        Outcome {
            code,
            stdout,
            stderr,
            junit_xml,
            junit,
            report,
        }
    }
}

/// A job token no test shares and no redaction heuristic recognises by shape (GitLab's legacy
/// `<partition id hex>_<friendly token>`), so only the tool's own handling can keep it out.
fn canary() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mut seed = nanos
        ^ (u128::from(std::process::id()) << 64)
        ^ (u128::from(COUNTER.fetch_add(1, Ordering::SeqCst)) << 96);
    let alphabet = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut token = String::from("64_Cnry");
    for _ in 0..20 {
        token.push(alphabet[(seed % alphabet.len() as u128) as usize] as char);
        seed = seed / alphabet.len() as u128 + 0x9e37_79b9_7f4a_7c15;
    }
    token
}

/// What one run produced.
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub junit_xml: String,
    pub junit: quick_junit::Report,
    pub report: Report,
}

impl Outcome {
    /// Every check of the run, one line each (ids, statuses, reasons, summaries), for messages.
    pub fn describe(&self) -> String {
        let line = |c: &Check| {
            format!(
                "  {} {} [{}] {} : {}",
                c.id.as_str(),
                c.subject,
                c.status.as_str(),
                c.reason.map_or("-", Reason::as_str),
                c.summary
            )
        };
        let mut out = vec![format!("exit {:?}; global:", self.code)];
        out.extend(self.report.checks.iter().map(line));
        for t in &self.report.targets {
            let cause = t.root_cause.map_or("none".to_string(), |rc| {
                format!("{} {}", rc.check.as_str(), rc.reason.as_str())
            });
            out.push(format!(
                "target {} ({}) {} root cause {cause}:",
                t.name,
                t.kind.as_str(),
                t.verdict.as_str()
            ));
            out.extend(t.checks.iter().map(line));
        }
        out.join("\n")
    }

    pub fn target(&self, kind: TargetKind) -> &Target {
        let found: Vec<_> = self
            .report
            .targets
            .iter()
            .filter(|t| t.kind == kind)
            .collect();
        match found.as_slice() {
            [one] => one,
            _ => panic!("expected one {} target\n{}", kind.as_str(), self.describe()),
        }
    }

    pub fn agent(&self) -> &Target {
        let agent = self.target(TargetKind::GitlabAgent);
        assert_eq!(agent.name, CONTEXT, "{}", self.describe());
        agent
    }

    /// The first result of `id` in `target`.
    pub fn check<'a>(&self, target: &'a Target, id: CheckId) -> &'a Check {
        target
            .checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| {
                let id = id.as_str();
                panic!("no {id} in {}\n{}", target.name, self.describe())
            })
    }

    /// Asserts the agent target's root cause in the JSON, that the JUnit report has that check
    /// as a `<failure>` of the agent's suite, and that the result carries evidence and a fix
    /// naming every `fix_mentions`. Returns the root result.
    pub fn assert_agent_root_cause(
        &self,
        check: CheckId,
        reason: Reason,
        fix_mentions: &[&str],
    ) -> &Check {
        let agent = self.agent();
        let rc = agent
            .root_cause
            .as_ref()
            .unwrap_or_else(|| panic!("no root cause\n{}", self.describe()));
        assert_eq!(
            (rc.check, rc.reason),
            (check, reason),
            "wrong root cause\n{}",
            self.describe()
        );
        assert_eq!(agent.verdict, Verdict::Fail, "{}", self.describe());
        assert_eq!(self.code, Some(1), "a failure exits 1\n{}", self.describe());
        let root = agent
            .checks
            .iter()
            .find(|c| c.id == check && c.reason == Some(reason) && c.status == Status::Fail)
            .unwrap_or_else(|| {
                panic!(
                    "no failing {} {reason:?}\n{}",
                    check.as_str(),
                    self.describe()
                )
            });
        let (check, reason) = (check.as_str(), reason.as_str());
        assert!(!root.evidence.is_empty(), "{check} has no evidence");
        // Nothing downstream is blamed, except the agent server's refusal (`auth.whoami`) that a
        // GitLab finding explains.
        for c in agent.checks.iter().filter(|c| c.status.is_failure()) {
            let explained = root.layer == Layer::Gitlab && c.id == CheckId::AuthWhoami;
            assert!(
                c.layer.rank() <= root.layer.rank() || explained,
                "downstream {} {:?} also blamed\n{}",
                c.id.as_str(),
                c.reason,
                self.describe()
            );
        }
        let fix = root.fix.as_deref().unwrap_or_default();
        for needle in fix_mentions {
            assert!(fix.contains(needle), "{check} fix lacks {needle:?}: {fix}");
        }
        self.assert_junit_failure(&agent.name, check, reason);
        root
    }

    /// The suite of `target` has a `<failure type="reason">` case named `<target>: <check> …`
    /// with a body.
    pub fn assert_junit_failure(&self, target: &str, check: &str, reason: &str) {
        // Suites carry the report file's name (two files of one job must not share a key).
        let name = format!("{target} ({JUNIT_FILE})");
        let suite = self
            .junit
            .test_suites
            .iter()
            .find(|s| s.name.as_str() == name)
            .unwrap_or_else(|| panic!("no JUnit suite {name}\n{}", self.junit_xml));
        let prefix = format!("{target}: ");
        let failed = suite.test_cases.iter().any(|case| {
            let name = case.name.as_str();
            let name = name.strip_prefix(&prefix).unwrap_or(name);
            (name == check || name.starts_with(&format!("{check} ")))
                && matches!(
                    &case.status,
                    TestCaseStatus::NonSuccess {
                        kind: NonSuccessKind::Failure,
                        ty: Some(ty),
                        description: Some(body),
                        ..
                    } if ty.as_str() == reason && !body.as_str().trim().is_empty()
                )
        });
        assert!(
            failed,
            "JUnit suite {} has no <failure type={reason:?}> for {check}\n{}",
            suite.name.as_str(),
            self.junit_xml
        );
    }

    /// The canary (or either half of it) is in no output: stdout (the JSON), stderr (the job
    /// log) and the JUnit file.
    pub fn assert_no_leak(&self, canary: &str) {
        let half = canary.len() / 2;
        for (name, text) in [
            ("stdout", &self.stdout),
            ("stderr", &self.stderr),
            ("junit", &self.junit_xml),
        ] {
            for piece in [canary, &canary[..half], &canary[half..]] {
                assert!(
                    !text.contains(piece),
                    "the job token (or part of it) is in {name}"
                );
            }
        }
    }
}
