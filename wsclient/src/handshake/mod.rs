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

/// The length of a `Sec-WebSocket-Accept` value: a SHA-1 digest in base64.
pub const ACCEPT_LEN: usize = 28;

/// The `Sec-WebSocket-Accept` value for a key.
#[must_use]
pub fn accept_key(key: &[u8]) -> String {
    let mut out = [0u8; ACCEPT_LEN];
    String::from_utf8_lossy(accept_key_into(key, &mut out)).into_owned()
}

/// The `Sec-WebSocket-Accept` value for a key, written into `out` (no
/// allocation); returns it.
pub fn accept_key_into<'a>(key: &[u8], out: &'a mut [u8; ACCEPT_LEN]) -> &'a [u8] {
    let mut h = Sha1::new();
    h.update(key);
    h.update(GUID);
    // 20 bytes always encode to exactly 28. Were the encoding ever to
    // fail, `out` would stay zeros, which no header value can equal (a
    // parsed value holds no NUL): never an empty value that matches.
    let _ = base64::engine::general_purpose::STANDARD.encode_slice(h.finalize(), &mut out[..]);
    &out[..]
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
    has_token(value.as_bytes(), token.as_bytes())
}

/// True when a comma-separated header value contains `token`,
/// case-insensitively.
fn has_token(value: &[u8], token: &[u8]) -> bool {
    // Most answers are the token alone.
    value.eq_ignore_ascii_case(token)
        || value
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
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
