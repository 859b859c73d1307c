//! The neutral server: plain tokio TCP and the hand-written framing of
//! [`crate::frames`], one current-thread runtime, so that it treats every
//! client the same.
//!
//! - `send`: after the upgrade, writes a pre-built buffer of unmasked binary
//!   frames in a loop as fast as the client reads. A close frame from the
//!   client stops it at the next frame boundary and is answered.
//! - `echo`: answers every data frame with the same payload, unmasked; pings
//!   get pongs, a close frame is answered and the connection ends.
//! - `sink`: reads and discards (payloads are skipped, not unmasked); a
//!   close frame is answered and the connection ends, so a client's close
//!   handshake completes only once everything before it was read.
//!
//! Masked and unmasked client frames are both accepted.

use std::cell::Cell;
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
pub fn run(mode: Mode, size: usize, port: u16, watch_stdin: bool) -> std::io::Result<()> {
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
        let listener = sock.listen(8192)?;
        println!("LISTENING {}", listener.local_addr()?.port());
        std::io::Write::flush(&mut std::io::stdout())?;
        // The send buffer: whole frames, ~256 KiB (one frame for 1 MiB).
        let batch: Rc<Vec<u8>> = Rc::new(frames::frame_batch(size, false, 256 << 10).0);
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
            let batch = batch.clone();
            tokio::task::spawn_local(async move {
                let _ = conn(s, mode, batch).await;
            });
        }
    })
}

async fn conn(mut s: TcpStream, mode: Mode, batch: Rc<Vec<u8>>) -> std::io::Result<()> {
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
        Mode::Send => send(s, buf, &batch).await,
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

async fn send(mut s: TcpStream, leftover: Vec<u8>, batch: &[u8]) -> std::io::Result<()> {
    let (mut rd, mut wr) = s.split();
    let closing: Cell<Option<Vec<u8>>> = Cell::new(None);
    let done = Cell::new(false);
    let reader = async {
        let mut sk = Skipper {
            buf: leftover,
            skip: 0,
        };
        sk.buf.reserve(64 << 10);
        loop {
            if let Some(reply) = sk.feed() {
                closing.set(Some(reply));
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
        loop {
            if let Some(reply) = closing.take() {
                let _ = wr.write_all(&reply).await;
                let _ = wr.shutdown().await;
                return;
            }
            if done.get() || wr.write_all(batch).await.is_err() {
                return;
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
