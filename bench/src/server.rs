//! The neutral server: plain tokio TCP and the hand-written framing of
//! [`crate::frames`], one current-thread runtime, so that it treats every
//! client the same.
//!
//! - `send`: after the upgrade, sends pre-built unmasked binary frames in a
//!   loop as fast as the client reads, with `sendfile(2)` from a memory file
//!   (see [`Stream`]). A close frame from the client stops it at the next
//!   frame boundary and is answered.
//! - `echo`: answers every data frame with the same payload, unmasked; pings
//!   get pongs, a close frame is answered and the connection ends.
//! - `sink`: reads and discards (payloads are skipped, not unmasked); a
//!   close frame is answered and the connection ends, so a client's close
//!   handshake completes only once everything before it was read.
//!
//! Masked and unmasked client frames are both accepted.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::frames::{self, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Send,
    Echo,
    Sink,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "send" => Some(Mode::Send),
            "echo" => Some(Mode::Echo),
            "sink" => Some(Mode::Sink),
            _ => None,
        }
    }
}

/// Runs the server until the process is killed (or, with `watch_stdin`,
/// until stdin closes: `wsbench all` holds it, so a server never outlives
/// its parent). Prints `LISTENING <port>` once it accepts connections.
/// With `cc`, the listening socket's TCP congestion control is set to it
/// (`TCP_CONGESTION`; the accepted sockets inherit it) and failing to is
/// an error; without, the system default stays.
pub fn run(
    mode: Mode,
    size: usize,
    port: u16,
    cc: Option<&str>,
    watch_stdin: bool,
) -> std::io::Result<()> {
    if watch_stdin {
        std::thread::spawn(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            std::process::exit(0);
        });
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let sock = TcpSocket::new_v4()?;
        sock.set_reuseaddr(true)?;
        sock.bind(([127, 0, 0, 1], port).into())?;
        if let Some(cc) = cc {
            crate::sys::set_congestion_control(&sock, cc)?;
        }
        let listener = sock.listen(8192)?;
        println!("LISTENING {}", listener.local_addr()?.port());
        std::io::Write::flush(&mut std::io::stdout())?;
        let stream = Rc::new(Stream::new(size)?);
        loop {
            let (s, _) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly and go on.
                    eprintln!("wsbench server: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let stream = stream.clone();
            tokio::task::spawn_local(async move {
                let _ = conn(s, mode, &stream).await;
            });
        }
    })
}

async fn conn(mut s: TcpStream, mode: Mode, stream: &Stream) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(1024);
    let head_len = loop {
        if let Some(n) = frames::head_end(&buf) {
            break n;
        }
        if buf.len() > 16 << 10 || s.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    let Some(key) = frames::header_value(&head, "sec-websocket-key") else {
        s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        frames::accept_key(key)
    );
    s.write_all(resp.as_bytes()).await?;
    buf.drain(..head_len);
    match mode {
        Mode::Send => send(s, buf, stream).await,
        Mode::Echo => echo(s, buf).await,
        Mode::Sink => sink(s, buf).await,
    }
}

/// The reply to a close frame: the same code (or none), unmasked.
fn close_reply(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let code = if payload.len() >= 2 {
        &payload[..2]
    } else {
        &[][..]
    };
    frames::put_frame(&mut out, OP_CLOSE, code, None);
    out
}

/// Skips over incoming frames, returning the reply to a close frame once
/// one arrives (its payload must be unmasked to read the code).
struct Skipper {
    buf: Vec<u8>,
    skip: u64,
}

impl Skipper {
    /// Consumes `self.buf`; `Some(reply)` at a close frame.
    fn feed(&mut self) -> Option<Vec<u8>> {
        let mut at = 0;
        let mut result = None;
        loop {
            if self.skip > 0 {
                let n = (self.buf.len() - at).min(self.skip as usize);
                at += n;
                self.skip -= n as u64;
                if self.skip > 0 {
                    break;
                }
            }
            let Some(h) = frames::parse_header(&self.buf[at..]) else {
                break;
            };
            if h.opcode == OP_CLOSE {
                let end = at + h.header_len + h.len as usize;
                if self.buf.len() < end {
                    break;
                }
                let mut p = self.buf[at + h.header_len..end].to_vec();
                if let Some(k) = h.mask {
                    frames::xor(&mut p, k);
                }
                result = Some(close_reply(&p));
                at = self.buf.len();
                break;
            }
            at += h.header_len;
            self.skip = h.len;
        }
        self.buf.drain(..at);
        result
    }
}

/// The frames `send` mode writes, in a memory file: whole frames, at least
/// 1 MiB of them, sent with `sendfile(2)` so the kernel hands the client
/// references to these pages instead of copying every byte out of this
/// process first. The server then costs less per byte than any client
/// (which must copy what it reads), so the receive cells measure the
/// client, not the server.
pub struct Stream {
    file: std::fs::File,
    len: usize,
    /// One frame's length: frame boundaries are its multiples.
    frame: usize,
}

impl Stream {
    /// Frames of `size`-byte payloads in a new memory file.
    pub fn new(size: usize) -> std::io::Result<Stream> {
        use std::io::Write;
        let (batch, n) = frames::frame_batch(size, false, 256 << 10);
        let frame = batch.len() / n;
        let reps = ((1 << 20) / batch.len()).max(1);
        // SAFETY: a NUL-terminated name and no flags.
        let fd = unsafe { libc::memfd_create(c"wsbench-frames".as_ptr(), 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        for _ in 0..reps {
            file.write_all(&batch)?;
        }
        Ok(Stream {
            file,
            len: batch.len() * reps,
            frame,
        })
    }

    /// Sends up to `max` bytes from `off` (wrapping at the end of the
    /// file); how many the socket took.
    fn send_at(&self, s: &TcpStream, off: usize, max: usize) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        let count = (self.len - off).min(max);
        let mut o = off as libc::off_t;
        s.try_io(tokio::io::Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the call; `o` is a valid
            // offset the kernel advances.
            let n = unsafe { libc::sendfile(s.as_raw_fd(), self.file.as_raw_fd(), &mut o, count) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        })
    }
}

async fn send(mut s: TcpStream, leftover: Vec<u8>, stream: &Stream) -> std::io::Result<()> {
    let (mut rd, mut wr) = s.split();
    let closing: RefCell<Option<Vec<u8>>> = RefCell::new(None);
    let done = Cell::new(false);
    let reader = async {
        let mut sk = Skipper {
            buf: leftover,
            skip: 0,
        };
        sk.buf.reserve(64 << 10);
        loop {
            if let Some(reply) = sk.feed() {
                *closing.borrow_mut() = Some(reply);
                return;
            }
            match rd.read_buf(&mut sk.buf).await {
                Ok(0) | Err(_) => {
                    done.set(true);
                    return;
                }
                Ok(_) => {}
            }
        }
    };
    let writer = async {
        let mut off = 0usize;
        loop {
            if done.get() {
                return;
            }
            // At a close, finish the frame being sent, then answer.
            let closing_now = closing.borrow().is_some();
            if closing_now && off.is_multiple_of(stream.frame) {
                let reply = closing.take().unwrap_or_default();
                let _ = wr.write_all(&reply).await;
                let _ = wr.shutdown().await;
                return;
            }
            let max = if closing_now {
                stream.frame - off % stream.frame
            } else {
                usize::MAX
            };
            let tcp = wr.as_ref();
            if tcp.writable().await.is_err() {
                return;
            }
            match stream.send_at(tcp, off, max) {
                Ok(0) => return,
                Ok(n) => off = (off + n) % stream.len,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    };
    tokio::join!(reader, writer);
    Ok(())
}

async fn echo(mut s: TcpStream, mut buf: Vec<u8>) -> std::io::Result<()> {
    buf.reserve(64 << 10);
    let mut out = Vec::with_capacity(64 << 10);
    loop {
        let mut at = 0;
        while let Some(h) = frames::parse_header(&buf[at..]) {
            let end = at + h.header_len + h.len as usize;
            if buf.len() < end {
                // Make room for a large frame in one go.
                buf.reserve(end - buf.len());
                break;
            }
            let p = &mut buf[at + h.header_len..end];
            if let Some(k) = h.mask {
                frames::xor(p, k);
            }
            match h.opcode {
                OP_CLOSE => {
                    out.extend_from_slice(&close_reply(p));
                    s.write_all(&out).await?;
                    s.shutdown().await?;
                    return Ok(());
                }
                OP_PING => frames::put_frame(&mut out, OP_PONG, p, None),
                OP_TEXT | OP_BINARY => frames::put_frame(&mut out, h.opcode, p, None),
                _ => {}
            }
            at = end;
        }
        buf.drain(..at);
        if !out.is_empty() {
            s.write_all(&out).await?;
            out.clear();
        }
        if s.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

async fn sink(mut s: TcpStream, leftover: Vec<u8>) -> std::io::Result<()> {
    let mut sk = Skipper {
        buf: leftover,
        skip: 0,
    };
    sk.buf.reserve(256 << 10);
    loop {
        if let Some(reply) = sk.feed() {
            s.write_all(&reply).await?;
            s.shutdown().await?;
            return Ok(());
        }
        if sk.skip >= 16 << 10 {
            // The buffer is empty and a large payload follows: drop it in
            // the kernel, uncopied, so that the sink is never the
            // bottleneck of large sends.
            let n = discard(
                &s,
                usize::try_from(sk.skip).unwrap_or(usize::MAX).min(4 << 20),
            )
            .await?;
            if n == 0 {
                return Ok(());
            }
            sk.skip -= n as u64;
            continue;
        }
        if sk.buf.capacity() - sk.buf.len() < 64 << 10 {
            sk.buf.reserve(256 << 10);
        }
        if s.read_buf(&mut sk.buf).await? == 0 {
            return Ok(());
        }
    }
}

/// Discards up to `len` received bytes without copying them (`recv` with
/// `MSG_TRUNC`, which TCP sockets on Linux support).
async fn discard(s: &TcpStream, len: usize) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    loop {
        s.readable().await?;
        let r = s.try_io(tokio::io::Interest::READABLE, || {
            // SAFETY: with MSG_TRUNC the kernel copies nothing into the
            // (null) buffer; it only drops `len` bytes from the queue.
            let n = unsafe {
                libc::recv(
                    s.as_raw_fd(),
                    std::ptr::null_mut(),
                    len,
                    libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n.unsigned_abs())
            }
        });
        match r {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads whole frames from `c` until a close frame; checks every data
    /// frame's payload and returns how many came and the close's payload.
    async fn read_until_close(
        c: &mut TcpStream,
        size: usize,
        stop_after: usize,
    ) -> (usize, Vec<u8>) {
        let want = frames::payload(size);
        let mut buf = Vec::new();
        let mut frames_seen = 0;
        let mut sent_close = false;
        loop {
            let mut at = 0;
            while let Some(h) = frames::parse_header(&buf[at..]) {
                let (start, end) = (at + h.header_len, at + h.header_len + h.len as usize);
                if buf.len() < end {
                    break;
                }
                at = end;
                if h.opcode == OP_CLOSE {
                    assert_eq!(at, buf.len(), "bytes after the close frame");
                    let mut rest = Vec::new();
                    assert_eq!(c.read_to_end(&mut rest).await.unwrap(), 0, "not shut down");
                    return (frames_seen, buf[start..end].to_vec());
                }
                assert_eq!(h.opcode, OP_BINARY);
                assert!(buf[start..end] == want[..], "frame {frames_seen} differs");
                frames_seen += 1;
            }
            buf.drain(..at);
            if frames_seen >= stop_after && !sent_close {
                let mut close = Vec::new();
                frames::put_frame(
                    &mut close,
                    OP_CLOSE,
                    &1000u16.to_be_bytes(),
                    Some([9, 8, 7, 6]),
                );
                c.write_all(&close).await.unwrap();
                sent_close = true;
            }
            assert!(
                c.read_buf(&mut buf).await.unwrap() > 0,
                "EOF before the close"
            );
        }
    }

    /// `send` mode streams whole, correct frames across the memory file's
    /// wrap-around, and a close stops it at a frame boundary with the
    /// client's code echoed and the write side shut.
    #[test]
    fn send_mode_streams_whole_frames_and_answers_a_close() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, async {
            for (size, wrap) in [16usize, 1000, 70_000, 1 << 20]
                .into_iter()
                .flat_map(|s| [(s, false), (s, true)])
            {
                let stream = Stream::new(size).unwrap();
                // A close while the server is somewhere in its file, or
                // after it went past the file's end twice.
                let stop_after = if wrap {
                    2 * stream.len / stream.frame + 3
                } else {
                    1
                };
                // Small socket buffers, so that the server is stopped part
                // way into its file (not only at its end) by a full socket.
                let ls = TcpSocket::new_v4().unwrap();
                ls.set_send_buffer_size(32 << 10).unwrap();
                ls.bind(([127, 0, 0, 1], 0).into()).unwrap();
                let l = ls.listen(1).unwrap();
                let cs = TcpSocket::new_v4().unwrap();
                cs.set_recv_buffer_size(32 << 10).unwrap();
                let mut c = cs.connect(l.local_addr().unwrap()).await.unwrap();
                let (s, _) = l.accept().await.unwrap();
                let server = tokio::task::spawn_local(async move {
                    send(s, Vec::new(), &stream).await.unwrap();
                });
                let (n, close) = tokio::time::timeout(
                    std::time::Duration::from_secs(30),
                    read_until_close(&mut c, size, stop_after),
                )
                .await
                .unwrap();
                assert!(n >= stop_after, "{size}: {n} frames");
                assert_eq!(close, 1000u16.to_be_bytes(), "{size}");
                server.await.unwrap();
            }
        });
    }
}
