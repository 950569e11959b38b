//! Target discovery in spec §1 order: `--server`, kubeconfig (merged like kubectl), the legacy
//! `KUBE_*` variables, the in-cluster service account, and the GitLab server itself. Discovery
//! only gathers raw settings into [`TargetSpec`]s; `checks::config` judges them.

pub mod in_cluster;
pub mod kubeconfig;
pub mod legacy;
pub mod url;

use std::path::PathBuf;

use crate::catalogue::{CheckId, Reason};
use crate::env::Env;
use crate::gitlab::CiFacts;
use crate::model::{CheckResult, TargetKind};
use crate::secret::Secret;

/// Everything a source said about one target, before any judgement.
#[derive(Debug, Clone, Default)]
pub struct TargetSpec {
    pub name: String,
    pub kind: Option<TargetKind>,
    /// Where the settings came from, for evidence ("context ci in /builds/x/kubeconfig").
    pub source: String,
    pub server: Option<String>,
    pub cluster_missing: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub ca_data_base64: Option<String>,
    pub ca_pem: Option<String>,
    pub insecure_skip_verify: bool,
    pub tls_server_name: Option<String>,
    pub proxy_url: Option<Secret>,
    pub user_missing: Option<String>,
    pub user_name: Option<String>,
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_cert_data_base64: Option<String>,
    pub client_key_file: Option<PathBuf>,
    pub client_key_data_base64: Option<Secret>,
    pub basic_auth: bool,
    pub auth_provider: Option<String>,
    /// The user's `exec:` stanza, as client-go reads it, for running the plugin.
    pub exec: Option<ExecSpec>,
    pub namespace: Option<String>,
    /// Other secret values the source holds (a basic-auth password, auth-provider settings
    /// such as `client-secret`/`refresh-token`/`id-token`, exec `env` values): never sent, but
    /// registered with the scrubber so a server or a parser that echoes one cannot print it.
    pub other_secrets: Vec<Secret>,
    /// What the user's `as`, `as-uid`, `as-groups` and `as-user-extra` ask to impersonate,
    /// as kubectl sends it in `Impersonate-*` headers (and so does kube-reach).
    pub impersonation: Option<Impersonation>,
}

/// A kubeconfig user's impersonation fields, before any judgement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Impersonation {
    pub user: Option<String>,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    /// The `as-user-extra` entries, sorted by key: the values are sent, never shown.
    pub extra: Vec<(String, Vec<Secret>)>,
}

impl Impersonation {
    /// Whether no field is set (kubectl then impersonates no one).
    pub fn is_empty(&self) -> bool {
        self == &Impersonation::default()
    }
}

/// A kubeconfig user's credential plugin (`users[].user.exec`), before any judgement.
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    pub command: String,
    pub args: Vec<String>,
    /// `env:` entries (`name`, `value`), added to the job's environment.
    pub env: Vec<(String, String)>,
    pub api_version: Option<String>,
    /// `Never`, `IfAvailable` or `Always` (client-go's default: `IfAvailable`).
    pub interactive_mode: Option<String>,
    pub provide_cluster_info: bool,
}

/// What discovery found: targets to check and run-wide config results.
#[derive(Debug, Default)]
pub struct Discovery {
    pub specs: Vec<TargetSpec>,
    pub checks: Vec<CheckResult>,
}

/// Options from the command line that steer discovery.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryOptions {
    pub kubeconfig: Option<String>,
    pub contexts: Vec<String>,
    pub server: Option<String>,
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub tls_server_name: Option<String>,
    pub in_cluster: Option<bool>,
    /// The GitLab server is never a target (the demo contacts nothing outside the machine).
    pub without_gitlab_server: bool,
}

/// [`discover_with`] with the CI facts read from `env` (for callers that have none yet).
pub fn discover(opts: &DiscoveryOptions, env: &Env) -> Discovery {
    discover_with(
        opts,
        env,
        &CiFacts::from_lookup(&|name| env.var(name).map(str::to_string)),
    )
}

/// The targets `opts` and the surroundings name; `ci` is the run's one reading of the CI
/// variables (`Plan::new` reads it once and passes it here and on to the engine).
pub fn discover_with(opts: &DiscoveryOptions, env: &Env, ci: &CiFacts) -> Discovery {
    let mut found = Discovery::default();
    if let Some(server) = &opts.server {
        found.specs.push(legacy::from_flags(server, opts));
    } else {
        let kube = kubeconfig::discover(opts, env);
        found.checks.extend(kube.checks);
        found.specs.extend(kube.specs);
        if !kube.found_any_file {
            if let Some(spec) = legacy::from_kube_vars(env) {
                found.specs.push(spec);
            } else if let Some(spec) =
                in_cluster::in_cluster(env).filter(|_| in_cluster::kubectl_falls_back(env))
            {
                // Said on purpose (`--in-cluster`) it is the plan, not a surprise.
                if opts.in_cluster != Some(true) {
                    found.checks.push(in_cluster::fallback_warning(env, &spec));
                }
            } else if opts.in_cluster != Some(true) {
                found
                    .checks
                    .push(in_cluster::without_token(env, not_set(env, ci)));
            }
        }
    }
    let wants_in_cluster = opts.in_cluster.unwrap_or(opts.server.is_none());
    match in_cluster::in_cluster(env) {
        Some(spec) if wants_in_cluster => found.specs.push(spec),
        // Asked for by name and not there: say so, or the run would pass having checked nothing.
        None if opts.in_cluster == Some(true) => found.checks.push(in_cluster::not_in_a_pod(env)),
        _ => {}
    }
    if opts.without_gitlab_server {
        return found;
    }
    if let Some(spec) = legacy::gitlab_server(env, ci, &found.specs) {
        found.specs.push(spec);
    }
    found
}

fn not_set(env: &Env, ci: &CiFacts) -> CheckResult {
    if env.in_gitlab_ci() {
        let checkout = match ci.project_dir.as_deref() {
            Some(dir) => crate::gitlab::check_agent_configs(dir, ci),
            None => Vec::new(),
        };
        return crate::gitlab::explain_not_set(ci, None, &checkout);
    }
    CheckResult::finding(CheckId::ConfigKubeconfig, "", Reason::NotSet).with_evidence(
        "KUBECONFIG is not set, ~/.kube/config does not exist, KUBE_URL is not set, not in a pod",
    )
}

/// Kind from the shape of the target (spec §1), by the GitLab module's own recognisers.
pub fn detect_kind(
    context: &str,
    server: Option<&str>,
    user: Option<&str>,
    token: Option<&Secret>,
) -> TargetKind {
    let token = token.map(Secret::expose);
    if crate::gitlab::is_agent_target(server.unwrap_or_default(), user, token) {
        TargetKind::GitlabAgent
    } else if crate::gitlab::is_legacy_context(context) {
        TargetKind::LegacyCertificate
    } else {
        TargetKind::Direct
    }
}
