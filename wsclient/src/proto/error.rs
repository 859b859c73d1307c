//! The protocol core's errors: what the peer did wrong ([`ProtocolError`],
//! each with the close code it maps to) and what the local user asked for
//! that the protocol forbids ([`SendError`]).

use super::close::CloseCode;

/// The peer broke RFC 6455 (or RFC 7692); the connection is failed with
/// [`ProtocolError::close_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame from the server was masked (servers must not mask).
    #[error("the server sent a masked frame")]
    MaskedFrameFromServer,
    /// A frame from a client was not masked (clients must mask).
    #[error("the client sent an unmasked frame")]
    UnmaskedFrameFromClient,
    /// RSV1, RSV2 or RSV3 was set without an extension that defines it.
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    /// A reserved opcode (0x3-0x7, 0xB-0xF).
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    /// A 64-bit payload length with its most significant bit set.
    #[error("invalid payload length")]
    InvalidLength,
    /// A control frame without FIN.
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// A control frame with more than 125 bytes of payload.
    #[error("control frame payload over 125 bytes")]
    ControlFrameTooLarge,
    /// A continuation frame with no fragmented message in progress.
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A new text or binary frame inside a fragmented message.
    #[error("new message started inside a fragmented message")]
    ExpectedContinuation,
    /// A text message (or part of one) that is not UTF-8.
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    /// A close frame with a 1-byte payload.
    #[error("close frame payload of 1 byte")]
    InvalidClosePayload,
    /// A close frame with a code that may not be sent.
    #[error("close frame with invalid code {0}")]
    InvalidCloseCode(u16),
    /// A close frame whose reason is not UTF-8.
    #[error("close reason is not valid UTF-8")]
    InvalidCloseReason,
    /// A frame larger than the configured `max_frame_size`.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The frame's payload length.
        size: u64,
        /// The configured limit.
        max: usize,
    },
    /// A message larger than the configured `max_message_size` (after
    /// decompression, when compressed).
    #[error("message of more than {max} bytes exceeds the limit")]
    MessageTooLarge {
        /// The configured limit.
        max: usize,
    },
    /// A compressed message that does not inflate (RFC 7692).
    #[error("compressed message does not inflate")]
    Decompression,
}

impl ProtocolError {
    /// The close code this error fails the connection with.
    ///
    /// This is the one place where protocol errors map to close codes.
    #[must_use]
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCloseReason => {
                CloseCode::INVALID_PAYLOAD
            }
            ProtocolError::FrameTooLarge { .. } | ProtocolError::MessageTooLarge { .. } => {
                CloseCode::MESSAGE_TOO_BIG
            }
            ProtocolError::Decompression => CloseCode::INVALID_PAYLOAD,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// A send the protocol does not allow in the connection's current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// A close frame was already sent (or the connection failed): no more
    /// data may be sent.
    #[error("the connection is closing or closed; nothing more can be sent")]
    Closed,
    /// A ping, pong or close payload over 125 bytes.
    #[error("control frame payload of {0} bytes is over the 125-byte limit")]
    ControlPayloadTooLarge(usize),
    /// A close code that may not be sent on the wire (1005, 1006, 1015, or
    /// outside 1000-4999).
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// A continuation with no fragmented message started, or a new message
    /// while one is still being fragmented.
    #[error("fragments out of order: {0}")]
    FragmentOrder(&'static str),
}
