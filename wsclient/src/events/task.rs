//! The connection task: one per [`Client::connect`](super::Client::connect).
//!
//! Owns the life of a logical connection across attempts: connect, fire
//! callbacks in order, move queued messages to the socket, heartbeat
//! (ping every interval, dead peer after the pong timeout), pause/resume,
//! close, and decide on reconnecting. Protocol work is the socket's.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::time::Sleep;

use super::client::Settings;
use super::conn::{Command, Conn, ConnState};
use super::handler::{Callbacks, Handler};
use super::host;
use super::inbox::Receiver;
use super::reconnect::Outcome;
use crate::connect::ConnectOptions;
use crate::error::Error;
use crate::message::Message;
use crate::proto::{CloseCode, CloseFrame};
use crate::socket::WebSocket;
use crate::transport::MaybeTlsStream;

/// How an attempt ended.
struct End {
    error: Option<Error>,
    outcome: Outcome,
    opened_for: Option<Duration>,
    /// The user closed the connection ([`Conn::close`]): it is finished,
    /// whatever `on_close` asks.
    finish: bool,
}

impl End {
    /// An end without an error: the server's close, or the user's.
    fn closed(outcome: Outcome, finish: bool) -> End {
        End {
            error: None,
            outcome,
            opened_for: None,
            finish,
        }
    }

    fn failed(e: Error) -> End {
        End {
            outcome: Outcome::from_error(&e),
            error: Some(e),
            opened_for: None,
            finish: false,
        }
    }
}

/// The task's future: the connection's life (attempts, callbacks,
/// reconnects, and handing back what could not be sent). Built from an
/// `async move` block rather than an `async fn`: an `async fn` moves its
/// parameters into locals of its state machine, which then holds them twice
/// (~850 bytes more per connection, for the connection's whole life).
#[allow(clippy::manual_async_fn)] // on purpose, see above
pub(crate) fn run(
    mut options: ConnectOptions,
    settings: Settings,
    mut cb: Callbacks,
    conn: Conn,
    mut rx: Receiver,
    registration: host::Registration,
) -> impl Future<Output = ()> + Send {
    async move {
        let mut attempt: u32 = 0;
        // Messages taken from the queue but not yet written, kept for the next
        // connection (or handed back as undelivered).
        let mut pending: VecDeque<Message> = VecDeque::new();
        let mut stop = false;
        while !stop {
            if let Some(f) = &settings.before_connect {
                f(&mut options);
                *Conn::lock(&conn.shared().url) = options.url().to_owned();
            }
            conn.set_state(ConnState::Connecting);
            // The attempt's `End` lives in this block only: kept across the
            // reconnect delay, it would be room in every connection's task
            // for its whole life.
            let delay = {
                // Boxed: the connect future (DNS, TCP race, TLS, handshake)
                // is several KiB and lives only while connecting; inline, it
                // would size the connection's task for its whole life.
                let end = 'attempt: {
                    let mut session = match Box::pin(open_or_interrupt(
                        &options,
                        &settings,
                        &mut cb,
                        &conn,
                        &mut rx,
                        &mut pending,
                    ))
                    .await
                    {
                        Ok(session) => session,
                        Err(end) => break 'attempt end,
                    };
                    session.start(&mut cb, &mut pending);
                    // A poll function over the session's own state rather
                    // than an `async` loop, whose locals would be a second
                    // copy of what the session holds.
                    let result = std::future::poll_fn(|cx| {
                        session.poll_run(cx, &mut cb, &mut rx, &mut pending)
                    })
                    .await;
                    // Boxed: a cold path whose timer would otherwise be room
                    // in every connection's task.
                    let end = Box::pin(session.finish(result)).await;
                    session.close(end, &mut pending)
                };
                // The lent socket is back: `Lent` took it back after
                // `on_connect`, the session's `Drop` in `close` or on unwind.
                if let Some(e) = &end.error {
                    tracing::debug!(conn = conn.shared().id, error = %e, code = e.code(), "connection error");
                    cb.on_error(&conn, e);
                }
                cb.on_close(&conn);

                if end.opened_for.is_some_and(|d| {
                    settings
                        .reconnect
                        .as_ref()
                        .is_none_or(|p| d >= p.reset_after)
                }) {
                    attempt = 0;
                }
                attempt += 1;
                let manual = Conn::lock(&conn.shared().reconnect_request).take();
                if host::is_shutting_down() || end.finish {
                    None
                } else if let Some(d) = manual {
                    Some(d)
                } else if let Some(p) = &settings.reconnect {
                    match p.next_delay(&end.outcome, attempt) {
                        Ok(d) => Some(d),
                        Err(why) => {
                            tracing::info!(
                                conn = conn.shared().id,
                                reason = why,
                                "not reconnecting"
                            );
                            *Conn::lock(&conn.shared().stop_reason) = Some(why);
                            None
                        }
                    }
                } else {
                    None
                }
            };
            let Some(delay) = delay else { break };
            if !settings.keep_queue_while_disconnected {
                let mut lost: Vec<Message> = pending.drain(..).collect();
                while let Some(cmd) = rx.try_recv() {
                    if let Command::Send(m) = cmd {
                        lost.push(m);
                    }
                }
                give_back(&mut cb, &conn, lost);
            }
            conn.set_state(ConnState::Reconnecting);
            conn.shared().reconnects.fetch_add(1, Ordering::AcqRel);
            tracing::debug!(conn = conn.shared().id, attempt, ?delay, "reconnecting");
            cb.on_reconnect(&conn, attempt, delay);
            // Boxed: kept inline, the delay's timer would take room beside
            // the session's in every connection's task.
            stop = !Box::pin(wait_delay(delay, &mut rx, &mut pending)).await;
        }
        conn.shared().finished.store(true, Ordering::Release);
        conn.set_state(ConnState::Closed);
        // Whatever is still queued can no longer be sent: hand it back.
        let mut lost: Vec<Message> = pending.drain(..).collect();
        for cmd in rx.close() {
            if let Command::Send(m) = cmd {
                lost.push(m);
            }
        }
        give_back(&mut cb, &conn, lost);
        conn.shared().waiters.notify_waiters();
        // Listed as live until now, after the finished notification.
        drop(registration);
    }
}

/// Microseconds since the process's [`epoch`](super::conn::epoch): the
/// connection's times in 8 bytes each rather than an `Instant`'s 16.
fn now_us() -> u64 {
    super::conn::epoch().elapsed().as_micros() as u64
}

/// Adds to a counter that only this task writes (the message and byte
/// counts): a load and a store, not a locked read-modify-write, since no
/// other thread can race the update (handles only read them).
fn add(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

fn give_back(cb: &mut Callbacks, conn: &Conn, lost: Vec<Message>) {
    if lost.is_empty() {
        return;
    }
    let bytes: usize = lost.iter().map(Message::len).sum();
    conn.shared().inbox.release(lost.len(), bytes);
    cb.on_undelivered(conn, lost);
}

/// Connects ([`open`]) while looking at the commands that come meanwhile
/// ([`interrupt`]): a close or a reconnect ends the attempt now rather than
/// after the connect's timeouts.
async fn open_or_interrupt<'a>(
    options: &ConnectOptions,
    settings: &'a Settings,
    cb: &mut Callbacks,
    conn: &'a Conn,
    rx: &mut Receiver,
    pending: &mut VecDeque<Message>,
) -> Result<Session<'a>, End> {
    let mut paused = None;
    let opened = tokio::select! {
        biased;
        end = interrupt(conn, rx, pending, &mut paused) => Err(end),
        r = open(options, settings, cb, conn) => r,
    };
    opened.map(|mut session| {
        if let Some(p) = paused {
            session.paused = p;
        }
        session
    })
}

/// Takes the commands that come while connecting: sends wait in `pending`
/// (still counted in the queue) and pause/resume in `paused`, for the
/// session; a close ends the attempt and the connection, a reconnect asked
/// for with [`Conn::reconnect`] ends the attempt (the reconnect follows).
/// Pending until then.
async fn interrupt(
    conn: &Conn,
    rx: &mut Receiver,
    pending: &mut VecDeque<Message>,
    paused: &mut Option<bool>,
) -> End {
    loop {
        match rx.recv().await {
            Command::Send(m) => pending.push_back(m),
            Command::Close(_) => return End::closed(Outcome::LocalClose, true),
            Command::Reconnect => {
                if Conn::lock(&conn.shared().reconnect_request).is_some() {
                    return End::closed(Outcome::LocalClose, false);
                }
            }
            Command::PauseRecv => *paused = Some(true),
            Command::ResumeRecv => *paused = Some(false),
            // A full queue is announced once the session starts.
            Command::Wake => {}
        }
    }
}

/// Sleeps before a reconnect while keeping queued messages; false when a
/// close was asked for meanwhile.
async fn wait_delay(delay: Duration, rx: &mut Receiver, pending: &mut VecDeque<Message>) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return true,
            cmd = rx.recv() => match cmd {
                Command::Send(m) => pending.push_back(m),
                Command::Close(_) => return false,
                _ => {}
            },
        }
    }
}

/// Connects (transport, then upgrade, following redirects when enabled)
/// and fires `on_connect` as each transport is up and
/// `on_websocket_connect` once upgraded; the session to run, or how the
/// attempt ended.
async fn open<'a>(
    options: &ConnectOptions,
    settings: &'a Settings,
    cb: &mut Callbacks,
    conn: &'a Conn,
) -> Result<Session<'a>, End> {
    // The addresses are looked up from the socket when asked for
    // (`Addrs`): it is lent for `on_connect` (the stream may be dropped
    // after it, if the upgrade fails) and then to the session.
    let early = cb.on_connect.is_some() || cb.handler.is_some();
    let result = options
        .connect_with(|io| {
            if early {
                Conn::lock(&conn.shared().addrs).lend(io);
                // Taken back when the callback returns, or unwinds.
                let _lent = Lent(conn);
                cb.on_connect(conn);
            }
        })
        .await;
    let (ws, response) = result.map_err(End::failed)?;
    // Made before the callback: if it panics, the session's `Drop` still
    // takes the lent socket back.
    let session = Session {
        ws,
        settings,
        conn,
        inflight: VecDeque::new(),
        paused: false,
        local_close: false,
        user_close: false,
        ping_sent: 0,
        full_announced: false,
        ping: None,
        pong_deadline: None,
        opened: now_us(),
    };
    Conn::lock(&conn.shared().addrs).lend(session.ws.get_ref());
    conn.set_state(ConnState::Open);
    tracing::info!(conn = conn.id(), url = options.url(), "connected");
    cb.on_websocket_connect(conn, &response);
    Ok(session)
}

/// Messages handed to callbacks per wake-up before commands, timers and
/// writes get a turn.
const RECV_BATCH: usize = 64;

enum Event {
    /// Messages were delivered; nothing else to do.
    Progress,
    Command(Command),
    Received(Option<Result<Message, Error>>),
    PingDue,
    PongOverdue,
    WriteFailed(Error),
}

struct Session<'a> {
    ws: WebSocket<MaybeTlsStream>,
    settings: &'a Settings,
    conn: &'a Conn,
    /// Messages encoded into the socket, with the output position at which
    /// each has been fully written.
    inflight: VecDeque<(Message, u64)>,
    paused: bool,
    local_close: bool,
    user_close: bool,
    /// When the last unanswered ping was sent, in µs since the epoch
    /// (0: none).
    ping_sent: u64,
    full_announced: bool,
    /// The heartbeat's next tick (`Settings::ping_interval`); a timer
    /// rather than an `Interval`, which would carry a copy of the period.
    ping: Option<Pin<Box<Sleep>>>,
    /// Set when a ping is sent and cleared by any frame from the peer.
    pong_deadline: Option<Pin<Box<Sleep>>>,
    /// When the connection opened, in µs since the epoch.
    opened: u64,
}

/// Takes the socket lent for `on_connect` back when dropped.
struct Lent<'a>(&'a Conn);

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        Conn::lock(&self.0.shared().addrs).clear();
    }
}

/// Takes the lent socket back (see `Addrs`) before the socket closes.
impl Drop for Session<'_> {
    fn drop(&mut self) {
        Conn::lock(&self.conn.shared().addrs).clear();
    }
}

impl Session<'_> {
    /// Before the first poll: announces a queue found full while
    /// disconnected, encodes the messages kept from before, and starts the
    /// heartbeat.
    fn start(&mut self, cb: &mut Callbacks, pending: &mut VecDeque<Message>) {
        if self.conn.shared().buffer_full.load(Ordering::Acquire) {
            self.full_announced = true;
            cb.on_buffer_full(self.conn);
        }
        while let Some(m) = pending.pop_front() {
            self.queue(m);
        }
        self.ping = self
            .settings
            .ping_interval
            .map(|d| Box::pin(tokio::time::sleep(d)));
    }

    /// Stop taking queued messages while this much is encoded but
    /// unwritten: the connection's write batch,
    /// [`SocketConfig::write_buffer_size`](crate::socket::SocketConfig::write_buffer_size)
    /// (512 KiB by default; A/B against 256 KiB, 8 interleaved pairs each:
    /// send 1 KiB 1.19× (8 of 8), 64 KiB 1.08×, 16 B 1.04×), so that a user
    /// who lowers it bounds what each connection holds encoded. At least
    /// 1: with nothing waiting to be written, one message is always taken.
    #[inline]
    fn write_high(&self) -> usize {
        self.ws.config().write_buffer_size.max(1)
    }

    /// How long a ping may go unanswered.
    fn pong_timeout(&self) -> Option<Duration> {
        self.settings.pong_timeout.or(self.settings.ping_interval)
    }

    /// Runs the open connection until it ends: `Ok` with how it ended, or
    /// `Err` with a read error (the caller then tries to flush a close).
    ///
    /// `pending` holds the messages taken from the channel while the
    /// socket's output was too full to take them (still counted in the
    /// queue's bytes).
    fn poll_run(
        &mut self,
        cx: &mut Context<'_>,
        cb: &mut Callbacks,
        rx: &mut Receiver,
        pending: &mut VecDeque<Message>,
    ) -> Poll<Result<End, Error>> {
        loop {
            let Poll::Ready(event) = self.poll_event(cx, cb, rx, pending) else {
                return Poll::Pending;
            };
            self.ack_written(cb);
            while self.ws.output_len() < self.write_high() {
                let Some(m) = pending.pop_front() else {
                    break;
                };
                self.queue(m);
            }
            match event {
                Event::Command(cmd) => {
                    self.command(cmd, cb, pending);
                    // Take a batch of sends at once: one write for many.
                    // Each message is encoded where it lies in the queue
                    // and then moved once, into `inflight`.
                    while self.ws.output_len() < self.write_high() && pending.is_empty() {
                        match rx.front() {
                            Some(Command::Send(m)) => {
                                let end = self.encode(m);
                                if let Some(Command::Send(m)) = rx.pop() {
                                    self.inflight.push_back((m, end));
                                }
                            }
                            Some(_) => {
                                if let Some(cmd) = rx.pop() {
                                    self.command(cmd, cb, pending);
                                }
                            }
                            None => break,
                        }
                    }
                }
                Event::Progress => {}
                Event::Received(Some(Ok(msg))) => {
                    self.saw_frames();
                    self.pong_deadline = None;
                    self.received(msg, cb);
                }
                Event::Received(Some(Err(e))) => return Poll::Ready(Err(e)),
                Event::Received(None) => {
                    let code = self.ws.close_code();
                    *Conn::lock(&self.conn.shared().close_code) = Some(code);
                    let outcome = if self.local_close {
                        Outcome::LocalClose
                    } else {
                        Outcome::Closed(code)
                    };
                    return Poll::Ready(Ok(End::closed(outcome, self.user_close)));
                }
                Event::PingDue => {
                    if self.ws.queue(&Message::Ping(Bytes::new())).is_ok() {
                        self.ping_sent = now_us();
                        if self.pong_deadline.is_none() {
                            if let Some(t) = self.pong_timeout() {
                                self.pong_deadline = Some(Box::pin(tokio::time::sleep(t)));
                            }
                        }
                    }
                }
                Event::PongOverdue => {
                    *Conn::lock(&self.conn.shared().close_code) = Some(CloseCode::ABNORMAL);
                    return Poll::Ready(Ok(End::failed(Error::PongTimeout {
                        after: self.pong_timeout().unwrap_or_default(),
                    })));
                }
                Event::WriteFailed(e) => {
                    *Conn::lock(&self.conn.shared().close_code) = Some(CloseCode::ABNORMAL);
                    return Poll::Ready(Ok(End {
                        finish: self.user_close,
                        ..End::failed(e)
                    }));
                }
            }
        }
    }

    /// Waits for the next thing to do: writes progressing, a command, a
    /// timer, or received messages (delivered right here, a batch at a
    /// time).
    fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
        cb: &mut Callbacks,
        rx: &mut Receiver,
        pending: &VecDeque<Message>,
    ) -> Poll<Event> {
        if self.ws.output_len() > 0 {
            if let Poll::Ready(Err(e)) = self.ws.poll_write_buffered(cx) {
                return Poll::Ready(Event::WriteFailed(e));
            }
            // Room again: parked messages move on (and their acks
            // drain the queue) without waiting for another event.
            if !pending.is_empty() && self.ws.output_len() < self.write_high() {
                return Poll::Ready(Event::Progress);
            }
            // Messages fully written: retire them now (stats, queue
            // bytes, on_buffer_drain) rather than at the next event.
            if self
                .inflight
                .front()
                .is_some_and(|(_, end)| *end <= self.ws.written_total())
            {
                return Poll::Ready(Event::Progress);
            }
        }
        if let Poll::Ready(cmd) = rx.poll_recv(cx) {
            return Poll::Ready(Event::Command(cmd));
        }
        if let Some(p) = self.ping.as_mut() {
            if p.as_mut().poll(cx).is_ready() {
                // The next tick one period after this one, or after now when
                // this one was late (a missed tick is not made up for).
                let period = self.settings.ping_interval.unwrap_or_default();
                let now = tokio::time::Instant::now();
                let next = p.deadline() + period;
                p.as_mut()
                    .reset(if next > now { next } else { now + period });
                return Poll::Ready(Event::PingDue);
            }
        }
        if let Some(d) = self.pong_deadline.as_mut() {
            if !self.paused && d.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::PongOverdue);
            }
        }
        if !self.paused {
            // Each batch takes a unit of tokio's cooperative budget: a
            // flood of messages already read (which cost no read call, and
            // so no budget of their own) still lets the runtime's other
            // tasks and timers run every few thousand messages.
            let Poll::Ready(coop) = tokio::task::coop::poll_proceed(cx) else {
                return Poll::Pending;
            };
            // Messages are handed to the callbacks right here, a
            // batch at a time, without a round through the loop.
            let mut got_frames = false;
            let mut result = Poll::Pending;
            for _ in 0..RECV_BATCH {
                // Short messages already read are taken directly
                // (no stream result to move around); everything
                // else goes through the stream.
                let msg = match self.ws.take_buffered() {
                    Some(msg) => msg,
                    // Everything read so far is delivered: the commands
                    // (replies sent from the callbacks among them) and
                    // writes go first, then the socket is read again. A
                    // reply written before that read is what makes its
                    // answer there to read.
                    None if got_frames => break,
                    None => match self.ws.poll_next_unpin(cx) {
                        Poll::Ready(Some(Ok(msg))) if !matches!(msg, Message::Close(_)) => msg,
                        Poll::Ready(other) => {
                            result = Poll::Ready(Event::Received(other));
                            break;
                        }
                        Poll::Pending => break,
                    },
                };
                if !got_frames {
                    // The loop comes back to the commands after this batch
                    // (it returns `Ready`): sends from the callbacks need
                    // not wake this task.
                    self.conn.shared().inbox.awake();
                    got_frames = true;
                }
                self.received(msg, cb);
                // A callback's pause_recv stops delivery now.
                if self.conn.shared().recv_paused.load(Ordering::Acquire) {
                    self.paused = true;
                    break;
                }
            }
            if got_frames {
                coop.made_progress();
                self.saw_frames();
                self.pong_deadline = None;
                if result.is_pending() {
                    // Budget spent or paused: come back through the
                    // loop (commands, timers, writes) before reading on.
                    return Poll::Ready(Event::Progress);
                }
            }
            return result;
        }
        Poll::Pending
    }

    /// Encodes a queued message; one that can no longer be sent on this
    /// connection (it is closing) stays queued for the next.
    fn queue(&mut self, m: Message) {
        let end = self.encode(&m);
        self.inflight.push_back((m, end));
    }

    /// Encodes a message; the output position at which it will have been
    /// written, or `u64::MAX` when it can no longer be sent on this
    /// connection (it is closing: it stays queued for the next).
    #[inline]
    fn encode(&mut self, m: &Message) -> u64 {
        match self.ws.queue(m) {
            Ok(()) => self.ws.engine().total_output(),
            Err(_) => u64::MAX,
        }
    }

    fn command(&mut self, cmd: Command, cb: &mut Callbacks, pending: &mut VecDeque<Message>) {
        match cmd {
            Command::Send(m) => {
                if self.ws.output_len() < self.write_high() && pending.is_empty() {
                    self.queue(m);
                } else {
                    pending.push_back(m);
                }
            }
            Command::Close(frame) => {
                // Messages sent before the close go out before it.
                while let Some(m) = pending.pop_front() {
                    self.queue(m);
                }
                self.user_close = true;
                self.start_close(frame);
            }
            Command::Reconnect => {
                // Only a request not yet taken counts (a stale command from
                // an earlier attempt's on_close is ignored).
                if Conn::lock(&self.conn.shared().reconnect_request).is_some() {
                    self.start_close(Some(CloseFrame::new(CloseCode::NORMAL, "reconnecting")));
                }
            }
            Command::PauseRecv => self.paused = true,
            Command::ResumeRecv => self.paused = false,
            Command::Wake => {
                // Sent by a send that found the queue full.
                if !self.full_announced {
                    self.full_announced = true;
                    cb.on_buffer_full(self.conn);
                    // Already drained meanwhile (the socket took it all):
                    // say so now, no ack will come to report it.
                    let s = self.conn.shared();
                    if s.inbox.queued().1 <= s.max_send_buffer / 2 {
                        self.full_announced = false;
                        s.buffer_full.store(false, Ordering::Release);
                        s.waiters.notify_waiters();
                        cb.on_buffer_drain(self.conn);
                    }
                }
            }
        }
    }

    fn start_close(&mut self, frame: Option<CloseFrame>) {
        self.local_close = true;
        self.conn.set_state(ConnState::Closing);
        let _ = self.ws.queue(&Message::Close(frame));
    }

    /// Notes that frames arrived (for `Stats::since_last_frame`).
    fn saw_frames(&self) {
        let s = self.conn.shared();
        s.last_frame_ms.store(
            super::conn::epoch().elapsed().as_millis().max(1) as u64,
            Ordering::Release,
        );
    }

    fn received(&mut self, msg: Message, cb: &mut Callbacks) {
        let s = self.conn.shared();
        match msg {
            Message::Text(_) | Message::Binary(_) => {
                add(&s.messages_in, 1);
                add(&s.bytes_in, msg.len() as u64);
                cb.on_message(self.conn, msg);
            }
            Message::Ping(p) => cb.on_ping(self.conn, p),
            Message::Pong(p) => {
                let sent = std::mem::take(&mut self.ping_sent);
                if sent > 0 {
                    let rtt = now_us().saturating_sub(sent).max(1);
                    s.rtt_us.store(rtt, Ordering::Release);
                    let stats = self.conn.stats();
                    tracing::debug!(
                        conn = s.id,
                        rtt_us = rtt,
                        messages_in = stats.messages_in,
                        messages_out = stats.messages_out,
                        bytes_in = stats.bytes_in,
                        bytes_out = stats.bytes_out,
                        queue_len = stats.queue_len,
                        reconnects = stats.reconnects,
                        "pong: connection health"
                    );
                }
                cb.on_pong(self.conn, p);
            }
            Message::Close(frame) => {
                *Conn::lock(&s.close_frame) = frame.map(Box::new);
                self.conn.set_state(ConnState::Closing);
            }
        }
    }

    /// Retires messages whose bytes have all been written: the counters
    /// and the queue's size are updated once per batch.
    fn ack_written(&mut self, cb: &mut Callbacks) {
        let written = self.ws.written_total();
        let (mut n, mut bytes, mut data_n, mut data_bytes) = (0usize, 0usize, 0u64, 0u64);
        while let Some((_, end)) = self.inflight.front() {
            if *end > written {
                break;
            }
            if let Some((m, _)) = self.inflight.pop_front() {
                let len = m.len();
                if !m.is_control() {
                    data_n += 1;
                    data_bytes += len as u64;
                }
                n += 1;
                bytes += len;
            }
        }
        if n == 0 {
            return;
        }
        let s = self.conn.shared();
        add(&s.messages_out, data_n);
        add(&s.bytes_out, data_bytes);
        let left = s.inbox.release(n, bytes);
        // The flag is cleared only here, after `on_buffer_full` ran (a send
        // that found the queue full sent a Wake for it).
        if self.full_announced && left <= s.max_send_buffer / 2 {
            self.full_announced = false;
            s.buffer_full.store(false, Ordering::Release);
            // `Conn::send_wait` callers try again.
            s.waiters.notify_waiters();
            cb.on_buffer_drain(self.conn);
        }
    }

    /// How the session ended; after a read error, first tries to get a
    /// queued close frame out before the socket is dropped.
    async fn finish(&mut self, result: Result<End, Error>) -> End {
        let failed = match result {
            Ok(end) => return end,
            Err(e) => e,
        };
        let flush = std::future::poll_fn(|cx| self.ws.poll_write_buffered(cx));
        let _ = tokio::time::timeout(Duration::from_secs(1), flush).await;
        *Conn::lock(&self.conn.shared().close_code) = Some(self.ws.close_code());
        End {
            finish: self.user_close,
            ..End::failed(failed)
        }
    }

    /// Ends the session: notes how long it was open, and puts the messages
    /// not fully written back in front of the queue (in front of those
    /// never encoded, which are in `pending` already).
    fn close(mut self, mut end: End, pending: &mut VecDeque<Message>) -> End {
        end.opened_for = Some(Duration::from_micros(now_us().saturating_sub(self.opened)));
        for (m, _) in self.inflight.drain(..).rev() {
            pending.push_front(m);
        }
        end
    }
}
