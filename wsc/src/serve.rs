//! `wsc serve`: a small echo or broadcast server on the library's server
//! role (`wsclient::server::accept`, the same engine as the client). Also
//! the embedded server of `wsc demo`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use wsclient::proto::{Config, DeflateConfig};
use wsclient::server::{AcceptOptions, accept};
use wsclient::{Error, Message, WebSocket};

use crate::cli::{ServeArgs, ServeMode};
use crate::exit;

/// How long a connection may take to finish its close after an error.
const DRAIN: Duration = Duration::from_secs(5);

/// What the server does with messages.
#[derive(Clone)]
pub enum Mode {
    /// Send each back to its sender.
    Echo,
    /// Send each to everyone on the hub.
    Broadcast(broadcast::Sender<Message>),
    /// Bridge each client to a new TCP connection to this address.
    Forward(String),
}

/// Server settings shared by every connection.
pub struct Server {
    /// Handshake and engine settings.
    pub accept: AcceptOptions,
    /// Echo or broadcast.
    pub mode: Mode,
    /// Log connections and messages on stderr.
    pub verbose: bool,
}

/// Where the server listens: a TCP address or (`--unix`) a Unix domain
/// socket.
pub enum Listener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A Unix domain socket listener.
    #[cfg(unix)]
    Unix(tokio::net::UnixListener),
}

/// A connection taken by a [`Listener`].
enum Accepted {
    Tcp(TcpStream, SocketAddr),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Listener::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                let _ = stream.set_nodelay(true);
                Ok(Accepted::Tcp(stream, peer))
            }
            #[cfg(unix)]
            Listener::Unix(l) => Ok(Accepted::Unix(l.accept().await?.0)),
        }
    }
}

/// Accepts connections until the task is dropped or aborted; aborting it
/// drops the listener and every connection at once.
pub async fn accept_loop(listener: Listener, server: Arc<Server>) {
    let mut conns = JoinSet::new();
    // Unix socket clients have no address: they are named by number.
    #[cfg(unix)]
    let mut unix_clients = 0u64;
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok(Accepted::Tcp(stream, peer)) => {
                    conns.spawn(handle(stream, peer.to_string(), server.clone()));
                }
                #[cfg(unix)]
                Ok(Accepted::Unix(stream)) => {
                    unix_clients += 1;
                    conns.spawn(handle(stream, format!("unix#{unix_clients}"), server.clone()));
                }
                Err(e) => {
                    // Out of descriptors and the like: note it, breathe, go on.
                    eprintln!("wsc serve: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn handle<S>(stream: S, peer: String, server: Arc<Server>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut ws, request) = match accept(stream, &server.accept).await {
        Ok(x) => x,
        Err(e) => {
            if server.verbose {
                eprintln!("[{peer}] handshake failed: {e}");
            }
            return;
        }
    };
    if server.verbose {
        eprintln!("[{peer}] open {}", request.request.uri());
    }
    let result = match &server.mode {
        Mode::Echo => echo(&mut ws, &peer, server.verbose)
            .await
            .map(|code| format!("closed {code}")),
        Mode::Broadcast(hub) => relay(ws, hub, &peer, server.verbose)
            .await
            .map(|code| format!("closed {code}")),
        Mode::Forward(to) => forward_to(ws, to, &peer).await,
    };
    if server.verbose {
        match result {
            Ok(how) => eprintln!("[{peer}] {how}"),
            Err(e) => eprintln!("[{peer}] closed: {e}"),
        }
    }
}

fn describe(m: &Message) -> String {
    match m {
        Message::Text(t) => format!("text {} bytes", t.len()),
        Message::Binary(b) => format!("binary {} bytes", b.len()),
        other => other.to_string(),
    }
}

/// Echoes data messages until the connection ends; returns the close code.
async fn echo<S>(ws: &mut WebSocket<S>, peer: &str, verbose: bool) -> Result<u16, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(item) = ws.next().await {
        match item {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if verbose {
                    eprintln!("[{peer}] {}", describe(&m));
                }
                ws.send(m).await?;
            }
            Ok(_) => {}
            Err(e) => {
                // The engine queued the close frame for the error: let the
                // socket write it and end the connection.
                let _ =
                    tokio::time::timeout(DRAIN, async { while ws.next().await.is_some() {} }).await;
                return Err(e);
            }
        }
    }
    Ok(ws.close_code().0)
}

/// How long `--to` waits for its backend's TCP connect.
const BACKEND_CONNECT: Duration = Duration::from_secs(10);

/// Forward mode: the client bridged to a new TCP connection to `to`; a
/// backend that cannot be reached closes the client with 1014 (bad
/// gateway), logged whether verbose or not.
async fn forward_to<S>(ws: WebSocket<S>, to: &str, peer: &str) -> Result<String, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let tcp = match tokio::time::timeout(BACKEND_CONNECT, TcpStream::connect(to)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return bad_gateway(ws, to, peer, &e.to_string()).await,
        Err(_) => return bad_gateway(ws, to, peer, "timed out").await,
    };
    let _ = tcp.set_nodelay(true);
    let moved = crate::bridge::bridge(ws, tcp).await?;
    Ok(format!(
        "closed ({} bytes to {to}, {} back)",
        moved.to_tcp, moved.to_ws
    ))
}

async fn bad_gateway<S>(
    mut ws: WebSocket<S>,
    to: &str,
    peer: &str,
    why: &str,
) -> Result<String, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    eprintln!("[{peer}] cannot reach {to}: {why}");
    let _ = tokio::time::timeout(
        DRAIN,
        ws.close(wsclient::CloseCode::BAD_GATEWAY, "backend unreachable"),
    )
    .await;
    Ok("closed 1014".to_owned())
}

/// Broadcast mode: messages from this client go to the hub, messages from
/// the hub go to this client.
async fn relay<S>(
    ws: WebSocket<S>,
    hub: &broadcast::Sender<Message>,
    peer: &str,
    verbose: bool,
) -> Result<u16, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut from_hub = hub.subscribe();
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            item = stream.next() => match item {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    if verbose {
                        eprintln!("[{peer}] {}", describe(&m));
                    }
                    let _ = hub.send(m);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = tokio::time::timeout(DRAIN, async { while stream.next().await.is_some() {} }).await;
                    return Err(e);
                }
                None => break,
            },
            m = from_hub.recv() => match m {
                Ok(m) => {
                    if sink.send(m).await.is_err() {
                        // The read side reports why.
                        continue;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("[{peer}] too slow: {n} broadcast message(s) skipped");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    let ws = sink.reunite(stream).map_err(|_| Error::Closed)?;
    Ok(ws.close_code().0)
}

/// The settings `wsc serve` flags describe.
fn server_for(args: &ServeArgs) -> Server {
    let mut config = Config::default();
    if let Some(n) = args.max_message_size {
        config = config.max_message_size(n).max_frame_size(n);
    }
    let mode = match args.mode() {
        ServeMode::Echo => Mode::Echo,
        ServeMode::Broadcast => Mode::Broadcast(broadcast::channel(1024).0),
        ServeMode::Forward(to) => Mode::Forward(to),
    };
    Server {
        accept: AcceptOptions {
            config,
            protocols: args.subprotocols.clone(),
            deflate: args.compress.then(DeflateConfig::default),
            ..AcceptOptions::default()
        },
        mode,
        verbose: args.verbose,
    }
}

/// Lines typed on stdin go to every client (broadcast mode).
fn broadcast_stdin(hub: broadcast::Sender<Message>) {
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let _ = hub.send(Message::text(line));
        }
    });
}

pub async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            term.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await;
}

/// Listens where the flags say: the listener and how to name it (a
/// `ws://` URL, or `unix:PATH`), or the message for why it cannot.
async fn bind(args: &ServeArgs) -> Result<(Listener, String), String> {
    #[cfg(unix)]
    if let Some(path) = &args.unix {
        // A socket file left by a server that is gone (nothing accepts on
        // it) is taken over; one that is in use, or any other file, is not.
        if std::os::unix::net::UnixStream::connect(path)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            let _ = std::fs::remove_file(path);
        }
        let listener = tokio::net::UnixListener::bind(path)
            .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
        return Ok((Listener::Unix(listener), format!("unix:{}", path.display())));
    }
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    Ok((Listener::Tcp(listener), format!("ws://{addr}")))
}

/// Runs `wsc serve`; returns the exit code.
pub async fn run(args: ServeArgs) -> u8 {
    crate::sys::raise_nofile();
    let (listener, shown) = match bind(&args).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("wsc serve: {e}");
            return exit::FAILURE;
        }
    };
    let server = Arc::new(server_for(&args));
    if let Mode::Broadcast(hub) = &server.mode {
        broadcast_stdin(hub.clone());
    }
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "listening on {shown} ({})",
            match args.mode() {
                ServeMode::Echo => "echo".to_owned(),
                ServeMode::Broadcast => "broadcast".to_owned(),
                ServeMode::Forward(to) => format!("forwarding to {to}"),
            }
        );
        let _ = out.flush();
    }
    tokio::select! {
        () = accept_loop(listener, server) => {}
        _ = tokio::signal::ctrl_c() => {}
        () = terminated() => {}
    }
    #[cfg(unix)]
    if let Some(path) = &args.unix {
        let _ = std::fs::remove_file(path);
    }
    exit::OK
}
