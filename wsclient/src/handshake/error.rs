//! Handshake errors.

use bytes::Bytes;

/// The opening handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The response head is larger than the configured limit.
    #[error("handshake response head exceeds {max} bytes")]
    ResponseTooLarge {
        /// The limit in bytes.
        max: usize,
    },
    /// The response is not valid HTTP/1.1.
    #[error("malformed HTTP response: {0}")]
    Malformed(#[from] httparse::Error),
    /// The connection ended before the response head was complete.
    #[error("connection closed during the handshake")]
    Incomplete,
    /// The server answered with a status other than 101.
    #[error("{0}")]
    Rejected(Box<Rejected>),
    /// `Upgrade: websocket` missing from the response.
    #[error("response lacks `Upgrade: websocket`")]
    MissingUpgrade,
    /// `Connection: upgrade` missing from the response.
    #[error("response lacks `Connection: upgrade`")]
    MissingConnection,
    /// `Sec-WebSocket-Accept` missing or not matching the key.
    #[error("Sec-WebSocket-Accept is missing or does not match the key")]
    BadAccept,
    /// The server chose a subprotocol the client did not offer.
    #[error("server selected subprotocol {0:?}, which was not offered")]
    UnofferedProtocol(String),
    /// The server accepted an extension the client did not offer, or
    /// answered an offer with parameters that do not match it.
    #[error("server selected extension {0:?}, which was not offered")]
    UnsupportedExtension(String),
    /// A request header name or value is invalid (for instance it holds CR
    /// or LF): refused before anything is sent.
    #[error("invalid request header {name:?}")]
    InvalidHeader {
        /// The header's name as given.
        name: String,
    },
    /// A `wss://` server redirected to an unencrypted `ws://` or `http://`
    /// URL. The redirect is not followed: the request (cookies, tokens)
    /// would go out in clear.
    #[error("refusing to follow a redirect from wss:// to unencrypted {location}")]
    InsecureRedirect {
        /// The redirect's target, resolved against the URL that answered.
        location: String,
        /// The redirect response (status, headers, body start).
        response: Box<Rejected>,
    },
    /// The request (on the server side) is not a valid WebSocket upgrade.
    #[error("not a WebSocket upgrade request: {0}")]
    BadRequest(&'static str),
}

/// A non-101 reply to the upgrade request: status, headers and the start of
/// the body (at most 1 KiB), printable for the user.
#[derive(Debug)]
pub struct Rejected {
    /// The response (status, headers) with the first bytes of its body.
    pub response: http::Response<Bytes>,
}

impl Rejected {
    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> http::StatusCode {
        self.response.status()
    }

    /// The `Retry-After` header as seconds, when it is a number.
    #[must_use]
    pub fn retry_after(&self) -> Option<u64> {
        self.response
            .headers()
            .get(http::header::RETRY_AFTER)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "server refused the upgrade: HTTP {}",
            self.response.status()
        )?;
        let body = self.response.body();
        if !body.is_empty() {
            let text = String::from_utf8_lossy(body);
            write!(f, ": {}", text.trim())?;
        }
        Ok(())
    }
}
