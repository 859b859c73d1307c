//! Handshake errors.

use bytes::Bytes;

use super::Response;

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
    /// `Upgrade: websocket` missing from the response (from a request,
    /// on the server side).
    #[error("response lacks `Upgrade: websocket`")]
    MissingUpgrade {
        /// The server's 101 response; `None` on the server side (the
        /// request lacks the header) and from
        /// [`check_response`](super::client::check_response) alone.
        response: Option<Box<Response>>,
    },
    /// `Connection: upgrade` missing from the response (from a request,
    /// on the server side).
    #[error("response lacks `Connection: upgrade`")]
    MissingConnection {
        /// The server's 101 response; `None` as for
        /// [`HandshakeError::MissingUpgrade`].
        response: Option<Box<Response>>,
    },
    /// `Sec-WebSocket-Accept` missing or not matching the key.
    #[error("Sec-WebSocket-Accept is missing or does not match the key")]
    BadAccept {
        /// The server's 101 response (`None` only from
        /// [`check_response`](super::client::check_response) alone).
        response: Option<Box<Response>>,
    },
    /// The server chose a subprotocol the client did not offer.
    #[error("server selected subprotocol {protocol:?}, which was not offered")]
    UnofferedProtocol {
        /// The subprotocol the server selected.
        protocol: String,
        /// The server's 101 response (`None` only from
        /// [`check_response`](super::client::check_response) alone).
        response: Option<Box<Response>>,
    },
    /// The server accepted an extension the client did not offer, or
    /// answered an offer with parameters that do not match it.
    #[error("server selected extension {extension:?}, which was not offered")]
    UnsupportedExtension {
        /// The server's `Sec-WebSocket-Extensions` answer.
        extension: String,
        /// The server's 101 response (`None` only from
        /// [`check_response`](super::client::check_response) alone).
        response: Option<Box<Response>>,
    },
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
    /// The server does not offer WebSockets over HTTP/2 (RFC 8441): it did
    /// not select `h2` in TLS, or did not enable the extended CONNECT
    /// protocol in its HTTP/2 settings.
    #[error("the server does not offer WebSockets over HTTP/2: {0}")]
    Http2Unsupported(&'static str),
    /// The HTTP/2 connection or stream failed during the handshake.
    #[cfg(feature = "http2")]
    #[error("HTTP/2: {0}")]
    Http2(#[source] h2::Error),
}

impl HandshakeError {
    /// The server's response that caused this error, when there is one:
    /// a refusal (non-101, including a redirect not followed) or a 101
    /// that failed a check. `None` for errors before a complete response
    /// head (timeouts, a malformed or oversized head, a dropped
    /// connection) and for request errors.
    #[must_use]
    pub fn response(&self) -> Option<&Response> {
        match self {
            HandshakeError::Rejected(r) | HandshakeError::InsecureRedirect { response: r, .. } => {
                Some(r.head())
            }
            HandshakeError::MissingUpgrade { response }
            | HandshakeError::MissingConnection { response }
            | HandshakeError::BadAccept { response }
            | HandshakeError::UnofferedProtocol { response, .. }
            | HandshakeError::UnsupportedExtension { response, .. } => response.as_deref(),
            HandshakeError::ResponseTooLarge { .. }
            | HandshakeError::Malformed(_)
            | HandshakeError::Incomplete
            | HandshakeError::InvalidHeader { .. }
            | HandshakeError::BadRequest(_)
            | HandshakeError::Http2Unsupported(_) => None,
            #[cfg(feature = "http2")]
            HandshakeError::Http2(_) => None,
        }
    }

    /// Attaches the server's 101 `response` to a check failure of
    /// [`check_response`](super::client::check_response) (the variants
    /// with a `response` field); other errors are returned unchanged.
    #[must_use]
    pub fn with_response(self, response: Response) -> Self {
        let r = Some(Box::new(response));
        match self {
            HandshakeError::MissingUpgrade { .. } => HandshakeError::MissingUpgrade { response: r },
            HandshakeError::MissingConnection { .. } => {
                HandshakeError::MissingConnection { response: r }
            }
            HandshakeError::BadAccept { .. } => HandshakeError::BadAccept { response: r },
            HandshakeError::UnofferedProtocol { protocol, .. } => {
                HandshakeError::UnofferedProtocol {
                    protocol,
                    response: r,
                }
            }
            HandshakeError::UnsupportedExtension { extension, .. } => {
                HandshakeError::UnsupportedExtension {
                    extension,
                    response: r,
                }
            }
            other => other,
        }
    }
}

/// A non-101 reply to the upgrade request: status, headers and the start of
/// the body (at most 1 KiB), printable for the user.
#[derive(Debug)]
pub struct Rejected {
    /// The response (status, headers) with the first bytes of its body.
    pub response: http::Response<Bytes>,
    head: Response,
}

impl Rejected {
    /// A refusal: the parsed response and the start of its body.
    #[must_use]
    pub fn new(head: Response, body: Bytes) -> Rejected {
        let head = head.with_body_start(body.clone());
        let (parts, ()) = head.clone().into_inner().into_parts();
        Rejected {
            response: http::Response::from_parts(parts, body),
            head,
        }
    }

    /// The refusal as a [`Response`]: the raw head as received (its
    /// `Display`), status, headers and [`Response::body_start`].
    #[must_use]
    pub fn head(&self) -> &Response {
        &self.head
    }

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
