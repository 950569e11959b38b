//! Recognising a GitLab agent target in a kubeconfig, exactly as GitLab writes it:
//!
//! ```yaml
//! clusters: [{name: gitlab, cluster: {server: "https://kas.gitlab.com/k8s-proxy"}}]
//! users: [{name: "agent:137", user: {token: "ci:137:<CI_JOB_TOKEN>"}}]
//! contexts: [{name: "group/agent-config-project:my-agent", context: {cluster: gitlab, user: "agent:137"}}]
//! ```
//!
//! with no `current-context` and no CA data. The job token inside the user's token is never
//! kept: [`AgentIdentity`] holds only the agent id and the token's type.

use crate::catalogue::{CheckId, Reason};
use crate::gitlab::ci::CiFacts;
use crate::model::CheckResult;
use crate::secret::redact_url_password;

/// The first field of an agent token: `ci` (a CI job token) or `pat` (a personal access
/// token with the `k8s_proxy` scope, as `glab cluster agent get-token` makes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Ci,
    Pat,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Ci => "ci",
            TokenType::Pat => "pat",
        }
    }
}

/// Which agent a kubeconfig target goes through. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentIdentity {
    pub agent_id: i64,
    /// From the token; `Ci` when only the user name (`agent:<id>`) gave the id away.
    pub token_type: TokenType,
    /// The agent's configuration project path, from the context name.
    pub config_project: Option<String>,
    /// The agent's name, from the context name.
    pub agent_name: Option<String>,
}

impl AgentIdentity {
    /// Adds the configuration project and agent name from a context named
    /// `<config project path>:<agent name>`; other names leave both unset.
    pub fn with_context(mut self, context_name: &str) -> Self {
        if let Some((project, agent)) = parse_agent_context(context_name) {
            self.config_project = Some(project);
            self.agent_name = Some(agent);
        }
        self
    }

    /// `agent 137 (group/agents:prod)` or `agent 137`.
    pub fn describe(&self) -> String {
        match (&self.config_project, &self.agent_name) {
            (Some(p), Some(n)) => format!("agent {} ({p}:{n})", self.agent_id),
            _ => format!("agent {}", self.agent_id),
        }
    }
}

/// What an agent target's kubeconfig says about its agent, read once in planning from the
/// server URL, user and token, and carried on the target: the later steps ask it, never the
/// token. Holds no secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentTarget {
    /// The agent, when the token or the `agent:<id>` user gives its id.
    pub identity: Option<AgentIdentity>,
    /// Whether a `ci:<id>:<secret>` token carries this job's `CI_JOB_TOKEN` (`None`: not a
    /// `ci:` token, or no job token to compare with).
    pub carries_job_token: Option<bool>,
}

impl AgentTarget {
    /// The agent of the target named `context_name` (a context named
    /// `<config project>:<agent>` also gives the agent's name and configuration project).
    pub fn read(
        server_url: &str,
        user_name: Option<&str>,
        token: Option<&str>,
        context_name: &str,
        ci: &CiFacts,
    ) -> AgentTarget {
        AgentTarget {
            identity: classify_agent_target(server_url, user_name, token)
                .map(|a| a.with_context(context_name)),
            carries_job_token: token.and_then(|t| agent_token_is_current_job(t, ci)),
        }
    }
}

/// The agent behind a kubeconfig target, when it is one and its id is known: the token is
/// `ci:<id>:<secret>` / `pat:<id>:<secret>`, or the user is `agent:<id>` on a `/k8s-proxy` URL.
/// A `/k8s-proxy` URL without either is still an agent target ([`is_agent_target`]) whose id
/// is unknown.
pub fn classify_agent_target(
    server_url: &str,
    user_name: Option<&str>,
    token: Option<&str>,
) -> Option<AgentIdentity> {
    let from_user = user_name.and_then(agent_id_from_user);
    let (token_type, agent_id) = match token.and_then(parse_agent_token) {
        Some((token_type, id, _)) => (token_type, id),
        None if is_agent_server_url(server_url) => (TokenType::Ci, from_user?),
        None => return None,
    };
    Some(AgentIdentity {
        agent_id,
        token_type,
        config_project: None,
        agent_name: None,
    })
}

/// The spec's `gitlab-agent` kind: a `/k8s-proxy` server path or an agent-shaped credential.
pub fn is_agent_target(server_url: &str, user_name: Option<&str>, token: Option<&str>) -> bool {
    is_agent_server_url(server_url) || classify_agent_target(server_url, user_name, token).is_some()
}

/// Whether the server URL's path ends in `/k8s-proxy` or `/k8s-proxy/` (GitLab.com, Helm,
/// Linux package `…/-/kubernetes-agent/k8s-proxy/`, GDK `/-/k8s-proxy`).
pub fn is_agent_server_url(server_url: &str) -> bool {
    let without_query = server_url.split(['?', '#']).next().unwrap_or_default();
    let path = without_query
        .split_once("://")
        .map_or(without_query, |(_, rest)| rest);
    let Some((_, path)) = path.split_once('/') else {
        return false;
    };
    let path = format!("/{}", path.trim_end_matches('/'));
    path.ends_with("/k8s-proxy")
}

/// `<config project path>:<agent name>` → (path, name). The path has at least a namespace and
/// a project; the name is an RFC 1123 label of at most 63 characters.
pub fn parse_agent_context(context_name: &str) -> Option<(String, String)> {
    let (project, agent) = context_name.rsplit_once(':')?;
    let project_ok = project.contains('/')
        && !project.contains(':')
        && project
            .split('/')
            .all(|s| !s.is_empty() && !s.chars().any(char::is_whitespace));
    (project_ok && is_agent_name(agent)).then(|| (project.to_string(), agent.to_string()))
}

fn is_agent_name(name: &str) -> bool {
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ends_ok = !name.starts_with('-') && !name.ends_with('-');
    !name.is_empty() && name.len() <= 63 && chars_ok && ends_ok
}

fn agent_id_from_user(user_name: &str) -> Option<i64> {
    user_name.strip_prefix("agent:")?.parse().ok()
}

/// Parses `<type>:<agent id>:<secret>` the way the agent server does (split on the first two
/// colons; the secret must not be empty). The secret is returned only to compare it.
fn parse_agent_token(token: &str) -> Option<(TokenType, i64, &str)> {
    let (kind, rest) = token.trim().split_once(':')?;
    let (id, secret) = rest.split_once(':')?;
    let token_type = match kind {
        "ci" => TokenType::Ci,
        "pat" => TokenType::Pat,
        _ => return None,
    };
    let id = id.parse().ok()?;
    (!secret.is_empty()).then_some((token_type, id, secret))
}

/// The type and agent id of an agent token `<type>:<agent id>:<secret>`, never the secret:
/// what evidence may say about the token. `None` when it is not one (`pat:glpat-…` without an
/// id, `ci:<S>:x`).
pub fn agent_token_id(token: &str) -> Option<(TokenType, i64)> {
    parse_agent_token(token).map(|(kind, id, _)| (kind, id))
}

/// Whether a `ci:<id>:<secret>` token carries this job's `CI_JOB_TOKEN`; `None` when either is
/// unknown or the token is not a CI token.
pub fn agent_token_is_current_job(token: &str, ci: &CiFacts) -> Option<bool> {
    let (TokenType::Ci, _, secret) = parse_agent_token(token)? else {
        return None;
    };
    let job = ci.job_token()?.expose();
    Some(constant_time_eq(secret.as_bytes(), job.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Fix detail for `auth.whoami agent-unauthorized` when [`agent_token_is_current_job`] is false.
pub const STALE_TOKEN_DETAIL: &str = "The kubeconfig's agent token does not carry this job's CI_JOB_TOKEN: it was copied from another job (a kubeconfig saved as a CI/CD variable, a cache or an artifact). Use the KUBECONFIG GitLab injects into this job, or build the token as `ci:<agent id>:$CI_JOB_TOKEN`.";

/// Fix detail for an agent server whose certificate the job does not trust (`tls.trust`
/// `unknown-authority` / `self-signed` on an agent target).
pub fn agent_tls_fix_detail() -> &'static str {
    crate::catalogue::AGENT_TLS_FIX
}

/// The concrete fix for an `http://` agent server URL (`config.server insecure-scheme`).
pub fn agent_insecure_scheme_fix_detail(server_url: &str) -> String {
    let https = match server_url.strip_prefix("http://") {
        Some(rest) => format!("https://{rest}"),
        None => server_url.to_string(),
    };
    format!(
        "GitLab built this k8s-proxy URL from the agent server's external URL: when that is `ws://` (or `grpc://`) and no `external_k8s_proxy_url` is configured, the k8s-proxy URL becomes `http://`, and kubectl then sends no credentials at all. A GitLab administrator should serve the agent server over TLS (`wss://` external URL) or set `gitlab_rails['gitlab_kas_external_k8s_proxy_url'] = '{https}'` (Linux package) to an https URL. Until then, if the agent server also answers on https, the job can run `kubectl config set-cluster gitlab --server={https}`."
    )
}

/// `config.server insecure-scheme` for an agent target, with the agent-specific fix. The
/// subject is left empty for the engine to set.
pub fn agent_insecure_scheme(server_url: &str) -> CheckResult {
    CheckResult::finding(CheckId::ConfigServer, "", Reason::InsecureScheme)
        .with_evidence(format!(
            "server: {}",
            crate::gitlab::text::clean_header(&redact_url_password(server_url))
        ))
        .with_fix_detail(agent_insecure_scheme_fix_detail(server_url))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitlab::ci::tests::{CANARY, ci};

    fn token(id: i64) -> String {
        format!("ci:{id}:{CANARY}")
    }

    #[test]
    fn recognises_gitlab_kubeconfig_shapes() {
        for server in [
            "https://kas.gitlab.com/k8s-proxy",
            "https://kas.example.com/k8s-proxy/",
            "https://gitlab.example.com/-/kubernetes-agent/k8s-proxy/",
            "https://gdk.test:3443/-/k8s-proxy",
        ] {
            assert!(is_agent_server_url(server), "{server}");
            let id =
                classify_agent_target(server, Some("agent:137"), Some(&token(137))).expect(server);
            assert_eq!(id.agent_id, 137);
            assert_eq!(id.token_type, TokenType::Ci);
            assert!(!format!("{id:?}").contains(CANARY));
        }
        for server in [
            "https://api.example.com:6443",
            "https://example.com/k8s-proxy-x",
            "https://k8s-proxy",
        ] {
            assert!(!is_agent_server_url(server), "{server}");
        }
    }

    /// What `Ci::GenerateKubeconfigService` writes (`YAML.dump` of string keys), merged with a
    /// certificate-based cluster's `gitlab-deploy` entries.
    fn gitlab_kubeconfig() -> String {
        format!(
            "---\napiVersion: v1\nkind: Config\nclusters:\n- name: gitlab\n  cluster:\n    server: https://kas.gitlab.com/k8s-proxy\n- name: gitlab-deploy\n  cluster:\n    server: https://10.0.0.1:6443\n    certificate-authority-data: LS0tLS1CRUdJTg==\nusers:\n- name: agent:137\n  user:\n    token: ci:137:{CANARY}\n- name: agent:138\n  user:\n    token: ci:138:{CANARY}\n- name: gitlab-deploy\n  user:\n    token: legacy-token\ncontexts:\n- name: group/subgroup/agent-config-project:my-agent\n  context:\n    cluster: gitlab\n    user: agent:137\n- name: group/agents:prod\n  context:\n    cluster: gitlab\n    namespace: staging\n    user: agent:138\n- name: gitlab-deploy\n  context:\n    cluster: gitlab-deploy\n    user: gitlab-deploy\ncurrent-context: gitlab-deploy\n"
        )
    }

    #[test]
    fn classifies_every_context_of_a_gitlab_kubeconfig() {
        let doc: serde_json::Value =
            serde_saphyr::from_str(&gitlab_kubeconfig()).expect("valid YAML");
        let named = |list: &str, name: &str| {
            doc[list]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["name"] == name)
                .cloned()
                .unwrap_or_default()
        };
        let mut found = Vec::new();
        for context in doc["contexts"].as_array().into_iter().flatten() {
            let name = context["name"].as_str().unwrap_or_default();
            let user_name = context["context"]["user"].as_str();
            let cluster = named(
                "clusters",
                context["context"]["cluster"].as_str().unwrap_or_default(),
            );
            let server = cluster["cluster"]["server"].as_str().unwrap_or_default();
            let token = user_name
                .map(|u| named("users", u))
                .and_then(|u| u["user"]["token"].as_str().map(str::to_string));
            let agent = classify_agent_target(server, user_name, token.as_deref())
                .map(|a| a.with_context(name));
            assert_eq!(
                agent.is_some(),
                is_agent_target(server, user_name, token.as_deref()),
                "{name}"
            );
            found.push((name.to_string(), agent));
        }
        let agents: Vec<&AgentIdentity> = found.iter().filter_map(|(_, a)| a.as_ref()).collect();
        assert_eq!(agents.len(), 2, "gitlab-deploy is not an agent: {found:?}");
        assert_eq!(agents[0].agent_id, 137);
        assert_eq!(
            agents[0].config_project.as_deref(),
            Some("group/subgroup/agent-config-project")
        );
        assert_eq!(
            (agents[1].agent_id, agents[1].agent_name.as_deref()),
            (138, Some("prod"))
        );
        assert!(!format!("{found:?}").contains(CANARY));
        assert!(crate::gitlab::is_legacy_context(&found[2].0));
    }

    #[test]
    fn agent_id_comes_from_the_token_then_the_user_name() {
        let pat = classify_agent_target(
            "https://kas.example.com/k8s-proxy",
            None,
            Some("pat:9:glpat-xyz"),
        );
        assert_eq!(
            pat.map(|a| (a.agent_id, a.token_type)),
            Some((9, TokenType::Pat))
        );
        // Token shape alone marks an agent target, whatever the URL (a proxy path, say).
        assert!(
            classify_agent_target("https://proxy.example.com/kas", None, Some(&token(5))).is_some()
        );
        // User name alone only on a k8s-proxy URL.
        let by_user =
            classify_agent_target("https://kas.example.com/k8s-proxy", Some("agent:7"), None);
        assert_eq!(by_user.map(|a| a.agent_id), Some(7));
        assert!(classify_agent_target("https://api.example.com", Some("agent:7"), None).is_none());
        // A k8s-proxy URL without an id is an agent target whose id is unknown.
        assert!(
            classify_agent_target(
                "https://kas.example.com/k8s-proxy",
                Some("deployer"),
                Some("abc")
            )
            .is_none()
        );
        assert!(is_agent_target(
            "https://kas.example.com/k8s-proxy",
            Some("deployer"),
            Some("abc")
        ));
        // What the agent server rejects, so do we.
        for bad in ["ci:137:", "ci:x:tok", "job:137:tok", "ci137tok", "ci::tok"] {
            assert!(
                classify_agent_target("https://api.example.com", None, Some(bad)).is_none(),
                "{bad}"
            );
        }
    }

    #[test]
    fn context_names_are_config_project_and_agent() {
        let id = classify_agent_target(
            "https://kas.gitlab.com/k8s-proxy",
            Some("agent:137"),
            Some(&token(137)),
        )
        .expect("agent")
        .with_context("group/subgroup/agent-config-project:my-agent");
        assert_eq!(
            id.config_project.as_deref(),
            Some("group/subgroup/agent-config-project")
        );
        assert_eq!(id.agent_name.as_deref(), Some("my-agent"));
        assert_eq!(
            id.describe(),
            "agent 137 (group/subgroup/agent-config-project:my-agent)"
        );
        for bad in [
            "gitlab-deploy",
            "project:agent",
            "group/p:Agent",
            "group/p:-a",
            "group//p:a",
            "g/p:",
        ] {
            assert_eq!(parse_agent_context(bad), None, "{bad}");
        }
    }

    #[test]
    fn token_provenance() {
        let ci = ci();
        assert_eq!(agent_token_is_current_job(&token(1), &ci), Some(true));
        assert_eq!(
            agent_token_is_current_job("ci:1:an-old-token", &ci),
            Some(false)
        );
        assert_eq!(agent_token_is_current_job("pat:1:glpat", &ci), None);
    }

    #[test]
    fn config_server_insecure_scheme_agent_fix() {
        let result =
            agent_insecure_scheme("http://gitlab.example.com/-/kubernetes-agent/k8s-proxy/");
        assert_eq!(result.reason, Some(Reason::InsecureScheme));
        let fix = result.fix.unwrap_or_default();
        assert!(
            fix.contains("ws://") && fix.contains("external_k8s_proxy_url"),
            "{fix}"
        );
        assert!(
            fix.contains("https://gitlab.example.com/-/kubernetes-agent/k8s-proxy/"),
            "{fix}"
        );
    }

    #[test]
    fn tls_trust_agent_fix_names_the_three_ways() {
        let fix = agent_tls_fix_detail();
        for must in [
            "SSL_CERT_FILE",
            "CI_SERVER_TLS_CA_FILE",
            "certificate-authority-data",
        ] {
            assert!(fix.contains(must), "{must}");
        }
    }
}
