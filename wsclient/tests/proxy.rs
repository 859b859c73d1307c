//! Connecting through REAL proxy servers to real WebSocket peers:
//! `tinyproxy` (HTTP `CONNECT`, Basic proxy authentication) and
//! `microsocks` (SOCKS5, RFC 1929 user/password), both Debian packages
//! installed by `scripts/install-proxies.sh`. Each test starts its own proxy
//! process on a free loopback port with a temp configuration, waits for the
//! port, and kills it at the end. A missing proxy binary FAILS the test,
//! naming the install script.
//!
//! The proxy logs tell where the tunnel went (`CONNECT host:port` for
//! tinyproxy, `connected to host:port` for microsocks), which shows who
//! resolved the name (`socks5://` here, `socks5h://` the proxy).

#[path = "support/client.rs"]
mod client;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/pki.rs"]
mod pki;
#[path = "support/ports.rs"]
mod ports;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client::{connect, next_text};
use peers::{Peer, PeerKind, PeerOptions};
use pki::Pki;
use ports::refusing_port;
use wsclient::transport::proxy::ProxyError;
use wsclient::{ConnectOptions, Error, MaybeTlsStream, Message, Phase, WebSocket};

const USER: &str = "alice";
const PASS: &str = "s3cret";

// ---------------------------------------------------------------------------
// Proxy processes
// ---------------------------------------------------------------------------

/// Finds `name` on `PATH` (and the sbin directories), or fails the test
/// naming the install script.
fn binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "proxy server `{name}` is not installed: run `scripts/install-proxies.sh` from the \
         workspace root ({}) — it installs tinyproxy and microsocks (Debian packages)",
        peers::workspace_root().display()
    );
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A proxy server process; killed (and its temp files removed) on drop.
struct ProxyProc {
    name: &'static str,
    port: u16,
    child: Child,
    log: Arc<Mutex<String>>,
    dir: PathBuf,
}

impl ProxyProc {
    /// Starts `cmd` (already given its port) and waits until the port
    /// accepts connections.
    fn spawn(name: &'static str, mut cmd: Command, port: u16, dir: PathBuf) -> ProxyProc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start {name} ({cmd:?}): {e}; run `scripts/install-proxies.sh`")
        });
        let log = Arc::new(Mutex::new(String::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    eprintln!("[{name}] {line}");
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let mut p = ProxyProc {
            name,
            port,
            child,
            log,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return p;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!(
                    "{name} exited with {status} before listening on {port}:\n{}",
                    p.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not listen on 127.0.0.1:{port} within 10 s:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (a little: the log is written by the proxy as it goes) until
    /// the log contains `needle`.
    fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{} log lacks {needle:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `scheme://[user:pass@]127.0.0.1:port`.
    fn url(&self, scheme: &str, auth: Option<(&str, &str)>) -> String {
        match auth {
            Some((u, p)) => format!("{scheme}://{u}:{p}@127.0.0.1:{}", self.port),
            None => format!("{scheme}://127.0.0.1:{}", self.port),
        }
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "wsclient-proxy-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// tinyproxy in the foreground, `BasicAuth user pass` when `auth`.
fn tinyproxy(auth: Option<(&str, &str)>) -> ProxyProc {
    let bin = binary("tinyproxy");
    let port = free_port();
    let dir = temp_dir("tinyproxy");
    let conf = dir.join("tinyproxy.conf");
    let mut text = format!(
        "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 32\nLogLevel Connect\n\
         Allow 127.0.0.1\nDisableViaHeader Yes\n"
    );
    if let Some((u, p)) = auth {
        text.push_str(&format!("BasicAuth {u} {p}\n"));
    }
    std::fs::write(&conf, text).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("-d").arg("-c").arg(&conf);
    ProxyProc::spawn("tinyproxy", cmd, port, dir)
}

/// microsocks (always in the foreground), `-u user -P pass` when `auth`.
fn microsocks(auth: Option<(&str, &str)>) -> ProxyProc {
    let bin = binary("microsocks");
    let port = free_port();
    let dir = temp_dir("microsocks");
    let mut cmd = Command::new(bin);
    cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
    if let Some((u, p)) = auth {
        cmd.args(["-u", u, "-P", p]);
    }
    ProxyProc::spawn("microsocks", cmd, port, dir)
}

// ---------------------------------------------------------------------------
// Peers and helpers
// ---------------------------------------------------------------------------

fn tls_peer(kind: PeerKind, cert: &pki::Issued) -> Peer {
    Peer::start(
        kind,
        &PeerOptions {
            tls: Some(cert.pair()),
            ..PeerOptions::default()
        },
    )
}

async fn echo(ws: &mut WebSocket<MaybeTlsStream>, tag: &str) {
    ws.send(Message::text(format!("through {tag}")))
        .await
        .unwrap();
    assert_eq!(next_text(ws).await, format!("through {tag}"));
    ws.close(wsclient::CloseCode::NORMAL, "").await.unwrap();
}

/// The response is the WebSocket server's, not the proxy's.
fn assert_server_response(response: &wsclient::Response) {
    assert_eq!(response.status(), 101);
    assert!(response.headers().contains_key("sec-websocket-accept"));
    assert!(!response.headers().contains_key("proxy-agent"));
}

fn proxy_err(res: Result<impl Sized, Error>) -> ProxyError {
    match res {
        Err(Error::Proxy(e)) => e,
        Err(e) => panic!("expected a proxy error, got {e:?}"),
        Ok(_) => panic!("expected a proxy error, the connection succeeded"),
    }
}

// ---------------------------------------------------------------------------
// HTTP CONNECT (tinyproxy)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn http_connect_with_basic_auth_ws_and_wss() {
    let proxy = tinyproxy(Some((USER, PASS)));
    let proxy_url = proxy.url("http", Some((USER, PASS)));

    // ws:// to the Python peer: the server sees its own Host, never the
    // proxy credentials.
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());
    let (mut ws, response) = connect(&ConnectOptions::new(peer.url("/headers")).proxy(&proxy_url))
        .await
        .expect("ws:// through tinyproxy");
    assert_server_response(&response);
    let headers = next_text(&mut ws).await;
    assert!(
        headers.contains(&format!("\"host\":\"127.0.0.1:{}\"", peer.port)),
        "{headers}"
    );
    assert!(!headers.contains("proxy-authorization"), "{headers}");
    echo(&mut ws, "tinyproxy ws").await;
    proxy.wait_log(&format!("CONNECT 127.0.0.1:{} HTTP/1.1", peer.port));

    // wss:// to the Node peer: TLS runs end to end through the tunnel, the
    // certificate is checked for `localhost`, which the proxy resolves.
    let pki = Pki::new("http-proxy");
    let cert = pki.server("server", &["localhost"]);
    let tls = tls_peer(PeerKind::Node, &cert);
    let (mut ws, response) = connect(
        &ConnectOptions::new(tls.url_with_host("localhost", "/echo"))
            .ca_file(&pki.ca)
            .proxy(&proxy_url),
    )
    .await
    .expect("wss:// through tinyproxy");
    assert_server_response(&response);
    assert!(matches!(ws.get_ref(), MaybeTlsStream::Tls(_)));
    echo(&mut ws, "tinyproxy wss").await;
    proxy.wait_log(&format!("CONNECT localhost:{} HTTP/1.1", tls.port));

    // The certificate is still checked through the tunnel.
    let err =
        connect(&ConnectOptions::new(tls.url_with_host("localhost", "/echo")).proxy(&proxy_url))
            .await
            .expect_err("an untrusted certificate through a proxy");
    assert!(
        matches!(
            err,
            Error::Tls(wsclient::transport::tls::TlsError::UnknownIssuer)
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn http_connect_auth_errors() {
    let proxy = tinyproxy(Some((USER, PASS)));
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());

    let res = connect(
        &ConnectOptions::new(peer.url("/echo")).proxy(&proxy.url("http", Some((USER, "wrong")))),
    )
    .await;
    let err = res.expect_err("wrong password");
    assert!(
        matches!(err, Error::Proxy(ProxyError::AuthFailed)),
        "{err:?}"
    );
    assert_eq!(err.code(), 6);
    assert_eq!(err.phase(), Some(Phase::Proxy));

    let res =
        connect(&ConnectOptions::new(peer.url("/echo")).proxy(&proxy.url("http", None))).await;
    assert!(matches!(proxy_err(res), ProxyError::AuthRequired));
}

#[tokio::test]
async fn http_connect_refused_by_the_proxy() {
    let proxy = tinyproxy(None);
    // Nobody listens there: tinyproxy answers 500 "Unable to connect".
    let (_held, closed) = refusing_port();
    let res = connect(
        &ConnectOptions::new(format!("ws://127.0.0.1:{closed}/")).proxy(&proxy.url("http", None)),
    )
    .await;
    let err = proxy_err(res);
    assert!(
        matches!(err, ProxyError::Refused { status } if status.is_server_error()),
        "{err:?}"
    );
    assert!(err.to_string().contains("500"), "{err}");
}

// ---------------------------------------------------------------------------
// SOCKS5 (microsocks)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn socks5_with_user_password() {
    let proxy = microsocks(Some((USER, PASS)));
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());

    // socks5:// resolves here: the proxy gets the address (a name pinned
    // with `resolve` shows it: the proxy could not resolve it).
    let (mut ws, response) = connect(
        &ConnectOptions::new(format!("ws://peer.test:{}/headers", peer.port))
            .resolve("peer.test", &["127.0.0.1".parse().unwrap()])
            .proxy(&proxy.url("socks5", Some((USER, PASS)))),
    )
    .await
    .expect("ws:// through socks5://");
    assert_server_response(&response);
    let headers = next_text(&mut ws).await;
    assert!(
        headers.contains(&format!("\"host\":\"peer.test:{}\"", peer.port)),
        "{headers}"
    );
    echo(&mut ws, "socks5").await;
    proxy.wait_log(&format!("connected to 127.0.0.1:{}", peer.port));

    // socks5h:// sends the name: the proxy resolves `localhost`.
    let pki = Pki::new("socks");
    let cert = pki.server("server", &["localhost"]);
    let tls = tls_peer(PeerKind::Node, &cert);
    let (mut ws, response) = connect(
        &ConnectOptions::new(tls.url_with_host("localhost", "/echo"))
            .ca_file(&pki.ca)
            .proxy(&proxy.url("socks5h", Some((USER, PASS)))),
    )
    .await
    .expect("wss:// through socks5h://");
    assert_server_response(&response);
    echo(&mut ws, "socks5h wss").await;
    proxy.wait_log(&format!("connected to localhost:{}", tls.port));

    // A name only this client knows cannot be resolved by the proxy.
    let res = connect(
        &ConnectOptions::new(format!("ws://peer.test:{}/echo", peer.port))
            .resolve("peer.test", &["127.0.0.1".parse().unwrap()])
            .proxy(&proxy.url("socks5h", Some((USER, PASS)))),
    )
    .await;
    assert!(matches!(proxy_err(res), ProxyError::Socks { .. }));
}

#[tokio::test]
async fn socks5_errors() {
    let proxy = microsocks(Some((USER, PASS)));
    let peer = Peer::start(PeerKind::Node, &PeerOptions::default());

    let res = connect(
        &ConnectOptions::new(peer.url("/echo")).proxy(&proxy.url("socks5", Some((USER, "wrong")))),
    )
    .await;
    let err = res.expect_err("wrong password");
    assert!(
        matches!(err, Error::Proxy(ProxyError::AuthFailed)),
        "{err:?}"
    );
    assert_eq!((err.code(), err.phase()), (6, Some(Phase::Proxy)));

    let res =
        connect(&ConnectOptions::new(peer.url("/echo")).proxy(&proxy.url("socks5", None))).await;
    assert!(matches!(proxy_err(res), ProxyError::AuthRequired));

    let (_held, closed) = refusing_port();
    let res = connect(
        &ConnectOptions::new(format!("ws://127.0.0.1:{closed}/"))
            .proxy(&proxy.url("socks5h", Some((USER, PASS)))),
    )
    .await;
    let err = proxy_err(res);
    assert!(matches!(err, ProxyError::Socks { code: 5 }), "{err:?}");
    assert!(err.to_string().contains("connection refused"), "{err}");
}

/// `socks5://` resolves the name here and tries every address, in order,
/// each on a new proxy connection: the first address (127.0.0.2, where
/// nothing listens on the peer's port: the peer listens on 127.0.0.1 only)
/// is refused by the proxy's connect, the second reaches the peer.
#[tokio::test]
async fn socks5_tries_every_resolved_address() {
    let proxy = microsocks(Some((USER, PASS)));
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());
    let dead: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let dead2: std::net::IpAddr = "127.0.0.3".parse().unwrap();
    let good: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    assert!(
        std::net::TcpStream::connect((dead, peer.port)).is_err(),
        "nothing may listen on {dead}:{}",
        peer.port
    );

    let (mut ws, response) = connect(
        &ConnectOptions::new(format!("ws://peer.test:{}/echo", peer.port))
            .resolve("peer.test", &[dead, good])
            .proxy(&proxy.url("socks5", Some((USER, PASS)))),
    )
    .await
    .expect("socks5:// through the second address");
    assert_server_response(&response);
    echo(&mut ws, "socks5 second address").await;
    proxy.wait_log(&format!("connected to 127.0.0.1:{}", peer.port));
    assert!(
        !proxy
            .log()
            .contains(&format!("connected to 127.0.0.2:{}", peer.port)),
        "{}",
        proxy.log()
    );

    // Every address dead: the last address's typed SOCKS5 error.
    let err = connect(
        &ConnectOptions::new(format!("ws://peer.test:{}/echo", peer.port))
            .resolve("peer.test", &[dead, dead2])
            .proxy(&proxy.url("socks5", Some((USER, PASS)))),
    )
    .await
    .expect_err("no address reachable");
    assert!(
        matches!(err, Error::Proxy(ProxyError::Socks { code: 5 })),
        "{err:?}"
    );
    assert_eq!((err.code(), err.phase()), (6, Some(Phase::Proxy)));

    // A proxy error no other address can change ends the attempts at once.
    let err = connect(
        &ConnectOptions::new(format!("ws://peer.test:{}/echo", peer.port))
            .resolve("peer.test", &[dead, good])
            .proxy(&proxy.url("socks5", Some((USER, "wrong")))),
    )
    .await
    .expect_err("wrong password");
    assert!(
        matches!(err, Error::Proxy(ProxyError::AuthFailed)),
        "{err:?}"
    );
}

/// The attempts over several addresses share one budget: a proxy that
/// never answers costs `connect_timeout + proxy_timeout` at most, however
/// many addresses there are.
#[tokio::test]
async fn socks5_attempts_share_one_budget() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let addrs: Vec<std::net::IpAddr> = (2..=9)
        .map(|i| format!("127.0.0.{i}").parse().unwrap())
        .collect();
    let t = Duration::from_millis(300);
    let start = Instant::now();
    let err = connect(
        &ConnectOptions::new("ws://many.test:9/")
            .resolve("many.test", &addrs)
            .proxy(&format!("socks5://127.0.0.1:{port}"))
            .proxy_timeout(t)
            .connect_timeout(Duration::from_millis(400)),
    )
    .await
    .expect_err("a silent proxy must time out");
    let took = start.elapsed();
    assert!(
        matches!(err, Error::Timeout { phase: Phase::Proxy, after } if after == Duration::from_millis(700)),
        "{err:?}"
    );
    // 8 addresses × 300 ms would be 2.4 s.
    assert!(took < Duration::from_millis(1_500), "{took:?}");
    hold.abort();
}

// ---------------------------------------------------------------------------
// Timeouts and bad settings
// ---------------------------------------------------------------------------

#[tokio::test]
async fn proxy_negotiation_timeout() {
    // Accepts TCP and never answers: a stuck proxy.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    for scheme in ["http", "socks5", "socks5h"] {
        let t = Duration::from_millis(300);
        let res = connect(
            &ConnectOptions::new("ws://127.0.0.1:9/")
                .proxy(&format!("{scheme}://127.0.0.1:{port}"))
                .proxy_timeout(t),
        )
        .await;
        let err = res.expect_err("a silent proxy must time out");
        assert!(
            matches!(err, Error::Timeout { phase: Phase::Proxy, after } if after == t),
            "{scheme}: {err:?}"
        );
        assert_eq!(err.code(), 4);
    }
    hold.abort();
}

#[tokio::test]
async fn bad_proxy_settings() {
    let res = connect(&ConnectOptions::new("ws://127.0.0.1:9/").proxy("https://127.0.0.1:1")).await;
    let err = res.expect_err("https proxies are not supported");
    assert!(
        matches!(err, Error::Proxy(ProxyError::UnsupportedScheme(ref s)) if s == "https"),
        "{err:?}"
    );
    assert_eq!(err.code(), 6);

    let res = connect(&ConnectOptions::new("ws://127.0.0.1:9/").proxy("http://:secret@/")).await;
    let err = proxy_err(res);
    assert!(matches!(err, ProxyError::InvalidUrl { .. }), "{err:?}");
    assert!(!err.to_string().contains("secret"), "{err}");

    // An unreachable proxy is a TCP error naming the proxy.
    let (_held, closed) = refusing_port();
    let res = connect(
        &ConnectOptions::new("ws://127.0.0.1:9/").proxy(&format!("socks5://127.0.0.1:{closed}")),
    )
    .await;
    match res {
        Err(Error::Connect { port, .. }) => assert_eq!(port, closed),
        other => panic!("expected a TCP connect error, got {:?}", other.err()),
    }
}

// ---------------------------------------------------------------------------
// From the environment
// ---------------------------------------------------------------------------

/// Variables a child process must not inherit.
const PROXY_VARS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// The child half of [`proxy_from_environment`]: does nothing unless run
/// by it (environment variables are per process, and changing them in a
/// threaded test process is unsound), then connects to `CHILD_URL` with
/// `proxy_from_env()` and checks the outcome against `CHILD_EXPECT`
/// (`ok` or the expected error code).
#[tokio::test]
async fn env_child() {
    let Ok(url) = std::env::var("WSCLIENT_ENV_CHILD_URL") else {
        return;
    };
    let expect = std::env::var("WSCLIENT_ENV_CHILD_EXPECT").unwrap();
    let mut opts = ConnectOptions::new(&url).connect_timeout(Duration::from_secs(5));
    if std::env::var("WSCLIENT_ENV_CHILD_NO_ENV").is_err() {
        opts = opts.proxy_from_env();
    }
    if let Ok(ca) = std::env::var("WSCLIENT_ENV_CHILD_CA") {
        opts = opts.ca_file(ca);
    }
    match (connect(&opts).await, expect.as_str()) {
        (Ok((mut ws, response)), "ok") => {
            assert_server_response(&response);
            echo(&mut ws, "env").await;
        }
        (Ok(_), _) => panic!("{url}: connected, expected error code {expect}"),
        (Err(e), "ok") => panic!("{url}: {e} ({e:?})"),
        (Err(e), code) => assert_eq!(e.code().to_string(), code, "{url}: {e:?}"),
    }
}

fn run_child(env: &[(&str, String)], url: &str, expect: &str, extra: &[(&str, &Path)]) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["env_child", "--exact", "--nocapture", "--test-threads=1"]);
    for v in PROXY_VARS {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.env("WSCLIENT_ENV_CHILD_URL", url)
        .env("WSCLIENT_ENV_CHILD_EXPECT", expect);
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child with {env:?} to {url} (expecting {expect}) failed:\n{text}"
    );
}

#[test]
fn proxy_from_environment() {
    let tiny = tinyproxy(Some((USER, PASS)));
    let socks = microsocks(Some((USER, PASS)));
    let ws = Peer::start(PeerKind::Python, &PeerOptions::default());
    let pki = Pki::new("env");
    let cert = pki.server("server", &["localhost"]);
    let wss = tls_peer(PeerKind::Node, &cert);
    let http_url = tiny.url("http", Some((USER, PASS)));
    let socks_url = socks.url("socks5h", Some((USER, PASS)));
    let (_held, dead_port) = refusing_port();
    let dead = format!("http://127.0.0.1:{dead_port}");
    let ca: &[(&str, &Path)] = &[("WSCLIENT_ENV_CHILD_CA", &pki.ca)];
    let ws_url = ws.url("/echo");
    let wss_url = wss.url_with_host("localhost", "/echo");

    // ws:// takes HTTP_PROXY.
    run_child(&[("HTTP_PROXY", http_url.clone())], &ws_url, "ok", &[]);
    tiny.wait_log(&format!("CONNECT 127.0.0.1:{} HTTP/1.1", ws.port));

    // wss:// takes https_proxy (lower case), not HTTP_PROXY.
    run_child(
        &[
            ("https_proxy", socks_url.clone()),
            ("HTTP_PROXY", dead.clone()),
        ],
        &wss_url,
        "ok",
        ca,
    );
    socks.wait_log(&format!("connected to localhost:{}", wss.port));

    // ALL_PROXY is the fallback, for both schemes; an empty variable is unset.
    run_child(
        &[("ALL_PROXY", socks_url.clone())],
        &ws.url_with_host("localhost", "/echo"),
        "ok",
        &[],
    );
    socks.wait_log(&format!("connected to localhost:{}", ws.port));
    run_child(
        &[
            ("all_proxy", http_url.clone()),
            ("HTTPS_PROXY", String::new()),
        ],
        &wss_url,
        "ok",
        ca,
    );
    tiny.wait_log(&format!("CONNECT localhost:{} HTTP/1.1", wss.port));

    // The variables are really used: a dead proxy fails the connection
    // (TCP error, code 3) ...
    run_child(
        &[
            ("http_proxy", dead.clone()),
            ("no_proxy", ".example.com".into()),
        ],
        &ws_url,
        "3",
        &[],
    );
    // ... unless NO_PROXY lists the host (address, suffix, `*`) ...
    run_child(
        &[
            ("HTTP_PROXY", dead.clone()),
            ("NO_PROXY", "example.com, 127.0.0.1".into()),
        ],
        &ws_url,
        "ok",
        &[],
    );
    run_child(
        &[
            ("HTTPS_PROXY", dead.clone()),
            ("no_proxy", "localhost".into()),
        ],
        &wss_url,
        "ok",
        ca,
    );
    run_child(
        &[("HTTPS_PROXY", dead.clone()), ("NO_PROXY", "*".into())],
        &wss_url,
        "ok",
        ca,
    );
    // ... or the environment was not asked for.
    run_child(
        &[("HTTP_PROXY", dead.clone()), ("ALL_PROXY", dead.clone())],
        &ws_url,
        "ok",
        &[("WSCLIENT_ENV_CHILD_NO_ENV", Path::new("1"))],
    );

    // Proxy errors from the environment are proxy errors (code 6).
    run_child(&[("HTTP_PROXY", tiny.url("http", None))], &ws_url, "6", &[]);
}
