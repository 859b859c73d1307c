//! The rest of the handshake and of connection setup, against real peers
//! (Python `websockets`, Node `ws`): URL credentials, redirects (with a
//! small in-test redirecting server in front of the peers, since neither
//! peer redirects), the handshake timeout, the local bind address, Happy
//! Eyeballs, and which phase each failure belongs to.

#[path = "support/client.rs"]
mod client;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/pki.rs"]
mod pki;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use client::{LIMIT, connect, next_text};
use futures_util::StreamExt;
use peers::{Peer, PeerKind, PeerOptions};
use pki::Pki;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use wsclient::handshake::HandshakeError;
use wsclient::{ConnectOptions, Error, MaybeTlsStream, Message, Phase, WebSocket};

async fn echo(ws: &mut WebSocket<MaybeTlsStream>) {
    ws.send(Message::text("ping?")).await.unwrap();
    assert_eq!(next_text(ws).await, "ping?");
    ws.close(wsclient::CloseCode::NORMAL, "").await.unwrap();
}

/// The value of a string field in the `/headers` JSON (`None` when absent
/// or null). The peers write compact JSON; header values here hold no
/// quotes or backslashes.
fn json_field(json: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\":\"");
    let start = json.find(&key)? + key.len();
    let end = json[start..].find('"')?;
    Some(json[start..start + end].to_owned())
}

fn basic(user_pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

// ---------------------------------------------------------------------------
// URL credentials
// ---------------------------------------------------------------------------

#[tokio::test]
async fn userinfo_becomes_basic_authorization() {
    for kind in PeerKind::ALL {
        let peer = Peer::start(kind, &PeerOptions::default());
        let url = format!(
            "ws://alice:s%3Acr%C3%A9t@127.0.0.1:{}/headers?x=1",
            peer.port
        );
        let (mut ws, response) = connect(&ConnectOptions::new(&url))
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(response.status(), 101);
        let json = next_text(&mut ws).await;
        assert_eq!(
            json_field(&json, "authorization"),
            Some(basic("alice:s:crét")),
            "{kind}: {json}"
        );
        // Not in the request line nor in Host.
        assert_eq!(
            json_field(&json, "path").as_deref(),
            Some("/headers?x=1"),
            "{kind}: {json}"
        );
        assert_eq!(
            json_field(&json, "host"),
            Some(format!("127.0.0.1:{}", peer.port)),
            "{kind}: {json}"
        );
        assert!(!json.contains("alice"), "{kind}: {json}");
        echo(&mut ws).await;

        let debug = format!(
            "{:?}",
            ConnectOptions::new(&url).proxy("http://u:hunter2@h:1")
        );
        assert!(
            !debug.contains("s%3Acr") && !debug.contains("hunter2"),
            "{debug}"
        );

        // An explicit Authorization header wins over the URL's.
        let (mut ws, _) = connect(&ConnectOptions::new(&url).header("Authorization", "Bearer t0k"))
            .await
            .unwrap();
        let json = next_text(&mut ws).await;
        assert_eq!(
            json_field(&json, "authorization").as_deref(),
            Some("Bearer t0k"),
            "{kind}: {json}"
        );

        // A user name alone: empty password.
        let (mut ws, _) = connect(&ConnectOptions::new(format!(
            "ws://bob@127.0.0.1:{}/headers",
            peer.port
        )))
        .await
        .unwrap();
        let json = next_text(&mut ws).await;
        assert_eq!(
            json_field(&json, "authorization"),
            Some(basic("bob:")),
            "{kind}: {json}"
        );
    }
}

// ---------------------------------------------------------------------------
// Redirects
// ---------------------------------------------------------------------------

/// A tiny HTTP server that answers every request with a redirect (or 404),
/// by path, optionally over TLS, and records the request heads it got.
struct Redirector {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Redirector {
    /// `routes`: `(path, status, location)`.
    async fn start(routes: Vec<(String, u16, String)>, tls: Option<&pki::Issued>) -> Redirector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let acceptor = tls.map(|c| tokio_rustls::TlsAcceptor::from(c.server_config()));
        let seen = requests.clone();
        let routes = Arc::new(routes);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (seen, routes, acceptor) = (seen.clone(), routes.clone(), acceptor.clone());
                tokio::spawn(async move {
                    match acceptor {
                        Some(a) => {
                            if let Ok(tls) = a.accept(tcp).await {
                                Redirector::serve(tls, &seen, &routes).await;
                            }
                        }
                        None => Redirector::serve(tcp, &seen, &routes).await,
                    }
                });
            }
        });
        Redirector {
            port,
            requests,
            task,
        }
    }

    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        mut io: S,
        seen: &Mutex<Vec<String>>,
        routes: &[(String, u16, String)],
    ) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if io.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let path = head.split(' ').nth(1).unwrap_or("").to_owned();
        seen.lock().unwrap().push(head);
        let reply = match routes.iter().find(|(p, _, _)| *p == path) {
            Some((_, status, location)) => format!(
                "HTTP/1.1 {status} Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
            None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_owned(),
        };
        let _ = io.write_all(reply.as_bytes()).await;
        let _ = io.shutdown().await;
    }

    /// The request paths received, in order.
    fn paths(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|h| h.split(' ').nth(1).unwrap_or("").to_owned())
            .collect()
    }

    /// The value of header `name` (lower case) in request `i`.
    fn header(&self, i: usize, name: &str) -> Option<String> {
        let reqs = self.requests.lock().unwrap();
        reqs.get(i)?.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Redirector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn route(path: &str, status: u16, location: impl Into<String>) -> (String, u16, String) {
    (path.to_owned(), status, location.into())
}

#[tokio::test]
async fn a_redirect_is_a_rejection_by_default() {
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());
    let r = Redirector::start(vec![route("/start", 301, peer.url("/echo"))], None).await;
    let err = connect(&ConnectOptions::new(r.url("ws", "/start")))
        .await
        .expect_err("not followed");
    assert!(
        matches!(err, Error::Handshake(HandshakeError::Rejected(_))),
        "{err:?}"
    );
    assert_eq!(err.code(), 7);
    assert_eq!(err.phase(), Some(Phase::Upgrade));
    let rejected = err.rejected().expect("the redirect response is exposed");
    assert_eq!(rejected.status(), 301);
    assert_eq!(
        rejected.response.headers()["location"],
        peer.url("/echo").as_str()
    );
    assert_eq!(r.paths(), ["/start"]);
}

#[tokio::test]
async fn follows_301_302_303_307_308_with_relative_and_absolute_locations() {
    let peer = Peer::start(PeerKind::Node, &PeerOptions::default());
    for status in [301, 302, 303, 307, 308] {
        // A relative Location first (resolved against the redirector's URL),
        // then an absolute one to the peer.
        let r = Redirector::start(
            vec![
                route("/start", status, "/hop?n=2"),
                route("/hop?n=2", status, peer.url("/headers?via=redirect")),
            ],
            None,
        )
        .await;
        let (mut ws, response) =
            connect(&ConnectOptions::new(r.url("ws", "/start")).max_redirects(2))
                .await
                .unwrap_or_else(|e| panic!("{status}: {e}"));
        // The response is the final server's 101.
        assert_eq!(response.status(), 101, "{status}");
        assert!(
            response.to_string().starts_with("HTTP/1.1 101"),
            "{response}"
        );
        let json = next_text(&mut ws).await;
        assert_eq!(
            json_field(&json, "path").as_deref(),
            Some("/headers?via=redirect"),
            "{status}: {json}"
        );
        assert_eq!(
            json_field(&json, "host"),
            Some(format!("127.0.0.1:{}", peer.port)),
            "{status}"
        );
        assert_eq!(r.paths(), ["/start", "/hop?n=2"], "{status}");
        echo(&mut ws).await;
    }
}

#[tokio::test]
async fn connect_with_reports_each_hop() {
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());
    let r = Redirector::start(vec![route("/start", 307, peer.url("/echo"))], None).await;
    let mut hops = Vec::new();
    let opts = ConnectOptions::new(r.url("ws", "/start")).max_redirects(1);
    let (mut ws, _) = tokio::time::timeout(
        LIMIT,
        opts.connect_with(|io| hops.push(io.peer_addr().unwrap().port())),
    )
    .await
    .unwrap()
    .unwrap();
    echo(&mut ws).await;
    assert_eq!(hops, [r.port, peer.port]);
}

#[tokio::test]
async fn relative_location_forms() {
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());
    let r = Redirector::start(
        vec![
            // Relative path: against /a/b/start -> /a/b/next.
            route("/a/b/start", 302, "next"),
            // Dot segments: /a/b/next -> /a/up.
            route("/a/b/next", 307, "../up"),
            // Scheme-relative: same scheme (ws), the peer's authority.
            route("/a/up", 308, format!("//127.0.0.1:{}/echo#frag", peer.port)),
        ],
        None,
    )
    .await;
    let (mut ws, _) = connect(&ConnectOptions::new(r.url("ws", "/a/b/start")).max_redirects(5))
        .await
        .unwrap();
    echo(&mut ws).await;
    assert_eq!(r.paths(), ["/a/b/start", "/a/b/next", "/a/up"]);

    // http:// and https:// Locations are taken as ws:// and wss://.
    let r = Redirector::start(
        vec![route(
            "/",
            301,
            format!("http://127.0.0.1:{}/echo", peer.port),
        )],
        None,
    )
    .await;
    let (mut ws, _) = connect(&ConnectOptions::new(r.url("ws", "/")).max_redirects(1))
        .await
        .unwrap();
    echo(&mut ws).await;
}

#[tokio::test]
async fn redirect_limit() {
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());
    let r = Redirector::start(
        vec![
            route("/1", 302, "/2"),
            route("/2", 302, "/3"),
            route("/3", 307, peer.url("/echo")),
        ],
        None,
    )
    .await;
    // Two followed, the third is the answer: a rejection with its status.
    let err = connect(&ConnectOptions::new(r.url("ws", "/1")).max_redirects(2))
        .await
        .expect_err("past the limit");
    let rejected = err.rejected().unwrap_or_else(|| panic!("{err:?}"));
    assert_eq!(rejected.status(), 307);
    assert_eq!(r.paths(), ["/1", "/2", "/3"]);

    let (mut ws, _) = connect(&ConnectOptions::new(r.url("ws", "/1")).max_redirects(3))
        .await
        .unwrap();
    echo(&mut ws).await;

    // A redirect without Location is just a rejection.
    let r = Redirector::start(vec![route("/x", 302, "")], None).await;
    let err = connect(&ConnectOptions::new(r.url("ws", "/x")).max_redirects(3))
        .await
        .expect_err("no Location");
    assert_eq!(err.rejected().map(|r| r.status().as_u16()), Some(302));
    // Nor is a redirect to another kind of URL followed.
    let r = Redirector::start(vec![route("/x", 302, "ftp://127.0.0.1/")], None).await;
    let err = connect(&ConnectOptions::new(r.url("ws", "/x")).max_redirects(3))
        .await
        .expect_err("ftp");
    assert_eq!(err.rejected().map(|r| r.status().as_u16()), Some(302));
}

#[tokio::test]
async fn never_from_wss_to_ws() {
    let pki = Pki::new("redirect");
    let cert = pki.server("server", &["localhost", "127.0.0.1"]);
    let plain = Peer::start(PeerKind::Python, &PeerOptions::default());
    let secure = Peer::start(
        PeerKind::Node,
        &PeerOptions {
            tls: Some(cert.pair()),
            ..PeerOptions::default()
        },
    );
    let r = Redirector::start(
        vec![
            route("/to-ws", 301, plain.url("/echo")),
            route(
                "/to-http",
                308,
                format!("http://127.0.0.1:{}/echo", plain.port),
            ),
            route("/to-wss", 302, secure.url_with_host("localhost", "/echo")),
            route(
                "/to-https",
                307,
                format!("https://localhost:{}/echo", secure.port),
            ),
        ],
        Some(&cert),
    )
    .await;
    let url = |path: &str| format!("wss://localhost:{}{path}", r.port);
    for path in ["/to-ws", "/to-http"] {
        let err = connect(
            &ConnectOptions::new(url(path))
                .ca_file(&pki.ca)
                .max_redirects(5),
        )
        .await
        .expect_err("a downgrade must not be followed");
        match &err {
            Error::Handshake(HandshakeError::InsecureRedirect { location, response }) => {
                assert!(
                    location.ends_with(&format!(":{}/echo", plain.port)),
                    "{location}"
                );
                assert!(response.status().is_redirection());
            }
            other => panic!("{path}: expected InsecureRedirect, got {other:?}"),
        }
        assert_eq!(err.code(), 8);
        assert!(err.rejected().is_some(), "the redirect response is exposed");
    }
    // wss -> wss is fine, and so is ws -> wss.
    for path in ["/to-wss", "/to-https"] {
        let (mut ws, _) = connect(
            &ConnectOptions::new(url(path))
                .ca_file(&pki.ca)
                .max_redirects(1),
        )
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(matches!(ws.get_ref(), MaybeTlsStream::Tls(_)));
        echo(&mut ws).await;
    }
    let up = Redirector::start(
        vec![route(
            "/up",
            301,
            secure.url_with_host("localhost", "/echo"),
        )],
        None,
    )
    .await;
    let (mut ws, _) = connect(
        &ConnectOptions::new(up.url("ws", "/up"))
            .ca_file(&pki.ca)
            .max_redirects(1),
    )
    .await
    .unwrap();
    assert!(matches!(ws.get_ref(), MaybeTlsStream::Tls(_)));
    echo(&mut ws).await;
}

#[tokio::test]
async fn credentials_stay_with_their_origin() {
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());
    let r = Redirector::start(
        vec![
            route("/same", 302, "/other"),
            route("/other", 302, peer.url("/headers")),
            route(
                "/userinfo",
                302,
                format!("ws://bob:pw@127.0.0.1:{}/headers", peer.port),
            ),
        ],
        None,
    )
    .await;
    let opts = ConnectOptions::new(r.url("ws", "/same"))
        .header("Cookie", "session=1")
        .header("Authorization", "Bearer secret")
        .header("X-Trace", "abc")
        .max_redirects(3);
    let (mut ws, _) = connect(&opts).await.unwrap();
    let json = next_text(&mut ws).await;
    // Another origin (the peer's port): no cookie, no authorization.
    assert_eq!(json_field(&json, "cookie"), None, "{json}");
    assert_eq!(json_field(&json, "authorization"), None, "{json}");
    assert_eq!(
        json_field(&json, "x-trace").as_deref(),
        Some("abc"),
        "{json}"
    );
    // The same origin (a relative redirect) got them both times.
    for i in 0..2 {
        assert_eq!(r.header(i, "cookie").as_deref(), Some("session=1"));
        assert_eq!(
            r.header(i, "authorization").as_deref(),
            Some("Bearer secret")
        );
    }

    // Credentials in the Location are used for that hop.
    let (mut ws, _) = connect(&ConnectOptions::new(r.url("ws", "/userinfo")).max_redirects(1))
        .await
        .unwrap();
    let json = next_text(&mut ws).await;
    assert_eq!(
        json_field(&json, "authorization"),
        Some(basic("bob:pw")),
        "{json}"
    );
}

// ---------------------------------------------------------------------------
// Timeouts, local address, Happy Eyeballs
// ---------------------------------------------------------------------------

/// A listener that accepts TCP and never answers.
async fn silent_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (port, task)
}

#[tokio::test]
async fn handshake_timeout() {
    let (port, task) = silent_server().await;
    let t = Duration::from_millis(300);
    let err = connect(&ConnectOptions::new(format!("ws://127.0.0.1:{port}/")).handshake_timeout(t))
        .await
        .expect_err("must time out");
    assert!(
        matches!(err, Error::Timeout { phase: Phase::Upgrade, after } if after == t),
        "{err:?}"
    );
    task.abort();
}

#[tokio::test]
async fn local_addr_is_honoured() {
    let local: IpAddr = "127.0.0.2".parse().unwrap();
    // This crate's server role reports the address it sees.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (tcp, seen) = listener.accept().await.unwrap();
        let (mut ws, _) =
            wsclient::server::accept(tcp, &wsclient::server::AcceptOptions::default())
                .await
                .unwrap();
        while let Some(Ok(msg)) = ws.next().await {
            if !msg.is_control() {
                ws.send(msg).await.unwrap();
            }
        }
        seen
    });
    let (mut ws, _) =
        connect(&ConnectOptions::new(format!("ws://127.0.0.1:{port}/")).local_addr(local))
            .await
            .unwrap();
    echo(&mut ws).await;
    let seen = tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
    assert_eq!(seen.ip(), local);

    // And against a real peer.
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());
    let (mut ws, _) = connect(&ConnectOptions::new(peer.url("/echo")).local_addr(local))
        .await
        .unwrap();
    assert_eq!(ws.get_ref().local_addr().unwrap().ip(), local);
    echo(&mut ws).await;
}

/// A listener on `addr` whose accept queue is full, so that new
/// connections to it get no answer at all (their SYNs are dropped): a
/// black hole on loopback. Keep the returned values alive.
async fn black_hole(addr: SocketAddr) -> (TcpListener, Vec<TcpStream>) {
    let socket = if addr.is_ipv6() {
        TcpSocket::new_v6().unwrap()
    } else {
        TcpSocket::new_v4().unwrap()
    };
    socket.bind(addr).unwrap();
    let listener = socket.listen(0).unwrap();
    let mut filled = Vec::new();
    for _ in 0..64 {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => filled.push(s),
            Ok(Err(e)) => panic!("filling the backlog of {addr}: {e}"),
            Err(_) => return (listener, filled),
        }
    }
    panic!("could not fill the backlog of {addr}: connections never hang here");
}

#[tokio::test]
async fn happy_eyeballs_races_past_a_black_holed_first_address() {
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());
    // The same port on ::1 answers nothing: a name resolving to ::1 first
    // and 127.0.0.1 second must still connect, after the 250 ms attempt
    // delay rather than the connect timeout.
    let hole = SocketAddr::new("::1".parse().unwrap(), peer.port);
    let _hole = black_hole(hole).await;
    let opts = ConnectOptions::new(format!("ws://dual.test:{}/echo", peer.port))
        .resolve(
            "dual.test",
            &["::1".parse().unwrap(), "127.0.0.1".parse().unwrap()],
        )
        .connect_timeout(Duration::from_secs(10));
    let started = Instant::now();
    let (mut ws, _) = connect(&opts).await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}: not raced");
    assert!(
        took >= wsclient::transport::tcp::ATTEMPT_DELAY,
        "took {took:?}: the black hole answered?"
    );
    assert_eq!(ws.get_ref().peer_addr().unwrap(), peer.addr());
    echo(&mut ws).await;

    // Without the second address, the connect timeout is what ends it.
    let t = Duration::from_millis(400);
    let err =
        connect(&ConnectOptions::new(format!("ws://[::1]:{}/echo", peer.port)).connect_timeout(t))
            .await
            .expect_err("a black hole alone");
    assert!(
        matches!(err, Error::Timeout { phase: Phase::Tcp, after } if after == t),
        "{err:?}"
    );
}

#[tokio::test]
async fn happy_eyeballs_with_a_dual_stack_name() {
    // The peer listens on 127.0.0.1 only, so ::1 refuses and the client
    // falls back. `localhost` is used when it resolves to both families
    // here; otherwise a pinned name stands in for it.
    let peer = Peer::start(PeerKind::Node, &PeerOptions::default());
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(("localhost", peer.port))
        .await
        .unwrap()
        .collect();
    let dual = addrs.iter().any(SocketAddr::is_ipv4) && addrs.iter().any(SocketAddr::is_ipv6);
    let opts = if dual {
        ConnectOptions::new(peer.url_with_host("localhost", "/echo"))
    } else {
        eprintln!(
            "`localhost` resolves to {addrs:?} only: using a name pinned to ::1 and 127.0.0.1"
        );
        ConnectOptions::new(format!("ws://dual.test:{}/echo", peer.port)).resolve(
            "dual.test",
            &["::1".parse().unwrap(), "127.0.0.1".parse().unwrap()],
        )
    };
    for _ in 0..2 {
        let (mut ws, _) = connect(&opts).await.unwrap();
        assert_eq!(ws.get_ref().peer_addr().unwrap(), peer.addr());
        echo(&mut ws).await;
    }
}

// ---------------------------------------------------------------------------
// Errors by phase
// ---------------------------------------------------------------------------

#[tokio::test]
async fn each_phase_has_its_error() {
    // URL.
    let err = connect(&ConnectOptions::new("ftp://x/"))
        .await
        .expect_err("scheme");
    assert_eq!((err.code(), err.phase()), (1, None), "{err:?}");

    // DNS: a name that does not resolve (failure or timeout, both DNS).
    let err = connect(
        &ConnectOptions::new("ws://no-such-host.invalid/").dns_timeout(Duration::from_secs(5)),
    )
    .await
    .expect_err("DNS");
    assert_eq!(err.phase(), Some(Phase::Dns), "{err:?}");
    assert!(matches!(err.code(), 2 | 4), "{err:?}");

    // TCP: refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = connect(&ConnectOptions::new(format!("ws://127.0.0.1:{closed}/")))
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert_eq!((err.code(), err.phase()), (3, Some(Phase::Tcp)));

    // Proxy: refused credentials are covered in tests/proxy.rs; a silent
    // proxy times out in its own phase.
    let (port, task) = silent_server().await;
    let err = connect(
        &ConnectOptions::new("ws://127.0.0.1:9/")
            .proxy(&format!("http://127.0.0.1:{port}"))
            .proxy_timeout(Duration::from_millis(200)),
    )
    .await
    .expect_err("silent proxy");
    assert_eq!(
        (err.code(), err.phase()),
        (4, Some(Phase::Proxy)),
        "{err:?}"
    );

    // TLS: a plain server answering a ClientHello with HTTP.
    let plain = Peer::start(PeerKind::Python, &PeerOptions::default());
    let err = connect(&ConnectOptions::new(format!(
        "wss://127.0.0.1:{}/echo",
        plain.port
    )))
    .await
    .expect_err("TLS to a plain server");
    assert_eq!((err.code(), err.phase()), (5, Some(Phase::Tls)), "{err:?}");

    // Upgrade: refused by the server, with its response.
    let err = connect(&ConnectOptions::new(plain.url("/reject?status=403")))
        .await
        .expect_err("403");
    assert_eq!(
        (err.code(), err.phase()),
        (7, Some(Phase::Upgrade)),
        "{err:?}"
    );
    let rejected = err.rejected().unwrap();
    assert_eq!(rejected.status(), 403);
    assert_eq!(rejected.response.headers()["x-reject"], "yes");
    assert_eq!(&rejected.response.body()[..], b"rejected 403");
    // The same refusal through `response()`, the accessor of every
    // handshake error the server's answer caused.
    let response = err.response().expect("the refusal's response");
    assert_eq!(response.status(), 403);
    assert_eq!(response.headers()["x-reject"], "yes");
    assert_eq!(response.body_start(), b"rejected 403");
    assert!(
        response.to_string().starts_with("HTTP/1.1 403"),
        "{response}"
    );

    // Upgrade: timed out.
    let err = connect(
        &ConnectOptions::new(format!("ws://127.0.0.1:{port}/"))
            .handshake_timeout(Duration::from_millis(200)),
    )
    .await
    .expect_err("silent server");
    assert_eq!(
        (err.code(), err.phase()),
        (4, Some(Phase::Upgrade)),
        "{err:?}"
    );
    task.abort();
}

// ---------------------------------------------------------------------------
// The server's response on every handshake error
// ---------------------------------------------------------------------------

/// A one-connection raw TCP server that reads the upgrade request and
/// answers with `answer(key)` verbatim: a well-formed HTTP 101 that no real
/// WebSocket server would send (wrong accept, missing header, unoffered
/// subprotocol or extension). Returns the URL and the task.
async fn answering_101(
    answer: impl FnOnce(&str) -> String + Send + 'static,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let key = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| v.trim().to_owned())
            })
            .expect("request has a key");
        s.write_all(answer(&key).as_bytes()).await.unwrap();
        // Hold the connection until the client drops it.
        let mut sink = [0u8; 256];
        while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    (url, task)
}

/// A 101 with the given header lines (each ending in CRLF) plus
/// `X-Case: {case}`.
fn head_101(case: &str, lines: &str) -> String {
    format!("HTTP/1.1 101 Switching Protocols\r\n{lines}X-Case: {case}\r\n\r\n")
}

fn good_lines(key: &str) -> String {
    format!(
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        wsclient::handshake::accept_key(key.as_bytes())
    )
}

#[tokio::test]
async fn every_invalid_101_keeps_the_response() {
    type Answer = fn(&str) -> String;
    type Kind = fn(&HandshakeError) -> bool;
    let cases: Vec<(&str, ConnectOptions, Answer, Kind)> = vec![
        (
            "wrong-accept",
            ConnectOptions::new("ws://x/"),
            |_| {
                head_101(
                    "wrong-accept",
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n",
                )
            },
            |e| matches!(e, HandshakeError::BadAccept { .. }),
        ),
        (
            "no-accept",
            ConnectOptions::new("ws://x/"),
            |_| head_101("no-accept", "Upgrade: websocket\r\nConnection: Upgrade\r\n"),
            |e| matches!(e, HandshakeError::BadAccept { .. }),
        ),
        (
            "no-upgrade",
            ConnectOptions::new("ws://x/"),
            |key| {
                head_101(
                    "no-upgrade",
                    &good_lines(key).replace("Upgrade: websocket\r\n", ""),
                )
            },
            |e| matches!(e, HandshakeError::MissingUpgrade { .. }),
        ),
        (
            "no-connection",
            ConnectOptions::new("ws://x/"),
            |key| {
                head_101(
                    "no-connection",
                    &good_lines(key).replace("Connection: Upgrade\r\n", ""),
                )
            },
            |e| matches!(e, HandshakeError::MissingConnection { .. }),
        ),
        (
            "unoffered-protocol",
            ConnectOptions::new("ws://x/").subprotocol("v1"),
            |key| {
                head_101(
                    "unoffered-protocol",
                    &format!("{}Sec-WebSocket-Protocol: chat\r\n", good_lines(key)),
                )
            },
            |e| matches!(e, HandshakeError::UnofferedProtocol { protocol, .. } if protocol == "chat"),
        ),
        (
            "unoffered-extension",
            ConnectOptions::new("ws://x/"),
            |key| {
                head_101(
                    "unoffered-extension",
                    &format!("{}Sec-WebSocket-Extensions: x-custom\r\n", good_lines(key)),
                )
            },
            |e| matches!(e, HandshakeError::UnsupportedExtension { extension, .. } if extension == "x-custom"),
        ),
        (
            "bad-deflate-params",
            ConnectOptions::new("ws://x/").compression(true),
            |key| {
                head_101(
                    "bad-deflate-params",
                    &format!(
                        "{}Sec-WebSocket-Extensions: permessage-deflate; bogus=1\r\n",
                        good_lines(key)
                    ),
                )
            },
            |e| matches!(e, HandshakeError::UnsupportedExtension { .. }),
        ),
    ];
    for (case, opts, answer, kind) in cases {
        let (url, task) = answering_101(answer).await;
        let mut opts = opts;
        opts.set_url(url);
        let err = connect(&opts).await.expect_err(case);
        let Error::Handshake(hs) = &err else {
            panic!("{case}: not a handshake error: {err:?}");
        };
        assert!(kind(hs), "{case}: wrong kind {err:?}");
        assert_eq!(
            (err.code(), err.phase()),
            (8, Some(Phase::Upgrade)),
            "{case}"
        );
        let response = err
            .response()
            .unwrap_or_else(|| panic!("{case}: no response in {err:?}"));
        assert_eq!(response.status(), 101, "{case}");
        assert_eq!(response.headers()["x-case"], case, "{case}");
        assert!(response.body_start().is_empty(), "{case}");
        let printed = response.to_string();
        assert!(
            printed.starts_with("HTTP/1.1 101 Switching Protocols\n"),
            "{case}: {printed}"
        );
        assert!(
            printed.contains(&format!("\nX-Case: {case}")),
            "{case}: {printed}"
        );
        assert_eq!(hs.response().map(|r| r.status()), Some(response.status()));
        assert!(err.rejected().is_none(), "{case}: not a refusal");
        task.abort();
    }
}

#[tokio::test]
async fn on_error_sees_the_response_of_an_invalid_101() {
    let (url, task) = answering_101(|_| {
        head_101(
            "events",
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bad\r\n",
        )
    })
    .await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut ws = wsclient::Client::new(&url).unwrap();
    let s = seen.clone();
    ws.on_error(move |_, e| {
        let r = e.response().map(|r| {
            (
                r.status().as_u16(),
                r.headers()
                    .get("x-case")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            )
        });
        s.lock().unwrap().push((e.code(), r));
    });
    let conn = ws.connect();
    tokio::time::timeout(LIMIT, conn.finished())
        .await
        .expect("the failed attempt ends");
    assert_eq!(
        *seen.lock().unwrap(),
        [(8, Some((101, Some("events".to_owned()))))]
    );
    task.abort();
}

// ---------------------------------------------------------------------------
// Read buffer
// ---------------------------------------------------------------------------

#[tokio::test]
async fn keep_read_buffer_reaches_the_socket() {
    for kind in PeerKind::ALL {
        let peer = Peer::start(kind, &PeerOptions::default());
        let url = format!("ws://127.0.0.1:{}/echo", peer.port);
        for keep in [false, true] {
            let opts = ConnectOptions::new(&url).keep_read_buffer(keep);
            let (mut ws, _) = connect(&opts)
                .await
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(ws.keeps_read_buffer(), keep, "{kind}");
            // Messages after waits arrive whole either way.
            for _ in 0..3 {
                echo_once(&mut ws).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            ws.close(wsclient::CloseCode::NORMAL, "").await.unwrap();
        }
    }
}

/// `ConnectOptions::bulk_read_tries` reaches the plain stream, and a
/// stream of large messages arrives whole with the tries off, few or many.
#[tokio::test]
async fn bulk_read_tries_reaches_the_socket() {
    use futures_util::SinkExt as _;
    for kind in PeerKind::ALL {
        let peer = Peer::start(kind, &PeerOptions::default());
        let url = format!("ws://127.0.0.1:{}/echo", peer.port);
        let default = connect(&ConnectOptions::new(&url)).await.unwrap().0;
        assert_eq!(
            default.get_ref().bulk_read_tries(),
            Some(wsclient::transport::BULK_TRIES),
            "{kind}"
        );
        for tries in [0, 3, 200] {
            let opts = ConnectOptions::new(&url).bulk_read_tries(tries);
            let (mut ws, _) = connect(&opts)
                .await
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(ws.get_ref().bulk_read_tries(), Some(tries), "{kind}");
            let io = opts.connect_transport().await.unwrap();
            assert_eq!(io.bulk_read_tries(), Some(tries), "connect_transport");
            let texts: Vec<String> = (0..8u8)
                .map(|i| char::from(b'a' + i).to_string().repeat(48 << 10))
                .collect();
            for t in &texts {
                ws.feed(Message::text(t.as_str())).await.unwrap();
            }
            ws.flush().await.unwrap();
            for t in &texts {
                assert_eq!(&next_text(&mut ws).await, t, "{kind}, {tries} tries");
            }
            ws.close(wsclient::CloseCode::NORMAL, "").await.unwrap();
        }
    }
}

async fn echo_once(ws: &mut WebSocket<MaybeTlsStream>) {
    let text = "x".repeat(10_000);
    ws.send(Message::text(text.as_str())).await.unwrap();
    assert_eq!(next_text(ws).await, text);
}
