//! The plan: settings and targets resolved from `Cli` + `Env` before any network traffic.
//! Each target already carries its `config.*` results; a target whose config makes the
//! network pointless (no server URL, say) has no [`Endpoint`].

use std::path::PathBuf;
use std::time::Duration;

pub mod proxy_choice;
pub mod target;

pub use target::*;

use crate::catalogue::{CheckId, Reason};
use crate::cli::RunArgs;
use crate::env::Env;
use crate::error::UsageError;
use crate::gitlab::CiFacts;
use crate::model::{CheckResult, TargetKind};
use crate::secret::Scrubber;
use crate::targets::{self, DiscoveryOptions, TargetSpec};

/// A namespace must be a DNS-1123 label (what the API server accepts, and what the generated
/// RoleBinding YAML may safely contain): at most 63 lowercase letters, digits and `-`, starting
/// and ending with a letter or digit. The error quotes the value (`--namespace` is the user's
/// own flag).
pub fn check_namespace(ns: &str) -> Result<(), String> {
    match namespace_problem(ns) {
        None => Ok(()),
        Some(problem) => Err(format!(
            "the namespace {} {problem} (a namespace is a DNS-1123 label)",
            crate::secret::quoted(ns, crate::secret::NAME_CHARS)
        )),
    }
}

/// What keeps `ns` from being a DNS-1123 label, in words that do not quote it.
fn namespace_problem(ns: &str) -> Option<&'static str> {
    if ns.is_empty() {
        Some("is empty")
    } else if ns.len() > 63 {
        Some("is longer than 63 characters")
    } else if !ns
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("may hold only lowercase letters, digits and `-`")
    } else if ns.starts_with('-') || ns.ends_with('-') {
        Some("must start and end with a letter or digit")
    } else {
        None
    }
}

/// How many of the items left out a capping finding names.
const DROPPED_SHOWN: usize = 10;

/// spec §4: the essentials of a deploy job.
pub const DEFAULT_REQUIREMENTS: &[&str] = &[
    "get,list,watch pods",
    "create,patch,update deployments.apps",
    "create,patch,update services",
    "create,patch,update configmaps",
    "create,patch,update secrets",
];

/// Parses one `--require` line into one requirement per verb.
pub fn parse_requirement(line: &str) -> Result<Vec<Requirement>, UsageError> {
    let invalid = |problem: &str| UsageError::InvalidRequirement {
        line: crate::secret::quoted(line, crate::secret::QUOTE_CHARS),
        problem: problem.into(),
    };
    let words: Vec<&str> = line.split_whitespace().collect();
    let (verbs, resource, rest) = match words.as_slice() {
        [verbs, resource, rest @ ..] => (*verbs, *resource, rest),
        _ => return Err(invalid("needs a verb and a resource")),
    };
    let namespace = match rest {
        [] => RequirementNamespace::Target,
        ["-n" | "--namespace", ns] => {
            // Not quoted: a `--require` line is quoted whole, and a `--require-file` line never
            // (it may be a token file's).
            if let Some(problem) = namespace_problem(ns) {
                return Err(invalid(&format!(
                    "the namespace {problem} (a namespace is a DNS-1123 label)"
                )));
            }
            RequirementNamespace::Named(ns.to_string())
        }
        ["-A" | "--all-namespaces"] => RequirementNamespace::All,
        _ => return Err(invalid("only `-n NAMESPACE` may follow the resource")),
    };
    let (resource_group, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (resource, None),
    };
    let (resource, group) = match resource_group.split_once('.') {
        Some((r, g)) => (r.to_string(), g.to_string()),
        None => (resource_group.to_string(), String::new()),
    };
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.*".contains(c))
    };
    if !valid(&resource) {
        return Err(invalid("the resource is not a Kubernetes resource name"));
    }
    verbs
        .split(',')
        .map(|verb| {
            if !valid(verb) {
                return Err(invalid("a verb is empty or has unexpected characters"));
            }
            Ok(Requirement {
                verb: verb.to_string(),
                resource: resource.clone(),
                subresource: subresource.clone(),
                group: group.clone(),
                namespace: namespace.clone(),
            })
        })
        .collect()
}

/// The variables that hold secrets whatever the targets are, registered where they are read:
/// whole values ([`SECRET_VARIABLES`]) and the passwords and query values of URL variables
/// ([`URL_VARIABLES`]: the environment block prints proxy variables).
pub fn register_env_secrets(scrubber: &mut Scrubber, env: &Env) {
    for name in SECRET_VARIABLES {
        if let Some(value) = env.var(name) {
            scrubber.add(value);
        }
    }
    for name in URL_VARIABLES {
        let Some(value) = env.var(name) else { continue };
        let with_scheme = if value.contains("://") {
            value.to_string()
        } else {
            format!("http://{}", value.trim())
        };
        for secret in crate::targets::url::secrets_of(&with_scheme) {
            scrubber.add_secret(&secret);
        }
    }
}

#[derive(Debug)]
pub struct Plan {
    pub targets: Vec<Target>,
    /// Run-wide results found while planning (config.kubeconfig).
    pub checks: Vec<CheckResult>,
    pub requirements: Vec<Requirement>,
    pub timeout: Duration,
    /// The per-operation timeout of requests through the GitLab agent server; see
    /// [`agent_timeout`].
    pub agent_timeout: Duration,
    pub deadline: Duration,
    pub expiry_warn: Duration,
    pub resolv_conf_path: PathBuf,
    pub hosts_path: PathBuf,
    pub scrubber: Scrubber,
    /// The job's GitLab CI facts (job token kept wrapped), read once for the whole run.
    pub ci: CiFacts,
    pub options: RunOptions,
}

/// What a run does besides checking its targets, said by the entry point: the real run does
/// all of it; the embedded demo, whose servers live on loopback by design and whose report
/// must not depend on the machine, none. The two presets are the type: no caller can build a
/// mix of them that nothing runs or tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunOptions {
    /// A diagnosis of the job's own surroundings.
    #[default]
    Real,
    /// `kube-reach demo`: its own loopback cluster only, nothing from the machine.
    Demo,
}

impl RunOptions {
    /// Judge servers as in a CI job when `GITLAB_CI` is set (a loopback or private server is
    /// then the copied-kubeconfig mistake `config.server` warns about).
    pub fn judge_as_ci_job(self) -> bool {
        self == RunOptions::Real
    }

    /// Add the GitLab server as a target (in GitLab CI, or when an agent target exists).
    pub fn check_gitlab_server(self) -> bool {
        self == RunOptions::Real
    }

    /// Read the checkout's agent configurations (`.gitlab/agents/*/config.yaml`).
    pub fn read_checkout_agent_configs(self) -> bool {
        self == RunOptions::Real
    }

    /// Ask the job's `kubectl` and `helm` their versions (`runner.tools`).
    pub fn probe_client_tools(self) -> bool {
        self == RunOptions::Real
    }
}

/// `--timeout`/`--deadline` as a duration: finite, under a day, and at least a nanosecond once
/// converted (`1e-12` is positive but no time at all).
pub(crate) fn seconds(value: f64) -> Result<Duration, UsageError> {
    let valid = value.is_finite() && value > 0.0 && value < 86_400.0;
    match valid.then(|| Duration::from_secs_f64(value)) {
        Some(duration) if !duration.is_zero() => Ok(duration),
        _ => Err(UsageError::InvalidDuration(value.to_string())),
    }
}

/// The timeout of requests through the GitLab agent server. The agent server waits 20 s for
/// the agent's tunnel before it answers "agent not connected" (KAS `routingTunnelFindTimeout`,
/// research notes), so without `--timeout` those requests get 25 s to hear that verdict
/// instead of a client-side timeout. A `--timeout` the user gave bounds every wait, these too.
pub fn agent_timeout(timeout: Duration, user_gave_timeout: bool) -> Duration {
    if user_gave_timeout {
        timeout
    } else {
        timeout.max(crate::gitlab::AUTHENTICATED_PROBE_TIMEOUT)
    }
}

/// The `--timeout` default, in seconds.
pub const DEFAULT_TIMEOUT_SECS: f64 = 5.0;

/// `--tls-server-name` must be a name or address a certificate can be checked against; a
/// bad one is the user's mistake, said before any connection (not a handshake failure that
/// blames the server).
fn check_tls_server_name(name: &str) -> Result<(), UsageError> {
    rustls_pki_types::ServerName::try_from(name)
        .map(|_| ())
        .map_err(|_| {
            UsageError::InvalidTlsServerName(crate::secret::quoted(name, crate::secret::NAME_CHARS))
        })
}

/// Keeps the first [`MAX_REQUIREMENTS`], saying which were left out.
fn cap_requirements(requirements: &mut Vec<Requirement>, default_ns: &str) -> Option<CheckResult> {
    if requirements.len() <= MAX_REQUIREMENTS {
        return None;
    }
    let dropped: Vec<String> = requirements
        .drain(MAX_REQUIREMENTS..)
        .map(|r| r.subject(default_ns))
        .collect();
    Some(
        CheckResult::finding(CheckId::RbacCanI, "--require", Reason::TooManyRequirements)
            .with_evidence(format!(
                "{} requirements given; the first {MAX_REQUIREMENTS} are asked",
                MAX_REQUIREMENTS + dropped.len()
            ))
            .with_evidence(left_out(&dropped)),
    )
}

/// Keeps the first [`MAX_TARGETS`] targets from the kubeconfig or flags (the GitLab server and
/// in-cluster targets always stay), saying which were left out.
fn cap_targets(specs: &mut Vec<TargetSpec>) -> Option<CheckResult> {
    let capped =
        |s: &TargetSpec| !matches!(s.kind, Some(TargetKind::Gitlab | TargetKind::InCluster));
    let total = specs.iter().filter(|s| capped(s)).count();
    if total <= MAX_TARGETS {
        return None;
    }
    let mut kept = 0;
    let mut dropped = Vec::new();
    specs.retain(|s| {
        if !capped(s) {
            return true;
        }
        kept += 1;
        if kept > MAX_TARGETS {
            dropped.push(s.name.clone());
        }
        kept <= MAX_TARGETS
    });
    Some(
        CheckResult::finding(CheckId::ConfigKubeconfig, "", Reason::TooManyTargets)
            .with_evidence(format!(
                "{total} targets found; the first {MAX_TARGETS} are checked"
            ))
            .with_evidence(left_out(&dropped)),
    )
}

/// "left out: a, b, … and N more".
fn left_out(names: &[String]) -> String {
    let shown: Vec<&str> = names
        .iter()
        .take(DROPPED_SHOWN)
        .map(String::as_str)
        .collect();
    let mut line = format!("left out: {}", shown.join(", "));
    if names.len() > shown.len() {
        line.push_str(&format!(" and {} more", names.len() - shown.len()));
    }
    line
}

/// One `--require` line and, for a line of `--require-file`, where it came from.
struct RequirementLine {
    text: String,
    file_line: Option<usize>,
}

fn requirement_lines(args: &RunArgs) -> Result<Vec<RequirementLine>, UsageError> {
    let mut lines: Vec<RequirementLine> = args
        .require
        .iter()
        .map(|text| RequirementLine {
            text: text.clone(),
            file_line: None,
        })
        .collect();
    if let Some(path) = &args.require_file {
        let bytes = crate::env::read_file(path, crate::env::MAX_FILE_BYTES).map_err(|e| {
            UsageError::RequireFileUnreadable {
                path: path.clone(),
                source: std::io::Error::other(e.problem()),
            }
        })?;
        let text = String::from_utf8_lossy(&bytes);
        lines.extend(
            text.lines()
                .enumerate()
                .map(|(i, l)| (i + 1, l.trim()))
                .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
                .map(|(number, l)| RequirementLine {
                    text: l.to_string(),
                    file_line: Some(number),
                }),
        );
    }
    if lines.is_empty() {
        lines = DEFAULT_REQUIREMENTS
            .iter()
            .map(|s| RequirementLine {
                text: s.to_string(),
                file_line: None,
            })
            .collect();
    }
    Ok(lines)
}

/// Parses one line; a file's line is named by file and number, its text never quoted.
fn parse_line(line: &RequirementLine, args: &RunArgs) -> Result<Vec<Requirement>, UsageError> {
    parse_requirement(&line.text).map_err(|e| match (e, line.file_line, &args.require_file) {
        (UsageError::InvalidRequirement { problem, .. }, Some(line_number), Some(path)) => {
            UsageError::InvalidRequirementInFile {
                path: path.clone(),
                line_number,
                problem,
            }
        }
        (other, _, _) => other,
    })
}

/// Variables whose whole value is a secret.
const SECRET_VARIABLES: &[&str] = &[
    "CI_JOB_TOKEN",
    "CI_JOB_JWT",
    "CI_JOB_JWT_V2",
    "CI_REGISTRY_PASSWORD",
    "CI_DEPLOY_PASSWORD",
    "CI_DEPENDENCY_PROXY_PASSWORD",
    "KUBE_TOKEN",
    "GITLAB_TOKEN",
];

/// Variables that are URLs whose password (and query values) are secrets.
const URL_VARIABLES: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "KUBE_URL",
    "CI_SERVER_URL",
    "CI_API_V4_URL",
    "CI_REPOSITORY_URL",
];

impl Plan {
    /// The plan of a real run ([`RunOptions::Real`]).
    pub fn new(args: &RunArgs, env: &Env) -> Result<Plan, UsageError> {
        Plan::with_options(args, env, RunOptions::Real)
    }

    pub fn with_options(args: &RunArgs, env: &Env, run: RunOptions) -> Result<Plan, UsageError> {
        let timeout = seconds(args.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS))?;
        let deadline = seconds(args.deadline)?;
        if let Some(ns) = &args.namespace {
            check_namespace(ns).map_err(UsageError::InvalidNamespace)?;
        }
        if let Some(name) = &args.tls_server_name {
            check_tls_server_name(name)?;
        }
        let mut requirements = Vec::new();
        for line in requirement_lines(args)? {
            requirements.extend(parse_line(&line, args)?);
        }
        let default_ns = args
            .namespace
            .as_deref()
            .unwrap_or("<the context's namespace>");
        let requirements_capped = cap_requirements(&mut requirements, default_ns);
        let options = DiscoveryOptions {
            kubeconfig: args.kubeconfig.clone(),
            contexts: args.context.clone(),
            server: args.server.clone(),
            token_file: args.token_file.clone(),
            ca_file: args.ca_file.clone(),
            tls_server_name: args.tls_server_name.clone(),
            without_gitlab_server: !run.check_gitlab_server(),
            in_cluster: if args.in_cluster {
                Some(true)
            } else if args.no_in_cluster {
                Some(false)
            } else {
                None
            },
        };
        // Read once: discovery, the GitLab server target and the engine's GitLab layers share it.
        let ci = CiFacts::from_lookup(&|name| env.var(name).map(str::to_string));
        let mut discovery = targets::discover_with(&options, env, &ci);
        discovery.checks.extend(cap_targets(&mut discovery.specs));
        discovery.checks.extend(requirements_capped);
        let expiry_warn = Duration::from_secs(u64::from(args.expiry_warn_days) * 86_400);
        let mut scrubber = Scrubber::default();
        let judge = crate::checks::config::Judge {
            env,
            ci: &ci,
            in_ci_job: run.judge_as_ci_job() && env.in_gitlab_ci(),
            timeout,
            expiry_warn,
            default_namespace: args.namespace.clone(),
        };
        let targets = discovery
            .specs
            .iter()
            .map(|spec| judge.resolve(spec, &mut scrubber))
            .collect();
        register_env_secrets(&mut scrubber, env);
        Ok(Plan {
            targets,
            checks: discovery.checks,
            requirements,
            timeout,
            agent_timeout: agent_timeout(timeout, args.timeout.is_some()),
            deadline,
            expiry_warn,
            resolv_conf_path: args.resolv_conf.clone(),
            hosts_path: args.hosts_file.clone(),
            scrubber,
            ci,
            options: run,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_lines_expand_per_verb_with_group_and_namespace() {
        let reqs = parse_requirement("create,patch deployments.apps -n prod").expect("valid");
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].verb, "create");
        assert_eq!(reqs[1].verb, "patch");
        assert_eq!(reqs[0].group, "apps");
        assert_eq!(reqs[0].resource, "deployments");
        assert_eq!(reqs[0].subject("x"), "create deployments.apps -n prod");
        let core = parse_requirement("get pods/log").expect("valid");
        assert_eq!(core[0].subresource.as_deref(), Some("log"));
        assert_eq!(core[0].subject("ci"), "get pods/log -n ci");
    }

    #[test]
    fn require_namespaces_must_be_dns_labels() {
        let long = format!("-n {}", "a".repeat(64));
        for ns in ["../x", "Prod", long.as_str(), "-x", "x-", "a_b", "\"\""] {
            let line = if ns.starts_with("-n") {
                format!("get pods {ns}")
            } else {
                format!("get pods -n {ns}")
            };
            let err = parse_requirement(&line).expect_err(&line).to_string();
            assert!(err.contains("DNS-1123 label"), "{line}: {err}");
        }
        for ns in ["prod", "a", "team-1", &"a".repeat(63)] {
            parse_requirement(&format!("get pods -n {ns}")).expect(ns);
        }
        let err = check_namespace("a/b").expect_err("slash");
        assert!(err.contains("'a/b'"), "names the value: {err}");
        let long = format!("{}/", "a".repeat(100));
        let err = check_namespace(&long).expect_err("long");
        assert!(
            err.contains("… (21 more characters)"),
            "marks the cut: {err}"
        );
        let err = check_tls_server_name(&format!("{} x", "b".repeat(100)))
            .expect_err("long name")
            .to_string();
        assert!(
            err.contains("… (22 more characters)"),
            "marks the cut: {err}"
        );
    }

    #[test]
    fn agent_requests_wait_for_the_agent_server_only_by_default() {
        let five = Duration::from_secs(5);
        assert_eq!(agent_timeout(five, false), Duration::from_secs(25));
        assert_eq!(agent_timeout(five, true), five);
        assert_eq!(
            agent_timeout(Duration::from_secs(40), false),
            Duration::from_secs(40)
        );
    }

    #[test]
    fn requirements_beyond_the_cap_are_named_as_left_out() {
        let mut reqs: Vec<Requirement> = (0..MAX_REQUIREMENTS + 15)
            .flat_map(|i| parse_requirement(&format!("get pods -n ns{i}")).expect("valid"))
            .collect();
        let finding = cap_requirements(&mut reqs, "ci").expect("capped");
        assert_eq!(reqs.len(), MAX_REQUIREMENTS);
        assert_eq!(finding.reason, Some(Reason::TooManyRequirements));
        assert_eq!(finding.status, crate::model::Status::Warn);
        let text = finding.evidence.join("\n");
        assert!(
            text.contains(&format!("get pods -n ns{MAX_REQUIREMENTS},")),
            "{text}"
        );
        assert!(text.ends_with(" and 5 more"), "{text}");
        let mut few = parse_requirement("get pods").expect("valid");
        assert!(cap_requirements(&mut few, "ci").is_none());
    }

    #[test]
    fn bad_requirement_lines_name_the_problem() {
        for line in ["create", "get pods -x y", "get po$ds", ",get pods"] {
            let err = parse_requirement(line).expect_err(line).to_string();
            assert!(err.contains(&format!("line '{line}':")), "{err}");
        }
        // A token pasted into --require is quoted redacted (a `--require-file` line, never).
        let err = parse_requirement("get pods glpat-abcdefghij0123456789")
            .expect_err("no resource")
            .to_string();
        assert!(err.contains("line 'get pods glpat-[REDACTED]':"), "{err}");
    }
}
