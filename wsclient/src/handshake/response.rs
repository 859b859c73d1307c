//! The server's handshake response as handed to the user.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// The server's answer to the upgrade request: an [`http::Response`]
/// (dereference it for `status()` and `headers()`) that also keeps the raw
/// response head, so it prints exactly as the server sent it (the seed's
/// `echo $response`).
///
/// Handed over with every successful connection (a `101 Switching
/// Protocols`), and kept in every handshake error the server's answer
/// caused: a refusal (non-101 status, with the start of its body, see
/// [`Response::body_start`]) or a 101 that fails a check (bad
/// `Sec-WebSocket-Accept`, missing `Upgrade`, an unoffered subprotocol or
/// extension...). See [`crate::Error::response`].
#[derive(Debug, Clone)]
pub struct Response {
    inner: http::Response<()>,
    raw: Bytes,
    body: Bytes,
}

impl Response {
    /// Wraps a parsed response and the raw head it came from.
    #[must_use]
    pub fn new(inner: http::Response<()>, raw: Bytes) -> Self {
        Response {
            inner,
            raw,
            body: Bytes::new(),
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

    /// The negotiated subprotocol, if the server chose one.
    #[must_use]
    pub fn subprotocol(&self) -> Option<&str> {
        self.inner
            .headers()
            .get(http::header::SEC_WEBSOCKET_PROTOCOL)?
            .to_str()
            .ok()
    }

    /// The plain [`http::Response`].
    #[must_use]
    pub fn into_inner(self) -> http::Response<()> {
        self.inner
    }
}

impl Deref for Response {
    type Target = http::Response<()>;
    fn deref(&self) -> &http::Response<()> {
        &self.inner
    }
}

impl AsRef<http::Response<()>> for Response {
    fn as_ref(&self) -> &http::Response<()> {
        &self.inner
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
