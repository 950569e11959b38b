//! The hostile review of the paths merged after issue 9: credential plugins quoting the
//! `provideClusterInfo` they were given, servers echoing a credential base64-encoded or with
//! lowercase percent-encoding, and a fleet whose context name is another context's token.
//! Each attack runs real processes and real TLS servers on 127.0.0.1.

use std::os::unix::fs::PermissionsExt as _;

use kube_reach::demo::Pki;

use super::hostile::{Echo, lower_hex, percent_encoded, run_with_token_file, start_hostile};
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
fn a_token_echoed_base64_encoded_or_with_lowercase_hex_is_never_printed() {
    // Neither form has a 12-byte piece of the token verbatim (leaked before the fix).
    init();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pki = Pki::generate().expect("pki");
    for echo in [Echo::Base64Body, Echo::LowerEncodedRedirect] {
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
            let outputs = assert_report_clean(&report, &[&token, &basic[8..], &lower]);
            let place = match echo {
                Echo::Base64Body => "body: ",
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
