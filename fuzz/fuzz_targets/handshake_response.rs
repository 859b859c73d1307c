//! `handshake::client::parse_response` (and, for a parsed response,
//! `check_response`) on arbitrary bytes.
//!
//! The first byte picks a small head limit (64..=2104 bytes). Invariants:
//! never panics; a complete head is no longer than the input nor the
//! limit; "need more bytes" only while the input is within the limit; a
//! complete head parses the same when followed by more bytes.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wsclient::handshake::HandshakeError;
use wsclient::handshake::client::{RequestOptions, check_response, parse_response};
use wsclient::proto::DeflateConfig;

/// RFC 6455 section 1.3's sample key; its accept value is
/// `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=` (used in the seed corpus).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fuzz_target!(|data: &[u8]| {
    let Some((&b0, input)) = data.split_first() else {
        return;
    };
    let max = 64 + usize::from(b0) * 8;
    let mut buf = BytesMut::from(input);
    match parse_response(&mut buf, max) {
        Ok(None) => {
            assert!(input.len() <= max, "incomplete past the limit");
            assert_eq!(buf.len(), input.len(), "bytes taken without a head");
        }
        Err(HandshakeError::ResponseTooLarge { max: m }) => assert_eq!(m, max),
        Err(_) => {}
        Ok(Some(resp)) => {
            let len = resp.raw().len();
            assert_eq!(&input[..len], resp.raw(), "the head is not the input's start");
            assert_eq!(&input[len..], &buf[..], "the rest is not what follows the head");
            assert!(len <= max, "head longer than the limit");
            assert!(len > 0);
            // The header index and the `http` view agree.
            for (name, value) in resp.headers() {
                assert!(
                    resp.header_all(name.as_str()).any(|v| v == value.as_bytes()),
                    "{name} missing from the index"
                );
            }
            // Trailing bytes (the WebSocket stream) do not change the head.
            let mut longer = BytesMut::from(&input[..len]);
            longer.extend_from_slice(b"\x81\x02hi");
            match parse_response(&mut longer, max) {
                Ok(Some(r2)) => {
                    assert_eq!(r2.raw(), resp.raw());
                    assert_eq!(&longer[..], b"\x81\x02hi");
                    assert_eq!(r2.status(), resp.status());
                    assert_eq!(r2.headers(), resp.headers());
                }
                other => panic!("head with trailing bytes parsed as {other:?}"),
            }
            // The checks on a parsed response must not panic either, with
            // and without permessage-deflate offers.
            let plain = RequestOptions::default();
            let _ = check_response(&resp, KEY, &plain);
            let mut offers = RequestOptions::default();
            offers.protocols = vec!["chat".into(), "superchat".into()];
            offers.deflate = vec![
                DeflateConfig::default()
                    .server_max_window_bits(10)
                    .client_no_context_takeover(true),
                DeflateConfig::default(),
            ];
            if let Ok(acc) = check_response(&resp, KEY, &offers) {
                if let Some(p) = &acc.protocol {
                    assert!(offers.protocols.contains(p), "unoffered protocol {p:?} accepted");
                }
            }
        }
    }
});
