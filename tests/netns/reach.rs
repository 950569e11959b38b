//! The tool under test inside a world: `kube-reach demo-server` in the server namespace, and
//! `kube-reach --json -` in the client namespace, its report judged against spec §2 and §3.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::kubectl;
use crate::pki::LeafKind;
use crate::site::Site;
use crate::world::{DAEMON_LIFETIME_SECS, Ran};

/// The binary cargo built for this package.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_kube-reach")
}

/// Per-operation timeout the suite gives the tool; timing bounds are multiples of it.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Starts `kube-reach demo-server` on every API address of `site`, with a `kind` leaf; `extra`
/// adds flags (`--version-padding`).
pub fn demo_server(site: &mut Site, kind: LeafKind, extra: &[&str]) {
    let api = site.api.clone();
    demo_server_on(site, &api, kind, extra);
}

/// [`demo_server`] listening on `listen` in the server namespace (behind a TCP front, say).
pub fn demo_server_on(site: &mut Site, listen: &[SocketAddr], kind: LeafKind, extra: &[&str]) {
    let leaf = site.pki.leaf(&site.world, kind);
    let ready = site.world.dir().join("demo-server.ready");
    let mut argv: Vec<String> = vec![bin().into(), "demo-server".into()];
    for addr in listen {
        argv.extend(["--listen".into(), addr.to_string()]);
    }
    for (flag, path) in [
        ("--cert-chain", &leaf.chain_path),
        ("--key", &leaf.key_path),
        ("--ready-file", &ready),
    ] {
        argv.extend([flag.into(), path.to_string_lossy().into_owned()]);
    }
    argv.extend(["--max-lifetime".into(), DAEMON_LIFETIME_SECS.to_string()]);
    argv.extend(extra.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    site.world.spawn(&site.server, "demo-server", &argv);
    site.world.wait_ready("demo-server", |_| ready.exists());
}

/// Runs kube-reach in the client with `kubeconfig` and `env`, then (when kubectl is installed)
/// kubectl the same way for the comparison table; `case` names the row.
pub fn diagnose(site: &Site, case: &str, kubeconfig: &Path, env: &[(&str, &str)]) -> Report {
    let report = run(site, kubeconfig, env);
    kubectl::compare(site, case, kubeconfig, env, &report);
    report
}

/// [`diagnose`] for a case whose failure is the credentials: kubectl runs `auth whoami`.
pub fn diagnose_auth(site: &Site, case: &str, kubeconfig: &Path) -> Report {
    let report = run(site, kubeconfig, &[]);
    kubectl::compare_with(site, case, kubeconfig, &[], &report, &["auth", "whoami"]);
    report
}

fn run(site: &Site, kubeconfig: &Path, env: &[(&str, &str)]) -> Report {
    let kubeconfig = kubeconfig.to_string_lossy();
    let argv = [
        bin(),
        "--kubeconfig",
        &kubeconfig,
        "--json",
        "-",
        "--timeout",
        &TIMEOUT.as_secs().to_string(),
        "--deadline",
        "20",
        "--color",
        "never",
    ];
    let ran = site
        .world
        .run(&site.client, &argv, env, Duration::from_secs(40));
    let json = json_report(&ran.stdout).unwrap_or_else(|| {
        panic!(
            "kube-reach printed no JSON report (exit {:?}, {:?})\nstdout:\n{}\nstderr:\n{}",
            ran.status, ran.elapsed, ran.stdout, ran.stderr
        )
    });
    Report { ran, json }
}

/// The JSON report in stdout: the whole of it, or the first object that starts a line (in case
/// the job log shares stdout).
fn json_report(stdout: &str) -> Option<Value> {
    let start = if stdout.trim_start().starts_with('{') {
        0
    } else {
        stdout.find("\n{")? + 1
    };
    let mut values = serde_json::Deserializer::from_str(&stdout[start..]).into_iter::<Value>();
    values.next()?.ok().filter(|v| v.get("targets").is_some())
}

/// Rank of a layer in the root-cause order of spec §2; `tcp` and `proxy` share a rank.
fn rank(layer: &str) -> Option<u8> {
    Some(match layer {
        "config" => 0,
        "runner" => 1,
        "dns" => 2,
        "tcp" | "proxy" => 3,
        "tls" => 4,
        "http" => 5,
        "auth" => 6,
        "rbac" => 7,
        "netpol" => 8,
        _ => return None,
    })
}

fn layer_of(check: &Value) -> &str {
    let id = str_of(check, "id");
    check["layer"]
        .as_str()
        .unwrap_or_else(|| id.split('.').next().unwrap_or(id))
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("")
}

/// One kube-reach run: its process outcome and parsed report.
pub struct Report {
    pub ran: Ran,
    pub json: Value,
}

impl Report {
    /// Pretty report plus stderr, appended to every failed assertion.
    fn dump(&self) -> String {
        let json = serde_json::to_string_pretty(&self.json).unwrap_or_default();
        format!(
            "\nexit {:?} after {:?}\nreport:\n{json}\nstderr:\n{}",
            self.ran.status, self.ran.elapsed, self.ran.stderr
        )
    }

    /// The single target of the world's kubeconfig.
    fn target(&self) -> &Value {
        let targets = self.json["targets"].as_array();
        match targets.map(Vec::as_slice) {
            Some([target]) => target,
            _ => panic!("expected exactly one target{}", self.dump()),
        }
    }

    fn checks(&self) -> &[Value] {
        self.target()["checks"]
            .as_array()
            .map_or(&[], Vec::as_slice)
    }

    /// Every result of check `id` (several for per-address checks).
    fn results(&self, id: &str) -> Vec<&Value> {
        let found: Vec<&Value> = self
            .checks()
            .iter()
            .filter(|c| str_of(c, "id") == id)
            .collect();
        assert!(!found.is_empty(), "no {id} result{}", self.dump());
        found
    }

    /// The target's verdict (`pass`, `warn`, `fail`).
    pub fn verdict(&self) -> &str {
        str_of(self.target(), "verdict")
    }

    /// The fix of the root-cause check, or "" when there is none.
    pub fn root_fix(&self) -> String {
        let cause = &self.target()["root_cause"];
        let (check, reason) = (str_of(cause, "check"), str_of(cause, "reason"));
        let hit = self
            .checks()
            .iter()
            .find(|c| str_of(c, "id") == check && str_of(c, "reason") == reason);
        hit.map(|c| str_of(c, "fix").to_owned()).unwrap_or_default()
    }

    /// `check reason` of the root cause, or `none`.
    pub fn root_cause_text(&self) -> String {
        let cause = &self.target()["root_cause"];
        if cause.is_null() {
            return "none".into();
        }
        format!("{} {}", str_of(cause, "check"), str_of(cause, "reason"))
    }

    /// The run failed at `check` for `reason`: root cause, verdicts, exit status 1, the failing
    /// result itself, and every later layer skipped as blocked.
    pub fn expect_root_cause(&self, check: &str, reason: &str) -> &Self {
        let cause = &self.target()["root_cause"];
        let got = (str_of(cause, "check"), str_of(cause, "reason"));
        assert_eq!(got, (check, reason), "root cause{}", self.dump());
        assert_eq!(self.verdict(), "fail", "target verdict{}", self.dump());
        assert_eq!(
            str_of(&self.json, "verdict"),
            "fail",
            "run verdict{}",
            self.dump()
        );
        assert_eq!(self.ran.status, Some(1), "exit status{}", self.dump());
        let failed = self
            .results(check)
            .into_iter()
            .any(|c| str_of(c, "status") == "fail" && str_of(c, "reason") == reason);
        assert!(failed, "no failing {check} {reason} result{}", self.dump());
        self.expect_blocked_after(check)
    }

    /// Every check of a layer after `check`'s is `skip` with `blocked_by` (spec §2): a layer above
    /// a broken one must not report failures of its own.
    fn expect_blocked_after(&self, check: &str) -> &Self {
        let root_rank = rank(check.split('.').next().unwrap_or(check));
        let root_rank = root_rank.unwrap_or_else(|| panic!("{check} has no layer rank"));
        for c in self.checks() {
            if rank(layer_of(c)).is_some_and(|r| r > root_rank) {
                let blocked = str_of(c, "status") == "skip" && !str_of(c, "blocked_by").is_empty();
                let id = str_of(c, "id");
                assert!(
                    blocked,
                    "{id} comes after {check} but is not skipped as blocked{}",
                    self.dump()
                );
            }
        }
        self
    }

    /// No failure: no root cause, target and run verdict `pass` or `warn`, exit status 0.
    pub fn expect_no_failure(&self) -> &Self {
        assert!(
            self.target()["root_cause"].is_null(),
            "root cause{}",
            self.dump()
        );
        assert!(
            matches!(self.verdict(), "pass" | "warn"),
            "target verdict{}",
            self.dump()
        );
        assert_eq!(self.ran.status, Some(0), "exit status{}", self.dump());
        self
    }

    /// Every result of each check in `ids` passed.
    pub fn expect_pass(&self, ids: &[&str]) -> &Self {
        for id in ids {
            for c in self.results(id) {
                assert_eq!(str_of(c, "status"), "pass", "{id} status{}", self.dump());
            }
        }
        self
    }

    /// The result of `id` whose subject contains `subject` has `status`.
    pub fn expect_status(&self, id: &str, subject: &str, status: &str) -> &Self {
        let results = self.results(id);
        let hit = results
            .iter()
            .find(|c| str_of(c, "subject").contains(subject));
        let hit = hit.unwrap_or_else(|| panic!("no {id} result for {subject}{}", self.dump()));
        assert_eq!(
            str_of(hit, "status"),
            status,
            "{id} {subject}{}",
            self.dump()
        );
        self
    }

    /// Some result of `id` has `status` and `reason`: for warnings, which are never a root cause.
    pub fn expect_finding(&self, id: &str, status: &str, reason: &str) -> &Self {
        let hit = self
            .results(id)
            .into_iter()
            .any(|c| str_of(c, "status") == status && str_of(c, "reason") == reason);
        assert!(hit, "no {status} {id} {reason} result{}", self.dump());
        self
    }

    /// The evidence of `id` (all its results) mentions every needle, case-insensitively: what a
    /// person needs to act (an address, an rcode, a date, a status line) is there. A needle may
    /// list alternatives, `"timed out|timeout"`.
    pub fn expect_evidence(&self, id: &str, needles: &[&str]) -> &Self {
        let evidence: Vec<&str> = self
            .results(id)
            .iter()
            .flat_map(|c| c["evidence"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        self.expect_mentions(&format!("{id} evidence"), &evidence.join("\n"), needles)
    }

    /// The summary of `id` (all its results) mentions every needle: for checks whose finding is
    /// a statement, like `config.proxy` naming the route it chose.
    pub fn expect_summary(&self, id: &str, needles: &[&str]) -> &Self {
        let summaries: Vec<&str> = self
            .results(id)
            .iter()
            .map(|c| str_of(c, "summary"))
            .collect();
        self.expect_mentions(&format!("{id} summary"), &summaries.join("\n"), needles)
    }

    /// The fix of the failing `id` result mentions every needle (as in [`Self::expect_evidence`]).
    pub fn expect_fix(&self, id: &str, needles: &[&str]) -> &Self {
        let fixes: Vec<&str> = self.results(id).iter().map(|c| str_of(c, "fix")).collect();
        self.expect_mentions(&format!("{id} fix"), &fixes.join("\n"), needles)
    }

    fn expect_mentions(&self, what: &str, text: &str, needles: &[&str]) -> &Self {
        let text = text.to_lowercase();
        for needle in needles {
            let found = needle
                .split('|')
                .any(|alt| text.contains(&alt.to_lowercase()));
            assert!(found, "{what} lacks {needle:?}{}", self.dump());
        }
        self
    }

    /// The root cause's reason, for cases where the world allows more than one.
    pub fn root_reason(&self) -> &str {
        str_of(&self.target()["root_cause"], "reason")
    }

    /// The verdict came within `limit` of starting the tool.
    pub fn expect_within(&self, limit: Duration) -> &Self {
        assert!(
            self.ran.elapsed <= limit,
            "took {:?} > {limit:?}{}",
            self.ran.elapsed,
            self.dump()
        );
        self
    }
}

/// The assertions above must be able to fail: each is run against a hand-written report in the
/// shape of spec §3, once as it should pass and once broken. These need no root.
mod self_test {
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::{Report, json_report};
    use crate::world::Ran;

    /// A run that failed at `tcp.connect refused`, with `edit` applied.
    fn refused(edit: impl FnOnce(&mut Value)) -> Report {
        let mut json = json!({
            "tool": {"name": "kube-reach", "version": "0"}, "verdict": "fail",
            "targets": [{"name": "e2e", "kind": "direct", "server": "https://api.k8s.test:6443",
                "verdict": "fail", "root_cause": {"check": "tcp.connect", "reason": "refused"},
                "checks": [
                    {"id": "dns.resolve", "subject": "api.k8s.test", "layer": "dns", "status": "pass",
                     "reason": null, "evidence": ["A 10.253.1.2 from nameserver 10.253.1.2:53"],
                     "blocked_by": null},
                    {"id": "tcp.connect", "subject": "10.253.1.2:6443", "layer": "tcp", "status": "fail",
                     "reason": "refused", "evidence": ["10.253.1.2:6443: connection refused"],
                     "fix": "open port 6443", "blocked_by": null},
                    {"id": "tls.handshake", "subject": "10.253.1.2:6443", "layer": "tls", "status": "skip",
                     "reason": null, "evidence": [], "blocked_by": "tcp.connect"}]}]});
        edit(&mut json);
        let ran = Ran {
            status: Some(1),
            stdout: String::new(),
            stderr: String::new(),
            elapsed: Duration::from_millis(5),
        };
        Report { ran, json }
    }

    #[test]
    fn report_in_spec_shape_is_accepted() {
        refused(|_| {})
            .expect_root_cause("tcp.connect", "refused")
            .expect_evidence("tcp.connect", &["10.253.1.2", "timed out|refused"])
            .expect_fix("tcp.connect", &["6443"])
            .expect_status("tcp.connect", "10.253.1.2", "fail")
            .expect_within(Duration::from_secs(1));
    }

    #[test]
    #[should_panic(expected = "not skipped as blocked")]
    fn failure_in_a_later_layer_is_rejected() {
        refused(|j| j["targets"][0]["checks"][2]["status"] = json!("fail"))
            .expect_root_cause("tcp.connect", "refused");
    }

    #[test]
    #[should_panic(expected = "root cause")]
    fn other_reason_is_rejected() {
        refused(|_| {}).expect_root_cause("tcp.connect", "timeout");
    }

    #[test]
    #[should_panic(expected = "exit status")]
    fn exit_status_zero_on_failure_is_rejected() {
        let mut report = refused(|_| {});
        report.ran.status = Some(0);
        report.expect_root_cause("tcp.connect", "refused");
    }

    #[test]
    #[should_panic(expected = "evidence lacks")]
    fn missing_evidence_is_rejected() {
        refused(|_| {}).expect_evidence("tcp.connect", &["10.253.1.77"]);
    }

    #[test]
    #[should_panic(expected = "root cause")]
    fn failure_is_not_a_pass() {
        refused(|_| {}).expect_no_failure();
    }

    #[test]
    fn report_is_found_after_log_lines() {
        let stdout = "e2e: fail (tcp.connect refused)\n{\"targets\": []}\n";
        assert!(json_report(stdout).is_some());
        assert!(json_report("no report here\n").is_none());
    }
}
