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
    /// A resolv.conf nameserver on port 53 (for the cluster DNS: its service address, what a
    /// policy sees before the DNAT).
    Dns,
    /// An endpoint of the cluster DNS service (EndpointSlices of `kube-system/kube-dns`) on
    /// port 53: what a policy sees after the DNAT, where most CNIs enforce.
    DnsEndpoint,
    /// The proxy a target goes through.
    Proxy { target: String },
}

impl Purpose {
    fn is_dns(&self) -> bool {
        matches!(self, Purpose::Dns | Purpose::DnsEndpoint)
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
            Purpose::DnsEndpoint => write!(f, " (cluster DNS pod, after DNAT)"),
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
    /// `None` when the pod could not be read: a host-network pod's `HOSTNAME` is the node's
    /// name, so a pod name that is not in the token finds no pod, and nothing says which it is.
    pub host_network: Option<bool>,
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
    if pod.host_network == Some(true) {
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
    let unknown = unknown.or_else(|| {
        pod.host_network.is_none().then(|| {
            "the runner pod could not be read: if it uses the host network, NetworkPolicies do not apply to it".to_string()
        })
    });
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
    /// A name this run resolved through the nameservers (`dns.resolve` answered by DNS), for
    /// evidence: DNS demonstrably works from here, whatever the policies seem to say.
    pub dns_worked: Option<String>,
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

/// The egress rule that allows DNS under both DNAT readings: the cluster DNS pods by label,
/// and by address the nameservers (pre-DNAT) and the DNS pods' endpoints (post-DNAT).
fn dns_rule_yaml(addresses: &[IpAddr]) -> String {
    let mut out = format!(
        "egress:\n- to:\n  - namespaceSelector:\n      matchLabels:\n        {NAME_LABEL}: {DNS_NAMESPACE}\n    podSelector:\n      matchLabels:\n        k8s-app: kube-dns\n"
    );
    for ns in addresses {
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
        .with_evidence(format!("list networkpolicies in {namespace}: {answer}"))
        .with_fix_detail(format!(
            "To let kube-reach judge egress, allow `list networkpolicies.networking.k8s.io` in namespace {namespace} to this service account (and `get pods` there for the pod's labels; for the DNAT readings `get services` and `list endpointslices.discovery.k8s.io` in default, and the same in kube-system for the cluster DNS)."
        ))
}

/// Judges every destination: one result for the API server route (subject: the namespace) and
/// one for DNS (subject: `<namespace> dns`), each pass or a finding with the YAML that fixes it.
pub fn judge(policies: &[NetworkPolicy], s: &Situation) -> Vec<CheckResult> {
    let decisions = decided(policies, s);
    let (dns, api): (Vec<_>, Vec<_>) = decisions.into_iter().partition(|(d, _)| d.purpose.is_dns());
    let mut out = vec![judge_group(Group::Api, &api, s, policies)];
    if !dns.is_empty() {
        out.push(judge_group(Group::Dns, &dns, s, policies));
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
    judge_group(Group::Api, &list, s, policies)
}

/// What one `netpol.egress` result is about: the route to the API server, or DNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Api,
    Dns,
}

impl Group {
    fn subject(self, namespace: &str) -> String {
        match self {
            Group::Api => namespace.to_string(),
            Group::Dns => subject_dns(namespace),
        }
    }
    fn reason(self) -> Reason {
        match self {
            Group::Api => Reason::BlocksApiserver,
            Group::Dns => Reason::BlocksDns,
        }
    }
    fn what(self) -> &'static str {
        match self {
            Group::Api => "the API server",
            Group::Dns => "DNS",
        }
    }
    /// The YAML that allows every destination of the group under both DNAT readings.
    fn rule_yaml(self, list: &[(Destination, Decision)]) -> String {
        let of = |p: fn(&Purpose) -> bool| -> Vec<(IpAddr, u16)> {
            let mut out: Vec<(IpAddr, u16)> = list
                .iter()
                .filter(|(d, _)| p(&d.purpose))
                .map(|(d, _)| (d.addr, d.port))
                .collect();
            out.dedup();
            out
        };
        match self {
            Group::Dns => {
                let mut addresses: Vec<IpAddr> = list.iter().map(|(d, _)| d.addr).collect();
                addresses.dedup();
                dns_rule_yaml(&addresses)
            }
            Group::Api => {
                let service = of(|p| matches!(p, Purpose::ServiceAddress));
                let endpoints = of(|p| matches!(p, Purpose::ServiceEndpoint));
                let direct: Vec<(IpAddr, u16)> =
                    of(|p| matches!(p, Purpose::ApiServer { .. } | Purpose::Proxy { .. }))
                        .into_iter()
                        .filter(|o| !endpoints.contains(o) && !service.contains(o))
                        .collect();
                apiserver_rule_yaml(&service, &endpoints, &direct)
            }
        }
    }
    /// Blocked on paper, yet the job got through: this CNI reads the policy the other way
    /// round the service DNAT, or enforces none. `Some(evidence)` when that is shown.
    fn works_here(self, blocked: &[&(Destination, Decision)], s: &Situation) -> Option<String> {
        match self {
            Group::Dns => s.dns_worked.as_ref().map(|name| {
                format!("yet {name} resolved through the nameservers from this pod: DNS works here")
            }),
            Group::Api => {
                let reached_service = s.destinations.iter().any(|d| {
                    matches!(d.purpose, Purpose::ServiceAddress)
                        && s.reached.contains(&(d.addr, d.port))
                });
                let through = blocked.iter().all(|(d, _)| {
                    s.reached.contains(&(d.addr, d.port))
                        || (reached_service
                            && matches!(
                                d.purpose,
                                Purpose::ServiceAddress | Purpose::ServiceEndpoint
                            ))
                });
                through.then(|| "yet the job got through to the API server from this pod".into())
            }
        }
    }
}

/// One `netpol.egress` result over the destinations of `group`: pass, `unknown` (some rule
/// cannot be decided), or the group's `blocks-*` finding naming the policies, with the fix
/// first and the YAML after it; a warning when the job demonstrably got through anyway.
fn judge_group(
    group: Group,
    list: &[(Destination, Decision)],
    s: &Situation,
    policies: &[NetworkPolicy],
) -> CheckResult {
    let subject = group.subject(&s.pod.namespace);
    let blocked: Vec<&(Destination, Decision)> =
        list.iter().filter(|(_, d)| d.is_blocked()).collect();
    let Some((first, decision)) = blocked.first().copied() else {
        let undecided = list
            .iter()
            .any(|(_, d)| matches!(d, Decision::Undecided { .. }));
        let result = if undecided {
            CheckResult::finding(CheckId::NetpolEgress, subject, Reason::Unknown)
        } else {
            CheckResult::pass(
                CheckId::NetpolEgress,
                subject,
                format!("the NetworkPolicies allow egress to {}", group.what()),
            )
        };
        return result.with_evidence_lines(evidence(list, policies));
    };
    let names = match decision {
        Decision::Blocked { policies } => short_list(policies),
        _ => String::new(),
    };
    let readings = " Both DNAT readings are listed where they are known, because CNIs differ in whether they match the service address before DNAT or the endpoint after it.";
    let mut result = CheckResult::finding(CheckId::NetpolEgress, &subject, group.reason())
        .with_summary(format!(
            "the egress NetworkPolicies selecting the runner pod ({names}) block {} at {first}",
            group.what()
        ))
        .with_evidence_lines(evidence(list, policies))
        .with_fix_detail(format!(
            "Add the egress rules below to one of the NetworkPolicies that select the runner pod ({names}), or apply them as a new policy with the same podSelector (policies are additive).{readings}"
        ));
    result.fix = result
        .fix
        .map(|fix| format!("{fix}\n{}", group.rule_yaml(list)));
    if let Some(seen) = group.works_here(&blocked, s) {
        result = result
            .with_status(Status::Warn)
            .with_summary(format!(
                "the egress NetworkPolicies selecting the runner pod ({names}) do not allow {} at {first}, {seen}: this CNI reads them the other way round the service DNAT, or does not enforce them",
                group.what()
            ))
            .with_evidence(seen);
    }
    result
}

mod cluster;
pub use cluster::{Attempted, ClusterView, apply, is_object_name};

#[cfg(test)]
mod tests;
