//! The job as a pod on GitLab's Kubernetes executor: `KUBERNETES_SERVICE_HOST` is the
//! `kubernetes` service address 10.253.96.1:443, which an nft DNAT in the client turns into the
//! API server's 10.253.1.2:6443 (what kube-proxy does); the service-account files sit at the real
//! mount path, `/var/run/secrets/kubernetes.io/serviceaccount/`, in the job's own mount namespace
//! (a tmpfs over `/run` there, nothing on the machine); an nft filter in the client enforces what
//! the fake API's NetworkPolicies say, the way a CNI would. kube-reach also checks a kubeconfig
//! target (`api.k8s.test:6443`, the endpoint itself) the way a deploy job would.

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::model::Status;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::firewall;
use crate::pki::LeafKind;
use crate::reach::{self, Report, TIMEOUT};
use crate::report::Check;
use crate::site::{API_PORT, Site};
use crate::world::{Family, require, skip_without_netns};

use super::assert_ran;

const SERVICE_IP: &str = "10.253.96.1";
const ENDPOINT_IP: &str = "10.253.1.2";
const NAMESPACE: &str = "gitlab";
const POD: &str = "runner-x1-project-7-concurrent-0";
/// The context name of the world's kubeconfig.
const KUBECONFIG_TARGET: &str = "e2e";
const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// What the CNI (nft in the client) lets through, besides replies.
#[derive(Clone, Copy)]
enum Cni {
    /// The service address (matched before DNAT), its endpoint, and DNS.
    AllowsAll,
    /// Only the service address (a CNI that matches before DNAT) and DNS.
    ServiceOnly,
    /// The service address and its endpoint, but no DNS.
    NoDns,
}

impl Cni {
    /// The nft ruleset of the client: the service DNAT, and the policy on new connections.
    ///
    /// A drop in the local output path makes the sender's `send` fail with EPERM, which a pod
    /// never sees (its CNI drops outside the pod, so it sees silence). So TCP is filtered on
    /// output (a dropped SYN is retried until the timeout, as through a CNI) and DNS, which is
    /// UDP first, by dropping the answers on input: the lookup times out as it does in a pod.
    fn ruleset(self, nameserver: &str) -> String {
        let service = format!("ct original ip daddr {SERVICE_IP} tcp dport {API_PORT} accept");
        let endpoint = format!("ip daddr {ENDPOINT_IP} tcp dport {API_PORT} accept");
        let dns = format!("ip daddr {nameserver} th dport 53 accept");
        let egress = match self {
            Cni::AllowsAll | Cni::NoDns => format!("{service}\n  {endpoint}\n  {dns}"),
            Cni::ServiceOnly => format!("{service}\n  {dns}"),
        };
        let dns_answers = match self {
            Cni::NoDns => format!("ip saddr {nameserver} th sport 53 drop"),
            Cni::AllowsAll | Cni::ServiceOnly => String::new(),
        };
        format!(
            "table ip kr-pod {{\n chain services {{\n  type nat hook output priority -100; policy accept;\n  ip daddr {SERVICE_IP} tcp dport 443 dnat to {ENDPOINT_IP}:{API_PORT}\n }}\n chain egress {{\n  type filter hook output priority 0; policy drop;\n  oifname \"lo\" accept\n  ct state established,related accept\n  {egress}\n }}\n chain answers {{\n  type filter hook input priority 0; policy accept;\n  {dns_answers}\n }}\n}}\n"
        )
    }

    /// The NetworkPolicies that say the same (what the fake API serves).
    fn policies(self, nameserver: &str) -> Value {
        let deny = json!({"metadata": {"name": "default-deny-egress", "namespace": NAMESPACE},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"]}});
        let allow = |name: &str, cidr: &str, port: u16, protocols: &[&str]| {
            let ports: Vec<Value> = protocols
                .iter()
                .map(|p| json!({"protocol": p, "port": port}))
                .collect();
            json!({"metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {"podSelector": {"matchLabels": {"app": "gitlab-runner-job"}}, "policyTypes": ["Egress"],
                         "egress": [{"to": [{"ipBlock": {"cidr": format!("{cidr}/32")}}], "ports": ports}]}})
        };
        let service = allow("allow-kubernetes-service", SERVICE_IP, 443, &["TCP"]);
        let endpoint = allow("allow-apiserver-endpoint", ENDPOINT_IP, API_PORT, &["TCP"]);
        let dns = allow("allow-dns", nameserver, 53, &["UDP", "TCP"]);
        match self {
            Cni::AllowsAll => json!([deny, service, endpoint, dns]),
            Cni::ServiceOnly => json!([deny, service, dns]),
            Cni::NoDns => json!([deny, service, endpoint]),
        }
    }
}

fn token() -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    format!(
        "{}.{}.c2ln",
        b64(json!({"alg": "RS256"})),
        b64(
            json!({"sub": format!("system:serviceaccount:{NAMESPACE}:runner"), "exp": exp,
            "kubernetes.io": {"namespace": NAMESPACE, "pod": {"name": POD}}})
        )
    )
}

/// A direct world made pod-shaped: the fake API with the in-cluster fixture, the service DNAT
/// and `cni` in the client.
fn pod_world(cni: Cni) -> (Site, String) {
    require(&["unshare", "mount"]);
    let mut site = Site::direct(Family::V4);
    let nameserver = site.nameserver.to_string();
    let token = token();
    let fixture = json!({
        "token": token, "namespace": NAMESPACE, "serviceAccount": "runner",
        "networkPolicies": cni.policies(&nameserver),
        "pods": [{"metadata": {"name": POD, "namespace": NAMESPACE, "labels": {"app": "gitlab-runner-job"}},
                  "spec": {"nodeName": "node-1", "containers": [{"name": "build"}]}}],
        "services": [{"metadata": {"name": "kubernetes", "namespace": "default"},
                      "spec": {"clusterIP": SERVICE_IP, "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}],
        "endpointSlices": [{"metadata": {"name": "kubernetes", "namespace": "default",
                                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
                            "addressType": "IPv4", "endpoints": [{"addresses": [ENDPOINT_IP]}],
                            "ports": [{"name": "https", "port": API_PORT, "protocol": "TCP"}]}],
    });
    let fixture = site.world.file("in-cluster.json", fixture.to_string());
    let fixture = fixture.to_string_lossy().into_owned();
    reach::demo_server(
        &mut site,
        LeafKind::Good,
        &["--in-cluster-fixture", &fixture],
    );
    let endpoint = ENDPOINT_IP.parse().expect("endpoint address");
    site.world
        .route(&site.client, &format!("{SERVICE_IP}/32"), endpoint);
    firewall::load(&site.world, &site.client, &cni.ruleset(&nameserver));
    let dir = site.world.dir().join("serviceaccount");
    std::fs::create_dir_all(&dir).expect("service-account dir");
    std::fs::write(dir.join("token"), &token).expect("token");
    std::fs::write(dir.join("ca.crt"), &site.pki.root_pem).expect("ca.crt");
    std::fs::write(dir.join("namespace"), NAMESPACE).expect("namespace");
    (site, token)
}

/// kube-reach in the pod: its own mount namespace with the service account at the real path.
fn run_in_pod(site: &Site, token: &str) -> Report {
    let kubeconfig = kubeconfig(site);
    let kubeconfig = kubeconfig.to_string_lossy().into_owned();
    let source = site.world.dir().join("serviceaccount");
    let source = source.to_string_lossy().into_owned();
    let script = format!(
        "mount -t tmpfs kr-pod /var/run && mkdir -p {MOUNT} && cp \"$SA_SOURCE\"/token \"$SA_SOURCE\"/ca.crt \"$SA_SOURCE\"/namespace {MOUNT}/ && exec \"$@\""
    );
    let timeout = TIMEOUT.as_secs().to_string();
    let argv = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
        "sh",
        reach::bin(),
        "--kubeconfig",
        &kubeconfig,
        "--json",
        "-",
        "--timeout",
        &timeout,
        "--deadline",
        "20",
        "--color",
        "never",
    ];
    let env = [
        ("KUBERNETES_SERVICE_HOST", SERVICE_IP),
        ("KUBERNETES_SERVICE_PORT", "443"),
        ("HOSTNAME", POD),
        ("SA_SOURCE", source.as_str()),
    ];
    let ran = site
        .world
        .run(&site.client, &argv, &env, Duration::from_secs(40));
    assert!(
        !ran.stdout.contains(token) && !ran.stderr.contains(token),
        "the service-account token leaked"
    );
    Report::read(ran)
}

/// The deploy job's kubeconfig: the API server's endpoint itself, by name.
fn kubeconfig(site: &Site) -> std::path::PathBuf {
    site.kubeconfig("case", "https://api.k8s.test:6443", None)
}

/// The kubeconfig target's report, after kubectl ran the same kubeconfig in the same client
/// namespace (the comparison table's row for `case`).
fn compared(site: &Site, case: &str, run: &Report) -> Report {
    let report = run.only(KUBECONFIG_TARGET);
    crate::kubectl::compare(site, case, &kubeconfig(site), &[], &report);
    report
}

fn netpol_row<'r>(run: &'r Report, target: &str, subject: &str) -> &'r Check {
    run.report
        .target(target)
        .checks
        .iter()
        .find(|c| c.id == CheckId::NetpolEgress && c.subject == subject)
        .unwrap_or_else(|| panic!("no netpol.egress {subject} on {target}"))
}

#[test]
fn world_pod_service_dnat_and_cni() {
    if skip_without_netns() {
        return;
    }
    let (site, _) = pod_world(Cni::ServiceOnly);
    let via_service = format!("https://{SERVICE_IP}/version");
    assert_ran(&site.curl(&[&via_service], &[]), 0, &["gitVersion"]);
    let direct = site.curl(
        &[
            "--connect-timeout",
            "2",
            "https://api.k8s.test:6443/version",
        ],
        &[],
    );
    assert_ran(
        &direct,
        28,
        &["Timeout was reached|Connection timeout after"],
    );
    // With DNS blocked, lookups time out (silence, as behind a CNI), and the API still answers.
    let (no_dns, _) = pod_world(Cni::NoDns);
    assert_ran(&no_dns.dig(&["api.k8s.test"]), 9, &["timed out"]);
    assert_ran(&no_dns.curl(&[&via_service], &[]), 0, &["gitVersion"]);
    // The job's own mount namespace shows files at the real path; the machine never does.
    let script = format!(
        "mount -t tmpfs kr-pod /var/run && mkdir -p {MOUNT} && echo {NAMESPACE} > {MOUNT}/namespace && cat {MOUNT}/namespace"
    );
    let argv = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ];
    let ran = site
        .world
        .run(&site.client, &argv, &[], Duration::from_secs(10));
    assert_ran(&ran, 0, &[NAMESPACE]);
    let on_machine = Path::new(MOUNT).join("namespace");
    assert!(
        !on_machine.exists() || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
        "the test world leaked {} onto the machine",
        on_machine.display()
    );
}

#[test]
fn in_cluster_healthy_pod() {
    if skip_without_netns() {
        return;
    }
    let (site, token) = pod_world(Cni::AllowsAll);
    let run = run_in_pod(&site, &token);
    run.only("in-cluster")
        .expect_no_failure()
        .expect_pass(&[
            CheckId::TcpConnect,
            CheckId::TlsTrust,
            CheckId::TlsHostname,
            CheckId::AuthWhoami,
            CheckId::RbacCanI,
        ])
        .expect_summary(
            CheckId::AuthWhoami,
            &["system:serviceaccount:gitlab:runner"],
        );
    compared(
        &site,
        "in-cluster: NetworkPolicies allow the pod's routes",
        &run,
    )
    .expect_no_failure();
    let row = netpol_row(&run, "in-cluster", NAMESPACE);
    assert_eq!(row.status, Status::Pass, "{row:#?}");
    let evidence = row.evidence.join("\n");
    assert!(
        evidence.contains(POD) && evidence.contains("node-1"),
        "{evidence}"
    );
    assert_eq!(run.ran.status, Some(0), "{:#?}", run.report);
}

#[test]
fn in_cluster_policy_blocks_the_endpoint_the_kubeconfig_uses() {
    if skip_without_netns() {
        return;
    }
    let (site, token) = pod_world(Cni::ServiceOnly);
    let run = run_in_pod(&site, &token);
    compared(
        &site,
        "in-cluster: NetworkPolicy allows only the service address",
        &run,
    )
    .expect_root_cause(CheckId::NetpolEgress, Reason::BlocksApiserver)
    .expect_summary(
        CheckId::NetpolEgress,
        &["default-deny-egress", "10.253.1.2:6443"],
    )
    .expect_fix(
        CheckId::NetpolEgress,
        &["cidr: 10.253.1.2/32", "port: 6443"],
    )
    .expect_evidence(CheckId::TcpConnect, &["10.253.1.2"]);
    // The pod's own route works (the CNI matched the service address before DNAT): a warning
    // that the same policy breaks on a CNI that matches after DNAT.
    let own = netpol_row(&run, "in-cluster", NAMESPACE);
    assert_eq!(
        (own.status, own.reason),
        (Status::Warn, Some(Reason::BlocksApiserver)),
        "{own:#?}"
    );
    // Its fix gives the rules for both readings of the service DNAT.
    let fix = own.fix.as_deref().unwrap_or_default();
    for needle in [
        "pre-DNAT",
        "cidr: 10.253.96.1/32",
        "port: 443",
        "post-DNAT",
        "cidr: 10.253.1.2/32",
        "port: 6443",
    ] {
        assert!(fix.contains(needle), "in-cluster fix lacks {needle}: {fix}");
    }
    assert_eq!(run.ran.status, Some(1), "{:#?}", run.report);
}

#[test]
fn in_cluster_policy_blocks_dns() {
    if skip_without_netns() {
        return;
    }
    let (site, token) = pod_world(Cni::NoDns);
    let run = run_in_pod(&site, &token);
    compared(&site, "in-cluster: NetworkPolicy blocks DNS", &run)
        .expect_root_cause(CheckId::NetpolEgress, Reason::BlocksDns)
        .expect_fix(CheckId::NetpolEgress, &["port: 53", "protocol: UDP"]);
    let own = run.only("in-cluster");
    own.expect_root_cause(CheckId::NetpolEgress, Reason::BlocksDns);
    assert_eq!(run.ran.status, Some(1), "{:#?}", run.report);
}
