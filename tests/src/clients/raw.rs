//! Raw TCP for what no well-behaved client will send: hand-written CONNECTs,
//! smuggling attempts, oversized headers, non-TLS bytes in a tunnel.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Cap on bytes read back from a raw exchange.
const RAW_READ_CAP: usize = 16 * 1024 * 1024;

/// A parsed HTTP/1 response head plus whatever body bytes were read.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// The head as text, status line included.
    pub head: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Parses the first response in `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let end = find(bytes, b"\r\n\r\n").context("no complete response head")?;
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let mut lines = head.lines();
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("bad status line")?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Ok(Self {
            status,
            head,
            headers,
            body: bytes[end + 4..].to_vec(),
        })
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sends `request` verbatim to `addr`, then reads until the peer closes,
/// `timeout` passes, or 16 MiB arrived. Returns all bytes read.
pub fn http_raw(addr: SocketAddr, request: &[u8], timeout: Duration) -> Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.write_all(request)?;
    read_until_close(&mut stream, timeout)
}

fn read_until_close(stream: &mut TcpStream, timeout: Duration) -> Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while out.len() < RAW_READ_CAP {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            // A reset after the response is a normal way for a proxy to refuse.
            Err(_) => break,
        }
    }
    Ok(out)
}

/// Sends `CONNECT target HTTP/1.1` to the proxy and reads the reply head
/// (and, for a non-2xx, the body up to Content-Length or close). On 2xx the
/// returned stream is the open tunnel.
pub fn raw_connect(
    proxy: SocketAddr,
    target: &str,
    timeout: Duration,
) -> Result<(RawResponse, TcpStream)> {
    let mut stream = TcpStream::connect_timeout(&proxy, timeout)?;
    stream.set_nodelay(true)?;
    write!(
        stream,
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"
    )?;
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte so nothing after the head (tunnel data) is consumed.
    while find(&got, b"\r\n\r\n").is_none() {
        if got.len() > 64 * 1024 {
            bail!("CONNECT response head too large");
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("timed out waiting for the CONNECT response");
        }
        stream.set_read_timeout(Some(left))?;
        if stream.read(&mut byte)? == 0 {
            bail!(
                "proxy closed before answering CONNECT: {:?}",
                String::from_utf8_lossy(&got)
            );
        }
        got.push(byte[0]);
    }
    let mut resp = RawResponse::parse(&got)?;
    if !(200..300).contains(&resp.status) {
        match resp
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            Some(len) => {
                let mut body = vec![0u8; len.min(RAW_READ_CAP)];
                stream.set_read_timeout(Some(timeout))?;
                stream.read_exact(&mut body)?;
                resp.body = body;
            }
            None => resp.body = read_until_close(&mut stream, timeout)?,
        }
    }
    stream.set_read_timeout(None)?;
    Ok((resp, stream))
}
