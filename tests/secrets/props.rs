//! Property tests: random kubeconfigs, variables and server answers carrying fresh canary
//! secrets in every secret position, through random corruption (truncation, re-indentation,
//! wrong types, duplicate keys, odd characters). Asserted for every case: no output (job log,
//! JSON, JUnit; stdout and stderr for the binary) holds a canary or a 12-character fragment of
//! one, the run never panics, the reports are written and parse, and the exit status follows
//! spec §3 (0 without failures, 1 with).
//!
//! Bounded: a fixed case count per property, and a time budget per property after which the
//! remaining cases return at once, so the suite stays well under a minute on 2 cores. Servers
//! are loopback only: every URL is 127.0.0.1 or a name that only this world's hosts file knows
//! (the resolv.conf is empty); corruption never inserts digits, so an address can only become
//! another 127/8 address or an unresolvable name.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

use kube_reach::demo::Pki;
use kube_reach::in_process::Outputs;
use kube_reach::model::Verdict;

use super::hostile::{ALL_ECHOES, run_with_token_file, start_hostile};
use super::outputs::{assert_no_leak, render, report_of};
use super::support::{World, init};

/// Per-property time budget; cases after it pass without running (none at all fails).
const BUDGET: Duration = Duration::from_secs(12);

/// A property's time budget and case count: cases after [`BUDGET`] return at once, and the
/// count and time are printed when the property ends (`--nocapture` shows them).
struct Budget {
    name: &'static str,
    started: Instant,
    ran: std::cell::Cell<u32>,
}

impl Budget {
    fn start(name: &'static str) -> Budget {
        Budget {
            name,
            started: Instant::now(),
            ran: std::cell::Cell::new(0),
        }
    }

    /// Whether one more case may run.
    fn admit(&self) -> bool {
        let admitted = self.started.elapsed() <= BUDGET;
        self.ran.set(self.ran.get() + u32::from(admitted));
        admitted
    }
}

impl Drop for Budget {
    /// Prints the count and time, and fails a property none of whose cases ran (a budget spent
    /// before the first case, by a slow machine or a slow setup, would otherwise pass it
    /// vacuously). Not while unwinding: a failed case has already failed the test.
    fn drop(&mut self) {
        let ran = self.ran.get();
        eprintln!("{}: {ran} cases in {:?}", self.name, self.started.elapsed());
        if !std::thread::panicking() {
            assert!(ran >= 1, "{}: no case ran within {BUDGET:?}", self.name);
        }
    }
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        max_shrink_iters: 32,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    }
}

/// A fresh canary: a marker and random letters and digits (no word a report would print).
fn canary() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{14,22}".prop_map(|s| format!("Cq{s}"))
}

/// The secrets of one kubeconfig, one canary per position.
#[derive(Debug, Clone)]
struct Secrets {
    token: String,
    key_data: String,
    password: String,
    client_secret: String,
    refresh_token: String,
    id_token: String,
    exec_env: String,
    proxy_password: String,
    query_token: String,
    file_token: String,
}

impl Secrets {
    fn all(&self) -> Vec<&str> {
        vec![
            &self.token,
            &self.key_data,
            &self.password,
            &self.client_secret,
            &self.refresh_token,
            &self.id_token,
            &self.exec_env,
            &self.proxy_password,
            &self.query_token,
            &self.file_token,
        ]
    }
}

fn secrets() -> impl Strategy<Value = Secrets> {
    proptest::collection::vec(canary(), 10).prop_map(|c| Secrets {
        token: c[0].clone(),
        key_data: c[1].clone(),
        password: c[2].clone(),
        client_secret: c[3].clone(),
        refresh_token: c[4].clone(),
        id_token: c[5].clone(),
        exec_env: c[6].clone(),
        proxy_password: c[7].clone(),
        query_token: c[8].clone(),
        file_token: c[9].clone(),
    })
}

/// Characters inserted by corruption: YAML and URL syntax, whitespace, control and non-ASCII
/// characters; never a digit (see the module doc).
const ODD: &[&str] = &[
    "\t", "\"", "'", "{", "}", "[", "]", ":", "#", "?", "/", "@", " ", "\n", "\0", "é", "…", "&",
    "*", "!", "|", ">", "-", ",", "%",
];

#[derive(Debug, Clone)]
enum Corruption {
    None,
    Truncate(usize),
    Reindent { line: usize, spaces: usize },
    Dedent { line: usize },
    WrongType { line: usize, list: bool },
    Duplicate { line: usize },
    Insert { at: usize, odd: usize },
}

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        Just(Corruption::None),
        any::<usize>().prop_map(Corruption::Truncate),
        (any::<usize>(), 1usize..6)
            .prop_map(|(line, spaces)| Corruption::Reindent { line, spaces }),
        any::<usize>().prop_map(|line| Corruption::Dedent { line }),
        (any::<usize>(), any::<bool>())
            .prop_map(|(line, list)| Corruption::WrongType { line, list }),
        any::<usize>().prop_map(|line| Corruption::Duplicate { line }),
        (any::<usize>(), 0..ODD.len()).prop_map(|(at, odd)| Corruption::Insert { at, odd }),
    ]
}

fn corrupt(text: &str, how: &Corruption) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let pick = |n: usize| n % lines.len().max(1);
    let rebuild = |f: &dyn Fn(usize, &str) -> String| {
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| f(i, l))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    match *how {
        Corruption::None => text.to_string(),
        Corruption::Truncate(at) => {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text[..at].to_string()
        }
        Corruption::Reindent { line, spaces } => rebuild(&|i, l| {
            if i == pick(line) {
                format!("{}{l}", " ".repeat(spaces))
            } else {
                l.to_string()
            }
        }),
        Corruption::Dedent { line } => rebuild(&|i, l| {
            if i == pick(line) {
                l.trim_start().to_string()
            } else {
                l.to_string()
            }
        }),
        Corruption::WrongType { line, list } => rebuild(&|i, l| match l.split_once(": ") {
            Some((k, v)) if i == pick(line) => {
                if list {
                    format!("{k}: [{v}, x]")
                } else {
                    format!("{k}: {{a: {v}}}")
                }
            }
            _ => l.to_string(),
        }),
        Corruption::Duplicate { line } => rebuild(&|i, l| {
            if i == pick(line) {
                format!("{l}\n{l}")
            } else {
                l.to_string()
            }
        }),
        Corruption::Insert { at, odd } => {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            format!("{}{}{}", &text[..at], ODD[odd], &text[at..])
        }
    }
}

/// A kubeconfig with every secret position filled; `variant` chooses the user's shape.
fn kubeconfig(s: &Secrets, token_file: &str, variant: u8, as_json: bool) -> String {
    let user = match variant % 5 {
        0 => format!(
            "    token: {}\n    client-key-data: {}\n",
            s.token, s.key_data
        ),
        1 => format!("    username: ci\n    password: {}\n", s.password),
        2 => format!(
            "    auth-provider:\n      name: oidc\n      config:\n        client-secret: {}\n        refresh-token: {}\n        id-token: {}\n",
            s.client_secret, s.refresh_token, s.id_token
        ),
        3 => format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: no-such-plugin\n      env:\n      - name: SECRET\n        value: {}\n",
            s.exec_env
        ),
        _ => format!("    tokenFile: {token_file}\n"),
    };
    if as_json {
        return serde_json::json!({
            "apiVersion": "v1",
            "clusters": [{"name": "c", "cluster": {
                "server": format!("https://127.0.0.1:9/?token={}", s.query_token),
                "proxy-url": format!("http://ci:{}@127.0.0.1:9", s.proxy_password)}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
            "users": [{"name": "u", "user": {"token": s.token, "client-key-data": s.key_data,
                "password": s.password}}],
        })
        .to_string();
    }
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://api.k8s.test:9/?token={q}\n    proxy-url: http://ci:{p}@127.0.0.1:9\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n    namespace: ci\ncurrent-context: c\nusers:\n- name: u\n  user:\n{user}",
        q = s.query_token,
        p = s.proxy_password,
    )
}

/// An in-process run; returns what it wrote.
fn run(world: &World, args: &[String], vars: &[(&str, &str)]) -> Outputs {
    init();
    let mut all = world.base_args();
    all.extend(args.iter().cloned());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(world.run_args_outputs(&all, vars))
}

/// Spec §3: exit 1 when at least one check is `fail` or `error`, else 0; the run's verdict
/// (from which `main` takes the exit status) must agree.
fn assert_exit_follows_spec(outputs: &Outputs) {
    let report = report_of(outputs);
    let failing = report
        .checks
        .iter()
        .chain(report.targets.iter().flat_map(|t| t.checks.iter()))
        .any(|c| c.status.is_failure());
    assert_eq!(
        report.verdict == Verdict::Fail,
        failing,
        "verdict {:?}",
        report.verdict
    );
}

#[test]
fn random_kubeconfigs_never_leak_a_secret() {
    let budget = Budget::start("random_kubeconfigs_never_leak_a_secret");
    proptest!(config(512), |(s in secrets(), how in corruption(), variant in any::<u8>(), as_json in any::<bool>())| {
        if !budget.admit() {
            return Ok(());
        }
        let world = World::new();
        let token_file = world.write("token", &format!("{}\n", s.file_token));
        let text = corrupt(&kubeconfig(&s, &token_file.display().to_string(), variant, as_json), &how);
        let path = world.write("kubeconfig", &text);
        let report = run(&world, &["--kubeconfig".into(), path.display().to_string()], &[]);
        let outputs = render(&report);
        assert_no_leak(&outputs, &s.all());
        assert_exit_follows_spec(&report);
    });
}

#[test]
fn random_variables_never_leak_a_secret() {
    let budget = Budget::start("random_variables_never_leak_a_secret");
    proptest!(config(256), |(s in secrets(), odd in 0..ODD.len(), at in any::<usize>(), legacy in any::<bool>())| {
        if !budget.admit() {
            return Ok(());
        }
        let world = World::new();
        // A password with an odd character at a random place, in the proxy variable.
        let mut password = s.proxy_password.clone();
        password.insert_str(at % password.len(), ODD[odd]);
        let proxy = format!("http://ci:{password}@127.0.0.1:9");
        let kube_url = format!("https://ci:{}@127.0.0.1:9/?token={}", s.password, s.query_token);
        let mut vars = vec![
            ("HTTPS_PROXY", proxy.as_str()),
            ("KUBE_TOKEN", s.token.as_str()),
            ("CI_JOB_TOKEN", s.id_token.as_str()),
            ("GITLAB_CI", "true"),
            ("CI_SERVER_URL", "https://127.0.0.1:9"),
        ];
        let args: Vec<String> = if legacy {
            vars.push(("KUBE_URL", kube_url.as_str()));
            Vec::new()
        } else {
            vec!["--server".into(), "https://api.k8s.test:9".into()]
        };
        let report = run(&world, &args, &vars);
        let outputs = render(&report);
        let fragments: Vec<&str> = password
            .split(ODD[odd])
            .filter(|p| p.len() >= super::outputs::FRAGMENT)
            .collect();
        let mut all = s.all();
        all.extend(fragments);
        assert_no_leak(&outputs, &all);
        assert_exit_follows_spec(&report);
    });
}

#[test]
fn random_server_answers_never_leak_the_token() {
    let budget = Budget::start("random_server_answers_never_leak_the_token");
    init();
    let pki = Pki::generate().expect("pki");
    proptest!(config(128), |(token in canary(), echo in 0..ALL_ECHOES.len(), pad in 0usize..260, whole in any::<bool>())| {
        if !budget.admit() {
            return Ok(());
        }
        let world = World::new();
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let (url, ca) = rt.block_on(start_hostile(ALL_ECHOES[echo], pad, whole, &pki));
        let report = run_with_token_file(&rt, &world, url, &ca, &token);
        assert_no_leak(&render(&report), &[&token]);
    });
}

#[test]
fn random_kubeconfigs_through_the_binary() {
    let budget = Budget::start("random_kubeconfigs_through_the_binary");
    proptest!(config(40), |(s in secrets(), how in corruption(), variant in any::<u8>())| {
        if !budget.admit() {
            return Ok(());
        }
        let world = World::new();
        let token_file = world.write("token", &s.file_token);
        let text = corrupt(&kubeconfig(&s, &token_file.display().to_string(), variant, false), &how);
        let path = world.write("kubeconfig", &text);
        let junit = world.path("junit.xml");
        let json = world.path("report.json");
        let out = world.run_binary(
            Some(&path),
            &["--junit", &junit.display().to_string(), "--json", &json.display().to_string()],
            &[("KUBE_TOKEN", &s.token)],
        );
        let json_text = std::fs::read_to_string(&json).expect("the JSON report is written");
        let junit_text = std::fs::read_to_string(&junit).expect("the JUnit report is written");
        let verdict = crate::report::Report::parse(&json_text).verdict;
        prop_assert!(junit_text.starts_with("<?xml"));
        let want = if verdict == Verdict::Fail { 1 } else { 0 };
        prop_assert_eq!(out.code, Some(want), "exit status against verdict {:?}", verdict);
        let outputs = vec![
            ("stdout", String::from_utf8_lossy(&out.stdout).into_owned()),
            ("stderr", String::from_utf8_lossy(&out.stderr).into_owned()),
            ("json file", json_text),
            ("junit file", junit_text),
        ];
        assert_no_leak(&outputs, &s.all());
    });
}
