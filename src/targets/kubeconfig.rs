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
use crate::secret::Secret;

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
}

fn load_file(path: &Path) -> Result<Kubeconfig, LoadError> {
    let bytes = crate::env::read_file(path, crate::env::MAX_FILE_BYTES).map_err(|e| match e {
        crate::env::FileError::NotFound { .. } => LoadError::Missing(e.to_string()),
        _ => LoadError::Unreadable(e.to_string()),
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| LoadError::Invalid(format!("{}: not UTF-8 text", path.display())))?;
    let mut config = Kubeconfig::from_yaml(&text).map_err(|e| {
        LoadError::Invalid(format!(
            "{}: {}",
            path.display(),
            crate::error::with_sources(&e)
        ))
    })?;
    if let Some(dir) = path.parent() {
        make_paths_absolute(&mut config, dir);
    }
    Ok(config)
}

/// kubectl resolves relative file references against the kubeconfig's own folder.
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
        vec![ctx.to_string()]
    } else if let Some(ctx) = config.current_context.clone().filter(|c| !c.is_empty()) {
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
    for name in missing {
        out.checks.push(context_not_found(&name, &names));
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

fn context_not_found(name: &str, existing: &[String]) -> CheckResult {
    let closest = existing
        .iter()
        .map(|c| (strsim::levenshtein(name, c), c))
        .min()
        .map(|(_, c)| c.clone());
    let mut result = CheckResult::finding(CheckId::ConfigKubeconfig, name, Reason::ContextNotFound)
        .with_summary(format!("context {name:?} does not exist in the kubeconfig"))
        .with_evidence(format!("existing contexts: {}", existing.join(", ")));
    if let Some(closest) = closest {
        result = result.with_fix_detail(format!("Did you mean {closest:?}?"));
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
    spec.auth_provider = user.auth_provider.as_ref().map(|p| p.name.clone());
    spec.exec_command = user.exec.as_ref().and_then(|e| e.command.clone());
}
