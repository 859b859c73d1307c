//! The crate's error type: every way a connection can fail, by phase.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::handshake::HandshakeError;
use crate::handshake::client::UrlError;
use crate::proto::{CloseCode, ProtocolError, SendError};
use crate::transport::proxy::ProxyError;
use crate::transport::tls::TlsError;

/// The phase of a connection an error or timeout belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Resolving the host name.
    Dns,
    /// Opening the TCP connection.
    Tcp,
    /// Opening the connection through a Unix domain socket
    /// ([`crate::ConnectOptions::unix_socket`]).
    Unix,
    /// Talking to a proxy.
    Proxy,
    /// The TLS handshake.
    Tls,
    /// The HTTP upgrade request and response.
    Upgrade,
    /// The open connection (reading and writing messages).
    Open,
    /// The close handshake.
    Close,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Dns => "DNS resolution",
            Phase::Tcp => "TCP connect",
            Phase::Unix => "Unix socket connect",
            Phase::Proxy => "proxy negotiation",
            Phase::Tls => "TLS handshake",
            Phase::Upgrade => "WebSocket upgrade",
            Phase::Open => "connection",
            Phase::Close => "close handshake",
        })
    }
}

/// Everything that can go wrong, from parsing the URL to the close
/// handshake.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not a usable `ws://` or `wss://` URL.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The host name did not resolve.
    #[error("could not resolve {host:?}: {source}")]
    Dns {
        /// The host name.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// Every address of the host refused or failed the TCP connection.
    #[error("TCP connect to {host}:{port} failed: {source}")]
    Connect {
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// The last address's error.
        #[source]
        source: io::Error,
    },
    /// The Unix domain socket refused or failed the connection (nothing
    /// listening there, no such file, no permission).
    #[error("connect to Unix socket {} failed: {source}", path.display())]
    ConnectUnix {
        /// The socket's path.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A phase did not finish in time.
    #[error("{phase} timed out after {after:?}")]
    Timeout {
        /// The phase that timed out.
        phase: Phase,
        /// The configured timeout.
        after: Duration,
    },
    /// The proxy could not be used or refused the tunnel.
    #[error("proxy: {0}")]
    Proxy(#[from] ProxyError),
    /// TLS setup or handshake failed.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The WebSocket upgrade failed or was refused.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The server broke the protocol; the connection was failed with the
    /// error's close code.
    #[error("protocol error: {0} (closed with {code})", code = .0.close_code())]
    Protocol(#[from] ProtocolError),
    /// A send the protocol does not allow now (after close, oversized
    /// control payload...).
    #[error("{0}")]
    Send(#[from] SendError),
    /// The transport failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The TCP connection ended without a close frame (close code 1006).
    #[error("connection closed abnormally (no close frame)")]
    AbnormalClosure,
    /// The connection is already closed.
    #[error("the connection is closed")]
    Closed,
    /// No frame arrived within the pong timeout after a ping: the peer or
    /// the path is dead (a half-open TCP connection); closed as 1006.
    #[error("no pong within {after:?} of a ping: connection presumed dead")]
    PongTimeout {
        /// The pong timeout.
        after: Duration,
    },
}

impl Error {
    /// The phase the error belongs to, where it has one.
    #[must_use]
    pub fn phase(&self) -> Option<Phase> {
        match self {
            Error::Url(_) => None,
            Error::Dns { .. } => Some(Phase::Dns),
            Error::Connect { .. } => Some(Phase::Tcp),
            Error::ConnectUnix { .. } => Some(Phase::Unix),
            Error::Timeout { phase, .. } => Some(*phase),
            Error::Proxy(_) => Some(Phase::Proxy),
            Error::Tls(_) => Some(Phase::Tls),
            Error::Handshake(_) => Some(Phase::Upgrade),
            Error::Protocol(_)
            | Error::Send(_)
            | Error::Io(_)
            | Error::AbnormalClosure
            | Error::Closed
            | Error::PongTimeout { .. } => Some(Phase::Open),
        }
    }

    /// A stable numeric code for the error's kind (the seed's `onError`
    /// `$code`). Codes never change meaning between versions:
    ///
    /// | code | meaning |
    /// |---|---|
    /// | 1 | invalid URL |
    /// | 2 | DNS failure |
    /// | 3 | TCP (or Unix domain socket) connect failure |
    /// | 4 | timeout (any phase) |
    /// | 5 | TLS failure |
    /// | 6 | proxy failure |
    /// | 7 | handshake refused by the server (non-101 status) |
    /// | 8 | handshake invalid (bad accept, headers, extension, protocol; the 101 in [`Error::response`]) |
    /// | 9 | protocol error from the server |
    /// | 10 | send not allowed in this state |
    /// | 11 | I/O error on an open connection |
    /// | 12 | connection lost without a close frame |
    /// | 13 | connection already closed |
    /// | 14 | no pong: peer presumed dead |
    #[must_use]
    pub fn code(&self) -> u16 {
        match self {
            Error::Url(_) => 1,
            Error::Dns { .. } => 2,
            Error::Connect { .. } | Error::ConnectUnix { .. } => 3,
            Error::Timeout { .. } => 4,
            Error::Tls(_) => 5,
            Error::Proxy(_) => 6,
            Error::Handshake(HandshakeError::Rejected(_)) => 7,
            Error::Handshake(_) => 8,
            Error::Protocol(_) => 9,
            Error::Send(_) => 10,
            Error::Io(_) => 11,
            Error::AbnormalClosure => 12,
            Error::Closed => 13,
            Error::PongTimeout { .. } => 14,
        }
    }

    /// The close code the connection ended with because of this error, if
    /// it ended: the protocol error's code, or 1006 for a lost connection.
    #[must_use]
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Error::Protocol(e) => Some(e.close_code()),
            Error::Io(_) | Error::AbnormalClosure | Error::PongTimeout { .. } => {
                Some(CloseCode::ABNORMAL)
            }
            _ => None,
        }
    }

    /// The server's answer to the upgrade request, for every handshake
    /// error the answer caused: a refusal (non-101 status, a redirect not
    /// followed included; with up to 1 KiB of its body in
    /// [`Response::body_start`](crate::Response::body_start)) and a 101
    /// that failed a check (bad or missing `Sec-WebSocket-Accept`, missing
    /// `Upgrade` or `Connection`, a subprotocol or extension not offered,
    /// extension parameters that match no offer). Its `Display` is the
    /// head as received. `None` for other errors, and for handshake
    /// errors before a complete response head (see
    /// [`HandshakeError::response`]).
    ///
    /// ```no_run
    /// # async fn f() {
    /// if let Err(e) = wsclient::connect("ws://127.0.0.1:1234").await {
    ///     eprintln!("error: {e}");
    ///     if let Some(response) = e.response() {
    ///         eprintln!("{}: {response}", response.status());
    ///     }
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn response(&self) -> Option<&crate::Response> {
        match self {
            Error::Handshake(e) => e.response(),
            _ => None,
        }
    }

    /// The server's refusal (status, headers, body start), for a non-101
    /// answer to the upgrade (a redirect not followed included). See
    /// [`Error::response`] for the response behind any handshake error.
    #[must_use]
    pub fn rejected(&self) -> Option<&crate::handshake::Rejected> {
        match self {
            Error::Handshake(
                HandshakeError::Rejected(r) | HandshakeError::InsecureRedirect { response: r, .. },
            ) => Some(r),
            _ => None,
        }
    }
}

/// The crate's `Result`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
