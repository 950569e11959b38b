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
    open(addr, None, timeout).await
}

/// One connection, announcing `mss` when given (see [`connect_with_mss`]).
async fn open(addr: SocketAddr, mss: Option<u32>, timeout: Duration) -> Attempt {
    let started = Instant::now();
    let opening = async {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        if let Some(mss) = mss {
            set_max_segment(&socket, mss)?;
        }
        socket.connect(addr).await
    };
    let (outcome, detail) = match tokio::time::timeout(timeout, opening).await {
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

/// The MSS the black-hole retry announces: 536, the IPv4 default every path carries (RFC 879),
/// so the server's segments fit through any link whose MTU is 576 or more.
pub const SMALL_MSS: u32 = 536;

/// Connects with `TCP_MAXSEG` set to `mss` before `connect`: Linux then announces that MSS in
/// the SYN, so the server sends segments no larger, whatever the path's MTU discovery does. The
/// one-off retry that tells an MTU black hole (full-size segments vanish, ICMP "fragmentation
/// needed" dropped) from a server that does not answer.
pub async fn connect_with_mss(addr: SocketAddr, mss: u32, timeout: Duration) -> Attempt {
    open(addr, Some(mss), timeout).await
}

fn set_max_segment(socket: &tokio::net::TcpSocket, mss: u32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let value =
        libc::c_int::try_from(mss).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: setsockopt(2) on a socket this function borrows, with a pointer to a live c_int
    // and its exact size; no memory is retained by the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod mss_tests {
    use super::*;

    #[tokio::test]
    async fn the_small_mss_is_what_the_socket_announces() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = connect_with_mss(addr, SMALL_MSS, Duration::from_secs(5))
            .await
            .outcome
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        // The peer's segment size follows the MSS we announced (less TCP options).
        let announced = max_segment(&server);
        assert!(announced <= SMALL_MSS as i32, "server-side MSS {announced}");
        drop(stream);
    }

    fn max_segment(stream: &TcpStream) -> i32 {
        use std::os::fd::AsRawFd;
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt(2) into a live c_int with its size.
        unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_MAXSEG,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            );
        }
        value
    }
}
