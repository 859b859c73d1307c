//! Connecting: [`ConnectOptions`] (the builder) and [`connect`].
//!
//! Owns the road from a URL to an open [`WebSocket`]: TCP (through a proxy
//! tunnel if one is set), TLS for `wss://`, then the upgrade request and the
//! checks on its response, following redirects when allowed, each phase with
//! its own timeout. The options are kept whole so that the event-driven
//! client can connect again with the same settings.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Phase};
use crate::handshake::client::{self as hs, RequestOptions, Target};
use crate::handshake::{self, HandshakeError, Response};
use crate::proto::{Config, DeflateConfig, Engine, PerMessageDeflate, Role};
use crate::socket::{SocketConfig, WebSocket};
use crate::transport::MaybeTlsStream;
use crate::transport::proxy::{self, ProxyConfig};
use crate::transport::tcp::{self, TcpOptions};
use crate::transport::tls::{self, TlsOptions};

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
///
/// Its `Debug` output hides the URL's password and the proxy's.
#[derive(Clone)]
pub struct ConnectOptions {
    url: String,
    /// `None`: the defaults (no extra headers, subprotocols or
    /// extensions), kept out of line like `tls`.
    request: Option<Box<RequestOptions>>,
    /// `None`: the defaults (most connections), kept out of line so that
    /// every connection's options (held for reconnects) stay small.
    tls: Option<Box<TlsOptions>>,
    /// `None`: the defaults, kept out of line like `tls`.
    rare: Option<Box<RareOptions>>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) config: Config,
    pub(crate) socket: SocketConfig,
}

/// The options most connections leave at their defaults: TCP details,
/// proxy, redirects, the response size limit, and a header that could not
/// be added.
#[derive(Clone, Debug)]
struct RareOptions {
    tcp: TcpOptions,
    proxy: ProxyConfig,
    proxy_timeout: Duration,
    max_redirects: u32,
    max_response_head: usize,
    invalid_header: Option<String>,
    keep_read_buffer: bool,
    bulk_read_tries: u8,
    /// Connect through this Unix domain socket instead of TCP.
    #[cfg(unix)]
    unix_socket: Option<std::path::PathBuf>,
    /// Open WebSockets as streams of this session's HTTP/2 connection.
    #[cfg(feature = "http2")]
    http2: Option<crate::http2::Http2Session>,
}

impl Default for RareOptions {
    fn default() -> Self {
        RareOptions {
            tcp: TcpOptions::default(),
            proxy: ProxyConfig::Direct,
            proxy_timeout: Duration::from_secs(10),
            max_redirects: 0,
            max_response_head: handshake::DEFAULT_MAX_RESPONSE_HEAD,
            invalid_header: None,
            keep_read_buffer: false,
            bulk_read_tries: crate::transport::BULK_TRIES,
            #[cfg(unix)]
            unix_socket: None,
            #[cfg(feature = "http2")]
            http2: None,
        }
    }
}

/// A client engine with `config`, and permessage-deflate with the agreed
/// parameters when the handshake negotiated it.
pub(crate) fn client_engine(
    config: &Config,
    deflate: Option<crate::proto::deflate::Negotiated>,
) -> Engine {
    let engine = Engine::new(Role::Client, config.clone());
    match deflate {
        Some(n) => engine.with_deflate(PerMessageDeflate::new(Role::Client, n.params, &n.config)),
        None => engine,
    }
}

/// The application protocol a `wss://` connection offers in TLS (ALPN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alpn {
    /// `http/1.1`: the upgrade of RFC 6455.
    Http1,
    /// `h2`: WebSockets over HTTP/2 (RFC 8441, [`crate::http2`]).
    #[cfg_attr(not(feature = "http2"), allow(dead_code))]
    H2,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = url::Url::parse(&self.url).map_or_else(
            |_| self.url.clone(),
            |u| {
                if u.password().is_some() {
                    let mut u = u;
                    let _ = u.set_password(Some("***"));
                    u.to_string()
                } else {
                    self.url.clone()
                }
            },
        );
        let mut d = f.debug_struct("ConnectOptions");
        d.field("url", &url)
            .field("request", self.request())
            .field("invalid_header", &self.rare().invalid_header)
            .field("tcp", &self.rare().tcp);
        #[cfg(unix)]
        d.field("unix_socket", &self.rare().unix_socket);
        #[cfg(feature = "http2")]
        d.field("http2", &self.rare().http2);
        d.field("tls", self.tls_options())
            .field("proxy", &self.rare().proxy)
            .field("proxy_timeout", &self.rare().proxy_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_redirects", &self.rare().max_redirects)
            .field("keep_read_buffer", &self.rare().keep_read_buffer)
            .field("bulk_read_tries", &self.rare().bulk_read_tries)
            .field("max_response_head", &self.rare().max_response_head)
            .field("config", &self.config)
            .field("socket", &self.socket)
            .finish()
    }
}

impl ConnectOptions {
    /// Options for `url` (`ws://` or `wss://`) with safe defaults.
    pub fn new(url: impl Into<String>) -> Self {
        ConnectOptions {
            url: url.into(),
            request: None,
            tls: None,
            rare: None,
            handshake_timeout: Duration::from_secs(10),
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
                self.request_mut().headers.append(n, v);
            }
            Err(_) => {
                self.rare_mut()
                    .invalid_header
                    .get_or_insert_with(|| name.to_owned());
            }
        }
    }

    /// Sets a handshake header in place, replacing earlier values.
    pub fn set_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.request_mut().headers.insert(name, value);
    }

    /// The handshake headers.
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.request().headers
    }

    /// Offers a subprotocol (`Sec-WebSocket-Protocol`); call again to offer
    /// several, in preference order.
    #[must_use]
    pub fn subprotocol(mut self, protocol: impl Into<String>) -> Self {
        self.request_mut().protocols.push(protocol.into());
        self
    }

    /// Sets the `Origin` header.
    #[must_use]
    pub fn origin(self, origin: &str) -> Self {
        self.header("Origin", origin)
    }

    /// Offers permessage-deflate compression (RFC 7692) with `config`; call
    /// again to make several offers, in preference order. When the server
    /// accepts one, messages are compressed and inflated transparently
    /// (`max_message_size` applies to the inflated size); when it accepts
    /// none, the connection goes on uncompressed. An answer that matches no
    /// offer fails the handshake with [`HandshakeError::UnsupportedExtension`].
    ///
    /// `ConnectOptions::new(url).deflate(DeflateConfig::default())` offers
    /// `permessage-deflate; client_max_window_bits`.
    #[must_use]
    pub fn deflate(mut self, config: DeflateConfig) -> Self {
        self.request_mut().deflate.push(config);
        self
    }

    /// Turns permessage-deflate on with the default [`DeflateConfig`] (if
    /// not offered already), or off (no offer at all).
    #[must_use]
    pub fn compression(mut self, on: bool) -> Self {
        if !on {
            if let Some(r) = self.request.as_mut() {
                r.deflate.clear();
            }
        } else if self.request().deflate.is_empty() {
            self.request_mut().deflate.push(DeflateConfig::default());
        }
        self
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
        self.rare_mut().max_response_head = n;
        self
    }

    /// Limit on DNS resolution (default 10 s).
    #[must_use]
    pub fn dns_timeout(mut self, t: Duration) -> Self {
        self.rare_mut().tcp.dns_timeout = t;
        self
    }

    /// Limit on the TCP connect (default 10 s).
    #[must_use]
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.rare_mut().tcp.connect_timeout = t;
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

    /// Keeps the read buffer between messages (default `false`; see
    /// [`WebSocket::set_keep_read_buffer`]).
    #[must_use]
    pub fn keep_read_buffer(mut self, keep: bool) -> Self {
        if keep || self.rare.is_some() {
            self.rare_mut().keep_read_buffer = keep;
        }
        self
    }

    /// While the server streams (a read since the task last waited brought
    /// 16 KiB or more), how many more times a plain-TCP read that finds
    /// nothing looks again before the task waits for the socket (default
    /// [`crate::transport::BULK_TRIES`]; 0 waits at once). A few `recv`
    /// calls cost less than a sleep and a wake-up when the next bytes are
    /// microseconds away; 0 saves them for a server that sends large
    /// messages far apart. See [`crate::PlainStream`].
    #[must_use]
    pub fn bulk_read_tries(mut self, tries: u8) -> Self {
        if tries != crate::transport::BULK_TRIES || self.rare.is_some() {
            self.rare_mut().bulk_read_tries = tries;
        }
        self
    }

    /// Binds this local address before connecting (Workerman's `bindto`).
    #[must_use]
    pub fn local_addr(mut self, addr: IpAddr) -> Self {
        self.rare_mut().tcp.local_addr = Some(addr);
        self
    }

    /// Connects through the Unix domain socket at `path` instead of TCP
    /// (Node `ws`'s `ws+unix:`, Python `websockets`' `unix_connect`,
    /// curl's `--unix-socket`): for a server that listens on a path, such
    /// as a local daemon or a reverse proxy's upstream.
    ///
    /// The URL still names the server: its host (and port) go in the
    /// `Host` header, its path and query in the request, and `wss://` runs
    /// TLS over the socket, verified against the URL's host as over TCP.
    /// Every connection these options make goes to the socket: reconnects
    /// and followed redirects too, with no DNS lookup, no proxy and no
    /// local address (any set as well is not used); the connect timeout
    /// applies
    /// ([`Error::ConnectUnix`], or [`Error::Timeout`] in
    /// [`Phase::Unix`]). Addresses are then not IP addresses:
    /// [`MaybeTlsStream::peer_addr`] is an error and the event client's
    /// [`Conn::remote_addr`](crate::Conn::remote_addr) is `None`.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), wsclient::Error> {
    /// let (mut ws, _) = wsclient::ConnectOptions::new("ws://localhost/events")
    ///     .unix_socket("/run/app/ws.sock")
    ///     .connect()
    ///     .await?;
    /// ws.send("hello").await?;
    /// # Ok(()) }
    /// ```
    #[cfg(unix)]
    #[must_use]
    pub fn unix_socket(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.rare_mut().unix_socket = Some(path.into());
        self
    }

    /// Opens every WebSocket of these options as a stream of `session`'s
    /// HTTP/2 connection (RFC 8441, [`crate::http2`]) instead of a
    /// connection of its own: all the options, clients and reconnects
    /// given the same session share one TCP (and TLS) connection, made
    /// when first needed and again when it has ended. The URL's path and
    /// query, the headers, subprotocols, limits and timeouts of these
    /// options apply to each WebSocket; the session's own options make the
    /// connection (its URL names the server). Redirects are not followed
    /// over HTTP/2.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), wsclient::Error> {
    /// use wsclient::http2::Http2Session;
    /// use wsclient::{Client, ConnectOptions};
    ///
    /// let session = Http2Session::new(ConnectOptions::new("wss://example.com/"));
    /// for feed in ["/prices", "/orders", "/news"] {
    ///     let url = format!("wss://example.com{feed}");
    ///     let mut client = Client::with_options(ConnectOptions::new(url).via_http2(session.clone()))?;
    ///     client.on_message(|_, m| println!("{m}"));
    ///     client.connect();
    /// }
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "http2")]
    #[must_use]
    pub fn via_http2(mut self, session: crate::http2::Http2Session) -> Self {
        self.rare_mut().http2 = Some(session);
        self
    }

    /// The Unix domain socket set by [`ConnectOptions::unix_socket`].
    #[cfg(unix)]
    #[must_use]
    pub fn unix_socket_path(&self) -> Option<&std::path::Path> {
        self.rare().unix_socket.as_deref()
    }

    /// The request options in effect.
    pub(crate) fn request(&self) -> &RequestOptions {
        static DEFAULT: std::sync::LazyLock<RequestOptions> =
            std::sync::LazyLock::new(RequestOptions::default);
        self.request.as_deref().unwrap_or(&DEFAULT)
    }

    fn request_mut(&mut self) -> &mut RequestOptions {
        self.request.get_or_insert_with(Box::default)
    }

    /// The TLS settings in effect.
    fn tls_options(&self) -> &TlsOptions {
        static DEFAULT: std::sync::LazyLock<TlsOptions> =
            std::sync::LazyLock::new(TlsOptions::default);
        self.tls.as_deref().unwrap_or(&DEFAULT)
    }

    fn tls_mut(&mut self) -> &mut TlsOptions {
        self.tls.get_or_insert_with(Box::default)
    }

    /// The less used options in effect.
    fn rare(&self) -> &RareOptions {
        static DEFAULT: std::sync::LazyLock<RareOptions> =
            std::sync::LazyLock::new(RareOptions::default);
        self.rare.as_deref().unwrap_or(&DEFAULT)
    }

    fn rare_mut(&mut self) -> &mut RareOptions {
        self.rare.get_or_insert_with(Box::default)
    }

    /// TLS settings for `wss://`.
    #[must_use]
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(Box::new(tls));
        self
    }

    /// Adds a trusted CA certificate file (PEM).
    #[must_use]
    pub fn ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls_mut().ca_files.push(path.into());
        self
    }

    /// **Testing only**: accept any TLS certificate.
    #[must_use]
    pub fn danger_accept_invalid_certs(mut self, yes: bool) -> Self {
        self.tls_mut().danger_accept_invalid_certs = yes;
        self
    }

    /// A client certificate chain and its private key (PEM files), sent
    /// when the server asks for one (mutual TLS).
    #[must_use]
    pub fn client_cert(
        mut self,
        cert: impl Into<std::path::PathBuf>,
        key: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.tls_mut().client_cert = Some((cert.into(), key.into()));
        self
    }

    /// Connects through this proxy: `http://[user:pass@]host:port` (HTTP
    /// `CONNECT`, Basic proxy authentication), `socks5://...` (SOCKS5, host
    /// names resolved here, each address tried in turn until the proxy
    /// reaches one; see [`proxy::connect_through`]) or `socks5h://...`
    /// (resolved by the proxy). A
    /// bad URL fails [`ConnectOptions::connect`] with [`Error::Proxy`].
    /// `wss://` runs TLS end to end through the tunnel.
    #[must_use]
    pub fn proxy(mut self, url: &str) -> Self {
        self.rare_mut().proxy = ProxyConfig::Url(url.to_owned());
        self
    }

    /// Takes the proxy from the environment at every connect:
    /// `HTTPS_PROXY` for `wss://`, `HTTP_PROXY` for `ws://`, `ALL_PROXY`
    /// otherwise, unless `NO_PROXY` lists the host (lower-case names too;
    /// see [`proxy::from_vars`]). Without this call the environment is not
    /// read.
    #[must_use]
    pub fn proxy_from_env(mut self) -> Self {
        self.rare_mut().proxy = ProxyConfig::Env;
        self
    }

    /// Connects directly, without any proxy (the default).
    #[must_use]
    pub fn no_proxy(mut self) -> Self {
        // The default: nothing to set out of line when nothing else is.
        if let Some(rare) = self.rare.as_mut() {
            rare.proxy = ProxyConfig::Direct;
        }
        self
    }

    /// The proxy setting.
    #[must_use]
    pub fn proxy_config(&self) -> &ProxyConfig {
        &self.rare().proxy
    }

    /// Limit on the negotiation with the proxy, once connected to it
    /// (default 10 s).
    #[must_use]
    pub fn proxy_timeout(mut self, t: Duration) -> Self {
        self.rare_mut().proxy_timeout = t;
        self
    }

    /// Follows up to `n` redirects (301, 302, 303, 307, 308) of the upgrade
    /// request (default 0: a redirect is an [`Error::Handshake`] rejection
    /// like any other non-101 answer, as it is past the limit). A relative
    /// `Location` is resolved against the URL that answered; a redirect from
    /// `wss://` to `ws://` is never followed
    /// ([`HandshakeError::InsecureRedirect`]). `Authorization`, `Cookie`
    /// and `Host` headers set here are sent only to the original URL's
    /// origin.
    #[must_use]
    pub fn max_redirects(mut self, n: u32) -> Self {
        self.rare_mut().max_redirects = n;
        self
    }

    /// Uses these addresses for `host` instead of DNS (like curl's
    /// `--resolve`); they are raced Happy Eyeballs style like DNS answers
    /// (through a `socks5://` proxy, tried in turn, see
    /// [`proxy::connect_through`]).
    #[must_use]
    pub fn resolve(mut self, host: &str, addrs: &[IpAddr]) -> Self {
        self.rare_mut()
            .tcp
            .resolve
            .retain(|(h, _)| !h.eq_ignore_ascii_case(host));
        self.rare_mut()
            .tcp
            .resolve
            .push((host.to_owned(), addrs.to_vec()));
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
        Ok(Target::parse(&self.url)?)
    }

    /// Whether the URL is usable ([`ConnectOptions::target`] without
    /// building the target).
    pub(crate) fn check_url(&self) -> Result<(), Error> {
        Ok(Target::check(&self.url)?)
    }

    fn parsed_url(&self) -> Result<url::Url, Error> {
        Ok(url::Url::parse(&self.url).map_err(hs::UrlError::from)?)
    }

    pub(crate) fn check_headers(&self) -> Result<(), Error> {
        match &self.rare().invalid_header {
            Some(name) => Err(HandshakeError::InvalidHeader { name: name.clone() }.into()),
            None => Ok(()),
        }
    }

    /// Opens the transport: TCP (through the proxy, if any), then TLS for
    /// `wss://`.
    ///
    /// # Errors
    /// DNS, TCP, proxy, TLS errors and their timeouts.
    pub async fn connect_transport(&self) -> Result<MaybeTlsStream, Error> {
        self.check_headers()?;
        let target = self.target()?;
        self.transport_to(&target, Alpn::Http1).await
    }

    /// The transport to `target` (TCP, through the proxy if any, or the
    /// Unix socket), with TLS for `wss://` offering `alpn`.
    pub(crate) async fn transport_to(
        &self,
        target: &Target,
        alpn: Alpn,
    ) -> Result<MaybeTlsStream, Error> {
        #[cfg(unix)]
        if let Some(path) = &self.rare().unix_socket {
            return self.unix_transport_to(path, target, alpn).await;
        }
        let via = self
            .rare()
            .proxy
            .proxy_for(target.tls, &target.host, target.port)?;
        let tcp = match via {
            None => tcp::connect(&target.host, target.port, &self.rare().tcp).await?,
            // socks5:// resolves here and tries every address; the others
            // let the proxy resolve.
            Some(proxy) => {
                proxy::connect_through(
                    &proxy,
                    &target.host,
                    target.port,
                    &self.rare().tcp,
                    self.rare().proxy_timeout,
                )
                .await?
            }
        };
        if !target.tls {
            let mut plain = MaybeTlsStream::plain(tcp);
            if let Some(rare) = &self.rare {
                plain.set_bulk_read_tries(rare.bulk_read_tries);
            }
            return Ok(plain);
        }
        let tls = self.tls_over(tcp, &target.host, alpn).await?;
        Ok(MaybeTlsStream::Tls(Box::new(tls)))
    }

    /// The TLS handshake over `io` for `host`, offering `alpn`, within the
    /// handshake timeout.
    async fn tls_over<S>(
        &self,
        io: S,
        host: &str,
        alpn: Alpn,
    ) -> Result<tokio_rustls::client::TlsStream<S>, Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut config = tls::client_config(self.tls_options())?;
        if alpn == Alpn::H2 {
            let mut h2 = (*config).clone();
            h2.alpn_protocols = vec![b"h2".to_vec()];
            config = std::sync::Arc::new(h2);
        }
        crate::deadline::timeout(self.handshake_timeout, tls::connect(io, host, config))
            .await
            .ok_or(Error::Timeout {
                phase: Phase::Tls,
                after: self.handshake_timeout,
            })?
            .map_err(Error::from)
    }

    /// [`ConnectOptions::transport_to`] through the Unix domain socket at
    /// `path`.
    #[cfg(unix)]
    async fn unix_transport_to(
        &self,
        path: &std::path::Path,
        target: &Target,
        alpn: Alpn,
    ) -> Result<MaybeTlsStream, Error> {
        let stream = crate::transport::unix::connect(path, self.rare().tcp.connect_timeout).await?;
        if !target.tls {
            return Ok(MaybeTlsStream::Unix(stream));
        }
        let tls = self.tls_over(stream, &target.host, alpn).await?;
        Ok(MaybeTlsStream::UnixTls(Box::new(tls)))
    }

    /// The request options for `url`: the configured ones, less the
    /// credentials and `Host` when `url` is not on the original origin,
    /// plus `Authorization: Basic` from the URL's `user:password@` (unless
    /// an `Authorization` header is set).
    fn request_for(&self, url: &url::Url, same_origin: bool) -> Cow<'_, RequestOptions> {
        let mut request = Cow::Borrowed(self.request());
        if !same_origin {
            let r = request.to_mut();
            for name in [
                http::header::AUTHORIZATION,
                http::header::COOKIE,
                http::header::HOST,
            ] {
                r.headers.remove(name);
            }
        }
        if (!url.username().is_empty() || url.password().is_some())
            && !request.headers.contains_key(http::header::AUTHORIZATION)
        {
            let user = proxy::percent_decode(url.username());
            let pass = proxy::percent_decode(url.password().unwrap_or(""));
            let token = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("{user}:{pass}"),
            );
            if let Ok(mut v) = HeaderValue::try_from(format!("Basic {token}")) {
                v.set_sensitive(true);
                request
                    .to_mut()
                    .headers
                    .insert(http::header::AUTHORIZATION, v);
            }
        }
        request
    }

    /// Runs the WebSocket upgrade over an open transport. Redirects cannot
    /// be followed here (they need a new connection): use
    /// [`ConnectOptions::connect`] for that.
    ///
    /// # Errors
    /// [`Error::Handshake`] (refused, invalid), a handshake
    /// [`Error::Timeout`], transport errors.
    pub async fn handshake<S>(&self, io: S) -> Result<(WebSocket<S>, Response), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.check_headers()?;
        let (target, request) = match Target::from_plain(&self.url) {
            Some(t) => (t, Cow::Borrowed(self.request())),
            None => {
                let url = self.parsed_url()?;
                (Target::from_url(&url)?, self.request_for(&url, true))
            }
        };
        self.handshake_at(io, &target, &request).await
    }

    /// The upgrade over `io`.
    async fn handshake_at<S>(
        &self,
        mut io: S,
        target: &Target,
        request: &RequestOptions,
    ) -> Result<(WebSocket<S>, Response), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let fut = async {
            let key = handshake::generate_key();
            let bytes = hs::write_request(target, &key, request);
            io.write_all(&bytes).await.map_err(transport_error)?;
            io.flush().await.map_err(transport_error)?;
            let mut buf = BytesMut::with_capacity(1024);
            let response = loop {
                if let Some(done) = hs::parse_response(&mut buf, self.rare().max_response_head)? {
                    break done;
                }
                if buf.len() == buf.capacity() {
                    buf.reserve(buf.capacity());
                }
                if io.read_buf(&mut buf).await.map_err(transport_error)? == 0 {
                    return Err(Error::Handshake(HandshakeError::Incomplete));
                }
            };
            if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
                let body = read_body_start(&mut io, buf, hs::rejected_body_len(&response)).await;
                return Err(hs::rejected(response, body).into());
            }
            let accepted = match hs::check_response(&response, &key, request) {
                Ok(accepted) => accepted,
                // The 101 failed a check: the error keeps the response.
                Err(e) => return Err(e.with_response(response).into()),
            };
            let engine = client_engine(&self.config, accepted.deflate);
            let mut ws = WebSocket::from_parts(io, engine, self.socket.clone(), buf);
            ws.set_keep_read_buffer(self.rare().keep_read_buffer);
            Ok((ws, response))
        };
        crate::deadline::timeout(self.handshake_timeout, fut)
            .await
            .ok_or(Error::Timeout {
                phase: Phase::Upgrade,
                after: self.handshake_timeout,
            })?
    }

    /// Connects: transport, then handshake, following redirects up to
    /// [`ConnectOptions::max_redirects`].
    ///
    /// # Errors
    /// Any [`Error`] of the phases, each telling which phase failed.
    pub async fn connect(&self) -> Result<(WebSocket<MaybeTlsStream>, Response), Error> {
        self.connect_with(|_| {}).await
    }

    /// Like [`ConnectOptions::connect`], calling `on_transport` with each
    /// transport as soon as it is open (TCP, proxy and TLS done), before
    /// its upgrade request: once, or once per hop when following
    /// redirects. For callers that report the transport separately (the
    /// event client's `on_connect`).
    ///
    /// # Errors
    /// As [`ConnectOptions::connect`].
    pub async fn connect_with<F>(
        &self,
        mut on_transport: F,
    ) -> Result<(WebSocket<MaybeTlsStream>, Response), Error>
    where
        F: FnMut(&MaybeTlsStream),
    {
        self.check_headers()?;
        #[cfg(feature = "http2")]
        if let Some(session) = &self.rare().http2 {
            let target = self.target()?;
            let opened = session.open_stream_for(&target.resource, self).await?;
            let io = MaybeTlsStream::Http2(Box::new(opened.stream));
            on_transport(&io);
            let engine = client_engine(&self.config, opened.deflate);
            let mut ws = WebSocket::from_parts(io, engine, self.socket.clone(), BytesMut::new());
            ws.set_keep_read_buffer(self.rare().keep_read_buffer);
            return Ok((ws, opened.response));
        }
        // A plain URL (most are) is read without the WHATWG parser, and has
        // no credentials to add; `url` is the parsed URL of the attempt,
        // when it was parsed.
        let mut url: Option<url::Url> = None;
        let mut target = match Target::from_plain(&self.url) {
            Some(t) => t,
            None => {
                let parsed = self.parsed_url()?;
                let t = Target::from_url(&parsed)?;
                url = Some(parsed);
                t
            }
        };
        let mut redirects = 0;
        loop {
            let request = match &url {
                None => Cow::Borrowed(self.request()),
                Some(u) => {
                    let same_origin = redirects == 0 || self.parsed_url()?.origin() == u.origin();
                    self.request_for(u, same_origin)
                }
            };
            let io = self.transport_to(&target, Alpn::Http1).await?;
            on_transport(&io);
            let rejected = match self.handshake_at(io, &target, &request).await {
                Err(Error::Handshake(HandshakeError::Rejected(r)))
                    if redirects < self.rare().max_redirects && is_redirect(r.status()) =>
                {
                    r
                }
                other => {
                    return other.map(|(mut ws, response)| {
                        ws.set_read_low_water(MaybeTlsStream::set_read_low_water);
                        (ws, response)
                    });
                }
            };
            let url_now = match url.take() {
                Some(u) => u,
                None => self.parsed_url()?,
            };
            let Some(next) = redirect_location(&url_now, &rejected) else {
                return Err(HandshakeError::Rejected(rejected).into());
            };
            if target.tls && matches!(next.scheme(), "ws" | "http") {
                return Err(HandshakeError::InsecureRedirect {
                    location: next.into(),
                    response: rejected,
                }
                .into());
            }
            tracing::debug!(
                from = %without_credentials(&url_now),
                to = %without_credentials(&next),
                status = %rejected.status(),
                "following redirect"
            );
            target = Target::from_url(&next)?;
            url = Some(next);
            redirects += 1;
        }
    }
}

/// An I/O error of the handshake: a TLS failure that surfaced on a read or
/// write (a client certificate refused under TLS 1.3, where the server
/// decides after the client's handshake is done) is a TLS error; the
/// connection closing or reset (a TLS server may drop it without an alert)
/// is [`HandshakeError::Incomplete`]; anything else is [`Error::Io`].
fn transport_error(e: std::io::Error) -> Error {
    use std::io::ErrorKind;
    match tls::TlsError::from_io(e) {
        Ok(tls) => Error::Tls(tls),
        Err(e) => match e.kind() {
            ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe => Error::Handshake(HandshakeError::Incomplete),
            _ => Error::Io(e),
        },
    }
}

/// `url` without user name and password, for logs.
fn without_credentials(url: &url::Url) -> url::Url {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url
}

/// The statuses that redirect a WebSocket upgrade.
fn is_redirect(status: http::StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Where a redirect points: its `Location` resolved against `base`,
/// without fragment, when it is a `ws`, `wss`, `http` or `https` URL.
fn redirect_location(base: &url::Url, rejected: &handshake::Rejected) -> Option<url::Url> {
    let location = rejected
        .response
        .headers()
        .get(http::header::LOCATION)?
        .to_str()
        .ok()?
        .trim();
    let mut next = base.join(location).ok()?;
    next.set_fragment(None);
    matches!(next.scheme(), "ws" | "wss" | "http" | "https").then_some(next)
}

/// Reads up to `want` bytes of a refusal's body (what is already buffered
/// first), giving up quietly after a short wait: the body is only there to
/// help the user understand the refusal.
async fn read_body_start<S: AsyncRead + Unpin>(
    io: &mut S,
    mut buf: BytesMut,
    want: usize,
) -> Bytes {
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
