//! `config.credentials` for a credential (exec) plugin: what kubectl would refuse before running
//! it (`v1alpha1`, `v1` without `interactiveMode`, `interactiveMode: Always` without a
//! terminal), then what the plugin did when
//! run the way client-go runs it (`credential_plugin`): failed with its exit status and first
//! stderr lines, waited for a person, answered another apiVersion, or returned a token, judged
//! for expiry like any token.

use std::time::{Duration, SystemTime};

use crate::catalogue::{CheckId, Reason};
use crate::credential_plugin::{self, ClusterInfo, Outcome, REMOVED_API_VERSION};
use crate::env::Env;
use crate::model::CheckResult;
use crate::secret::Secret;
use crate::targets::ExecSpec;
use crate::x509::{format_time, human_duration};

/// The exec apiVersion for which client-go requires `interactiveMode` (no default).
const V1: &str = "client.authentication.k8s.io/v1";

/// What a plugin issued that the target can authenticate with.
pub enum Issued {
    Token(Secret),
    ClientCertificate { cert_pem: String, key_pem: Secret },
}

/// The result for the plugin, and what it issued (if it issued something usable).
pub fn judge(
    id: CheckId,
    subject: &str,
    spec: &ExecSpec,
    cluster: &ClusterInfo,
    env: &Env,
    timeout: Duration,
) -> (CheckResult, Option<Issued>) {
    let command = spec.command.as_str();
    if spec.api_version.as_deref() == Some(REMOVED_API_VERSION) {
        let r = CheckResult::finding(id, subject, Reason::ExecApiversionUnsupported).with_evidence(
            format!("exec.apiVersion: {REMOVED_API_VERSION} ({command})"),
        );
        return (r, None);
    }
    if spec.interactive_mode.is_none() && spec.api_version.as_deref() == Some(V1) {
        let r = CheckResult::finding(id, subject, Reason::ExecInteractiveModeMissing)
            .with_evidence(format!(
                "exec.apiVersion: {V1} and no exec.interactiveMode ({command})"
            ));
        return (r, None);
    }
    if spec.interactive_mode.as_deref() == Some("Always") {
        let r = CheckResult::finding(id, subject, Reason::ExecPluginInteractive).with_evidence(
            format!("exec.interactiveMode: Always ({command}), and a CI job has no terminal"),
        );
        return (r, None);
    }
    let outcome = credential_plugin::run(spec, cluster, env, timeout);
    judge_outcome(id, subject, command, outcome, env.now)
}

fn judge_outcome(
    id: CheckId,
    subject: &str,
    command: &str,
    outcome: Outcome,
    now: SystemTime,
) -> (CheckResult, Option<Issued>) {
    let ran = format!("ran `{command}` as kubectl would (stdin closed, no terminal)");
    match outcome {
        Outcome::Token { token, expires } => {
            let result = token_result(id, subject, command, expires, now).with_evidence(ran);
            let usable = !result.status.is_failure();
            (result, usable.then_some(Issued::Token(token)))
        }
        Outcome::ClientCertificate { cert_pem, key_pem } => (
            CheckResult::pass(
                id,
                subject,
                format!("exec plugin {command} returned a client certificate"),
            )
            .with_evidence(ran),
            Some(Issued::ClientCertificate { cert_pem, key_pem }),
        ),
        Outcome::VersionMismatch { declared, answered } => (
            CheckResult::finding(id, subject, Reason::ExecApiversionMismatch)
                .with_evidence(ran)
                .with_evidence(format!(
                    "the kubeconfig declares {declared}; {command} answered \"{}\"",
                    crate::secret::redact_output_line(&answered).escape_debug()
                )),
            None,
        ),
        Outcome::Interactive { prompt } => (
            CheckResult::finding(id, subject, Reason::ExecPluginInteractive)
                .with_evidence(ran)
                .with_evidence(format!("{command} printed: {prompt}")),
            None,
        ),
        Outcome::Failed {
            status,
            timed_out,
            stderr,
            problem,
        } => {
            let status = match (timed_out, status) {
                (true, _) => "killed at the timeout".to_string(),
                (false, Some(code)) => format!("exit code {code}"),
                (false, None) => "ended by a signal".to_string(),
            };
            let r = CheckResult::finding(id, subject, Reason::ExecPluginFailed)
                .with_summary(format!("exec plugin {command} failed: {problem}"))
                .with_evidence(ran)
                .with_evidence(format!("{command}: {status}"))
                .with_evidence_lines(stderr.into_iter().map(|l| format!("stderr: {l}")));
            (r, None)
        }
        Outcome::CannotRun(e) => (
            CheckResult::finding(id, subject, Reason::ExecPluginFailed)
                .with_summary(format!("exec plugin {command} could not be started"))
                .with_evidence(e),
            None,
        ),
    }
}

/// A plugin's token, judged by its `expirationTimestamp` as kubectl would use it.
fn token_result(
    id: CheckId,
    subject: &str,
    command: &str,
    expires: Option<SystemTime>,
    now: SystemTime,
) -> CheckResult {
    match expires {
        Some(at) if at <= now => CheckResult::finding(id, subject, Reason::TokenExpired)
            .with_summary(format!(
                "exec plugin {command} returned a token that expired {} ago",
                human_duration(now.duration_since(at).unwrap_or_default())
            ))
            .with_evidence(format!("expirationTimestamp {}", format_time(at))),
        Some(at) => CheckResult::pass(
            id,
            subject,
            format!("exec plugin {command} returned a token"),
        )
        .with_evidence(format!("expirationTimestamp {}", format_time(at))),
        None => CheckResult::pass(
            id,
            subject,
            format!("exec plugin {command} returned a token"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(api_version: &str, interactive: Option<&str>) -> ExecSpec {
        ExecSpec {
            command: "/nonexistent/plugin".into(),
            api_version: Some(api_version.into()),
            interactive_mode: interactive.map(str::to_string),
            ..ExecSpec::default()
        }
    }

    fn env() -> Env {
        Env {
            vars: Default::default(),
            now: SystemTime::now(),
            resolv_conf_path: "/dev/null".into(),
            hosts_path: "/dev/null".into(),
            service_account_dir: "/nonexistent".into(),
        }
    }

    #[test]
    fn what_kubectl_refuses_is_judged_without_running_the_plugin() {
        let id = CheckId::ConfigCredentials;
        let t = Duration::from_secs(1);
        let none = ClusterInfo::default();
        let (r, _) = judge(id, "u", &spec(REMOVED_API_VERSION, None), &none, &env(), t);
        assert_eq!(r.reason, Some(Reason::ExecApiversionUnsupported));
        let v1 = "client.authentication.k8s.io/v1";
        let (r, _) = judge(id, "u", &spec(v1, Some("Always")), &none, &env(), t);
        assert_eq!(r.reason, Some(Reason::ExecPluginInteractive));
        let (r, _) = judge(id, "u", &spec(v1, None), &none, &env(), t);
        assert_eq!(r.reason, Some(Reason::ExecInteractiveModeMissing));
        let (r, _) = judge(
            id,
            "u",
            &spec("client.authentication.k8s.io/v1beta1", None),
            &none,
            &env(),
            t,
        );
        assert_eq!(
            r.reason,
            Some(Reason::ExecPluginFailed),
            "v1beta1 defaults to IfAvailable"
        );
        let (r, token) = judge(id, "u", &spec(v1, Some("IfAvailable")), &none, &env(), t);
        assert_eq!(r.reason, Some(Reason::ExecPluginFailed));
        assert!(token.is_none());
    }

    /// The apiVersion a plugin printed is its output: quoted as such (a token-shaped word
    /// redacted, a line break escaped), never as Rust's `Debug` text.
    #[test]
    fn a_mismatched_api_version_is_quoted_as_plugin_output() {
        let answered = "v1\nghp_0123456789abcdefghijklmnopqrstuvwxyz".to_string();
        let outcome = Outcome::VersionMismatch {
            declared: "client.authentication.k8s.io/v1".into(),
            answered,
        };
        let (r, issued) = judge_outcome(
            CheckId::ConfigCredentials,
            "u",
            "plugin",
            outcome,
            SystemTime::now(),
        );
        assert!(issued.is_none());
        assert_eq!(r.reason, Some(Reason::ExecApiversionMismatch));
        let line = r.evidence.last().expect("evidence");
        assert!(
            line.ends_with("plugin answered \"v1\\n[REDACTED]\""),
            "{line}"
        );
    }

    #[test]
    fn an_expired_plugin_token_is_token_expired() {
        let now = SystemTime::now();
        let past = now - Duration::from_secs(3600);
        let r = token_result(CheckId::ConfigCredentials, "u", "aws", Some(past), now);
        assert_eq!(r.reason, Some(Reason::TokenExpired));
        let future = now + Duration::from_secs(3600);
        let r = token_result(CheckId::ConfigCredentials, "u", "aws", Some(future), now);
        assert_eq!(r.reason, None);
    }
}
