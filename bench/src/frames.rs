//! Hand-written RFC 6455 framing for the neutral server and the raw-TCP
//! client: just enough to build frames, parse headers and answer the
//! upgrade. Deliberately independent of every client under test.

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The RFC 6455 GUID appended to the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Opcodes used here.
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Length of a frame header for a payload of `len` bytes.
pub fn header_len(len: usize, masked: bool) -> usize {
    let ext = if len < 126 {
        0
    } else if len <= 0xFFFF {
        2
    } else {
        8
    };
    2 + ext + if masked { 4 } else { 0 }
}

/// Appends a frame header (FIN set) to `out`.
pub fn put_header(out: &mut Vec<u8>, opcode: u8, len: usize, mask: Option<[u8; 4]>) {
    out.push(0x80 | opcode);
    let m = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        out.push(m | len as u8);
    } else if len <= 0xFFFF {
        out.push(m | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if let Some(k) = mask {
        out.extend_from_slice(&k);
    }
}

/// Appends a whole frame; a masked frame's payload is masked here.
pub fn put_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    put_header(out, opcode, payload.len(), mask);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(k) = mask {
        xor(&mut out[start..], k);
    }
}

/// XORs `buf` with the mask key (byte-wise; the server's cost is not what
/// is measured).
pub fn xor(buf: &mut [u8], key: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// The payload every benchmark sends: `size` bytes of a fixed pattern.
pub fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// A buffer of whole binary frames of `size` bytes, about `target` bytes
/// long (at least one frame), and how many frames it holds.
pub fn frame_batch(size: usize, masked: bool, target: usize) -> (Vec<u8>, usize) {
    let p = payload(size);
    let one = header_len(size, masked) + size;
    let n = (target / one).max(1);
    let mut out = Vec::with_capacity(n * one);
    for i in 0..n {
        let mask = masked.then(|| (i as u32).wrapping_mul(0x9E37_79B9).to_be_bytes());
        put_frame(&mut out, OP_BINARY, &p, mask);
    }
    (out, n)
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
    pub header_len: usize,
}

/// Parses a frame header at the start of `b`, `None` when incomplete.
pub fn parse_header(b: &[u8]) -> Option<Header> {
    if b.len() < 2 {
        return None;
    }
    let masked = b[1] & 0x80 != 0;
    let len7 = b[1] & 0x7F;
    let ext = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let header_len = 2 + ext + if masked { 4 } else { 0 };
    if b.len() < header_len {
        return None;
    }
    let len = match len7 {
        126 => u64::from(u16::from_be_bytes([b[2], b[3]])),
        127 => u64::from_be_bytes(b[2..10].try_into().ok()?),
        n => u64::from(n),
    };
    let mask = masked.then(|| {
        let at = 2 + ext;
        [b[at], b[at + 1], b[at + 2], b[at + 3]]
    });
    Some(Header {
        opcode: b[0] & 0x0F,
        mask,
        len,
        header_len,
    })
}

/// The end of an HTTP head (`\r\n\r\n`) in `b`: the head's length.
pub fn head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// The value of header `name` (case-insensitive) in an HTTP head.
pub fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A fixed, minimal client upgrade request (the raw-TCP client's).
pub fn raw_request(host: &str) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_accept_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn header_round_trip() {
        for len in [0usize, 16, 125, 126, 4096, 65_535, 65_536, 1 << 20] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut b = Vec::new();
                put_header(&mut b, OP_BINARY, len, mask);
                assert_eq!(b.len(), header_len(len, mask.is_some()));
                let h = parse_header(&b).unwrap();
                assert_eq!(
                    (h.opcode, h.mask, h.len, h.header_len),
                    (OP_BINARY, mask, len as u64, b.len())
                );
                assert!(parse_header(&b[..b.len() - 1]).is_none());
            }
        }
    }
}
