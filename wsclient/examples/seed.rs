//! The seed's example (Workerman's `ws` protocol page), line by line in
//! Rust: `cargo run -p wsclient --example seed -- [URL]`, by default
//! `ws://127.0.0.1:1234` as in the seed.
//!
//! Against an echo server it prints `tcp connected`, the handshake
//! response, `recv: hello`; when the server goes away, `connection closed
//! and try to reconnect`, and a new connection one second later.

use std::time::Duration;

use wsclient::{Client, SendType};

fn main() -> Result<(), wsclient::Error> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:1234".into());

    // $ws_connection = new AsyncTcpConnection("ws://127.0.0.1:1234");
    let mut ws = Client::new(&url)?;
    // $ws_connection->websocketPingInterval = 55;
    ws.ping_interval(Duration::from_secs(55));
    // $ws_connection->headers = ['Cookie' => '...', 'OtherKey' => 'values'];
    ws.header(
        "Cookie",
        "PHPSID=82u98fjhakfusuanfnahfi; token=2hf9a929jhfihaf9i",
    );
    ws.header("OtherKey", "values");
    // $ws_connection->websocketType = Ws::BINARY_TYPE_BLOB;
    ws.send_type(SendType::Text);
    // $ws_connection->onConnect = function($connection){ echo "tcp connected\n"; };
    ws.on_connect(|_conn| println!("tcp connected"));
    // $ws_connection->onWebSocketConnect = function(...){ echo $response; $con->send('hello'); };
    ws.on_websocket_connect(|conn, response| {
        println!("{response}");
        if let Err(e) = conn.send("hello") {
            println!("send failed: {e}");
        }
    });
    // $ws_connection->onMessage = function($connection, $data){ echo "recv: $data\n"; };
    ws.on_message(|_conn, data| println!("recv: {data}"));
    // $ws_connection->onError = function($connection, $code, $msg){ echo "error: $msg\n"; };
    ws.on_error(|_conn, err| println!("error: {} {err}", err.code()));
    // $ws_connection->onClose = function($connection){ ...; $connection->reConnect(1); };
    ws.on_close(|conn| {
        println!("connection closed and try to reconnect");
        conn.reconnect(Duration::from_secs(1));
    });
    // $ws_connection->connect();
    ws.connect();
    // Worker::runAll();
    wsclient::run_all();
    Ok(())
}
