//! Hostile-user attacks on issue 12 ("the failures users actually report") that need a world
//! of their own on loopback: a load balancer in front of the API server with one dead backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube_reach::catalogue::{CheckId, Reason};
use kube_reach::demo::{ApiServerOptions, Pki, TlsClass};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// An L4 load balancer on loopback in front of `upstream`: it accepts every connection, and
/// the first one that sends anything lands on a dead backend (the bytes are read, nothing ever
/// comes back); every later one is forwarded. Each connection's task ends with its peer.
async fn lb_with_one_dead_backend(upstream: std::net::SocketAddr) -> std::net::SocketAddr {
    let listener = TcpListener::bind(localhost()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let dead_used = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let dead_used = dead_used.clone();
            tokio::spawn(async move {
                let mut first = vec![0u8; 16 * 1024];
                let Ok(n) = client.read(&mut first).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                if !dead_used.swap(true, Ordering::SeqCst) {
                    // The dead backend: swallow until the client gives up.
                    let mut sink = [0u8; 4096];
                    while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
                    return;
                }
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    return;
                };
                if server.write_all(&first[..n]).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    addr
}

/// A ClientHello that got no answer once, then a retry that completed: the retry announced a
/// small MSS, but so would any retry have completed, since the first connection met a dead
/// backend behind a load balancer (a field failure of its own: `Unable to connect to the
/// server: net/http: TLS handshake timeout` now and then). Calling that an MTU black hole
/// sends the user to `dockerd --mtu`; the retry proves packet size only if a full-size retry
/// fails where the small one completes.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_backend_once_is_not_an_mtu_black_hole() {
    init();
    let pki = Pki::generate().expect("pki");
    let (server, ca) = tls_server(&pki, TlsClass::Good, ApiServerOptions::default()).await;
    let lb = lb_with_one_dead_backend(server.addr()).await;
    let kc = kubeconfig(
        &[Ctx::new("c", format!("https://{lb}"), &ca, GOOD)],
        Some("c"),
    );
    let report = World::new().run(&kc, &["--timeout", "2"], &[]).await;
    let t = target(&report, "c");
    let handshake = result_of(t, CheckId::TlsHandshake);
    assert_ne!(
        handshake.reason,
        Some(Reason::MtuBlackhole),
        "{handshake:#?}"
    );
}
