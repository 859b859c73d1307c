//! Connecting: [`ConnectOptions`] (the builder) and [`connect`].
//!
//! Owns the road from a URL to an open [`WebSocket`]: TCP (or TLS over
//! TCP), then the upgrade request and the checks on its response, each
//! phase with its own timeout. The options are kept whole so that the
//! event-driven client can connect again with the same settings.

use std::net::IpAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Phase};
use crate::handshake::client::{self as hs, RequestOptions, Target};
use crate::handshake::{self, HandshakeError, Response};
use crate::proto::{Config, Engine, Role};
use crate::socket::{SocketConfig, WebSocket};
use crate::transport::tcp::{self, TcpOptions};
use crate::transport::tls::{self, TlsOptions};
use crate::transport::MaybeTlsStream;

/// Everything about how to connect: URL, handshake headers, limits,
/// timeouts, TLS. Cheap to clone; reused for every reconnect.
///
/// ```no_run
/// # async fn f() -> Result<(), wsclient::Error> {
/// use std::time::Duration;
/// let (mut ws, response) = wsclient::ConnectOptions::new("wss://example.com/feed")
///     .header("Cookie", "session=abc")
///     .subprotocol("v2.json")
///     .connect_timeout(Duration::from_secs(5))
///     .connect()
///     .await?;
/// println!("{}", response.status());
/// ws.send("hello").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    url: String,
    request: RequestOptions,
    invalid_header: Option<String>,
    tcp: TcpOptions,
    tls: TlsOptions,
    handshake_timeout: Duration,
    max_response_head: usize,
    config: Config,
    socket: SocketConfig,
}

impl ConnectOptions {
    /// Options for `url` (`ws://` or `wss://`) with safe defaults.
    pub fn new(url: impl Into<String>) -> Self {
        ConnectOptions {
            url: url.into(),
            request: RequestOptions::default(),
            invalid_header: None,
            tcp: TcpOptions::default(),
            tls: TlsOptions::default(),
            handshake_timeout: Duration::from_secs(10),
            max_response_head: handshake::DEFAULT_MAX_RESPONSE_HEAD,
            config: Config::default(),
            socket: SocketConfig::default(),
        }
    }

    /// The URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Replaces the URL (for instance a freshly signed one before a
    /// reconnect).
    pub fn set_url(&mut self, url: impl Into<String>) {
        self.url = url.into();
    }

    /// Adds a handshake header (the seed's `headers`). A name or value that
    /// is not valid HTTP (CR, LF, ...) makes [`ConnectOptions::connect`]
    /// fail with [`HandshakeError::InvalidHeader`] before anything is sent.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.add_header(name, value);
        self
    }

    /// Adds a handshake header in place; see [`ConnectOptions::header`].
    pub fn add_header(&mut self, name: &str, value: &str) {
        match hs::parse_header(name, value) {
            Ok((n, v)) => {
                self.request.headers.append(n, v);
            }
            Err(_) => {
                self.invalid_header.get_or_insert_with(|| name.to_owned());
            }
        }
    }

    /// Sets a handshake header in place, replacing earlier values.
    pub fn set_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.request.headers.insert(name, value);
    }

    /// The handshake headers.
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.request.headers
    }

    /// Offers a subprotocol (`Sec-WebSocket-Protocol`); call again to offer
    /// several, in preference order.
    #[must_use]
    pub fn subprotocol(mut self, protocol: impl Into<String>) -> Self {
        self.request.protocols.push(protocol.into());
        self
    }

    /// Sets the `Origin` header.
    #[must_use]
    pub fn origin(self, origin: &str) -> Self {
        self.header("Origin", origin)
    }

    /// Limits on frames and messages.
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The largest message accepted (default 64 MiB).
    #[must_use]
    pub fn max_message_size(mut self, n: usize) -> Self {
        self.config.max_message_size = n;
        self
    }

    /// The largest frame accepted (default 16 MiB).
    #[must_use]
    pub fn max_frame_size(mut self, n: usize) -> Self {
        self.config.max_frame_size = n;
        self
    }

    /// The largest handshake response head accepted (default 16 KiB).
    #[must_use]
    pub fn max_response_head(mut self, n: usize) -> Self {
        self.max_response_head = n;
        self
    }

    /// Limit on DNS resolution (default 10 s).
    #[must_use]
    pub fn dns_timeout(mut self, t: Duration) -> Self {
        self.tcp.dns_timeout = t;
        self
    }

    /// Limit on the TCP connect (default 10 s).
    #[must_use]
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.tcp.connect_timeout = t;
        self
    }

    /// Limit on the TLS handshake plus the HTTP upgrade (default 10 s).
    #[must_use]
    pub fn handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// How long the close handshake may take (default 5 s).
    #[must_use]
    pub fn close_timeout(mut self, t: Duration) -> Self {
        self.socket.close_timeout = t;
        self
    }

    /// Binds this local address before connecting (Workerman's `bindto`).
    #[must_use]
    pub fn local_addr(mut self, addr: IpAddr) -> Self {
        self.tcp.local_addr = Some(addr);
        self
    }

    /// TLS settings for `wss://`.
    #[must_use]
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// Adds a trusted CA certificate file (PEM).
    #[must_use]
    pub fn ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls.ca_files.push(path.into());
        self
    }

    /// **Testing only**: accept any TLS certificate.
    #[must_use]
    pub fn danger_accept_invalid_certs(mut self, yes: bool) -> Self {
        self.tls.danger_accept_invalid_certs = yes;
        self
    }

    /// Socket-level settings (close timeout, write buffer).
    #[must_use]
    pub fn socket_config(mut self, c: SocketConfig) -> Self {
        self.socket = c;
        self
    }

    /// The parsed target of the URL.
    ///
    /// # Errors
    /// [`Error::Url`] for an unusable URL.
    pub fn target(&self) -> Result<Target, Error> {
        let url = url::Url::parse(&self.url).map_err(hs::UrlError::from)?;
        Ok(Target::from_url(&url)?)
    }

    /// Opens the transport: TCP, then TLS for `wss://`.
    ///
    /// # Errors
    /// DNS, TCP, TLS errors and their timeouts.
    pub async fn connect_transport(&self) -> Result<MaybeTlsStream, Error> {
        if let Some(name) = &self.invalid_header {
            return Err(HandshakeError::InvalidHeader { name: name.clone() }.into());
        }
        let target = self.target()?;
        let tcp = tcp::connect(&target.host, target.port, &self.tcp).await?;
        if !target.tls {
            return Ok(MaybeTlsStream::Plain(tcp));
        }
        let config = tls::client_config(&self.tls)?;
        let tls = tokio::time::timeout(
            self.handshake_timeout,
            tls::connect(tcp, &target.host, config),
        )
        .await
        .map_err(|_| Error::Timeout {
            phase: Phase::Tls,
            after: self.handshake_timeout,
        })??;
        Ok(MaybeTlsStream::Tls(Box::new(tls)))
    }

    /// Runs the WebSocket upgrade over an open transport.
    ///
    /// # Errors
    /// [`Error::Handshake`] (refused, invalid), a handshake
    /// [`Error::Timeout`], transport errors.
    pub async fn handshake<S>(&self, mut io: S) -> Result<(WebSocket<S>, Response), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let target = self.target()?;
        let fut = async {
            let key = handshake::generate_key();
            let request = hs::write_request(&target, &key, &self.request);
            io.write_all(&request).await?;
            io.flush().await?;
            let mut buf = BytesMut::with_capacity(1024);
            let (response, head_len) = loop {
                if let Some(done) = hs::parse_response(&buf, self.max_response_head)? {
                    break done;
                }
                if buf.len() == buf.capacity() {
                    buf.reserve(buf.capacity());
                }
                if io.read_buf(&mut buf).await? == 0 {
                    return Err(Error::Handshake(HandshakeError::Incomplete));
                }
            };
            let head = buf.split_to(head_len).freeze();
            if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
                let body = read_body_start(&mut io, buf, hs::rejected_body_len(&response)).await;
                return Err(hs::rejected(response, body).into());
            }
            hs::check_response(&response, &key, &self.request)?;
            let engine = Engine::new(Role::Client, self.config.clone());
            let ws = WebSocket::from_parts(io, engine, self.socket.clone(), buf);
            Ok((ws, Response::new(response, head)))
        };
        tokio::time::timeout(self.handshake_timeout, fut)
            .await
            .map_err(|_| Error::Timeout {
                phase: Phase::Upgrade,
                after: self.handshake_timeout,
            })?
    }

    /// Connects: transport, then handshake.
    ///
    /// # Errors
    /// Any [`Error`] of the phases, each telling which phase failed.
    pub async fn connect(&self) -> Result<(WebSocket<MaybeTlsStream>, Response), Error> {
        let io = self.connect_transport().await?;
        self.handshake(io).await
    }
}

/// Reads up to `want` bytes of a refusal's body (what is already buffered
/// first), giving up quietly after a short wait: the body is only there to
/// help the user understand the refusal.
async fn read_body_start<S: AsyncRead + Unpin>(io: &mut S, mut buf: BytesMut, want: usize) -> Bytes {
    let deadline = tokio::time::sleep(Duration::from_millis(500));
    tokio::pin!(deadline);
    while buf.len() < want {
        buf.reserve(want - buf.len());
        tokio::select! {
            r = io.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            () = &mut deadline => break,
        }
    }
    buf.truncate(want);
    buf.freeze()
}

/// Connects to `url` with default options.
///
/// ```no_run
/// # async fn f() -> Result<(), wsclient::Error> {
/// use futures_util::StreamExt;
/// let (mut ws, response) = wsclient::connect("ws://127.0.0.1:1234").await?;
/// println!("{response}");
/// ws.send("hello").await?;
/// while let Some(msg) = ws.next().await {
///     println!("recv: {}", msg?);
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// See [`ConnectOptions::connect`].
pub async fn connect(url: &str) -> Result<(WebSocket<MaybeTlsStream>, Response), Error> {
    ConnectOptions::new(url).connect().await
}
