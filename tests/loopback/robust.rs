//! Inputs that used to crash, hang or swamp the run (issue 9's crashes and hangs, issue 8.7's
//! input items): each runs the real binary, bounded by the child runner, and asserts the exit
//! status and that the requested report was still written.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::demo::{ApiServerOptions, ClientAuth, Pki, TlsClass, Transport, apiserver};
use kube_reach::model::{MAX_EVIDENCE_CHARS, Status};
use kube_reach::plan::{MAX_REQUIREMENTS, MAX_TARGETS};

use crate::support::{Check, Ctx, GOOD, Report, World, init, kubeconfig, localhost, target};

/// Nothing listens on the discard port of loopback: every connection is refused at once.
const REFUSED: &str = "https://127.0.0.1:9";

/// The phrase every non-regular input file gets.
const FIFO: &str = "not a regular file (a FIFO)";

/// One run of the binary with exactly `args` (no base flags), this world's DNS files unless
/// `args` names its own, and the JSON report at `r.json`.
struct Run {
    code: Option<i32>,
    stderr: String,
    json: Option<Report>,
    json_text: String,
}

fn run(world: &World, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let json_path = world.path("r.json");
    let _ = std::fs::remove_file(&json_path);
    let mut argv: Vec<String> = vec!["--no-in-cluster".into()];
    if !args.contains(&"--deadline") {
        argv.extend(["--deadline".into(), "20".into()]);
    }
    for (flag, file) in [("--resolv-conf", "resolv.conf"), ("--hosts-file", "hosts")] {
        if !args.contains(&flag) {
            argv.extend([flag.to_string(), world.path(file).display().to_string()]);
        }
    }
    if !args.contains(&"--json") {
        argv.extend(["--json".into(), json_path.display().to_string()]);
    }
    argv.extend(args.iter().map(|s| s.to_string()));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kube-reach"));
    cmd.args(&argv)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let (code, _stdout, stderr) = crate::child::run_bounded(cmd, Duration::from_secs(60));
    let json_text = std::fs::read_to_string(&json_path).unwrap_or_default();
    Run {
        code,
        stderr,
        json: (!json_text.is_empty()).then(|| Report::parse(&json_text)),
        json_text,
    }
}

impl Run {
    fn report(&self) -> &Report {
        self.json.as_ref().unwrap_or_else(|| {
            panic!(
                "no JSON report written (exit {:?}): {}",
                self.code, self.stderr
            )
        })
    }

    /// Every check of the report, run-wide and per target.
    fn checks(&self) -> Vec<&Check> {
        let report = self.report();
        let targets = report.targets.iter().flat_map(|t| &t.checks);
        report.checks.iter().chain(targets).collect()
    }

    fn find(&self, id: CheckId, reason: Reason) -> &Check {
        self.checks()
            .into_iter()
            .find(|c| c.id == id && c.reason == Some(reason))
            .unwrap_or_else(|| {
                panic!(
                    "no {} {} in {}",
                    id.as_str(),
                    reason.as_str(),
                    self.json_text
                )
            })
    }
}

fn evidence(check: &Check) -> String {
    check.evidence.join("\n")
}

fn mkfifo(path: &Path) -> PathBuf {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: mkfifo on a NUL-terminated path inside the test's own temp dir.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    path.to_path_buf()
}

fn jwt(claims: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!("{}.{}.c2ln", b64(r#"{"alg":"none"}"#), b64(claims))
}

/// Issue 9: `exp` ≥ 2^63 overflowed `SystemTime` while planning (exit 101, no report).
#[test]
fn config_credentials_jwt_exp_beyond_any_clock_does_not_crash() {
    let world = World::new();
    let token = jwt(r#"{"exp":9223372036854775808,"sub":"x"}"#);
    let kc = kubeconfig(
        &[Ctx {
            token: Some(&token),
            ..Ctx::named("far", REFUSED.into())
        }],
        Some("far"),
    );
    let path = world.write("kubeconfig", &kc);
    let out = run(&world, &["--kubeconfig", &path.display().to_string()], &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let credentials = out
        .checks()
        .into_iter()
        .find(|c| c.id == CheckId::ConfigCredentials)
        .expect("config.credentials row");
    assert_eq!(credentials.status, Status::Pass, "{credentials:?}");
    assert!(
        !out.json_text.contains(&token),
        "the token stays out of the report"
    );
}

/// Flags, variables, and the finding the FIFO must give.
type FifoCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], CheckId, Reason);

/// Issue 9: a panic while planning (the JWT above, on the old code) ended the run with exit
/// 101 and no report. Now it is a run-wide `error`/`internal` row, every requested report is
/// written, and the exit status is 3 (the tool broke). The failpoint exists in debug builds only.
#[test]
fn a_panic_while_planning_still_writes_the_reports() {
    let world = World::new();
    let junit = world.path("r.xml");
    let out = run(
        &world,
        &["--server", REFUSED, "--junit", &junit.display().to_string()],
        &[
            ("KUBE_REACH_FAILPOINT", "plan-panic"),
            ("CI_JOB_TOKEN", "canary-job-token-77"),
        ],
    );
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    let row = out.find(CheckId::ConfigKubeconfig, Reason::Internal);
    assert_eq!(row.status, Status::Error);
    assert!(
        evidence(row).contains("src/guard.rs"),
        "names where: {row:?}"
    );
    let junit = std::fs::read_to_string(&junit).expect("JUnit written");
    assert!(junit.contains("<error"), "{junit}");
    assert!(
        out.stderr.contains("internal error") && !out.stderr.contains("canary-job-token-77"),
        "{}",
        out.stderr
    );
}

/// Issue 9: `--deadline` did not cover planning. A planning stall (a debug-only failpoint that
/// sleeps 30 s) now ends at the deadline with a run-wide `error`/`deadline` row and the reports.
#[test]
fn planning_is_bounded_by_the_deadline() {
    let world = World::new();
    let out = run(
        &world,
        &["--server", REFUSED, "--deadline", "1"],
        &[("KUBE_REACH_FAILPOINT", "plan-hang")],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let row = out.find(CheckId::ConfigKubeconfig, Reason::Deadline);
    assert_eq!(row.status, Status::Error);
    assert!(out.report().targets.is_empty());
}

/// A variable whose value is not UTF-8 (any CI variable can hold such bytes) made
/// `std::env::vars` panic before anything ran: exit 101, no report.
#[test]
fn a_variable_that_is_not_utf8_is_no_crash() {
    use std::os::unix::ffi::OsStringExt;
    let world = World::new();
    let json = world.path("r.json");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kube-reach"));
    cmd.args(["--no-in-cluster", "--server", REFUSED, "--json"])
        .arg(&json)
        .arg("--resolv-conf")
        .arg(world.path("resolv.conf"))
        .arg("--hosts-file")
        .arg(world.path("hosts"))
        .env_clear()
        .env("HOME", "/nonexistent")
        .env(
            "CI_COMMIT_MESSAGE",
            std::ffi::OsString::from_vec(vec![b'x', 0xff, 0xfe]),
        );
    let (code, _, stderr) = crate::child::run_bounded(cmd, Duration::from_secs(60));
    assert_eq!(code, Some(1), "{stderr}");
    let text = std::fs::read_to_string(&json).expect("JSON written");
    Report::parse(&text);
}

/// Issue 9: a FIFO anywhere an input file is read blocked the run forever, with no report.
#[test]
fn fifo_input_files_are_refused_and_the_report_written() {
    let world = World::new();
    let fifo = mkfifo(&world.path("fifo"));
    let fifo = fifo.display().to_string();
    let cases: [FifoCase; 4] = [
        (
            &["--kubeconfig", &fifo],
            &[],
            CheckId::ConfigKubeconfig,
            Reason::Unreadable,
        ),
        (
            &[],
            &[("KUBECONFIG", &fifo)],
            CheckId::ConfigKubeconfig,
            Reason::Unreadable,
        ),
        (
            &["--server", REFUSED, "--token-file", &fifo],
            &[],
            CheckId::ConfigCredentials,
            Reason::TokenFileUnreadable,
        ),
        (
            &["--server", REFUSED, "--ca-file", &fifo],
            &[],
            CheckId::ConfigTls,
            Reason::CaUnreadable,
        ),
    ];
    for (args, vars, id, reason) in cases {
        let out = run(&world, args, vars);
        assert_eq!(out.code, Some(1), "{args:?} {vars:?}: {}", out.stderr);
        let check = format!("{:?}", out.find(id, reason));
        assert!(
            check.contains(FIFO),
            "{args:?}: names the file and what it is: {check}"
        );
        assert!(check.contains(&fifo), "{check}");
    }
    // resolv.conf and the hosts file: the run goes on and says what it could not use.
    let out = run(&world, &["--server", REFUSED, "--resolv-conf", &fifo], &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.json_text.contains(FIFO), "{}", out.json_text);
    let out = run(&world, &["--server", REFUSED, "--hosts-file", &fifo], &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.json_text.contains(FIFO), "{}", out.json_text);
    // A --require-file is the user's own input: a usage error naming it.
    let out = run(&world, &["--server", REFUSED, "--require-file", &fifo], &[]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains(FIFO) && out.stderr.contains(&fifo),
        "{}",
        out.stderr
    );
}

/// Issue 9: a FIFO as `--json` or `--junit` blocked writing the report forever.
#[test]
fn fifo_report_paths_are_usage_errors() {
    let world = World::new();
    let fifo = mkfifo(&world.path("report.fifo")).display().to_string();
    for flag in ["--json", "--junit"] {
        let out = run(&world, &["--server", REFUSED, flag, &fifo], &[]);
        assert_eq!(out.code, Some(2), "{flag}: {}", out.stderr);
        assert!(
            out.stderr.contains(flag) && out.stderr.contains(FIFO),
            "{flag}: {}",
            out.stderr
        );
    }
}

/// Issue 8.7: `--json ""` exited 3 (a write failure) where `--junit ""` exited 2.
#[test]
fn empty_report_paths_exit_2_naming_the_flag() {
    let world = World::new();
    for flag in ["--json", "--junit"] {
        let out = run(&world, &["--server", REFUSED, flag, ""], &[]);
        assert_eq!(out.code, Some(2), "{flag}: {}", out.stderr);
        assert!(out.stderr.contains(flag), "{flag}: {}", out.stderr);
    }
}

/// Issue 8.7: a symlink loop was reported as "no such file".
#[test]
fn config_kubeconfig_symlink_loop_is_named() {
    let world = World::new();
    let (a, b) = (world.path("a"), world.path("b"));
    std::os::unix::fs::symlink(&b, &a).expect("a -> b");
    std::os::unix::fs::symlink(&a, &b).expect("b -> a");
    let out = run(&world, &["--kubeconfig", &a.display().to_string()], &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let check = out.find(CheckId::ConfigKubeconfig, Reason::Unreadable);
    let text = evidence(check);
    assert!(text.contains("symlink loop"), "{text}");
    assert!(!text.contains("no such file"), "{text}");
}

/// Issue 8.7: `KUBECONFIG=":::::"` was reported as "not set".
#[test]
fn config_kubeconfig_names_no_file() {
    let world = World::new();
    let out = run(&world, &[], &[("KUBECONFIG", ":::::")]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let check = out.find(CheckId::ConfigKubeconfig, Reason::NamesNoFile);
    assert!(evidence(check).contains("KUBECONFIG is set"), "{check:?}");
    assert!(
        !out.checks()
            .iter()
            .any(|c| c.reason == Some(Reason::NotSet)),
        "{}",
        out.json_text
    );
}

/// Issue 8.7: garbage namespaces reached the generated RoleBinding YAML.
#[test]
fn namespaces_that_are_not_dns_labels_are_usage_errors() {
    let world = World::new();
    let long = "n".repeat(64);
    let cases: Vec<Vec<&str>> = vec![
        vec!["-n", "a b"],
        vec!["-n", "../x"],
        vec!["--namespace", "Prod"],
        vec!["-n", &long],
        vec!["--require", "get pods -n ../x"],
        vec!["--require", "get pods -n UPPER"],
    ];
    for case in cases {
        let mut args = vec!["--server", REFUSED];
        args.extend(&case);
        let out = run(&world, &args, &[]);
        assert_eq!(out.code, Some(2), "{case:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("DNS-1123 label"),
            "{case:?}: {}",
            out.stderr
        );
        assert!(out.json.is_none(), "nothing ran");
    }
}

/// Issue 8.7: an invalid `--tls-server-name` gave an empty "TLS handshake failed".
#[test]
fn invalid_tls_server_name_is_a_usage_error_before_any_connection() {
    let world = World::new();
    for name in ["bad name!", "", "a..b"] {
        let out = run(
            &world,
            &["--server", REFUSED, "--tls-server-name", name],
            &[],
        );
        assert_eq!(out.code, Some(2), "{name:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("--tls-server-name"),
            "{name:?}: {}",
            out.stderr
        );
    }
    let out = run(
        &world,
        &["--server", REFUSED, "--tls-server-name", "api.k8s.test"],
        &[],
    );
    assert_eq!(out.code, Some(1), "a valid name runs: {}", out.stderr);
}

/// Issue 8.7: the same for a kubeconfig's `tls-server-name`: a `config.tls` finding naming
/// the value, never a handshake failure blaming the server.
#[test]
fn config_tls_invalid_server_name() {
    let world = World::new();
    let kc = kubeconfig(
        &[Ctx {
            token: Some(GOOD),
            extra_cluster: "    tls-server-name: \"bad name!\"\n",
            ..Ctx::named("bad-sni", REFUSED.into())
        }],
        Some("bad-sni"),
    );
    let path = world.write("kubeconfig", &kc);
    let out = run(&world, &["--kubeconfig", &path.display().to_string()], &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let check = out.find(CheckId::ConfigTls, Reason::InvalidServerName);
    assert!(evidence(check).contains("'bad name!'"), "{check:?}");
    assert!(
        !out.checks()
            .iter()
            .any(|c| c.id == CheckId::TlsHandshake && c.status == Status::Fail),
        "{}",
        out.json_text
    );
}

/// Issue 9: a 20,000-context kubeconfig made 20,000 targets (1 GB, 205 MB of JSON).
#[test]
fn config_kubeconfig_too_many_targets() {
    init();
    let world = World::new();
    let names: Vec<String> = (0..MAX_TARGETS + 30).map(|i| format!("c{i:03}")).collect();
    let contexts: Vec<Ctx> = names
        .iter()
        .map(|n| Ctx {
            token: Some(GOOD),
            ..Ctx::named(n, REFUSED.into())
        })
        .collect();
    let path = world.write("kubeconfig", &kubeconfig(&contexts, None));
    let out = run(&world, &["--kubeconfig", &path.display().to_string()], &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(out.report().targets.len(), MAX_TARGETS);
    let check = out.find(CheckId::ConfigKubeconfig, Reason::TooManyTargets);
    assert_eq!(check.status, Status::Warn);
    let text = evidence(check);
    let first_left_out = &names[MAX_TARGETS];
    assert!(text.contains(first_left_out.as_str()), "{text}");
    assert!(text.contains("and 20 more"), "{text}");
}

/// Issue 9: requirements had no cap either.
#[test]
fn rbac_can_i_too_many_requirements() {
    let world = World::new();
    let lines: Vec<String> = (0..MAX_REQUIREMENTS + 17)
        .map(|i| format!("get pods -n ns{i}"))
        .collect();
    world.write("require.txt", &lines.join("\n"));
    let mut args = world.base_args();
    args.extend([
        "--server".into(),
        REFUSED.into(),
        "--require-file".into(),
        world.path("require.txt").display().to_string(),
    ]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let report = rt.block_on(world.run_args(&args, &[]));
    // One rbac.can-i row per requirement kept.
    let kept = report.only_target().checks.iter();
    let kept = kept.filter(|c| c.id == CheckId::RbacCanI).count();
    assert_eq!(kept, MAX_REQUIREMENTS);
    let check = report
        .checks
        .iter()
        .find(|c| c.reason == Some(Reason::TooManyRequirements))
        .expect("a finding says some were left out");
    assert!(
        check.evidence.iter().any(|e| e.contains("and 7 more")),
        "{:?}",
        check.evidence
    );
}

/// Issue 9: a 3,000-name certificate gave one evidence line of 68,000 characters.
#[test]
fn tls_hostname_evidence_of_a_huge_certificate_is_capped() {
    init();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pki = Pki::generate().expect("pki");
    let names: Vec<String> = (0..3000).map(|i| format!("n{i}.x")).collect();
    let sans: Vec<&str> = names.iter().map(String::as_str).collect();
    let id = pki
        .server_identity(TlsClass::Good, &sans)
        .expect("identity");
    let config = id.server_config(&ClientAuth::None).expect("server config");
    let server = rt
        .block_on(apiserver::start(
            localhost(),
            Transport::Tls(config),
            ApiServerOptions::default(),
        ))
        .expect("server");
    let world = World::new();
    let kc = kubeconfig(
        &[Ctx::new("wide", server.url(), &id.kubeconfig_ca_pem, GOOD)],
        Some("wide"),
    );
    let report = rt.block_on(world.run(&kc, &[], &[]));
    let t = target(&report, "wide");
    let hostname = t
        .checks
        .iter()
        .find(|c| c.id == CheckId::TlsHostname)
        .expect("tls.hostname");
    assert!(
        hostname
            .evidence
            .iter()
            .any(|e| e.ends_with("more characters)")),
        "{:?}",
        hostname.evidence
    );
    for c in &t.checks {
        for line in &c.evidence {
            assert!(
                line.chars().count() <= MAX_EVIDENCE_CHARS + 40,
                "{}: {} characters",
                c.key(),
                line.len()
            );
        }
    }
}

/// A careless token file (two values, a pasted line break, a NUL or escape byte, a Windows
/// byte-order mark, bytes that are not UTF-8, nothing at all): before, the token was sent as
/// it was and the run blamed the server (`http.version request-failed: failed to parse header
/// value`, or `auth.whoami unauthorized`). Now `config.credentials token-invalid` names the file
/// and the problem, quotes none of the token, and nothing is sent with it.
#[test]
fn config_credentials_token_that_cannot_be_sent_is_named() {
    let world = World::new();
    let canary = "TokInvalidCanary4c1d9e";
    let cases: [(&str, Vec<u8>, &str); 7] = [
        (
            "two-lines",
            format!("{canary}\n{canary}2\n").into_bytes(),
            "spans 2 lines",
        ),
        (
            "nul",
            format!("abc\0{canary}").into_bytes(),
            "control character (\\u{0})",
        ),
        (
            "escape",
            format!("{canary}\x1b[0m").into_bytes(),
            "control character (\\u{1b})",
        ),
        (
            "bom",
            format!("\u{feff}{canary}\n").into_bytes(),
            "byte-order mark",
        ),
        ("latin1", [canary.as_bytes(), b"\xe9"].concat(), "not UTF-8"),
        (
            "quote",
            format!("\u{201c}{canary}\u{201d}").into_bytes(),
            "outside ASCII",
        ),
        ("empty", b"\n\n".to_vec(), "the token is empty"),
    ];
    for (name, bytes, said) in cases {
        let file = world.path(name);
        std::fs::write(&file, bytes).expect("token file");
        let out = run(
            &world,
            &[
                "--server",
                REFUSED,
                "--token-file",
                &file.display().to_string(),
            ],
            &[],
        );
        assert_eq!(out.code, Some(1), "{name}: {}", out.stderr);
        let check = out.find(CheckId::ConfigCredentials, Reason::TokenInvalid);
        let text = evidence(check);
        assert!(text.contains(said), "{name}: {text}");
        assert!(text.contains(&file.display().to_string()), "{name}: {text}");
        let root = out.report().targets.first().and_then(|t| t.root_cause);
        let check = root.map(|c| c.check);
        assert_eq!(check, Some(CheckId::ConfigCredentials), "{name}: {root:?}");
        assert!(
            !out.json_text.contains("Canary4c1d9e"),
            "{name}: {}",
            out.json_text
        );
    }
    // KUBE_TOKEN is sent as it is: a trailing line break in the variable is named too.
    let token = format!("{canary}\n");
    let vars = [
        ("KUBE_URL", REFUSED),
        ("KUBE_TOKEN", token.as_str()),
        ("GITLAB_CI", "true"),
    ];
    let out = run(&world, &[], &vars);
    let check = out.find(CheckId::ConfigCredentials, Reason::TokenInvalid);
    assert!(evidence(check).contains("KUBE_TOKEN"), "{check:?}");
    assert!(evidence(check).contains("line break"), "{check:?}");
    assert!(!out.json_text.contains("Canary4c1d9e"), "{}", out.json_text);
}

/// A 2 MB kubeconfig whose server URL carries 200,000 short query values (each registered as
/// a possible secret): matching short secrets one by one made the final scrub, which runs
/// after the deadline's reach, quadratic (105 s; the child runner's 60 s bound ends it with no
/// report). Now each string is scanned once: the report is written and holds none of them.
#[test]
fn many_short_registered_secrets_do_not_stall_the_run() {
    let world = World::new();
    let query: Vec<String> = (0..200_000).map(|i| format!("k{i:07}x")).collect();
    let server = format!("{REFUSED}/?{}", query.join("&"));
    let kc = kubeconfig(
        &[Ctx {
            token: Some("t0kenxyz"),
            ..Ctx::named("q", server)
        }],
        Some("q"),
    );
    let path = world.write("kubeconfig", &kc);
    let out = run(
        &world,
        &[
            "--kubeconfig",
            &path.display().to_string(),
            "--deadline",
            "30",
        ],
        &[],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(out.report().verdict, kube_reach::model::Verdict::Fail);
    assert!(!out.json_text.contains("k0123456x"), "a query value leaked");
}

/// 3,000 `--context` names that a 2,000-context kubeconfig does not hold: every one got a
/// finding listing every context and a nearest-name search over all of them, which outran
/// `--deadline` ("nothing was checked"). Now at most `MAX_TARGETS` are reported, the rest
/// counted.
#[test]
fn config_kubeconfig_thousands_of_missing_contexts_are_capped() {
    let world = World::new();
    let names: Vec<String> = (0..2000)
        .map(|i| format!("cluster-context-{i:04}"))
        .collect();
    let contexts: Vec<Ctx> = names
        .iter()
        .map(|name| Ctx {
            ..Ctx::named(name, REFUSED.into())
        })
        .collect();
    let path = world.write("kubeconfig", &kubeconfig(&contexts, None));
    let mut args = vec!["--kubeconfig".to_string(), path.display().to_string()];
    for i in 0..3000 {
        args.extend(["--context".to_string(), format!("missing-context-{i}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&world, &args, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let missing: Vec<_> = out
        .checks()
        .into_iter()
        .filter(|c| c.reason == Some(Reason::ContextNotFound))
        .collect();
    assert_eq!(missing.len(), MAX_TARGETS, "{}", out.stderr);
    let last = evidence(missing[MAX_TARGETS - 1]);
    assert!(last.contains("2900 more requested contexts"), "{last}");
    assert!(evidence(missing[0]).contains("cluster-context-0000"));
}
