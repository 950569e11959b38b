//! In-process servers that prove a world with real clients before, and independently of, the tool
//! under test: a thread enters the server namespace, binds there and answers HTTP(S) with
//! `/version` (a small JSON, enough for kubectl's version handshake) or `/big` (200 kB, for the MTU
//! black hole). They die with the test process, so they need no lifetime wrapper; the accept loop
//! still stops after [`LIFETIME`].

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::pki::Leaf;
use crate::sys;
use crate::world::{Ns, World};

const LIFETIME: Duration = Duration::from_secs(120);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Size of `/big`: far more than one window of 1280-byte packets.
pub const BIG_BYTES: usize = 200_000;
const VERSION_JSON: &str = r#"{"major":"1","minor":"31","gitVersion":"v1.31.0-e2e-fixture","gitCommit":"0","gitTreeState":"clean","buildDate":"2026-01-01T00:00:00Z","goVersion":"go1.22","compiler":"gc","platform":"linux/amd64"}"#;

/// A running in-process server; stops when dropped.
pub struct Fixture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves on `addr` inside `ns` (HTTPS with `leaf` when given) until the world drops.
pub fn serve(world: &mut World, ns: &Ns, addr: SocketAddr, leaf: Option<&Leaf>) {
    let tls = leaf.map(server_config);
    let stop = Arc::new(AtomicBool::new(false));
    let (bound_tx, bound_rx) = mpsc::channel();
    let flag = Arc::clone(&stop);
    let thread = sys::spawn_in(&ns.name, move || {
        let listener = TcpListener::bind(addr);
        let _ = bound_tx.send(listener.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        accept_loop(listener?, tls, &flag)
    });
    let bound = bound_rx.recv_timeout(Duration::from_secs(5));
    match bound {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("fixture cannot bind {addr} in {}: {e}", ns.name),
        Err(_) => panic!("fixture thread for {addr} in {} died", ns.name),
    }
    world.keep(Fixture {
        stop,
        thread: Some(thread),
    });
}

fn server_config(leaf: &Leaf) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone()));
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.cert_der.clone()], key)
        .expect("server certificate");
    Arc::new(config)
}

/// Accepts until stopped (polling, so a stop needs no connection from outside the namespace).
fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    stop: &AtomicBool,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let start = Instant::now();
    while !stop.load(Ordering::SeqCst) && start.elapsed() < LIFETIME {
        match listener.accept() {
            Ok((stream, _)) => {
                let tls = tls.clone();
                std::thread::spawn(move || handle(stream, tls));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn handle(mut stream: TcpStream, tls: Option<Arc<ServerConfig>>) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    match tls {
        None => answer(&mut stream),
        Some(config) => {
            let conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
            let mut tls = rustls::StreamOwned::new(conn, stream);
            answer(&mut tls)?;
            tls.conn.send_close_notify();
            tls.flush()
        }
    }
}

/// Reads one request head and answers it; the connection then closes.
fn answer<S: Read + Write>(stream: &mut S) -> io::Result<()> {
    let path = request_path(stream)?;
    let (status, body) = match path.as_str() {
        "/version" => ("200 OK", VERSION_JSON.as_bytes().to_vec()),
        "/big" => ("200 OK", vec![b'x'; BIG_BYTES]),
        _ => ("404 Not Found", b"{}".to_vec()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&body)?;
    stream.flush()
}

/// The path of the request line, after reading the whole head (at most 16 kB).
fn request_path(stream: &mut impl Read) -> io::Result<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split_whitespace().nth(1).unwrap_or("/");
    Ok(target.split('?').next().unwrap_or("/").to_owned())
}
