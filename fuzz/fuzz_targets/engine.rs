//! The client engine fed arbitrary server bytes in arbitrary chunks.
//!
//! Input layout: byte 0 is a set of flags (bit 0: permessage-deflate on;
//! bit 1: the client starts the close handshake first; bits 2-4: the
//! server's window bits, 8 + n; bit 5: server_no_context_takeover); byte 1
//! gives how many chunk-size bytes follow (0-7; 0 feeds everything at once);
//! each chunk-size byte c feeds c + 1 bytes (cycled); the rest is what the
//! server sends.
//!
//! Invariants checked, beyond "no panic":
//! - every message is within the limits (data <= max_message_size, control
//!   payloads <= 125 bytes, close reasons <= 123 bytes); text is UTF-8;
//! - every call returns having made progress: a message consumes bytes, and
//!   a chunk yields at most one message per 2 bytes buffered;
//! - everything the client writes is a well-formed, masked, final frame;
//!   a ping received while open is answered by a pong with its payload; a
//!   close received while open is echoed with its code;
//! - after an `Err(e)` the engine is `Closed`, `failure()` is `e`, the input
//!   buffer is dropped, and (if it had not sent a close yet) its output ends
//!   with a close frame whose code is `e.close_code()`;
//! - once `Closed`, `receive` returns `Ok(None)`, drops its input and writes
//!   nothing.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use wsclient::Message;
use wsclient::proto::{
    CloseFrame, Config, DeflateConfig, DeflateParams, Engine, FrameHeader, OpCode,
    PerMessageDeflate, Role, State,
};

const MAX_FRAME: usize = 64 << 10;
const MAX_MESSAGE: usize = 256 << 10;

/// Splits the client's output into frames, checking each is complete,
/// masked (a client always masks), final and within the control limit;
/// returns the opcodes and unmasked payloads.
fn client_frames(mut out: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
    let mut frames = Vec::new();
    while !out.is_empty() {
        let (h, n) = FrameHeader::decode(out)
            .expect("client output decodes")
            .expect("client output holds whole headers");
        let key = h.mask.expect("client frames are masked");
        assert!(h.fin && !h.rsv2 && !h.rsv3, "client frame {h:?}");
        let len = usize::try_from(h.payload_len).unwrap();
        assert!(out.len() >= n + len, "client output holds whole payloads");
        let payload: Vec<u8> = out[n..n + len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        if h.opcode.is_control() {
            assert!(len <= 125 && !h.rsv1);
        }
        frames.push((h.opcode, payload));
        out = &out[n + len..];
    }
    frames
}

fn check_message(msg: &Message) {
    match msg {
        Message::Text(t) => {
            assert!(t.len() <= MAX_MESSAGE, "text of {} bytes", t.len());
            assert!(std::str::from_utf8(t.as_bytes()).is_ok(), "text not UTF-8");
            assert_eq!(t.as_str().as_bytes(), t.as_bytes());
        }
        Message::Binary(b) => assert!(b.len() <= MAX_MESSAGE, "binary of {} bytes", b.len()),
        Message::Ping(p) | Message::Pong(p) => assert!(p.len() <= 125),
        Message::Close(Some(f)) => {
            assert!(f.reason.len() <= 123);
            assert!(f.code.is_sendable(), "close code {} delivered", f.code.0);
            assert!(std::str::from_utf8(f.reason.as_bytes()).is_ok());
        }
        Message::Close(None) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, nchunks, rest @ ..] = data else {
        return;
    };
    let nchunks = usize::from(nchunks % 8).min(rest.len());
    let (chunks, mut input) = rest.split_at(nchunks);

    let config = Config::default()
        .max_frame_size(MAX_FRAME)
        .max_message_size(MAX_MESSAGE);
    let mut engine = Engine::new(Role::Client, config);
    if flags & 1 != 0 {
        let params = DeflateParams {
            server_max_window_bits: 8 + ((flags >> 2) & 7),
            server_no_context_takeover: flags & 0x20 != 0,
            ..DeflateParams::default()
        };
        engine = engine.with_deflate(PerMessageDeflate::new(
            Role::Client,
            params,
            &DeflateConfig::default(),
        ));
    }
    if flags & 2 != 0 {
        engine
            .close(Some(&CloseFrame::new(1000u16, "bye")))
            .expect("close while open");
        let out = engine.take_output();
        assert_eq!(client_frames(&out).last().map(|f| f.0), Some(OpCode::Close));
        assert_eq!(engine.state(), State::CloseSent);
    }

    let mut buf = BytesMut::new();
    let mut i = 0;
    while !input.is_empty() {
        let size = if chunks.is_empty() {
            input.len()
        } else {
            usize::from(chunks[i % chunks.len()]) + 1
        };
        i += 1;
        let size = size.min(input.len());
        buf.extend_from_slice(&input[..size]);
        input = &input[size..];

        // Each message takes bytes off the buffer: the first may only
        // finish a frame whose header was read already (1 byte or more),
        // every other one takes at least a 2-byte header; then one more
        // call answers "need more".
        let mut budget = buf.len() / 2 + 2;
        loop {
            assert!(budget > 0, "more messages than the bytes buffered allow");
            budget -= 1;
            let before_state = engine.state();
            let before_len = buf.len();
            let result = engine.receive(&mut buf);
            let out: Bytes = engine.take_output();
            let frames = client_frames(&out);
            match result {
                Ok(None) => {
                    assert!(out.is_empty(), "output without a message");
                    assert_eq!(engine.state(), before_state);
                    if before_state == State::Closed {
                        assert!(buf.is_empty(), "input kept after close");
                    }
                    break;
                }
                Ok(Some(msg)) => {
                    assert_ne!(before_state, State::Closed);
                    assert!(buf.len() < before_len, "a message without consuming bytes");
                    check_message(&msg);
                    match &msg {
                        Message::Ping(p) if before_state == State::Open => {
                            assert_eq!(frames.len(), 1);
                            assert_eq!(frames[0].0, OpCode::Pong);
                            assert_eq!(&frames[0].1[..], &p[..], "pong echoes the ping");
                        }
                        Message::Close(f) => {
                            assert_eq!(engine.state(), State::Closed);
                            assert_eq!(engine.close_received(), Some(f));
                            if before_state == State::Open {
                                assert_eq!(frames.len(), 1);
                                assert_eq!(frames[0].0, OpCode::Close);
                                let expect = f
                                    .as_ref()
                                    .map(|f| f.code.0.to_be_bytes().to_vec())
                                    .unwrap_or_default();
                                assert_eq!(frames[0].1, expect, "close echoes the code");
                            } else {
                                assert!(frames.is_empty());
                            }
                        }
                        _ => {
                            assert!(frames.is_empty(), "output for {msg:?}");
                            assert_eq!(engine.state(), before_state);
                        }
                    }
                }
                Err(e) => {
                    assert_ne!(before_state, State::Closed, "error after close");
                    assert_eq!(engine.state(), State::Closed);
                    assert_eq!(engine.failure(), Some(&e));
                    assert!(buf.is_empty(), "input kept after a failure");
                    if before_state == State::Open {
                        let (op, payload) = frames.last().expect("a close frame after an error");
                        assert_eq!(*op, OpCode::Close);
                        assert_eq!(
                            payload[..],
                            e.close_code().0.to_be_bytes(),
                            "close code for {e:?}"
                        );
                    } else {
                        assert!(frames.is_empty(), "second close after {e:?}");
                    }
                    break;
                }
            }
        }
    }

    // Once closed, nothing more is processed.
    if engine.state() == State::Closed {
        let mut more = BytesMut::from(&b"\x81\x05hello\x89\x00"[..]);
        assert_eq!(engine.receive(&mut more), Ok(None));
        assert!(more.is_empty());
        assert!(!engine.has_output());
    }
});
