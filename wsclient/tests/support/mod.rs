//! Shared helpers for `wsclient`'s integration tests.
//!
//! * [`peers`]: real peer servers (Python `websockets`, Node `ws`).
//! * [`log`]: a log of event-client callbacks and bounded waits on it.
//! * [`within`] / [`within_for`]: bound a test body so a hang fails the test
//!   instead of blocking the suite.
//! * [`next_msg`], [`assert_bytes_eq`]: small assertions on sockets and
//!   payloads.
//! * [`Scripted`]: a one-connection raw TCP server driven by a script, for
//!   fault cases no real server produces (bad accept keys, masked frames,
//!   resets...), with helpers to speak just enough HTTP and RFC 6455 by
//!   hand ([`read_request`], [`response_101`], [`frame`], [`read_close`]).
#![allow(dead_code)]

pub mod log;
pub mod peers;
pub mod ports;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use wsclient::proto::{CloseFrame, Config, Engine, Role};
use wsclient::{Error, Message, WebSocket};

/// The default bound on a test body (peer start-up excluded).
pub const TEST_TIMEOUT: Duration = Duration::from_secs(4);

/// Runs `f`, failing the test if it takes longer than [`TEST_TIMEOUT`].
pub async fn within<F: Future>(f: F) -> F::Output {
    within_for(TEST_TIMEOUT, f).await
}

/// Runs `f`, failing the test if it takes longer than `limit`.
pub async fn within_for<F: Future>(limit: Duration, f: F) -> F::Output {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("test body did not finish within {limit:?} (hang?)"),
    }
}

/// The next message of `ws`, panicking on an error or the end of the stream.
pub async fn next_msg<S>(ws: &mut WebSocket<S>) -> Message
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match ws.recv().await {
        Some(Ok(m)) => m,
        Some(Err(e)) => panic!("expected a message, got error {e:?}"),
        None => panic!("expected a message, the stream ended"),
    }
}

/// The next item of `ws`, which must be an error.
pub async fn next_err<S>(ws: &mut WebSocket<S>) -> Error
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match ws.recv().await {
        Some(Err(e)) => e,
        Some(Ok(m)) => panic!("expected an error, got message {m:?}"),
        None => panic!("expected an error, the stream ended"),
    }
}

/// The next message of `ws`, which must be text.
pub async fn next_text<S>(ws: &mut WebSocket<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match next_msg(ws).await {
        Message::Text(t) => t.as_str().to_owned(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Against an echo server: a text, a small binary and a 1 MiB + 3 byte
/// binary message (masked and read a chunk at a time; past HTTP/2's
/// initial flow-control windows) each come back whole; then a clean close
/// (1000) and the end of the stream.
pub async fn echo_and_close<S>(ws: &mut WebSocket<S>, tag: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::text(format!("hello {tag}")))
        .await
        .unwrap();
    assert_eq!(next_text(ws).await, format!("hello {tag}"), "{tag}");
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(next_msg(ws).await.as_payload(), &[0u8, 1, 2, 255], "{tag}");
    let big = peers::binary_payload((1 << 20) + 3);
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_bytes_eq(next_msg(ws).await.as_payload(), &big, tag);
    ws.close(wsclient::CloseCode::NORMAL, "").await.unwrap();
    assert_ended(ws).await;
    assert_eq!(ws.close_code(), wsclient::CloseCode::NORMAL, "{tag}");
}

/// Asserts that the stream of `ws` has ended (and stays ended).
pub async fn assert_ended<S>(ws: &mut WebSocket<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Some(item) = ws.recv().await {
        panic!("expected the end of the stream, got {item:?}");
    }
    assert!(ws.recv().await.is_none(), "stream yielded after its end");
}

/// Compares payloads without dumping megabytes on failure.
#[track_caller]
pub fn assert_bytes_eq(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    panic!(
        "{what}: payload mismatch: got {} bytes, want {} bytes, first difference at {:?}",
        got.len(),
        want.len(),
        first
    );
}

/// [`peers::text_payload`] built with bulk copies: the same bytes, but fast
/// enough in a debug build for multi-megabyte payloads.
pub fn big_text_payload(n: usize) -> String {
    let unit = peers::TEXT_UNIT;
    let mut s = unit.repeat(n / unit.len() + 1);
    let mut valid = n;
    while !s.is_char_boundary(valid) {
        valid -= 1;
    }
    s.truncate(valid);
    s.extend(std::iter::repeat_n('.', n - valid));
    s
}

/// [`peers::binary_payload`] built with bulk copies.
pub fn big_binary_payload(n: usize) -> Vec<u8> {
    let unit: Vec<u8> = (0..=255u8).collect();
    let mut v = unit.repeat(n / 256 + 1);
    v.truncate(n);
    v
}

/// The string value of `"key":"..."` in a compact JSON object (enough for
/// the peers' `/headers` reply without a JSON dependency). `None` when the
/// key is absent or its value is not a string.
pub fn json_str_field(json: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\":");
    let start = json.find(&needle)? + needle.len();
    let rest = json[start..].strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// Asserts that each `(key, value)` is a string field of the JSON object
/// `json` (as a `/headers` echo reports the request it saw).
pub fn assert_json_fields(json: &str, fields: &[(&str, &str)]) {
    for (key, want) in fields {
        assert_eq!(
            json_str_field(json, key).as_deref(),
            Some(*want),
            "{key} in {json}"
        );
    }
}

// ---------------------------------------------------------------------------
// Scripted raw TCP server
// ---------------------------------------------------------------------------

/// A raw TCP server on 127.0.0.1 that accepts ONE connection and runs a
/// script on it. Panics in the script surface in [`Scripted::join`].
pub struct Scripted {
    pub addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Scripted {
    /// Binds an ephemeral port and spawns `script` for the first accepted
    /// connection.
    pub async fn start<F, Fut>(script: F) -> Scripted
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Scripted::start_on(listener, script)
    }

    /// Like [`Scripted::start`] on a prepared listener.
    pub fn start_on<F, Fut>(listener: TcpListener, script: F) -> Scripted
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            script(stream).await;
        });
        Scripted {
            addr,
            task: Some(task),
        }
    }

    /// `ws://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Waits for the script to finish, re-raising its panic.
    pub async fn join(mut self) {
        let task = self.task.take().expect("joined once");
        if let Err(e) = task.await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
            panic!("scripted server task failed: {e}");
        }
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A received upgrade request: its head and the bytes read past it.
#[derive(Debug)]
pub struct RawRequest {
    pub head: String,
    pub leftover: BytesMut,
}

impl RawRequest {
    /// A header's value (case-insensitive name), the first if repeated.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The client's `Sec-WebSocket-Key`.
    pub fn key(&self) -> &str {
        self.header("Sec-WebSocket-Key")
            .expect("request has Sec-WebSocket-Key")
    }
}

/// Reads an HTTP request head (up to the blank line).
pub async fn read_request<S: AsyncRead + Unpin>(io: &mut S) -> RawRequest {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = buf.split_to(end + 4);
            let head = String::from_utf8(head.to_vec()).expect("request head is UTF-8");
            return RawRequest {
                head,
                leftover: buf,
            };
        }
        assert!(buf.len() < 64 << 10, "request head too large");
        let n = io.read_buf(&mut buf).await.expect("read request");
        assert!(n > 0, "client closed before the end of its request");
    }
}

/// A `101 Switching Protocols` answer for `key`.
pub fn response_101(key: &str) -> Vec<u8> {
    response_101_with_accept(&wsclient::handshake::accept_key(key.as_bytes()))
}

/// A `101 Switching Protocols` answer carrying `accept` verbatim.
pub fn response_101_with_accept(accept: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

/// One frame, encoded by hand (independently of the crate's encoder).
/// `opcode` is the 4-bit opcode; `mask` masks the payload with that key.
pub fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(if fin { 0x80 } else { 0 } | (opcode & 0x0F));
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// An unmasked close frame with `code` and `reason`.
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    frame(true, 0x8, &payload, None)
}

/// Reads the client's frames with the crate's engine in the server role
/// until a close frame arrives; returns it (`None` for a close frame
/// without a code). Data frames before it are skipped. Panics if the
/// connection ends first or the client breaks the protocol.
pub async fn read_close<S: AsyncRead + Unpin>(io: &mut S, mut buf: BytesMut) -> Option<CloseFrame> {
    let mut engine = Engine::new(Role::Server, Config::default());
    loop {
        match engine.receive(&mut buf) {
            Ok(Some(Message::Close(frame))) => return frame,
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => panic!("the client broke the protocol: {e}"),
        }
        buf.reserve(4096);
        let n = io.read_buf(&mut buf).await.expect("read client frames");
        assert!(n > 0, "connection ended before the client's close frame");
    }
}

/// Reads and discards until the peer ends the connection (EOF or error).
pub async fn drain_to_eof<S: AsyncRead + Unpin>(io: &mut S) {
    let mut sink = vec![0u8; 16 << 10];
    while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {}
}
