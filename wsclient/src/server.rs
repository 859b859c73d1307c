//! The server role, for the embedded demo server, `wsc serve` and tests:
//! accept the upgrade on an accepted stream and hand back a [`WebSocket`]
//! driven by the same engine in [`Role::Server`].

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::Error;
use crate::handshake::server::{self as hs, Request};
use crate::handshake::{DEFAULT_MAX_RESPONSE_HEAD, HandshakeError};
use crate::proto::deflate::negotiate_server;
use crate::proto::{Config, DeflateConfig, Engine, PerMessageDeflate, Role};
use crate::socket::{SocketConfig, WebSocket};

/// Server-side settings.
#[derive(Debug, Clone, Default)]
pub struct AcceptOptions {
    /// Limits on frames and messages.
    pub config: Config,
    /// Socket settings.
    pub socket: SocketConfig,
    /// Subprotocols this server supports; the first the client offers that
    /// is in this list is selected.
    pub protocols: Vec<String>,
    /// Accept permessage-deflate (RFC 7692) offers with these settings
    /// (`None`: never compress). The first offer the server can accept is
    /// answered; malformed offers are declined.
    pub deflate: Option<DeflateConfig>,
}

/// Accepts a WebSocket upgrade on `io`: reads the request, answers 101 (or
/// 400 for a bad request) and returns the socket and the request.
///
/// # Errors
/// [`Error::Handshake`] for a request that is not a valid upgrade (after a
/// 400 answer), transport errors.
pub async fn accept<S>(mut io: S, opts: &AcceptOptions) -> Result<(WebSocket<S>, Request), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(1024);
    let (request, len) = loop {
        match hs::parse_request(&buf, DEFAULT_MAX_RESPONSE_HEAD) {
            Ok(Some(done)) => break done,
            Ok(None) => {}
            Err(e) => {
                let refusal = hs::write_refusal(http::StatusCode::BAD_REQUEST, &e.to_string());
                let _ = io.write_all(&refusal).await;
                let _ = io.shutdown().await;
                return Err(e.into());
            }
        }
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity());
        }
        if io.read_buf(&mut buf).await? == 0 {
            return Err(HandshakeError::Incomplete.into());
        }
    };
    let _ = buf.split_to(len);
    let protocol = request
        .protocols
        .iter()
        .find(|p| opts.protocols.contains(p))
        .cloned();
    let deflate = opts.deflate.as_ref().and_then(|cfg| {
        let offers = request
            .request
            .headers()
            .get_all(http::header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .filter_map(|v| v.to_str().ok());
        negotiate_server(cfg, offers).map(|(params, answer)| (cfg, params, answer))
    });
    let mut answer = hs::write_accept(&request.key, protocol.as_deref());
    if let Some((_, _, ext)) = &deflate {
        // Insert the header before the blank line that ends the head.
        answer.truncate(answer.len() - 2);
        answer.extend_from_slice(b"Sec-WebSocket-Extensions: ");
        answer.extend_from_slice(ext.as_bytes());
        answer.extend_from_slice(b"\r\n\r\n");
    }
    io.write_all(&answer).await?;
    io.flush().await?;
    let mut engine = Engine::new(Role::Server, opts.config.clone());
    if let Some((cfg, params, _)) = deflate {
        engine = engine.with_deflate(PerMessageDeflate::new(Role::Server, params, cfg));
    }
    Ok((
        WebSocket::from_parts(io, engine, opts.socket.clone(), buf),
        request,
    ))
}
