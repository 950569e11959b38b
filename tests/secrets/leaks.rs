//! One test per leak class of issue 9 (each failed on the code before the fix), named after the
//! class. Runs are in-process unless the leak is in the binary's own messages.

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::demo::Pki;
use kube_reach::in_process::Outputs;

use super::hostile::{Echo, echoing_proxy, start_hostile};
use super::outputs::{assert_report_clean, render, report_of};
use super::support::{World, assert_root_cause, init, target};

/// An in-process run with `args` after the world's base flags, and `vars`.
fn run_args(world: &World, args: &[&str], vars: &[(&str, &str)]) -> Outputs {
    init();
    let mut all = world.base_args();
    all.extend(args.iter().map(|s| s.to_string()));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(world.run_args_outputs(&all, vars))
}

fn run_kubeconfig(world: &World, text: &str, vars: &[(&str, &str)]) -> Outputs {
    let path = world.write("kubeconfig", text);
    run_args(world, &["--kubeconfig", &path.display().to_string()], vars)
}

const HEAD: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:9\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n";

#[test]
fn leak1_yaml_errors_name_the_place_never_the_text() {
    let world = World::new();
    let canary = "yamlCanarySecret4d8e2f";
    let cases: Vec<(&str, String)> = vec![
        ("tab", format!("{HEAD}\ttoken: {canary}\n")),
        ("unclosed quote", format!("{HEAD}    token: \"{canary}\n")),
        (
            "duplicate key",
            format!("{HEAD}    token: {canary}\n    token: {canary}2\n"),
        ),
        (
            "wrong type",
            format!("{HEAD}    client-key-data: [{canary}]\n"),
        ),
        (
            "password mapping",
            format!("{HEAD}    password: {{{canary}: 1}}\n"),
        ),
        (
            "auth-provider client-secret",
            format!(
                "{HEAD}    auth-provider:\n      name: oidc\n      config:\n        client-secret: [{canary}]\n"
            ),
        ),
        (
            "exec env",
            format!(
                "{HEAD}    exec:\n      command: x\n      env:\n      - name: A\n        value: {{v: {canary}}}\n"
            ),
        ),
        (
            "secret where a mapping belongs",
            format!("{HEAD}    {canary}\n    token: x\n"),
        ),
        (
            "one-line JSON",
            format!(
                "{{\"apiVersion\":\"v1\",\"users\":[{{\"name\":\"u\",\"user\":{{\"token\":\"{canary}\"}}]]}}"
            ),
        ),
    ];
    for (what, text) in cases {
        let report = run_kubeconfig(&world, &text, &[]);
        let outputs = assert_report_clean(&report, &[canary]);
        let check = report_of(&report)
            .checks
            .into_iter()
            .find(|c| c.id == CheckId::ConfigKubeconfig)
            .unwrap_or_else(|| panic!("{what}: no config.kubeconfig in {}", outputs[1].1));
        assert_eq!(check.reason, Some(Reason::InvalidYaml), "{what}");
        let evidence = check.evidence.join("\n");
        assert!(evidence.contains("kubeconfig"), "{what}: {evidence}");
        assert!(
            !evidence.contains("REDACTED"),
            "{what}: quoted, then scrubbed: {evidence}"
        );
    }
}

#[test]
fn leak1_the_second_file_of_a_kubeconfig_list() {
    let world = World::new();
    let canary = "secondFileCanary7b1c9a";
    let first = world.write("first", &format!("{HEAD}    token: good\n"));
    let second = world.write("second", &format!("{HEAD}    token: \"{canary}\n"));
    let list = format!("{}:{}", first.display(), second.display());
    let report = run_args(&world, &["--kubeconfig", &list], &[]);
    assert_report_clean(&report, &[canary]);
    let evidence: String = report_of(&report)
        .checks
        .iter()
        .flat_map(|c| c.evidence.clone())
        .collect();
    assert!(evidence.contains("second: line"), "{evidence}");
}

#[test]
fn leak2_url_passwords_with_reserved_characters() {
    let world = World::new();
    for special in ["#", "?", "'", "\"", " ", "/"] {
        let password = format!("urlCan{special}aryPassw0rd");
        let encoded_free = format!("http://ci:{password}@127.0.0.1:9");
        // HTTPS_PROXY, a kubeconfig proxy-url, and KUBE_URL.
        let report = run_args(
            &world,
            &["--server", "https://api.k8s.test:9"],
            &[("HTTPS_PROXY", &encoded_free)],
        );
        let outputs = render(&report);
        super::outputs::assert_no_leak(&outputs, &[&password, &password[7..]]);
        let kubeconfig = format!(
            "apiVersion: v1\nclusters:\n- name: c\n  cluster:\n    server: https://api.k8s.test:9\n    proxy-url: '{}'\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t0ken-x\n",
            encoded_free.replace('\'', "''")
        );
        let report = run_kubeconfig(&world, &kubeconfig, &[]);
        super::outputs::assert_no_leak(&render(&report), &[&password, &password[7..]]);
        let kube_url = format!("https://ci:{password}@127.0.0.1:9");
        let report = run_args(
            &world,
            &[],
            &[("KUBE_URL", &kube_url), ("GITLAB_CI", "true")],
        );
        super::outputs::assert_no_leak(&render(&report), &[&password, &password[7..]]);
    }
}

#[test]
fn leak2_query_values_of_a_server_url() {
    let world = World::new();
    let canary = "queryTokenCanary5e6f7a";
    let report = run_args(
        &world,
        &["--server", &format!("https://127.0.0.1:9/?token={canary}")],
        &[],
    );
    assert_report_clean(&report, &[canary]);
}

#[test]
fn issue8_5_invalid_ports_are_invalid_urls_and_nothing_is_sent() {
    let world = World::new();
    for server in ["https://127.0.0.1:99999", "https://127.0.0.1:6443x"] {
        let text = HEAD.replace("https://127.0.0.1:9", server) + "    token: tok-1234\n";
        let report = report_of(&run_kubeconfig(&world, &text, &[]));
        let t = target(&report, "c");
        assert_root_cause(t, CheckId::ConfigServer, Reason::InvalidUrl);
        assert!(
            t.checks.iter().all(|c| c.id != CheckId::TcpConnect || c.status == kube_reach::model::Status::Skip),
            "{server}: a connection was attempted"
        );
    }
}

#[test]
fn leak3_a_kubeconfig_token_file_echoed_by_the_server() {
    init();
    let world = World::new();
    let pki = Pki::generate().expect("pki");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let canary = "tokenFileCanary0a9b8c7d";
    let token_file = world.write("token", canary);
    for echo in [Echo::WhoamiUsername, Echo::Redirect, Echo::ReadyzLine] {
        let (url, ca) = rt.block_on(start_hostile(echo, 0, false, &pki));
        let ca_file = world.write("ca.pem", &ca);
        let text = format!(
            "apiVersion: v1\nclusters:\n- name: c\n  cluster:\n    server: {url}\n    certificate-authority: {}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    tokenFile: {}\n",
            ca_file.display(),
            token_file.display()
        );
        let report = rt.block_on(world.run_outputs(&text, &[], &[]));
        assert_report_clean(&report, &[canary]);
    }
}

#[test]
fn leak4_a_token_prefix_cut_by_the_excerpt_limit() {
    // `/version` answers 200 bytes of body of which the last 6 are the token's first 6.
    let outputs = super::hostile::run_once(Echo::VersionBody, 194, false);
    let token = super::hostile::canary("1940");
    for (name, text) in &outputs {
        assert!(!text.contains(&token[..6]), "prefix in the {name}: {text}");
    }
}

#[test]
fn leak5_basic_value_in_a_proxy_status_line() {
    init();
    let world = World::new();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let proxy = rt.block_on(echoing_proxy(0));
    let password = "basicCanaryPw3c4d5e";
    let url = format!("http://ci:{password}@127.0.0.1:{}", proxy.port());
    let report = run_args(
        &world,
        &["--server", "https://api.k8s.test:6443"],
        &[("HTTPS_PROXY", &url)],
    );
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("ci:{password}"),
    );
    assert_report_clean(&report, &[password, &basic]);
}

#[test]
fn leak6_agent_shaped_tokens_without_an_agent_id() {
    let world = World::new();
    for token in [
        "pat:glpat-agentCanaryMiddle1234",
        "ci:agentCanaryMiddle5678:x",
    ] {
        let text = format!(
            "apiVersion: v1\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:9/k8s-proxy/\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: \"{token}\"\n"
        );
        let report = run_kubeconfig(&world, &text, &[]);
        assert_report_clean(&report, &["agentCanaryMiddle"]);
    }
}

#[test]
fn leak7_a_private_key_where_a_ca_belongs() {
    let world = World::new();
    let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7keyCanary";
    // A key pasted on one line (newlines lost in a variable), a BEGIN line cut short, and a
    // key without its END line.
    for key in [
        format!("-----BEGIN PRIVATE KEY----- {body} -----END PRIVATE KEY-----"),
        format!("-----BEGIN PRIVATE KEY {body}\n-----END PRIVATE KEY-----\n"),
        format!("-----BEGIN PRIVATE KEY-----\n{body}\n"),
    ] {
        let ca_file = world.write("ca.pem", &key);
        let report = run_args(
            &world,
            &[
                "--server",
                "https://127.0.0.1:9",
                "--ca-file",
                &ca_file.display().to_string(),
            ],
            &[],
        );
        let outputs = assert_report_clean(&report, &[body]);
        for (name, text) in &outputs {
            // `MIIE` and `----` as decimal bytes: the PEM parser's Debug.
            assert!(
                !text.contains("77, 73, 73, 69") && !text.contains("45, 45, 45"),
                "bytes in the {name}: {text}"
            );
        }
        let tls = report_of(&report)
            .only_target()
            .checks
            .clone()
            .into_iter()
            .find(|c| c.id == CheckId::ConfigTls)
            .expect("config.tls");
        assert_eq!(tls.reason, Some(Reason::CaInvalid), "{key}");
    }
}

/// A bad `--require-file` line is named by file and number, never quoted: the flag may point at
/// a token file. A bad namespace was quoted inside its problem.
#[test]
fn leak8_a_require_file_line_is_named_not_quoted() {
    let world = World::new();
    let cases = [
        (
            "requireFileCanary9e8d7c",
            "# a token file\nrequireFileCanary9e8d7c\n",
            "line 2",
        ),
        (
            "NamespaceCanary5f4e3d",
            "get pods -n NamespaceCanary5f4e3d\n",
            "line 1",
        ),
    ];
    for (canary, text, line) in cases {
        let file = world.write("token", text);
        let out = world.run_binary(
            None,
            &[
                "--server",
                "https://127.0.0.1:9",
                "--require-file",
                &file.display().to_string(),
            ],
            &[],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.code, Some(2), "{stderr}");
        assert!(!stderr.contains(canary), "{stderr}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains(canary));
        assert!(
            stderr.contains(line) && stderr.contains("token"),
            "{stderr}"
        );
    }
}

/// A usage error quotes what was typed, and a CI job types its variables: `kube-reach
/// $KUBE_URL` (a positional argument) or a `--require` line holding the job token. The error is
/// said through the scrubber; before, it was printed as typed.
#[test]
fn leak8_usage_errors_never_quote_passwords_or_the_job_token() {
    let world = World::new();
    // No `glcbt-` prefix: only the registered CI_JOB_TOKEN can say it is one.
    let job_token = "jobTokenCanary7a6b9c";
    let cases: [&[&str]; 2] = [
        &["https://bob:urlPasswordCanary42@api.example:6443"],
        &["--server", "https://127.0.0.1:9", "--require", job_token],
    ];
    for args in cases {
        let out = world.run_binary(None, args, &[("CI_JOB_TOKEN", job_token)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.code, Some(2), "{args:?}: {stderr}");
        for canary in ["urlPasswordCanary42", "jobTokenCanary7a6b"] {
            assert!(!stderr.contains(canary), "{args:?}: {stderr}");
        }
        assert!(
            !stderr.trim().is_empty(),
            "{args:?}: the error is still said"
        );
    }
}

#[test]
fn issue8_5_the_gitlab_origin_parser_refuses_invalid_ports() {
    let facts = |server: &str| {
        let server = server.to_string();
        kube_reach::gitlab::CiFacts::from_lookup(&move |name| match name {
            "CI_SERVER_URL" => Some(server.clone()),
            "CI_JOB_TOKEN" => Some("jobTokenCanary1234".into()),
            "GITLAB_CI" => Some("true".into()),
            _ => None,
        })
    };
    for bad in [
        "https://gitlab.example:99999",
        "https://gitlab.example:443x",
    ] {
        assert!(
            kube_reach::gitlab::gitlab_server_target(&facts(bad)).is_none(),
            "{bad}"
        );
        assert!(
            kube_reach::gitlab::allowed_agents_request(&facts(bad)).is_none(),
            "{bad}"
        );
    }
    let ok = kube_reach::gitlab::gitlab_server_target(&facts("https://gitlab.example:8443"))
        .expect("a valid origin");
    assert_eq!(ok.port, 8443);
}

/// Found by `random_kubeconfigs_never_leak_a_secret` in CI: a `/` inserted into the user
/// (`http://c/i:PASSWORD@127.0.0.1:9`) made Go's reading put the `@` in the path, so the
/// password was neither masked nor registered and the proxy line printed it whole. Every URL
/// delimiter and odd character at every position of a proxy URL, in a kubeconfig and in
/// `HTTPS_PROXY`: no fragment of the password may reach any output.
#[test]
fn leak9_an_odd_character_anywhere_in_a_proxy_url() {
    let world = World::new();
    let password = "pr0xyCanaryPassw0rdX";
    let url = format!("http://ci:{password}@127.0.0.1:9");
    let odd = [
        "/", "?", "#", "@", ":", " ", "%", "\\", "\t", "'", "é", "[", "]",
    ];
    let mut runs = 0;
    let mut leaks = Vec::new();
    for at in (0..=url.len()).filter(|&i| url.is_char_boundary(i)) {
        for c in odd {
            let bent = format!("{}{c}{}", &url[..at], &url[at..]);
            let report = run_args(
                &world,
                &["--server", "https://api.k8s.test:9"],
                &[("HTTPS_PROXY", &bent)],
            );
            leaks.extend(leak_in(&render(&report), password, "HTTPS_PROXY", &bent));
            let kubeconfig = format!(
                "apiVersion: v1\nclusters:\n- name: c\n  cluster:\n    server: https://api.k8s.test:9\n    proxy-url: '{}'\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t0ken-x\n",
                bent.replace('\'', "''")
            );
            let report = run_kubeconfig(&world, &kubeconfig, &[]);
            leaks.extend(leak_in(&render(&report), password, "proxy-url", &bent));
            runs += 2;
        }
    }
    assert!(
        leaks.is_empty(),
        "{} of {runs} runs leaked:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    assert!(runs > 500, "{runs} runs");
}

/// `where: input`, and the output line that leaked, when `outputs` hold a fragment of `secret`.
fn leak_in(outputs: &[(&str, String)], secret: &str, place: &str, input: &str) -> Option<String> {
    outputs.iter().find_map(|(name, text)| {
        let fragment = super::outputs::leaked_fragment(text, secret)?;
        let line = text
            .lines()
            .find(|l| l.contains(fragment))
            .unwrap_or_default();
        Some(format!("{place} {input:?} -> {name}: {}", line.trim()))
    })
}

/// `ci:PASSWORD@proxy:3128` (no scheme, as curl and Go accept in `HTTPS_PROXY`) with a `://`
/// typed anywhere in it (`ci:pw://@proxy`, `ci:pw@127://0.0.1`): the text before the `://`
/// was taken for a scheme, so the password was neither registered nor masked, and
/// `config.proxy` printed it whole ("no scheme: write https://…"). Every position, in
/// `HTTPS_PROXY` and in `proxy-url`, with `://`, `//` and `:/`.
#[test]
fn leak10_a_scheme_typed_into_a_proxy_url_without_one() {
    let world = World::new();
    // 40 characters: whatever is inserted into it, one side keeps a whole fragment.
    let password = "pr0xyCanaryPassw0rdXq7Lm2Vn8Tk4Rb9Wc3Hj";
    let url = format!("ci:{password}@127.0.0.1:9");
    let mut runs = 0;
    let mut leaks = Vec::new();
    for at in 0..=url.len() {
        // `ci://PASSWORD@…` is a URL of scheme `ci` whose user is the text: not a password.
        for typed in ["://", "//", ":/"].into_iter().filter(|_| at != 3) {
            let bent = format!("{}{typed}{}", &url[..at], &url[at..]);
            let report = run_args(
                &world,
                &["--server", "https://api.k8s.test:9"],
                &[("HTTPS_PROXY", &bent)],
            );
            leaks.extend(leak_in(&render(&report), password, "HTTPS_PROXY", &bent));
            let report = run_kubeconfig(&world, &proxy_kubeconfig(&bent), &[]);
            leaks.extend(leak_in(&render(&report), password, "proxy-url", &bent));
            runs += 2;
        }
    }
    assert!(
        leaks.is_empty(),
        "{} of {runs} runs leaked:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    assert!(runs > 200, "{runs} runs");
}

/// A short password (4 characters: registered whole, no fragment to catch) behind an `@` typed
/// into the scheme (`http:@@//ci:pw@proxy`): the URL mask took the first `@` for the end of the
/// user information and masked only what came before it, and the registered value (the text
/// from the first `:`) was no longer in the masked line, so the `HTTPS_PROXY` line of the
/// environment printed the password. `@`, `@@`, `:`, `/` and `//` at every position outside it.
#[test]
fn leak11_a_short_password_behind_an_at_typed_into_the_scheme() {
    let world = World::new();
    let password = "Qz7v";
    let url = format!("http://ci:{password}@127.0.0.1:9");
    let inside = url.find(password).expect("in the URL");
    let mut runs = 0;
    let mut leaks = Vec::new();
    for at in (0..=url.len()).filter(|&i| i <= inside || i >= inside + password.len()) {
        for typed in ["@", "@@", ":", "/", "//"] {
            let bent = format!("{}{typed}{}", &url[..at], &url[at..]);
            let report = run_args(
                &world,
                &["--server", "https://api.k8s.test:9"],
                &[("HTTPS_PROXY", &bent)],
            );
            leaks.extend(leak_in(&render(&report), password, "HTTPS_PROXY", &bent));
            let report = run_kubeconfig(&world, &proxy_kubeconfig(&bent), &[]);
            leaks.extend(leak_in(&render(&report), password, "proxy-url", &bent));
            runs += 2;
        }
    }
    assert!(
        leaks.is_empty(),
        "{} of {runs} runs leaked:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    assert!(runs > 200, "{runs} runs");
}

/// A kubeconfig whose one cluster goes through `proxy` (single-quoted as written).
fn proxy_kubeconfig(proxy: &str) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- name: c\n  cluster:\n    server: https://api.k8s.test:9\n    proxy-url: '{}'\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t0ken-x\n",
        proxy.replace('\'', "''")
    )
}

/// A token pasted where the path of its file belongs (`tokenFile: <token>`, `--token-file
/// "$TOKEN"` with a variable that is not one of the known secret ones, `client-key: <key>`):
/// the "no such file" evidence named the path, and so printed the token whole.
#[test]
fn leak12_a_token_pasted_where_its_file_belongs() {
    let world = World::new();
    let token = "ya29.pastedCanaryT0ken9x8w7v6u5";
    let users = [
        format!("    tokenFile: {token}\n"),
        format!("    tokenFile: /var/run/secrets/{token}\n"),
        format!("    client-certificate: cert.pem\n    client-key: {token}\n"),
    ];
    for user in &users {
        let report = run_kubeconfig(&world, &format!("{HEAD}{user}"), &[]);
        assert_report_clean(&report, &[token]);
    }
    let report = run_args(
        &world,
        &["--server", "https://127.0.0.1:9", "--token-file", token],
        &[],
    );
    assert_report_clean(&report, &[token]);
    // A real path that cannot be read is still named.
    let missing = world.path("no-such-token");
    let report = run_args(
        &world,
        &[
            "--server",
            "https://127.0.0.1:9",
            "--token-file",
            &missing.display().to_string(),
        ],
        &[],
    );
    let log = &render(&report)[0].1;
    assert!(log.contains("no-such-token: no such file"), "{log}");
}

/// A plugin's password given under a name the secret names missed (`password=X` as `vault
/// login` takes it, `--pass X`, `--pw X`, `--passphrase X`, a stanza variable `PW` or
/// `PASSPHRASE`): too short to be registered by its length, it was quoted back whole from the
/// plugin's stderr when the plugin failed saying what it was given.
#[test]
fn leak13_a_plugin_password_under_a_name_we_did_not_know() {
    use std::os::unix::fs::PermissionsExt as _;
    let world = World::new();
    let password = "hunt3rQzxy";
    let script = world.write(
        "plugin.sh",
        "#!/bin/sh\necho \"login failed with: $* $PW $PASS $PASSPHRASE\" >&2\nexit 1\n",
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let stanza = |rest: &str| {
        format!(
            "{HEAD}    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      interactiveMode: Never\n      command: {}\n{rest}",
            script.display()
        )
    };
    let mut cases: Vec<String> = [
        format!("'password={password}'"),
        format!("'--pass', '{password}'"),
        format!("'--pw', '{password}'"),
        format!("'--passphrase', '{password}'"),
    ]
    .iter()
    .map(|args| stanza(&format!("      args: [{args}]\n")))
    .collect();
    cases.extend(["PW", "PASS", "PASSPHRASE"].map(|name| {
        stanza(&format!(
            "      env:\n      - name: {name}\n        value: {password}\n"
        ))
    }));
    for text in cases {
        let report = run_kubeconfig(&world, &text, &[]);
        let outputs = assert_report_clean(&report, &[password]);
        assert!(
            outputs[0].1.contains("login failed with"),
            "the plugin ran and its stderr is quoted: {}",
            outputs[0].1
        );
    }
}

/// A token typed into the server's host name (`https://<token>.example:6443`, a kubeconfig
/// written from the wrong variable): the URL parser lower-cases the host, so the evidence that
/// names it (`config.tls`, `dns.resolve`, `tcp.connect`) printed the token lower-cased, which
/// no registered form matched. Checked case-blind.
#[test]
fn leak14_a_token_in_the_host_name_printed_lower_cased() {
    let world = World::new();
    let token = "AbCdEfCanaryT0kenXyZ12";
    for host in [
        token.to_string(),
        format!("{token}.example"),
        format!("x.{token}"),
    ] {
        let text = HEAD.replace("127.0.0.1", &host) + &format!("    token: {token}\n");
        let outputs = render(&run_kubeconfig(&world, &text, &[]));
        let lower = token.to_ascii_lowercase();
        for (name, text) in &outputs {
            let found = super::outputs::leaked_fragment(&text.to_ascii_lowercase(), &lower);
            assert!(found.is_none(), "{host}: {found:?} in the {name}:\n{text}");
        }
    }
}

/// Not a leak but the redaction point breaking: a character of two bytes right before a second
/// URL's scheme (`http://a/éhttp://u:pw@h`) made the URL mask slice inside it and panic, so a
/// proxy variable (or any evidence line) written so ended the run with no report at all.
#[test]
fn crash1_a_two_byte_character_before_a_second_url() {
    let world = World::new();
    for proxy in ["http://a/éhttp://u:pw@h", "http://a/xéhttps://u:pw@h"] {
        let report = run_args(
            &world,
            &["--server", "https://api.k8s.test:9"],
            &[("HTTPS_PROXY", proxy)],
        );
        let json = &render(&report)[1].1;
        assert!(json.contains("u:***@h"), "{proxy}: {json}");
    }
}
