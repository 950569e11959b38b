//! `auth.whoami client-cert-not-requested`: a kubeconfig that authenticates with a client
//! certificate, against a TLS endpoint that never sends a CertificateRequest (a TLS-terminating
//! load balancer in front of the API server), and the control: the same certificate against a
//! server that asks for it (a kube-apiserver with `--client-ca-file`).

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::demo::{
    Anonymous, ApiServerOptions, ClientAuth, Pki, TlsClass, Transport, apiserver,
};
use kube_reach::model::Status;

use crate::support::*;

/// A kubeconfig whose only credential is `alice`'s client certificate.
fn client_cert_kubeconfig(url: &str, ca: &str, cert_pem: &str, key_pem: &str) -> String {
    let ctx = Ctx {
        ca_pem: Some(ca),
        client_cert: Some((cert_pem, key_pem)),
        user_name: Some("alice"),
        namespace: None,
        ..Ctx::named("c", url.to_string())
    };
    kubeconfig(&[ctx], Some("c"))
}

async fn server(pki: &Pki, auth: ClientAuth) -> (apiserver::ApiServerHandle, String) {
    let id = pki
        .server_identity(TlsClass::Good, kube_reach::demo::DEFAULT_SANS)
        .expect("identity");
    let config = id.server_config(&auth).expect("server config");
    let options = ApiServerOptions {
        anonymous: Anonymous::Disabled,
        ..ApiServerOptions::default()
    };
    let server = apiserver::start(localhost(), Transport::Tls(config), options)
        .await
        .expect("server");
    (server, id.kubeconfig_ca_pem.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_whoami_client_cert_not_requested() {
    init();
    let pki = Pki::generate().expect("pki");
    let alice = pki
        .client_identity("alice", &["devs"])
        .expect("client cert");
    let world = World::new();

    // TLS terminated in front: no CertificateRequest, so the certificate never travels.
    let (front, ca) = server(&pki, ClientAuth::None).await;
    let kc = client_cert_kubeconfig(&front.url(), &ca, &alice.cert_pem, alice.key_pem());
    let report = world.run(&kc, &[], &[]).await;
    let t = target(&report, "c");
    assert_root_cause(t, CheckId::AuthWhoami, Reason::ClientCertNotRequested);
    let evidence = evidence_of(t, CheckId::AuthWhoami);
    assert!(evidence.contains("no CertificateRequest"), "{evidence}");
    assert!(evidence.contains("HTTP 401"), "{evidence}");
    let whoami = result_of(t, CheckId::AuthWhoami);
    assert!(
        whoami
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("passthrough")),
        "{whoami:#?}"
    );

    // Control: the API server asks, the certificate is sent and accepted.
    let (apiserver, ca) = server(&pki, pki.optional_client_auth()).await;
    let kc = client_cert_kubeconfig(&apiserver.url(), &ca, &alice.cert_pem, alice.key_pem());
    let report = world.run(&kc, &[], &[]).await;
    let t = target(&report, "c");
    let whoami = result_of(t, CheckId::AuthWhoami);
    assert_eq!(whoami.status, Status::Pass, "{whoami:#?}");
    assert!(whoami.summary.contains("alice"), "{whoami:#?}");
}
