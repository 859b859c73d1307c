//! [`WebSocket`]: an open connection as a futures [`Stream`] of messages and
//! [`Sink`] of messages, over any async byte stream.
//!
//! Owns the bytes between the transport and the [`Engine`]: the read buffer
//! (taken when bytes arrive and given back when drained, grown to fit what
//! arrives, a large frame read in place into one buffer of its size, handed
//! out as `Bytes` slices without a copy), writing the engine's output, and
//! the close handshake's waiting
//! (the timeout for the peer's close frame and for the server to end TCP).
//! Protocol rules are the engine's; connecting is [`crate::connect`](mod@crate::connect)'s.
//!
//! Split a socket into read and write halves usable from different tasks
//! with [`futures_util::StreamExt::split`].

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::BytesMut;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::deadline::Deadline;
use crate::error::{Error, Phase};
use crate::message::Message;
use crate::proto::{CloseCode, CloseFrame, Engine, FrameHeader, Role, State};

/// The smallest read buffer; it grows when reads fill it.
const MIN_READ: usize = 4 << 10;
/// The first read of a connection that holds no read buffer (it has
/// received nothing yet, or gave its buffer back when drained): on the
/// stack, large enough for most single messages to arrive in one read.
const PROBE: usize = 8 << 10;
/// The default [`SocketConfig::write_buffer_size`] (the socket's write
/// batch, and the event client's).
const DEFAULT_WRITE_BUFFER: usize = 512 << 10;
/// The largest read size hint (frames larger than this still fit: the
/// buffer is sized to the frame, within `max_frame_size`).
const MAX_READ: usize = 256 << 10;
/// Frames at least this large are read into a buffer of their own, to
/// their end and no further: sized once (from the frame's header, or from
/// the previous large frame before the header arrives), so that no part of
/// them is copied from one buffer into a larger one, and the next frame
/// does not start in this one's tail (to be moved out of it).
const LARGE_FRAME: usize = 128 << 10;
/// The header of an unmasked frame of 64 KiB or more (2 bytes and a 64-bit
/// length; a server's frames are never masked).
const LARGE_HEADER: usize = 10;

/// Socket-level settings.
#[derive(Debug, Clone)]
pub struct SocketConfig {
    /// How long to wait for the peer's close frame after ours, and for the
    /// server to end the TCP connection after the close handshake (default
    /// 5 s).
    pub close_timeout: Duration,
    /// Bytes of queued output above which `poll_ready` writes before
    /// accepting more (default 512 KiB; the buffer is given back once
    /// drained). The event client ([`crate::Client`], through
    /// [`crate::ConnectOptions::socket_config`]) encodes its queued
    /// messages up to the same mark, so it also bounds what each of its
    /// connections holds encoded but unwritten (at most this plus one
    /// message of output; while the peer does not read, the buffer holding
    /// it may have grown to about twice that). Fewer, larger writes cost less
    /// CPU per byte: on this project's 2-core benchmark VM (Linux
    /// 6.18.44-fc-v1300), A/B with the same library against 256 KiB
    /// batches, 8 interleaved pairs each, 1 KiB messages went 1.165× as
    /// fast (284 against 333 ns of CPU each) and 64 KiB messages 1.22×
    /// (8 of 8); 1 MiB batches sent 64 KiB messages no faster. 256 KiB
    /// had itself been 1.24× and 1.30× as fast as 64 KiB; on an earlier
    /// build of the same VM (v657) 64 KiB batches had measured faster: set
    /// it lower for a link where that holds, or to bound the memory of
    /// many connections that all send fast.
    pub write_buffer_size: usize,
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            close_timeout: Duration::from_secs(5),
            write_buffer_size: DEFAULT_WRITE_BUFFER,
        }
    }
}

/// An open WebSocket connection over the byte stream `S`.
///
/// Read messages with [`futures_util::StreamExt::next`] (or
/// [`WebSocket::recv`]); send with [`futures_util::SinkExt::send`] (or
/// [`WebSocket::send`]). Pings are answered automatically and also yielded.
/// After a close frame is received the stream yields it as
/// [`Message::Close`] and then ends.
#[derive(Debug)]
pub struct WebSocket<S> {
    io: S,
    engine: Engine,
    config: SocketConfig,
    read_buf: BytesMut,
    /// The read size hint, as a power of two: it doubles while reads fill
    /// the buffer, up to [`MAX_READ`] (a `u8`, so that the socket keeps
    /// its size).
    read_hint_log2: u8,
    /// The size (header included) of the last large frame, the guess for
    /// the next while no header is read; 0 after a smaller message.
    large_frame: u32,
    /// The close timer (waiting for the peer's close frame, or for EOF).
    close_timer: Option<Box<Deadline>>,
    /// The stream has ended (`None` was or will be returned).
    done: bool,
    /// The transport reached EOF.
    eof: bool,
    /// See [`WebSocket::set_keep_read_buffer`].
    keep_read_buffer: bool,
    /// Sets the transport's read low-water mark, where it has one (see
    /// [`WebSocket::set_read_low_water`]).
    low_water: Option<fn(&mut S, usize)>,
}

impl<S> WebSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Wraps a stream on which the opening handshake is done. `leftover`
    /// holds bytes read past the handshake (they are the first frames).
    pub fn from_parts(io: S, engine: Engine, config: SocketConfig, leftover: BytesMut) -> Self {
        WebSocket {
            io,
            engine,
            config,
            // No buffer until data arrives (see `poll_fill`); an empty
            // leftover would only pin the handshake's buffer.
            read_buf: if leftover.is_empty() {
                BytesMut::new()
            } else {
                leftover
            },
            read_hint_log2: MIN_READ.trailing_zeros() as u8,
            large_frame: 0,
            close_timer: None,
            done: false,
            eof: false,
            keep_read_buffer: false,
            low_water: None,
        }
    }

    /// Gives the socket a way to set its transport's read low-water mark:
    /// the number of bytes that must be buffered before the transport
    /// reports itself readable (`SO_RCVLOWAT` on Linux TCP; 1 is the
    /// default). While the rest of a large frame (128 KiB or more) is on its
    /// way, the socket asks for that rest, so that the kernel wakes it once
    /// for the frame instead of once per segment; it sets 1 again when the
    /// frame is in, and before waiting for the end of the stream after a
    /// close. [`crate::connect()`] sets this for plain TCP.
    ///
    /// The trade-off: invalid UTF-8 inside a large text frame is found
    /// when the bytes up to the mark are in, not as each segment arrives
    /// (the connection still fails with 1007 before the message is
    /// delivered).
    pub fn set_read_low_water(&mut self, set: fn(&mut S, usize)) {
        self.low_water = Some(set);
    }

    /// Keeps the read buffer when it is drained (default `false`). By
    /// default a connection between messages holds no read buffer, and a
    /// message that arrives after a wait is copied once from an 8 KiB probe
    /// on the stack into a new buffer (~1k instructions). `true` saves that
    /// for request/response traffic where every microsecond counts, at the
    /// cost of a buffer (4 to 256 KiB) kept by every connection that has
    /// received data. Buffers of large frames are given back either way.
    pub fn set_keep_read_buffer(&mut self, keep: bool) {
        self.keep_read_buffer = keep;
    }

    /// Whether the read buffer is kept between messages
    /// ([`WebSocket::set_keep_read_buffer`]).
    #[must_use]
    pub fn keeps_read_buffer(&self) -> bool {
        self.keep_read_buffer
    }

    /// The socket-level settings it runs with (close timeout, write
    /// batch).
    #[must_use]
    pub fn config(&self) -> &SocketConfig {
        &self.config
    }

    /// The protocol engine (state, close frames).
    #[must_use]
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The underlying stream.
    #[must_use]
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The underlying stream, mutably (writing to it directly corrupts the
    /// WebSocket stream).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// The close frame the peer sent, once it arrived.
    #[must_use]
    pub fn peer_close(&self) -> Option<&CloseFrame> {
        self.engine.close_received().and_then(Option::as_ref)
    }

    /// The close code the connection ended with: the peer's, 1005 for a
    /// close frame without one, 1006 if it ended without a close frame.
    #[must_use]
    pub fn close_code(&self) -> CloseCode {
        self.engine.close_code()
    }

    /// A complete short data message already in the read buffer, taken
    /// without I/O and without the stream's `Poll<Option<Result<..>>>`
    /// wrapping (the event client's receive loop; see
    /// [`Engine::receive`]'s fast path). `None` when there is none or when
    /// the next frame needs the general path: then poll the stream, which
    /// applies every rule.
    #[inline]
    pub(crate) fn take_buffered(&mut self) -> Option<Message> {
        if self.done {
            return None;
        }
        let msg = self.engine.receive_short(&mut self.read_buf)?;
        // A short frame: the next is not guessed to be large.
        self.large_frame = 0;
        Some(msg)
    }

    /// Sends a message and flushes it.
    ///
    /// # Errors
    /// [`Error::Send`] after close; transport errors.
    pub async fn send(&mut self, msg: impl Into<Message>) -> Result<(), Error> {
        futures_util::SinkExt::send(self, msg.into()).await
    }

    /// The next message, `None` once the connection is closed.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        futures_util::StreamExt::next(self).await
    }

    /// Runs the close handshake: sends a close frame with `code` and
    /// `reason` (unless one was sent), then reads until the peer's close
    /// frame and the end of the connection, within the close timeout.
    /// Messages that arrive meanwhile are discarded.
    ///
    /// # Errors
    /// An invalid code or reason ([`Error::Send`]), transport errors, or a
    /// [`Error::Timeout`] if the peer does not answer.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if self.engine.state() == State::Open {
            let frame = CloseFrame::new(code, reason);
            self.engine.close(Some(&frame))?;
        }
        std::future::poll_fn(|cx| self.poll_write_out(cx)).await?;
        while let Some(r) = self.recv().await {
            r?;
        }
        Ok(())
    }

    /// Encodes a message into the write buffer without writing it; a
    /// driver that polls several things at once pairs it with
    /// [`WebSocket::poll_write_buffered`].
    ///
    /// # Errors
    /// [`Error::Send`] when the protocol forbids the send (after close...).
    pub fn queue(&mut self, msg: &Message) -> Result<(), Error> {
        if self.done {
            return Err(Error::Closed);
        }
        self.engine.send(msg)?;
        Ok(())
    }

    /// Bytes encoded and waiting to be written.
    #[must_use]
    pub fn output_len(&self) -> usize {
        self.engine.output_len()
    }

    /// Bytes written to the transport so far (all frames, control frames
    /// included), comparable with [`Engine::total_output`].
    #[must_use]
    pub fn written_total(&self) -> u64 {
        self.engine.total_output() - self.engine.output_len() as u64
    }

    /// Writes buffered bytes until none are left (`Ready`) or the
    /// transport is full (`Pending`), then flushes the transport.
    ///
    /// # Errors
    /// Transport errors.
    pub fn poll_write_buffered(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ready!(self.poll_write_out(cx))?;
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }

    /// Writes as much of the engine's output as the transport takes.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        while self.engine.has_output() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, self.engine.output()))?;
            if n == 0 {
                return Poll::Ready(Err(Error::Io(std::io::ErrorKind::WriteZero.into())));
            }
            self.engine.consume_output(n);
        }
        Poll::Ready(Ok(()))
    }

    fn start_close_timer(&mut self) {
        if self.close_timer.is_none() {
            self.close_timer = Some(Box::new(Deadline::after(self.config.close_timeout)));
        }
    }

    fn close_timer_fired(&mut self, cx: &mut Context<'_>) -> bool {
        self.close_timer
            .as_mut()
            .is_some_and(|t| t.poll_elapsed(cx).is_ready())
    }

    /// After the close handshake: wait (bounded) for the server to end TCP,
    /// then shut our side down.
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        if self.engine.role() == Role::Client && !self.eof {
            self.start_close_timer();
            if let Some(set) = self.low_water {
                // A connection that failed inside a large frame may have
                // left the mark raised: the end of the stream is what is
                // waited for now, and any byte reaches it.
                set(&mut self.io, 1);
            }
            loop {
                self.read_buf.clear();
                self.read_buf.reserve(MIN_READ);
                match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read_buf)
                {
                    Poll::Ready(Ok(0) | Err(_)) => {
                        self.eof = true;
                        break;
                    }
                    Poll::Ready(Ok(_)) => {}
                    Poll::Pending => {
                        if self.close_timer_fired(cx) {
                            break;
                        }
                        return Poll::Pending;
                    }
                }
            }
        }
        // Errors while shutting down a finished connection do not matter.
        let _ = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
        self.done = true;
        self.read_buf = BytesMut::new();
        Poll::Ready(None)
    }

    /// Reads more bytes into the read buffer.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, std::io::Error>> {
        let len = self.read_buf.len();
        // A large frame (or, between large frames, the next one's guessed
        // size) gets the room it needs in one reservation and a read that
        // stops at its end; anything else reads up to the hint.
        let (large, guessed) = match self.engine.incoming_len() {
            Some(frame) if frame >= LARGE_FRAME => {
                let whole = frame.saturating_add(LARGE_HEADER);
                self.large_frame = u32::try_from(whole).unwrap_or(0);
                (Some(frame.saturating_sub(len).max(1)), false)
            }
            Some(_) => {
                self.large_frame = 0;
                (None, false)
            }
            None if self.large_frame > 0 => (
                Some((self.large_frame as usize).saturating_sub(len).max(1)),
                true,
            ),
            None => (None, false),
        };
        // A drained buffer is given back (large-frame buffers always, others
        // unless kept): before reading when it is still shared with messages
        // the user holds (no new one is taken before bytes arrive), and when
        // the read finds nothing.
        if let Some(set) = self.low_water {
            // The rest of a large frame whose header is in: nothing can be
            // done with less (a control frame cannot come before it ends).
            // Anything else, a guessed size included, wakes on any byte.
            set(
                &mut self.io,
                match large {
                    Some(rest) if !guessed => rest,
                    _ => 1,
                },
            );
        }
        let give_back = large.is_some() || !self.keep_read_buffer;
        if len == 0 && give_back && !self.read_buf.try_reclaim(large.unwrap_or(MIN_READ)) {
            self.read_buf = BytesMut::new();
        }
        let read_hint = 1usize << self.read_hint_log2;
        if self.read_buf.capacity() == 0 {
            // No buffer: wait for data with a stack buffer, so that a
            // connection waiting for its next message holds no read buffer
            // (idle connections cost a few hundred bytes, not 4 KiB or the
            // size of their last large message).
            let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); PROBE];
            let mut rb = tokio::io::ReadBuf::uninit(&mut probe);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n > 0 {
                // A guess holds only if this frame is large too: its header
                // has a 64-bit length (127), never a short frame's.
                let room = match large {
                    Some(rest)
                        if !guessed || rb.filled().get(1).is_some_and(|b| b & 0x7F == 127) =>
                    {
                        rest.max(n)
                    }
                    // A short read that is one whole frame (a reply, or
                    // the next message of a slow stream) gets a buffer of
                    // its size: a small allocation that the engine hands
                    // out whole as the message's payload (no second
                    // allocation to share it), and nothing is kept.
                    _ if n < PROBE && whole_frame(rb.filled()) => n,
                    _ => n + self.engine.bytes_wanted(n).max(read_hint).min(MAX_READ),
                };
                // The buffer is empty with no capacity: a new one of this
                // size (`reserve` would go through its growth path).
                self.read_buf = BytesMut::with_capacity(room);
                self.read_buf.extend_from_slice(rb.filled());
            }
            return Poll::Ready(Ok(n));
        }
        let limit = match large {
            Some(rest) => {
                if self.read_buf.capacity() - len < rest {
                    self.read_buf.reserve(rest);
                }
                rest
            }
            None => {
                let want = self.engine.bytes_wanted(len).max(read_hint);
                if self.read_buf.capacity() - len < want.clamp(MIN_READ, MAX_READ) {
                    self.read_buf.reserve(want);
                }
                usize::MAX
            }
        };
        let spare = self.read_buf.capacity() - self.read_buf.len();
        let mut limited = tokio::io::AsyncReadExt::take(&mut self.io, limit as u64);
        let read = tokio_util::io::poll_read_buf(Pin::new(&mut limited), cx, &mut self.read_buf);
        let n = match read {
            Poll::Ready(r) => r?,
            Poll::Pending => {
                if self.read_buf.is_empty() && give_back {
                    // Nothing to read for now: wait holding no buffer (the
                    // probe takes one when bytes arrive).
                    self.read_buf = BytesMut::new();
                }
                return Poll::Pending;
            }
        };
        if large.is_none() && n == spare && read_hint < MAX_READ {
            self.read_hint_log2 += 1;
        }
        Poll::Ready(Ok(n))
    }
}

/// Whether `bytes` is exactly one unmasked frame of under 64 KiB (the
/// sizes a probe read holds): a sizing hint, so other frames just answer
/// no.
fn whole_frame(bytes: &[u8]) -> bool {
    FrameHeader::short_lengths(bytes).is_some_and(|(header, len)| header + len == bytes.len())
}

impl<S> Stream for WebSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            // Pongs and close replies go out as soon as possible.
            if this.engine.has_output() {
                match this.poll_write_out(cx) {
                    Poll::Ready(Err(e)) => {
                        if this.engine.state() == State::Closed {
                            this.done = true;
                            return Poll::Ready(None);
                        }
                        this.done = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                    Poll::Ready(Ok(())) | Poll::Pending => {}
                }
            }
            match this.engine.state() {
                State::Closed => {
                    if this.engine.has_output() {
                        // Still writing the close frame.
                        return Poll::Pending;
                    }
                    return this.poll_finish(cx);
                }
                State::CloseSent => {
                    this.start_close_timer();
                    if this.close_timer_fired(cx) {
                        this.done = true;
                        return Poll::Ready(Some(Err(Error::Timeout {
                            phase: Phase::Close,
                            after: this.config.close_timeout,
                        })));
                    }
                }
                State::Open => {}
            }
            match this.engine.receive(&mut this.read_buf) {
                Ok(Some(msg)) => {
                    if this.large_frame != 0 && msg.len() < LARGE_FRAME {
                        // After a smaller message, the next is not guessed
                        // to be large.
                        this.large_frame = 0;
                    }
                    return Poll::Ready(Some(Ok(msg)));
                }
                Ok(None) => {}
                Err(e) => {
                    // The engine queued a close frame; try to send it now,
                    // the next poll finishes the close.
                    let _ = this.poll_write_out(cx);
                    return Poll::Ready(Some(Err(Error::Protocol(e))));
                }
            }
            match ready!(this.poll_fill(cx)) {
                Ok(0) => {
                    this.eof = true;
                    this.done = true;
                    return Poll::Ready(Some(Err(Error::AbnormalClosure)));
                }
                Ok(_) => {}
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(Error::Io(e))));
                }
            }
        }
    }
}

impl<S> Sink<Message> for WebSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if this.engine.output_len() >= this.config.write_buffer_size {
            ready!(this.poll_write_out(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        let this = self.get_mut();
        if this.done {
            return Err(Error::Closed);
        }
        this.engine.send(&item)?;
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        ready!(Pin::new(&mut this.io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }

    /// Sends a normal close frame (unless one was sent) and flushes. The
    /// peer's reply arrives on the stream side, which then ends.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if this.engine.state() == State::Open {
            this.engine
                .close(Some(&CloseFrame::new(CloseCode::NORMAL, "")))?;
        }
        ready!(this.poll_write_out(cx))?;
        ready!(Pin::new(&mut this.io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use futures_util::StreamExt;
    use tokio::io::{AsyncWriteExt, DuplexStream, ReadBuf};

    use super::*;
    use crate::proto::{Config, FrameHeader, OpCode};

    /// A server frame (unmasked), its header from the engine's encoder:
    /// `first` is the first byte (FIN and opcode).
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let header = FrameHeader {
            fin: first & 0x80 != 0,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode: OpCode::from_u8(first & 0x0F).expect("a valid opcode"),
            mask: None,
            payload_len: payload.len() as u64,
        };
        let mut h = [0u8; crate::proto::frame::MAX_HEADER_LEN];
        let n = header.encode(&mut h);
        let mut f = h[..n].to_vec();
        f.extend_from_slice(payload);
        f
    }

    fn payload(seed: usize, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i.wrapping_mul(31) ^ seed) as u8)
            .collect()
    }

    /// The transport, noting where each read put its bytes.
    struct Recorder {
        io: DuplexStream,
        reads: Arc<Mutex<Vec<(usize, usize)>>>,
    }

    impl AsyncRead for Recorder {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let before = buf.filled().len();
            ready!(Pin::new(&mut self.io).poll_read(cx, buf))?;
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                let at = new.as_ptr() as usize;
                self.reads.lock().unwrap().push((at, new.len()));
            }
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.io).poll_write(cx, buf)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    /// A client over a pipe of `pipe` bytes, and the server's end, which
    /// writes `frames` in order.
    fn client(
        pipe: usize,
        frames: Vec<Vec<u8>>,
    ) -> (WebSocket<Recorder>, Arc<Mutex<Vec<(usize, usize)>>>) {
        let (ours, mut theirs) = tokio::io::duplex(pipe);
        tokio::spawn(async move {
            for f in frames {
                if theirs.write_all(&f).await.is_err() {
                    return;
                }
            }
            // Keep the pipe open until the client is done.
            let mut sink = [0u8; 64];
            let _ = tokio::io::AsyncReadExt::read(&mut theirs, &mut sink).await;
        });
        let reads = Arc::new(Mutex::new(Vec::new()));
        let io = Recorder {
            io: ours,
            reads: reads.clone(),
        };
        let engine = Engine::new(Role::Client, Config::default());
        (
            WebSocket::from_parts(io, engine, SocketConfig::default(), BytesMut::new()),
            reads,
        )
    }

    async fn next_binary(ws: &mut WebSocket<Recorder>) -> Bytes {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => b,
            other => panic!("expected a binary message, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn messages_large_and_small_arrive_whole_and_in_order() {
        let sizes = [
            1 << 20,
            3,
            200 << 10,
            130 << 10,
            (1 << 20) + 7,
            10,
            64 << 10,
            (128 << 10) - 1,
            1 << 20,
        ];
        let mut frames: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| frame(0x82, &payload(i, n)))
            .collect();
        // A large message in two large fragments.
        frames.push(frame(0x02, &payload(100, 300 << 10)));
        frames.push(frame(0x80, &payload(101, 300 << 10)));
        frames.push(frame(0x82, &payload(102, 5)));
        for pipe in [7 << 10, 64 << 10, 2 << 20] {
            let (mut ws, _) = client(pipe, frames.clone());
            for (i, &n) in sizes.iter().enumerate() {
                let got = next_binary(&mut ws).await;
                assert!(
                    got[..] == payload(i, n)[..],
                    "message {i} ({n} bytes), pipe {pipe}"
                );
            }
            let mut joined = payload(100, 300 << 10);
            joined.extend_from_slice(&payload(101, 300 << 10));
            assert!(next_binary(&mut ws).await[..] == joined[..]);
            assert_eq!(&next_binary(&mut ws).await[..], &payload(102, 5)[..]);
        }
    }

    #[tokio::test]
    async fn large_messages_are_read_in_place_not_copied() {
        const N: usize = 1 << 20;
        let frames = (0..5).map(|i| frame(0x82, &payload(i, N))).collect();
        let (mut ws, reads) = client(64 << 10, frames);
        // The first message is read before its size is known.
        assert_eq!(next_binary(&mut ws).await.len(), N);
        let mut held = Vec::new();
        for i in 1..5 {
            reads.lock().unwrap().clear();
            let got = next_binary(&mut ws).await;
            assert!(got[..] == payload(i, N)[..], "message {i}");
            // Every payload byte was put where the message holds it by a
            // read: none was moved there from elsewhere.
            let (start, end) = (got.as_ptr() as usize, got.as_ptr() as usize + N);
            let covered: usize = reads
                .lock()
                .unwrap()
                .iter()
                .map(|&(at, len)| (at + len).min(end).saturating_sub(at.max(start)))
                .sum();
            // Only the probe read's few bytes (read while the connection
            // held no buffer) may have been copied; none once the buffer of
            // the message before, given back, is reused.
            let copied = N - covered;
            assert!(copied <= PROBE, "message {i}: {copied} bytes copied");
            if i == 2 || i == 3 {
                assert_eq!(copied, 0, "message {i}");
            }
            // Messages 3 and 4 are kept by the user: the next must not
            // overwrite them.
            if i >= 3 {
                held.push((i, got));
            }
        }
        for (i, got) in held {
            assert!(got[..] == payload(i, N)[..], "held message {i}");
        }
    }

    #[tokio::test]
    async fn a_waiting_connection_holds_no_read_buffer() {
        const N: usize = 1 << 20;
        let mut frames = vec![frame(0x82, &payload(0, N))];
        frames.extend((1..50).map(|i| frame(0x82, &payload(i, 20))));
        let (mut ws, _) = client(64 << 10, frames);
        // Held by the user: its buffer cannot be reused.
        let big = next_binary(&mut ws).await;
        let mut small = Vec::new();
        for i in 1..50 {
            let m = next_binary(&mut ws).await;
            assert!(m[..] == payload(i, 20)[..]);
            small.push(m);
        }
        // Small messages after the large one got a buffer of their own size,
        // not one guessed from the large message (which they would pin).
        assert!(
            ws.read_buf.capacity() < 300 << 10,
            "{} bytes",
            ws.read_buf.capacity()
        );
        // Drained, nothing more comes: the buffer is given back.
        let waited = tokio::time::timeout(Duration::from_millis(50), ws.next()).await;
        assert!(waited.is_err(), "no message was sent");
        assert_eq!(ws.read_buf.capacity(), 0);
        drop((big, small));

        // A large message with nothing behind it: the connection waits for
        // the next one holding no buffer.
        let (mut ws, _) = client(64 << 10, vec![frame(0x82, &payload(7, N))]);
        let big = next_binary(&mut ws).await;
        let waited = tokio::time::timeout(Duration::from_millis(50), ws.next()).await;
        assert!(waited.is_err(), "no message was sent");
        assert_eq!(ws.read_buf.capacity(), 0);
        assert!(big[..] == payload(7, N)[..]);

        // Also when the user let go of the message (its buffer could be
        // reused): nothing is kept while nothing comes.
        let (mut ws, _) = client(64 << 10, vec![frame(0x82, &payload(8, N))]);
        assert_eq!(next_binary(&mut ws).await.len(), N);
        let waited = tokio::time::timeout(Duration::from_millis(50), ws.next()).await;
        assert!(waited.is_err(), "no message was sent");
        assert_eq!(ws.read_buf.capacity(), 0);
    }

    #[tokio::test]
    async fn keep_read_buffer_keeps_it_between_messages() {
        for keep in [false, true] {
            let frames = (0..20).map(|i| frame(0x82, &payload(i, 100))).collect();
            let (mut ws, _) = client(64 << 10, frames);
            ws.set_keep_read_buffer(keep);
            for i in 0..20 {
                assert!(next_binary(&mut ws).await[..] == payload(i, 100)[..]);
            }
            let waited = tokio::time::timeout(Duration::from_millis(50), ws.next()).await;
            assert!(waited.is_err(), "no message was sent");
            assert_eq!(
                ws.read_buf.capacity() > 0,
                keep,
                "keep_read_buffer = {keep}"
            );
        }
    }
}
