//! The evaluator against the Kubernetes NetworkPolicy semantics, one policy shape per case.

use super::*;
use serde_json::json;

fn policy(name: &str, spec: serde_json::Value) -> NetworkPolicy {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "gitlab"},
        "spec": spec,
    }))
    .expect("a valid NetworkPolicy")
}

fn pod() -> RunnerPod {
    RunnerPod {
        namespace: "gitlab".into(),
        labels: Some(BTreeMap::from([
            ("app".to_string(), "runner-job".to_string()),
            ("tier".to_string(), "ci".to_string()),
        ])),
        host_network: Some(false),
    }
}

fn dest(addr: &str, port: u16, protocol: Protocol, purpose: Purpose) -> Destination {
    Destination {
        addr: addr.parse().expect("address"),
        port,
        protocol,
        purpose,
    }
}

fn service() -> Destination {
    dest("10.96.0.1", 443, Protocol::Tcp, Purpose::ServiceAddress)
}
fn endpoint() -> Destination {
    dest("172.18.0.2", 6443, Protocol::Tcp, Purpose::ServiceEndpoint)
}
fn dns_udp() -> Destination {
    dest("10.96.0.10", 53, Protocol::Udp, Purpose::Dns)
}
fn external() -> Destination {
    dest(
        "203.0.113.10",
        6443,
        Protocol::Tcp,
        Purpose::ApiServer {
            target: "prod".into(),
        },
    )
}

fn default_deny() -> NetworkPolicy {
    policy(
        "default-deny-egress",
        json!({"podSelector": {}, "policyTypes": ["Egress"]}),
    )
}

#[derive(Debug, PartialEq)]
enum Want {
    Open,
    Allowed(&'static str),
    Blocked,
    Undecided,
}

fn check(policies: &[NetworkPolicy], pod: &RunnerPod, d: &Destination, want: Want) {
    let got = decide(policies, pod, d);
    let ok = match (&want, &got) {
        (Want::Open, Decision::Unrestricted) => true,
        (Want::Allowed(name), Decision::Allowed { policy, .. }) => policy == name,
        (Want::Blocked, Decision::Blocked { .. }) => true,
        (Want::Undecided, Decision::Undecided { .. }) => true,
        _ => false,
    };
    assert!(ok, "{d}: wanted {want:?}, got {got:?}");
}

#[test]
fn no_policy_selecting_the_pod_leaves_egress_open() {
    let other = policy(
        "only-web",
        json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"]}),
    );
    let ingress_only = policy(
        "ingress-deny",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    );
    // policyTypes absent and no egress rules: an ingress policy (API server defaulting).
    let implicit_ingress = policy("implicit", json!({"podSelector": {}, "ingress": [{}]}));
    let policies = [other, ingress_only, implicit_ingress];
    for d in [service(), endpoint(), dns_udp(), external()] {
        check(&policies, &pod(), &d, Want::Open);
    }
    check(&[], &pod(), &service(), Want::Open);
}

#[test]
fn default_deny_blocks_everything() {
    for d in [service(), endpoint(), dns_udp(), external()] {
        check(&[default_deny()], &pod(), &d, Want::Blocked);
    }
    // policyTypes absent but egress rules present: an egress policy whose one rule allows
    // only 10.0.0.0/8:80, so the API server is blocked.
    let implicit = policy(
        "implicit-egress",
        json!({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 80}]}]}),
    );
    check(&[implicit], &pod(), &service(), Want::Blocked);
}

#[test]
fn allowing_443_only_blocks_the_endpoint_on_6443_after_dnat() {
    let allow_443 = policy(
        "allow-apiserver",
        json!({"podSelector": {}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}], "ports": [{"protocol": "TCP", "port": 443}]}]}),
    );
    let policies = [default_deny(), allow_443];
    check(
        &policies,
        &pod(),
        &service(),
        Want::Allowed("allow-apiserver"),
    );
    check(&policies, &pod(), &endpoint(), Want::Blocked);
}

#[test]
fn ip_block_except_and_port_ranges() {
    let p = policy(
        "cluster-range",
        json!({"podSelector": {"matchLabels": {"tier": "ci"}}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"ipBlock": {"cidr": "172.16.0.0/12", "except": ["172.18.0.0/24"]}}],
                           "ports": [{"port": 6000, "endPort": 7000}]}]}),
    );
    check(std::slice::from_ref(&p), &pod(), &endpoint(), Want::Blocked);
    let elsewhere = dest("172.19.0.2", 6443, Protocol::Tcp, Purpose::ServiceEndpoint);
    check(
        std::slice::from_ref(&p),
        &pod(),
        &elsewhere,
        Want::Allowed("cluster-range"),
    );
    let out_of_range = dest("172.19.0.2", 443, Protocol::Tcp, Purpose::ServiceEndpoint);
    check(
        std::slice::from_ref(&p),
        &pod(),
        &out_of_range,
        Want::Blocked,
    );
    // The protocol defaults to TCP: UDP to the same address and port is not allowed.
    let udp = dest("172.19.0.2", 6443, Protocol::Udp, Purpose::ServiceEndpoint);
    check(&[p], &pod(), &udp, Want::Blocked);
}

#[test]
fn namespace_selector_cannot_match_a_host_network_api_server() {
    let p = policy(
        "allow-all-namespaces",
        json!({"podSelector": {}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"namespaceSelector": {}}]}]}),
    );
    check(std::slice::from_ref(&p), &pod(), &endpoint(), Want::Blocked);
    check(std::slice::from_ref(&p), &pod(), &service(), Want::Blocked);
    check(std::slice::from_ref(&p), &pod(), &external(), Want::Blocked);
    // The DNS pods might be among the selected pods: not decidable, never reported blocked.
    check(&[p], &pod(), &dns_udp(), Want::Undecided);
}

#[test]
fn named_ports_are_undecidable_without_the_destination_pod() {
    let p = policy(
        "named",
        json!({"podSelector": {}, "policyTypes": ["Egress"],
               "egress": [{"ports": [{"port": "https"}, {"port": "dns", "protocol": "UDP"}]}]}),
    );
    check(
        std::slice::from_ref(&p),
        &pod(),
        &service(),
        Want::Undecided,
    );
    check(
        std::slice::from_ref(&p),
        &pod(),
        &dns_udp(),
        Want::Undecided,
    );
    // A number elsewhere decides it; a named port of another protocol never matches.
    let numbered = policy(
        "numbered",
        json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": 443}]}]}),
    );
    check(
        &[p.clone(), numbered],
        &pod(),
        &service(),
        Want::Allowed("numbered"),
    );
    let udp_only = policy(
        "udp-named",
        json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "dns", "protocol": "UDP"}]}]}),
    );
    check(&[udp_only], &pod(), &service(), Want::Blocked);
}

#[test]
fn policies_leave_a_host_network_pod_alone() {
    let host = RunnerPod {
        host_network: Some(true),
        ..pod()
    };
    assert_eq!(
        decide(&[default_deny()], &host, &service()),
        Decision::HostNetwork
    );
    let results = judge(
        &[default_deny()],
        &Situation {
            pod: host,
            destinations: vec![service(), dns_udp()],
            reached: vec![],
            dns_worked: None,
        },
    );
    assert!(
        results.iter().all(|r| r.status == Status::Pass),
        "{results:?}"
    );
}

#[test]
fn several_policies_are_additive() {
    let a = policy(
        "allow-service",
        json!({"podSelector": {"matchLabels": {"app": "runner-job"}}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}], "ports": [{"port": 443}]}]}),
    );
    let b = policy(
        "allow-endpoints",
        json!({"podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["ci", "cd"]}]},
               "policyTypes": ["Egress"],
               "egress": [{"to": [{"ipBlock": {"cidr": "172.18.0.0/16"}}], "ports": [{"port": 6443}]}]}),
    );
    let policies = [default_deny(), a, b];
    check(
        &policies,
        &pod(),
        &service(),
        Want::Allowed("allow-service"),
    );
    check(
        &policies,
        &pod(),
        &endpoint(),
        Want::Allowed("allow-endpoints"),
    );
    check(&policies, &pod(), &external(), Want::Blocked);
}

#[test]
fn dns_blocked_and_allowed_by_the_usual_kube_dns_rule() {
    let web = policy(
        "allow-web",
        json!({"podSelector": {}, "policyTypes": ["Egress"],
               "egress": [{"ports": [{"port": 443}]}]}),
    );
    check(
        std::slice::from_ref(&web),
        &pod(),
        &dns_udp(),
        Want::Blocked,
    );
    let tcp = dest("10.96.0.10", 53, Protocol::Tcp, Purpose::Dns);
    check(std::slice::from_ref(&web), &pod(), &tcp, Want::Blocked);
    // The usual rule: kube-system's kube-dns pods on 53. Their labels are not read: undecided.
    let usual = policy(
        "allow-dns",
        json!({"podSelector": {}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                   "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                           "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]}),
    );
    check(
        &[web.clone(), usual.clone()],
        &pod(),
        &dns_udp(),
        Want::Undecided,
    );
    // A namespaceSelector is judged against the DNS namespace's labels, which are not read (nor
    // is that namespace sure to be kube-system): undecidable whatever label it names, never
    // blocked — `name: kube-system` (older guides) and OpenShift's `openshift-dns` included.
    for labels in [
        json!({"kubernetes.io/metadata.name": "dns"}),
        json!({"name": "kube-system"}),
        json!({"kubernetes.io/metadata.name": "openshift-dns"}),
    ] {
        let by_namespace = policy(
            "allow-dns-by-namespace",
            json!({"podSelector": {}, "policyTypes": ["Egress"],
                   "egress": [{"to": [{"namespaceSelector": {"matchLabels": labels}}],
                               "ports": [{"port": 53, "protocol": "UDP"}]}]}),
        );
        check(
            &[web.clone(), by_namespace],
            &pod(),
            &dns_udp(),
            Want::Undecided,
        );
    }
    // An ipBlock with the nameserver address decides it.
    let by_ip = policy(
        "allow-dns-ip",
        json!({"podSelector": {}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"ipBlock": {"cidr": "10.96.0.10/32"}}], "ports": [{"port": 53, "protocol": "UDP"}]}]}),
    );
    check(
        &[web, by_ip],
        &pod(),
        &dns_udp(),
        Want::Allowed("allow-dns-ip"),
    );
}

#[test]
fn unreadable_pod_labels_make_selecting_policies_undecided_but_empty_selectors_still_select() {
    let unknown = RunnerPod {
        namespace: "gitlab".into(),
        labels: None,
        host_network: Some(false),
    };
    let labelled = policy(
        "runner-deny",
        json!({"podSelector": {"matchLabels": {"app": "runner-job"}}, "policyTypes": ["Egress"]}),
    );
    check(&[labelled], &unknown, &service(), Want::Undecided);
    check(&[default_deny()], &unknown, &service(), Want::Blocked);
    // A rule of a policy that may not select the pod allows nothing for sure: if the pod lacks
    // the label, the default deny alone applies.
    let maybe_allows = policy(
        "allow-runner",
        json!({"podSelector": {"matchLabels": {"app": "runner-job"}}, "policyTypes": ["Egress"],
               "egress": [{"ports": [{"port": 443, "protocol": "TCP"}]}]}),
    );
    check(
        &[default_deny(), maybe_allows],
        &unknown,
        &service(),
        Want::Undecided,
    );
}

#[test]
fn a_proxy_allowed_by_a_selecting_peer_is_undecided_never_blocked() {
    let proxy = dest(
        "10.96.5.5",
        3128,
        Protocol::Tcp,
        Purpose::Proxy {
            target: "prod".into(),
        },
    );
    let to_proxy_namespace = policy(
        "allow-proxy",
        json!({"podSelector": {}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "proxy"}}}],
                           "ports": [{"port": 3128, "protocol": "TCP"}]}]}),
    );
    check(&[to_proxy_namespace], &pod(), &proxy, Want::Undecided);
    check(&[default_deny()], &pod(), &proxy, Want::Blocked);
}

fn situation(reached: &[(&str, u16)]) -> Situation {
    Situation {
        pod: pod(),
        destinations: vec![service(), endpoint(), dns_udp()],
        reached: reached
            .iter()
            .map(|(a, p)| (a.parse().expect("address"), *p))
            .collect(),
        dns_worked: None,
    }
}

#[test]
fn judge_names_the_policy_and_prints_rules_for_both_dnat_readings() {
    let results = judge(&[default_deny()], &situation(&[]));
    let api = &results[0];
    assert_eq!(
        (api.status, api.reason),
        (Status::Fail, Some(Reason::BlocksApiserver))
    );
    assert_eq!(api.subject, "gitlab");
    assert!(
        api.summary.contains("default-deny-egress"),
        "{}",
        api.summary
    );
    let fix = api.fix.as_deref().unwrap_or_default();
    for want in [
        "cidr: 10.96.0.1/32",
        "port: 443",
        "cidr: 172.18.0.2/32",
        "port: 6443",
        "pre-DNAT",
        "post-DNAT",
    ] {
        assert!(fix.contains(want), "{want} missing from fix:\n{fix}");
    }
    let dns = &results[1];
    assert_eq!(
        (dns.status, dns.reason, dns.subject.as_str()),
        (Status::Fail, Some(Reason::BlocksDns), "gitlab dns")
    );
    let fix = dns.fix.as_deref().unwrap_or_default();
    assert!(
        fix.contains("k8s-app: kube-dns") && fix.contains("protocol: UDP"),
        "{fix}"
    );
}

#[test]
fn judge_warns_when_one_reading_is_blocked_but_the_job_got_through() {
    let allow_443 = policy(
        "allow-apiserver",
        json!({"podSelector": {}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}], "ports": [{"port": 443}]},
                          {"ports": [{"port": 53, "protocol": "UDP"}]}]}),
    );
    let worked = judge(
        std::slice::from_ref(&allow_443),
        &situation(&[("10.96.0.1", 443)]),
    );
    assert_eq!(
        (worked[0].status, worked[0].reason),
        (Status::Warn, Some(Reason::BlocksApiserver)),
        "{:?}",
        worked[0]
    );
    assert_eq!(worked[1].status, Status::Pass, "{:?}", worked[1]);
    let failed = judge(&[allow_443], &situation(&[]));
    assert_eq!(failed[0].status, Status::Fail);
}

#[test]
fn judge_passes_when_allowed_and_is_informational_when_undecided() {
    let allow_all = policy(
        "allow-all",
        json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}),
    );
    let results = judge(&[allow_all], &situation(&[]));
    assert!(
        results.iter().all(|r| r.status == Status::Pass),
        "{results:?}"
    );
    let named = policy(
        "named",
        json!({"podSelector": {}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}, {"to": [{"namespaceSelector": {}}]}]}),
    );
    let results = judge(&[named], &situation(&[]));
    assert_eq!(results[0].status, Status::Pass);
    let unknown_pod = Situation {
        pod: RunnerPod {
            namespace: "gitlab".into(),
            labels: None,
            host_network: Some(false),
        },
        ..situation(&[])
    };
    let labelled = policy(
        "runner-deny",
        json!({"podSelector": {"matchLabels": {"app": "runner-job"}}, "policyTypes": ["Egress"]}),
    );
    let results = judge(&[labelled], &unknown_pod);
    assert_eq!(
        (results[0].status, results[0].reason),
        (Status::Pass, Some(Reason::Unknown))
    );
}

#[test]
fn not_readable_names_the_permission() {
    let r = not_readable("gitlab", "HTTP 403 Forbidden");
    assert_eq!(r.reason, Some(Reason::NotReadable));
    assert!(
        r.fix
            .as_deref()
            .unwrap_or_default()
            .contains("list networkpolicies"),
        "{r:?}"
    );
    // The evidence names the verb the fix asks for (a collection is listed, not got).
    assert_eq!(
        r.evidence,
        ["list networkpolicies in gitlab: HTTP 403 Forbidden"]
    );
}

#[test]
fn long_policy_lists_are_cut() {
    let names: Vec<String> = (0..25).map(|i| format!("p{i}")).collect();
    let text = short_list(&names);
    assert!(
        text.starts_with("p0, p1") && text.ends_with("p9, and 15 more"),
        "{text}"
    );
    assert_eq!(short_list(&names[..2]), "p0, p1");
}
