//! `dns.resolve`.

use crate::catalogue::{CheckId, Reason};
use crate::model::CheckResult;
use crate::net::resolve::{AnsweredBy, DnsSetup, ResolveFailure, Resolved};

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
            CheckResult::pass(id, name, format!("{name} → {}", addrs.join(", ")))
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
            };
            let rcode = match failure {
                ResolveFailure::Nxdomain => "rcode NXDOMAIN".to_string(),
                ResolveFailure::NoRecords => "rcode NOERROR with no A/AAAA records".to_string(),
                ResolveFailure::Servfail => "rcode SERVFAIL".to_string(),
                ResolveFailure::Refused => "rcode REFUSED".to_string(),
                ResolveFailure::Timeout => "no answer (timeout)".to_string(),
                ResolveFailure::NoNameservers => "no nameserver lines".to_string(),
                ResolveFailure::Other(e) => e.clone(),
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
            result
        }
    }
}
