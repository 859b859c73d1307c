//! Byte streams carried over WebSocket: one TCP connection bridged to one
//! WebSocket connection, both ways at once (`wsc forward` on the client
//! side, `wsc serve --to` on the server side, like websocat's and
//! websockify's tunnels). Bytes read from TCP go out as binary messages;
//! the payload of every data message received is written to TCP.
//!
//! WebSocket has no half-close, TCP does: a client that sends its request,
//! shuts its sending side and then reads the answer is common. So the end
//! of one direction is carried as an **empty binary message** (which no
//! byte stream needs otherwise): TCP's end of stream sends one, and one
//! received shuts TCP's sending side. A side whose own direction has ended
//! sends a normal close (1000) once the peer's has ended too. A server that
//! echoes the empty message back (an echo server) ends the stream as a
//! `wsc` peer would; with one that ignores it, the tunnel stays open while
//! the TCP side still reads, until either side closes.
//! The peer's close frame ends everything at once: TCP's sending side is
//! shut and its reading stops. A TCP error closes the WebSocket with 1001
//! (going away).
//!
//! Both directions run concurrently, so neither side's full buffer can
//! stop the other, and each holds at most one chunk of [`CHUNK`] bytes plus
//! the socket's bounded write buffer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::Notify;
use wsclient::{CloseCode, CloseFrame, Error, Message, WebSocket};

/// The most bytes read from TCP at once: one binary message each.
pub const CHUNK: usize = 64 << 10;

/// How long the WebSocket may take to finish its close once the TCP side
/// has gone.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Bytes moved by [`bridge`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// From TCP to the WebSocket.
    pub to_ws: u64,
    /// From the WebSocket to TCP.
    pub to_tcp: u64,
}

/// Bridges `ws` and `tcp` until both are done (see the module docs).
///
/// # Errors
/// The WebSocket's errors (protocol, transport); the bytes moved until
/// then are lost with them, which is what a tunnel's user sees as a
/// dropped connection.
pub async fn bridge<S, T>(ws: WebSocket<S>, tcp: T) -> Result<Moved, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let (mut from_tcp, mut to_tcp) = tokio::io::split(tcp);
    let to_ws_bytes = AtomicU64::new(0);
    let to_tcp_bytes = AtomicU64::new(0);
    // The peer's direction has ended (its empty message came).
    let peer_ended = Notify::new();

    let ws_ended = {
        // TCP → WebSocket: data, then the end-of-stream message; once the
        // peer's direction has ended too, the close.
        let up = async {
            let mut buf = BytesMut::new();
            loop {
                buf.reserve(CHUNK);
                match from_tcp.read_buf(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        sink.send(Message::Binary(buf.split().freeze())).await?;
                        to_ws_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(_) => {
                        let _ = sink
                            .send(Message::Close(Some(CloseFrame::new(
                                CloseCode::GOING_AWAY,
                                "",
                            ))))
                            .await;
                        return Ok(());
                    }
                }
            }
            sink.send(Message::Binary(Bytes::new())).await?;
            peer_ended.notified().await;
            // The peer may have sent its close first (both may): then the
            // socket has answered it already, and this one is not needed.
            // A transport failure shows on the stream side.
            let _ = sink
                .send(Message::Close(Some(CloseFrame::new(CloseCode::NORMAL, ""))))
                .await;
            Ok::<(), Error>(())
        };
        // WebSocket → TCP, until the WebSocket ends (`Ok(true)`) or TCP
        // stops taking bytes (`Ok(false)`).
        let down = async {
            let mut open = true;
            while let Some(msg) = stream.next().await {
                let payload = match msg? {
                    Message::Binary(b) if b.is_empty() => {
                        // The peer's end of stream.
                        if std::mem::take(&mut open) {
                            let _ = to_tcp.shutdown().await;
                            peer_ended.notify_one();
                        }
                        continue;
                    }
                    Message::Binary(b) => b,
                    Message::Text(t) => t.into_bytes(),
                    _ => continue,
                };
                if !open {
                    // Bytes after the end of stream: nowhere to go.
                    continue;
                }
                if to_tcp.write_all(&payload).await.is_err() {
                    return Ok::<bool, Error>(false);
                }
                to_tcp_bytes.fetch_add(payload.len() as u64, Ordering::Relaxed);
            }
            if open {
                let _ = to_tcp.shutdown().await;
            }
            Ok(true)
        };
        let mut up = std::pin::pin!(up);
        let mut down = std::pin::pin!(down);
        let mut up_done = false;
        loop {
            tokio::select! {
                r = &mut up, if !up_done => {
                    up_done = true;
                    if r.is_err() {
                        // Nothing more can be sent: the peer's close came
                        // (then the stream side ends normally) or the
                        // connection failed (then it says how).
                        break down.await;
                    }
                }
                r = &mut down => break r,
            }
        }
        // Both directions' futures end here: a TCP read still waiting is
        // cancelled (the WebSocket is done, or is closed below).
    };
    if !ws_ended? {
        // TCP went away while the WebSocket is open: close it, and let the
        // close handshake finish (bounded).
        let _ = sink
            .send(Message::Close(Some(CloseFrame::new(
                CloseCode::GOING_AWAY,
                "",
            ))))
            .await;
        let _ = tokio::time::timeout(CLOSE_WAIT, async { while stream.next().await.is_some() {} })
            .await;
    }
    Ok(Moved {
        to_ws: to_ws_bytes.into_inner(),
        to_tcp: to_tcp_bytes.into_inner(),
    })
}
