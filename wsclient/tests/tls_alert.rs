//! TLS failures on an ESTABLISHED `wss://` connection (messages already
//! exchanged), as the user sees them on the async socket and on the event
//! client:
//!
//! * a corrupted TLS record from the server side: a byte-level TCP relay in
//!   this file sits between the client and a real TLS WebSocket peer
//!   (Python `websockets` / Node `ws` with a run-time certificate) and, on
//!   command, flips a byte in the next server→client application-data
//!   record, so rustls fails to decrypt it (`bad_record_mac`);
//! * a REAL fatal alert from the server: the relay corrupts a
//!   client→server record instead, the server fails to decrypt it and
//!   answers `bad_record_mac` (Node and an in-test rustls server send the
//!   alert; Python's asyncio drops the connection without one);
//! * a forged plaintext fatal alert injected by the relay into the
//!   encrypted stream (no server has an API to send an alert at will on an
//!   established connection, and under TLS 1.3 alerts are encrypted);
//! * truncation: the server's `close_notify` (TLS shutdown) with no
//!   WebSocket close frame (an in-test rustls server), and a TCP FIN with
//!   neither (`close_notify` missing, the relay ends the stream).
//!
//! Every case is bounded by timeouts, so a hang fails the test.

#[path = "support/pki.rs"]
mod pki;
mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use support::peers::{Peer, PeerKind, PeerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::rustls;
use wsclient::transport::tls::TlsError;
use wsclient::{
    Client, CloseCode, ConnectOptions, Error, MaybeTlsStream, Message, Phase, ReconnectPolicy,
    WebSocket,
};

/// Bound on each awaited step.
const STEP: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// The relay
// ---------------------------------------------------------------------------

/// What the relay does to its newest connection (the server→client
/// direction unless said otherwise).
#[derive(Debug, Clone, Copy)]
enum Cmd {
    /// Flip a byte in the middle of the next application-data record.
    CorruptNext,
    /// The same in the client→server direction: the SERVER then fails to
    /// decrypt, and answers with a real (encrypted) fatal alert.
    CorruptNextUp,
    /// Write a plaintext fatal `bad_record_mac` alert record to the client.
    InjectAlert,
    /// End the stream to the client with a TCP FIN (no `close_notify`).
    Fin,
}

/// A plaintext TLS alert record: level fatal (2), `bad_record_mac` (20).
const PLAINTEXT_FATAL_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x14];

/// Command senders of one relayed connection: (server→client,
/// client→server).
type Senders = (mpsc::UnboundedSender<Cmd>, mpsc::UnboundedSender<Cmd>);

/// A TCP relay on 127.0.0.1 to `upstream` that forwards TLS records one by
/// one and can tamper with them.
struct Relay {
    addr: SocketAddr,
    senders: Arc<Mutex<Vec<Senders>>>,
    /// Records corrupted so far.
    corrupted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let senders: Arc<Mutex<Vec<Senders>>> = Arc::default();
        let corrupted = Arc::new(AtomicUsize::new(0));
        let (s, c) = (senders.clone(), corrupted.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (down_tx, down_rx) = mpsc::unbounded_channel();
                let (up_tx, up_rx) = mpsc::unbounded_channel();
                s.lock().unwrap().push((down_tx, up_tx));
                let (client_r, client_w) = client.into_split();
                let (server_r, server_w) = server.into_split();
                tokio::spawn(pump(client_r, server_w, up_rx, c.clone()));
                tokio::spawn(pump(server_r, client_w, down_rx, c.clone()));
            }
        });
        Relay {
            addr,
            senders,
            corrupted,
            task,
        }
    }

    /// Sends `cmd` to the newest connection.
    fn command(&self, cmd: Cmd) {
        let senders = self.senders.lock().unwrap();
        let (down, up) = senders.last().expect("the relay has a connection");
        let tx = if matches!(cmd, Cmd::CorruptNextUp) {
            up
        } else {
            down
        };
        tx.send(cmd).expect("the relay connection is alive");
    }

    /// Connections accepted so far.
    fn connections(&self) -> usize {
        self.senders.lock().unwrap().len()
    }

    fn url(&self, path: &str) -> String {
        format!("wss://127.0.0.1:{}{path}", self.addr.port())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One direction, forwarded record by record (5-byte TLS record header),
/// tampered with on command.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    corrupted: Arc<AtomicUsize>,
) {
    let mut buf = BytesMut::with_capacity(32 << 10);
    let mut corrupt = false;
    loop {
        while buf.len() >= 5 {
            let len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
            if buf.len() < 5 + len {
                break;
            }
            let mut record = buf.split_to(5 + len);
            // 23 = application_data (under TLS 1.3 every encrypted record).
            if corrupt && record[0] == 23 && len > 0 {
                record[5 + len / 2] ^= 0x55;
                corrupt = false;
                corrupted.fetch_add(1, Ordering::SeqCst);
            }
            if to.write_all(&record).await.is_err() {
                return;
            }
        }
        tokio::select! {
            // Commands first: one sent before the data it is about is
            // applied to that data, even when both are ready at once.
            biased;
            cmd = cmds.recv() => match cmd {
                Some(Cmd::CorruptNext | Cmd::CorruptNextUp) => corrupt = true,
                Some(Cmd::InjectAlert) => {
                    if to.write_all(&PLAINTEXT_FATAL_ALERT).await.is_err() {
                        return;
                    }
                }
                Some(Cmd::Fin) | None => {
                    let _ = to.shutdown().await;
                    return;
                }
            },
            n = from.read_buf(&mut buf) => {
                if !matches!(n, Ok(n) if n > 0) {
                    let _ = to.shutdown().await;
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

struct Setup {
    pki: pki::Pki,
    // Kept alive for the test.
    _peer: Peer,
    relay: Relay,
}

/// A TLS peer of `kind` (certificate for 127.0.0.1) behind a relay.
async fn setup(kind: PeerKind) -> Setup {
    let pki = pki::Pki::new(&format!("alert-{kind}"));
    let cert = pki.server("server", &["localhost", "127.0.0.1"]);
    let peer = Peer::start(
        kind,
        &PeerOptions {
            tls: Some(cert.pair()),
            ..PeerOptions::default()
        },
    );
    let relay = Relay::start(peer.addr()).await;
    Setup {
        pki,
        _peer: peer,
        relay,
    }
}

async fn connect(opts: ConnectOptions) -> WebSocket<MaybeTlsStream> {
    let (ws, _) = tokio::time::timeout(STEP, opts.connect())
        .await
        .expect("connect did not finish in time")
        .expect("connect");
    ws
}

/// Sends `text` and expects it echoed.
async fn echo(ws: &mut WebSocket<MaybeTlsStream>, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
    let got = tokio::time::timeout(STEP, ws.next())
        .await
        .expect("no echo in time")
        .expect("stream ended")
        .expect("read error");
    assert_eq!(got.as_text(), Some(text));
}

/// The next stream item, which must be an error, within [`STEP`].
async fn next_error(ws: &mut WebSocket<MaybeTlsStream>, what: &str) -> Error {
    match tokio::time::timeout(STEP, ws.next()).await {
        Err(_) => panic!("{what}: the socket hung instead of failing"),
        Ok(None) => panic!("{what}: the stream ended without an error"),
        Ok(Some(Ok(m))) => panic!("{what}: expected an error, got message {m:?}"),
        Ok(Some(Err(e))) => e,
    }
}

/// After an error: the stream has ended for good and sends are refused.
async fn assert_finished(ws: &mut WebSocket<MaybeTlsStream>, what: &str) {
    for _ in 0..2 {
        let item = tokio::time::timeout(STEP, ws.next())
            .await
            .unwrap_or_else(|_| panic!("{what}: the stream hung after its error"));
        assert!(
            item.is_none(),
            "{what}: stream yielded after its error: {item:?}"
        );
    }
    let err = ws
        .send(Message::text("after"))
        .await
        .expect_err("a send after the failure must be refused");
    assert!(matches!(err, Error::Closed), "{what}: {err:?}");
}

/// The rustls error inside an [`Error::Io`] of an open connection.
fn rustls_error(err: &Error, what: &str) -> rustls::Error {
    let Error::Io(io) = err else {
        panic!("{what}: expected Error::Io carrying the rustls error, got {err:?}");
    };
    io.get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .unwrap_or_else(|| panic!("{what}: the I/O error carries no rustls error: {io:?}"))
        .clone()
}

/// The common shape of a connection lost mid-stream: phase `Open`, closed
/// as 1006.
fn assert_lost_mid_stream(err: &Error, code: u16, what: &str) {
    assert_eq!(err.phase(), Some(Phase::Open), "{what}: {err:?}");
    assert_eq!(err.code(), code, "{what}: {err:?}");
    assert_eq!(
        err.close_code(),
        Some(CloseCode::ABNORMAL),
        "{what}: {err:?}"
    );
}

// ---------------------------------------------------------------------------
// The async socket
// ---------------------------------------------------------------------------

#[tokio::test]
async fn corrupted_record_mid_stream_fails_with_a_decrypt_error() {
    for kind in PeerKind::ALL {
        let what = format!("{kind}: corrupted record");
        let s = setup(kind).await;
        let mut ws = connect(ConnectOptions::new(s.relay.url("/echo")).ca_file(&s.pki.ca)).await;
        for i in 0..3 {
            echo(&mut ws, &format!("before {i}")).await;
        }
        s.relay.command(Cmd::CorruptNext);
        ws.send(Message::text("this echo gets corrupted"))
            .await
            .unwrap();
        let err = next_error(&mut ws, &what).await;
        assert_eq!(s.relay.corrupted.load(Ordering::SeqCst), 1, "{what}");
        assert_eq!(
            rustls_error(&err, &what),
            rustls::Error::DecryptError,
            "{what}"
        );
        // An I/O error of an open connection (code 11), not a handshake
        // failure (code 5, which the default reconnect rules never retry).
        assert_lost_mid_stream(&err, 11, &what);
        // The TLS detail is reachable through TlsError::from_io.
        let Error::Io(io) = err else { unreachable!() };
        let tls = TlsError::from_io(io).expect("a TLS error");
        assert!(matches!(tls, TlsError::Handshake(_)), "{what}: {tls:?}");
        assert_finished(&mut ws, &what).await;
    }
}

#[tokio::test]
async fn injected_plaintext_alert_mid_stream_is_a_typed_error() {
    let what = "plaintext alert";
    let s = setup(PeerKind::Python).await;
    let mut ws = connect(ConnectOptions::new(s.relay.url("/echo")).ca_file(&s.pki.ca)).await;
    echo(&mut ws, "before").await;
    s.relay.command(Cmd::InjectAlert);
    let err = next_error(&mut ws, what).await;
    let inner = rustls_error(&err, what);
    eprintln!("{what}: rustls says {inner:?}");
    // Under TLS 1.3 every record after the handshake must be encrypted: a
    // plaintext alert is a decrypt failure or a peer misbehaving, never a
    // (forged) alert taken at face value.
    assert!(
        matches!(
            inner,
            rustls::Error::DecryptError | rustls::Error::PeerMisbehaved(_)
        ),
        "{what}: {inner:?}"
    );
    assert_lost_mid_stream(&err, 11, what);
    assert_finished(&mut ws, what).await;
}

#[tokio::test]
async fn tcp_fin_without_close_notify_is_a_truncation_error() {
    for kind in PeerKind::ALL {
        let what = format!("{kind}: FIN without close_notify");
        let s = setup(kind).await;
        let mut ws = connect(ConnectOptions::new(s.relay.url("/echo")).ca_file(&s.pki.ca)).await;
        echo(&mut ws, "before").await;
        s.relay.command(Cmd::Fin);
        let err = next_error(&mut ws, &what).await;
        // rustls refuses a TCP end that TLS did not announce (a truncation
        // attack could otherwise cut a message at a frame boundary).
        let Error::Io(io) = &err else {
            panic!("{what}: expected Error::Io(UnexpectedEof), got {err:?}");
        };
        assert_eq!(
            io.kind(),
            std::io::ErrorKind::UnexpectedEof,
            "{what}: {io:?}"
        );
        assert_lost_mid_stream(&err, 11, &what);
        assert_finished(&mut ws, &what).await;
    }
}

/// An in-test rustls server: for each connection, the WebSocket upgrade
/// (this crate's server role), echo, and on the text `truncate` a TLS
/// `close_notify` without a WebSocket close frame; the TCP connection stays
/// open until the client ends it.
async fn close_notify_server(cert: &pki::Issued) -> (u16, JoinHandle<()>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(cert.server_config());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok((mut ws, _)) =
                    wsclient::server::accept(tls, &wsclient::server::AcceptOptions::default())
                        .await
                else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.as_text() == Some("truncate") {
                        let tls = ws.get_mut();
                        tls.get_mut().1.send_close_notify();
                        let _ = tls.flush().await;
                        // Keep TCP open (no FIN) until the client leaves.
                        let _ = tokio::time::timeout(STEP, support::drain_to_eof(tls)).await;
                        return;
                    }
                    if !msg.is_control() && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, task)
}

/// The server's side of a corrupted client record: a REAL fatal alert from
/// the server on an open connection. Which server sends what is recorded
/// in `expected`.
async fn server_alert_case(url: String, ca: &std::path::Path, relay: &Relay, what: &str) -> Error {
    let mut ws = connect(ConnectOptions::new(url).ca_file(ca)).await;
    echo(&mut ws, "before").await;
    relay.command(Cmd::CorruptNextUp);
    ws.send(Message::text("this message gets corrupted on its way"))
        .await
        .unwrap();
    let err = next_error(&mut ws, what).await;
    eprintln!("{what}: {err:?}");
    assert!(relay.corrupted.load(Ordering::SeqCst) >= 1, "{what}");
    assert_finished(&mut ws, what).await;
    err
}

#[tokio::test]
async fn server_alert_after_a_corrupted_client_record() {
    // The in-test rustls server (tokio-rustls flushes the alert before it
    // reports the error).
    let pki = pki::Pki::new("server-alert");
    let cert = pki.server("server", &["localhost", "127.0.0.1"]);
    let (port, server) = close_notify_server(&cert).await;
    let relay = Relay::start(SocketAddr::from(([127, 0, 0, 1], port))).await;
    let what = "rustls server alert";
    let err = server_alert_case(relay.url("/"), &pki.ca, &relay, what).await;
    assert_eq!(
        rustls_error(&err, what),
        rustls::Error::AlertReceived(rustls::AlertDescription::BadRecordMac),
        "{what}"
    );
    assert_lost_mid_stream(&err, 11, what);
    server.abort();

    for kind in PeerKind::ALL {
        let what = format!("{kind}: server alert");
        let s = setup(kind).await;
        let err = server_alert_case(s.relay.url("/echo"), &s.pki.ca, &s.relay, &what).await;
        let Error::Io(io) = &err else {
            panic!("{what}: expected Error::Io, got {err:?}");
        };
        let alert = io
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
            .cloned();
        match kind {
            // Node (OpenSSL) sends the alert before closing.
            PeerKind::Node => assert_eq!(
                alert,
                Some(rustls::Error::AlertReceived(
                    rustls::AlertDescription::BadRecordMac
                )),
                "{what}"
            ),
            // Python's asyncio drops the connection without flushing an
            // alert (as it does for a refused client certificate, see
            // tests/tls.rs `mutual_tls`): TCP ends without close_notify.
            PeerKind::Python => {
                assert_eq!(
                    io.kind(),
                    std::io::ErrorKind::UnexpectedEof,
                    "{what}: {io:?}"
                );
            }
        }
        assert_lost_mid_stream(&err, 11, &what);
    }
}

#[tokio::test]
async fn close_notify_without_a_close_frame_is_an_abnormal_closure() {
    let what = "close_notify without close frame";
    let pki = pki::Pki::new("close-notify");
    let cert = pki.server("server", &["localhost", "127.0.0.1"]);
    let (port, server) = close_notify_server(&cert).await;
    let mut ws =
        connect(ConnectOptions::new(format!("wss://127.0.0.1:{port}/")).ca_file(&pki.ca)).await;
    echo(&mut ws, "before").await;
    ws.send(Message::text("truncate")).await.unwrap();
    let err = next_error(&mut ws, what).await;
    // A clean TLS end, but the WebSocket never closed: 1006.
    assert!(matches!(err, Error::AbnormalClosure), "{what}: {err:?}");
    assert_lost_mid_stream(&err, 12, what);
    assert_finished(&mut ws, what).await;
    server.abort();
}

// ---------------------------------------------------------------------------
// The event client
// ---------------------------------------------------------------------------

use support::log::{Log, push, snapshot, wait_for};

fn count(log: &[String], entry: &str) -> usize {
    log.iter().filter(|e| *e == entry).count()
}

/// An event client logging every callback; `on_error` logs the code and
/// phase.
fn logging_client(opts: ConnectOptions, log: &Log) -> Client {
    let mut ws = Client::with_options(opts).unwrap();
    let l = log.clone();
    ws.on_websocket_connect(move |_, _| push(&l, "open"));
    let l = log.clone();
    ws.on_message(move |_, m| push(&l, format!("message {m}")));
    let l = log.clone();
    ws.on_error(move |_, e| push(&l, format!("error {} {:?}", e.code(), e.phase())));
    let l = log.clone();
    ws.on_close(move |_| push(&l, "close"));
    let l = log.clone();
    ws.on_reconnect(move |_, attempt, _| push(&l, format!("reconnect {attempt}")));
    ws
}

/// The events of a connection that was lost with `error` and came back:
/// exactly one error and one close for the lost connection, then the
/// reconnect and a new open connection.
fn assert_lost_then_reconnected(log: &[String], error: &str, what: &str) {
    let lost = log
        .iter()
        .position(|e| e.starts_with("error "))
        .unwrap_or_else(|| panic!("{what}: no on_error; log {log:?}"));
    assert_eq!(log[lost], error, "{what}: log {log:?}");
    assert_eq!(
        &log[lost + 1..lost + 4],
        ["close", "reconnect 1", "open"],
        "{what}: one on_close, then the reconnect; log {log:?}"
    );
    assert_eq!(count(log, "close"), 1, "{what}: log {log:?}");
    assert_eq!(count(log, "open"), 2, "{what}: log {log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_client_reconnects_after_a_corrupted_record() {
    let what = "event client, corrupted record";
    let s = setup(PeerKind::Python).await;
    let log: Log = Arc::default();
    let mut ws = logging_client(
        ConnectOptions::new(s.relay.url("/echo")).ca_file(&s.pki.ca),
        &log,
    );
    ws.reconnect_policy(ReconnectPolicy::fixed(Duration::from_millis(100)));
    let conn = ws.connect();
    conn.send("one").unwrap();
    wait_for(&log, "first echo", |l| l.iter().any(|e| e == "message one")).await;
    s.relay.command(Cmd::CorruptNext);
    conn.send("corrupted").unwrap();
    wait_for(&log, "reconnection", |l| count(l, "open") == 2).await;
    conn.send("two").unwrap();
    wait_for(&log, "echo after the reconnect", |l| {
        l.iter().any(|e| e == "message two")
    })
    .await;
    let events = snapshot(&log);
    assert_lost_then_reconnected(&events, "error 11 Some(Open)", what);
    assert_eq!(count(&events, "message corrupted"), 0, "{what}: {events:?}");
    assert_eq!(s.relay.corrupted.load(Ordering::SeqCst), 1);
    assert_eq!(s.relay.connections(), 2);
    conn.close();
    tokio::time::timeout(STEP, conn.finished())
        .await
        .expect("close() finishes the client");
    assert_eq!(count(&snapshot(&log), "close"), 2, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_client_reconnects_after_fin_without_close_notify() {
    let what = "event client, FIN without close_notify";
    let s = setup(PeerKind::Node).await;
    let log: Log = Arc::default();
    let mut ws = logging_client(
        ConnectOptions::new(s.relay.url("/echo")).ca_file(&s.pki.ca),
        &log,
    );
    ws.reconnect_policy(ReconnectPolicy::fixed(Duration::from_millis(100)));
    let conn = ws.connect();
    conn.send("one").unwrap();
    wait_for(&log, "first echo", |l| l.iter().any(|e| e == "message one")).await;
    s.relay.command(Cmd::Fin);
    wait_for(&log, "reconnection", |l| count(l, "open") == 2).await;
    conn.send("two").unwrap();
    wait_for(&log, "echo after the reconnect", |l| {
        l.iter().any(|e| e == "message two")
    })
    .await;
    assert_lost_then_reconnected(&snapshot(&log), "error 11 Some(Open)", what);
    conn.close();
    tokio::time::timeout(STEP, conn.finished())
        .await
        .expect("close() finishes the client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_client_close_notify_without_policy_closes_once_and_stops() {
    let what = "event client, close_notify, no reconnect policy";
    let pki = pki::Pki::new("close-notify-events");
    let cert = pki.server("server", &["localhost", "127.0.0.1"]);
    let (port, server) = close_notify_server(&cert).await;
    let log: Log = Arc::default();
    let ws = logging_client(
        ConnectOptions::new(format!("wss://127.0.0.1:{port}/")).ca_file(&pki.ca),
        &log,
    );
    let conn = ws.connect();
    conn.send("one").unwrap();
    wait_for(&log, "first echo", |l| l.iter().any(|e| e == "message one")).await;
    conn.send("truncate").unwrap();
    tokio::time::timeout(STEP, conn.finished())
        .await
        .unwrap_or_else(|_| panic!("{what}: the client did not finish; {:?}", snapshot(&log)));
    // Give a stray second callback a chance to show.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        snapshot(&log),
        ["open", "message one", "error 12 Some(Open)", "close"],
        "{what}"
    );
    assert_eq!(conn.close_code(), Some(CloseCode::ABNORMAL), "{what}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_client_reconnects_after_close_notify() {
    let what = "event client, close_notify, fixed reconnect";
    let pki = pki::Pki::new("close-notify-reconnect");
    let cert = pki.server("server", &["localhost", "127.0.0.1"]);
    let (port, server) = close_notify_server(&cert).await;
    let log: Log = Arc::default();
    let mut ws = logging_client(
        ConnectOptions::new(format!("wss://127.0.0.1:{port}/")).ca_file(&pki.ca),
        &log,
    );
    ws.reconnect_policy(ReconnectPolicy::fixed(Duration::from_millis(100)));
    let conn = ws.connect();
    conn.send("one").unwrap();
    wait_for(&log, "first echo", |l| l.iter().any(|e| e == "message one")).await;
    conn.send("truncate").unwrap();
    wait_for(&log, "reconnection", |l| count(l, "open") == 2).await;
    conn.send("two").unwrap();
    wait_for(&log, "echo after the reconnect", |l| {
        l.iter().any(|e| e == "message two")
    })
    .await;
    assert_lost_then_reconnected(&snapshot(&log), "error 12 Some(Open)", what);
    conn.close();
    tokio::time::timeout(STEP, conn.finished())
        .await
        .expect("close() finishes the client");
    server.abort();
}
