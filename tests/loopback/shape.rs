//! Issue 8 (items 3, 4, 6, 7, 8, 9): run-wide root causes in the JSON, the report's shape per
//! target kind whatever fails, severities, and no Rust `Debug` text in what users read.

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::demo::ApiServerOptions;
use kube_reach::demo::apiserver::default_tokens;
use kube_reach::model::{Status, Verdict};

use crate::support::*;

/// The jq expression of spec §3, in Rust: every root cause of the run, run-wide first.
fn all_root_causes(report: &Report) -> Vec<(CheckId, Reason)> {
    let run_wide = report.root_cause.iter();
    let per_target = report.targets.iter().filter_map(|t| t.root_cause.as_ref());
    run_wide
        .chain(per_target)
        .map(|c| (c.check, c.reason))
        .collect()
}

/// A kubeconfig whose one context (also the current one) points at a port nothing serves.
fn nowhere(context: &str) -> String {
    kubeconfig(
        &[Ctx::new(context, "https://127.0.0.1:1".into(), "", GOOD)],
        Some(context),
    )
}

fn json_of_run(world: &World, kubeconfig: &str, extra: &[&str]) -> (Option<i32>, Report) {
    let path = world.write("kubeconfig", kubeconfig);
    let json = world.path("r.json");
    let mut args = vec!["--json", json.to_str().expect("utf-8 path")];
    args.extend(extra);
    let out = world.run_binary(Some(&path), &args, &[("HOME", "/nonexistent")]);
    let text = std::fs::read(&json).expect("the JSON report is written");
    let text = String::from_utf8(text).expect("the JSON report is UTF-8");
    (out.code, Report::parse(&text))
}

#[test]
fn run_wide_failures_have_a_top_level_root_cause() {
    let world = World::new();
    let good = nowhere("ctx-a");
    let (code, v) = json_of_run(&world, &good, &["--context", "no-such-context"]);
    assert_eq!(code, Some(1));
    let cause = v.root_cause.map(|c| (c.check, c.reason));
    let want = (CheckId::ConfigKubeconfig, Reason::ContextNotFound);
    assert_eq!(cause, Some(want), "{v:#?}");
    assert_eq!(all_root_causes(&v), [want]);

    let (code, v) = json_of_run(&world, "clusters: [unclosed\n", &[]);
    assert_eq!(code, Some(1));
    let cause = v.root_cause.map(|c| c.reason);
    assert_eq!(cause, Some(Reason::InvalidYaml), "{v:#?}");
    // No target came out of a file that does not parse: the run-wide cause is the only one.
    assert_eq!(
        all_root_causes(&v),
        [(CheckId::ConfigKubeconfig, Reason::InvalidYaml)]
    );
}

#[test]
fn a_passing_run_has_a_null_top_level_root_cause() {
    let world = World::new();
    let text = nowhere("c");
    let (_, v) = json_of_run(&world, &text, &[]);
    assert!(v.root_cause.is_none(), "{:#?}", v.root_cause);
    // The failure is the target's, and the jq expression finds it there.
    assert_eq!(all_root_causes(&v)[0].0, CheckId::TcpConnect);
}

async fn healthy(
    options: ApiServerOptions,
    token: &str,
) -> (Report, kube_reach::demo::ApiServerHandle) {
    run_on_good_server(options, Some(token), true, &[]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_listing_failing_checks_is_a_failure_and_the_root_cause() {
    let options = ApiServerOptions {
        ready: false,
        ..ApiServerOptions::default()
    };
    let (report, _server) = healthy(options, GOOD).await;
    let t = target(&report, "c");
    assert_eq!(t.verdict, Verdict::Fail);
    assert_root_cause(t, CheckId::HttpHealth, Reason::NotReady);
    assert!(evidence_of(t, CheckId::HttpHealth).contains("[-]etcd failed"));
    // Reads still work: auth and RBAC were judged, not skipped.
    assert_has_status(t, CheckId::AuthWhoami, Status::Pass);
}

fn jwt_expiring_in(seconds: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    jwt_with_exp(now.as_secs() + seconds)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_that_expires_within_the_warning_window_warns() {
    let token = jwt_expiring_in(2 * 86_400);
    let mut options = ApiServerOptions::default();
    let user = default_tokens()
        .into_iter()
        .find(|(t, _)| t == GOOD)
        .map(|(_, u)| u)
        .expect("the good user");
    options.tokens.push((token.clone(), user));
    let (report, _server) = healthy(options, &token).await;
    let t = target(&report, "c");
    let creds = t
        .checks
        .iter()
        .find(|c| c.id == CheckId::ConfigCredentials)
        .expect("config.credentials");
    assert_eq!(
        (creds.status, creds.reason),
        (Status::Warn, Some(Reason::TokenExpiring)),
        "{creds:?}"
    );
    assert!(creds.summary.contains("expires in"), "{}", creds.summary);
    // A warning: the cluster works, nothing is a root cause, and the token was accepted.
    assert_eq!(t.verdict, Verdict::Warn, "{:#?}", t.checks);
    assert!(t.root_cause.is_none());
    assert!(
        format!("{report:?}").find(&token).is_none(),
        "the token leaked"
    );
}

/// The variables of a running GitLab CI job whose GitLab is at `server_url`.
fn ci_job(server_url: &str) -> [(&'static str, &str); 4] {
    [
        ("GITLAB_CI", "true"),
        ("CI_SERVER_URL", server_url),
        ("CI_JOB_TOKEN", "job-token-canary"),
        ("CI_JOB_ID", "7"),
    ]
}

/// A port nothing listens on (bound, then released).
fn refused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn ids(t: &Target) -> Vec<&'static str> {
    let mut ids: Vec<&str> = t.checks.iter().map(|c| c.id.as_str()).collect();
    ids.dedup();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gitlab_server_keeps_its_own_rows_when_its_port_is_refused() {
    init();
    let world = World::new();
    let port = refused_port();
    let server_url = format!("https://127.0.0.1:{port}");
    let vars = ci_job(&server_url);
    let text = kubeconfig(
        &[Ctx::new("c", format!("https://127.0.0.1:{port}"), "", GOOD)],
        Some("c"),
    );
    let report = world.run(&text, &[], &vars).await;
    let gitlab = target(&report, "gitlab");
    let rows = ids(gitlab);
    for own in ["gitlab.server", "gitlab.allowed-agents"] {
        let row = gitlab
            .checks
            .iter()
            .find(|c| c.id.as_str() == own)
            .unwrap_or_else(|| panic!("no {own} row: {rows:?}"));
        assert_eq!(row.status, Status::Skip);
        assert!(
            row.blocked_by
                .as_deref()
                .is_some_and(|b| b.starts_with("tcp.connect"))
        );
    }
    for foreign in ["auth.whoami", "rbac.can-i", "http.version"] {
        assert!(
            !rows.contains(&foreign),
            "{foreign} on the GitLab server: {rows:?}"
        );
    }
    assert_root_cause(gitlab, CheckId::TcpConnect, Reason::Refused);
    assert_no_debug_text(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_ci_server_url_is_a_finding_naming_the_variable() {
    init();
    let world = World::new();
    for url in [
        "ftp://gitlab.example.test",
        "https://gitlab.example.test:99999",
    ] {
        let report = world.run(&nowhere("c"), &[], &ci_job(url)).await;
        let gitlab = target(&report, "gitlab");
        assert_root_cause(gitlab, CheckId::ConfigServer, Reason::InvalidUrl);
        assert!(evidence_of(gitlab, CheckId::ConfigServer).contains("CI_SERVER_URL"));
        // Nothing was attempted, and the rows of a GitLab server are still there, blocked.
        let blocker = format!("config.server {url}");
        assert!(
            gitlab.checks.iter().any(|c| c.id == CheckId::GitlabServer
                && c.blocked_by.as_deref() == Some(blocker.as_str())),
            "{:#?}",
            gitlab.checks
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_deadline_the_auth_and_rbac_rows_stay_as_skips() {
    init();
    let listener = tokio::net::TcpListener::bind(localhost())
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Accepts one connection and says nothing: the TLS handshake waits for the deadline.
    let task = tokio::spawn(async move {
        let held =
            tokio::time::timeout(std::time::Duration::from_secs(30), listener.accept()).await;
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        drop(held);
    });
    let world = World::new();
    let report = world
        .run(
            &kubeconfig(&[Ctx::new("c", format!("https://{addr}"), "", GOOD)], None),
            &["--timeout", "30", "--deadline", "1"],
            &[],
        )
        .await;
    task.abort();
    let t = target(&report, "c");
    let rc = t.root_cause.expect("root cause");
    assert_eq!(
        (rc.check, rc.reason),
        (CheckId::TlsHandshake, Reason::Deadline)
    );
    let blocked: Vec<&str> = t
        .checks
        .iter()
        .filter(|c| c.status == Status::Skip)
        .map(|c| c.id.as_str())
        .collect();
    for row in [
        "tls.trust",
        "tls.hostname",
        "tls.validity",
        "http.version",
        "http.health",
    ] {
        assert!(blocked.contains(&row), "{row} missing: {blocked:?}");
    }
    assert!(blocked.contains(&"auth.whoami"), "{blocked:?}");
    assert_eq!(
        blocked.iter().filter(|id| **id == "rbac.can-i").count(),
        15,
        "{blocked:?}"
    );
    assert_no_debug_text(&report);
    for c in t.checks.iter().filter(|c| c.status == Status::Skip) {
        assert_eq!(
            c.blocked_by.as_deref(),
            Some(format!("tls.handshake {addr}").as_str())
        );
    }
}

/// A server that reads each request (at most four connections) and then, with `answer`,
/// writes it and holds the connection open without a word more; without, closes it unanswered.
async fn scripted_server(
    answer: Option<Vec<u8>>,
) -> (tokio::task::JoinHandle<()>, std::net::SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(localhost())
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..4 {
            let accepted =
                tokio::time::timeout(std::time::Duration::from_secs(20), listener.accept()).await;
            let Ok(Ok((mut stream, _))) = accepted else {
                break;
            };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            if let Some(answer) = &answer {
                let _ = stream.write_all(answer).await;
                held.push(stream);
            }
        }
    });
    (task, addr)
}

async fn through_scripted_proxy(answer: Vec<u8>) -> Target {
    init();
    let (task, proxy) = scripted_server(Some(answer)).await;
    let world = World::new();
    let mut ctx = Ctx::new("c", "https://api.k8s.test:6443".into(), "", GOOD);
    let extra = format!("    proxy-url: \"http://{proxy}\"\n");
    ctx.extra_cluster = &extra;
    let report = world.run(&kubeconfig(&[ctx], None), &[], &[]).await;
    task.abort();
    report.targets.into_iter().next().expect("target")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_answering_418_gave_an_http_answer_with_an_unexpected_status() {
    let t =
        through_scripted_proxy(b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n".to_vec())
            .await;
    assert_root_cause(&t, CheckId::ProxyTunnel, Reason::UnexpectedStatus);
    let tunnel = t
        .checks
        .iter()
        .find(|c| c.id == CheckId::ProxyTunnel)
        .expect("tunnel row");
    assert!(tunnel.summary.contains("418"), "{}", tunnel.summary);
    assert!(
        !tunnel
            .why
            .clone()
            .unwrap_or_default()
            .contains("not an HTTP response")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connect_answer_whose_head_never_ends_is_no_tunnel() {
    let mut answer = b"HTTP/1.1 200 Connection established\r\n".to_vec();
    while answer.len() < 20 * 1024 {
        answer.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let t = through_scripted_proxy(answer).await;
    // Before: the 200 counted as a tunnel and the TLS handshake (the API server) was blamed.
    assert_root_cause(&t, CheckId::ProxyTunnel, Reason::NotAProxy);
    assert_has_status(&t, CheckId::TlsHandshake, Status::Skip);
}

/// Every text a user reads (summaries, evidence, fixes, whys) of every row of the run.
fn report_texts(report: &Report) -> Vec<String> {
    let rows = report
        .checks
        .iter()
        .chain(report.targets.iter().flat_map(|t| t.checks.iter()));
    rows.flat_map(|c| {
        let mut texts = vec![c.summary.clone()];
        texts.extend(c.evidence.iter().cloned());
        texts.extend(c.fix.iter().cloned());
        texts.extend(c.why.iter().cloned());
        texts
    })
    .collect()
}

/// Rust `Debug` shapes: enum variants with payloads, options, byte arrays.
fn assert_no_debug_text(report: &Report) {
    for text in report_texts(report) {
        for shape in ["Failed(", "Some(", "Stalled", "Err(", "Ok("] {
            assert!(!text.contains(shape), "Debug text {shape:?} in {text:?}");
        }
        let bytes = text
            .split('[')
            .skip(1)
            .any(|after| after.split(']').next().is_some_and(is_byte_list));
        assert!(!bytes, "a byte array in {text:?}");
    }
}

/// `45, 45, 45`: a list of at least three small numbers.
fn is_byte_list(inner: &str) -> bool {
    let items: Vec<&str> = inner.split(", ").collect();
    items.len() >= 3 && items.iter().all(|i| i.parse::<u8>().is_ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn no_rust_debug_text_reaches_a_report() {
    init();
    let (task, gitlab) = scripted_server(None).await;
    let world = World::new();
    let server_url = format!("http://{gitlab}");
    let vars = ci_job(&server_url);
    // A CA that is truncated PEM (its parse error carries the END line as bytes).
    let truncated_ca = "-----BEGIN CERTIFICATE-----\nMIIB\n";
    let text = kubeconfig(
        &[Ctx::new(
            "c",
            "https://127.0.0.1:1".into(),
            truncated_ca,
            GOOD,
        )],
        Some("c"),
    );
    let report = world.run(&text, &[], &vars).await;
    task.abort();
    let gitlab = target(&report, "gitlab");
    assert!(
        evidence_of(gitlab, CheckId::GitlabServer).contains("GET /api/v4/version: connection"),
        "{:#?}",
        gitlab.checks
    );
    let c = target(&report, "c");
    assert_has_reason(c, CheckId::ConfigTls, Reason::CaInvalid);
    assert_no_debug_text(&report);
}

/// The duration counts from the process start: planning (here slowed by a second with a
/// debug-only failpoint) is part of it.
#[test]
fn the_duration_counts_planning_too() {
    let world = World::new();
    let path = world.write("kubeconfig", &nowhere("c"));
    let json = world.path("r.json");
    let out = world.run_binary(
        Some(&path),
        &["--json", json.to_str().expect("utf-8 path")],
        &[
            ("HOME", "/nonexistent"),
            ("KUBE_REACH_FAILPOINT", "plan-slow"),
        ],
    );
    let text = std::fs::read_to_string(&json).expect("json written");
    let v = Report::parse(&text);
    assert_eq!(
        v.targets.first().map(|t| t.name.as_str()),
        Some("c"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ms = v.duration_ms;
    assert!(
        ms >= 1000,
        "duration {ms} ms leaves out the second spent planning"
    );
}
