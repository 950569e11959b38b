//! Credential (exec) plugins run the way client-go runs them
//! (<https://kubernetes.io/docs/reference/access-authn-authz/authentication/#client-go-credential-plugins>,
//! `k8s.io/client-go/plugin/pkg/client/auth/exec/exec.go`): the job's environment plus the
//! stanza's `env`, `KUBERNETES_EXEC_INFO` describing the request (never interactive here: a CI
//! job has no terminal), stdin closed, no TTY, bounded by `--timeout` (through `exec`). What the
//! plugin printed is read as an `ExecCredential`; its token is a secret like any other. This
//! module observes; `checks::config` judges.

use std::time::{Duration, SystemTime};

use crate::env::Env;
use crate::exec::{self, Finished};
use crate::secret::{Scrubber, Secret, redact_output_line};
use crate::targets::{ExecSpec, TargetSpec};

/// The apiVersions client-go accepts; `v1alpha1` was removed in kubectl 1.24.
pub const SUPPORTED_API_VERSIONS: &[&str] = &[
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
];
pub const REMOVED_API_VERSION: &str = "client.authentication.k8s.io/v1alpha1";

/// Linux's limit on one environment string (`MAX_ARG_STRLEN`, 32 pages).
const ARG_MAX_ONE: usize = 128 * 1024;

/// Lines of the plugin's stderr kept for evidence.
const STDERR_LINES: usize = 3;

/// How one run of the plugin went.
#[derive(Debug)]
pub enum Outcome {
    /// It printed an `ExecCredential` with a token.
    Token {
        token: Secret,
        expires: Option<SystemTime>,
    },
    /// It printed an `ExecCredential` with a client certificate (PEM) and key instead of a token.
    ClientCertificate { cert_pem: String, key_pem: Secret },
    /// It answered another apiVersion than the kubeconfig declares.
    VersionMismatch { declared: String, answered: String },
    /// It asked for a person (a device-login prompt), then waited or gave up.
    Interactive { prompt: String },
    /// It exited non-zero, was killed at the timeout, or printed no credential.
    Failed {
        status: Option<i32>,
        timed_out: bool,
        stderr: Vec<String>,
        problem: String,
    },
    /// It could not be started.
    CannotRun(String),
}

/// The cluster as client-go describes it to a plugin with `provideClusterInfo: true`
/// (`ConfigToExecCluster`): its server, TLS settings, CA and proxy as the kubeconfig has them
/// (not its `client.authentication.k8s.io/exec` extension, which is not read).
/// Plugins such as Pinniped's read the CA from here.
#[derive(Debug, Default)]
pub struct ClusterInfo {
    pub server: Option<String>,
    pub tls_server_name: Option<String>,
    pub insecure_skip_tls_verify: bool,
    /// `certificate-authority-data` (base64), or the `certificate-authority` file's bytes
    /// encoded so, as client-go loads the file into it.
    pub ca_data_base64: Option<String>,
    /// The kubeconfig's `proxy-url` (the plugin is local: its password goes nowhere else).
    pub proxy_url: Option<String>,
}

impl ClusterInfo {
    pub fn of(spec: &TargetSpec) -> Self {
        let encode = |bytes: &[u8]| {
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
        };
        let ca_data_base64 = spec
            .ca_data_base64
            .clone()
            .or_else(|| {
                spec.ca_file
                    .as_ref()
                    .and_then(|f| std::fs::read(f).ok())
                    .map(|b| encode(&b))
            })
            .or_else(|| spec.ca_pem.as_ref().map(|pem| encode(pem.as_bytes())));
        ClusterInfo {
            server: spec.server.clone(),
            tls_server_name: spec.tls_server_name.clone(),
            insecure_skip_tls_verify: spec.insecure_skip_verify,
            ca_data_base64,
            proxy_url: spec.proxy_url.as_ref().map(|p| p.expose().to_string()),
        }
    }
}

/// Runs `spec` for a target whose cluster is `cluster`.
pub fn run(spec: &ExecSpec, cluster: &ClusterInfo, env: &Env, timeout: Duration) -> Outcome {
    let api_version = spec
        .api_version
        .clone()
        .unwrap_or_else(|| SUPPORTED_API_VERSIONS[0].to_string());
    let mut vars: Vec<(String, String)> = env
        .vars
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.extend(spec.env.iter().cloned());
    let info = exec_info(&api_version, spec, cluster);
    let info_len = info.len();
    vars.push(("KUBERNETES_EXEC_INFO".into(), info));
    let path_var = env.var("PATH").unwrap_or_default();
    let program = if spec.command.contains('/') {
        Some(std::path::PathBuf::from(&spec.command))
    } else {
        exec::which(&spec.command, path_var)
    };
    let Some(program) = program else {
        return Outcome::CannotRun(format!("{} not found on PATH", spec.command));
    };
    let args: Vec<&str> = spec.args.iter().map(String::as_str).collect();
    match exec::run(&program, &args, &vars, timeout) {
        Err(e) if e.source.raw_os_error() == Some(libc::E2BIG) && info_len > ARG_MAX_ONE => {
            Outcome::CannotRun(format!(
                "{e}: KUBERNETES_EXEC_INFO is {info_len} bytes, over Linux's limit of {ARG_MAX_ONE} bytes for one variable (with provideClusterInfo it carries the cluster's CA; kubectl fails the same way)"
            ))
        }
        Err(e) => Outcome::CannotRun(e.to_string()),
        Ok(finished) => without_secrets_of(read(&finished, &api_version), &vars),
    }
}

/// Parts of a variable's name that say its value is a secret (`AWS_SECRET_ACCESS_KEY`,
/// `AZURE_CLIENT_SECRET`, `VAULT_TOKEN`, `ARM_CLIENT_PASSWORD`, …).
const SECRET_NAME_PARTS: &[&str] = &[
    "SECRET",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "PRIVATE",
    "CREDENTIAL",
    "_KEY",
];
/// Shorter values (`true`, `1`, `none`) are settings, not secrets.
const SECRET_VALUE_MIN: usize = 8;

/// `outcome` with the values of the plugin's secret-named variables masked in what it quotes:
/// a plugin that fails says why, often with the credential it was given (`Invalid client
/// secret provided: …`), and a short one has no shape that [`redact_output_line`] knows.
fn without_secrets_of(outcome: Outcome, vars: &[(String, String)]) -> Outcome {
    let mut known = Scrubber::new();
    vars.iter()
        .filter(|(name, value)| {
            let name = name.to_ascii_uppercase();
            value.len() >= SECRET_VALUE_MIN && SECRET_NAME_PARTS.iter().any(|p| name.contains(p))
        })
        .for_each(|(_, value)| known.add(value));
    match outcome {
        Outcome::Failed {
            status,
            timed_out,
            stderr,
            problem,
        } => Outcome::Failed {
            status,
            timed_out,
            stderr: stderr.iter().map(|line| known.scrub(line)).collect(),
            problem,
        },
        Outcome::Interactive { prompt } => Outcome::Interactive {
            prompt: known.scrub(&prompt),
        },
        other => other,
    }
}

/// `KUBERNETES_EXEC_INFO`: the request as client-go describes it to the plugin.
fn exec_info(api_version: &str, spec: &ExecSpec, cluster: &ClusterInfo) -> String {
    let mut info = serde_json::json!({
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "spec": {"interactive": false},
    });
    if spec.provide_cluster_info
        && let Some(server) = &cluster.server
    {
        let mut described = serde_json::json!({ "server": server });
        if let Some(name) = &cluster.tls_server_name {
            described["tls-server-name"] = name.as_str().into();
        }
        if cluster.insecure_skip_tls_verify {
            described["insecure-skip-tls-verify"] = true.into();
        }
        if let Some(ca) = &cluster.ca_data_base64 {
            described["certificate-authority-data"] = ca.as_str().into();
        }
        if let Some(proxy) = &cluster.proxy_url {
            described["proxy-url"] = proxy.as_str().into();
        }
        info["spec"]["cluster"] = described;
    }
    info.to_string()
}

/// What a finished run means.
fn read(run: &Finished, declared: &str) -> Outcome {
    let printed = printed_credentials(&run.stdout);
    let answer = read_answer(run, declared, &printed);
    // A credential is a credential even when a login hint was printed beside it (kubectl uses
    // it); anything else with a device-login prompt is the plugin waiting for a person.
    if matches!(
        answer,
        Outcome::Token { .. } | Outcome::ClientCertificate { .. }
    ) {
        return answer;
    }
    match device_login_prompt(&run.stderr).or_else(|| device_login_prompt(&run.stdout)) {
        Some(prompt) => Outcome::Interactive {
            prompt: printed.scrub(&prompt),
        },
        None => answer,
    }
}

/// The secrets in whatever `ExecCredential` the plugin printed, usable or not: a plugin that
/// echoes its answer to stderr too (a wrapper traced with `set -x`) and then fails must not
/// have the token quoted back from its stderr; no pattern knows a short, shapeless token. Read
/// from the text, not a parse: an answer followed by a trace line, or cut short, is no JSON,
/// and its token is still one.
fn printed_credentials(stdout: &str) -> Scrubber {
    let mut printed = Scrubber::new();
    for field in ["token", "clientKeyData"] {
        for value in string_values_of(stdout, field) {
            printed.add(value);
        }
    }
    printed
}

/// Every string value of a `"field":` member in `text`, JSON-unescaped when it is whole, to
/// the end of the text when its closing quote is missing.
fn string_values_of(text: &str, field: &str) -> Vec<String> {
    let key = format!("\"{field}\"");
    let mut values = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(&key) {
        rest = &rest[at + key.len()..];
        let Some(body) = rest
            .trim_start()
            .strip_prefix(':')
            .and_then(|after| after.trim_start().strip_prefix('"'))
        else {
            continue;
        };
        let raw = &body[..closing_quote(body).unwrap_or(body.len())];
        let value = serde_json::from_str::<String>(&format!("\"{raw}\""))
            .unwrap_or_else(|_| raw.to_string());
        values.push(value);
    }
    values
}

/// Where the JSON string whose content starts `body` ends: its first unescaped `"`.
fn closing_quote(body: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, b) in body.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// What the run printed and how it ended, the prompt aside.
fn read_answer(run: &Finished, declared: &str, printed: &Scrubber) -> Outcome {
    let failed = |problem: String| Outcome::Failed {
        status: run.status,
        timed_out: run.timed_out,
        stderr: first_lines(&run.stderr)
            .iter()
            .map(|line| printed.scrub(line))
            .collect(),
        problem,
    };
    if run.timed_out {
        return failed("did not exit before the timeout".into());
    }
    if run.status != Some(0) {
        let status = run
            .status
            .map_or_else(|| "a signal".to_string(), |s| format!("exit code {s}"));
        return failed(format!("exited with {status}"));
    }
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&run.stdout) else {
        return failed("printed no ExecCredential JSON on stdout".into());
    };
    let answered = json["apiVersion"].as_str().unwrap_or_default();
    if answered != declared {
        return Outcome::VersionMismatch {
            declared: declared.to_string(),
            // The plugin's own text, printed as evidence: cut with a mark and masked.
            answered: crate::secret::quote(answered, 80),
        };
    }
    let status = &json["status"];
    if let Some(token) = status["token"].as_str().filter(|t| !t.is_empty()) {
        let expires = status["expirationTimestamp"]
            .as_str()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(SystemTime::from);
        return Outcome::Token {
            token: Secret::new(token),
            expires,
        };
    }
    if let (Some(cert), Some(key)) = (
        status["clientCertificateData"].as_str(),
        status["clientKeyData"].as_str(),
    ) {
        return Outcome::ClientCertificate {
            cert_pem: cert.to_string(),
            key_pem: Secret::new(key),
        };
    }
    failed("printed an ExecCredential without a token or client certificate".into())
}

/// A device-code login prompt (Azure `kubelogin`, `az login`, `gcloud auth login`): the plugin
/// waits for a person who is not there.
fn device_login_prompt(text: &str) -> Option<String> {
    const NEEDLES: &[&str] = &[
        "devicelogin",
        "to sign in, use a web browser",
        "enter the code",
        "go to the following link in your browser",
        // RFC 8628's `verification_uri_complete`: the login URL with the code in it.
        "user_code=",
    ];
    text.lines()
        .find(|line| {
            let lower = line.to_ascii_lowercase();
            NEEDLES.iter().any(|n| lower.contains(n))
        })
        .map(|line| redact_output_line(&without_device_code(line.trim())))
}

/// The prompt with the one-time code masked, the word after "code" (`code ABCD`, `code:
/// ABCD`) and a URL's `user_code=` value alike: whoever reads the job log must not be able to
/// finish the login in the job's place.
fn without_device_code(line: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut mask_next = false;
    for word in line.split(' ') {
        if mask_next && !word.is_empty() {
            out.push("[code]".into());
            mask_next = false;
            continue;
        }
        mask_next = word
            .trim_end_matches(|c: char| c.is_ascii_punctuation())
            .eq_ignore_ascii_case("code");
        out.push(without_user_code_parameter(word));
    }
    out.join(" ")
}

/// `…?user_code=ABCD-EFGH&x=1` as `…?user_code=[code]&x=1`.
fn without_user_code_parameter(word: &str) -> String {
    const PARAMETER: &str = "user_code=";
    match word.to_ascii_lowercase().find(PARAMETER) {
        Some(at) => {
            let value_at = at + PARAMETER.len();
            let rest = &word[value_at..];
            let end = rest.find(['&', '#']).unwrap_or(rest.len());
            format!("{}[code]{}", &word[..value_at], &rest[end..])
        }
        None => word.to_string(),
    }
}

/// The first non-empty stderr lines, redacted and shortened, for evidence.
fn first_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(STDERR_LINES)
        .map(redact_output_line)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_printed_token_is_known_in_an_answer_that_is_no_json() {
        let whole = r#"{"status":{"token":"tok\"en-one"}}"#;
        assert_eq!(string_values_of(whole, "token"), ["tok\"en-one"]);
        let traced = format!("{whole}\n+ done");
        assert_eq!(string_values_of(&traced, "token"), ["tok\"en-one"]);
        let cut = r#"{"status":{"token" : "tok-cut-sh"#;
        assert_eq!(string_values_of(cut, "token"), ["tok-cut-sh"]);
        assert!(string_values_of(r#"{"token": 5, "tokens": "x"}"#, "token").is_empty());
    }

    fn finished(status: Option<i32>, stdout: &str, stderr: &str) -> Finished {
        Finished {
            status,
            stdout: stdout.into(),
            stderr: stderr.into(),
            timed_out: false,
        }
    }

    const V1: &str = "client.authentication.k8s.io/v1";

    #[test]
    fn a_token_with_its_expiry_is_read() {
        let out = r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"k8s-aws-v1.abc","expirationTimestamp":"2020-01-01T00:00:00Z"}}"#;
        match read(&finished(Some(0), out, ""), V1) {
            Outcome::Token { token, expires, .. } => {
                assert_eq!(token.expose(), "k8s-aws-v1.abc");
                assert!(expires.is_some_and(|e| e < SystemTime::now()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn another_api_version_than_declared_is_a_mismatch() {
        let out = r#"{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"t"}}"#;
        assert!(matches!(
            read(&finished(Some(0), out, ""), V1),
            Outcome::VersionMismatch { .. }
        ));
        let long = format!(
            r#"{{"apiVersion":"{}","kind":"ExecCredential"}}"#,
            "v".repeat(100)
        );
        match read(&finished(Some(0), &long, ""), V1) {
            Outcome::VersionMismatch { answered, .. } => {
                assert!(answered.ends_with("… (20 more characters)"), "{answered}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failure_keeps_its_status_and_redacted_stderr() {
        let stderr = "\nUnable to locate credentials. You can configure credentials by running \"aws configure\".\nsession AKIAIOSFODNN7EXAMPLEKEY0123456789 expired\nthird\nfourth\n";
        match read(&finished(Some(255), "", stderr), V1) {
            Outcome::Failed { status, stderr, .. } => {
                assert_eq!(status, Some(255));
                assert_eq!(stderr.len(), 3);
                assert!(stderr[0].starts_with("Unable to locate credentials"));
                assert_eq!(stderr[1], "session [REDACTED] expired");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exec_info_is_never_interactive_and_carries_the_cluster_only_when_asked() {
        let mut spec = ExecSpec::default();
        let cluster = ClusterInfo {
            server: Some("https://api:6443".into()),
            ..ClusterInfo::default()
        };
        let info: serde_json::Value =
            serde_json::from_str(&exec_info(V1, &spec, &cluster)).unwrap();
        assert_eq!(info["spec"]["interactive"], false);
        assert_eq!(info["apiVersion"], V1);
        assert!(info["spec"]["cluster"].is_null());
        spec.provide_cluster_info = true;
        let info: serde_json::Value =
            serde_json::from_str(&exec_info(V1, &spec, &cluster)).unwrap();
        assert_eq!(info["spec"]["cluster"]["server"], "https://api:6443");
        assert!(info["spec"]["cluster"]["certificate-authority-data"].is_null());
        let cluster = ClusterInfo {
            server: Some("https://api:6443".into()),
            tls_server_name: Some("kubernetes".into()),
            ca_data_base64: Some("Q0E=".into()),
            ..ClusterInfo::default()
        };
        let info: serde_json::Value =
            serde_json::from_str(&exec_info(V1, &spec, &cluster)).unwrap();
        let described = &info["spec"]["cluster"];
        assert_eq!(described["certificate-authority-data"], "Q0E=");
        assert_eq!(described["tls-server-name"], "kubernetes");
        assert!(
            described["insecure-skip-tls-verify"].is_null(),
            "omitted when false, as client-go's omitempty"
        );
    }

    #[test]
    fn a_silent_hang_is_a_failure_killed_at_the_timeout() {
        let mut run = finished(None, "", "");
        run.timed_out = true;
        match read(&run, V1) {
            Outcome::Failed {
                timed_out, problem, ..
            } => {
                assert!(timed_out);
                assert!(problem.contains("timeout"), "{problem}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// kubectl uses a credential the plugin printed, whatever hint went to stderr beside it.
    #[test]
    fn a_credential_printed_beside_a_login_hint_is_a_credential() {
        let out = r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"cached-token"}}"#;
        let hint = "No cached login for a new session; to sign in, use a web browser to open https://microsoft.com/devicelogin";
        match read(&finished(Some(0), out, hint), V1) {
            Outcome::Token { token, .. } => assert_eq!(token.expose(), "cached-token"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            read(&finished(Some(0), "", hint), V1),
            Outcome::Interactive { .. }
        ));
    }

    #[test]
    fn a_device_login_prompt_is_interactive() {
        let stderr = "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD1234 to authenticate.";
        let mut run = finished(None, "", stderr);
        run.timed_out = true;
        match read(&run, V1) {
            Outcome::Interactive { prompt } => {
                assert!(prompt.contains("devicelogin"), "{prompt}");
                assert!(
                    !prompt.contains("ABCD1234"),
                    "the device code is masked: {prompt}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
