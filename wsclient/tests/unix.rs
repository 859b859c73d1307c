//! Unix domain sockets (`ConnectOptions::unix_socket`) against real servers
//! of other implementations listening on a path (Python `websockets`'
//! `unix_serve`, Node `ws` on an `http.Server` listening on the path): the
//! socket client plain and with TLS over the socket (verified against the
//! URL's host), and the event client through a server restart.
#![cfg(unix)]

#[path = "support/pki.rs"]
mod pki;
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pki::Pki;
use support::log::{Log, push, snapshot, wait_for};
use support::peers::{Peer, PeerKind, PeerOptions};
use support::{assert_json_fields, echo_and_close, next_text};
use wsclient::transport::tls::TlsError;
use wsclient::{Client, ConnectOptions, Error, MaybeTlsStream, Phase};

/// Bound on each connection attempt, so a hang fails the test.
const LIMIT: Duration = Duration::from_secs(15);

/// A fresh directory for socket files, removed when dropped.
struct SockDir(PathBuf);

impl SockDir {
    fn new() -> SockDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        // Short: a socket's path has room for about 100 bytes.
        let dir = std::env::temp_dir().join(format!(
            "wsu-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        SockDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for SockDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unix_peer(kind: PeerKind, sock: &Path, tls: Option<&pki::Issued>) -> Peer {
    Peer::start(
        kind,
        &PeerOptions {
            tls: tls.map(pki::Issued::pair),
            unix: Some(sock.to_owned()),
            ..PeerOptions::default()
        },
    )
}

async fn connect(
    opts: ConnectOptions,
) -> Result<(wsclient::WebSocket<MaybeTlsStream>, wsclient::Response), Error> {
    tokio::time::timeout(LIMIT, opts.connect())
        .await
        .expect("connect did not finish in time")
}

#[tokio::test]
async fn the_socket_client_talks_through_a_unix_socket() {
    for kind in PeerKind::ALL {
        let dir = SockDir::new();
        let sock = dir.path("ws.sock");
        let _peer = unix_peer(kind, &sock, None);
        // The URL names the server (Host, path, query); the socket carries
        // the bytes.
        let (mut ws, response) = connect(
            ConnectOptions::new("ws://app.local:8080/headers?x=1")
                .header("X-Test", "unix")
                .unix_socket(&sock),
        )
        .await
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(response.status(), 101, "{kind}");
        assert!(matches!(ws.get_ref(), MaybeTlsStream::Unix(_)), "{kind}");
        assert!(ws.get_ref().tcp().is_none(), "{kind}");
        assert_eq!(
            ws.get_ref()
                .unix()
                .unwrap()
                .peer_addr()
                .unwrap()
                .as_pathname(),
            Some(sock.as_path()),
            "{kind}"
        );
        assert_eq!(
            ws.get_ref().peer_addr().unwrap_err().kind(),
            std::io::ErrorKind::Unsupported,
            "{kind}"
        );
        let seen = next_text(&mut ws).await;
        assert_json_fields(
            &seen,
            &[
                ("host", "app.local:8080"),
                ("path", "/headers?x=1"),
                ("x-test", "unix"),
            ],
        );
        echo_and_close(&mut ws, kind.name()).await;
    }
}

#[tokio::test]
async fn wss_runs_tls_over_the_unix_socket_verified_against_the_url_host() {
    let pki = Pki::new("unix");
    let cert = pki.server("server", &["localhost"]);
    for kind in PeerKind::ALL {
        let sock = pki.dir.join(format!("{kind}.sock"));
        let _peer = unix_peer(kind, &sock, Some(&cert));
        let (mut ws, _) = connect(
            ConnectOptions::new("wss://localhost/echo")
                .ca_file(&pki.ca)
                .unix_socket(&sock),
        )
        .await
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let MaybeTlsStream::UnixTls(tls) = ws.get_ref() else {
            panic!("{kind}: wss:// over a Unix socket gave {:?}", ws.get_ref());
        };
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            Some(&b"http/1.1"[..]),
            "{kind}"
        );
        echo_and_close(&mut ws, kind.name()).await;

        // Verification stays on: the certificate must name the URL's host,
        // and its issuer must be trusted.
        let wrong_host = connect(
            ConnectOptions::new("wss://other.example/echo")
                .ca_file(&pki.ca)
                .unix_socket(&sock),
        )
        .await;
        assert!(
            matches!(wrong_host, Err(Error::Tls(TlsError::CertificateWrongHost))),
            "{kind}: {:?}",
            wrong_host.map(|_| ())
        );
        let unknown = connect(ConnectOptions::new("wss://localhost/echo").unix_socket(&sock)).await;
        assert!(
            matches!(unknown, Err(Error::Tls(TlsError::UnknownIssuer))),
            "{kind}: {:?}",
            unknown.map(|_| ())
        );
    }
}

#[tokio::test]
async fn a_unix_socket_with_no_server_fails_at_once_with_its_path() {
    let dir = SockDir::new();
    let sock = dir.path("nobody.sock");
    let t = Instant::now();
    // A proxy set too is not used: the socket is the way.
    let err = connect(
        ConnectOptions::new("ws://localhost/echo")
            .proxy("http://127.0.0.1:9")
            .unix_socket(&sock),
    )
    .await
    .map(|_| ())
    .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let Error::ConnectUnix { path, source } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(path, &sock);
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(err.phase(), Some(Phase::Unix));
    assert!(err.to_string().contains("nobody.sock"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_client_reconnects_through_a_unix_socket_after_a_restart() {
    for kind in PeerKind::ALL {
        let dir = SockDir::new();
        let sock = dir.path("ws.sock");
        let peer = unix_peer(kind, &sock, None);
        let log: Log = Arc::default();
        let mut ws =
            Client::with_options(ConnectOptions::new("ws://localhost/echo").unix_socket(&sock))
                .unwrap();
        let l = log.clone();
        ws.on_connect(move |conn| push(&l, format!("connect {:?}", conn.remote_addr())));
        let l = log.clone();
        ws.on_websocket_connect(move |conn, resp| {
            push(&l, format!("websocket_connect {}", resp.status().as_u16()));
            conn.send("hello").unwrap();
        });
        let l = log.clone();
        ws.on_message(move |_, m| push(&l, format!("message {m}")));
        let l = log.clone();
        ws.on_error(move |_, e| push(&l, format!("error {}", e.code())));
        let l = log.clone();
        ws.on_close(move |conn| {
            push(&l, "close");
            conn.reconnect(Duration::from_millis(50));
        });
        let conn = ws.connect();
        wait_for(&log, "first echo", |l| {
            l.iter().any(|e| e == "message hello")
        })
        .await;
        assert_eq!(
            snapshot(&log),
            ["connect None", "websocket_connect 101", "message hello"],
            "{kind}: callbacks in order, once each; no IP address on a Unix socket"
        );

        // The server goes away with its socket file: the attempts fail
        // with a connect error (code 3) until it is back.
        drop(peer);
        let _ = std::fs::remove_file(&sock);
        wait_for(&log, "a failed attempt", |l| {
            l.iter().any(|e| e == "error 3")
        })
        .await;
        let _peer = unix_peer(kind, &sock, None);
        wait_for(&log, "second echo", |l| {
            l.iter().filter(|e| *e == "message hello").count() == 2
        })
        .await;
        let events = snapshot(&log);
        let tail = &events[events.len() - 3..];
        assert_eq!(
            tail,
            ["connect None", "websocket_connect 101", "message hello"],
            "{kind}: {events:?}"
        );
        assert!(conn.stats().reconnects >= 2, "{kind}: {events:?}");
        conn.close();
        tokio::time::timeout(Duration::from_secs(5), conn.finished())
            .await
            .unwrap_or_else(|_| panic!("{kind}: close() must finish; log {:?}", snapshot(&log)));
    }
}
