//! The clients under test, behind one small trait so that every cell runs
//! the same driver code for each of them. The event-driven client and the
//! raw-TCP limit do not fit the trait and have their own drivers in
//! [`crate::cells`].

use std::error::Error;
use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;

pub type R<T> = Result<T, Box<dyn Error>>;

/// The clients, in table order.
pub const ALL: &[&str] = &[
    "raw",
    "wsclient",
    "wsclient-events",
    "tokio-tungstenite",
    "tokio-websockets",
    "fastwebsockets",
];

/// The third-party peers (the "best peer" is the best of these).
pub const PEERS: &[&str] = &["tokio-tungstenite", "tokio-websockets", "fastwebsockets"];

/// Human names for the table.
pub fn label(name: &str) -> &'static str {
    match name {
        "raw" => "raw TCP",
        "wsclient" => "wsclient socket",
        "wsclient-events" => "wsclient events",
        "tokio-tungstenite" => "tokio-tungstenite",
        "tokio-websockets" => "tokio-websockets",
        "fastwebsockets" => "fastwebsockets",
        _ => "?",
    }
}

/// One open connection of a library under test.
pub trait Ws: Sized {
    /// Connects and runs the opening handshake (the library's own path;
    /// `TCP_NODELAY` on for all).
    async fn connect(addr: SocketAddr) -> R<Self>;
    /// The next data message's payload length (control frames skipped).
    async fn recv(&mut self) -> R<usize>;
    /// Queues a binary message, writing when the library decides to.
    async fn feed(&mut self, payload: &Bytes) -> R<()>;
    /// Sends a binary message and flushes it.
    async fn send_now(&mut self, payload: &Bytes) -> R<()>;
    /// Runs the close handshake: close frame out, flush, then read until
    /// the server's close frame.
    async fn close(&mut self) -> R<()>;
}

fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/")
}

fn closed() -> Box<dyn Error> {
    "connection closed".into()
}

// ----- wsclient (this project's async socket) -------------------------------

pub struct WsClient(wsclient::WebSocket<wsclient::MaybeTlsStream>);

impl Ws for WsClient {
    async fn connect(addr: SocketAddr) -> R<Self> {
        let (ws, _) = wsclient::connect(&url(addr)).await?;
        Ok(WsClient(ws))
    }

    async fn recv(&mut self) -> R<usize> {
        loop {
            match self.0.next().await {
                Some(Ok(wsclient::Message::Binary(b))) => return Ok(b.len()),
                Some(Ok(wsclient::Message::Text(t))) => return Ok(t.len()),
                Some(Ok(wsclient::Message::Close(_))) | None => return Err(closed()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    async fn feed(&mut self, payload: &Bytes) -> R<()> {
        self.0
            .feed(wsclient::Message::Binary(payload.clone()))
            .await?;
        Ok(())
    }

    async fn send_now(&mut self, payload: &Bytes) -> R<()> {
        self.0
            .send(wsclient::Message::Binary(payload.clone()))
            .await?;
        Ok(())
    }

    async fn close(&mut self) -> R<()> {
        self.0.close(wsclient::CloseCode::NORMAL, "").await?;
        Ok(())
    }
}

// ----- tokio-tungstenite -------------------------------------------------------

pub struct Tungstenite(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
);

impl Ws for Tungstenite {
    async fn connect(addr: SocketAddr) -> R<Self> {
        // Default config (64 MiB messages, 16 MiB frames); Nagle off as for
        // every client here.
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url(addr), None, true).await?;
        Ok(Tungstenite(ws))
    }

    async fn recv(&mut self) -> R<usize> {
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match self.0.next().await {
                Some(Ok(Message::Binary(b))) => return Ok(b.len()),
                Some(Ok(Message::Text(t))) => return Ok(t.len()),
                Some(Ok(Message::Close(_))) | None => return Err(closed()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    async fn feed(&mut self, payload: &Bytes) -> R<()> {
        use tokio_tungstenite::tungstenite::Message;
        self.0.feed(Message::Binary(payload.clone())).await?;
        Ok(())
    }

    async fn send_now(&mut self, payload: &Bytes) -> R<()> {
        use tokio_tungstenite::tungstenite::Message;
        self.0.send(Message::Binary(payload.clone())).await?;
        Ok(())
    }

    async fn close(&mut self) -> R<()> {
        self.0.close(None).await?;
        while let Some(Ok(_)) = self.0.next().await {}
        Ok(())
    }
}

// ----- tokio-websockets ----------------------------------------------------------

pub struct TokioWebsockets(tokio_websockets::WebSocketStream<TcpStream>);

impl Ws for TokioWebsockets {
    async fn connect(addr: SocketAddr) -> R<Self> {
        // Its own `connect()` leaves Nagle on; connect the TCP stream here
        // so that TCP_NODELAY is set as for the others.
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let uri = http_uri(addr)?;
        let (ws, _) = tokio_websockets::ClientBuilder::from_uri(uri)
            .connect_on(tcp)
            .await?;
        Ok(TokioWebsockets(ws))
    }

    async fn recv(&mut self) -> R<usize> {
        loop {
            match self.0.next().await {
                Some(Ok(m)) if m.is_binary() || m.is_text() => return Ok(m.as_payload().len()),
                Some(Ok(m)) if m.is_close() => return Err(closed()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err(closed()),
            }
        }
    }

    async fn feed(&mut self, payload: &Bytes) -> R<()> {
        self.0
            .feed(tokio_websockets::Message::binary(payload.clone()))
            .await?;
        Ok(())
    }

    async fn send_now(&mut self, payload: &Bytes) -> R<()> {
        self.0
            .send(tokio_websockets::Message::binary(payload.clone()))
            .await?;
        Ok(())
    }

    async fn close(&mut self) -> R<()> {
        self.0.close().await?;
        while let Some(Ok(_)) = self.0.next().await {}
        Ok(())
    }
}

fn http_uri(addr: SocketAddr) -> R<http::Uri> {
    Ok(url(addr).parse::<http::Uri>()?)
}

// ----- fastwebsockets ------------------------------------------------------------

type FastIo = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

pub struct Fast(fastwebsockets::FragmentCollector<FastIo>);

/// Runs hyper's connection future for the upgrade on the local task set.
struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: std::future::Future + 'static,
{
    fn execute(&self, fut: F) {
        tokio::task::spawn_local(fut);
    }
}

impl Ws for Fast {
    async fn connect(addr: SocketAddr) -> R<Self> {
        use hyper::header::{CONNECTION, HOST, UPGRADE};
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let req = hyper::Request::builder()
            .method("GET")
            .uri(format!("http://{addr}/"))
            .header(HOST, addr.to_string())
            .header(UPGRADE, "websocket")
            .header(CONNECTION, "upgrade")
            .header(
                "Sec-WebSocket-Key",
                fastwebsockets::handshake::generate_key(),
            )
            .header("Sec-WebSocket-Version", "13")
            .body(http_body_util::Empty::<Bytes>::new())?;
        let (ws, _) = fastwebsockets::handshake::client(&LocalExec, req, tcp).await?;
        // FragmentCollector: whole messages, as the docs recommend for
        // clients; the default 64 MiB message limit applies.
        Ok(Fast(fastwebsockets::FragmentCollector::new(ws)))
    }

    async fn recv(&mut self) -> R<usize> {
        use fastwebsockets::OpCode;
        loop {
            let f = self.0.read_frame().await?;
            match f.opcode {
                OpCode::Binary | OpCode::Text => return Ok(f.payload.len()),
                OpCode::Close => return Err(closed()),
                _ => {}
            }
        }
    }

    async fn feed(&mut self, payload: &Bytes) -> R<()> {
        // No write buffering in fastwebsockets: every frame is written.
        let frame = fastwebsockets::Frame::binary(fastwebsockets::Payload::Borrowed(payload));
        self.0.write_frame(frame).await?;
        Ok(())
    }

    async fn send_now(&mut self, payload: &Bytes) -> R<()> {
        self.feed(payload).await
    }

    async fn close(&mut self) -> R<()> {
        self.0
            .write_frame(fastwebsockets::Frame::close(1000, b""))
            .await?;
        loop {
            match self.0.read_frame().await {
                Ok(f) if f.opcode == fastwebsockets::OpCode::Close => return Ok(()),
                Ok(_) => {}
                Err(_) => return Ok(()),
            }
        }
    }
}
