//! The tool under test inside a world: `kube-reach demo-server` in the server namespace, and
//! `kube-reach --json -` in the client namespace, its report judged against spec §2 and §3.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::model::{Status, Verdict};

use crate::kubectl;
use crate::pki::LeafKind;
use crate::report::{Check, Report as JsonReport, Target};
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
    Report::read(ran)
}

/// The JSON report in stdout: the whole of it, or the first object that starts a line (in case
/// the job log shares stdout), as text for the typed reader.
fn json_report(stdout: &str) -> Option<&str> {
    let start = if stdout.trim_start().starts_with('{') {
        0
    } else {
        stdout.find("\n{")? + 1
    };
    let text = &stdout[start..];
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
    let first = values.next()?.ok().filter(|v| v.get("targets").is_some())?;
    drop(first);
    Some(&text[..values.byte_offset()])
}

/// One kube-reach run: its process outcome and its report, read through the shared typed reader.
pub struct Report {
    pub ran: Ran,
    pub report: JsonReport,
}

impl Report {
    /// The report kube-reach printed in `ran`'s stdout.
    pub fn read(ran: Ran) -> Report {
        let json = json_report(&ran.stdout).unwrap_or_else(|| {
            panic!(
                "kube-reach printed no JSON report (exit {:?}, {:?})\nstdout:\n{}\nstderr:\n{}",
                ran.status, ran.elapsed, ran.stdout, ran.stderr
            )
        });
        Report {
            report: JsonReport::parse(json),
            ran,
        }
    }

    /// The same run with its report narrowed to the target `name`, for the single-target
    /// assertions.
    pub fn only(&self, name: &str) -> Report {
        let mut report = self.report.clone();
        report.targets.retain(|t| t.name == name);
        assert!(
            !report.targets.is_empty(),
            "no target {name}{}",
            self.dump()
        );
        Report {
            ran: self.ran.clone(),
            report,
        }
    }

    /// The report's main facts plus stderr, appended to every failed assertion.
    fn dump(&self) -> String {
        format!(
            "\nexit {:?} after {:?}\nreport:\n{:#?}\nstderr:\n{}",
            self.ran.status, self.ran.elapsed, self.report.targets, self.ran.stderr
        )
    }

    /// The single target of the world's kubeconfig.
    fn target(&self) -> &Target {
        match self.report.targets.as_slice() {
            [target] => target,
            _ => panic!("expected exactly one target{}", self.dump()),
        }
    }

    /// Every result of check `id` (several for per-address checks).
    fn results(&self, id: CheckId) -> Vec<&Check> {
        let found: Vec<&Check> = self.target().checks.iter().filter(|c| c.id == id).collect();
        assert!(
            !found.is_empty(),
            "no {} result{}",
            id.as_str(),
            self.dump()
        );
        found
    }

    /// The target's verdict.
    pub fn verdict(&self) -> Verdict {
        self.target().verdict
    }

    /// The fix of the root-cause check, or "" when there is none.
    pub fn root_fix(&self) -> String {
        let Some(cause) = self.target().root_cause else {
            return String::new();
        };
        let hit = self
            .target()
            .checks
            .iter()
            .find(|c| c.id == cause.check && c.reason == Some(cause.reason));
        hit.and_then(|c| c.fix.clone()).unwrap_or_default()
    }

    /// `check reason` of the root cause, or `none`.
    pub fn root_cause_text(&self) -> String {
        match self.target().root_cause {
            Some(cause) => format!("{} {}", cause.check.as_str(), cause.reason.as_str()),
            None => "none".into(),
        }
    }

    /// The run failed at `check` for `reason`: root cause, verdicts, exit status 1, the failing
    /// result itself, and every later layer skipped as blocked.
    pub fn expect_root_cause(&self, check: CheckId, reason: Reason) -> &Self {
        let got = self.target().root_cause.map(|c| (c.check, c.reason));
        assert_eq!(got, Some((check, reason)), "root cause{}", self.dump());
        assert_eq!(
            self.verdict(),
            Verdict::Fail,
            "target verdict{}",
            self.dump()
        );
        assert_eq!(
            self.report.verdict,
            Verdict::Fail,
            "run verdict{}",
            self.dump()
        );
        assert_eq!(self.ran.status, Some(1), "exit status{}", self.dump());
        let failed = self
            .results(check)
            .into_iter()
            .any(|c| c.status == Status::Fail && c.reason == Some(reason));
        let (id, code) = (check.as_str(), reason.as_str());
        assert!(failed, "no failing {id} {code} result{}", self.dump());
        self.expect_blocked_after(check)
    }

    /// Every check of a layer after `check`'s is `skip` with `blocked_by` (spec §2): a layer above
    /// a broken one must not report failures of its own.
    fn expect_blocked_after(&self, check: CheckId) -> &Self {
        let root_rank = check.layer().rank();
        for c in &self.target().checks {
            if c.layer.rank() > root_rank {
                let blocked = c.status == Status::Skip && c.blocked_by.is_some();
                assert!(
                    blocked,
                    "{} comes after {} but is not skipped as blocked{}",
                    c.id.as_str(),
                    check.as_str(),
                    self.dump()
                );
            }
        }
        self
    }

    /// No failure: no root cause, target and run verdict `pass` or `warn`, exit status 0.
    pub fn expect_no_failure(&self) -> &Self {
        assert!(
            self.target().root_cause.is_none(),
            "root cause{}",
            self.dump()
        );
        assert_ne!(
            self.verdict(),
            Verdict::Fail,
            "target verdict{}",
            self.dump()
        );
        assert_eq!(self.ran.status, Some(0), "exit status{}", self.dump());
        self
    }

    /// Every result of each check in `ids` passed, and the target has every row its kind must
    /// have (a report with no rows, or without the layers above the ones named, is no pass).
    pub fn expect_pass(&self, ids: &[CheckId]) -> &Self {
        for id in ids {
            for c in self.results(*id) {
                assert_eq!(
                    c.status,
                    Status::Pass,
                    "{} status{}",
                    id.as_str(),
                    self.dump()
                );
            }
        }
        self.target().assert_has_rows_of_its_kind();
        self
    }

    /// The result of `id` whose subject contains `subject` has `status`.
    pub fn expect_status(&self, id: CheckId, subject: &str, status: Status) -> &Self {
        let results = self.results(id);
        let hit = results.iter().find(|c| c.subject.contains(subject));
        let id = id.as_str();
        let hit = hit.unwrap_or_else(|| panic!("no {id} result for {subject}{}", self.dump()));
        assert_eq!(hit.status, status, "{id} {subject}{}", self.dump());
        self
    }

    /// Some result of `id` has `status` and `reason`: for warnings, which are never a root cause.
    pub fn expect_finding(&self, id: CheckId, status: Status, reason: Reason) -> &Self {
        let hit = self
            .results(id)
            .into_iter()
            .any(|c| c.status == status && c.reason == Some(reason));
        let (id, status, reason) = (id.as_str(), status.as_str(), reason.as_str());
        assert!(hit, "no {status} {id} {reason} result{}", self.dump());
        self
    }

    /// The evidence of `id` (all its results) mentions every needle, case-insensitively: what a
    /// person needs to act (an address, an rcode, a date, a status line) is there. A needle may
    /// list alternatives, `"timed out|timeout"`.
    pub fn expect_evidence(&self, id: CheckId, needles: &[&str]) -> &Self {
        self.expect_in(id, "evidence", |c| c.evidence.join("\n"), needles)
    }

    /// The summary of `id` (all its results) mentions every needle: for checks whose finding is
    /// a statement, like `config.proxy` naming the route it chose.
    pub fn expect_summary(&self, id: CheckId, needles: &[&str]) -> &Self {
        self.expect_in(id, "summary", |c| c.summary.clone(), needles)
    }

    /// The fix of the failing `id` result mentions every needle (as in [`Self::expect_evidence`]).
    pub fn expect_fix(&self, id: CheckId, needles: &[&str]) -> &Self {
        self.expect_in(id, "fix", |c| c.fix.clone().unwrap_or_default(), needles)
    }

    /// The `part` of every result of `id`, as `text` reads it, mentions every needle.
    fn expect_in(
        &self,
        id: CheckId,
        part: &str,
        text: impl Fn(&Check) -> String,
        needles: &[&str],
    ) -> &Self {
        let texts: Vec<String> = self.results(id).into_iter().map(text).collect();
        let what = format!("{} {part}", id.as_str());
        self.expect_mentions(&what, &texts.join("\n"), needles)
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
    pub fn root_reason(&self) -> Reason {
        let cause = self.target().root_cause;
        cause
            .unwrap_or_else(|| panic!("no root cause{}", self.dump()))
            .reason
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

    use kube_reach::catalogue::{CheckId, Reason};
    use kube_reach::model::Status;
    use serde_json::{Value, json};

    use super::{JsonReport, Report, json_report};
    use crate::world::Ran;

    /// One result row in the spec's shape.
    fn row(id: &str, subject: &str, status: &str, reason: Value, evidence: &[&str]) -> Value {
        let layer = id.split('.').next().unwrap_or_default();
        let blocked_by = if status == "skip" {
            json!("tcp.connect 10.253.1.2:6443")
        } else {
            Value::Null
        };
        json!({"id": id, "subject": subject, "layer": layer, "status": status, "reason": reason,
            "summary": "s", "evidence": evidence,
            "fix": if status == "fail" { json!("open port 6443") } else { Value::Null },
            "why": Value::Null, "duration_ms": 1, "blocked_by": blocked_by})
    }

    /// The report of one target holding `checks`, with `root_cause`.
    fn document(checks: Vec<Value>, root_cause: Value) -> Value {
        let verdict = if root_cause.is_null() { "pass" } else { "fail" };
        json!({
            "tool": {"name": "kube-reach", "version": "0"}, "started_at": "2026-01-01T00:00:00Z",
            "duration_ms": 5, "verdict": verdict, "environment": {}, "checks": [],
            "root_cause": Value::Null,
            "targets": [{"name": "e2e", "kind": "direct", "server": "https://api.k8s.test:6443",
                "verdict": verdict, "root_cause": root_cause, "checks": checks}]})
    }

    fn report(json: &Value, status: i32) -> Report {
        let ran = Ran {
            status: Some(status),
            stdout: String::new(),
            stderr: String::new(),
            elapsed: Duration::from_millis(5),
        };
        Report {
            ran,
            report: JsonReport::parse(&json.to_string()),
        }
    }

    /// A run that failed at `tcp.connect refused`, with `edit` applied.
    fn refused(edit: impl FnOnce(&mut Value)) -> Report {
        let mut json = document(
            vec![
                row(
                    "dns.resolve",
                    "api.k8s.test",
                    "pass",
                    Value::Null,
                    &["A 10.253.1.2 from nameserver 10.253.1.2:53"],
                ),
                row(
                    "tcp.connect",
                    "10.253.1.2:6443",
                    "fail",
                    json!("refused"),
                    &["10.253.1.2:6443: connection refused"],
                ),
                row(
                    "tls.handshake",
                    "10.253.1.2:6443",
                    "skip",
                    json!("blocked"),
                    &[],
                ),
            ],
            json!({"check": "tcp.connect", "reason": "refused"}),
        );
        edit(&mut json);
        report(&json, 1)
    }

    /// A run that passed with every row of a direct target, less the rows named in `without`.
    fn healthy(without: &[CheckId]) -> Report {
        let connection = [CheckId::DnsResolve, CheckId::TcpConnect];
        let tls = [
            CheckId::TlsHandshake,
            CheckId::TlsTrust,
            CheckId::TlsHostname,
        ];
        let rest = [
            CheckId::TlsValidity,
            CheckId::HttpVersion,
            CheckId::HttpHealth,
        ];
        let server = [CheckId::AuthWhoami, CheckId::RbacCanI];
        let ids = connection.iter().chain(&tls).chain(&rest).chain(&server);
        let rows = ids
            .filter(|id| !without.contains(id))
            .map(|id| row(id.as_str(), "api.k8s.test:6443", "pass", Value::Null, &[]))
            .collect();
        report(&document(rows, Value::Null), 0)
    }

    #[test]
    fn report_in_spec_shape_is_accepted() {
        refused(|_| {})
            .expect_root_cause(CheckId::TcpConnect, Reason::Refused)
            .expect_evidence(CheckId::TcpConnect, &["10.253.1.2", "timed out|refused"])
            .expect_fix(CheckId::TcpConnect, &["6443"])
            .expect_status(CheckId::TcpConnect, "10.253.1.2", Status::Fail)
            .expect_within(Duration::from_secs(1));
    }

    #[test]
    #[should_panic(expected = "not skipped as blocked")]
    fn failure_in_a_later_layer_is_rejected() {
        refused(|j| j["targets"][0]["checks"][2]["status"] = json!("fail"))
            .expect_root_cause(CheckId::TcpConnect, Reason::Refused);
    }

    #[test]
    #[should_panic(expected = "root cause")]
    fn other_reason_is_rejected() {
        refused(|_| {}).expect_root_cause(CheckId::TcpConnect, Reason::Timeout);
    }

    #[test]
    #[should_panic(expected = "exit status")]
    fn exit_status_zero_on_failure_is_rejected() {
        let mut report = refused(|_| {});
        report.ran.status = Some(0);
        report.expect_root_cause(CheckId::TcpConnect, Reason::Refused);
    }

    #[test]
    #[should_panic(expected = "evidence lacks")]
    fn missing_evidence_is_rejected() {
        refused(|_| {}).expect_evidence(CheckId::TcpConnect, &["10.253.1.77"]);
    }

    #[test]
    #[should_panic(expected = "root cause")]
    fn failure_is_not_a_pass() {
        refused(|_| {}).expect_no_failure();
    }

    #[test]
    fn a_pass_with_every_row_of_the_kind_is_accepted() {
        healthy(&[])
            .expect_no_failure()
            .expect_pass(&[CheckId::TcpConnect, CheckId::HttpVersion]);
    }

    /// A pass of the rows asked about is no pass when the layers above them are missing.
    #[test]
    #[should_panic(expected = "lacks the rows")]
    fn a_pass_without_the_rows_of_its_kind_is_rejected() {
        healthy(&[CheckId::AuthWhoami, CheckId::RbacCanI]).expect_pass(&[CheckId::TcpConnect]);
    }

    #[test]
    fn report_is_found_after_log_lines() {
        let stdout = "e2e: fail (tcp.connect refused)\n{\"targets\": []}\ntrailing\n";
        assert_eq!(json_report(stdout), Some("{\"targets\": []}"));
        assert!(json_report("no report here\n").is_none());
    }
}
