//! Kubeconfig discovery, merge and context selection, and bad input: kubectl's rules, each
//! with a clear `config.kubeconfig` finding instead of a crash.

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::targets::{DiscoveryOptions, discover};

use crate::support::*;

fn opts(kubeconfig: &str) -> DiscoveryOptions {
    DiscoveryOptions {
        kubeconfig: Some(kubeconfig.to_string()),
        in_cluster: Some(false),
        ..Default::default()
    }
}

fn names(d: &kube_reach::targets::Discovery) -> Vec<String> {
    d.specs.iter().map(|s| s.name.clone()).collect()
}

fn global_reason(d: &kube_reach::targets::Discovery) -> Option<Reason> {
    d.checks
        .iter()
        .find(|c| c.id == CheckId::ConfigKubeconfig && c.status.is_failure())
        .and_then(|c| c.reason)
}

const A: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: shared\n  cluster: {server: \"https://a.example:6443\"}\nusers:\n- name: u\n  user: {token: a}\ncontexts:\n- name: ctx-a\n  context: {cluster: shared, user: u}\n- name: both\n  context: {cluster: shared, user: u, namespace: from-a}\ncurrent-context: ctx-a\n";
const B: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: shared\n  cluster: {server: \"https://b.example:6443\"}\n- name: only-b\n  cluster: {server: \"https://only-b.example\"}\nusers:\n- name: u\n  user: {token: b}\ncontexts:\n- name: ctx-b\n  context: {cluster: only-b, user: u}\n- name: both\n  context: {cluster: only-b, user: u, namespace: from-b}\ncurrent-context: ctx-b\n";

#[test]
fn merge_first_file_wins_per_name_and_for_current_context() {
    let world = World::new();
    let a = world.write("a.yaml", A);
    let b = world.write("b.yaml", B);
    let list = format!("{}:{}", a.display(), b.display());
    let env = world.env(&[]);
    let d = discover(&opts(&list), &env);
    assert_eq!(
        names(&d),
        vec!["ctx-a"],
        "current-context comes from the first file that sets it"
    );
    let d = discover(
        &DiscoveryOptions {
            contexts: vec!["both".into(), "ctx-b".into()],
            ..opts(&list)
        },
        &env,
    );
    assert_eq!(names(&d), vec!["both", "ctx-b"]);
    let both = &d.specs[0];
    assert_eq!(
        both.namespace.as_deref(),
        Some("from-a"),
        "context `both` comes from the first file"
    );
    assert_eq!(
        both.server.as_deref(),
        Some("https://a.example:6443"),
        "cluster `shared` comes from the first file"
    );
    assert_eq!(d.specs[1].server.as_deref(), Some("https://only-b.example"));
    // Reversed order, reversed winners.
    let reversed = format!("{}:{}", b.display(), a.display());
    let d = discover(
        &DiscoveryOptions {
            contexts: vec!["both".into()],
            ..opts(&reversed)
        },
        &env,
    );
    assert_eq!(d.specs[0].namespace.as_deref(), Some("from-b"));
}

#[test]
fn selection_order_is_flag_then_kube_context_then_current_then_all() {
    let world = World::new();
    let a = world.write("a.yaml", A).display().to_string();
    let with_var = world.env(&[("KUBE_CONTEXT", "both")]);
    assert_eq!(names(&discover(&opts(&a), &with_var)), vec!["both"]);
    let flag = DiscoveryOptions {
        contexts: vec!["ctx-a".into()],
        ..opts(&a)
    };
    assert_eq!(names(&discover(&flag, &with_var)), vec!["ctx-a"]);
    let no_current = world
        .write("nc.yaml", &A.replace("current-context: ctx-a\n", ""))
        .display()
        .to_string();
    let d = discover(&opts(&no_current), &world.env(&[]));
    assert_eq!(
        names(&d),
        vec!["ctx-a", "both"],
        "no current context: every context"
    );
    assert!(
        d.checks
            .iter()
            .any(|c| c.reason == Some(Reason::NoCurrentContext))
    );
}

#[test]
fn unknown_context_lists_the_existing_ones_and_suggests_the_closest() {
    let world = World::new();
    let a = world.write("a.yaml", A).display().to_string();
    let d = discover(
        &DiscoveryOptions {
            contexts: vec!["ctx-aa".into()],
            ..opts(&a)
        },
        &world.env(&[]),
    );
    let c = d
        .checks
        .iter()
        .find(|c| c.reason == Some(Reason::ContextNotFound))
        .expect("context-not-found");
    assert!(
        c.evidence.join(" ").contains("ctx-a, both"),
        "{:?}",
        c.evidence
    );
    assert!(c.fix.as_deref().unwrap_or_default().contains("'ctx-a'"));
}

#[test]
fn missing_files_in_the_kubeconfig_list_are_skipped_like_kubectl() {
    let world = World::new();
    let a = world.write("a.yaml", A);
    let list = format!("{}:{}", world.path("nope.yaml").display(), a.display());
    let env = world.env(&[("KUBECONFIG", &list)]);
    let d = discover(
        &DiscoveryOptions {
            in_cluster: Some(false),
            ..Default::default()
        },
        &env,
    );
    assert_eq!(names(&d), vec!["ctx-a"]);
}

#[test]
fn bad_input_gets_a_named_finding() {
    let world = World::new();
    let env = world.env(&[]);
    let cases: Vec<(&str, &[u8], Reason)> = vec![
        (
            "tabs.yaml",
            b"apiVersion: v1\nclusters:\n\t- name: x\n",
            Reason::InvalidYaml,
        ),
        ("list.yaml", b"- just\n- a list\n", Reason::InvalidYaml),
        (
            "binary.yaml",
            &[0xff, 0xfe, 0x00, 0x41],
            Reason::InvalidYaml,
        ),
        ("empty.yaml", b"", Reason::NoContexts),
        (
            "nocontexts.yaml",
            b"apiVersion: v1\nkind: Config\nclusters: []\n",
            Reason::NoContexts,
        ),
    ];
    for (name, bytes, reason) in cases {
        let path = world.path(name);
        std::fs::write(&path, bytes).expect("write");
        let d = discover(&opts(&path.display().to_string()), &env);
        assert_eq!(global_reason(&d), Some(reason), "{name}: {:?}", d.checks);
        assert!(d.specs.is_empty(), "{name}");
    }
    let d = discover(
        &opts(&world.path("absent.yaml").display().to_string()),
        &env,
    );
    assert_eq!(global_reason(&d), Some(Reason::Unreadable));
    let c = d
        .checks
        .iter()
        .find(|c| c.reason == Some(Reason::Unreadable))
        .expect("unreadable");
    assert!(c.subject.contains("absent.yaml") || c.evidence.join(" ").contains("absent.yaml"));
}

#[test]
fn invalid_yaml_reports_line_and_column() {
    let world = World::new();
    let path = world.write(
        "bad.yaml",
        "apiVersion: v1\nclusters:\n- name: x\n  cluster: {server: [unclosed\n",
    );
    let d = discover(&opts(&path.display().to_string()), &world.env(&[]));
    let c = d
        .checks
        .iter()
        .find(|c| c.reason == Some(Reason::InvalidYaml))
        .expect("invalid-yaml");
    let text = c.evidence.join(" ");
    assert!(
        text.contains("line") || text.contains(":4:"),
        "no position in {text}"
    );
}

#[test]
fn nothing_found_is_not_set_and_legacy_variables_make_a_target() {
    let world = World::new();
    let none = DiscoveryOptions {
        in_cluster: Some(false),
        ..Default::default()
    };
    let d = discover(&none, &world.env(&[]));
    assert_eq!(global_reason(&d), Some(Reason::NotSet));
    let d = discover(
        &none,
        &world.env(&[
            ("KUBE_URL", "https://legacy.example:6443"),
            ("KUBE_TOKEN", "t0ken"),
        ]),
    );
    assert_eq!(names(&d), vec!["KUBE_URL"]);
    assert_eq!(
        d.specs[0].kind,
        Some(kube_reach::model::TargetKind::LegacyCertificate)
    );
}

#[test]
fn gitlab_agent_kubeconfig_is_recognised() {
    let world = World::new();
    let agent = "apiVersion: v1\nkind: Config\nclusters:\n- name: gitlab\n  cluster:\n    server: https://kas.gitlab.example/k8s-proxy\nusers:\n- name: agent:137\n  user:\n    token: ci:137:job-token-canary\ncontexts:\n- name: group/agent-config:my-agent\n  context:\n    cluster: gitlab\n    user: agent:137\n";
    let path = world.write("agent.yaml", agent);
    let d = discover(&opts(&path.display().to_string()), &world.env(&[]));
    assert_eq!(names(&d), vec!["group/agent-config:my-agent"]);
    assert_eq!(
        d.specs[0].kind,
        Some(kube_reach::model::TargetKind::GitlabAgent)
    );
}
