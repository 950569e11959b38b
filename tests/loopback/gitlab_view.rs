//! What a person sees of our JUnit in GitLab, read the way GitLab reads it.
//!
//! [`gitlab_cases`] mirrors `Gitlab::Ci::Parsers::Test::Junit#create_test_case` (gitlab-facts
//! §4.2): one suite per job; status by which element is present (`failure`, then `error`, then
//! `skipped`, else success); an element with non-blank text becomes that text and loses its
//! attributes, one with attributes only becomes a Ruby hash dump; a failure's output is its text,
//! then `System Out:` and the `<system-out>`; a passing case keeps no output; a case's key is
//! suite + classname + name. The merge-request widget lists the failed and errored cases of each
//! job by `name` alone (`extensions/test_report/index.vue`, `text: test.name`).
//!
//! The world: one API server reached by name (`api.k8s.test`, from a hosts file made here), two
//! targets on it with the same RBAC denial, and a `--expiry-warn-days` large enough that the
//! certificate's expiry is a warning. Between two runs the name moves from 127.0.0.1 to
//! 127.0.0.2 (both loopback, a second server on the same port), as a load balancer's address
//! does.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use kube_reach::catalogue::CheckId;
use kube_reach::demo::{
    ApiServerHandle, ApiServerOptions, ClientAuth, DEFAULT_SANS, Pki, ProxyMode, TlsClass,
    Transport, apiserver,
};
use kube_reach::model::Status;
use kube_reach::report::junit::RESERVED_TYPES;
use quick_junit::{NonSuccessKind, Report, TestCaseStatus};

use crate::support::*;

/// One test case as GitLab stores it.
#[derive(Debug, Clone)]
struct GitlabCase {
    suite_name: String,
    classname: String,
    name: String,
    status: &'static str,
    /// What "View details" shows; `None` for a passing case (GitLab keeps nothing).
    output: Option<String>,
    execution_time: f64,
}

impl GitlabCase {
    /// GitLab's `key`: `sha256("#{suite_name}_#{classname}_#{name}")`; the hash adds nothing here.
    fn key(&self) -> (String, String, String) {
        (
            self.suite_name.clone(),
            self.classname.clone(),
            self.name.clone(),
        )
    }
}

/// What the XML-to-hash conversion leaves of a status element: its text when it has any,
/// else a dump of its attributes (shown as is), else nothing.
fn element_value(text: Option<&str>, message: Option<&str>, ty: Option<&str>) -> Option<String> {
    match text.filter(|t| !t.trim().is_empty()) {
        Some(text) => Some(text.to_string()),
        None => {
            let attrs: Vec<String> = [("message", message), ("type", ty)]
                .iter()
                .filter_map(|(k, v)| v.map(|v| format!("\"{k}\"=>\"{v}\"")))
                .collect();
            (!attrs.is_empty()).then(|| format!("{{{}}}", attrs.join(", ")))
        }
    }
}

/// The test cases of one JUnit file as GitLab's parser keeps them (later duplicates overwrite
/// earlier ones, as GitLab's hash per status does).
fn gitlab_cases(xml: &str) -> Vec<GitlabCase> {
    for piece in xml.split(" type=\"").skip(1) {
        let value = &piece[..piece.find('"').expect("closing quote")];
        assert!(
            !RESERVED_TYPES.iter().any(|w| w.eq_ignore_ascii_case(value)),
            "type={value} would be typecast or refused by GitLab"
        );
    }
    let report = Report::deserialize_from_str(xml).expect("JUnit parses");
    let mut cases: Vec<GitlabCase> = Vec::new();
    for suite in &report.test_suites {
        for case in &suite.test_cases {
            let system_out = case.system_out.as_ref().map(|s| s.to_string());
            let with_system_out = |body: Option<String>| {
                let parts: Vec<String> = body
                    .into_iter()
                    .chain(system_out.clone().map(|o| format!("System Out:\n\n{o}")))
                    .collect();
                Some(parts.join("\n\n"))
            };
            let (status, output) = match &case.status {
                TestCaseStatus::Success { .. } => ("success", None),
                TestCaseStatus::NonSuccess {
                    kind,
                    message,
                    ty,
                    description,
                    ..
                } => {
                    let body =
                        element_value(description.as_deref(), message.as_deref(), ty.as_deref());
                    let status = match kind {
                        NonSuccessKind::Failure => "failed",
                        NonSuccessKind::Error => "error",
                    };
                    (status, with_system_out(body))
                }
                TestCaseStatus::Skipped {
                    message,
                    ty,
                    description,
                } => (
                    "skipped",
                    element_value(description.as_deref(), message.as_deref(), ty.as_deref()),
                ),
            };
            let gitlab_case = GitlabCase {
                suite_name: suite.name.to_string(),
                classname: case
                    .classname
                    .as_ref()
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                name: case.name.to_string(),
                status,
                output,
                execution_time: case.time.map_or(0.0, |t| t.as_secs_f64()),
            };
            cases.retain(|c| c.key() != gitlab_case.key());
            cases.push(gitlab_case);
        }
    }
    cases
}

/// The merge-request widget's rows: the names of the failed and errored cases.
fn widget_rows(cases: &[GitlabCase]) -> Vec<&str> {
    cases
        .iter()
        .filter(|c| c.status == "failed" || c.status == "error")
        .map(|c| c.name.as_str())
        .collect()
}

struct AddressMove {
    _first: ApiServerHandle,
    _second: ApiServerHandle,
    port: u16,
    ca_pem: String,
}

/// The same API server identity on 127.0.0.1:P and 127.0.0.2:P.
async fn servers_on_two_loopback_addresses() -> AddressMove {
    let pki = Pki::generate().expect("pki");
    let id = pki
        .server_identity(TlsClass::Good, DEFAULT_SANS)
        .expect("identity");
    let config = || Transport::Tls(id.server_config(&ClientAuth::None).expect("server config"));
    let first = apiserver::start(localhost(), config(), ApiServerOptions::default())
        .await
        .expect("server on 127.0.0.1");
    let port = first.addr().port();
    let second = apiserver::start(
        SocketAddr::from(([127, 0, 0, 2], port)),
        config(),
        ApiServerOptions::default(),
    )
    .await
    .expect("server on 127.0.0.2 (same port)");
    AddressMove {
        _first: first,
        _second: second,
        port,
        ca_pem: id.kubeconfig_ca_pem.clone(),
    }
}

/// The servers (on a runtime that must outlive them) and a world with its DNS files.
fn address_move_world() -> (tokio::runtime::Runtime, AddressMove, World) {
    init();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let servers = rt.block_on(servers_on_two_loopback_addresses());
    (rt, servers, World::new())
}

const REQUIREMENT: &str = "create deployments.apps -n prod";

/// Runs the binary against both targets with the hosts file pointing `api.k8s.test` at `ip`,
/// and returns the JUnit file.
fn run_at(world: &World, servers: &AddressMove, ip: &str, extra: &[&str]) -> String {
    run_into(world, servers, ip, JUNIT_FILE, extra)
}

/// [`run_at`] writing the JUnit report to `file` (in the run's folder).
fn run_into(world: &World, servers: &AddressMove, ip: &str, file: &str, extra: &[&str]) -> String {
    world.write("hosts", &format!("{ip} api.k8s.test\n"));
    let url = format!("https://api.k8s.test:{}", servers.port);
    let kc = kubeconfig(
        &[
            Ctx::new("alpha", url.clone(), &servers.ca_pem, FORBIDDEN),
            Ctx::new("beta", url, &servers.ca_pem, FORBIDDEN),
        ],
        None,
    );
    let path = world.write("kubeconfig", &kc);
    // The same file name in every run (as in a job's `artifacts:reports:junit`), one folder
    // per run: the suite names carry the file's name, never its folder.
    let dir = world.path(ip);
    std::fs::create_dir_all(&dir).expect("run folder");
    let junit = dir.join(file);
    let junit_arg = junit.display().to_string();
    let mut args = vec![
        "--junit",
        &junit_arg,
        "--require",
        REQUIREMENT,
        "--expiry-warn-days",
        "100000",
    ];
    args.extend_from_slice(extra);
    let out = world.run_binary(Some(&path), &args, &[]);
    assert_eq!(
        out.code,
        Some(1),
        "the RBAC denial fails the run:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::read_to_string(&junit).expect("junit written")
}

/// The JUnit file every run of [`run_at`] writes (in a folder of its own).
const JUNIT_FILE: &str = "junit.xml";

fn case<'c>(cases: &'c [GitlabCase], target: &str, check: &str) -> &'c GitlabCase {
    let suite = format!("{target} ({JUNIT_FILE})");
    cases
        .iter()
        .find(|c| c.suite_name == suite && c.name.starts_with(&format!("{target}: {check}")))
        .unwrap_or_else(|| panic!("no {check} case for {target}: {cases:#?}"))
}

/// Two kube-reach runs in one job write two JUnit files (`artifacts:reports:junit: "*.xml"`).
/// GitLab keys a case by suite + classname + name across all of a job's files and keeps one
/// per key, so the files must share no key, or one run's cases overwrite the other's (they
/// did: both files named their suites after the targets alone).
#[test]
fn two_junit_files_of_one_job_keep_all_their_cases() {
    let (_rt, servers, world) = address_move_world();
    let prod = gitlab_cases(&run_into(&world, &servers, "127.0.0.1", "prod.xml", &[]));
    let staging = gitlab_cases(&run_into(&world, &servers, "127.0.0.1", "staging.xml", &[]));
    assert!(!prod.is_empty());
    let keys: BTreeSet<_> = prod.iter().chain(&staging).map(GitlabCase::key).collect();
    assert_eq!(keys.len(), prod.len() + staging.len(), "{keys:#?}");
}

#[test]
fn gitlab_sees_stable_names_the_target_warnings_and_each_text_once() {
    let (_rt, servers, world) = address_move_world();
    let before = gitlab_cases(&run_at(&world, &servers, "127.0.0.1", &[]));
    let after = gitlab_cases(&run_at(&world, &servers, "127.0.0.2", &[]));

    // The address really changed, and only the text says so.
    let tcp = |cases: &[GitlabCase]| case(cases, "alpha", "tcp.connect").clone();
    assert_eq!(
        tcp(&before).name,
        format!("alpha: tcp.connect api.k8s.test:{}", servers.port)
    );
    assert!(
        !before
            .iter()
            .chain(&after)
            .any(|c| c.name.contains("127.0.0.")),
        "no observed address in any name"
    );
    let passed_text = |cases: &[GitlabCase]| {
        // A passing tcp.connect keeps no output in GitLab; the JSON/system-out has the address.
        assert_eq!(tcp(cases).status, "success");
        assert!(tcp(cases).output.is_none());
    };
    passed_text(&before);
    passed_text(&after);

    // Names identical across the two runs: GitLab compares runs by these keys.
    let keys = |cases: &[GitlabCase]| cases.iter().map(GitlabCase::key).collect::<BTreeSet<_>>();
    assert_eq!(
        keys(&before),
        keys(&after),
        "a moved address must not rename tests"
    );
    assert_eq!(before.len(), after.len());

    for cases in [&before, &after] {
        // The widget: one row per target for the same denial, each naming its target.
        let rows = widget_rows(cases);
        let denial = format!("rbac.can-i {REQUIREMENT}");
        let alpha = format!("alpha: {denial}");
        let beta = format!("beta: {denial}");
        assert!(rows.contains(&alpha.as_str()), "{rows:?}");
        assert!(rows.contains(&beta.as_str()), "{rows:?}");
        let unique: BTreeSet<&&str> = rows.iter().collect();
        assert_eq!(unique.len(), rows.len(), "identical widget rows: {rows:?}");

        // "View details" of a failure: the details once, no `System Out:` repeat.
        for failed in cases.iter().filter(|c| c.status == "failed") {
            let output = failed.output.as_deref().expect("a failure has text");
            assert!(!output.contains("System Out:"), "{output}");
            assert!(!output.starts_with('{'), "a hash dump: {output}");
            for paragraph in output.split("\n\n").filter(|p| p.len() > 20) {
                assert_eq!(
                    output.matches(paragraph).count(),
                    1,
                    "repeated in {}: {paragraph}",
                    failed.name
                );
            }
            assert!(output.contains("Fix: "), "{output}");
        }

        // Warnings reach a person: a skipped case whose text says it is a warning.
        let validity = case(cases, "beta", "tls.validity");
        assert_eq!(validity.status, "skipped", "{validity:?}");
        let text = validity.output.as_deref().expect("warning text kept");
        assert!(text.starts_with("warning: "), "{text}");
        assert!(
            text.contains("expiring-soon") && text.contains("Fix: "),
            "{text}"
        );

        // Real durations: the checks that talked to the server took time.
        let handshake = case(cases, "alpha", "tls.handshake");
        assert!(handshake.execution_time > 0.0, "{handshake:?}");
    }
}

#[test]
fn with_fail_on_warn_a_warning_is_a_failure_gitlab_lists() {
    let (_rt, servers, world) = address_move_world();
    let cases = gitlab_cases(&run_at(
        &world,
        &servers,
        "127.0.0.1",
        &["--fail-on", "warn"],
    ));
    let validity = case(&cases, "alpha", "tls.validity");
    assert_eq!(validity.status, "failed", "{validity:?}");
    let text = validity.output.as_deref().expect("text");
    assert!(text.starts_with("warning (fails this job"), "{text}");
    assert!(
        widget_rows(&cases).contains(&validity.name.as_str()),
        "the widget lists it"
    );
}

/// The checks of a target up to the proxy layer by name, as the JUnit names them.
fn check_names(report: &crate::report::Report) -> BTreeSet<String> {
    target(report, "c")
        .checks
        .iter()
        .filter(|c| c.layer().rank() <= CheckId::ProxyTunnel.layer().rank())
        .map(|c| c.key())
        .collect()
}

/// Through a proxy, a run whose proxy answers and one whose proxy is gone list the same tests
/// up to the proxy layer: `proxy.connect` by the proxy's configured address (it used to become
/// `tcp.connect <API server>` when skipped), and a `proxy.tunnel` row (skipped) even when the
/// tunnel could not be tried.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_proxy_renames_no_test() {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = tls_server(&pki, TlsClass::Good, ApiServerOptions::default()).await;
    let proxy = kube_reach::demo::proxy::start_proxy(localhost(), ProxyMode::Allow)
        .await
        .expect("proxy");
    let proxy_addr = proxy.addr();
    let world = World::new();
    let url = format!("https://api.k8s.test:{}", server.addr().port());
    let extra = format!("    proxy-url: \"http://{proxy_addr}\"\n");
    let mut ctx = Ctx::new("c", url.clone(), &ca, GOOD);
    ctx.extra_cluster = &extra;
    let kc = kubeconfig(&[ctx], None);
    let working = world.run(&kc, &[], &[]).await;
    assert_eq!(
        target(&working, "c").verdict,
        kube_reach::model::Verdict::Pass
    );
    drop(proxy);
    let dead = world.run(&kc, &[], &[]).await;
    // The proxy's listener may still be closing (reset rather than refused): the layer is what
    // matters here, the names are what this test is about.
    let cause = target(&dead, "c")
        .root_cause
        .as_ref()
        .expect("a root cause");
    assert_eq!(cause.check, CheckId::ProxyConnect, "{cause:?}");
    let (before, after) = (check_names(&working), check_names(&dead));
    assert!(
        before.contains(&format!("proxy.connect {proxy_addr}")),
        "{before:?}"
    );
    assert_eq!(
        before, after,
        "the same tests whether the proxy answers or not"
    );
}

/// Every check that ran records its own duration, and a skipped one records none: in JUnit,
/// where GitLab reads it, a `time` attribute (written exactly when the duration is not zero, so
/// even a check of a few microseconds has one) or none. The JSON's `duration_ms` rounds to
/// milliseconds, too coarse to tell a fast check from one that did not run.
#[tokio::test(flavor = "multi_thread")]
async fn checks_that_ran_have_durations() {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = tls_server(&pki, TlsClass::Good, ApiServerOptions::default()).await;
    let world = World::new();
    let url = format!("https://api.k8s.test:{}", server.addr().port());
    let healthy = Ctx::new("c", url.clone(), &ca, FORBIDDEN);
    let outputs = world
        .run_outputs(
            &kubeconfig(&[healthy], None),
            &["--require", REQUIREMENT],
            &[],
        )
        .await;
    let report = crate::report::Report::parse(&outputs.json);
    let times = case_times(&outputs.junit);
    let t = target(&report, "c");
    for id in [
        CheckId::DnsResolve,
        CheckId::TcpConnect,
        CheckId::TlsHandshake,
        CheckId::HttpVersion,
        CheckId::HttpHealth,
        CheckId::AuthWhoami,
        CheckId::RbacCanI,
    ] {
        let check = t
            .checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no {}: {:#?}", id.as_str(), t.checks));
        assert_eq!(
            timed(&times, check),
            [true],
            "{} ran but has no duration: {times:?}",
            check.key()
        );
    }
    let dead = kube_reach::demo::dead_address().expect("dead");
    let refused = Ctx::new("c", format!("https://{dead}"), &ca, GOOD);
    let outputs = world
        .run_outputs(&kubeconfig(&[refused], None), &[], &[])
        .await;
    let report = crate::report::Report::parse(&outputs.json);
    let times = case_times(&outputs.junit);
    let skipped: Vec<_> = target(&report, "c")
        .checks
        .iter()
        .filter(|c| c.status == Status::Skip)
        .collect();
    // A refused connection skips the layers above it: there are skip rows to look at.
    assert!(!skipped.is_empty(), "no skip rows");
    for check in skipped {
        assert!(
            timed(&times, check).iter().all(|timed| !timed),
            "{} did not run: {times:?}",
            check.key()
        );
    }
}

/// Each case of target `c` in `xml`: its name without the target, and whether it has a `time`.
fn case_times(xml: &str) -> Vec<(String, bool)> {
    let report = Report::deserialize_from_str(xml).expect("JUnit parses");
    report
        .test_suites
        .iter()
        .flat_map(|suite| &suite.test_cases)
        .filter_map(|case| {
            let name = case.name.as_str().strip_prefix("c: ")?;
            Some((name.to_string(), case.time.is_some()))
        })
        .collect()
}

/// Whether the cases of `check`'s id have a `time` (JUnit names a case by the configured
/// subject, the JSON by the observed one, so the id is what they share).
fn timed(times: &[(String, bool)], check: &crate::report::Check) -> Vec<bool> {
    let id = check.id.as_str();
    let of_id = |name: &str| name == id || name.starts_with(&format!("{id} "));
    times
        .iter()
        .filter(|(name, _)| of_id(name))
        .map(|(_, timed)| *timed)
        .collect()
}
