//! Fault injection with real sockets: small scripted TCP servers (see
//! `support::Scripted`) that misbehave in ways real servers rarely do on
//! purpose — refusing, never answering, answering wrongly, breaking the
//! framing rules, resetting — and a client that must fail the right way,
//! with the right close code, promptly and without panicking.
//!
//! Every test waits on events (the script's progress, the client's
//! results), never on sleeps; each body runs under a timeout.

mod support;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::SinkExt;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use wsclient::handshake::HandshakeError;
use wsclient::proto::ProtocolError;
use wsclient::socket::SocketConfig;
use wsclient::{CloseCode, CloseFrame, ConnectOptions, Error, Message, Phase};

use support::{
    Scripted, assert_ended, close_frame, drain_to_eof, frame, next_err, next_msg, read_close,
    read_request, response_101, response_101_with_accept, within,
};

// ---------------------------------------------------------------------------
// Before the upgrade
// ---------------------------------------------------------------------------

#[tokio::test]
async fn connection_refused() {
    within(async {
        // Bind then drop a listener: nobody listens on that port now.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = wsclient::connect(&format!("ws://{addr}/"))
            .await
            .unwrap_err();
        match &err {
            Error::Connect { host, port, source } => {
                assert_eq!(host, "127.0.0.1");
                assert_eq!(*port, addr.port());
                assert_eq!(source.kind(), ErrorKind::ConnectionRefused, "{source:?}");
            }
            other => panic!("expected Error::Connect, got {other:?}"),
        }
        assert_eq!(err.code(), 3);
        assert_eq!(err.phase(), Some(Phase::Tcp));
    })
    .await;
}

#[tokio::test]
async fn dns_name_that_does_not_resolve() {
    within(async {
        // `.invalid` is reserved (RFC 2606) and never resolves.
        let err = wsclient::connect("ws://nonexistent.invalid:8080/")
            .await
            .unwrap_err();
        match &err {
            Error::Dns { host, .. } => assert_eq!(host, "nonexistent.invalid"),
            other => panic!("expected Error::Dns, got {other:?}"),
        }
        assert_eq!(err.code(), 2);
        assert_eq!(err.phase(), Some(Phase::Dns));
    })
    .await;
}

#[tokio::test]
async fn handshake_never_answered_times_out() {
    within(async {
        let server = Scripted::start(|mut s| async move {
            let req = read_request(&mut s).await;
            assert!(
                req.head.starts_with("GET /slow HTTP/1.1\r\n"),
                "{}",
                req.head
            );
            // Never answer; finish once the client gives up and closes.
            drain_to_eof(&mut s).await;
        })
        .await;
        let limit = Duration::from_millis(300);
        let started = Instant::now();
        let err = ConnectOptions::new(server.url("/slow"))
            .handshake_timeout(limit)
            .connect()
            .await
            .unwrap_err();
        assert!(started.elapsed() >= limit);
        match err {
            Error::Timeout {
                phase: Phase::Upgrade,
                after,
            } => assert_eq!(after, limit),
            ref other => panic!("expected an upgrade timeout, got {other:?}"),
        }
        assert_eq!(err.code(), 4);
        assert_eq!(err.phase(), Some(Phase::Upgrade));
        // The client dropped the connection: the script saw EOF.
        server.join().await;
    })
    .await;
}

/// Answers the upgrade with `make_head(key)`, then waits for the client to
/// hang up.
async fn answer_with(make_head: fn(&str) -> Vec<u8>) -> Error {
    answer_then(make_head, false).await
}

/// Answers the upgrade with `make_head(key)`, then closes TCP (`close`) or
/// waits for the client to hang up.
async fn answer_then(make_head: fn(&str) -> Vec<u8>, close: bool) -> Error {
    let server = Scripted::start(move |mut s| async move {
        let req = read_request(&mut s).await;
        s.write_all(&make_head(req.key())).await.unwrap();
        if !close {
            drain_to_eof(&mut s).await;
        }
    })
    .await;
    let err = wsclient::connect(&server.url("/")).await.unwrap_err();
    server.join().await;
    err
}

#[tokio::test]
async fn wrong_accept_key_is_refused() {
    within(async {
        // A valid accept value, but for another key (RFC 6455's example).
        let err = answer_with(|_| response_101_with_accept("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")).await;
        assert!(
            matches!(err, Error::Handshake(HandshakeError::BadAccept { .. })),
            "{err:?}"
        );
        assert_eq!(err.code(), 8);
        assert_eq!(err.phase(), Some(Phase::Upgrade));

        // No accept header at all.
        let err = answer_with(|_| {
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                .to_vec()
        })
        .await;
        assert!(
            matches!(err, Error::Handshake(HandshakeError::BadAccept { .. })),
            "{err:?}"
        );

        // Right accept, but no `Upgrade: websocket`.
        let err = answer_with(|key| {
            let ok = String::from_utf8(response_101(key)).unwrap();
            ok.replace("Upgrade: websocket\r\n", "").into_bytes()
        })
        .await;
        assert!(
            matches!(err, Error::Handshake(HandshakeError::MissingUpgrade { .. })),
            "{err:?}"
        );
        assert_eq!(err.code(), 8);
    })
    .await;
}

#[tokio::test]
async fn connection_closed_during_handshake() {
    within(async {
        // Half a response head, then EOF.
        let err = answer_then(|_| b"HTTP/1.1 101 Switching Proto".to_vec(), true).await;
        assert!(
            matches!(err, Error::Handshake(HandshakeError::Incomplete)),
            "{err:?}"
        );
        assert_eq!(err.phase(), Some(Phase::Upgrade));
    })
    .await;
}

// ---------------------------------------------------------------------------
// Right after the upgrade
// ---------------------------------------------------------------------------

#[tokio::test]
async fn frames_in_the_same_write_as_the_101_are_delivered() {
    within(async {
        let server = Scripted::start(|mut s| async move {
            let req = read_request(&mut s).await;
            // One write: the 101 head, then whole frames: a text, a binary,
            // a text in two fragments (splitting "é"), and a close frame.
            let mut out = response_101(req.key());
            out.extend(frame(true, 0x1, b"first", None));
            out.extend(frame(true, 0x2, &[1, 2, 3], None));
            out.extend(frame(false, 0x1, b"caf\xc3", None));
            out.extend(frame(true, 0x0, b"\xa9!", None));
            out.extend(close_frame(1000, "bye"));
            s.write_all(&out).await.unwrap();
            // The client answers the close (with the same code), then the
            // server ends TCP first, as RFC 6455 asks.
            let echo = read_close(&mut s, req.leftover).await;
            assert_eq!(echo.map(|f| f.code), Some(CloseCode::NORMAL));
        })
        .await;
        let (mut ws, resp) = wsclient::connect(&server.url("/")).await.unwrap();
        assert_eq!(resp.status(), 101);
        assert_eq!(next_msg(&mut ws).await, Message::text("first"));
        assert_eq!(next_msg(&mut ws).await, Message::binary(vec![1, 2, 3]));
        assert_eq!(next_msg(&mut ws).await, Message::text("café!"));
        assert_eq!(
            next_msg(&mut ws).await,
            Message::Close(Some(CloseFrame::new(1000, "bye")))
        );
        assert_ended(&mut ws).await;
        assert_eq!(ws.close_code(), CloseCode::NORMAL);
        server.join().await;
    })
    .await;
}

#[tokio::test]
async fn nothing_after_101_then_tcp_close_is_abnormal() {
    within(async {
        let server = Scripted::start(|mut s| async move {
            let req = read_request(&mut s).await;
            s.write_all(&response_101(req.key())).await.unwrap();
            // Dropping the stream closes TCP (FIN) without a close frame.
        })
        .await;
        let (mut ws, _) = wsclient::connect(&server.url("/")).await.unwrap();
        let err = next_err(&mut ws).await;
        assert!(matches!(err, Error::AbnormalClosure), "{err:?}");
        assert_eq!(err.code(), 12);
        assert_eq!(err.close_code(), Some(CloseCode::ABNORMAL));
        assert_ended(&mut ws).await;
        assert_eq!(ws.close_code(), CloseCode::ABNORMAL);
        assert!(ws.send("late").await.is_err());
        server.join().await;
    })
    .await;
}

// ---------------------------------------------------------------------------
// Protocol violations: the client fails the connection with the right code
// ---------------------------------------------------------------------------

/// The server answers the upgrade, then writes `bytes`; the client (built
/// by `options`) must fail with a protocol error satisfying `check`, send a
/// close frame with `code` (read back here with the crate's engine in the
/// server role), and end its stream once the server closes TCP.
async fn violation(
    bytes: Vec<u8>,
    options: fn(ConnectOptions) -> ConnectOptions,
    check: fn(&ProtocolError) -> bool,
    code: u16,
) {
    let (close_tx, close_rx) = oneshot::channel();
    let server = Scripted::start(move |mut s| async move {
        let req = read_request(&mut s).await;
        s.write_all(&response_101(req.key())).await.unwrap();
        // A separate write: the client must catch the violation on the open
        // connection, not during the handshake.
        s.write_all(&bytes).await.unwrap();
        let close = read_close(&mut s, req.leftover).await;
        let _ = close_tx.send(close);
        // Dropping the stream ends TCP.
    })
    .await;
    let (mut ws, _) = options(ConnectOptions::new(server.url("/")))
        .connect()
        .await
        .unwrap();
    let err = next_err(&mut ws).await;
    match &err {
        Error::Protocol(e) => assert!(check(e), "unexpected protocol error {e:?}"),
        other => panic!("expected Error::Protocol, got {other:?}"),
    }
    assert_eq!(err.code(), 9);
    assert_eq!(err.close_code(), Some(CloseCode(code)), "{err}");
    // What the server received:
    let close = close_rx.await.expect("the script read a close frame");
    assert_eq!(close.map(|f| f.code), Some(CloseCode(code)));
    assert_eq!(
        ws.engine().close_sent().map(|f| f.code),
        Some(CloseCode(code))
    );
    assert_ended(&mut ws).await;
    server.join().await;
}

fn defaults(o: ConnectOptions) -> ConnectOptions {
    o
}

#[tokio::test]
async fn masked_frame_from_server_fails_with_1002() {
    within(violation(
        frame(true, 0x1, b"masked!", Some([1, 2, 3, 4])),
        defaults,
        |e| matches!(e, ProtocolError::MaskedFrameFromServer),
        1002,
    ))
    .await;
}

#[tokio::test]
async fn reserved_bits_and_opcodes_fail_with_1002() {
    within(async {
        // RSV1 without a negotiated extension.
        let mut rsv1 = frame(true, 0x1, b"x", None);
        rsv1[0] |= 0x40;
        violation(
            rsv1,
            defaults,
            |e| matches!(e, ProtocolError::ReservedBits),
            1002,
        )
        .await;
        // Reserved opcode 0x3.
        violation(
            frame(true, 0x3, b"", None),
            defaults,
            |e| matches!(e, ProtocolError::UnknownOpcode(3)),
            1002,
        )
        .await;
        // A continuation with nothing to continue.
        violation(
            frame(true, 0x0, b"x", None),
            defaults,
            |e| matches!(e, ProtocolError::UnexpectedContinuation),
            1002,
        )
        .await;
        // A fragmented ping.
        violation(
            frame(false, 0x9, b"x", None),
            defaults,
            |e| matches!(e, ProtocolError::FragmentedControlFrame),
            1002,
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn oversized_frame_fails_with_1009() {
    within(violation(
        frame(true, 0x2, &[0u8; 2000], None),
        |o| o.max_frame_size(1024),
        |e| {
            matches!(
                e,
                ProtocolError::FrameTooLarge {
                    size: 2000,
                    max: 1024
                }
            )
        },
        1009,
    ))
    .await;
}

#[tokio::test]
async fn oversized_frame_header_alone_fails_with_1009() {
    // Only the header of a 1 GiB frame: the limit is checked on the
    // header, without waiting for (or buffering) the payload.
    let mut header = vec![0x82, 127];
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    within(violation(
        header,
        defaults,
        |e| matches!(e, ProtocolError::FrameTooLarge { size, .. } if *size == 1 << 30),
        1009,
    ))
    .await;
}

#[tokio::test]
async fn oversized_fragmented_message_fails_with_1009() {
    let mut bytes = frame(false, 0x2, &[0u8; 600], None);
    bytes.extend(frame(true, 0x0, &[0u8; 600], None));
    within(violation(
        bytes,
        |o| o.max_message_size(1000),
        |e| matches!(e, ProtocolError::MessageTooLarge { max: 1000 }),
        1009,
    ))
    .await;
}

#[tokio::test]
async fn invalid_utf8_fails_with_1007() {
    within(async {
        // In one frame.
        violation(
            frame(true, 0x1, b"abc\xff", None),
            defaults,
            |e| matches!(e, ProtocolError::InvalidUtf8),
            1007,
        )
        .await;
        // Across fragments: "\xc3" then "(" is not a character.
        let mut bytes = frame(false, 0x1, b"ok \xc3", None);
        bytes.extend(frame(true, 0x0, b"(", None));
        violation(
            bytes,
            defaults,
            |e| matches!(e, ProtocolError::InvalidUtf8),
            1007,
        )
        .await;
        // A truncated character at the end of the message.
        violation(
            frame(true, 0x1, b"caf\xc3", None),
            defaults,
            |e| matches!(e, ProtocolError::InvalidUtf8),
            1007,
        )
        .await;
        // In a close reason.
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"\xff");
        violation(
            frame(true, 0x8, &payload, None),
            defaults,
            |e| matches!(e, ProtocolError::InvalidCloseReason),
            1007,
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn invalid_utf8_fails_before_the_frame_is_complete() {
    // The header announces 1000 bytes; only 10 arrive, the 4th invalid.
    // The rest never comes, so only an early check can end this test.
    let mut bytes = vec![0x81, 126, 0x03, 0xe8];
    bytes.extend_from_slice(b"abc\xffdefghi");
    within(violation(
        bytes,
        defaults,
        |e| matches!(e, ProtocolError::InvalidUtf8),
        1007,
    ))
    .await;
}

#[tokio::test]
async fn control_frames_between_fragments_are_handled() {
    within(async {
        let server = Scripted::start(|mut s| async move {
            let req = read_request(&mut s).await;
            let mut out = response_101(req.key());
            out.extend(frame(false, 0x1, b"h\xc3", None));
            out.extend(frame(true, 0x9, b"p1", None));
            out.extend(frame(false, 0x0, b"\xa9", None));
            out.extend(frame(true, 0xA, b"unsolicited", None));
            out.extend(frame(true, 0x0, b"llo", None));
            s.write_all(&out).await.unwrap();
            // The pong to the ping arrives, then the client's close.
            let mut engine = wsclient::proto::Engine::new(
                wsclient::proto::Role::Server,
                wsclient::proto::Config::default(),
            );
            let mut buf = req.leftover;
            let pong = loop {
                if let Some(m) = engine.receive(&mut buf).unwrap() {
                    break m;
                }
                buf.reserve(1024);
                let n = tokio::io::AsyncReadExt::read_buf(&mut s, &mut buf)
                    .await
                    .unwrap();
                assert!(n > 0, "EOF before the pong");
            };
            assert_eq!(pong, Message::Pong(Bytes::from_static(b"p1")));
            let close = read_close(&mut s, buf).await;
            assert_eq!(close.map(|f| f.code), Some(CloseCode::NORMAL));
            s.write_all(&close_frame(1000, "")).await.unwrap();
        })
        .await;
        let (mut ws, _) = wsclient::connect(&server.url("/")).await.unwrap();
        assert_eq!(
            next_msg(&mut ws).await,
            Message::Ping(Bytes::from_static(b"p1"))
        );
        assert_eq!(
            next_msg(&mut ws).await,
            Message::Pong(Bytes::from_static(b"unsolicited"))
        );
        assert_eq!(next_msg(&mut ws).await, Message::text("h\u{e9}llo"));
        ws.close(CloseCode::NORMAL, "").await.unwrap();
        server.join().await;
    })
    .await;
}

#[tokio::test]
async fn server_that_never_ends_tcp_after_close_is_bounded() {
    within(async {
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let server = Scripted::start(|mut s| async move {
            let req = read_request(&mut s).await;
            s.write_all(&response_101(req.key())).await.unwrap();
            let close = read_close(&mut s, req.leftover).await;
            assert_eq!(close.map(|f| f.code), Some(CloseCode(4100)));
            s.write_all(&close_frame(4100, "ok")).await.unwrap();
            // Keep TCP open until the test is over.
            let _ = done_rx.await;
        })
        .await;
        let limit = Duration::from_millis(300);
        let (mut ws, _) = ConnectOptions::new(server.url("/"))
            .close_timeout(limit)
            .connect()
            .await
            .unwrap();
        let started = Instant::now();
        // The close handshake completes; waiting for the server's EOF is
        // bounded by the close timeout and is not an error.
        ws.close(CloseCode(4100), "").await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(ws.close_code(), CloseCode(4100));
        assert_ended(&mut ws).await;
        done_tx.send(()).unwrap();
        server.join().await;
    })
    .await;
}

// ---------------------------------------------------------------------------
// Resets
// ---------------------------------------------------------------------------

/// Ends `s` with a TCP RST (SO_LINGER 0, then close).
fn reset(s: TcpStream) {
    s.set_zero_linger().unwrap();
    drop(s);
}

#[tokio::test]
async fn reset_during_close_is_an_error_not_a_panic() {
    within(async {
        let server = Scripted::start(|mut s| async move {
            let req = read_request(&mut s).await;
            s.write_all(&response_101(req.key())).await.unwrap();
            // Wait for the client's close frame, then reset instead of
            // answering it.
            let close = read_close(&mut s, req.leftover).await;
            assert_eq!(close.map(|f| f.code), Some(CloseCode(4000)));
            reset(s);
        })
        .await;
        let (mut ws, _) = wsclient::connect(&server.url("/")).await.unwrap();
        let err = ws.close(CloseCode(4000), "bye").await.unwrap_err();
        match &err {
            Error::Io(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e:?}"),
            Error::AbnormalClosure => {}
            other => panic!("expected a reset (Io) or AbnormalClosure, got {other:?}"),
        }
        assert_eq!(err.close_code(), Some(CloseCode::ABNORMAL));
        assert_ended(&mut ws).await;
        assert_eq!(ws.close_code(), CloseCode::ABNORMAL);
        server.join().await;
    })
    .await;
}

#[tokio::test]
async fn reset_after_the_close_handshake_ends_the_stream_cleanly() {
    within(async {
        let server = Scripted::start(|mut s| async move {
            let req = read_request(&mut s).await;
            let mut out = response_101(req.key());
            out.extend(close_frame(1001, "going"));
            s.write_all(&out).await.unwrap();
            let echo = read_close(&mut s, req.leftover).await;
            assert_eq!(echo.map(|f| f.code), Some(CloseCode::GOING_AWAY));
            reset(s);
        })
        .await;
        let (mut ws, _) = wsclient::connect(&server.url("/")).await.unwrap();
        assert_eq!(
            next_msg(&mut ws).await,
            Message::Close(Some(CloseFrame::new(1001, "going")))
        );
        // The close handshake is done; how TCP ends no longer matters.
        assert_ended(&mut ws).await;
        assert_eq!(ws.close_code(), CloseCode::GOING_AWAY);
        server.join().await;
    })
    .await;
}

#[tokio::test]
async fn reset_on_an_open_connection_is_an_error() {
    within(async {
        let (reset_tx, reset_rx) = oneshot::channel::<()>();
        let server = Scripted::start(|mut s| async move {
            let req = read_request(&mut s).await;
            s.write_all(&response_101(req.key())).await.unwrap();
            reset_rx.await.unwrap();
            reset(s);
        })
        .await;
        let (mut ws, _) = wsclient::connect(&server.url("/")).await.unwrap();
        reset_tx.send(()).unwrap();
        let err = next_err(&mut ws).await;
        match &err {
            Error::Io(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e:?}"),
            Error::AbnormalClosure => {}
            other => panic!("expected a reset (Io) or AbnormalClosure, got {other:?}"),
        }
        assert_ended(&mut ws).await;
        assert_eq!(ws.close_code(), CloseCode::ABNORMAL);
        server.join().await;
    })
    .await;
}

// ---------------------------------------------------------------------------
// Backpressure
// ---------------------------------------------------------------------------

/// How long a send may make no progress before the transport is taken to
/// be full. Only ever waited out once per test, at the end.
const STALL: Duration = Duration::from_millis(400);
/// The most a client may accept before stalling, with the server reading
/// nothing: far above the kernel's socket buffers (a few MiB on loopback).
const UNBOUNDED: usize = 64 << 20;
const MSG: usize = 16 << 10;

/// A server that completes the upgrade, then reads nothing until released;
/// after release it reads everything until the client hangs up.
async fn never_reading_server() -> (Scripted, oneshot::Sender<()>) {
    let (release_tx, release_rx) = oneshot::channel::<()>();
    // A small receive buffer (inherited by the accepted socket) makes the
    // stall come sooner.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 << 10).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(8).unwrap();
    let server = Scripted::start_on(listener, |mut s| async move {
        let req = read_request(&mut s).await;
        s.write_all(&response_101(req.key())).await.unwrap();
        let _ = release_rx.await;
        drain_to_eof(&mut s).await;
    });
    (server, release_tx)
}

fn socket_config(write_buffer_size: usize) -> SocketConfig {
    SocketConfig {
        write_buffer_size,
        ..SocketConfig::default()
    }
}

/// `feed` (no flush): `poll_ready` must write out and then wait once the
/// engine holds `write_buffer_size` bytes, instead of queueing forever.
#[tokio::test]
async fn feed_to_a_server_that_never_reads_stalls_with_bounded_buffer() {
    within(async {
        let (server, release) = never_reading_server().await;
        let write_buffer_size = 64 << 10;
        let (mut ws, _) = ConnectOptions::new(server.url("/"))
            .socket_config(socket_config(write_buffer_size))
            .connect()
            .await
            .unwrap();
        let payload = Bytes::from(vec![0x5a; MSG]);
        let bound = write_buffer_size + MSG + 14;
        let mut accepted = 0usize;
        loop {
            match tokio::time::timeout(STALL, ws.feed(Message::Binary(payload.clone()))).await {
                Ok(r) => {
                    r.unwrap();
                    accepted += MSG;
                }
                Err(_) => break,
            }
            let queued = ws.engine().output().len();
            assert!(queued <= bound, "{queued} bytes queued, bound {bound}");
            assert!(
                accepted < UNBOUNDED,
                "accepted {accepted} bytes without ever blocking"
            );
        }
        assert!(accepted > 0, "stalled before the first message");
        assert!(ws.engine().output().len() <= bound);

        // Once the server reads, the queued output drains.
        release.send(()).unwrap();
        ws.flush().await.unwrap();
        assert!(!ws.engine().has_output());
        drop(ws);
        server.join().await;
    })
    .await;
}

/// `send` (flushing each message): it stops completing once the socket is
/// full, holding at most the message in flight.
#[tokio::test]
async fn send_to_a_server_that_never_reads_stalls_with_bounded_buffer() {
    within(async {
        let (server, release) = never_reading_server().await;
        let write_buffer_size = SocketConfig::default().write_buffer_size;
        let (mut ws, _) = wsclient::connect(&server.url("/")).await.unwrap();
        let payload = Bytes::from(vec![0xa5; MSG]);
        let bound = write_buffer_size + MSG + 14;
        let mut accepted = 0usize;
        loop {
            match tokio::time::timeout(STALL, ws.send(Message::Binary(payload.clone()))).await {
                Ok(r) => {
                    r.unwrap();
                    accepted += MSG;
                    assert!(!ws.engine().has_output(), "send returned before flushing");
                }
                Err(_) => break,
            }
            assert!(
                accepted < UNBOUNDED,
                "accepted {accepted} bytes without ever blocking"
            );
        }
        assert!(accepted > 0, "stalled before the first message");
        let queued = ws.engine().output().len();
        assert!(queued <= bound, "{queued} bytes queued, bound {bound}");
        assert!(
            queued <= MSG + 14,
            "more than the message in flight is queued: {queued}"
        );

        release.send(()).unwrap();
        ws.flush().await.unwrap();
        assert!(!ws.engine().has_output());
        drop(ws);
        server.join().await;
    })
    .await;
}
