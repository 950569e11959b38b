//! `dns.resolve`: what the job's resolver answered, and two answers that work but mislead: a
//! managed cluster's public name answering a private address (`private-answer`), and a search
//! domain turning the name into another host's (`search-expanded`).

use std::net::IpAddr;

use crate::catalogue::{CheckId, Reason};
use crate::checks::cloud;
use crate::model::{CheckResult, Status};
use crate::net::connect::Attempt;
use crate::net::resolve::{AnsweredBy, DnsSetup, ResolveFailure, Resolved, search_applied};

/// How a result says a nameserver answered (not `/etc/hosts`, not an IP literal).
const ANSWERED_BY_DNS: &str = "answered by DNS for";

/// Whether `result` is a `dns.resolve` that a nameserver answered: DNS demonstrably works from
/// here (`netpol.egress` uses it against a policy that seems to block DNS).
pub fn answered_by_dns(result: &CheckResult) -> bool {
    result.id == CheckId::DnsResolve
        && matches!(result.status, Status::Pass | Status::Warn)
        && result
            .evidence
            .iter()
            .any(|e| e.starts_with(ANSWERED_BY_DNS))
}

pub fn resolve(
    name: &str,
    setup: &DnsSetup,
    outcome: &Result<Resolved, ResolveFailure>,
) -> CheckResult {
    let id = CheckId::DnsResolve;
    match outcome {
        Ok(resolved) => {
            let addrs: Vec<String> = resolved.addresses.iter().map(|a| a.to_string()).collect();
            let source = match &resolved.answered_by {
                AnsweredBy::HostsFile => format!("answered by {}", setup.hosts_path),
                AnsweredBy::Dns { name: answered } => {
                    let asked = format!("{}.", name.trim_end_matches('.'));
                    if answered.eq_ignore_ascii_case(&asked) || answered.eq_ignore_ascii_case(name)
                    {
                        format!("{ANSWERED_BY_DNS} {answered}")
                    } else {
                        format!(
                            "{ANSWERED_BY_DNS} {answered} (search domain applied, ndots {})",
                            setup.ndots
                        )
                    }
                }
            };
            let (v4, v6): (Vec<_>, Vec<_>) = resolved.addresses.iter().partition(|a| a.is_ipv4());
            let list = |v: &[&std::net::IpAddr]| {
                v.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let result = match search_expanded(name, resolved) {
                Some(finding) => finding,
                None => CheckResult::pass(id, name, format!("{name} → {}", addrs.join(", "))),
            };
            let result = match private_endpoint_note(name, &resolved.addresses) {
                Some(note) => result.with_evidence(note),
                None => result,
            };
            result
                .with_evidence(format!("A: [{}], AAAA: [{}]", list(&v4), list(&v6)))
                .with_evidence(source)
                .with_evidence(format!("resolved in {} ms", resolved.elapsed.as_millis()))
                .with_evidence(setup.describe())
        }
        Err(failure) => {
            let reason = match failure {
                ResolveFailure::NoNameservers => Reason::NoNameservers,
                ResolveFailure::Nxdomain => Reason::Nxdomain,
                ResolveFailure::NoRecords => Reason::NoRecords,
                ResolveFailure::Servfail => Reason::Servfail,
                ResolveFailure::Refused => Reason::Refused,
                ResolveFailure::Timeout => Reason::Timeout,
                ResolveFailure::Other(_) => Reason::ResolverError,
                ResolveFailure::CnameUnresolved { nxdomain: true, .. } => Reason::Nxdomain,
                ResolveFailure::CnameUnresolved { .. } => Reason::NoRecords,
            };
            let rcode = match failure {
                ResolveFailure::Nxdomain => "rcode NXDOMAIN".to_string(),
                ResolveFailure::NoRecords => "rcode NOERROR with no A/AAAA records".to_string(),
                ResolveFailure::Servfail => "rcode SERVFAIL".to_string(),
                ResolveFailure::Refused => "rcode REFUSED".to_string(),
                ResolveFailure::Timeout => "no answer (timeout)".to_string(),
                ResolveFailure::NoNameservers => "no nameserver lines".to_string(),
                ResolveFailure::Other(e) => e.clone(),
                ResolveFailure::CnameUnresolved {
                    target,
                    nxdomain: true,
                } => {
                    format!("CNAME {target}, which does not exist (rcode NXDOMAIN)")
                }
                ResolveFailure::CnameUnresolved { target, .. } => format!(
                    "CNAME {target}, and no address for it in the answer: the nameserver did not follow the alias, and the job's resolver (glibc, Go's in kubectl) does not either"
                ),
            };
            let mut result = CheckResult::finding(id, name, reason)
                .with_evidence(format!("{name}: {rcode}"))
                .with_evidence(setup.describe());
            if !setup.search.is_empty() && !name.contains('.') {
                result = result.with_evidence(format!(
                    "tried with search domains [{}]",
                    setup.search.join(" ")
                ));
            }
            if let Some(provider) = cloud::Provider::of_host(name)
                && *failure == ResolveFailure::Nxdomain
            {
                result = result.with_evidence(format!("{name} is {}", provider.label()));
                // Only a Private Link name lives in a private zone that outside resolvers do
                // not see; an EKS or GKE name that does not exist is a wrong or deleted name,
                // and the generic fix's "private DNS" would send the user the wrong way.
                if cloud::is_private_zone_name(name) {
                    result = result.with_fix_detail(provider.private_endpoint_fix());
                } else if let Some(fix) = provider.nxdomain_fix() {
                    result.fix = Some(fix.to_string());
                }
            }
            result
        }
    }
}

/// A search domain answered, and the name taken as absolute answers other addresses (or the
/// search domain's wildcard caught a name that exists elsewhere): the job talks to another
/// host than the name says.
fn search_expanded(name: &str, resolved: &Resolved) -> Option<CheckResult> {
    let AnsweredBy::Dns { name: answered } = &resolved.answered_by else {
        return None;
    };
    let Some(Ok(absolute)) = &resolved.absolute else {
        return None;
    };
    if !search_applied(&resolved.answered_by, name) || same_set(absolute, &resolved.addresses) {
        return None;
    }
    let answered = answered.trim_end_matches('.');
    Some(
        CheckResult::finding(CheckId::DnsResolve, name, Reason::SearchExpanded)
            .with_summary(format!(
                "{name} resolved as {answered} through the search list, not as itself"
            ))
            .with_evidence(format!(
                "{answered} (search list) → {}; {}. (absolute) → {}",
                join(&resolved.addresses),
                name.trim_end_matches('.'),
                join(absolute)
            ))
            .with_fix_detail(format!(
                "The job reaches {answered}, not {}.",
                name.trim_end_matches('.')
            )),
    )
}

/// The evidence line for a managed cluster's public name that answered a private address: a
/// private endpoint. Whether that is a problem only the connection tells
/// ([`judge_private_answer`]): from a runner inside the network it is the healthy setup.
fn private_endpoint_note(name: &str, addresses: &[IpAddr]) -> Option<String> {
    let (provider, private) = cloud::private_answer(name, addresses)?;
    Some(format!(
        "private endpoint: {name} is {} and answered private addresses {}, reachable only inside its network",
        provider.label(),
        join(&private)
    ))
}

/// `dns.resolve` once its addresses were tried (`tcp.connect` or `proxy.connect`): see
/// [`judge_private_answer`].
pub fn after_connect(result: CheckResult, attempts: &[Attempt]) -> CheckResult {
    let tried: Vec<(IpAddr, bool)> = attempts
        .iter()
        .map(|a| (a.addr.ip(), a.outcome.is_ok()))
        .collect();
    judge_private_answer(result, &tried)
}

/// `dns.resolve` once the connection was tried (`tried`: each address and whether it
/// connected): a managed name's private answer is `private-answer` (warn) only when a private
/// address it answered did not connect; when they all connect the job runs inside that network
/// and the passing result keeps its note. Other results pass unchanged.
pub fn judge_private_answer(result: CheckResult, tried: &[(IpAddr, bool)]) -> CheckResult {
    if result.id != CheckId::DnsResolve || result.status != Status::Pass {
        return result;
    }
    let Some(provider) = cloud::Provider::of_host(&result.subject) else {
        return result;
    };
    let unreached: Vec<IpAddr> = tried
        .iter()
        .filter(|(ip, connected)| !connected && cloud::is_private(ip))
        .map(|(ip, _)| *ip)
        .collect();
    if unreached.is_empty() {
        return result;
    }
    let name = result.subject.clone();
    let warning = CheckResult::finding(CheckId::DnsResolve, &name, Reason::PrivateAnswer)
        .with_summary(format!(
            "{name} ({}) answered a private address that does not connect from here: reachable only inside its network",
            provider.label()
        ))
        .with_evidence(format!(
            "private addresses that did not connect: {}",
            join(&unreached)
        ))
        .with_duration(result.duration);
    let mut warning = provider.fix(warning, provider.private_endpoint_fix());
    warning.evidence.extend(result.evidence);
    warning
}

fn same_set(a: &[IpAddr], b: &[IpAddr]) -> bool {
    a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

fn join(addresses: &[IpAddr]) -> String {
    let list: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
    format!("[{}]", list.join(", "))
}

/// `dns.resolve` for a server given by IP address: passed, nothing to look up.
pub fn ip_address(host: &str) -> CheckResult {
    CheckResult::pass(CheckId::DnsResolve, host, "IP address: no lookup needed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn answered(name: &str, addresses: &[&str], absolute: Option<&[&str]>) -> Resolved {
        let ips = |list: &[&str]| list.iter().map(|a| a.parse().unwrap()).collect();
        Resolved {
            addresses: ips(addresses),
            answered_by: AnsweredBy::Dns { name: name.into() },
            elapsed: Duration::ZERO,
            absolute: absolute.map(|a| Ok(ips(a))),
        }
    }

    #[test]
    fn a_search_domain_answering_other_addresses_is_search_expanded() {
        let r = answered(
            "api.k8s.test.wild.test.",
            &["10.253.99.1"],
            Some(&["10.253.1.2"]),
        );
        let found = search_expanded("api.k8s.test", &r).expect("a warning");
        assert_eq!(found.reason, Some(Reason::SearchExpanded));
        assert!(found.summary.contains("api.k8s.test.wild.test"));
        // The usual short name completed by the search list: the name alone does not exist.
        let mut short = answered("api.k8s.test.", &["10.253.1.2"], None);
        short.absolute = Some(Err(ResolveFailure::Nxdomain));
        assert!(search_expanded("api", &short).is_none());
        // Same addresses either way: nothing misleads.
        let same = answered("api.corp.", &["10.0.0.1"], Some(&["10.0.0.1"]));
        assert!(search_expanded("api", &same).is_none());
    }

    #[test]
    fn a_private_link_name_that_does_not_resolve_names_its_private_zone() {
        let setup = DnsSetup::load(
            std::path::Path::new("/nonexistent/resolv.conf"),
            std::path::Path::new("/nonexistent/hosts"),
        );
        let name = "aks-1a2b.5f0c.privatelink.westeurope.azmk8s.io";
        let r = resolve(name, &setup, &Err(ResolveFailure::Nxdomain));
        assert_eq!(r.reason, Some(Reason::Nxdomain));
        let fix = r.fix.unwrap_or_default();
        assert!(fix.contains("virtual network"), "{fix}");
        let plain = resolve("api.k8s.test", &setup, &Err(ResolveFailure::Nxdomain));
        assert!(!plain.fix.unwrap_or_default().contains("virtual network"));
        // EKS and GKE names are public: one that does not exist is no private endpoint.
        for public in [
            "abc.gr7.us-east-1.eks.amazonaws.com",
            "gke-0a1b-proj.europe-west1.gke.goog",
        ] {
            let r = resolve(public, &setup, &Err(ResolveFailure::Nxdomain));
            let fix = r.fix.unwrap_or_default();
            let provider = cloud::Provider::of_host(public).expect("managed");
            assert!(!fix.contains(provider.private_endpoint_fix()), "{fix}");
            // Not the generic "only resolvable on another network / private DNS" either: the
            // name is public, and the fix says where the real one is.
            assert!(!fix.contains("private DNS"), "{fix}");
            assert!(fix.contains("NXDOMAIN is not a private endpoint"), "{fix}");
            assert!(
                fix.contains("describe-cluster") || fix.contains("clusters describe"),
                "{fix}"
            );
            assert!(r.evidence.join(" ").contains(" is a"), "{:?}", r.evidence);
            // Any other failure keeps the generic fix (a SERVFAIL is the resolver's).
            let r = resolve(public, &setup, &Err(ResolveFailure::Servfail));
            assert!(!r.fix.unwrap_or_default().contains("NXDOMAIN is not"));
        }
    }

    /// GKE's DNS-based endpoint answering a private address that does not connect: the fix
    /// is GKE's own (run inside that VPC, or resolve publicly; IAM decides access), without the
    /// generic "allow the runner in its authorized networks", which GKE's DNS endpoint lacks.
    #[test]
    fn a_gke_private_answer_is_not_told_to_use_authorized_networks() {
        let gke = "gke-0a1b-proj.europe-west1.gke.goog";
        let private: IpAddr = "10.0.190.233".parse().unwrap();
        let r = answered(&format!("{gke}."), &["10.0.190.233"], None);
        let resolved = resolve(gke, &no_files(), &Ok(r));
        let warned = judge_private_answer(resolved, &[(private, false)]);
        assert_eq!(warned.reason, Some(Reason::PrivateAnswer));
        let fix = warned.fix.unwrap_or_default();
        assert!(fix.contains("container.clusters.connect"), "{fix}");
        assert!(!fix.contains("in its authorized networks"), "{fix}");
        // The same answer timing out at tcp.connect: GKE's words only, too.
        let attempts = [crate::net::connect::Attempt {
            addr: "10.0.190.233:443".parse().unwrap(),
            outcome: Err(crate::net::connect::ConnectFailure::Timeout),
            elapsed: Duration::from_secs(5),
            detail: "no answer".into(),
        }];
        let tcp = crate::checks::tcp::connect(CheckId::TcpConnect, "x:443", &attempts, None);
        let fix = crate::checks::tcp::explain_managed_endpoint(tcp, gke, &attempts)
            .fix
            .unwrap_or_default();
        assert!(fix.contains("container.clusters.connect"), "{fix}");
        assert!(!fix.contains("authorized networks)"), "{fix}");
    }

    fn no_files() -> DnsSetup {
        DnsSetup::load(
            std::path::Path::new("/nonexistent/resolv.conf"),
            std::path::Path::new("/nonexistent/hosts"),
        )
    }

    #[test]
    fn a_private_answer_that_connects_passes_with_the_note_and_one_that_does_not_warns() {
        let eks = "abc.gr7.us-east-1.eks.amazonaws.com";
        let private: IpAddr = "10.0.190.233".parse().unwrap();
        let r = answered(&format!("{eks}."), &["10.0.190.233"], None);
        let resolved = resolve(eks, &no_files(), &Ok(r));
        // Healthy in-VPC run: the private address connects.
        let inside = judge_private_answer(resolved.clone(), &[(private, true)]);
        assert_eq!(inside.status, Status::Pass, "{}", inside.summary);
        assert!(inside.reason.is_none());
        let note = inside.evidence.join("\n");
        assert!(
            note.contains("private endpoint") && note.contains("10.0.190.233"),
            "{note}"
        );
        // Outside the VPC: the same answer does not connect.
        let outside = judge_private_answer(resolved, &[(private, false)]);
        assert_eq!(outside.reason, Some(Reason::PrivateAnswer));
        assert_eq!(outside.status, Status::Warn);
        assert!(
            outside
                .fix
                .unwrap_or_default()
                .contains("inside the cluster's VPC")
        );
        // A public answer has no note and never warns.
        let public = answered(&format!("{eks}."), &["35.202.107.4"], None);
        let public = resolve(eks, &no_files(), &Ok(public));
        assert!(!public.evidence.join(" ").contains("private endpoint"));
        let ip: IpAddr = "35.202.107.4".parse().unwrap();
        assert_eq!(
            judge_private_answer(public, &[(ip, false)]).status,
            Status::Pass
        );
    }
}
