//! WebSockets over HTTP/2 (RFC 8441, `wsclient::http2`) against a real
//! HTTP/2 server of another implementation: Node's `node:http2` with the
//! extended CONNECT protocol enabled, its WebSocket frames read and written
//! by Node `ws`'s Receiver and Sender (`peers/h2_server.js`). Many
//! WebSockets on one connection, in clear (h2c) and over TLS (ALPN h2,
//! certificates made by the test), refusals and a server without RFC 8441.
#![cfg(feature = "http2")]

#[path = "support/pki.rs"]
mod pki;
mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pki::Pki;
use support::peers::{wait_for_port, workspace_root};
use support::{assert_json_fields, echo_and_close, next_text};
use wsclient::handshake::HandshakeError;
use wsclient::http2::Http2Connection;
use wsclient::{CloseCode, ConnectOptions, Error, Message};

/// `peers/h2_server.js` with `args`; killed when dropped.
struct H2Peer {
    child: Child,
    port: u16,
}

impl H2Peer {
    fn start(args: &[&str]) -> H2Peer {
        let mut child = Command::new("node")
            .arg(workspace_root().join("peers/h2_server.js"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node (run scripts/install-peers.sh)");
        let port = wait_for_port(&mut child, "node-http2").unwrap_or_else(|e| {
            let _ = child.kill();
            panic!("the HTTP/2 peer did not start: {e} (is scripts/install-peers.sh done?)")
        });
        H2Peer { child, port }
    }
}

impl Drop for H2Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_websockets_share_one_http2_connection() {
    let peer = H2Peer::start(&[]);
    let h2 = Http2Connection::connect(
        ConnectOptions::new(format!("ws://127.0.0.1:{}/echo", peer.port))
            .header("X-Token", "abc")
            .subprotocol("chat.v2")
            .subprotocol("chat.v1"),
    )
    .await
    .unwrap();
    // The request as the server saw it, on this connection.
    let (mut first, response) = h2.websocket("/headers?x=1").await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.raw().starts_with(b"HTTP/2 200\r\n"), "{response}");
    assert!(response.header("date").is_some(), "{response}");
    let seen = next_text(&mut first).await;
    let authority = format!("127.0.0.1:{}", peer.port);
    assert_json_fields(
        &seen,
        &[
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":path", "/headers?x=1"),
            (":scheme", "http"),
            (":authority", &authority),
            ("x-token", "abc"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-protocol", "chat.v2, chat.v1"),
        ],
    );
    echo_and_close(&mut first, "first").await;

    // Twenty more at once, each its own stream, all on the same connection.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let h2 = h2.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = h2.websocket("").await.unwrap();
            echo_and_close(&mut ws, &format!("stream {i}")).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (mut last, _) = h2.websocket("/headers").await.unwrap();
    let seen = next_text(&mut last).await;
    assert!(
        seen.contains(r#""sessions":1,"#),
        "one TCP connection: {seen}"
    );
    assert!(
        seen.contains(r#""streams":22"#),
        "22 WebSockets on it: {seen}"
    );
    last.close(CloseCode::NORMAL, "").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_over_http2_negotiates_h2_and_verifies_the_certificate() {
    let pki = Pki::new("h2");
    let cert = pki.server("server", &["localhost"]);
    let (c, k) = cert.pair();
    let peer = H2Peer::start(&[
        "--tls-cert",
        c.to_str().unwrap(),
        "--tls-key",
        k.to_str().unwrap(),
        "--subprotocols",
        "chat.v1",
    ]);
    let url = format!("wss://localhost:{}/echo", peer.port);
    let h2 = Http2Connection::connect(
        ConnectOptions::new(&url)
            .ca_file(&pki.ca)
            .subprotocol("chat.v2")
            .subprotocol("chat.v1"),
    )
    .await
    .unwrap();
    let (mut ws, response) = h2.websocket("").await.unwrap();
    assert_eq!(response.subprotocol(), Some("chat.v1"));
    echo_and_close(&mut ws, "tls").await;
    // Verification stays on: an unknown issuer is refused.
    let err = Http2Connection::connect(ConnectOptions::new(&url))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
}

#[tokio::test]
async fn a_refusal_keeps_its_status_headers_and_body() {
    let peer = H2Peer::start(&[]);
    let h2 = Http2Connection::connect(ConnectOptions::new(format!(
        "ws://127.0.0.1:{}/",
        peer.port
    )))
    .await
    .unwrap();
    let err = h2.websocket("/reject?status=429").await.unwrap_err();
    let response = err.response().expect("the refusal's response");
    assert_eq!(response.status(), 429);
    assert_eq!(response.header("x-reject"), Some(&b"yes"[..]));
    assert_eq!(response.body_start(), b"rejected 429");
    assert!(
        matches!(err, Error::Handshake(HandshakeError::Rejected(_))),
        "{err:?}"
    );
    // The connection is still usable for the next WebSocket.
    let (mut ws, _) = h2.websocket("/echo").await.unwrap();
    echo_and_close(&mut ws, "after a refusal").await;
}

#[tokio::test]
async fn a_server_without_extended_connect_is_a_typed_error() {
    let peer = H2Peer::start(&["--no-connect-protocol"]);
    let err = Http2Connection::connect(ConnectOptions::new(format!(
        "ws://127.0.0.1:{}/echo",
        peer.port
    )))
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::Handshake(HandshakeError::Http2Unsupported(_))),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_clients_share_a_session_and_reconnect_over_a_new_connection() {
    use support::log::{log, push, snapshot, wait_for};
    use wsclient::Client;
    use wsclient::http2::Http2Session;

    let peer = H2Peer::start(&[]);
    let port = peer.port.to_string();
    let base = format!("ws://127.0.0.1:{port}");
    let session = Http2Session::new(ConnectOptions::new(format!("{base}/")));
    let log = log();
    let mut conns = Vec::new();
    for i in 0..5 {
        let mut c = Client::with_options(
            ConnectOptions::new(format!("{base}/echo?client={i}")).via_http2(session.clone()),
        )
        .unwrap();
        let l = log.clone();
        c.on_connect(move |conn| push(&l, format!("connect {i} {:?}", conn.remote_addr())));
        c.on_websocket_connect(move |conn, response| {
            assert_eq!(response.status(), 200);
            conn.send(format!("hello {i}")).unwrap();
        });
        let l = log.clone();
        c.on_message(move |_, m| push(&l, format!("message {m}")));
        c.on_close(|conn| conn.reconnect(Duration::from_millis(50)));
        conns.push(c.connect());
    }
    let echoes = |l: &[String], n: usize| {
        (0..5).all(|i| {
            l.iter()
                .filter(|e| **e == format!("message hello {i}"))
                .count()
                == n
        })
    };
    wait_for(&log, "five echoes", |l| echoes(l, 1)).await;
    assert!(snapshot(&log).contains(&"connect 0 None".to_owned()));
    let (mut probe, _) = session.websocket("/headers").await.unwrap();
    let seen = next_text(&mut probe).await;
    assert!(
        seen.contains(r#""sessions":1,"#),
        "five clients, one connection: {seen}"
    );
    probe.close(CloseCode::NORMAL, "").await.unwrap();

    // The server restarts: every client reconnects, over one new HTTP/2
    // connection the session makes.
    drop(peer);
    let peer = H2Peer::start(&["--port", &port]);
    wait_for(&log, "five echoes again", |l| echoes(l, 2)).await;
    let (mut probe, _) = session.websocket("/headers").await.unwrap();
    let seen = next_text(&mut probe).await;
    assert!(
        seen.contains(r#""sessions":1,"#),
        "one new connection: {seen}"
    );
    probe.close(CloseCode::NORMAL, "").await.unwrap();
    for conn in conns {
        conn.close();
        tokio::time::timeout(Duration::from_secs(5), conn.finished())
            .await
            .unwrap();
    }
    drop(peer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_busy_websockets_keep_their_connection() {
    // Small messages on many streams at once: each WebSocket frame often
    // comes as two small DATA frames, and h2's budget against floods of
    // small frames closed the connection (ENHANCE_YOUR_CALM) at the
    // default 64 KiB window with 150 streams.
    let peer = H2Peer::start(&[]);
    let h2 = Http2Connection::connect(ConnectOptions::new(format!(
        "ws://127.0.0.1:{}/echo",
        peer.port
    )))
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let h2 = h2.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = h2.websocket("").await.unwrap();
            for j in 0..20 {
                let text = format!("{i}.{j}");
                ws.send(Message::text(text.clone())).await.unwrap();
                assert_eq!(next_text(&mut ws).await, text);
            }
            ws.close(CloseCode::NORMAL, "").await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(h2.is_open());
}

#[tokio::test]
async fn permessage_deflate_is_negotiated_over_http2() {
    let peer = H2Peer::start(&["--compression"]);
    let h2 = Http2Connection::connect(
        ConnectOptions::new(format!("ws://127.0.0.1:{}/echo", peer.port)).compression(true),
    )
    .await
    .unwrap();
    let (mut ws, response) = h2.websocket("").await.unwrap();
    let agreed = String::from_utf8_lossy(
        response
            .header("sec-websocket-extensions")
            .expect("the server accepted the offer"),
    )
    .into_owned();
    assert!(agreed.starts_with("permessage-deflate"), "{agreed}");
    // Every message comes back compressed (RSV1): the inflater reads them.
    let text = "héllo wörld ✓ ".repeat(20_000);
    ws.send(Message::text(text.clone())).await.unwrap();
    assert_eq!(next_text(&mut ws).await, text);
    echo_and_close(&mut ws, "compressed").await;
}
