//! The client's side of the opening handshake: the request it writes and
//! the checks on the response it reads.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::response::{MAX_HEADERS, Parsed};
use super::{ACCEPT_LEN, HandshakeError, Response, accept_key_into, has_token};
use crate::proto::deflate::{self, DeflateConfig, Negotiated};

/// Where the request goes: the parts of a `ws://` or `wss://` URL that the
/// handshake needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host name or address (IPv6 without brackets).
    pub host: String,
    /// The port.
    pub port: u16,
    /// True for `wss://`.
    pub tls: bool,
    /// The path and query (`/` when the URL has no path).
    pub resource: String,
}

/// The URL is not a usable WebSocket URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The text does not parse as a URL.
    #[error("invalid URL: {0}")]
    Parse(#[from] url::ParseError),
    /// The scheme is not `ws`, `wss` (or `http`/`https`, taken as ws/wss).
    #[error("unsupported URL scheme {0:?}: use ws:// or wss://")]
    Scheme(String),
    /// The URL has no host.
    #[error("URL has no host")]
    NoHost,
    /// The URL has a fragment, which RFC 6455 forbids.
    #[error("URL has a fragment (#...), which WebSocket URLs may not have")]
    Fragment,
}

impl Target {
    /// The target of a `ws://` or `wss://` URL.
    ///
    /// # Errors
    /// [`UrlError`] for another scheme, a missing host or a fragment.
    pub fn from_url(url: &url::Url) -> Result<Target, UrlError> {
        let tls = match url.scheme() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            other => return Err(UrlError::Scheme(other.to_owned())),
        };
        if url.fragment().is_some() {
            return Err(UrlError::Fragment);
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(UrlError::NoHost),
        };
        let port = url.port().unwrap_or(if tls { 443 } else { 80 });
        let mut resource = url.path().to_owned();
        if resource.is_empty() {
            resource.push('/');
        }
        if let Some(q) = url.query() {
            resource.push('?');
            resource.push_str(q);
        }
        Ok(Target {
            host,
            port,
            tls,
            resource,
        })
    }

    /// The target of a URL in the plain form most URLs have
    /// (`ws[s]://host[:port][/path][?query]`, a lower-case ASCII host name
    /// or a dotted IPv4 address, no credentials, no dot segments, nothing
    /// to escape), read without the full WHATWG parser; `None` for anything
    /// else, left to [`Target::from_url`]. It accepts only input that the
    /// `url` crate keeps as it is, so both give the same target (a property
    /// test compares them).
    #[must_use]
    pub fn from_plain(url: &str) -> Option<Target> {
        let (tls, host, port, resource) = plain_parts(url)?;
        let resource = if resource.is_empty() || resource.starts_with('?') {
            let mut r = String::with_capacity(resource.len() + 1);
            r.push('/');
            r.push_str(resource);
            r
        } else {
            resource.to_owned()
        };
        Some(Target {
            host: host.to_owned(),
            port,
            tls,
            resource,
        })
    }

    /// Whether [`Target::parse`] accepts `url`, without building the
    /// target (a plain URL is checked without allocating).
    ///
    /// # Errors
    /// As [`Target::parse`].
    pub(crate) fn check(url: &str) -> Result<(), UrlError> {
        match plain_parts(url) {
            Some(_) => Ok(()),
            None => Target::from_url(&url::Url::parse(url)?).map(drop),
        }
    }

    /// The target of a `ws://` or `wss://` URL given as text: the plain
    /// form directly ([`Target::from_plain`]), any other through the
    /// WHATWG parser.
    ///
    /// # Errors
    /// [`UrlError`] for an unparsable URL, another scheme, a missing host or
    /// a fragment.
    pub fn parse(url: &str) -> Result<Target, UrlError> {
        match Target::from_plain(url) {
            Some(t) => Ok(t),
            None => Target::from_url(&url::Url::parse(url)?),
        }
    }

    /// The `Host` header value: the host (IPv6 in brackets), with the port
    /// when it is not the scheme's default.
    #[must_use]
    pub fn host_header(&self) -> String {
        let mut out = Vec::with_capacity(self.host.len() + 8);
        self.write_host_header(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Appends [`Target::host_header`] to `out`.
    fn write_host_header(&self, out: &mut Vec<u8>) {
        let ipv6 = self.host.contains(':');
        if ipv6 {
            out.push(b'[');
        }
        out.extend_from_slice(self.host.as_bytes());
        if ipv6 {
            out.push(b']');
        }
        let default = if self.tls { 443 } else { 80 };
        if self.port != default {
            out.push(b':');
            let mut digits = [0u8; 5];
            let mut n = self.port;
            let mut i = digits.len();
            loop {
                i -= 1;
                digits[i] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            out.extend_from_slice(&digits[i..]);
        }
    }
}

/// A port of 1 to 5 digits.
fn plain_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

/// The parts of a plain `ws://`/`wss://` URL ([`Target::from_plain`]):
/// TLS, host, port and resource (as written: empty or starting with `?`
/// when the URL has no path).
fn plain_parts(url: &str) -> Option<(bool, &str, u16, &str)> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("ws://") {
        (false, r)
    } else {
        (true, url.strip_prefix("wss://")?)
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, resource) = rest.split_at(end);
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, plain_port(p)?),
        None => (authority, if tls { 443 } else { 80 }),
    };
    (plain_host(host) && plain_resource(resource)).then_some((tls, host, port, resource))
}

/// A host the WHATWG parser keeps as it is: lower-case ASCII labels of
/// letters, digits and inner hyphens (no `xn--` or other `??--` label,
/// which IDNA would look into), or four canonical decimal IPv4 parts (a
/// host whose last label is a number is parsed as IPv4, shorthand and
/// octal included).
fn plain_host(host: &str) -> bool {
    let host = host.as_bytes();
    let last = host.rsplit(|&b| b == b'.').next().unwrap_or_default();
    if !last.is_empty() && last.iter().all(u8::is_ascii_digit) {
        return host.split(|&b| b == b'.').count() == 4
            && host.split(|&b| b == b'.').all(|p| match p {
                [b'0'..=b'9'] | [b'1'..=b'9', b'0'..=b'9'] => true,
                [b'1', _, _] | [b'2', b'0'..=b'4', _] | [b'2', b'5', b'0'..=b'5'] => {
                    p.iter().all(u8::is_ascii_digit)
                }
                _ => false,
            });
    }
    if last.starts_with(b"0x") {
        return false;
    }
    host.split(|&b| b == b'.').all(|label| {
        !label.is_empty()
            && label
                .iter()
                .all(|&b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
            && label.first() != Some(&b'-')
            && label.last() != Some(&b'-')
            && label.get(2..4) != Some(b"--")
    })
}

/// A path and query with nothing the WHATWG parser would escape or
/// rewrite: no dot segments (`%2e` counts as a dot), only characters
/// that stay as they are.
fn plain_resource(resource: &str) -> bool {
    let plain = resource.bytes().all(|b| {
        matches!(b,
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
            | b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'(' | b')' | b'*' | b'+'
            | b',' | b';' | b'=' | b':' | b'@' | b'/' | b'?' | b'%')
    });
    let path = resource.split('?').next().unwrap_or_default();
    plain
        && (!path.bytes().any(|b| b == b'.' || b == b'%')
            || path.split('/').all(|segment| {
                ![".", "..", "%2e", ".%2e", "%2e.", "%2e%2e"]
                    .iter()
                    .any(|dots| segment.eq_ignore_ascii_case(dots))
            }))
}

/// What the client asks for in its upgrade request.
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// Extra headers (cookies, tokens, `Origin`, `Authorization`...).
    pub headers: HeaderMap,
    /// Subprotocols offered in `Sec-WebSocket-Protocol`, in preference order.
    pub protocols: Vec<String>,
    /// The `Sec-WebSocket-Extensions` offer, if any.
    pub extensions: Option<String>,
    /// permessage-deflate offers (RFC 7692), in preference order; empty for
    /// none. Written before [`RequestOptions::extensions`], and the server's
    /// answer is checked against them.
    pub deflate: Vec<DeflateConfig>,
}

/// Headers the handshake itself writes; user values for them are ignored
/// (`Host` excepted: a user's `Host` replaces the derived one).
const OWN_HEADERS: [HeaderName; 5] = [
    header::UPGRADE,
    header::CONNECTION,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_EXTENSIONS,
];

/// The `Sec-WebSocket-Extensions` offer of `opts`: the permessage-deflate
/// offers, then the raw extensions; `None` for none.
#[must_use]
pub fn extensions_offer(opts: &RequestOptions) -> Option<String> {
    let offers = (!opts.deflate.is_empty()).then(|| deflate::offer(&opts.deflate));
    match (offers, &opts.extensions) {
        (Some(d), Some(ext)) => Some(format!("{d}, {ext}")),
        (Some(d), None) => Some(d),
        (None, ext) => ext.clone(),
    }
}

/// Writes the upgrade request for `target` with `key`.
#[must_use]
pub fn write_request(target: &Target, key: &str, opts: &RequestOptions) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(target.resource.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !opts.headers.contains_key(header::HOST) {
        out.extend_from_slice(b"Host: ");
        target.write_host_header(&mut out);
        out.extend_from_slice(b"\r\n");
    }
    put(&mut out, "Upgrade", b"websocket");
    put(&mut out, "Connection", b"Upgrade");
    put(&mut out, "Sec-WebSocket-Key", key.as_bytes());
    put(&mut out, "Sec-WebSocket-Version", b"13");
    if !opts.protocols.is_empty() && !opts.headers.contains_key(header::SEC_WEBSOCKET_PROTOCOL) {
        put(
            &mut out,
            "Sec-WebSocket-Protocol",
            opts.protocols.join(", ").as_bytes(),
        );
    }
    if let Some(ext) = &extensions_offer(opts) {
        put(&mut out, "Sec-WebSocket-Extensions", ext.as_bytes());
    }
    for (name, value) in &opts.headers {
        if OWN_HEADERS.contains(name) {
            continue;
        }
        put(&mut out, name.as_str(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn put(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Parses a header name and value given by the user, refusing CR, LF and
/// other bytes HTTP does not allow.
///
/// # Errors
/// [`HandshakeError::InvalidHeader`].
pub fn parse_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), HandshakeError> {
    let invalid = || HandshakeError::InvalidHeader {
        name: name.to_owned(),
    };
    let n = HeaderName::try_from(name).map_err(|_| invalid())?;
    let v = HeaderValue::try_from(value).map_err(|_| invalid())?;
    Ok((n, v))
}

/// Parses the response head at the start of `buf`. When it is complete,
/// splits it off `buf` (what is left belongs to the WebSocket stream) and
/// returns it; `Ok(None)` when more bytes are needed.
///
/// # Errors
/// [`HandshakeError::ResponseTooLarge`] once `buf` passes `max` bytes
/// without a complete head (or the head has over 64 header lines);
/// [`HandshakeError::Malformed`].
pub fn parse_response(buf: &mut BytesMut, max: usize) -> Result<Option<Response>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let parsed = resp.parse(buf);
    let Some(len) = super::head_len(parsed, buf.len(), max)? else {
        return Ok(None);
    };
    // Indexed now, while the parser's view is at hand: the head is not
    // parsed a second time.
    let index = Parsed::of(&resp, buf)?;
    Ok(Some(index.with_raw(buf.split_to(len).freeze())))
}

/// What the server accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    /// The subprotocol the server selected (one of those offered).
    pub protocol: Option<String>,
    /// The server's `Sec-WebSocket-Extensions`, if any; the caller checks it
    /// against its offer (permessage-deflate is checked already).
    pub extensions: Option<String>,
    /// permessage-deflate, when offered and accepted: the agreed parameters
    /// and the configuration whose offer the server took.
    pub deflate: Option<Negotiated>,
}

/// Checks a `101` response against the request: `Upgrade`, `Connection`,
/// `Sec-WebSocket-Accept`, the subprotocol (must be one offered), the
/// extensions (none unless offered; with permessage-deflate offers, exactly
/// a permessage-deflate answer that matches one of them).
///
/// # Errors
/// The [`HandshakeError`] naming the first check that failed, without the
/// response (`response: None`); a caller holding the raw head attaches it
/// with [`HandshakeError::with_response`], as
/// [`ConnectOptions::connect`](crate::ConnectOptions::connect) does.
pub fn check_response(
    resp: &Response,
    key: &str,
    opts: &RequestOptions,
) -> Result<Accepted, HandshakeError> {
    if !resp
        .header("upgrade")
        .is_some_and(|v| has_token(v, b"websocket"))
    {
        return Err(HandshakeError::MissingUpgrade { response: None });
    }
    if !resp
        .header_all("connection")
        .any(|v| has_token(v, b"upgrade"))
    {
        return Err(HandshakeError::MissingConnection { response: None });
    }
    let mut expected = [0u8; ACCEPT_LEN];
    if resp.header("sec-websocket-accept") != Some(accept_key_into(key.as_bytes(), &mut expected)) {
        return Err(HandshakeError::BadAccept { response: None });
    }
    check_negotiation(resp, opts)
}

/// The checks of [`check_response`] that do not depend on the HTTP
/// version (also those of a WebSocket over HTTP/2, RFC 8441): the
/// subprotocol (must be one offered) and the extensions (none unless
/// offered; with permessage-deflate offers, exactly a permessage-deflate
/// answer that matches one of them).
///
/// # Errors
/// As [`check_response`].
pub fn check_negotiation(
    resp: &Response,
    opts: &RequestOptions,
) -> Result<Accepted, HandshakeError> {
    let protocol = match resp.header("sec-websocket-protocol") {
        None => None,
        Some(v) => {
            let p = String::from_utf8_lossy(v).trim().to_owned();
            let offered = opts.protocols.contains(&p)
                || opts
                    .headers
                    .get_all(header::SEC_WEBSOCKET_PROTOCOL)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .any(|o| o.trim() == p);
            if !offered {
                return Err(HandshakeError::UnofferedProtocol {
                    protocol: p,
                    response: None,
                });
            }
            Some(p)
        }
    };
    let extensions: Vec<String> = resp
        .header_all("sec-websocket-extensions")
        .map(|v| String::from_utf8_lossy(v).trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    let extensions = (!extensions.is_empty()).then(|| extensions.join(", "));
    let mut negotiated = None;
    if let Some(ext) = &extensions {
        if !opts.deflate.is_empty() {
            match deflate::negotiate_client(&opts.deflate, ext) {
                Ok(n) => negotiated = Some(n),
                Err(e) => {
                    tracing::debug!(response = %ext, error = %e, "permessage-deflate answer refused");
                    return Err(HandshakeError::UnsupportedExtension {
                        extension: ext.clone(),
                        response: None,
                    });
                }
            }
        } else if opts.extensions.is_none() {
            return Err(HandshakeError::UnsupportedExtension {
                extension: ext.clone(),
                response: None,
            });
        }
    }
    Ok(Accepted {
        protocol,
        extensions,
        deflate: negotiated,
    })
}

/// Builds the [`super::Rejected`] error for a non-101 response whose body
/// start is `body`.
#[must_use]
pub fn rejected(resp: Response, body: Bytes) -> HandshakeError {
    HandshakeError::Rejected(Box::new(super::Rejected::new(resp, body)))
}

/// How many body bytes of a refusal are kept.
pub const REJECTED_BODY_MAX: usize = 1024;

/// How many body bytes to read after a refusal's head: `Content-Length`
/// capped at [`REJECTED_BODY_MAX`], or the cap when the length is unknown.
#[must_use]
pub fn rejected_body_len(resp: &Response) -> usize {
    resp.header("content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(REJECTED_BODY_MAX, |n| n.min(REJECTED_BODY_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        Target::from_url(&url::Url::parse(url).unwrap()).unwrap()
    }

    #[test]
    fn plain_urls_are_read_without_the_full_parser() {
        let plain = |u: &str| Target::from_plain(u);
        let t = plain("ws://127.0.0.1:9001/feed?x=1&y=%41").expect("plain");
        assert_eq!(t, target("ws://127.0.0.1:9001/feed?x=1&y=%41"));
        assert_eq!(t.resource, "/feed?x=1&y=%41");
        assert_eq!(
            plain("wss://example.com"),
            Some(target("wss://example.com/"))
        );
        assert_eq!(plain("ws://h?q").map(|t| t.resource), Some("/?q".into()));
        assert_eq!(plain("ws://h:80/").map(|t| t.port), Some(80));
        assert_eq!(plain("wss://h:0443/").map(|t| t.port), Some(443));
        // Left to the WHATWG parser: anything it would rewrite or check.
        for u in [
            "WS://h/",
            "ws://H/",
            "ws://user:pw@h/",
            "ws://127.1/",
            "ws://127.0.0.01/",
            "ws://0x7f.0.0.1/",
            "ws://a.0x10/",
            "ws://xn--nxasmq6b/",
            "ws://[::1]/",
            "ws://h/a/../b",
            "ws://h/%2E/",
            "ws://h/a b",
            "ws://h/#f",
            "ws://h/\\x",
            "ws://h:/",
            "ws://h:65536/",
            "ws://h./",
            "ws://-h/",
            " ws://h/",
            "ws://h/'",
            "ws://é/",
            "http://h/",
        ] {
            assert_eq!(plain(u), None, "{u}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        /// Whatever the plain reader accepts, the WHATWG parser reads the
        /// same way.
        #[test]
        fn the_plain_reader_agrees_with_the_whatwg_parser(
            scheme in proptest::sample::select(vec!["ws://", "wss://", ""]),
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "ws://", "wss://", "a", "b", "z", "A", "0", "1", "9", "00", "127", "255", "256",
                "0x", "x", "xn--", "-", "--", ".", "..", ":", "80", "443", "65535", "99999",
                "/", "/.", "/..", "/%2e", "?", "#", "%", "%2e", "%2E", "%41", "@", "'", "\"", " ", "\t", "\\",
                "é", "[", "]", "::1", "~", "!", "$", "&", "=", "+", ",", ";", "*", "(", ")",
            ]), 1..14)
        ) {
            let s = format!("{scheme}{}", parts.concat());
            // The allocation-free check agrees with the parse.
            proptest::prop_assert_eq!(
                Target::check(&s).map_err(|e| e.to_string()),
                Target::parse(&s).map(drop).map_err(|e| e.to_string()),
                "{}", s
            );
            if let Some(t) = Target::from_plain(&s) {
                let parsed = url::Url::parse(&s).map_err(|e| e.to_string());
                proptest::prop_assert!(parsed.is_ok(), "{s}: {parsed:?}");
                let whatwg = parsed.map(|u| Target::from_url(&u));
                proptest::prop_assert_eq!(Ok(Ok(t)), whatwg, "{}", s);
            }
        }
    }

    #[test]
    fn host_header_ports() {
        assert_eq!(target("ws://example.com/").host_header(), "example.com");
        assert_eq!(
            target("ws://example.com:8080/").host_header(),
            "example.com:8080"
        );
        assert_eq!(
            target("wss://example.com:443/").host_header(),
            "example.com"
        );
        assert_eq!(
            target("wss://example.com:80/").host_header(),
            "example.com:80"
        );
        assert_eq!(target("ws://[::1]:9000/x").host_header(), "[::1]:9000");
        assert_eq!(target("ws://h:1/").host_header(), "h:1");
        assert_eq!(target("ws://h:65535/").host_header(), "h:65535");
        assert_eq!(target("wss://[::1]/").host_header(), "[::1]");
        assert_eq!(target("ws://h/a/b?c=d").resource, "/a/b?c=d");
        assert_eq!(target("ws://h").resource, "/");
    }

    #[test]
    fn url_errors() {
        let p = |u: &str| Target::from_url(&url::Url::parse(u).unwrap());
        assert!(matches!(p("ftp://h/"), Err(UrlError::Scheme(_))));
        assert!(matches!(p("ws://h/#frag"), Err(UrlError::Fragment)));
    }

    #[test]
    fn header_crlf_refused() {
        assert!(parse_header("X-A", "ok").is_ok());
        assert!(matches!(
            parse_header("X-A", "bad\r\nInjected: 1"),
            Err(HandshakeError::InvalidHeader { .. })
        ));
        assert!(matches!(
            parse_header("Bad Name", "v"),
            Err(HandshakeError::InvalidHeader { .. })
        ));
    }

    #[test]
    fn request_layout() {
        let mut opts = RequestOptions {
            protocols: vec!["chat".into(), "superchat".into()],
            ..RequestOptions::default()
        };
        let (n, v) = parse_header("Cookie", "a=b").unwrap();
        opts.headers.insert(n, v);
        let req = write_request(&target("ws://h:1234/p"), "KEY", &opts);
        let text = String::from_utf8(req).unwrap();
        assert!(text.starts_with("GET /p HTTP/1.1\r\nHost: h:1234\r\n"));
        assert!(text.contains("Sec-WebSocket-Protocol: chat, superchat\r\n"));
        assert!(text.contains("cookie: a=b\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    /// A 101 for the RFC's sample key, with `extra` header lines.
    fn response(extra: &str) -> Response {
        let raw = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n{extra}\r\n"
        );
        parse(raw.as_bytes(), 4096).unwrap().unwrap()
    }

    /// `parse_response` on a copy of `raw`.
    fn parse(raw: &[u8], max: usize) -> Result<Option<Response>, HandshakeError> {
        parse_response(&mut BytesMut::from(raw), max)
    }

    #[test]
    fn response_checks() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let opts = RequestOptions::default();
        assert!(check_response(&response(""), key, &opts).is_ok());
        // Header names in any case, tokens in lists and in any case.
        let raw = "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nCONNECTION: keep-alive, Upgrade\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        let r = parse(raw.as_bytes(), 4096).unwrap().unwrap();
        assert!(check_response(&r, key, &opts).is_ok());
        // An empty or missing accept value is refused like a wrong one.
        for accept in ["Sec-WebSocket-Accept: \r\n", ""] {
            let raw = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{accept}\r\n"
            );
            let r = parse(raw.as_bytes(), 4096).unwrap().unwrap();
            assert!(
                matches!(
                    check_response(&r, key, &opts),
                    Err(HandshakeError::BadAccept { response: None })
                ),
                "{accept:?}"
            );
        }
        for (drop, want) in [("Upgrade", "upgrade"), ("Connection", "connection")] {
            let raw = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
                .replace(&format!("{drop}: "), "X-Other: ");
            let r = parse(raw.as_bytes(), 4096).unwrap().unwrap();
            let e = check_response(&r, key, &opts).unwrap_err();
            assert!(
                matches!(
                    (&e, want),
                    (HandshakeError::MissingUpgrade { .. }, "upgrade")
                        | (HandshakeError::MissingConnection { .. }, "connection")
                ),
                "{drop}: {e:?}"
            );
        }
        assert!(matches!(
            check_response(&response(""), "other", &opts),
            Err(HandshakeError::BadAccept { response: None })
        ));
        assert!(matches!(
            check_response(&response("Sec-WebSocket-Protocol: x\r\n"), key, &opts),
            Err(HandshakeError::UnofferedProtocol { .. })
        ));
        assert!(matches!(
            check_response(
                &response("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
                key,
                &opts
            ),
            Err(HandshakeError::UnsupportedExtension { .. })
        ));
        let with_proto = RequestOptions {
            protocols: vec!["x".into()],
            ..RequestOptions::default()
        };
        let ok =
            check_response(&response("Sec-WebSocket-Protocol: x\r\n"), key, &with_proto).unwrap();
        assert_eq!(ok.protocol.as_deref(), Some("x"));
    }

    #[test]
    fn deflate_offer_and_answers() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let opts = RequestOptions {
            deflate: vec![
                DeflateConfig::default().server_no_context_takeover(true),
                DeflateConfig::default(),
            ],
            ..RequestOptions::default()
        };
        let req = String::from_utf8(write_request(&target("ws://h/"), key, &opts)).unwrap();
        assert!(req.contains(
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; server_no_context_takeover, permessage-deflate; client_max_window_bits\r\n"
        ));
        let ok = check_response(
            &response(
                "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
            ),
            key,
            &opts,
        )
        .unwrap();
        let n = ok.deflate.unwrap();
        assert!(n.params.server_no_context_takeover);
        assert!(n.config.server_no_context_takeover);
        let ok = check_response(
            &response("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=9\r\n"),
            key,
            &opts,
        )
        .unwrap();
        assert_eq!(ok.deflate.unwrap().params.client_max_window_bits, 9);
        assert!(
            check_response(&response(""), key, &opts)
                .unwrap()
                .deflate
                .is_none()
        );
        for bad in [
            "permessage-deflate; bogus",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate, permessage-deflate",
            "x-other",
        ] {
            assert!(
                matches!(
                    check_response(
                        &response(&format!("Sec-WebSocket-Extensions: {bad}\r\n")),
                        key,
                        &opts
                    ),
                    Err(HandshakeError::UnsupportedExtension { .. })
                ),
                "{bad}"
            );
        }
        // Two header lines are one list: two answers.
        assert!(matches!(
            check_response(
                &response(
                    "Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Extensions: permessage-deflate\r\n"
                ),
                key,
                &opts
            ),
            Err(HandshakeError::UnsupportedExtension { .. })
        ));
    }

    #[test]
    fn parse_incremental_and_limits() {
        let raw = b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n\r\nEXTRA";
        for cut in 0..raw.len() - 5 {
            assert!(parse(&raw[..cut], 1024).unwrap().is_none(), "cut {cut}");
        }
        let mut buf = BytesMut::from(&raw[..]);
        let r = parse_response(&mut buf, 1024).unwrap().unwrap();
        assert_eq!(&buf[..], b"EXTRA");
        assert_eq!(r.raw(), &raw[..raw.len() - 5]);
        assert_eq!(r.header("upgrade"), Some(&b"websocket"[..]));
        let big = vec![b'a'; 100];
        assert!(matches!(
            parse(&big, 50),
            Err(HandshakeError::Malformed(_)) | Err(HandshakeError::ResponseTooLarge { .. })
        ));
        let mut long = b"HTTP/1.1 101 OK\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', 100));
        assert!(matches!(
            parse(&long, 50),
            Err(HandshakeError::ResponseTooLarge { .. })
        ));
    }

    #[test]
    fn too_many_headers_refused() {
        let mut raw = b"HTTP/1.1 101 OK\r\n".to_vec();
        for i in 0..65 {
            raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        assert!(matches!(
            parse(&raw, 1 << 20),
            Err(HandshakeError::ResponseTooLarge { .. })
        ));
    }

    #[test]
    fn refusal_body_is_capped_at_1_kib() {
        let head = |len: &str| {
            let raw = format!("HTTP/1.1 403 Forbidden\r\nContent-Length: {len}\r\n\r\n");
            parse(raw.as_bytes(), 4096).unwrap().unwrap()
        };
        assert_eq!(rejected_body_len(&head("10")), 10);
        assert_eq!(rejected_body_len(&head("999999")), REJECTED_BODY_MAX);
        let no_len = parse(b"HTTP/1.1 500 X\r\n\r\n", 4096).unwrap().unwrap();
        assert_eq!(rejected_body_len(&no_len), REJECTED_BODY_MAX);
    }
}
