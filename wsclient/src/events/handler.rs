//! The callbacks of the event-driven client, as a trait ([`Handler`]) and
//! as closures set one by one on [`crate::Client`] (the seed's style).
//!
//! Order for each connection attempt, each at most once unless noted:
//!
//! 1. [`Handler::on_reconnect`] — before a reconnect attempt's delay
//!    (not before the first connect).
//! 2. [`Handler::on_connect`] — the transport is up (TCP, and TLS for
//!    `wss://`), before the WebSocket handshake.
//! 3. [`Handler::on_websocket_connect`] — the handshake succeeded; gets the
//!    server's response. Messages sent before this point were queued and
//!    are written right after it returns.
//! 4. [`Handler::on_message`] — every text or binary message (any number
//!    of times); [`Handler::on_ping`] / [`Handler::on_pong`] for control
//!    frames; [`Handler::on_buffer_full`] / [`Handler::on_buffer_drain`]
//!    when the send queue crosses its limit.
//! 5. [`Handler::on_error`] — the attempt failed or the connection broke
//!    (DNS, TCP, TLS, refused handshake, protocol error, dead peer...).
//! 6. [`Handler::on_close`] — always last, exactly once per attempt, whether
//!    the attempt failed or a connection that was open closed. Calling
//!    [`Conn::reconnect`](super::Conn::reconnect) here starts another attempt.
//!
//! Callbacks run on the connection's task: a callback that blocks stalls
//! that connection (and no other).

use bytes::Bytes;

use super::conn::Conn;
use crate::error::Error;
use crate::handshake::Response;
use crate::message::Message;

/// The event callbacks of a connection. Every method has an empty default,
/// so an implementation overrides only what it needs. The connection's task
/// owns the handler, so methods take `&mut self`.
#[allow(unused_variables)]
pub trait Handler: Send + 'static {
    /// The transport is up (TCP, plus TLS for `wss://`); the WebSocket
    /// handshake comes next.
    fn on_connect(&mut self, conn: &Conn) {}
    /// The handshake completed; `response` is the server's 101 response
    /// (printing it shows the status line and headers).
    fn on_websocket_connect(&mut self, conn: &Conn, response: &Response) {}
    /// A text or binary message arrived.
    fn on_message(&mut self, conn: &Conn, message: Message) {}
    /// A ping arrived (it has already been answered).
    fn on_ping(&mut self, conn: &Conn, payload: Bytes) {}
    /// A pong arrived.
    fn on_pong(&mut self, conn: &Conn, payload: Bytes) {}
    /// Something failed; `error.code()` is a stable number for the kind,
    /// and `error.response()` the server's answer when the handshake failed
    /// on it (a refusal or an invalid 101).
    fn on_error(&mut self, conn: &Conn, error: &Error) {}
    /// The attempt or the connection ended (always after the others).
    fn on_close(&mut self, conn: &Conn) {}
    /// The send queue reached its limit: further sends fail until it drains.
    fn on_buffer_full(&mut self, conn: &Conn) {}
    /// The send queue drained after being full.
    fn on_buffer_drain(&mut self, conn: &Conn) {}
    /// A reconnect attempt (1-based) will start after `delay`.
    fn on_reconnect(&mut self, conn: &Conn, attempt: u32, delay: std::time::Duration) {}
    /// Messages that could not be delivered (the connection ended with them
    /// still queued, and no offline queue kept them): they come back here
    /// instead of vanishing.
    fn on_undelivered(&mut self, conn: &Conn, messages: Vec<Message>) {}
}

type Cb<A> = Option<Box<dyn FnMut(&Conn, A) + Send>>;
type Cb0 = Option<Box<dyn FnMut(&Conn) + Send>>;

/// The closures set on a [`crate::Client`], as a [`Handler`].
#[derive(Default)]
pub(crate) struct Callbacks {
    pub on_connect: Cb0,
    pub on_websocket_connect: Option<Box<dyn FnMut(&Conn, &Response) + Send>>,
    pub on_message: Cb<Message>,
    pub on_error: Option<Box<dyn FnMut(&Conn, &Error) + Send>>,
    pub on_close: Cb0,
    /// A user's [`Handler`], called after the closures.
    pub handler: Option<Box<dyn Handler>>,
    /// The less used callbacks, out of line until one is set (every
    /// connection's task holds its callbacks for its whole life).
    pub rare: Option<Box<RareCallbacks>>,
}

/// The callbacks most connections leave unset.
#[derive(Default)]
pub(crate) struct RareCallbacks {
    pub on_ping: Cb<Bytes>,
    pub on_pong: Cb<Bytes>,
    pub on_buffer_full: Cb0,
    pub on_buffer_drain: Cb0,
    pub on_reconnect: Option<Box<dyn FnMut(&Conn, u32, std::time::Duration) + Send>>,
    pub on_undelivered: Cb<Vec<Message>>,
}

impl Callbacks {
    /// The less used callbacks, made room for.
    pub(crate) fn rare_mut(&mut self) -> &mut RareCallbacks {
        self.rare.get_or_insert_with(Box::default)
    }
}

macro_rules! forward {
    ($self:ident, $field:ident, $conn:ident $(, $arg:expr)*) => {{
        if let Some(f) = $self.$field.as_mut() {
            f($conn $(, $arg)*);
        }
    }};
}

macro_rules! forward_rare {
    ($self:ident, $field:ident, $conn:ident $(, $arg:expr)*) => {{
        if let Some(f) = $self.rare.as_mut().and_then(|r| r.$field.as_mut()) {
            f($conn $(, $arg)*);
        }
    }};
}

impl Handler for Callbacks {
    fn on_connect(&mut self, conn: &Conn) {
        forward!(self, on_connect, conn);
        if let Some(h) = self.handler.as_mut() {
            h.on_connect(conn);
        }
    }
    fn on_websocket_connect(&mut self, conn: &Conn, response: &Response) {
        forward!(self, on_websocket_connect, conn, response);
        if let Some(h) = self.handler.as_mut() {
            h.on_websocket_connect(conn, response);
        }
    }
    fn on_message(&mut self, conn: &Conn, message: Message) {
        match self.handler.as_mut() {
            Some(h) => {
                forward!(self, on_message, conn, message.clone());
                h.on_message(conn, message);
            }
            None => forward!(self, on_message, conn, message),
        }
    }
    fn on_ping(&mut self, conn: &Conn, payload: Bytes) {
        forward_rare!(self, on_ping, conn, payload.clone());
        if let Some(h) = self.handler.as_mut() {
            h.on_ping(conn, payload);
        }
    }
    fn on_pong(&mut self, conn: &Conn, payload: Bytes) {
        forward_rare!(self, on_pong, conn, payload.clone());
        if let Some(h) = self.handler.as_mut() {
            h.on_pong(conn, payload);
        }
    }
    fn on_error(&mut self, conn: &Conn, error: &Error) {
        forward!(self, on_error, conn, error);
        if let Some(h) = self.handler.as_mut() {
            h.on_error(conn, error);
        }
    }
    fn on_close(&mut self, conn: &Conn) {
        forward!(self, on_close, conn);
        if let Some(h) = self.handler.as_mut() {
            h.on_close(conn);
        }
    }
    fn on_buffer_full(&mut self, conn: &Conn) {
        forward_rare!(self, on_buffer_full, conn);
        if let Some(h) = self.handler.as_mut() {
            h.on_buffer_full(conn);
        }
    }
    fn on_buffer_drain(&mut self, conn: &Conn) {
        forward_rare!(self, on_buffer_drain, conn);
        if let Some(h) = self.handler.as_mut() {
            h.on_buffer_drain(conn);
        }
    }
    fn on_reconnect(&mut self, conn: &Conn, attempt: u32, delay: std::time::Duration) {
        forward_rare!(self, on_reconnect, conn, attempt, delay);
        if let Some(h) = self.handler.as_mut() {
            h.on_reconnect(conn, attempt, delay);
        }
    }
    fn on_undelivered(&mut self, conn: &Conn, messages: Vec<Message>) {
        let has_handler = self.handler.is_some();
        if self
            .rare
            .as_ref()
            .is_none_or(|r| r.on_undelivered.is_none())
            && !has_handler
        {
            tracing::warn!(
                count = messages.len(),
                "messages undelivered (no on_undelivered callback)"
            );
            return;
        }
        match self.handler.as_mut() {
            Some(h) => {
                forward_rare!(self, on_undelivered, conn, messages.clone());
                h.on_undelivered(conn, messages);
            }
            None => forward_rare!(self, on_undelivered, conn, messages),
        }
    }
}
