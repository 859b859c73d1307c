//! `wsc forward`: a local TCP port whose every connection is tunnelled
//! through a WebSocket connection of its own to a URL (websocat's
//! `-E tcp-l:ADDR ws://...`; `wsc serve --to` is the other end, or any
//! server that carries bytes in binary messages). The connection flags
//! (headers, TLS, proxy, Unix socket...) apply to every tunnel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use wsclient::ConnectOptions;

use crate::cli::ForwardArgs;
use crate::exit;

/// Runs `wsc forward`; returns the exit code.
pub async fn run(args: ForwardArgs) -> u8 {
    crate::sys::raise_nofile();
    let options = match args.conn.options(&args.url) {
        Ok(o) => Arc::new(o),
        Err((code, msg)) => {
            eprintln!("wsc forward: {msg}");
            return code;
        }
    };
    let listener = match TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("wsc forward: cannot listen on {}: {e}", args.listen);
            return exit::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("wsc forward: {e}");
            return exit::FAILURE;
        }
    };
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {addr} (forwarding to {})", args.url);
        let _ = out.flush();
    }
    let mut tunnels = JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, peer)) => {
                    tunnels.spawn(tunnel(tcp, peer, options.clone(), args.verbose));
                }
                Err(e) => {
                    // Out of descriptors and the like: note it, breathe, go on.
                    eprintln!("wsc forward: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tunnels.join_next(), if !tunnels.is_empty() => {}
            _ = tokio::signal::ctrl_c() => break,
            () = crate::serve::terminated() => break,
        }
    }
    exit::OK
}

/// One local connection: its WebSocket connection, then the bridge until
/// both are done. Failures are logged; the local connection is closed.
async fn tunnel(tcp: TcpStream, peer: SocketAddr, options: Arc<ConnectOptions>, verbose: bool) {
    let _ = tcp.set_nodelay(true);
    let ws = match options.connect().await {
        Ok((ws, _)) => ws,
        Err(e) => {
            eprintln!("[{peer}] {e}");
            return;
        }
    };
    if verbose {
        eprintln!("[{peer}] open");
    }
    match crate::bridge::bridge(ws, tcp).await {
        Ok(moved) => {
            if verbose {
                eprintln!(
                    "[{peer}] closed ({} bytes sent, {} received)",
                    moved.to_ws, moved.to_tcp
                );
            }
        }
        Err(e) => eprintln!("[{peer}] {e}"),
    }
}
