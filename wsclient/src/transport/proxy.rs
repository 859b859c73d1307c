//! Proxies: tunnels through an HTTP proxy (`CONNECT`, RFC 9110 section
//! 9.3.6) or a SOCKS5 proxy (RFC 1928, with RFC 1929 user/password), and the
//! choice of a proxy from the environment (`HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY`, `NO_PROXY`).
//!
//! Owns the negotiation on an already connected stream: once [`tunnel`]
//! returns, the stream carries bytes to and from the target as if it were
//! connected to it directly, so TLS (for `wss://`) runs end to end through
//! the tunnel. [`connect_through`] adds the TCP connection to the proxy
//! ([`super::tcp`]), the negotiation timeout (phase [`Phase::Proxy`]) and,
//! for `socks5://`, the local resolution of the target with one attempt
//! per resolved address.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::tcp::{self, TcpOptions};
use crate::error::{Error, Phase};

/// The most bytes a `CONNECT` reply head may take.
const MAX_CONNECT_REPLY: usize = 16 << 10;

/// What went wrong talking to a proxy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The proxy URL does not parse or lacks a host.
    #[error("invalid proxy URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given (credentials removed).
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The proxy URL's scheme is not one this crate speaks.
    #[error("unsupported proxy scheme {0:?}: use http://, socks5:// or socks5h://")]
    UnsupportedScheme(String),
    /// The HTTP proxy answered `CONNECT` with an error status (for instance
    /// 403 when it forbids the port, 502 when it cannot reach the server).
    #[error("the proxy refused the tunnel: HTTP {status}")]
    Refused {
        /// The proxy's status.
        status: http::StatusCode,
    },
    /// The proxy wants credentials and none were given: put `user:password@`
    /// in the proxy URL.
    #[error("the proxy requires authentication: put user:password@ in the proxy URL")]
    AuthRequired,
    /// The proxy rejected the credentials of the proxy URL (HTTP 407 or
    /// 401 to `CONNECT`, SOCKS5 user/password refused).
    #[error("the proxy rejected the credentials")]
    AuthFailed,
    /// The SOCKS5 proxy could not open the connection (RFC 1928 reply
    /// code).
    #[error("SOCKS5 proxy: {} (reply code {code})", socks_reply_text(*code))]
    Socks {
        /// The reply code (1 general failure, 2 not allowed, 3 network
        /// unreachable, 4 host unreachable, 5 connection refused, 6 TTL
        /// expired, 7 command not supported, 8 address type not supported).
        code: u8,
    },
    /// The proxy's reply is not valid for the protocol (not a SOCKS5 proxy,
    /// not HTTP, closed early...).
    #[error("bad reply from the proxy: {0}")]
    BadReply(&'static str),
    /// The target host name is too long for SOCKS5 (255 bytes at most).
    #[error("host name {0:?} is too long for a SOCKS5 proxy")]
    HostTooLong(String),
    /// Reading from or writing to the proxy failed.
    #[error("I/O error talking to the proxy: {0}")]
    Io(#[from] io::Error),
}

/// The text of a SOCKS5 reply code (RFC 1928 section 6).
#[must_use]
pub fn socks_reply_text(code: u8) -> &'static str {
    match code {
        0 => "succeeded",
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown error",
    }
}

/// The kind of proxy, from the proxy URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyScheme {
    /// `http://`: an HTTP proxy, tunnelling with `CONNECT`.
    Http,
    /// `socks5://`: SOCKS5, the host name resolved locally.
    Socks5,
    /// `socks5h://`: SOCKS5, the host name resolved by the proxy.
    Socks5h,
}

/// A proxy: where it is, how to talk to it, and the credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// The kind of proxy.
    pub scheme: ProxyScheme,
    /// The proxy's host name or address (IPv6 without brackets).
    pub host: String,
    /// The proxy's port.
    pub port: u16,
    /// User name and password (HTTP Basic, or SOCKS5 RFC 1929), already
    /// percent-decoded.
    pub auth: Option<(String, String)>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("auth", &self.auth.as_ref().map(|(u, _)| (u, "***")))
            .finish()
    }
}

impl fmt::Display for Proxy {
    /// The proxy URL without the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            ProxyScheme::Http => "http",
            ProxyScheme::Socks5 => "socks5",
            ProxyScheme::Socks5h => "socks5h",
        };
        write!(f, "{scheme}://")?;
        if let Some((user, _)) = &self.auth {
            write!(f, "{user}:***@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Proxy {
    /// Parses a proxy URL: `http://[user:pass@]host[:port]` (port 80 by
    /// default), `socks5://...` or `socks5h://...` (port 1080 by default).
    /// A URL without a scheme (`proxy.local:3128`, as often found in
    /// `HTTP_PROXY`) is taken as `http://`. User name and password are
    /// percent-decoded.
    ///
    /// # Errors
    /// [`ProxyError::InvalidUrl`], [`ProxyError::UnsupportedScheme`].
    pub fn parse(url: &str) -> Result<Proxy, ProxyError> {
        let text = url.trim();
        let owned;
        let text = if text.contains("://") {
            text
        } else {
            owned = format!("http://{text}");
            &owned
        };
        let invalid = |reason| ProxyError::InvalidUrl {
            url: redact(url),
            reason,
        };
        let parsed = url::Url::parse(text).map_err(|_| invalid("not a URL"))?;
        let scheme = match parsed.scheme().to_ascii_lowercase().as_str() {
            "http" => ProxyScheme::Http,
            "socks5" => ProxyScheme::Socks5,
            "socks5h" => ProxyScheme::Socks5h,
            other => return Err(ProxyError::UnsupportedScheme(other.to_owned())),
        };
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            _ => return Err(invalid("no host")),
        };
        let port = parsed.port().unwrap_or(match scheme {
            ProxyScheme::Http => 80,
            ProxyScheme::Socks5 | ProxyScheme::Socks5h => 1080,
        });
        let auth = if parsed.username().is_empty() && parsed.password().is_none() {
            None
        } else {
            let user = percent_decode(parsed.username());
            let pass = percent_decode(parsed.password().unwrap_or(""));
            if scheme != ProxyScheme::Http && (user.len() > 255 || pass.len() > 255) {
                return Err(invalid(
                    "SOCKS5 user name and password are limited to 255 bytes",
                ));
            }
            Some((user, pass))
        };
        Ok(Proxy {
            scheme,
            host,
            port,
            auth,
        })
    }
}

/// `url` with any password replaced by `***`, for error messages.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme_end], &rest[at..])
        }
        None => url.to_owned(),
    }
}

/// Decodes `%XX` escapes (as found in URL user names and passwords);
/// invalid escapes are kept as they are, invalid UTF-8 is replaced.
#[must_use]
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(&h), Some(&l)) = (bytes.get(i + 1), bytes.get(i + 2)) {
                if let (Some(h), Some(l)) = (hex(h), hex(l)) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where a connection's proxy setting comes from. Its `Debug` hides the
/// proxy password.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyConfig {
    /// Connect directly (the default: the environment is not read unless
    /// asked for).
    #[default]
    Direct,
    /// Always use this proxy URL.
    Url(String),
    /// Read `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY` (see
    /// [`from_vars`]) at every connect.
    Env,
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyConfig::Direct => f.write_str("Direct"),
            ProxyConfig::Url(u) => f.debug_tuple("Url").field(&redact(u)).finish(),
            ProxyConfig::Env => f.write_str("Env"),
        }
    }
}

impl ProxyConfig {
    /// The proxy to use for `host:port` (`tls` for `wss://`), if any.
    ///
    /// # Errors
    /// An unusable proxy URL.
    pub fn proxy_for(&self, tls: bool, host: &str, port: u16) -> Result<Option<Proxy>, ProxyError> {
        match self {
            ProxyConfig::Direct => Ok(None),
            ProxyConfig::Url(u) => Proxy::parse(u).map(Some),
            ProxyConfig::Env => from_vars(|name| std::env::var(name).ok(), tls, host, port),
        }
    }
}

/// Chooses a proxy from environment variables, read through `var`:
///
/// - `NO_PROXY` / `no_proxy` first: when it matches the host (see
///   [`no_proxy_matches`]) the connection is direct;
/// - then `HTTPS_PROXY` / `https_proxy` for `wss://` (`tls`), or
///   `HTTP_PROXY` / `http_proxy` for `ws://`;
/// - then `ALL_PROXY` / `all_proxy`.
///
/// The lower-case name wins when both are set (as in curl); empty values
/// count as unset.
///
/// # Errors
/// An unusable proxy URL in the chosen variable.
pub fn from_vars(
    var: impl Fn(&str) -> Option<String>,
    tls: bool,
    host: &str,
    port: u16,
) -> Result<Option<Proxy>, ProxyError> {
    let get = |names: [&str; 2]| {
        names
            .iter()
            .find_map(|n| var(n).filter(|v| !v.trim().is_empty()))
    };
    if let Some(list) = get(["no_proxy", "NO_PROXY"]) {
        if no_proxy_matches(&list, host, port) {
            return Ok(None);
        }
    }
    let chosen = if tls {
        get(["https_proxy", "HTTPS_PROXY"])
    } else {
        get(["http_proxy", "HTTP_PROXY"])
    }
    .or_else(|| get(["all_proxy", "ALL_PROXY"]));
    chosen.map(|u| Proxy::parse(&u)).transpose()
}

/// True when the `NO_PROXY` list `list` (comma- or space-separated)
/// exempts `host:port` from the proxy. Entries:
///
/// - `*`: every host;
/// - a name (`example.com`, `.example.com` or `*.example.com`): that host
///   and every host under it, case-insensitively;
/// - an IP address (`127.0.0.1`, `::1`, `[::1]`) or a CIDR block
///   (`10.0.0.0/8`, `fd00::/8`): addresses only, compared as addresses;
/// - any of these with `:port`: only that port.
#[must_use]
pub fn no_proxy_matches(list: &str, host: &str, port: u16) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let host_ip = host.parse::<IpAddr>().ok();
    for entry in list.split([',', ' ', '\t']).map(str::trim) {
        if entry.is_empty() {
            continue;
        }
        if entry == "*" {
            return true;
        }
        let (name, entry_port) = split_host_port(entry);
        if entry_port.is_some_and(|p| p != port) {
            continue;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some((net, bits)) = name.split_once('/') {
            if let (Ok(net), Ok(bits), Some(ip)) =
                (net.parse::<IpAddr>(), bits.parse::<u8>(), host_ip)
            {
                if in_cidr(ip, net, bits) {
                    return true;
                }
            }
            continue;
        }
        if let Ok(ip) = name.parse::<IpAddr>() {
            if host_ip == Some(ip) {
                return true;
            }
            continue;
        }
        let name = name.trim_start_matches("*.").trim_start_matches('.');
        if name.is_empty() {
            continue;
        }
        if host == name
            || host
                .strip_suffix(name)
                .is_some_and(|rest| rest.ends_with('.'))
        {
            return true;
        }
    }
    false
}

/// Splits `host:port`, `[v6]:port`, `[v6]`, a bare IPv6 address or a bare
/// name into the host part and the port, if any.
fn split_host_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        if let Some((h, after)) = rest.split_once(']') {
            return (h, after.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
    }
    match entry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(p) => (h, Some(p)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Opens a tunnel to `host:port` through `proxy`: connects to the proxy
/// (with the DNS and connect timeouts of `tcp_opts`, every address of the
/// proxy raced as for a direct connection), then negotiates within
/// `timeout`.
///
/// For [`ProxyScheme::Socks5`] the target name is resolved here (honouring
/// [`TcpOptions::resolve`]) and its addresses are tried in order, each
/// with a new connection to the proxy (a SOCKS5 connection cannot be used
/// again after a failed `CONNECT` reply), until one tunnel opens. The next
/// address is tried after a SOCKS5 error reply ([`ProxyError::Socks`],
/// for instance "connection refused") or a negotiation timeout (the proxy
/// stuck connecting to a black-holed address); any other error (the proxy
/// unreachable, credentials refused, a bad reply) ends the attempts, as
/// another address cannot change it. All attempts together are bounded by
/// what one attempt may take, `tcp_opts.connect_timeout + timeout`: past
/// it the result is a [`Phase::Proxy`] [`Error::Timeout`] with that
/// total. When every address fails, the last address's error is returned.
/// `http://` and `socks5h://` send the name to the proxy: one attempt.
///
/// # Errors
/// [`Error::Proxy`] (the last address's, for `socks5://`), a
/// [`Phase::Proxy`] [`Error::Timeout`], and the DNS and TCP errors of the
/// target's resolution and of the connection to the proxy.
pub async fn connect_through(
    proxy: &Proxy,
    host: &str,
    port: u16,
    tcp_opts: &TcpOptions,
    timeout: Duration,
) -> Result<TcpStream, Error> {
    if proxy.scheme != ProxyScheme::Socks5 {
        return attempt(proxy, host, port, tcp_opts, timeout).await;
    }
    let addrs = tcp::resolve(host, port, tcp_opts).await?;
    let budget = tcp_opts.connect_timeout.saturating_add(timeout);
    let overall = Error::Timeout {
        phase: Phase::Proxy,
        after: budget,
    };
    let run = async {
        let mut last = None;
        for addr in &addrs {
            let ip = addr.ip().to_string();
            match attempt(proxy, &ip, port, tcp_opts, timeout).await {
                Ok(stream) => return Ok(stream),
                Err(
                    e @ (Error::Proxy(ProxyError::Socks { .. })
                    | Error::Timeout {
                        phase: Phase::Proxy,
                        ..
                    }),
                ) => {
                    tracing::debug!(proxy = %proxy, %addr, error = %e, "SOCKS5 attempt failed, trying the next address");
                    last = Some(e);
                }
                Err(e) => return Err(Some(e)),
            }
        }
        Err(last)
    };
    match tokio::time::timeout(budget, run).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(last)) => Err(last.unwrap_or(overall)),
        Err(_) => Err(overall),
    }
}

/// One connection to the proxy and one negotiation for `host:port`.
async fn attempt(
    proxy: &Proxy,
    host: &str,
    port: u16,
    tcp_opts: &TcpOptions,
    timeout: Duration,
) -> Result<TcpStream, Error> {
    let mut stream = tcp::connect(&proxy.host, proxy.port, tcp_opts).await?;
    tokio::time::timeout(timeout, tunnel(&mut stream, proxy, host, port))
        .await
        .map_err(|_| Error::Timeout {
            phase: Phase::Proxy,
            after: timeout,
        })??;
    Ok(stream)
}

/// Negotiates a tunnel to `host:port` over `io`, a stream connected to
/// `proxy`. For [`ProxyScheme::Socks5`] the caller passes the address it
/// resolved as `host`; for the others, the name as it is.
///
/// Nothing past the proxy's reply is read, so the stream is the tunnel
/// when this returns.
///
/// # Errors
/// [`ProxyError`].
pub async fn tunnel<S>(io: &mut S, proxy: &Proxy, host: &str, port: u16) -> Result<(), ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match proxy.scheme {
        ProxyScheme::Http => http_connect(io, proxy, host, port).await,
        ProxyScheme::Socks5 | ProxyScheme::Socks5h => socks5_connect(io, proxy, host, port).await,
    }
}

/// `CONNECT host:port` with optional Basic proxy authentication.
async fn http_connect<S>(io: &mut S, proxy: &Proxy, host: &str, port: u16) -> Result<(), ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((user, pass)) = &proxy.auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        request.push_str("Proxy-Authorization: Basic ");
        request.push_str(&token);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    io.write_all(request.as_bytes()).await?;
    io.flush().await?;

    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(ProxyError::BadReply(
                "the proxy closed the connection before answering CONNECT",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut reply = httparse::Response::new(&mut headers);
        match reply.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let code = reply.code.unwrap_or(0);
                let status = http::StatusCode::from_u16(code)
                    .map_err(|_| ProxyError::BadReply("invalid status code"))?;
                return if status.is_success() {
                    if len == buf.len() {
                        Ok(())
                    } else {
                        // The target has not been sent anything yet, so a
                        // well-behaved tunnel has nothing to say.
                        Err(ProxyError::BadReply("data after the CONNECT reply"))
                    }
                } else if status == http::StatusCode::PROXY_AUTHENTICATION_REQUIRED
                    || status == http::StatusCode::UNAUTHORIZED
                {
                    // 407 per RFC 9110; tinyproxy says 401 for wrong
                    // credentials. A CONNECT reaches no origin server, so
                    // either is the proxy's.
                    Err(if proxy.auth.is_some() {
                        ProxyError::AuthFailed
                    } else {
                        ProxyError::AuthRequired
                    })
                } else {
                    Err(ProxyError::Refused { status })
                };
            }
            Ok(httparse::Status::Partial) if buf.len() <= MAX_CONNECT_REPLY => {}
            Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                return Err(ProxyError::BadReply("CONNECT reply head too large"));
            }
            Err(_) => return Err(ProxyError::BadReply("not an HTTP reply to CONNECT")),
        }
    }
}

const SOCKS_VERSION: u8 = 5;
const NO_AUTH: u8 = 0x00;
const USER_PASS: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xff;

/// SOCKS5 `CONNECT` (RFC 1928), with user/password authentication (RFC
/// 1929) when the proxy URL has credentials.
async fn socks5_connect<S>(
    io: &mut S,
    proxy: &Proxy,
    host: &str,
    port: u16,
) -> Result<(), ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Method selection.
    let greeting: &[u8] = if proxy.auth.is_some() {
        &[SOCKS_VERSION, 2, NO_AUTH, USER_PASS]
    } else {
        &[SOCKS_VERSION, 1, NO_AUTH]
    };
    io.write_all(greeting).await?;
    io.flush().await?;
    let mut choice = [0u8; 2];
    read_exact(io, &mut choice).await?;
    if choice[0] != SOCKS_VERSION {
        return Err(ProxyError::BadReply("not a SOCKS5 proxy"));
    }
    match (choice[1], &proxy.auth) {
        (NO_AUTH, _) => {}
        (USER_PASS, Some((user, pass))) => {
            let mut msg = Vec::with_capacity(3 + user.len() + pass.len());
            msg.push(1);
            msg.push(user.len() as u8);
            msg.extend_from_slice(user.as_bytes());
            msg.push(pass.len() as u8);
            msg.extend_from_slice(pass.as_bytes());
            io.write_all(&msg).await?;
            io.flush().await?;
            let mut status = [0u8; 2];
            read_exact(io, &mut status).await?;
            if status[0] != 1 {
                return Err(ProxyError::BadReply(
                    "bad user/password negotiation version",
                ));
            }
            if status[1] != 0 {
                return Err(ProxyError::AuthFailed);
            }
        }
        (NO_ACCEPTABLE, None) => return Err(ProxyError::AuthRequired),
        (NO_ACCEPTABLE, Some(_)) => return Err(ProxyError::AuthFailed),
        _ => {
            return Err(ProxyError::BadReply(
                "the proxy chose a method that was not offered",
            ));
        }
    }

    // The request.
    let mut req = vec![SOCKS_VERSION, 1, 0];
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => {
            req.push(1);
            req.extend_from_slice(&a.octets());
        }
        Ok(IpAddr::V6(a)) => {
            req.push(4);
            req.extend_from_slice(&a.octets());
        }
        Err(_) => {
            let len =
                u8::try_from(host.len()).map_err(|_| ProxyError::HostTooLong(host.to_owned()))?;
            req.push(3);
            req.push(len);
            req.extend_from_slice(host.as_bytes());
        }
    }
    req.extend_from_slice(&port.to_be_bytes());
    io.write_all(&req).await?;
    io.flush().await?;

    // The reply: VER REP RSV ATYP BND.ADDR BND.PORT.
    let mut head = [0u8; 4];
    read_exact(io, &mut head).await?;
    if head[0] != SOCKS_VERSION {
        return Err(ProxyError::BadReply("bad SOCKS version in the reply"));
    }
    if head[1] != 0 {
        return Err(ProxyError::Socks { code: head[1] });
    }
    let addr_len = match head[3] {
        1 => 4,
        4 => 16,
        3 => {
            let mut len = [0u8; 1];
            read_exact(io, &mut len).await?;
            usize::from(len[0])
        }
        _ => return Err(ProxyError::BadReply("unknown address type in the reply")),
    };
    let mut rest = vec![0u8; addr_len + 2];
    read_exact(io, &mut rest).await?;
    Ok(())
}

async fn read_exact<S: AsyncRead + Unpin>(io: &mut S, buf: &mut [u8]) -> Result<(), ProxyError> {
    match io.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ProxyError::BadReply(
            "the proxy closed the connection in the middle of its reply",
        )),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proxy_urls() {
        let p = Proxy::parse("http://us%40er:p%3Ass@proxy.local:3128").unwrap();
        assert_eq!(p.scheme, ProxyScheme::Http);
        assert_eq!((p.host.as_str(), p.port), ("proxy.local", 3128));
        assert_eq!(p.auth, Some(("us@er".into(), "p:ss".into())));
        assert_eq!(p.to_string(), "http://us@er:***@proxy.local:3128");
        assert!(!format!("{p:?}").contains("p:ss"));

        let p = Proxy::parse("proxy.local:8080").unwrap();
        assert_eq!((p.scheme, p.port, p.auth), (ProxyScheme::Http, 8080, None));
        assert_eq!(Proxy::parse("http://h").unwrap().port, 80);
        let p = Proxy::parse("socks5://[::1]").unwrap();
        assert_eq!(
            (p.scheme, p.host.as_str(), p.port),
            (ProxyScheme::Socks5, "::1", 1080)
        );
        assert_eq!(
            Proxy::parse("SOCKS5H://u@h:1").unwrap().scheme,
            ProxyScheme::Socks5h
        );
        assert_eq!(
            Proxy::parse("socks5h://u@h:1").unwrap().auth,
            Some(("u".into(), String::new()))
        );
        assert!(
            matches!(Proxy::parse("https://h"), Err(ProxyError::UnsupportedScheme(s)) if s == "https")
        );
        assert!(matches!(
            Proxy::parse("socks4://h"),
            Err(ProxyError::UnsupportedScheme(_))
        ));
        let err = Proxy::parse("http://user:secret@").unwrap_err();
        assert!(matches!(err, ProxyError::InvalidUrl { .. }), "{err:?}");
        assert!(!err.to_string().contains("secret"), "{err}");
        let long = "x".repeat(256);
        assert!(Proxy::parse(&format!("socks5://{long}:p@h")).is_err());
        assert!(Proxy::parse(&format!("http://{long}:p@h")).is_ok());
    }

    #[test]
    fn debug_hides_the_password() {
        let c = ProxyConfig::Url("socks5h://user:hunter2@h:1/".into());
        let text = format!("{c:?}");
        assert!(
            !text.contains("hunter2") && text.contains("user:***@h:1"),
            "{text}"
        );
        assert_eq!(redact("http://h:1"), "http://h:1");
        assert_eq!(redact("h:1"), "h:1");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
        assert_eq!(percent_decode("%"), "%");
    }

    #[test]
    fn no_proxy_rules() {
        let m = no_proxy_matches;
        assert!(m("*", "anything", 1));
        assert!(m("example.com", "example.com", 80));
        assert!(m("example.com", "WWW.Example.COM", 80));
        assert!(m(".example.com", "a.example.com", 80));
        assert!(m("*.example.com", "a.b.example.com", 80));
        assert!(m(".example.com", "example.com", 80));
        assert!(!m("example.com", "badexample.com", 80));
        assert!(!m("example.com", "example.com.evil", 80));
        assert!(m("foo, example.com:8080", "example.com", 8080));
        assert!(!m("example.com:8080", "example.com", 443));
        assert!(m("127.0.0.1", "127.0.0.1", 1));
        assert!(!m("127.0.0.1", "127.0.0.2", 1));
        assert!(m("::1", "::1", 1));
        assert!(m("[::1]:9", "::1", 9));
        assert!(!m("[::1]:9", "::1", 10));
        assert!(m("10.0.0.0/8", "10.1.2.3", 1));
        assert!(!m("10.0.0.0/8", "11.1.2.3", 1));
        assert!(m("fd00::/8", "fd12::1", 1));
        assert!(m("0.0.0.0/0", "1.2.3.4", 1));
        assert!(!m("10.0.0.0/8", "ten.example", 1));
        assert!(!m("", "example.com", 1));
        assert!(!m(" , ", "example.com", 1));
    }

    #[test]
    fn env_selection() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let host = |p: Option<Proxy>| p.map(|p| p.host);
        let env = vars(&[
            ("HTTPS_PROXY", "http://secure:1"),
            ("HTTP_PROXY", "http://plain:1"),
            ("ALL_PROXY", "socks5h://all:1"),
            ("NO_PROXY", "internal.example,127.0.0.1"),
        ]);
        assert_eq!(
            host(from_vars(env, true, "h", 443).unwrap()).as_deref(),
            Some("secure")
        );
        assert_eq!(
            host(from_vars(env, false, "h", 80).unwrap()).as_deref(),
            Some("plain")
        );
        assert_eq!(
            from_vars(env, true, "a.internal.example", 443).unwrap(),
            None
        );
        assert_eq!(from_vars(env, false, "127.0.0.1", 80).unwrap(), None);

        let env = vars(&[("ALL_PROXY", "socks5h://all:1"), ("HTTPS_PROXY", "")]);
        assert_eq!(
            host(from_vars(env, true, "h", 443).unwrap()).as_deref(),
            Some("all")
        );
        assert_eq!(
            host(from_vars(env, false, "h", 80).unwrap()).as_deref(),
            Some("all")
        );

        let env = vars(&[
            ("https_proxy", "http://lower:1"),
            ("HTTPS_PROXY", "http://upper:1"),
        ]);
        assert_eq!(
            host(from_vars(env, true, "h", 443).unwrap()).as_deref(),
            Some("lower")
        );
        assert_eq!(from_vars(env, false, "h", 80).unwrap(), None);

        let env = vars(&[("all_proxy", "http://p:1"), ("no_proxy", "*")]);
        assert_eq!(from_vars(env, true, "h", 443).unwrap(), None);

        let env = vars(&[("http_proxy", "ftp://p")]);
        assert!(from_vars(env, false, "h", 80).is_err());
        assert_eq!(from_vars(|_| None, true, "h", 443).unwrap(), None);
    }

    /// Runs `tunnel` against a scripted proxy: `script` gets the proxy side.
    async fn run<F, Fut>(proxy: &str, host: &str, script: F) -> Result<(), ProxyError>
    where
        F: FnOnce(tokio::io::DuplexStream) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (mut client, server) = tokio::io::duplex(4096);
        let task = tokio::spawn(script(server));
        let proxy = Proxy::parse(proxy).unwrap();
        let res = tunnel(&mut client, &proxy, host, 443).await;
        drop(client);
        task.await.unwrap();
        res
    }

    async fn read_head(s: &mut tokio::io::DuplexStream) -> String {
        let mut buf = Vec::new();
        let mut b = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).await.unwrap();
            buf.push(b[0]);
        }
        String::from_utf8(buf).unwrap()
    }

    #[tokio::test]
    async fn http_connect_exchange() {
        let res = run("http://u:p@proxy:1", "example.com", |mut s| async move {
            let head = read_head(&mut s).await;
            assert!(
                head.starts_with("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n")
            );
            assert!(
                head.contains("Proxy-Authorization: Basic dTpw\r\n"),
                "{head}"
            );
            s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
                .unwrap();
        })
        .await;
        assert!(res.is_ok(), "{res:?}");

        let res = run("http://proxy:1", "::1", |mut s| async move {
            let head = read_head(&mut s).await;
            assert!(head.starts_with("CONNECT [::1]:443 HTTP/1.1\r\n"), "{head}");
            assert!(!head.contains("Proxy-Authorization"));
            s.write_all(b"HTTP/1.1 407 Auth\r\nProxy-Authenticate: Basic\r\n\r\n")
                .await
                .unwrap();
        })
        .await;
        assert!(matches!(res, Err(ProxyError::AuthRequired)), "{res:?}");

        let res = run("http://u:p@proxy:1", "h", |mut s| async move {
            read_head(&mut s).await;
            s.write_all(b"HTTP/1.1 407 Auth\r\n\r\n").await.unwrap();
        })
        .await;
        assert!(matches!(res, Err(ProxyError::AuthFailed)), "{res:?}");

        // tinyproxy's answer to wrong credentials.
        let res = run("http://u:p@proxy:1", "h", |mut s| async move {
            read_head(&mut s).await;
            s.write_all(b"HTTP/1.0 401 Unauthorized\r\n\r\n")
                .await
                .unwrap();
        })
        .await;
        assert!(matches!(res, Err(ProxyError::AuthFailed)), "{res:?}");

        let res = run("http://proxy:1", "h", |mut s| async move {
            read_head(&mut s).await;
            s.write_all(b"HTTP/1.0 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
                .await
                .unwrap();
        })
        .await;
        assert!(
            matches!(res, Err(ProxyError::Refused { status }) if status == 403),
            "{res:?}"
        );

        let res = run("http://proxy:1", "h", |mut s| async move {
            read_head(&mut s).await;
            s.write_all(b"SSH-2.0-OpenSSH\r\n\r\n").await.unwrap();
        })
        .await;
        assert!(matches!(res, Err(ProxyError::BadReply(_))), "{res:?}");

        let res = run("http://proxy:1", "h", |mut s| async move {
            read_head(&mut s).await;
        })
        .await;
        assert!(matches!(res, Err(ProxyError::BadReply(_))), "{res:?}");
    }

    #[tokio::test]
    async fn socks5_exchange() {
        // Domain name, user/password.
        let res = run(
            "socks5h://user:pw@proxy:1",
            "example.com",
            |mut s| async move {
                let mut b = [0u8; 4];
                s.read_exact(&mut b).await.unwrap();
                assert_eq!(b, [5, 2, 0, 2]);
                s.write_all(&[5, 2]).await.unwrap();
                let mut b = [0u8; 1 + 1 + 4 + 1 + 2];
                s.read_exact(&mut b).await.unwrap();
                assert_eq!(&b, b"\x01\x04user\x02pw");
                s.write_all(&[1, 0]).await.unwrap();
                let mut b = [0u8; 4 + 1 + 11 + 2];
                s.read_exact(&mut b).await.unwrap();
                assert_eq!(&b, b"\x05\x01\x00\x03\x0bexample.com\x01\xbb");
                s.write_all(&[5, 0, 0, 3, 2, b'o', b'k', 0, 1])
                    .await
                    .unwrap();
            },
        )
        .await;
        assert!(res.is_ok(), "{res:?}");

        // IPv6 address, no auth.
        let res = run("socks5://proxy:1", "::1", |mut s| async move {
            let mut b = [0u8; 3];
            s.read_exact(&mut b).await.unwrap();
            assert_eq!(b, [5, 1, 0]);
            s.write_all(&[5, 0]).await.unwrap();
            let mut b = [0u8; 4 + 16 + 2];
            s.read_exact(&mut b).await.unwrap();
            assert_eq!(b[..4], [5, 1, 0, 4]);
            assert_eq!(b[19], 1);
            s.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await.unwrap();
        })
        .await;
        assert!(matches!(res, Err(ProxyError::Socks { code: 5 })), "{res:?}");
        assert!(
            ProxyError::Socks { code: 5 }
                .to_string()
                .contains("connection refused")
        );

        let res = run("socks5://proxy:1", "1.2.3.4", |mut s| async move {
            let mut b = [0u8; 3];
            s.read_exact(&mut b).await.unwrap();
            s.write_all(&[5, 0xff]).await.unwrap();
        })
        .await;
        assert!(matches!(res, Err(ProxyError::AuthRequired)), "{res:?}");

        let res = run("socks5://u:bad@proxy:1", "1.2.3.4", |mut s| async move {
            let mut b = [0u8; 4];
            s.read_exact(&mut b).await.unwrap();
            s.write_all(&[5, 2]).await.unwrap();
            let mut b = [0u8; 7];
            s.read_exact(&mut b).await.unwrap();
            s.write_all(&[1, 1]).await.unwrap();
        })
        .await;
        assert!(matches!(res, Err(ProxyError::AuthFailed)), "{res:?}");

        let res = run("socks5://proxy:1", "h", |mut s| async move {
            let mut b = [0u8; 3];
            s.read_exact(&mut b).await.unwrap();
            s.write_all(b"HTTP/1.1 400 Bad\r\n\r\n").await.unwrap();
        })
        .await;
        assert!(matches!(res, Err(ProxyError::BadReply(_))), "{res:?}");

        let long = "a".repeat(300);
        let res = run("socks5h://proxy:1", &long, |mut s| async move {
            let mut b = [0u8; 3];
            s.read_exact(&mut b).await.unwrap();
            s.write_all(&[5, 0]).await.unwrap();
        })
        .await;
        assert!(matches!(res, Err(ProxyError::HostTooLong(_))), "{res:?}");
    }
}
