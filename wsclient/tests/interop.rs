//! Interoperability tests against real WebSocket servers from other
//! implementations: Python `websockets` and Node `ws` (see `peers/README.md`).
//!
//! Every scenario is an `async fn(PeerKind)`; the `per_peer!` macro turns it
//! into one test per peer (`python::NAME` and `node::NAME`), so a failure
//! names the implementation it happened against. Each body runs under a
//! timeout so a hang fails instead of blocking the suite.

mod support;

use std::io::ErrorKind;

use wsclient::handshake::HandshakeError;
use wsclient::proto::ProtocolError;
use wsclient::{CloseCode, CloseFrame, ConnectOptions, Error, Message, Phase};

use support::peers::{Peer, PeerKind, PeerOptions, binary_payload, fragment_sizes, text_payload};
use support::{
    assert_bytes_eq, assert_ended, big_binary_payload, big_text_payload, json_str_field, next_err,
    next_msg, within, within_for,
};

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
    echo_text_sizes,
    echo_binary_sizes,
    echo_16_mib_text,
    echo_16_mib_binary,
    burst_of_messages,
    fragmented_text,
    fragmented_binary,
    server_ping_is_answered,
    client_ping_gets_pong,
    server_close_with_code_and_reason,
    client_close_with_code_and_reason,
    subprotocol_negotiated,
    subprotocol_none_in_common,
    custom_headers_reach_server,
    reject_403,
    reject_429_retry_after,
    unknown_path_is_404,
    drop_mid_message,
    invalid_header_refused_before_connecting,
    client_limits_enforced_against_peer,
    peer_limit_closes_with_1009,
    close_against_silent_server_times_out,
    server_closes_after_echoing,
    server_close_without_code,
    server_invalid_close_frames_fail_with_1002,
);

/// The boundary sizes of the frame length encodings, 1 MiB, and just over
/// 1 MiB (masked and written a 1 MiB chunk at a time).
const SIZES: [usize; 8] = [0, 1, 125, 126, 65535, 65536, 1 << 20, (1 << 20) + 3];

fn start(kind: PeerKind) -> Peer {
    Peer::start(kind, &PeerOptions::default())
}

async fn echo_text_sizes(kind: PeerKind) {
    let peer = start(kind);
    within(async {
        let (mut ws, _) = wsclient::connect(&peer.url("/echo")).await.unwrap();
        for n in SIZES {
            let text = text_payload(n);
            ws.send(text.as_str()).await.unwrap();
            match next_msg(&mut ws).await {
                Message::Text(t) => {
                    assert_bytes_eq(t.as_bytes(), text.as_bytes(), &format!("{kind} text {n}"))
                }
                other => panic!("{kind}: text {n} echoed as {other:?}"),
            }
        }
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    })
    .await;
}

async fn echo_binary_sizes(kind: PeerKind) {
    let peer = start(kind);
    within(async {
        let (mut ws, _) = wsclient::connect(&peer.url("/echo")).await.unwrap();
        for n in SIZES {
            let data = binary_payload(n);
            ws.send(data.clone()).await.unwrap();
            match next_msg(&mut ws).await {
                Message::Binary(b) => assert_bytes_eq(&b, &data, &format!("{kind} binary {n}")),
                other => panic!("{kind}: binary {n} echoed as {other:?}"),
            }
        }
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    })
    .await;
}

/// 16 MiB is exactly the default frame limit (16 MiB frame / 64 MiB
/// message), so the echo must pass with default options.
const BIG: usize = 16 << 20;

/// The 16 MiB round trips get a longer bound than [`support::TEST_TIMEOUT`]:
/// in a debug build the client's UTF-8 validation (`simdutf8`, compiled
/// without optimizations) runs at about 6 MB/s on this text, so 16 MiB of
/// text costs ~3 s of CPU on an idle machine (~0.2 s with
/// `[profile.dev.package.simdutf8] opt-level = 3` in the workspace manifest).
const BIG_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The 16 MiB round trips run one at a time (they are CPU-bound on both
/// ends), so that on a small machine they do not starve each other; the
/// wait for the lock is outside each test's timeout.
static BIG_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The fast payload builders produce exactly the peers' payloads.
#[test]
fn big_payload_builders_match_the_peer_rules() {
    for n in (0..200).chain([4095, 4096, 65_536, 100_003]) {
        assert_eq!(big_text_payload(n), text_payload(n), "text {n}");
        assert_eq!(big_binary_payload(n), binary_payload(n), "binary {n}");
    }
}

async fn echo_16_mib_text(kind: PeerKind) {
    let peer = start(kind);
    let text = big_text_payload(BIG);
    let _one_at_a_time = BIG_LOCK.lock().await;
    within_for(BIG_TIMEOUT, async {
        let (mut ws, _) = wsclient::connect(&peer.url("/echo")).await.unwrap();
        ws.send(text.as_str()).await.unwrap();
        match next_msg(&mut ws).await {
            Message::Text(t) => assert_bytes_eq(t.as_bytes(), text.as_bytes(), "16 MiB text"),
            other => panic!("{kind}: 16 MiB text echoed as {other}"),
        }
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    })
    .await;
}

async fn echo_16_mib_binary(kind: PeerKind) {
    let peer = start(kind);
    let data = bytes::Bytes::from(big_binary_payload(BIG));
    let _one_at_a_time = BIG_LOCK.lock().await;
    within_for(BIG_TIMEOUT, async {
        let (mut ws, _) = wsclient::connect(&peer.url("/echo")).await.unwrap();
        ws.send(data.clone()).await.unwrap();
        match next_msg(&mut ws).await {
            Message::Binary(b) => assert_bytes_eq(&b, &data, "16 MiB binary"),
            other => panic!("{kind}: 16 MiB binary echoed as {other}"),
        }
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    })
    .await;
}

/// Many small messages arriving back to back (several frames per read).
async fn burst_of_messages(kind: PeerKind) {
    let peer = start(kind);
    within(async {
        let url = peer.url("/send?size=100&count=500&type=text");
        let (mut ws, _) = wsclient::connect(&url).await.unwrap();
        let want = text_payload(100);
        for i in 0..500 {
            match next_msg(&mut ws).await {
                Message::Text(t) => assert_eq!(t.as_str(), want, "{kind}: message {i}"),
                other => panic!("{kind}: message {i} is {other:?}"),
            }
        }
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    })
    .await;
}

/// True when some fragment boundary of `/fragmented?size=n&count=k` falls
/// inside a multi-byte character of the text payload.
fn splits_a_char(n: usize, k: usize) -> bool {
    let text = text_payload(n);
    let mut at = 0;
    fragment_sizes(n, k).into_iter().any(|len| {
        at += len;
        at < n && !text.is_char_boundary(at)
    })
}

async fn fragmented_text(kind: PeerKind) {
    let peer = start(kind);
    // (size, frames): one byte per frame; uneven splits; empty frames
    // (k > n); one unfragmented frame; an empty message in 3 frames; a
    // large message in many frames.
    let cases = [
        (19, 19),
        (1024, 4),
        (100, 6),
        (5, 9),
        (37, 1),
        (0, 3),
        (300_000, 33),
    ];
    assert!(splits_a_char(19, 19) && splits_a_char(100, 6) && splits_a_char(300_000, 33));
    within(async {
        for (n, k) in cases {
            let url = peer.url(&format!("/fragmented?size={n}&count={k}&type=text"));
            let (mut ws, _) = wsclient::connect(&url).await.unwrap();
            let want = text_payload(n);
            match next_msg(&mut ws).await {
                Message::Text(t) => {
                    assert_bytes_eq(
                        t.as_bytes(),
                        want.as_bytes(),
                        &format!("{kind} text {n}/{k}"),
                    );
                }
                other => panic!("{kind}: fragmented text {n}/{k} arrived as {other:?}"),
            }
            // The connection is still usable afterwards.
            ws.send("after").await.unwrap();
            assert_eq!(next_msg(&mut ws).await, Message::text("after"));
            ws.close(CloseCode::NORMAL, "").await.unwrap();
        }
    })
    .await;
}

async fn fragmented_binary(kind: PeerKind) {
    let peer = start(kind);
    let cases = [(1024, 4), (10, 10), (3, 8), (70_000, 3), (0, 2), (1, 1)];
    within(async {
        for (n, k) in cases {
            let url = peer.url(&format!("/fragmented?size={n}&count={k}&type=binary"));
            let (mut ws, _) = wsclient::connect(&url).await.unwrap();
            match next_msg(&mut ws).await {
                Message::Binary(b) => {
                    assert_bytes_eq(&b, &binary_payload(n), &format!("{kind} binary {n}/{k}"));
                }
                other => panic!("{kind}: fragmented binary {n}/{k} arrived as {other:?}"),
            }
            ws.close(CloseCode::NORMAL, "").await.unwrap();
        }
    })
    .await;
}

async fn server_ping_is_answered(kind: PeerKind) {
    let peer = start(kind);
    within(async {
        let (mut ws, _) = wsclient::connect(&peer.url("/ping?data=hello-42"))
            .await
            .unwrap();
        // The ping is shown to the user, and answered by the library: the
        // server confirms the matching pong with a text message.
        assert_eq!(
            next_msg(&mut ws).await,
            Message::Ping("hello-42".as_bytes().into())
        );
        assert_eq!(next_msg(&mut ws).await, Message::text("pong:hello-42"));
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    })
    .await;
}

async fn client_ping_gets_pong(kind: PeerKind) {
    let peer = start(kind);
    within(async {
        let (mut ws, _) = wsclient::connect(&peer.url("/echo")).await.unwrap();
        ws.send(Message::Ping("are you there".as_bytes().into()))
            .await
            .unwrap();
        assert_eq!(
            next_msg(&mut ws).await,
            Message::Pong("are you there".as_bytes().into())
        );
        // A 125-byte ping (the control frame maximum).
        let big = bytes::Bytes::from(vec![b'p'; 125]);
        ws.send(Message::Ping(big.clone())).await.unwrap();
        assert_eq!(next_msg(&mut ws).await, Message::Pong(big));
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    })
    .await;
}

async fn server_close_with_code_and_reason(kind: PeerKind) {
    let peer = start(kind);
    within(async {
        let (mut ws, _) = wsclient::connect(&peer.url("/close?code=4001&reason=bye"))
            .await
            .unwrap();
        assert_eq!(
            next_msg(&mut ws).await,
            Message::Close(Some(CloseFrame::new(4001, "bye")))
        );
        assert_ended(&mut ws).await;
        assert_eq!(ws.close_code(), CloseCode(4001));
        assert_eq!(ws.peer_close(), Some(&CloseFrame::new(4001, "bye")));
        // The library echoed the code (RFC 6455 section 5.5.1).
        assert_eq!(
            ws.engine().close_sent().map(|f| f.code),
            Some(CloseCode(4001))
        );
    })
    .await;
}

async fn client_close_with_code_and_reason(kind: PeerKind) {
    let peer = start(kind);
    within(async {
        let (mut ws, _) = wsclient::connect(&peer.url("/echo")).await.unwrap();
        ws.send("before close").await.unwrap();
        // `close` must finish on the peer's reply, well before the 5 s close
        // timeout (the test's own timeout is shorter than that).
        ws.close(CloseCode(4002), "done").await.unwrap();
        assert_eq!(ws.peer_close().map(|f| f.code), Some(CloseCode(4002)));
        assert_eq!(ws.close_code(), CloseCode(4002));
        assert_ended(&mut ws).await;
        // Nothing can be sent any more.
        assert!(ws.send("late").await.is_err());
    })
    .await;
}

async fn subprotocol_negotiated(kind: PeerKind) {
    let opts = PeerOptions {
        subprotocols: vec!["chat.v1".into(), "chat.v2".into()],
        ..PeerOptions::default()
    };
    let peer = Peer::start(kind, &opts);
    within(async {
        let (mut ws, resp) = ConnectOptions::new(peer.url("/headers"))
            .subprotocol("chat.v3")
            .subprotocol("chat.v2")
            .connect()
            .await
            .unwrap();
        assert_eq!(resp.subprotocol(), Some("chat.v2"), "{kind}");
        let json = next_msg(&mut ws).await;
        let json = json.as_text().expect("headers JSON is text");
        assert_eq!(
            json_str_field(json, "subprotocol").as_deref(),
            Some("chat.v2"),
            "{json}"
        );
        assert_eq!(
            json_str_field(json, "sec-websocket-protocol").as_deref(),
            Some("chat.v3, chat.v2"),
            "{json}"
        );
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    })
    .await;
}

async fn subprotocol_none_in_common(kind: PeerKind) {
    let opts = PeerOptions {
        subprotocols: vec!["chat.v1".into()],
        ..PeerOptions::default()
    };
    let peer = Peer::start(kind, &opts);
    within(async {
        let (mut ws, resp) = ConnectOptions::new(peer.url("/echo"))
            .subprotocol("x.a")
            .subprotocol("x.b")
            .connect()
            .await
            .unwrap();
        assert_eq!(resp.subprotocol(), None, "{kind}");
        assert!(!resp.headers().contains_key("sec-websocket-protocol"));
        ws.send("still works").await.unwrap();
        assert_eq!(next_msg(&mut ws).await, Message::text("still works"));
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    })
    .await;
}

async fn custom_headers_reach_server(kind: PeerKind) {
    let peer = start(kind);
    within(async {
        let (mut ws, resp) = ConnectOptions::new(peer.url("/headers?q=1"))
            .header("Cookie", "session=abc; theme=dark")
            .header("Authorization", "Bearer t0k3n")
            .header("X-Multi", "one")
            .header("X-Multi", "two")
            .origin("http://example.test")
            .connect()
            .await
            .unwrap();
        assert_eq!(resp.status(), 101);
        let msg = next_msg(&mut ws).await;
        let json = msg.as_text().expect("headers JSON is text");
        let field = |k: &str| json_str_field(json, k);
        assert_eq!(
            field("cookie").as_deref(),
            Some("session=abc; theme=dark"),
            "{json}"
        );
        assert_eq!(
            field("authorization").as_deref(),
            Some("Bearer t0k3n"),
            "{json}"
        );
        assert_eq!(field("x-multi").as_deref(), Some("one, two"), "{json}");
        assert_eq!(
            field("origin").as_deref(),
            Some("http://example.test"),
            "{json}"
        );
        assert_eq!(field("path").as_deref(), Some("/headers?q=1"), "{json}");
        assert_eq!(
            field("host"),
            Some(format!("127.0.0.1:{}", peer.port)),
            "{json}"
        );
        assert_eq!(
            field("sec-websocket-version").as_deref(),
            Some("13"),
            "{json}"
        );
        assert!(json.contains("\"subprotocol\":null"), "{json}");
        // Each header is sent once.
        assert_eq!(json.matches("\"cookie\"").count(), 1, "{json}");
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    })
    .await;
}

async fn reject_403(kind: PeerKind) {
    let peer = start(kind);
    within(async {
        let err = wsclient::connect(&peer.url("/reject?status=403"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Handshake(HandshakeError::Rejected(_))),
            "{err:?}"
        );
        assert_eq!(err.code(), 7);
        assert_eq!(err.phase(), Some(Phase::Upgrade));
        let r = err.rejected().expect("rejected");
        assert_eq!(r.status(), 403);
        assert_eq!(r.response.headers()["x-reject"], "yes");
        assert!(
            r.response.body().starts_with(b"rejected 403"),
            "{:?}",
            r.response.body()
        );
        assert_eq!(r.retry_after(), None);
        assert!(err.to_string().contains("403"), "{err}");
    })
    .await;
}

async fn reject_429_retry_after(kind: PeerKind) {
    let peer = start(kind);
    within(async {
        let err = wsclient::connect(&peer.url("/reject?status=429&retry_after=7"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), 7, "{err:?}");
        let r = err.rejected().expect("rejected");
        assert_eq!(r.status(), 429);
        assert_eq!(r.retry_after(), Some(7));
        assert!(r.response.body().starts_with(b"rejected 429"));

        let err = wsclient::connect(&peer.url("/reject?status=503&retry_after=30"))
            .await
            .unwrap_err();
        let r = err.rejected().expect("rejected");
        assert_eq!(r.status(), 503);
        assert_eq!(r.retry_after(), Some(30));
    })
    .await;
}

async fn unknown_path_is_404(kind: PeerKind) {
    let peer = start(kind);
    within(async {
        let err = wsclient::connect(&peer.url("/no-such-path"))
            .await
            .unwrap_err();
        let r = err.rejected().unwrap_or_else(|| panic!("{kind}: {err:?}"));
        assert_eq!(r.status(), 404);
        assert!(r.response.body().starts_with(b"rejected 404"));
    })
    .await;
}

async fn drop_mid_message(kind: PeerKind) {
    let peer = start(kind);
    within(async {
        let (mut ws, _) = wsclient::connect(&peer.url("/drop-mid-message"))
            .await
            .unwrap();
        let err = next_err(&mut ws).await;
        match &err {
            Error::AbnormalClosure => {}
            Error::Io(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof
                ) => {}
            other => panic!("{kind}: expected AbnormalClosure or an I/O error, got {other:?}"),
        }
        assert_eq!(err.close_code(), Some(CloseCode::ABNORMAL));
        assert_ended(&mut ws).await;
        assert_eq!(ws.close_code(), CloseCode::ABNORMAL);
    })
    .await;
}

async fn invalid_header_refused_before_connecting(kind: PeerKind) {
    // Against the peer: refused, whatever the server would say.
    let peer = start(kind);
    within(async {
        for (name, value) in [
            ("X-Evil", "a\r\nInjected: 1"),
            ("X-Evil", "line\nbreak"),
            ("Bad Name", "v"),
        ] {
            let err = ConnectOptions::new(peer.url("/headers"))
                .header(name, value)
                .connect()
                .await
                .unwrap_err();
            match &err {
                Error::Handshake(HandshakeError::InvalidHeader { name: n }) => assert_eq!(n, name),
                other => {
                    panic!("{kind}: {name:?}: {value:?}: expected InvalidHeader, got {other:?}")
                }
            }
            assert_eq!(err.code(), 8);
        }
    })
    .await;

    // Against a bare listener: no TCP connection was even attempted (a
    // loopback connect completes in the kernel, so it would be queued).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    within_for(std::time::Duration::from_secs(2), async {
        let err = ConnectOptions::new(url)
            .header("X-Ok", "fine")
            .header("X-Evil", "a\r\nInjected: 1")
            .connect()
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Handshake(HandshakeError::InvalidHeader { .. })),
            "{err:?}"
        );
    })
    .await;
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("a connection was made despite the invalid header: {other:?}"),
    }
}

async fn client_limits_enforced_against_peer(kind: PeerKind) {
    let peer = start(kind);
    within(async {
        // A 1001-byte frame against a 1000-byte frame limit.
        let (mut ws, _) = ConnectOptions::new(peer.url("/send?size=1001&count=1&type=binary"))
            .max_frame_size(1000)
            .connect()
            .await
            .unwrap();
        let err = next_err(&mut ws).await;
        assert!(
            matches!(
                err,
                Error::Protocol(ProtocolError::FrameTooLarge {
                    size: 1001,
                    max: 1000
                })
            ),
            "{kind}: {err:?}"
        );
        assert_eq!(err.close_code(), Some(CloseCode::MESSAGE_TOO_BIG));
        // The peer answers our 1009 and ends the connection.
        assert_ended(&mut ws).await;
        assert_eq!(
            ws.engine().close_sent().map(|f| f.code),
            Some(CloseCode::MESSAGE_TOO_BIG)
        );

        // 5000 bytes in five 1000-byte frames against a 4000-byte message
        // limit.
        let (mut ws, _) =
            ConnectOptions::new(peer.url("/fragmented?size=5000&count=5&type=binary"))
                .max_message_size(4000)
                .connect()
                .await
                .unwrap();
        let err = next_err(&mut ws).await;
        assert!(
            matches!(
                err,
                Error::Protocol(ProtocolError::MessageTooLarge { max: 4000 })
            ),
            "{kind}: {err:?}"
        );
        assert_eq!(err.close_code(), Some(CloseCode::MESSAGE_TOO_BIG));
        assert_ended(&mut ws).await;
    })
    .await;
}

async fn peer_limit_closes_with_1009(kind: PeerKind) {
    let peer = Peer::start_with_args(kind, &PeerOptions::default(), &["--max-size", "1000"]);
    within(async {
        let (mut ws, _) = wsclient::connect(&peer.url("/echo")).await.unwrap();
        ws.send(vec![1u8; 1000]).await.unwrap();
        assert_eq!(next_msg(&mut ws).await, Message::binary(vec![1u8; 1000]));
        ws.send(vec![1u8; 1001]).await.unwrap();
        match next_msg(&mut ws).await {
            Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::MESSAGE_TOO_BIG, "{kind}"),
            other => panic!("{kind}: expected a 1009 close, got {other:?}"),
        }
        assert_ended(&mut ws).await;
        assert_eq!(ws.close_code(), CloseCode::MESSAGE_TOO_BIG);
    })
    .await;
}

async fn close_against_silent_server_times_out(kind: PeerKind) {
    let peer = start(kind);
    within(async {
        let limit = std::time::Duration::from_millis(300);
        let (mut ws, _) = ConnectOptions::new(peer.url("/silent"))
            .close_timeout(limit)
            .connect()
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let err = ws.close(CloseCode::NORMAL, "").await.unwrap_err();
        assert!(started.elapsed() >= limit);
        match err {
            Error::Timeout {
                phase: Phase::Close,
                after,
            } => assert_eq!(after, limit),
            ref other => panic!("{kind}: expected a close timeout, got {other:?}"),
        }
        assert_eq!(err.code(), 4);
        assert_ended(&mut ws).await;
    })
    .await;
}

async fn server_closes_after_echoing(kind: PeerKind) {
    let peer = start(kind);
    within(async {
        let (mut ws, _) = wsclient::connect(&peer.url("/close-after?n=2"))
            .await
            .unwrap();
        for m in ["one", "two"] {
            ws.send(m).await.unwrap();
            assert_eq!(next_msg(&mut ws).await, Message::text(m));
        }
        assert_eq!(
            next_msg(&mut ws).await,
            Message::Close(Some(CloseFrame::new(1000, "done")))
        );
        assert_ended(&mut ws).await;
        assert_eq!(ws.close_code(), CloseCode::NORMAL);
    })
    .await;
}

async fn server_close_without_code(kind: PeerKind) {
    let peer = start(kind);
    within(async {
        let (mut ws, _) = wsclient::connect(&peer.url("/close?code=none"))
            .await
            .unwrap();
        assert_eq!(next_msg(&mut ws).await, Message::Close(None));
        assert_ended(&mut ws).await;
        assert_eq!(ws.close_code(), CloseCode::NO_STATUS);
        // An empty close frame is answered with an empty one.
        assert_eq!(ws.engine().close_sent(), None);
    })
    .await;
}

/// Close frames the peer libraries would refuse to send, written raw: the
/// client fails the connection with 1002 (the peer then drops TCP).
async fn server_invalid_close_frames_fail_with_1002(kind: PeerKind) {
    let peer = start(kind);
    let long_reason = "r".repeat(130);
    within(async {
        for (query, want) in [
            ("code=999", ProtocolError::InvalidCloseCode(999)),
            ("code=1006", ProtocolError::InvalidCloseCode(1006)),
            ("code=5000", ProtocolError::InvalidCloseCode(5000)),
            (
                &*format!("code=1000&reason={long_reason}"),
                ProtocolError::ControlFrameTooLarge,
            ),
        ] {
            let url = peer.url(&format!("/close?{query}&raw=1"));
            let (mut ws, _) = wsclient::connect(&url).await.unwrap();
            match next_err(&mut ws).await {
                Error::Protocol(e) => assert_eq!(e, want, "{kind}: {query}"),
                other => panic!("{kind}: {query}: expected a protocol error, got {other:?}"),
            }
            assert_eq!(
                ws.engine().close_sent().map(|f| f.code),
                Some(CloseCode::PROTOCOL_ERROR)
            );
            assert_ended(&mut ws).await;
        }
    })
    .await;
}
