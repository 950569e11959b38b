//! `dns.resolve`: what the job's resolver answered, and two answers that work but mislead: a
//! managed cluster's public name answering a private address (`private-answer`), and a search
//! domain turning the name into another host's (`search-expanded`).

use std::net::IpAddr;

use crate::catalogue::{CheckId, Reason};
use crate::checks::cloud;
use crate::model::CheckResult;
use crate::net::resolve::{AnsweredBy, DnsSetup, ResolveFailure, Resolved, search_applied};

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
                        format!("answered by DNS for {answered}")
                    } else {
                        format!(
                            "answered by DNS for {answered} (search domain applied, ndots {})",
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
            let result = match misleading(name, resolved) {
                Some(finding) => finding,
                None => CheckResult::pass(id, name, format!("{name} → {}", addrs.join(", "))),
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
                result = result
                    .with_evidence(format!("{name} is {}", provider.label()))
                    .with_fix_detail(provider.private_endpoint_fix());
            }
            result
        }
    }
}

/// An answer that resolves but misleads, as a warning; `None` when the answer is plain.
/// The search list comes first: it decides which host the job talks to at all.
fn misleading(name: &str, resolved: &Resolved) -> Option<CheckResult> {
    search_expanded(name, resolved).or_else(|| private_answer(name, &resolved.addresses))
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

/// A managed cluster's public name that answered a private address.
fn private_answer(name: &str, addresses: &[IpAddr]) -> Option<CheckResult> {
    let (provider, private) = cloud::private_answer(name, addresses)?;
    Some(
        CheckResult::finding(CheckId::DnsResolve, name, Reason::PrivateAnswer)
            .with_summary(format!(
                "{name} ({}) answered a private address: reachable only inside its network",
                provider.label()
            ))
            .with_evidence(format!("private addresses: {}", join(&private)))
            .with_fix_detail(provider.private_endpoint_fix()),
    )
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
        let found = misleading("api.k8s.test", &r).expect("a warning");
        assert_eq!(found.reason, Some(Reason::SearchExpanded));
        assert!(found.summary.contains("api.k8s.test.wild.test"));
        // The usual short name completed by the search list: the name alone does not exist.
        let mut short = answered("api.k8s.test.", &["10.253.1.2"], None);
        short.absolute = Some(Err(ResolveFailure::Nxdomain));
        assert!(misleading("api", &short).is_none());
        // Same addresses either way: nothing misleads.
        let same = answered("api.corp.", &["10.0.0.1"], Some(&["10.0.0.1"]));
        assert!(misleading("api", &same).is_none());
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
    }

    #[test]
    fn a_cloud_name_answering_a_private_address_is_a_private_answer() {
        let eks = "abc.gr7.us-east-1.eks.amazonaws.com";
        let r = answered(&format!("{eks}."), &["10.0.190.233"], None);
        let found = misleading(eks, &r).expect("a warning");
        assert_eq!(found.reason, Some(Reason::PrivateAnswer));
        assert_eq!(found.status, crate::model::Status::Warn);
        let public = answered(&format!("{eks}."), &["35.202.107.4"], None);
        assert!(misleading(eks, &public).is_none());
    }
}
