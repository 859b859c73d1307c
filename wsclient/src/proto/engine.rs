//! The sans-I/O connection engine: bytes in, messages out; messages in,
//! bytes out.
//!
//! Owns every rule of RFC 6455 that is not about the opening handshake:
//! frame validation, masking, fragmentation and reassembly, UTF-8 checks of
//! text, automatic pongs, the close handshake and the size limits. It has no
//! socket, no async and no clock: a driver feeds it the bytes it reads,
//! writes out the bytes it produces, and owns all timers (the engine only
//! reports its [`State`]).

use bytes::{Buf, Bytes, BytesMut};

use super::close::{CloseCode, CloseFrame};
use super::deflate::{DeflateParams, PerMessageDeflate};
use super::error::{ProtocolError, SendError};
use super::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use super::mask::{apply_mask, extend_masked};
use super::utf8::Utf8Validator;
use crate::message::{Message, Utf8Bytes};

/// Which end of the connection the engine plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Masks every frame it sends; refuses masked frames.
    Client,
    /// Sends unmasked frames; refuses unmasked ones.
    Server,
}

/// Limits and behaviour of an engine. The defaults are safe for a client
/// talking to a server it does not control.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The largest frame payload accepted (default 16 MiB). Larger frames
    /// fail the connection with 1009.
    pub max_frame_size: usize,
    /// The largest message accepted, all fragments together, after
    /// decompression (default 64 MiB). Larger messages fail with 1009.
    pub max_message_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
        }
    }
}

impl Config {
    /// Sets [`Config::max_frame_size`].
    #[must_use]
    pub fn max_frame_size(mut self, n: usize) -> Self {
        self.max_frame_size = n;
        self
    }

    /// Sets [`Config::max_message_size`].
    #[must_use]
    pub fn max_message_size(mut self, n: usize) -> Self {
        self.max_message_size = n;
        self
    }
}

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Data flows both ways.
    Open,
    /// We sent a close frame and wait for the peer's (the driver should
    /// time this wait out).
    CloseSent,
    /// Close frames went both ways, or the connection failed: nothing more
    /// is sent or received. The driver flushes the output and closes the
    /// transport.
    Closed,
}

/// A data message being reassembled from fragments.
#[derive(Debug)]
struct Fragmented {
    opcode: OpCode,
    /// The payload so far; inflated already when `compressed`.
    buf: BytesMut,
    /// The message is permessage-deflate compressed (RSV1 on its first
    /// frame).
    compressed: bool,
}

/// The frame whose header has been read and whose payload is still coming.
#[derive(Debug, Clone, Copy)]
struct Incoming {
    header: FrameHeader,
    /// Payload length as `usize` (checked against the limits).
    len: usize,
    /// How many payload bytes were already checked as UTF-8 while waiting.
    checked: usize,
}

/// The RFC 6455 state machine for one connection.
#[derive(Debug)]
pub struct Engine {
    role: Role,
    config: Config,
    state: State,
    incoming: Option<Incoming>,
    /// Boxed: most messages come whole, in one frame.
    fragmented: Option<Box<Fragmented>>,
    /// UTF-8 state of the text message being received.
    utf8: Utf8Validator,
    /// Opcode of the message being sent in fragments, if any.
    sending_fragmented: Option<OpCode>,
    out: BytesMut,
    /// The rest of a large masked payload, masked into `out` a chunk at a
    /// time as `out` drains (see [`MASK_CHUNK`]); while it is set, `out`
    /// is never empty.
    unmasked: Option<Box<Unmasked>>,
    /// Bytes ever produced as output (`out` and `unmasked` included).
    produced: u64,
    /// The close handshake and failure, once either begins (boxed: an
    /// open connection carries 8 bytes for it, not 112).
    closing: Option<Box<Closing>>,
    /// permessage-deflate, when negotiated (boxed: a few hundred bytes
    /// that connections without it should not carry).
    deflate: Option<Box<PerMessageDeflate>>,
    /// The fragmented message being sent is compressed.
    sending_compressed: bool,
    /// Masking keys drawn from the CSPRNG a batch at a time (one call to
    /// the thread's generator per [`KEY_BATCH`] frames); `next_key` indexes
    /// the next unused one.
    keys: [[u8; 4]; KEY_BATCH],
    next_key: u8,
}

/// What the close handshake and a failure leave behind.
#[derive(Debug, Default)]
struct Closing {
    sent: Option<CloseFrame>,
    received: Option<Option<CloseFrame>>,
    failure: Option<ProtocolError>,
}

/// Payloads larger than this are masked into the output a chunk of this
/// size at a time, each as the previous one has been written, instead of
/// all at once: sending a 64 MiB message holds one 512 KiB masked chunk
/// besides the message, not a second 64 MiB copy. The chunk is small enough
/// that the masked bytes are still in the core's cache when the kernel
/// copies them out (1 MiB chunks sent 1 MiB messages ~25% slower on
/// loopback, 8 of 8 interleaved pairs), and large enough that a 1 MiB
/// message takes two writes: 512 KiB chunks sent it 1.055x as fast as
/// 256 KiB ones, at 12 us less CPU per message (12 interleaved pairs,
/// 11 higher; on this VM's kernel build v1300).
/// 64 and 128 KiB chunks were no faster than 256 KiB ones. A multiple of
/// 4, so every chunk starts at key offset 0.
pub(crate) const MASK_CHUNK: usize = 512 << 10;

/// A payload still to be masked into the output.
#[derive(Debug)]
struct Unmasked {
    rest: Bytes,
    key: [u8; 4],
}

/// Masking keys drawn per call to the CSPRNG.
const KEY_BATCH: usize = 8;

/// Client data frames up to this many payload bytes take the short-frame
/// path ([`Engine::write_short_masked`]): 125, the largest length the
/// header's 7 bits hold.
const SHORT_FRAME: usize = 125;

impl Engine {
    /// An engine in the [`State::Open`] state (the handshake is done).
    #[must_use]
    pub fn new(role: Role, config: Config) -> Self {
        Engine {
            role,
            config,
            state: State::Open,
            incoming: None,
            fragmented: None,
            utf8: Utf8Validator::new(),
            sending_fragmented: None,
            out: BytesMut::new(),
            produced: 0,
            closing: None,
            unmasked: None,
            deflate: None,
            sending_compressed: false,
            keys: [[0; 4]; KEY_BATCH],
            next_key: KEY_BATCH as u8,
        }
    }

    /// Turns on permessage-deflate (RFC 7692) with the negotiated codec:
    /// RSV1 is then accepted on the first frame of data messages, which are
    /// inflated (with `max_message_size` applied to the inflated size), and
    /// data messages of at least [`PerMessageDeflate::min_size`] bytes are
    /// sent compressed. Control frames are never compressed.
    #[must_use]
    pub fn with_deflate(mut self, deflate: PerMessageDeflate) -> Self {
        self.deflate = Some(Box::new(deflate));
        self
    }

    /// The permessage-deflate parameters, when the extension is on.
    #[must_use]
    pub fn deflate(&self) -> Option<&DeflateParams> {
        self.deflate.as_deref().map(PerMessageDeflate::params)
    }

    /// The engine's role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// The engine's configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The connection's state.
    #[must_use]
    pub fn state(&self) -> State {
        self.state
    }

    /// The close frame received from the peer: `None` until one arrives,
    /// `Some(None)` for a close frame without a code.
    #[must_use]
    pub fn close_received(&self) -> Option<&Option<CloseFrame>> {
        self.closing.as_ref()?.received.as_ref()
    }

    /// The close frame we sent, if any (for a failure, the one that failed
    /// the connection).
    #[must_use]
    pub fn close_sent(&self) -> Option<&CloseFrame> {
        self.closing.as_ref()?.sent.as_ref()
    }

    /// The protocol error that failed the connection, if one did.
    #[must_use]
    pub fn failure(&self) -> Option<&ProtocolError> {
        self.closing.as_ref()?.failure.as_ref()
    }

    // ----- receiving -------------------------------------------------------

    /// The payload length of the frame being received, once its header has
    /// been read (its payload is then at the front of the read buffer).
    #[must_use]
    pub fn incoming_len(&self) -> Option<usize> {
        self.incoming.map(|inc| inc.len)
    }

    /// How many more bytes the engine needs before it can make progress:
    /// a hint for sizing the next read (at least 1 while open).
    #[must_use]
    pub fn bytes_wanted(&self, buffered: usize) -> usize {
        match self.incoming {
            Some(inc) => inc.len.saturating_sub(buffered).max(1),
            None => 2usize.saturating_sub(buffered).max(1),
        }
    }

    /// Consumes bytes from the front of `buf` and returns the next message,
    /// or `Ok(None)` when `buf` holds no complete message yet (read more and
    /// call again). Received pings are answered (the pong is queued in the
    /// output) and also returned. A close frame is answered and returned as
    /// [`Message::Close`]; after it, the engine is [`State::Closed`].
    ///
    /// Payloads are split off `buf` without a copy: a single-frame message is
    /// a slice of the read buffer.
    ///
    /// # Errors
    /// A [`ProtocolError`]: the engine has queued a close frame with the
    /// error's code and is [`State::Closed`]; flush the output and close the
    /// transport.
    #[inline]
    pub fn receive(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ProtocolError> {
        if let Some(msg) = self.receive_short(buf) {
            return Ok(Some(msg));
        }
        if buf.is_empty() && self.incoming.is_none() {
            // Drained between frames: nothing to do (the driver's next
            // call, before it reads, lands here).
            return Ok(None);
        }
        self.receive_general(buf)
    }

    /// The common case in one step: a complete, unmasked, uncompressed,
    /// unfragmented text or binary frame with a 7- or 16-bit length (under
    /// 64 KiB) at the front of `buf`, received by a client with no message
    /// being reassembled. Anything else, invalid text included, is left to
    /// [`Engine::receive_general`], which applies every rule (and reports
    /// the error).
    #[inline]
    pub(crate) fn receive_short(&mut self, buf: &mut BytesMut) -> Option<Message> {
        let &b0 = buf.first()?;
        // 0x81 / 0x82: FIN, no RSV bit, text / binary; no MASK bit, a 7-bit
        // length or a 16-bit one.
        if (b0 != 0x81 && b0 != 0x82)
            || self.role != Role::Client
            || self.state == State::Closed
            || self.incoming.is_some()
            || self.fragmented.is_some()
        {
            return None;
        }
        let (header, len) = FrameHeader::short_lengths(buf)?;
        if buf.len() - header < len
            || len > self.config.max_frame_size
            || len > self.config.max_message_size
        {
            return None;
        }
        if b0 == 0x81 && simdutf8::basic::from_utf8(&buf[header..header + len]).is_err() {
            return None;
        }
        // The header goes with the frame and is skipped on the frozen
        // `Bytes` (a pointer bump), not on the buffer (whose `advance`
        // checks its representation first). A buffer that is this frame and
        // has no room left is taken whole: a buffer of its own becomes the
        // `Bytes` without the shared-ownership allocation a split makes.
        let mut payload = if header + len == buf.capacity() {
            std::mem::take(buf).freeze()
        } else {
            buf.split_to(header + len).freeze()
        };
        payload.advance(header);
        Some(if b0 == 0x81 {
            Message::Text(Utf8Bytes::from_validated(payload))
        } else {
            Message::Binary(payload)
        })
    }

    /// [`Engine::receive`] for every frame [`Engine::receive_short`] does
    /// not take.
    #[inline(never)]
    fn receive_general(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ProtocolError> {
        if self.state == State::Closed {
            // Nothing after a close frame (or a failure) is processed.
            buf.clear();
            return Ok(None);
        }
        match self.receive_inner(buf) {
            Ok(m) => Ok(m),
            Err(e) => {
                self.fail(e.clone());
                buf.clear();
                Err(e)
            }
        }
    }

    fn receive_inner(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ProtocolError> {
        loop {
            let inc = match self.incoming {
                Some(inc) => inc,
                None => {
                    let Some((header, header_len)) = FrameHeader::decode(buf)? else {
                        return Ok(None);
                    };
                    let len = self.check_header(&header)?;
                    buf.advance(header_len);
                    let inc = Incoming {
                        header,
                        len,
                        checked: 0,
                    };
                    self.incoming = Some(inc);
                    inc
                }
            };
            if buf.len() < inc.len {
                self.check_partial_text(buf)?;
                return Ok(None);
            }
            self.incoming = None;
            let mut payload = buf.split_to(inc.len);
            if let Some(key) = inc.header.mask {
                // The first `checked` bytes were unmasked while arriving.
                let done = inc.checked.min(payload.len());
                apply_mask(&mut payload[done..], key, done);
            }
            if let Some(msg) = self.on_frame(inc, payload)? {
                return Ok(Some(msg));
            }
        }
    }

    /// Validates a header against the role, the negotiated extensions, the
    /// fragmentation state and the limits; returns the payload length.
    fn check_header(&self, h: &FrameHeader) -> Result<usize, ProtocolError> {
        if h.rsv2 || h.rsv3 {
            return Err(ProtocolError::ReservedBits);
        }
        // RSV1 marks a compressed message: only with permessage-deflate, only
        // on a message's first frame (never on continuations or control
        // frames).
        if h.rsv1 && (self.deflate.is_none() || !matches!(h.opcode, OpCode::Text | OpCode::Binary))
        {
            return Err(ProtocolError::ReservedBits);
        }
        match (self.role, h.mask.is_some()) {
            (Role::Client, true) => return Err(ProtocolError::MaskedFrameFromServer),
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrameFromClient),
            _ => {}
        }
        let too_large = ProtocolError::FrameTooLarge {
            size: h.payload_len,
            max: self.config.max_frame_size,
        };
        let len = usize::try_from(h.payload_len).map_err(|_| too_large.clone())?;
        if h.opcode.is_control() {
            if !h.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if len > 125 {
                return Err(ProtocolError::ControlFrameTooLarge);
            }
            return Ok(len);
        }
        match (h.opcode, &self.fragmented) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation);
            }
            _ => {}
        }
        if len > self.config.max_frame_size {
            return Err(too_large);
        }
        let so_far = self.fragmented.as_ref().map_or(0, |f| f.buf.len());
        // A compressed message is measured while it inflates.
        if !self.is_compressed(h) && so_far.saturating_add(len) > self.config.max_message_size {
            return Err(ProtocolError::MessageTooLarge {
                max: self.config.max_message_size,
            });
        }
        Ok(len)
    }

    /// True when the frame carries (part of) a compressed message.
    fn is_compressed(&self, h: &FrameHeader) -> bool {
        h.rsv1
            || (h.opcode == OpCode::Continuation
                && self.fragmented.as_ref().is_some_and(|f| f.compressed))
    }

    /// True when the frame being received carries (part of) a text message.
    fn in_text(&self, opcode: OpCode) -> bool {
        match opcode {
            OpCode::Text => true,
            OpCode::Continuation => self
                .fragmented
                .as_ref()
                .is_some_and(|f| f.opcode == OpCode::Text),
            _ => false,
        }
    }

    /// Checks the part of a text frame's payload that has arrived, so
    /// invalid text fails on its first bad byte, not when the frame ends.
    fn check_partial_text(&mut self, buf: &mut BytesMut) -> Result<(), ProtocolError> {
        // Compressed payloads are checked once inflated.
        if self
            .incoming
            .is_some_and(|inc| self.is_compressed(&inc.header))
        {
            return Ok(());
        }
        let Some(inc) = self.incoming.as_mut() else {
            return Ok(());
        };
        if buf.len() <= inc.checked {
            return Ok(());
        }
        let opcode = inc.header.opcode;
        let mask = inc.header.mask;
        let (from, to) = (inc.checked, buf.len());
        if !self.in_text(opcode) {
            return Ok(());
        }
        // Masked payloads (server role) are unmasked as they arrive, so the
        // checked prefix is plain text; the rest is unmasked on completion.
        if let Some(key) = mask {
            apply_mask(&mut buf[from..to], key, from);
        }
        self.utf8
            .feed(&buf[from..to])
            .map_err(|_| ProtocolError::InvalidUtf8)?;
        if let Some(inc) = self.incoming.as_mut() {
            inc.checked = to;
        }
        Ok(())
    }

    fn on_frame(
        &mut self,
        inc: Incoming,
        payload: BytesMut,
    ) -> Result<Option<Message>, ProtocolError> {
        let h = inc.header;
        match h.opcode {
            OpCode::Ping => {
                let payload = payload.freeze();
                if self.state == State::Open {
                    self.write_frame(OpCode::Pong, true, &payload);
                }
                Ok(Some(Message::Ping(payload)))
            }
            OpCode::Pong => Ok(Some(Message::Pong(payload.freeze()))),
            OpCode::Close => {
                let frame = CloseFrame::parse(payload.freeze())?;
                if self.state == State::Open {
                    // Echo the peer's code (RFC 6455 section 5.5.1).
                    let echo = frame.as_ref().map(|f| CloseFrame::new(f.code, ""));
                    self.write_close(echo.as_ref());
                    self.closing().sent = echo;
                }
                self.closing().received = Some(frame.clone());
                self.state = State::Closed;
                Ok(Some(Message::Close(frame)))
            }
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                if self.is_compressed(&h) {
                    return self.on_compressed_frame(h, &payload);
                }
                let text = self.in_text(h.opcode);
                if text {
                    let rest = &payload[inc.checked.min(payload.len())..];
                    self.utf8
                        .feed(rest)
                        .map_err(|_| ProtocolError::InvalidUtf8)?;
                }
                if h.opcode != OpCode::Continuation && h.fin {
                    // The common case: a whole message in one frame, handed
                    // out as a slice of the read buffer.
                    return Ok(Some(self.finish_message(h.opcode, payload)?));
                }
                if h.opcode != OpCode::Continuation {
                    self.fragmented = Some(Box::new(Fragmented {
                        opcode: h.opcode,
                        buf: payload,
                        compressed: false,
                    }));
                    return Ok(None);
                }
                let Some(frag) = self.fragmented.as_mut() else {
                    return Err(ProtocolError::UnexpectedContinuation);
                };
                if frag.buf.is_empty() {
                    frag.buf = payload;
                } else {
                    frag.buf.extend_from_slice(&payload);
                }
                if !h.fin {
                    return Ok(None);
                }
                let Some(frag) = self.fragmented.take() else {
                    return Err(ProtocolError::UnexpectedContinuation);
                };
                Ok(Some(self.finish_message(frag.opcode, frag.buf)?))
            }
        }
    }

    /// A frame of a compressed message: inflated onto the message so far
    /// (the size limit applies to the inflated bytes, checked while
    /// inflating), text checked as it inflates.
    fn on_compressed_frame(
        &mut self,
        h: FrameHeader,
        payload: &[u8],
    ) -> Result<Option<Message>, ProtocolError> {
        // The box of a message in progress is kept for its next frame.
        let (opcode, mut buf, kept) = match self.fragmented.take() {
            Some(mut f) => (f.opcode, std::mem::take(&mut f.buf), Some(f)),
            None => (h.opcode, BytesMut::new(), None),
        };
        let Some(deflate) = self.deflate.as_mut() else {
            return Err(ProtocolError::ReservedBits);
        };
        let from = buf.len();
        deflate.decompress(payload, h.fin, &mut buf, self.config.max_message_size)?;
        if opcode == OpCode::Text {
            self.utf8
                .feed(&buf[from..])
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        if h.fin {
            return Ok(Some(self.finish_message(opcode, buf)?));
        }
        let frag = Fragmented {
            opcode,
            buf,
            compressed: true,
        };
        self.fragmented = Some(match kept {
            Some(mut f) => {
                *f = frag;
                f
            }
            None => Box::new(frag),
        });
        Ok(None)
    }

    fn finish_message(
        &mut self,
        opcode: OpCode,
        payload: BytesMut,
    ) -> Result<Message, ProtocolError> {
        if opcode == OpCode::Text {
            self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Message::Text(Utf8Bytes::from_validated(payload.freeze())))
        } else {
            Ok(Message::Binary(payload.freeze()))
        }
    }

    fn closing(&mut self) -> &mut Closing {
        self.closing.get_or_insert_with(Box::default)
    }

    /// Fails the connection: queue a close frame with the error's code (if
    /// no close was sent yet) and stop.
    fn fail(&mut self, e: ProtocolError) {
        if self.state == State::Open {
            let frame = CloseFrame::new(e.close_code(), "");
            self.write_close(Some(&frame));
            self.closing().sent = Some(frame);
        }
        self.closing().failure = Some(e);
        self.state = State::Closed;
        self.incoming = None;
        self.fragmented = None;
    }

    // ----- sending ---------------------------------------------------------

    /// Queues a message (text, binary, ping, pong or close) for sending.
    ///
    /// # Errors
    /// [`SendError::Closed`] after a close frame was sent; the limits of
    /// control frames and close codes.
    pub fn send(&mut self, msg: &Message) -> Result<(), SendError> {
        match msg {
            Message::Text(t) => self.send_data(OpCode::Text, t.bytes()),
            Message::Binary(b) => self.send_data(OpCode::Binary, b),
            Message::Ping(b) => self.send_control(OpCode::Ping, b),
            Message::Pong(b) => self.send_control(OpCode::Pong, b),
            Message::Close(frame) => self.close(frame.as_ref()),
        }
    }

    fn check_open(&self) -> Result<(), SendError> {
        if self.state == State::Open {
            Ok(())
        } else {
            Err(SendError::Closed)
        }
    }

    fn send_data(&mut self, opcode: OpCode, payload: &Bytes) -> Result<(), SendError> {
        self.check_open()?;
        if self.sending_fragmented.is_some() {
            return Err(SendError::FragmentOrder(
                "a fragmented message is being sent",
            ));
        }
        if self
            .deflate
            .as_ref()
            .is_some_and(|d| payload.len() >= d.min_size())
        {
            self.write_compressed(opcode, true, payload);
        } else if self.role == Role::Client && payload.len() > MASK_CHUNK {
            self.write_chunked(opcode, payload);
        } else if self.role == Role::Client && payload.len() <= SHORT_FRAME {
            self.write_short_masked(opcode, payload);
        } else {
            self.write_frame(opcode, true, payload);
        }
        Ok(())
    }

    /// Queues a large unfragmented frame: the header and the first chunk
    /// of the masked payload now, the rest as the output drains.
    fn write_chunked(&mut self, opcode: OpCode, payload: &Bytes) {
        self.mask_rest();
        let key = self.mask_key();
        self.queue_header(opcode, true, false, Some(key), payload.len(), MASK_CHUNK);
        extend_masked(&mut self.out, &payload[..MASK_CHUNK], key);
        self.unmasked = Some(Box::new(Unmasked {
            rest: payload.slice(MASK_CHUNK..),
            key,
        }));
    }

    /// Masks the next chunk of a pending large payload into `out`.
    fn mask_next_chunk(&mut self) {
        if let Some(u) = self.unmasked.as_mut() {
            let n = u.rest.len().min(MASK_CHUNK);
            extend_masked(&mut self.out, &u.rest[..n], u.key);
            u.rest.advance(n);
            if u.rest.is_empty() {
                self.unmasked = None;
            }
        }
    }

    /// Masks all of a pending large payload into `out`, before anything
    /// else is appended (frames never interleave).
    #[inline]
    fn mask_rest(&mut self) {
        if self.unmasked.is_some() {
            self.mask_rest_now();
        }
    }

    #[cold]
    fn mask_rest_now(&mut self) {
        if let Some(u) = self.unmasked.take() {
            extend_masked(&mut self.out, &u.rest, u.key);
        }
    }

    /// Compresses `payload` (a message or a fragment of one) and queues it;
    /// RSV1 goes on the message's first frame only.
    fn write_compressed(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        let mut buf = Vec::new();
        if let Some(d) = self.deflate.as_mut() {
            buf = d.take_scratch();
            d.compress(payload, fin, &mut buf);
        }
        self.write_frame_rsv1(opcode, fin, opcode != OpCode::Continuation, &buf);
        if let Some(d) = self.deflate.as_mut() {
            d.keep_scratch(buf);
        }
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        self.check_open()?;
        if payload.len() > 125 {
            return Err(SendError::ControlPayloadTooLarge(payload.len()));
        }
        self.write_frame(opcode, true, payload);
        Ok(())
    }

    /// Queues one fragment of a message: the first with `Text` or `Binary`,
    /// the rest with `Continuation`; `fin` ends the message. Control frames
    /// may be sent between fragments.
    ///
    /// # Errors
    /// [`SendError::FragmentOrder`] for fragments out of order,
    /// [`SendError::Closed`] after close.
    pub fn send_fragment(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        fin: bool,
    ) -> Result<(), SendError> {
        self.check_open()?;
        match (opcode, self.sending_fragmented) {
            (OpCode::Text | OpCode::Binary, None) => {
                // A message sent in fragments is compressed whole (its size
                // is not known up front); a single frame as in `send`.
                self.sending_compressed = self
                    .deflate
                    .as_ref()
                    .is_some_and(|d| !fin || payload.len() >= d.min_size());
                if !fin {
                    self.sending_fragmented = Some(opcode);
                }
            }
            (OpCode::Continuation, Some(_)) => {
                if fin {
                    self.sending_fragmented = None;
                }
            }
            (OpCode::Continuation, None) => {
                return Err(SendError::FragmentOrder(
                    "continuation without a first fragment",
                ));
            }
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(SendError::FragmentOrder(
                    "previous fragmented message not finished",
                ));
            }
            _ => return Err(SendError::FragmentOrder("control frames are not fragments")),
        }
        if self.sending_compressed {
            self.write_compressed(opcode, fin, payload);
        } else {
            self.write_frame(opcode, fin, payload);
        }
        Ok(())
    }

    /// Starts the close handshake: queues a close frame (`None` for one
    /// without a code). After it no data can be sent; received data is still
    /// delivered until the peer's close frame arrives.
    ///
    /// # Errors
    /// [`SendError::Closed`] if a close was already sent,
    /// [`SendError::InvalidCloseCode`] for a code that may not be sent,
    /// [`SendError::ControlPayloadTooLarge`] for a reason over 123 bytes.
    pub fn close(&mut self, frame: Option<&CloseFrame>) -> Result<(), SendError> {
        self.check_open()?;
        if let Some(f) = frame {
            if !f.code.is_sendable() {
                return Err(SendError::InvalidCloseCode(f.code.0));
            }
            if f.reason.len() > 123 {
                return Err(SendError::ControlPayloadTooLarge(f.reason.len() + 2));
            }
        }
        self.write_close(frame);
        self.closing().sent = frame.cloned();
        self.state = State::CloseSent;
        Ok(())
    }

    fn write_close(&mut self, frame: Option<&CloseFrame>) {
        let mut payload = BytesMut::with_capacity(125);
        if let Some(f) = frame {
            f.encode(&mut payload);
        }
        self.write_frame(OpCode::Close, true, &payload);
    }

    /// A whole client frame of at most [`SHORT_FRAME`] payload bytes, the
    /// common small message: its 6-byte header (7-bit length, key) and
    /// masked payload appended directly, without the general path's
    /// header encoding and mask dispatch.
    fn write_short_masked(&mut self, opcode: OpCode, payload: &[u8]) {
        self.mask_rest();
        let key = self.mask_key();
        let len = payload.len();
        debug_assert!(len <= SHORT_FRAME);
        self.produced += (6 + len) as u64;
        self.out.reserve(6 + len);
        let [k0, k1, k2, k3] = key;
        // FIN, no RSV bits; the mask bit and the 7-bit length (`len` is at
        // most 125, so the cast keeps it whole).
        self.out
            .extend_from_slice(&[0x80 | opcode.as_u8(), 0x80 | len as u8, k0, k1, k2, k3]);
        extend_masked(&mut self.out, payload, key);
    }

    fn write_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        self.write_frame_rsv1(opcode, fin, false, payload);
    }

    fn write_frame_rsv1(&mut self, opcode: OpCode, fin: bool, rsv1: bool, payload: &[u8]) {
        self.mask_rest();
        let mask = match self.role {
            Role::Client => Some(self.mask_key()),
            Role::Server => None,
        };
        self.queue_header(opcode, fin, rsv1, mask, payload.len(), payload.len());
        match mask {
            Some(key) => extend_masked(&mut self.out, payload, key),
            None => self.out.extend_from_slice(payload),
        }
    }

    /// Appends a frame header for a `payload_len`-byte payload to `out`
    /// and counts the whole frame as produced, with room reserved for the
    /// `now` payload bytes that follow at once.
    fn queue_header(
        &mut self,
        opcode: OpCode,
        fin: bool,
        rsv1: bool,
        mask: Option<[u8; 4]>,
        payload_len: usize,
        now: usize,
    ) {
        let header = FrameHeader {
            fin,
            rsv1,
            rsv2: false,
            rsv3: false,
            opcode,
            mask,
            payload_len: payload_len as u64,
        };
        let mut hbuf = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut hbuf);
        self.produced += (n + payload_len) as u64;
        self.out.reserve(n + now);
        self.out.extend_from_slice(&hbuf[..n]);
    }

    /// A fresh masking key from the CSPRNG (RFC 6455 section 5.3: keys
    /// must be unpredictable), taken from a batch so that small frames do
    /// not pay a call to the generator each.
    fn mask_key(&mut self) -> [u8; 4] {
        if usize::from(self.next_key) >= KEY_BATCH {
            let mut batch = [0u8; 4 * KEY_BATCH];
            rand::Rng::fill(&mut rand::rng(), &mut batch[..]);
            for (key, bytes) in self.keys.iter_mut().zip(batch.chunks_exact(4)) {
                key.copy_from_slice(bytes);
            }
            self.next_key = 0;
        }
        let i = usize::from(self.next_key) % KEY_BATCH;
        let key = self.keys[i];
        // A key is used once: wipe it as it is handed out.
        self.keys[i] = [0; 4];
        self.next_key += 1;
        key
    }

    // ----- output ----------------------------------------------------------

    /// The bytes to write to the transport next. A large payload is
    /// handed out a chunk at a time: after [`Engine::consume_output`]
    /// there may be more ([`Engine::has_output`]).
    #[must_use]
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// All bytes waiting to be written, [`Engine::output`] and the chunks
    /// still to come.
    #[must_use]
    pub fn output_len(&self) -> usize {
        self.out.len() + self.unmasked.as_ref().map_or(0, |u| u.rest.len())
    }

    /// Marks `n` bytes of [`Engine::output`] as written.
    pub fn consume_output(&mut self, n: usize) {
        self.out.advance(n.min(self.out.len()));
        if self.out.is_empty() {
            if self.unmasked.is_some() {
                // The buffer is reused for the next chunk.
                self.mask_next_chunk();
            } else if self.out.capacity() > 64 << 10 {
                // Give a large buffer back once drained.
                self.out = BytesMut::new();
            }
        }
    }

    /// Takes all waiting output at once.
    pub fn take_output(&mut self) -> Bytes {
        self.mask_rest();
        self.out.split().freeze()
    }

    /// Bytes ever produced as output; minus [`Engine::output_len`], the
    /// bytes already written (drivers use it to know which queued
    /// message has left).
    #[must_use]
    pub fn total_output(&self) -> u64 {
        self.produced
    }

    /// True when bytes are waiting to be written.
    #[must_use]
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// The close code to report when the transport ended: the peer's code,
    /// 1005 for a close frame without one, 1006 when no close frame came.
    #[must_use]
    pub fn close_code(&self) -> CloseCode {
        match self.close_received() {
            Some(Some(f)) => f.code,
            Some(None) => CloseCode::NO_STATUS,
            None => CloseCode::ABNORMAL,
        }
    }
}
