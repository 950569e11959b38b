//! What the in-cluster target read over its own verified connection (the runner pod, the
//! NetworkPolicies of its namespace, the `kubernetes` service and its EndpointSlices), and the
//! evaluator applied, after the run, to the addresses every target tried. A target whose
//! `tcp.connect timeout` (or `dns.resolve timeout`) a policy explains gets that policy as its
//! root cause, the way the GitLab checks explain agent failures.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::{Destination, Protocol, Purpose, RunnerPod, Situation, judge, judge_route};
use crate::catalogue::{CheckId, Reason};
use crate::model::{CheckResult, Status, TargetReport};
use crate::net::http::{HttpFailure, Response};
use crate::secret::{QUOTE_CHARS, quote};

/// The paths the in-cluster target asks for (namespace and pod filled in by [`ClusterView::paths`]).
pub const KUBERNETES_SERVICE_PATH: &str = "/api/v1/namespaces/default/services/kubernetes";
pub const KUBERNETES_SLICES_PATH: &str = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes";
/// The cluster DNS service (`kube-dns` on kubeadm, k3s, EKS, GKE and AKS alike, CoreDNS behind
/// it) and its EndpointSlices: the two readings of a policy for DNS.
pub const KUBE_DNS_SERVICE_PATH: &str = "/api/v1/namespaces/kube-system/services/kube-dns";
pub const KUBE_DNS_SLICES_PATH: &str = "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dkube-dns";

/// What the in-cluster target could read about its own surroundings.
#[derive(Debug, Clone)]
pub struct ClusterView {
    /// The in-cluster target's name.
    pub target: String,
    pub pod: RunnerPod,
    /// The pod's name, node and labels, for evidence.
    pub pod_evidence: Vec<String>,
    /// The policies, or what the server answered instead (`not-readable`).
    pub policies: Result<Vec<NetworkPolicy>, String>,
    /// The `kubernetes` service's ClusterIP and ports (pre-DNAT reading).
    pub service: Vec<(IpAddr, u16)>,
    /// Its EndpointSlice addresses and ports (post-DNAT reading).
    pub endpoints: Vec<(IpAddr, u16)>,
    /// The cluster DNS service's addresses, and its endpoints on port 53: when a nameserver
    /// is that service, a policy may match the DNS pods after the DNAT instead.
    pub dns_service: Vec<IpAddr>,
    pub dns_endpoints: Vec<IpAddr>,
}

/// One address a target tried to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempted {
    pub target: String,
    pub addr: SocketAddr,
    pub connected: bool,
    pub via_proxy: bool,
}

/// The object of a 200 answer, or what was answered instead.
fn object<T: serde::de::DeserializeOwned>(
    what: &str,
    answer: &Result<Response, HttpFailure>,
) -> Result<T, String> {
    match answer {
        Ok(r) if r.status == 200 => serde_json::from_slice(&r.body).map_err(|e| {
            let e = quote(&e.to_string(), QUOTE_CHARS);
            format!("{what}: the answer is not a valid object: {e}")
        }),
        Ok(r) => Err(format!(
            "{what}: HTTP {}: {}",
            r.status,
            quote(&r.excerpt(4 * QUOTE_CHARS), QUOTE_CHARS)
        )),
        Err(HttpFailure::Stalled) => Err(format!("{what}: no answer in time")),
        Err(HttpFailure::Failed(e)) => Err(format!("{what}: {e}")),
    }
}

#[derive(serde::Deserialize)]
struct List<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

/// A DNS-1123 subdomain (what a pod name is), so it can go into a request path as it is.
pub fn is_object_name(name: &str) -> bool {
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    name.len() <= 253
        && edge(name.bytes().next())
        && edge(name.bytes().last())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

impl ClusterView {
    /// Nothing was asked: `why` says what stopped the reads (a namespace that is no name).
    pub fn unasked(target: &str, namespace: &str, why: String) -> ClusterView {
        let mut view = ClusterView::from_answers(target, namespace, None, &[]);
        view.policies = Err(why);
        view.pod_evidence.clear();
        view
    }

    /// The policy, service and EndpointSlice paths (the API server's, then the cluster DNS's),
    /// then the pod's, to GET in that order.
    pub fn paths(namespace: &str, pod: Option<&str>) -> Vec<String> {
        let mut out = vec![format!(
            "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies"
        )];
        out.push(KUBERNETES_SERVICE_PATH.to_string());
        out.push(KUBERNETES_SLICES_PATH.to_string());
        out.push(KUBE_DNS_SERVICE_PATH.to_string());
        out.push(KUBE_DNS_SLICES_PATH.to_string());
        if let Some(pod) = pod {
            out.push(format!("/api/v1/namespaces/{namespace}/pods/{pod}"));
        }
        out
    }

    /// Builds the view from the answers to [`ClusterView::paths`] (same order; the pod answer
    /// is absent when the pod's name is unknown).
    pub fn from_answers(
        target: &str,
        namespace: &str,
        pod_name: Option<&str>,
        answers: &[Result<Response, HttpFailure>],
    ) -> ClusterView {
        let mut view = ClusterView {
            target: target.to_string(),
            pod: RunnerPod {
                namespace: namespace.to_string(),
                labels: None,
                host_network: None,
            },
            pod_evidence: Vec::new(),
            policies: Err("not asked".into()),
            service: Vec::new(),
            endpoints: Vec::new(),
            dns_service: Vec::new(),
            dns_endpoints: Vec::new(),
        };
        let mut answers = answers.iter();
        if let Some(a) = answers.next() {
            view.policies =
                object::<List<NetworkPolicy>>("list networkpolicies", a).map(|l| l.items);
        }
        match answers
            .next()
            .map(|a| object::<Service>("get service default/kubernetes", a))
        {
            Some(Ok(service)) => view.service = service_addresses(&service),
            Some(Err(e)) => view.pod_evidence.push(format!(
                "{e}: the pre-DNAT reading uses KUBERNETES_SERVICE_HOST alone"
            )),
            None => {}
        }
        match answers
            .next()
            .map(|a| object::<List<EndpointSlice>>("list endpointslices default", a))
        {
            Some(Ok(slices)) => view.endpoints = slice_addresses(&slices.items),
            Some(Err(e)) => view.pod_evidence.push(format!(
                "{e}: the post-DNAT reading (the API server's endpoints) is not judged"
            )),
            None => {}
        }
        view.read_cluster_dns(&mut answers);
        match (pod_name, answers.next()) {
            (Some(name), Some(a)) => match object::<Pod>("get pod", a) {
                Ok(pod) => {
                    let labels = pod.metadata.labels.clone().unwrap_or_default();
                    view.pod_evidence.push(pod_line(name, namespace, &pod, &labels));
                    view.pod.labels = Some(labels);
                    view.pod.host_network = Some(
                        pod.spec
                            .as_ref()
                            .and_then(|s| s.host_network)
                            .unwrap_or(false),
                    );
                }
                Err(e) => view.pod_evidence.push(format!(
                    "runner pod {name} in {namespace}: not readable ({e}); policies that select by label cannot be decided"
                )),
            },
            _ => view.pod_evidence.push(
                "runner pod: name unknown (no pod claim in the token, and HOSTNAME unset or no pod name)"
                    .to_string(),
            ),
        }
        view
    }
}

impl ClusterView {
    /// The cluster DNS service and its endpoints on port 53, from the next two answers; what
    /// is not readable leaves DNS to the pre-DNAT reading alone, and says so.
    fn read_cluster_dns<'a>(
        &mut self,
        answers: &mut impl Iterator<Item = &'a Result<Response, HttpFailure>>,
    ) {
        let not_judged = ": the post-DNAT reading of DNS (the cluster DNS pods) is not judged";
        match answers
            .next()
            .map(|a| object::<Service>("get service kube-system/kube-dns", a))
        {
            Some(Ok(service)) => {
                self.dns_service = service_addresses(&service)
                    .into_iter()
                    .map(|(ip, _)| ip)
                    .collect();
                self.dns_service.dedup();
            }
            Some(Err(e)) => self.pod_evidence.push(format!("{e}{not_judged}")),
            None => {}
        }
        match answers
            .next()
            .map(|a| object::<List<EndpointSlice>>("list endpointslices kube-system", a))
        {
            Some(Ok(slices)) => {
                self.dns_endpoints = slice_addresses(&slices.items)
                    .into_iter()
                    .filter(|(_, port)| *port == 53)
                    .map(|(ip, _)| ip)
                    .collect();
                self.dns_endpoints.dedup();
            }
            Some(Err(e)) => self.pod_evidence.push(format!("{e}{not_judged}")),
            None => {}
        }
    }
}

fn pod_line(name: &str, namespace: &str, pod: &Pod, labels: &BTreeMap<String, String>) -> String {
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_else(|| "?".into());
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "runner pod {name} in {namespace} on node {node}, labels: {}",
        if labels.is_empty() {
            "(none)".into()
        } else {
            labels.join(", ")
        }
    )
}

fn service_addresses(service: &Service) -> Vec<(IpAddr, u16)> {
    let Some(spec) = &service.spec else {
        return Vec::new();
    };
    let ips = spec
        .cluster_ips
        .clone()
        .or_else(|| spec.cluster_ip.clone().map(|ip| vec![ip]))
        .unwrap_or_default();
    let ports: Vec<u16> = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| u16::try_from(p.port).ok())
        .collect();
    ips.iter()
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .flat_map(|ip| ports.iter().map(move |p| (ip, *p)))
        .collect()
}

fn slice_addresses(slices: &[EndpointSlice]) -> Vec<(IpAddr, u16)> {
    let mut out = Vec::new();
    for slice in slices.iter().take(16) {
        let ports: Vec<u16> = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.port.and_then(|p| u16::try_from(p).ok()))
            .collect();
        for endpoint in slice.endpoints.iter().take(64) {
            for addr in endpoint
                .addresses
                .iter()
                .filter_map(|a| a.parse::<IpAddr>().ok())
            {
                out.extend(ports.iter().map(|p| (addr, *p)));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn tcp(addr: IpAddr, port: u16, purpose: Purpose) -> Destination {
    Destination {
        addr,
        port,
        protocol: Protocol::Tcp,
        purpose,
    }
}

fn target_destinations(paths: &[&Attempted]) -> Vec<Destination> {
    paths
        .iter()
        .map(|p| {
            let purpose = if p.via_proxy {
                Purpose::Proxy {
                    target: p.target.clone(),
                }
            } else {
                Purpose::ApiServer {
                    target: p.target.clone(),
                }
            };
            tcp(p.addr.ip(), p.addr.port(), purpose)
        })
        .collect()
}

fn read_by(view: &ClusterView) -> String {
    format!(
        "NetworkPolicies of namespace {} read by target {}",
        view.pod.namespace, view.target
    )
}

/// Applies the evaluator to every target once all have run: the in-cluster target gets its own
/// route and DNS rows, every other target that tried addresses a row about them, and a target
/// whose timeout a policy explains gets that policy as its root cause.
pub fn apply(
    targets: &mut [TargetReport],
    view: &ClusterView,
    paths: &[Attempted],
    nameservers: &[IpAddr],
) {
    let Some(own) = targets.iter().position(|t| t.name == view.target) else {
        return;
    };
    let policies = match &view.policies {
        Ok(p) => p,
        Err(answer) => {
            let result = super::not_readable(&view.pod.namespace, answer)
                .with_evidence_lines(view.pod_evidence.iter().cloned());
            return push(&mut targets[own], vec![result]);
        }
    };
    let reached: Vec<(IpAddr, u16)> = paths
        .iter()
        .filter(|p| p.connected)
        .map(|p| (p.addr.ip(), p.addr.port()))
        .collect();
    let mut destinations: Vec<Destination> = view
        .service
        .iter()
        .map(|(a, p)| tcp(*a, *p, Purpose::ServiceAddress))
        .chain(
            view.endpoints
                .iter()
                .map(|(a, p)| tcp(*a, *p, Purpose::ServiceEndpoint)),
        )
        .collect();
    let own_paths: Vec<&Attempted> = paths
        .iter()
        .filter(|p| {
            p.target == view.target && !view.service.contains(&(p.addr.ip(), p.addr.port()))
        })
        .collect();
    destinations.extend(target_destinations(&own_paths));
    destinations.extend(dns_destinations(view, nameservers));
    let dns_worked = targets.iter().find_map(|t| {
        t.checks
            .iter()
            .find(|c| crate::checks::dns::answered_by_dns(c))
            .map(|c| format!("{} (target {})", c.subject, t.name))
    });
    let situation = |destinations| Situation {
        pod: view.pod.clone(),
        destinations,
        reached: reached.clone(),
        dns_worked: dns_worked.clone(),
    };
    let mut own_results = judge(policies, &situation(destinations));
    for r in &mut own_results {
        r.evidence.extend(view.pod_evidence.iter().cloned());
    }
    let dns_block = own_results
        .iter()
        .find(|r| r.reason == Some(Reason::BlocksDns) && r.status == Status::Fail)
        .cloned();
    push(&mut targets[own], own_results);
    for (i, t) in targets.iter_mut().enumerate() {
        if i == own {
            continue;
        }
        let mine: Vec<&Attempted> = paths.iter().filter(|p| p.target == t.name).collect();
        if !mine.is_empty() {
            let result = judge_route(policies, &situation(target_destinations(&mine)))
                .with_evidence(read_by(view));
            let explains = result.reason == Some(Reason::BlocksApiserver)
                && result.status == Status::Fail
                && timed_out(t, &[CheckId::TcpConnect, CheckId::ProxyConnect]);
            push(t, vec![result]);
            if explains {
                t.explain_root_cause(CheckId::NetpolEgress, Reason::BlocksApiserver);
            }
        }
        if let Some(dns) = dns_block
            .as_ref()
            .filter(|_| timed_out(t, &[CheckId::DnsResolve]))
        {
            push(t, vec![dns.clone().with_evidence(read_by(view))]);
            t.explain_root_cause(CheckId::NetpolEgress, Reason::BlocksDns);
        }
    }
}

/// Port 53 over UDP and TCP to the first nameservers (pre-DNAT) and, when one of them is the
/// cluster DNS service, to that service's endpoints (post-DNAT).
fn dns_destinations(view: &ClusterView, nameservers: &[IpAddr]) -> Vec<Destination> {
    let nameservers = &nameservers[..nameservers.len().min(3)];
    let behind_service = nameservers.iter().any(|ns| view.dns_service.contains(ns));
    let endpoints = view.dns_endpoints.iter().take(8).filter(|_| behind_service);
    let addresses = nameservers
        .iter()
        .map(|a| (*a, Purpose::Dns))
        .chain(endpoints.map(|a| (*a, Purpose::DnsEndpoint)));
    addresses
        .flat_map(|(addr, purpose)| {
            [Protocol::Udp, Protocol::Tcp].map(|protocol| Destination {
                addr,
                port: 53,
                protocol,
                purpose: purpose.clone(),
            })
        })
        .collect()
}

/// Is the target's root cause a timeout of one of `ids`?
fn timed_out(t: &TargetReport, ids: &[CheckId]) -> bool {
    t.root_cause
        .is_some_and(|rc| ids.contains(&rc.check) && rc.reason == Reason::Timeout)
}

/// Adds results and recomputes the verdict and the layer-order root cause. A placeholder row
/// of the same check and subject (a skip: the report's shape had it, but judging comes only
/// now, after every target ran, whatever stopped the target's own steps) gives way to the result.
fn push(t: &mut TargetReport, results: Vec<CheckResult>) {
    t.checks.retain(|c| {
        c.status != Status::Skip
            || !results
                .iter()
                .any(|r| r.id == c.id && r.subject == c.subject)
    });
    t.add(results);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{TargetKind, Verdict};
    use serde_json::json;

    fn report(name: &str, kind: TargetKind, checks: Vec<CheckResult>) -> TargetReport {
        TargetReport::new(name, kind, "", checks)
    }

    fn view(policies: serde_json::Value) -> ClusterView {
        ClusterView {
            target: "in-cluster".into(),
            pod: RunnerPod {
                namespace: "gitlab".into(),
                labels: Some(BTreeMap::new()),
                host_network: Some(false),
            },
            pod_evidence: vec![],
            policies: Ok(serde_json::from_value(policies).expect("policies")),
            service: vec![("10.96.0.1".parse().expect("ip"), 443)],
            endpoints: vec![("172.18.0.2".parse().expect("ip"), 6443)],
            dns_service: vec!["10.96.0.10".parse().expect("ip")],
            dns_endpoints: vec!["172.18.0.53".parse().expect("ip")],
        }
    }

    /// Allows the kubernetes service (both readings), nothing else: no DNS, no outside address.
    fn service_only() -> serde_json::Value {
        json!([{"metadata": {"name": "only-apiserver"}, "spec": {"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}, {"ipBlock": {"cidr": "172.18.0.2/32"}}]}]}}])
    }

    fn path(target: &str, addr: &str, connected: bool) -> Attempted {
        Attempted {
            target: target.into(),
            addr: addr.parse().expect("addr"),
            connected,
            via_proxy: false,
        }
    }

    fn world(prod_checks: Vec<CheckResult>) -> Vec<TargetReport> {
        vec![
            report(
                "in-cluster",
                TargetKind::InCluster,
                vec![CheckResult::pass(
                    CheckId::TcpConnect,
                    "10.96.0.1:443",
                    "ok",
                )],
            ),
            report("prod", TargetKind::Direct, prod_checks),
        ]
    }

    #[test]
    fn a_tcp_timeout_the_policy_explains_gets_the_policy_as_root_cause() {
        let mut targets = world(vec![CheckResult::finding(
            CheckId::TcpConnect,
            "api.prod:6443",
            Reason::Timeout,
        )]);
        let paths = [
            path("in-cluster", "10.96.0.1:443", true),
            path("prod", "203.0.113.10:6443", false),
        ];
        apply(&mut targets, &view(service_only()), &paths, &[]);
        let prod = &targets[1];
        let rc = prod.root_cause.expect("root cause");
        assert_eq!(
            (rc.check, rc.reason),
            (CheckId::NetpolEgress, Reason::BlocksApiserver)
        );
        let row = prod
            .checks
            .iter()
            .find(|c| c.id == CheckId::NetpolEgress)
            .expect("row");
        assert!(row.summary.contains("only-apiserver") && row.summary.contains("203.0.113.10"));
        assert!(
            row.fix
                .as_deref()
                .unwrap_or_default()
                .contains("cidr: 203.0.113.10/32")
        );
        // The in-cluster target's own route is allowed.
        let own = targets[0]
            .checks
            .iter()
            .find(|c| c.id == CheckId::NetpolEgress);
        assert_eq!(own.map(|c| c.status), Some(Status::Pass));
        assert_eq!(targets[0].verdict, Verdict::Pass);
    }

    #[test]
    fn a_dns_timeout_the_policy_explains_names_blocks_dns() {
        let mut targets = world(vec![CheckResult::finding(
            CheckId::DnsResolve,
            "api.prod",
            Reason::Timeout,
        )]);
        let paths = [path("in-cluster", "10.96.0.1:443", true)];
        let ns = ["10.96.0.10".parse().expect("ip")];
        apply(&mut targets, &view(service_only()), &paths, &ns);
        let rc = targets[1].root_cause.expect("root cause");
        assert_eq!(
            (rc.check, rc.reason),
            (CheckId::NetpolEgress, Reason::BlocksDns)
        );
    }

    #[test]
    fn a_timeout_the_policies_allow_stands_and_a_refusal_is_never_explained() {
        let allow_all = json!([{"metadata": {"name": "allow-all"}, "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}}]);
        let mut targets = world(vec![CheckResult::finding(
            CheckId::TcpConnect,
            "api.prod:6443",
            Reason::Timeout,
        )]);
        let paths = [path("prod", "203.0.113.10:6443", false)];
        apply(&mut targets, &view(allow_all), &paths, &[]);
        let rc = targets[1].root_cause.expect("root cause");
        assert_eq!(
            (rc.check, rc.reason),
            (CheckId::TcpConnect, Reason::Timeout)
        );
        // A refusal is an answer from the far side: no policy explains it (policies drop).
        let mut targets = world(vec![CheckResult::finding(
            CheckId::TcpConnect,
            "api.prod:6443",
            Reason::Refused,
        )]);
        apply(&mut targets, &view(service_only()), &paths, &[]);
        let rc = targets[1].root_cause.expect("root cause");
        assert_eq!(
            (rc.check, rc.reason),
            (CheckId::TcpConnect, Reason::Refused)
        );
    }

    fn dns_row(t: &TargetReport) -> &CheckResult {
        t.checks
            .iter()
            .find(|c| c.id == CheckId::NetpolEgress && c.subject == "gitlab dns")
            .expect("dns row")
    }

    /// Allows the kubernetes service and, by address, only the given DNS address.
    fn dns_by_address(cidr: &str) -> serde_json::Value {
        json!([{"metadata": {"name": "dns-by-ip"}, "spec": {"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}, {"ipBlock": {"cidr": "172.18.0.2/32"}}]},
                       {"to": [{"ipBlock": {"cidr": cidr}}], "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]}}])
    }

    #[test]
    fn dns_is_judged_under_both_dnat_readings_with_the_fix_before_the_yaml() {
        let ns = ["10.96.0.10".parse().expect("ip")];
        let paths = [path("in-cluster", "10.96.0.1:443", true)];
        // Only the service address allowed: the CNIs that match after the DNAT drop DNS.
        let mut targets = world(vec![]);
        apply(
            &mut targets,
            &view(dns_by_address("10.96.0.10/32")),
            &paths,
            &ns,
        );
        let row = dns_row(&targets[0]);
        assert_eq!(
            (row.status, row.reason),
            (Status::Fail, Some(Reason::BlocksDns)),
            "{row:?}"
        );
        assert!(row.summary.contains("172.18.0.53"), "{}", row.summary);
        let fix = row.fix.as_deref().unwrap_or_default();
        let yaml = fix.find("egress:").expect("yaml");
        assert!(
            fix.find("Add the egress rules").is_some_and(|i| i < yaml),
            "{fix}"
        );
        assert!(
            fix.find("UDP and TCP port 53").is_some_and(|i| i < yaml),
            "{fix}"
        );
        assert!(
            fix.contains("cidr: 172.18.0.53/32") && fix.contains("cidr: 10.96.0.10/32"),
            "{fix}"
        );
        // Both readings allowed: DNS passes.
        let mut targets = world(vec![]);
        let both = json!([{"metadata": {"name": "dns-both"}, "spec": {"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}, {"ipBlock": {"cidr": "172.18.0.2/32"}},
                {"ipBlock": {"cidr": "10.96.0.10/32"}}, {"ipBlock": {"cidr": "172.18.0.0/24"}}]}]}}]);
        apply(&mut targets, &view(both), &paths, &ns);
        assert_eq!(dns_row(&targets[0]).status, Status::Pass);
    }

    #[test]
    fn a_dns_block_on_paper_is_a_warning_when_dns_worked_from_here() {
        let ns = ["10.96.0.10".parse().expect("ip")];
        let paths = [path("in-cluster", "10.96.0.1:443", true)];
        let resolved =
            CheckResult::pass(CheckId::DnsResolve, "api.prod", "api.prod → 203.0.113.10")
                .with_evidence("answered by DNS for api.prod.");
        let mut targets = world(vec![resolved]);
        apply(&mut targets, &view(service_only()), &paths, &ns);
        let row = dns_row(&targets[0]);
        assert_eq!(
            (row.status, row.reason),
            (Status::Warn, Some(Reason::BlocksDns)),
            "{row:?}"
        );
        assert!(
            row.evidence
                .join(" ")
                .contains("api.prod (target prod) resolved"),
            "{row:?}"
        );
        assert_eq!(targets[0].verdict, Verdict::Warn);
        // From /etc/hosts, a name proves nothing about DNS.
        let hosts = CheckResult::pass(CheckId::DnsResolve, "api.prod", "api.prod → 203.0.113.10")
            .with_evidence("answered by /etc/hosts");
        let mut targets = world(vec![hosts]);
        apply(&mut targets, &view(service_only()), &paths, &ns);
        assert_eq!(dns_row(&targets[0]).status, Status::Fail);
    }

    #[test]
    fn a_pod_that_could_not_be_read_may_be_a_host_network_pod_and_explains_no_timeout() {
        let mut targets = world(vec![CheckResult::finding(
            CheckId::TcpConnect,
            "api.prod:6443",
            Reason::Timeout,
        )]);
        let paths = [
            path("in-cluster", "10.96.0.1:443", true),
            path("prod", "203.0.113.10:6443", false),
        ];
        let mut unread = view(service_only());
        unread.pod.labels = None;
        unread.pod.host_network = None;
        apply(&mut targets, &unread, &paths, &[]);
        let rc = targets[1].root_cause.expect("root cause");
        assert_eq!(
            (rc.check, rc.reason),
            (CheckId::TcpConnect, Reason::Timeout)
        );
        let row = targets[1]
            .checks
            .iter()
            .find(|c| c.id == CheckId::NetpolEgress)
            .expect("row");
        assert_eq!(row.reason, Some(Reason::Unknown), "{row:?}");
        assert!(row.evidence.join(" ").contains("host network"), "{row:?}");
    }

    fn answer(status: u16, body: serde_json::Value) -> Result<Response, HttpFailure> {
        Ok(Response::of_json(status, &body))
    }

    #[test]
    fn answers_become_a_view_and_what_is_unreadable_is_said() {
        let answers = [
            answer(
                200,
                json!({"items": [{"metadata": {"name": "deny"}, "spec": {"podSelector": {}}}]}),
            ),
            answer(
                403,
                json!({"kind": "Status", "message": "services \"kubernetes\" is forbidden"}),
            ),
            answer(
                200,
                json!({"items": [{"addressType": "IPv4", "metadata": {},
                "endpoints": [{"addresses": ["172.18.0.2"]}], "ports": [{"port": 6443}]}]}),
            ),
            answer(
                200,
                json!({"metadata": {"name": "kube-dns"}, "spec": {"clusterIP": "10.96.0.10",
                "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}}),
            ),
            answer(
                200,
                json!({"items": [{"addressType": "IPv4", "metadata": {},
                "endpoints": [{"addresses": ["172.18.0.53"]}],
                "ports": [{"port": 53, "protocol": "UDP"}, {"port": 9153}]}]}),
            ),
            answer(
                200,
                json!({"metadata": {"name": "p", "labels": {"app": "job"}},
                "spec": {"nodeName": "n1", "hostNetwork": false, "containers": []}}),
            ),
        ];
        let view = ClusterView::from_answers("in-cluster", "gitlab", Some("p"), &answers);
        assert_eq!(view.policies.as_ref().map(Vec::len), Ok(1));
        assert!(view.service.is_empty());
        assert_eq!(
            view.endpoints,
            vec![("172.18.0.2".parse().expect("ip"), 6443)]
        );
        assert_eq!(
            view.dns_service,
            vec!["10.96.0.10".parse::<IpAddr>().expect("ip")]
        );
        assert_eq!(
            view.dns_endpoints,
            vec!["172.18.0.53".parse::<IpAddr>().expect("ip")]
        );
        assert_eq!(view.pod.host_network, Some(false));
        assert_eq!(
            view.pod
                .labels
                .as_ref()
                .and_then(|l| l.get("app"))
                .map(String::as_str),
            Some("job")
        );
        let evidence = view.pod_evidence.join("\n");
        assert!(
            evidence.contains("HTTP 403") && evidence.contains("pre-DNAT"),
            "{evidence}"
        );
        assert!(evidence.contains("on node n1"), "{evidence}");
        let denied = [answer(403, json!({"kind": "Status"}))];
        let view = ClusterView::from_answers("in-cluster", "gitlab", None, &denied);
        assert!(view.policies.is_err());
    }

    #[test]
    fn a_placeholder_row_gives_way_to_the_judged_one() {
        let mut targets = world(vec![]);
        targets[0].checks.push(CheckResult::not_applicable(
            CheckId::NetpolEgress,
            "gitlab",
            "not reached",
        ));
        let denied = CheckResult::finding(CheckId::RbacCanI, "get pods -n gitlab", Reason::Denied);
        targets[0].checks.push(CheckResult::blocked(
            CheckId::NetpolEgress,
            "gitlab",
            &denied,
        ));
        let paths = [path("in-cluster", "10.96.0.1:443", true)];
        apply(&mut targets, &view(service_only()), &paths, &[]);
        let rows: Vec<&CheckResult> = targets[0]
            .checks
            .iter()
            .filter(|c| c.id == CheckId::NetpolEgress && c.subject == "gitlab")
            .collect();
        assert_eq!(rows.len(), 1, "{rows:#?}");
        assert_eq!(rows[0].status, Status::Pass);
    }

    /// What a server sends instead of an object is quoted redacted and cut, the serde error
    /// (which quotes the input) included.
    #[test]
    fn hostile_answers_are_quoted_redacted_and_cut() {
        let token = "glpat-Qq1Ww2Ee3Rr4Tt5Yy6Uu";
        let long = format!("{} {token} {}", "a".repeat(290), "b".repeat(30_000));
        let not_an_object = answer(200, json!({"items": long}));
        let forbidden = answer(403, json!({"message": long}));
        for a in [not_an_object, forbidden] {
            let view = ClusterView::from_answers("in-cluster", "gitlab", None, &[a]);
            let said = view.policies.expect_err("not readable");
            assert!(said.len() < 1_500, "{}", said.len());
            assert!(said.contains("more characters)"), "{said}");
            assert!(!said.contains("Qq1Ww2"), "{said}");
        }
    }

    #[test]
    fn only_real_names_go_into_request_paths() {
        assert!(is_object_name("runner-abc-1.x"));
        for bad in ["", "-a", "a-", "A", "a/b", "a?b", "..", &"a".repeat(254)] {
            assert!(!is_object_name(bad), "{bad}");
        }
        let view = ClusterView::unasked("in-cluster", "../x", "no namespace".into());
        assert_eq!(
            view.policies.as_ref().err().map(String::as_str),
            Some("no namespace")
        );
    }
}
