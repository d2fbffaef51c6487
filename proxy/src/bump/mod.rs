//! TLS bumping: after an allowed CONNECT, peek the ClientHello, insist that its SNI names the
//! host that was allowed, then either terminate TLS with a leaf minted by the per-bottle CA
//! (so `inspect` sees every request) or, for passthrough hosts, splice bytes unseen.
//! Anything that is not a TLS ClientHello is closed: no blind tunnels.

pub mod client_hello;
pub mod idle;
pub mod passthrough;
pub mod prefixed;
pub mod serve;
pub mod splice;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::accept::{ClientCx, Lease};
use crate::audit::{Decision, Event, Kind};
use crate::limits::{CLIENT_HELLO_TIMEOUT, MAX_CLIENT_HELLO_BYTES};
use crate::policy::{Host, Mode, Target};
use crate::state::Proxy;
use client_hello::{parse_client_hello, ClientHelloInfo, ParseError};
use prefixed::Prefixed;

/// Why a tunnel was closed before any request inside it.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("not TLS: {0}")]
    NotTls(String),
    #[error("ClientHello not received in time")]
    HelloTimeout,
    #[error("ClientHello too large")]
    HelloTooLarge,
    #[error("client closed before ClientHello")]
    Closed,
    #[error("SNI {sni:?} does not match CONNECT host {host}")]
    SniMismatch { sni: String, host: String },
    #[error("ClientHello has no SNI; the tunnel was opened for {0}")]
    NoSni(String),
    #[error("ClientHello carries an encrypted ClientHello (ECH): its real server name cannot be checked in a passthrough tunnel")]
    EncryptedHello,
    #[error("read: {0}")]
    Io(#[from] std::io::Error),
}

pub async fn tunnel<IO>(
    mut io: IO,
    target: Target,
    addrs: Vec<SocketAddr>,
    cx: ClientCx,
    proxy: Arc<Proxy>,
    lease: Lease,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let host = target.host_string();
    let (hello, buf) = match peek_client_hello(&mut io).await {
        Ok(h) => h,
        Err(e) => return refuse(&proxy, cx, &target, &e),
    };
    match &hello.sni {
        Some(sni) if !sni_matches(sni, &host) => {
            let e = TunnelError::SniMismatch {
                sni: sni.clone(),
                host: host.clone(),
            };
            return refuse(&proxy, cx, &target, &e);
        }
        // A tunnel opened for a name must say that name: every client library sends SNI for
        // a host name, so its absence means a hand-made handshake. IP targets carry none
        // (RFC 6066 forbids IP literals in SNI).
        None if matches!(target.host, Host::Name(_)) => {
            return refuse(&proxy, cx, &target, &TunnelError::NoSni(host));
        }
        _ => {}
    }
    // A passthrough tunnel is decided by the outer SNI alone; with ECH the server the CDN picks
    // is named inside the encrypted inner hello. Bumped tunnels are safe (rustls does not
    // accept ECH, and every request's Host is checked), so only passthrough refuses it.
    if hello.ech && target.mode == Mode::Passthrough {
        return refuse(&proxy, cx, &target, &TunnelError::EncryptedHello);
    }
    let io = Prefixed::new(buf.freeze(), io);
    match target.mode {
        Mode::Passthrough => passthrough::splice(io, &target, &addrs, cx, &proxy, &lease).await,
        Mode::Intercept => serve::intercept(io, target, cx, proxy, lease).await,
    }
}

fn sni_matches(sni: &str, host: &str) -> bool {
    let sni = sni.trim_end_matches('.');
    sni.eq_ignore_ascii_case(host)
}

fn refuse(proxy: &Proxy, cx: ClientCx, target: &Target, e: &TunnelError) {
    let mut event = Event::begin(cx.conn, Kind::Tunnel, Some(cx.peer)).target(
        "TLS",
        &target.host_string(),
        target.port,
        "",
    );
    event.outcome(Decision::Deny, 0, format!("tunnel closed: {e}"));
    proxy.metrics.decision("deny", "tunnel");
    proxy.audit.emit(event);
}

/// Reads until a complete ClientHello is buffered (or proven not to be one).
async fn peek_client_hello<IO: AsyncRead + Unpin>(
    io: &mut IO,
) -> Result<(ClientHelloInfo, BytesMut), TunnelError> {
    let mut buf = BytesMut::with_capacity(2048);
    let read = async {
        loop {
            if buf.len() >= MAX_CLIENT_HELLO_BYTES {
                return Err(TunnelError::HelloTooLarge);
            }
            if io.read_buf(&mut buf).await? == 0 {
                return Err(TunnelError::Closed);
            }
            match parse_client_hello(&buf) {
                Ok(info) => return Ok(info),
                Err(ParseError::Incomplete { .. }) => continue,
                Err(other) => return Err(TunnelError::NotTls(other.to_string())),
            }
        }
    };
    match tokio::time::timeout(CLIENT_HELLO_TIMEOUT, read).await {
        Err(_) => Err(TunnelError::HelloTimeout),
        Ok(Err(e)) => Err(e),
        Ok(Ok(info)) => Ok((info, buf)),
    }
}
