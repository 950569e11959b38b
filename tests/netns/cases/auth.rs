//! `auth.whoami client-cert-not-requested`: nginx terminates TLS in front of the API server (the
//! demo server, on another port) and asks for no client certificate, so a kubeconfig that
//! authenticates with one reaches the API server anonymous, and gets 401.

use std::net::SocketAddr;

use base64::Engine as _;

use super::assert_ran;
use crate::pki::LeafKind;
use crate::reach;
use crate::site::{API_PORT, Site};
use crate::world::{Family, require, skip_without_netns};

/// Where the demo server listens behind nginx.
const BACKEND_PORT: u16 = 7443;
const VERSION_URL: &str = "https://api.k8s.test:6443/version";

/// nginx on the API address terminating TLS with the world's leaf and forwarding to the demo
/// server behind it, as a cloud load balancer in TLS-termination mode does.
fn behind_tls_terminating_nginx() -> Site {
    require(&["nginx"]);
    let mut site = Site::direct(Family::V4);
    let front = site.api[0];
    let backend = SocketAddr::new(front.ip(), BACKEND_PORT);
    site.api = vec![backend];
    reach::demo_server(&mut site, LeafKind::Good, &[]);
    let leaf = site.pki.leaf(&site.world, LeafKind::Good);
    let dir = site.world.dir().display().to_string();
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {dir}/nginx.pid;\nerror_log stderr notice;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {dir}/nginx-body;\n  proxy_temp_path {dir}/nginx-proxy;\n  fastcgi_temp_path {dir}/nginx-fastcgi;\n  uwsgi_temp_path {dir}/nginx-uwsgi;\n  scgi_temp_path {dir}/nginx-scgi;\n  server {{\n    listen {front} ssl;\n    ssl_certificate {cert};\n    ssl_certificate_key {key};\n    location / {{\n      proxy_pass https://{backend};\n      proxy_ssl_verify off;\n    }}\n  }}\n}}\n",
        cert = leaf.chain_path.display(),
        key = leaf.key_path.display(),
    );
    let path = site.world.file("nginx.conf", conf);
    let path = path.display().to_string();
    let server = site.server.clone();
    site.world.spawn(
        &server,
        "nginx",
        &["nginx", "-e", "stderr", "-p", &dir, "-c", &path],
    );
    site.world.wait_log("nginx", "using the");
    site.api = vec![front];
    site
}

/// A kubeconfig whose only credential is a client certificate (self-signed: the front never
/// asks for it, so whom it would convince does not matter).
fn client_cert_kubeconfig(site: &Site) -> std::path::PathBuf {
    let key = rcgen::KeyPair::generate().expect("client key");
    let mut params = rcgen::CertificateParams::new(Vec::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "deployer");
    let cert = params.self_signed(&key).expect("client cert");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: https://api.k8s.test:{API_PORT}\n    certificate-authority-data: {ca}\nusers:\n- name: cert\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\ncontexts:\n- name: e2e\n  context: {{cluster: e2e, user: cert}}\ncurrent-context: e2e\n",
        ca = b64(&site.pki.root_pem),
        cert = b64(&cert.pem()),
        key = b64(&key.serialize_pem()),
    );
    site.world.file("client-cert.kubeconfig", yaml)
}

#[test]
fn world_tls_terminating_front() {
    if skip_without_netns() {
        return;
    }
    let site = behind_tls_terminating_nginx();
    let ran = site.curl(&[VERSION_URL], &[]);
    assert_ran(&ran, 0, &["gitVersion"]);
    // The front's handshake has no CertificateRequest (curl would log it).
    assert!(!ran.stderr.contains("Request CERT"), "{}", ran.text());
}

#[test]
fn auth_whoami_client_cert_not_requested() {
    if skip_without_netns() {
        return;
    }
    let site = behind_tls_terminating_nginx();
    let kubeconfig = client_cert_kubeconfig(&site);
    reach::diagnose_auth(
        &site,
        "auth: TLS-terminating front, client certificate",
        &kubeconfig,
    )
    .expect_root_cause("auth.whoami", "client-cert-not-requested")
    .expect_evidence("auth.whoami", &["no CertificateRequest", "HTTP 401"])
    .expect_fix("auth.whoami", &["passthrough"]);
}
