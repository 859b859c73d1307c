//! Transports: how bytes reach the server before WebSocket framing starts.
//!
//! Owns TCP connection setup ([`tcp`]: every resolved address, Happy
//! Eyeballs, timeouts, a local bind address, `TCP_NODELAY`), tunnels through
//! HTTP and SOCKS5 proxies ([`proxy`]) and TLS ([`tls`]: rustls with
//! verification on by default). [`MaybeTlsStream`] is the one stream type
//! the rest of the crate sees: a proxy tunnel is still a [`TcpStream`] once
//! negotiated. On Unix a connection may also go through a Unix domain
//! socket ([`unix`], [`crate::ConnectOptions::unix_socket`]), plain or with
//! TLS over it.

pub mod proxy;
pub mod tcp;
pub mod tls;
#[cfg(unix)]
pub mod unix;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream, plain (`ws://`) or wrapped in TLS (`wss://`); on Unix,
/// or a Unix domain socket, plain or with TLS.
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// Plain TCP.
    Plain(PlainStream),
    /// TLS over TCP (boxed: the TLS state is large).
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// A plain Unix domain socket ([`crate::ConnectOptions::unix_socket`]
    /// with a `ws://` URL).
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
    /// TLS over a Unix domain socket (a `wss://` URL; boxed like `Tls`).
    #[cfg(unix)]
    UnixTls(Box<tokio_rustls::client::TlsStream<tokio::net::UnixStream>>),
    /// A stream of an HTTP/2 connection (RFC 8441,
    /// [`crate::ConnectOptions::via_http2`]); boxed.
    #[cfg(feature = "http2")]
    Http2(Box<crate::http2::Http2Stream>),
}

impl MaybeTlsStream {
    /// Plain TCP around `tcp`.
    #[must_use]
    pub fn plain(tcp: TcpStream) -> MaybeTlsStream {
        MaybeTlsStream::Plain(PlainStream::from(tcp))
    }

    /// The underlying TCP stream; `None` for a Unix domain socket.
    #[must_use]
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            MaybeTlsStream::Plain(s) => Some(s.get_ref()),
            MaybeTlsStream::Tls(s) => Some(s.get_ref().0),
            #[cfg(unix)]
            MaybeTlsStream::Unix(_) | MaybeTlsStream::UnixTls(_) => None,
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(_) => None,
        }
    }

    /// The underlying Unix domain socket; `None` for TCP.
    #[cfg(unix)]
    #[must_use]
    pub fn unix(&self) -> Option<&tokio::net::UnixStream> {
        match self {
            MaybeTlsStream::Unix(s) => Some(s),
            MaybeTlsStream::UnixTls(s) => Some(s.get_ref().0),
            _ => None,
        }
    }

    /// Whether TLS runs over the stream (`wss://`).
    #[must_use]
    pub fn is_tls(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(_) => false,
            MaybeTlsStream::Tls(_) => true,
            #[cfg(unix)]
            MaybeTlsStream::Unix(_) => false,
            #[cfg(unix)]
            MaybeTlsStream::UnixTls(_) => true,
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(s) => s.is_tls(),
        }
    }

    /// Sets the read low-water mark of a plain TCP stream (see
    /// [`PlainStream::set_read_low_water`]); TLS streams read records, so
    /// theirs stays at 1.
    pub fn set_read_low_water(&mut self, bytes: usize) {
        if let MaybeTlsStream::Plain(s) = self {
            s.set_read_low_water(bytes);
        }
    }

    /// See [`PlainStream::set_bulk_read_tries`]; TLS streams read records
    /// through rustls and wait at once.
    pub fn set_bulk_read_tries(&mut self, tries: u8) {
        if let MaybeTlsStream::Plain(s) = self {
            s.set_bulk_read_tries(tries);
        }
    }

    /// The plain TCP stream's [`PlainStream::bulk_read_tries`]; `None` for
    /// TLS and Unix domain sockets.
    #[must_use]
    pub fn bulk_read_tries(&self) -> Option<u8> {
        match self {
            MaybeTlsStream::Plain(s) => Some(s.bulk_read_tries()),
            _ => None,
        }
    }

    /// The remote address.
    ///
    /// # Errors
    /// The socket's error, if it has none (it was closed);
    /// [`io::ErrorKind::Unsupported`] for a Unix domain socket, which has
    /// no IP address ([`MaybeTlsStream::unix`] has its path), and for a
    /// stream of an HTTP/2 connection.
    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.tcp().ok_or_else(no_ip_address)?.peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    /// The socket's error, if it has none; [`io::ErrorKind::Unsupported`]
    /// for a Unix domain socket.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.tcp().ok_or_else(no_ip_address)?.local_addr()
    }
}

/// The error of [`MaybeTlsStream::peer_addr`] and
/// [`MaybeTlsStream::local_addr`] for a Unix domain socket.
fn no_ip_address() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "no IP address of its own (a Unix domain socket, or a stream of an HTTP/2 connection)",
    )
}

/// A byte stream read and written as it is (every kind of
/// [`MaybeTlsStream`] but plain TCP's paced reads and first write).
trait Io: AsyncRead + AsyncWrite + Unpin {}

impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

impl MaybeTlsStream {
    /// The stream underneath, to read and write as it is (plain TCP's
    /// `TcpStream` itself, without `PlainStream`'s pacing).
    fn io(&mut self) -> &mut dyn Io {
        match self {
            MaybeTlsStream::Plain(s) => &mut s.tcp,
            MaybeTlsStream::Tls(s) => s.as_mut(),
            #[cfg(unix)]
            MaybeTlsStream::Unix(s) => s,
            #[cfg(unix)]
            MaybeTlsStream::UnixTls(s) => s.as_mut(),
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(s) => s.as_mut(),
        }
    }

    /// [`MaybeTlsStream::io`], shared.
    fn io_ref(&self) -> &dyn Io {
        match self {
            MaybeTlsStream::Plain(s) => &s.tcp,
            MaybeTlsStream::Tls(s) => s.as_ref(),
            #[cfg(unix)]
            MaybeTlsStream::Unix(s) => s,
            #[cfg(unix)]
            MaybeTlsStream::UnixTls(s) => s.as_ref(),
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(s) => s.as_ref(),
        }
    }

    /// The protocol TLS agreed on (ALPN), if TLS runs and one was.
    #[must_use]
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match self {
            MaybeTlsStream::Tls(s) => s.get_ref().1.alpn_protocol(),
            #[cfg(unix)]
            MaybeTlsStream::UnixTls(s) => s.get_ref().1.alpn_protocol(),
            _ => None,
        }
    }
}

#[cfg(unix)]
impl MaybeTlsStream {
    /// The descriptor of the connection's own socket (TCP or Unix domain);
    /// `None` for a stream of an HTTP/2 connection, which shares its
    /// connection's socket.
    #[must_use]
    pub fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd as _;
        match self {
            MaybeTlsStream::Plain(s) => Some(s.get_ref().as_raw_fd()),
            MaybeTlsStream::Tls(s) => Some(s.get_ref().0.as_raw_fd()),
            MaybeTlsStream::Unix(s) => Some(s.as_raw_fd()),
            MaybeTlsStream::UnixTls(s) => Some(s.get_ref().0.as_raw_fd()),
            #[cfg(feature = "http2")]
            MaybeTlsStream::Http2(_) => None,
        }
    }
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => s.poll_read_paced(cx, buf),
            other => Pin::new(other.io()).poll_read(cx, buf),
        }
    }
}

/// Plain TCP (`ws://`) as the crate reads it: the stream, and how its last
/// read ended.
///
/// It derefs to the [`TcpStream`]; writes go straight to it. Reads differ
/// from `TcpStream::poll_read` only after a short read (one that filled
/// less than the buffer). tokio takes that as proof the socket is drained
/// and, until its driver's next readiness event, answers `Pending` without
/// trying: one trip through `epoll_wait` and the scheduler, even when the
/// next bytes are already there (more of a stream). Trying at once instead
/// costs a read that finds nothing (`EAGAIN`) whenever they are not there
/// yet, as for the reply to a request just sent. So the next read after a
/// short read tries at once unless something was written since: reading on
/// in a stream, it finds the bytes that came meanwhile (and the read after
/// a try that found bytes tries at once too); waiting for a reply, it
/// waits for the readiness event as tokio's does.
///
/// The first write, the upgrade request, is tried at once too (on Linux):
/// the connect (`tcp::attempt`) hands over a socket that is connected
/// already when the handshake's packets went through within `connect(2)`,
/// and tokio would wait for its driver to report it writable first.
///
/// While the server streams (a read since the task last waited brought
/// 16 KiB or more), a try that finds nothing looks again a few times
/// ([`BULK_TRIES`], [`PlainStream::set_bulk_read_tries`]) before the task
/// waits: the next bytes are then usually microseconds away, and a wait
/// costs a trip through `epoll_wait` and the scheduler, and the sender's
/// CPU a wake-up of this one. The tries are bounded (a few `recv` calls,
/// about a microsecond or two), made only in a stream, never after a
/// write (a reply cannot be there yet), and a wait ends them until a
/// large read comes again. On the benchmark's VM they took up to half the
/// sleeps out of a 64 KiB stream for about the same CPU per message.
///
/// The short read clears the readiness as tokio's does (in the same
/// `try_io` as the read, so an event that came since is kept), and a try
/// that finds nothing then waits through the readiness path: no wake-up
/// can be lost.
#[derive(Debug)]
pub struct PlainStream {
    tcp: TcpStream,
    /// The next read tries at once, whatever the readiness says: the last
    /// read was short (and cleared the readiness), or was such a try and
    /// found bytes.
    try_next: bool,
    /// A read since the last wait brought at least [`BULK_READ`] bytes:
    /// the peer is streaming, and a try that finds nothing looks again
    /// `bulk_tries` times before the task waits.
    bulk: bool,
    /// See [`PlainStream::set_bulk_read_tries`].
    bulk_tries: u8,
    /// Nothing was written yet: the first write is tried at once.
    #[cfg(target_os = "linux")]
    unwritten: bool,
    /// The socket's read low-water mark (`SO_RCVLOWAT`) as last set.
    low_water: u32,
}

impl From<TcpStream> for PlainStream {
    fn from(tcp: TcpStream) -> PlainStream {
        PlainStream {
            tcp,
            try_next: false,
            bulk: false,
            bulk_tries: BULK_TRIES,
            #[cfg(target_os = "linux")]
            unwritten: true,
            low_water: 1,
        }
    }
}

impl std::ops::Deref for PlainStream {
    type Target = TcpStream;

    fn deref(&self) -> &TcpStream {
        &self.tcp
    }
}

impl PlainStream {
    /// The TCP stream.
    #[must_use]
    pub fn get_ref(&self) -> &TcpStream {
        &self.tcp
    }

    /// The TCP stream, mutably.
    pub fn get_mut(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }

    /// The TCP stream, unwrapped.
    #[must_use]
    pub fn into_inner(self) -> TcpStream {
        self.tcp
    }

    /// Asks the kernel to report the socket readable (and wake the task)
    /// only once up to `bytes` are buffered, or the stream ends or fails:
    /// its read low-water mark, `SO_RCVLOWAT` (1, the default, is any
    /// byte). The mark never exceeds `bytes`, so a reader that needs
    /// `bytes` more is never left waiting for bytes that may not come.
    ///
    /// It changes only when it has to, as a reader's need shrinks while
    /// the bytes come in: raised from 1 when `bytes` is more than 1, kept
    /// while it is still no more than `bytes`, lowered to `bytes` below
    /// that, and 1 again for 1. A raised mark is kept under half the
    /// socket's receive buffer as it is then: a larger one would make
    /// Linux grow the buffer and clamp the TCP window to the mark, which
    /// can slow the stream after it. A setting that fails leaves the mark
    /// as it was (only wake-ups are at stake). Only Linux has it;
    /// elsewhere this does nothing.
    pub fn set_read_low_water(&mut self, bytes: usize) {
        #[cfg(target_os = "linux")]
        {
            let want = u32::try_from(bytes).unwrap_or(u32::MAX).max(1);
            let mark = if want == 1 {
                1
            } else if self.low_water > 1 {
                // Raised, and still no more than the reader needs: kept.
                // Otherwise lowered to the need (under the cap already).
                want.min(self.low_water)
            } else {
                let Ok(buffer) = socket2::SockRef::from(&self.tcp).recv_buffer_size() else {
                    return;
                };
                want.min(u32::try_from(buffer / 2).unwrap_or(u32::MAX))
                    .max(1)
            };
            if mark != self.low_water && rcvlowat::set(&self.tcp, mark).is_ok() {
                self.low_water = mark;
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = bytes;
    }

    /// How many more times a read that finds nothing looks again before
    /// the task waits, while the server streams (see [`PlainStream`];
    /// default [`BULK_TRIES`], 0 waits at once as after any short read).
    pub fn set_bulk_read_tries(&mut self, tries: u8) {
        self.bulk_tries = tries;
    }

    /// The tries set by [`PlainStream::set_bulk_read_tries`].
    #[must_use]
    pub fn bulk_read_tries(&self) -> u8 {
        self.bulk_tries
    }

    /// The first write (the upgrade request), tried at once: tokio's
    /// `poll_write` answers `Pending` until its driver has reported the
    /// new socket writable, a trip through `epoll_wait` and the scheduler
    /// for a socket that is (see `tcp::attempt`) connected already. `None`
    /// when the socket cannot take it yet: the caller then waits as tokio
    /// does.
    #[cfg(target_os = "linux")]
    fn try_first_write(&self, buf: &[u8]) -> Option<io::Result<usize>> {
        loop {
            // MSG_NOSIGNAL, as tokio's writes: a reset connection is an
            // error, not SIGPIPE.
            match socket2::SockRef::from(&self.tcp).send_with_flags(buf, libc::MSG_NOSIGNAL) {
                Ok(n) => return Some(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Notes a read of `n` bytes: a large one means the peer streams.
    fn note_read(&mut self, n: usize) {
        self.bulk |= n >= BULK_READ;
    }

    /// Reads into `buf` (see [`PlainStream`]). tokio's cooperative budget
    /// is taken as by its own read.
    fn poll_read_paced(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let want = buf.remaining();
        if std::mem::take(&mut self.try_next) && self.low_water == 1 {
            // Reading on after a short read, nothing written since: try
            // at once, whatever the (cleared) readiness says. Not under a
            // raised low-water mark: the reader asked to be woken when
            // that much is in, and a try would take a part of it.
            let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
            // While the peer streams, the next bytes are usually a few
            // microseconds away: looking again costs less than a wait and
            // a wake-up (which the sender's CPU pays too).
            let mut tries = if self.bulk {
                1 + u32::from(self.bulk_tries)
            } else {
                1
            };
            loop {
                match recv_into(&self.tcp, buf) {
                    Ok(n) => {
                        // Bytes: the next read tries at once too (the
                        // readiness may still be cleared).
                        self.try_next = n > 0;
                        self.note_read(n);
                        coop.made_progress();
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        #[cfg(test)]
                        EMPTY_TRIES.with(|n| n.set(n.get() + 1));
                        tries -= 1;
                        if tries == 0 {
                            // Nothing yet: wait through the readiness
                            // path below.
                            self.bulk = false;
                            break;
                        }
                        std::hint::spin_loop();
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
        loop {
            std::task::ready!(self.tcp.poll_read_ready(cx))?;
            let mut got = 0;
            let tcp = &self.tcp;
            let read = tcp.try_io(tokio::io::Interest::READABLE, || {
                got = recv_into(tcp, buf)?;
                if got > 0 && got < want {
                    // Short: clear the readiness, as tokio's own read does
                    // (`try_io` read its event before this read, so an
                    // event that came since is kept).
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(())
            });
            match read {
                // Bytes, or the end of the stream (0).
                Ok(()) => {}
                // A short read, which cleared the readiness.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => {
                    self.try_next = true;
                }
                // Nothing to read: the readiness is cleared, the next
                // round registers for the next event (a wait).
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    self.bulk = false;
                    continue;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
            self.note_read(got);
            return Poll::Ready(Ok(()));
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Tries that found nothing, counted for the tests (the stream's size
    /// is budgeted: see the event client's task).
    static EMPTY_TRIES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// A read at least this large means the peer is streaming (see
/// [`PlainStream`]).
const BULK_READ: usize = 16 << 10;
/// How many more times a read tried at once looks again, while the peer
/// streams, before the task waits for the readiness event (the default of
/// [`PlainStream::set_bulk_read_tries`]).
pub const BULK_TRIES: u8 = 8;

/// Receives into the unfilled part of `buf` and marks what arrived as
/// filled: the crate's one read from a plain TCP socket.
fn recv_into(tcp: &TcpStream, buf: &mut ReadBuf<'_>) -> io::Result<usize> {
    // SAFETY: `recv` only writes into the slice, never de-initialises it,
    // and only the `n` bytes it reports written are marked initialised
    // below.
    let unfilled = unsafe { buf.unfilled_mut() };
    let n = socket2::SockRef::from(tcp).recv(unfilled)?;
    // SAFETY: `recv` wrote these `n` bytes.
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Ok(n)
}

/// `SO_RCVLOWAT`, which neither tokio nor socket2 sets.
#[cfg(target_os = "linux")]
mod rcvlowat {
    use std::io;
    use std::os::fd::AsRawFd;

    use tokio::net::TcpStream;

    /// Sets the read low-water mark of `tcp` to `bytes`.
    pub(super) fn set(tcp: &TcpStream, bytes: u32) -> io::Result<()> {
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: the descriptor is the open socket `tcp` owns, borrowed
        // for the call; `value` is a live `c_int` and the length passed is
        // its size, as SO_RCVLOWAT takes.
        let rc = unsafe {
            libc::setsockopt(
                tcp.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                std::ptr::from_ref(&value).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => {
                // A reply to this cannot be there yet: the next read waits
                // for the readiness event (see `PlainStream`).
                s.try_next = false;
                #[cfg(target_os = "linux")]
                if std::mem::take(&mut s.unwritten) {
                    if let Some(written) = s.try_first_write(buf) {
                        return Poll::Ready(written);
                    }
                }
                Pin::new(&mut s.tcp).poll_write(cx, buf)
            }
            other => Pin::new(other.io()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => {
                // A reply to this cannot be there yet: the next read waits
                // for the readiness event (see `PlainStream`).
                s.try_next = false;
                Pin::new(&mut s.tcp).poll_write_vectored(cx, bufs)
            }
            other => Pin::new(other.io()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io_ref().is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().io()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().io()).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A plain stream and the blocking server end of its connection, which
    /// sends each write at once (no Nagle wait for an ACK).
    async fn pair() -> (MaybeTlsStream, std::net::TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().unwrap();
        server.set_nodelay(true).unwrap();
        (MaybeTlsStream::plain(tcp), server)
    }

    /// The first write (the upgrade request) goes out at once on a
    /// connected socket: tokio's own `TcpStream` write answers `Pending`
    /// until its driver has reported a new socket writable.
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "current_thread")]
    async fn the_first_write_does_not_wait_for_a_readiness_event() {
        let (mut s, mut server) = fresh_pair().await;
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let polled = Pin::new(&mut s).poll_write(&mut cx, b"GET / HTTP/1.1\r\n\r\n");
        assert!(matches!(polled, Poll::Ready(Ok(18))), "{polled:?}");
        let mut got = [0u8; 18];
        std::io::Read::read_exact(&mut server, &mut got).unwrap();
        assert_eq!(&got, b"GET / HTTP/1.1\r\n\r\n");
        // Later writes take tokio's path, and work as well.
        s.write_all(b"more").await.unwrap();
        let mut more = [0u8; 4];
        std::io::Read::read_exact(&mut server, &mut more).unwrap();
        assert_eq!(&more, b"more");
    }

    /// A plain stream as the crate's connect hands it over (no readiness
    /// event seen yet), and the blocking server end of its connection.
    #[cfg(target_os = "linux")]
    async fn fresh_pair() -> (MaybeTlsStream, std::net::TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = crate::transport::tcp::connect(
            "127.0.0.1",
            l.local_addr().unwrap().port(),
            &crate::transport::tcp::TcpOptions::default(),
        )
        .await
        .unwrap();
        let (server, _) = l.accept().unwrap();
        (MaybeTlsStream::plain(tcp), server)
    }

    /// A first write to a connection the server has reset is an error at
    /// once (the direct send's error, not tokio's `Pending`; not a signal).
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "current_thread")]
    async fn the_first_write_to_a_reset_connection_fails() {
        let (mut s, server) = fresh_pair().await;
        // Linger 0: closing sends a reset.
        socket2::SockRef::from(&server)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(server);
        std::thread::sleep(Duration::from_millis(20));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let polled = Pin::new(&mut s).poll_write(&mut cx, b"request");
        let Poll::Ready(Err(err)) = polled else {
            panic!("expected an error at once, got {polled:?}");
        };
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            "{err:?}"
        );
    }

    /// After a read that filled only part of the buffer, bytes that came
    /// in since are read at once: no wait for the runtime's next readiness
    /// event (tokio's own `TcpStream` read answers `Pending` here until its
    /// driver has run).
    #[tokio::test(flavor = "current_thread")]
    async fn a_short_read_does_not_wait_for_the_next_readiness_event() {
        let (mut s, mut server) = pair().await;
        server.write_all(b"first").unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"first");

        server.write_all(b"second").unwrap();
        // The bytes are in the socket; this thread, which runs the
        // runtime's driver, has not looked at readiness events since.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut rb = ReadBuf::new(&mut buf);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let polled = Pin::new(&mut s).poll_read(&mut cx, &mut rb);
        assert!(matches!(polled, Poll::Ready(Ok(()))), "{polled:?}");
        assert_eq!(rb.filled(), b"second");

        // Nothing more to read: pending, and woken by the next bytes.
        let mut rb = ReadBuf::new(&mut buf);
        assert!(Pin::new(&mut s).poll_read(&mut cx, &mut rb).is_pending());
        server.write_all(b"third").unwrap();
        let n = s.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"third");
        drop(server);
        assert_eq!(s.read(&mut buf).await.unwrap(), 0, "EOF");
    }

    /// Polls one read with a waker that is never used: whether the bytes
    /// are taken now, without the runtime's driver running.
    fn read_now(s: &mut MaybeTlsStream, buf: &mut [u8]) -> Option<Vec<u8>> {
        let mut rb = ReadBuf::new(buf);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(s).poll_read(&mut cx, &mut rb) {
            Poll::Ready(r) => {
                r.unwrap();
                Some(rb.filled().to_vec())
            }
            Poll::Pending => None,
        }
    }

    /// Request/response: after a write, the reply to it cannot be there
    /// yet, so a read after a short read waits for the readiness event (as
    /// tokio's own read does) instead of trying a read that would find
    /// nothing. Reading on without a write in between tries at once again.
    #[tokio::test(flavor = "current_thread")]
    async fn after_a_write_a_short_read_waits_for_the_readiness_event() {
        let (mut s, mut server) = pair().await;
        let mut buf = [0u8; 64];
        let mut req = [0u8; 7];
        let pause = || std::thread::sleep(std::time::Duration::from_millis(20));

        for turn in 0..3 {
            server.write_all(b"reply").unwrap();
            let n = s.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"reply", "turn {turn}");
            // The next request, and its reply (written here before the
            // driver has looked at the socket again).
            s.write_all(b"request").await.unwrap();
            std::io::Read::read_exact(&mut server, &mut req).unwrap();
            assert_eq!(&req, b"request");
            server.write_all(b"r").unwrap();
            pause();
            assert_eq!(read_now(&mut s, &mut buf), None, "turn {turn}: waits");
            // The event comes: nothing is lost.
            let n = s.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"r", "turn {turn}");
        }
        // No write since that short read: the next bytes are taken at once.
        server.write_all(b"more").unwrap();
        pause();
        assert_eq!(read_now(&mut s, &mut buf).as_deref(), Some(&b"more"[..]));
        // And a try that finds nothing waits for the next event.
        assert_eq!(read_now(&mut s, &mut buf), None);
        server.write_all(b"last").unwrap();
        let n = s.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"last");
        drop(server);
        assert_eq!(s.read(&mut buf).await.unwrap(), 0, "EOF");
    }

    /// Tries made so far on this thread that found nothing.
    fn empty_tries() -> u32 {
        EMPTY_TRIES.with(std::cell::Cell::get)
    }

    /// While the server streams (a read since the last wait brought 16 KiB
    /// or more), a read that finds nothing looks again `BULK_TRIES` times
    /// before the task waits; after the wait, a small read looks once, as
    /// does a large one with the tries set to 0. Each round still gets its
    /// bytes.
    #[tokio::test(flavor = "current_thread")]
    async fn a_stream_is_looked_at_again_before_the_task_waits() {
        let (mut s, mut server) = pair().await;
        let mut buf = vec![0u8; 64 << 10];
        let pause = || std::thread::sleep(Duration::from_millis(20));
        // Looks made by one poll that finds nothing (it then waits).
        let looks = |s: &mut MaybeTlsStream, buf: &mut [u8]| {
            let before = empty_tries();
            assert!(read_now(s, buf).is_none(), "nothing was sent");
            empty_tries() - before
        };

        server.write_all(&[7u8; 32 << 10]).unwrap();
        pause();
        let n = s.read(&mut buf).await.unwrap();
        assert_eq!(n, 32 << 10, "one read took the whole write");
        assert_eq!(looks(&mut s, &mut buf), 1 + u32::from(BULK_TRIES));
        server.write_all(b"small").unwrap();
        let n = s.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"small");
        assert_eq!(looks(&mut s, &mut buf), 1, "a small read after a wait");

        s.set_bulk_read_tries(0);
        server.write_all(&[7u8; 32 << 10]).unwrap();
        pause();
        let n = s.read(&mut buf).await.unwrap();
        assert_eq!(n, 32 << 10, "one read took the whole write");
        assert_eq!(looks(&mut s, &mut buf), 1, "tries set to 0");
    }

    /// The socket's `SO_RCVLOWAT`, read back from the kernel.
    #[cfg(target_os = "linux")]
    fn rcvlowat(s: &MaybeTlsStream) -> i32 {
        use std::os::fd::AsRawFd;
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a live socket, and a `c_int` with its size.
        let rc = unsafe {
            libc::getsockopt(
                s.tcp().unwrap().as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                std::ptr::from_mut(&mut value).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        value
    }

    /// With a low-water mark of N bytes, the socket is not readable before
    /// N bytes are there; back at 1, any byte is. The mark stays under
    /// half the receive buffer (a larger one would clamp the TCP window).
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "current_thread")]
    async fn a_read_waits_for_the_low_water_mark() {
        let (mut s, mut server) = pair().await;
        s.set_read_low_water(1000);
        assert_eq!(rcvlowat(&s), 1000);
        server.write_all(&[1; 600]).unwrap();
        let mut buf = vec![0u8; 4096];
        let early = tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await;
        assert!(early.is_err(), "read {early:?} below the mark");
        server.write_all(&[2; 500]).unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("readable at the mark")
            .unwrap();
        assert_eq!(n, 1100);
        s.set_read_low_water(1);
        assert_eq!(rcvlowat(&s), 1);
        server.write_all(b"x").unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("readable at one byte")
            .unwrap();
        assert_eq!(&buf[..n], b"x");
        let half = socket2::SockRef::from(s.tcp().unwrap())
            .recv_buffer_size()
            .unwrap()
            / 2;
        s.set_read_low_water(usize::MAX);
        assert_eq!(usize::try_from(rcvlowat(&s)).unwrap(), half);
    }
}
