//! `wsc demo`: the README's first command. The seed's scenario, end to end,
//! against an embedded echo server: connect, handshake, `hello`, a
//! ping/pong, the server going away, the seed's `reConnect(1)` from
//! `onClose`, `hello` again, then a clean close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use wsclient::server::AcceptOptions;
use wsclient::{Client, Message, SendType};

use crate::cli::DemoArgs;
use crate::exit;
use crate::serve::{Listener, Mode, Server, accept_loop};

/// What the callbacks tell the demo's script.
#[derive(Debug)]
enum Event {
    Message,
    Pong,
    Closed,
}

/// How long any one step may take before the demo gives up.
const STEP: Duration = Duration::from_secs(5);

fn server() -> Arc<Server> {
    Arc::new(Server {
        accept: AcceptOptions::default(),
        mode: Mode::Echo,
        verbose: false,
    })
}

async fn start(addr: SocketAddr) -> std::io::Result<(JoinHandle<()>, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    Ok((
        tokio::spawn(accept_loop(Listener::Tcp(listener), server())),
        addr,
    ))
}

/// Stops the server: the listener and every connection are dropped.
async fn stop(server: JoinHandle<()>) {
    server.abort();
    let _ = server.await;
}

async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<Event>,
    want: &str,
    pred: fn(&Event) -> bool,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) if pred(&e) => return Ok(()),
            Ok(Some(_)) => {}
            Ok(None) => return Err(format!("the client stopped before {want}")),
            Err(_) => return Err(format!("no {want} within {STEP:?}")),
        }
    }
}

fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Runs the demo; returns the exit code.
pub async fn run(args: DemoArgs) -> u8 {
    match script(args).await {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("wsc demo: {e}");
            exit::FAILURE
        }
    }
}

async fn script(args: DemoArgs) -> Result<(), String> {
    let (srv, addr) = start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| format!("cannot start the echo server: {e}"))?;
    let url = format!("ws://{addr}");
    say(&format!("# echo server listening on {url}"));

    let (tx, mut rx) = mpsc::unbounded_channel();
    let finishing = Arc::new(AtomicBool::new(false));

    // The seed, line by line (see wsclient/examples/seed.rs).
    let mut ws = Client::new(&url).map_err(|e| e.to_string())?;
    ws.ping_interval(args.ping_interval);
    ws.header(
        "Cookie",
        "PHPSID=82u98fjhakfusuanfnahfi; token=2hf9a929jhfihaf9i",
    );
    ws.header("OtherKey", "values");
    ws.send_type(SendType::Text);
    ws.on_connect(|_conn| say("tcp connected"));
    ws.on_websocket_connect(|conn, response| {
        say(&response.to_string());
        if let Err(e) = conn.send("hello") {
            say(&format!("send failed: {e}"));
        }
    });
    {
        let tx = tx.clone();
        ws.on_message(move |_conn, data: Message| {
            say(&format!("recv: {data}"));
            let _ = tx.send(Event::Message);
        });
    }
    {
        let tx = tx.clone();
        ws.on_pong(move |conn, _payload| {
            let rtt = conn.stats().rtt.unwrap_or_default();
            say(&format!("pong: rtt {:.3} ms", rtt.as_secs_f64() * 1e3));
            let _ = tx.send(Event::Pong);
        });
    }
    ws.on_error(|_conn, err| say(&format!("error: {} {err}", err.code())));
    {
        let finishing = finishing.clone();
        let reconnect = args.reconnect;
        ws.on_close(move |conn| {
            if finishing.load(Ordering::Acquire) {
                say("connection closed");
            } else {
                say("connection closed and try to reconnect");
                conn.reconnect(reconnect);
            }
            let _ = tx.send(Event::Closed);
        });
    }
    let conn = ws.connect();

    let result = async {
        wait_for(&mut rx, "reply to hello", |e| matches!(e, Event::Message)).await?;
        say(&format!(
            "# waiting for a ping/pong (ping interval {:?})",
            args.ping_interval
        ));
        wait_for(&mut rx, "pong", |e| matches!(e, Event::Pong)).await?;

        say("# stopping the server");
        stop(srv).await;
        wait_for(&mut rx, "close", |e| matches!(e, Event::Closed)).await?;

        say(&format!("# restarting the server on {addr}"));
        let mut restarted = None;
        for _ in 0..40 {
            match start(addr).await {
                Ok((s, _)) => {
                    restarted = Some(s);
                    break;
                }
                // The old socket may linger for a moment.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let srv = restarted.ok_or_else(|| format!("cannot listen on {addr} again"))?;
        let again = wait_for(&mut rx, "reply after reconnecting", |e| {
            matches!(e, Event::Message)
        })
        .await;

        say("# closing (1000)");
        finishing.store(true, Ordering::Release);
        conn.close();
        let closed = tokio::time::timeout(STEP, conn.finished()).await;
        stop(srv).await;
        again?;
        closed.map_err(|_| "the connection did not close".to_owned())?;
        match conn.close_code() {
            Some(c) if c.0 == 1000 => Ok(()),
            other => Err(format!("closed with {other:?}, expected 1000")),
        }
    }
    .await;
    if result.is_err() {
        finishing.store(true, Ordering::Release);
        conn.close();
        let _ = tokio::time::timeout(Duration::from_secs(1), conn.finished()).await;
    }
    result?;
    say("# done");
    Ok(())
}
