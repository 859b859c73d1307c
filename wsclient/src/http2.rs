//! WebSockets over HTTP/2 (RFC 8441): many WebSocket connections carried
//! as streams of **one** HTTP/2 connection, each opened by an extended
//! `CONNECT` (`:protocol websocket`) instead of an HTTP/1.1 upgrade.
//!
//! One TCP connection and one TLS handshake then serve any number of
//! WebSockets to the same server (a load test's thousands of sessions, a
//! client's many feeds), through the proxies, Unix sockets and TLS settings
//! of [`ConnectOptions`] as usual. The WebSocket protocol on each stream
//! is unchanged: the same [`WebSocket`] and engine, masking included.
//!
//! `ws://` URLs speak HTTP/2 in clear with prior knowledge (h2c); `wss://`
//! ones offer only `h2` in TLS (ALPN). The server must enable the extended
//! CONNECT protocol in its HTTP/2 settings, which is checked before the
//! first request ([`HandshakeError::Http2Unsupported`] otherwise).
//! Subprotocols and permessage-deflate are negotiated as over HTTP/1.1.
//!
//! Flow control: the server may send up to 1 MiB on a stream and 16 MiB on
//! the whole connection before the client reads; capacity is handed back
//! as each WebSocket reads. A WebSocket whose reading is paused
//! ([`crate::Conn::pause_recv`]) therefore holds back its stream, and up to
//! 1 MiB of the connection's window, not the others.
//!
//! ```no_run
//! # async fn f() -> Result<(), wsclient::Error> {
//! use wsclient::ConnectOptions;
//! use wsclient::http2::Http2Connection;
//!
//! let h2 = Http2Connection::connect(ConnectOptions::new("wss://example.com/")).await?;
//! // Two WebSockets, one TCP connection.
//! let (mut prices, _) = h2.websocket("/prices").await?;
//! let (mut orders, _) = h2.websocket("/orders").await?;
//! prices.send("subscribe BTC").await?;
//! orders.send("subscribe").await?;
//! # Ok(()) }
//! ```

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use http::header::{self, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::connect::{Alpn, ConnectOptions};
use crate::error::{Error, Phase};
use crate::handshake::client::{self as hs, RequestOptions, Target};
use crate::handshake::{HandshakeError, Response};
use crate::proto::deflate::Negotiated;
use crate::socket::WebSocket;

/// One HTTP/2 connection to a server, on which WebSockets are opened as
/// streams ([`Http2Connection::websocket`]). Cheap to clone; each clone
/// opens streams on the same connection. The connection lives while a
/// handle or one of its WebSockets does.
#[derive(Clone)]
pub struct Http2Connection {
    send: SendRequest<Bytes>,
    options: ConnectOptions,
    target: Target,
    /// Cleared when the connection has ended or refuses new streams.
    open: Arc<AtomicBool>,
}

impl std::fmt::Debug for Http2Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http2Connection")
            .field("host", &self.target.host)
            .field("port", &self.target.port)
            .field("tls", &self.target.tls)
            .finish_non_exhaustive()
    }
}

/// How many bytes the server may send on one stream before the client
/// has read them: 1 MiB, so that a large message is not paced by round
/// trips (HTTP/2's default is 64 KiB).
const STREAM_WINDOW: u32 = 1 << 20;

/// How many bytes the server may send on all streams together before the
/// client has read them: 16 MiB. Its half also bounds the memory that
/// small DATA frames may take buffered (`h2`'s budget against floods of
/// small frames), which a few hundred WebSockets receiving small messages
/// at once (a WebSocket frame often comes as two DATA frames) would
/// exhaust at the default 64 KiB window, closing the connection.
const CONNECTION_WINDOW: u32 = 16 << 20;

fn h2_error(e: h2::Error) -> Error {
    Error::Handshake(HandshakeError::Http2(e))
}

impl Http2Connection {
    /// Opens the HTTP/2 connection to the server of `options`' URL (its
    /// path is the default of [`Http2Connection::websocket`]): transport
    /// and TLS as for any connection, then the HTTP/2 preface and the
    /// server's settings, within the handshake timeout.
    ///
    /// # Errors
    /// The transport's errors (DNS, TCP, proxy, TLS);
    /// [`HandshakeError::Http2Unsupported`] when the server does not
    /// select `h2` or does not enable the extended CONNECT protocol;
    /// [`HandshakeError::Http2`] for HTTP/2 failures; a timeout.
    pub async fn connect(options: ConnectOptions) -> Result<Http2Connection, Error> {
        let target = options.target()?;
        let open = Arc::new(AtomicBool::new(true));
        let io = options.transport_to(&target, Alpn::H2).await?;
        if io.is_tls() && io.alpn_protocol() != Some(b"h2") {
            return Err(HandshakeError::Http2Unsupported("TLS did not select h2").into());
        }
        let setup = async {
            let (send, mut connection) = h2::client::Builder::new()
                .initial_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .handshake(io)
                .await
                .map_err(h2_error)?;
            // Taken once, from a connection just made: always there.
            let mut ping = connection
                .ping_pong()
                .ok_or(HandshakeError::Http2Unsupported("no PING support"))?;
            let ended = open.clone();
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "HTTP/2 connection ended");
                }
                ended.store(false, Ordering::Release);
            });
            // The server's SETTINGS frame is the first it sends, so it has
            // been read by the time the answer to this ping arrives.
            ping.ping(h2::Ping::opaque()).await.map_err(h2_error)?;
            if !send.is_extended_connect_protocol_enabled() {
                return Err(HandshakeError::Http2Unsupported(
                    "the extended CONNECT protocol is not enabled",
                )
                .into());
            }
            Ok::<_, Error>(send)
        };
        let send = crate::deadline::timeout(options.handshake_timeout, setup)
            .await
            .ok_or(Error::Timeout {
                phase: Phase::Upgrade,
                after: options.handshake_timeout,
            })??;
        Ok(Http2Connection {
            send,
            options,
            target,
            open,
        })
    }

    /// Whether the connection may still open streams (it has not ended,
    /// and no failure of its own refused one).
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Opens a WebSocket at `path` (path and query, such as `/chat?room=1`;
    /// empty for the URL's own) as a new stream of this connection, with
    /// the headers and subprotocols of the options, within the handshake
    /// timeout.
    ///
    /// # Errors
    /// [`HandshakeError::Rejected`] for a status other than 2xx (with the
    /// start of its body), [`HandshakeError::UnofferedProtocol`],
    /// [`HandshakeError::InvalidHeader`], [`HandshakeError::Http2`] when
    /// the stream or connection fails, a timeout.
    pub async fn websocket(&self, path: &str) -> Result<(WebSocket<Http2Stream>, Response), Error> {
        self.options.check_headers()?;
        let opened = self
            .open_stream(path, self.options.request(), self.options.handshake_timeout)
            .await?;
        let engine = crate::connect::client_engine(&self.options.config, opened.deflate);
        let ws = WebSocket::from_parts(
            opened.stream,
            engine,
            self.options.socket.clone(),
            BytesMut::new(),
        );
        Ok((ws, opened.response))
    }

    /// [`Http2Connection::websocket`]'s stream, response and agreed
    /// compression, before the socket is made over it: the request of
    /// `options` (headers, subprotocols, extensions) for `path`, answered
    /// within `limit`.
    pub(crate) async fn open_stream(
        &self,
        path: &str,
        options: &RequestOptions,
        limit: Duration,
    ) -> Result<Opened, Error> {
        let path = if path.is_empty() {
            self.target.resource.as_str()
        } else {
            path
        };
        let request = self.request(path, options)?;
        let open = async {
            let mut send = self
                .send
                .clone()
                .ready()
                .await
                .map_err(|e| self.failed(e))?;
            let (response, stream) = send
                .send_request(request, false)
                .map_err(|e| self.failed(e))?;
            let (head, mut body) = response.await.map_err(|e| self.failed(e))?.into_parts();
            let response = Response::from_http2(head.status, &head.headers);
            if !head.status.is_success() {
                let start = body_start(&mut body).await;
                return Err(hs::rejected(response, start).into());
            }
            let accepted = match hs::check_negotiation(&response, options) {
                Ok(accepted) => accepted,
                Err(e) => return Err(e.with_response(response).into()),
            };
            let stream = Http2Stream {
                send: stream,
                recv: body,
                unread: Bytes::new(),
                tls: self.target.tls,
            };
            Ok(Opened {
                stream,
                response,
                deflate: accepted.deflate,
            })
        };
        crate::deadline::timeout(limit, open)
            .await
            .ok_or(Error::Timeout {
                phase: Phase::Upgrade,
                after: limit,
            })?
    }

    /// An HTTP/2 failure opening a stream: one of the connection (it went
    /// away, its I/O failed) marks it as no longer open.
    fn failed(&self, e: h2::Error) -> Error {
        if e.is_go_away() || e.is_io() || e.reason().is_none() {
            self.open.store(false, Ordering::Release);
        }
        h2_error(e)
    }

    /// The extended CONNECT request for `path`: `:protocol websocket`,
    /// `sec-websocket-version: 13`, the offered subprotocols and the
    /// user's headers (less those HTTP/2 forbids or the handshake owns;
    /// a user's `Host` becomes the `:authority`).
    fn request(&self, path: &str, options: &RequestOptions) -> Result<http::Request<()>, Error> {
        let authority = match options.headers.get(header::HOST) {
            Some(host) => host
                .to_str()
                .map_err(|_| HandshakeError::InvalidHeader {
                    name: "host".to_owned(),
                })?
                .to_owned(),
            None => self.target.host_header(),
        };
        let scheme = if self.target.tls { "https" } else { "http" };
        let uri = http::Uri::builder()
            .scheme(scheme)
            .authority(authority.as_str())
            .path_and_query(path)
            .build()
            .map_err(|_| HandshakeError::InvalidHeader {
                name: ":path".to_owned(),
            })?;
        let mut request = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(uri)
            .version(http::Version::HTTP_2)
            .body(())
            .map_err(|_| HandshakeError::InvalidHeader {
                name: ":path".to_owned(),
            })?;
        request
            .extensions_mut()
            .insert(h2::ext::Protocol::from_static("websocket"));
        let headers = request.headers_mut();
        for (name, value) in &options.headers {
            if !FORBIDDEN.contains(name) {
                headers.append(name, value.clone());
            }
        }
        headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        if let Some(offer) = hs::extensions_offer(options) {
            let offer =
                HeaderValue::from_str(&offer).map_err(|_| HandshakeError::InvalidHeader {
                    name: "sec-websocket-extensions".to_owned(),
                })?;
            headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, offer);
        }
        if !options.protocols.is_empty() {
            let offer = HeaderValue::from_str(&options.protocols.join(", ")).map_err(|_| {
                HandshakeError::InvalidHeader {
                    name: "sec-websocket-protocol".to_owned(),
                }
            })?;
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, offer);
        }
        Ok(request)
    }
}

/// A WebSocket's stream as opened: the stream, the server's answer and
/// the permessage-deflate parameters agreed, if any.
pub(crate) struct Opened {
    pub stream: Http2Stream,
    pub response: Response,
    pub deflate: Option<Negotiated>,
}

/// An HTTP/2 connection made when first needed and made again when the
/// last one has ended: what [`ConnectOptions::via_http2`] shares between
/// connections (the event client's reconnects, `wsc bench`'s thousands of
/// WebSockets), so that they ride one HTTP/2 connection while it lasts.
/// Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Http2Session {
    options: ConnectOptions,
    current: Arc<tokio::sync::Mutex<Option<Http2Connection>>>,
}

impl std::fmt::Debug for Http2Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http2Session")
            .field("url", &self.options.url())
            .finish_non_exhaustive()
    }
}

impl Http2Session {
    /// A session connecting with `options` (its URL names the server; its
    /// transport, TLS and handshake settings make the connection). Nothing
    /// is connected yet.
    #[must_use]
    pub fn new(options: ConnectOptions) -> Http2Session {
        Http2Session {
            options,
            current: Arc::default(),
        }
    }

    /// The open connection, connecting first when there is none (callers
    /// that come meanwhile wait for that one connect).
    ///
    /// # Errors
    /// As [`Http2Connection::connect`].
    pub async fn connection(&self) -> Result<Http2Connection, Error> {
        let mut current = self.current.lock().await;
        if let Some(c) = current.as_ref().filter(|c| c.is_open()) {
            return Ok(c.clone());
        }
        *current = None;
        let c = Http2Connection::connect(self.options.clone()).await?;
        *current = Some(c.clone());
        Ok(c)
    }

    /// A WebSocket at `path` on the session's connection (see
    /// [`Http2Connection::websocket`]).
    ///
    /// # Errors
    /// As [`Http2Session::connection`] and [`Http2Connection::websocket`].
    pub async fn websocket(&self, path: &str) -> Result<(WebSocket<Http2Stream>, Response), Error> {
        self.connection().await?.websocket(path).await
    }

    /// The stream of a WebSocket at `path` on the session's connection,
    /// requested with `options`' headers and subprotocols within its
    /// handshake timeout (for [`ConnectOptions::via_http2`]).
    pub(crate) async fn open_stream_for(
        &self,
        path: &str,
        options: &ConnectOptions,
    ) -> Result<Opened, Error> {
        self.connection()
            .await?
            .open_stream(path, options.request(), options.handshake_timeout)
            .await
    }
}

/// Request headers not sent over HTTP/2: connection-specific ones (RFC
/// 9113 section 8.2.2), `Host` (the `:authority` instead) and those of the
/// HTTP/1.1 upgrade.
const FORBIDDEN: [HeaderName; 10] = [
    header::CONNECTION,
    header::UPGRADE,
    header::TRANSFER_ENCODING,
    header::TE,
    header::HOST,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_EXTENSIONS,
    header::SEC_WEBSOCKET_PROTOCOL,
    HeaderName::from_static("keep-alive"),
];

/// Up to [`hs::REJECTED_BODY_MAX`] bytes of a refusal's body.
async fn body_start(body: &mut RecvStream) -> Bytes {
    let mut start = BytesMut::new();
    while start.len() < hs::REJECTED_BODY_MAX {
        match body.data().await {
            Some(Ok(chunk)) => {
                let _ = body.flow_control().release_capacity(chunk.len());
                let room = hs::REJECTED_BODY_MAX - start.len();
                start.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
    start.freeze()
}

/// One HTTP/2 stream as the byte stream a [`WebSocket`] runs on: reads
/// take the DATA frames' payloads (handing their flow-control capacity
/// back as they are read), writes wait for the stream's send capacity;
/// shutting it down ends the stream.
pub struct Http2Stream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// The rest of the last DATA payload, not read yet.
    unread: Bytes,
    /// The connection runs over TLS.
    tls: bool,
}

impl Http2Stream {
    /// Whether the HTTP/2 connection runs over TLS (`wss://`).
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.tls
    }
}

impl std::fmt::Debug for Http2Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http2Stream")
            .field("id", &self.send.stream_id())
            .field("unread", &self.unread.len())
            .finish()
    }
}

fn stream_error(e: h2::Error) -> io::Error {
    if e.is_io() {
        e.into_io()
            .unwrap_or_else(|| io::Error::other("HTTP/2 I/O error"))
    } else {
        io::Error::other(e)
    }
}

impl AsyncRead for Http2Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.unread.is_empty() {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(chunk)) => {
                    // The peer may send this much more on the stream.
                    let _ = this.recv.flow_control().release_capacity(chunk.len());
                    this.unread = chunk;
                }
                Some(Err(e)) => return Poll::Ready(Err(stream_error(e))),
                // The end of the stream.
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = this.unread.len().min(buf.remaining());
        buf.put_slice(&this.unread.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Http2Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        this.send.reserve_capacity(buf.len());
        loop {
            match ready!(this.send.poll_capacity(cx)) {
                Some(Ok(0)) => {}
                Some(Ok(n)) => {
                    let n = n.min(buf.len());
                    this.send
                        .send_data(Bytes::copy_from_slice(&buf[..n]), false)
                        .map_err(stream_error)?;
                    return Poll::Ready(Ok(n));
                }
                Some(Err(e)) => return Poll::Ready(Err(stream_error(e))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The connection's task writes the frames out.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // An empty DATA frame with END_STREAM; an ended stream stays ended.
        let _ = self.get_mut().send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}
