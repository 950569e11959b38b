//! A healthy cluster behind an independently written HTTP/1.1-only server: a fake API written
//! from scratch with Python's `http.server` and `ssl` (`python_api.py`, following Kubernetes'
//! API shapes), in the framings real servers and proxies use. Each mode must pass, as kubectl
//! passes against it. Before kube-reach read a TLS close without `close_notify` as the end of a
//! close-delimited body, the HTTP/1.0 and `Connection: close`-without-length modes failed
//! `http.version` with "error reading a body from connection".

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube_reach::demo::pki::{Pki, TlsClass};
use kube_reach::model::Verdict;

use crate::support::*;

/// The Python fake, killed when dropped.
struct PythonApi {
    child: Child,
    port: u16,
}

impl Drop for PythonApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `python_api.py` in `mode`; `None` when python3 is not installed. Waits at most 10 s
/// for its port file.
fn start(world: &World, chain_pem: &str, key_pem: &str, mode: &str) -> Option<PythonApi> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/loopback/python_api.py");
    let chain = world.write("chain.pem", chain_pem);
    let key = world.write("key.pem", key_pem);
    let port_file = world.path("port");
    let child = Command::new("python3")
        .arg(&script)
        .args([&chain, &key])
        .arg(mode)
        .arg(&port_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    let mut api = PythonApi { child, port: 0 };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            api.port = text.trim().parse().expect("port");
            return Some(api);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("python_api.py ({mode}) did not start");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_http11_only_api_passes_in_every_framing() {
    init();
    let pki = Pki::generate().expect("pki");
    let id = pki
        .server_identity(TlsClass::Good, kube_reach::demo::DEFAULT_SANS)
        .expect("identity");
    for mode in [
        "length",
        "close",
        "chunked",
        "trickle",
        "http10",
        "closenolen",
    ] {
        let world = World::new();
        let Some(api) = start(&world, &id.chain_pem, id.key_pem(), mode) else {
            eprintln!("python3 not found: skipped");
            return;
        };
        let url = format!("https://127.0.0.1:{}", api.port);
        let ctx = Ctx::new("py", url, &id.kubeconfig_ca_pem, GOOD);
        // Framing, not speed: trickled, the 18 parallel answers take ~1.5 s in a release
        // build (each body in 5-byte writes 2 ms apart, the TLS handshakes done one by one
        // in Python's accept loop), too near the worlds' usual 2 s on a loaded machine.
        let report = (world.run(&kubeconfig(&[ctx], Some("py")), &["--timeout", "6"], &[])).await;
        let t = target(&report, "py");
        assert_eq!(t.verdict, Verdict::Pass, "{mode}: {:#?}", t.checks);
        drop(api);
    }
}
