//! The server's handshake response as handed to the user.

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use bytes::Bytes;

use super::HandshakeError;

/// The most headers a response may carry.
pub(crate) const MAX_HEADERS: usize = 64;

/// Where one header line's name and value lie in the raw head.
#[derive(Debug, Clone, Copy)]
struct Field {
    name: (u32, u32),
    value: (u32, u32),
}

/// A response head as `httparse` read it: the status and where each header
/// line lies, as offsets from the start of the head, so that it outlives
/// the parser's borrow of the bytes.
pub(crate) struct Parsed {
    status: http::StatusCode,
    fields: Vec<Field>,
}

impl Parsed {
    /// Indexes `resp`, parsed from `base` (whose start is the head's).
    pub(crate) fn of(
        resp: &httparse::Response<'_, '_>,
        base: &[u8],
    ) -> Result<Self, HandshakeError> {
        let status = http::StatusCode::from_u16(resp.code.unwrap_or(0))
            .map_err(|_| HandshakeError::Malformed(httparse::Error::Status))?;
        let at = |s: &[u8]| {
            // Every slice `httparse` hands out lies within `base`, which a
            // response head limit keeps far below 4 GiB.
            let start = (s.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
            (
                u32::try_from(start).unwrap_or(u32::MAX),
                u32::try_from(start + s.len()).unwrap_or(u32::MAX),
            )
        };
        let fields = resp
            .headers
            .iter()
            .map(|h| Field {
                name: at(h.name.as_bytes()),
                value: at(h.value),
            })
            .collect();
        Ok(Parsed { status, fields })
    }

    /// The response, over `raw`: the head this was parsed from.
    pub(crate) fn with_raw(self, raw: Bytes) -> Response {
        Response {
            status: self.status,
            fields: self.fields,
            raw,
            body: Bytes::new(),
            http: OnceLock::new(),
        }
    }
}

/// The server's answer to the upgrade request, kept as the raw response
/// head the server sent (it prints exactly as received: the seed's
/// `echo $response`) with the status and an index of its header lines.
///
/// Read a header with [`Response::header`] / [`Response::header_all`], or
/// dereference it as an [`http::Response`] for `headers()` (a
/// [`http::HeaderMap`], built the first time it is asked for: a connection
/// whose user never looks at the response does not pay for one).
///
/// Handed over with every successful connection (a `101 Switching
/// Protocols`), and kept in every handshake error the server's answer
/// caused: a refusal (non-101 status, with the start of its body, see
/// [`Response::body_start`]) or a 101 that fails a check (bad
/// `Sec-WebSocket-Accept`, missing `Upgrade`, an unoffered subprotocol or
/// extension...). See [`crate::Error::response`].
#[derive(Clone)]
pub struct Response {
    status: http::StatusCode,
    raw: Bytes,
    fields: Vec<Field>,
    body: Bytes,
    http: OnceLock<http::Response<()>>,
}

impl Response {
    /// Parses a complete response head (status line, headers and the blank
    /// line, nothing after it).
    ///
    /// # Errors
    /// [`HandshakeError::Malformed`] for anything `httparse` refuses or a
    /// head that is not complete; [`HandshakeError::ResponseTooLarge`] (with
    /// `max` the head's length) past 64 headers.
    pub fn parse(raw: Bytes) -> Result<Self, HandshakeError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let parsed = resp.parse(&raw);
        if super::head_len(parsed, raw.len(), raw.len())? != Some(raw.len()) {
            // Incomplete, or bytes after the head.
            return Err(HandshakeError::Malformed(httparse::Error::Status));
        }
        Ok(Parsed::of(&resp, &raw)?.with_raw(raw))
    }

    /// A response that came as HTTP/2 headers (WebSockets over HTTP/2, RFC
    /// 8441): its raw head is written as an `HTTP/2 STATUS` line and one
    /// `name: value` line per header, so that it prints and reads as an
    /// HTTP/1.1 head does.
    #[cfg(feature = "http2")]
    pub(crate) fn from_http2(status: http::StatusCode, headers: &http::HeaderMap) -> Response {
        let mut raw = format!("HTTP/2 {}\r\n", status.as_u16()).into_bytes();
        let at = |raw: &Vec<u8>| u32::try_from(raw.len()).unwrap_or(u32::MAX);
        let mut fields = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let name_start = at(&raw);
            raw.extend_from_slice(name.as_str().as_bytes());
            let name_end = at(&raw);
            raw.extend_from_slice(b": ");
            let value_start = at(&raw);
            raw.extend_from_slice(value.as_bytes());
            fields.push(Field {
                name: (name_start, name_end),
                value: (value_start, at(&raw)),
            });
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"\r\n");
        Response {
            status,
            raw: Bytes::from(raw),
            fields,
            body: Bytes::new(),
            http: OnceLock::new(),
        }
    }

    /// The same response with `body` as the start of its body (what was
    /// read of a refusal's body, at most
    /// [`REJECTED_BODY_MAX`](crate::handshake::client::REJECTED_BODY_MAX)
    /// bytes).
    #[must_use]
    pub fn with_body_start(mut self, body: Bytes) -> Self {
        self.body = body;
        self
    }

    /// The start of the response's body: for a refusal, up to 1 KiB of
    /// it; empty for a `101` (whatever follows a 101 head is WebSocket
    /// data, not a body).
    #[must_use]
    pub fn body_start(&self) -> &[u8] {
        &self.body
    }

    /// The response head as the server sent it (status line and headers).
    #[must_use]
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> http::StatusCode {
        self.status
    }

    /// The value of the first header line named `name` (compared
    /// case-insensitively), as sent.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|f| self.slice(f.name).eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| self.slice(f.value))
    }

    /// The values of every header line named `name` (compared
    /// case-insensitively), in the order they were sent.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |f| self.slice(f.name).eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| self.slice(f.value))
    }

    /// The negotiated subprotocol, if the server chose one.
    #[must_use]
    pub fn subprotocol(&self) -> Option<&str> {
        std::str::from_utf8(self.header("sec-websocket-protocol")?)
            .ok()
            .map(str::trim)
    }

    /// The plain [`http::Response`].
    #[must_use]
    pub fn into_inner(mut self) -> http::Response<()> {
        match self.http.take() {
            Some(built) => built,
            None => self.to_http(),
        }
    }

    fn slice(&self, (start, end): (u32, u32)) -> &[u8] {
        self.raw
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    /// The response as an [`http::Response`]: status, version and every
    /// header line (`httparse` accepted each name and value, and it is at
    /// least as strict as `http`; a line `http` refused would be left
    /// out rather than fail).
    fn to_http(&self) -> http::Response<()> {
        let mut response = http::Response::new(());
        *response.status_mut() = self.status;
        *response.version_mut() = http::Version::HTTP_11;
        let headers = response.headers_mut();
        headers.reserve(self.fields.len());
        for f in &self.fields {
            let name = http::HeaderName::from_bytes(self.slice(f.name));
            let value = http::HeaderValue::from_maybe_shared(
                self.raw.slice(f.value.0 as usize..f.value.1 as usize),
            );
            if let (Ok(name), Ok(value)) = (name, value) {
                headers.append(name, value);
            }
        }
        response
    }
}

impl Deref for Response {
    type Target = http::Response<()>;
    fn deref(&self) -> &http::Response<()> {
        self.http.get_or_init(|| self.to_http())
    }
}

impl AsRef<http::Response<()>> for Response {
    fn as_ref(&self) -> &http::Response<()> {
        self
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("head", &String::from_utf8_lossy(&self.raw))
            .field("body_start", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

impl fmt::Display for Response {
    /// The status line and headers, one per line, as received (not the
    /// body).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = String::from_utf8_lossy(&self.raw);
        f.write_str(
            text.trim_end_matches(['\r', '\n'])
                .replace("\r\n", "\n")
                .as_str(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Response {
        Response::parse(Bytes::copy_from_slice(raw.as_bytes())).unwrap()
    }

    #[test]
    fn headers_are_read_from_the_raw_head() {
        let r = parse(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSet-Cookie: a=1\r\n\
             set-cookie: b=2\r\nSec-WebSocket-Protocol:  chat \r\n\r\n",
        );
        assert_eq!(r.status(), http::StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(r.header("upgrade"), Some(&b"websocket"[..]));
        assert_eq!(r.header("UPGRADE"), Some(&b"websocket"[..]));
        assert_eq!(r.header("x-missing"), None);
        let cookies: Vec<&[u8]> = r.header_all("Set-Cookie").collect();
        assert_eq!(cookies, [&b"a=1"[..], b"b=2"]);
        assert_eq!(r.subprotocol(), Some("chat"));
        // The `http` view agrees, built on first use.
        assert_eq!(r.headers().get_all("set-cookie").iter().count(), 2);
        assert_eq!(r.headers()["upgrade"], "websocket");
        assert_eq!(r.version(), http::Version::HTTP_11);
        let inner = r.clone().into_inner();
        assert_eq!(inner.headers(), r.headers());
        assert_eq!(r.to_string().lines().count(), 5);
    }

    #[test]
    fn only_a_whole_head_parses() {
        let head = b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n\r\n";
        assert!(Response::parse(Bytes::from_static(head)).is_ok());
        for cut in [0, 10, head.len() - 1] {
            assert!(matches!(
                Response::parse(Bytes::copy_from_slice(&head[..cut])),
                Err(HandshakeError::Malformed(_))
            ));
        }
        let mut longer = head.to_vec();
        longer.extend_from_slice(b"\x81\x00");
        assert!(Response::parse(Bytes::from(longer)).is_err());
    }
}
