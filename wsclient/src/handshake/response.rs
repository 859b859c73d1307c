//! The server's handshake response as handed to the user.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// The server's `101 Switching Protocols` response: an [`http::Response`]
/// (dereference it for `status()` and `headers()`) that also keeps the raw
/// response head, so it prints exactly as the server sent it (the seed's
/// `echo $response`).
#[derive(Debug, Clone)]
pub struct Response {
    inner: http::Response<()>,
    raw: Bytes,
}

impl Response {
    /// Wraps a parsed response and the raw head it came from.
    #[must_use]
    pub fn new(inner: http::Response<()>, raw: Bytes) -> Self {
        Response { inner, raw }
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
    /// The status line and headers, one per line, as received.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = String::from_utf8_lossy(&self.raw);
        f.write_str(
            text.trim_end_matches(['\r', '\n'])
                .replace("\r\n", "\n")
                .as_str(),
        )
    }
}
