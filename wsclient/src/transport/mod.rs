//! Transports: how bytes reach the server before WebSocket framing starts.
//!
//! Owns TCP connection setup ([`tcp`]: every resolved address, Happy
//! Eyeballs, timeouts, a local bind address, `TCP_NODELAY`), tunnels through
//! HTTP and SOCKS5 proxies ([`proxy`]) and TLS ([`tls`]: rustls with
//! verification on by default). [`MaybeTlsStream`] is the one stream type
//! the rest of the crate sees: a proxy tunnel is still a [`TcpStream`] once
//! negotiated.

pub mod proxy;
pub mod tcp;
pub mod tls;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream, plain (`ws://`) or wrapped in TLS (`wss://`).
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (boxed: the TLS state is large).
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl MaybeTlsStream {
    /// The underlying TCP stream.
    #[must_use]
    pub fn tcp(&self) -> &TcpStream {
        match self {
            MaybeTlsStream::Plain(s) => s,
            MaybeTlsStream::Tls(s) => s.get_ref().0,
        }
    }

    /// The remote address.
    ///
    /// # Errors
    /// The socket's error, if it has none (it was closed).
    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.tcp().peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    /// The socket's error, if it has none.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.tcp().local_addr()
    }
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => poll_read_eager(s, cx, buf),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

/// Reads from plain TCP as `TcpStream::poll_read` does, except after a
/// short read.
///
/// tokio's own read takes a read that filled less than the buffer as proof
/// that the socket is drained and, until its next readiness event, answers
/// `Pending` without trying: one trip through `epoll_wait` and the
/// scheduler per message even when the next bytes are already there (the
/// reply to a request just sent, or more of a stream). Here the socket
/// stays marked readable until a read would block (tokio's `try_io`), so
/// the next read is tried first and only a read that finds nothing waits.
/// tokio's cooperative budget is taken as before (`poll_read_ready`).
fn poll_read_eager(
    s: &TcpStream,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    loop {
        std::task::ready!(s.poll_read_ready(cx))?;
        // SAFETY: `recv` only writes into the slice, never de-initialises
        // it, and only the `n` bytes it reports written are marked
        // initialised below.
        let unfilled = unsafe { buf.unfilled_mut() };
        match s.try_io(tokio::io::Interest::READABLE, || {
            socket2::SockRef::from(s).recv(unfilled)
        }) {
            Ok(n) => {
                // SAFETY: `recv` wrote these `n` bytes.
                unsafe { buf.assume_init(n) };
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            // `try_io` cleared the readiness: the next round registers.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Poll::Ready(Err(e)),
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
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(s) => s.is_write_vectored(),
            MaybeTlsStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tokio::io::AsyncReadExt;

    /// After a read that filled only part of the buffer, bytes that came
    /// in since are read at once: no wait for the runtime's next readiness
    /// event (tokio's own `TcpStream` read answers `Pending` here until its
    /// driver has run).
    #[tokio::test(flavor = "current_thread")]
    async fn a_short_read_does_not_wait_for_the_next_readiness_event() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = l.accept().unwrap();
        let mut s = MaybeTlsStream::Plain(tcp);
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
}
