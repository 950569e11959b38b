//! Kubeconfig loading the way kubectl does it: `--kubeconfig`, else the `:`-separated
//! `KUBECONFIG` list merged with first-wins per name and `current-context` from the first file
//! that sets it (kube's `Kubeconfig::merge` quotes the rules), else `~/.kube/config`.
//! Unlike a client, we keep every file's outcome: each one becomes evidence.

use std::path::{Path, PathBuf};

use kube::config::{Kubeconfig, NamedContext};
use secrecy::ExposeSecret;

use super::{DiscoveryOptions, TargetSpec, detect_kind};
use crate::catalogue::{CheckId, Reason};
use crate::env::Env;
use crate::model::CheckResult;
use crate::secret::{NAME_CHARS, Secret, quoted};

#[derive(Debug, Default)]
pub struct KubeconfigDiscovery {
    pub specs: Vec<TargetSpec>,
    pub checks: Vec<CheckResult>,
    /// Whether any kubeconfig source was named or exists (else the legacy variables apply).
    pub found_any_file: bool,
}

/// The files to read, in precedence order, and where the list came from.
fn kubeconfig_paths(opts: &DiscoveryOptions, env: &Env) -> (Vec<PathBuf>, &'static str) {
    let split = |list: &str| -> Vec<PathBuf> {
        list.split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect()
    };
    if let Some(list) = &opts.kubeconfig {
        return (split(list), "--kubeconfig");
    }
    if let Some(list) = env.var("KUBECONFIG") {
        return (split(list), "KUBECONFIG");
    }
    match env.home().map(|h| h.join(".kube/config")) {
        Some(path) if path.exists() => (vec![path], "~/.kube/config"),
        _ => (Vec::new(), "none"),
    }
}

pub fn discover(opts: &DiscoveryOptions, env: &Env) -> KubeconfigDiscovery {
    let mut out = KubeconfigDiscovery::default();
    if opts.kubeconfig.is_none()
        && let Some(finding) = env.var("KUBECONFIG").and_then(content_instead_of_path)
    {
        out.found_any_file = true;
        out.checks.push(finding);
        return out;
    }
    let (paths, origin) = kubeconfig_paths(opts, env);
    if paths.is_empty() && origin != "none" {
        // Set, but only separators (`KUBECONFIG=":::"`): not the same mistake as "not set".
        out.found_any_file = true;
        out.checks.push(
            CheckResult::finding(CheckId::ConfigKubeconfig, origin, Reason::NamesNoFile)
                .with_evidence(format!(
                    "{origin} is set but names no file (only `:` separators)"
                )),
        );
        return out;
    }
    if paths.is_empty() {
        return out;
    }
    out.found_any_file = true;
    let mut merged = Kubeconfig::default();
    let mut evidence = Vec::new();
    let mut loaded = 0;
    for path in &paths {
        match load_file(path) {
            Ok(config) => {
                evidence.push(format!(
                    "{} ({origin}): {} contexts, {} clusters, {} users",
                    path.display(),
                    config.contexts.len(),
                    config.clusters.len(),
                    config.auth_infos.len()
                ));
                loaded += 1;
                match merged.clone().merge(config) {
                    Ok(next) => merged = next,
                    Err(e) => evidence.push(format!("{}: not merged: {e}", path.display())),
                }
            }
            // kubectl skips files of the KUBECONFIG list that do not exist
            // (client-go `ClientConfigLoadingRules.Load`), but not an explicit --kubeconfig.
            Err(LoadError::Missing(msg)) if origin == "KUBECONFIG" && paths.len() > 1 => {
                evidence.push(format!("{msg} (skipped, as kubectl does)"));
            }
            Err(LoadError::Missing(msg)) | Err(LoadError::Unreadable(msg)) => {
                out.checks.push(
                    CheckResult::finding(
                        CheckId::ConfigKubeconfig,
                        path.display().to_string(),
                        Reason::Unreadable,
                    )
                    .with_evidence(format!("{msg} (from {origin})")),
                );
                return out;
            }
            Err(LoadError::Base64(msg)) => {
                out.checks.push(
                    CheckResult::finding(
                        CheckId::ConfigKubeconfig,
                        path.display().to_string(),
                        Reason::Base64Encoded,
                    )
                    .with_evidence(msg),
                );
                return out;
            }
            Err(LoadError::Invalid(msg)) => {
                out.checks.push(
                    CheckResult::finding(
                        CheckId::ConfigKubeconfig,
                        path.display().to_string(),
                        Reason::InvalidYaml,
                    )
                    .with_evidence(msg),
                );
                return out;
            }
        }
    }
    if loaded == 0 {
        out.checks.push(
            CheckResult::finding(CheckId::ConfigKubeconfig, "", Reason::Unreadable)
                .with_summary("none of the kubeconfig files exists")
                .with_evidence_lines(evidence),
        );
        return out;
    }
    select(&merged, opts, env, evidence, &mut out);
    out
}

enum LoadError {
    Missing(String),
    Unreadable(String),
    Invalid(String),
    /// The file holds base64 of a kubeconfig, not the kubeconfig.
    Base64(String),
}

/// `KUBECONFIG` holding the kubeconfig itself (a GitLab variable of type Variable instead of
/// File), or base64 of it, rather than a path. The value is never quoted: it holds secrets.
fn content_instead_of_path(value: &str) -> Option<CheckResult> {
    let trimmed = value.trim_start();
    let yaml_like = value.contains('\n')
        || ["apiVersion:", "kind:", "clusters:", "{"]
            .iter()
            .any(|start| trimmed.starts_with(start));
    let finding = |reason: Reason, what: String| {
        CheckResult::finding(CheckId::ConfigKubeconfig, "KUBECONFIG", reason).with_evidence(what)
    };
    if yaml_like {
        return Some(finding(
            Reason::ContentNotPath,
            format!(
                "KUBECONFIG's value is {} bytes over {} lines of text, not a file path (the value itself is not shown: it holds credentials)",
                value.len(),
                value.lines().count()
            ),
        ));
    }
    // Base64's alphabet has `/`, so a value with one may still be base64 (most kubeconfigs with
    // certificate data encode to one); a real path never decodes to a kubeconfig.
    if decodes_to_kubeconfig(value) {
        return Some(finding(
            Reason::Base64Encoded,
            format!(
                "KUBECONFIG's value is {} characters of base64 that decode to a kubeconfig, not a file path",
                value.len()
            ),
        ));
    }
    None
}

/// Whether `text` (whitespace ignored) is base64 of something that reads as a kubeconfig.
fn decodes_to_kubeconfig(text: &str) -> bool {
    use base64::Engine as _;
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() < 16 {
        return false;
    }
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .is_some_and(|decoded| {
            ["apiVersion", "clusters", "contexts"]
                .iter()
                .any(|key| decoded.contains(key))
        })
}

fn load_file(path: &Path) -> Result<Kubeconfig, LoadError> {
    let bytes = crate::env::read_file(path, crate::env::MAX_FILE_BYTES).map_err(|e| match e {
        crate::env::FileError::NotFound { .. } => LoadError::Missing(e.to_string()),
        _ => LoadError::Unreadable(e.to_string()),
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| LoadError::Invalid(format!("{}: not UTF-8 text", path.display())))?;
    if decodes_to_kubeconfig(&text) {
        return Err(LoadError::Base64(format!(
            "{}: {} bytes of base64 that decode to a kubeconfig (kubectl: `yaml: invalid leading UTF-8 octet` or a parse error)",
            path.display(),
            text.len()
        )));
    }
    let mut config = Kubeconfig::from_yaml(&text)
        .map_err(|e| LoadError::Invalid(describe_invalid(path, &text, &e)))?;
    if let Some(dir) = path.parent() {
        make_paths_absolute(&mut config, dir);
    }
    Ok(config)
}

/// kubectl resolves relative file references against the kubeconfig's own folder, and so an
/// exec plugin's command when it is a path (has a `/`) rather than a name looked up on `PATH`
/// (client-go `GetAuthInfoFileReferences`).
fn make_paths_absolute(config: &mut Kubeconfig, dir: &Path) {
    let fix = |value: &mut Option<String>| {
        if let Some(p) = value.as_ref()
            && Path::new(p).is_relative()
        {
            *value = Some(dir.join(p).display().to_string());
        }
    };
    for named in &mut config.clusters {
        if let Some(cluster) = &mut named.cluster {
            fix(&mut cluster.certificate_authority);
        }
    }
    for named in &mut config.auth_infos {
        if let Some(user) = &mut named.auth_info {
            fix(&mut user.client_certificate);
            fix(&mut user.client_key);
            fix(&mut user.token_file);
            if let Some(exec) = &mut user.exec
                && exec.command.as_deref().is_some_and(|c| c.contains('/'))
            {
                fix(&mut exec.command);
            }
        }
    }
}

fn select(
    config: &Kubeconfig,
    opts: &DiscoveryOptions,
    env: &Env,
    evidence: Vec<String>,
    out: &mut KubeconfigDiscovery,
) {
    let names: Vec<String> = config.contexts.iter().map(|c| c.name.clone()).collect();
    if names.is_empty() {
        out.checks.push(
            CheckResult::finding(CheckId::ConfigKubeconfig, "", Reason::NoContexts)
                .with_evidence_lines(evidence),
        );
        return;
    }
    let requested: Vec<String> = if !opts.contexts.is_empty() {
        opts.contexts.clone()
    } else if let Some(ctx) = env.var("KUBE_CONTEXT") {
        if let Some(warning) = kube_context_not_current(config, ctx) {
            out.checks.push(warning);
        }
        vec![ctx.to_string()]
    } else if let Some(ctx) = config.current_context.clone().filter(|c| !c.is_empty()) {
        if let Some(warning) = legacy_context_by_default(config, &ctx) {
            out.checks
                .push(warning.with_evidence_lines(evidence.clone()));
        }
        vec![ctx]
    } else {
        out.checks.push(
            CheckResult::finding(CheckId::ConfigKubeconfig, "", Reason::NoCurrentContext)
                .with_evidence_lines(evidence.clone())
                .with_evidence(format!("contexts: {}", names.join(", "))),
        );
        names.clone()
    };
    let mut missing = Vec::new();
    for name in &requested {
        match config.contexts.iter().find(|c| &c.name == name) {
            Some(ctx) => out.specs.push(spec_for_context(config, ctx)),
            None => missing.push(name.clone()),
        }
    }
    let existing = existing_contexts(&names);
    let cap = crate::plan::target::MAX_TARGETS;
    for name in missing.iter().take(cap) {
        out.checks.push(context_not_found(name, &names, &existing));
    }
    if missing.len() > cap
        && let Some(last) = out.checks.pop()
    {
        out.checks.push(last.with_evidence(format!(
            "{} more requested contexts do not exist either (at most {cap} are reported)",
            missing.len() - cap
        )));
    }
    if out.checks.is_empty() {
        out.checks.push(
            CheckResult::pass(
                CheckId::ConfigKubeconfig,
                "",
                format!("{} context(s) selected", out.specs.len()),
            )
            .with_evidence_lines(evidence),
        );
    }
}

/// `KUBE_CONTEXT` names another context than `current-context`: kube-reach checks the one
/// `KUBE_CONTEXT` names, but kubectl and helm never read that variable; unless the job selects
/// it (`kubectl config use-context "$KUBE_CONTEXT"`, as Auto DevOps does), they use the current
/// context.
fn kube_context_not_current(config: &Kubeconfig, wanted: &str) -> Option<CheckResult> {
    let current = config
        .current_context
        .as_deref()
        .filter(|c| !c.is_empty())?;
    let exists = config.contexts.iter().any(|c| c.name == wanted);
    (current != wanted && exists).then(|| {
        CheckResult::finding(
            CheckId::ConfigKubeconfig,
            wanted,
            Reason::KubeContextNotCurrent,
        )
        .with_evidence(format!(
            "KUBE_CONTEXT={wanted}; the kubeconfig's current-context is {current}"
        ))
        .with_fix_detail(format!(
            "Here: `kubectl config use-context {wanted}` before the deploy commands."
        ))
    })
}

/// `current-context: gitlab-deploy` (the certificate-based integration's context, which GitLab
/// makes current) while the kubeconfig also has GitLab agent contexts: kubectl without
/// `--context` uses the deprecated cluster, not the agent the job was authorized for.
fn legacy_context_by_default(config: &Kubeconfig, current: &str) -> Option<CheckResult> {
    if current != crate::gitlab::LEGACY_CONTEXT {
        return None;
    }
    let agent_contexts: Vec<&str> = config
        .contexts
        .iter()
        .filter(|c| {
            let cluster = c.context.as_ref().map(|x| x.cluster.as_str());
            config
                .clusters
                .iter()
                .filter(|k| Some(k.name.as_str()) == cluster)
                .filter_map(|k| k.cluster.as_ref()?.server.as_deref())
                .any(|s| s.trim_end_matches('/').ends_with("/k8s-proxy"))
        })
        .map(|c| c.name.as_str())
        .collect();
    (!agent_contexts.is_empty()).then(|| {
        CheckResult::finding(
            CheckId::ConfigKubeconfig,
            current,
            Reason::LegacyContextSelected,
        )
        .with_evidence(format!(
            "current-context: {current}; GitLab agent contexts: {}",
            agent_contexts.join(", ")
        ))
        .with_fix_detail(format!(
            "Here: `kubectl config use-context {}`.",
            agent_contexts[0]
        ))
    })
}

/// The `existing contexts: …` evidence line, built once for every missing context and only as
/// long as an evidence line may be (3,000 missing `--context`s of a 10,000-context kubeconfig
/// once joined all names 3,000 times and ran 176 s).
fn existing_contexts(names: &[String]) -> String {
    let mut line = String::from("existing contexts: ");
    for (i, name) in names.iter().enumerate() {
        if line.len() + name.len() > crate::model::MAX_EVIDENCE_CHARS {
            line.push_str(&format!("… and {} more", names.len() - i));
            break;
        }
        if i > 0 {
            line.push_str(", ");
        }
        line.push_str(name);
    }
    line
}

fn context_not_found(name: &str, names: &[String], existing: &str) -> CheckResult {
    let closest = names
        .iter()
        .map(|c| (strsim::levenshtein(name, c), c))
        .min()
        .map(|(_, c)| c.clone());
    let mut result = CheckResult::finding(CheckId::ConfigKubeconfig, name, Reason::ContextNotFound)
        .with_summary(format!(
            "context {} does not exist in the kubeconfig",
            quoted(name, NAME_CHARS)
        ))
        .with_evidence(existing);
    if let Some(closest) = closest {
        result = result.with_fix_detail(format!("Did you mean {}?", quoted(&closest, NAME_CHARS)));
    }
    result
}

fn spec_for_context(config: &Kubeconfig, ctx: &NamedContext) -> TargetSpec {
    let mut spec = TargetSpec {
        name: ctx.name.clone(),
        source: format!("context {}", ctx.name),
        ..TargetSpec::default()
    };
    let Some(context) = &ctx.context else {
        spec.cluster_missing = Some(String::new());
        return spec;
    };
    spec.namespace = context.namespace.clone();
    fill_cluster(config, &context.cluster, &mut spec);
    if let Some(user) = &context.user {
        fill_user(config, user, &mut spec);
    }
    spec.kind = Some(detect_kind(
        &ctx.name,
        spec.server.as_deref(),
        spec.user_name.as_deref(),
        spec.token.as_ref(),
    ));
    spec
}

fn fill_cluster(config: &Kubeconfig, name: &str, spec: &mut TargetSpec) {
    let Some(cluster) = config
        .clusters
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.cluster.as_ref())
    else {
        spec.cluster_missing = Some(name.to_string());
        return;
    };
    spec.server = cluster.server.clone();
    spec.ca_file = cluster.certificate_authority.as_ref().map(PathBuf::from);
    spec.ca_data_base64 = cluster.certificate_authority_data.clone();
    spec.insecure_skip_verify = cluster.insecure_skip_tls_verify.unwrap_or(false);
    spec.tls_server_name = cluster.tls_server_name.clone();
    spec.proxy_url = cluster.proxy_url.clone().map(Secret::new);
}

fn fill_user(config: &Kubeconfig, name: &str, spec: &mut TargetSpec) {
    spec.user_name = Some(name.to_string());
    let Some(user) = config.auth_infos.iter().find(|u| u.name == name) else {
        spec.user_missing = Some(name.to_string());
        return;
    };
    let Some(user) = &user.auth_info else { return };
    spec.token = user
        .token
        .as_ref()
        .map(|t| Secret::new(t.expose_secret().trim()));
    spec.token_file = user.token_file.as_ref().map(PathBuf::from);
    spec.client_cert_file = user.client_certificate.as_ref().map(PathBuf::from);
    spec.client_cert_data_base64 = user.client_certificate_data.clone();
    spec.client_key_file = user.client_key.as_ref().map(PathBuf::from);
    spec.client_key_data_base64 = user
        .client_key_data
        .as_ref()
        .map(|k| Secret::new(k.expose_secret()));
    spec.basic_auth = user.username.is_some() || user.password.is_some();
    spec.other_secrets = other_secrets(user);
    spec.auth_provider = user.auth_provider.as_ref().map(|p| p.name.clone());
    spec.exec = user.exec.as_ref().and_then(exec_spec);
    spec.impersonation = impersonation(user);
}

/// The user's impersonation fields, when any is set.
fn impersonation(user: &kube::config::AuthInfo) -> Option<super::Impersonation> {
    let mut extra: Vec<_> = (user.impersonate_user_extra.iter().flatten())
        .map(|(key, values)| (key.clone(), values.iter().map(Secret::new).collect()))
        .collect();
    extra.sort_by(|a: &(String, Vec<Secret>), b| a.0.cmp(&b.0));
    let found = super::Impersonation {
        user: user.impersonate.clone(),
        uid: user.impersonate_uid.clone(),
        groups: user.impersonate_groups.clone().unwrap_or_default(),
        extra,
    };
    (!found.is_empty()).then_some(found)
}

/// The `exec:` stanza as client-go uses it; `None` without a command.
fn exec_spec(exec: &kube::config::ExecConfig) -> Option<super::ExecSpec> {
    let env = exec
        .env
        .iter()
        .flatten()
        .filter_map(|entry| Some((entry.get("name")?.clone(), entry.get("value")?.clone())))
        .collect();
    let interactive_mode = exec.interactive_mode.as_ref().map(|m| {
        match m {
            kube::config::ExecInteractiveMode::Never => "Never",
            kube::config::ExecInteractiveMode::IfAvailable => "IfAvailable",
            kube::config::ExecInteractiveMode::Always => "Always",
        }
        .to_string()
    });
    Some(super::ExecSpec {
        command: exec.command.clone()?,
        args: exec.args.clone().unwrap_or_default(),
        env,
        api_version: exec.api_version.clone(),
        interactive_mode,
        provide_cluster_info: exec.provide_cluster_info,
    })
}

#[cfg(test)]
mod content_tests {
    use super::*;

    #[test]
    fn kube_context_other_than_current_warns() {
        let yaml = "apiVersion: v1\nkind: Config\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n- name: b\n  context: {cluster: c, user: u}\ncurrent-context: a\n";
        let config = Kubeconfig::from_yaml(yaml).expect("kubeconfig");
        let r = kube_context_not_current(&config, "b").expect("warning");
        assert_eq!(r.reason, Some(Reason::KubeContextNotCurrent));
        assert!(kube_context_not_current(&config, "a").is_none());
        // A context that does not exist is context-not-found, not this.
        assert!(kube_context_not_current(&config, "zz").is_none());
    }

    #[test]
    fn gitlab_deploy_by_default_beside_agent_contexts_warns() {
        let yaml = "apiVersion: v1\nkind: Config\nclusters:\n- name: gitlab\n  cluster: {server: 'https://kas.gitlab.example/k8s-proxy'}\n- name: gitlab-deploy\n  cluster: {server: 'https://10.0.0.1:6443'}\ncontexts:\n- name: group/agents:prod\n  context: {cluster: gitlab, user: agent}\n- name: gitlab-deploy\n  context: {cluster: gitlab-deploy, user: legacy}\ncurrent-context: gitlab-deploy\n";
        let config = Kubeconfig::from_yaml(yaml).expect("kubeconfig");
        let r = legacy_context_by_default(&config, "gitlab-deploy").expect("warning");
        assert_eq!(r.reason, Some(Reason::LegacyContextSelected));
        assert!(
            r.fix
                .unwrap_or_default()
                .contains("use-context group/agents:prod")
        );
        assert!(legacy_context_by_default(&config, "group/agents:prod").is_none());
        let legacy_only = "apiVersion: v1\nkind: Config\nclusters:\n- name: gitlab-deploy\n  cluster: {server: 'https://10.0.0.1:6443'}\ncontexts:\n- name: gitlab-deploy\n  context: {cluster: gitlab-deploy, user: legacy}\ncurrent-context: gitlab-deploy\n";
        let config = Kubeconfig::from_yaml(legacy_only).expect("kubeconfig");
        assert!(legacy_context_by_default(&config, "gitlab-deploy").is_none());
    }

    #[test]
    fn paths_are_paths_and_text_or_base64_is_named() {
        for path in [
            "/builds/group/project.tmp/KUBECONFIG",
            "kubeconfig",
            "a:b",
            "/tmp/x.yaml:/tmp/y",
        ] {
            assert!(content_instead_of_path(path).is_none(), "{path}");
        }
        let yaml = "apiVersion: v1\nkind: Config\nclusters: []\n";
        let r = content_instead_of_path(yaml).expect("content");
        assert_eq!(r.reason, Some(Reason::ContentNotPath));
        assert!(
            !r.evidence.join(" ").contains("apiVersion"),
            "the value is never quoted"
        );
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(yaml);
        let r = content_instead_of_path(&b64).expect("base64");
        assert_eq!(r.reason, Some(Reason::Base64Encoded));
        // `???` encodes to `Pz8/`: base64 with a `/` in it is still base64, never a path.
        let with_slash = base64::engine::general_purpose::STANDARD.encode(format!("# ???\n{yaml}"));
        assert!(with_slash.contains('/'), "{with_slash}");
        let r = content_instead_of_path(&with_slash).expect("base64 with a slash");
        assert_eq!(r.reason, Some(Reason::Base64Encoded));
        assert!(!r.evidence.join(" ").contains(&with_slash[..16]));
    }
}

/// Secret values of a kubeconfig user that are not sent: the basic-auth password, and the
/// auth-provider settings and exec `env` values that are secrets. A setting is one when its name
/// says so (`client-secret`, `refresh-token`, `id-token`, `AWS_SECRET_ACCESS_KEY`, …) or its value
/// is long and opaque; a short ordinary value (`client-id: kubernetes`, `AWS_PROFILE=default`) is
/// not registered, or every `kubernetes` and `default` in the report would be redacted.
fn other_secrets(user: &kube::config::AuthInfo) -> Vec<Secret> {
    let mut found = Vec::new();
    if let Some(p) = &user.password {
        found.push(Secret::new(p.expose_secret()));
    }
    if let Some(provider) = &user.auth_provider {
        found.extend(
            provider
                .config
                .iter()
                .filter(|(name, value)| is_secret_setting(name, value))
                .map(|(_, value)| Secret::new(value.as_str())),
        );
    }
    if let Some(args) = user.exec.as_ref().and_then(|e| e.args.as_ref()) {
        found.extend(secret_args(args).map(Secret::new));
    }
    if let Some(env) = user.exec.as_ref().and_then(|e| e.env.as_ref()) {
        for var in env {
            let name = var.get("name").map_or("", String::as_str);
            if let Some(value) = var.get("value").filter(|v| is_secret_setting(name, v)) {
                found.push(Secret::new(value.as_str()));
            }
        }
    }
    found
}

/// The values of an exec plugin's secret-named flags (`--client-secret X`, `--token=X`) and
/// settings (`password=X`, as `vault login` takes them): a plugin that refuses one quotes it
/// back in its error, and a short one has no shape a pattern knows.
fn secret_args(args: &[String]) -> impl Iterator<Item = String> + '_ {
    let secret_flag = |flag: &str| flag.starts_with('-') && is_secret_setting(flag, "");
    args.iter()
        .enumerate()
        .filter_map(move |(i, arg)| match arg.split_once('=') {
            Some((name, value)) if is_secret_setting(name, "") => Some(value.to_string()),
            None if secret_flag(arg) => args.get(i + 1).filter(|v| !v.starts_with('-')).cloned(),
            _ => None,
        })
}

/// Values at least this long are registered whatever their setting's name.
const OPAQUE_VALUE_LEN: usize = 16;

fn is_secret_setting(name: &str, value: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let secret_name = [
        "secret",
        "token",
        "password",
        "passwd",
        "key",
        "credential",
        "auth",
    ]
    .iter()
    .any(|word| name.contains(word));
    // Words, not parts: `--pass`, `--passphrase`, `VAULT_PW` name secrets; `bypass` does not.
    let secret_word = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| word == "pw" || word.starts_with("pass"));
    secret_name || secret_word || value.trim().len() >= OPAQUE_VALUE_LEN
}

/// Kubeconfig keys a key path may name. Any other key is printed as `?`: a line the parser
/// choked on may be a secret written where a key was expected.
const KNOWN_KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "preferences",
    "current-context",
    "clusters",
    "cluster",
    "contexts",
    "context",
    "users",
    "user",
    "name",
    "namespace",
    "server",
    "certificate-authority",
    "certificate-authority-data",
    "insecure-skip-tls-verify",
    "tls-server-name",
    "proxy-url",
    "disable-compression",
    "extensions",
    "extension",
    "token",
    "tokenFile",
    "client-certificate",
    "client-certificate-data",
    "client-key",
    "client-key-data",
    "username",
    "password",
    "as",
    "as-uid",
    "as-groups",
    "as-user-extra",
    "auth-provider",
    "config",
    "exec",
    "command",
    "args",
    "env",
    "value",
    "installHint",
    "provideClusterInfo",
    "interactiveMode",
];

/// `config.kubeconfig invalid-yaml` evidence: the file, line, column, key path and the kind of
/// problem, **never the file's text** (the YAML parser's message quotes the offending line,
/// which may be a token or a key).
fn describe_invalid(path: &Path, text: &str, error: &kube::config::KubeconfigError) -> String {
    let kube::config::KubeconfigError::Parse(yaml) = error else {
        return format!("{}: not a valid kubeconfig", path.display());
    };
    let problem = yaml_problem(yaml);
    match yaml.location() {
        Some(at) if at.line() > 0 => {
            let line = usize::try_from(at.line()).unwrap_or(usize::MAX);
            format!(
                "{}: line {}, column {}, at {}: {problem}",
                path.display(),
                at.line(),
                at.column(),
                key_path(text, line)
            )
        }
        _ => format!("{}: {problem}", path.display()),
    }
}

/// What kind of YAML problem, in words of our own: the parser's own message may quote input.
pub(crate) fn yaml_problem(error: &serde_saphyr::Error) -> &'static str {
    use serde_saphyr::Error as E;
    match innermost(error) {
        E::DuplicateMappingKey { .. } => "a key appears twice in the same mapping",
        E::SerdeInvalidType { .. } | E::Unexpected { .. } => {
            "a value has the wrong type (a list, mapping or string where another is expected)"
        }
        E::SerdeMissingField { .. } => "a required field is missing",
        E::SerdeUnknownField { .. } | E::SerdeUnknownVariant { .. } => "an unknown field",
        E::SerdeInvalidValue { .. } | E::InvalidScalar { .. } | E::InvalidBooleanStrict { .. } => {
            "a value is not valid for its field"
        }
        E::IndentationError { .. } => "the indentation is inconsistent (tabs are not allowed)",
        E::Eof { .. } => "the file ends in the middle of a value (an unclosed quote or bracket?)",
        E::InvalidUtf8Input => "the file is not UTF-8 text",
        E::Budget { .. }
        | E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => {
            "the document is too large or too deeply nested"
        }
        // The parser's depth guard has no variant of its own; its text is only looked at.
        other if other.to_string().contains("recursion limit") => {
            "the document is too large or too deeply nested"
        }
        _ => "not valid YAML (an unclosed quote, a tab, or a stray character?)",
    }
}

/// The parser's own error under its snippet and alias wrappers (a budget breach inside an
/// alias comes wrapped in the alias's locations).
fn innermost(mut error: &serde_saphyr::Error) -> &serde_saphyr::Error {
    use serde_saphyr::Error as E;
    while let E::AliasError { error: inner, .. } | E::WithSnippet { error: inner, .. } = error {
        error = inner;
    }
    error
}

/// The key path of `line` (1-based), `users[].user.token`, from the indentation of the lines
/// above it. Keys outside [`KNOWN_KEYS`] print as `?`.
fn key_path(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().take(line).collect();
    // Innermost first: a key, or `[]` for a list item.
    let mut path: Vec<&str> = Vec::new();
    let mut limit = usize::MAX;
    // Just inside a list item: its siblings (same dash column) are not ancestors.
    let mut after_item = false;
    for raw in lines.iter().rev() {
        let dash = raw.len() - raw.trim_start_matches(' ').len();
        let trimmed = raw.trim_start_matches([' ', '-']);
        let content = raw.len() - trimmed.len();
        let item = raw[dash..].starts_with('-');
        let key = trimmed
            .split_once(':')
            .map(|(k, _)| k.trim().trim_matches(['"', '\'']));
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        if content < limit
            && let Some(key) = key
        {
            path.push(if KNOWN_KEYS.contains(&key) { key } else { "?" });
            limit = content;
            after_item = false;
        }
        if item && dash < limit && !(after_item && dash + 1 == limit) {
            path.push("[]");
            // The list's own key may sit at the dash's column (`users:` then `- name:`).
            limit = dash + 1;
            after_item = true;
        }
        if limit == 0 {
            break;
        }
    }
    if path.is_empty() {
        return "the top level".into();
    }
    let mut out = String::new();
    for part in path.iter().rev() {
        if *part != "[]" && !out.is_empty() {
            out.push('.');
        }
        out.push_str(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The missing context and the closest one are quoted through `secret::quoted`.
    #[test]
    fn a_missing_context_is_quoted_redacted() {
        let names = ["ci-glpat-abcdefghij0123456789".to_string()];
        let r = context_not_found("ci-glpat-abcdefghij012345678", &names, "");
        assert_eq!(
            r.summary,
            "context 'ci-glpat-[REDACTED]' does not exist in the kubeconfig"
        );
        let fix = r.fix.unwrap_or_default();
        assert!(
            fix.starts_with("Did you mean 'ci-glpat-[REDACTED]'? "),
            "{fix}"
        );
    }

    #[test]
    fn the_values_of_secret_named_plugin_flags_are_secrets() {
        let args: Vec<String> = [
            "get-token",
            "--client-secret",
            "s3cret-one",
            "--token=tok-two",
            "--server-id",
            "6dae42f8",
            "--password",
            "--verbose",
            "username=ci",
            "password=vault-three",
            "--pass",
            "four",
        ]
        .map(String::from)
        .to_vec();
        let found: Vec<String> = secret_args(&args).collect();
        assert_eq!(found, ["s3cret-one", "tok-two", "vault-three", "four"]);
    }

    #[test]
    fn secret_settings_by_name_or_length() {
        assert!(is_secret_setting("client-secret", "abcd"));
        assert!(is_secret_setting("AWS_SECRET_ACCESS_KEY", "abcd"));
        assert!(is_secret_setting("refresh-token", "abcd"));
        assert!(is_secret_setting("x", "0123456789abcdefXYZ"));
        assert!(!is_secret_setting("client-id", "kubernetes"));
        assert!(!is_secret_setting("AWS_PROFILE", "default"));
        for name in ["--pass", "--passphrase", "VAULT_PW", "PASS"] {
            assert!(is_secret_setting(name, "abcd"), "{name}");
        }
        assert!(!is_secret_setting("--bypass-cache", "true"));
    }

    /// `command: ./bin/get-token` in `/builds/x.tmp/KUBECONFIG` is `/builds/x.tmp/bin/get-token`
    /// to kubectl, wherever the job runs; a bare name stays a `PATH` lookup.
    #[test]
    fn relative_exec_commands_are_resolved_against_the_kubeconfig_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kubeconfig");
        let user = |name: &str, command: &str| {
            format!(
                "- name: {name}\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {command}\n"
            )
        };
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nusers:\n{}{}{}",
            user("relative", "./bin/get-token"),
            user("bare", "aws"),
            user("absolute", "/usr/bin/get-token")
        );
        std::fs::write(&path, yaml).expect("kubeconfig");
        let Ok(config) = load_file(&path) else {
            panic!("the kubeconfig loads");
        };
        let command = |name: &str| {
            config
                .auth_infos
                .iter()
                .find(|u| u.name == name)
                .and_then(|u| u.auth_info.as_ref()?.exec.as_ref()?.command.clone())
        };
        let relative = dir.path().join("./bin/get-token").display().to_string();
        assert_eq!(command("relative"), Some(relative));
        assert_eq!(command("bare").as_deref(), Some("aws"));
        assert_eq!(command("absolute").as_deref(), Some("/usr/bin/get-token"));
    }

    #[test]
    fn key_paths_name_known_keys_only() {
        let text = "apiVersion: v1\nusers:\n- name: a\n  user:\n    token: x\n- name: b\n  user:\n    client-key-data: \"abc\n";
        assert_eq!(key_path(text, 8), "users[].user.client-key-data");
        assert_eq!(key_path(text, 5), "users[].user.token");
        assert_eq!(key_path(text, 1), "apiVersion");
        assert_eq!(key_path("users:\n  s3cr3t-as-key: 1\n", 2), "users.?");
    }

    /// Nine aliases of nine aliases… ("billion laughs") and lists nested 100,000 deep are
    /// refused by the parser's budget; the evidence says so rather than blaming a quote or tab.
    #[test]
    fn alias_bombs_and_deep_nesting_are_named_as_such() {
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (prev, name) in ('a'..'j').zip('b'..='j') {
            let alias = format!("*{prev}");
            let items = [alias.as_str(); 9].join(",");
            bomb.push_str(&format!("{name}: &{name} [{items}]\n"));
        }
        bomb.push_str("apiVersion: v1\nkind: Config\n");
        let deep = format!(
            "apiVersion: v1\nextensions:\n- name: e\n  extension: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        for (what, text) in [("alias bomb", bomb), ("deep lists", deep)] {
            let err = Kubeconfig::from_yaml(&text).expect_err(what);
            let said = describe_invalid(Path::new("kc"), &text, &err);
            assert!(
                said.contains("too large or too deeply nested"),
                "{what}: {said}"
            );
        }
    }
}
