//! The opening handshake (RFC 6455 section 4), sans-I/O.
//!
//! Owns the HTTP/1.1 upgrade: building the client's request, parsing and
//! checking the server's response ([`client`]), and the server side used by
//! the embedded demo server and `wsc serve` ([`server`]). No sockets here;
//! the drivers in [`crate::connect`](mod@crate::connect) and [`crate::server`] move the bytes.

pub mod client;
mod error;
mod response;
pub mod server;

use base64::Engine as _;
use sha1::{Digest, Sha1};

pub use error::{HandshakeError, Rejected};
pub use response::Response;

/// The GUID of RFC 6455 section 1.3, appended to the key for the accept hash.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The default limit on the size of the server's response head (16 KiB).
pub const DEFAULT_MAX_RESPONSE_HEAD: usize = 16 << 10;

/// A fresh `Sec-WebSocket-Key`: 16 bytes from a CSPRNG, base64.
#[must_use]
pub fn generate_key() -> String {
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The `Sec-WebSocket-Accept` value for a key.
#[must_use]
pub fn accept_key(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key);
    h.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// The outcome of parsing a request or response head with `httparse`:
/// the head's length when complete, `None` when more bytes are needed,
/// and the limit applied either way.
fn head_len(
    parsed: Result<httparse::Status<usize>, httparse::Error>,
    buffered: usize,
    max: usize,
) -> Result<Option<usize>, HandshakeError> {
    match parsed {
        Ok(httparse::Status::Complete(len)) if len <= max => Ok(Some(len)),
        Ok(httparse::Status::Partial) if buffered <= max => Ok(None),
        Ok(_) | Err(httparse::Error::TooManyHeaders) => {
            Err(HandshakeError::ResponseTooLarge { max })
        }
        Err(e) => Err(HandshakeError::Malformed(e)),
    }
}

/// Copies parsed headers into an [`http::HeaderMap`].
fn copy_headers(
    from: &[httparse::Header<'_>],
    to: &mut http::HeaderMap,
) -> Result<(), HandshakeError> {
    for h in from {
        let name = http::HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| HandshakeError::Malformed(httparse::Error::HeaderName))?;
        let value = http::HeaderValue::from_bytes(h.value)
            .map_err(|_| HandshakeError::Malformed(httparse::Error::HeaderValue))?;
        to.append(name, value);
    }
    Ok(())
}

/// True when a comma-separated header (such as `Connection`) contains
/// `token`, case-insensitively.
fn header_has_token(value: &http::HeaderValue, token: &str) -> bool {
    value
        .to_str()
        .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_accept_vector() {
        // RFC 6455 section 1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn keys_are_random_16_bytes() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&a)
            .unwrap();
        assert_eq!(raw.len(), 16);
    }
}
