//! Name resolution the way the job's libc would do it: `/etc/hosts` first, then the
//! nameservers, search list and `ndots` of the job's resolv.conf, through hickory-resolver so
//! NXDOMAIN, SERVFAIL, REFUSED and silence can be told apart.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::config::{LookupIpStrategy, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::{DnsHandle, FirstAnswer};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::{DnsRequestOptions, Query, ResponseCode};
use hickory_resolver::proto::rr::rdata::CNAME;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::{NameServerPool, PoolContext, Resolver};

use crate::env::read_bounded;

/// What the job's resolver configuration says, read once per run.
#[derive(Debug, Clone)]
pub struct DnsSetup {
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub ndots: usize,
    pub resolv_conf: String,
    pub hosts: Vec<(String, IpAddr)>,
    pub hosts_path: String,
    /// Why the hosts file could not be used, when it exists but could not be read.
    pub hosts_problem: Option<String>,
    config: Option<(ResolverConfig, ResolverOpts)>,
    /// Why resolv.conf could not be used, if it could not.
    pub problem: Option<String>,
}

impl DnsSetup {
    pub fn load(resolv_conf: &Path, hosts: &Path) -> DnsSetup {
        // A missing hosts file is ordinary; one that exists but cannot be read (a FIFO, a
        // folder, too large) is said in the environment.
        let (hosts_entries, hosts_problem) =
            match crate::env::read_file(hosts, crate::env::MAX_FILE_BYTES) {
                Ok(b) => (parse_hosts(&String::from_utf8_lossy(&b)), None),
                Err(crate::env::FileError::NotFound { .. }) => (Vec::new(), None),
                Err(e) => (Vec::new(), Some(e.to_string())),
            };
        let mut setup = DnsSetup {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            resolv_conf: resolv_conf.display().to_string(),
            hosts: hosts_entries,
            hosts_path: hosts.display().to_string(),
            hosts_problem,
            config: None,
            problem: None,
        };
        match read_bounded(resolv_conf) {
            // glibc treats a missing resolv.conf as "nameserver 127.0.0.1"; a CI image without
            // one is broken enough to say so instead of guessing.
            Err(e) => setup.problem = Some(e),
            Ok(bytes) => match hickory_resolver::system_conf::parse_resolv_conf(&bytes) {
                Ok((config, opts)) => {
                    setup.nameservers = config.name_servers().iter().map(|ns| ns.ip).collect();
                    setup.nameservers.dedup();
                    setup.search = config.search().iter().map(|n| n.to_string()).collect();
                    setup.ndots = opts.ndots;
                    setup.config = Some((config, opts));
                }
                // No `nameserver` line at all: not a parse problem, the job has no DNS.
                Err(_) if !String::from_utf8_lossy(&bytes).contains("nameserver") => {}
                Err(e) => setup.problem = Some(format!("{}: {e}", resolv_conf.display())),
            },
        }
        setup
    }

    /// One evidence line describing the configuration.
    pub fn describe(&self) -> String {
        // An unreadable resolv.conf (missing, a FIFO…) is said as such, not as "no nameservers".
        if let Some(problem) = &self.problem {
            return format!("{problem} (not used)");
        }
        let ns: Vec<String> = self.nameservers.iter().map(|n| n.to_string()).collect();
        format!(
            "{}: nameservers [{}], search [{}], ndots {}",
            self.resolv_conf,
            ns.join(", "),
            self.search.join(" "),
            self.ndots
        )
    }

    fn hosts_lookup(&self, name: &str) -> Vec<IpAddr> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.hosts
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, ip)| *ip)
            .collect()
    }
}

fn parse_hosts(text: &str) -> Vec<(String, IpAddr)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
            continue;
        };
        out.extend(words.map(|name| (name.to_ascii_lowercase(), ip)));
    }
    out
}

#[derive(Debug, Clone)]
pub enum AnsweredBy {
    HostsFile,
    Dns { name: String },
}

#[derive(Debug, Clone)]
pub struct Resolved {
    pub addresses: Vec<IpAddr>,
    pub answered_by: AnsweredBy,
    pub elapsed: Duration,
    /// When a search domain answered: what the name itself, taken as absolute, resolves to. A
    /// wildcard record in a search domain can send a dotted name to another host (ndots 5 in
    /// Kubernetes pods), so `dns.resolve` compares the two.
    pub absolute: Option<Result<Vec<IpAddr>, ResolveFailure>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveFailure {
    NoNameservers,
    Nxdomain,
    NoRecords,
    Servfail,
    Refused,
    Timeout,
    Other(String),
    /// The answer's CNAME chain ends at `target`, for which it holds no address (the nameserver
    /// did not follow the alias); `nxdomain` when the target does not exist at all. glibc and
    /// Go's resolver (kubectl's) never follow a CNAME themselves: for them the name has none.
    CnameUnresolved {
        target: String,
        nxdomain: bool,
    },
}

pub async fn resolve(
    setup: &DnsSetup,
    name: &str,
    timeout: Duration,
) -> (Result<Resolved, ResolveFailure>, Duration) {
    let started = Instant::now();
    let from_hosts = setup.hosts_lookup(name);
    if !from_hosts.is_empty() {
        let resolved = Resolved {
            addresses: from_hosts,
            answered_by: AnsweredBy::HostsFile,
            elapsed: started.elapsed(),
            absolute: None,
        };
        return (Ok(resolved), started.elapsed());
    }
    if setup.nameservers.is_empty() && setup.problem.is_none() {
        return (Err(ResolveFailure::NoNameservers), started.elapsed());
    }
    let Some((config, opts)) = setup.config.clone() else {
        return (
            Err(ResolveFailure::Other(
                setup.problem.clone().unwrap_or_default(),
            )),
            started.elapsed(),
        );
    };
    if setup.nameservers.is_empty() {
        return (Err(ResolveFailure::NoNameservers), started.elapsed());
    }
    let mut outcome = lookup(config.clone(), opts.clone(), name, timeout).await;
    if let Ok(resolved) = &mut outcome
        && search_applied(&resolved.answered_by, name)
    {
        let absolute = format!("{}.", name.trim_end_matches('.'));
        let again = lookup(config, opts, &absolute, timeout).await;
        resolved.absolute = Some(again.map(|r| r.addresses));
    }
    (outcome, started.elapsed())
}

/// Whether the name that answered is not the name asked (a search domain was appended).
pub fn search_applied(answered_by: &AnsweredBy, asked: &str) -> bool {
    match answered_by {
        AnsweredBy::HostsFile => false,
        AnsweredBy::Dns { name } => !name
            .trim_end_matches('.')
            .eq_ignore_ascii_case(asked.trim_end_matches('.')),
    }
}

async fn lookup(
    config: ResolverConfig,
    mut opts: ResolverOpts,
    name: &str,
    timeout: Duration,
) -> Result<Resolved, ResolveFailure> {
    let started = Instant::now();
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.cache_size = 0;
    opts.timeout = opts.timeout.min(timeout);
    opts.attempts = opts.attempts.clamp(1, 2);
    let mut builder =
        Resolver::builder_with_config(config.clone(), TokioRuntimeProvider::default());
    *builder.options_mut() = opts.clone();
    let resolver = builder
        .build()
        .map_err(|e| ResolveFailure::Other(e.to_string()))?;
    match tokio::time::timeout(timeout, resolver.lookup_ip(name)).await {
        Err(_) => Err(ResolveFailure::Timeout),
        Ok(Err(e)) => Err(dangling_target(&e, name, &config).unwrap_or_else(|| classify(&e))),
        Ok(Ok(lookup)) => {
            let addresses: Vec<IpAddr> = lookup.iter().collect();
            if addresses.is_empty() {
                return Err(ResolveFailure::NoRecords);
            }
            let mut answered = lookup.query().name().to_string();
            if let Some(start) = cname_chain_start(lookup.as_lookup().answers()) {
                let qtype = match addresses.iter().any(IpAddr::is_ipv4) {
                    true => RecordType::A,
                    false => RecordType::AAAA,
                };
                if let Some(unchased) = unchased_cname(&config, &opts, &start, qtype, timeout).await
                {
                    return Err(unchased);
                }
                answered = start.to_string();
            }
            Ok(Resolved {
                addresses,
                answered_by: AnsweredBy::Dns { name: answered },
                elapsed: started.elapsed(),
                absolute: None,
            })
        }
    }
}

/// Most links a CNAME chain in one answer is followed (glibc follows at most 16).
const MAX_CNAME_LINKS: usize = 16;

/// The name a CNAME chain in `answers` starts at: the owner of a CNAME that no other CNAME
/// points to (the name that was asked); `None` without CNAMEs.
fn cname_chain_start(answers: &[Record]) -> Option<Name> {
    let links: Vec<(&Name, &Name)> = answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::CNAME(CNAME(target)) => Some((&r.name, target)),
            _ => None,
        })
        .collect();
    links
        .iter()
        .find(|(owner, _)| !links.iter().any(|(_, target)| target == owner))
        .map(|(owner, _)| (*owner).clone())
}

/// hickory follows a CNAME with queries of its own when the answer stops at the alias; glibc's
/// stub and Go's resolver do not. So an answer that came through a CNAME is asked again, once,
/// and judged by its own records only: `Some` when its chain ends without an address.
/// `None` too when the question cannot be asked again: hickory's answer then stands.
async fn unchased_cname(
    config: &ResolverConfig,
    opts: &ResolverOpts,
    start: &Name,
    qtype: RecordType,
    timeout: Duration,
) -> Option<ResolveFailure> {
    let tls = hickory_resolver::TlsConfig::new().ok()?;
    let context = Arc::new(PoolContext::new(opts.clone(), tls));
    let servers = config.name_servers().iter().cloned();
    let pool = NameServerPool::from_config(servers, context, TokioRuntimeProvider::default());
    let query = Query::query(start.clone(), qtype);
    let ask = pool
        .lookup(query, DnsRequestOptions::default())
        .first_answer();
    let response = tokio::time::timeout(timeout, ask).await.ok()?.ok()?;
    let mut at = start.clone();
    for _ in 0..MAX_CNAME_LINKS {
        let records = response.answers.iter().filter(|r| r.name == at);
        let mut next = None;
        for record in records {
            match &record.data {
                RData::A(_) | RData::AAAA(_) => return None,
                RData::CNAME(CNAME(target)) => next = Some(target.clone()),
                _ => {}
            }
        }
        match next {
            Some(target) => at = target,
            None => break,
        }
    }
    Some(ResolveFailure::CnameUnresolved {
        target: at.to_string(),
        nxdomain: false,
    })
}

/// A lookup that failed at another name than the ones asked (the name, or it with a search
/// domain): hickory followed a CNAME there, and it was that target that had no address.
fn dangling_target(
    error: &NetError,
    asked: &str,
    config: &ResolverConfig,
) -> Option<ResolveFailure> {
    let NetError::Dns(DnsError::NoRecordsFound(no_records)) = error else {
        return None;
    };
    let failed = no_records.query.name().to_string();
    let failed = failed.trim_end_matches('.');
    let asked = asked.trim_end_matches('.');
    let is_asked = failed.eq_ignore_ascii_case(asked)
        || config.search().iter().any(|domain| {
            let candidate = format!("{asked}.{}", domain.to_string().trim_end_matches('.'));
            failed.eq_ignore_ascii_case(&candidate)
        });
    (!is_asked).then(|| ResolveFailure::CnameUnresolved {
        target: failed.to_string(),
        nxdomain: no_records.response_code == ResponseCode::NXDomain,
    })
}

/// hickory's error → our failure, in one place.
fn classify(error: &NetError) -> ResolveFailure {
    if error.is_nx_domain() {
        return ResolveFailure::Nxdomain;
    }
    if error.is_no_records_found() {
        return ResolveFailure::NoRecords;
    }
    match error {
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => ResolveFailure::Servfail,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => ResolveFailure::Refused,
        NetError::Timeout => ResolveFailure::Timeout,
        NetError::NoConnections => ResolveFailure::Timeout,
        NetError::Io(e) => ResolveFailure::Other(format!("nameserver I/O error: {e}")),
        other => ResolveFailure::Other(other.to_string()),
    }
}
