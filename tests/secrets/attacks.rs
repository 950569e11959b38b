//! The hostile review of the paths merged after issue 9: credential plugins quoting the
//! `provideClusterInfo` they were given, servers echoing a credential base64-encoded or with
//! lowercase percent-encoding, and a fleet whose context name is another context's token.
//! Each attack runs real processes and real TLS servers on 127.0.0.1.

use std::os::unix::fs::PermissionsExt as _;

use kube_reach::demo::Pki;

use super::hostile::{
    Echo, go_html_escaped, lower_hex, percent_encoded, run_with_token_file, start_hostile,
};
use super::kubeconfig::{Ctx, kubeconfig};
use super::outputs::{assert_report_clean, render};
use super::support::{World, init};

/// A credential plugin that fails, quoting on stderr (after `pad` bytes) the `proxy-url` it
/// found in `KUBERNETES_EXEC_INFO`, as a Go plugin's `proxyconnect tcp: dial …` error does.
fn plugin_quoting_its_proxy(world: &World, pad: usize) -> String {
    let script = format!(
        "#!/bin/sh\nproxy=$(printf '%s' \"$KUBERNETES_EXEC_INFO\" | sed -n 's/.*\"proxy-url\":\"\\([^\"]*\\)\".*/\\1/p')\n\
         echo \"{} error: cannot reach the token service via $proxy: connection refused\" >&2\nexit 1\n",
        "y".repeat(pad)
    );
    let path = world.write(&format!("plugin-{pad}.sh"), &script);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.display().to_string()
}

#[test]
fn a_plugin_quoting_the_proxy_url_it_was_given_never_prints_a_password_prefix() {
    // The plugin's stderr line is cut at 200 characters; pads put the cut inside the password
    // (before the `@` that lets the URL be masked), leaving 4 to 11 of its bytes: too few to be
    // a fragment, so only a marked cut lets the scrubber remove them (leaked before the fix).
    init();
    let password = "qzPrxPw0c4n4ryXY";
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // "<pad> error: cannot reach the token service via http://ci:" is pad + 58 characters.
    for kept in [4usize, 7, 11, 12] {
        let world = World::new();
        let pad = 199 - 58 - kept;
        let plugin = plugin_quoting_its_proxy(&world, pad);
        let exec = format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {plugin}\n      interactiveMode: Never\n      provideClusterInfo: true\n"
        );
        let proxy = format!("    proxy-url: http://ci:{password}@127.0.0.1:9\n");
        let ctx = Ctx {
            extra_cluster: &proxy,
            extra_user: &exec,
            ..Ctx::named("c", "https://127.0.0.1:9".into())
        };
        let report = rt.block_on(world.run_outputs(&kubeconfig(&[ctx], Some("c")), &[], &[]));
        let outputs = assert_report_clean(&report, &[password]);
        let json = &outputs[1].1;
        assert!(json.contains("cannot reach the token service"), "{json}");
        for (name, text) in &outputs {
            assert!(
                !text.contains(&password[..kept]),
                "{kept} in the {name}: {text}"
            );
        }
    }
}

#[test]
fn a_token_echoed_base64_encoded_html_escaped_or_with_lowercase_hex_is_never_printed() {
    // Neither form has a 12-byte piece of the token verbatim (leaked before the fix).
    init();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pki = Pki::generate().expect("pki");
    for echo in [Echo::Base64Body, Echo::LowerEncodedRedirect, Echo::HtmlPage] {
        for pad in [0usize, 1, 2, 150, 190] {
            let world = World::new();
            let token = format!("Zq7K/x{pad}+Cana/ryTo+k9f3/e7a1=b5c/Esc");
            let (url, ca) = rt.block_on(start_hostile(echo, pad, false, &pki));
            let report = run_with_token_file(&rt, &world, url, &ca, &token);
            let basic = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("user:{token}"),
            );
            let lower = lower_hex(&percent_encoded(&token));
            let html = go_html_escaped(&token);
            let outputs = assert_report_clean(&report, &[&token, &basic[8..], &lower, &html]);
            let place = match echo {
                Echo::Base64Body => "body: ",
                Echo::HtmlPage => "<body>",
                _ => "location: https://login.example/?",
            };
            let start = format!("{place}{}", "x".repeat(pad.min(40)));
            assert!(
                outputs[1].1.contains(&start),
                "{echo:?} {pad}: {}",
                outputs[1].1
            );
        }
    }
}

#[test]
fn a_context_named_after_the_token_it_shares_a_connection_with_is_never_printed() {
    // Two contexts with one server, CA and token share a connection; the second is named with
    // the token itself, so "shared with target <name>" and the target's own name quote it.
    init();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pki = Pki::generate().expect("pki");
    let world = World::new();
    let token = "fleetCanaryTok5e6f7a8b9c0d";
    let (url, ca) = rt.block_on(start_hostile(Echo::RbacEvaluationError, 0, false, &pki));
    let contexts = [
        Ctx::new("opener", url.clone(), &ca, token),
        Ctx::new(token, url, &ca, token),
    ];
    let report = rt.block_on(world.run_outputs(&kubeconfig(&contexts, None), &[], &[]));
    let outputs = render(&report);
    super::outputs::assert_no_leak(&outputs, &[token]);
    assert!(
        outputs[1].1.contains("shared with target"),
        "{}",
        outputs[1].1
    );
}

#[test]
fn a_backend_not_tls_body_quoting_the_token_never_prints_it() {
    init();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pki = Pki::generate().expect("pki");
    for (i, pad) in [0usize, 3, 150, 170, 185, 190, 199].into_iter().enumerate() {
        let world = World::new();
        let (url, ca) = rt.block_on(start_hostile(Echo::PlainToTls, pad, i % 2 == 0, &pki));
        let token = super::hostile::canary(&format!("nt{pad}"));
        let report = run_with_token_file(&rt, &world, url, &ca, &token);
        let outputs = assert_report_clean(&report, &[&token]);
        for (name, text) in &outputs {
            assert!(
                !text.contains(&token[..6]),
                "{pad}: prefix in the {name}: {text}"
            );
        }
        assert!(
            outputs[1].1.contains("backend-not-tls"),
            "{pad}: {}",
            outputs[1].1
        );
    }
}

/// A plain-HTTP listener on 127.0.0.1 (a `kubectl proxy`, or an API server URL written
/// `http://`) that answers every request with `response`, `{T}` replaced by `token` (it knows
/// the credential it expected), and counts the requests that carried an `Authorization`.
async fn plain_server(
    response: &'static str,
    token: &'static str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let with_auth = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = with_auth.clone();
    tokio::spawn(async move {
        // Bounded: a run makes a handful of requests.
        for _ in 0..64 {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match tokio::time::timeout(
                        std::time::Duration::from_secs(5),
                        tcp.read(&mut buf),
                    )
                    .await
                    {
                        Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                if text.contains("\r\nauthorization:") || text.contains(&token.to_ascii_lowercase())
                {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                let body = response.replace("{T}", token);
                let _ = tcp.write_all(body.as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    (format!("http://127.0.0.1:{}", addr.port()), with_auth)
}

#[test]
fn an_http_server_answering_with_the_token_it_expected_never_gets_it_nor_prints_it() {
    // config.server credentials-withheld: over http:// the token is never sent; a listener
    // that quotes the token it expected (401 Status, WWW-Authenticate, a Location redirect
    // carrying it as kubectl proxy's login fronts do) gets it printed nowhere.
    const TOKEN: &str = "httpCanaryTok3d5f7b9a1c";
    const ANSWERS: [&str; 3] = [
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nWWW-Authenticate: Bearer realm=\"{T}\"\r\nConnection: close\r\n\r\n{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":\"expected Authorization: Bearer {T}\",\"reason\":\"Unauthorized\",\"code\":401}",
        "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/login?token={T}&rd=%2Fversion\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "HTTP/1.1 502 Bad Gateway\r\nServer: nginx\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n<html><body>upstream sent token {T} back</body></html>",
    ];
    init();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for answer in ANSWERS {
        let world = World::new();
        let (url, with_auth) = rt.block_on(plain_server(answer, TOKEN));
        let ctx = Ctx {
            token: Some(TOKEN),
            ..Ctx::named("c", url)
        };
        let report = rt.block_on(world.run_outputs(&kubeconfig(&[ctx], Some("c")), &[], &[]));
        let outputs = assert_report_clean(&report, &[TOKEN]);
        for (name, text) in &outputs {
            assert!(!text.contains(&TOKEN[..6]), "prefix in the {name}: {text}");
        }
        assert!(
            outputs[1].1.contains("credentials-withheld"),
            "{}",
            outputs[1].1
        );
        // The answer's quote reached the evidence, the token in it masked.
        assert!(outputs[1].1.contains("[REDACTED]"), "{}", outputs[1].1);
        let sent = with_auth.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(sent, 0, "{answer}: the token was sent over http://");
    }
}

#[test]
fn an_rbac_fix_whose_subject_is_the_token_never_prints_it() {
    // The username comes from the server: one that is the token itself is written into the
    // RoleBinding YAML, where the serializer quotes and escapes it its own way (`''` for a
    // single quote inside single quotes, `\"` inside double quotes) and may fold a long one.
    init();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pki = Pki::generate().expect("pki");
    let tokens = [
        "Zq7K'x0'Cana'ryTo'k9f3'e7a1'b5c'Esc".to_string(),
        "Zq7K: x1 #Cana\"ryTo\\k9f3 e7a1 b5c".to_string(),
        format!("Zq7Kx2{}", "CanaryTok9f3e7a1b5c ".repeat(12)),
    ];
    for token in &tokens {
        let world = World::new();
        let (url, ca) = rt.block_on(start_hostile(Echo::DeniedUsername, 0, false, &pki));
        let report = run_with_token_file(&rt, &world, url, &ca, token);
        let outputs = assert_report_clean(&report, &[token, &token.replace('\'', "''")]);
        let json = &outputs[1].1;
        assert!(json.contains("kind: RoleBinding"), "{token}: {json}");
    }
}

/// The real binary with the world's DNS files (the resolver file only when `args` does not
/// name its own), no in-cluster target and `args`, in an environment of `vars` alone. Unlike
/// [`World::run_binary`] it leaves `--timeout` and `--deadline` to `args`, whose values clap
/// must parse.
fn run_binary_with(
    world: &World,
    args: &[&str],
    vars: &[(&str, &str)],
) -> (Option<i32>, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kube-reach"));
    cmd.args(["--no-in-cluster", "--hosts-file"])
        .arg(world.path("hosts"));
    if !args.contains(&"--resolv-conf") {
        cmd.arg("--resolv-conf").arg(world.path("resolv.conf"));
    }
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied());
    super::child::run_bounded(cmd, std::time::Duration::from_secs(60))
}

#[test]
fn every_flag_given_a_secret_of_the_environment_never_prints_it() {
    // A mistyped CI variable puts `$KUBE_TOKEN` or the proxy password where a flag's value
    // belongs: clap's errors, our usage errors and the report quote the value, scrubbed.
    let world = World::new();
    let token = "plainKubeCanary4567abcd";
    let password = "proxyPwCanary99zz";
    let proxy = format!("http://u:{password}@127.0.0.1:9");
    let vars = [("KUBE_TOKEN", token), ("HTTPS_PROXY", proxy.as_str())];
    for secret in [token, password] {
        let in_path = format!("/nonexistent/{secret}/x");
        let url = format!("https://h:99999/{secret}");
        let require = format!("get{secret}");
        let flag = format!("--{secret}");
        let cases: Vec<Vec<&str>> = vec![
            vec!["--server", &url],
            vec![
                "--tls-server-name",
                secret,
                "--server",
                "https://127.0.0.1:9",
            ],
            vec!["--context", secret],
            vec!["-n", secret],
            vec!["--timeout", secret, "--server", "https://127.0.0.1:9"],
            vec!["--deadline", secret],
            vec!["--expiry-warn-days", secret],
            vec!["--fail-on", secret],
            vec!["--color", secret],
            vec!["--require", &require],
            vec!["--require-file", &in_path],
            vec!["--kubeconfig", &in_path],
            vec!["--junit", &in_path],
            vec!["--json", &in_path],
            vec!["--resolv-conf", &in_path],
            vec!["--server", "https://127.0.0.1:9", "--ca-file", &in_path],
            vec!["--server", "https://127.0.0.1:9", "--token-file", &in_path],
            vec![&flag],
            vec![secret],
        ];
        for args in cases {
            let (_, stdout, stderr) = run_binary_with(&world, &args, &vars);
            for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
                assert!(
                    !text.contains(secret),
                    "{args:?}: {secret} in {name}: {text}"
                );
                assert!(
                    !text.contains(&secret[..8]),
                    "{args:?}: prefix in {name}: {text}"
                );
            }
            if args[0] == "--timeout" {
                // clap's own error quotes the value: the scrubber, not luck, kept it out.
                assert!(stderr.contains("'[REDACTED]'"), "{stderr}");
            }
            assert!(
                !(stdout.trim().is_empty() && stderr.trim().is_empty()),
                "{args:?}: said nothing"
            );
        }
    }
}

/// A credential plugin (a traced wrapper) that prints `stdout` and echoes its token on
/// stderr, then exits with `code`.
fn plugin_tracing_its_token(
    world: &World,
    n: usize,
    stdout: &str,
    token: &str,
    code: u8,
) -> String {
    let script = format!(
        "#!/bin/sh\ncat <<'JSON'\n{stdout}\nJSON\necho '+ printf %s {token}' >&2\nexit {code}\n"
    );
    let path = world.write(&format!("wrapper-{n}.sh"), &script);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.display().to_string()
}

#[test]
fn a_plugin_whose_broken_answer_holds_the_token_never_gets_it_quoted_from_stderr() {
    // The token is short and shapeless (no pattern knows it), so only the ExecCredential it
    // printed says it is one: a valid object followed by a trace line, or an object cut short.
    init();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let token = "wrapperTokenAbcXyz";
    let credential = format!(
        r#"{{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{{"token":"{token}"}}}}"#
    );
    let answers = [
        (format!("{credential}\ndone"), 0),
        (credential[..credential.len() - 2].to_string(), 1),
        (credential[..credential.len() - 2].to_string(), 0),
    ];
    for (n, (stdout, code)) in answers.iter().enumerate() {
        let world = World::new();
        let plugin = plugin_tracing_its_token(&world, n, stdout, token, *code);
        let exec = format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {plugin}\n      interactiveMode: Never\n"
        );
        let ctx = Ctx {
            extra_user: &exec,
            ..Ctx::named("c", "https://127.0.0.1:9".into())
        };
        let report = rt.block_on(world.run_outputs(&kubeconfig(&[ctx], Some("c")), &[], &[]));
        let outputs = assert_report_clean(&report, &[token]);
        assert!(
            outputs[1].1.contains("+ printf %s"),
            "{n}: {}",
            outputs[1].1
        );
    }
}

#[test]
fn a_plugin_refusing_the_secret_it_was_given_as_an_argument_never_quotes_it() {
    // `kubelogin get-token --client-secret X` and `--token=X`: the plugin says which value it
    // refused, and a short, shapeless one has no pattern (leaked before).
    init();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let secret = "argSecretQz7";
    for args in [
        format!("[get-token, --client-secret, {secret}]"),
        format!("[get-token, '--token={secret}']"),
    ] {
        let world = World::new();
        let script = "#!/bin/sh\necho \"error: AADSTS7000215: invalid client secret provided: $3$2\" >&2\nexit 1\n";
        let path = world.write("refusing.sh", script);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let exec = format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      args: {args}\n      interactiveMode: Never\n",
            path.display()
        );
        let ctx = Ctx {
            extra_user: &exec,
            ..Ctx::named("c", "https://127.0.0.1:9".into())
        };
        let report = rt.block_on(world.run_outputs(&kubeconfig(&[ctx], Some("c")), &[], &[]));
        let outputs = assert_report_clean(&report, &[secret]);
        assert!(
            outputs[1].1.contains("invalid client secret provided"),
            "{args}: {}",
            outputs[1].1
        );
    }
}
