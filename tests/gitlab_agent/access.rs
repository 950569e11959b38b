//! Issue 12.9: when the job gets no agent, or not the one it expects, the report names the rule
//! that left it out, from what the job can see: the two paths (top-level groups), the agent's
//! configuration in this checkout (its `environments` filter, `protected_branches_only`), the
//! context `KUBE_CONTEXT` names, and the kubeconfig's current context. Issue 12.10: what RBAC
//! fix a denial behind the agent prints, for the identity the API server really sees.

use kube_reach::demo::Protocols;
use kube_reach::vocab::{CheckId, Reason, Status, TargetKind};

use crate::World;
use crate::job::{AGENT_ID, CONTEXT, Outcome};
use crate::kas::KasMode;
use crate::report::Check;

/// The agent's configuration project: the job runs in it, so its checkout holds the file.
const CONFIG_PROJECT: &str = "group/agent-config";

impl World {
    /// Runs the job with GitLab's kubeconfig and `vars` on top of GitLab's own variables.
    fn run_vars(&self, vars: &[(&str, &str)]) -> Outcome {
        let kubeconfig = self
            .job
            .agent_kubeconfig(&self.kas.k8s_proxy_url(), &self.job.agent_token());
        self.job
            .run_with(Some(&kubeconfig), &self.gitlab, None, vars)
    }

    /// Writes `.gitlab/agents/my-agent/config.yaml` into the job's checkout.
    fn checkout_agent_config(&self, yaml: &str) {
        let dir = self.job.path("project/.gitlab/agents/my-agent");
        std::fs::create_dir_all(&dir).expect("agent dir");
        std::fs::write(dir.join("config.yaml"), yaml).expect("config.yaml");
    }
}

/// The run-wide check `id` with `reason`.
fn run_wide(out: &Outcome, id: CheckId, reason: Reason) -> &Check {
    out.report
        .checks
        .iter()
        .find(|c| c.id == id && c.reason == Some(reason))
        .unwrap_or_else(|| {
            let (id, reason) = (id.as_str(), reason.as_str());
            panic!("no run-wide {id} {reason}\n{}", out.describe())
        })
}

#[test]
fn gitlab_allowed_agents_other_top_level_group() {
    other_top_level_group_on(Protocols::Both);
}

#[test]
fn gitlab_allowed_agents_other_top_level_group_h1() {
    other_top_level_group_on(Protocols::Http1Only);
}

/// The job's project is in top-level group `partner`, the agent's configuration project in
/// `group`: GitLab drops the entry, allows nothing, and the agent server refuses the agent.
fn other_top_level_group_on(protocols: Protocols) {
    let world = World::new_on(protocols, KasMode::AgentNotAllowed, &[]);
    let out = world.run_vars(&[("CI_PROJECT_PATH", "partner/app")]);
    let root = out.assert_agent_root_cause(
        CheckId::GitlabAllowedAgents,
        Reason::OtherTopLevelGroup,
        &[
            "`partner`",
            "organization_cluster_agent_authorization_enabled",
        ],
    );
    assert!(root.summary.contains("top-level group `group`"), "{root:?}");
    assert!(
        root.evidence
            .iter()
            .any(|e| e.contains(&format!("expected agent: {CONTEXT}"))),
        "{root:?}"
    );
    world.assert_token_discipline(&out);
}

#[test]
fn gitlab_allowed_agents_environment_excludes_job() {
    environment_excludes_job_on(Protocols::Both);
}

#[test]
fn gitlab_allowed_agents_environment_excludes_job_h1() {
    environment_excludes_job_on(Protocols::Http1Only);
}

/// The job runs in the agent's configuration project, whose `config.yaml` lists the project
/// itself with `environments: [production]`; the job has no `environment:`.
fn environment_excludes_job_on(protocols: Protocols) {
    let world = World::new_on(protocols, KasMode::AgentNotAllowed, &[]);
    world.checkout_agent_config(&format!(
        "ci_access:\n  projects:\n    - id: {CONFIG_PROJECT}\n      environments: [production]\n"
    ));
    let out = world.run_vars(&[("CI_PROJECT_PATH", CONFIG_PROJECT)]);
    let root = out.assert_agent_root_cause(
        CheckId::GitlabAllowedAgents,
        Reason::EnvironmentExcludesJob,
        &["`environment:`"],
    );
    assert!(
        root.evidence
            .iter()
            .any(|e| e.contains("decided by .gitlab/agents/my-agent/config.yaml")),
        "{root:?}"
    );
    assert!(
        root.evidence.iter().any(|e| e.contains("production")),
        "{root:?}"
    );
    run_wide(
        &out,
        CheckId::GitlabAgentConfig,
        Reason::EnvironmentExcludesJob,
    );
    world.assert_token_discipline(&out);
}

#[test]
fn gitlab_allowed_agents_protected_branches_only() {
    protected_branches_only_on(Protocols::Both);
}

#[test]
fn gitlab_allowed_agents_protected_branches_only_h1() {
    protected_branches_only_on(Protocols::Http1Only);
}

/// The same project entry admits protected refs only; the job runs on an unprotected branch.
fn protected_branches_only_on(protocols: Protocols) {
    let world = World::new_on(protocols, KasMode::AgentNotAllowed, &[]);
    world.checkout_agent_config(&format!(
        "ci_access:\n  projects:\n    - id: {CONFIG_PROJECT}\n      protected_branches_only: true\n"
    ));
    let out = world.run_vars(&[
        ("CI_PROJECT_PATH", CONFIG_PROJECT),
        ("CI_COMMIT_REF_NAME", "feature/x"),
        ("CI_COMMIT_REF_PROTECTED", "false"),
    ]);
    let root = out.assert_agent_root_cause(
        CheckId::GitlabAllowedAgents,
        Reason::ProtectedBranchesOnly,
        &["Protected branches"],
    );
    assert!(
        root.evidence.iter().any(|e| e.contains("feature/x")),
        "{root:?}"
    );
    world.assert_token_discipline(&out);
}

#[test]
fn gitlab_allowed_agents_kube_context_agent_not_allowed() {
    kube_context_agent_not_allowed_on(Protocols::Both);
}

#[test]
fn gitlab_allowed_agents_kube_context_agent_not_allowed_h1() {
    kube_context_agent_not_allowed_on(Protocols::Http1Only);
}

/// GitLab allows agent 137 (of `group/agent-config`), but `KUBE_CONTEXT` names an agent of
/// `group/ops`: the job did not get the agent it expects.
fn kube_context_agent_not_allowed_on(protocols: Protocols) {
    let world = World::new_on(protocols, KasMode::Healthy, &[AGENT_ID]);
    let wanted = "group/ops:deployer";
    let out = world.run_vars(&[("KUBE_CONTEXT", wanted)]);
    run_wide(&out, CheckId::ConfigKubeconfig, Reason::ContextNotFound);
    let gitlab = out.target(TargetKind::Gitlab);
    let finding = gitlab
        .checks
        .iter()
        .find(|c| c.reason == Some(Reason::KubeContextAgentNotAllowed))
        .unwrap_or_else(|| panic!("no kube-context-agent-not-allowed\n{}", out.describe()));
    assert_eq!(finding.status, Status::Fail);
    assert_eq!(finding.subject, format!("KUBE_CONTEXT {wanted}"));
    assert!(
        finding
            .evidence
            .iter()
            .any(|e| e.contains("group/agent-config")),
        "the allowed agents are listed: {finding:?}"
    );
    assert!(
        finding
            .fix
            .as_deref()
            .unwrap_or_default()
            .contains("group/ops"),
        "{finding:?}"
    );
    out.assert_junit_failure(
        "gitlab",
        "gitlab.allowed-agents",
        "kube-context-agent-not-allowed",
    );
    world.assert_token_discipline(&out);
}

/// GitLab's merged kubeconfig: the certificate-based `gitlab-deploy` is the current context
/// while an agent context exists. Warned, with the agent context to select.
#[test]
fn config_kubeconfig_legacy_context_selected() {
    let world = World::new(KasMode::Healthy, &[AGENT_ID]);
    let url = world.kas.k8s_proxy_url();
    let token = world.job.agent_token();
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: gitlab-deploy\nclusters:\n- name: gitlab\n  cluster:\n    server: {url}\n- name: gitlab-deploy\n  cluster:\n    server: https://127.0.0.1:9\nusers:\n- name: agent:{AGENT_ID}\n  user:\n    token: {token}\n- name: gitlab-deploy\n  user:\n    token: legacy-token-value\ncontexts:\n- name: {CONTEXT}\n  context:\n    cluster: gitlab\n    user: agent:{AGENT_ID}\n- name: gitlab-deploy\n  context:\n    cluster: gitlab-deploy\n    user: gitlab-deploy\n"
    );
    let kubeconfig = world.job.path("merged-kubeconfig");
    std::fs::write(&kubeconfig, text).expect("kubeconfig");
    let out = world.job.run(Some(&kubeconfig), &world.gitlab, None);
    let warning = run_wide(
        &out,
        CheckId::ConfigKubeconfig,
        Reason::LegacyContextSelected,
    );
    assert_eq!(warning.status, Status::Warn, "{warning:?}");
    assert!(
        warning
            .fix
            .as_deref()
            .unwrap_or_default()
            .contains(&format!("kubectl config use-context {CONTEXT}")),
        "{warning:?}"
    );
    world.assert_token_discipline(&out);
}

/// `KUBE_CONTEXT` names the agent's context, the kubeconfig's current context is another one:
/// kube-reach checks the agent (healthy), and warns that kubectl would not use it.
#[test]
fn config_kubeconfig_kube_context_not_current() {
    let world = World::new(KasMode::Healthy, &[AGENT_ID]);
    let url = world.kas.k8s_proxy_url();
    let token = world.job.agent_token();
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: laptop\nclusters:\n- name: gitlab\n  cluster:\n    server: {url}\n- name: laptop\n  cluster:\n    server: https://127.0.0.1:9\nusers:\n- name: agent:{AGENT_ID}\n  user:\n    token: {token}\ncontexts:\n- name: {CONTEXT}\n  context:\n    cluster: gitlab\n    user: agent:{AGENT_ID}\n- name: laptop\n  context:\n    cluster: laptop\n    user: agent:{AGENT_ID}\n"
    );
    let kubeconfig = world.job.path("two-contexts");
    std::fs::write(&kubeconfig, text).expect("kubeconfig");
    let out = world.job.run_with(
        Some(&kubeconfig),
        &world.gitlab,
        None,
        &[("KUBE_CONTEXT", CONTEXT)],
    );
    let warning = run_wide(
        &out,
        CheckId::ConfigKubeconfig,
        Reason::KubeContextNotCurrent,
    );
    assert_eq!(warning.status, Status::Warn, "{warning:?}");
    assert!(
        warning
            .evidence
            .iter()
            .any(|e| e.contains("current-context is laptop")),
        "{warning:?}"
    );
    assert!(out.agent().root_cause.is_none(), "{}", out.describe());
    world.assert_token_discipline(&out);
}

/// Issue 12.10: behind an agent with `access_as: ci_job` the API server sees
/// `gitlab:ci_job:<job id>` in `gitlab:ci_job`, `gitlab:group:<id>`, `gitlab:project:<id>`.
fn ci_job_user() -> kube_reach::demo::User {
    kube_reach::demo::User {
        username: format!("gitlab:ci_job:{}", crate::job::JOB_ID),
        uid: String::new(),
        groups: vec![
            "gitlab:ci_job".into(),
            "gitlab:group:23".into(),
            format!("gitlab:project:{}", crate::job::PROJECT_ID),
            "system:authenticated".into(),
        ],
        rules: Vec::new(),
    }
}

/// An agent world whose cluster has `cluster` options.
fn world_before(protocols: Protocols, cluster: kube_reach::demo::ApiServerOptions) -> World {
    let job = crate::job::Job::new();
    let kas_tls = job.tls_on(kube_reach::demo::TlsClass::Good, protocols);
    let kas = crate::kas::Kas::start_before(
        &job.rt,
        KasMode::Healthy,
        Some(kas_tls),
        AGENT_ID,
        &job.canary,
        cluster,
    );
    let gitlab_tls = job.tls_on(kube_reach::demo::TlsClass::Good, protocols);
    let gitlab = crate::gitlab_api::start(&job.rt, gitlab_tls, &job.canary, true, &[AGENT_ID]);
    World { kas, gitlab, job }
}

/// The printed YAML's two documents, as typed objects would read them.
fn documents(fix: &str) -> Vec<serde_json::Value> {
    let (_, yaml) = fix.split_once(":\n").expect("YAML in the fix");
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(yaml).unwrap_or_else(|e| panic!("not YAML ({e}):\n{yaml}"));
    assert_eq!(docs.len(), 2, "{yaml}");
    docs
}

#[test]
fn rbac_can_i_denied_behind_a_ci_job_agent() {
    rbac_can_i_denied_behind_a_ci_job_agent_on(Protocols::Both);
}

#[test]
fn rbac_can_i_denied_behind_a_ci_job_agent_h1() {
    rbac_can_i_denied_behind_a_ci_job_agent_on(Protocols::Http1Only);
}

/// The job's identity may do nothing: the fix binds the project's group (every job of the
/// project), never the one-job user.
fn rbac_can_i_denied_behind_a_ci_job_agent_on(protocols: Protocols) {
    let mut cluster = kube_reach::demo::ApiServerOptions::default();
    cluster
        .tokens
        .insert(0, (kube_reach::demo::GOOD_TOKEN.into(), ci_job_user()));
    let world = world_before(protocols, cluster);
    let out = world.run();
    let whoami = out.check(out.agent(), CheckId::AuthWhoami);
    assert!(whoami.summary.contains("gitlab:ci_job:4242"), "{whoami:?}");
    let root =
        out.assert_agent_root_cause(CheckId::RbacCanI, Reason::Denied, &["gitlab:project:150"]);
    let docs = documents(root.fix.as_deref().unwrap_or_default());
    use k8s_openapi::api::rbac::v1::RoleBinding;
    let binding: RoleBinding = serde_json::from_value(docs[1].clone()).expect("a RoleBinding");
    let subjects = binding.subjects.unwrap_or_default();
    assert_eq!(
        (subjects[0].kind.as_str(), subjects[0].name.as_str()),
        ("Group", "gitlab:project:150")
    );
    world.assert_token_discipline(&out);
}

#[test]
fn rbac_can_i_impersonation_denied_behind_the_agent() {
    rbac_can_i_impersonation_denied_behind_the_agent_on(Protocols::Both);
}

#[test]
fn rbac_can_i_impersonation_denied_behind_the_agent_h1() {
    rbac_can_i_impersonation_denied_behind_the_agent_on(Protocols::Http1Only);
}

/// The agent's own service account lost `impersonate`: every request is 403 `cannot
/// impersonate resource "users"`; the fix gives that service account the verb back.
fn rbac_can_i_impersonation_denied_behind_the_agent_on(protocols: Protocols) {
    let cluster = kube_reach::demo::ApiServerOptions {
        impersonation_denied: Some((
            "gitlab:ci_job:4242".into(),
            "system:serviceaccount:gitlab-agent:gitlab-agent".into(),
        )),
        ..kube_reach::demo::ApiServerOptions::default()
    };
    let world = world_before(protocols, cluster);
    let out = world.run();
    let root = out.assert_agent_root_cause(
        CheckId::RbacCanI,
        Reason::ImpersonationDenied,
        &[
            "system:serviceaccount:gitlab-agent:gitlab-agent",
            "access_as",
        ],
    );
    let docs = documents(root.fix.as_deref().unwrap_or_default());
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let role: ClusterRole = serde_json::from_value(docs[0].clone()).expect("a ClusterRole");
    assert!(
        role.rules
            .unwrap_or_default()
            .iter()
            .any(|r| r.verbs == ["impersonate"]
                && r.resources
                    .as_deref()
                    .unwrap_or_default()
                    .contains(&"users".to_string())),
        "{docs:?}"
    );
    let binding: ClusterRoleBinding =
        serde_json::from_value(docs[1].clone()).expect("a ClusterRoleBinding");
    let sa = &binding.subjects.unwrap_or_default()[0];
    assert_eq!(
        (sa.kind.as_str(), sa.name.as_str(), sa.namespace.as_deref()),
        ("ServiceAccount", "gitlab-agent", Some("gitlab-agent"))
    );
    world.assert_token_discipline(&out);
}

/// No agent authorizes the job, so GitLab sets no KUBECONFIG; the checkout's own agent
/// configuration filters on environments and the job has none: `config.kubeconfig not-set`
/// names that rule first, and the GitLab target's allowed-agents says it with its own reason.
#[test]
fn config_kubeconfig_not_set_names_the_environment_filter() {
    let world = World::new(KasMode::Healthy, &[]);
    world.checkout_agent_config(&format!(
        "ci_access:\n  projects:\n    - id: {CONFIG_PROJECT}\n      environments: [production]\n"
    ));
    let out = world.job.run_with(
        None,
        &world.gitlab,
        None,
        &[("CI_PROJECT_PATH", CONFIG_PROJECT)],
    );
    let not_set = run_wide(&out, CheckId::ConfigKubeconfig, Reason::NotSet);
    let fix = not_set.fix.as_deref().unwrap_or_default();
    assert!(
        fix.starts_with("In order of likelihood for this job: 1. The agent's `environments` filter excludes this job"),
        "{fix}"
    );
    let allowed = out.check(out.target(TargetKind::Gitlab), CheckId::GitlabAllowedAgents);
    assert_eq!(
        (allowed.status, allowed.reason),
        (Status::Fail, Some(Reason::EnvironmentExcludesJob)),
        "{}",
        out.describe()
    );
    assert!(world.kas.server.seen().is_empty());
    world.assert_token_discipline(&out);
}
