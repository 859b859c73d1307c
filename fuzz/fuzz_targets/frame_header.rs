//! `FrameHeader::decode` on arbitrary bytes.
//!
//! Invariants: decode never panics; a decoded header is at most
//! `MAX_HEADER_LEN` bytes and no longer than the input; every strict prefix
//! of a decoded header is "incomplete" (never an error, never a header); the
//! only errors are a reserved opcode and a 64-bit length with its top bit
//! set; re-encoding gives back the exact bytes when the input used the
//! shortest length form, and otherwise a shorter encoding that decodes to
//! the same header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsclient::proto::frame::MAX_HEADER_LEN;
use wsclient::proto::{FrameHeader, ProtocolError};

fuzz_target!(|data: &[u8]| {
    match FrameHeader::decode(data) {
        Ok(None) => {
            // Incomplete: only possible while shorter than the longest header.
            assert!(data.len() < MAX_HEADER_LEN, "incomplete with {} bytes", data.len());
        }
        Err(e) => {
            assert!(
                matches!(e, ProtocolError::UnknownOpcode(_) | ProtocolError::InvalidLength),
                "unexpected decode error {e:?}"
            );
        }
        Ok(Some((h, n))) => {
            assert!(n >= 2 && n <= MAX_HEADER_LEN && n <= data.len());
            assert!(h.payload_len >> 63 == 0);
            for cut in 0..n {
                assert_eq!(
                    FrameHeader::decode(&data[..cut]),
                    Ok(None),
                    "prefix of {cut} bytes of a valid header"
                );
            }
            let mut out = [0u8; MAX_HEADER_LEN];
            let m = h.encode(&mut out);
            let minimal = match data[1] & 0x7F {
                126 => h.payload_len >= 126,
                127 => h.payload_len > 0xFFFF,
                _ => true,
            };
            if minimal {
                assert_eq!(&out[..m], &data[..n], "round trip of a minimal header");
            } else {
                assert!(m < n, "a non-minimal length re-encodes shorter");
                assert_eq!(FrameHeader::decode(&out[..m]), Ok(Some((h, m))));
            }
        }
    }
});
