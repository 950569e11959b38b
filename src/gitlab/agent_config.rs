//! The agent configuration in the repository: `.gitlab/agents/<agent>/config.yaml`, its
//! `ci_access` section, and whether it lets this job use the agent.
//!
//! GitLab's rules, mirrored here: an explicit `projects` entry for the job's project wins;
//! then the agent's own configuration project is authorized implicitly (as the agent); then
//! the nearest listed ancestor group. Entries outside the configuration project's top-level
//! group are dropped. A matching entry with `environments` admits only jobs whose environment
//! matches one of them (a job without `environment:` never does), and one with
//! `protected_branches_only: true` only jobs on protected refs.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Deserializer};

use crate::catalogue::{CheckId, Reason};
use crate::gitlab::ci::CiFacts;
use crate::gitlab::text::{ancestor_groups, path_is_within, top_level};
use crate::model::{CheckResult, Status};

/// Agent configuration files larger than this are not read.
pub const MAX_AGENT_CONFIG_BYTES: u64 = 1024 * 1024;

/// At most this many agent directories are looked at.
const MAX_AGENTS: usize = 200;

/// `access_as`: who the agent acts as towards the Kubernetes API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "BTreeMap<String, serde_json::Value>")]
pub enum AccessAs {
    /// `agent: {}` (the default): the agent's own service account.
    Agent,
    /// `ci_job: {}`: `gitlab:ci_job:<job id>` with `gitlab:*` groups.
    CiJob,
    /// `impersonate: {username, uid, groups}`.
    Impersonate {
        username: String,
        uid: Option<String>,
        groups: Vec<String>,
    },
    /// A key the agent server does not implement (`ci_user`, or a typo).
    Unknown(String),
}

impl From<BTreeMap<String, serde_json::Value>> for AccessAs {
    fn from(map: BTreeMap<String, serde_json::Value>) -> Self {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Impersonate {
            username: String,
            uid: Option<String>,
            groups: Vec<String>,
        }
        let Some((key, value)) = map.into_iter().next() else {
            return AccessAs::Agent;
        };
        match key.as_str() {
            "agent" => AccessAs::Agent,
            "ci_job" => AccessAs::CiJob,
            "impersonate" => {
                let i: Impersonate = serde_json::from_value(value).unwrap_or_default();
                AccessAs::Impersonate {
                    username: i.username,
                    uid: i.uid,
                    groups: i.groups,
                }
            }
            _ => AccessAs::Unknown(key),
        }
    }
}

impl AccessAs {
    pub fn describe(&self) -> String {
        match self {
            AccessAs::Agent => "agent (the agent's service account)".to_string(),
            AccessAs::CiJob => "ci_job (impersonates the CI job)".to_string(),
            AccessAs::Impersonate { username, .. } => format!("impersonate (user `{username}`)"),
            AccessAs::Unknown(key) => {
                format!("`{key}` (not an access mode the agent server implements)")
            }
        }
    }
}

/// The parts of `config.yaml` these checks read; everything else is ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AgentConfig {
    pub ci_access: Option<CiAccess>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CiAccess {
    #[serde(deserialize_with = "null_default")]
    pub projects: Vec<CiAccessEntry>,
    #[serde(deserialize_with = "null_default")]
    pub groups: Vec<CiAccessEntry>,
}

/// One `ci_access` entry; also the `configuration` GitLab returns for an allowed agent (which
/// has no `id`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CiAccessEntry {
    #[serde(deserialize_with = "null_default")]
    pub id: String,
    pub default_namespace: Option<String>,
    pub access_as: Option<AccessAs>,
    #[serde(deserialize_with = "null_default")]
    pub environments: Vec<String>,
    pub protected_branches_only: Option<bool>,
}

impl CiAccessEntry {
    /// `access as ci_job, default namespace prod, environments [production], protected branches only`.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!(
            "access as {}",
            self.access_as
                .as_ref()
                .unwrap_or(&AccessAs::Agent)
                .describe()
        )];
        if let Some(ns) = &self.default_namespace {
            parts.push(format!("default namespace {ns}"));
        }
        if !self.environments.is_empty() {
            parts.push(format!("environments [{}]", self.environments.join(", ")));
        }
        if self.protected_branches_only == Some(true) {
            parts.push("protected branches only".to_string());
        }
        parts.join(", ")
    }
}

fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Parses an agent configuration. An empty file is a valid, empty configuration. The error
/// names the line and column.
pub fn parse_agent_config(yaml: &str) -> Result<AgentConfig, String> {
    if yaml
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(AgentConfig::default());
    }
    match serde_saphyr::from_str::<Option<AgentConfig>>(yaml) {
        Ok(config) => Ok(config.unwrap_or_default()),
        // In words of our own: the parser's message quotes keys (`duplicate mapping key: …`).
        Err(e) => {
            let problem = crate::targets::kubeconfig::yaml_problem(&e);
            Err(match e.location() {
                Some(at) => format!("line {}, column {}: {problem}", at.line(), at.column()),
                None => problem.to_string(),
            })
        }
    }
}

/// GitLab's environment matcher: an exact name, or, when the pattern has `*`, an unanchored
/// match where `*` is any run of characters and `.` any one character.
pub fn environment_matches(pattern: &str, environment: &str) -> bool {
    if pattern.is_empty() {
        return false;
    }
    if pattern == environment {
        return true;
    }
    if !pattern.contains('*') {
        return false;
    }
    let pattern: Vec<char> = format!("*{pattern}*").chars().collect();
    let text: Vec<char> = environment.chars().collect();
    glob(&pattern, &text)
}

/// Iterative wildcard match (`*` any run, `.` any one character), linear backtracking.
fn glob(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '.' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// How an agent configuration reaches a project.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Grant<'a> {
    Project(&'a CiAccessEntry),
    /// The agent's own configuration project.
    Implicit,
    Group(&'a CiAccessEntry),
}

impl Grant<'_> {
    fn entry(&self) -> Option<&CiAccessEntry> {
        match self {
            Grant::Project(e) | Grant::Group(e) => Some(e),
            Grant::Implicit => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Grant::Project(e) => format!("listed under `projects` as `{}`", e.id),
            Grant::Implicit => "implicitly, as the agent's configuration project".to_string(),
            Grant::Group(e) => format!("through its group `{}` under `groups`", e.id),
        }
    }
}

/// The entry GitLab would pick for `project`, most specific first.
fn grant_for<'a>(access: &'a CiAccess, config_project: &str, project: &str) -> Option<Grant<'a>> {
    let same = |a: &str, b: &str| {
        a.trim_matches('/')
            .eq_ignore_ascii_case(b.trim_matches('/'))
    };
    if let Some(e) = access.projects.iter().find(|e| same(&e.id, project)) {
        return Some(Grant::Project(e));
    }
    if same(config_project, project) {
        return Some(Grant::Implicit);
    }
    ancestor_groups(project)
        .iter()
        .find_map(|g| access.groups.iter().find(|e| same(&e.id, g)))
        .map(Grant::Group)
}

/// Judges one agent configuration (`label` names the file) of the agent whose configuration
/// project is `config_project`, for this job's project. One result per file.
pub fn judge_agent_config(
    label: &str,
    yaml: &str,
    config_project: &str,
    ci: &CiFacts,
) -> CheckResult {
    let config = match parse_agent_config(yaml) {
        Ok(config) => config,
        Err(at) => {
            return CheckResult::finding(CheckId::GitlabAgentConfig, label, Reason::InvalidYaml)
                .with_evidence(format!("{label}: {at}"));
        }
    };
    let Some(project) = ci.project_path.as_deref() else {
        return CheckResult::not_applicable(
            CheckId::GitlabAgentConfig,
            label,
            "CI_PROJECT_PATH is not set",
        );
    };
    let access = config.ci_access.unwrap_or_default();
    let dropped = dropped_entries(&access, config_project);
    let result = match grant_for(&access, config_project, project) {
        None => not_listed(label, &access, project),
        Some(grant) => judge_grant(label, &grant, config_project, project, ci),
    };
    finish(result, &dropped, config_project, ci)
}

fn not_listed(label: &str, access: &CiAccess, project: &str) -> CheckResult {
    let groups = ancestor_groups(project);
    let listed = |entries: &[CiAccessEntry]| {
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        if ids.is_empty() {
            "none".to_string()
        } else {
            ids.join(", ")
        }
    };
    let group_hint = groups
        .first()
        .map(|g| format!(" (or `- id: {g}` under `groups:`)"))
        .unwrap_or_default();
    CheckResult::finding(CheckId::GitlabAgentConfig, label, Reason::ProjectNotListed)
        .with_evidence(format!(
            "this project: {project}; its groups: {}",
            join_or_none(&groups)
        ))
        .with_evidence(format!("ci_access projects: {}", listed(&access.projects)))
        .with_evidence(format!("ci_access groups: {}", listed(&access.groups)))
        .with_fix_detail(format!(
            "Add `- id: {project}` under `ci_access: projects:`{group_hint} in {label}."
        ))
}

fn judge_grant(
    label: &str,
    grant: &Grant,
    config_project: &str,
    project: &str,
    ci: &CiFacts,
) -> CheckResult {
    let mut failures = Vec::new();
    if *grant != Grant::Implicit
        && !top_level(project).eq_ignore_ascii_case(top_level(config_project))
    {
        failures.push(other_top_level(label, config_project, project));
    }
    if let Some(entry) = grant.entry() {
        failures.extend(environment_excludes(label, entry, ci));
        failures.extend(protected_only(label, entry, ci));
    }
    let mut failures = failures.into_iter();
    let Some(first) = failures.next() else {
        let entry = grant
            .entry()
            .map(CiAccessEntry::describe)
            .unwrap_or_else(|| AccessAs::Agent.describe());
        return CheckResult::pass(
            CheckId::GitlabAgentConfig,
            label,
            format!("authorizes this project {}", grant.describe()),
        )
        .with_evidence(format!("entry: {entry}"));
    };
    let also: Vec<String> = failures.map(|r| format!("also: {}", r.summary)).collect();
    first
        .with_evidence(format!("matched {}", grant.describe()))
        .with_evidence_lines(also)
}

fn other_top_level(label: &str, config_project: &str, project: &str) -> CheckResult {
    CheckResult::finding(CheckId::GitlabAgentConfig, label, Reason::OtherTopLevelGroup)
        .with_summary(format!(
            "this project's top-level group `{}` is not the agent configuration project's `{}`: GitLab drops the entry",
            top_level(project),
            top_level(config_project)
        ))
        .with_evidence(format!("agent configuration project: {config_project}; this project: {project}"))
        .with_fix_detail("Register an agent in a project of this top-level group (one agent per top-level group), or, on GitLab Self-Managed, have an administrator enable `organization_cluster_agent_authorization_enabled`.")
}

fn environment_excludes(label: &str, entry: &CiAccessEntry, ci: &CiFacts) -> Option<CheckResult> {
    if entry.environments.is_empty() {
        return None;
    }
    let patterns = entry.environments.join(", ");
    let result = CheckResult::finding(
        CheckId::GitlabAgentConfig,
        label,
        Reason::EnvironmentExcludesJob,
    )
    .with_evidence(format!("environments: [{patterns}]"));
    match ci.environment_name.as_deref() {
        None => Some(
            result
                .with_summary("the agent's `environments` filter excludes this job, which has no `environment:`")
                .with_evidence("this job: no environment (CI_ENVIRONMENT_NAME is not set)")
                .with_fix_detail(format!(
                    "Add `environment: {{name: <one of {patterns}>}}` to the job's definition in .gitlab-ci.yml."
                )),
        ),
        Some(env) if !entry.environments.iter().any(|p| environment_matches(p, env)) => Some(
            result
                .with_summary(format!("the agent's `environments` filter does not match this job's environment `{env}`"))
                .with_evidence(format!("this job: environment {env}"))
                .with_fix_detail(format!("Add `{env}` (or a `*` pattern matching it) to `environments` in {label}.")),
        ),
        Some(_) => None,
    }
}

fn protected_only(label: &str, entry: &CiAccessEntry, ci: &CiFacts) -> Option<CheckResult> {
    (entry.protected_branches_only == Some(true) && ci.commit_ref_protected == Some(false)).then(|| {
        let git_ref = ci.commit_ref_name.as_deref().unwrap_or("this ref");
        CheckResult::finding(CheckId::GitlabAgentConfig, label, Reason::ProtectedBranchesOnly)
            .with_evidence(format!("this job runs on `{git_ref}`, which is not protected (CI_COMMIT_REF_PROTECTED=false)"))
    })
}

/// `ci_access` entries outside the configuration project's top-level group: GitLab drops them.
fn dropped_entries(access: &CiAccess, config_project: &str) -> Vec<String> {
    let root = top_level(config_project);
    access
        .projects
        .iter()
        .chain(&access.groups)
        .filter(|e| !e.id.trim().is_empty() && !path_is_within(&e.id, root))
        .map(|e| e.id.clone())
        .collect()
}

/// Adds what applies to every verdict: dropped entries, and the default-branch caveat.
fn finish(
    result: CheckResult,
    dropped: &[String],
    config_project: &str,
    ci: &CiFacts,
) -> CheckResult {
    let mut result = result;
    if !dropped.is_empty() {
        let line = format!(
            "entries outside the top-level group `{}`, which GitLab ignores: {}",
            top_level(config_project),
            dropped.join(", ")
        );
        result = result.with_evidence(line);
        if result.status == Status::Pass {
            result = CheckResult::finding(
                CheckId::GitlabAgentConfig,
                result.subject.clone(),
                Reason::OtherTopLevelGroup,
            )
            .with_status(Status::Warn)
            .with_summary(format!(
                "{}, but lists entries GitLab ignores (another top-level group)",
                result.summary
            ))
            .with_evidence_lines(result.evidence);
        }
    }
    match (ci.commit_ref_name.as_deref(), ci.default_branch.as_deref()) {
        (Some(r), Some(d)) if r != d && ci.project_path.as_deref() == Some(config_project) => result.with_evidence(
            format!("GitLab reads this file from the default branch `{d}` only; this job runs on `{r}`, whose copy may differ"),
        ),
        _ => result,
    }
}

/// Checks every `$project_dir/.gitlab/agents/*/config.yaml` against this job. The files belong
/// to this project, so this project is their agents' configuration project. Reads at most
/// [`MAX_AGENT_CONFIG_BYTES`] per file; never panics; errors name the file.
pub fn check_agent_configs(project_dir: &Path, ci: &CiFacts) -> Vec<CheckResult> {
    let agents_dir = project_dir.join(".gitlab").join("agents");
    let entries = match fs::read_dir(&agents_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            return vec![
                CheckResult::finding(
                    CheckId::GitlabAgentConfig,
                    ".gitlab/agents",
                    Reason::Unreadable,
                )
                .with_evidence(format!("{}: {e}", agents_dir.display())),
            ];
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names.truncate(MAX_AGENTS);
    names
        .iter()
        .filter_map(|name| check_one(&agents_dir.join(name), name, ci))
        .collect()
}

fn check_one(dir: &Path, name: &str, ci: &CiFacts) -> Option<CheckResult> {
    let label = format!(".gitlab/agents/{name}/config.yaml");
    let path = dir.join("config.yaml");
    if !path.exists() {
        return dir.join("config.yml").exists().then(|| {
            CheckResult::finding(
                CheckId::GitlabAgentConfig,
                format!(".gitlab/agents/{name}/config.yml"),
                Reason::MisnamedFile,
            )
            .with_fix_detail(format!("Rename it to {label}."))
        });
    }
    let text = match crate::env::read_text(&path, MAX_AGENT_CONFIG_BYTES) {
        Ok(text) => text,
        Err(why) => {
            return Some(
                CheckResult::finding(
                    CheckId::GitlabAgentConfig,
                    label.as_str(),
                    Reason::Unreadable,
                )
                .with_evidence(format!("{label}: {why}")),
            );
        }
    };
    let config_project = ci.project_path.clone().unwrap_or_default();
    let result = judge_agent_config(&label, &text, &config_project, ci);
    Some(if is_valid_agent_name(name) {
        result
    } else {
        result.with_evidence(format!(
            "`{name}` is not a valid agent name (lowercase letters, digits and `-`, at most 63): no agent can be registered under it"
        ))
    })
}

fn is_valid_agent_name(name: &str) -> bool {
    crate::gitlab::agent::parse_agent_context(&format!("p/p:{name}")).is_some()
}

fn join_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitlab::ci::tests::{facts, vars};

    const AGENTS_PROJECT: &str = "acme/platform/agents";

    fn ci_with(extra: &[(&'static str, &str)]) -> CiFacts {
        let mut v = vars();
        for (k, val) in extra {
            v.insert(k, val.to_string());
        }
        facts(&v)
    }

    #[test]
    fn parses_the_documented_schema() {
        let yaml = r#"
gitops:
  manifest_projects: []
ci_access:
  projects:
    - id: acme/web/shop
      default_namespace: shop
      access_as:
        ci_job: {}
      environments: [staging, "review/*"]
      protected_branches_only: true
  groups:
    - id: acme/platform
      access_as:
        impersonate:
          username: deployer
          groups: [deployers]
"#;
        let config = parse_agent_config(yaml).expect("valid");
        let access = config.ci_access.expect("ci_access");
        assert_eq!(access.projects[0].access_as, Some(AccessAs::CiJob));
        assert_eq!(access.projects[0].environments, vec!["staging", "review/*"]);
        assert_eq!(access.projects[0].protected_branches_only, Some(true));
        assert_eq!(
            access.groups[0].access_as,
            Some(AccessAs::Impersonate {
                username: "deployer".into(),
                uid: None,
                groups: vec!["deployers".into()]
            })
        );
        assert!(parse_agent_config("# only a comment\n").is_ok());
        assert!(parse_agent_config("ci_access:\n  projects:\n").is_ok());
    }

    #[test]
    fn gitlab_agent_config_invalid_yaml_names_line_and_column() {
        let yaml = "ci_access:\n  projects:\n    - id: acme/web/shop\n   bad: [\n";
        let r = judge_agent_config(
            ".gitlab/agents/prod/config.yaml",
            yaml,
            AGENTS_PROJECT,
            &ci_with(&[]),
        );
        assert_eq!(r.reason, Some(Reason::InvalidYaml));
        let evidence = r.evidence.join("\n");
        assert!(
            evidence.starts_with(".gitlab/agents/prod/config.yaml: line "),
            "{evidence}"
        );
        assert!(evidence.contains("column"), "{evidence}");
        let wrong_type = "ci_access:\n  projects: acme/web/shop\n";
        let r = judge_agent_config("c.yaml", wrong_type, AGENTS_PROJECT, &ci_with(&[]));
        assert_eq!(r.reason, Some(Reason::InvalidYaml), "{r:?}");
        // The parser's own message quoted a key: a token pasted where a key belongs, twice.
        let pasted =
            "ci_access:\n  projects:\n  - id: a\n    glagentCanary7Q: 1\n    glagentCanary7Q: 2\n";
        let r = judge_agent_config("c.yaml", pasted, AGENTS_PROJECT, &ci_with(&[]));
        let evidence = r.evidence.join("\n");
        assert!(!evidence.contains("Canary7Q"), "{evidence}");
        assert!(evidence.contains("a key appears twice"), "{evidence}");
    }

    #[test]
    fn gitlab_agent_config_project_not_listed() {
        let yaml =
            "ci_access:\n  projects:\n    - id: acme/web/other\n  groups:\n    - id: acme/data\n";
        let r = judge_agent_config("c.yaml", yaml, AGENTS_PROJECT, &ci_with(&[]));
        assert_eq!(
            (r.status, r.reason),
            (Status::Fail, Some(Reason::ProjectNotListed))
        );
        assert!(
            r.fix
                .as_deref()
                .unwrap_or_default()
                .contains("`- id: acme/web/shop`")
        );
        assert!(
            r.evidence
                .iter()
                .any(|e| e == "ci_access groups: acme/data")
        );
    }

    #[test]
    fn listed_by_project_or_nearest_group() {
        let yaml = "ci_access:\n  groups:\n    - id: ACME\n      environments: [production]\n    - id: acme/web\n";
        let r = judge_agent_config("c.yaml", yaml, AGENTS_PROJECT, &ci_with(&[]));
        assert_eq!(
            r.status,
            Status::Pass,
            "nearest group acme/web has no filter: {r:?}"
        );
        assert!(r.summary.contains("acme/web"));
    }

    #[test]
    fn gitlab_agent_config_other_top_level_group() {
        let yaml = "ci_access:\n  projects:\n    - id: acme/web/shop\n";
        let r = judge_agent_config("c.yaml", yaml, "platform-team/agents", &ci_with(&[]));
        assert_eq!(r.reason, Some(Reason::OtherTopLevelGroup));
        assert!(
            r.summary.contains("`acme`") && r.summary.contains("`platform-team`"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn gitlab_agent_config_environment_excludes_job() {
        let yaml = "ci_access:\n  projects:\n    - id: acme/web/shop\n      environments: [production, 'review/*']\n";
        let r = judge_agent_config("c.yaml", yaml, AGENTS_PROJECT, &ci_with(&[]));
        assert_eq!(r.reason, Some(Reason::EnvironmentExcludesJob));
        assert!(r.summary.contains("no `environment:`"));
        let r = judge_agent_config(
            "c.yaml",
            yaml,
            AGENTS_PROJECT,
            &ci_with(&[("CI_ENVIRONMENT_NAME", "staging")]),
        );
        assert_eq!(r.reason, Some(Reason::EnvironmentExcludesJob));
        let r = judge_agent_config(
            "c.yaml",
            yaml,
            AGENTS_PROJECT,
            &ci_with(&[("CI_ENVIRONMENT_NAME", "review/fix-1")]),
        );
        assert_eq!(r.status, Status::Pass);
    }

    #[test]
    fn environment_matcher_is_gitlabs() {
        assert!(environment_matches("production", "production"));
        assert!(!environment_matches("production", "production-eu"));
        assert!(environment_matches("review/*", "review/fix-1"));
        assert!(
            environment_matches("review/*", "x-review/y"),
            "GitLab's wildcard regex is unanchored"
        );
        assert!(environment_matches("prod*", "preprod"));
        assert!(environment_matches("*", "anything"));
        assert!(!environment_matches("", "x"));
        assert!(!environment_matches("review/*", "staging"));
    }

    #[test]
    fn gitlab_agent_config_protected_branches_only() {
        let yaml = "ci_access:\n  groups:\n    - id: acme\n      protected_branches_only: true\n";
        let r = judge_agent_config(
            "c.yaml",
            yaml,
            AGENTS_PROJECT,
            &ci_with(&[("CI_COMMIT_REF_PROTECTED", "false")]),
        );
        assert_eq!(r.reason, Some(Reason::ProtectedBranchesOnly));
        let r = judge_agent_config("c.yaml", yaml, AGENTS_PROJECT, &ci_with(&[]));
        assert_eq!(r.status, Status::Pass);
    }

    #[test]
    fn the_config_project_itself_is_implicitly_authorized_unless_listed() {
        let ci = ci_with(&[("CI_PROJECT_PATH", "acme/platform/agents")]);
        let r = judge_agent_config(
            "c.yaml",
            "ci_access:\n  groups:\n    - id: acme/web\n",
            AGENTS_PROJECT,
            &ci,
        );
        assert_eq!(r.status, Status::Pass);
        assert!(r.summary.contains("implicitly"));
        // An explicit entry for itself is more specific, filters included.
        let yaml = "ci_access:\n  projects:\n    - id: acme/platform/agents\n      environments: [production]\n";
        let r = judge_agent_config("c.yaml", yaml, AGENTS_PROJECT, &ci);
        assert_eq!(r.reason, Some(Reason::EnvironmentExcludesJob));
    }

    #[test]
    fn entries_outside_the_top_level_group_are_flagged() {
        let yaml = "ci_access:\n  projects:\n    - id: acme/web/shop\n    - id: partner/app\n";
        let r = judge_agent_config("c.yaml", yaml, AGENTS_PROJECT, &ci_with(&[]));
        assert_eq!(
            (r.status, r.reason),
            (Status::Warn, Some(Reason::OtherTopLevelGroup))
        );
        assert!(r.evidence.iter().any(|e| e.contains("partner/app")));
    }

    #[test]
    fn gitlab_agent_config_reads_the_checkout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let agents = dir.path().join(".gitlab/agents");
        for (name, file, body) in [
            (
                "prod",
                "config.yaml",
                "ci_access:\n  projects:\n    - id: acme/web/shop\n      environments: [production]\n",
            ),
            ("broken", "config.yaml", "ci_access: [\n"),
            ("misnamed", "config.yml", "ci_access: {}\n"),
            ("Bad_Name", "config.yaml", "{}\n"),
        ] {
            std::fs::create_dir_all(agents.join(name)).expect("mkdir");
            std::fs::write(agents.join(name).join(file), body).expect("write");
        }
        std::fs::create_dir_all(agents.join("no-config")).expect("mkdir");
        let big = agents.join("big");
        std::fs::create_dir_all(&big).expect("mkdir");
        std::fs::write(
            big.join("config.yaml"),
            vec![b'#'; (MAX_AGENT_CONFIG_BYTES + 1) as usize],
        )
        .expect("write");

        let results = check_agent_configs(dir.path(), &ci_with(&[]));
        let by = |s: &str| {
            results
                .iter()
                .find(|r| r.subject.contains(s))
                .unwrap_or_else(|| panic!("{s}: {results:?}"))
        };
        assert_eq!(results.len(), 5, "{results:?}");
        // This checkout is the config project: implicitly authorized, but the explicit entry's
        // environment filter wins.
        assert_eq!(by("/prod/").reason, Some(Reason::EnvironmentExcludesJob));
        assert_eq!(by("/broken/").reason, Some(Reason::InvalidYaml));
        assert!(by("/broken/").evidence[0].starts_with(".gitlab/agents/broken/config.yaml: line"));
        assert_eq!(by("/misnamed/").reason, Some(Reason::MisnamedFile));
        assert_eq!(by("/big/").reason, Some(Reason::Unreadable));
        assert!(
            by("/Bad_Name/")
                .evidence
                .iter()
                .any(|e| e.contains("not a valid agent name"))
        );
        assert!(check_agent_configs(&dir.path().join("absent"), &ci_with(&[])).is_empty());
    }
}
