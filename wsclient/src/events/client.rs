//! [`Client`]: the seed's `AsyncTcpConnection` — settings and callbacks,
//! set before [`Client::connect`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use super::conn::{Conn, SendType, Shared};
use super::handler::{Callbacks, Handler};
use super::inbox::Receiver;
use super::reconnect::ReconnectPolicy;
use super::{host, task};
use crate::connect::ConnectOptions;
use crate::error::Error;
use crate::handshake::Response;
use crate::message::Message;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The send queue's default limit in payload bytes: 16 MiB, so that a
/// program may queue a burst of several megabytes (and `unwrap` each
/// send) without meeting `BufferFull`. Workerman's `maxSendBufferSize`
/// defaults to 1 MiB; a program holding many connections may want that
/// ([`Client::max_send_buffer`]): the queue is per connection.
pub const DEFAULT_MAX_SEND_BUFFER: usize = 16 << 20;

/// The heartbeat and queue settings of an event-driven client.
#[derive(Clone)]
pub(crate) struct Settings {
    pub ping_interval: Option<Duration>,
    pub pong_timeout: Option<Duration>,
    pub keep_queue_while_disconnected: bool,
    /// Boxed: most connections set none, and every connection keeps its
    /// settings for its whole life.
    pub reconnect: Option<Box<ReconnectPolicy>>,
    pub before_connect: Option<Arc<dyn Fn(&mut ConnectOptions) + Send + Sync>>,
}

/// An event-driven WebSocket client: set options and callbacks, then
/// [`Client::connect`]. It mirrors Workerman's `AsyncTcpConnection` for
/// `ws://` (see the crate docs for the seed's example line by line).
///
/// Callbacks fire in the order documented in [`Handler`]. They may call
/// any [`Conn`] method, including `send` and `reconnect`.
pub struct Client {
    options: ConnectOptions,
    settings: Settings,
    callbacks: Callbacks,
    /// Given to the connection's shared state (not kept in its task).
    send_type: SendType,
    max_send_buffer: usize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.options.url())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for a `ws://` or `wss://` URL.
    ///
    /// # Errors
    /// [`Error::Url`] when the URL is not a usable WebSocket URL.
    pub fn new(url: &str) -> Result<Client, Error> {
        Client::with_options(ConnectOptions::new(url))
    }

    /// A client with full connection options (TLS, proxy, limits,
    /// timeouts...).
    ///
    /// # Errors
    /// [`Error::Url`] when the URL is not usable.
    pub fn with_options(options: ConnectOptions) -> Result<Client, Error> {
        options.check_url()?;
        Ok(Client {
            options,
            settings: Settings {
                ping_interval: None,
                pong_timeout: None,
                keep_queue_while_disconnected: true,
                reconnect: None,
                before_connect: None,
            },
            callbacks: Callbacks::default(),
            send_type: SendType::Text,
            max_send_buffer: DEFAULT_MAX_SEND_BUFFER,
        })
    }

    /// The connection options, to change anything [`ConnectOptions`] has.
    pub fn options_mut(&mut self) -> &mut ConnectOptions {
        &mut self.options
    }

    /// Sends a ping every `interval` (the seed's `websocketPingInterval`).
    /// Without [`Client::pong_timeout`], the pong timeout defaults to the
    /// interval: a peer silent for a whole interval after a ping is dead.
    pub fn ping_interval(&mut self, interval: Duration) -> &mut Self {
        self.settings.ping_interval = Some(interval);
        self
    }

    /// How long to wait, after a ping, for any frame from the server before
    /// the connection is declared dead (closed as 1006, `on_error` then
    /// `on_close`).
    pub fn pong_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.settings.pong_timeout = Some(timeout);
        self
    }

    /// Adds a handshake header (the seed's `headers`). An invalid name or
    /// value (CR/LF...) makes each attempt fail with a typed error.
    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        self.options.add_header(name, value);
        self
    }

    /// The frame type of [`Conn::send`] for strings (the seed's
    /// `websocketType`).
    pub fn send_type(&mut self, t: SendType) -> &mut Self {
        self.send_type = t;
        self
    }

    /// Offers a subprotocol.
    pub fn subprotocol(&mut self, p: &str) -> &mut Self {
        self.options = self.options.clone().subprotocol(p);
        self
    }

    /// Sets the `Origin` header.
    pub fn origin(&mut self, origin: &str) -> &mut Self {
        self.options.add_header("Origin", origin);
        self
    }

    /// The send queue's limit in payload bytes (default 16 MiB,
    /// [`DEFAULT_MAX_SEND_BUFFER`]; Workerman's `maxSendBufferSize`):
    /// beyond it `send` returns the message with
    /// [`super::SendFailure::BufferFull`] and `on_buffer_full` fires;
    /// `on_buffer_drain` fires once half of it is written. A message is
    /// always taken into an empty queue, whatever its size.
    pub fn max_send_buffer(&mut self, bytes: usize) -> &mut Self {
        self.max_send_buffer = bytes;
        self
    }

    /// Whether messages queued while disconnected wait for the next
    /// connection (default true) or come back through `on_undelivered`
    /// when a connection ends.
    pub fn keep_queue_while_disconnected(&mut self, keep: bool) -> &mut Self {
        self.settings.keep_queue_while_disconnected = keep;
        self
    }

    /// Reconnects automatically by `policy` after failed attempts and
    /// lost connections (without it, only [`Conn::reconnect`] reconnects).
    pub fn reconnect_policy(&mut self, policy: ReconnectPolicy) -> &mut Self {
        self.settings.reconnect = Some(Box::new(policy));
        self
    }

    /// Runs before every attempt and may change the URL and headers (a
    /// fresh token, a re-signed URL).
    pub fn before_connect(
        &mut self,
        f: impl Fn(&mut ConnectOptions) + Send + Sync + 'static,
    ) -> &mut Self {
        self.settings.before_connect = Some(Arc::new(f));
        self
    }

    /// Sets a [`Handler`] (called after any closures set here).
    pub fn handler(&mut self, h: impl Handler) -> &mut Self {
        self.callbacks.handler = Some(Box::new(h));
        self
    }

    /// The transport is up, before the handshake (`onConnect`).
    pub fn on_connect(&mut self, f: impl FnMut(&Conn) + Send + 'static) -> &mut Self {
        self.callbacks.on_connect = Some(Box::new(f));
        self
    }

    /// The handshake completed, with the server's response
    /// (`onWebSocketConnect`).
    pub fn on_websocket_connect(
        &mut self,
        f: impl FnMut(&Conn, &Response) + Send + 'static,
    ) -> &mut Self {
        self.callbacks.on_websocket_connect = Some(Box::new(f));
        self
    }

    /// A text or binary message arrived (`onMessage`).
    pub fn on_message(&mut self, f: impl FnMut(&Conn, Message) + Send + 'static) -> &mut Self {
        self.callbacks.on_message = Some(Box::new(f));
        self
    }

    /// A ping arrived (already answered).
    pub fn on_ping(&mut self, f: impl FnMut(&Conn, Bytes) + Send + 'static) -> &mut Self {
        self.callbacks.rare_mut().on_ping = Some(Box::new(f));
        self
    }

    /// A pong arrived.
    pub fn on_pong(&mut self, f: impl FnMut(&Conn, Bytes) + Send + 'static) -> &mut Self {
        self.callbacks.rare_mut().on_pong = Some(Box::new(f));
        self
    }

    /// Something failed (`onError`); `err.code()` is the stable code, and
    /// [`Error::response`] the server's answer when the handshake failed on
    /// it (a refusal or an invalid 101: status, headers, raw head).
    pub fn on_error(&mut self, f: impl FnMut(&Conn, &Error) + Send + 'static) -> &mut Self {
        self.callbacks.on_error = Some(Box::new(f));
        self
    }

    /// The attempt or connection ended (`onClose`), always last.
    pub fn on_close(&mut self, f: impl FnMut(&Conn) + Send + 'static) -> &mut Self {
        self.callbacks.on_close = Some(Box::new(f));
        self
    }

    /// The send queue reached its limit (`onBufferFull`).
    pub fn on_buffer_full(&mut self, f: impl FnMut(&Conn) + Send + 'static) -> &mut Self {
        self.callbacks.rare_mut().on_buffer_full = Some(Box::new(f));
        self
    }

    /// The send queue drained after being full (`onBufferDrain`).
    pub fn on_buffer_drain(&mut self, f: impl FnMut(&Conn) + Send + 'static) -> &mut Self {
        self.callbacks.rare_mut().on_buffer_drain = Some(Box::new(f));
        self
    }

    /// A reconnect attempt will start after a delay.
    pub fn on_reconnect(
        &mut self,
        f: impl FnMut(&Conn, u32, Duration) + Send + 'static,
    ) -> &mut Self {
        self.callbacks.rare_mut().on_reconnect = Some(Box::new(f));
        self
    }

    /// Messages that could not be delivered come back here.
    pub fn on_undelivered(
        &mut self,
        f: impl FnMut(&Conn, Vec<Message>) + Send + 'static,
    ) -> &mut Self {
        self.callbacks.rare_mut().on_undelivered = Some(Box::new(f));
        self
    }

    /// Starts connecting (the seed's `connect()`) and returns the handle.
    ///
    /// Inside a tokio runtime the connection runs on it; elsewhere it runs
    /// on the process's host runtime, which [`crate::run_all`] waits on.
    pub fn connect(self) -> Conn {
        let (conn, task) = self.into_task();
        host::spawn(task);
        conn
    }

    /// The handle and the connection's task, not yet spawned.
    fn into_task(self) -> (Conn, impl std::future::Future<Output = ()> + Send) {
        let shared = Arc::new(Shared::new(
            NEXT_ID.fetch_add(1, Ordering::Relaxed),
            self.options.url().to_owned(),
            self.send_type,
            self.max_send_buffer,
        ));
        let rx = Receiver::new(shared.clone());
        let conn = Conn { shared };
        let registration = host::Registration::new(&conn);
        let task = task::run(
            self.options,
            self.settings,
            self.callbacks,
            conn.clone(),
            rx,
            registration,
        );
        (conn, task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every idle connection holds its task for its whole life, in a tokio
    /// cell aligned to 128 bytes (header 32 + 24 + future + trailer 48): a
    /// future of at most 792 bytes keeps the cell at 896 (the idle-memory
    /// budget of the README's benchmark). A new field across the task's
    /// long wait shows up here first.
    #[test]
    fn the_connection_task_fits_its_memory_budget() {
        let (_conn, task) = Client::new("ws://127.0.0.1:9/")
            .expect("a valid URL")
            .into_task();
        let size = std::mem::size_of_val(&task);
        assert!(size <= 792, "the connection task's future is {size} bytes");
    }
}
