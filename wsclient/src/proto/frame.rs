//! Frame headers (RFC 6455 section 5.2): decoding and encoding.
//!
//! Owns the wire layout of a frame header: FIN, RSV1-3, opcode, the MASK bit,
//! the 7/16/64-bit payload length and the masking key. It does not own
//! payloads, fragmentation or close rules; the engine does.

use super::error::ProtocolError;

/// A frame's opcode (RFC 6455 section 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: a close frame.
    Close,
    /// 0x9: a ping.
    Ping,
    /// 0xA: a pong.
    Pong,
}

impl OpCode {
    /// The opcode's 4-bit value on the wire.
    #[must_use]
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Parses a 4-bit opcode; the reserved values 0x3-0x7 and 0xB-0xF fail.
    ///
    /// # Errors
    /// [`ProtocolError::UnknownOpcode`] for a reserved value.
    pub fn from_u8(v: u8) -> Result<Self, ProtocolError> {
        Ok(match v {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            other => return Err(ProtocolError::UnknownOpcode(other)),
        })
    }

    /// True for close, ping and pong.
    #[must_use]
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of its message.
    pub fin: bool,
    /// RSV1 (permessage-deflate's "compressed" bit).
    pub rsv1: bool,
    /// RSV2 (no extension defines it).
    pub rsv2: bool,
    /// RSV3 (no extension defines it).
    pub rsv3: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, when the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes.
    pub payload_len: u64,
}

/// The largest header: 2 bytes, 8 bytes of extended length, 4 of mask key.
pub const MAX_HEADER_LEN: usize = 14;

impl FrameHeader {
    /// Decodes a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` does not yet hold the whole header, or
    /// the header and its length in bytes.
    ///
    /// # Errors
    /// A reserved opcode, or a 64-bit length with its most significant bit
    /// set.
    pub fn decode(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7F;
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header_len = 2 + ext + if masked { 4 } else { 0 };
        if buf.len() < header_len {
            return Ok(None);
        }
        let opcode = OpCode::from_u8(b0 & 0x0F)?;
        let payload_len = match len7 {
            126 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
            127 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[2..10]);
                let len = u64::from_be_bytes(b);
                if len >> 63 != 0 {
                    return Err(ProtocolError::InvalidLength);
                }
                len
            }
            n => u64::from(n),
        };
        let mask = masked.then(|| {
            let at = 2 + ext;
            [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]
        });
        Ok(Some((
            FrameHeader {
                fin: b0 & 0x80 != 0,
                rsv1: b0 & 0x40 != 0,
                rsv2: b0 & 0x20 != 0,
                rsv3: b0 & 0x10 != 0,
                opcode,
                mask,
                payload_len,
            },
            header_len,
        )))
    }

    /// The header and payload lengths of an unmasked frame with a 7- or
    /// 16-bit length (payload under 64 KiB) at the start of `buf`, read
    /// from its length bytes alone (nothing else is checked); `None` for
    /// any other frame, or before those bytes are in.
    #[inline]
    #[must_use]
    pub fn short_lengths(buf: &[u8]) -> Option<(usize, usize)> {
        match *buf {
            [_, len @ 0..=125, ..] => Some((2, usize::from(len))),
            [_, 126, l0, l1, ..] => Some((4, usize::from(u16::from_be_bytes([l0, l1])))),
            _ => None,
        }
    }

    /// Encodes the header into `out` (at most [`MAX_HEADER_LEN`] bytes) and
    /// returns how many bytes were written. Lengths use the shortest form.
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7)
            | (u8::from(self.rsv1) << 6)
            | (u8::from(self.rsv2) << 5)
            | (u8::from(self.rsv3) << 4)
            | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut n = 2;
        if self.payload_len < 126 {
            // Fits in 7 bits: checked by the comparison above.
            out[1] = mask_bit | (self.payload_len as u8);
        } else if let Ok(len16) = u16::try_from(self.payload_len) {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&len16.to_be_bytes());
            n = 4;
        } else {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&self.payload_len.to_be_bytes());
            n = 10;
        }
        if let Some(key) = self.mask {
            out[n..n + 4].copy_from_slice(&key);
            n += 4;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn opcode() -> impl Strategy<Value = OpCode> {
        prop_oneof![
            Just(OpCode::Continuation),
            Just(OpCode::Text),
            Just(OpCode::Binary),
            Just(OpCode::Close),
            Just(OpCode::Ping),
            Just(OpCode::Pong),
        ]
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(
            fin: bool, rsv1: bool, rsv2: bool, rsv3: bool,
            opcode in opcode(),
            mask: Option<[u8; 4]>,
            payload_len in prop_oneof![0u64..130, 65_530u64..65_540, 0u64..(1 << 63)],
        ) {
            let h = FrameHeader { fin, rsv1, rsv2, rsv3, opcode, mask, payload_len };
            let mut buf = [0u8; MAX_HEADER_LEN];
            let n = h.encode(&mut buf);
            let expected = 2 + match payload_len { 0..=125 => 0, 126..=65_535 => 2, _ => 8 } + if mask.is_some() { 4 } else { 0 };
            prop_assert_eq!(n, expected);
            // Every strict prefix is "incomplete", never an error.
            for cut in 0..n {
                prop_assert_eq!(FrameHeader::decode(&buf[..cut]).unwrap(), None);
            }
            prop_assert_eq!(FrameHeader::decode(&buf[..n]).unwrap(), Some((h, n)));
        }
    }

    #[test]
    fn rejects_reserved_opcodes() {
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(
                FrameHeader::decode(&[0x80 | op, 0]),
                Err(ProtocolError::UnknownOpcode(op))
            );
        }
    }

    #[test]
    fn rejects_64_bit_length_with_msb() {
        let mut b = vec![0x82, 127];
        b.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(FrameHeader::decode(&b), Err(ProtocolError::InvalidLength));
    }
}
