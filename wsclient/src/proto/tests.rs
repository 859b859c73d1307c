//! Engine tests: every rule of RFC 6455 the engine enforces, fed bytes in
//! odd chunkings (whole, 1 byte at a time, split headers).

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::message::Message;

/// A frame as a server would send it (unmasked), or masked with `mask`.
fn frame(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (rsv << 4) | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xFFFF => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mut p = payload.to_vec();
    if let Some(k) = mask {
        out.extend_from_slice(&k);
        mask::apply_mask_naive(&mut p, k);
    }
    out.extend_from_slice(&p);
    out
}

fn client() -> Engine {
    Engine::new(Role::Client, Config::default())
}

/// Feeds `bytes` in chunks of `chunk` and collects messages until the first
/// error.
fn feed(engine: &mut Engine, bytes: &[u8], chunk: usize) -> (Vec<Message>, Option<ProtocolError>) {
    let mut buf = BytesMut::new();
    let mut msgs = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match engine.receive(&mut buf) {
                Ok(Some(m)) => msgs.push(m),
                Ok(None) => break,
                Err(e) => return (msgs, Some(e)),
            }
        }
    }
    (msgs, None)
}

/// Runs `bytes` through fresh client engines at several chunk sizes and
/// checks they all agree; returns the whole-buffer result.
fn feed_all_ways(bytes: &[u8]) -> (Vec<Message>, Option<ProtocolError>) {
    let whole = feed(&mut client(), bytes, bytes.len());
    for chunk in [1, 2, 3, 7, 64] {
        let r = feed(&mut client(), bytes, chunk);
        assert_eq!(r, whole, "chunk size {chunk} disagrees");
    }
    whole
}

/// Decodes the frames an engine wrote (masked, client role) into
/// (fin, opcode, unmasked payload).
fn sent_frames(out: &[u8]) -> Vec<(bool, u8, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < out.len() {
        let (h, n) = FrameHeader::decode(&out[at..]).unwrap().unwrap();
        let len = h.payload_len as usize;
        let mut p = out[at + n..at + n + len].to_vec();
        let key = h.mask.expect("client frames are masked");
        mask::apply_mask_naive(&mut p, key);
        frames.push((h.fin, h.opcode.as_u8(), p));
        at += n + len;
    }
    frames
}

fn expect_error(bytes: &[u8], err: ProtocolError, code: u16) {
    let mut e = client();
    let (_, got) = feed(&mut e, bytes, bytes.len());
    assert_eq!(got, Some(err.clone()));
    assert_eq!(err.close_code().0, code);
    assert_eq!(e.state(), State::Closed);
    // The engine fails the connection with a close frame carrying the code.
    let frames = sent_frames(e.output());
    let last = frames.last().expect("a close frame");
    assert_eq!(last.1, 0x8);
    assert_eq!(u16::from_be_bytes([last.2[0], last.2[1]]), code);
    // Chunked feeding gives the same error.
    let (_, got1) = feed(&mut client(), bytes, 1);
    assert_eq!(got1, Some(err));
}

#[test]
fn text_and_binary_in_any_chunking() {
    let mut bytes = frame(true, 0, 1, None, "héllo ✓".as_bytes());
    bytes.extend(frame(true, 0, 2, None, &[0, 1, 2, 255]));
    bytes.extend(frame(true, 0, 2, None, &vec![7u8; 70_000]));
    let (msgs, err) = feed_all_ways(&bytes);
    assert_eq!(err, None);
    assert_eq!(msgs[0], Message::text("héllo ✓"));
    assert_eq!(msgs[1], Message::binary(vec![0u8, 1, 2, 255]));
    assert_eq!(msgs[2].len(), 70_000);
}

#[test]
fn fragmented_with_interleaved_ping_and_auto_pong() {
    let mut bytes = frame(false, 0, 1, None, b"hel");
    bytes.extend(frame(true, 0, 9, None, b"p1"));
    bytes.extend(frame(false, 0, 0, None, b"lo "));
    bytes.extend(frame(true, 0, 0, None, "wörld".as_bytes()));
    let mut e = client();
    let (msgs, err) = feed(&mut e, &bytes, 1);
    assert_eq!(err, None);
    assert_eq!(
        msgs,
        vec![
            Message::Ping(Bytes::from_static(b"p1")),
            Message::text("hello wörld")
        ]
    );
    // The ping was answered with a pong carrying its payload.
    assert_eq!(sent_frames(e.output()), vec![(true, 0xA, b"p1".to_vec())]);
}

#[test]
fn zero_length_frames() {
    let mut bytes = frame(false, 0, 1, None, b"");
    bytes.extend(frame(true, 0, 0, None, b""));
    bytes.extend(frame(true, 0, 2, None, b""));
    let (msgs, err) = feed_all_ways(&bytes);
    assert_eq!(err, None);
    assert_eq!(
        msgs,
        vec![Message::text(""), Message::binary(Vec::<u8>::new())]
    );
}

#[test]
fn protocol_violations_map_to_1002() {
    expect_error(
        &frame(true, 0, 1, Some([1, 2, 3, 4]), b"x"),
        ProtocolError::MaskedFrameFromServer,
        1002,
    );
    expect_error(
        &frame(true, 4, 1, None, b"x"),
        ProtocolError::ReservedBits,
        1002,
    );
    expect_error(
        &frame(true, 2, 1, None, b"x"),
        ProtocolError::ReservedBits,
        1002,
    );
    expect_error(
        &frame(true, 1, 1, None, b"x"),
        ProtocolError::ReservedBits,
        1002,
    );
    expect_error(
        &frame(true, 0, 3, None, b""),
        ProtocolError::UnknownOpcode(3),
        1002,
    );
    expect_error(
        &frame(true, 0, 0xB, None, b""),
        ProtocolError::UnknownOpcode(0xB),
        1002,
    );
    expect_error(
        &frame(false, 0, 9, None, b""),
        ProtocolError::FragmentedControlFrame,
        1002,
    );
    expect_error(
        &frame(true, 0, 9, None, &[0; 126]),
        ProtocolError::ControlFrameTooLarge,
        1002,
    );
    expect_error(
        &frame(true, 0, 0, None, b"x"),
        ProtocolError::UnexpectedContinuation,
        1002,
    );
    let mut b = frame(false, 0, 1, None, b"a");
    b.extend(frame(true, 0, 1, None, b"b"));
    expect_error(&b, ProtocolError::ExpectedContinuation, 1002);
    expect_error(
        &frame(true, 0, 8, None, &[3]),
        ProtocolError::InvalidClosePayload,
        1002,
    );
    expect_error(
        &frame(true, 0, 8, None, &[0x03, 0xED]),
        ProtocolError::InvalidCloseCode(1005),
        1002,
    );
    expect_error(
        &frame(true, 0, 8, None, &[0x13, 0x88]),
        ProtocolError::InvalidCloseCode(5000),
        1002,
    );
}

#[test]
fn invalid_utf8_maps_to_1007() {
    expect_error(
        &frame(true, 0, 1, None, &[0xCE, 0xBA, 0xFF]),
        ProtocolError::InvalidUtf8,
        1007,
    );
    expect_error(
        &frame(true, 0, 8, None, &[0x03, 0xE8, 0xC0]),
        ProtocolError::InvalidCloseReason,
        1007,
    );
    // Truncated code point at the end of a fragmented message.
    let mut b = frame(false, 0, 1, None, &[0xF0, 0x9F]);
    b.extend(frame(true, 0, 0, None, &[0x98]));
    expect_error(&b, ProtocolError::InvalidUtf8, 1007);
}

#[test]
fn invalid_utf8_fails_fast_mid_frame() {
    // A 1000-byte text frame whose 3rd byte is invalid: the error comes as
    // soon as that byte arrives, long before the frame is complete.
    let mut payload = vec![b'a'; 1000];
    payload[2] = 0xFF;
    let bytes = frame(true, 0, 1, None, &payload);
    let mut e = client();
    let mut buf = BytesMut::from(&bytes[..10]);
    assert_eq!(e.receive(&mut buf), Err(ProtocolError::InvalidUtf8));
    // ... and in a fragmented message, on the fragment that holds it.
    let mut bytes = frame(false, 0, 1, None, b"ok");
    bytes.extend(frame(false, 0, 0, None, &[0xED, 0xA0, 0x80]));
    let mut e = client();
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(e.receive(&mut buf), Err(ProtocolError::InvalidUtf8));
}

#[test]
fn limits_map_to_1009() {
    let cfg = Config::default().max_frame_size(100).max_message_size(150);
    let mut e = Engine::new(Role::Client, cfg.clone());
    let (_, err) = feed(&mut e, &frame(true, 0, 2, None, &[0; 101]), 200);
    assert_eq!(
        err,
        Some(ProtocolError::FrameTooLarge {
            size: 101,
            max: 100
        })
    );
    assert_eq!(err.unwrap().close_code(), CloseCode::MESSAGE_TOO_BIG);
    // The limit is checked from the header, before the payload is buffered.
    let mut e = Engine::new(Role::Client, cfg.clone());
    let mut buf = BytesMut::from(&frame(true, 0, 2, None, &[0; 101])[..4]);
    assert!(e.receive(&mut buf).is_err());
    // Fragments adding up past the message limit.
    let mut b = frame(false, 0, 2, None, &[0; 100]);
    b.extend(frame(true, 0, 0, None, &[0; 51]));
    let mut e = Engine::new(Role::Client, cfg);
    let (_, err) = feed(&mut e, &b, 1);
    assert_eq!(err, Some(ProtocolError::MessageTooLarge { max: 150 }));
    // A 64-bit length announcing an exabyte is refused at the header.
    let mut huge = vec![0x82, 127];
    huge.extend_from_slice(&(1u64 << 60).to_be_bytes());
    let mut e = client();
    let mut buf = BytesMut::from(&huge[..]);
    assert!(matches!(
        e.receive(&mut buf),
        Err(ProtocolError::FrameTooLarge { .. })
    ));
}

#[test]
fn close_handshake_server_initiated() {
    let mut e = client();
    let bytes = frame(true, 0, 8, None, b"\x0f\xa1going");
    let (msgs, err) = feed(&mut e, &bytes, 3);
    assert_eq!(err, None);
    assert_eq!(
        msgs,
        vec![Message::Close(Some(CloseFrame::new(4001u16, "going")))]
    );
    assert_eq!(e.state(), State::Closed);
    assert_eq!(e.close_code(), CloseCode(4001));
    // The reply echoes the code.
    let frames = sent_frames(e.output());
    assert_eq!(frames, vec![(true, 0x8, vec![0x0f, 0xa1])]);
    // Nothing can be sent after the close.
    assert_eq!(e.send(&Message::text("late")), Err(SendError::Closed));
    // Bytes after the close frame are ignored.
    let (msgs, err) = feed(&mut e, &frame(true, 0, 1, None, b"x"), 100);
    assert!(msgs.is_empty() && err.is_none());
}

#[test]
fn close_handshake_client_initiated() {
    let mut e = client();
    e.close(Some(&CloseFrame::new(CloseCode::NORMAL, "bye")))
        .unwrap();
    assert_eq!(e.state(), State::CloseSent);
    assert_eq!(
        sent_frames(e.output()),
        vec![(true, 0x8, b"\x03\xe8bye".to_vec())]
    );
    e.consume_output(e.output().len());
    // Data still arrives until the server's close; pings are not answered.
    let mut b = frame(true, 0, 1, None, b"late data");
    b.extend(frame(true, 0, 9, None, b"p"));
    b.extend(frame(true, 0, 8, None, b"\x03\xe8"));
    let (msgs, err) = feed(&mut e, &b, 2);
    assert_eq!(err, None);
    assert_eq!(msgs.len(), 3);
    assert_eq!(e.state(), State::Closed);
    assert!(!e.has_output(), "no pong or second close after our close");
    // Empty close from the peer: code 1005 reported.
    let mut e = client();
    let _ = feed(&mut e, &frame(true, 0, 8, None, b""), 10);
    assert_eq!(e.close_code(), CloseCode::NO_STATUS);
    assert_eq!(sent_frames(e.output()), vec![(true, 0x8, vec![])]);
}

#[test]
fn send_rules() {
    let mut e = client();
    assert_eq!(
        e.send(&Message::Ping(Bytes::from(vec![0; 126]))),
        Err(SendError::ControlPayloadTooLarge(126))
    );
    assert_eq!(
        e.close(Some(&CloseFrame::new(1006u16, ""))),
        Err(SendError::InvalidCloseCode(1006))
    );
    assert_eq!(
        e.close(Some(&CloseFrame::new(1000u16, "x".repeat(124)))),
        Err(SendError::ControlPayloadTooLarge(126))
    );
    assert!(e.send_fragment(OpCode::Continuation, b"x", true).is_err());
    e.send_fragment(OpCode::Text, b"a", false).unwrap();
    assert!(e.send(&Message::text("no")).is_err());
    e.send(&Message::Ping(Bytes::from_static(b"between")))
        .unwrap();
    e.send_fragment(OpCode::Continuation, b"b", true).unwrap();
    e.send(&Message::binary(vec![1u8; 300])).unwrap();
    let frames = sent_frames(e.output());
    assert_eq!(frames[0], (false, 1, b"a".to_vec()));
    assert_eq!(frames[1], (true, 9, b"between".to_vec()));
    assert_eq!(frames[2], (true, 0, b"b".to_vec()));
    assert_eq!(frames[3], (true, 2, vec![1u8; 300]));
}

#[test]
fn mask_keys_differ_per_frame() {
    let mut e = client();
    for _ in 0..16 {
        e.send(&Message::text("same")).unwrap();
    }
    let mut keys = std::collections::HashSet::new();
    let out = e.output().to_vec();
    let mut at = 0;
    while at < out.len() {
        let (h, n) = FrameHeader::decode(&out[at..]).unwrap().unwrap();
        keys.insert(h.mask.unwrap());
        at += n + h.payload_len as usize;
    }
    assert!(keys.len() >= 15, "mask keys must be fresh per frame");
}

#[test]
fn short_data_frames_are_encoded_like_any_other() {
    // Every length the short-frame path takes (0..=125) and the first ones
    // past it, text and binary: a 7-bit (or 16-bit) length, FIN set, no
    // RSV bits, a mask, and the payload masked with it.
    for len in 0..=130usize {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        let text: String = (0..len)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let mut e = client();
        e.send(&Message::binary(payload.clone())).unwrap();
        e.send(&Message::text(text.clone())).unwrap();
        let out = e.output().to_vec();
        let header = if len <= 125 { 6 } else { 8 };
        assert_eq!(out.len(), 2 * (header + len), "length {len}");
        assert_eq!(e.total_output(), out.len() as u64, "length {len}");
        assert_eq!(out[0], 0x82, "length {len}");
        if len <= 125 {
            assert_eq!(out[1], 0x80 | len as u8, "length {len}");
        } else {
            assert_eq!(out[1], 0x80 | 126, "length {len}");
        }
        let frames = sent_frames(&out);
        assert_eq!(frames[0], (true, 2, payload), "length {len}");
        assert_eq!(frames[1], (true, 1, text.into_bytes()), "length {len}");
    }
}

#[test]
fn server_role_requires_masks_and_unmasks() {
    let mut s = Engine::new(Role::Server, Config::default());
    let bytes = frame(true, 0, 1, Some([9, 8, 7, 6]), "masked ✓".as_bytes());
    let (msgs, err) = feed(&mut s, &bytes, 1);
    assert_eq!(err, None);
    assert_eq!(msgs, vec![Message::text("masked ✓")]);
    let mut s = Engine::new(Role::Server, Config::default());
    let (_, err) = feed(&mut s, &frame(true, 0, 1, None, b"x"), 10);
    assert_eq!(err, Some(ProtocolError::UnmaskedFrameFromClient));
    // Server frames go out unmasked.
    let mut s = Engine::new(Role::Server, Config::default());
    s.send(&Message::text("hi")).unwrap();
    assert_eq!(s.output(), &[0x81, 2, b'h', b'i']);
}

#[test]
fn client_server_round_trip() {
    let mut c = client();
    let mut s = Engine::new(Role::Server, Config::default());
    let msgs = vec![
        Message::text("one"),
        Message::binary(vec![2u8; 100_000]),
        Message::Ping(Bytes::from_static(b"x")),
    ];
    for m in &msgs {
        c.send(m).unwrap();
    }
    let mut wire = BytesMut::from(c.output());
    let mut got = Vec::new();
    while let Some(m) = s.receive(&mut wire).unwrap() {
        got.push(m);
    }
    assert_eq!(got, msgs);
}

fn message_strategy() -> impl Strategy<Value = Message> {
    prop_oneof![
        "\\PC{0,50}".prop_map(Message::text),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Message::binary),
        proptest::collection::vec(any::<u8>(), 0..125).prop_map(|v| Message::Ping(v.into())),
        proptest::collection::vec(any::<u8>(), 0..125).prop_map(|v| Message::Pong(v.into())),
    ]
}

proptest! {
    /// Any chunking of a valid stream yields the same messages.
    #[test]
    fn any_chunking_same_messages(msgs in proptest::collection::vec(message_strategy(), 1..10), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10)) {
        let mut s = Engine::new(Role::Server, Config::default());
        for m in &msgs {
            s.send(m).unwrap();
        }
        let wire = s.output().to_vec();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.sort_unstable();
        let mut e = client();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut at = 0;
        for p in points.into_iter().chain([wire.len()]) {
            buf.extend_from_slice(&wire[at..p]);
            at = p;
            while let Some(m) = e.receive(&mut buf).unwrap() {
                got.push(m);
            }
        }
        prop_assert_eq!(got, msgs);
    }

    /// Arbitrary bytes never panic: the engine yields messages or fails
    /// with a close code, and never buffers a frame beyond the limit.
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400), chunk in 1usize..50) {
        let mut e = Engine::new(Role::Client, Config::default().max_frame_size(256).max_message_size(512));
        let (msgs, err) = feed(&mut e, &data, chunk);
        for m in &msgs {
            prop_assert!(m.len() <= 512);
        }
        if let Some(err) = err {
            prop_assert!(err.close_code().is_sendable());
            prop_assert_eq!(e.state(), State::Closed);
        }
    }
}

#[test]
fn server_role_fails_fast_on_masked_invalid_text() {
    let mut payload = vec![b'a'; 1000];
    payload[2] = 0xFF;
    let bytes = frame(true, 0, 1, Some([1, 2, 3, 4]), &payload);
    let mut s = Engine::new(Role::Server, Config::default());
    let mut buf = BytesMut::from(&bytes[..12]);
    assert_eq!(s.receive(&mut buf), Err(ProtocolError::InvalidUtf8));
    // Valid masked text fed in pieces still comes out right.
    let text = "héllo wörld ✓ ".repeat(50);
    let bytes = frame(true, 0, 1, Some([9, 8, 7, 6]), text.as_bytes());
    for chunk in [1, 5, 13, 100] {
        let mut s = Engine::new(Role::Server, Config::default());
        let (msgs, err) = feed(&mut s, &bytes, chunk);
        assert_eq!(err, None);
        assert_eq!(msgs, vec![Message::text(text.clone())]);
    }
}

#[test]
fn short_frame_fast_path_keeps_every_rule() {
    // Whole frames under 64 KiB take the one-step path; each rule still
    // holds there, the same as byte by byte (feed_all_ways compares).
    let text = "κόσμε".repeat(100);
    let (msgs, err) = feed_all_ways(&frame(true, 0, 1, None, text.as_bytes()));
    assert_eq!(err, None);
    assert_eq!(msgs, vec![Message::text(text)]);
    // Limits, 7- and 16-bit lengths.
    for (len, max) in [(101, 100), (1001, 1000)] {
        let cfg = Config::default().max_frame_size(max);
        let mut e = Engine::new(Role::Client, cfg);
        let bytes = frame(true, 0, 2, None, &vec![0; len]);
        let (_, err) = feed(&mut e, &bytes, bytes.len());
        assert_eq!(
            err,
            Some(ProtocolError::FrameTooLarge {
                size: len as u64,
                max
            })
        );
        let cfg = Config::default().max_message_size(max);
        let mut e = Engine::new(Role::Client, cfg);
        let (_, err) = feed(&mut e, &bytes, bytes.len());
        assert_eq!(err, Some(ProtocolError::MessageTooLarge { max }));
    }
    // Invalid text in a short frame, and a new message while a fragmented
    // one is open.
    let bad = frame(true, 0, 1, None, &[b'a', 0xFF, b'b']);
    assert_eq!(feed_all_ways(&bad).1, Some(ProtocolError::InvalidUtf8));
    let mut b = frame(false, 0, 2, None, b"first");
    b.extend(frame(true, 0, 2, None, b"second"));
    assert_eq!(
        feed_all_ways(&b).1,
        Some(ProtocolError::ExpectedContinuation)
    );
    // A server must not take unmasked frames, short or not.
    let mut e = Engine::new(Role::Server, Config::default());
    let mut buf = BytesMut::from(&frame(true, 0, 2, None, b"x")[..]);
    assert_eq!(
        e.receive(&mut buf),
        Err(ProtocolError::UnmaskedFrameFromClient)
    );
    // Nothing after the peer's close frame is delivered.
    let mut b = frame(true, 0, 8, None, &[0x03, 0xE8]);
    b.extend(frame(true, 0, 2, None, b"late"));
    let (msgs, err) = feed_all_ways(&b);
    assert_eq!(err, None);
    assert_eq!(msgs.len(), 1);
    assert!(matches!(msgs[0], Message::Close(_)));
}

/// Drains a client engine's output `step` bytes at a time (as a socket
/// taking partial writes would), checking the output accounting at every
/// step and, with `bound`, that the output buffer holds at most one chunk;
/// returns the bytes written.
fn drain(c: &mut Engine, step: usize, bound: bool) -> Vec<u8> {
    let written_before = c.total_output() - c.output_len() as u64;
    let mut wire = Vec::new();
    while c.has_output() {
        let out = c.output();
        assert!(
            !bound || out.len() <= engine::MASK_CHUNK + frame::MAX_HEADER_LEN,
            "the output buffer holds one chunk at a time, not {} bytes",
            out.len()
        );
        let n = step.min(out.len());
        wire.extend_from_slice(&out[..n]);
        c.consume_output(n);
        assert_eq!(
            c.total_output() - c.output_len() as u64,
            written_before + wire.len() as u64,
            "written = produced - waiting"
        );
    }
    assert_eq!(c.output_len(), 0);
    wire
}

fn receive_all(wire: &[u8]) -> Vec<Message> {
    let mut s = Engine::new(Role::Server, Config::default());
    let mut buf = BytesMut::from(wire);
    let mut got = Vec::new();
    while let Some(m) = s.receive(&mut buf).unwrap() {
        got.push(m);
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    got
}

#[test]
fn large_payloads_are_masked_a_chunk_at_a_time() {
    let big: Vec<u8> = (0..3 * engine::MASK_CHUNK + 7)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    let big_text = "é".repeat(engine::MASK_CHUNK / 2 + 3);
    let msgs = vec![
        Message::binary(big.clone()),
        Message::text("after"),
        Message::Ping(Bytes::from_static(b"p")),
        Message::text(big_text.clone()),
        Message::binary(vec![1u8; engine::MASK_CHUNK]),
    ];
    for step in [usize::MAX, 65_536, 4_093, 1_000_003] {
        let mut c = client();
        for m in &msgs {
            c.send(m).unwrap();
        }
        assert_eq!(
            c.output_len() as u64,
            c.total_output(),
            "nothing written yet"
        );
        // Queued back to back, each large payload is masked in full when
        // the next frame is queued (frames never interleave) ...
        let wire = drain(&mut c, step, false);
        assert_eq!(wire.len() as u64, c.total_output());
        assert_eq!(receive_all(&wire), msgs, "step {step}");
    }
    // ... while one written as it is queued (a socket's send, the event
    // client's queue) never has more than one chunk masked ahead.
    for step in [usize::MAX, 65_536, 4_093] {
        let mut c = client();
        let mut wire = Vec::new();
        for m in &msgs {
            c.send(m).unwrap();
            wire.extend(drain(&mut c, step, true));
        }
        assert_eq!(receive_all(&wire), msgs, "step {step}");
    }
}

#[test]
fn frames_sent_while_a_large_payload_drains_follow_it_whole() {
    let big = vec![0x5Au8; 2 * engine::MASK_CHUNK + 1];
    let mut c = client();
    c.send(&Message::binary(big.clone())).unwrap();
    // Part of the first chunk goes out, then a pong, a message and a close
    // are queued behind the rest of the large frame.
    let mut wire = c.output()[..1000].to_vec();
    c.consume_output(1000);
    c.send(&Message::Pong(Bytes::from_static(b"q"))).unwrap();
    c.send(&Message::text("next")).unwrap();
    c.close(Some(&CloseFrame::new(CloseCode::NORMAL, "bye")))
        .unwrap();
    wire.extend(drain(&mut c, 100_000, false));
    let got = receive_all(&wire);
    assert_eq!(got.len(), 4);
    assert_eq!(got[0], Message::binary(big));
    assert_eq!(got[1], Message::Pong(Bytes::from_static(b"q")));
    assert_eq!(got[2], Message::text("next"));
    assert!(matches!(&got[3], Message::Close(Some(f)) if f.code == CloseCode::NORMAL));

    // take_output hands out everything at once, the large payload included.
    let mut c = client();
    c.send(&Message::binary(vec![9u8; engine::MASK_CHUNK + 5]))
        .unwrap();
    let all = c.take_output();
    assert!(!c.has_output());
    assert_eq!(all.len() as u64, c.total_output());
    assert_eq!(
        receive_all(&all),
        vec![Message::binary(vec![9u8; engine::MASK_CHUNK + 5])]
    );
}
