//! The job as a pod (GitLab's Kubernetes executor): no kubeconfig, `KUBERNETES_SERVICE_*`
//! pointing at the fake API, the service-account files in a folder of the world. The fake API
//! serves the runner pod, the namespace's NetworkPolicies, `default/kubernetes` and its
//! EndpointSlices; each policy shape gets its verdict, reason and fix.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::demo::rbac::deploy_rules;
use kube_reach::demo::{
    ApiServerHandle, ApiServerOptions, ClientAuth, Objects, Pki, Rule, TlsClass, Transport, User,
};
use kube_reach::model::{Status, Verdict};
use serde_json::json;

use crate::support::*;

const NS: &str = "gitlab";
const POD: &str = "runner-abc-project-1-concurrent-0";
const ENDPOINT: &str = "127.0.0.2";

/// A projected service-account token as the kubelet mounts it (unsigned: only its claims matter).
fn sa_token() -> String {
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    format!(
        "{}.{}.c2ln",
        b64(json!({"alg": "RS256", "kid": "k"})),
        b64(
            json!({"sub": format!("system:serviceaccount:{NS}:runner"), "exp": exp,
            "kubernetes.io": {"namespace": NS, "pod": {"name": POD}, "serviceaccount": {"name": "runner"}}})
        )
    )
}

/// What the runner's service account may do.
enum Rights {
    /// Read what netpol.egress needs, and deploy in its namespace.
    All,
    /// What netpol.egress needs but `get pods` (so no deploy rights either): the pod's labels
    /// stay unknown.
    NoPods,
    /// Not `list networkpolicies` (so no deploy rights either).
    NoPolicies,
    /// Read what netpol.egress needs, no deploy rights.
    ReadOnly,
}

fn rules(rights: &Rights) -> Vec<Rule> {
    let mut rules = vec![
        Rule::new(&["get"], &[""], &["services"]).in_namespaces(&["default"]),
        Rule::new(&["list"], &["discovery.k8s.io"], &["endpointslices"])
            .in_namespaces(&["default"]),
    ];
    if !matches!(rights, Rights::NoPods) {
        rules.push(Rule::new(&["get"], &[""], &["pods"]).in_namespaces(&[NS]));
    }
    if !matches!(rights, Rights::NoPolicies) {
        rules.push(
            Rule::new(&["list"], &["networking.k8s.io"], &["networkpolicies"]).in_namespaces(&[NS]),
        );
    }
    // The deploy rules include `get pods` and `list networkpolicies`: only a full set has them.
    if matches!(rights, Rights::All) {
        rules.extend(deploy_rules().into_iter().map(|r| r.in_namespaces(&[NS])));
    }
    rules
}

fn objects(port: u16) -> Objects {
    fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).expect("fixture")
    }
    Objects {
        pods: vec![parse(json!({"metadata": {"name": POD, "namespace": NS,
            "labels": {"app": "runner-job", "pod": POD}},
            "spec": {"nodeName": "node-7", "containers": [{"name": "build", "image": "alpine"}]}}))],
        services: vec![parse(
            json!({"metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "127.0.0.1", "clusterIPs": ["127.0.0.1"],
                     "ports": [{"name": "https", "port": port, "protocol": "TCP", "targetPort": 6443}]}}),
        )],
        endpoint_slices: vec![parse(
            json!({"metadata": {"name": "kubernetes", "namespace": "default",
                "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ENDPOINT]}],
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}),
        )],
    }
}

fn policy(name: &str, spec: serde_json::Value) -> NetworkPolicy {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": NS}, "spec": spec}))
        .expect("policy")
}

fn allow_dns() -> NetworkPolicy {
    policy(
        "allow-dns",
        json!({"podSelector": {}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"ipBlock": {"cidr": "127.0.0.53/32"}}],
                           "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]}),
    )
}

/// Allows the `kubernetes` service address (the pre-DNAT reading) on any port, not its endpoint.
fn allow_service() -> NetworkPolicy {
    policy(
        "allow-service",
        json!({"podSelector": {}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"ipBlock": {"cidr": "127.0.0.1/32"}}]}]}),
    )
}

fn default_deny() -> NetworkPolicy {
    policy(
        "default-deny-egress",
        json!({"podSelector": {}, "policyTypes": ["Egress"]}),
    )
}

/// Runs the engine in-process as a pod would: no kubeconfig, in-cluster variables.
async fn run_pod(policies: Vec<NetworkPolicy>, rights: Rights) -> Report {
    run_pod_with(policies, rights, &[], |_| {}).await
}

/// [`run_pod`] with more variables (`GITLAB_CI`, say) and a change to the server.
async fn run_pod_with(
    policies: Vec<NetworkPolicy>,
    rights: Rights,
    extra: &[(&str, &str)],
    server: fn(&mut ApiServerOptions),
) -> Report {
    init();
    let pki = Pki::generate().expect("pki");
    let token = sa_token();
    let user = User::service_account(NS, "runner", "uid-runner", rules(&rights));
    let mut options = ApiServerOptions {
        tokens: vec![(token.clone(), user)],
        network_policies: policies,
        ..ApiServerOptions::default()
    };
    server(&mut options);
    let id = pki
        .server_identity(TlsClass::Good, kube_reach::demo::DEFAULT_SANS)
        .expect("identity");
    let server = serve_on_known_port(&id, options).await;
    let world = World::new();
    world.write("resolv.conf", "nameserver 127.0.0.53\n");
    std::fs::create_dir_all(world.path("serviceaccount")).expect("sa dir");
    world.write("serviceaccount/token", &token);
    world.write("serviceaccount/ca.crt", &id.kubeconfig_ca_pem);
    world.write("serviceaccount/namespace", NS);
    let port = server.addr().port().to_string();
    let home = world.path("home").display().to_string();
    let vars = [
        ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
        ("KUBERNETES_SERVICE_PORT", port.as_str()),
        ("HOSTNAME", POD),
        ("HOME", home.as_str()),
        ("CI_RUNNER_ID", "42"),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().chain(extra).copied().collect();
    let report = world.run_args(&world.in_cluster_args(), &vars).await;
    let text = format!("{report:?}");
    assert!(!text.contains(&token), "the service-account token leaked");
    report
}

/// The `kubernetes` service fixture must name the port the server listens on, so the port is
/// picked first (bounded retries if another test takes it in between).
async fn serve_on_known_port(
    id: &kube_reach::demo::ServerIdentity,
    mut options: ApiServerOptions,
) -> ApiServerHandle {
    for _ in 0..5 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe port");
        let addr = probe.local_addr().expect("addr");
        drop(probe);
        options.objects = objects(addr.port());
        let config = id.server_config(&ClientAuth::None).expect("config");
        if let Ok(server) =
            kube_reach::demo::apiserver::start(addr, Transport::Tls(config), options.clone()).await
        {
            return server;
        }
    }
    panic!("no free loopback port in 5 tries")
}

fn netpol<'t>(t: &'t Target, subject: &str) -> &'t Check {
    t.checks
        .iter()
        .find(|c| c.id == CheckId::NetpolEgress && c.subject == subject)
        .unwrap_or_else(|| panic!("no netpol.egress {subject}: {:#?}", t.checks))
}

fn status(r: &Check) -> (Status, Option<Reason>) {
    (r.status, r.reason)
}

/// The in-cluster target and its `netpol.egress` row for the pod's namespace, whose status and
/// reason must be `want`.
fn api_row(report: &Report, want: (Status, Option<Reason>)) -> (&Target, &Check) {
    let t = target(report, "in-cluster");
    let row = netpol(t, NS);
    assert_eq!(status(row), want, "{row:#?}");
    (t, row)
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_identity_fallback_warning_and_a_healthy_namespace() {
    let report = run_pod(vec![], Rights::All).await;
    let fallback = report
        .checks
        .iter()
        .find(|c| c.reason == Some(Reason::InClusterFallback))
        .unwrap_or_else(|| panic!("no fallback warning: {:#?}", report.checks));
    assert_eq!(fallback.status, Status::Warn);
    assert!(
        fallback
            .summary
            .contains("system:serviceaccount:gitlab:runner")
    );
    let t = target(&report, "in-cluster");
    assert!(t.root_cause.is_none(), "{:#?}", t.checks);
    let creds = t
        .checks
        .iter()
        .find(|c| c.id == CheckId::ConfigCredentials)
        .expect("credentials");
    assert_eq!(creds.status, Status::Pass, "{creds:?}");
    assert_eq!(creds.subject, "system:serviceaccount:gitlab:runner");
    let api = netpol(t, NS);
    assert_eq!(status(api), (Status::Pass, None), "{api:?}");
    let evidence = api.evidence.join("\n");
    assert!(
        evidence.contains(&format!("runner pod {POD} in gitlab on node node-7")),
        "{evidence}"
    );
    assert!(evidence.contains("127.0.0.2:6443/TCP"), "{evidence}");
    let env = &report.environment;
    assert_eq!(env.get("pod").map(String::as_str), Some(POD), "{env:?}");
    assert_eq!(env.get("CI_RUNNER_ID").map(String::as_str), Some("42"));
}

#[tokio::test(flavor = "multi_thread")]
async fn rbac_denied_fix_binds_the_pods_service_account() {
    let report = run_pod(vec![], Rights::ReadOnly).await;
    let t = target(&report, "in-cluster");
    assert_root_cause(t, CheckId::RbacCanI, Reason::Denied);
    let fix = t
        .checks
        .iter()
        .filter(|c| c.reason == Some(Reason::Denied))
        .find_map(|c| c.fix.clone().filter(|f| f.contains("RoleBinding")))
        .expect("a RoleBinding fix");
    assert!(
        fix.contains("kind: ServiceAccount\n  name: runner\n  namespace: gitlab"),
        "{fix}"
    );
}

/// The table of policy shapes: (name, policies, rights, API row, DNS row, target verdict).
#[tokio::test(flavor = "multi_thread")]
async fn policy_shapes_end_to_end() {
    type Row = (Status, Option<Reason>);
    let pass: Row = (Status::Pass, None);
    // The job reached the service address in every case (loopback enforces nothing), so an API
    // route the policies block is a warning: it works here, on a CNI that reads it another way.
    let blocked_here: Row = (Status::Warn, Some(Reason::BlocksApiserver));
    let dns_blocked: Row = (Status::Fail, Some(Reason::BlocksDns));
    let port_rule = |name: &str, to: serde_json::Value, ports: serde_json::Value| {
        policy(
            name,
            json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": to, "ports": ports}]}),
        )
    };
    let cases: Vec<(&str, Vec<NetworkPolicy>, Row, Row, Verdict)> = vec![
        (
            "default deny",
            vec![default_deny()],
            blocked_here,
            dns_blocked,
            Verdict::Fail,
        ),
        (
            "allow the service address only, endpoints on 6443",
            vec![default_deny(), allow_dns(), allow_service()],
            blocked_here,
            pass,
            Verdict::Warn,
        ),
        (
            "ipBlock with except",
            vec![
                allow_dns(),
                port_rule(
                    "loopback-but-endpoints",
                    json!([{"ipBlock": {"cidr": "127.0.0.0/8", "except": ["127.0.0.2/32"]}}]),
                    json!(null),
                ),
            ],
            blocked_here,
            pass,
            Verdict::Warn,
        ),
        (
            "namespaceSelector cannot match the API server",
            vec![port_rule(
                "all-namespaces",
                json!([{"namespaceSelector": {}}]),
                json!(null),
            )],
            blocked_here,
            // The DNS pods behind the nameserver may be what the selector matches: undecided,
            // said the way the API route says it (one judge for both).
            (Status::Pass, Some(Reason::Unknown)),
            Verdict::Warn,
        ),
        (
            "named ports",
            vec![port_rule("named", json!(null), json!([{"port": "https"}]))],
            // The API server is no pod whose container ports kube-reach could read: undecided,
            // never reported as blocked; DNS over UDP is blocked (the port is TCP).
            (Status::Pass, Some(Reason::Unknown)),
            dns_blocked,
            Verdict::Fail,
        ),
        (
            "no policy selecting the pod",
            vec![policy(
                "web-only",
                json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"]}),
            )],
            pass,
            pass,
            Verdict::Pass,
        ),
        (
            "several policies whose union allows",
            vec![
                default_deny(),
                allow_dns(),
                allow_service(),
                port_rule(
                    "allow-endpoints",
                    json!([{"ipBlock": {"cidr": "127.0.0.2/32"}}]),
                    json!([{"port": 6443}]),
                ),
            ],
            pass,
            pass,
            Verdict::Pass,
        ),
    ];
    for (name, policies, api_want, dns_want, verdict) in cases {
        let report = run_pod(policies, Rights::All).await;
        let t = target(&report, "in-cluster");
        let api = netpol(t, NS);
        let dns = netpol(t, "gitlab dns");
        assert_eq!(status(api), api_want, "{name}: {api:#?}");
        assert_eq!(status(dns), dns_want, "{name}: {dns:#?}");
        assert_eq!(t.verdict, verdict, "{name}: {:#?}", t.checks);
        if api.reason == Some(Reason::BlocksApiserver) {
            let fix = api.fix.as_deref().unwrap_or_default();
            assert!(
                fix.contains("cidr: 127.0.0.2/32")
                    && fix.contains("port: 6443")
                    && fix.contains("post-DNAT"),
                "{name}: {fix}"
            );
        }
        if dns.reason == Some(Reason::BlocksDns) {
            assert_root_cause(t, CheckId::NetpolEgress, Reason::BlocksDns);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_pod_or_policies_are_informational() {
    let labelled = policy(
        "runner-deny",
        json!({"podSelector": {"matchLabels": {"app": "runner-job"}}, "policyTypes": ["Egress"]}),
    );
    let report = run_pod(vec![labelled], Rights::NoPods).await;
    let (_, api) = api_row(&report, (Status::Pass, Some(Reason::Unknown)));
    assert!(api.evidence.join("\n").contains("not readable"), "{api:#?}");

    let report = run_pod(vec![default_deny()], Rights::NoPolicies).await;
    let (t, r) = api_row(&report, (Status::Pass, Some(Reason::NotReadable)));
    assert!(
        r.fix
            .as_deref()
            .unwrap_or_default()
            .contains("list networkpolicies")
    );
    // Informational: the root cause stays what it was (RBAC, no deploy rights here).
    assert_root_cause(t, CheckId::RbacCanI, Reason::Denied);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_service_address_leaves_netpol_skipped_as_blocked() {
    init();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let port = closed.local_addr().expect("addr").port().to_string();
    drop(closed);
    let world = World::new();
    std::fs::create_dir_all(world.path("serviceaccount")).expect("sa dir");
    world.write("serviceaccount/token", &sa_token());
    world.write("serviceaccount/namespace", NS);
    let pki = Pki::generate().expect("pki");
    world.write("serviceaccount/ca.crt", &pki.root_ca_pem());
    let home = world.path("home").display().to_string();
    let vars = [
        ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
        ("KUBERNETES_SERVICE_PORT", port.as_str()),
        ("HOME", home.as_str()),
    ];
    let report = world.run_args(&world.in_cluster_args(), &vars).await;
    let (_, row) = api_row(&report, (Status::Skip, Some(Reason::Blocked)));
    assert!(
        row.blocked_by
            .as_deref()
            .is_some_and(|b| b.starts_with("tcp.connect")),
        "{row:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn in_gitlab_ci_the_service_address_is_no_copied_kubeconfig_mistake() {
    let report = run_pod_with(vec![], Rights::All, &[("GITLAB_CI", "true")], |_| {}).await;
    let t = target(&report, "in-cluster");
    let server = t
        .checks
        .iter()
        .find(|c| c.id == CheckId::ConfigServer)
        .expect("config.server");
    assert_eq!(server.status, Status::Pass, "{server:#?}");
    assert!(t.root_cause.is_none(), "{:#?}", t.checks);
}

#[tokio::test(flavor = "multi_thread")]
async fn in_cluster_forced_outside_a_pod_is_a_finding_not_a_silent_pass() {
    init();
    let world = World::new();
    let home = world.path("home").display().to_string();
    let mut args = world.in_cluster_args();
    args.push("--in-cluster".into());
    let vars = [
        ("HOME", home.as_str()),
        ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
    ];
    let report = world.run_args(&args, &vars).await;
    assert_eq!(report.verdict, Verdict::Fail, "{:#?}", report.checks);
    let finding = report
        .checks
        .iter()
        .find(|c| c.reason == Some(Reason::NotInCluster))
        .unwrap_or_else(|| panic!("no not-in-cluster: {:#?}", report.checks));
    assert!(
        finding
            .evidence
            .join(" ")
            .contains("KUBERNETES_SERVICE_PORT is not set"),
        "{finding:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn before_1_28_the_denied_fix_still_binds_the_tokens_service_account() {
    // No SelfSubjectReview: the server names nobody, the mounted token does.
    let report = run_pod_with(vec![], Rights::ReadOnly, &[], |o| {
        o.self_subject_review = false
    })
    .await;
    let t = target(&report, "in-cluster");
    let fix = t
        .checks
        .iter()
        .filter(|c| c.reason == Some(Reason::Denied))
        .find_map(|c| c.fix.clone().filter(|f| f.contains("RoleBinding")))
        .unwrap_or_else(|| panic!("a RoleBinding fix: {:#?}", t.checks));
    assert!(
        fix.contains("kind: ServiceAccount\n  name: runner\n  namespace: gitlab"),
        "{fix}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reads_work_against_an_http1_only_server_too() {
    let report = run_pod_with(vec![default_deny(), allow_dns()], Rights::All, &[], |o| {
        o.protocols = kube_reach::demo::Protocols::Http1Only
    })
    .await;
    let (_, api) = api_row(&report, (Status::Warn, Some(Reason::BlocksApiserver)));
    assert!(
        api.evidence.join("\n").contains("on node node-7"),
        "{api:#?}"
    );
}
