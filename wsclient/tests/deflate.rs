//! permessage-deflate (RFC 7692) against real peers and hostile servers.
//!
//! * Interop: Python `websockets` and Node `ws` started with `--compression`
//!   (see `peers/README.md`): negotiation, echo of text and binary in many
//!   sizes, thousands of messages with context takeover, without it, small
//!   windows, large messages, compressed fragmented messages from the
//!   server, and a server limit that applies to the inflated size.
//! * Hostile servers, scripted on raw TCP: a decompression bomb (a frame of
//!   a few MiB inflating to 1 GiB) must fail with 1009 without being
//!   inflated, garbage must fail with 1007, answers that match no offer
//!   must fail the handshake.

#[path = "support/peers.rs"]
mod peers;

use std::future::Future;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsclient::handshake::HandshakeError;
use wsclient::proto::{DeflateParams, ProtocolError};
use wsclient::{ConnectOptions, DeflateConfig, Error, MaybeTlsStream, Message, WebSocket};

use peers::{Peer, PeerKind, PeerOptions, binary_payload, fragment_sizes, text_payload};

/// One `#[tokio::test]` per peer kind for each scenario.
macro_rules! per_peer {
    ($($name:ident),* $(,)?) => {
        mod python {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::PeerKind::Python).await;
                }
            )*
        }
        mod node {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::PeerKind::Node).await;
                }
            )*
        }
    };
}

per_peer!(
    negotiates_and_echoes_sizes,
    thousands_with_context_takeover,
    no_context_takeover_both_ways,
    small_windows,
    large_messages,
    compressed_fragmented_from_server,
    server_limit_is_on_the_inflated_size,
    server_without_compression,
    offer_preference_order,
);

const LIMIT: Duration = Duration::from_secs(60);

async fn within<F: Future>(f: F) -> F::Output {
    match tokio::time::timeout(LIMIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("test body did not finish within {LIMIT:?} (hang?)"),
    }
}

fn compressing_peer(kind: PeerKind) -> Peer {
    Peer::start(
        kind,
        &PeerOptions {
            compression: true,
            ..PeerOptions::default()
        },
    )
}

type Ws = WebSocket<MaybeTlsStream>;

async fn connect(opts: ConnectOptions) -> Ws {
    let url = opts.url().to_owned();
    let (ws, _) = opts
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e:?}"));
    ws
}

fn opts(peer: &Peer, path: &str) -> ConnectOptions {
    ConnectOptions::new(peer.url(path))
        .max_message_size(64 << 20)
        .max_frame_size(64 << 20)
}

async fn next(ws: &mut Ws) -> Message {
    match ws.recv().await {
        Some(Ok(m)) => m,
        Some(Err(e)) => panic!("expected a message, got {e:?}"),
        None => panic!("expected a message, the stream ended"),
    }
}

async fn echo(ws: &mut Ws, msg: Message) {
    ws.send(msg.clone()).await.unwrap();
    let got = next(ws).await;
    if got != msg {
        let show = |m: &Message| format!("{:?}", m).chars().take(200).collect::<String>();
        panic!(
            "echo of a {}-byte message differs: got {}, sent {}",
            msg.len(),
            show(&got),
            show(&msg)
        );
    }
}

/// Text that compresses like real text, of exactly `n` bytes.
fn prose(n: usize) -> String {
    let words = [
        "permessage",
        "deflate",
        "window",
        "context",
        "takeover",
        "frame",
        "the",
        "a",
        "of",
        "message",
        "client",
        "server",
        "négociation",
        "✓",
    ];
    let mut s = String::with_capacity(n + 16);
    let mut i = 0usize;
    while s.len() < n {
        s.push_str(words[(i * 7 + i / 3) % words.len()]);
        s.push(if i % 11 == 0 { '\n' } else { ' ' });
        i += 1;
    }
    while s.len() > n {
        s.pop();
    }
    while s.len() < n {
        s.push('.');
    }
    s
}

/// Bytes that do not compress.
fn noise(n: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn params(ws: &Ws) -> DeflateParams {
    *ws.engine()
        .deflate()
        .expect("permessage-deflate negotiated")
}

async fn close(mut ws: Ws) {
    ws.close(wsclient::CloseCode::NORMAL, "").await.unwrap();
}

// ----- interop ---------------------------------------------------------------

async fn negotiates_and_echoes_sizes(kind: PeerKind) {
    let peer = compressing_peer(kind);
    within(async {
        let mut ws = connect(opts(&peer, "/echo").deflate(DeflateConfig::default())).await;
        let p = params(&ws);
        match kind {
            // websockets answers with 12-bit windows (peers/README.md).
            PeerKind::Python => {
                assert_eq!(
                    (p.client_max_window_bits, p.server_max_window_bits),
                    (12, 12),
                    "{p:?}"
                );
            }
            PeerKind::Node => assert_eq!(p, DeflateParams::default()),
        }
        for n in [
            0,
            1,
            5,
            125,
            126,
            127,
            1000,
            65_535,
            65_536,
            100_000,
            1 << 20,
        ] {
            echo(&mut ws, Message::text(text_payload(n))).await;
            echo(&mut ws, Message::binary(binary_payload(n))).await;
            echo(&mut ws, Message::binary(noise(n))).await;
        }
        close(ws).await;
    })
    .await;
}

async fn thousands_with_context_takeover(kind: PeerKind) {
    let peer = compressing_peer(kind);
    within(async {
        let mut ws = connect(opts(&peer, "/echo").deflate(DeflateConfig::default())).await;
        let p = params(&ws);
        assert!(
            !p.client_no_context_takeover && !p.server_no_context_takeover,
            "{p:?}"
        );
        let sent_before = ws.written_total();
        let mut plain = 0usize;
        // Pipelined in batches: both compressors carry their context from
        // message to message, so every message depends on all before it.
        for batch in 0..30 {
            let msgs: Vec<Message> = (0..100)
                .map(|i| {
                    let k = batch * 100 + i;
                    let body = format!("message {k}: {}", prose(40 + k % 300));
                    if k % 4 == 0 {
                        Message::binary(body.into_bytes())
                    } else {
                        Message::text(body)
                    }
                })
                .collect();
            for m in &msgs {
                plain += m.len();
                ws.queue(m).unwrap();
            }
            for m in &msgs {
                let got = next(&mut ws).await;
                assert!(got == *m, "message differs in batch {batch}");
            }
        }
        // Repetitive text with context takeover compresses well.
        let wire = usize::try_from(ws.written_total() - sent_before).unwrap();
        assert!(
            wire < plain / 3,
            "{wire} bytes on the wire for {plain} bytes of messages"
        );
        close(ws).await;
    })
    .await;
}

async fn no_context_takeover_both_ways(kind: PeerKind) {
    let peer = compressing_peer(kind);
    within(async {
        let cfg = DeflateConfig::default()
            .client_no_context_takeover(true)
            .server_no_context_takeover(true);
        let mut ws = connect(opts(&peer, "/echo").deflate(cfg)).await;
        let p = params(&ws);
        assert!(
            p.client_no_context_takeover && p.server_no_context_takeover,
            "{p:?}"
        );
        for k in 0..1000 {
            echo(&mut ws, Message::text(format!("{k} {}", prose(k % 500)))).await;
        }
        close(ws).await;
    })
    .await;
}

async fn small_windows(kind: PeerKind) {
    let peer = compressing_peer(kind);
    within(async {
        let cfg = DeflateConfig::default()
            .client_max_window_bits(9)
            .server_max_window_bits(9);
        let mut ws = connect(opts(&peer, "/echo").deflate(cfg)).await;
        let p = params(&ws);
        assert_eq!(p.server_max_window_bits, 9, "{p:?}");
        assert_eq!(p.client_max_window_bits, 9, "{p:?}");
        for k in 0..300 {
            // Long-range repeats that a 512-byte window cannot reach.
            let unit = prose(700 + k);
            echo(&mut ws, Message::text(unit.repeat(3))).await;
        }
        echo(&mut ws, Message::binary(noise(200_000))).await;
        close(ws).await;
    })
    .await;
}

async fn large_messages(kind: PeerKind) {
    let peer = compressing_peer(kind);
    within(async {
        let mut ws = connect(opts(&peer, "/echo").deflate(DeflateConfig::default())).await;
        echo(&mut ws, Message::text(prose(16 << 20))).await;
        echo(&mut ws, Message::binary(noise(4 << 20))).await;
        echo(&mut ws, Message::binary(vec![0u8; 32 << 20])).await;
        close(ws).await;
    })
    .await;
}

async fn compressed_fragmented_from_server(kind: PeerKind) {
    let peer = compressing_peer(kind);
    within(async {
        for (size, count, ty) in [(100_000, 7, "text"), (5000, 50, "binary"), (10, 20, "text")] {
            let path = format!("/fragmented?size={size}&count={count}&type={ty}");
            let mut ws = connect(opts(&peer, &path).deflate(DeflateConfig::default())).await;
            assert_eq!(fragment_sizes(size, count).iter().sum::<usize>(), size);
            let got = next(&mut ws).await;
            let want = if ty == "text" {
                Message::text(text_payload(size))
            } else {
                Message::binary(binary_payload(size))
            };
            assert!(got == want, "{path}: reassembled message differs");
            // Echo goes on afterwards, and we send fragments of our own.
            echo(&mut ws, Message::text(prose(3000))).await;
            close(ws).await;
        }
    })
    .await;
}

async fn server_limit_is_on_the_inflated_size(kind: PeerKind) {
    // A server with a 10,000-byte limit: 9,000 bytes pass, 100,000 bytes of
    // text that compress to far less than 10,000 are refused with 1009,
    // which shows the server inflated what we compressed.
    let peer = Peer::start_with_args(
        kind,
        &PeerOptions {
            compression: true,
            ..PeerOptions::default()
        },
        &["--max-size", "10000"],
    );
    within(async {
        let mut ws = connect(opts(&peer, "/echo").deflate(DeflateConfig::default())).await;
        echo(&mut ws, Message::text(prose(9000))).await;
        let big = Message::text(prose(1000).repeat(100));
        let before = ws.written_total();
        ws.send(big).await.unwrap();
        match ws.recv().await {
            Some(Ok(Message::Close(f))) => assert_eq!(f.map(|f| f.code.0), Some(1009)),
            None => {}
            Some(other) => panic!("expected the server's close, got {other:?}"),
        }
        assert_eq!(ws.close_code().0, 1009);
        assert!(
            ws.written_total() - before < 10_000,
            "the 100 KB message went out compressed"
        );
    })
    .await;
}

async fn server_without_compression(kind: PeerKind) {
    let peer = Peer::start(kind, &PeerOptions::default());
    within(async {
        let mut ws = connect(opts(&peer, "/echo").deflate(DeflateConfig::default())).await;
        assert!(ws.engine().deflate().is_none());
        echo(&mut ws, Message::text(prose(10_000))).await;
        close(ws).await;
    })
    .await;
    // And a compressing server with a client that does not offer it.
    let peer = compressing_peer(kind);
    within(async {
        let mut ws = connect(opts(&peer, "/echo")).await;
        assert!(ws.engine().deflate().is_none());
        echo(&mut ws, Message::text(prose(10_000))).await;
        close(ws).await;
    })
    .await;
}

async fn offer_preference_order(kind: PeerKind) {
    // Two offers in one header; both servers take the first.
    let peer = compressing_peer(kind);
    within(async {
        let first = DeflateConfig::default().server_no_context_takeover(true).level(1);
        let second = DeflateConfig::default().level(9);
        let o = opts(&peer, "/headers").deflate(first).deflate(second);
        let mut ws = connect(o).await;
        let headers = match next(&mut ws).await {
            Message::Text(t) => t.to_string(),
            m => panic!("unexpected {m:?}"),
        };
        assert!(
            headers.contains(
                "permessage-deflate; client_max_window_bits; server_no_context_takeover, permessage-deflate; client_max_window_bits"
            ),
            "{headers}"
        );
        assert!(params(&ws).server_no_context_takeover);
        echo(&mut ws, Message::text(prose(50_000))).await;
        close(ws).await;
    })
    .await;
}

// ----- hostile servers ---------------------------------------------------------

/// A one-connection server: answers the upgrade with `extensions`, then
/// writes `frames` and returns the close code the client sent back (None if
/// it closed without one).
async fn scripted(
    extensions: &'static str,
    frames: Vec<u8>,
) -> (String, tokio::task::JoinHandle<Option<u16>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut io, _) = listener.accept().await.unwrap();
        let key = read_key(&mut io).await;
        let mut head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
            wsclient::handshake::accept_key(key.as_bytes())
        );
        if !extensions.is_empty() {
            head.push_str(&format!("Sec-WebSocket-Extensions: {extensions}\r\n"));
        }
        head.push_str("\r\n");
        io.write_all(head.as_bytes()).await.unwrap();
        // The client may fail and close before all is written.
        let _ = io.write_all(&frames).await;
        read_close_code(&mut io).await
    });
    (url, task)
}

async fn read_key(io: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(io.read(&mut b).await.unwrap(), 1, "request ended early");
        buf.push(b[0]);
    }
    let text = String::from_utf8(buf).unwrap();
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| v.trim().to_owned())
        })
        .expect("a Sec-WebSocket-Key")
}

/// Reads (masked) client frames until a close frame; its code.
async fn read_close_code(io: &mut TcpStream) -> Option<u16> {
    let mut buf = BytesMut::new();
    loop {
        if let Some((h, n)) = wsclient::proto::FrameHeader::decode(&buf).unwrap() {
            let len = usize::try_from(h.payload_len).unwrap();
            if buf.len() >= n + len {
                let mut p = buf[n..n + len].to_vec();
                if let Some(k) = h.mask {
                    for (i, b) in p.iter_mut().enumerate() {
                        *b ^= k[i % 4];
                    }
                }
                let _ = buf.split_to(n + len);
                if h.opcode == wsclient::proto::OpCode::Close {
                    return (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
                }
                continue;
            }
        }
        match io.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// A server frame (unmasked) with RSV1 as given.
fn frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode];
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A DEFLATE bomb: one fixed-Huffman block of a zero byte followed by
/// `copies` matches of 258 bytes at distance 1 (13 bits each).
fn bomb(copies: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(copies * 13 / 8 + 8);
    let (mut acc, mut n) = (0u64, 0u32);
    let mut put = |out: &mut Vec<u8>, bits: u64, len: u32| {
        acc |= bits << n;
        n += len;
        while n >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            n -= 8;
        }
    };
    let rev = |code: u64, len: u32| code.reverse_bits() >> (64 - len);
    put(&mut out, 0b010, 3); // BFINAL=0, fixed Huffman
    put(&mut out, rev(0b0011_0000, 8), 8); // literal 0
    for _ in 0..copies {
        put(&mut out, rev(0b1100_0101, 8), 8); // length 258
        put(&mut out, 0, 5); // distance 1
    }
    put(&mut out, 0, 7); // end of block
    put(&mut out, 0, 7); // pad
    out
}

async fn expect_protocol_error(url: &str, max: usize) -> ProtocolError {
    let (mut ws, _) = ConnectOptions::new(url)
        .max_message_size(max)
        .max_frame_size(16 << 20)
        .deflate(DeflateConfig::default())
        .connect()
        .await
        .unwrap();
    assert!(ws.engine().deflate().is_some());
    loop {
        match ws.recv().await {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(m)) => panic!("unexpected message of {} bytes", m.len()),
            Some(Err(Error::Protocol(e))) => return e,
            Some(Err(e)) => panic!("unexpected error {e:?}"),
            None => panic!("stream ended without an error"),
        }
    }
}

#[tokio::test]
async fn bomb_fails_with_1009_without_inflating_it() {
    within(async {
        // 6.5 MiB on the wire, 1 GiB inflated.
        let z = bomb((1 << 30) / 258);
        assert!(z.len() < 7 << 20);
        let (url, server) = scripted("permessage-deflate", frame(true, true, 2, &z)).await;
        let err = expect_protocol_error(&url, 1 << 20).await;
        assert_eq!(err, ProtocolError::MessageTooLarge { max: 1 << 20 });
        assert_eq!(server.await.unwrap(), Some(1009));
    })
    .await;
}

#[tokio::test]
async fn fragmented_bomb_fails_with_1009() {
    within(async {
        let z = bomb((256 << 20) / 258);
        let mut frames = Vec::new();
        let pieces: Vec<&[u8]> = z.chunks(64 << 10).collect();
        for (i, p) in pieces.iter().enumerate() {
            let first = i == 0;
            frames.extend(frame(
                i + 1 == pieces.len(),
                first,
                if first { 1 } else { 0 },
                p,
            ));
        }
        let (url, server) =
            scripted("permessage-deflate; server_no_context_takeover", frames).await;
        let err = expect_protocol_error(&url, 4 << 20).await;
        assert_eq!(err, ProtocolError::MessageTooLarge { max: 4 << 20 });
        assert_eq!(server.await.unwrap(), Some(1009));
    })
    .await;
}

#[tokio::test]
async fn garbage_fails_with_1007() {
    within(async {
        let (url, server) = scripted("permessage-deflate", frame(true, true, 2, &[0xff; 32])).await;
        let err = expect_protocol_error(&url, 1 << 20).await;
        assert_eq!(err, ProtocolError::Decompression);
        assert_eq!(server.await.unwrap(), Some(1007));
    })
    .await;
}

#[tokio::test]
async fn rsv1_on_continuation_fails_with_1002() {
    within(async {
        let mut frames = frame(false, true, 1, &[0xf2, 0x48]);
        frames.extend(frame(true, true, 0, &[0xcd]));
        let (url, server) = scripted("permessage-deflate", frames).await;
        let err = expect_protocol_error(&url, 1 << 20).await;
        assert_eq!(err, ProtocolError::ReservedBits);
        assert_eq!(server.await.unwrap(), Some(1002));
    })
    .await;
}

#[tokio::test]
async fn rfc_example_from_a_raw_server() {
    within(async {
        // RFC 7692 section 7.2.3.1 and 7.2.3.2: "Hello" twice, the second
        // referring back to the first.
        let mut frames = frame(true, true, 1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        frames.extend(frame(true, true, 1, &[0xf2, 0x00, 0x11, 0x00, 0x00]));
        frames.extend(frame(true, false, 8, &[0x03, 0xe8]));
        let (url, server) = scripted("permessage-deflate", frames).await;
        let (mut ws, _) = ConnectOptions::new(url)
            .deflate(DeflateConfig::default())
            .connect()
            .await
            .unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("Hello"));
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text("Hello"));
        assert!(matches!(ws.recv().await, Some(Ok(Message::Close(_)))));
        // Polling on flushes the close reply.
        assert!(ws.recv().await.is_none());
        assert_eq!(server.await.unwrap(), Some(1000));
    })
    .await;
}

#[tokio::test]
async fn answers_that_match_no_offer_fail_the_handshake() {
    within(async {
        for (answer, offer) in [
            ("permessage-deflate; foo", DeflateConfig::default()),
            (
                "permessage-deflate; client_max_window_bits",
                DeflateConfig::default(),
            ),
            (
                "permessage-deflate; server_max_window_bits=16",
                DeflateConfig::default(),
            ),
            (
                "permessage-deflate; server_max_window_bits=12",
                DeflateConfig::default().server_max_window_bits(10),
            ),
            (
                "permessage-deflate",
                DeflateConfig::default().server_no_context_takeover(true),
            ),
            (
                "permessage-deflate, permessage-deflate",
                DeflateConfig::default(),
            ),
            ("x-webkit-deflate-frame", DeflateConfig::default()),
        ] {
            let (url, _server) = scripted(answer, Vec::new()).await;
            let err = ConnectOptions::new(url)
                .deflate(offer)
                .connect()
                .await
                .err();
            assert!(
                matches!(
                    err,
                    Some(Error::Handshake(
                        HandshakeError::UnsupportedExtension { .. }
                    ))
                ),
                "{answer}: {err:?}"
            );
        }
        // Without an offer, any extension fails.
        let (url, _server) = scripted("permessage-deflate", Vec::new()).await;
        let err = ConnectOptions::new(url).connect().await.err();
        assert!(
            matches!(
                err,
                Some(Error::Handshake(
                    HandshakeError::UnsupportedExtension { .. }
                ))
            ),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn our_own_server_role_negotiates_with_our_client() {
    within(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (io, _) = listener.accept().await.unwrap();
            let opts = wsclient::server::AcceptOptions {
                deflate: Some(
                    DeflateConfig::default()
                        .server_max_window_bits(10)
                        .client_no_context_takeover(true),
                ),
                ..wsclient::server::AcceptOptions::default()
            };
            let (mut ws, _) = wsclient::server::accept(io, &opts).await.unwrap();
            let p = *ws.engine().deflate().unwrap();
            while let Some(Ok(m)) = ws.recv().await {
                if matches!(m, Message::Text(_) | Message::Binary(_)) {
                    ws.send(m).await.unwrap();
                }
            }
            p
        });
        let (mut ws, _) = ConnectOptions::new(url)
            .deflate(DeflateConfig::default())
            .connect()
            .await
            .unwrap();
        let p = params(&ws);
        assert_eq!(p.server_max_window_bits, 10);
        assert!(p.client_no_context_takeover);
        for k in 0..200 {
            echo(&mut ws, Message::text(prose(k * 50))).await;
        }
        echo(&mut ws, Message::binary(noise(1 << 20))).await;
        close(ws).await;
        assert_eq!(server.await.unwrap(), p);
    })
    .await;
}
