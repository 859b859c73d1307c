//! [`Conn`]: the cheap, cloneable handle to one event-driven connection,
//! usable from any callback, task or thread; and what it reports
//! ([`Stats`], [`ConnState`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

use super::inbox::{Inbox, Refused};

use crate::message::{Message, Utf8Bytes};
use crate::proto::{CloseCode, CloseFrame};

/// Which frame type `send` uses for strings (the seed's `websocketType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SendType {
    /// Strings go as text frames, byte buffers as binary frames
    /// (Workerman's `BINARY_TYPE_BLOB`, the default).
    #[default]
    Text,
    /// Everything goes as binary frames (Workerman's
    /// `BINARY_TYPE_ARRAYBUFFER`).
    Binary,
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// Opening the transport or running the handshake.
    Connecting,
    /// Open: messages flow.
    Open,
    /// Closing (close frame sent, waiting).
    Closing,
    /// Waiting to reconnect.
    Reconnecting,
    /// Finished: no reconnect will follow.
    Closed,
}

impl ConnState {
    fn from_u8(v: u8) -> ConnState {
        match v {
            0 => ConnState::Connecting,
            1 => ConnState::Open,
            2 => ConnState::Closing,
            3 => ConnState::Reconnecting,
            _ => ConnState::Closed,
        }
    }
}

/// Why a message handed to [`Conn::send`] was not queued. The message comes
/// back in [`SendError::message`]: nothing is dropped silently.
#[derive(Debug, thiserror::Error)]
#[error("message not sent: {reason}")]
pub struct SendError {
    /// The message, returned to the caller.
    pub message: Message,
    /// Why.
    pub reason: SendFailure,
}

/// The reason in a [`SendError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendFailure {
    /// The send queue is at its limit (`max_send_buffer`); wait for
    /// `on_buffer_drain`.
    #[error("the send buffer is full")]
    BufferFull,
    /// The connection is finished and will not reconnect.
    #[error("the connection is closed")]
    Closed,
    /// A ping payload over 125 bytes.
    #[error("control payload over 125 bytes")]
    ControlTooLarge,
}

/// Health figures of a connection (all of its attempts together).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Round-trip time of the last ping answered by a pong.
    pub rtt: Option<Duration>,
    /// Time since the last frame of any kind arrived.
    pub since_last_frame: Option<Duration>,
    /// Reconnect attempts made so far.
    pub reconnects: u32,
    /// Text and binary messages received.
    pub messages_in: u64,
    /// Text and binary messages sent (handed to the socket).
    pub messages_out: u64,
    /// Payload bytes received.
    pub bytes_in: u64,
    /// Payload bytes sent.
    pub bytes_out: u64,
    /// Messages waiting in the send queue.
    pub queue_len: usize,
    /// Payload bytes waiting in the send queue.
    pub queue_bytes: usize,
}

/// Commands from handles to the connection's task.
#[derive(Debug)]
pub(crate) enum Command {
    Send(Message),
    Close(Option<CloseFrame>),
    Reconnect,
    PauseRecv,
    ResumeRecv,
    Wake,
}

/// The state shared by the handles and the task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub id: u64,
    pub url: Mutex<String>,
    pub inbox: Inbox,
    pub send_type: SendType,
    pub max_send_buffer: usize,
    pub state: AtomicU8,
    pub buffer_full: AtomicBool,
    /// Set by `pause_recv` at once (the command only wakes the task).
    pub recv_paused: AtomicBool,
    /// When a frame last arrived, in ms since [`epoch`] (0: never).
    pub last_frame_ms: AtomicU64,
    pub rtt_us: AtomicU64,
    pub reconnects: AtomicU32,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub addrs: Mutex<Addrs>,
    /// Boxed: set only once a server has closed.
    pub close_frame: Mutex<Option<Box<CloseFrame>>>,
    pub close_code: Mutex<Option<CloseCode>>,
    pub stop_reason: Mutex<Option<&'static str>>,
    /// A reconnect asked for by the user, taken by the task.
    pub reconnect_request: Mutex<Option<Duration>>,
    pub finished: AtomicBool,
    /// Wakes the tasks waiting in [`Conn::finished`] and
    /// [`Conn::send_wait`]: at the finish, and when a full queue has
    /// drained to half its limit.
    pub waiters: Notify,
}

/// Where the open connection's addresses come from. On Unix they are
/// looked up from its socket each time they are asked for, not at every
/// connect: two system calls, about 2 µs of client CPU per connect on the
/// benchmark's VM (A/B, 10 and 12 interleaved rounds: −1.9 and −2.3 µs),
/// for what few programs ask; and 8 bytes per connection where the two
/// addresses took 64.
#[derive(Debug, Default)]
pub(crate) struct Addrs {
    /// The socket, while a session holds it (or `on_connect` runs): lent
    /// and taken back under the lock this lives in, and taken back before
    /// the socket is closed ([`Addrs::clear`], in the session's `Drop`).
    #[cfg(unix)]
    socket: Option<std::os::fd::RawFd>,
    /// Elsewhere, the addresses themselves, looked up when lent.
    #[cfg(not(unix))]
    known: (Option<SocketAddr>, Option<SocketAddr>),
}

impl Addrs {
    /// Lends the connection's socket, to look the addresses up from
    /// (elsewhere than Unix: looks them up now).
    pub(crate) fn lend(&mut self, io: &crate::transport::MaybeTlsStream) {
        #[cfg(unix)]
        {
            self.socket = io.raw_fd();
        }
        #[cfg(not(unix))]
        {
            self.known = (io.peer_addr().ok(), io.local_addr().ok());
        }
    }

    /// Takes the socket back (and forgets the addresses).
    pub(crate) fn clear(&mut self) {
        *self = Addrs::default();
    }

    /// The remote (`true`) or local address.
    fn get(&self, remote: bool) -> Option<SocketAddr> {
        #[cfg(unix)]
        {
            let fd = self.socket?;
            // SAFETY: `fd` is the open connection's socket. It is lent and
            // taken back under the lock the caller holds (`&self` is
            // behind it), and taken back before the socket can be closed,
            // so it stays open for this borrow, which ends with this call.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let socket = socket2::SockRef::from(&fd);
            let addr = if remote {
                socket.peer_addr()
            } else {
                socket.local_addr()
            };
            addr.ok()?.as_socket()
        }
        #[cfg(not(unix))]
        {
            if remote { self.known.0 } else { self.known.1 }
        }
    }
}

/// The instant the frame times in [`Shared::last_frame_ms`] count from:
/// one for the process, rather than one in every connection's state.
pub(crate) fn epoch() -> Instant {
    static EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
    *EPOCH
}

impl Shared {
    /// The state of a new connection to `url`.
    pub(crate) fn new(id: u64, url: String, send_type: SendType, max_send_buffer: usize) -> Self {
        Shared {
            id,
            url: Mutex::new(url),
            inbox: Inbox::default(),
            send_type,
            max_send_buffer,
            state: AtomicU8::default(),
            buffer_full: AtomicBool::default(),
            recv_paused: AtomicBool::default(),
            last_frame_ms: AtomicU64::default(),
            rtt_us: AtomicU64::default(),
            reconnects: AtomicU32::default(),
            messages_in: AtomicU64::default(),
            messages_out: AtomicU64::default(),
            bytes_in: AtomicU64::default(),
            bytes_out: AtomicU64::default(),
            addrs: Mutex::new(Addrs::default()),
            close_frame: Mutex::new(None),
            close_code: Mutex::new(None),
            stop_reason: Mutex::new(None),
            reconnect_request: Mutex::new(None),
            finished: AtomicBool::default(),
            waiters: Notify::new(),
        }
    }
}

/// A handle to one event-driven connection: cheap to clone, `Send + Sync`,
/// valid across reconnects (it names the logical connection, not one TCP
/// connection).
#[derive(Debug, Clone)]
pub struct Conn {
    pub(crate) shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a callback panicked while holding it; the
    // data (addresses, codes) is still meaningful.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Conn {
    /// A number unique to this connection within the process.
    #[must_use]
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The URL of the current (or next) attempt.
    #[must_use]
    pub fn url(&self) -> String {
        lock(&self.shared.url).clone()
    }

    /// Queues a message. Strings go as text frames and byte buffers as
    /// binary frames, unless the send type is [`SendType::Binary`] (then
    /// all go as binary). Messages sent before the handshake completes (or
    /// while reconnecting) are queued and sent in order once it does.
    ///
    /// # Errors
    /// [`SendError`] with the message when the queue is full or the
    /// connection is finished.
    #[inline]
    pub fn send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        self.enqueue(self.typed(message.into()))
    }

    /// `message` as the send type has it: text as binary under
    /// [`SendType::Binary`].
    #[inline(always)]
    fn typed(&self, message: Message) -> Message {
        match message {
            Message::Text(t) if self.shared.send_type == SendType::Binary => {
                Message::Binary(t.into_bytes())
            }
            other => other,
        }
    }

    /// Queues a text message (whatever the send type).
    ///
    /// # Errors
    /// As [`Conn::send`].
    #[inline]
    pub fn send_text(&self, text: impl Into<Utf8Bytes>) -> Result<(), SendError> {
        let text = text.into();
        let len = text.len();
        self.enqueue_with(text, len, Message::Text)
    }

    /// Queues a binary message.
    ///
    /// # Errors
    /// As [`Conn::send`].
    #[inline]
    pub fn send_binary(&self, data: impl Into<Bytes>) -> Result<(), SendError> {
        let data = data.into();
        let len = data.len();
        self.enqueue_with(data, len, Message::Binary)
    }

    /// Queues a message as [`Conn::send`] does, waiting while the queue is
    /// full instead of failing with [`SendFailure::BufferFull`]: for a
    /// producer that should slow down to the pace of the connection
    /// rather than handle refusals (the queue drains to half its limit
    /// before it takes more, as for `on_buffer_drain`). The wait also
    /// spans reconnects, while the queue is kept.
    ///
    /// # Errors
    /// [`SendFailure::Closed`] with the message once the connection is
    /// finished, also when it finishes during the wait.
    ///
    /// ```no_run
    /// # async fn f(conn: wsclient::Conn, ticks: Vec<String>) -> Result<(), wsclient::events::SendError> {
    /// for tick in ticks {
    ///     conn.send_wait(tick).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn send_wait(&self, message: impl Into<Message>) -> Result<(), SendError> {
        let mut message = self.typed(message.into());
        loop {
            // Registered before the try, so a drain between the refusal and
            // the wait is not missed.
            let drained = self.shared.waiters.notified();
            let mut drained = std::pin::pin!(drained);
            drained.as_mut().enable();
            match self.enqueue(message) {
                Err(SendError {
                    message: refused,
                    reason: SendFailure::BufferFull,
                }) => message = refused,
                done => return done,
            }
            drained.await;
        }
    }

    /// Sends a ping (payload at most 125 bytes).
    ///
    /// # Errors
    /// As [`Conn::send`], and [`SendFailure::ControlTooLarge`].
    pub fn ping(&self, payload: impl Into<Bytes>) -> Result<(), SendError> {
        let payload = payload.into();
        if payload.len() > 125 {
            return Err(SendError {
                message: Message::Ping(payload),
                reason: SendFailure::ControlTooLarge,
            });
        }
        self.enqueue(Message::Ping(payload))
    }

    #[inline(always)]
    fn enqueue(&self, message: Message) -> Result<(), SendError> {
        let len = message.len();
        self.enqueue_with(message, len, |m| m)
    }

    /// Queues the message `wrap` makes of `payload` (`len` bytes). The
    /// message is made only where it is stored, in the queue (or in the
    /// error): made first and then moved, its tag and payload, written
    /// apart, would be read back as one 16-byte load at each move, which
    /// the CPU cannot forward from the two stores (a stall of ~10 cycles
    /// each, a fifth of a 16-byte send's time in `perf annotate`).
    #[inline(always)]
    fn enqueue_with<P>(
        &self,
        payload: P,
        len: usize,
        wrap: fn(P) -> Message,
    ) -> Result<(), SendError> {
        let s = &self.shared;
        if s.finished.load(Ordering::Acquire) {
            return Err(SendError {
                message: wrap(payload),
                reason: SendFailure::Closed,
            });
        }
        match s.inbox.push_send(payload, len, wrap, s.max_send_buffer) {
            Ok(()) => Ok(()),
            Err((payload, Refused::Full)) => {
                if !s.buffer_full.swap(true, Ordering::AcqRel) {
                    let _ = s.inbox.push(Command::Wake);
                }
                Err(SendError {
                    message: wrap(payload),
                    reason: SendFailure::BufferFull,
                })
            }
            Err((payload, Refused::Closed)) => Err(SendError {
                message: wrap(payload),
                reason: SendFailure::Closed,
            }),
        }
    }

    /// Closes the connection with 1000 (normal); no automatic reconnect
    /// follows (a [`Conn::reconnect`] from `on_close` still does). While
    /// connecting, the attempt ends at once (no close frame: there is no
    /// WebSocket yet), not after the connect's timeouts.
    pub fn close(&self) {
        let _ = self
            .shared
            .inbox
            .push(Command::Close(Some(CloseFrame::new(CloseCode::NORMAL, ""))));
    }

    /// Closes the connection with `code` and `reason`.
    pub fn close_with(&self, code: impl Into<CloseCode>, reason: &str) {
        let _ = self
            .shared
            .inbox
            .push(Command::Close(Some(CloseFrame::new(code.into(), reason))));
    }

    /// Connects again after `delay` (the seed's `reConnect`): from
    /// `on_close` it starts the next attempt; on an open connection it
    /// closes it first; while connecting, it ends the attempt at once.
    pub fn reconnect(&self, delay: Duration) {
        *lock(&self.shared.reconnect_request) = Some(delay);
        let _ = self.shared.inbox.push(Command::Reconnect);
    }

    /// Stops reading from the server (TCP backpressure builds up on the
    /// server's side) until [`Conn::resume_recv`].
    pub fn pause_recv(&self) {
        self.shared.recv_paused.store(true, Ordering::Release);
        let _ = self.shared.inbox.push(Command::PauseRecv);
    }

    /// Resumes reading after [`Conn::pause_recv`].
    pub fn resume_recv(&self) {
        self.shared.recv_paused.store(false, Ordering::Release);
        let _ = self.shared.inbox.push(Command::ResumeRecv);
    }

    /// The connection's state.
    #[must_use]
    pub fn state(&self) -> ConnState {
        ConnState::from_u8(self.shared.state.load(Ordering::Acquire))
    }

    /// The server's address (a proxy's, through one), while connected
    /// (from `on_connect` on, when set, and again from
    /// `on_websocket_connect` on); looked up when asked for. `None` over a
    /// Unix domain socket ([`crate::ConnectOptions::unix_socket`]).
    #[must_use]
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        lock(&self.shared.addrs).get(true)
    }

    /// Our local address, while connected (as [`Conn::remote_addr`]);
    /// looked up when asked for.
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        lock(&self.shared.addrs).get(false)
    }

    /// The close frame the server sent last, if any.
    #[must_use]
    pub fn close_frame(&self) -> Option<CloseFrame> {
        lock(&self.shared.close_frame).as_deref().cloned()
    }

    /// The close code the last connection ended with (1006 when it was
    /// lost without a close frame), once one has ended.
    #[must_use]
    pub fn close_code(&self) -> Option<CloseCode> {
        *lock(&self.shared.close_code)
    }

    /// Why reconnecting stopped, once it has.
    #[must_use]
    pub fn stop_reason(&self) -> Option<String> {
        (*lock(&self.shared.stop_reason)).map(str::to_owned)
    }

    /// Health figures.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        let last = s.last_frame_ms.load(Ordering::Acquire);
        let rtt = s.rtt_us.load(Ordering::Acquire);
        let (queue_len, queue_bytes) = s.inbox.queued();
        Stats {
            rtt: (rtt > 0).then(|| Duration::from_micros(rtt)),
            since_last_frame: (last > 0).then(|| {
                epoch()
                    .elapsed()
                    .saturating_sub(Duration::from_millis(last))
            }),
            reconnects: s.reconnects.load(Ordering::Acquire),
            messages_in: s.messages_in.load(Ordering::Acquire),
            messages_out: s.messages_out.load(Ordering::Acquire),
            bytes_in: s.bytes_in.load(Ordering::Acquire),
            bytes_out: s.bytes_out.load(Ordering::Acquire),
            queue_len,
            queue_bytes,
        }
    }

    /// True once the connection is finished (closed, no reconnect).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.shared.finished.load(Ordering::Acquire)
    }

    /// Waits until the connection is finished (closed, no reconnect).
    pub async fn finished(&self) {
        loop {
            let notified = self.shared.waiters.notified();
            if self.is_finished() {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn set_state(&self, st: ConnState) {
        let v = match st {
            ConnState::Connecting => 0,
            ConnState::Open => 1,
            ConnState::Closing => 2,
            ConnState::Reconnecting => 3,
            ConnState::Closed => 4,
        };
        self.shared.state.store(v, Ordering::Release);
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        lock(m)
    }
}
