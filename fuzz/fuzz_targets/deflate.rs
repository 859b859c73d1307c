//! permessage-deflate: inflating arbitrary data under a message limit, and
//! compress/inflate round trips.
//!
//! Input layout: byte 0 is a set of flags (bit 0: round-trip mode; bits
//! 1-3: window bits, 8 + n; bit 4: no context takeover; bits 5-7: the
//! compression level); byte 1 picks the message limit (1 + 256 * n bytes);
//! byte 2 gives how many chunk bytes follow (0-7); each chunk byte c cuts a
//! piece of (c & 0x7F) + 1 bytes, ending the message when c & 0x80 (the
//! last piece always ends it); the rest is the data.
//!
//! Inflate mode: the data is taken as the compressed frames of messages
//! from the server. Every `Ok` leaves at most `max` bytes; a
//! `MessageTooLarge` at most `max + 1`; the only errors are
//! `MessageTooLarge` and `Decompression`.
//!
//! Round-trip mode: the pieces are messages (or fragments) compressed by a
//! client and inflated by a server with the same parameters, under a limit
//! of exactly the message's size: what comes out is what went in.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wsclient::proto::{DeflateConfig, DeflateParams, PerMessageDeflate, ProtocolError, Role};

fuzz_target!(|data: &[u8]| {
    let [flags, limit, nchunks, rest @ ..] = data else {
        return;
    };
    let nchunks = usize::from(nchunks % 8).min(rest.len());
    let (chunks, mut input) = rest.split_at(nchunks);
    let bits = 8 + ((flags >> 1) & 7);
    let nct = flags & 0x10 != 0;
    let params = DeflateParams {
        client_max_window_bits: bits,
        server_max_window_bits: bits,
        client_no_context_takeover: nct,
        server_no_context_takeover: nct,
    };
    let config = DeflateConfig::default().level(u32::from(flags >> 5));
    let max = 1 + usize::from(*limit) * 256;

    // Pieces of the input and whether each ends a message.
    let mut pieces = Vec::new();
    let mut i = 0;
    while !input.is_empty() {
        let (size, fin) = if chunks.is_empty() {
            (input.len(), true)
        } else {
            let c = chunks[i % chunks.len()];
            (usize::from(c & 0x7F) + 1, c & 0x80 != 0)
        };
        i += 1;
        let size = size.min(input.len());
        let fin = fin || size == input.len();
        pieces.push((&input[..size], fin));
        input = &input[size..];
    }

    if flags & 1 == 0 {
        // Inflate whatever the server sent.
        let mut client = PerMessageDeflate::new(Role::Client, params, &config);
        let mut out = BytesMut::new();
        for (piece, fin) in pieces {
            match client.decompress(piece, fin, &mut out, max) {
                Ok(()) => {
                    assert!(out.len() <= max, "inflated {} bytes over {max}", out.len());
                    if fin {
                        out.clear();
                    }
                }
                Err(ProtocolError::MessageTooLarge { max: m }) => {
                    assert_eq!(m, max);
                    assert!(out.len() <= max + 1, "grew to {} past {max}", out.len());
                    break;
                }
                Err(ProtocolError::Decompression) => break,
                Err(e) => panic!("unexpected inflate error {e:?}"),
            }
        }
    } else {
        // Compress as the client, inflate as the server.
        let mut client = PerMessageDeflate::new(Role::Client, params, &config);
        let mut server = PerMessageDeflate::new(Role::Server, params, &config);
        let mut message = Vec::new();
        let mut frames = Vec::new();
        for (piece, fin) in pieces {
            let mut wire = Vec::new();
            client.compress(piece, fin, &mut wire);
            message.extend_from_slice(piece);
            frames.push((wire, fin));
            if fin {
                let mut out = BytesMut::new();
                let n = frames.len();
                for (k, (wire, fin)) in frames.drain(..).enumerate() {
                    server
                        .decompress(&wire, fin, &mut out, message.len())
                        .unwrap_or_else(|e| panic!("frame {k}/{n} of a round trip: {e:?}"));
                }
                assert_eq!(&out[..], &message[..], "round trip");
                message.clear();
            }
        }
    }
});
