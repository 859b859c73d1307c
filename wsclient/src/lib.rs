//! # wsclient
//!
//! The WebSocket client of Workerman's `ws` protocol page, in Rust. The
//! page's example, line by line:
//!
//! ```no_run
//! use std::time::Duration;
//! use wsclient::{Client, SendType};
//!
//! # fn main() -> Result<(), wsclient::Error> {
//! let mut ws = Client::new("ws://127.0.0.1:1234")?;              // new AsyncTcpConnection(...)
//! ws.ping_interval(Duration::from_secs(55));                       // websocketPingInterval = 55
//! ws.header("Cookie", "PHPSID=82u98fjhakfusuanfnahfi; token=2hf9a929jhfihaf9i");
//! ws.header("OtherKey", "values");                                 // headers = [...]
//! ws.send_type(SendType::Text);                                    // websocketType = BLOB
//! ws.on_connect(|_conn| println!("tcp connected"));                // onConnect
//! ws.on_websocket_connect(|conn, response| {                       // onWebSocketConnect
//!     println!("{response}");                                      // echo $response
//!     conn.send("hello").ok();
//! });
//! ws.on_message(|_conn, data| println!("recv: {data}"));           // onMessage
//! ws.on_error(|_conn, err| println!("error: {} {err}", err.code())); // onError($code, $msg)
//! ws.on_close(|conn| {                                             // onClose
//!     println!("connection closed and try to reconnect");
//!     conn.reconnect(Duration::from_secs(1));                      // reConnect(1)
//! });
//! ws.connect();                                                    // connect()
//! wsclient::run_all();                                             // Worker::runAll()
//! # Ok(()) }
//! ```
//!
//! A WebSocket client (RFC 6455, version 13) that is strict, fast and hard
//! to break, in layers:
//!
//! - [`proto`]: the sans-I/O protocol engine (frames, masking, UTF-8,
//!   fragmentation, close handshake, limits). No sockets, no async.
//! - [`handshake`]: the HTTP/1.1 upgrade, sans-I/O.
//! - [`transport`]: TCP (Happy Eyeballs, timeouts), proxies, TLS (rustls)
//!   and, on Unix, Unix domain sockets.
//! - [`socket`]: [`WebSocket`], a `Stream` + `Sink` of [`Message`]s.
//! - [`connect`](mod@connect): [`ConnectOptions`] and [`connect()`].
//! - [`http2`]: WebSockets over HTTP/2 (RFC 8441), many per connection
//!   (feature `http2`, on by default).
//! - [`server`]: the server role, for demo and test servers.
//! - [`events`]: the seed's event-driven [`Client`] (callbacks,
//!   heartbeat, reconnect, send queue) and the host loop [`run_all`].
//! - [`error`]: [`Error`], by phase, with stable numeric codes.

#![deny(missing_docs)]
// Callback slots are boxed closures by nature.
#![allow(clippy::type_complexity)]

pub mod connect;
mod deadline;
pub mod error;
pub mod events;
pub mod handshake;
#[cfg(feature = "http2")]
pub mod http2;
pub mod message;
pub mod proto;
pub mod server;
pub mod socket;
pub mod transport;

pub use connect::{ConnectOptions, connect};
pub use error::{Error, Phase, Result};
pub use events::{
    Client, Conn, Handler, ReconnectPolicy, SendType, live_connections, run_all, shutdown,
};
pub use handshake::Response;
pub use message::{Message, Utf8Bytes};
pub use proto::{CloseCode, CloseFrame, DeflateConfig};
pub use socket::WebSocket;
pub use transport::{MaybeTlsStream, PlainStream};
