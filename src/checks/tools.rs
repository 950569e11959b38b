//! `runner.tools`: the `kubectl` and `helm` the job's later steps will use, found on the job's
//! `PATH` and asked their versions (a bounded child process each, see `exec`), judged against
//! versions known to break and against the servers' versions. One result per tool (subject
//! `kubectl`, `helm`), so the report keeps its shape whether or not a tool is installed.
//!
//! - kubectl 1.27.0 and 1.27.1 fetch OpenAPI from the server's root, ignoring the URL's path:
//!   through the agent's `/k8s-proxy/` they fail with `the server responded with the status
//!   code 426` (kubernetes#117463, fixed in 1.27.2); Helm 3.12.0 has the same bug (fixed in
//!   3.12.1, dtzar/helm-kubectl#136).
//! - kubectl is supported within one minor version of the API server
//!   (<https://kubernetes.io/releases/version-skew-policy/#kubectl>).

use std::path::PathBuf;
use std::time::Duration;

use crate::catalogue::{CheckId, Reason};
use crate::exec;
use crate::model::{CheckResult, TargetKind, TargetReport};

/// The tools asked, with the arguments that print their own version without a server.
pub const TOOLS: &[(&str, &[&str])] = &[
    ("kubectl", &["version", "--client", "-o", "json"]),
    ("helm", &["version", "--short"]),
];

/// `major.minor.patch`.
pub type Version = (u32, u32, u32);

/// What one tool on `PATH` said about itself.
#[derive(Debug, Clone)]
pub struct Probe {
    pub tool: &'static str,
    pub path: Option<PathBuf>,
    pub answer: Answer,
}

#[derive(Debug, Clone)]
pub enum Answer {
    NotFound,
    Version(Version, String),
    /// It ran but printed no version we can read (the first output line, redacted).
    Unreadable(String),
    TimedOut,
    CannotRun(String),
}

/// Finds and asks every tool in [`TOOLS`]. Blocking (child processes): run it on a blocking
/// thread. `env` is the job's environment, given to the tools as client-go gives it to plugins.
pub fn probe(env: &[(String, String)], timeout: Duration) -> Vec<Probe> {
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    TOOLS
        .iter()
        .map(|(tool, args)| {
            let path = exec::which(tool, path_var);
            let answer = match &path {
                None => Answer::NotFound,
                Some(p) => match exec::run(p, args, env, timeout) {
                    Err(e) => Answer::CannotRun(e.to_string()),
                    Ok(ran) if ran.timed_out => Answer::TimedOut,
                    Ok(ran) => read_version(&ran.stdout),
                },
            };
            Probe { tool, path, answer }
        })
        .collect()
}

/// The version a tool printed: kubectl's JSON `clientVersion.gitVersion`, else the first
/// `v<major>.<minor>.<patch>` in the text (helm `--short`, kubectl's older text output).
fn read_version(stdout: &str) -> Answer {
    let json_git = serde_json::from_str::<serde_json::Value>(stdout)
        .ok()
        .and_then(|v| {
            v["clientVersion"]["gitVersion"]
                .as_str()
                .map(str::to_string)
        });
    let text = json_git.as_deref().unwrap_or(stdout);
    match find_version(text) {
        Some((version, shown)) => Answer::Version(version, shown),
        None => Answer::Unreadable(crate::secret::redact_output_line(
            stdout.lines().next().unwrap_or_default(),
        )),
    }
}

/// The first `v1.27.0`-shaped token in `text`, with the token as written (`v1.29.3-eks-1`).
pub fn find_version(text: &str) -> Option<(Version, String)> {
    text.split(|c: char| c.is_whitespace() || c == '"' || c == ',' || c == ':')
        .filter_map(|word| {
            let rest = word.strip_prefix('v')?;
            let mut parts = rest.splitn(3, '.');
            let major = parts.next()?.parse().ok()?;
            let minor = parts.next()?.parse().ok()?;
            let patch_text = parts.next()?;
            let digits: String = patch_text
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let patch = digits.parse().ok()?;
            Some(((major, minor, patch), word.to_string()))
        })
        .next()
}

/// A tool version known to break through the agent's `/k8s-proxy/` path prefix, with why.
fn known_bad(tool: &str, v: Version) -> Option<&'static str> {
    match (tool, v) {
        ("kubectl", (1, 27, 0..=1)) => Some(
            "kubectl 1.27.0 and 1.27.1 ignore the server URL's path when they fetch OpenAPI, so through the agent's /k8s-proxy/ `kubectl apply` fails with `the server responded with the status code 426` (kubernetes#117463)",
        ),
        ("helm", (3, 12, 0)) => Some(
            "Helm 3.12.0 ignores the server URL's path when it fetches OpenAPI, so through the agent's /k8s-proxy/ it fails with status code 426 (fixed in 3.12.1)",
        ),
        _ => None,
    }
}

/// The servers' versions as `http.version` reported them: `(target, version as written)`.
pub fn server_versions(targets: &[TargetReport]) -> Vec<(String, Version, String)> {
    targets
        .iter()
        .filter(|t| t.kind != TargetKind::Gitlab)
        .flat_map(|t| {
            t.checks
                .iter()
                .filter(|c| c.id == CheckId::HttpVersion)
                .flat_map(|c| c.evidence.iter())
                .filter_map(|line| line.strip_prefix("gitVersion "))
                .filter_map(find_version)
                .map(|(v, shown)| (t.name.clone(), v, shown))
        })
        .collect()
}

/// One `runner.tools` result per probed tool.
pub fn judge(probes: &[Probe], targets: &[TargetReport]) -> Vec<CheckResult> {
    let via_agent = targets.iter().any(|t| t.kind == TargetKind::GitlabAgent);
    let servers = server_versions(targets);
    probes
        .iter()
        .map(|p| judge_one(p, via_agent, &servers))
        .collect()
}

fn judge_one(p: &Probe, via_agent: bool, servers: &[(String, Version, String)]) -> CheckResult {
    let id = CheckId::RunnerTools;
    let at = p
        .path
        .as_ref()
        .map(|path| path.display().to_string())
        .unwrap_or_default();
    let (version, shown) = match &p.answer {
        Answer::NotFound => {
            return CheckResult::pass(id, p.tool, format!("{} is not on PATH", p.tool));
        }
        Answer::TimedOut => {
            return CheckResult::finding(id, p.tool, Reason::Timeout)
                .with_summary(format!("`{} version` did not finish in time", p.tool))
                .with_evidence(format!("{at}: killed at the timeout"));
        }
        Answer::CannotRun(e) => {
            return CheckResult::finding(id, p.tool, Reason::ToolCannotRun)
                .with_summary(format!("{} could not be run", p.tool))
                .with_evidence(format!("{at}: {e}"));
        }
        Answer::Unreadable(first) => {
            return CheckResult::pass(id, p.tool, format!("{} printed no version", p.tool))
                .with_evidence(format!("{at}: {first}"));
        }
        Answer::Version(v, shown) => (*v, shown.as_str()),
    };
    let found = format!("{at}: {shown}");
    if let Some(why) = known_bad(p.tool, version).filter(|_| via_agent) {
        return CheckResult::finding(id, p.tool, Reason::KnownBadVersion)
            .with_summary(format!(
                "{} {shown} breaks through the GitLab agent's /k8s-proxy/ path",
                p.tool
            ))
            .with_evidence(found)
            .with_evidence(why);
    }
    let skewed: Vec<String> = servers
        .iter()
        .filter(|_| p.tool == "kubectl")
        .filter(|(_, server, _)| server.0 == version.0 && server.1.abs_diff(version.1) > 1)
        .map(|(target, _, server)| format!("{target}: server {server}"))
        .collect();
    if !skewed.is_empty() {
        return CheckResult::finding(id, p.tool, Reason::VersionSkew)
            .with_summary(format!(
                "kubectl {shown} is more than one minor version away from the server"
            ))
            .with_evidence(found)
            .with_evidence_lines(skewed);
    }
    CheckResult::pass(id, p.tool, format!("{} {shown}", p.tool)).with_evidence(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(tool: &'static str, version: &str) -> Probe {
        let answer = read_version(version);
        Probe {
            tool,
            path: Some(PathBuf::from(format!("/usr/bin/{tool}"))),
            answer,
        }
    }

    fn target(kind: TargetKind, server_version: Option<&str>) -> TargetReport {
        // The real http.version result, so a change of its evidence breaks this test.
        let checks = server_version
            .map(|v| {
                let body = format!(r#"{{"gitVersion":"{v}","platform":"linux/amd64"}}"#);
                let response = crate::net::http::Response {
                    status: 200,
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: body.into(),
                    elapsed: Duration::ZERO,
                    shared: false,
                };
                crate::checks::http::version("example:6443", &Ok(response), true)
            })
            .into_iter()
            .collect();
        TargetReport {
            name: "t".into(),
            kind,
            server: "https://example:6443".into(),
            verdict: crate::model::Verdict::Pass,
            root_cause: None,
            checks,
        }
    }

    #[test]
    fn versions_are_read_from_kubectl_json_and_helm_short() {
        let json = r#"{"clientVersion":{"major":"1","minor":"27","gitVersion":"v1.27.1","platform":"linux/amd64"},"kustomizeVersion":"v5.0.1"}"#;
        assert!(matches!(read_version(json), Answer::Version((1, 27, 1), _)));
        assert!(matches!(
            read_version("v3.12.0+gc9f554d\n"),
            Answer::Version((3, 12, 0), _)
        ));
        assert!(matches!(
            read_version("Client Version: v1.20.15"),
            Answer::Version((1, 20, 15), _)
        ));
        assert!(matches!(read_version("garbage"), Answer::Unreadable(_)));
    }

    #[test]
    fn known_bad_versions_warn_only_through_the_agent() {
        let agent = [target(TargetKind::GitlabAgent, None)];
        let direct = [target(TargetKind::Direct, None)];
        for (tool, version) in [
            ("kubectl", "v1.27.0"),
            ("kubectl", "v1.27.1"),
            ("helm", "v3.12.0+g1"),
        ] {
            let r = judge_one(&probe(tool, version), true, &[]);
            assert_eq!(r.reason, Some(Reason::KnownBadVersion), "{tool} {version}");
            assert_eq!(
                judge(&[probe(tool, version)], &agent)[0].reason,
                Some(Reason::KnownBadVersion)
            );
            assert_eq!(judge(&[probe(tool, version)], &direct)[0].reason, None);
        }
        for (tool, version) in [
            ("kubectl", "v1.27.2"),
            ("kubectl", "v1.26.9"),
            ("helm", "v3.12.1"),
        ] {
            assert_eq!(
                judge_one(&probe(tool, version), true, &[]).reason,
                None,
                "{tool} {version}"
            );
        }
    }

    /// A tool that cannot be started or does not answer is a warning naming why, never a pass.
    #[test]
    fn a_tool_that_cannot_run_or_hangs_warns_saying_why() {
        let path = Some(PathBuf::from("/usr/bin/kubectl"));
        let cannot = Probe {
            tool: "kubectl",
            path: path.clone(),
            answer: Answer::CannotRun("exec format error".into()),
        };
        let r = judge_one(&cannot, false, &[]);
        assert_eq!(
            (r.status, r.reason),
            (crate::model::Status::Warn, Some(Reason::ToolCannotRun))
        );
        assert_eq!(r.evidence, ["/usr/bin/kubectl: exec format error"]);
        let hung = Probe {
            tool: "kubectl",
            path,
            answer: Answer::TimedOut,
        };
        let r = judge_one(&hung, false, &[]);
        assert_eq!(
            (r.status, r.reason),
            (crate::model::Status::Warn, Some(Reason::Timeout))
        );
    }

    #[test]
    fn kubectl_more_than_one_minor_from_a_server_is_skew() {
        let servers = [target(TargetKind::Direct, Some("v1.30.2+k3s1"))];
        let skew = judge(&[probe("kubectl", "v1.28.4")], &servers);
        assert_eq!(skew[0].reason, Some(Reason::VersionSkew));
        assert!(skew[0].evidence.iter().any(|e| e.contains("v1.30.2+k3s1")));
        for ok in ["v1.29.0", "v1.30.0", "v1.31.5"] {
            assert_eq!(
                judge(&[probe("kubectl", ok)], &servers)[0].reason,
                None,
                "{ok}"
            );
        }
        // helm has no such rule.
        assert_eq!(judge(&[probe("helm", "v3.8.0")], &servers)[0].reason, None);
    }
}
