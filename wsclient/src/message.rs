//! Messages as the user sees them: [`Message`] and the UTF-8 payload type
//! [`Utf8Bytes`]. Payloads are [`bytes::Bytes`], so a received message is a
//! slice of the connection's read buffer, not a copy.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

use crate::proto::CloseFrame;

/// A WebSocket message (or control frame) sent or received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message: always valid UTF-8.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping (at most 125 bytes). Received pings are answered by the
    /// library; they are shown to the user for information.
    Ping(Bytes),
    /// A pong (at most 125 bytes).
    Pong(Bytes),
    /// A close frame, with its code and reason if it had one.
    Close(Option<CloseFrame>),
}

impl Message {
    /// A text message.
    pub fn text(s: impl Into<Utf8Bytes>) -> Self {
        Message::Text(s.into())
    }

    /// A binary message.
    pub fn binary(b: impl Into<Bytes>) -> Self {
        Message::Binary(b.into())
    }

    /// True for a text message.
    #[must_use]
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }

    /// True for a binary message.
    #[must_use]
    pub fn is_binary(&self) -> bool {
        matches!(self, Message::Binary(_))
    }

    /// True for ping, pong and close.
    #[must_use]
    pub fn is_control(&self) -> bool {
        matches!(
            self,
            Message::Ping(_) | Message::Pong(_) | Message::Close(_)
        )
    }

    /// The text, for a text message.
    #[must_use]
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(t) => Some(t.as_str()),
            _ => None,
        }
    }

    /// The payload bytes (a close frame's reason for `Close`).
    #[must_use]
    pub fn as_payload(&self) -> &[u8] {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b,
            Message::Close(Some(c)) => c.reason.as_bytes(),
            Message::Close(None) => &[],
        }
    }

    /// The payload, without a copy.
    #[must_use]
    pub fn into_payload(self) -> Bytes {
        match self {
            Message::Text(t) => t.into_bytes(),
            Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b,
            Message::Close(Some(c)) => c.reason.into_bytes(),
            Message::Close(None) => Bytes::new(),
        }
    }

    /// The payload length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.as_payload().len()
    }

    /// True when the payload is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::Text(s.into())
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::Text(s.into())
    }
}

impl From<Utf8Bytes> for Message {
    fn from(s: Utf8Bytes) -> Self {
        Message::Text(s)
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::Binary(b.into())
    }
}

impl From<&[u8]> for Message {
    fn from(b: &[u8]) -> Self {
        Message::Binary(Bytes::copy_from_slice(b))
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        Message::Binary(b)
    }
}

impl fmt::Display for Message {
    /// Text as is; binary as `<N bytes binary>`; control frames by name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Text(t) => f.write_str(t),
            Message::Binary(b) => write!(f, "<{} bytes binary>", b.len()),
            Message::Ping(b) => write!(f, "<ping {} bytes>", b.len()),
            Message::Pong(b) => write!(f, "<pong {} bytes>", b.len()),
            Message::Close(Some(c)) => write!(f, "<close {c}>"),
            Message::Close(None) => f.write_str("<close>"),
        }
    }
}

/// Bytes that are known to be valid UTF-8: a cheaply cloneable `str`.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Utf8Bytes(Bytes);

/// The bytes given to [`Utf8Bytes::try_from`] are not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bytes are not valid UTF-8")]
pub struct NotUtf8;

impl Utf8Bytes {
    /// Text from a static string, without a copy.
    #[must_use]
    pub const fn from_static(s: &'static str) -> Self {
        Utf8Bytes(Bytes::from_static(s.as_bytes()))
    }

    /// Wraps bytes already validated as UTF-8 by the caller.
    ///
    /// Only the crate may call this; every caller validated the bytes (the
    /// engine's incremental validator, or `simdutf8`).
    pub(crate) fn from_validated(b: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&b).is_ok());
        Utf8Bytes(b)
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor of `Utf8Bytes` checks that the bytes are
        // UTF-8 (`from_static` and the `From<String/&str>` impls by type,
        // `try_from` and `from_validated` by validation), and the bytes are
        // never mutated afterwards (`Bytes` is immutable).
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The text's bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The underlying bytes, without a copy.
    #[must_use]
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The underlying bytes, borrowed (cloning them is a reference count).
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.0
    }
}

impl Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Utf8Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Utf8Bytes(Bytes::from(s))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Utf8Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = NotUtf8;
    fn try_from(b: Bytes) -> Result<Self, NotUtf8> {
        simdutf8::basic::from_utf8(&b).map_err(|_| NotUtf8)?;
        Ok(Utf8Bytes(b))
    }
}

impl TryFrom<Vec<u8>> for Utf8Bytes {
    type Error = NotUtf8;
    fn try_from(b: Vec<u8>) -> Result<Self, NotUtf8> {
        Utf8Bytes::try_from(Bytes::from(b))
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
