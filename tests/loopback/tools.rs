//! `runner.tools`: fake `kubectl` and `helm` scripts on the job's `PATH` print known versions
//! (or hang), and the real engine judges them against the fake API server's `gitVersion`
//! (`v1.31.0-…`) and against the GitLab agent's `/k8s-proxy/` path.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::demo::{ApiServerOptions, Pki, TlsClass};
use kube_reach::model::Status;

use crate::support::*;

/// Writes an executable `name` into `dir` running `body` under /bin/sh.
fn fake_tool(dir: &Path, name: &str, body: &str) {
    executable(dir, name, &format!("#!/bin/sh\n{body}\n"));
}

/// Writes `text` into `dir/name` with the execute bits; returns the path.
fn executable(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn kubectl_printing(dir: &Path, version: &str) {
    let json = format!(r#"{{"clientVersion":{{"major":"1","gitVersion":"{version}"}}}}"#);
    fake_tool(
        dir,
        "kubectl",
        &format!("[ \"$1 $2 $3 $4\" = 'version --client -o json' ] || exit 2\necho '{json}'"),
    );
}

fn tool<'r>(report: &'r Report, name: &str) -> &'r Check {
    report
        .checks
        .iter()
        .find(|c| c.id == CheckId::RunnerTools && c.subject == name)
        .unwrap_or_else(|| panic!("no runner.tools {name}: {:#?}", report.checks))
}

/// The evidence of tool `name`'s result, asserted to be a warning for `reason`.
fn warning_of(report: &Report, name: &str, reason: Reason) -> String {
    let result = tool(report, name);
    assert_eq!(
        (result.status, result.reason),
        (Status::Warn, Some(reason)),
        "{result:#?}"
    );
    result.evidence.join("\n")
}

async fn run_with_path(world: &World, server: String, ca: &str, path: &Path) -> Report {
    let path = path.display().to_string();
    world
        .run(
            &kubeconfig(&[Ctx::new("c", server, ca, GOOD)], Some("c")),
            // Generous: the fake tools answer at once, but a loaded machine may start them late.
            &["--timeout", "10"],
            &[("PATH", &path)],
        )
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn runner_tools_version_skew() {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = tls_server(&pki, TlsClass::Good, ApiServerOptions::default()).await;
    let world = World::new();
    let bin = tempfile::tempdir().expect("bin dir");
    kubectl_printing(bin.path(), "v1.28.4");
    fake_tool(bin.path(), "helm", "echo v3.14.2+g123");
    let report = run_with_path(&world, server.url(), &ca, bin.path()).await;
    let evidence = warning_of(&report, "kubectl", Reason::VersionSkew);
    assert!(
        evidence.contains("v1.28.4") && evidence.contains("v1.31.0"),
        "{evidence}"
    );
    let fix = tool(&report, "kubectl").fix.as_deref();
    assert!(fix.is_some_and(|f| f.contains("one minor")), "{fix:?}");
    assert_eq!(tool(&report, "helm").status, Status::Pass);
    // A warning never fails the target.
    assert!(target(&report, "c").root_cause.is_none());

    kubectl_printing(bin.path(), "v1.30.1");
    let report = run_with_path(&world, server.url(), &ca, bin.path()).await;
    assert_eq!(
        tool(&report, "kubectl").status,
        Status::Pass,
        "within ±1 minor"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn runner_tools_known_bad_version_through_the_agent() {
    init();
    let world = World::new();
    let bin = tempfile::tempdir().expect("bin dir");
    kubectl_printing(bin.path(), "v1.27.1");
    fake_tool(bin.path(), "helm", "echo v3.12.0+gc9f554d");
    // An agent target (the /k8s-proxy/ path) on a port where nothing listens: the tool
    // versions are judged whatever the connection does.
    let agent = "https://127.0.0.1:1/k8s-proxy/".to_string();
    let report = run_with_path(&world, agent, "", bin.path()).await;
    for name in ["kubectl", "helm"] {
        let r = tool(&report, name);
        assert_eq!(
            (r.status, r.reason),
            (Status::Warn, Some(Reason::KnownBadVersion)),
            "{r:#?}"
        );
        assert!(r.evidence.join("\n").contains("426"), "{r:#?}");
    }
    // The same versions against a direct target break nothing.
    let report = run_with_path(&world, "https://127.0.0.1:1".into(), "", bin.path()).await;
    assert_eq!(tool(&report, "kubectl").status, Status::Pass);
    assert_eq!(tool(&report, "helm").status, Status::Pass);
}

#[tokio::test(flavor = "multi_thread")]
async fn runner_tools_hanging_tool_is_killed_at_the_timeout() {
    init();
    let world = World::new();
    let bin = tempfile::tempdir().expect("bin dir");
    fake_tool(bin.path(), "kubectl", "exec /bin/sleep 30");
    let report = world
        .run(
            &kubeconfig(
                &[Ctx::new("c", "https://127.0.0.1:1".into(), "", GOOD)],
                Some("c"),
            ),
            &["--timeout", "1"],
            &[("PATH", &bin.path().display().to_string())],
        )
        .await;
    let kubectl = tool(&report, "kubectl");
    assert_eq!(
        (kubectl.status, kubectl.reason),
        (Status::Warn, Some(Reason::Timeout)),
        "{kubectl:#?}"
    );
    let helm = tool(&report, "helm");
    assert!(helm.summary.contains("not on PATH"), "{helm:#?}");
}

/// A kubectl that cannot start (its interpreter is missing) is a warning naming why: it used to
/// pass as "could not be run", which the deploy step then tripped over.
#[tokio::test(flavor = "multi_thread")]
async fn runner_tools_tool_that_cannot_start_warns_saying_why() {
    init();
    let world = World::new();
    let bin = tempfile::tempdir().expect("bin dir");
    let path = executable(bin.path(), "kubectl", "#!/nonexistent/interpreter\n");
    let report = run_with_path(&world, "https://127.0.0.1:1".into(), "", bin.path()).await;
    let evidence = warning_of(&report, "kubectl", Reason::ToolCannotRun);
    assert!(
        evidence.contains(&path.display().to_string()) && evidence.contains("No such file"),
        "{evidence}"
    );
}
