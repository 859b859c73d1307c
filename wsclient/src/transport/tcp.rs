//! TCP connection setup: resolve, then race the addresses Happy Eyeballs
//! style (RFC 8305), each attempt bounded by the connect timeout.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
#[cfg(not(target_os = "linux"))]
use tokio::net::TcpSocket;
use tokio::net::TcpStream;

use crate::error::{Error, Phase};

/// How long to wait for one address before also trying the next (RFC 8305
/// recommends 250 ms).
pub const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// TCP options.
#[derive(Debug, Clone)]
pub struct TcpOptions {
    /// Limit on the DNS lookup (default 10 s).
    pub dns_timeout: Duration,
    /// Limit on the whole TCP connect, all addresses together (default 10 s).
    pub connect_timeout: Duration,
    /// The local address to bind before connecting (Workerman's `bindto`);
    /// only addresses of its family are tried.
    pub local_addr: Option<IpAddr>,
    /// Set `TCP_NODELAY` (default true).
    pub nodelay: bool,
    /// Fixed addresses for host names, used instead of DNS (like curl's
    /// `--resolve`): `(name, addresses)`, names compared
    /// case-insensitively. The addresses are raced as DNS answers would be.
    pub resolve: Vec<(String, Vec<IpAddr>)>,
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions {
            dns_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            local_addr: None,
            nodelay: true,
            resolve: Vec::new(),
        }
    }
}

/// Resolves `host` and returns its addresses ordered for Happy Eyeballs:
/// families alternating, starting with the resolver's first. IP literals
/// and names in [`TcpOptions::resolve`] skip DNS.
///
/// # Errors
/// [`Error::Dns`] or a DNS [`Error::Timeout`].
pub async fn resolve(host: &str, port: u16, opts: &TcpOptions) -> Result<Vec<SocketAddr>, Error> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if let Some((_, ips)) = opts
        .resolve
        .iter()
        .find(|(name, ips)| name.eq_ignore_ascii_case(host) && !ips.is_empty())
    {
        return Ok(interleave(
            ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect(),
        ));
    }
    let lookup = tokio::net::lookup_host((host, port));
    let addrs: Vec<SocketAddr> = crate::deadline::timeout(opts.dns_timeout, lookup)
        .await
        .ok_or(Error::Timeout {
            phase: Phase::Dns,
            after: opts.dns_timeout,
        })?
        .map_err(|source| Error::Dns {
            host: host.to_owned(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(Error::Dns {
            host: host.to_owned(),
            source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
        });
    }
    Ok(interleave(addrs))
}

/// Alternates address families, keeping the first family first.
#[must_use]
pub fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addrs.first().copied() else {
        return addrs;
    };
    let (mut a, mut b): (Vec<_>, Vec<_>) = addrs
        .into_iter()
        .partition(|x| x.is_ipv6() == first.is_ipv6());
    let mut out = Vec::with_capacity(a.len() + b.len());
    a.reverse();
    b.reverse();
    loop {
        match (a.pop(), b.pop()) {
            (None, None) => break,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
    out
}

/// Connects to `host:port`: every resolved address is tried, a new attempt
/// starting every [`ATTEMPT_DELAY`] or as soon as the previous one fails;
/// the first to connect wins and the others are dropped.
///
/// # Errors
/// [`Error::Dns`], [`Error::Connect`] (with the last address's error) or a
/// [`Error::Timeout`].
pub async fn connect(host: &str, port: u16, opts: &TcpOptions) -> Result<TcpStream, Error> {
    let mut addrs = resolve(host, port, opts).await?;
    if let Some(local) = opts.local_addr {
        addrs.retain(|a| a.is_ipv6() == local.is_ipv6());
    }
    let race = race(addrs, opts);
    let stream = crate::deadline::timeout(opts.connect_timeout, race)
        .await
        .ok_or(Error::Timeout {
            phase: Phase::Tcp,
            after: opts.connect_timeout,
        })?
        .map_err(|source| Error::Connect {
            host: host.to_owned(),
            port,
            source,
        })?;
    stream.set_nodelay(opts.nodelay)?;
    Ok(stream)
}

/// One connection attempt to `addr`.
///
/// On Linux a connect to a nearby server (loopback above all) is often
/// complete by the time `connect(2)` returns `EINPROGRESS`: the handshake's
/// packets were processed within the call. The socket is then used at once
/// (`getpeername` tells, one system call) instead of after a trip through
/// the runtime for the writable event and `SO_ERROR`, so the upgrade
/// request leaves that much sooner, typically before the server has gone
/// back to sleep after accepting. Otherwise it waits for the writable event
/// and takes the socket's error, as tokio's connect does.
#[cfg(target_os = "linux")]
async fn attempt(addr: SocketAddr, local: Option<IpAddr>) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    if let Some(ip) = local {
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    let connected = match socket.connect(&addr.into()) {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => socket.peer_addr().is_ok(),
        Err(e) => return Err(e),
    };
    let tcp = TcpStream::from_std(std::net::TcpStream::from(socket))?;
    if !connected {
        tcp.writable().await?;
        if let Some(e) = tcp.take_error()? {
            return Err(e);
        }
    }
    Ok(tcp)
}

/// One connection attempt to `addr`.
#[cfg(not(target_os = "linux"))]
async fn attempt(addr: SocketAddr, local: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv6() {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    if let Some(ip) = local {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(addr).await
}

/// Races connections to `addrs` in order, Happy Eyeballs style (see
/// [`connect`]), binding [`TcpOptions::local_addr`] if set; no overall
/// timeout.
///
/// # Errors
/// The last address's error when none connects.
pub async fn race(addrs: Vec<SocketAddr>, opts: &TcpOptions) -> io::Result<TcpStream> {
    // One address (an IP literal, most local names): nothing to race, so
    // no attempt set and no attempt timer.
    if let [addr] = addrs[..] {
        return attempt(addr, opts.local_addr).await;
    }
    let mut pending = addrs.into_iter();
    let mut running = FuturesUnordered::new();
    let mut last_err = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    if let Some(a) = pending.next() {
        running.push(attempt(a, opts.local_addr));
    }
    while !running.is_empty() {
        let next_start = tokio::time::sleep(ATTEMPT_DELAY);
        tokio::select! {
            res = running.next() => match res {
                Some(Ok(s)) => return Ok(s),
                Some(Err(e)) => {
                    last_err = e;
                    if let Some(a) = pending.next() {
                        running.push(attempt(a, opts.local_addr));
                    }
                }
                None => {}
            },
            () = next_start => {
                if let Some(a) = pending.next() {
                    running.push(attempt(a, opts.local_addr));
                }
            }
        }
    }
    Err(last_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaves_families() {
        let v6 = |p| SocketAddr::new("::1".parse().unwrap(), p);
        let v4 = |p| SocketAddr::new("127.0.0.1".parse().unwrap(), p);
        let out = interleave(vec![v6(1), v6(2), v4(3), v4(4), v4(5)]);
        assert_eq!(out, vec![v6(1), v4(3), v6(2), v4(4), v4(5)]);
    }

    #[tokio::test]
    async fn refused_is_a_connect_error() {
        // A port bound and never listening (held, so nothing else takes
        // it meanwhile) refuses connections.
        let held = tokio::net::TcpSocket::new_v4().unwrap();
        held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = held.local_addr().unwrap().port();
        let err = connect("127.0.0.1", port, &TcpOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    }

    /// A connect that is not complete when `connect(2)` returns is waited
    /// for: here the listener's accept queue is full, so the SYN is dropped
    /// and sent again about a second later, once the queue has room.
    #[tokio::test]
    async fn a_connect_not_complete_at_once_is_waited_for() {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        listener
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        // Backlog 0: one connection waiting to be accepted fills it.
        listener.listen(0).unwrap();
        let listener: std::net::TcpListener = listener.into();
        let addr = listener.local_addr().unwrap();
        let filler = std::net::TcpStream::connect(addr).unwrap();
        let started = std::time::Instant::now();
        // Make room a little later (the filler and ours are accepted).
        let accepter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let mut held = Vec::new();
            for _ in 0..2 {
                held.push(listener.accept().unwrap().0);
            }
            held
        });
        let s = tokio::time::timeout(Duration::from_secs(20), attempt(addr, None))
            .await
            .expect("the connect completes once the queue has room")
            .unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "connected before the queue had room: {:?}",
            started.elapsed()
        );
        assert_eq!(s.peer_addr().unwrap(), addr);
        let held = accepter.join().unwrap();
        assert_eq!(held.len(), 2);
        drop(filler);
    }

    #[tokio::test]
    async fn falls_back_to_the_address_that_works() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let dead = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let s = race(
            vec![
                dead_addr,
                SocketAddr::new("127.0.0.1".parse().unwrap(), port),
            ],
            &TcpOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(s.peer_addr().unwrap().port(), port);
    }
}
