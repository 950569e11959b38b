//! Shared fixtures: servers per TLS class, in-process runs, binary runs. Every run's report is
//! read from its JSON text through the one typed reader (`tests/common/report.rs`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::demo::{
    ApiServerHandle, ApiServerOptions, ClientAuth, Pki, TlsClass, Transport, apiserver,
};
use kube_reach::env::Env;
use kube_reach::in_process::Outputs;
use kube_reach::model::Status;

pub use crate::report::{Check, Report, Target};

pub use crate::kubeconfig::{Ctx, FORBIDDEN, GOOD, kubeconfig};

pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A listener that accepts up to `connections` and then says nothing on them: every TLS
/// handshake on it stalls (each connection is held until the listener's task ends).
pub async fn silent_listener(connections: usize) -> (tokio::task::JoinHandle<()>, SocketAddr) {
    let listener = tokio::net::TcpListener::bind(localhost())
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..connections {
            match tokio::time::timeout(Duration::from_secs(30), listener.accept()).await {
                Ok(Ok((stream, _))) => held.push(stream),
                _ => break,
            }
        }
    });
    (task, addr)
}

/// A TLS server of `class` with the default SANs (api.k8s.test, localhost, 127.0.0.1, ::1).
pub async fn tls_server(
    pki: &Pki,
    class: TlsClass,
    options: ApiServerOptions,
) -> (ApiServerHandle, String) {
    let sans = match class {
        TlsClass::IpNotInSan => vec!["api.k8s.test", "localhost"],
        _ => kube_reach::demo::DEFAULT_SANS.to_vec(),
    };
    let id = pki.server_identity(class, &sans).expect("identity");
    let config = id.server_config(&ClientAuth::None).expect("server config");
    let server = apiserver::start(localhost(), Transport::Tls(config), options)
        .await
        .expect("server");
    (server, id.kubeconfig_ca_pem.clone())
}

/// One context `c` on a Good TLS server with `options`, holding `token` (no credentials when
/// `None`) and the kubeconfig's current context when `current`: the in-process run with `extra`
/// flags, and the server, for what it saw.
pub async fn run_on_good_server(
    options: ApiServerOptions,
    token: Option<&str>,
    current: bool,
    extra: &[&str],
) -> (Report, ApiServerHandle) {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = tls_server(&pki, TlsClass::Good, options).await;
    let mut ctx = Ctx::new("c", server.url(), &ca, GOOD);
    ctx.token = token;
    let kc = kubeconfig(&[ctx], current.then_some("c"));
    let report = World::new().run(&kc, extra, &[]).await;
    (report, server)
}

/// A temp dir with an empty resolv.conf and a hosts file naming api.k8s.test, so no test name
/// ever reaches the system resolver.
pub struct World {
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("resolv.conf"), "").expect("resolv.conf");
        std::fs::write(dir.path().join("hosts"), "127.0.0.1 api.k8s.test\n").expect("hosts");
        World { dir }
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// The flags every run gets: this world's DNS files, short timeouts, no in-cluster.
    pub fn base_args(&self) -> Vec<String> {
        vec![
            "kube-reach".into(),
            "--resolv-conf".into(),
            self.path("resolv.conf").display().to_string(),
            "--hosts-file".into(),
            self.path("hosts").display().to_string(),
            "--timeout".into(),
            "2".into(),
            "--deadline".into(),
            "20".into(),
            "--no-in-cluster".into(),
        ]
    }
    pub fn env(&self, vars: &[(&str, &str)]) -> Env {
        Env {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            now: SystemTime::now(),
            resolv_conf_path: self.path("resolv.conf"),
            hosts_path: self.path("hosts"),
            service_account_dir: self.path("serviceaccount"),
        }
    }

    /// Runs kube-reach in-process on `kubeconfig` with extra flags and variables.
    pub async fn run(&self, kubeconfig: &str, extra: &[&str], vars: &[(&str, &str)]) -> Report {
        Report::parse(&self.run_outputs(kubeconfig, extra, vars).await.json)
    }

    /// [`World::run`], returning every output the run wrote.
    pub async fn run_outputs(
        &self,
        kubeconfig: &str,
        extra: &[&str],
        vars: &[(&str, &str)],
    ) -> Outputs {
        let path = self.write("kubeconfig", kubeconfig);
        let mut args = self.base_args();
        for flag in ["--timeout", "--deadline"] {
            if extra.contains(&flag) {
                let at = args.iter().position(|a| a == flag).expect("base flag");
                args.drain(at..at + 2);
            }
        }
        args.extend(["--kubeconfig".into(), path.display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        self.run_args_outputs(&args, vars).await
    }

    /// Runs kube-reach in-process with exactly `args` (the program name first, as from
    /// [`World::base_args`]) and this world's environment with `vars`.
    pub async fn run_args(&self, args: &[String], vars: &[(&str, &str)]) -> Report {
        Report::parse(&self.run_args_outputs(args, vars).await.json)
    }

    /// [`World::run_args`], returning every output the run wrote.
    pub async fn run_args_outputs(&self, args: &[String], vars: &[(&str, &str)]) -> Outputs {
        kube_reach::in_process::run(args, &self.env(vars))
            .await
            .unwrap_or_else(|usage| panic!("refused as a usage error: {usage}"))
    }

    /// [`World::base_args`] without `--no-in-cluster`: a run that may read the pod's service
    /// account (from this world's `serviceaccount` folder).
    pub fn in_cluster_args(&self) -> Vec<String> {
        let mut args = self.base_args();
        args.retain(|a| a != "--no-in-cluster");
        args
    }

    /// Runs the real binary (same flags) and returns its output.
    pub fn run_binary(
        &self,
        kubeconfig: Option<&Path>,
        extra: &[&str],
        vars: &[(&str, &str)],
    ) -> Finished {
        let mut args = self.base_args();
        args.remove(0);
        if let Some(k) = kubeconfig {
            args.extend(["--kubeconfig".into(), k.display().to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kube-reach"));
        cmd.args(&args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let (code, stdout, stderr) = crate::child::run_bounded(cmd, Duration::from_secs(60));
        Finished {
            code,
            stdout: stdout.into_bytes(),
            stderr: stderr.into_bytes(),
        }
    }
}

pub fn target<'r>(report: &'r Report, name: &str) -> &'r Target {
    report.target(name)
}

/// Asserts the root cause, and that nothing after it is blamed: every later failure is the
/// same layer (several addresses, several RBAC verbs) or a skip naming a blocker.
pub fn assert_root_cause(t: &Target, check: CheckId, reason: Reason) {
    let rc = t
        .root_cause
        .unwrap_or_else(|| panic!("{}: no root cause; checks: {:#?}", t.name, t.checks));
    assert_eq!(
        (rc.check, rc.reason),
        (check, reason),
        "{}: wrong root cause; checks: {:#?}",
        t.name,
        t.checks
    );
    let rank = check.layer().rank();
    for c in &t.checks {
        if c.status.is_failure() {
            assert!(
                c.layer().rank() <= rank,
                "{}: downstream {} {:?} also blamed",
                t.name,
                c.key(),
                c.reason
            );
        }
        if c.status == Status::Skip && c.reason == Some(Reason::Blocked) {
            assert!(
                c.blocked_by.is_some(),
                "{} skipped without blocked_by",
                c.key()
            );
        }
    }
    let root = t
        .checks
        .iter()
        .find(|c| c.id == check && c.reason == Some(reason))
        .expect("root result");
    assert!(
        root.fix.as_deref().is_some_and(|f| !f.is_empty()),
        "{} has no fix",
        root.key()
    );
    assert!(!root.evidence.is_empty(), "{} has no evidence", root.key());
}

/// Asserts that the target has a result of check `id` with `reason`.
pub fn assert_has_reason(t: &Target, id: CheckId, reason: Reason) {
    assert!(
        t.checks
            .iter()
            .any(|c| c.id == id && c.reason == Some(reason)),
        "{}: no {} {}: {:#?}",
        t.name,
        id.as_str(),
        reason.as_str(),
        t.checks
    );
}

/// Asserts that the target has a result of check `id` with `status`.
pub fn assert_has_status(t: &Target, id: CheckId, status: Status) {
    assert!(
        t.checks.iter().any(|c| c.id == id && c.status == status),
        "{}: no {} {status:?}: {:#?}",
        t.name,
        id.as_str(),
        t.checks
    );
}

pub fn evidence_of(t: &Target, check: CheckId) -> String {
    t.checks
        .iter()
        .filter(|c| c.id == check)
        .flat_map(|c| c.evidence.iter().cloned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a bounded run of the binary left: exit code and output.
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// The target's first result of check `id`, failing the test when there is none.
pub fn result_of(t: &Target, id: CheckId) -> &Check {
    t.checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("{}: no {} result: {:#?}", t.name, id.as_str(), t.checks))
}

/// An unsigned JWT whose `exp` claim is `exp` (seconds since the epoch).
pub fn jwt_with_exp(exp: u64) -> String {
    let b64 =
        |s: &str| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s);
    format!(
        "{}.{}.{}",
        b64(r#"{"alg":"RS256"}"#),
        b64(&format!(r#"{{"exp":{exp},"sub":"ci"}}"#)),
        b64("sig")
    )
}
