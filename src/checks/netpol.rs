//! `netpol.egress`: would the NetworkPolicies of the runner's namespace let the runner pod reach
//! what its targets need (the API server before and after the service DNAT, the DNS servers, the
//! proxy)? A pure evaluator of the Kubernetes semantics plus the judging into `CheckResult`s; the
//! engine fetches the objects, nothing here touches the network.
//!
//! The rules (<https://kubernetes.io/docs/concepts/services-networking/network-policies/>):
//! policies are additive (a connection is allowed when any rule of any policy that selects the pod
//! allows it); a pod selected by no egress policy may go anywhere; a policy is about egress when
//! its `policyTypes` include `Egress`, or, with `policyTypes` absent, when it has egress rules. A
//! rule matches when one of its `to` peers and one of its `ports` match (an absent list matches
//! everything). `podSelector`/`namespaceSelector` peers select pods, so they never match a
//! host-network API server, a service address or an address outside the cluster; a named port
//! names a container port of the *destination* pod, so it can only be resolved against pods.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::catalogue::{CheckId, Reason};
use crate::model::{CheckResult, Status};

/// The namespace the cluster DNS pods live in on every common distribution; its
/// `kubernetes.io/metadata.name` label is set by the API server itself (since 1.21).
const DNS_NAMESPACE: &str = "kube-system";
const NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// Policy names shown in one summary or evidence line.
const NAMES_SHOWN: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// What a destination is for, which decides the reason and the wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// A target's API server address as the job connects to it (its server URL).
    ApiServer { target: String },
    /// The `kubernetes` service's ClusterIP:443: what a policy sees before the service DNAT.
    ServiceAddress,
    /// An endpoint of the `kubernetes` service (EndpointSlice `default/kubernetes`, usually
    /// :6443): what a policy sees after the DNAT, which is where most CNIs enforce.
    ServiceEndpoint,
    /// A resolv.conf nameserver on port 53.
    Dns,
    /// The proxy a target goes through.
    Proxy { target: String },
}

impl Purpose {
    fn is_dns(&self) -> bool {
        matches!(self, Purpose::Dns)
    }
}

/// One address, port and protocol the job needs to reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub addr: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    pub purpose: Purpose,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = match self.addr {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        write!(f, "{addr}:{}/{}", self.port, self.protocol.as_str())?;
        match &self.purpose {
            Purpose::ApiServer { target } => write!(f, " (server of target {target})"),
            Purpose::ServiceAddress => write!(f, " (kubernetes service, before DNAT)"),
            Purpose::ServiceEndpoint => write!(f, " (kubernetes service endpoint, after DNAT)"),
            Purpose::Dns => write!(f, " (nameserver)"),
            Purpose::Proxy { target } => write!(f, " (proxy of {target})"),
        }
    }
}

/// The runner pod as far as the API told us.
#[derive(Debug, Clone, Default)]
pub struct RunnerPod {
    pub namespace: String,
    /// `None` when the pod could not be read: selectors other than `{}` are then undecidable.
    pub labels: Option<BTreeMap<String, String>>,
    /// `spec.hostNetwork`: such a pod sends from the node's address, and NetworkPolicies leave
    /// it alone ("behaviour for hostNetwork pods is undefined"; common CNIs do not select them).
    pub host_network: bool,
}

/// A three-valued answer: rules over unknown labels or named ports cannot always be decided.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tri {
    Yes,
    No,
    Unknown(String),
}

impl Tri {
    fn from_bool(b: bool) -> Tri {
        if b { Tri::Yes } else { Tri::No }
    }
    /// Both must hold: a `No` wins over an unknown.
    fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::No, _) | (_, Tri::No) => Tri::No,
            (Tri::Unknown(a), _) | (_, Tri::Unknown(a)) => Tri::Unknown(a),
            _ => Tri::Yes,
        }
    }
    /// Either suffices: a `Yes` wins over an unknown.
    fn any(items: impl IntoIterator<Item = Tri>) -> Tri {
        let mut unknown = None;
        for item in items {
            match item {
                Tri::Yes => return Tri::Yes,
                Tri::Unknown(why) => unknown = unknown.or(Some(why)),
                Tri::No => {}
            }
        }
        unknown.map_or(Tri::No, Tri::Unknown)
    }
}

/// The evaluator's answer for one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No egress policy selects the pod.
    Unrestricted,
    /// The pod uses the node's network: policies do not apply to it.
    HostNetwork,
    /// Allowed by rule `rule` (0-based) of `policy`.
    Allowed { policy: String, rule: usize },
    /// Egress policies select the pod and none of their rules allows this.
    Blocked { policies: Vec<String> },
    /// A rule might allow it, but depends on what the evaluator cannot see.
    Undecided { policies: Vec<String>, why: String },
}

impl Decision {
    pub fn is_blocked(&self) -> bool {
        matches!(self, Decision::Blocked { .. })
    }
}

fn policy_name(policy: &NetworkPolicy) -> String {
    policy
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| "(unnamed)".into())
}

/// Does `policy` restrict egress? `policyTypes` when given; else "has egress rules", the
/// API server's defaulting (`pkg/apis/networking/v1/defaults.go`).
fn restricts_egress(policy: &NetworkPolicy) -> bool {
    let Some(spec) = &policy.spec else {
        return false;
    };
    match &spec.policy_types {
        Some(types) if !types.is_empty() => types.iter().any(|t| t == "Egress"),
        _ => spec.egress.as_ref().is_some_and(|e| !e.is_empty()),
    }
}

/// A label selector against labels; `None` labels (not readable) decide only `{}`.
fn selects(selector: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> Tri {
    let exprs = selector.match_expressions.as_deref().unwrap_or_default();
    let wanted = selector.match_labels.as_ref();
    if exprs.is_empty() && wanted.is_none_or(|m| m.is_empty()) {
        return Tri::Yes;
    }
    let Some(labels) = labels else {
        return Tri::Unknown("the runner pod's labels could not be read".into());
    };
    let plain = wanted
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions = exprs.iter().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            // The API server rejects other operators; an unknown one selects nothing.
            _ => false,
        }
    });
    Tri::from_bool(plain && expressions)
}

/// `{}` (or a selector with no terms): selects everything.
fn selector_is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|l| l.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty())
}

fn in_ip_block(block: &IPBlock, addr: IpAddr) -> bool {
    let contains = |cidr: &str| {
        cidr.parse::<ipnet::IpNet>()
            .map(|net| net.contains(&addr))
            .or_else(|_| cidr.parse::<IpAddr>().map(|ip| ip == addr))
            .unwrap_or(false)
    };
    contains(&block.cidr) && !block.except.iter().flatten().any(|e| contains(e))
}

/// One `to` peer. Pod-selecting peers can only be the cluster DNS pods behind a nameserver
/// address (whose labels we do not see); never an API server, a service address or a proxy.
fn peer_matches(peer: &NetworkPolicyPeer, dest: &Destination, pod: &RunnerPod) -> Tri {
    if let Some(block) = &peer.ip_block {
        return Tri::from_bool(in_ip_block(block, dest.addr));
    }
    if let Purpose::Proxy { .. } = dest.purpose {
        // A proxy may itself be pods behind a Service (squid in its own namespace), which such
        // a peer matches after the DNAT: undecidable, never blocked.
        return Tri::Unknown(format!(
            "a pod- or namespace-selecting peer may match the proxy's pods behind {}, whose labels kube-reach does not read",
            dest.addr
        ));
    }
    if !dest.purpose.is_dns() {
        return Tri::No;
    }
    let namespace = match &peer.namespace_selector {
        // `{}` selects every namespace, the DNS pods' too.
        Some(selector) if selector_is_empty(selector) => Tri::Yes,
        // The DNS namespace's labels are not read (nor is it sure to be `kube-system`: OpenShift
        // runs `openshift-dns`), and a selector may use any label (`name: kube-system` from older
        // guides): undecidable, never blocked.
        Some(_) => Tri::Unknown(format!(
            "a namespaceSelector may match the namespace of the cluster DNS pods behind {}, whose labels kube-reach does not read",
            dest.addr
        )),
        // A podSelector alone selects pods of the policy's own namespace.
        None => Tri::from_bool(pod.namespace == DNS_NAMESPACE),
    };
    namespace.and(Tri::Unknown(format!(
        "a pod-selecting peer may match the cluster DNS pods behind {}, whose labels kube-reach does not read",
        dest.addr
    )))
}

fn port_matches(port: &NetworkPolicyPort, dest: &Destination) -> Tri {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    if !protocol.eq_ignore_ascii_case(dest.protocol.as_str()) {
        return Tri::No;
    }
    match &port.port {
        None => Tri::Yes,
        Some(IntOrString::Int(first)) => {
            let last = port.end_port.unwrap_or(*first);
            Tri::from_bool((*first..=last).contains(&i32::from(dest.port)))
        }
        Some(IntOrString::String(name)) if dest.purpose.is_dns() => Tri::Unknown(format!(
            "named port `{name}` is resolved against the DNS pods' container ports, which kube-reach does not read"
        )),
        // A named port names a container port of the destination pod. The API server's
        // endpoint is usually no pod a policy sees (host network, or outside the cluster), so
        // most CNIs match nothing there; but kube-reach cannot read it to be sure.
        Some(IntOrString::String(name)) => Tri::Unknown(format!(
            "named port `{name}` can only match a container port of a destination pod; {} is probably no such pod (then the rule does not allow it: use the number, {})",
            dest.addr, dest.port
        )),
    }
}

fn rule_matches(rule: &NetworkPolicyEgressRule, dest: &Destination, pod: &RunnerPod) -> Tri {
    let ports = match rule.ports.as_deref() {
        None | Some([]) => Tri::Yes,
        Some(ports) => Tri::any(ports.iter().map(|p| port_matches(p, dest))),
    };
    let peers = match rule.to.as_deref() {
        None | Some([]) => Tri::Yes,
        Some(peers) => Tri::any(peers.iter().map(|p| peer_matches(p, dest, pod))),
    };
    ports.and(peers)
}

/// The egress policies among `policies` that select `pod`, and those that might (labels unknown).
fn selecting<'p>(
    policies: &'p [NetworkPolicy],
    pod: &RunnerPod,
) -> (Vec<&'p NetworkPolicy>, Vec<(&'p NetworkPolicy, String)>) {
    let mut sure = Vec::new();
    let mut maybe = Vec::new();
    for policy in policies.iter().filter(|p| restricts_egress(p)) {
        let in_namespace = policy
            .metadata
            .namespace
            .as_deref()
            .is_none_or(|ns| ns == pod.namespace);
        if !in_namespace {
            continue;
        }
        let selector = policy
            .spec
            .as_ref()
            .and_then(|s| s.pod_selector.clone())
            .unwrap_or_default();
        match selects(&selector, pod.labels.as_ref()) {
            Tri::Yes => sure.push(policy),
            Tri::Unknown(why) => maybe.push((policy, why)),
            Tri::No => {}
        }
    }
    (sure, maybe)
}

/// Decides one destination under the Kubernetes semantics.
pub fn decide(policies: &[NetworkPolicy], pod: &RunnerPod, dest: &Destination) -> Decision {
    if pod.host_network {
        return Decision::HostNetwork;
    }
    let (sure, maybe) = selecting(policies, pod);
    let all: Vec<&NetworkPolicy> = sure
        .iter()
        .copied()
        .chain(maybe.iter().map(|(p, _)| *p))
        .collect();
    let mut unknown = None;
    for policy in &all {
        // A policy's rules allow only for the pods it selects: one that may not select the
        // runner pod cannot make a destination allowed, only undecided.
        let selects_pod = sure.iter().any(|p| std::ptr::eq(*p, *policy));
        let rules = policy
            .spec
            .as_ref()
            .and_then(|s| s.egress.as_deref())
            .unwrap_or_default();
        for (i, rule) in rules.iter().enumerate() {
            match rule_matches(rule, dest, pod) {
                Tri::Yes if selects_pod => {
                    return Decision::Allowed {
                        policy: policy_name(policy),
                        rule: i,
                    };
                }
                Tri::Yes => {
                    let why = format!(
                        "{} allows it, but may not select the runner pod (its labels are not readable)",
                        policy_name(policy)
                    );
                    unknown = unknown.or(Some(why));
                }
                Tri::Unknown(why) => unknown = unknown.or(Some(why)),
                Tri::No => {}
            }
        }
    }
    let names = |list: &[&NetworkPolicy]| list.iter().map(|p| policy_name(p)).collect();
    if sure.is_empty() {
        return match maybe.first() {
            None => Decision::Unrestricted,
            // Only policies that might select the pod, and none allows: blocked only if they do.
            Some((_, why)) => Decision::Undecided {
                policies: names(&all),
                why: why.clone(),
            },
        };
    }
    match unknown {
        Some(why) => Decision::Undecided {
            policies: names(&all),
            why,
        },
        None => Decision::Blocked {
            policies: names(&sure),
        },
    }
}

/// What the judge needs besides the policies: the pod, the destinations, and whether each
/// target actually connected (a policy that blocks only one DNAT reading while the connection
/// works shows which reading this cluster's CNI enforces).
#[derive(Debug, Clone, Default)]
pub struct Situation {
    pub pod: RunnerPod,
    pub destinations: Vec<Destination>,
    /// Destinations the job did reach (`tcp.connect` passed to that address and port).
    pub reached: Vec<(IpAddr, u16)>,
}

fn decided(policies: &[NetworkPolicy], s: &Situation) -> Vec<(Destination, Decision)> {
    s.destinations
        .iter()
        .map(|d| (d.clone(), decide(policies, &s.pod, d)))
        .collect()
}

fn describe(dest: &Destination, decision: &Decision) -> String {
    match decision {
        Decision::Unrestricted => format!("{dest}: allowed (no egress policy selects the pod)"),
        Decision::HostNetwork => {
            format!("{dest}: not subject to NetworkPolicies (the runner pod uses the host network)")
        }
        Decision::Allowed { policy, rule } => {
            format!("{dest}: allowed by NetworkPolicy {policy}, egress rule #{rule}")
        }
        Decision::Blocked { policies } => format!(
            "{dest}: BLOCKED: selected by egress NetworkPolicies {} and none of their rules allows this address, port and protocol",
            short_list(policies)
        ),
        Decision::Undecided { policies, why } => {
            format!("{dest}: undecided under {}: {why}", short_list(policies))
        }
    }
}

/// The egress rules that would allow the API server under both DNAT readings (and any address
/// a target connects to directly), as YAML for a NetworkPolicy's `spec.egress`.
pub fn apiserver_rule_yaml(
    service: &[(IpAddr, u16)],
    endpoints: &[(IpAddr, u16)],
    direct: &[(IpAddr, u16)],
) -> String {
    let mut out = String::from("egress:\n");
    let mut block = |comment: &str, list: &[(IpAddr, u16)]| {
        if list.is_empty() {
            return;
        }
        out.push_str(&format!("# {comment}\n- to:\n"));
        for (addr, _) in list {
            out.push_str(&format!("  - ipBlock:\n      cidr: {}\n", host_cidr(*addr)));
        }
        out.push_str("  ports:\n");
        let mut ports: Vec<u16> = list.iter().map(|(_, p)| *p).collect();
        ports.sort_unstable();
        ports.dedup();
        for port in ports {
            out.push_str(&format!("  - protocol: TCP\n    port: {port}\n"));
        }
    };
    block(
        "pre-DNAT reading: the kubernetes service address (KUBERNETES_SERVICE_HOST)",
        service,
    );
    block(
        "post-DNAT reading: the API server endpoints (EndpointSlices of default/kubernetes)",
        endpoints,
    );
    block("the addresses the job connects to directly", direct);
    out
}

fn dns_rule_yaml(nameservers: &[IpAddr]) -> String {
    let mut out = format!(
        "egress:\n- to:\n  - namespaceSelector:\n      matchLabels:\n        {NAME_LABEL}: {DNS_NAMESPACE}\n    podSelector:\n      matchLabels:\n        k8s-app: kube-dns\n"
    );
    for ns in nameservers {
        out.push_str(&format!("  - ipBlock:\n      cidr: {}\n", host_cidr(*ns)));
    }
    out.push_str("  ports:\n  - protocol: UDP\n    port: 53\n  - protocol: TCP\n    port: 53\n");
    out
}

fn host_cidr(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}

fn subject_dns(namespace: &str) -> String {
    format!("{namespace} dns")
}

/// `netpol.egress` when the policies could not be listed: info, naming the permission.
pub fn not_readable(namespace: &str, answer: &str) -> CheckResult {
    CheckResult::finding(CheckId::NetpolEgress, namespace, Reason::NotReadable)
        .with_summary(format!(
            "the NetworkPolicies of namespace {namespace} are not readable with this service account (informational)"
        ))
        .with_evidence(format!("GET networkpolicies in {namespace}: {answer}"))
        .with_fix_detail(format!(
            "To let kube-reach judge egress, allow `list networkpolicies.networking.k8s.io` in namespace {namespace} to this service account (and `get pods` for the pod's labels, `get services,endpointslices` in default for the DNAT reading)."
        ))
}

/// Judges every destination: one result for the API server route (subject: the namespace) and
/// one for DNS (subject: `<namespace> dns`), each pass or a finding with the YAML that fixes it.
pub fn judge(policies: &[NetworkPolicy], s: &Situation) -> Vec<CheckResult> {
    let ns = &s.pod.namespace;
    let decisions = decided(policies, s);
    let (dns, api): (Vec<_>, Vec<_>) = decisions.into_iter().partition(|(d, _)| d.purpose.is_dns());
    let mut out = vec![judge_api(&api, s, policies)];
    if !dns.is_empty() {
        out.push(judge_dns(&dns, ns, policies));
    }
    out
}

/// At most [`NAMES_SHOWN`] names, then how many more: a namespace may hold hundreds of policies.
fn short_list(names: &[String]) -> String {
    let mut shown: Vec<&str> = names.iter().take(NAMES_SHOWN).map(String::as_str).collect();
    let more = names.len().saturating_sub(NAMES_SHOWN);
    let tail = format!("and {more} more");
    if more > 0 {
        shown.push(&tail);
    }
    shown.join(", ")
}

fn evidence(list: &[(Destination, Decision)], policies: &[NetworkPolicy]) -> Vec<String> {
    let names: Vec<String> = policies.iter().map(policy_name).collect();
    let mut lines = vec![format!(
        "{} NetworkPolicies in the namespace: {}",
        policies.len(),
        short_list(&names)
    )];
    lines.extend(list.iter().map(|(d, dec)| describe(d, dec)));
    lines
}

/// `netpol.egress <namespace>` over the API-server destinations only (no DNS).
pub fn judge_route(policies: &[NetworkPolicy], s: &Situation) -> CheckResult {
    let list: Vec<(Destination, Decision)> = decided(policies, s)
        .into_iter()
        .filter(|(d, _)| !d.purpose.is_dns())
        .collect();
    judge_api(&list, s, policies)
}

fn judge_api(
    list: &[(Destination, Decision)],
    s: &Situation,
    policies: &[NetworkPolicy],
) -> CheckResult {
    let ns = &s.pod.namespace;
    let blocked: Vec<&(Destination, Decision)> =
        list.iter().filter(|(_, d)| d.is_blocked()).collect();
    let undecided = list
        .iter()
        .any(|(_, d)| matches!(d, Decision::Undecided { .. }));
    if blocked.is_empty() {
        let result = if undecided {
            CheckResult::finding(CheckId::NetpolEgress, ns, Reason::Unknown)
        } else {
            CheckResult::pass(
                CheckId::NetpolEgress,
                ns,
                "the NetworkPolicies allow egress to the API server",
            )
        };
        return result.with_evidence_lines(evidence(list, policies));
    }
    let of = |p: fn(&Purpose) -> bool| -> Vec<(IpAddr, u16)> {
        list.iter()
            .filter(|(d, _)| p(&d.purpose))
            .map(|(d, _)| (d.addr, d.port))
            .collect()
    };
    let service = of(|p| matches!(p, Purpose::ServiceAddress));
    let endpoints = of(|p| matches!(p, Purpose::ServiceEndpoint));
    let others = of(|p| matches!(p, Purpose::ApiServer { .. } | Purpose::Proxy { .. }));
    let (first, decision) = blocked[0];
    let names = match decision {
        Decision::Blocked { policies } => short_list(policies),
        _ => String::new(),
    };
    // Blocked on paper, yet the job got through: this CNI reads the policy another way (the
    // other DNAT reading), or enforces none. It works here and breaks on a CNI that does.
    let reached_service = s.reached.iter().any(|r| service.contains(r));
    let works_here = blocked.iter().all(|(d, _)| {
        s.reached.contains(&(d.addr, d.port))
            || (reached_service
                && matches!(
                    d.purpose,
                    Purpose::ServiceAddress | Purpose::ServiceEndpoint
                ))
    });
    let direct: Vec<(IpAddr, u16)> = others
        .into_iter()
        .filter(|o| !endpoints.contains(o) && !service.contains(o))
        .collect();
    let yaml = apiserver_rule_yaml(&service, &endpoints, &direct);
    let readings = if service.is_empty() && endpoints.is_empty() {
        ""
    } else {
        " Both DNAT readings are listed because CNIs differ in whether they match the service address before DNAT or the endpoint after it."
    };
    let mut result = CheckResult::finding(CheckId::NetpolEgress, ns, Reason::BlocksApiserver)
        .with_summary(format!(
            "the egress NetworkPolicies selecting the runner pod ({names}) block {first}"
        ))
        .with_evidence_lines(evidence(list, policies))
        .with_fix_detail(format!(
            "Add these egress rules to one of the NetworkPolicies that select the runner pod ({names}), or apply them as a new policy with the same podSelector (policies are additive).{readings}\n{yaml}"
        ));
    if works_here {
        result = result.with_status(Status::Warn).with_summary(format!(
            "the egress NetworkPolicies selecting the runner pod ({names}) do not allow {first}, yet the job got through: this CNI reads them the other way round the service DNAT, or does not enforce them"
        ));
    }
    result
}

fn judge_dns(
    list: &[(Destination, Decision)],
    ns: &str,
    policies: &[NetworkPolicy],
) -> CheckResult {
    let subject = subject_dns(ns);
    let blocked: Vec<&(Destination, Decision)> =
        list.iter().filter(|(_, d)| d.is_blocked()).collect();
    if blocked.is_empty() {
        return CheckResult::pass(
            CheckId::NetpolEgress,
            subject,
            "the NetworkPolicies allow DNS (or might: see the evidence)",
        )
        .with_evidence_lines(evidence(list, policies));
    }
    let mut servers: Vec<IpAddr> = list.iter().map(|(d, _)| d.addr).collect();
    servers.dedup();
    let names = match &blocked[0].1 {
        Decision::Blocked { policies } => short_list(policies),
        _ => String::new(),
    };
    CheckResult::finding(CheckId::NetpolEgress, subject, Reason::BlocksDns)
        .with_summary(format!(
            "the egress NetworkPolicies selecting the runner pod ({names}) block DNS to {}",
            blocked[0].0
        ))
        .with_evidence_lines(evidence(list, policies))
        .with_fix_detail(format!(
            "Allow DNS egress (UDP and TCP 53) to the cluster DNS in one of the NetworkPolicies that select the runner pod ({names}), or as a new policy with the same podSelector:\n{}",
            dns_rule_yaml(&servers)
        ))
}

mod cluster;
pub use cluster::{Attempted, ClusterView, apply, is_object_name};

#[cfg(test)]
mod tests;
