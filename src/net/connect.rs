//! TCP connections, one per resolved address, each under the per-operation timeout.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectFailure {
    Refused,
    Timeout,
    HostUnreachable,
    NetworkUnreachable,
    Reset,
    Other(String),
}

pub struct Attempt {
    pub addr: SocketAddr,
    pub outcome: Result<TcpStream, ConnectFailure>,
    pub elapsed: Duration,
    /// The OS error text, for evidence ("Connection refused (os error 111)").
    pub detail: String,
}

pub async fn connect(addr: SocketAddr, timeout: Duration) -> Attempt {
    let started = Instant::now();
    let (outcome, detail) = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => (
            Err(ConnectFailure::Timeout),
            format!("no answer within {} ms", timeout.as_millis()),
        ),
        Ok(Err(e)) => (Err(classify(&e)), e.to_string()),
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            (Ok(stream), "connected".to_string())
        }
    };
    Attempt {
        addr,
        outcome,
        elapsed: started.elapsed(),
        detail,
    }
}

/// Connects to every address at once (so a dropped address costs one timeout, not one per
/// address) and returns the attempts in the order given.
pub async fn connect_all(addrs: &[SocketAddr], timeout: Duration) -> Vec<Attempt> {
    futures_util::future::join_all(addrs.iter().map(|a| connect(*a, timeout))).await
}

/// errno → failure, in one place (trippy's shape).
pub fn classify(error: &io::Error) -> ConnectFailure {
    const ECONNRESET: i32 = 104;
    const ENETUNREACH: i32 = 101;
    const ETIMEDOUT: i32 = 110;
    const ECONNREFUSED: i32 = 111;
    const EHOSTUNREACH: i32 = 113;
    match error.raw_os_error() {
        Some(ECONNREFUSED) => ConnectFailure::Refused,
        Some(ETIMEDOUT) => ConnectFailure::Timeout,
        Some(EHOSTUNREACH) => ConnectFailure::HostUnreachable,
        Some(ENETUNREACH) => ConnectFailure::NetworkUnreachable,
        Some(ECONNRESET) => ConnectFailure::Reset,
        _ => match error.kind() {
            io::ErrorKind::ConnectionRefused => ConnectFailure::Refused,
            io::ErrorKind::TimedOut => ConnectFailure::Timeout,
            io::ErrorKind::ConnectionReset => ConnectFailure::Reset,
            io::ErrorKind::HostUnreachable => ConnectFailure::HostUnreachable,
            io::ErrorKind::NetworkUnreachable => ConnectFailure::NetworkUnreachable,
            _ => ConnectFailure::Other(error.to_string()),
        },
    }
}
