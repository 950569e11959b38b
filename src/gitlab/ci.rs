//! What the job knows about itself: the GitLab CI variables the checks use ([`CiFacts`]), the
//! GitLab server as a target, and the one request that may carry the job token.

use std::fmt;
use std::path::PathBuf;

use crate::catalogue::{CheckId, Reason};
use crate::model::CheckResult;

/// The legacy certificate-based integration's variables, by name (see `legacy`).
pub const LEGACY_VARIABLES: &[&str] = &[
    "KUBE_URL",
    "KUBE_TOKEN",
    "KUBE_NAMESPACE",
    "KUBE_CA_PEM",
    "KUBE_CA_PEM_FILE",
    "KUBE_INGRESS_BASE_DOMAIN",
];

/// The header GitLab reads a job token from (`curl --header "JOB-TOKEN: $CI_JOB_TOKEN"`).
pub const JOB_TOKEN_HEADER: &str = "JOB-TOKEN";

/// Appended to `CI_API_V4_URL`.
pub const ALLOWED_AGENTS_PATH: &str = "/job/allowed_agents";

/// The subject of `gitlab.allowed-agents` results about the job as a whole.
pub(crate) const JOB_SUBJECT: &str = "job";

/// `CI_JOB_TOKEN`: its own type (no `Display`, redacted `Debug`), not a bearer `Secret`. Read it
/// with `expose()` only to send it to GitLab in [`allowed_agents_request`].
pub use crate::secret::JobToken;

/// The GitLab CI variables the GitLab checks read. Empty variables count as unset.
#[derive(Debug, Clone, Default)]
pub struct CiFacts {
    /// `GITLAB_CI=true`.
    pub gitlab_ci: bool,
    pub server_url: Option<String>,
    pub api_v4_url: Option<String>,
    job_token: Option<JobToken>,
    pub job_id: Option<i64>,
    pub project_id: Option<i64>,
    /// `CI_PROJECT_PATH`, e.g. `group/subgroup/project`.
    pub project_path: Option<String>,
    pub project_dir: Option<PathBuf>,
    /// `CI_ENVIRONMENT_NAME`: present only when the job declares `environment:`.
    pub environment_name: Option<String>,
    pub environment_slug: Option<String>,
    pub environment_tier: Option<String>,
    /// `CI_COMMIT_REF_PROTECTED`.
    pub commit_ref_protected: Option<bool>,
    pub commit_ref_name: Option<String>,
    pub default_branch: Option<String>,
    pub server_tls_ca_file: Option<PathBuf>,
    /// `KUBE_CONTEXT` (user-set; Auto DevOps and many templates use it).
    pub kube_context: Option<String>,
    /// `CI_KUBERNETES_ACTIVE=true`: a certificate-based cluster applies to this job.
    pub kubernetes_active: bool,
    /// Names (never values) of the legacy integration's `KUBE_*` variables that are set.
    pub legacy_variables: Vec<&'static str>,
}

impl CiFacts {
    /// Builds the facts from a variable lookup (the process environment, or a map in tests).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let flag = |name: &str| get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let number = |name: &str| get(name).and_then(|v| v.parse::<i64>().ok());
        CiFacts {
            gitlab_ci: flag("GITLAB_CI"),
            server_url: get("CI_SERVER_URL"),
            api_v4_url: get("CI_API_V4_URL"),
            // Not trimmed: a token is used exactly as given.
            job_token: lookup("CI_JOB_TOKEN")
                .filter(|v| !v.is_empty())
                .map(JobToken::new),
            job_id: number("CI_JOB_ID"),
            project_id: number("CI_PROJECT_ID"),
            project_path: get("CI_PROJECT_PATH"),
            project_dir: get("CI_PROJECT_DIR").map(PathBuf::from),
            environment_name: get("CI_ENVIRONMENT_NAME"),
            environment_slug: get("CI_ENVIRONMENT_SLUG"),
            environment_tier: get("CI_ENVIRONMENT_TIER"),
            commit_ref_protected: get("CI_COMMIT_REF_PROTECTED")
                .map(|v| v.eq_ignore_ascii_case("true")),
            commit_ref_name: get("CI_COMMIT_REF_NAME"),
            default_branch: get("CI_DEFAULT_BRANCH"),
            server_tls_ca_file: get("CI_SERVER_TLS_CA_FILE").map(PathBuf::from),
            kube_context: get("KUBE_CONTEXT"),
            kubernetes_active: flag("CI_KUBERNETES_ACTIVE"),
            legacy_variables: LEGACY_VARIABLES
                .iter()
                .copied()
                .filter(|name| get(name).is_some())
                .collect(),
        }
    }

    /// The facts of the running process.
    pub fn from_env() -> Self {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    pub fn job_token(&self) -> Option<&JobToken> {
        self.job_token.as_ref()
    }

    /// Whether this looks like a GitLab CI job at all.
    pub fn in_gitlab_ci(&self) -> bool {
        self.gitlab_ci || self.server_url.is_some() && self.job_id.is_some()
    }

    /// The job token's value, for masking it in texts built from server answers.
    pub(crate) fn token_secret(&self) -> Option<&str> {
        self.job_token.as_ref().map(JobToken::expose)
    }
}

/// The GitLab server as a target of kind `gitlab` (the engine runs dns/tcp/tls/http on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTarget {
    /// `CI_SERVER_URL` without a trailing `/`.
    pub url: String,
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// `CI_SERVER_TLS_CA_FILE`, to trust in addition to the system roots.
    pub ca_file: Option<PathBuf>,
}

/// The GitLab server target from `CI_SERVER_URL`, when it is set and parses.
pub fn gitlab_server_target(ci: &CiFacts) -> Option<ServerTarget> {
    let url = ci.server_url.as_deref()?.trim_end_matches('/');
    let origin = Origin::parse(url)?;
    Some(ServerTarget {
        url: url.to_string(),
        scheme: origin.scheme,
        host: origin.host,
        port: origin.port,
        ca_file: ci.server_tls_ca_file.clone(),
    })
}

/// A request the engine may send with the job token: `GET url` with `header_name: <token>`
/// and `Accept: application/json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub url: String,
    pub header_name: &'static str,
}

impl Request {
    /// The request's path relative to a connection whose URL already ends in `base_path` (a
    /// GitLab under `/gitlab`): `/api/v4/job/allowed_agents`. `None` for a URL without a path.
    pub fn path_below(&self, base_path: &str) -> Option<String> {
        let (_, rest) = self.url.split_once("://")?;
        let path = &rest[rest.find('/')?..];
        Some(path.strip_prefix(base_path).unwrap_or(path).to_string())
    }
}

/// `GET $CI_API_V4_URL/job/allowed_agents`, only when that URL has the scheme, host and port of
/// `CI_SERVER_URL`: the job token goes to the GitLab server and nowhere else.
pub fn allowed_agents_request(ci: &CiFacts) -> Option<Request> {
    plan_allowed_agents(ci).ok()
}

/// Like [`allowed_agents_request`], but says why not as a ready `gitlab.allowed-agents` result
/// (`skip` outside a job, `unavailable` when the token must not be sent).
pub fn plan_allowed_agents(ci: &CiFacts) -> Result<Request, Box<CheckResult>> {
    let refuse = |summary: &str| {
        Box::new(
            CheckResult::finding(
                CheckId::GitlabAllowedAgents,
                JOB_SUBJECT,
                Reason::Unavailable,
            )
            .with_summary(summary),
        )
    };
    if ci.job_token.is_none() {
        return Err(Box::new(CheckResult::not_applicable(
            CheckId::GitlabAllowedAgents,
            JOB_SUBJECT,
            "CI_JOB_TOKEN is not set: not inside a running GitLab CI job",
        )));
    }
    let Some(server) = ci.server_url.as_deref().map(|u| u.trim_end_matches('/')) else {
        return Err(refuse(
            "CI_SERVER_URL is not set: the job token was not sent anywhere",
        ));
    };
    let Some(server_origin) = Origin::parse(server) else {
        return Err(refuse(
            "CI_SERVER_URL is not a valid http(s) URL: the job token was not sent anywhere",
        ));
    };
    let api = match ci.api_v4_url.as_deref() {
        Some(api) => api.trim_end_matches('/').to_string(),
        None => format!("{server}/api/v4"),
    };
    let Some(api_origin) = Origin::parse(&api).filter(|_| is_plain_base(&api)) else {
        return Err(refuse(
            "CI_API_V4_URL is not a plain http(s) URL (credentials, query or fragment in it): the job token was not sent",
        ));
    };
    if api_origin != server_origin {
        let refused = refuse(
            "CI_API_V4_URL points at another server than CI_SERVER_URL: the job token was not sent",
        );
        return Err(Box::new(
            refused
                .with_evidence(format!("CI_SERVER_URL origin: {server_origin}"))
                .with_evidence(format!("CI_API_V4_URL origin: {api_origin}"))
                .with_fix_detail(
                    "Unset CI_API_V4_URL if a project or group variable overrides it: GitLab sets it to `$CI_SERVER_URL/api/v4`.",
                ),
        ));
    }
    Ok(Request {
        url: format!("{api}{ALLOWED_AGENTS_PATH}"),
        header_name: JOB_TOKEN_HEADER,
    })
}

/// No user-info, query or fragment: a base URL a path can be appended to.
fn is_plain_base(url: &str) -> bool {
    let authority_and_path = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = authority_and_path.split('/').next().unwrap_or_default();
    !authority.contains('@') && !url.contains('?') && !url.contains('#')
}

/// Scheme, host and effective port of an http(s) URL, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// By the crate's one URL parser: an invalid port (`:99999`, `:443x`) is no origin at all.
    pub fn parse(url: &str) -> Option<Origin> {
        let url = crate::targets::url::parse(url).ok()?;
        if url.scheme != "https" && url.scheme != "http" {
            return None;
        }
        Some(Origin {
            port: url.port_or_default(),
            host: url.host.to_string(),
            scheme: url.scheme,
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::Status;
    use std::collections::HashMap;
    use std::path::Path;

    pub(crate) const CANARY: &str = "64_CANARYjobTOKENzzQ9xk2";

    /// The variables of a typical deploy job on gitlab.example.com.
    pub(crate) fn vars() -> HashMap<&'static str, String> {
        HashMap::from([
            ("GITLAB_CI", "true".to_string()),
            ("CI_SERVER_URL", "https://gitlab.example.com".to_string()),
            (
                "CI_API_V4_URL",
                "https://gitlab.example.com/api/v4".to_string(),
            ),
            ("CI_JOB_TOKEN", CANARY.to_string()),
            ("CI_JOB_ID", "4242".to_string()),
            ("CI_PROJECT_ID", "150".to_string()),
            ("CI_PROJECT_PATH", "acme/web/shop".to_string()),
            ("CI_PROJECT_DIR", "/builds/acme/web/shop".to_string()),
            ("CI_COMMIT_REF_PROTECTED", "true".to_string()),
            ("CI_COMMIT_REF_NAME", "main".to_string()),
            ("CI_DEFAULT_BRANCH", "main".to_string()),
        ])
    }

    pub(crate) fn facts(vars: &HashMap<&'static str, String>) -> CiFacts {
        CiFacts::from_lookup(&|name| vars.get(name).cloned())
    }

    pub(crate) fn ci() -> CiFacts {
        facts(&vars())
    }

    #[test]
    fn facts_from_variables() {
        let mut v = vars();
        v.insert("CI_ENVIRONMENT_NAME", "production".into());
        v.insert("CI_COMMIT_REF_PROTECTED", "false".into());
        v.insert("KUBE_URL", "https://k8s".into());
        v.insert("KUBE_TOKEN", "".into());
        let ci = facts(&v);
        assert!(ci.gitlab_ci && ci.in_gitlab_ci());
        assert_eq!(ci.job_id, Some(4242));
        assert_eq!(ci.project_path.as_deref(), Some("acme/web/shop"));
        assert_eq!(ci.environment_name.as_deref(), Some("production"));
        assert_eq!(ci.commit_ref_protected, Some(false));
        assert_eq!(ci.legacy_variables, vec!["KUBE_URL"]);
        assert_eq!(ci.job_token().map(JobToken::expose), Some(CANARY));
    }

    #[test]
    fn job_token_never_printed_by_debug() {
        let ci = ci();
        let debug = format!("{ci:?}");
        assert!(!debug.contains(CANARY), "{debug}");
        assert!(debug.contains("JobToken([REDACTED])"));
    }

    #[test]
    fn the_request_path_is_relative_to_the_connection_base() {
        let request = |url: &str| Request {
            url: url.into(),
            header_name: JOB_TOKEN_HEADER,
        };
        let r = request("https://gitlab.example.com/gitlab/api/v4/job/allowed_agents");
        assert_eq!(
            r.path_below("/gitlab").as_deref(),
            Some("/api/v4/job/allowed_agents")
        );
        assert_eq!(
            r.path_below("").as_deref(),
            Some("/gitlab/api/v4/job/allowed_agents")
        );
        assert_eq!(request("https://gitlab.example.com").path_below(""), None);
    }

    #[test]
    fn allowed_agents_request_goes_to_the_gitlab_server() {
        let request = allowed_agents_request(&ci()).expect("same origin");
        assert_eq!(
            request.url,
            "https://gitlab.example.com/api/v4/job/allowed_agents"
        );
        assert_eq!(request.header_name, "JOB-TOKEN");

        let mut v = vars();
        v.insert("CI_SERVER_URL", "https://GitLab.example.com:443/".into());
        v.insert("CI_API_V4_URL", "https://gitlab.example.com/api/v4/".into());
        assert!(
            allowed_agents_request(&facts(&v)).is_some(),
            "default port and case are the same origin"
        );

        v.remove("CI_API_V4_URL");
        assert_eq!(
            allowed_agents_request(&facts(&v)).map(|r| r.url).as_deref(),
            Some("https://GitLab.example.com:443/api/v4/job/allowed_agents")
        );
    }

    #[test]
    fn job_token_refused_for_another_destination() {
        for api in [
            "https://evil.example.net/api/v4",
            "http://gitlab.example.com/api/v4",
            "https://gitlab.example.com:8443/api/v4",
            "https://gitlab.example.com@evil.example.net/api/v4",
            "https://gitlab.example.com.evil.example.net/api/v4",
            "https://gitlab.example.com/api/v4?x=1",
            "gitlab.example.com/api/v4",
            "ftp://gitlab.example.com/api/v4",
        ] {
            let mut v = vars();
            v.insert("CI_API_V4_URL", api.into());
            let ci = facts(&v);
            assert!(
                allowed_agents_request(&ci).is_none(),
                "{api} must not receive the job token"
            );
            let refused = plan_allowed_agents(&ci).expect_err(api);
            assert_eq!(refused.reason, Some(Reason::Unavailable), "{api}");
            assert!(refused.summary.contains("not sent"), "{}", refused.summary);
        }
        let mut v = vars();
        v.remove("CI_SERVER_URL");
        assert!(
            allowed_agents_request(&facts(&v)).is_none(),
            "no server to compare with"
        );
        v = vars();
        v.remove("CI_JOB_TOKEN");
        let skipped = plan_allowed_agents(&facts(&v)).expect_err("no token");
        assert_eq!(skipped.status, Status::Skip);
    }

    #[test]
    fn server_target_and_ca_file() {
        let mut v = vars();
        v.insert("CI_SERVER_URL", "https://gitlab.example.com:8080/".into());
        v.insert(
            "CI_SERVER_TLS_CA_FILE",
            "/builds/acme.tmp/CI_SERVER_TLS_CA_FILE".into(),
        );
        let ci = facts(&v);
        let target = gitlab_server_target(&ci).expect("parses");
        assert_eq!(target.url, "https://gitlab.example.com:8080");
        assert_eq!(
            (target.host.as_str(), target.port),
            ("gitlab.example.com", 8080)
        );
        assert_eq!(
            target.ca_file.as_deref(),
            Some(Path::new("/builds/acme.tmp/CI_SERVER_TLS_CA_FILE"))
        );
        v.insert("CI_SERVER_URL", "http://gitlab.internal".into());
        assert_eq!(gitlab_server_target(&facts(&v)).map(|t| t.port), Some(80));
    }
}
