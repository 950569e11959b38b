//! HTTP CONNECT through a forward proxy, as client-go does for https targets.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelFailure {
    Forbidden,
    AuthRequired,
    UpstreamFailed,
    /// An HTTP answer with any other non-2xx status (a `418`, say).
    Refused,
    Timeout,
    NotAProxy,
    Closed,
    /// The answer's head did not end (no blank line) within the size limit, or the proxy
    /// closed mid-head: whatever its status line says, no tunnel was opened.
    UnterminatedHead,
}

pub struct Tunnel {
    pub outcome: Result<TcpStream, TunnelFailure>,
    /// The proxy's status line, verbatim (evidence).
    pub status_line: String,
    pub elapsed: Duration,
}

const MAX_HEADER_BYTES: usize = 16 * 1024;

pub async fn connect_tunnel(
    mut stream: TcpStream,
    authority: &str,
    authorization: Option<&Secret>,
    timeout: Duration,
) -> Tunnel {
    let started = Instant::now();
    let mut request =
        format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: kube-reach\r\n");
    if let Some(auth) = authorization {
        request.push_str(&format!("Proxy-Authorization: {}\r\n", auth.expose()));
    }
    request.push_str("\r\n");
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        read_head(&mut stream).await
    };
    let (outcome, status_line) = match tokio::time::timeout(timeout, exchange).await {
        Err(_) => (Err(TunnelFailure::Timeout), String::new()),
        Ok(Err(_)) => (Err(TunnelFailure::Closed), String::new()),
        Ok(Ok(head)) => {
            let line = head.lines().next().unwrap_or_default().to_string();
            let outcome = match head.ends_with("\r\n\r\n") {
                true => classify(&line),
                false => Err(TunnelFailure::UnterminatedHead),
            };
            (outcome, line)
        }
    };
    Tunnel {
        outcome: outcome.map(|()| stream),
        status_line,
        elapsed: started.elapsed(),
    }
}

/// Judges a complete response head by its status line.
fn classify(status_line: &str) -> Result<(), TunnelFailure> {
    let mut words = status_line.split_whitespace();
    let version = words.next().unwrap_or_default();
    if !version.starts_with("HTTP/") {
        return Err(TunnelFailure::NotAProxy);
    }
    match words.next().and_then(|c| c.parse::<u16>().ok()) {
        Some(200..=299) => Ok(()),
        Some(403) => Err(TunnelFailure::Forbidden),
        Some(407) => Err(TunnelFailure::AuthRequired),
        Some(500 | 502 | 503 | 504) => Err(TunnelFailure::UpstreamFailed),
        Some(_) => Err(TunnelFailure::Refused),
        None => Err(TunnelFailure::NotAProxy),
    }
}

/// Reads up to the blank line ending the response head, one byte at a time so nothing of the
/// tunnelled stream is consumed. Stops at `MAX_HEADER_BYTES` or at the end of the stream; the
/// caller tells a complete head by its blank line.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < MAX_HEADER_BYTES {
        if stream.read(&mut byte).await? == 0 {
            if head.is_empty() {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            break;
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_http_status_is_an_http_answer_and_only_2xx_opens_the_tunnel() {
        assert_eq!(classify("HTTP/1.1 200 Connection established"), Ok(()));
        assert_eq!(
            classify("HTTP/1.1 418 I'm a teapot"),
            Err(TunnelFailure::Refused)
        );
        assert_eq!(
            classify("SSH-2.0-OpenSSH_9.6"),
            Err(TunnelFailure::NotAProxy)
        );
    }
}
