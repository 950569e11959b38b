//! The binary end to end: exit statuses, JUnit against the XSD with unique names, JSON shape,
//! and canary secrets absent from every output.

use std::collections::HashSet;

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::demo::{ApiServerOptions, Pki, TlsClass};
use kube_reach::model::{TargetKind, Verdict};

use crate::support::*;

#[test]
fn bad_flags_and_unreadable_require_files_exit_2() {
    let world = World::new();
    let out = world.run_binary(None, &["--no-such-flag"], &[]);
    assert_eq!(out.code, Some(2));
    let out = world.run_binary(None, &["--require-file", "/nonexistent/require.txt"], &[]);
    assert_eq!(out.code, Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/require.txt"));
    let out = world.run_binary(None, &["--require", "create"], &[]);
    assert_eq!(out.code, Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected"));
}

#[test]
fn no_kubeconfig_fails_with_a_report_and_exit_1() {
    let world = World::new();
    let json = world.path("r.json");
    let out = world.run_binary(
        None,
        &["--json", &json.display().to_string()],
        &[("HOME", "/nonexistent")],
    );
    assert_eq!(
        out.code,
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = Report::parse(&std::fs::read_to_string(&json).expect("json written"));
    assert_eq!(v.verdict, Verdict::Fail);
    assert!(v.checks.iter().any(|c| c.reason == Some(Reason::NotSet)));
}

#[test]
fn an_unwritable_report_path_exits_3_but_the_other_reports_are_written() {
    let world = World::new();
    let json = world.path("r.json");
    let out = world.run_binary(
        None,
        &[
            "--junit",
            "/proc/kube-reach/forbidden.xml",
            "--json",
            &json.display().to_string(),
        ],
        &[("HOME", "/nonexistent")],
    );
    assert_eq!(out.code, Some(3));
    assert!(json.exists(), "the JSON report must still be written");
}

fn run_mixed_cluster(
    world: &World,
    rt: &tokio::runtime::Runtime,
    canary: &str,
) -> (Finished, String, String) {
    let pki = Pki::generate().expect("pki");
    let (good, ca) = rt.block_on(tls_server(
        &pki,
        TlsClass::Good,
        ApiServerOptions::default(),
    ));
    let (expired, ca_expired) = rt.block_on(tls_server(
        &pki,
        TlsClass::Expired,
        ApiServerOptions::default(),
    ));
    let kc = kubeconfig(
        &[
            Ctx::new("good", good.url(), &ca, GOOD),
            Ctx::new("bad-token", good.url(), &ca, canary),
            Ctx::new("expired", expired.url(), &ca_expired, canary),
        ],
        None,
    );
    let path = world.write("kubeconfig", &kc);
    let junit = world.path("out/junit.xml");
    let json = world.path("out/report.json");
    let out = world.run_binary(
        Some(&path),
        &[
            "--junit",
            &junit.display().to_string(),
            "--json",
            &json.display().to_string(),
            "--color",
            "always",
        ],
        &[
            ("GITLAB_CI", "true"),
            ("CI_JOB_TOKEN", "job-token-canary-77"),
        ],
    );
    let junit = std::fs::read_to_string(junit).expect("junit written");
    let json = std::fs::read_to_string(json).expect("json written");
    (out, junit, json)
}

#[test]
fn reports_are_valid_and_leak_no_secret() {
    init();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let world = World::new();
    let canary = "tok-canary-6f1d2a9e";
    let (out, junit, json) = run_mixed_cluster(&world, &rt, canary);
    assert_eq!(out.code, Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (name, text) in [
        ("stdout", &*stdout),
        ("stderr", &*stderr),
        ("junit", &junit),
        ("json", &json),
    ] {
        assert!(!text.contains(canary), "token canary in {name}");
        assert!(!text.contains("job-token-canary-77"), "job token in {name}");
    }
    // GitLab collapsible sections and colour in the job log.
    assert!(
        stdout.contains("section_start:") && stdout.contains("\x1b["),
        "{stdout}"
    );

    // JSON: spec §3 shape.
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    for key in [
        "tool",
        "started_at",
        "duration_ms",
        "verdict",
        "targets",
        "environment",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    let report = Report::parse(&json);
    let expired = report.target("expired");
    let cause = expired.root_cause.map(|c| (c.check, c.reason));
    assert_eq!(cause, Some((CheckId::TlsValidity, Reason::Expired)));
    let good = report.target("good");
    assert!(good.root_cause.is_none());
    // GITLAB_CI is set, so the loopback server is a warning, not a failure.
    assert_eq!(good.verdict, Verdict::Warn);

    // JUnit: unique (classname, name), reason codes as type, schema-valid.
    let mut seen = HashSet::new();
    for case in junit.split("<testcase ").skip(1) {
        let attr = |a: &str| {
            case.split(&format!("{a}=\""))
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        assert!(
            seen.insert((attr("classname"), attr("name"))),
            "duplicate test case {} / {}",
            attr("classname"),
            attr("name")
        );
    }
    assert!(
        junit.contains("type=\"expired\"") && junit.contains("type=\"unauthorized\""),
        "{junit}"
    );
    let xsd = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/junit-10.xsd");
    let xml = world.write("check.xml", &junit);
    // xmllint is needed (apt-get install libxml2-utils).
    let mut lint = std::process::Command::new("xmllint");
    lint.args(["--noout", "--schema", xsd]).arg(&xml);
    let (code, _, stderr) = crate::child::run_bounded(lint, std::time::Duration::from_secs(60));
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn healthy_exits_0_and_fail_on_warn_turns_a_warning_into_1() {
    init();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pki = Pki::generate().expect("pki");
    let (server, ca) = rt.block_on(tls_server(
        &pki,
        TlsClass::Good,
        ApiServerOptions::default(),
    ));
    let world = World::new();
    let path = world.write(
        "kubeconfig",
        &kubeconfig(&[Ctx::new("c", server.url(), &ca, GOOD)], None),
    );
    let out = world.run_binary(Some(&path), &["--json", "-"], &[]);
    assert_eq!(
        out.code,
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    assert_eq!(
        Report::parse(&stdout).verdict,
        Verdict::Pass,
        "stdout is the JSON report"
    );
    // A certificate expiring within --expiry-warn-days is a warning: exit 0, or 1 with --fail-on warn.
    let out = world.run_binary(Some(&path), &["--expiry-warn-days", "400"], &[]);
    assert_eq!(out.code, Some(0));
    let out = world.run_binary(
        Some(&path),
        &["--expiry-warn-days", "400", "--fail-on", "warn"],
        &[],
    );
    assert_eq!(out.code, Some(1));
}

#[test]
fn the_demo_stays_on_loopback_even_inside_gitlab_ci() {
    let world = World::new();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kube-reach"));
    cmd.args(["demo", "healthy", "--json", "-"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GITLAB_CI", "true")
        .env("CI_SERVER_URL", "https://gitlab.invalid")
        .env("CI_PROJECT_DIR", world.dir.path());
    let (code, stdout, stderr) = crate::child::run_bounded(cmd, std::time::Duration::from_secs(60));
    let out = Finished {
        code,
        stdout: stdout.into_bytes(),
        stderr: stderr.into_bytes(),
    };
    assert_eq!(
        out.code,
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = Report::parse(&String::from_utf8_lossy(&out.stdout));
    assert!(
        v.targets.iter().all(|t| t.kind != TargetKind::Gitlab),
        "the demo must not contact CI_SERVER_URL"
    );
    assert!(
        v.targets
            .iter()
            .all(|t| t.server.starts_with("https://127.0.0.1:"))
    );
    assert_eq!(v.verdict, Verdict::Pass);
}
